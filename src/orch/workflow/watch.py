"""Watching live workers: their state, and what a state means for their task.

Worker states: starting, working, waiting (permission prompt or question), idle (turn ended, waiting for input),
exited (with its status), lost. Sources, in this order: hook events (applied by the inbox), the process (a dead
pane and its exit status; scan.plan() finds those), the screen (per-profile patterns on the pane's last lines,
read for all workers in one tmux call). A screen reading changes the state only after two equal readings in a row
(hysteresis: no flicker, no sticky state). A worker whose agent reports through hooks is read from the screen
only for `waiting` (some agents have no hook for a permission prompt) and before its first hook.

For the task: a coder whose turn ended without `done`, `needs input` or `blocked` gets one short reminder of how
to report; if it goes idle again the task shows "idle, no report". A coder waiting on a permission prompt makes
the task `needs-input`, with the screen excerpt.
"""

from __future__ import annotations

import re
import time

from orch import agents
from orch.agents.profile import AgentProfile
from orch.lifecycle import LIVE_WORKER, Actor, TaskEvent, TaskState, WorkerEvent, WorkerState
from orch.mux import Pane
from orch.record import dataclass
from orch.store import Worker
from orch.workflow import deliver, workers
from orch.workflow import tasks as T
from orch.workflow.context import Ctx

S = TaskState
SCREEN_LINES = 15
REMINDER = (
    "orch here: your turn ended without a report. When your work is committed, run "
    'orch - "done: <summary>"; if you need an answer, orch - "needs input: <question>"; '
    'if you cannot go on, orch - "blocked: <why>".'
)
VERDICT_REMINDER = (
    "orch here: your review ended without a verdict. Give it now: {orch} verdict approve, or {orch} verdict "
    "request-changes 'blocker: [path:line] what must change' (one argument per finding); if you cannot run "
    "commands, end your final message with a VERDICT: block."
)


def classify(screen: str, profile: AgentProfile) -> str:
    """The state a screen shows ("" when no pattern matches). Waiting wins over working wins over idle."""
    tail = "\n".join(screen.rstrip("\n").splitlines()[-5:])
    for state, pattern in (("waiting", profile.screen_waiting), ("working", profile.screen_working),
                           ("idle", profile.screen_idle)):
        if pattern and re.search(pattern, tail, re.M):
            return state
    return ""


@dataclass(frozen=True)
class Reading:
    state: str  # the worker's state after this reading
    screen_state: str
    screen_count: int
    changed: bool


def step(worker: Worker, reading: str, uses_hooks: bool, prompt_hook: bool = True, screen_turns: bool = False) -> Reading:
    """Hysteresis: a screen state must be read twice in a row before it becomes the worker's state. Once an
    agent's hooks have spoken, the screen only adds what they cannot say: `waiting`, `working` for agents whose
    hooks do not report a prompt being taken, and both ends of a turn for agents whose turn end is read from the
    screen (``screen_turns``)."""
    if not reading:
        return Reading(worker.state, "", 0, False)
    # counted up to 2 (all the hysteresis needs): a steady screen then writes nothing more on later passes
    count = min(worker.screen_count + 1, 2) if reading == worker.screen_state else 1
    trusted = (not uses_hooks or worker.hook_at is None or reading == "waiting" or screen_turns
               or (reading == "working" and not prompt_hook))
    if count >= 2 and trusted and reading != worker.state:
        return Reading(reading, reading, count, True)
    return Reading(worker.state, reading, count, False)


def screens_wanted(ctx: Ctx) -> list[str]:
    """The panes whose screens ``observe`` will read, as the registry knows them before any listing (for
    ``Ctx.prefetch``)."""
    live = [w for w in ctx.store.live_workers() if w.state in LIVE_WORKER]
    return [w.pane_id for w in live if _has_patterns(deliver.profile_of(ctx, w.agent))]


def observe(ctx: Ctx, panes: list[Pane]) -> list[str]:
    """Read every live worker's screen (one tmux call), update states, react for their tasks."""
    notes: list[str] = []
    by_id = {p.pane_id: p for p in panes}
    live = [
        w for w in ctx.store.live_workers()
        if w.state in LIVE_WORKER and w.pane_id in by_id and not by_id[w.pane_id].dead
    ]
    profiles = {w.id: deliver.profile_of(ctx, w.agent) for w in live}
    readable = [w for w in live if _has_patterns(profiles[w.id])]
    screens = ctx.screens([w.pane_id for w in readable], SCREEN_LINES) if readable else {}
    for w in readable:
        profile = profiles[w.id]
        screen = screens.get(w.pane_id)
        if screen is None or profile is None:
            continue
        r = step(w, classify(screen, profile), profile.hooks, profile.prompt_hook, profile.turn_end == "screen")
        if r.changed:
            moved = workers.move(ctx, w, WorkerState(r.state), WorkerEvent.SCREEN, Actor.PASS, "screen",
                                 screen_state=r.screen_state, screen_count=r.screen_count)
            if moved and r.state == WorkerState.IDLE:
                agent = agents.agent(profile.kind)
                if agent.reports_in_transcript:
                    from orch.workflow.inbox import transcript_turn

                    transcript_turn(ctx, w, agent)
        elif (r.screen_state, r.screen_count) != (w.screen_state, w.screen_count):
            ctx.store.update_worker(w.id, screen_state=r.screen_state, screen_count=r.screen_count)
    live = ctx.store.live_workers()
    tasks, _ = T.load(ctx, {w.task for w in live})
    for w in live:
        if ctx.stopping:  # the daemon is asked to stop: reminders (each may take seconds to type) wait for the next
            break
        if w.task not in tasks or w.pane_id not in by_id:
            continue
        if w.role == "coder":
            note = react(ctx, tasks[w.task], w, by_id[w.pane_id], screens.get(w.pane_id))
        else:
            note = react_reviewer(ctx, tasks[w.task], w, by_id[w.pane_id])
        if note:
            notes.append(note)
    sent = deliver.flush_outbox(ctx, panes)
    if sent:
        notes.append(f"delivered {sent} queued message(s)")
    return notes


def _idle_long_enough(ctx: Ctx, worker: Worker) -> bool:
    """Its turn ended after its last prompt, and it has stayed idle ``idle_reminder_after`` seconds."""
    prompted = worker.prompted_at or worker.created_at
    if worker.state != WorkerState.IDLE or worker.state_since < prompted:
        return False  # idle from before the last prompt: the agent has not started on it yet
    return time.time() - worker.state_since >= ctx.cfg.idle_reminder_after


def react_reviewer(ctx: Ctx, task: T.Task, reviewer: Worker, pane: Pane) -> str | None:
    """A reviewer whose turn ended without a verdict gets one reminder of how to give it; idle again without one,
    its review has failed and the task is blocked (a review has an end: it never waits for ever)."""
    slug = task.slug
    if task.state != S.REVIEWING or not _idle_long_enough(ctx, reviewer):
        return None
    pending = [r for r in ctx.store.reviews(slug) if r.status == "pending"]
    if not pending:
        return None
    prompted = reviewer.prompted_at or reviewer.created_at
    if reviewer.reminded_at is None or reviewer.reminded_at < prompted:
        reminded = time.time()
        from orch.workflow import prompts

        text = VERDICT_REMINDER.format(orch=prompts.orch_command(ctx))
        outcome = deliver.send_or_queue(ctx, pane, text, deliver.NOT_A_PROMPT[1])
        ctx.store.update_worker(reviewer.id, reminded_at=reminded)
        T.record(ctx, slug, status=f"reviewer went idle without a verdict: reminder {outcome}")
        return f"{slug}: verdict reminder {outcome}"
    if reviewer.state_since > reviewer.reminded_at:
        ctx.store.update_review(pending[-1].id, status="failed", note="the reviewer stopped without a verdict",
                                acted_at=time.time())
        T.move(ctx, slug, S.BLOCKED, TaskEvent.REVIEWER_FAILED, Actor.PASS,
               status="the reviewer went idle again without a verdict",
               blocked=f"the reviewer gave no verdict; `orch capture {slug}:reviewer` shows it, `orch retry {slug}` "
                       "goes on")
        return f"{slug}: reviewer gave no verdict"
    return None


def resumed_state(task: T.Task) -> TaskState:
    """Where a task waiting for input goes back to: coding in its first round, fixing after."""
    return TaskState.FIXING if (task.field("round") or "1") != "1" else TaskState.CODING


def _has_patterns(profile: AgentProfile | None) -> bool:
    return profile is not None and bool(profile.screen_idle or profile.screen_working or profile.screen_waiting)


def react(ctx: Ctx, task: T.Task, coder: Worker, pane: Pane, screen: str | None) -> str | None:
    """What the coder's state means for its task."""
    slug = task.slug
    if coder.state == WorkerState.WAITING and task.state in (S.CODING, S.FIXING):
        if screen is None:
            screen = ctx.mux.capture(pane.pane_id, SCREEN_LINES)
        excerpt = " | ".join(line.strip() for line in screen.strip().splitlines()[-4:] if line.strip())
        T.move(ctx, slug, S.NEEDS_INPUT, TaskEvent.WAITING, Actor.PASS,
               status=f"coder is waiting (permission prompt or question): {excerpt}",
               question=f"the coder is waiting: {excerpt}", waiting_on="screen")
        return f"{slug}: coder waiting"
    if (coder.state == WorkerState.WORKING and task.state == S.NEEDS_INPUT
            and task.field("waiting on") == "screen"):
        T.move(ctx, slug, resumed_state(task), TaskEvent.WORKING_AGAIN, Actor.PASS, status="coder is working again",
               question=None, waiting_on=None)
        return f"{slug}: coder working again"
    if task.state not in (S.CODING, S.FIXING) or not ctx.cfg.idle_reminder or not _idle_long_enough(ctx, coder):
        return None
    prompted = coder.prompted_at or coder.created_at
    if coder.reminded_at is None or coder.reminded_at < prompted:
        reminded = time.time()
        outcome = deliver.send_or_queue(ctx, pane, REMINDER, deliver.NOT_A_PROMPT[0])
        ctx.store.update_worker(coder.id, reminded_at=reminded)
        T.record(ctx, slug, status=f"coder went idle without a report: reminder {outcome}")
        return f"{slug}: reminder {outcome}"
    if coder.state_since > coder.reminded_at and task.field("problem") != "idle, no report":
        T.record(ctx, slug, status="coder is idle after the reminder, still no report", problem="idle, no report")
        return f"{slug}: idle, no report"
    return None
