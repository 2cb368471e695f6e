"""Tasks: reading the task folder, and orch's single-writer updates of task files.

orch's record of each open task (its state, summary fields, session/worktree/branch lines and status log) lives in
the database; the block below the marker in the task file is a rendering of it. ``record()`` writes status lines
and summary fields; ``move()`` is the one way a task's state changes: it checks the lifecycle table
(orch/lifecycle.py) against the state recorded at the moment of writing, under the task's lock. After every change
the file's block is written again, and ``refresh()`` (every pass) writes it again wherever an editor dropped it or
saved an older copy: the person's text is always taken from the file as it is, orch's block always from the record.
A record is made from the file's own block the first time orch sees a task (a database that was lost is rebuilt
so), or as a new queued task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC

from orch import faults, files, taskfile
from orch import slug as slugs
from orch.errors import OrchError
from orch.lifecycle import Actor, Move, Refused, TaskEvent, TaskState, check_task, way_on
from orch.locks import hold
from orch.record import dataclass, field
from orch.store import LogLine, TaskRow
from orch.taskfile import META_KEYS, TaskDoc
from orch.workflow.context import Ctx

STATUS_LINE_MAX = 2000  # characters of a message shown in a status line (the whole text is kept in .orch/messages)
FIELD_MAX = 500  # characters of a summary field


def now_iso(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def parse_iso(stamp: str) -> float | None:
    """``2026-11-22T10:00:00Z`` as seconds since the epoch, or None."""
    if len(stamp) != 20 or stamp[4] != "-" or stamp[10] != "T" or stamp[19] != "Z":
        return None
    try:
        fields = (int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]), int(stamp[14:16]),
                  int(stamp[17:19]))
    except ValueError:
        return None
    if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        return None
    from datetime import datetime  # (loaded with sqlite3 already)

    try:
        return datetime(*fields, tzinfo=UTC).timestamp()
    except ValueError:  # a day the month does not have
        return None


@dataclass
class Batch:
    """Messages applied together (workflow/inbox.py): the task locks the batch holds, and the tasks whose record it
    changed, each file written once after the batch's effects commit (``render_batch``) and before its messages are
    marked applied: a task file is never ahead of the database, nor a message's mark ahead of its file."""

    held: set[str]
    written: set[str] = field(default_factory=set)
    marks: list[tuple[int, str, str]] = field(default_factory=list)  # (message id, status, note), set after the files


@dataclass
class Task:
    slug: str
    path: str
    doc: TaskDoc  # the file: the person's text (and the block as the file has it now)
    front: dict = field(default_factory=dict)
    record: TaskRow = field(default_factory=lambda: TaskRow("", TaskState.QUEUED.value, {}, {}))

    @property
    def state(self) -> str:
        return self.record.state

    def field(self, key: str) -> str | None:
        """A summary field of orch's record ("round", "round budget", "question", ...)."""
        return self.record.fields.get(key)

    @property
    def meta(self) -> dict:
        return self.record.meta

    @property
    def summary(self) -> list[str]:
        return summary_lines(self.record)

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
    def paths(self) -> list[str]:
        """``paths:`` globs: what the task will touch; a queued one waits while work in flight overlaps them."""
        return self.front.get("paths", [])

    @property
    def parallel(self) -> bool:
        """``parallel: true``: started even when its paths overlap work in flight."""
        return bool(self.front.get("parallel"))

    @property
    def hold(self) -> bool:
        """``hold: true`` in its front matter: it stays queued until you start it (`orch start`)."""
        return bool(self.front.get("hold"))

    @property
    def body(self) -> str:
        """The person's text without its front matter."""
        return taskfile.body_without_front_matter(self.doc.person)


@dataclass(frozen=True)
class Invalid:
    file: str
    error: str


def summary_lines(row: TaskRow) -> list[str]:
    return [f"state: {row.state}", *(f"{k}: {v}" for k, v in row.fields.items())]


def status_lines(log: list[LogLine]) -> list[str]:
    return [f"{now_iso(line.at)} {line.text}" for line in log]


def task_path(ctx: Ctx, slug: str) -> str:
    return os.path.join(ctx.cfg.tasks_path, slug + ".md")


def _front(doc: TaskDoc, name: str) -> dict:
    raw = taskfile.front_matter(doc.person, name)
    front: dict = {}
    for key in ("agent", "base", "host"):
        if key in raw and raw[key] is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise OrchError(f"{name}: front matter `{key}` must be a non-empty string")
            front[key] = raw[key].strip()
    for key in ("hold", "parallel"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], bool):
                raise OrchError(f"{name}: front matter `{key}` must be true or false")
            front[key] = raw[key]
    globs = raw.get("paths")
    if globs is not None:
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(globs, list) or not all(isinstance(g, str) and g.strip() for g in globs):
            raise OrchError(f"{name}: front matter `paths` must be a list of globs, like [\"src/api/**\"]")
        front["paths"] = [g.strip().lstrip("/") for g in globs]
    needs = raw.get("needs")  # many hosts: labels the task's host must have
    if needs is not None:
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) and n.strip() for n in needs):
            raise OrchError(f"{name}: front matter `needs` must be a list of host labels, like [gpu]")
        front["needs"] = [n.strip() for n in needs]
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


def read_task(path: str, ctx: Ctx | None = None, record: bool = True) -> Task:
    """The task in ``path``; with ``ctx``, with orch's record of it (else what the file's own block says; with
    ``record`` False, none: the caller has it)."""
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
        data, doc = taskfile.read(path)
    except OSError as exc:
        raise OrchError(f"{name}: cannot read ({exc.strerror})") from None
    if not data.strip():
        raise OrchError(f"{name} is empty (a save in progress?); nothing is done with it until it has text again")
    task = Task(slug=slug, path=path, doc=doc, front=_front(doc, name))
    if record:
        row = ctx.store.task_row(slug) if ctx is not None else None
        task.record = own_record(row, doc) or record_from_doc(slug, doc, branch_of(ctx, slug) if ctx else "")[0]
    return task


def own_record(row: TaskRow | None, doc: TaskDoc) -> TaskRow | None:
    """The record for the task file ``doc``: ``row``, unless it is a closed task's record left by a close that was
    cut short while the file in the task folder is another one (its block does not say done: a new task of the
    same name). A file whose block says done too is that close, not finished: it stays done until the close is
    run again."""
    if row is not None and row.state == TaskState.DONE and doc.state != TaskState.DONE:
        return None
    return row


def branch_of(ctx: Ctx, slug: str) -> str:
    return ctx.cfg.branch_prefix + slug


def record_from_doc(slug: str, doc: TaskDoc, branch: str = "") -> tuple[TaskRow, list[LogLine]]:
    """orch's record as the file's own block says it (a new task has none: queued). A block that names another
    task's branch was copied with the file from that task: it is not this task's, which starts queued."""
    if (not doc.has_block or (branch and doc.meta.get("branch") not in (None, "", branch))
            or doc.state == TaskState.DONE):  # a closed task's file put back in the task folder starts over
        return TaskRow(slug, TaskState.QUEUED.value, {}, {}), []
    fields: dict[str, str] = {}
    for line in doc.summary:
        head, colon, text = line.partition(":")
        if colon and head.strip() and head.strip() != "state":
            fields[head.strip()] = text.strip()
    meta = {k: v for k, v in doc.meta.items() if v}
    log = []
    for entry in doc.status:
        stamp, _, text = entry.partition(" ")
        at = parse_iso(stamp)
        log.append(LogLine(0, slug, at if at is not None else 0.0, text if at is not None else entry))
    return TaskRow(slug, doc.state, fields, meta), log


def load(ctx: Ctx, only: Collection[str] | None = None) -> tuple[dict[str, Task], list[Invalid]]:
    """Every task in the task folder with orch's record of it, and the files there that are not valid tasks (never
    skipped silently); with ``only``, those tasks alone (the files of the others are not read)."""
    folder = ctx.cfg.tasks_path
    rows = ctx.store.task_rows()
    tasks: dict[str, Task] = {}
    invalid: list[Invalid] = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        raise OrchError(f"task folder {folder} does not exist: create it or fix tasks_dir in .orch/config.toml") from None
    for name in names:
        if not name.endswith(".md") or name.startswith(files.TMP_PREFIX) or (only is not None
                                                                              and name[:-3] not in only):
            continue
        try:
            task = read_task(os.path.join(folder, name), record=False)
        except OrchError as exc:
            invalid.append(Invalid(name, str(exc)))
            continue
        row = own_record(rows.get(task.slug), task.doc)
        task.record = row or record_from_doc(task.slug, task.doc, branch_of(ctx, task.slug))[0]
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
    return read_task(path, ctx)


def record(
    ctx: Ctx,
    slug: str,
    status: str | None = None,
    at: float | None = None,
    meta: dict[str, str] | None = None,
    path: str | None = None,
    summary: Mapping[str, str | None] | None = None,
    uid: str | None = None,
    **fields: str | None,
) -> bool:
    """The single writer: change orch's record of a task and write its block into the task file (under the task's
    lock). Returns True if the record changed.

    ``status`` appends one ``## Status`` line: one per message (``uid``; applying a message again adds nothing), and
    one per identical line of orch's own in the same second; ``fields`` (and ``summary``) set summary lines;
    ``meta`` sets the session/worktree/branch lines. The state changes only through ``move()``.
    """
    values = {**(summary or {}), **fields}
    if "state" in values:
        raise TypeError("a task's state changes only through tasks.move(), which checks the lifecycle table")
    return _write(ctx, slug, None, status, at, meta, path, values, uid or None)


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
    uid: str | None = None,
    **fields: str | None,
) -> bool:
    """Move the task to ``to`` on ``event`` by ``actor``, with a status line and summary fields, when the lifecycle
    table allows it from the state recorded now. Returns True when the task is in ``to`` afterwards.

    A refused move writes nothing and is logged as an event ``refused: <from> -> <to> on <event> from <actor>``;
    with ``refuse`` (a person's command asked for it) it also raises a one-line error saying what moves the task
    on. Staying in the same state is not a move: the status line and fields are written.
    """
    try:
        _write(ctx, slug, Move(to, event, actor), status, at, meta, path, {**(summary or {}), **fields}, uid or None)
    except Refused as exc:
        ctx.event("refused", str(exc), task=slug)
        if refuse:
            raise OrchError(f"{exc}: {way_on(exc.frm, slug)}") from None
        return False
    return True


def _write(ctx: Ctx, slug: str, wanted: Move | None, status: str | None, at: float | None,
           meta: dict[str, str] | None, path: str | None, fields: dict[str, str | None], uid: str | None) -> bool:
    path = path or task_path(ctx, slug)
    moved = ""

    def initial() -> tuple[TaskRow, list[LogLine]]:
        try:
            _, doc = taskfile.read(path)
        except (OSError, OrchError):
            return TaskRow(slug, TaskState.QUEUED.value, {}, {}), []
        return record_from_doc(slug, doc, branch_of(ctx, slug))

    batch = ctx.batch if path == task_path(ctx, slug) else None
    if batch is not None and slug in batch.held:
        lock: AbstractContextManager[bool] = nullcontext(True)
    else:  # (inside a batch's transaction not waited for: its holder may wait for the database in turn)
        lock = hold(ctx.lock_path("task-" + slug), wait=0 if ctx.store.db.in_transaction else 30)
    with lock as got:
        if not got:
            raise OrchError(f"task {slug!r} is locked by another orch process; try again")
        stale = ctx.store.task_row(slug)
        if stale is not None and stale.state == TaskState.DONE and not _says_done(path):
            ctx.store.forget_task(slug)  # a closed task's record left by a crash: this file is a new task
        with ctx.store.edit_task(slug, initial) as edit:
            row = edit.row
            if wanted is not None:
                check_task(row.state, wanted.to, wanted.event, wanted.actor, subject=f"task {slug}:")
                if row.state != wanted.to:
                    moved, row.state = row.state, wanted.to.value
            for name, value in fields.items():
                key = name.replace("_", " ")
                if value is None:
                    row.fields.pop(key, None)
                else:
                    row.fields[key] = clip(taskfile.one_line(value), FIELD_MAX)
            if meta:
                row.meta.update({k: taskfile.one_line(v) for k, v in meta.items() if v})
            if status:
                edit.lines.append(LogLine(0, slug, time.time() if at is None else at, status_text(status), uid))
        faults.point("task.recorded")
        if batch is not None:
            batch.written.add(slug)  # written once the batch's effects commit
        else:
            render(ctx, slug, path)
    if moved and wanted is not None:
        ctx.event("state", f"{moved} -> {wanted.to} on {wanted.event.value} from {wanted.actor.who}", task=slug)
    if status and edit.changed:
        ctx.event("task", status[:2000], task=slug, **{k: v for k, v in fields.items() if v is not None})
    return edit.changed


def _says_done(path: str) -> bool:
    try:
        _, doc = taskfile.read(path)
    except (OSError, OrchError):
        return True  # no file (moved to done/) or unreadable: leave the record be
    return doc.state == TaskState.DONE


def status_text(text: str) -> str:
    """A status line's text: one line, at most STATUS_LINE_MAX characters."""
    return clip(taskfile.one_line(text), STATUS_LINE_MAX)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expected_block(ctx: Ctx, slug: str) -> tuple[dict[str, str], list[str], list[str]] | None:
    """(meta, summary, status) as orch's record says the task file's block is, or None without a record."""
    row = ctx.store.task_row(slug)
    if row is None:
        return None
    meta = {k: row.meta[k] for k in META_KEYS if row.meta.get(k)}
    meta.update({k: v for k, v in row.meta.items() if k not in META_KEYS and v})
    stamps: dict[int, str] = {}  # (lines come in bursts: a second's stamp is formatted once)
    lines = []
    for at, text in ctx.store.task_log_texts(slug):
        second = int(at)
        stamp = stamps.get(second)
        if stamp is None:
            stamp = stamps[second] = now_iso(second)
        lines.append(f"{stamp} {text}")
    return meta, summary_lines(row), lines


def render_batch(ctx: Ctx, batch: Batch) -> None:
    """The task files whose record a batch changed, each written once from the record (after the batch's effects
    committed): under the lock the batch holds, else under its own."""
    for slug in sorted(batch.written):
        if slug in batch.held:
            render(ctx, slug)
            continue
        with hold(ctx.lock_path("task-" + slug), wait=30) as got:
            if got:
                render(ctx, slug)  # (else: the record has it all; a pass writes the file)


def render(ctx: Ctx, slug: str, path: str | None = None) -> bool:
    """Write the task file's block from orch's record when the file's differs (a save dropped it or restored an
    older copy). The person's text is kept as the file has it. Returns True when the file was written; False also
    when it cannot be now (missing, not UTF-8): the record has everything, and a later pass writes it."""
    path = path or task_path(ctx, slug)
    expected = expected_block(ctx, slug)
    if expected is None:
        return False
    meta, summary, status = expected

    def change(doc: TaskDoc) -> bool:
        if doc.has_block and (doc.meta, doc.summary, doc.status) == (meta, summary, status):
            return False
        doc.meta, doc.summary, doc.status, doc.has_block = dict(meta), list(summary), list(status), True
        return True

    try:
        return taskfile.update(path, change, keep=kept_path(ctx, slug)) is not None
    except (OSError, OrchError):
        return False


def kept_path(ctx: Ctx, slug: str) -> str:
    """Where orch keeps the task files it replaced (see ``files.keep_replaced``)."""
    return ctx.ws.path("replaced", slug)


def late_saves(ctx: Ctx, tasks: dict[str, Task]) -> list[str]:
    """A person's save that landed on a task file orch had already replaced (an editor that kept the old file open):
    their text is put into the live file (or, for a task closed since, into its file in done/), unless they saved
    that file too (then the late save is kept in ``.orch/conflicts`` and the task says where). Returns the open
    tasks taken care of."""
    done: list[str] = []
    try:
        slugs_kept = os.listdir(ctx.ws.path("replaced"))
    except FileNotFoundError:
        return done
    for slug in slugs_kept:
        keep = kept_path(ctx, slug)
        path = tasks[slug].path if slug in tasks else _closed_file(ctx, slug)
        aside: list[str] = []
        with hold(ctx.lock_path("task-" + slug), wait=30) as got:
            if not got:
                continue
            late = files.late_writes(keep, path or "")
            for link, data, mark in late if path else []:
                assert path is not None
                try:
                    person = taskfile.parse(taskfile.decode(data, slug + ".md")).person
                except OrchError:
                    person = None
                try:
                    with open(path, "rb") as fh:
                        live = fh.read()
                except OSError:
                    break  # gone meanwhile (closed): the next pass finds its file in done/
                try:
                    current = taskfile.parse(taskfile.decode(live, slug + ".md")).person
                except OrchError:
                    current = None
                # put back as it is when the live file still has the text the late save was made over (the person's
                # text orch carried over when it replaced that file); when the person changed the live text since,
                # both changes merged (three ways, on that text); when they change the same lines, both kept
                merged = None
                if person is not None and current is not None:
                    if mark == taskfile.person_mark(current):
                        merged = person
                    else:
                        from orch import git

                        base = files.kept_base(keep, mark)
                        if base is not None:
                            merged = git.merge_text(current, base.decode("utf-8", "surrogateescape"), person)
                if merged is not None:
                    def put_back(doc: TaskDoc, text: str = merged) -> bool:
                        doc.person = text
                        return True

                    taskfile.update(path, put_back, keep=keep)
                    if slug in tasks:
                        render(ctx, slug, path)
                    how = "put back" if merged is person else "merged with your later changes"
                    ctx.event("task", f"a save to the task file orch had just replaced was {how} in {path}", task=slug)
                else:
                    folder = ctx.ws.path("conflicts")
                    os.makedirs(folder, mode=0o700, exist_ok=True)
                    copy = os.path.join(folder, f"{slug}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
                                                f"-{os.urandom(2).hex()}.md")
                    files.atomic_write(copy, data, mode=0o600)
                    aside.append(copy)
                files.drop_kept(link)  # taken care of (a crash before this line reports it again)
                if slug in tasks and slug not in done:
                    done.append(slug)
            if slug not in tasks and (path or not late):
                files.prune_kept(keep)
        for copy in aside:
            if slug in tasks:
                record(ctx, slug, status=f"you saved two copies of this file: the other one is kept in {copy}")
            ctx.event("task", f"a late save of the task file is kept in {copy}", task=slug)
    return done


def _closed_file(ctx: Ctx, slug: str) -> str | None:
    """The file of a task closed by now (in done/), if any."""
    folder = ctx.cfg.done_path
    try:
        names = sorted(n for n in os.listdir(folder) if n == f"{slug}.md" or n.startswith(f"{slug}-2"))
    except FileNotFoundError:
        return None
    return os.path.join(folder, names[-1]) if names else None


def refresh(ctx: Ctx, tasks: dict[str, Task]) -> list[str]:
    """Every task file whose block is not what orch's record says is written again (under its lock), after late
    saves are put back; returns the slugs written."""
    fixed = late_saves(ctx, tasks)
    if fixed:
        tasks = {**tasks, **{s: read_task(tasks[s].path, ctx) for s in fixed if os.path.exists(tasks[s].path)}}
    for slug, task in tasks.items():
        expected = expected_block(ctx, slug)
        if expected is None:
            continue
        if task.doc.has_block and (task.doc.meta, task.doc.summary, task.doc.status) == expected:
            continue
        with hold(ctx.lock_path("task-" + slug), wait=30) as got:
            if got and render(ctx, slug, task.path):
                fixed.append(slug)
    return fixed
