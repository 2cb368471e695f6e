"""Tasks: reading the task folder, and orch's single-writer updates of task files.

``record()`` writes status lines and summary fields; ``move()`` is the one way a task's state changes: it checks
the lifecycle table (orch/lifecycle.py) against the state in the file at the moment of writing, under the task's
lock, and makes the move or refuses it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from orch import files, taskfile
from orch import slug as slugs
from orch.errors import OrchError
from orch.lifecycle import Actor, Move, Refused, TaskEvent, TaskState, check_task, way_on
from orch.locks import hold
from orch.taskfile import TaskDoc
from orch.workflow.context import Ctx


def now_iso(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


@dataclass
class Task:
    slug: str
    path: str
    doc: TaskDoc
    front: dict = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.doc.state

    @property
    def agent(self) -> str | None:
        return self.front.get("agent")

    @property
    def base(self) -> str | None:
        return self.front.get("base")

    @property
    def depends_on(self) -> list[str]:
        return self.front.get("depends_on", [])

    @property
    def body(self) -> str:
        """The person's text without its front matter."""
        return taskfile.body_without_front_matter(self.doc.person)


@dataclass(frozen=True)
class Invalid:
    file: str
    error: str


def shadow_path(ctx: Ctx, path: str) -> str:
    """Where orch keeps its own copy of a task file's block (to undo a save of an older copy of the file)."""
    return os.path.join(ctx.ws.state, "blocks", os.path.basename(path))


def task_path(ctx: Ctx, slug: str) -> str:
    return os.path.join(ctx.cfg.tasks_path, slug + ".md")


def _front(doc: TaskDoc, name: str) -> dict:
    raw = taskfile.front_matter(doc.person, name)
    front: dict = {}
    for key in ("agent", "base"):
        if key in raw and raw[key] is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise OrchError(f"{name}: front matter `{key}` must be a non-empty string")
            front[key] = raw[key].strip()
    deps = raw.get("depends_on")
    if deps is not None:
        if isinstance(deps, str):
            deps = [deps]
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise OrchError(f"{name}: front matter `depends_on` must be a list of task names")
        for d in deps:
            why = slugs.problem(d)
            if why:
                raise OrchError(f"{name}: depends_on: {why}")
        front["depends_on"] = list(deps)
    return front


MAX_TASK_BYTES = 1 << 20  # a task is a brief for an agent; a bigger file is most likely a mistake


def read_task(path: str) -> Task:
    name = os.path.basename(path)
    slug = name[:-3] if name.endswith(".md") else name
    why = slugs.problem(slug)
    if why:
        raise OrchError(f"{name}: {why}; rename the file")
    if os.path.islink(path):
        target = os.path.realpath(path)
        if os.path.dirname(target) != os.path.realpath(os.path.dirname(path)):
            raise OrchError(f"{name} is a symlink to {target}, outside the task folder; orch will not write there")
    if not os.path.isfile(path):
        raise OrchError(f"{name} is not a regular file")
    size = os.path.getsize(path)
    if size > MAX_TASK_BYTES:
        raise OrchError(f"{name} is {size / 2**20:.1f} MiB; orch reads task files up to {MAX_TASK_BYTES // 2**20} MiB: "
                        "put the bulk in a file of the repository and name it in the task")
    try:
        _, doc = taskfile.read(path)
    except OSError as exc:
        raise OrchError(f"{name}: cannot read ({exc.strerror})") from None
    return Task(slug=slug, path=path, doc=doc, front=_front(doc, name))


def load(ctx: Ctx) -> tuple[dict[str, Task], list[Invalid]]:
    """Every task in the task folder, and the files there that are not valid tasks (never skipped silently)."""
    folder = ctx.cfg.tasks_path
    tasks: dict[str, Task] = {}
    invalid: list[Invalid] = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        raise OrchError(f"task folder {folder} does not exist: create it or fix tasks_dir in .orch/config.toml") from None
    for name in names:
        if not name.endswith(".md") or name.startswith(files.TMP_PREFIX):
            continue
        try:
            task = read_task(os.path.join(folder, name))
        except OrchError as exc:
            invalid.append(Invalid(name, str(exc)))
            continue
        tasks[task.slug] = task
    return tasks, invalid


def done_slugs(ctx: Ctx) -> set[str]:
    try:
        return {n[:-3] for n in os.listdir(ctx.cfg.done_path) if n.endswith(".md")}
    except FileNotFoundError:
        return set()


def get(ctx: Ctx, slug: str) -> Task:
    slugs.check(slug)
    path = task_path(ctx, slug)
    if not os.path.exists(path):
        if os.path.exists(os.path.join(ctx.cfg.done_path, slug + ".md")):
            raise OrchError(f"task {slug!r} is closed (its file is in {ctx.cfg.done_path})")
        raise OrchError(f"no task {slug!r} in {ctx.cfg.tasks_path}: `orch status` lists the tasks")
    return read_task(path)


def set_fields(doc: TaskDoc, **fields: str | None) -> None:
    """Set (or, with None, remove) ``key: value`` lines of the summary; ``state`` stays first."""
    current: dict[str, str] = {}
    for line in doc.summary:
        head, colon, text = line.partition(":")
        if colon and head.strip():
            current[head.strip()] = text.strip()
    for name, value in fields.items():
        key = name.replace("_", " ") if name != "state" else name
        if value is None:
            current.pop(key, None)
        else:
            current[key] = taskfile.one_line(value)
    ordered = {"state": current.pop("state", TaskState.QUEUED.value), **current}
    doc.summary = [f"{k}: {v}" for k, v in ordered.items()]


def record(
    ctx: Ctx,
    slug: str,
    status: str | None = None,
    at: float | None = None,
    meta: dict[str, str] | None = None,
    path: str | None = None,
    summary: Mapping[str, str | None] | None = None,
    **fields: str | None,
) -> bool:
    """The single writer: update a task file's orch block (under the task's lock). Returns True if written.

    ``status`` appends one ``## Status`` line (skipped when the very same line is already there, which makes
    re-applying a message harmless); ``fields`` (and ``summary``) set summary lines; ``meta`` sets the
    session/worktree/branch lines. The state changes only through ``move()``.
    """
    values = {**(summary or {}), **fields}
    if "state" in values:
        raise TypeError("a task's state changes only through tasks.move(), which checks the lifecycle table")
    return _write(ctx, slug, None, status, at, meta, path, values)


def move(
    ctx: Ctx,
    slug: str,
    to: TaskState,
    event: TaskEvent,
    actor: Actor,
    status: str | None = None,
    at: float | None = None,
    meta: dict[str, str] | None = None,
    path: str | None = None,
    refuse: bool = False,
    summary: Mapping[str, str | None] | None = None,
    **fields: str | None,
) -> bool:
    """Move the task to ``to`` on ``event`` by ``actor``, with a status line and summary fields, when the lifecycle
    table allows it from the state the file holds now. Returns True when the task is in ``to`` afterwards.

    A refused move writes nothing and is logged as an event ``refused: <from> -> <to> on <event> from <actor>``;
    with ``refuse`` (a person's command asked for it) it also raises a one-line error saying what moves the task
    on. Staying in the same state is not a move: the status line and fields are written.
    """
    try:
        _write(ctx, slug, Move(to, event, actor), status, at, meta, path, {**(summary or {}), **fields})
    except Refused as exc:
        ctx.event("refused", str(exc), task=slug)
        if refuse:
            raise OrchError(f"{exc}: {way_on(exc.frm, slug)}") from None
        return False
    return True


def _write(ctx: Ctx, slug: str, wanted: Move | None, status: str | None, at: float | None,
           meta: dict[str, str] | None, path: str | None, fields: dict[str, str | None]) -> bool:
    path = path or task_path(ctx, slug)
    line = taskfile.status_line(now_iso(at), status) if status else None
    moved: list[str] = []

    def change(doc: TaskDoc) -> bool:
        moved.clear()  # called again when the person saved meanwhile
        before = (dict(doc.meta), list(doc.summary), len(doc.status))
        values = dict(fields)
        if wanted is not None:
            check_task(doc.state, wanted.to, wanted.event, wanted.actor, subject=f"task {slug}:")
            if doc.state != wanted.to:
                moved.append(doc.state)
            values["state"] = wanted.to.value
        if meta:
            doc.meta.update({k: v for k, v in meta.items() if v})
        if values or not doc.has_block:
            set_fields(doc, **values)
        if line and line not in doc.status:
            doc.status.append(line)
        return not doc.has_block or before != (doc.meta, doc.summary, len(doc.status))

    with hold(ctx.lock_path("task-" + slug), wait=30) as got:
        if not got:
            raise OrchError(f"task {slug!r} is locked by another orch process; try again")
        written = taskfile.update(path, change, shadow=shadow_path(ctx, path))
    if wanted is not None and moved:
        ctx.event("state", f"{moved[0]} -> {wanted.to} on {wanted.event.value} from {wanted.actor.who}", task=slug)
    if status:
        ctx.event("task", status, task=slug, **{k: v for k, v in fields.items() if v is not None})
    return written is not None
