"""`orch scan`: one reconcile pass over task files, one multiplexer listing, the registry and `git worktree list`.

``plan()`` is a pure function of those inputs (tested on its own); ``scan()`` gathers them, carries the plan out
(every state change a move of the lifecycle by the pass), applies the inbox and moves the review loop on.
"""

from __future__ import annotations

import os
import time

from orch import child, faults, files, git
from orch.errors import OrchError
from orch.lifecycle import ACTIVE, IN_PROGRESS, Actor, Move, TaskEvent, TaskState, WorkerEvent, WorkerState
from orch.locks import hold
from orch.mux import Pane
from orch.record import dataclass, field
from orch.store import Worker
from orch.workflow import deliver, inbox, radar, sandboxing, watch, workers
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.plan import GONE, NOT_PROVEN, Orphan, Plan, agent_panes, held_for, plan, proven, settling

__all__ = ["GONE", "NOT_PROVEN", "Orphan", "Plan", "ScanReport", "agent_panes", "held_for", "plan", "proven", "scan"]

S, W, V, PASS = TaskState, WorkerState, WorkerEvent, Actor.PASS


@dataclass
class ScanReport:
    spawned: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    waiting: list[tuple[str, list[str]]] = field(default_factory=list)
    pipeline: list[str] = field(default_factory=list)
    invalid: list[T.Invalid] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    forge: list[str] = field(default_factory=list)  # what the forge's part of the pass did
    conflicts: list[str] = field(default_factory=list)  # new conflicts between tasks in flight (coders told)
    applied: int = 0
    settle_in: float = 0.0  # a task file still being written is started this many seconds from now (the next pass)
    settling: list[str] = field(default_factory=list)  # those task files

    def lines(self) -> list[str]:
        """What a reconcile pass did, one line per kind of action (orch scan, and each pass of orch run)."""
        lines = []
        if self.spawned:
            lines.append("started: " + ", ".join(self.spawned))
        if self.applied:
            lines.append(f"applied {self.applied} message(s)")
        if self.lost:
            lines.append("lost: " + ", ".join(self.lost))
        if self.exited:
            lines.append("exited: " + ", ".join(self.exited))
        if self.adopted:
            lines.append("re-registered from tmux: " + ", ".join(self.adopted))
        if self.restored:
            lines.append("task file block written again from orch's record: " + ", ".join(self.restored))
        for did in self.recovered:
            lines.append(f"recovered: {did}")
        for did in self.pipeline:
            lines.append(f"review loop: {did}")
        for did in self.forge:
            lines.append(f"pull requests: {did}")
        for did in self.conflicts:
            lines.append(f"conflict radar: {did}")
        for slug, missing in self.waiting:
            lines.append(f"waiting: {slug} (for {', '.join(missing)})")
        if self.settling:
            lines.append(f"settling: {', '.join(self.settling)} (changed a moment ago: started once it rests)")
        for o in self.orphans:
            lines.append(f"orphan window {o.window_id} ({o.session_name}, {o.task}:{o.role}): {o.reason}")
        for i in self.invalid:
            lines.append(f"invalid task file {i.file}: {i.error}")
        for e in self.errors:
            lines.append(f"error: {e}")
        return lines


def _worktree_paths(ctx: Ctx) -> dict[str, str]:
    """Each task's worktree as git knows it, by task name (from its branch)."""
    found = {}
    for wt in git.worktrees(ctx.ws.root):
        if wt.branch and wt.branch.startswith(ctx.cfg.branch_prefix):
            found[wt.branch[len(ctx.cfg.branch_prefix) :]] = wt.path
    return found


def adopt(ctx: Ctx, pane: Pane, worktree_paths: dict[str, str]) -> Worker:
    """Put a tagged window back in the registry (after the database was lost)."""
    now = time.time()
    worker = Worker(
        id=pane.worker,
        task=pane.task,
        role=pane.role or "coder",
        agent=pane.agent or "unknown",
        state=W.WORKING.value,
        state_since=now,
        created_at=now,
        session_name=pane.session_name,
        session_id=pane.session_id,
        window_id=pane.window_id,
        pane_id=pane.pane_id,
        pane_pid=pane.pane_pid,
        worktree=worktree_paths.get(pane.task, pane.current_path),
        branch=ctx.cfg.branch_prefix + pane.task,
        token_hash=pane.token_hash,
        tmux_server=pane.server,
        workspace=ctx.ws.id,
    )
    known = ctx.store.worker(worker.id)
    if known is not None:
        # known but marked ended while its window lives on (e.g. orch killed mid-way): tmux is the truth
        workers.move(ctx, known, W.WORKING, V.ADOPTED, PASS, "its window lives on", ended_at=None,
                     **{k: getattr(worker, k) for k in ("session_name", "session_id", "window_id", "pane_id",
                                                        "pane_pid", "tmux_server")})
    else:
        ctx.store.add_worker(worker)
    ctx.event("adopt", f"registry rebuilt from tmux tags: {worker.address} in {pane.window_id}", task=pane.task, worker=worker.id)
    return worker


def lose(ctx: Ctx, w: Worker, why: str, actor: Actor = PASS) -> None:
    """A worker whose window is gone (or reused) is lost: its row ends."""
    if workers.move(ctx, w, W.LOST, V.LOST, actor, why, ended_at=time.time()):
        ctx.event("lost", f"{w.address} lost: {why}", task=w.task, worker=w.id)
        faults.point("worker.lost")


def scan(ctx: Ctx, settle: bool = False) -> ScanReport:
    """One reconcile pass. ``settle`` (the daemon's passes): a queued task whose file changed less than a second
    ago is started by a later pass (``report.settle_in``), not while its author may still be writing it; a pass
    you ask for (`orch scan`) starts it now."""
    report = ScanReport()
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch scan is running (lock .orch/locks/scan.lock); try again shortly")
        heads_read = None
        try:
            # tmux lists the panes and reads the workers' screens, and git the branches, while the messages and
            # task files are read
            ctx.prefetch(watch.screens_wanted(ctx), watch.SCREEN_LINES)
            heads_read = sandboxing.start_sync(ctx)
            return _scan(ctx, report, settle, heads_read)
        finally:
            ctx.drop_prefetch()
            if heads_read is not None:  # (ended, unless an error came first)
                heads_read.cancel()


def _scan(ctx: Ctx, report: ScanReport, settle: bool, heads_read: child.Running | None = None) -> ScanReport:
    """The pass itself (under the scan lock)."""
    report.applied += inbox.drain(ctx)
    # the sandboxed coders' commits onto their branches, before anything reads them
    _, heads = sandboxing.sync(ctx, heads_read)
    tasks, report.invalid = T.load(ctx)
    report.restored = T.refresh(ctx, tasks)
    everything = tasks  # (with the tasks on hosts: their paths count for the queued ones' `paths:` waits)
    cluster = bool(ctx.cfg.cluster.address)
    if cluster:  # many hosts: a task on a host is its host's, not this pass's
        from orch.workflow import fleet, remote

        away = fleet.hosted(ctx)
        remote.resend_rounds(ctx, {slug: t for slug, t in tasks.items() if slug in away})
        tasks = {slug: t for slug, t in tasks.items() if slug not in away}
    files.sweep_tmp(ctx.cfg.tasks_path)
    done = T.done_slugs(ctx)
    listing = ctx.listing()
    seen = ctx.mux.changes
    panes = listing.panes
    fresh, report.settle_in = settling(tasks) if settle else (set(), 0.0)
    live = ctx.store.live_workers()
    if heads is None and any(t.state != S.QUEUED for t in tasks.values()):
        heads = git.branch_heads(ctx.ws.root, ctx.cfg.branch_prefix)  # (one read, for the radar and the checks)
    rows = {slug: t.record for slug, t in tasks.items()}
    seen_radar = radar.load(ctx)
    now_radar = radar.compute(ctx, rows, heads or {}, seen_radar)
    if seen_radar is None or now_radar.heads != seen_radar.heads or now_radar.base_sha != seen_radar.base_sha:
        radar.save(ctx, now_radar)
    overlaps = (radar.waits(everything, now_radar, {slug: t.record for slug, t in everything.items()})
                if radar.wants_radar(tasks) else {})
    p = plan(tasks, done, live, panes, proven(ctx, panes, live), fresh, overlaps)
    with_server: dict[str, str] = {}  # tasks whose workers went away with the multiplexer server -> why
    for w, why in p.lost:
        if w.tmux_server and w.tmux_server != listing.server and why == GONE:
            why = ("the tmux server went away (a reboot or kill-server)" if listing.server
                   else "the tmux server is not running")
            with_server[w.task] = why
        lose(ctx, w, why)
        if w.task in tasks:
            T.record(ctx, w.task, status=f"{w.role} lost: {why}", problem=f"{w.role} lost: {why}")
        report.lost.append(w.address)
    for w, status in p.exited:
        shown = "?" if status is None else str(status)
        workers.move(ctx, w, W.EXITED, V.EXITED, PASS, f"exit status {shown}", exit_status=status)
        ctx.event("exited", f"{w.address} exited with status {shown}", task=w.task, worker=w.id)
        if w.task in tasks:
            T.record(ctx, w.task, status=f"{w.role} exited with status {shown}", problem=f"{w.role} exited ({shown})")
        report.exited.append(w.address)
    for slug, role in p.task_lost:
        if slug not in with_server:
            T.move(ctx, slug, S.LOST, TaskEvent.CODER_LOST, PASS,
                   status=f"task has no live {role}; `orch recover {slug}` starts it again in its worktree")
    worktree_paths = _worktree_paths(ctx) if p.adopt else {}  # (read only when a window is adopted)
    for pane in p.adopt:
        meta_path = tasks[pane.task].meta.get("worktree") if pane.task in tasks else None
        if meta_path and pane.task not in worktree_paths:
            worktree_paths[pane.task] = meta_path
        report.adopted.append(adopt(ctx, pane, worktree_paths).address)
    sandboxing.sweep(ctx, {w.id for w in ctx.store.live_workers()})
    for slug, missing in p.waiting:
        if tasks[slug].field("waiting for") != ", ".join(missing):  # (said once, not written every pass)
            T.record(ctx, slug, waiting_for=", ".join(missing))
    report.orphans = p.orphans
    report.waiting, report.settling = p.waiting, p.settling
    for slug, why in with_server.items():
        _bring_back(ctx, slug, why, report)
    _check_worktrees(ctx, tasks)
    _check_branches(ctx, tasks, heads)
    for w in p.interrupted:
        ctx.mux.kill_window(w.window_id)
        lose(ctx, w, "its start was interrupted (orch stopped before recording it)")
        ctx.event("spawn", f"{w.address}: its start was interrupted (orch stopped before recording it): "
                           "window closed, starting again", task=w.task, worker=w.id)
    if p.interrupted:
        panes = ctx.panes()
    deliveries = []
    if p.spawn and cluster:
        try:
            report.spawned += fleet.dispatch(ctx, tasks, list(p.spawn))
        except OrchError as exc:
            report.errors.append(f"could not hand tasks to the cluster: {exc}")
    elif p.spawn:
        from orch.workflow import spawn
    for slug in p.spawn if not cluster else ():
        try:
            d = spawn.start_worker(ctx, tasks[slug], "coder", panes, move=Move(S.CODING, TaskEvent.START, PASS))
        except OrchError as exc:
            report.errors.append(f"{slug}: could not start the coder: {exc}")
            if tasks[slug].field("problem") != T.taskfile.one_line(str(exc)):  # said once, until it changes
                ctx.event("spawn-failed", str(exc), task=slug)
                T.record(ctx, slug, status=f"could not start the coder: {exc}", problem=str(exc))
            continue
        report.spawned.append(slug)
        if d is not None:
            deliveries.append(d)
    deliver.deliver(ctx, deliveries)
    report.applied += inbox.drain(ctx)
    # the panes again, unless nothing the pass did could have changed them (a pass with nothing to do: one listing)
    unchanged = seen == ctx.mux.changes and not p.spawn
    report.pipeline += watch.observe(ctx, panes if unchanged else ctx.panes())
    deliver.deliver(ctx, deliver.pending_prompts(ctx, {d.worker.id for d in deliveries}))
    advance_pipeline(ctx, report)
    report.conflicts += radar.tell(ctx, now_radar, rows)
    if os.path.isdir(ctx.ws.path("trains")):  # a train cut short after its base moved: recorded as landed
        from orch.workflow import land

        report.pipeline += land.resume(ctx)
    if ctx.cfg.forge.pr != "off" or ctx.cfg.forge.repo or any("pr" in r.fields for r in rows.values()):
        from orch.workflow import forge

        report.forge += forge.step(ctx)
    return report


def _check_worktrees(ctx: Ctx, tasks: dict[str, T.Task]) -> None:
    """A worktree (or branch) deleted by hand under a task in progress is reported in the task, once; its worker is
    left alone until the person decides."""
    for slug, task in tasks.items():
        if task.state not in ACTIVE:
            continue
        worktree = task.meta.get("worktree")
        if not worktree or os.path.isdir(worktree):
            continue
        branch = task.meta.get("branch") or ctx.cfg.branch_prefix + slug
        gone = "and its branch are" if not git.branch_exists(ctx.ws.root, branch) else "is"
        problem = (f"the worktree {worktree} {gone} gone (deleted by hand?); the worker is left alone: "
                   f"`orch close {slug}` ends the task")
        if task.field("problem") != problem:
            T.record(ctx, slug, status=problem, problem=problem)


def _check_branches(ctx: Ctx, tasks: dict[str, T.Task], heads: dict[str, str] | None = None) -> None:
    """A task branch deleted under its coder is reported in the task, once; a ready task whose branch has commits
    its review did not see goes back to validation and review (its dossier is set aside: it speaks of another
    sha)."""
    watched = {slug: t for slug, t in tasks.items() if t.state in ACTIVE or t.state in (S.READY, S.CHECKING)}
    if not watched:
        return
    if heads is None:  # (else: orch's branches as the pass's carry left them)
        heads = git.branch_heads(ctx.ws.root, ctx.cfg.branch_prefix)
    for slug, task in watched.items():
        branch = task.meta.get("branch") or ctx.cfg.branch_prefix + slug
        head = heads.get(branch) if branch.startswith(ctx.cfg.branch_prefix) else git.rev(ctx.ws.root, branch)
        if head is None:
            problem = f"the task branch {branch} is gone (deleted by hand?); `orch close {slug}` ends the task"
            if task.field("problem") != problem:
                T.record(ctx, slug, status=problem, problem=problem)
            continue
        if task.state not in (S.READY, S.CHECKING):
            continue
        from orch.workflow import dossier

        approved = task.field("approved") or dossier.approved_sha(ctx, slug)
        if approved and head != approved:
            aside = dossier.set_aside(ctx, slug, approved)
            T.move(ctx, slug, S.VALIDATING, TaskEvent.BRANCH_MOVED, PASS,
                   status=f"the branch moved to {head[:12]} after it was ready at {approved[:12]}: validating it "
                          f"again, then a new review (the old dossier is now {aside})",
                   dossier=None, approved=None)


def _bring_back(ctx: Ctx, slug: str, why: str, report: ScanReport) -> None:
    """Workers lost with the multiplexer server: brought back (recover_on_start), or the task says how to."""
    from orch.workflow import recover

    try:
        task = T.get(ctx, slug)
    except OrchError:
        return  # the task file went away meanwhile
    if task.state not in IN_PROGRESS:
        return
    if not ctx.cfg.recover_on_start:
        T.move(ctx, slug, S.LOST, TaskEvent.WORKERS_LOST, PASS,
               status=f"workers lost ({why}); `orch recover {slug}` brings them back")
        return
    try:
        report.recovered += recover.recover_task(ctx, task, why, ctx.panes(), PASS)
    except OrchError as exc:
        report.errors.append(f"{slug}: could not recover: {exc}")
        T.move(ctx, slug, S.LOST, TaskEvent.WORKERS_LOST, PASS, status=f"could not recover: {exc}", problem=str(exc))


def advance_pipeline(ctx: Ctx, report: ScanReport, rounds: int = 3) -> None:
    """Move every task in the review loop on by one step (validation, review, fix round, dossier); again when
    messages arrived meanwhile (a verdict given while its reviewer was being started is acted on in this pass, not
    left for a pass that may be far away)."""
    for _ in range(rounds):
        if not _advance_once(ctx, report):
            return


def _advance_once(ctx: Ctx, report: ScanReport) -> int:
    """One step of the review loop; returns how many messages were applied after it."""
    rows = ctx.store.task_rows()  # (the states are the database's: the files of idle tasks are not read)
    moving = {slug for slug, row in rows.items() if row.state in (S.VALIDATING, S.REVIEWING)}
    try:  # a task with no record yet (a database rebuilt from the files) is read from its file
        unrecorded = {n[:-3] for n in os.listdir(ctx.cfg.tasks_path) if n.endswith(".md")} - set(rows)
    except OSError:
        unrecorded = set()
    moving |= unrecorded
    if ctx.cfg.cluster.address:  # (a task on a host goes through the review loop there)
        from orch.workflow import fleet

        moving -= fleet.hosted(ctx)
    if not moving:
        return 0
    tasks, _ = T.load(ctx, moving)
    busy = [t for t in tasks.values() if t.state in (S.VALIDATING, S.REVIEWING)]
    if not busy:
        return 0
    from orch.workflow import review

    panes = ctx.panes()
    for task in busy:
        try:
            did = review.advance(ctx, task, panes)
        except OrchError as exc:
            report.errors.append(f"{task.slug}: {exc}")
            ctx.event("pipeline-error", str(exc), task=task.slug)
            continue
        if did:
            report.pipeline.append(did)
    applied = inbox.drain(ctx)
    report.applied += applied
    return applied
