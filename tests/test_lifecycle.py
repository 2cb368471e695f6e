"""The lifecycle table, and every transition in it made by the workflow code that makes it, on the in-memory
multiplexer (real task files, git and database; no tmux, no agent). Each illegal move is shown refused."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orch import git
from orch import lifecycle as L
from orch.errors import OrchError
from orch.forge import Check, Pull
from orch.lifecycle import Actor, TaskEvent, TaskState, Transition, WorkerEvent, WorkerState
from orch.store import Worker
from orch.workflow import close, deliver, recover, restart, route, scan, watch, workers
from orch.workflow import tasks as T
from tests.kit.fakes import Bench, with_forge

S, W, E, V = TaskState, WorkerState, TaskEvent, WorkerEvent
PASS, WORKER, PERSON = Actor.PASS, Actor.WORKER, Actor.PERSON
README = Path(__file__).resolve().parent.parent / "README.md"


def cases(rows: tuple[Transition, ...]) -> list[tuple[Transition, Actor]]:
    return [(row, actor) for row in rows for actor in Actor if actor in row.actors]


def case_id(case: tuple[Transition, Actor]) -> str:
    row, actor = case
    return f"{row.frm}->{row.to}:{row.event.name.lower()}:{actor}"


# -- the table itself ----------------------------------------------------------------------------------------------


def test_the_readme_holds_the_lifecycle_tables() -> None:
    """The README's lifecycle section is the table (`python scripts/readme-lifecycle.py` writes it there)."""
    assert L.markdown() in README.read_text(encoding="utf-8"), "run: python scripts/readme-lifecycle.py"


def test_every_state_but_done_has_a_way_on_and_every_event_a_row() -> None:
    assert set(L.WAYS_ON) | L.FINAL == set(TaskState)
    for state in L.WAYS_ON:  # a way on is a row out of the state (done is reached from anywhere by close)
        wanted = S.DONE if state in L.CLOSE_ONLY else None  # (merged: final but open, closed by the person)
        assert any(t.frm == state and (t.to == wanted if wanted else t.to != S.DONE)
                   for t in L.TASK_TRANSITIONS), state
    assert {t.event for t in L.TASK_TRANSITIONS} == set(TaskEvent)
    assert {t.event for t in L.WORKER_TRANSITIONS} == set(WorkerEvent)
    assert not any(t.frm == S.DONE for t in L.TASK_TRANSITIONS)
    assert not any(t.frm == t.to for t in (*L.TASK_TRANSITIONS, *L.WORKER_TRANSITIONS))


def test_check_allows_exactly_the_rows_of_the_table() -> None:
    rows = {(t.frm, t.to, t.event, a) for t in L.TASK_TRANSITIONS for a in t.actors}
    for frm, to, event, actor in itertools.product(TaskState, TaskState, TaskEvent, Actor):
        expected = frm == to or (frm, to, event, actor) in rows
        assert L.allowed_task(frm, to, event, actor) == expected, (frm, to, event, actor)
    rows = {(t.frm, t.to, t.event, a) for t in L.WORKER_TRANSITIONS for a in t.actors}
    for frm, to, event, actor in itertools.product(WorkerState, WorkerState, WorkerEvent, Actor):
        expected = frm == to or (frm, to, event, actor) in rows
        assert L.allowed_worker(frm, to, event, actor) == expected, (frm, to, event, actor)
    with pytest.raises(L.Refused, match='^refused: ready -> coding on "done:" from a worker$'):
        L.check_task("ready", S.CODING, E.DONE, WORKER)
    assert not L.allowed_task("no-such-state", S.CODING, E.START, PASS)


ILLEGAL = [(frm, event) for frm in TaskState for event in TaskEvent
           if not any(t.frm == frm and t.event == event for t in L.TASK_TRANSITIONS)]


def test_every_illegal_move_is_refused_logged_and_changes_nothing(bench: Bench) -> None:
    """Through tasks.move, for every state and every event that does not move a task out of it: the file is left
    as it is, the refusal is an event, and a person's command gets one line saying what moves the task on."""
    for n, (frm, event) in enumerate(ILLEGAL):
        slug = f"t{n}"
        path = bench.put(slug, frm)
        before = path.read_bytes()
        to = S.CODING if frm != S.CODING else S.READY
        for actor in Actor:
            assert not T.move(bench.ctx, slug, to, event, actor, status="should not be written"), (frm, event)
        assert path.read_bytes() == before
        with pytest.raises(OrchError) as err:
            T.move(bench.ctx, slug, to, event, PERSON, refuse=True)
        assert str(err.value).startswith(f"refused: task {slug}: {frm} -> {to} on {event.value} from the person: ")
        assert L.way_on(frm, slug) in str(err.value)
    refusals = bench.events("refused")
    assert len(refusals) == len(ILLEGAL) * (len(Actor) + 1)


def test_a_move_is_checked_against_the_state_in_the_file_at_the_time_of_writing(bench: Bench) -> None:
    bench.put("x", S.CODING)
    assert T.move(bench.ctx, "x", S.VALIDATING, E.DONE, WORKER, status="done: it")
    assert T.move(bench.ctx, "x", S.VALIDATING, E.DONE, WORKER, status="again")  # staying is no move: written
    assert bench.statuses("x")[-2:] == ["done: it", "again"]
    assert bench.events("state", "x") == ["coding -> validating on \"done:\" from a worker"]
    bench.put("x", S.READY)  # the file changed under orch: the same move is now refused
    assert not T.move(bench.ctx, "x", S.VALIDATING, E.DONE, WORKER)
    assert bench.state("x") == "ready"
    with pytest.raises(TypeError):
        T.record(bench.ctx, "x", state="coding")  # the state never changes outside move()


# -- every task transition, made by what makes it ------------------------------------------------------------------


def reviewing(b: Bench, slug: str) -> Worker:
    return b.at_review(slug)


def round_fields(to: str) -> dict[str, str]:
    return {"round": "2"} if to == S.FIXING else {}


def drive_start(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm) if frm != S.QUEUED else b.put("t")
    if actor == PASS:
        b.scan()
    else:
        restart.new_task(b.ctx, "t")


def drive_report(text: str) -> Callable[[Bench, str, str, Actor], None]:
    def drive(b: Bench, frm: str, to: str, actor: Actor) -> None:
        if frm == S.REVIEWING:
            reviewing(b, "t")
        else:
            b.put("t", frm)
            b.start("t")
        b.say("t", text, b.worker("t") if actor == WORKER else None)

    return drive


def drive_waiting(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm)
    coder = b.start("t")
    b.screen(coder, "Allow? (y/n)")
    b.scan()
    b.scan()  # two readings of the screen agree


def drive_answer(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm, question="which?", **round_fields(to))
    b.start("t")
    route.send(b.ctx, "t", "this one")


def drive_working_again(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm, question="the coder is waiting", waiting_on="screen", **round_fields(to))
    b.start("t")  # it takes its prompt and shows it is working
    b.scan()


def drive_review(b: Bench, frm: str, to: str, actor: Actor) -> None:
    reviewing(b, "t")


def drive_send_back(budget: str | None) -> Callable[[Bench, str, str, Actor], None]:
    def drive(b: Bench, frm: str, to: str, actor: Actor) -> None:
        extra = {"round_budget": budget} if budget else {}
        if frm == S.VALIDATING:
            b.put("t", frm, **extra)
            b.start("t")  # and no commit: the work is sent back
            b.scan()
            return
        reviewer = reviewing(b, "t")
        if budget:
            T.record(b.ctx, "t", round_budget=budget)
        b.say("t", "request-changes\nblocker: [flag.txt] says on, should say yes", reviewer, kind="verdict")
        b.scan()

    return drive


def drive_cannot_validate(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm)  # no worktree was ever made
    b.scan()


def drive_reviewer_failed(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.configure('reviewer_agent = "broken"')
    b.put("t", S.VALIDATING)
    b.start("t")
    b.commit("t")
    b.settle()


def drive_discarded(b: Bench, frm: str, to: str, actor: Actor) -> None:
    reviewer = reviewing(b, "t")
    (b.worktree("t") / "scratch.txt").write_text("the reviewer wrote this\n")
    b.say("t", "approve\n", reviewer, kind="verdict")
    b.scan()


def drive_revalidate(b: Bench, frm: str, to: str, actor: Actor) -> None:
    reviewer = reviewing(b, "t")
    if actor == PERSON:  # `orch recover`: the reviewer is gone, the review starts over
        b.mux.kill_window(reviewer.window_id)
        recover.recover(b.ctx, "t")
        return
    subprocess.run(["git", "-C", str(b.worktree("t")), "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit",
                    "-q", "--allow-empty", "-m", "moved"], check=True)
    b.say("t", "approve\n", reviewer, kind="verdict")  # bound to the old head: stale
    b.scan()


def approve_with_pr(b: Bench, status: str, conclusion: str = "") -> Check:
    """A task approved by its reviewer while its PR's one check is in ``status`` (with ``conclusion``)."""
    forge = with_forge(b)
    reviewer = reviewing(b, "t")
    T.record(b.ctx, "t", pr="https://github.com/o/n/pull/1")
    head = git.head(str(b.worktree("t"))) or ""
    check = Check("tests", head, status, conclusion, job_id=7)
    forge.logs[7] = "E   assert 1 == 2\n"
    forge.by_branch["orch/t"] = Pull(1, "https://github.com/o/n/pull/1", "OPEN", "orch/t", head, checks=[check])
    b.scan()  # the pass finds the PR of the task under review
    b.say("t", "approve\n", reviewer, kind="verdict")
    b.scan()
    return check


def forge_says(b: Bench, check: Check, status: str, conclusion: str = "", **fields: str) -> None:
    check.status, check.conclusion = status, conclusion
    if fields:
        T.record(b.ctx, "t", **fields)
    b.scan()


def drive_forge(b: Bench, frm: str, to: str, actor: Actor) -> None:
    """The pull request's moves: from checking or ready, by what the PR's check says."""
    check = approve_with_pr(b, "completed", "success") if frm == S.READY else approve_with_pr(b, "in_progress")
    assert b.state("t") == frm, b.statuses("t")
    if to == S.READY:
        forge_says(b, check, "completed", "success")
    elif to == S.CHECKING:
        forge_says(b, check, "in_progress")
    elif to == S.FIXING:
        forge_says(b, check, "completed", "failure")
    elif to == S.BLOCKED:
        forge_says(b, check, "completed", "failure", forge_rounds="3")
    elif to == S.VALIDATING:  # a commit after the approval
        b.commit("t", "more.txt", "after the approval\n")
        scan._check_branches(b.ctx, T.load(b.ctx)[0], git.branch_heads(str(b.root), b.ctx.cfg.branch_prefix))


def drive_approved(b: Bench, frm: str, to: str, actor: Actor) -> None:
    if to == S.CHECKING:
        approve_with_pr(b, "in_progress")
        return
    reviewer = reviewing(b, "t")
    b.say("t", "approve\nnote: fine", reviewer, kind="verdict")
    b.scan()
    assert Path(b.task("t").doc.summary_field("dossier") or "").exists()


def drive_dossier_failed(b: Bench, frm: str, to: str, actor: Actor) -> None:
    reviewer = reviewing(b, "t")
    root = str(b.root)  # the base is rewritten under the task: an unrelated history
    for args in (["checkout", "-q", "--orphan", "rewritten"], ["commit", "-q", "--allow-empty", "-m", "new root"],
                 ["branch", "-f", "main", "rewritten"], ["checkout", "-q", "main"]):
        subprocess.run(["git", "-C", root, "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args], check=True)
    b.say("t", "approve\n", reviewer, kind="verdict")
    b.scan()
    assert "rebase the branch onto it, then `orch retry t`" in (b.task("t").field("blocked") or "")


def drive_branch_moved(b: Bench, frm: str, to: str, actor: Actor) -> None:
    if frm == S.CHECKING:
        drive_forge(b, frm, to, actor)
        return
    drive_approved(b, S.REVIEWING, S.READY, PASS)
    assert b.state("t") == "ready"
    b.commit("t", "more.txt", "after the approval\n")
    heads = git.branch_heads(str(b.root), b.ctx.cfg.branch_prefix)
    scan._check_branches(b.ctx, T.load(b.ctx)[0], heads)  # the step of the pass that notices (the rest validates it)
    assert not Path(b.ctx.ws.path("dossiers", "t.md")).exists()  # it spoke of the old head: set aside
    assert list(Path(b.ctx.ws.path("dossiers")).glob("t-*.superseded.md"))


def drive_coder_lost(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm)
    coder = b.start("t")
    b.mux.kill_window(coder.window_id)
    b.scan()


def drive_workers_lost(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.configure("recover_on_start = false")
    if frm == S.REVIEWING:
        reviewing(b, "t")
    else:
        b.put("t", frm)
        b.start("t")
    b.mux.kill_server()
    b.scan()


def drive_recover(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm, **round_fields(to))
    recover.recover(b.ctx, "t")


def drive_retry(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm, open_blockers="blocker: it does not build")
    b.start("t")
    restart.retry(b.ctx, "t")


def drive_close(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.put("t", frm)
    close.close(b.ctx, "t", force=True)


def drive_land(b: Bench, frm: str, to: str, actor: Actor) -> None:
    """`orch land`: a train that lands (by the person's command, or by a pass that finds its base already moved),
    fails with the task, or rebases it and finds its patches changed."""
    from orch.workflow import land
    from orch.workflow import train as TR

    if to == S.VALIDATING:  # rebased, its patches changed
        cfg = Path(b.ctx.ws.config_file)
        cfg.write_text(cfg.read_text().replace('\n# method = "merge"\n', '\nmethod = "rebase"\n'))
        b.ctx.cfg = __import__("orch.config", fromlist=["load"]).load(b.ctx.ws)
        (b.root / "y.txt").write_text("1\n2\n3\n4\n5\n")
        for args in (["add", "y.txt"], ["commit", "-qm", "y"]):
            subprocess.run(["git", "-C", str(b.root), "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args],
                           check=True)
        b.ready("t", {"y.txt": "1\ntwo\n3\n4\n5\n"})
        (b.root / "y.txt").write_text("1\n2\n3\nfour\n5\n")
        subprocess.run(["git", "-C", str(b.root), "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit",
                        "-qam", "four"], check=True)
        land.land(b.ctx, ["t"])
        return
    b.ready("t", {"t.txt": "t\n"}, ["false"] if to == S.FIXING else ["test -f t.txt"])
    if actor == PERSON:
        land.land(b.ctx, ["t"])
        return
    # the pass: a train killed after its base moved to the validated tip, before it was recorded
    base = git.rev(str(b.root), "main") or ""
    approved = b.task("t").field("approved") or ""
    train = TR.Train(TR.op_id("main", ["t"], {"t": approved}), "main", ["t"], {"t": approved}, state="landing",
                     base_sha=base, tip=approved, validated=[approved], created=time.time())
    TR.save(b.ctx, train)
    subprocess.run(["git", "-C", str(b.root), "merge", "-q", "--ff-only", approved], check=True)
    b.scan()


def drive_host_reports(b: Bench, frm: str, to: str, actor: Actor) -> None:
    """Many hosts: the task's host reports the state its own orch moved it to (ready: with the branch it pushed to
    the remote's refs/orch/wip/<task>, fetched here, and its dossier)."""
    from orch.workflow import fleet

    b.put("t", frm)
    head = ""
    if to == S.READY:
        remote = b.root.parent / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        subprocess.run(["git", "-C", str(b.root), "remote", "add", "origin", str(remote)], check=True)
        head = git.rev(str(b.root), "main") or ""
        subprocess.run(["git", "-C", str(b.root), "push", "-q", "origin", f"{head}:refs/orch/wip/t"], check=True)
    fleet.apply(b.ctx, {"slug": "t", "kind": "placed", "workflow": "w", "host": "h1", "run": 1, "seq": -1})
    fleet.apply(b.ctx, {"slug": "t", "kind": "report", "workflow": "w", "host": "h1", "run": 1, "seq": 1,
                        "state": to, "summary": [f"state: {to}"], "head": head, "dossier_md": "# t\n",
                        "status": ["- 2026-12-02T10:00:00Z coder started"]})


def drive_workspace_round(b: Bench, frm: str, to: str, actor: Actor) -> None:
    """Many hosts, on a host: a round the workspace sends for its copy of a ready (checking, blocked) task: a fix
    request for its coder, or none (validated again)."""
    b.put("t", frm)
    b.start("t")
    restart.workspace_round(b.ctx, "t", "round 2: fix the flag's help text" if to == S.FIXING else "", 2)


TASK_DRIVERS: dict[TaskEvent, Callable[[Bench, str, str, Actor], None]] = {
    E.START: drive_start,
    E.NEEDS_INPUT: drive_report("needs input: which port?"),
    E.WAITING: drive_waiting,
    E.ANSWER: drive_answer,
    E.WORKING_AGAIN: drive_working_again,
    E.DONE: drive_report("done: wrote the flag"),
    E.BLOCKED: drive_report("blocked: the build server is down"),
    E.REVIEW: drive_review,
    E.SEND_BACK: drive_send_back(None),
    E.OUT_OF_ROUNDS: lambda b, frm, to, actor: (drive_forge if frm in (S.CHECKING, S.READY)
                                                else drive_send_back("1"))(b, frm, to, actor),
    E.CANNOT_VALIDATE: drive_cannot_validate,
    E.REVIEWER_FAILED: drive_reviewer_failed,
    E.REVIEW_DISCARDED: drive_discarded,
    E.REVALIDATE: drive_revalidate,
    E.APPROVED: drive_approved,
    E.DOSSIER_FAILED: drive_dossier_failed,
    E.BRANCH_MOVED: drive_branch_moved,
    E.CODER_LOST: drive_coder_lost,
    E.WORKERS_LOST: drive_workers_lost,
    E.RECOVER: drive_recover,
    E.RETRY: drive_retry,
    E.CLOSE: drive_close,
    E.FORGE_AGREES: drive_forge,
    E.FORGE_PENDING: drive_forge,
    E.FORGE_ROUND: drive_forge,
    E.LANDED: drive_land,
    E.TRAIN_FAILED: drive_land,
    E.REBASED: drive_land,
    E.HOST_REPORTS: drive_host_reports,
    E.WORKSPACE_ROUND: drive_workspace_round,
}


@pytest.mark.parametrize("case", cases(L.TASK_TRANSITIONS), ids=case_id)
def test_every_task_transition_is_made_by_what_makes_it(bench: Bench, case: tuple[Transition, Actor]) -> None:
    row, actor = case
    TASK_DRIVERS[row.event](bench, row.frm, row.to, actor)  # type: ignore[index]
    assert bench.state("t") == row.to, (bench.statuses("t") if bench.path("t").exists() else "", bench.events("refused"))
    moved = f"{row.frm} -> {row.to} on {row.event.value} from {actor.who}"
    assert moved in bench.events("state", "t"), bench.events("state", "t")
    assert not bench.events("refused"), bench.events("refused")


# -- every worker transition ---------------------------------------------------------------------------------------

HOOK_EVENT = {W.WORKING: "prompt", W.IDLE: "stop", W.WAITING: "wait"}
SCREEN = {W.WORKING: "working: on it", W.IDLE: "> ", W.WAITING: "Allow? (y/n)"}


def coder_in(b: Bench, state: str, agent: str = "") -> Worker:
    b.put("t", S.CODING)
    coder = b.start("t", agent=agent)
    if coder.state != state:
        coder = b.set_worker(coder, state)
    return coder


def wdrive_hook(b: Bench, frm: str, to: str, actor: Actor) -> None:
    b.hook(coder_in(b, frm), HOOK_EVENT[WorkerState(to)])


def wdrive_screen(b: Bench, frm: str, to: str, actor: Actor) -> None:
    coder = coder_in(b, frm)
    b.screen(coder, SCREEN[WorkerState(to)])
    for _ in range(2):  # two readings agree
        watch.observe(b.ctx, b.ctx.panes())


def wdrive_prompt(b: Bench, frm: str, to: str, actor: Actor) -> None:
    if frm == W.STARTING and actor == PASS:
        b.put("t", S.CODING)
        b.start("t")  # its first prompt is typed and taken
        return
    coder = coder_in(b, frm, agent="fakehooks")
    if actor == PERSON:
        route.send(b.ctx, "t", "please go on")
    else:
        pane = next(p for p in b.ctx.panes() if p.worker == coder.id)
        deliver.send_or_queue(b.ctx, pane, "# orch: coder prompt for task t, round 2\nfix it", "round 2 fix request")


def wdrive_delivery_failed(b: Bench, frm: str, to: str, actor: Actor) -> None:
    if frm == W.STARTING:
        b.put("t", S.CODING)
        b.start("t", agent="deaf")
        return
    coder = coder_in(b, frm, agent="deaf")
    pane = next(p for p in b.ctx.panes() if p.worker == coder.id)
    assert deliver.send_or_queue(b.ctx, pane, "fix it", "round 2 fix request") == "failed"


def wdrive_exited(b: Bench, frm: str, to: str, actor: Actor) -> None:
    coder = coder_in(b, frm)
    b.mux.pane(coder.pane_id).exit(3)
    b.scan()


def wdrive_lost(b: Bench, frm: str, to: str, actor: Actor) -> None:
    coder = coder_in(b, frm)
    b.mux.kill_window(coder.window_id)
    if actor == PASS:
        b.scan()
    else:
        recover.recover(b.ctx, "t")


def wdrive_closed(b: Bench, frm: str, to: str, actor: Actor) -> None:
    coder_in(b, frm)
    close.close(b.ctx, "t", force=True)


def wdrive_adopted(b: Bench, frm: str, to: str, actor: Actor) -> None:
    coder = coder_in(b, frm)
    b.set_worker(coder, frm, ended_at=time.time())  # ended in the registry while its window lives on
    b.scan()


WORKER_DRIVERS: dict[WorkerEvent, Callable[[Bench, str, str, Actor], None]] = {
    V.HOOK: wdrive_hook,
    V.SCREEN: wdrive_screen,
    V.PROMPT: wdrive_prompt,
    V.DELIVERY_FAILED: wdrive_delivery_failed,
    V.EXITED: wdrive_exited,
    V.LOST: wdrive_lost,
    V.CLOSED: wdrive_closed,
    V.ADOPTED: wdrive_adopted,
}


@pytest.mark.parametrize("case", cases(L.WORKER_TRANSITIONS), ids=case_id)
def test_every_worker_transition_is_made_by_what_makes_it(bench: Bench, case: tuple[Transition, Actor]) -> None:
    row, actor = case
    WORKER_DRIVERS[row.event](bench, row.frm, row.to, actor)  # type: ignore[index]
    rows = bench.ctx.store.task_workers("t", include_ended=True)
    coder = [w for w in rows if w.role == "coder"][0]
    assert coder.state == row.to, (coder, bench.events("state"), bench.events("refused"))
    assert any(text.startswith(f"{coder.address}: {row.frm} -> {row.to} (") for text in bench.events("state"))
    assert not bench.events("refused"), bench.events("refused")


def test_a_late_hook_of_an_ended_worker_moves_nothing(bench: Bench) -> None:
    coder = coder_in(bench, W.WORKING)
    bench.mux.kill_window(coder.window_id)
    bench.scan()
    assert bench.ctx.store.worker(coder.id).state == "lost"  # type: ignore[union-attr]
    bench.hook(coder, "stop")
    assert bench.ctx.store.worker(coder.id).state == "lost"  # type: ignore[union-attr]
    assert any("lost -> idle on hook from a worker" in e for e in bench.events("refused"))


def test_a_stale_screen_reading_never_overrides_a_hook_applied_meanwhile(bench: Bench) -> None:
    coder = coder_in(bench, W.IDLE)
    stale = bench.ctx.store.worker(coder.id)  # what the pass read before the hook
    bench.hook(coder, "prompt")  # the agent took a prompt: working
    assert stale is not None and stale.state == "idle"
    assert not workers.move(bench.ctx, stale, W.WAITING, V.SCREEN, PASS, "screen")
    assert bench.ctx.store.worker(coder.id).state == "working"  # type: ignore[union-attr]
    fresh = bench.ctx.store.worker(coder.id)
    assert fresh is not None and workers.move(bench.ctx, fresh, W.WAITING, V.SCREEN, PASS, "screen")


def test_retry_whose_new_coder_cannot_start_leaves_the_task_blocked(bench: Bench) -> None:
    path = bench.put("t", S.BLOCKED, text="---\nagent: broken\n---\nA task.\n", open_blockers="blocker: no build")
    with pytest.raises(OrchError, match="the coder's window could not be made"):
        restart.retry(bench.ctx, "t")
    assert bench.state("t") == "blocked" and bench.task("t").doc.summary_field("open blockers")
    path.write_text(path.read_text().replace("agent: broken", "agent: fake"))
    assert restart.retry(bench.ctx, "t").delivered == "new coder"
    assert bench.state("t") == "fixing" and bench.worker("t").state == "working"


def test_close_refuses_an_unknown_state_before_touching_anything(bench: Bench) -> None:
    bench.put("t", S.CODING)
    coder = bench.start("t")
    bench.put("t", "in review")  # a state line orch did not write
    with pytest.raises(OrchError, match="its state line reads 'in review'"):
        close.close(bench.ctx, "t", force=True)
    assert coder.pane_id in bench.mux.panes and bench.worktree("t").is_dir() and bench.path("t").exists()
