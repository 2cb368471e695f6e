"""Everything a workflow step needs, opened once per command."""

from __future__ import annotations

import logging
import os
import time
from functools import cached_property

from orch import config as config_mod
from orch.config import Config
from orch.store import Store
from orch.tmux import Tmux
from orch.workspace import Workspace


class Ctx:
    def __init__(self, ws: Workspace, cfg: Config | None = None) -> None:
        self.ws = ws
        self.cfg = cfg or config_mod.load(ws)

    @cached_property
    def store(self) -> Store:
        from orch.store.db import CorruptStore

        try:
            return Store(self.ws.db_file)
        except CorruptStore as exc:
            return self._set_aside(str(exc))

    def _set_aside(self, why: str) -> Store:
        """An unreadable database is moved aside and started afresh; the next pass rebuilds the registry from the
        tmux window tags, the task files and `git worktree list` (and says so in the log)."""
        from orch.locks import hold
        from orch.store.db import CorruptStore

        with hold(self.lock_path("db-repair"), wait=30):
            try:
                return Store(self.ws.db_file)  # another process repaired it meanwhile
            except CorruptStore:
                pass
            aside = f"{self.ws.db_file}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.ws.db_file + suffix):
                    os.replace(self.ws.db_file + suffix, aside + suffix)
            store = Store(self.ws.db_file)
        self.__dict__["store"] = store
        self.event("store", f"{why}: moved it to {aside} and started a new one; the registry is rebuilt from tmux, "
                            "the task files and git")
        return store

    @cached_property
    def tmux(self) -> Tmux:
        return Tmux(self.cfg.socket)

    @cached_property
    def log(self) -> logging.Logger:
        return _logger(self.ws)

    def lock_path(self, name: str) -> str:
        return os.path.join(self.ws.locks, name + ".lock")

    def event(self, kind: str, text: str = "", task: str = "", worker: str = "", **data: object) -> None:
        """Record an event in the log table and one line in ``.orch/logs/orch.log``."""
        self.store.event(kind, text, task=task, worker=worker, **data)
        who = " ".join(x for x in (f"task={task}" if task else "", f"worker={worker}" if worker else "") if x)
        self.log.info("%s %s%s", kind, f"{who} " if who else "", text)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


def _logger(ws: Workspace) -> logging.Logger:
    name = f"orch.{ws.root}"
    log = logging.getLogger(name)
    if not log.handlers:
        os.makedirs(ws.logs, exist_ok=True)
        path = os.path.join(ws.logs, "orch.log")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))  # its mode, whatever the umask
        handler = logging.FileHandler(path, encoding="utf-8")
        fmt = logging.Formatter("%(asctime)s %(process)d %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        fmt.converter = time.gmtime
        handler.setFormatter(fmt)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
