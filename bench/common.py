"""Shared pieces of `make bench`: timing, the PATH shims, and one bench workspace (git repository + orch + its own
private tmux server)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
VENV_BIN = Path(sys.executable).parent
ORCH = str(VENV_BIN / "orch")

# orch itself, imported from src/ for the figures measured inside this process
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

IDLE_TASK = "idle worker for the bench\n\n```scripted\nwait\n```\n"
NEVER_STARTED = "---\ndepends_on: [never]\n---\n"  # a task that stays queued: no worker is started for it


class BenchError(SystemExit):
    pass


def timed(argv: list[str], env: dict[str, str], cwd: str, input: bytes | None = None) -> float:
    start = time.perf_counter()
    if input is None:
        subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    else:
        subprocess.run(argv, env=env, cwd=cwd, input=input, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    """q1–q3 in ms (for fewer than 5 samples interpolated between the samples, never beyond them)."""
    if len(values) < 2:
        return "—"
    q = statistics.quantiles(values, n=4, method="exclusive" if len(values) >= 5 else "inclusive")
    return f"{q[0] * 1000:.1f}–{q[2] * 1000:.1f}"


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value * 1000:.0f} ms"


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set variables in this process's environment for a block (the in-process measurements)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- /proc --------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    # fields after the command name start at field 3 (state); utime is field 14
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / tick, (cutime + cstime) / tick


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def quiet(pid: int, window: float = 0.05, limit: float = 5.0) -> None:
    """Wait until a process has used no CPU for ``window`` seconds (it finished what it was doing)."""
    deadline = time.monotonic() + limit
    last = sum(cpu_seconds(pid))
    while time.monotonic() < deadline:
        time.sleep(window)
        now = sum(cpu_seconds(pid))
        if now == last:
            return
        last = now


# -- shims --------------------------------------------------------------------------------------------------------


class Shims:
    """Two PATH shims for tmux and git: ``count`` appends the tool's name to a file per process; ``timing`` (bash)
    also logs each call's start and end time and its arguments."""

    def __init__(self, tmp: Path) -> None:
        self.count_dir = tmp / "shim"
        self.timing_dir = tmp / "shim-timing"
        self.counts = tmp / "counts"
        self.timings = tmp / "timings"

    def create(self) -> None:
        self.count_dir.mkdir()
        self.timing_dir.mkdir()
        for tool in ("tmux", "git"):
            real = shutil.which(tool)
            if real is None:
                raise BenchError(f"bench: {tool} not found")
            script = self.count_dir / tool
            script.write_text(f'#!/bin/sh\necho {tool} >> "{self.counts}"\nexec {real} "$@"\n')
            script.chmod(0o755)
            script = self.timing_dir / tool
            script.write_text(
                "#!/bin/bash\n"
                "t0=$EPOCHREALTIME\n"
                f'{real} "$@"\n'
                "rc=$?\n"
                f"printf '{tool} %s %s %s\\n' \"$t0\" \"$EPOCHREALTIME\" \"${{*//$'\\n'/ }}\" >> \"{self.timings}\"\n"
                "exit $rc\n"
            )
            script.chmod(0o755)

    def reset(self) -> None:
        self.counts.unlink(missing_ok=True)
        self.timings.unlink(missing_ok=True)

    def counted(self) -> tuple[int, int]:
        """(tmux, git) processes since the last reset."""
        lines = self.counts.read_text().split() if self.counts.exists() else []
        return lines.count("tmux"), lines.count("git")

    def timed_calls(self) -> list[tuple[str, float, float, str]]:
        """(tool, start, end (epoch seconds), arguments) of every call since the last reset (timing shim)."""
        out = []
        if not self.timings.exists():
            return out
        for line in self.timings.read_text().splitlines():
            tool, t0, t1, *args = line.split(" ")
            out.append((tool, float(t0.replace(",", ".")), float(t1.replace(",", ".")), " ".join(args)))
        return out

    def path(self, which: str, base: str) -> str:
        folder = self.count_dir if which == "count" else self.timing_dir
        return f"{folder}{os.pathsep}{base}"


# -- one workspace ------------------------------------------------------------------------------------------------


class Space:
    """A git repository with orch initialised, using the scripted agent, on a private tmux server of its own."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.name = name
        self.repo = tmp / name
        self.socket = f"orch-bench-{os.getpid()}-{name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "TMUX"))}
        env.update(ORCH_TMUX_SOCKET=self.socket, GIT_AUTHOR_NAME="b", GIT_COMMITTER_NAME="b")
        env.update(GIT_AUTHOR_EMAIL="b@example.invalid", GIT_COMMITTER_EMAIL="b@example.invalid")
        self.env = env
        self.daemon: int | None = None

    @property
    def tasks(self) -> Path:
        return self.repo / ".orch" / "tasks"

    def run(self, *argv: str, input: bytes | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(argv), cwd=self.repo, env=env or self.env, input=input, capture_output=True,
                              check=False)
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise BenchError(f"bench ({self.name}): {' '.join(argv)} failed: {err}")
        return proc

    def orch(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
             check: bool = True) -> str:
        return self.run(ORCH, *args, input=input, env=env, check=check).stdout.decode("utf-8", "replace")

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.run("tmux", "-L", self.socket, *args, check=check)

    def setup(self) -> None:
        self.repo.mkdir()
        for argv in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
            self.run(*argv)
        self.orch("init")
        cfg = self.repo / ".orch" / "config.toml"
        # the scripted agent; no reminders typed into idle coders (they would land in the middle of a measurement)
        cfg.write_text('default_agent = "scripted"\nidle_reminder = false\n' + cfg.read_text())

    def config(self, line: str) -> None:
        """A top-level key added to the workspace's config."""
        cfg = self.repo / ".orch" / "config.toml"
        cfg.write_text(line + "\n" + cfg.read_text())

    def write_task(self, slug: str, body: str) -> None:
        (self.tasks / f"{slug}.md").write_text(body)

    def status(self) -> dict:
        return json.loads(self.orch("status", "--json"))

    def workers(self) -> list[dict]:
        return [w for t in self.status()["tasks"] for w in t["workers"]]

    def wait_workers(self, slugs: set[str], timeout: float) -> list[dict]:
        """Wait until each task in ``slugs`` has a coder that is idle or working (it took its prompt)."""
        deadline = time.monotonic() + timeout
        while True:
            workers = [w for w in self.workers() if w["role"] == "coder"]
            ready = {w["id"].split(":")[0] for w in workers if w["state"] in ("idle", "working")}
            if slugs <= ready:
                return [w for w in workers if w["id"].split(":")[0] in slugs and w["state"] in ("idle", "working")]
            if time.monotonic() > deadline:
                missing = sorted(slugs - ready)
                shown = {w["id"]: f"{w['state']} {w['note']}".strip() for w in workers if w["id"].split(":")[0] in missing}
                raise BenchError(f"bench ({self.name}): {len(missing)} worker(s) not ready after {timeout:g}s: "
                                 f"{missing[:5]} {list(shown.items())[:5]}")
            time.sleep(1.0)

    def spawn(self, slugs: list[str], timeout: float) -> list[dict]:
        """Task files for ``slugs`` (idle workers), one `orch scan` to start them all, and wait until they are up."""
        for slug in slugs:
            self.write_task(slug, IDLE_TASK)
        self.orch("scan")
        return self.wait_workers(set(slugs), timeout)

    def scripted_log(self, worker_id: str) -> Path:
        return self.repo / ".orch" / "logs" / f"scripted-{worker_id.replace(':', '-')}.jsonl"

    def received(self, worker_id: str) -> list[str]:
        path = self.scripted_log(worker_id)
        if not path.exists():
            return []
        return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
                if line.strip()]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.repo / '.orch' / 'orch.db'}?mode=ro", uri=True, timeout=30)

    # -- the daemon ---------------------------------------------------------------------------------------------

    def start_daemon(self) -> int:
        proc = self.run(ORCH, "run", "--detach", check=False)
        if proc.returncode != 0:
            log = self.repo / ".orch" / "logs" / "daemon.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
            raise BenchError(f"bench ({self.name}): orch run --detach failed: "
                             f"{proc.stderr.decode('utf-8', 'replace').strip()}\n" + "\n".join(tail))
        pid = int((self.repo / ".orch" / "daemon.pid").read_text().split()[0])
        self.daemon = pid
        return pid

    def stop_daemon(self) -> None:
        if self.daemon is None:
            return
        proc = self.run(ORCH, "stop", check=False)
        if proc.returncode != 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.daemon, 15)
        self.daemon = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_daemon()
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        from orch.mux.tmux import socket_path

        with contextlib.suppress(OSError):  # tmux leaves its socket file behind
            os.unlink(socket_path(self.socket))
