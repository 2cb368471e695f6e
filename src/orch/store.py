"""The only module that speaks SQL: the worker registry, the inbox's history, and the event log.

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
from dataclasses import dataclass, fields

from orch.errors import OrchError

BUSY_TIMEOUT_MS = 30_000

MIGRATIONS: list[str] = [
    # 1: registry, inbox, events
    """
    CREATE TABLE workers (
        id           TEXT PRIMARY KEY,
        task         TEXT NOT NULL,
        role         TEXT NOT NULL,
        agent        TEXT NOT NULL,
        session_name TEXT NOT NULL DEFAULT '',
        session_id   TEXT NOT NULL DEFAULT '',
        window_id    TEXT NOT NULL DEFAULT '',
        pane_id      TEXT NOT NULL DEFAULT '',
        pane_pid     INTEGER NOT NULL DEFAULT 0,
        worktree     TEXT NOT NULL DEFAULT '',
        branch       TEXT NOT NULL DEFAULT '',
        token_hash   TEXT NOT NULL DEFAULT '',
        state        TEXT NOT NULL,
        state_since  REAL NOT NULL,
        exit_status  INTEGER,
        prompt_file  TEXT NOT NULL DEFAULT '',
        created_at   REAL NOT NULL,
        ended_at     REAL
    );
    CREATE INDEX workers_task_role ON workers(task, role, ended_at);
    CREATE INDEX workers_token ON workers(token_hash);

    CREATE TABLE messages (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        uid        TEXT NOT NULL UNIQUE,
        at         REAL NOT NULL,
        kind       TEXT NOT NULL,
        task       TEXT NOT NULL DEFAULT '',
        worker     TEXT NOT NULL DEFAULT '',
        role       TEXT NOT NULL DEFAULT '',
        token_hash TEXT NOT NULL DEFAULT '',
        text       TEXT NOT NULL,
        status     TEXT NOT NULL DEFAULT 'pending',
        note       TEXT NOT NULL DEFAULT '',
        applied_at REAL
    );
    CREATE INDEX messages_pending ON messages(status, task, id);

    CREATE TABLE events (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     REAL NOT NULL,
        task   TEXT NOT NULL DEFAULT '',
        worker TEXT NOT NULL DEFAULT '',
        kind   TEXT NOT NULL,
        text   TEXT NOT NULL DEFAULT '',
        data   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_task ON events(task, id);
    """,
]


@dataclass
class Worker:
    id: str
    task: str
    role: str
    agent: str
    state: str
    state_since: float
    created_at: float
    session_name: str = ""
    session_id: str = ""
    window_id: str = ""
    pane_id: str = ""
    pane_pid: int = 0
    worktree: str = ""
    branch: str = ""
    token_hash: str = ""
    exit_status: int | None = None
    prompt_file: str = ""
    ended_at: float | None = None

    @property
    def address(self) -> str:
        return self.task if self.role == "coder" else f"{self.task}:{self.role}"


WORKER_COLUMNS = tuple(f.name for f in fields(Worker))


@dataclass
class Message:
    id: int
    uid: str
    at: float
    kind: str
    task: str
    worker: str
    role: str
    token_hash: str
    text: str
    status: str
    note: str
    applied_at: float | None


@dataclass
class Event:
    id: int
    at: float
    task: str
    worker: str
    kind: str
    text: str
    data: dict


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
            raise OrchError(f"cannot open {path}: {exc}; move it aside and run `orch scan` to rebuild it") from None

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

    def import_messages(self, records: list[dict]) -> int:
        """Insert spooled records (ignoring uids already known). Returns how many were new."""
        added = 0
        with self.tx() as db:
            for r in records:
                cur = db.execute(
                    "INSERT OR IGNORE INTO messages (uid, at, kind, task, worker, role, token_hash, text, status, note)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r["uid"],
                        float(r.get("at") or time.time()),
                        str(r.get("kind") or "message"),
                        str(r.get("task") or ""),
                        str(r.get("worker") or ""),
                        str(r.get("role") or ""),
                        str(r.get("token_hash") or ""),
                        str(r.get("text") or ""),
                        str(r.get("status") or "pending"),
                        str(r.get("note") or ""),
                    ),
                )
                added += cur.rowcount
        return added

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

    def events(self, task: str | None = None, limit: int = 200) -> list[Event]:
        sql, args = "SELECT id, at, task, worker, kind, text, data FROM events", ()
        if task is not None:
            sql, args = sql + " WHERE task = ?", (task,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Event(*row[:6], json.loads(row[6] or "{}")) for row in reversed(rows)]


def open_store(path: str) -> Store:
    return Store(path)
