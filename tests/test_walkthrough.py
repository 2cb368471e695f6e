"""The README's walkthrough, run as written (the scripted agent in place of Claude Code and Codex): every command in
its first code block, in order, on a real repository, tmux server and daemon."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit.harness import Workspace, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parent.parent / "README.md"
# what cannot do its part here, and says so in one line: attach needs a terminal; retry a task that is blocked or
# ready (the walkthrough's docs task is still at work)
REFUSED = {"attach": "terminal", "retry": "only a blocked, checking or ready task is retried"}


def walkthrough() -> list[list[str]]:
    text = README.read_text()
    block = re.search(r"^## Walkthrough\n\n```sh\n(.*?)^```", text, re.S | re.M)
    assert block, "the README has a Walkthrough section with a sh block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "orch":
            commands.append(words)
    return commands


def test_the_readme_walkthrough_runs_as_written(ws: Workspace) -> None:
    commands = walkthrough()
    assert [c[1] for c in commands][:4] == ["init", "add", "add", "run"], commands
    for words in commands:
        argv = [sys.executable, "-m", "orch", *("scripted" if w == "codex" else w for w in words[1:])]
        if words[1] in ("capture", "send", "exec", "attach"):  # the daemon has started the task's coder
            wait_for(lambda: ws.task_status("docs")["state"] == "coding" and any(
                w["state"] in ("idle", "working") for w in ws.task_status("docs")["workers"]), 60, "docs' coder")
        proc = subprocess.run(argv, cwd=ws.root, env=ws.env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        shown = f"{' '.join(words)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
        if words[1] in REFUSED:
            assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, shown
            assert REFUSED[words[1]] in proc.stderr and "Traceback" not in proc.stderr, shown
        else:
            assert proc.returncode == 0, shown
        if words[1] == "exec":
            assert "initial commit" in proc.stdout or proc.stdout.strip(), shown
    # where it ends: docs closed (its worktree gone), the daemon stopped, the other task still there
    assert not (ws.root / ".worktree" / "docs").exists()
    assert (ws.tasks / "done" / "docs.md").exists()
    assert "daemon: not running" in ws.orch("status").out
    assert "fix-the-flaky-login-test" in ws.orch("status").out
