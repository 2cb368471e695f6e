"""How orch launches the built-in agents (arguments per role, resume, pre-answered dialogs) and reads their final
messages. Pure functions over real files in temporary folders; the real programs run in test_real_agents.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from orch import agents
from orch.agents.aider import transcript_final
from orch.agents.base import Launch, LaunchRequest
from orch.agents.hooks import report_from_final_message

PROFILES = agents.builtin_profiles()


def prepare(tmp_path: Path, kind: str, role: str, resume: str = "") -> Launch:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    common = tmp_path / "repo.git"
    (common / "info").mkdir(parents=True, exist_ok=True)
    req = LaunchRequest(PROFILES[kind], role, str(tmp_path / "state"), "/ws/.orch/bin/orch", str(tmp_path / "wt"),
                        [str(common)], {"HOME": str(home), "ANTHROPIC_API_KEY": "sk-test-abcdefghijklmnopqrstuvwxyz"},
                        worker_id="t:coder:abc123", resume=resume)
    return agents.agent(kind).launch(req)


def test_claude_session_is_chosen_by_orch_and_resumed_by_id(tmp_path: Path) -> None:
    fresh = prepare(tmp_path, "claude", "coder")
    assert fresh.args[:2] == ["--session-id", fresh.session] and len(fresh.session) == 36
    assert "bypassPermissions" in fresh.args
    again = prepare(tmp_path, "claude", "coder", resume=fresh.session)
    assert again.args[:2] == ["--resume", fresh.session] and again.session == fresh.session
    reviewer = prepare(tmp_path, "claude", "reviewer")
    assert "dontAsk" in reviewer.args and "bypassPermissions" not in reviewer.args
    assert "Bash(/ws/.orch/bin/orch verdict:*)" in reviewer.args


def test_claude_dialogs_are_preanswered_keeping_the_persons_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text(json.dumps({"theme": "light", "projects": {"/other": {"x": 1}}}))
    prepare(tmp_path, "claude", "coder")
    data = json.loads((home / ".claude.json").read_text())
    assert data["theme"] == "light" and data["projects"]["/other"] == {"x": 1}
    assert data["projects"][str(tmp_path / "wt")]["hasTrustDialogAccepted"] is True
    assert data["customApiKeyResponses"]["approved"] == ["ghijklmnopqrstuvwxyz"]
    before = (home / ".claude.json").read_bytes()
    prepare(tmp_path, "claude", "coder")
    assert (home / ".claude.json").read_bytes() == before  # nothing to change: the file is left alone


def test_codex_scopes_per_role_and_resume(tmp_path: Path) -> None:
    coder = prepare(tmp_path, "codex", "coder")
    assert coder.args[coder.args.index("--sandbox") + 1] == "workspace-write"
    assert str(tmp_path / "repo.git") in coder.args and coder.session == ""  # codex assigns its thread id
    reviewer = prepare(tmp_path, "codex", "reviewer")
    assert reviewer.args[reviewer.args.index("--sandbox") + 1] == "read-only" and "--add-dir" not in reviewer.args
    resumed = prepare(tmp_path, "codex", "coder", resume="0199-thread")
    assert resumed.args[:2] == ["resume", "0199-thread"] and resumed.session == "0199-thread"
    config = tomllib.loads((tmp_path / "home" / ".codex" / "config.toml").read_text())
    assert config["projects"][str(tmp_path / "wt")]["trust_level"] == "trusted"


def test_aider_runs_unattended_reviewer_asks_only_and_history_is_the_session(tmp_path: Path) -> None:
    coder = prepare(tmp_path, "aider", "coder")
    assert "--yes-always" in coder.args and "--chat-mode" not in coder.args and "--restore-chat-history" not in coder.args
    history = coder.args[coder.args.index("--chat-history-file") + 1]
    assert coder.session == history and history.startswith(str(tmp_path / "state" / "agents" / "aider"))
    notify = coder.args[coder.args.index("--notifications-command") + 1]
    assert notify == "'/ws/.orch/bin/orch' hook aider-notify"
    reviewer = prepare(tmp_path, "aider", "reviewer")
    assert reviewer.args[reviewer.args.index("--chat-mode") + 1] == "ask"
    assert {"--dry-run", "--no-auto-commits"} <= set(reviewer.args)
    resumed = prepare(tmp_path, "aider", "coder", resume=history)
    assert "--restore-chat-history" in resumed.args and resumed.session == history
    # aider's caches are excluded once in the repository, never in a tracked .gitignore
    assert (tmp_path / "repo.git" / "info" / "exclude").read_text().splitlines().count(".aider*") == 1


def test_exclude_keeps_what_the_person_wrote(tmp_path: Path) -> None:
    from orch.git import add_exclude

    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "exclude").write_text("# mine\n*.log")
    add_exclude("", [".aider*"], why="a test", common_dir=str(tmp_path))
    add_exclude("", [".aider*"], why="a test", common_dir=str(tmp_path))
    assert (tmp_path / "info" / "exclude").read_text() == "# mine\n*.log\n# added by a test\n.aider*\n"


HISTORY = """
# aider chat started at 2026-11-22 03:11:27

> Aider v0.86.2
> Model: openai/orch-test with whole edit format

#### # orch: coder prompt for task hello, round 1
#### If you cannot run commands, end your final message with the same report as a line instead:
####     REPORT: done: <one-line summary of what you did>

Here it is.

hello.txt
```
hello
```

REPORT: done: added hello.txt

> Tokens: 600 sent, 24 received.
> Applied edit to hello.txt
> Commit 4ec5f7e Add hello.txt
"""


def test_final_message_of_an_aider_transcript() -> None:
    final = transcript_final(HISTORY)
    assert final.startswith("Here it is.") and "Tokens:" not in final and "orch: coder prompt" not in final
    assert report_from_final_message(final) == "done: added hello.txt"
    # the instructions in the prompt never count as a report
    assert report_from_final_message(transcript_final(HISTORY.split("\nHere it is.")[0])) == ""


def test_report_line_forms() -> None:
    assert report_from_final_message("**REPORT: needs input: which port?**") == "needs input: which port?"
    assert report_from_final_message("REPORT: done: first\ntext\nreport: blocked: second") == "blocked: second"
    assert report_from_final_message("REPORTS: done: no\nREPORT:\n") == ""


def test_every_agent_module_is_registered_and_behind_the_protocol() -> None:
    from orch.agents.base import Agent

    assert agents.kinds() == {"generic", "scripted", "claude", "codex", "aider"}
    for kind in agents.kinds():
        agent = agents.agent(kind)
        assert isinstance(agent, Agent) and agent.kind == kind
        for name, profile in agent.profiles().items():
            assert profile.name == name and profile.kind == kind and profile.command
    assert set(PROFILES) == {"scripted", "claude", "codex", "aider"}


def test_hook_events_mean_what_each_agent_says() -> None:
    claude, codex, aider, generic = (agents.agent(k) for k in ("claude", "codex", "aider", "generic"))
    assert claude.hook_state("Notification", {"message": "Claude needs your permission to use Bash"}) == "waiting"
    assert claude.hook_state("Notification", {"message": "Claude is waiting for your input"}) == "idle"
    assert claude.hook_state("SubagentStop", {}) is None and claude.hook_state("Stop", {}) == "idle"
    assert codex.hook_state("codex-notify", {"type": "agent-turn-complete"}) == "idle"
    assert codex.hook_state("codex-notify", {"type": "other"}) is None
    title = {"input-messages": ["Generate a concise, single-line task title for this"]}
    assert codex.side_thread("codex-notify", title) and not codex.side_thread("Stop", title)
    assert aider.hook_state("aider-notify", {}) is None  # the screen tells the turn's end
    assert generic.hook_state("stop", {}) == "idle" and generic.hook_state("prompt", {}) == "working"
    assert claude.hook_session({"session_id": "abc"}) == "abc"
    assert claude.final_message({"last_assistant_message": "VERDICT: approve"}) == "VERDICT: approve"


def test_a_profile_of_an_unknown_kind_is_refused() -> None:
    import pytest

    from orch.agents.profile import AgentProfile
    from orch.settings import Problem

    with pytest.raises(Problem, match="unknown kind 'gpt'"):
        AgentProfile(name="x", kind="gpt", command=["x"])
