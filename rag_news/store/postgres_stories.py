"""Story entries in the PostgreSQL backend (see :mod:`rag_news.stories`), written in the pass's transaction.

The same two tables as the FAISS backend's (:mod:`rag_news.store.story_tables`), in the index's schema::

    stories      key (the article) -> story id, day (published date, else first seen), data (JSONB: url,
                 outlet, title, published, first_seen, terms), sig (MinHash signature, uint32), lead
                 (title+lead vector, float32)
    story_bands  band hash (64-bit integer) -> key: the MinHash LSH buckets (one index read per lookup)
"""

from __future__ import annotations

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.stories(key TEXT PRIMARY KEY, story TEXT NOT NULL, day TEXT COLLATE "C",
    data JSONB NOT NULL, sig BYTEA, lead BYTEA);
CREATE INDEX IF NOT EXISTS stories_by_story ON {s}.stories(story);
CREATE INDEX IF NOT EXISTS stories_by_day ON {s}.stories(day);
CREATE TABLE IF NOT EXISTS {s}.story_bands(band BIGINT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(band, key));
CREATE INDEX IF NOT EXISTS story_bands_by_key ON {s}.story_bands(key)
"""
_COLUMNS = "key, story, day, data, sig, lead"


def _band(h: str) -> int:
    """A band hash (16 hex digits) as a signed 64-bit integer."""
    return int(h, 16) - (1 << 63)


def _entry(row) -> dict:
    key, story, day, data, sig, lead = row
    out = {**data, "key": key, "story": story, "day": day}
    out["sig"] = np.frombuffer(bytes(sig), dtype=np.uint32).tolist() if sig else []
    out["lead"] = np.frombuffer(bytes(lead), dtype=np.float32) if lead else None
    return out


def write_pass(cur, s: str, staged) -> None:
    """The pass's story changes inside its transaction: a reset (restory), removed articles' entries
    (their stories keep their other articles), then the staged entries with their bands."""
    from psycopg.types.json import Jsonb

    if staged.stories_reset:
        cur.execute(f"DELETE FROM {s}.story_bands")
        cur.execute(f"DELETE FROM {s}.stories")
    gone = sorted(set(staged.removals) | set(staged.stories))
    if gone:
        cur.execute(f"DELETE FROM {s}.story_bands WHERE key = ANY(%s)", (gone,))
        cur.execute(f"DELETE FROM {s}.stories WHERE key = ANY(%s)", (sorted(staged.removals),))
    for key, e in staged.stories.items():
        data = {k: v for k, v in e.items() if k not in ("key", "story", "day", "sig", "lead", "bands")}
        sig = np.asarray(e.get("sig") or [], dtype=np.uint32).tobytes()
        lead = None if e.get("lead") is None else np.asarray(e["lead"], dtype=np.float32).tobytes()
        cur.execute(f"INSERT INTO {s}.stories({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE "
                    "SET story = excluded.story, day = excluded.day, data = excluded.data, sig = excluded.sig, "
                    "lead = excluded.lead", (key, e["story"], e.get("day"), Jsonb(data), sig, lead))
        cur.executemany(f"INSERT INTO {s}.story_bands(band, key) VALUES (%s,%s) ON CONFLICT DO NOTHING",
                        [(_band(b), key) for b in e.get("bands") or []])


def by_keys(store, keys: list[str]) -> dict[str, dict]:
    rows = store.rows(f"SELECT {_COLUMNS} FROM {{s}}.stories WHERE key = ANY(%s)", (list(dict.fromkeys(keys)),))
    return {r[0]: _entry(r) for r in rows}


def keys_for_bands(store, bands: list[str]) -> set[str]:
    if not bands:
        return set()
    return {r[0] for r in store.rows("SELECT DISTINCT key FROM {s}.story_bands WHERE band = ANY(%s)",
                                      ([_band(b) for b in bands],))}


def between(store, since: str | None, until: str | None) -> list[dict]:
    rows = store.rows(f"SELECT {_COLUMNS} FROM {{s}}.stories WHERE (%s::text IS NULL OR day >= %s) "
                       "AND (%s::text IS NULL OR day <= %s)",
                       (since and since[:10], since and since[:10], until and until[:10], until and until[:10]))
    return [_entry(r) for r in rows]


def members(store, story_ids: list[str]) -> list[dict]:
    rows = store.rows(f"SELECT {_COLUMNS} FROM {{s}}.stories WHERE story = ANY(%s)",
                       (list(dict.fromkeys(story_ids)),))
    return [_entry(r) for r in rows]
