"""The conflict radar's cache: pairs of commits (clean or the conflicting paths) and the paths each head changes."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager


class RadarRows:
    """Mixed into Store (which gives ``db`` and ``tx``)."""

    db: sqlite3.Connection

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def radar_pairs(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], list[str] | None]:
        """The cached outcome of each (a, b) pair (a < b): None when clean, else the conflicting paths; pairs not
        cached are absent."""
        found: dict[tuple[str, str], list[str] | None] = {}
        for i in range(0, len(pairs), 400):
            chunk = pairs[i:i + 400]
            where = " OR ".join("(a = ? AND b = ?)" for _ in chunk)
            args = [x for pair in chunk for x in pair]
            for a, b, clean, paths in self.db.execute(f"SELECT a, b, clean, paths FROM radar_pairs WHERE {where}",
                                                      args):
                found[(a, b)] = None if clean else json.loads(paths)
        return found

    def put_radar_pairs(self, outcomes: dict[tuple[str, str], list[str] | None]) -> None:
        if not outcomes:
            return
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO radar_pairs (a, b, clean, paths) VALUES (?, ?, ?, ?)",
                           [(a, b, int(p is None), json.dumps(p or [])) for (a, b), p in outcomes.items()])

    def radar_files(self, base: str, heads: list[str]) -> dict[str, list[str]]:
        found = {}
        for i in range(0, len(heads), 400):
            chunk = heads[i:i + 400]
            rows = self.db.execute(f"SELECT head, files FROM radar_files WHERE base = ? AND head IN "
                                   f"({', '.join('?' for _ in chunk)})", [base, *chunk])
            found.update({head: json.loads(files) for head, files in rows})
        return found

    def put_radar_files(self, base: str, files: dict[str, list[str]]) -> None:
        if not files:
            return
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO radar_files (base, head, files) VALUES (?, ?, ?)",
                           [(base, head, json.dumps(f)) for head, f in files.items()])
