"""What an inbox message means for its task: a pure function from the text and the task's current state to an
effect. A message that names a move the lifecycle does not allow from that state (a `done:` for a task with no
coder) is a progress note, not a transition."""

from __future__ import annotations

from orch.lifecycle import Actor, Move, TaskEvent, TaskState, targets
from orch.record import dataclass, field
from orch.taskfile import one_line


@dataclass
class Effect:
    status: str
    move: Move | None = None
    fields: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> TaskState | None:
        return self.move.to if self.move else None


def _after(text: str, prefix: str) -> str | None:
    """The rest of ``text`` when it starts with ``prefix`` (case-insensitive, ':' or space after it)."""
    low = text.lower()
    if not low.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    if rest and rest[0] not in ": \t":
        return None
    return rest.lstrip(": \t").strip()


def interpret(text: str, current_state: str, from_worker: bool) -> Effect:
    """The effect of one message on a task in ``current_state``."""
    text = text.strip()
    actor = Actor.WORKER if from_worker else Actor.PERSON
    question = _after(text, "needs input")
    if question is not None:
        return _moving(Effect(f"needs input: {question}", fields={"question": question or "(no question given)"}),
                       current_state, TaskEvent.NEEDS_INPUT, actor)
    why = _after(text, "blocked")
    if why is not None:
        return _moving(Effect(f"blocked: {why}", fields={"blocked": why or "(no reason given)"}),
                       current_state, TaskEvent.BLOCKED, actor)
    summary = _after(text, "done")
    if summary is not None:
        done = Effect(f"done: {summary}",
                      fields={"report": summary or "(no summary given)", "question": None, "blocked": None})
        return _moving(done, current_state, TaskEvent.DONE, actor)
    path = _after(text, "worktree")
    if path:
        return Effect(status=f"worktree {path}", meta={"worktree": one_line(path)})
    url = _after(text, "pr created")
    if url is not None:
        return Effect(status=f"PR created {url}", fields={"pr": url.split()[0]} if url else {})
    who = "worker" if from_worker else "user"
    return Effect(status=text, fields={f"last {who} message": text})


def _moving(effect: Effect, current_state: str, event: TaskEvent, actor: Actor) -> Effect:
    """The effect with its move when the lifecycle allows it from the current state, else a note saying so."""
    allowed = targets(current_state, event, actor)
    if allowed:
        effect.move = Move(allowed[0], event, actor)
        return effect
    if current_state == _natural_target(event):
        return effect  # already there (a second question while one is open): the fields and the line count
    return Effect(f"{effect.status} (noted; not a move for a {current_state} task)")


def _natural_target(event: TaskEvent) -> str:
    return {TaskEvent.NEEDS_INPUT: TaskState.NEEDS_INPUT, TaskEvent.BLOCKED: TaskState.BLOCKED,
            TaskEvent.DONE: TaskState.VALIDATING}[event].value
