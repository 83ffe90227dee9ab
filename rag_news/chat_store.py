"""The server's conversations: one SQLite file (``conversations.sqlite3`` in the cache folder), so they
survive a restart; bounded in number (``max_conversations`` per owner, oldest dropped first) and in age
(``conversation_days`` since last use); each belongs to the bearer token that made it (stored as a
SHA-256 digest, never the token), and other tokens neither see nor delete it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

MAX_TURNS = 50  # messages kept per conversation (the prompt reads only the last few)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations(owner, updated);
CREATE TABLE IF NOT EXISTS turns (
  conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, n INTEGER NOT NULL,
  role TEXT NOT NULL, content TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}', at REAL NOT NULL,
  PRIMARY KEY (conversation, n));
"""


def owner_of(token: str | None) -> str:
    """The owner key for a bearer token (``""`` with no token: a single-user server)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest() if token else ""


class ConversationStore:
    """Conversations in SQLite at ``path``. ``max_conversations``: kept per owner; ``max_age_days``:
    dropped when untouched for longer. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path, max_conversations: int = 200, max_age_days: float = 30.0):
        self.path, self.max_conversations, self.max_age_s = Path(path), max_conversations, max_age_days * 86400
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _expire(self, now: float) -> None:
        self._db.execute("DELETE FROM conversations WHERE updated < ?", (now - self.max_age_s,))

    def create(self, owner: str, title: str) -> str:
        """A new conversation's id (the oldest of ``owner``'s beyond the bound are dropped)."""
        cid, now = uuid.uuid4().hex, time.time()
        with self._lock, self._db:
            self._expire(now)
            self._db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                             (cid, owner, " ".join(title.split())[:120], now, now))
            self._db.execute("DELETE FROM conversations WHERE owner = ? AND id NOT IN (SELECT id FROM conversations "
                             "WHERE owner = ? ORDER BY updated DESC LIMIT ?)", (owner, owner, self.max_conversations))
        return cid

    def exists(self, owner: str, cid: str) -> bool:
        with self._lock, self._db:  # committed at the end: no write transaction is left open
            self._expire(time.time())
            row = self._db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?", (cid, owner)).fetchone()
        return row is not None

    def turns(self, owner: str, cid: str) -> list[dict[str, Any]] | None:
        """The conversation's messages (``role``, ``content``, ``extra``), None when it is not ``owner``'s."""
        if not self.exists(owner, cid):
            return None
        with self._lock:
            rows = self._db.execute("SELECT role, content, extra FROM turns WHERE conversation = ? ORDER BY n",
                                    (cid,)).fetchall()
        return [{"role": r, "content": c, "extra": json.loads(e)} for r, c, e in rows]

    def add(self, owner: str, cid: str, role: str, content: str, extra: dict | None = None) -> None:
        """Append a message (the conversation keeps its last :data:`MAX_TURNS`)."""
        now = time.time()
        with self._lock, self._db:
            if not self._db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?", (cid, owner)).fetchone():
                raise KeyError(cid)
            n = self._db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM turns WHERE conversation = ?", (cid,)).fetchone()[0]
            self._db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)",
                             (cid, n, role, content, json.dumps(extra or {}, ensure_ascii=False), now))
            self._db.execute("DELETE FROM turns WHERE conversation = ? AND n <= ?", (cid, n - MAX_TURNS))
            self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, cid))

    def recent(self, owner: str, limit: int = 20) -> list[dict[str, Any]]:
        """``owner``'s conversations, most recently used first: ``id``, ``title``, ``updated`` (epoch s)."""
        with self._lock, self._db:
            self._expire(time.time())
            rows = self._db.execute("SELECT id, title, updated FROM conversations WHERE owner = ? "
                                    "ORDER BY updated DESC LIMIT ?", (owner, limit)).fetchall()
        return [{"id": i, "title": t, "updated": u} for i, t, u in rows]

    def delete(self, owner: str, cid: str) -> bool:
        """Delete ``owner``'s conversation ``cid``; False when there is none (or it is another's)."""
        with self._lock, self._db:
            cur = self._db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (cid, owner))
        return cur.rowcount > 0
