"""The forge's rows: each task's pull request as last read, the reactions orch sent, the forge's own state."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager

from orch.record import dataclass, field


@dataclass
class PullRow:
    task: str
    number: int
    url: str
    state: str
    head_sha: str
    data: dict  # the Pull, as a dict (orch.forge.Pull)
    heads: dict[str, float] = field(default_factory=dict)  # each head sha -> when orch first saw it
    fetched_at: float = 0.0


@dataclass
class Reaction:
    task: str
    key: str  # "check:<name>", "thread:<id>:<last comment>", "changes:<review id>", "bot:<comment id>"
    sha: str
    kind: str
    round: int
    text: str
    at: float


class ForgeRows:
    """Mixed into Store (which gives ``db`` and ``tx``)."""

    db: sqlite3.Connection

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def put_pull(self, row: PullRow) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO pulls (task, number, url, state, head_sha, data, heads, fetched_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.task, row.number, row.url, row.state, row.head_sha, json.dumps(row.data),
                        json.dumps(row.heads), row.fetched_at))

    def drop_pull(self, task: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM pulls WHERE task = ?", (task,))

    def pulls(self) -> dict[str, PullRow]:
        return {r.task: r for r in self._pull_rows("", ())}

    def pull(self, task: str) -> PullRow | None:
        found = self._pull_rows("WHERE task = ?", (task,))
        return found[0] if found else None

    def _pull_rows(self, where: str, args: tuple) -> list[PullRow]:
        rows = self.db.execute(f"SELECT task, number, url, state, head_sha, data, heads, fetched_at FROM pulls {where}",
                               args).fetchall()
        return [PullRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7]) for r in rows]

    def react(self, reactions: list[Reaction]) -> list[Reaction]:
        """Record reactions about to be sent; returns those not recorded before (each is sent once)."""
        new = []
        with self.tx() as db:
            for r in reactions:
                cur = db.execute("INSERT OR IGNORE INTO reactions (task, key, sha, kind, round, text, at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (r.task, r.key, r.sha, r.kind, r.round, r.text, r.at))
                if cur.rowcount:
                    new.append(r)
        return new

    def reactions(self, task: str) -> list[Reaction]:
        rows = self.db.execute("SELECT task, key, sha, kind, round, text, at FROM reactions WHERE task = ? "
                               "ORDER BY at, rowid", (task,)).fetchall()
        return [Reaction(*r) for r in rows]

    def forge_meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM forge_meta").fetchall())

    def set_forge_meta(self, **values: object) -> None:
        with self.tx() as db:
            for k, v in values.items():
                if v is None:
                    db.execute("DELETE FROM forge_meta WHERE key = ?", (k,))
                else:
                    db.execute("INSERT OR REPLACE INTO forge_meta (key, value) VALUES (?, ?)", (k, str(v)))
