"""The pass's decisions: ``plan()``, a pure function of the task files, the closed tasks, the registry's live
workers and this workspace's panes (what to start, what was lost or exited, what to adopt, what is an orphan). It
runs in every `orch scan` and in `orch status`, which shows what a pass would find without doing it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping

from orch.lifecycle import ACTIVE, TaskState, WorkerState
from orch.mux import Pane, exit_code
from orch.record import dataclass, field
from orch.store.records import Worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.workflow.context import Ctx
    from orch.workflow.tasks import Task

S, W = TaskState, WorkerState
GONE = "its window is gone"


@dataclass(frozen=True)
class Orphan:
    """A window carrying orch's tags that belongs to no open task (reported, never killed unasked)."""

    session_name: str
    window_id: str
    pane_id: str
    task: str
    role: str
    worker: str
    reason: str


@dataclass
class Plan:
    spawn: list[str] = field(default_factory=list)
    lost: list[tuple[Worker, str]] = field(default_factory=list)
    exited: list[tuple[Worker, int | None]] = field(default_factory=list)
    adopt: list[Pane] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    task_lost: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, list[str]]] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)  # task files still being written: started a moment later
    # coders started for a task still queued: orch stopped between creating the window and recording it (passes run
    # under one lock, so nothing else leaves that state); the window is closed and the start done again
    interrupted: list[Worker] = field(default_factory=list)


SETTLE = 1.0  # seconds a queued task's file must have rested before its coder starts


def settling(tasks: dict[str, Task]) -> tuple[set[str], float]:
    """Queued tasks whose file changed less than SETTLE seconds ago (an editor's first save, a file being written),
    and how long until the last of them has rested."""
    now, fresh, wait = time.time(), set(), 0.0
    for slug, task in tasks.items():
        if task.state != S.QUEUED:
            continue
        try:
            age = now - os.stat(task.path).st_mtime
        except OSError:
            continue
        if -5 < age < SETTLE:
            fresh.add(slug)
            wait = max(wait, SETTLE - max(age, 0))
    return fresh, wait


def proven(ctx: Ctx, panes: list[Pane], known: Collection[Worker] = ()) -> set[str]:
    """The windows among ``panes`` whose tags carry orch's proof (``Ctx.proof``). The windows of ``known`` workers
    (the registry's) are not asked: ``plan`` needs a proof only to adopt a window it does not know."""
    ids = {w.id for w in known}
    return {p.window_id for p in panes if p.is_agent and p.worker not in ids and ctx.proven(p)}


def agent_panes(panes: list[Pane]) -> dict[str, Pane]:
    """The agent pane of every window orch tagged, by worker id (a window's extra shell panes are skipped)."""
    found: dict[str, Pane] = {}
    for pane in panes:
        if not pane.is_agent:
            continue
        best = found.get(pane.worker)
        if best is None or pane.pane_index < best.pane_index:
            found[pane.worker] = pane
    return found


NOT_PROVEN = "no proof that orch made it (a worker could have): not adopted"


def held_for(slug: str) -> str:
    return f"`orch start {slug}` (hold: true)"


def plan(tasks: dict[str, Task], done: set[str], workers: list[Worker], panes: list[Pane],
         proven: Collection[str] = frozenset(), settling: Collection[str] = frozenset(),
         overlaps: Mapping[str, list[str]] | None = None) -> Plan:
    """What one pass does, from the task files, the closed tasks, the registry's live workers and this workspace's
    panes. ``proven``: the windows whose tags carry orch's proof (only those are adopted); ``settling``: task
    files changed a moment ago (their author may still be writing: not started yet); ``overlaps``: queued tasks
    whose ``paths:`` overlap work in flight, and what each waits for (the conflict radar's). Pure."""
    overlaps = overlaps or {}
    out = Plan()
    by_worker = agent_panes(panes)
    alive_roles: set[tuple[str, str]] = set()
    known_ids = {w.id for w in workers}
    for w in workers:
        pane = by_worker.get(w.id)
        if pane is None or pane.pane_id != w.pane_id:
            if w.state != W.LOST:
                out.lost.append((w, GONE))
            continue
        if pane.pane_pid != w.pane_pid:
            out.lost.append((w, f"its pane now runs another process (pid {pane.pane_pid}, was {w.pane_pid})"))
            continue
        if pane.dead:
            code = exit_code(pane)
            if w.state != W.EXITED and code is not None:  # no status yet: tmux is still reaping it, look next pass
                out.exited.append((w, code))
            continue
        alive_roles.add((w.task, w.role))
    for worker_id, pane in by_worker.items():
        if worker_id in known_ids:
            if pane.task not in tasks:
                out.orphans.append(_orphan(pane, _why_orphan(pane.task, done)))
            continue
        if pane.task in tasks and not pane.dead and pane.window_id in proven:
            out.adopt.append(pane)
            alive_roles.add((pane.task, pane.role))
        elif pane.task in tasks and not pane.dead:
            out.orphans.append(_orphan(pane, NOT_PROVEN))
        else:
            out.orphans.append(_orphan(pane, _why_orphan(pane.task, done) if pane.task not in tasks else "dead pane"))
    gone = {(w.task, w.role) for w, _ in out.lost} | {(w.task, w.role) for w, _ in out.exited}
    for slug, task in tasks.items():
        has_coder = (slug, "coder") in alive_roles
        if task.state == S.QUEUED and not has_coder:
            missing = [d for d in task.depends_on if d not in done]
            if missing:
                out.waiting.append((slug, missing))
            elif task.hold:
                out.waiting.append((slug, [held_for(slug)]))
            elif slug in overlaps:
                out.waiting.append((slug, overlaps[slug]))
            elif slug in settling:
                out.settling.append(slug)
            else:
                out.spawn.append(slug)
        elif task.state == S.QUEUED:
            started = [w for w in workers if w.task == slug and w.role == "coder" and w.state != W.LOST
                       and w.id in by_worker and not by_worker[w.id].dead]
            if started:
                out.interrupted += started
                out.spawn.append(slug)
        elif task.state in ACTIVE and not has_coder:
            # its coder went in this pass, or earlier (a pass killed after marking it lost): either way it has none
            dying = [w for w in workers if w.task == slug and w.role == "coder" and w.id in by_worker
                     and by_worker[w.id].dead and exit_code(by_worker[w.id]) is None]
            if (slug, "coder") in gone or not dying:
                out.task_lost.append((slug, "coder"))
    return out


def _why_orphan(task: str, done: set[str]) -> str:
    if task in done:
        return "its task is closed"
    return "no task file"


def _orphan(pane: Pane, reason: str) -> Orphan:
    return Orphan(pane.session_name, pane.window_id, pane.pane_id, pane.task, pane.role, pane.worker, reason)
