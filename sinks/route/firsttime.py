""""First time per user" state: one small SQLite file per destination, ``(user_key, event) → first event_id``.

Claimed when the event matches (before sending), so a later duplicate or a different event of the same kind for the
same user is filtered out, while the *same* event (a retry, a replay, a dead-letter re-run) still passes. The event kind
is the event type, or the event name for custom events. The file lives under ``route.state_dir``; it is local state,
so one `attrib route` process should own it (see README "Outbound routing").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class FirstTimeStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS first_seen (user_key TEXT NOT NULL, event TEXT NOT NULL, "
                         "event_id TEXT NOT NULL, PRIMARY KEY (user_key, event)) WITHOUT ROWID")

    @staticmethod
    def kind(event_type: str, event_name: str) -> str:
        return f"custom:{event_name}" if event_type == "custom" else event_type

    def claim(self, user_key: str, kind: str, event_id: str) -> bool:
        """True if this event is the user's first of its kind (or is that first event again)."""
        self._db.execute("INSERT OR IGNORE INTO first_seen VALUES (?, ?, ?)", (user_key, kind, event_id))
        row = self._db.execute("SELECT event_id FROM first_seen WHERE user_key = ? AND event = ?",
                               (user_key, kind)).fetchone()
        return bool(row and row[0] == event_id)

    def close(self) -> None:
        self._db.close()
