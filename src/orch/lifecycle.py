"""The lifecycle: task states, worker states, and the one table of allowed transitions between them. Pure.

Every state change in orch goes through ``check_task`` or ``check_worker`` (``workflow/tasks.move`` and
``workflow/workers.move`` call them while they hold the task file or the registry row): a move that is not in the
table is not made. It is logged as an event (``refused: ready -> coding on "done:" from a worker``) and, where a
person's command asked for it, refused with one line and exit 1.

A row says: from this state, this event, caused by one of these actors, may move to that state. Staying in the
same state is not a transition (a second question while one is open, a new coder started in the same round).
"""

from __future__ import annotations

from enum import StrEnum

from orch.record import dataclass


class TaskState(StrEnum):
    QUEUED = "queued"
    CODING = "coding"
    VALIDATING = "validating"
    REVIEWING = "reviewing"
    FIXING = "fixing"
    CHECKING = "checking"
    READY = "ready"
    MERGED = "merged"
    NEEDS_INPUT = "needs-input"
    BLOCKED = "blocked"
    LOST = "lost"
    DONE = "done"


class WorkerState(StrEnum):
    STARTING = "starting"
    WORKING = "working"
    WAITING = "waiting"
    IDLE = "idle"
    EXITED = "exited"
    LOST = "lost"
    CLOSED = "closed"


class Actor(StrEnum):
    PASS = "pass"  # orch's reconcile pass: `orch scan`, `orch run`, the review loop it drives
    WORKER = "worker"  # a worker: its `orch -`, `orch verdict`, hooks and final messages
    PERSON = "person"  # the person: a command, or a message without a worker token

    @property
    def who(self) -> str:
        return {"pass": "the pass", "worker": "a worker", "person": "the person"}[self.value]


class TaskEvent(StrEnum):
    START = "start"  # a coder is started for the task
    NEEDS_INPUT = '"needs input:"'  # the coder (or the person) says it needs an answer
    WAITING = "coder waiting"  # the coder's screen shows a permission prompt or question
    ANSWER = "answer"  # the person answers (`orch reply`, `orch send`)
    WORKING_AGAIN = "coder working again"  # the screen shows the coder at work again
    DONE = '"done:"'  # the coder (or the person) reports its work committed
    BLOCKED = '"blocked:"'  # the coder (or the person) says it cannot go on
    REVIEW = "review started"  # validation passed: the reviewer gets the branch
    SEND_BACK = "sent back"  # uncommitted work, failed validation or requested changes: a new round
    OUT_OF_ROUNDS = "out of rounds"  # max_review_rounds without approval
    CANNOT_VALIDATE = "worktree gone"  # the worktree disappeared before validation
    REVIEWER_FAILED = "reviewer failed"  # the reviewer could not start, or ended without a verdict
    REVIEW_DISCARDED = "review discarded"  # the worktree changed during the review
    REVALIDATE = "validate again"  # the branch moved during the review, or the review's record or reviewer is gone
    APPROVED = "approved"  # a counted approval with every validation passed: the dossier is written
    FORGE_AGREES = "forge agrees"  # on the approved sha: required checks green, bots spoken, no change request
    FORGE_PENDING = "forge pending"  # the PR no longer agrees with a ready task (a check re-run, a new head)
    FORGE_ROUND = "forge round"  # a failed check, a review thread or a change request on the PR: a new round
    LANDED = "landed"  # `orch land`: its train's validated tip is now the base
    TRAIN_FAILED = "train failed"  # `orch land`: the train fails with it (bisected to it): a new round
    REBASED = "rebased"  # `orch land` (rebase): its patches changed on the new base: validated and reviewed again
    DOSSIER_FAILED = "dossier failed"  # the approved branch's dossier cannot be built (its base was rewritten)
    BRANCH_MOVED = "branch moved"  # a ready task's branch has commits the review did not see
    CODER_LOST = "coder lost"  # the coder's window is gone or its agent exited while it had work
    WORKERS_LOST = "workers lost"  # the workers went with the multiplexer server and are not brought back now
    RECOVER = "recover"  # a lost task's coder is started again in its worktree
    RETRY = "retry"  # the person sends a blocked task back to its coder, or has a ready one validated again
    CLOSE = "close"  # the person closes the task
    HOST_REPORTS = "host reports"  # many hosts: the task's host reports its state (its own orch moved it there)
    WORKSPACE_ROUND = "workspace round"  # many hosts, on a host: a round its workspace sends (PR, train, retry)


class WorkerEvent(StrEnum):
    HOOK = "hook"  # the agent's own hook
    SCREEN = "screen"  # two equal readings of its screen
    PROMPT = "prompt typed"  # orch typed work in and the agent took it
    DELIVERY_FAILED = "delivery failed"  # a prompt was not taken
    EXITED = "exited"  # its process ended (the pane is kept)
    LOST = "lost"  # its window is gone, or its pane runs another process
    CLOSED = "closed"  # the person closed its task
    ADOPTED = "adopted"  # a window carrying its tags is re-registered (after a lost database)


S, W, E, V = TaskState, WorkerState, TaskEvent, WorkerEvent
PASS, WORKER, PERSON = Actor.PASS, Actor.WORKER, Actor.PERSON


@dataclass(frozen=True)
class Transition:
    frm: StrEnum
    to: StrEnum
    event: StrEnum
    actors: frozenset[Actor]

    def row(self) -> str:
        who = ", ".join(a.value for a in Actor if a in self.actors)
        return f"| {self.frm} | {self.to} | {self.event} | {who} |"


def _rows(*rows: tuple[tuple[StrEnum, ...], tuple[StrEnum, ...], StrEnum, tuple[Actor, ...]]) -> tuple[Transition, ...]:
    return tuple(Transition(f, t, event, frozenset(actors))
                 for frm, to, event, actors in rows for f in frm for t in to if f != t)


# states in which the task's coder is expected to be alive and working
ACTIVE = frozenset({S.CODING, S.FIXING, S.NEEDS_INPUT})
# states of a task that has work in progress (a coder, or the review loop)
IN_PROGRESS = ACTIVE | {S.VALIDATING, S.REVIEWING}
OPEN = frozenset(S) - {S.DONE}
# the states a task on a host may be reported in before it is ready (its host's own lifecycle moved it)
ON_HOST = (S.QUEUED, S.CODING, S.VALIDATING, S.REVIEWING, S.FIXING, S.NEEDS_INPUT, S.BLOCKED, S.LOST)

TASK_TRANSITIONS: tuple[Transition, ...] = _rows(
    ((S.QUEUED,), (S.CODING,), E.START, (PASS, PERSON)),
    ((S.LOST, S.BLOCKED), (S.CODING,), E.START, (PERSON,)),
    ((S.CODING, S.FIXING), (S.NEEDS_INPUT,), E.NEEDS_INPUT, (WORKER, PERSON)),
    ((S.CODING, S.FIXING), (S.NEEDS_INPUT,), E.WAITING, (PASS,)),
    ((S.NEEDS_INPUT,), (S.CODING, S.FIXING), E.ANSWER, (PERSON,)),
    ((S.NEEDS_INPUT,), (S.CODING, S.FIXING), E.WORKING_AGAIN, (PASS,)),
    ((S.CODING, S.FIXING, S.NEEDS_INPUT, S.REVIEWING, S.BLOCKED), (S.VALIDATING,), E.DONE, (WORKER, PERSON)),
    ((S.CODING, S.FIXING, S.NEEDS_INPUT, S.VALIDATING, S.REVIEWING), (S.BLOCKED,), E.BLOCKED, (WORKER, PERSON)),
    ((S.VALIDATING,), (S.REVIEWING,), E.REVIEW, (PASS,)),
    ((S.VALIDATING, S.REVIEWING), (S.FIXING,), E.SEND_BACK, (PASS,)),
    ((S.VALIDATING, S.REVIEWING), (S.BLOCKED,), E.OUT_OF_ROUNDS, (PASS,)),
    ((S.VALIDATING,), (S.BLOCKED,), E.CANNOT_VALIDATE, (PASS,)),
    ((S.REVIEWING,), (S.BLOCKED,), E.REVIEWER_FAILED, (PASS,)),
    ((S.REVIEWING,), (S.BLOCKED,), E.REVIEW_DISCARDED, (PASS,)),
    ((S.REVIEWING,), (S.VALIDATING,), E.REVALIDATE, (PASS, PERSON)),
    ((S.REVIEWING,), (S.READY, S.CHECKING), E.APPROVED, (PASS,)),
    ((S.CHECKING,), (S.READY,), E.FORGE_AGREES, (PASS,)),
    ((S.READY,), (S.CHECKING,), E.FORGE_PENDING, (PASS,)),
    ((S.CHECKING, S.READY), (S.FIXING,), E.FORGE_ROUND, (PASS,)),
    ((S.CHECKING, S.READY), (S.BLOCKED,), E.OUT_OF_ROUNDS, (PASS,)),
    ((S.REVIEWING,), (S.BLOCKED,), E.DOSSIER_FAILED, (PASS,)),
    ((S.READY, S.CHECKING), (S.VALIDATING,), E.BRANCH_MOVED, (PASS,)),
    ((S.CODING, S.FIXING, S.NEEDS_INPUT), (S.LOST,), E.CODER_LOST, (PASS,)),
    ((S.CODING, S.FIXING, S.NEEDS_INPUT, S.VALIDATING, S.REVIEWING), (S.LOST,), E.WORKERS_LOST, (PASS,)),
    ((S.LOST,), (S.CODING, S.FIXING), E.RECOVER, (PERSON,)),
    ((S.BLOCKED,), (S.FIXING,), E.RETRY, (PERSON,)),
    ((S.READY, S.CHECKING), (S.VALIDATING,), E.RETRY, (PERSON,)),
    ((S.READY,), (S.MERGED,), E.LANDED, (PERSON, PASS)),
    ((S.READY,), (S.FIXING,), E.TRAIN_FAILED, (PERSON,)),
    ((S.READY,), (S.VALIDATING,), E.REBASED, (PERSON,)),
    (tuple(s for s in S if s in OPEN), (S.DONE,), E.CLOSE, (PERSON,)),
    (ON_HOST, (*ON_HOST[1:], S.READY), E.HOST_REPORTS, (PASS,)),
    ((S.READY, S.CHECKING, S.BLOCKED), (S.FIXING, S.VALIDATING), E.WORKSPACE_ROUND, (PASS,)),
)

LIVE_WORKER = (W.STARTING, W.WORKING, W.WAITING, W.IDLE)
WORKER_TRANSITIONS: tuple[Transition, ...] = _rows(
    (LIVE_WORKER, (W.WORKING, W.IDLE, W.WAITING), V.HOOK, (WORKER,)),
    (LIVE_WORKER, (W.WORKING, W.IDLE, W.WAITING), V.SCREEN, (PASS,)),
    ((W.STARTING, W.IDLE, W.WAITING), (W.WORKING,), V.PROMPT, (PASS, PERSON)),
    ((W.STARTING, W.WORKING, W.IDLE), (W.WAITING,), V.DELIVERY_FAILED, (PASS,)),
    (LIVE_WORKER, (W.EXITED,), V.EXITED, (PASS,)),
    ((*LIVE_WORKER, W.EXITED), (W.LOST,), V.LOST, (PASS, PERSON)),
    ((*LIVE_WORKER, W.EXITED), (W.CLOSED,), V.CLOSED, (PERSON,)),
    ((W.STARTING, W.WAITING, W.IDLE, W.EXITED, W.LOST, W.CLOSED), (W.WORKING,), V.ADOPTED, (PASS,)),
)

_TASK_INDEX: dict[tuple[str, str, str], frozenset[Actor]] = {(t.frm, t.to, t.event): t.actors
                                                                for t in TASK_TRANSITIONS}
_WORKER_INDEX: dict[tuple[str, str, str], frozenset[Actor]] = {(t.frm, t.to, t.event): t.actors
                                                                  for t in WORKER_TRANSITIONS}


@dataclass(frozen=True)
class Move:
    """A task move asked for: to ``to``, on ``event``, by ``actor``."""

    to: TaskState
    event: TaskEvent
    actor: Actor


class Refused(Exception):
    """A move the table does not allow. ``str()`` is the line for the log and for the person."""

    def __init__(self, frm: str, to: str, event: StrEnum, actor: Actor, subject: str = "") -> None:
        self.frm, self.to, self.event, self.actor, self.subject = frm, to, event, actor, subject
        super().__init__(f"refused: {subject + ' ' if subject else ''}{frm} -> {to} on {event.value} "
                         f"from {actor.who}")


def allowed_task(frm: str, to: TaskState, event: TaskEvent, actor: Actor) -> bool:
    """Is this task move in the table? Staying in the same state is always allowed (it is not a move)."""
    return frm == to or actor in _TASK_INDEX.get((_task_state(frm), to, event), frozenset())


def check_task(frm: str, to: TaskState, event: TaskEvent, actor: Actor, subject: str = "") -> None:
    if not allowed_task(frm, to, event, actor):
        raise Refused(frm, to, event, actor, subject)


def allowed_worker(frm: str, to: WorkerState, event: WorkerEvent, actor: Actor) -> bool:
    return frm == to or actor in _WORKER_INDEX.get((_worker_state(frm), to, event), frozenset())


def check_worker(frm: str, to: WorkerState, event: WorkerEvent, actor: Actor, subject: str = "") -> None:
    if not allowed_worker(frm, to, event, actor):
        raise Refused(frm, to, event, actor, subject)


def targets(frm: str, event: TaskEvent, actor: Actor) -> list[TaskState]:
    """The states ``event`` by ``actor`` may move a task in ``frm`` to."""
    state = _task_state(frm)
    return [t.to for t in TASK_TRANSITIONS  # type: ignore[misc]
            if t.frm == state and t.event == event and actor in t.actors]


def _task_state(text: str) -> TaskState | str:
    try:
        return TaskState(text)
    except ValueError:
        return text  # a state no row starts from: every move from it is refused


def _worker_state(text: str) -> WorkerState | str:
    try:
        return WorkerState(text)
    except ValueError:
        return text


# -- the way on from every state that is not final: the README's table, and the hints in refusals --------------

WAYS_ON: dict[TaskState, tuple[str, str]] = {
    S.QUEUED: ("the pass starts its coder once its dependencies are closed", "`orch run` (or `orch scan`); "
                                                                             "`orch start TASK` now"),
    S.CODING: ("the coder reports (`done:`, `needs input:`, `blocked:`)", "`orch send TASK ...` to steer it"),
    S.FIXING: ("the coder reports its fixes (`done:`)", "`orch send TASK ...` to steer it"),
    S.NEEDS_INPUT: ("your answer", "`orch reply TASK ...`"),
    S.VALIDATING: ("the pass checks the branch and runs the validation", "`orch run` (or `orch scan`)"),
    S.REVIEWING: ("the reviewer's verdict", "`orch run` (or `orch scan`) acts on it"),
    S.BLOCKED: ("a new round for the coder with the open blockers (or the coder's `done:` once unblocked)",
                "`orch retry TASK [--rounds N]`"),
    S.LOST: ("its coder started again in the same worktree", "`orch recover TASK`"),
    S.CHECKING: ("the pull request agreeing on the approved sha: required checks green, the configured bots "
                 "spoken, no change request open (a failed check or a thread is a fix round)",
                 "`orch check TASK` shows what it waits for"),
    S.READY: ("you land it; a new commit on its branch sends it back to validation and review by itself; "
                "when its base moved on, `orch retry` does", "`orch land TASK...`; `orch close TASK`; `orch retry TASK`"),
    S.MERGED: ("you close it: its work is on the base (its worktree stays until then)", "`orch close TASK`"),
}
FINAL = frozenset({S.DONE})
CLOSE_ONLY = frozenset({S.MERGED})  # final but open: its work landed; only the person's close ends it


def way_on(state: str, slug: str = "TASK") -> str:
    """What moves a task in ``state`` on, in words, for refusals: "a blocked task moves on with a new round for the
    coder with the open blockers: `orch retry login-fix [--rounds N]`"."""
    found = WAYS_ON.get(_task_state(state))  # type: ignore[call-overload]
    if found is None:
        return f"a {state} task does not move on" if state in FINAL else f"{state!r} is not a task state"
    what, command = found
    return f"a {state} task moves on with {what}: {command.replace('TASK', slug)}"


def markdown() -> str:
    """The README's lifecycle tables (tests/test_lifecycle.py checks that the README holds exactly this)."""
    lines = ["| state | what moves it on | the command |", "| --- | --- | --- |"]
    for state, (what, command) in WAYS_ON.items():
        lines.append(f"| `{state}` | {what} | {command} |")
    lines += ["", "| from | to | event | who |", "| --- | --- | --- | --- |"]
    lines += [t.row() for t in TASK_TRANSITIONS if t.event != E.HOST_REPORTS]
    # many hosts: one row for the host's reports (any state its own lifecycle reached, from any it may be in)
    lines.append(f"| {', '.join(ON_HOST)} | {', '.join((*ON_HOST[1:], S.READY))} | {E.HOST_REPORTS} | pass |")
    lines += ["", "| worker from | to | event | who |", "| --- | --- | --- | --- |"]
    lines += [t.row() for t in WORKER_TRANSITIONS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m orch.lifecycle: the README's tables
    print(markdown(), end="")
