"""Story entries in the FAISS backend's SQLite database (``index.db``), written in the pass's transaction.

One entry per article that belongs to a story (see :mod:`rag_news.stories`)::

    stories      key (the article) -> story id, day (published date, else first seen), data (JSON: url,
                 outlet, title, published, first_seen, terms), sig (MinHash signature, uint32), lead
                 (title+lead vector, float32)
    story_bands  band hash (64-bit integer) -> key: the MinHash LSH buckets; a lookup is one index read per
                 band. No index on key: an entry's bands are recomputed from its stored signature to delete
                 them (half the pages written per pass)

The tables are created by the first pass that writes a story entry (an index made before stories simply has
none); readers of an index without them see no stories.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS stories(key TEXT PRIMARY KEY, story TEXT NOT NULL, day TEXT, data TEXT NOT NULL,
    sig BLOB, lead BLOB);
CREATE INDEX IF NOT EXISTS stories_by_story ON stories(story);
CREATE INDEX IF NOT EXISTS stories_by_day ON stories(day);
CREATE TABLE IF NOT EXISTS story_bands(band INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY(band, key))
    WITHOUT ROWID
"""
_COLUMNS = "key, story, day, data, sig, lead"


def ensure(conn: sqlite3.Connection) -> None:
    """Create the story tables if missing (inside the writer's transaction)."""
    for stmt in [s for s in SCHEMA.split(";") if s.strip()]:
        conn.execute(stmt)


def _has(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name='stories'").fetchone() is not None


def _band(h: str) -> int:
    """A band hash (16 hex digits) as a signed 64-bit SQLite integer."""
    return int(h, 16) - (1 << 63)


def _drop_bands(conn: sqlite3.Connection, keys: Iterable[str]) -> None:
    from ..stories import bands

    for key in keys:
        row = conn.execute("SELECT sig FROM stories WHERE key=?", (key,)).fetchone()
        if row and row[0]:
            conn.executemany("DELETE FROM story_bands WHERE band=? AND key=?",
                             [(_band(b), key) for b in bands(np.frombuffer(row[0], dtype=np.uint32))])


def _entry(row) -> dict:
    key, story, day, data, sig, lead = row
    out = {**json.loads(data), "key": key, "story": story, "day": day}
    out["sig"] = np.frombuffer(sig, dtype=np.uint32).tolist() if sig else []
    out["lead"] = np.frombuffer(lead, dtype=np.float32) if lead else None
    return out


def write(conn: sqlite3.Connection, entries: dict[str, dict]) -> None:
    """Replace the entries (and their bands) of these articles."""
    if not entries:
        return
    ensure(conn)
    _drop_bands(conn, entries)
    for key, e in entries.items():
        data = {k: v for k, v in e.items() if k not in ("key", "story", "day", "sig", "lead", "bands")}
        sig = np.asarray(e.get("sig") or [], dtype=np.uint32).tobytes()
        lead = None if e.get("lead") is None else np.asarray(e["lead"], dtype=np.float32).tobytes()
        conn.execute(f"INSERT OR REPLACE INTO stories({_COLUMNS}) VALUES (?,?,?,?,?,?)",
                     (key, e["story"], e.get("day"), json.dumps(data, ensure_ascii=False), sig, lead))
        conn.executemany("INSERT OR IGNORE INTO story_bands(band, key) VALUES (?,?)",
                         [(_band(b), key) for b in e.get("bands") or []])


def delete(conn: sqlite3.Connection, keys: Iterable[str]) -> None:
    """Drop the entries of removed articles (their stories keep their other articles)."""
    if not _has(conn):
        return
    _drop_bands(conn, keys)
    for key in keys:
        conn.execute("DELETE FROM stories WHERE key=?", (key,))


def clear(conn: sqlite3.Connection) -> None:
    if _has(conn):
        conn.execute("DELETE FROM stories")
        conn.execute("DELETE FROM story_bands")


def _select(conn: sqlite3.Connection, where: str, args: list) -> list[dict]:
    if not _has(conn):
        return []
    return [_entry(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM stories WHERE {where}", args)]


def _chunked(values: list, n: int = 500):
    for i in range(0, len(values), n):
        yield values[i:i + n]


def by_keys(conn: sqlite3.Connection, keys: list[str]) -> dict[str, dict]:
    out = {}
    for part in _chunked(list(dict.fromkeys(keys))):
        for e in _select(conn, f"key IN ({','.join('?' * len(part))})", part):
            out[e["key"]] = e
    return out


def keys_for_bands(conn: sqlite3.Connection, bands: list[str]) -> set[str]:
    if not bands or not _has(conn):
        return set()
    out: set[str] = set()
    for part in _chunked([_band(b) for b in bands]):
        out |= {k for k, in conn.execute(
            f"SELECT DISTINCT key FROM story_bands WHERE band IN ({','.join('?' * len(part))})", part)}
    return out


def between(conn: sqlite3.Connection, since: str | None, until: str | None) -> list[dict]:
    where, args = ["1"], []
    if since:
        where.append("day >= ?")
        args.append(since[:10])
    if until:
        where.append("day <= ?")
        args.append(until[:10])
    return _select(conn, " AND ".join(where), args)


def members(conn: sqlite3.Connection, story_ids: list[str]) -> list[dict]:
    out = []
    for part in _chunked(list(dict.fromkeys(story_ids))):
        out += _select(conn, f"story IN ({','.join('?' * len(part))})", part)
    return out
