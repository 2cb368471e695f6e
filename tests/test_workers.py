"""Real tmux + real git: tasks become workers in their own windows, and routing reaches the right one."""

from __future__ import annotations

import json
import os
import sys

import pytest

from orch.mux.tmux import Tmux
from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = pytest.mark.tmux


def _received(ws: Workspace, slug: str) -> list[str]:
    """Every message the scripted agent of ``slug`` received, exactly (it records them)."""
    logs = sorted((ws.root / ".orch" / "logs").glob(f"scripted-{slug}-coder-*.jsonl"))
    out: list[str] = []
    for path in logs:
        out += [json.loads(line)["text"] for line in path.read_text().splitlines()]
    return out


def test_three_tasks_three_sessions_and_routing(ws: Workspace) -> None:
    for slug in ("alpha", "beta", "gamma"):
        ws.task(slug, scripted_task(f"say I am {slug}", "wait", "wait"))
    out = ws.scan().out
    assert "started: alpha, beta, gamma" in out

    status = ws.status()
    workers = {t["slug"]: t["workers"] for t in status["tasks"]}
    sessions = {w[0]["session_id"] for w in workers.values()}
    windows = {w[0]["window_id"] for w in workers.values()}
    assert len(sessions) == 3 and len(windows) == 3
    for slug, ws_workers in workers.items():
        (w,) = ws_workers
        assert w["session"] == f"task-{slug}" and w["role"] == "coder" and w["state"] in ("working", "starting", "idle")
        tags = ws.tmux("show-options", "-w", "-t", w["window_id"]).splitlines()
        assert f"@orch_task {slug}" in tags and "@orch_role coder" in tags
        assert any(t.startswith(f"@orch_worker {slug}:coder:") for t in tags)
        assert ws.tmux("display-message", "-p", "-t", w["window_id"], "#{window_name}").strip() == "coder"

    for slug in ("alpha", "beta", "gamma"):
        wait_for(lambda s=slug: f"I am {s}" in ws.screen(s), what=f"{slug} to start its script")

    # send reaches the right agent, by address only
    ws.orch("send", "beta", "hello beta")
    wait_for(lambda: "hello beta" in _received(ws, "beta"), what="beta to receive the text")
    assert "hello beta" not in _received(ws, "alpha") and "hello beta" not in _received(ws, "gamma")

    # capture shows that worker's screen only
    assert "I am gamma" in ws.screen("gamma") and "I am alpha" not in ws.screen("gamma")

    # exec runs in the worker's own worktree, in a shell pane beside the agent, and returns the exit code
    r = ws.orch("exec", "alpha", "--", "pwd")
    assert r.out.strip().endswith("/.worktree/alpha")
    r = ws.orch("exec", "gamma", "--", "sh", "-c", "echo out-$0; echo err-$0 >&2; exit 7", "x", check=False)
    assert r.code == 7 and r.out == "out-x\n" and r.err == "err-x\n", r  # its standard error on ours
    panes = ws.tmux("list-panes", "-t", workers["gamma"][0]["window_id"], "-F", "#{pane_id} #{@orch_pane}").split("\n")
    assert len([p for p in panes if p.strip()]) == 2 and any(p.endswith(" shell") for p in panes)
    # the agent never saw the command
    assert not any("exit 7" in m for m in _received(ws, "gamma"))
    # arguments ending in ';' are arguments, not the end of a tmux command (which would run the next one)
    r = ws.orch("exec", "beta", "--", "sh", "-c", 'echo "[$0][$1]"', "x;", "kill-server;")
    assert r.code == 0 and "[x;][kill-server;]" in r.out, r
    assert len(ws.tmux("list-sessions").splitlines()) == 3


def test_send_multiline_and_large_text_arrives_intact(ws: Workspace) -> None:
    ws.task("big", scripted_task("wait", "wait", "wait"))
    ws.scan()
    wait_for(lambda: len(_received(ws, "big")) >= 1, what="the prompt to arrive")
    multi = "line one\nline two with $HOME and `ticks` and 'quotes'\n\ttabbed\nEnter C-c -t\n\u00e9\u4e2d\U0001F600 end"
    r = ws.orch("send", "big", input=multi)
    assert r.out.startswith(f"sent {len(multi)} characters to big (pane %"), r.out
    large = "".join(f"{i:05d} the quick brown fox; $(rm -rf /) `x` \"q\"\n" for i in range(450))
    assert len(large.encode()) > 20_000
    ws.orch("send", "big", input=large)
    got = wait_for(lambda: _received(ws, "big")[1:] if len(_received(ws, "big")) >= 3 else None, what="both texts")
    assert got[0] == multi
    assert got[1] == large


def test_exec_timeout_and_missing_program(ws: Workspace) -> None:
    ws.task("t", scripted_task("wait"))
    ws.scan()
    r = ws.orch("exec", "t", "--timeout", "0.5", "--", "sleep", "30", check=False)
    assert r.code == 124 and "timed out" in r.err
    r = ws.orch("exec", "t", "--", "no-such-program-xyz", check=False)
    assert r.code == 127 and "cannot run 'no-such-program-xyz'" in r.err
    # the shell pane is reused, not multiplied
    win = ws.task_status("t")["workers"][0]["window_id"]
    assert len(ws.tmux("list-panes", "-t", win).splitlines()) == 2


def test_unknown_worker_and_bad_addresses_fail_in_one_line(ws: Workspace) -> None:
    ws.task("real", scripted_task("wait"))
    for args, needle in [
        (("send", "nosuch", "hi"), "no task 'nosuch'"),
        (("capture", "real"), "has no coder window"),
        (("send", "real:boss", "x"), "unknown role"),
        (("exec", "@1", "--", "ls"), "must start with"),
        (("capture", "--pane", "%999"), "no pane %999"),
    ]:
        r = ws.orch(*args, check=False)
        assert r.code != 0, args
        assert needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert "Traceback" not in r.err


def test_dead_pane_is_reported_and_scan_marks_exit(ws: Workspace) -> None:
    ws.task("quits", scripted_task("exit 3"))
    ws.scan()
    server = Tmux(ws.socket)
    # orch's own listing: it nudges a tmux that missed the agent's exit (see Tmux.list_panes)
    wait_for(lambda: [(p.dead, p.dead_status) for p in server.list_panes()] == [(True, 3)],
             what="the agent to exit with status 3")
    r = ws.orch("send", "quits", "hello", check=False)
    assert r.code == 1 and "has exited (status 3)" in r.err and "orch start quits" in r.err
    # capture still works on the exited agent's pane (tmux keeps it, with its exit status)
    assert "Pane is dead (status 3" in ws.orch("capture", "quits").out
    out = ws.scan().out
    assert "exited: quits" in out
    t = ws.task_status("quits")
    assert t["state"] == "lost" and t["workers"][0]["state"] == "exited" and t["workers"][0]["exit_status"] == 3
    text = (ws.tasks / "quits.md").read_text()
    assert "coder exited with status 3" in text
    # a second scan changes nothing
    before = (ws.tasks / "quits.md").read_bytes()
    ws.scan()
    assert (ws.tasks / "quits.md").read_bytes() == before


def test_scan_after_window_killed_by_hand(ws: Workspace) -> None:
    ws.task("victim", scripted_task("wait"))
    ws.task("bystander", scripted_task("wait"))
    ws.scan()
    victim = ws.task_status("victim")["workers"][0]
    ws.tmux("kill-window", "-t", victim["window_id"])
    out = ws.scan().out
    assert "lost: victim" in out and "bystander" not in out.split("lost:")[1]
    t = ws.task_status("victim")
    assert t["state"] == "lost" and t["workers"] == []
    assert "coder lost: its window is gone" in (ws.tasks / "victim.md").read_text()
    assert ws.task_status("bystander")["workers"][0]["state"] != "lost"
    # explicit restart
    out = ws.orch("new-task", "victim").out
    assert "started victim" in out
    assert ws.task_status("victim")["workers"][0]["state"] in ("working", "starting", "idle")
    r = ws.orch("new-task", "victim", check=False)
    assert r.code == 1 and "already has a coder" in r.err


def test_orphan_windows_are_reported_not_killed(ws: Workspace) -> None:
    ws.task("gone", scripted_task("wait"))
    ws.scan()
    win = ws.task_status("gone")["workers"][0]["window_id"]
    (ws.tasks / "gone.md").unlink()
    st = ws.status()
    assert [o["window_id"] for o in st["orphans"]] == [win]
    assert st["orphans"][0]["reason"] == "no task file"
    ws.scan()
    assert win in ws.tmux("list-windows", "-a", "-F", "#{window_id}").split()


def test_dependencies_wait_until_closed(ws: Workspace) -> None:
    ws.task("first", scripted_task("wait"))
    ws.task("second", "---\ndepends_on: [first]\n---\n" + scripted_task("wait"))
    out = ws.scan().out
    assert "started: first" in out and "waiting: second (for first)" in out
    assert ws.task_status("second")["state"] == "queued"
    assert "waiting for: first" in (ws.tasks / "second.md").read_text()
    ws.orch("close", "first")
    out = ws.scan().out
    assert "started: second" in out



def test_a_missing_agent_program_is_one_line_a_failed_exit_and_one_status_line(ws: Workspace) -> None:
    """Before anything is made for a worker, its program must be there: one line naming it and how to install it,
    a non-zero exit, one status line however many passes try, and no worktree, branch or window."""
    ws.config('[agents.ghost]\ncommand = ["no-such-agent-program", "--flag"]')
    ws.task("haunted", "---\nagent: ghost\n---\nA task for an agent that is not installed.\n")
    r = ws.orch("new-task", "haunted", check=False)
    one_line_error(r, "agent 'ghost' runs 'no-such-agent-program', which is not on PATH",
                   "[agents.ghost]")
    for _ in range(5):
        r = ws.orch("scan", check=False)
        assert r.code == 1 and "no-such-agent-program" in r.err and len(r.err.strip().splitlines()) == 1, r
    lines = [x for x in ws.statuses("haunted") if "no-such-agent-program" in x]
    assert len(lines) == 1 and "could not start the coder: agent 'ghost' runs" in lines[0], ws.statuses("haunted")
    assert ws.task_status("haunted")["state"] == "queued"
    assert not (ws.root / ".worktree" / "haunted").exists()
    assert ws.tmux("list-windows", "-a", check=False).strip() == ""
    # a built-in profile says how to install its program
    ws.task("clauded", "---\nagent: claude\n---\nx\n")
    r = ws.orch("new-task", "clauded", check=False, env={"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"})
    one_line_error(r, "runs 'claude', which is not on PATH; install it (npm install -g @anthropic-ai/claude-code)")


def test_an_unknown_default_agent_is_refused_when_the_config_loads(ws: Workspace) -> None:
    ws.config_file.write_text(ws.config_file.read_text().replace('default_agent = "scripted"', 'default_agent = "nobody"'))
    r = ws.orch("status", check=False)
    one_line_error(r, "default_agent = 'nobody' is not an agent profile", "scripted")
