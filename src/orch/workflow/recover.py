"""Bringing lost workers back: after the tmux server went away (a reboot, `tmux kill-server`), or on demand.

A task still in progress gets its coder again in the same worktree. Where the agent can resume its own session
(Claude Code ``--resume <id>``, Codex ``resume <id>``, Aider's chat history), the new worker continues it and is
told what happened; otherwise it starts fresh with the intent packet plus a note of what the branch already holds.
A review in progress is started over (validation first), since its reviewer is gone too.
"""

from __future__ import annotations

import time

from orch import agents, git
from orch.errors import OrchError
from orch.lifecycle import (
    ACTIVE,
    IN_PROGRESS,
    LIVE_WORKER,
    Actor,
    Move,
    TaskEvent,
    TaskState,
    WorkerState,
    way_on,
)
from orch.mux import Pane
from orch.store import Worker
from orch.workflow import deliver, prompts, spawn, validate
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.intent import parse as parse_intent
from orch.workflow.review import branch_of, live_pane, round_of, worktree_of

S = TaskState

# tasks whose coder is needed now; a validating or reviewing task gets a coder again when a fix round needs one
NEEDS_CODER = ACTIVE | {S.LOST}
RECOVERABLE = IN_PROGRESS | {S.LOST}


def resumed_note(slug: str, why: str, round_no: int) -> str:
    return (
        f"{prompts.header('coder', slug, round_no)}\n\n"
        f"orch here: your window was lost ({why}) and orch started you again in the same worktree, continuing your "
        "session. Check `git status` and `git log`, go on where you left off, and report as before "
        '(orch - "done: ..." when your work is committed).\n'
    )


def branch_note(ctx: Ctx, task: T.Task, worktree: str, why: str) -> str:
    """What a fresh coder must know: the branch is not new."""
    base = spawn.resolve_base(ctx, task)
    try:
        commits = git.commits_ahead(worktree, base)
        dirty = git.status_porcelain(worktree)
    except OrchError:
        commits, dirty = [], []
    lines = [f"## Note: you continue a lost worker's work\nThe previous coder of this task was lost ({why})."]
    if commits:
        shown = "\n".join(f"- {sha[:12]} {subject}" for sha, subject in commits[:20])
        more = f"\n- ... and {len(commits) - 20} more" if len(commits) > 20 else ""
        lines.append(f"The branch already has {len(commits)} commit(s) ahead of {base}:\n{shown}{more}")
    else:
        lines.append(f"The branch has no commits ahead of {base} yet.")
    if dirty:
        lines.append(f"The worktree has {len(dirty)} uncommitted change(s): look at `git status` before you start.")
    lines.append("Read what is there, then finish the task.")
    return "\n\n".join(lines) + "\n"


def restart_coder(ctx: Ctx, task: T.Task, why: str, panes: list[Pane], actor: Actor) -> str:
    """Start the coder of ``task`` again in its worktree, resuming the last coder's agent session if possible. A
    lost task moves back to coding (fixing after its first round); an active one stays where it is."""
    slug = task.slug
    last = _last_coder(ctx, slug)
    round_no = round_of(task)
    to = S.CODING if round_no == 1 else S.FIXING
    move = None if task.state in ACTIVE else Move(to, TaskEvent.RECOVER, actor)
    agent = spawn.agent_for(ctx, task, "coder")
    profile = ctx.cfg.profile(agent)
    session = last.agent_session if last is not None and last.agent == agent else ""
    if session and agents.agent(profile.kind).can_resume:
        d = spawn.start_worker(ctx, task, "coder", panes, text=resumed_note(slug, why, round_no), round_no=round_no,
                               resume=session, move=move)
        how = f"resumed its {agent} session {session}"
    else:
        worktree = worktree_of(ctx, task)
        intent = parse_intent(task.body)
        commands, source = validate.commands_for(ctx, intent)
        packet = prompts.coder_prompt(slug, intent, worktree, branch_of(ctx, task), spawn.resolve_base(ctx, task),
                                      commands, source, round_no, prompts.orch_command(ctx))
        d = spawn.start_worker(ctx, task, "coder", panes, text=packet + "\n" + branch_note(ctx, task, worktree, why),
                               round_no=round_no, move=move)
        how = "started fresh with the intent packet and a note of what the branch holds"
    T.record(ctx, slug, status=f"coder recovered after it was lost ({why}): {how}", problem=None)
    if d is not None:
        deliver.deliver(ctx, [d])
    return f"{slug}: coder ({how})"


def restart_review(ctx: Ctx, task: T.Task, why: str, actor: Actor) -> str:
    for review in ctx.store.reviews(task.slug):
        if review.status == "pending":
            ctx.store.update_review(review.id, status="failed", note=f"the reviewer was lost ({why})", acted_at=time.time())
    T.move(ctx, task.slug, S.VALIDATING, TaskEvent.REVALIDATE, actor,
           status=f"reviewer lost ({why}): validating again, then a new review", problem=None)
    return f"{task.slug}: review started over"


def recover_task(ctx: Ctx, task: T.Task, why: str, panes: list[Pane], actor: Actor) -> list[str]:
    """Bring back what ``task`` needs now; returns what was done (nothing when its workers are alive)."""
    did = []
    if task.state == S.REVIEWING and live_pane(panes, task.slug, "reviewer") is None:
        did.append(restart_review(ctx, task, why, actor))
        task = T.get(ctx, task.slug)
    if task.state in NEEDS_CODER and live_pane(panes, task.slug, "coder") is None:
        did.append(restart_coder(ctx, task, why, panes, actor))
    return did


def recover(ctx: Ctx, slug: str | None = None, why: str = "recovered on request") -> list[str]:
    """`orch recover [task]`: every in-progress task (or one) gets back the workers it lacks."""
    from orch.locks import hold

    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch pass is running (lock .orch/locks/scan.lock); try again shortly")
        away: set[str] = set()
        if ctx.cfg.cluster.address:  # a task on a host is brought back there (a lost host: by the cluster itself)
            from orch.workflow import fleet

            away = fleet.hosted(ctx)
        if slug is not None and slug in away:
            row = ctx.store.hosted(slug)
            raise OrchError(f"task {slug!r} runs on host {row.host if row and row.host else '(being placed)'}: its "
                            "host brings its workers back, and the cluster places it elsewhere if the host is lost")
        if slug is not None:
            task = T.get(ctx, slug)
            if task.state not in RECOVERABLE:
                raise OrchError(f"task {slug!r} is {task.state}: only a lost task or one in progress is recovered; "
                                f"{way_on(task.state, slug)}")
            todo = [task]
        else:
            tasks, _ = T.load(ctx)
            todo = [t for t in tasks.values() if t.state in RECOVERABLE and t.slug not in away]
        panes = ctx.panes()
        _mark_gone(ctx, panes)
        did: list[str] = []
        for task in todo:
            try:
                did += recover_task(ctx, task, why, panes, Actor.PERSON)
            except OrchError as exc:
                T.record(ctx, task.slug, status=f"could not recover: {exc}", problem=str(exc))
                did.append(f"{task.slug}: could not recover: {exc}")
            panes = ctx.panes()
        return did


def _mark_gone(ctx: Ctx, panes: list[Pane]) -> None:
    """Workers whose windows are gone are lost before new ones are started (the registry stays true)."""
    from orch.workflow.scan import GONE, lose

    live = {p.worker for p in panes if p.worker and not p.dead}
    for w in ctx.store.live_workers():
        if w.state in (*LIVE_WORKER, WorkerState.EXITED) and w.id not in live:
            lose(ctx, w, GONE, Actor.PERSON)


def _last_coder(ctx: Ctx, slug: str) -> Worker | None:
    coders = [w for w in ctx.store.task_workers(slug, include_ended=True) if w.role == "coder"]
    return coders[-1] if coders else None
