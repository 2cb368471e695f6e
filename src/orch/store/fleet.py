"""Tasks on hosts: the workspace's copy of each placement, as the reports from the hosts left it."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager

from orch.record import dataclass


@dataclass
class HostedRow:
    task: str
    workflow: str  # the Temporal workflow that holds the placement
    host: str  # "" while no host is chosen
    run: int  # placements so far (a new one after a host is lost)
    seq: int  # the newest report of this run applied (-1: none yet)
    lines: int  # the host's status lines of this run copied into the task file
    state: str  # the task's state on its host
    head: str  # the branch head the host last pushed
    ended: bool  # the host is done with it (ready, blocked, closed): the workspace's own pass has it again
    at: float


class FleetRows:
    """Mixed into Store (which gives ``db`` and ``tx``)."""

    db: sqlite3.Connection

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def put_hosted(self, row: HostedRow) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO hosted (task, workflow, host, run, seq, lines, state, head, ended, at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.task, row.workflow, row.host, row.run, row.seq, row.lines, row.state, row.head, int(row.ended),
                        row.at or time.time()))

    def hosted(self, task: str) -> HostedRow | None:
        rows = self._hosted("WHERE task = ?", (task,))
        return rows[0] if rows else None

    def all_hosted(self, live_only: bool = False) -> dict[str, HostedRow]:
        return {r.task: r for r in self._hosted("WHERE ended = 0" if live_only else "", ())}

    def drop_hosted(self, task: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM hosted WHERE task = ?", (task,))

    def _hosted(self, where: str, args: tuple) -> list[HostedRow]:
        return [HostedRow(t, w, h, r, s, n, st, hd, bool(e), at) for t, w, h, r, s, n, st, hd, e, at in self.db.execute(
            f"SELECT task, workflow, host, run, seq, lines, state, head, ended, at FROM hosted {where}", args)]
