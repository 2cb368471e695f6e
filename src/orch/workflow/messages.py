"""What an inbox message means for its task: a pure function from text to an effect."""

from __future__ import annotations

from dataclasses import dataclass, field

from orch.taskfile import one_line
from orch.workflow import tasks as T


@dataclass
class Effect:
    status: str
    state: str | None = None
    fields: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)


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
    who = "worker" if from_worker else "user"
    question = _after(text, "needs input")
    if question is not None:
        return Effect(
            status=f"needs input: {question}",
            state=T.NEEDS_INPUT,
            fields={"question": question or "(no question given)"},
        )
    why = _after(text, "blocked")
    if why is not None:
        return Effect(status=f"blocked: {why}", state=T.BLOCKED, fields={"blocked": why or "(no reason given)"})
    summary = _after(text, "done")
    if summary is not None:
        return Effect(
            status=f"done: {summary}",
            state=T.VALIDATING,
            fields={"report": summary or "(no summary given)", "question": None, "blocked": None},
        )
    path = _after(text, "worktree")
    if path:
        return Effect(status=f"worktree {path}", meta={"worktree": one_line(path)})
    url = _after(text, "pr created")
    if url is not None:
        return Effect(status=f"PR created {url}", fields={"pr": url.split()[0]} if url else {})
    fields: dict[str, str | None] = {f"last {who} message": text}
    return Effect(status=text, fields=fields)
