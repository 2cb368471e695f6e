"""The database: SQLite in WAL mode, the registry, inbox history, events, review evidence and outbox.

SQLite in WAL mode; every write is one ``BEGIN IMMEDIATE`` transaction; a generous busy timeout so that the daemon,
hooks and user commands never see "database is locked". Schema changes are numbered migrations kept in
``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields

from orch.errors import OrchError
from orch.store.migrations import MIGRATIONS
from orch.store.records import WORKER_COLUMNS, Event, Message, Outgoing, Review, Validation, Worker

BUSY_TIMEOUT_MS = 30_000
CORRUPT_MESSAGES = ("file is not a database", "malformed", "file is encrypted", "not an error")


class CorruptStore(OrchError):
    """The database file is not a database any more (the registry is rebuilt from tmux, task files and git)."""


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
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
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # -- workers ----------------------------------------------------------------------------------------------

    def add_worker(self, worker: Worker) -> None:
        cols = ", ".join(WORKER_COLUMNS)
        marks = ", ".join("?" for _ in WORKER_COLUMNS)
        with self.tx() as db:
            db.execute(f"INSERT INTO workers ({cols}) VALUES ({marks})", [getattr(worker, c) for c in WORKER_COLUMNS])

    def update_worker(self, worker_id: str, **changes: object) -> None:
        if "state" in changes and "state_since" not in changes:
            changes["state_since"] = time.time()
        bad = set(changes) - set(WORKER_COLUMNS)
        if bad:
            raise ValueError(f"unknown worker columns: {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self.tx() as db:
            db.execute(f"UPDATE workers SET {sets} WHERE id = ?", [*changes.values(), worker_id])

    def _workers(self, where: str, args: tuple = ()) -> list[Worker]:
        cols = ", ".join(WORKER_COLUMNS)
        rows = self.db.execute(f"SELECT {cols} FROM workers WHERE {where} ORDER BY created_at, id", args)
        return [Worker(*row) for row in rows]

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
        sql = "SELECT * FROM messages WHERE status = 'pending'"
        args: tuple = ()
        if task is not None:
            sql += " AND task = ?"
            args = (task,)
        return [Message(*row) for row in self.db.execute(sql + " ORDER BY at, id", args)]

    def finish_message(self, msg_id: int, status: str, note: str = "") -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE messages SET status = ?, note = ?, applied_at = ? WHERE id = ?",
                (status, note, time.time(), msg_id),
            )

    def messages(self, task: str | None = None, limit: int = 1000) -> list[Message]:
        sql, args = "SELECT * FROM messages", ()
        if task is not None:
            sql, args = sql + " WHERE task = ?", (task,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Message(*row) for row in reversed(rows)]

    # -- events -----------------------------------------------------------------------------------------------

    def event(self, kind: str, text: str = "", task: str = "", worker: str = "", **data: object) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO events (at, task, worker, kind, text, data) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), task, worker, kind, text, json.dumps(data, default=str)),
            )

    def events_after(self, last_id: int, task: str | None = None) -> list[Event]:
        sql, args = "SELECT id, at, task, worker, kind, text, data FROM events WHERE id > ?", (last_id,)
        if task is not None:
            sql, args = sql + " AND task = ?", (last_id, task)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        return [Event(*row[:6], json.loads(row[6] or "{}")) for row in rows]

    def events(self, task: str | None = None, limit: int = 200) -> list[Event]:
        sql, args = "SELECT id, at, task, worker, kind, text, data FROM events", ()
        if task is not None:
            sql, args = sql + " WHERE task = ?", (task,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Event(*row[:6], json.loads(row[6] or "{}")) for row in reversed(rows)]


    # -- outbox ------------------------------------------------------------------------------------------------

    def queue_text(self, worker: str, task: str, text: str, why: str) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO outbox (worker, task, text, why, created_at) VALUES (?, ?, ?, ?, ?)",
                (worker, task, text, why, time.time()),
            )
            return int(cur.lastrowid or 0)

    def queued(self, task: str | None = None) -> list[Outgoing]:
        sql, args = "SELECT * FROM outbox WHERE delivered_at IS NULL", ()
        if task is not None:
            sql, args = sql + " AND task = ?", (task,)
        return [Outgoing(*row) for row in self.db.execute(sql + " ORDER BY id", args)]

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
        sql, args = "SELECT * FROM validations WHERE task = ?", [task]
        if sha is not None:
            sql, args = sql + " AND sha = ?", [task, sha]
        return [Validation(*row) for row in self.db.execute(sql + " ORDER BY id", args)]

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

    def reviews(self, task: str) -> list[Review]:
        rows = self.db.execute("SELECT * FROM reviews WHERE task = ? ORDER BY id", (task,)).fetchall()
        out = []
        for row in rows:
            values = list(row)
            values[10] = json.loads(values[10] or "[]")
            out.append(Review(*values))
        return out


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
