"""The person's commands that start a task's work again: `orch start` (a coder now; `orch new-task` is its older name) and `orch retry` (a
blocked task back to its coder with more rounds; a ready one validated and reviewed again). Both are moves of the
lifecycle by the person: refused with one line saying what moves the task on when the table does not allow them.
"""

from __future__ import annotations

from orch.errors import OrchError
from orch.lifecycle import ACTIVE, Actor, Move, TaskEvent, TaskState, way_on
from orch.locks import hold
from orch.record import dataclass
from orch.store import Worker
from orch.workflow import deliver, inbox, prompts, remote, review, spawn
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.scan import agent_panes, lose, plan

S, PERSON, PASS = TaskState, Actor.PERSON, Actor.PASS


def new_task(ctx: Ctx, slug: str) -> Worker:
    """Start the coder of one task now (`orch start`), unless one is running or the task is past coding."""
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch scan is running (lock .orch/locks/scan.lock); try again shortly")
        inbox.drain(ctx)
        task = T.get(ctx, slug)
        missing = [d for d in task.depends_on if d not in T.done_slugs(ctx)]
        if missing:
            raise OrchError(f"task {slug!r} waits for {', '.join(missing)} (not closed yet); close those first")
        panes = ctx.panes()
        for w, why in plan({slug: task}, set(), ctx.store.task_workers(slug), panes).lost:
            lose(ctx, w, why, PERSON)
        live = agent_panes(panes)
        registered = {w.id for w in ctx.store.task_workers(slug)}
        for pane in live.values():
            if pane.task == slug and pane.role == "coder" and not pane.dead:
                hint = f"`orch attach {slug}`" if pane.worker in registered else "run `orch scan` to adopt it"
                raise OrchError(f"task {slug!r} already has a coder in window {pane.window_id}: {hint}")
        if task.state in ACTIVE:
            move = None  # its coder is gone and the pass has not noticed yet: a new one, in the same state
        elif task.state in (S.QUEUED, S.LOST, S.BLOCKED):
            move = Move(S.CODING, TaskEvent.START, PERSON)
        else:
            raise OrchError(f"task {slug!r} is {task.state}: `orch start` starts a coder only for a task that "
                            f"has none at work; {way_on(task.state, slug)}")
        d = spawn.start_worker(ctx, task, "coder", panes, move=move)
        if d is not None:
            deliver.deliver(ctx, [d])
        worker = ctx.store.task_workers(slug)[-1]
        inbox.drain(ctx)
        return worker


@dataclass
class Retried:
    slug: str
    state: str  # where the task went
    round: int
    budget: int
    delivered: str  # what happened to the fix request: typed, a new coder, or "" (validation left to the pass)


def retry(ctx: Ctx, slug: str, rounds: int | None = None) -> Retried:
    """`orch retry`: a blocked task goes back to its coder for a new round with its open blockers, its round budget
    raised by ``rounds`` (default ``max_review_rounds``); a ready task goes back to validation and a new review (its
    base may have moved on). Anything else is refused with what moves it on."""
    if rounds is not None and rounds < 1:
        raise OrchError("--rounds must be at least 1")
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch scan is running (lock .orch/locks/scan.lock); try again shortly")
        inbox.drain(ctx)
        task = T.get(ctx, slug)
        current = review.round_of(task)
        new_round = current + 1
        budget = max(review.round_budget(ctx, task), current) + (rounds or ctx.cfg.max_review_rounds)
        if task.state == S.BLOCKED:
            source = "the last round's open findings" if task.field("open blockers") else ""
            text = prompts.fix_prompt(slug, new_round, open_blockers(task), [], budget, prompts.orch_command(ctx),
                                      source)
            status = (f"retried by the person: round {new_round} for the coder with the open blockers "
                      f"({budget} round(s) allowed now)")
            fields: dict[str, str | None] = {"round": str(new_round), "round_budget": str(budget), "blocked": None,
                                             "open_blockers": None, "problem": None, "forge_rounds": None}
            panes = ctx.panes()
            if review.live_pane(panes, slug, "coder") is not None:
                T.move(ctx, slug, S.FIXING, TaskEvent.RETRY, PERSON, refuse=True, status=status, summary=fields)
                how = review.deliver_to_coder(ctx, T.get(ctx, slug), text, new_round, panes, explicit=True)
            else:  # a new coder: the task moves once its window exists, and stays blocked if it cannot start
                how = review.deliver_to_coder(ctx, task, text, new_round, panes, explicit=True,
                                              move=Move(S.FIXING, TaskEvent.RETRY, PERSON), summary=fields)
                T.record(ctx, slug, status=status)
            inbox.drain(ctx)
            return Retried(slug, S.FIXING, new_round, budget, how)
        if task.state in (S.READY, S.CHECKING) and (row := remote.round_here(ctx, slug)) is not None:
            # many hosts: validated and reviewed on its host
            remote.hand_round(ctx, task, row, "", new_round, Move(S.VALIDATING, TaskEvent.RETRY, PERSON),
                              {"round": str(new_round), "round_budget": str(budget)})
            return Retried(slug, S.VALIDATING, new_round, budget, "sent to its host")
        if task.state in (S.READY, S.CHECKING):
            T.move(ctx, slug, S.VALIDATING, TaskEvent.RETRY, PERSON, refuse=True,
                   status=f"retried by the person: validating {task.meta.get('branch') or slug} again, then a new "
                          f"review (round {new_round}); the dossier stands until then",
                   round=str(new_round), round_budget=str(budget))
            return Retried(slug, S.VALIDATING, new_round, budget, "")
        raise OrchError(f"task {slug!r} is {task.state}: only a blocked, checking or ready task is retried; "
                        f"{way_on(task.state, slug)}")


def workspace_round(ctx: Ctx, slug: str, text: str = "", round_no: int = 0) -> Retried:
    """Many hosts, on a host: a round the task's workspace sends for the copy here, after it was ready or blocked:
    a fix request for its coder (``text``: a pull request's round, a failed train, a retry of a blocked task), or,
    without one, the branch validated and reviewed again (a retry of a ready task). The round is the workspace's
    number when it is ahead of this copy's."""
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch scan is running (lock .orch/locks/scan.lock); try again shortly")
        inbox.drain(ctx)
        task = T.get(ctx, slug)
        new_round = max(round_no, review.round_of(task) + 1)
        budget = max(review.round_budget(ctx, task), new_round)
        fields: dict[str, str | None] = {"round": str(new_round), "round_budget": str(budget), "blocked": None,
                                         "open_blockers": None, "problem": None}
        event = TaskEvent.WORKSPACE_ROUND
        if not text:
            T.move(ctx, slug, S.VALIDATING, event, PASS, refuse=True, summary=fields,
                   status=f"round {new_round} from the workspace: validating the branch again, then a new review")
            return Retried(slug, S.VALIDATING, new_round, budget, "")
        status = f"round {new_round} from the workspace: a fix request for the coder"
        panes = ctx.panes()
        if review.live_pane(panes, slug, "coder") is not None:
            T.move(ctx, slug, S.FIXING, event, PASS, refuse=True, status=status, summary=fields)
            how = review.deliver_to_coder(ctx, T.get(ctx, slug), text, new_round, panes, explicit=True)
        else:  # a new coder: the task moves once its window exists
            if task.state not in (S.READY, S.CHECKING, S.BLOCKED):
                raise OrchError(f"task {slug!r} is {task.state}: a round from the workspace is for a ready or "
                                "blocked task")
            how = review.deliver_to_coder(ctx, task, text, new_round, panes, explicit=True,
                                          move=Move(S.FIXING, event, PASS), summary=fields)
            T.record(ctx, slug, status=status)
        inbox.drain(ctx)
        return Retried(slug, S.FIXING, new_round, budget, how)


def open_blockers(task: T.Task) -> list[str]:
    """What blocked the task, as the fix round's must-fix list."""
    items = task.field("open blockers") or ""
    found = [item.strip() for item in items.split("; ") if item.strip()]
    if found:
        return found
    why = task.field("blocked")
    if why:
        return [f"the task was blocked: {why}; resolve it, or say `blocked:` again with what you need"]
    return ["the task was blocked; look at its status log, then finish the work"]
