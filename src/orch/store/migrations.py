"""The database schema: named migrations, applied in order; ``PRAGMA user_version`` counts those applied.

A migration is never edited once released: a change of schema is a new one at the end of the list
(tests/test_store.py upgrades a database of the first schema to the current one).
"""

from __future__ import annotations

from orch.record import dataclass


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    def statements(self) -> list[str]:
        return [s for s in self.sql.split(";") if s.strip()]


MIGRATIONS: list[Migration] = [Migration(name, sql) for name, sql in (
    ("registry, inbox and events", """
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
    """),
    ("validation runs and reviews: the evidence of the review loop", """
    CREATE TABLE validations (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        task      TEXT NOT NULL,
        round     INTEGER NOT NULL,
        sha       TEXT NOT NULL,
        command   TEXT NOT NULL,
        source    TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        duration  REAL NOT NULL,
        timed_out INTEGER NOT NULL DEFAULT 0,
        tail      TEXT NOT NULL DEFAULT '',
        log_path  TEXT NOT NULL DEFAULT '',
        at        REAL NOT NULL
    );
    CREATE INDEX validations_task ON validations(task, sha, id);

    CREATE TABLE reviews (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        task        TEXT NOT NULL,
        round       INTEGER NOT NULL,
        sha         TEXT NOT NULL,
        base        TEXT NOT NULL,
        base_sha    TEXT NOT NULL,
        reviewer    TEXT NOT NULL DEFAULT '',
        tree_before TEXT NOT NULL,
        tree_after  TEXT NOT NULL DEFAULT '',
        decision    TEXT NOT NULL DEFAULT '',
        findings    TEXT NOT NULL DEFAULT '[]',
        status      TEXT NOT NULL DEFAULT 'pending',
        note        TEXT NOT NULL DEFAULT '',
        requested_at REAL NOT NULL,
        answered_at REAL,
        acted_at    REAL
    );
    CREATE INDEX reviews_task ON reviews(task, id);
    """),
    # the outbox holds texts back while a person is attached to a worker's window
    ("live worker state (hooks, screen readings), agent sessions, the outbox", """
    ALTER TABLE workers ADD COLUMN agent_session TEXT NOT NULL DEFAULT '';
    ALTER TABLE workers ADD COLUMN hook_at REAL;
    ALTER TABLE workers ADD COLUMN screen_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE workers ADD COLUMN screen_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE workers ADD COLUMN prompted_at REAL;
    ALTER TABLE workers ADD COLUMN reminded_at REAL;
    ALTER TABLE workers ADD COLUMN note TEXT NOT NULL DEFAULT '';

    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        worker       TEXT NOT NULL,
        task         TEXT NOT NULL,
        text         TEXT NOT NULL,
        why          TEXT NOT NULL DEFAULT '',
        created_at   REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX outbox_pending ON outbox(delivered_at, worker, id);
    """),
    # for final-message reports read from an agent's own transcript (Aider's chat history)
    ("how far an agent's transcript was read", """
    ALTER TABLE workers ADD COLUMN transcript_offset INTEGER NOT NULL DEFAULT 0;
    """),
    # "<pid>:<start time>": a worker lost with its server is brought back; one whose window was closed on a live
    # server is not
    ("the tmux server a worker was started on", """
    ALTER TABLE workers ADD COLUMN tmux_server TEXT NOT NULL DEFAULT '';
    """),
    # rows of another workspace (a database copied with its repository) are never taken for this one's; '' is a
    # row from before workspaces had ids, taken as this workspace's
    ("the workspace a worker belongs to", """
    ALTER TABLE workers ADD COLUMN workspace TEXT NOT NULL DEFAULT '';
    """),
    # orch's record of each open task's block: its state, summary fields and session/worktree/branch lines, and its
    # status log in arrival order; the task file's block is a rendering of it, written again whenever an editor
    # dropped it or saved an older copy. uid: the message a log line came from (one line per message)
    ("tasks and their status logs", """
    CREATE TABLE tasks (
        slug       TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        fields     TEXT NOT NULL DEFAULT '{}',
        meta       TEXT NOT NULL DEFAULT '{}',
        rev        INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE TABLE task_log (
        id   INTEGER PRIMARY KEY AUTOINCREMENT,
        slug TEXT NOT NULL,
        at   REAL NOT NULL,
        text TEXT NOT NULL,
        uid  TEXT
    );
    CREATE INDEX task_log_slug ON task_log(slug, id);
    CREATE UNIQUE INDEX task_log_uid ON task_log(slug, uid) WHERE uid IS NOT NULL;
    """),
    # the branches and worktrees orch itself created: the only ones `gc` and `close` ever remove
    ("what orch made", """
    CREATE TABLE made (
        kind       TEXT NOT NULL,
        name       TEXT NOT NULL,
        task       TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        PRIMARY KEY (kind, name)
    );
    """),
    # how the worker was confined: "bubblewrap", or why not ("off: ...")
    ("the sandbox of each worker", """
    ALTER TABLE workers ADD COLUMN sandbox TEXT NOT NULL DEFAULT '';
    """),
    # the forge: each task's pull request as last read (a JSON view), every reaction orch sent (once per key and
    # sha: a failed check on a head, a thread as it stands, a change request), and the forge's own state (the
    # time of the last query, a rate limit to wait out, the budget left)
    ("pull requests and reactions", """
    CREATE TABLE pulls (
        task       TEXT PRIMARY KEY,
        number     INTEGER NOT NULL,
        url        TEXT NOT NULL,
        state      TEXT NOT NULL,
        head_sha   TEXT NOT NULL,
        data       TEXT NOT NULL,
        heads      TEXT NOT NULL DEFAULT '{}',
        fetched_at REAL NOT NULL
    );
    CREATE TABLE reactions (
        task  TEXT NOT NULL,
        key   TEXT NOT NULL,
        sha   TEXT NOT NULL,
        kind  TEXT NOT NULL,
        round INTEGER NOT NULL,
        text  TEXT NOT NULL,
        at    REAL NOT NULL,
        PRIMARY KEY (task, key, sha)
    );
    CREATE TABLE forge_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """),
    # the conflict radar's cache: whether two commits merge cleanly (and the paths that conflict), and the paths a
    # branch head changes since its merge base with the base; both keyed by shas, so a pass computes only what moved
    ("the conflict radar", """
    CREATE TABLE radar_pairs (
        a     TEXT NOT NULL,
        b     TEXT NOT NULL,
        clean INTEGER NOT NULL,
        paths TEXT NOT NULL,
        PRIMARY KEY (a, b)
    );
    CREATE TABLE radar_files (
        base  TEXT NOT NULL,
        head  TEXT NOT NULL,
        files TEXT NOT NULL,
        PRIMARY KEY (base, head)
    );
    """),
    # many hosts: where each task runs (its Temporal workflow holds the truth; this is the workspace's copy, from
    # the reports applied), the newest report applied (run, seq) and the hosts as last listed
    ("tasks on hosts", """
    CREATE TABLE hosted (
        task     TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        host     TEXT NOT NULL DEFAULT '',
        run      INTEGER NOT NULL DEFAULT 0,
        seq      INTEGER NOT NULL DEFAULT -1,
        lines    INTEGER NOT NULL DEFAULT 0,
        state    TEXT NOT NULL DEFAULT '',
        head     TEXT NOT NULL DEFAULT '',
        ended    INTEGER NOT NULL DEFAULT 0,
        at       REAL NOT NULL
    );
    """),
)]
