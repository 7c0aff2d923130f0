"""A replay's resumable state: the planned offset spans, the next offset per partition and the worker's per-user
state table, saved together in one SQLite transaction *after* the outputs up to those offsets were flushed. A crash
between flush and save re-processes a few records; the worker's dedupe makes that harmless."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class StateTable:
    """The worker's ``users`` table for :class:`streams.processor.Processor`, in memory with dirty tracking."""

    def __init__(self, rows: dict[str, bytes]) -> None:
        self._rows = rows
        self.dirty: set[str] = set()

    @staticmethod
    def _k(user: str | bytes) -> str:
        return user.decode() if isinstance(user, bytes) else user

    def get(self, user: str | bytes) -> bytes | None:
        return self._rows.get(self._k(user))

    def __setitem__(self, user: str | bytes, value: bytes) -> None:
        self._rows[self._k(user)] = value
        self.dirty.add(self._k(user))

    def __delitem__(self, user: str | bytes) -> None:
        self._rows.pop(self._k(user), None)
        self.dirty.add(self._k(user))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return ((k.encode(), v) for k, v in list(self._rows.items()))


class Checkpoint:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS state (user TEXT PRIMARY KEY, value BLOB NOT NULL);
        """)

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **kv: Any) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in kv.items()])

    def offsets(self) -> dict[int, int]:
        return dict(self.db.execute("SELECT partition, next FROM offsets"))

    def table(self) -> StateTable:
        return StateTable({u: bytes(v) for u, v in self.db.execute("SELECT user, value FROM state")})

    def save(self, offsets: dict[int, int], table: StateTable | None, **meta: Any) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?)", list(offsets.items()))
            if table is not None:
                for user in table.dirty:
                    v = table.get(user)
                    if v is None:
                        self.db.execute("DELETE FROM state WHERE user = ?", (user,))
                    else:
                        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (user, v))
                table.dirty.clear()
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in meta.items()])

    def close(self) -> None:
        self.db.close()
