"""Everything a workflow step needs, opened once per command: the workspace, its config, database and
multiplexer, and the one view of the multiplexer workflow code uses, this workspace's own panes."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from functools import cached_property

from orch import config as config_mod
from orch.config import Config
from orch.mux import Multiplexer, Pane, Reading
from orch.record import dataclass, replace
from orch.store import Store
from orch.terminal import neutralise
from orch.workspace import Workspace

TYPE_CHECKING = False  # (typing stays unloaded: the commands a person types load only what they use)
if TYPE_CHECKING:
    from orch.workflow.tasks import Batch


@dataclass(frozen=True)
class Listing:
    """One reading of the multiplexer: the server's identity and this workspace's panes (``panes``); ``all``
    holds every pane of the server, of every workspace, for the few checks that must see them (an explicit
    ``--pane``)."""

    server: str
    panes: list[Pane]
    all: list[Pane]


class Ctx:
    def __init__(self, ws: Workspace, cfg: Config | None = None, mux: Multiplexer | None = None) -> None:
        self.ws = ws
        self.cfg = cfg or config_mod.load(ws)
        self.stopping = False  # set by the daemon on SIGTERM: long loops (a backlog of messages) end early
        self.fleet: object = None  # the daemon's connection to the cluster (workflow/fleet.Runtime), when it has one
        self.batch: Batch | None = None  # while messages are applied together (workflow/inbox.py)
        # readings started ahead (``prefetch``), each with mux.changes at its start
        self._early: tuple[Reading | None, int] | None = None
        self._early_screens: tuple[Reading | None, list[str], int, int] | None = None
        if mux is not None:
            self.__dict__["mux"] = mux

    @cached_property
    def mux(self) -> Multiplexer:
        from orch.mux.tmux import Tmux

        return Tmux(self.cfg.socket)

    def prefetch(self, screens: Sequence[str] = (), lines: int = 0) -> None:
        """Start reading the multiplexer now, for the next ``listing`` and ``screens`` (of these panes, that many
        lines), while a pass reads its task files: the two calls run beside it and beside each other. If orch
        changes the server before they are used, they are read again."""
        if self._early is None:
            self._early = (self.mux.start_listing(), self.mux.changes)
        if screens and self._early_screens is None:
            self._early_screens = (self.mux.start_capture(screens, lines), list(screens), lines, self.mux.changes)

    def drop_prefetch(self) -> None:
        """Readings started ahead and not used: ended."""
        for early in (self._early, self._early_screens):
            if early is not None and early[0] is not None:
                early[0].cancel()
        self._early = self._early_screens = None

    def screens(self, pane_ids: list[str], lines: int) -> dict[str, str]:
        """The last ``lines`` lines of each pane, in one call (the one ``prefetch`` started, when it covers these
        panes and nothing changed since)."""
        early, self._early_screens = self._early_screens, None
        started = early[0] if early is not None else None
        if early is not None and started is not None:
            _, ids, early_lines, changes = early
            if changes == self.mux.changes and early_lines == lines and set(pane_ids) <= set(ids):
                got = self.mux.capture_many(ids, lines, started=started)
                if all(p in got for p in pane_ids):
                    return {p: got[p] for p in pane_ids}
            else:
                started.cancel()
        return self.mux.capture_many(pane_ids, lines) if pane_ids else {}

    def listing(self) -> Listing:
        """The multiplexer's panes that belong to this workspace. Windows of other workspaces on the same server
        are never listed, adopted, typed into or killed. A window orch tagged before workspaces had ids is taken
        as this workspace's only when the registry has its worker in that very pane (and then tagged)."""
        early, self._early = self._early, None
        started = early[0] if early is not None else None
        if started is not None and early is not None and early[1] != self.mux.changes:
            started.cancel()
            started = None
        everything = self.mux.list_panes(started)
        ident = self.ws.id
        own = [p for p in everything if p.workspace == ident]
        legacy = [p for p in everything if not p.workspace and p.worker]
        if legacy:
            own += self._claim(legacy)
        return Listing(self.mux.server_identity(), own, everything)

    def proof(self, window_id: str, tags: Mapping[str, str]) -> str:
        """What proves that orch made a window: a keyed hash (the workspace's secret, which no worker can read) of
        the window's id and its worker's tags. A window made by anyone else, or its tags copied onto another
        window, has none that holds."""
        import hashlib
        import hmac

        fields = [window_id, *(tags.get(k, "") for k in ("workspace", "task", "role", "worker", "agent", "token_hash"))]
        return hmac.new(self.ws.secret(), "\0".join(fields).encode(), hashlib.sha256).hexdigest()[:32]

    def proven(self, pane: Pane) -> bool:
        tags = {k: getattr(pane, k) for k in ("workspace", "task", "role", "worker", "agent", "token_hash")}
        expected = self.proof(pane.window_id, tags).encode()
        import hmac

        return bool(pane.proof) and hmac.compare_digest(pane.proof.encode("utf-8", "surrogateescape"), expected)

    def panes(self) -> list[Pane]:
        return self.listing().panes

    def _claim(self, legacy: list[Pane]) -> list[Pane]:
        """Windows tagged by an orch from before workspace ids: this workspace's when its registry has the worker in
        that pane, or when the pane runs in this workspace's worktree folder (a lost database), and in both cases
        only when the worker's worktree is this workspace's (a copy of the database names another's)."""
        ident = self.ws.id
        mine = os.path.realpath(self.cfg.worktree_path) + os.sep
        known = {(w.id, w.pane_id): w for w in self.store.live_workers()}

        def ours(p: Pane) -> bool:
            row = known.get((p.worker, p.pane_id))
            where = row.worktree if row is not None else p.current_path
            return bool(where) and os.path.realpath(where).startswith(mine) and (row is not None or p.is_agent)

        windows = {p.window_id: p for p in legacy if ours(p)}
        for window_id, pane in windows.items():
            self.mux.tag_window(window_id, {"workspace": ident})
            self.mux.tag_session(pane.session_id, {"workspace": ident})
            self.event("adopt", f"window {window_id} of {pane.worker} tagged with this workspace's id",
                       task=pane.task, worker=pane.worker)
        return [replace(p, workspace=ident) for p in legacy if p.window_id in windows]

    @cached_property
    def store(self) -> Store:
        from orch.store.db import CorruptStore

        try:
            return Store(self.ws.db_file, self.ws.id)
        except CorruptStore as exc:
            return self._set_aside(str(exc))

    def _set_aside(self, why: str) -> Store:
        """An unreadable database is moved aside and started afresh; the next pass rebuilds the registry from the
        tmux window tags, the task files and `git worktree list` (and says so in the log)."""
        from orch.locks import hold
        from orch.store.db import CorruptStore

        with hold(self.lock_path("db-repair"), wait=30):
            try:
                return Store(self.ws.db_file, self.ws.id)  # another process repaired it meanwhile
            except CorruptStore:
                pass
            aside = f"{self.ws.db_file}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.ws.db_file + suffix):
                    os.replace(self.ws.db_file + suffix, aside + suffix)
            store = Store(self.ws.db_file, self.ws.id)
        self.__dict__["store"] = store
        self.event("store", f"{why}: moved it to {aside} and started a new one; the registry is rebuilt from tmux, "
                            "the task files and git")
        return store

    @cached_property
    def _log_fd(self) -> int:
        """``.orch/logs/orch.log``, open for appending (one write a line: lines of several processes never mix)."""
        os.makedirs(self.ws.logs, exist_ok=True)
        path = os.path.join(self.ws.logs, "orch.log")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    def lock_path(self, name: str) -> str:
        return os.path.join(self.ws.locks, name + ".lock")

    def event(self, kind: str, text: str = "", task: str = "", worker: str = "", **data: object) -> None:
        """Record an event in the log table and one line in ``.orch/logs/orch.log`` (a worker's words in it with their
        terminal control characters neutralised: `orch log` prints them to your terminal)."""
        text = neutralise(text)
        self.store.event(kind, text, task=task, worker=worker, **data)
        who = " ".join(x for x in (f"task={task}" if task else "", f"worker={worker}" if worker else "") if x)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{stamp} {os.getpid()} {kind} {who + ' ' if who else ''}{text}\n"
        try:
            os.write(self._log_fd, line.encode("utf-8", "surrogateescape"))
        except OSError:
            pass  # the database has the event; the log file is a copy for reading with tail

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        self.drop_prefetch()
        if "_log_fd" in self.__dict__:
            os.close(self.__dict__.pop("_log_fd"))

