"""Looking at work: `orch status TASK` (one task in full), `orch status --all` (closed tasks too), `orch status
--watch`, `orch diff TASK` (now, as of a round, and between rounds) and `orch capture` of an agent that ended.
Real tmux, real git, the scripted agent."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit.harness import Workspace, one_line_error, reviewed_task, scripted_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.timeout(300)]

TWO_ROUNDS = reviewed_task(
    "A task reviewed twice.\n\n## Validation\n- `test -f a.txt`\n",
    ['verdict request-changes "blocker: [a.txt:1] say two"'],
    'coder round 2:\n  write a.txt "2"\n  commit "two"\n  report "done: two"\n'
    "reviewer round 2:\n  verdict approve\n")


def ready(ws: Workspace, slug: str, text: str) -> dict:
    ws.task(slug, text)
    return ws.run_until(slug, ("ready", "blocked"), timeout=90)


def test_status_of_one_task_has_everything_about_it(ws: Workspace) -> None:
    assert ready(ws, "twice", TWO_ROUNDS)["state"] == "ready"
    out = ws.orch("status", "twice").out
    assert out.startswith("twice: ready\n"), out
    assert "branch: orch/twice" in out
    assert "\nworkers:\n  twice " in out and ", from " in out  # each worker's state, and what set it
    assert "validation (round 2, " in out and "`test -f a.txt` passed" in out
    assert "round 1 on " in out and "request-changes, 1 finding(s), counted" in out
    assert "round 2 on " in out and "approve, counted" in out
    assert f"dossier: {ws.root / '.orch' / 'dossiers' / 'twice.md'}" in out
    assert "last status lines:" in out and "merge-ready" in out
    data = ws.orch("status", "twice", "--json").json()
    assert data["state"] == "ready" and [r["decision"] for r in data["reviews"]] == ["request-changes", "approve"]
    assert data["validation"][0]["exit_code"] == 0 and data["dossier"].endswith("twice.md")
    one_line_error(ws.orch("status", "nosuch", check=False), "no task 'nosuch'")

    # closed tasks are listed with --all only
    ws.orch("close", "twice")
    assert "twice" not in ws.orch("status").out
    listed = ws.orch("status", "--all").out
    assert "twice" in listed and "closed" in listed
    closed = [t for t in ws.orch("status", "--all", "--json").json()["tasks"] if t["slug"] == "twice"]
    assert closed[0]["state"] == "closed" and closed[0]["last_status"]


def test_diff_now_as_of_a_round_and_between_rounds(ws: Workspace) -> None:
    assert ready(ws, "twice", TWO_ROUNDS)["state"] == "ready"
    now = ws.orch("diff", "twice").out
    assert "+++ b/a.txt" in now and "\n+2" in now and "\x1b[" not in now
    assert "a.txt | 1 +" in ws.orch("diff", "twice", "--stat").out
    first = ws.orch("diff", "twice", "--round", "1").out
    assert "\n+1" in first and "\n+2" not in first
    between = ws.orch("diff", "twice", "--since-round", "1").out
    assert "two" in between  # the commit added in round 2
    one_line_error(ws.orch("diff", "twice", "--round", "7", check=False), "has no round 7", "1, 2")
    ws.task("unstarted", "---\nhold: true\n---\nnot yet\n")
    one_line_error(ws.orch("diff", "unstarted", check=False), "has no branch yet")


def test_status_watch_refreshes_until_ctrl_c(ws: Workspace, tmp_path: Path) -> None:
    ws.task("watched", scripted_task("wait"))
    ws.scan()
    out = tmp_path / "watch.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "orch", "status", "--watch"], cwd=ws.root, env=ws.env,
                                stdout=sink, stderr=subprocess.PIPE)
    wait_for(lambda: out.read_text().count("orch status (Ctrl-C ends)") >= 2, 30, "two refreshes")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    text = out.read_text()
    assert text.count("\x1b[H\x1b[2J") >= 2 and "watched" in text
    assert "Traceback" not in err.decode()


def test_capture_of_an_agent_that_ended_shows_its_last_words(ws: Workspace) -> None:
    ws.task("quits", scripted_task("say my last words", "exit 3"))
    ws.scan()
    wait_for(lambda: "Pane is dead" in ws.orch("capture", "quits").out, 30, "the agent to end")
    lines = ws.orch("capture", "quits", "-n", "4").out.rstrip("\n").split("\n")
    assert lines[-1].startswith("Pane is dead (status 3") and any("my last words" in x for x in lines), lines
    assert all(x.strip() for x in lines), lines  # no blank screen between its words and the end


def test_capture_with_color_keeps_the_screens_colours_and_nothing_else(ws: Workspace) -> None:
    """`orch capture --color`: the screen with its colours (what the dashboards show, and a host sends them for a
    worker there); without it, plain text."""
    ws.task("painted", scripted_task('say "plain \\x1b[31mred\\x1b[0m done"', "wait"))
    ws.scan()
    wait_for(lambda: "plain red done" in ws.orch("capture", "painted").out, 30, "the agent's words")
    plain = ws.orch("capture", "painted").out
    assert "\x1b" not in plain
    coloured = ws.orch("capture", "painted", "--color").out
    assert "\x1b[31mred" in coloured, repr(coloured)
