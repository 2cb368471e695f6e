"""The pass's decisions (``scan.plan()``, a pure function), address resolution and delivery decisions, on the
in-memory multiplexer: milliseconds each, no tmux and no agent."""

from __future__ import annotations

import time

import pytest

from orch.errors import OrchError
from orch.mux.fake import FakeAgent, FakeMux
from orch.store import TaskRow, Worker
from orch.taskfile import TaskDoc
from orch.workflow import deliver, route, scan
from orch.workflow import tasks as T
from tests.kit.fakes import Bench

WS = "ab12cd34ef56"


def task(slug: str, state: str = "queued", depends_on: list[str] | None = None) -> T.Task:
    doc = TaskDoc(person="A task.\n")
    return T.Task(slug, f"/tasks/{slug}.md", doc, {"depends_on": depends_on} if depends_on else {},
                  record=TaskRow(slug, state, {}, {}))


def window(mux: FakeMux, slug: str, worker: str, role: str = "coder") -> str:
    created = mux.new_session(f"task-{slug}-{worker[-1]}", role, "/w", {}, ["fake-agent"])
    mux.tag_window(created.window_id, {"workspace": WS, "task": slug, "role": role, "worker": worker})
    return created.pane_id


def registered(mux: FakeMux, pane_id: str, worker: str, state: str = "working") -> Worker:
    slug, role, _ = worker.split(":")
    pane = mux.pane(pane_id)
    return Worker(id=worker, task=slug, role=role, agent="fake", state=state, state_since=0, created_at=0,
                  pane_id=pane_id, pane_pid=pane.pid, window_id=pane.window_id)


# -- scan.plan ------------------------------------------------------------------------------------------------------


def test_a_queued_task_is_started_once_its_dependencies_are_closed() -> None:
    p = scan.plan({"a": task("a"), "b": task("b", depends_on=["a"]), "c": task("c", depends_on=["z"])}, {"z"}, [], [])
    assert p.spawn == ["a", "c"] and p.waiting == [("b", ["a"])]
    assert not (p.lost or p.exited or p.adopt or p.orphans or p.task_lost or p.interrupted)


def test_workers_whose_window_is_gone_reused_or_dead_and_the_tasks_they_leave() -> None:
    mux = FakeMux()
    gone = registered(mux, window(mux, "a", "a:coder:1"), "a:coder:1")
    mux.kill_window(gone.window_id)
    reused = registered(mux, window(mux, "b", "b:coder:2"), "b:coder:2")
    mux.respawn_pane(reused.pane_id, "/w", {}, ["sh"])
    dead = registered(mux, window(mux, "c", "c:coder:3"), "c:coder:3")
    mux.pane(dead.pane_id).exit(3)
    reaping = registered(mux, window(mux, "d", "d:coder:4"), "d:coder:4")
    mux.pane(reaping.pane_id).dead = True  # dead, status not known yet: looked at again next pass
    tasks = {s: task(s, "coding") for s in "abcd"}
    p = scan.plan(tasks, set(), [gone, reused, dead, reaping], mux.list_panes())
    assert [(w.id, why) for w, why in p.lost] == [
        ("a:coder:1", scan.GONE),
        ("b:coder:2", f"its pane now runs another process (pid {mux.pane(reused.pane_id).pid}, was {reused.pane_pid})")]
    assert [(w.id, code) for w, code in p.exited] == [("c:coder:3", 3)]
    assert sorted(p.task_lost) == [("a", "coder"), ("b", "coder"), ("c", "coder")]  # not d: its coder may live
    assert p.spawn == []


def test_tagged_windows_not_in_the_registry_are_adopted_or_reported_never_killed() -> None:
    mux = FakeMux()
    window(mux, "a", "a:coder:1")  # its task is open: adopted
    window(mux, "gone", "gone:coder:2")  # no task file
    window(mux, "old", "old:coder:3")  # its task is closed
    dead = window(mux, "a", "a:reviewer:4", role="reviewer")
    mux.pane(dead).exit(0)
    window(mux, "a", "a:reviewer:5", role="reviewer")  # tagged like orch's, without orch's proof
    panes = mux.list_panes()
    proven = {pane.window_id for pane in panes if pane.worker != "a:reviewer:5"}
    p = scan.plan({"a": task("a", "coding")}, {"old"}, [], panes, proven)
    assert [pane.worker for pane in p.adopt] == ["a:coder:1"]
    assert {(o.worker, o.reason) for o in p.orphans} == {
        ("gone:coder:2", "no task file"), ("old:coder:3", "its task is closed"), ("a:reviewer:4", "dead pane"),
        ("a:reviewer:5", scan.NOT_PROVEN)}
    assert p.spawn == [] and p.task_lost == []


def test_a_start_interrupted_before_the_task_file_said_so_is_done_again() -> None:
    mux = FakeMux()
    started = registered(mux, window(mux, "a", "a:coder:1"), "a:coder:1", state="starting")
    p = scan.plan({"a": task("a")}, set(), [started], mux.list_panes())
    assert [w.id for w in p.interrupted] == ["a:coder:1"] and p.spawn == ["a"]


def test_shell_panes_beside_an_agent_are_not_workers() -> None:
    mux = FakeMux()
    agent = window(mux, "a", "a:coder:1")
    shell = mux.split_window(mux.pane(agent).window_id, "/w", {}, ["sh"])
    mux.tag_pane(shell.pane_id, {"pane_role": "shell"})
    assert {w: p.pane_id for w, p in scan.agent_panes(mux.list_panes()).items()} == {"a:coder:1": agent}


# -- routing --------------------------------------------------------------------------------------------------------


def test_addresses_resolve_to_the_worker_pane_its_role_or_a_pane_of_its_window(bench: Bench) -> None:
    bench.put("t", "coding")
    coder = bench.start("t")
    reviewer = bench.start("t", role="reviewer")
    target = route.resolve(bench.ctx, "t")
    assert (target.pane.pane_id, target.worker_id, str(target.address)) == (coder.pane_id, coder.id, "t")
    assert route.resolve(bench.ctx, "t:reviewer").pane.pane_id == reviewer.pane_id
    shell = bench.mux.split_window(coder.window_id, "/w", {}, ["sh"])
    bench.mux.tag_pane(shell.pane_id, {"pane_role": "shell"})
    assert route.resolve(bench.ctx, "t:coder.1").pane.pane_id == shell.pane_id
    with pytest.raises(OrchError, match="has 2 pane"):
        route.resolve(bench.ctx, "t:coder.5")
    bench.mux.pane(coder.pane_id).exit(1)
    with pytest.raises(OrchError, match="has exited .status 1.: `orch capture t`"):
        route.resolve(bench.ctx, "t")
    assert route.resolve(bench.ctx, "t", allow_dead=True).pane.pane_id == coder.pane_id
    for bad, why in (("T", "must start with"), ("t:boss", "unknown role"), ("t:coder.x", "must be a number"),
                     ("nosuch", "no task 'nosuch'")):
        with pytest.raises(OrchError, match=why):
            route.resolve(bench.ctx, bad)


# -- delivery ---------------------------------------------------------------------------------------------------------


def test_typed_text_is_pasted_then_entered_and_confirmed(bench: Bench) -> None:
    bench.put("t", "coding")
    coder = bench.start("t")
    before = len(bench.mux.calls)
    assert deliver.type_confirmed(bench.ctx, coder.id, coder.pane_id, "line one\nline two", bench.ctx.cfg.profile(
        "fake")) is None
    typed = [c for c in bench.mux.calls[before:] if c[0] in ("paste-buffer", "send-keys")]
    assert typed == [("paste-buffer", coder.pane_id), ("send-keys", coder.pane_id, "Enter")]
    assert bench.mux.agent(coder.pane_id).received[-1] == "line one\nline two"


def test_text_not_taken_gets_enter_once_more_then_is_reported_with_the_screen(bench: Bench) -> None:
    bench.put("t", "coding")
    coder = bench.start("t", agent="deaf")
    assert coder.state == "waiting" and coder.note.startswith("delivery failed")  # its first prompt already failed
    before = len(bench.mux.calls)
    failed = deliver.type_confirmed(bench.ctx, coder.id, coder.pane_id, "hello", bench.ctx.cfg.profile("deaf"))
    assert failed == "> "  # the screen excerpt
    enters = [c for c in bench.mux.calls[before:] if c[0] == "send-keys"]
    assert enters == [("send-keys", coder.pane_id, "Enter")] * 2
    assert any("delivery failed to the coder" in s for s in bench.statuses("t"))


def test_orchs_own_text_waits_while_a_person_is_attached_then_goes(bench: Bench) -> None:
    bench.put("t", "coding")
    coder = bench.start("t")
    pane = next(p for p in bench.ctx.panes() if p.worker == coder.id)
    bench.mux.attached.append(("/dev/pts/9", coder.window_id))
    assert deliver.send_or_queue(bench.ctx, pane, "round 2: fix it", "round 2 fix request") == "queued"
    assert [q.text for q in bench.ctx.store.queued("t")] == ["round 2: fix it"]
    assert "round 2: fix it" not in bench.mux.agent(coder.pane_id).received
    assert deliver.flush_outbox(bench.ctx, bench.ctx.panes()) == 0  # still attached
    bench.mux.attached.clear()
    assert deliver.flush_outbox(bench.ctx, bench.ctx.panes()) == 1
    assert bench.mux.agent(coder.pane_id).received[-1] == "round 2: fix it"
    assert bench.ctx.store.queued("t") == []


def test_a_first_prompt_waits_for_the_agent_to_be_ready(bench: Bench) -> None:
    class Loading(FakeAgent):
        prompt = "loading..."

    bench.mux.programs["slow-agent"] = Loading
    bench.configure(tables='[agents.slow]\ncommand = ["slow-agent"]\nready_pattern = "^> $"\nready_timeout = 0.3\n'
                           'enter_delay = 0\nscreen_working = "^working"')
    bench.put("t", "coding")
    started = time.monotonic()
    coder = bench.start("t", agent="slow")
    assert time.monotonic() - started >= 0.3  # it waited for the ready pattern, then gave up
    assert bench.mux.agent(coder.pane_id).received == []
    assert coder.state == "waiting" and "did not show it was ready" in coder.note
