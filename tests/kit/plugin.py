"""orch's pytest plugin (loaded by tests/conftest.py): fixtures for a workspace with a private tmux server, the
real agents' versions in the report header, the reliability suite's totals, and a run that leaves no tmux server
or socket behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orch.workflow.context import Ctx
from tests.kit.fakes import Bench, make_repo
from tests.kit.harness import (
    REPO_ENV_DROP,
    SOCKET_PREFIX,
    TALLY_ENV,
    TALLY_KEYS,
    Tally,
    Workspace,
    new_socket_name,
    prepare,
    remove_socket,
    socket_path,
)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def socket_name() -> Iterator[str]:
    name = new_socket_name()
    yield name
    remove_socket(name)


@pytest.fixture
def base_env(socket_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REPO_ENV_DROP}
    env["ORCH_TMUX_SOCKET"] = socket_name
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "orch test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.invalid"
    return env


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def ws(repo: Path, socket_name: str, base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    for key in REPO_ENV_DROP:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ORCH_TMUX_SOCKET", socket_name)
    w = prepare(repo, socket_name, base_env)
    yield w
    w.stop_daemons()  # before the server goes (socket_name's teardown): a daemon would start it again


@pytest.fixture
def tally() -> Tally:
    return Tally()


def pytest_report_header(config: pytest.Config) -> list[str]:
    tmux = shutil.which("tmux")
    version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip() if tmux else "missing"
    gitv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    agents = ROOT / ".agents"
    found = []
    for name, binary in (("claude", agents / "node_modules/.bin/claude"), ("codex", agents / "node_modules/.bin/codex"),
                         ("aider", agents / "aider/bin/aider")):
        if binary.exists():
            out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
            found.append(f"{name} {(out.stdout or out.stderr).strip()}")
        else:
            found.append(f"{name} not installed (real-agent tests will be skipped)")
    return [f"tmux: {version}; {gitv}", "real agents: " + "; ".join(found)]


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and TALLY_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="orch-tally-", suffix=".jsonl")
        os.close(fd)
        os.environ[TALLY_ENV] = path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that failed half way may have left its server: the run ends with none of this process's."""
    folder = socket_path("x").parent
    mine = f"{SOCKET_PREFIX}{os.getpid()}-"
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(mine):
            remove_socket(name)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.getoption("verbose") < 0:  # -q hides the header: say it here
        terminalreporter.write_sep("-", "tools and agents")
        for line in pytest_report_header(config):
            terminalreporter.write_line(line)
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



@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """A workspace (real git, real files, real database) on the in-memory multiplexer: for unit tests of the
    lifecycle, the pass, routing and delivery that run in milliseconds."""
    for key in REPO_ENV_DROP:
        monkeypatch.delenv(key, raising=False)
    b = Bench(tmp_path / "repo")
    yield b
    b.close()


@pytest.fixture
def fake_ctx(bench: Bench) -> Ctx:
    return bench.ctx
