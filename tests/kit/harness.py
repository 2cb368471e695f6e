"""The test kit: a workspace in a real git repository with its own tmux socket, `orch` run as a command, the
daemon as a child process, and polling with deadlines. Importable from any test (`from tests.kit.harness import
...`); the fixtures that build these live in ``tests/kit/plugin.py``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# variables of an orch worker (or of a tmux client) that must not leak from the developer's shell into a test
REPO_ENV_DROP = ("TMUX", "TMUX_PANE", "ORCH_WORKSPACE", "ORCH_TASK", "ORCH_ROLE", "ORCH_WORKER", "ORCH_WORKER_TOKEN",
                 "ORCH_TMUX_SOCKET")
SOCKET_PREFIX = "orch-test-"
# what an in-process `orch` takes from the workspace's environment (the rest is the test process's own)
INPROC_ENV = ("ORCH_TMUX_SOCKET", "GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL",
              "GH_HOST", "GH_ENTERPRISE_TOKEN", "SSL_CERT_FILE", "GH_CONFIG_DIR")


def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


# -- tmux sockets ------------------------------------------------------------------------------------------------


def new_socket_name() -> str:
    """A private tmux socket for one test (``tmux -L <name>``); ``remove_socket`` ends its server and file."""
    return f"{SOCKET_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def socket_path(name: str) -> Path:
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / name


def remove_socket(name: str) -> None:
    """Kill the server on ``name`` (if any) and remove its socket file: a test leaves nothing in tmux's folder."""
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)
    try:
        socket_path(name).unlink()
    except FileNotFoundError:
        pass


# -- running orch ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def one_line_error(r: Result, *needles: str, code: int | None = None) -> None:
    """An expected failure: non-zero exit, one line on stderr starting with `orch: `, no traceback."""
    assert r.code != 0, r
    if code is not None:
        assert r.code == code, r
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert r.err.startswith("orch: "), r.err
    assert "Traceback" not in r.err and "Traceback" not in r.out
    for needle in needles:
        assert needle in r.err, (needle, r.err)


@dataclass
class Workspace:
    """A git repository prepared with `orch init`, its own tmux socket, and a way to run `orch` in it."""

    root: Path
    socket: str
    env: dict[str, str]
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def tasks(self) -> Path:
        return self.root / ".orch" / "tasks"

    @property
    def config_file(self) -> Path:
        return self.root / ".orch" / "config.toml"

    def orch(self, *args: str, input: str | bytes | None = None, check: bool = True, cwd: Path | None = None,
             env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [sys.executable, "-m", "orch", *args],
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
            input=data if data is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} failed ({proc.returncode}):\n{result.err}\n{result.out}")
        return result

    def inproc(self, *args: str, check: bool = True) -> Result:
        """`orch ARGS` run in this process (the same code as the command, without the interpreter's start): for the
        passes and status readings of polling loops. Tests of the command line itself use ``orch()``."""
        from orch.cli.app import run

        out, err = io.StringIO(), io.StringIO()
        keep = {k: os.environ.get(k) for k in INPROC_ENV}
        os.environ.update({k: self.env[k] for k in INPROC_ENV if k in self.env})
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(["-C", str(self.root), *args])
        finally:
            for k, v in keep.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        result = Result(code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"orch {' '.join(args)} failed ({code}):\n{result.err}\n{result.out}")
        return result

    def scan(self) -> Result:
        """One pass (`orch scan`), in this process."""
        return self.inproc("scan")

    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode("utf-8", "replace")

    def config(self, text: str) -> None:
        """Add to the workspace config: top-level keys at the top, tables at the end."""
        current = self.config_file.read_text()
        if text.lstrip().startswith("["):
            self.config_file.write_text(current + "\n" + text + "\n")
        else:
            self.config_file.write_text(text + "\n" + current)

    def task(self, slug: str, text: str) -> Path:
        path = self.tasks / f"{slug}.md"
        path.write_text(text, encoding="utf-8")
        return path

    def status(self) -> dict:
        return self.inproc("status", "--json").json()  # type: ignore[return-value]

    def task_status(self, slug: str) -> dict:
        for t in self.status()["tasks"]:
            if t["slug"] == slug:
                return t
        raise AssertionError(f"no task {slug} in status")

    def wait_state(self, slug: str, state: str, timeout: float = 20) -> dict:
        def check() -> dict | None:
            self.scan()
            t = self.task_status(slug)
            return t if t["state"] == state else None

        return wait_for(check, timeout, f"task {slug} to reach state {state}")  # type: ignore[return-value]

    def run_until(self, slug: str, states: tuple[str, ...], timeout: float = 60) -> dict:
        """Scan until the task is in one of ``states``."""

        def check() -> dict | None:
            self.scan()
            t = self.task_status(slug)
            return t if t["state"] in states else None

        return wait_for(check, timeout, f"task {slug} to reach {states}")  # type: ignore[return-value]

    def screen(self, address: str, lines: int = 60) -> str:
        return self.orch("capture", address, "-n", str(lines)).out

    def statuses(self, slug: str) -> list[str]:
        """The texts of the task's `## Status` lines, without their time stamps."""
        text = (self.tasks / f"{slug}.md").read_text()
        if "\n## Status\n" not in text:
            return []
        return [line[23:] for line in text.split("\n## Status\n", 1)[1].splitlines() if line.startswith("- ")]

    def daemon(self, log: Path) -> Daemon:
        d = Daemon(self, log)
        self.daemons.append(d)
        return d

    def stop_daemons(self) -> None:
        """Every daemon of this workspace: those the test started, and a detached one (`orch run --detach`)."""
        for d in self.daemons:
            d.stop(kill=True)
        try:
            pid = int((self.root / ".orch" / "daemon.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def prepare(repo: Path, socket: str, env: dict[str, str]) -> Workspace:
    """`orch init` in ``repo``, with the scripted agent as the default agent."""
    w = Workspace(repo, socket, env)
    w.orch("init")
    w.config('default_agent = "scripted"')
    return w


class Daemon:
    """`orch run` in the foreground, as a child of the test (so it can be signalled or killed)."""

    def __init__(self, ws: Workspace, log: Path) -> None:
        self.ws = ws
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        if self not in self.ws.daemons:
            self.ws.daemons.append(self)
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([sys.executable, "-m", "orch", "run"], cwd=self.ws.root, env=self.ws.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        wait_for(lambda: "orch daemon started" in self.log.read_text(), 30, "the daemon to start")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            if not kill:
                raise
            self.proc.kill()
            self.proc.wait(10)


def scripted_task(*steps: str, intro: str = "A task for the scripted agent.") -> str:
    body = "\n".join(steps)
    return f"{intro}\n\n```scripted\n{body}\n```\n"


# a task whose coder shows it is at work, asks a question, and once answered commits and reports done; its
# reviewer approves (the dashboards' tests)
ASKS = """\
Paint the shed.

```scripted
coder:
  say "thinking about colours"
  ask "which colour?"
  write shed.txt "painted\\n"
  commit "shed: painted"
  report "done: painted the shed"
reviewer:
  verdict approve
```
"""


def reviewed_task(intro: str, reviewer: list[str], more: str = "") -> str:
    """A task whose coder commits a.txt ("1") and reports done, and whose reviewer runs ``reviewer``'s steps;
    ``more``: further sections of the script (``coder round 2:`` ...)."""
    steps = "\n".join(f"  {step}" for step in reviewer)
    return (f"{intro}\n\n```scripted\ncoder:\n  write a.txt \"1\"\n  commit \"a\"\n  report \"done: a\"\n"
            f"reviewer:\n{steps}\n{more}```\n")


# -- the reliability suite's totals ------------------------------------------------------------------------------
# Tests marked `reliability` count what they did through the `tally` fixture; the totals are printed at the end of
# the run (xdist workers write to one file named by the controller).

TALLY_ENV = "ORCH_TEST_TALLY_FILE"
TALLY_KEYS = ("faults injected", "messages sent", "messages lost", "edits lost", "tasks stuck", "inputs tried",
              "crashes")


class Tally:
    def add(self, key: str, n: int = 1) -> None:
        assert key in TALLY_KEYS, key
        with open(os.environ[TALLY_ENV], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({key: n}) + "\n")


def in_terminal(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """Run ``argv`` on a terminal of its own: a pane of another private tmux server (returned; `remove_socket`
    ends it). For commands that need a terminal, like `orch attach`."""
    outer = new_socket_name()
    subprocess.run(["tmux", "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40",
                    *(["-c", str(cwd)] if cwd else []), "env", "-u", "TMUX", *argv], check=True,
                   env={**env, "TMUX": ""})
    return outer
