"""Worker state (hooks, process, screen), confirmed delivery, the person at the keyboard, idle reminders.

Driven with the scripted agent, which reports its turns through `orch hook` like an agent with hooks does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orch.agents.profile import AgentProfile
from orch.store import Store, Worker
from orch.workflow.watch import REMINDER, classify, step
from tests.kit.harness import Workspace, remove_socket, scripted_task, wait_for

pytestmark = pytest.mark.tmux


def worker(ws: Workspace, slug: str, role: str = "coder") -> dict:
    for w in ws.task_status(slug)["workers"]:
        if w["role"] == role:
            return w
    raise AssertionError(f"no {role} for {slug}")


def received(ws: Workspace, slug: str) -> list[str]:
    out: list[str] = []
    for path in sorted((ws.root / ".orch" / "logs").glob(f"scripted-{slug}-coder-*.jsonl")):
        out += [json.loads(line)["text"] for line in path.read_text().splitlines()]
    return out


def config(ws: Workspace, text: str) -> None:
    """Add to the workspace config: top-level keys at the top, tables at the end."""
    cfg = ws.root / ".orch" / "config.toml"
    if text.lstrip().startswith("["):
        cfg.write_text(cfg.read_text() + "\n" + text + "\n")
    else:
        cfg.write_text(text + "\n" + cfg.read_text())


# -- orch hook: the hot path that must never fail or block the agent --------------------------------------------


def test_hook_always_exits_0_and_logs_problems(ws: Workspace) -> None:
    r = ws.orch("hook", "Stop", input='{"session_id": "x"}')  # no worker token: a problem, logged, exit 0
    assert r.code == 0 and r.err == ""
    log = (ws.root / ".orch" / "logs" / "hooks.log").read_text()
    assert "outside an orch worker" in log
    outside = ws.orch("hook", "Stop", cwd=ws.root.parent, input="not json")
    assert outside.code == 0


def test_hook_does_not_wait_for_a_stdin_that_never_closes(ws: Workspace) -> None:
    env = {**ws.env, "ORCH_TASK": "t", "ORCH_WORKER_TOKEN": "x", "ORCH_WORKSPACE": str(ws.root)}
    proc = subprocess.Popen([sys.executable, "-m", "orch", "hook", "Stop"], stdin=subprocess.PIPE, env=env)
    try:
        assert proc.wait(timeout=10) == 0  # it gives up on stdin after a short wait
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        if proc.poll() is None:
            proc.kill()


def test_hooks_drive_worker_state_and_record_the_session(ws: Workspace) -> None:
    ws.task("h", scripted_task("say working on it", "wait"))
    ws.scan()
    # the agent ends its turn at `wait`: its stop hook makes it idle
    wait_for(lambda: worker(ws, "h")["state"] == "idle", what="the coder to be idle")
    w = worker(ws, "h")
    assert w["agent_session"].startswith("scripted-")
    events = [e for e in ws.orch("log", "h").out.splitlines() if " state " in e]
    assert any("-> working (hook prompt)" in e for e in events) and any("-> idle (hook stop)" in e for e in events)
    # a sub-agent's stop does not mark the parent idle; a prompt hook marks it working
    store = Store(str(ws.root / ".orch" / "orch.db"))
    token_env = _worker_env(ws, w["window_id"])
    ws.orch("hook", "UserPromptSubmit", input="{}", env=token_env)
    wait_for(lambda: worker(ws, "h")["state"] == "working", what="working after a prompt hook")
    ws.orch("hook", "SubagentStop", input="{}", env=token_env)
    ws.scan()
    assert worker(ws, "h")["state"] == "working"
    # the scripted agent's permission prompt (each agent's own event names are unit-tested in test_agents_launch.py)
    ws.orch("hook", "wait", input="{}", env=token_env)
    wait_for(lambda: worker(ws, "h")["state"] == "waiting", what="waiting after a permission hook")
    assert store.worker(w["id"]).hook_at is not None  # type: ignore[union-attr]


def _worker_env(ws: Workspace, window_id: str) -> dict[str, str]:
    """The environment orch gave a worker (read from its pane's process)."""
    pid = ws.tmux("display-message", "-p", "-t", window_id, "#{pane_pid}").strip()
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in env.items() if k.startswith("ORCH_")}


def test_status_shows_state_and_how_long_it_held(ws: Workspace) -> None:
    ws.task("s", scripted_task("wait"))
    ws.scan()
    wait_for(lambda: worker(ws, "s")["state"] == "idle", what="idle")
    first = worker(ws, "s")["state_for_s"]
    wait_for(lambda: worker(ws, "s")["state_for_s"] >= first + 1, what="the held-for figure to grow with the clock")
    assert "idle" in ws.orch("status").out


# -- screen readings: pure ----------------------------------------------------------------------------------------


PROFILE = AgentProfile(command=["x"], screen_idle=r"^> *\Z", screen_working=r"^working", screen_waiting=r"Allow\?")


def _w(**kw: object) -> Worker:
    base = dict(id="w", task="t", role="coder", agent="a", state="working", state_since=0.0, created_at=0.0)
    return Worker(**{**base, **kw})  # type: ignore[arg-type]


def test_classify_reads_the_last_lines() -> None:
    assert classify("old\n> \n", PROFILE) == "idle"
    assert classify("working on it\n", PROFILE) == "working"
    assert classify("working\nAllow? [y/n]\n", PROFILE) == "waiting"
    assert classify("something else\n", PROFILE) == ""


def test_hysteresis_needs_two_equal_readings() -> None:
    w = _w(state="working")
    r1 = step(w, "idle", uses_hooks=False)
    assert r1.state == "working" and not r1.changed and (r1.screen_state, r1.screen_count) == ("idle", 1)
    r2 = step(_w(state="working", screen_state="idle", screen_count=1), "idle", uses_hooks=False)
    assert r2.state == "idle" and r2.changed
    # a flicker resets the count: no change
    r3 = step(_w(state="working", screen_state="idle", screen_count=1), "working", uses_hooks=False)
    assert r3.state == "working" and r3.screen_count == 1 and not r3.changed
    # once hooks have spoken, the screen only adds `waiting`
    hooked = _w(state="working", screen_state="idle", screen_count=1, hook_at=1.0)
    assert not step(hooked, "idle", uses_hooks=True).changed
    assert step(_w(state="working", screen_state="waiting", screen_count=1, hook_at=1.0), "waiting", True).changed


def test_screen_state_for_an_agent_without_hooks(ws: Workspace) -> None:
    """A generic agent (here `cat`): the state comes from the screen, after two equal readings."""
    config(ws, '[agents.cat]\ncommand = ["sh", "-c", "printf \'ready> \'; exec cat"]\nprompt = "file"\n'
               'screen_idle = "ready> *\\\\Z"\nscreen_working = "^busy"\n')
    ws.task("c", "---\nagent: cat\n---\nA task for cat.\n")
    ws.scan()
    assert worker(ws, "c")["state"] in ("working", "idle")  # prompt = file: it started working
    wait_for(lambda: "ready>" in ws.screen("c"), what="the prompt on screen")
    store = Store(str(ws.root / ".orch" / "orch.db"))
    seen = []
    for _ in range(3):
        ws.scan()
        row = store.worker(worker(ws, "c")["id"])
        assert row is not None
        seen.append((row.state, row.screen_state, row.screen_count))
        assert row.state == "working" or row.screen_count >= 2  # never idle on a single reading
    assert seen[-1][0] == "idle", seen


# -- delivery ---------------------------------------------------------------------------------------------------


def test_unconfirmed_delivery_is_reported_with_the_screen(ws: Workspace) -> None:
    config(ws, '[agents.deaf]\ncommand = ["sh", "-c", "echo deaf agent ready; exec sleep 600"]\nprompt = "paste"\n'
               'ready_pattern = "ready"\nscreen_working = "^never matches$"\nconfirm_timeout = 0.5\n')
    ws.task("d", "---\nagent: deaf\n---\nNobody listens.\n")
    ws.scan()
    t = ws.task_status("d")
    assert any(s.startswith("problem: delivery failed to the coder") for s in t["summary"]), t["summary"]
    text = (ws.tasks / "d.md").read_text()
    assert "delivery failed to the coder: the agent did not take the prompt (Enter pressed twice); screen:" in text
    assert "Commit everything before reporting done" in text.split("screen:", 1)[1]  # the excerpt: its last lines
    assert worker(ws, "d")["state"] == "waiting"


def test_send_is_confirmed_by_the_agents_hook(ws: Workspace) -> None:
    ws.task("ok", scripted_task("wait", "wait"))
    ws.scan()
    wait_for(lambda: worker(ws, "ok")["state"] == "idle", what="idle")
    r = ws.orch("send", "ok", "are you there?")
    assert r.code == 0
    assert "are you there?" in received(ws, "ok")


# -- a person at the keyboard ---------------------------------------------------------------------------------------


def _attach(ws: Workspace, window_id: str) -> str:
    """A real tmux client attached to ``window_id``, running inside another private tmux server."""
    outer = ws.socket + "-outer"
    argv = ["tmux", "-L", ws.socket, "attach-session", "-t", window_id]
    subprocess.run(["tmux", "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40",
                    "env", "-u", "TMUX", *argv], check=True, env={**os.environ, "TMUX": ""})
    wait_for(lambda: window_id in ws.tmux("list-clients", "-F", "#{window_id}"), what="the client to attach")
    return outer


def test_text_from_orch_waits_while_a_person_is_attached(ws: Workspace) -> None:
    config(ws, "idle_reminder_after = 3")
    ws.task("busy", scripted_task("say nothing to report"))
    ws.scan()
    outer = _attach(ws, worker(ws, "busy")["window_id"])
    try:
        def queued() -> list:  # once idle long enough, orch would remind the coder, but a person is there
            ws.scan()
            return ws.task_status("busy")["queued_for_workers"]

        assert [q["why"] for q in wait_for(queued, what="the reminder to be queued")] == ["reminder to report"]
        assert "queued for busy:coder" in ws.orch("status").out
        assert REMINDER not in received(ws, "busy")
        # the user's own `orch send` goes through at once
        ws.orch("send", "busy", "from the user")
        assert "from the user" in received(ws, "busy")
    finally:
        remove_socket(outer)
    wait_for(lambda: not ws.tmux("list-clients", check=False).strip(), what="the client to leave")
    ws.scan()
    wait_for(lambda: REMINDER in received(ws, "busy"), what="the agent to record the reminder it took")
    assert ws.task_status("busy")["queued_for_workers"] == []
    assert "queued reminder to report delivered to the coder" in (ws.tasks / "busy.md").read_text()


# -- a turn that ended without a report, a permission prompt ----------------------------------------------------------


def test_idle_without_report_gets_one_reminder_then_is_shown(ws: Workspace) -> None:
    config(ws, "idle_reminder_after = 0")
    ws.task("quiet", scripted_task("say I did things but will not report"))
    ws.scan()
    wait_for(lambda: worker(ws, "quiet")["state"] == "idle", what="idle")
    ws.scan()
    wait_for(lambda: REMINDER in received(ws, "quiet"), what="the reminder")
    assert "coder went idle without a report: reminder typed" in (ws.tasks / "quiet.md").read_text()
    # it takes the reminder (working), ends its turn again without reporting: shown, not reminded twice

    def shown() -> bool:
        ws.scan()
        return "problem: idle, no report" in ws.task_status("quiet")["summary"]

    wait_for(shown, what="idle, no report")
    assert received(ws, "quiet").count(REMINDER) == 1


def test_reminder_waits_for_the_configured_idle_time(ws: Workspace) -> None:
    config(ws, "idle_reminder_after = 3600")
    ws.task("patient", scripted_task("say done-ish"))
    ws.scan()
    wait_for(lambda: worker(ws, "patient")["state"] == "idle", what="idle")
    ws.scan()
    assert REMINDER not in received(ws, "patient")


def test_permission_prompt_makes_the_task_need_input(ws: Workspace) -> None:
    ws.task("perm", scripted_task('permission "run rm -rf build?"', "say carrying on", 'report "done: ok"'))
    ws.scan()
    wait_for(lambda: worker(ws, "perm")["state"] == "waiting", what="waiting")

    def needs_input() -> dict | None:
        ws.scan()
        t = ws.task_status("perm")
        return t if t["state"] == "needs-input" else None

    t = wait_for(needs_input, what="needs-input")
    question = [s for s in t["summary"] if s.startswith("question:")][0]
    assert "(waiting for permission) run rm -rf build?" in question
    ws.orch("reply", "perm", "yes")
    wait_for(lambda: ws.task_status("perm")["state"] in ("validating", "reviewing", "fixing"), what="the loop to go on")


def test_a_message_through_the_workers_orch_is_applied_without_a_scan(ws: Workspace) -> None:
    """`orch -` through .orch/bin/orch (the lean `python -S` launcher on every worker's PATH) applies its
    message itself: its detached applier must load site-packages before the workflow."""
    ws.task("self", "A task.\n")
    launcher = ws.root / ".orch" / "bin" / "orch"
    subprocess.run([str(launcher), "-", "task-self: progress: halfway there"], env=ws.env, cwd=ws.root, check=True)
    wait_for(lambda: "user: progress: halfway there" in (ws.tasks / "self.md").read_text(),
             what="the message in the task file without a scan")
    assert not (ws.root / ".orch" / "logs" / "applier.log").exists()
