"""Test kit: real git repositories in temporary folders and a real tmux server on a private socket per test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orch import git

REPO_ENV_DROP = ("TMUX", "TMUX_PANE", "ORCH_WORKSPACE", "ORCH_TASK", "ORCH_ROLE", "ORCH_WORKER", "ORCH_WORKER_TOKEN")


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


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def one_line_error(r: Result, *needles: str) -> None:
    """An expected failure: non-zero exit, one line on stderr starting with `orch: `, no traceback."""
    assert r.code != 0, r
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

    @property
    def tasks(self) -> Path:
        return self.root / ".orch" / "tasks"

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

    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode("utf-8", "replace")

    def task(self, slug: str, text: str) -> Path:
        path = self.tasks / f"{slug}.md"
        path.write_text(text, encoding="utf-8")
        return path

    def status(self) -> dict:
        return self.orch("status", "--json").json()  # type: ignore[return-value]

    def task_status(self, slug: str) -> dict:
        for t in self.status()["tasks"]:
            if t["slug"] == slug:
                return t
        raise AssertionError(f"no task {slug} in status")

    def wait_state(self, slug: str, state: str, timeout: float = 20) -> dict:
        def check() -> dict | None:
            self.orch("scan")
            t = self.task_status(slug)
            return t if t["state"] == state else None

        return wait_for(check, timeout, f"task {slug} to reach state {state}")  # type: ignore[return-value]

    def screen(self, address: str, lines: int = 60) -> str:
        return self.orch("capture", address, "-n", str(lines)).out


class Daemon:
    """`orch run` in the foreground, as a child of the test (so it can be signalled or killed)."""

    def __init__(self, ws: Workspace, log: Path) -> None:
        self.ws = ws
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
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

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()  # type: ignore[union-attr]
            self.proc.wait(30)  # type: ignore[union-attr]


def scripted_task(*steps: str, intro: str = "A task for the scripted agent.") -> str:
    body = "\n".join(steps)
    return f"{intro}\n\n```scripted\n{body}\n```\n"


@pytest.fixture
def socket_name() -> Iterator[str]:
    name = f"orch-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def base_env(socket_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REPO_ENV_DROP}
    env["ORCH_TMUX_SOCKET"] = socket_name
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "orch test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.invalid"
    return env


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git.init_repo(str(path), [("README.md", "# demo\n"), ("src/app.py", "print('hi')\n")])
    return path


@pytest.fixture
def ws(repo: Path, socket_name: str, base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for key in REPO_ENV_DROP:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ORCH_TMUX_SOCKET", socket_name)
    w = Workspace(repo, socket_name, base_env)
    w.orch("init")
    cfg = repo / ".orch" / "config.toml"
    cfg.write_text('default_agent = "scripted"\n' + cfg.read_text())
    return w


def pytest_report_header(config: pytest.Config) -> list[str]:
    tmux = shutil.which("tmux")
    version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip() if tmux else "missing"
    gitv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    agents = Path(__file__).resolve().parent.parent / ".agents"
    found = []
    for name, binary in (("claude", agents / "node_modules/.bin/claude"), ("codex", agents / "node_modules/.bin/codex"),
                         ("aider", agents / "aider/bin/aider")):
        if binary.exists():
            out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
            found.append(f"{name} {(out.stdout or out.stderr).strip()}")
        else:
            found.append(f"{name} not installed (real-agent tests will be skipped)")
    return [f"tmux: {version}; {gitv}", "real agents: " + "; ".join(found)]


# -- the reliability suite's totals ------------------------------------------------------------------------------
# Tests marked `reliability` count what they did through the `tally` fixture; the totals are printed at the end of
# the run (xdist workers write to one file named by the controller).

TALLY_ENV = "ORCH_TEST_TALLY_FILE"
TALLY_KEYS = ("faults injected", "messages sent", "messages lost", "inputs tried", "crashes")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and TALLY_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="orch-tally-", suffix=".jsonl")
        os.close(fd)
        os.environ[TALLY_ENV] = path


class Tally:
    def add(self, key: str, n: int = 1) -> None:
        assert key in TALLY_KEYS, key
        with open(os.environ[TALLY_ENV], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({key: n}) + "\n")


@pytest.fixture
def tally() -> Tally:
    return Tally()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    path = os.environ.get(TALLY_ENV)
    if hasattr(config, "workerinput") or not path or not os.path.exists(path):
        return
    totals = dict.fromkeys(TALLY_KEYS, 0)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            for key, n in json.loads(line).items():
                totals[key] += n
    os.unlink(path)
    if any(totals.values()):
        terminalreporter.write_sep("-", "reliability suite")
        terminalreporter.write_line(", ".join(f"{key}: {n}" for key, n in totals.items()))
