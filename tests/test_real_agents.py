"""The real agent programs under orch, against the scripted model server (tests/kit/model_server.py).

`make test` installs the pinned Claude Code and Codex into .agents/ with npm; without npm these tests are skipped
(and pytest says so), never counted as passed. Each agent runs in its own tmux window under orch with a throwaway
HOME: it receives its prompt (confirmed), edits and commits in its worktree, reports done through `orch -`, is
seen working then idle, and its read-only reviewer cannot modify the worktree.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orch.store import Store
from tests.kit.harness import Workspace, wait_for
from tests.kit.model_server import ModelServer

pytestmark = [pytest.mark.tmux, pytest.mark.e2e, pytest.mark.real_agents, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
AGENTS_BIN = Path(os.environ.get("ORCH_TEST_AGENTS_BIN") or ROOT / ".agents/node_modules/.bin")
AIDER = Path(os.environ.get("ORCH_TEST_AIDER") or ROOT / ".agents/aider/bin/aider")
TASK = """Add a greeting file.

## Requirements
- hello.txt says hello

## Validation
- `test -s hello.txt`
"""


def agent_binary(name: str) -> Path:
    path = AGENTS_BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {AGENTS_BIN} (run `make agents`; it needs npm)")
    return path


def version(name: str) -> str:
    path = AIDER if name == "aider" else AGENTS_BIN / name
    if not path.exists():
        return "not installed"
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, check=False)
    return (out.stdout or out.stderr).strip()


def coder_turns(orch: str) -> list[dict]:
    """What a model following orch's prompt does: the report uses the orch command the prompt names."""
    return [
        {"write": {"path": "hello.txt", "content": "hello\n"}},
        {"bash": "git add hello.txt && git commit -qm 'Add hello.txt'"},
        {"bash": f'{orch} - "done: added hello.txt"'},
        {"text": "All done."},
    ]


def setup(ws: Workspace, agent: str, srv: ModelServer, home: Path) -> None:
    home.mkdir()
    ws.env["HOME"] = str(home)
    ws.env["PATH"] = f"{AGENTS_BIN}{os.pathsep}{ws.env['PATH']}"
    cfg = ws.root / ".orch" / "config.toml"
    text = cfg.read_text().replace('default_agent = "scripted"\n', f'default_agent = "{agent}"\nidle_reminder = false\n')
    cfg.write_text(text)
    if agent == "claude":
        # a person's Claude Code has done its onboarding once; orch pre-answers only the per-folder questions
        (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True, "theme": "dark"}))
        ws.env.update(ANTHROPIC_BASE_URL=srv.url, ANTHROPIC_API_KEY="sk-ant-test-0123456789abcdefghijklmnop",
                      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    else:
        (home / ".codex").mkdir()
        (home / ".codex" / "config.toml").write_text(
            'model = "mock-model"\nmodel_provider = "mock"\n\n[model_providers.mock]\nname = "mock"\n'
            f'base_url = "{srv.url}/v1"\nenv_key = "ORCH_MOCK_API_KEY"\nwire_api = "responses"\n\n'
            "[tui]\nscreen_reader_detection_done = true\n"
        )
        ws.env["ORCH_MOCK_API_KEY"] = "test-key"


def run_until(ws: Workspace, slug: str, states: tuple[str, ...], timeout: float = 120) -> dict:
    def check() -> dict | None:
        ws.orch("scan")
        t = ws.task_status(slug)
        return t if t["state"] in states else None

    return wait_for(check, timeout, f"{slug} to reach {states}")  # type: ignore[return-value]


def reviewed_read_only_and_seen_working(ws: Workspace, worktree: Path) -> None:
    """The reviewer could not modify the worktree and its verdict counted; the prompt was delivered and confirmed;
    orch saw the coder working, then idle."""
    assert not (worktree / "reviewer-was-here.txt").exists()
    (review,) = Store(str(ws.root / ".orch" / "orch.db")).reviews("hello")
    assert review.decision == "approve" and review.status == "counted" and review.tree_before == review.tree_after
    events = ws.orch("log", "hello", "-n", "500").out
    assert "prompt delivered to" in events and "delivery failed" not in events
    coder_states = [line for line in events.splitlines() if " state " in line and ":coder:" in line]
    changes = [line.split("-> ")[1].split(" ")[0] for line in coder_states]
    assert "working" in changes and "idle" in changes[changes.index("working"):], coder_states


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_real_agent_codes_reports_and_is_reviewed_read_only(ws: Workspace, tmp_path: Path, agent: str) -> None:
    agent_binary(agent)
    # the reviewer tries to write (its read-only scope must refuse), then answers: Claude Code may run
    # `orch verdict`; Codex's read-only sandbox cannot write anywhere, so it ends with a verdict block
    orch = str(ws.root / ".orch" / "bin" / "orch")
    if agent == "claude":
        reviewer = [{"write": {"path": "reviewer-was-here.txt", "content": "x"}},
                    {"bash": f"{orch} verdict approve 'note: hello.txt is fine'"}, {"text": "Review finished."}]
    else:
        reviewer = [{"bash": "touch reviewer-was-here.txt"},
                    {"text": "Review finished.\n\nVERDICT: approve\nnote: hello.txt is fine"}]
    with ModelServer(coder_turns(orch) + reviewer) as srv:
        setup(ws, agent, srv, tmp_path / "home")
        ws.task("hello", TASK)
        try:
            t = run_until(ws, "hello", ("ready", "blocked", "lost"))
        except AssertionError:
            print((ws.tasks / "hello.md").read_text())
            print(ws.orch("log", "hello", "-n", "60").out)
            for role in ("hello", "hello:reviewer"):
                print(ws.orch("capture", role, "-n", "30", check=False).out)
            print("TOOL RESULTS:", srv.tool_results())
            raise
        assert t["state"] == "ready", (ws.tasks / "hello.md").read_text()

        text = (ws.tasks / "hello.md").read_text()
        assert "coder: done: added hello.txt" in text  # reported through the real hook path: orch - from the agent
        assert "validation: 1/1 command(s) passed" in text
        coder = next(w for w in t["workers"] if w["role"] == "coder")
        assert coder["agent"] == agent and coder["agent_session"]
        worktree = Path(coder["worktree"])
        log = subprocess.run(["git", "log", "--format=%s", "main..HEAD"], cwd=worktree, capture_output=True,
                             text=True, check=True).stdout
        assert log.strip() == "Add hello.txt"
        # the reviewer could not modify the worktree, and its verdict counted
        reviewed_read_only_and_seen_working(ws, worktree)
        # the model saw the whole prompt orch built
        first = srv.main_requests()[0]["text"]
        assert "orch: coder prompt for task hello, round 1" in first and "hello.txt says hello" in first
        assert f'{orch} - "done:' in first
    print(f"{agent}: {version(agent)}")


def is_commit_message_request(body: dict) -> bool:
    """Aider asks its model for each auto-commit's message: a side request, not a turn of the script."""
    system = " ".join(str(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "system")
    return "commit message" in system.lower()


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_real_aider_codes_reports_in_its_final_message_and_reviews_in_ask_mode(ws: Workspace, tmp_path: Path,
                                                                               sandbox: str) -> None:
    if not AIDER.exists():
        pytest.skip(f"aider is not installed at {AIDER} (run `make agents`)")
    # Aider edits by answering in its edit format ("whole": the file name, then its whole content), commits by
    # itself, and cannot run orch's commands: the report and the verdict are lines of its final message.
    coder = {"text": "Here it is.\n\nhello.txt\n```\nhello\n```\n\nREPORT: done: added hello.txt\n"}
    reviewer = {"text": "I would rather have it this way:\n\nreviewer-was-here.txt\n```\nx\n```\n\n"
                        "VERDICT: approve\nnote: hello.txt is fine\n"}
    # each answer takes a moment, as a real model's does, so that orch sees the coder working
    with ModelServer([coder, reviewer], chat_side=is_commit_message_request, delay=2) as srv:
        home = tmp_path / "home"
        home.mkdir()
        ws.env.update(HOME=str(home), OPENAI_API_KEY="test-key", OPENAI_API_BASE=srv.url + "/v1",
                      LITELLM_LOCAL_MODEL_COST_MAP="True")
        cfg = ws.root / ".orch" / "config.toml"
        command = json.dumps([str(AIDER), "--model", "openai/orch-test", "--edit-format", "whole"])
        cfg.write_text(cfg.read_text().replace('default_agent = "scripted"\n', 'default_agent = "aider"\nidle_reminder = false\n')
                       + f"\n[agents.aider]\ncommand = {command}\n")
        ws.config(f'sandbox = "{sandbox}"')  # without it, its caches in the worktree are not the reviewer's doing
        ws.task("hello", TASK)
        try:
            t = run_until(ws, "hello", ("ready", "blocked", "lost"))
        except AssertionError:
            print((ws.tasks / "hello.md").read_text())
            print(ws.orch("log", "hello", "-n", "60").out)
            for role in ("hello", "hello:reviewer"):
                print(ws.orch("capture", role, "-n", "40", check=False).out)
            raise
        assert t["state"] == "ready", (ws.tasks / "hello.md").read_text()
        text = (ws.tasks / "hello.md").read_text()
        assert "coder: done: added hello.txt" in text and "validation: 1/1 command(s) passed" in text
        coder_row = next(w for w in t["workers"] if w["role"] == "coder")
        worktree = Path(coder_row["worktree"])
        # aider's session is its chat history, kept in orch's state folder, not in the worktree
        assert coder_row["agent_session"].startswith(str(ws.root / ".orch" / "agents" / "aider"))
        assert "REPORT: done: added hello.txt" in Path(coder_row["agent_session"]).read_text()
        assert (worktree / "hello.txt").read_text() == "hello\n"
        log = subprocess.run(["git", "log", "--format=%s", "main..HEAD"], cwd=worktree, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        assert len([s for s in log if s]) == 1  # aider's own auto-commit
        status = subprocess.run(["git", "status", "--porcelain"], cwd=worktree, capture_output=True, text=True,
                                check=True).stdout
        assert status == ""  # aider's caches (.aider.tags.cache.v4) are excluded, so the worktree is clean
        # the reviewer in ask mode answered with an edit that was not applied, and its verdict counted
        reviewed_read_only_and_seen_working(ws, worktree)
        first = srv.main_requests()[0]["text"]
        assert "orch: coder prompt for task hello, round 1" in first and "REPORT: done:" in first
    print(f"aider: {version('aider')}")


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_real_agent_lost_with_the_tmux_server_resumes_its_session(ws: Workspace, tmp_path: Path, agent: str) -> None:
    agent_binary(agent)
    orch = str(ws.root / ".orch" / "bin" / "orch")
    first_turn = [{"write": {"path": "part1.txt", "content": "one\n"}},
                  {"bash": "git add part1.txt && git commit -qm 'Part one'"}, {"text": "Part one is committed."}]
    after_resume = [{"bash": f'{orch} - "done: part one, resumed"'}, {"text": "Reported."}]
    with ModelServer(first_turn + after_resume) as srv:
        setup(ws, agent, srv, tmp_path / "home")
        ws.task("hello", TASK)
        ws.orch("scan")
        wait_for(lambda: srv.turns_served() >= 3, 120, "the first turn")
        first = next(w for w in ws.task_status("hello")["workers"] if w["role"] == "coder")
        wait_for(lambda: (c := next(w for w in ws.task_status("hello")["workers"] if w["role"] == "coder"))
                 ["agent_session"] and c["state"] == "idle", 60, "the first turn to end")
        session = next(w for w in ws.task_status("hello")["workers"] if w["role"] == "coder")["agent_session"]
        # the agent writes its session's last words after its turn has ended: the kill comes once they are there
        home = tmp_path / "home"

        def saved() -> bool:
            files = [*home.glob(f".claude/projects/*/{session}.jsonl"), *home.glob(f".codex/sessions/**/*{session}*")]
            return any("Part one is committed." in f.read_text(errors="replace") for f in files if f.is_file())

        wait_for(saved, 60, f"{agent}'s session file to hold the first turn's last words")
        ws.tmux("kill-server")
        out = ws.orch("scan").out
        try:
            assert f"resumed its {agent} session {session}" in out, out
            wait_for(lambda: ws.orch("scan") and "coder: done: part one, resumed" in (ws.tasks / "hello.md").read_text(),
                     120, "the resumed coder's report")
        except AssertionError:
            print((ws.tasks / "hello.md").read_text())
            print(ws.orch("log", "hello", "-n", "60").out)
            print(ws.orch("capture", "hello", "-n", "40", check=False).out)
            raise
        (coder,) = [w for w in ws.task_status("hello")["workers"] if w["role"] == "coder"]
        assert coder["id"] != first["id"] and coder["worktree"] == first["worktree"]
        # the resumed agent sent the model its earlier conversation: the session really continued
        resumed = next(r for r in srv.main_requests() if "your window was lost" in json.dumps(r["body"]))
        body = json.dumps(resumed["body"])
        assert "Part one is committed." in body and "your window was lost" in body
    print(f"{agent}: {version(agent)} resumed session {session}")


def test_real_claude_on_a_home_where_it_never_ran(ws: Workspace, tmp_path: Path) -> None:
    """A fresh HOME: with ANTHROPIC_API_KEY, orch answers Claude Code's first start and the model gets the prompt;
    without credentials, the task says in words that Claude Code waits on its first-start setup."""
    agent_binary("claude")
    with ModelServer([{"text": "Working on it."}]) as srv:
        setup(ws, "claude", srv, tmp_path / "home")
        (tmp_path / "home" / ".claude.json").unlink()  # never ran here: no onboarding done
        ws.task("fresh", TASK)
        wait_for(lambda: ws.orch("scan") and srv.main_requests(), 60, "the model to receive the prompt")
        assert "orch: coder prompt for task fresh, round 1" in srv.main_requests()[0]["text"]
        assert not any("first-start" in line for line in ws.statuses("fresh"))

        home = tmp_path / "home2"
        home.mkdir()
        ws.env["HOME"] = str(home)
        for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
            ws.env.pop(key, None)
        ws.task("nokey", TASK)
        line = wait_for(lambda: ws.orch("scan") and next((x for x in ws.statuses("nokey") if "first-start" in x), None), 60,
                        "the first-start setup to be named")
        assert 'Claude Code is waiting on its first-start setup ("' in line and "run `claude` once" in line, line
        assert "screen:" not in line  # words, not a screen excerpt
        assert len(srv.main_requests()) == 1
