"""The database: SQLite in WAL mode, the registry, inbox history, events, review evidence and outbox.

SQLite in WAL mode; every write is one ``BEGIN IMMEDIATE`` transaction; a generous busy timeout so that the daemon,
hooks and user commands never see "database is locked". Schema changes are numbered migrations kept in
``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from orch.errors import OrchError
from orch.record import dataclass, fields
from orch.store.fleet import FleetRows
from orch.store.forge import ForgeRows
from orch.store.migrations import MIGRATIONS
from orch.store.radar import RadarRows
from orch.store.records import (
    WORKER_COLUMNS,
    Event,
    LogLine,
    Message,
    Outgoing,
    Review,
    TaskRow,
    Validation,
    Worker,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    R = TypeVar("R")

BUSY_TIMEOUT_MS = 30_000
CORRUPT_MESSAGES = ("file is not a database", "malformed", "file is encrypted", "not an error")


class CorruptStore(OrchError):
    """The database file is not a database any more (the registry is rebuilt from tmux, task files and git)."""


class Store(ForgeRows, RadarRows, FleetRows):
    """One workspace's database. ``workspace``: its id; worker rows of another workspace are never read (a
    database copied along with its repository still holds the original's workers)."""

    def __init__(self, path: str, workspace: str = "") -> None:
        self.path = path
        self.workspace = workspace
        try:
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if any(m in text for m in CORRUPT_MESSAGES):
                raise CorruptStore(f"cannot read {path}: {text}") from None
            raise OrchError(f"cannot open {path}: {text}") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; inside another (``batch``), a savepoint of it: undone alone when it raises."""
        if self.db.in_transaction:
            self._depth = depth = getattr(self, "_depth", 0) + 1
            name = f"s{depth}"
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            finally:
                self._depth = depth - 1
            self.db.execute(f"RELEASE {name}")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    batch = tx  # several changes as one transaction (each inner ``tx`` a savepoint of it)

    def finish_messages(self, marks: list[tuple[int, str, str]]) -> None:
        """Several messages' fates ((id, status, note)) in one transaction."""
        now = time.time()
        with self.tx() as db:
            db.executemany("UPDATE messages SET status = ?, note = ?, applied_at = ? WHERE id = ?",
                           [(status, note, now, msg_id) for msg_id, status, note in marks])

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].statements():
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # -- workers ----------------------------------------------------------------------------------------------

    def add_worker(self, worker: Worker) -> None:
        if self.workspace and not worker.workspace:
            worker.workspace = self.workspace
        cols = ", ".join(WORKER_COLUMNS)
        marks = ", ".join("?" for _ in WORKER_COLUMNS)
        with self.tx() as db:
            db.execute(f"INSERT INTO workers ({cols}) VALUES ({marks})", [getattr(worker, c) for c in WORKER_COLUMNS])

    def update_worker(self, worker_id: str, **changes: object) -> bool:
        """Change a worker's row (not its state: see ``swap_worker``)."""
        if "state" in changes:
            raise ValueError("a worker's state changes only through workflow.workers.move()")
        return self._update_worker(worker_id, None, changes)

    def swap_worker(self, worker_id: str, expect_state: str, changes: dict[str, object]) -> bool:
        """Change a worker's row only while its state is still ``expect_state`` (compare and swap): False when
        another process moved it first."""
        return self._update_worker(worker_id, expect_state, changes)

    def _update_worker(self, worker_id: str, expect_state: str | None, changes: dict[str, object]) -> bool:
        if "state" in changes and "state_since" not in changes:
            changes["state_since"] = time.time()
        bad = set(changes) - set(WORKER_COLUMNS)
        if bad:
            raise ValueError(f"unknown worker columns: {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in changes)
        where, args = "id = ?", [worker_id]
        if expect_state is not None:
            where, args = "id = ? AND state = ?", [worker_id, expect_state]
        with self.tx() as db:
            cur = db.execute(f"UPDATE workers SET {sets} WHERE {where}", [*changes.values(), *args])
        return cur.rowcount > 0

    def _select(self, cls: type[R], table: str, where: str = "", args: Sequence[object] = (),
                order: str = "id", limit: int | None = None, newest: bool = False) -> list[R]:
        """Rows of ``table`` as ``cls`` objects, read by column name (never by position)."""
        cols = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        sql = f"SELECT {', '.join(cols)} FROM {table}" + (f" WHERE {where}" if where else "")
        sql += f" ORDER BY {order}" + (" DESC" if newest else "") + (" LIMIT ?" if limit is not None else "")
        rows = self.db.execute(sql, (*args, limit) if limit is not None else tuple(args)).fetchall()
        if newest:
            rows.reverse()
        decode = _DECODE.get(table, {})
        out = []
        for row in rows:
            values = dict(zip(cols, row, strict=True))
            for key, load in decode.items():
                values[key] = load(values[key])
            out.append(cls(**values))
        return out

    def _workers(self, where: str, args: tuple = ()) -> list[Worker]:
        if self.workspace:
            where, args = f"({where}) AND workspace IN (?, '')", (*args, self.workspace)
        return self._select(Worker, "workers", where, args, order="created_at, id")

    def live_workers(self) -> list[Worker]:
        """Workers not ended (they may be lost or exited: that is for the scan to find out)."""
        return self._workers("ended_at IS NULL")

    def task_workers(self, task: str, include_ended: bool = False) -> list[Worker]:
        if include_ended:
            return self._workers("task = ?", (task,))
        return self._workers("task = ? AND ended_at IS NULL", (task,))

    def worker(self, worker_id: str) -> Worker | None:
        found = self._workers("id = ?", (worker_id,))
        return found[0] if found else None

    def worker_by_token(self, token_hash: str) -> Worker | None:
        if not token_hash:
            return None
        found = self._workers("token_hash = ?", (token_hash,))
        return found[-1] if found else None

    # -- messages ---------------------------------------------------------------------------------------------

    def import_messages(self, records: list[dict]) -> tuple[int, list[dict]]:
        """Insert spooled records (ignoring uids already known). Returns (how many were new, records refused)."""
        added, refused = 0, []
        with self.tx() as db:
            for r in records:
                try:
                    row = (
                        _text(r["uid"]),
                        float(r.get("at") or time.time()),
                        _text(r.get("kind") or "message"),
                        _text(r.get("task") or ""),
                        _text(r.get("worker") or ""),
                        _text(r.get("role") or ""),
                        _text(r.get("token_hash") or ""),
                        _text(r.get("text") or ""),
                        _text(r.get("status") or "pending"),
                        _text(r.get("note") or ""),
                    )
                    cur = db.execute(
                        "INSERT OR IGNORE INTO messages"
                        " (uid, at, kind, task, worker, role, token_hash, text, status, note)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                except (sqlite3.Error, ValueError, TypeError, KeyError):
                    refused.append(r)
                    continue
                added += cur.rowcount
        return added, refused

    def pending_messages(self, task: str | None = None) -> list[Message]:
        # arrival order: the order of the spool's files (their sequence numbers), never the senders' clocks
        if task is None:
            return self._select(Message, "messages", "status = 'pending'", order="uid, id")
        return self._select(Message, "messages", "status = 'pending' AND task = ?", (task,), order="uid, id")

    def note_message(self, msg_id: int, note: str) -> None:
        """Why a pending message waits (it stays pending)."""
        with self.tx() as db:
            db.execute("UPDATE messages SET note = ? WHERE id = ? AND status = 'pending'", (note, msg_id))

    def finish_message(self, msg_id: int, status: str, note: str = "") -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE messages SET status = ?, note = ?, applied_at = ? WHERE id = ?",
                (status, note, time.time(), msg_id),
            )

    def messages(self, task: str | None = None, limit: int = 1000) -> list[Message]:
        where, args = ("task = ?", (task,)) if task is not None else ("", ())
        return self._select(Message, "messages", where, args, limit=limit, newest=True)

    # -- events -----------------------------------------------------------------------------------------------

    def event(self, kind: str, text: str = "", task: str = "", worker: str = "", **data: object) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO events (at, task, worker, kind, text, data) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), task, worker, kind, text, json.dumps(data, default=str)),
            )

    def events_after(self, last_id: int, task: str | None = None) -> list[Event]:
        if task is None:
            return self._select(Event, "events", "id > ?", (last_id,))
        return self._select(Event, "events", "id > ? AND task = ?", (last_id, task))

    def events(self, task: str | None = None, limit: int = 200, kind: str | None = None) -> list[Event]:
        """The newest ``limit`` events (of ``task``, of ``kind``), oldest first."""
        found = [("task = ?", task), ("kind = ?", kind)]
        where = " AND ".join(clause for clause, value in found if value is not None)
        args = tuple(value for _, value in found if value is not None)
        return self._select(Event, "events", where, args, limit=limit, newest=True)

    # -- outbox ------------------------------------------------------------------------------------------------

    def queue_text(self, worker: str, task: str, text: str, why: str) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO outbox (worker, task, text, why, created_at) VALUES (?, ?, ?, ?, ?)",
                (worker, task, text, why, time.time()),
            )
            return int(cur.lastrowid or 0)

    def queued(self, task: str | None = None) -> list[Outgoing]:
        if task is None:
            return self._select(Outgoing, "outbox", "delivered_at IS NULL")
        return self._select(Outgoing, "outbox", "delivered_at IS NULL AND task = ?", (task,))

    def delivered(self, outgoing_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?", (time.time(), outgoing_id))

    # -- validations and reviews -------------------------------------------------------------------------------

    def add_validation(self, v: Validation) -> None:
        cols = [f.name for f in fields(Validation)][1:]
        with self.tx() as db:
            db.execute(
                f"INSERT INTO validations ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [getattr(v, c) for c in cols],
            )

    def validations(self, task: str, sha: str | None = None) -> list[Validation]:
        if sha is None:
            return self._select(Validation, "validations", "task = ?", (task,))
        return self._select(Validation, "validations", "task = ? AND sha = ?", (task, sha))

    def add_review(self, task: str, round_no: int, sha: str, base: str, base_sha: str, reviewer: str, tree: str) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO reviews (task, round, sha, base, base_sha, reviewer, tree_before, requested_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (task, round_no, sha, base, base_sha, reviewer, tree, time.time()),
            )
            return int(cur.lastrowid or 0)

    def update_review(self, review_id: int, **changes: object) -> None:
        if "findings" in changes:
            changes["findings"] = json.dumps(changes["findings"])
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self.tx() as db:
            db.execute(f"UPDATE reviews SET {sets} WHERE id = ?", [*changes.values(), review_id])

    # -- tasks: orch's record of each open task's block ------------------------------------------------------------

    def task_rows(self) -> dict[str, TaskRow]:
        return {r.slug: r for r in self._select(TaskRow, "tasks", order="slug")}

    def task_row(self, slug: str) -> TaskRow | None:
        found = self._select(TaskRow, "tasks", "slug = ?", (slug,), order="slug")
        return found[0] if found else None

    def task_log(self, slug: str) -> list[LogLine]:
        return self._select(LogLine, "task_log", "slug = ?", (slug,))

    def logged(self, slug: str, uid: str) -> bool:
        """Whether a status line with this uid (a message's) is in the task's log."""
        return self.db.execute("SELECT 1 FROM task_log WHERE slug = ? AND uid = ?", (slug, uid)).fetchone() is not None

    def task_log_texts(self, slug: str) -> list[tuple[float, str]]:
        """(at, text) of each of a task's status lines, oldest first: what its file's block shows (a task may have
        thousands; its file is written from these often)."""
        return self.db.execute("SELECT at, text FROM task_log WHERE slug = ? ORDER BY id", (slug,)).fetchall()

    def last_log_lines(self) -> dict[str, LogLine]:
        """The newest status line of every task, in one query."""
        lines = self._select(LogLine, "task_log", "id IN (SELECT MAX(id) FROM task_log GROUP BY slug)")
        return {line.slug: line for line in lines}

    @contextmanager
    def edit_task(self, slug: str, initial: Callable[[], tuple[TaskRow, list[LogLine]]]) -> Iterator[TaskEdit]:
        """One transaction over a task's record: yields its row (made with ``initial()`` when there is none) and a
        list to append log lines to; both are written when the block ends, nothing when it raises."""
        with self.tx() as db:
            rows = db.execute("SELECT state, fields, meta, rev FROM tasks WHERE slug = ?", (slug,)).fetchall()
            if rows:
                state, fields_json, meta_json, rev = rows[0]
                edit = TaskEdit(TaskRow(slug, state, json.loads(fields_json), json.loads(meta_json), rev), [], False)
            else:
                row, lines = initial()
                edit = TaskEdit(row, list(lines), True)
            before = (edit.row.state, dict(edit.row.fields), dict(edit.row.meta))
            yield edit
            fresh = [line for line in edit.lines if line.uid is None or not self.logged(slug, line.uid)]
            changed = edit.new or fresh or before != (edit.row.state, edit.row.fields, edit.row.meta)
            if not changed:
                edit.changed = False
                return
            edit.row.rev += 1
            edit.row.updated_at = time.time()
            db.execute(
                "INSERT INTO tasks (slug, state, fields, meta, rev, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(slug) DO UPDATE SET state = excluded.state, fields = excluded.fields,"
                " meta = excluded.meta, rev = excluded.rev, updated_at = excluded.updated_at",
                (slug, edit.row.state, json.dumps(edit.row.fields), json.dumps(edit.row.meta), edit.row.rev,
                 edit.row.updated_at),
            )
            db.executemany("INSERT INTO task_log (slug, at, text, uid) VALUES (?, ?, ?, ?)",
                           [(slug, line.at, _text(line.text), line.uid) for line in fresh])
            edit.changed = True

    def forget_task(self, slug: str) -> None:
        """A closed task's record (its file, in done/, keeps the block)."""
        with self.tx() as db:
            db.execute("DELETE FROM tasks WHERE slug = ?", (slug,))
            db.execute("DELETE FROM task_log WHERE slug = ?", (slug,))
            db.execute("DELETE FROM pulls WHERE task = ?", (slug,))
            db.execute("DELETE FROM reactions WHERE task = ?", (slug,))
            db.execute("DELETE FROM forge_meta WHERE key = ?", (f"pushed:{slug}",))

    # -- what orch made ----------------------------------------------------------------------------------------------

    def add_made(self, kind: str, name: str, task: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO made (kind, name, task, created_at) VALUES (?, ?, ?, ?)",
                       (kind, name, task, time.time()))

    def made(self, kind: str, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM made WHERE kind = ? AND name = ?", (kind, name)).fetchone() is not None

    def forget_made(self, kind: str, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM made WHERE kind = ? AND name = ?", (kind, name))

    def reviews(self, task: str) -> list[Review]:
        return self._select(Review, "reviews", "task = ?", (task,))


# columns stored as JSON text, decoded when read
@dataclass
class TaskEdit:
    row: TaskRow
    lines: list[LogLine]
    new: bool  # the row did not exist: it is written whatever the change
    changed: bool = False  # set when the block ends: something was written


_DECODE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "tasks": {"fields": lambda text: json.loads(text or "{}"), "meta": lambda text: json.loads(text or "{}")},
    "events": {"data": lambda text: json.loads(text or "{}")},
    "reviews": {"findings": lambda text: json.loads(text or "[]")},
}


def _text(value: object) -> str:
    """Text safe to store: undecodable bytes (kept as surrogates on the way in) become U+FFFD."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def open_store(path: str) -> Store:
    return Store(path)
