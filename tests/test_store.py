"""The store: migrations from the first schema, rows read by column name."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orch.store import Store
from orch.store.migrations import MIGRATIONS


def first_schema_db(path: Path) -> None:
    """A database as the first release of orch left it: migration 1 only, with a worker, a message, an event."""
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0].statements():
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    now = time.time()
    db.execute("INSERT INTO workers (id, task, role, agent, session_name, window_id, pane_id, pane_pid, worktree,"
               " branch, token_hash, state, state_since, created_at) VALUES"
               " ('t:coder:1', 't', 'coder', 'claude', 'task-t', '@1', '%1', 42, '/w/t', 'orch/t', 'h', 'working', ?, ?)",
               (now, now))
    db.execute("INSERT INTO messages (uid, at, kind, task, text, status) VALUES ('u1', ?, 'message', 't', 'done: x',"
               " 'applied')", (now,))
    db.execute("INSERT INTO events (at, task, kind, text, data) VALUES (?, 't', 'spawn', 'coder started', ?)",
               (now, '{"agent": "claude"}'))
    db.commit()
    db.close()


def test_a_database_of_the_first_schema_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "orch.db"
    first_schema_db(path)
    store = Store(str(path))
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        (w,) = store.live_workers()
        assert (w.id, w.task, w.role, w.agent, w.pane_id, w.pane_pid, w.state) == \
               ("t:coder:1", "t", "coder", "claude", "%1", 42, "working")
        # columns added by later migrations have their defaults
        assert (w.agent_session, w.hook_at, w.screen_count, w.transcript_offset, w.tmux_server) == ("", None, 0, 0, "")
        (m,) = store.messages("t")
        assert (m.uid, m.text, m.status) == ("u1", "done: x", "applied")
        (e,) = store.events("t")
        assert (e.kind, e.text, e.data) == ("spawn", "coder started", {"agent": "claude"})
        # the tables of later migrations work
        store.queue_text("t:coder:1", "t", "hello", "test")
        assert [q.text for q in store.queued("t")] == ["hello"]
        assert store.reviews("t") == [] and store.validations("t") == []
    finally:
        store.close()
    again = Store(str(path))  # opening an up-to-date database changes nothing
    try:
        assert again.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [w.id for w in again.live_workers()] == ["t:coder:1"]
    finally:
        again.close()


def test_every_migration_has_a_name_and_statements() -> None:
    names = [m.name for m in MIGRATIONS]
    assert all(names) and len(set(names)) == len(names)
    assert all(m.statements() for m in MIGRATIONS)


def test_rows_are_read_by_column_name_not_position(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "orch.db"))
    try:
        review_id = store.add_review("t", 1, "abc", "main", "base", "t:reviewer:1", "tree")
        store.update_review(review_id, decision="approve", findings=[{"severity": "note", "path": "", "line": None,
                                                                      "text": "fine"}], status="counted")
        (r,) = store.reviews("t")
        assert (r.sha, r.base_sha, r.reviewer, r.tree_before, r.decision, r.status) == \
               ("abc", "base", "t:reviewer:1", "tree", "approve", "counted")
        assert r.findings[0]["text"] == "fine"
        store.event("x", "one", task="t", n=1)
        store.event("x", "two", task="t", n=2)
        assert [e.text for e in store.events("t", limit=1)] == ["two"]  # the newest, in order
        assert [e.data["n"] for e in store.events_after(0, "t")] == [1, 2]
        store.event("state", "t: idle -> working (hook prompt)", task="t")
        store.event("x", "three", task="t")
        store.event("state", "u: idle -> working (screen)", task="u")
        assert [e.text for e in store.events("t", limit=5, kind="state")] == ["t: idle -> working (hook prompt)"]
        assert [e.task for e in store.events(kind="state")] == ["t", "u"]
        assert [e.text for e in store.events("t", limit=2)] == ["t: idle -> working (hook prompt)", "three"]
    finally:
        store.close()
