"""Writing a pass into the PostgreSQL backend (:func:`commit_pass`): one transaction, under the index's
commit lock (an advisory transaction lock, so commits of concurrent writers serialise). Order inside it:
removals, the new versions of articles (old chunks and URL forms deleted, the record replaced, new chunks
copied in with ``COPY``), touches, expired notes, host notes, and a pass row. Killed anywhere before the
``COMMIT``, PostgreSQL rolls the whole pass back."""

from __future__ import annotations

import hashlib

from ..faults import NO_FAULTS, Faults
from . import postgres_stories
from .base import CommitResult, Staged, chunk_rows, url_forms, utc_now

_ARTICLE_COLUMNS = ("key", "url", "published", "content_hash")
BATCH = 1000  # articles per statement batch
# what PostgresStore.expiry_candidates reads through (made with the schema; an older schema gets them at its
# next commit)
EXPIRY_INDEXES = """
CREATE INDEX IF NOT EXISTS articles_by_seen ON {s}.articles((coalesce(record->>'last_seen', record->>'first_seen'))
    COLLATE "C");
CREATE INDEX IF NOT EXISTS articles_by_born ON {s}.articles((coalesce(published, record->>'first_seen')) COLLATE "C")
"""


def lock_id(schema: str, what: str) -> int:
    """A 64-bit advisory lock id for ``what`` (``pass``, ``commit``, ``shard i/N``, ``create``) of ``schema``."""
    return int.from_bytes(hashlib.sha256(f"rag-news:{schema}:{what}".encode()).digest()[:8], "big", signed=True)


def _record(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("text", "chunk_ids")}


def _delete(cur, s: str, keys: list[str], articles: bool) -> int:
    """Delete the chunks and URL forms (and with ``articles``, the records) of ``keys``; returns the number
    of chunks deleted."""
    cur.execute(f"DELETE FROM {s}.chunks WHERE key = ANY(%s)", (keys,))
    removed = cur.rowcount
    cur.execute(f"DELETE FROM {s}.url_forms WHERE key = ANY(%s)", (keys,))
    if articles:
        cur.execute(f"DELETE FROM {s}.articles WHERE key = ANY(%s)", (keys,))
    return removed


def _write_articles(cur, s: str, upserts: list) -> int:
    """Replace articles (records, texts, URL forms, chunks) BATCH at a time; returns old chunks deleted."""
    from psycopg.types.json import Jsonb

    removed = 0
    for i in range(0, len(upserts), BATCH):
        part = upserts[i:i + BATCH]
        removed += _delete(cur, s, [rec["key"] for rec, _, _ in part], articles=False)
        cur.executemany(
            f"INSERT INTO {s}.articles(key, url, published, content_hash, record, text) VALUES (%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (key) DO UPDATE SET url=excluded.url, published=excluded.published, "
            "content_hash=excluded.content_hash, record=excluded.record, text=excluded.text",
            [(*[rec.get(c) for c in _ARTICLE_COLUMNS], Jsonb(_record(rec)), rec.get("text") or "")
             for rec, _, _ in part])
        cur.executemany(f"INSERT INTO {s}.url_forms(url, key) VALUES (%s, %s) ON CONFLICT (url) DO UPDATE "
                        "SET key = excluded.key", [(u, rec["key"]) for rec, _, _ in part for u in url_forms(rec)])
        with cur.copy(f"COPY {s}.chunks(chunk_id, key, seq, published, text, metadata, embedding) FROM STDIN") as cp:
            for rec, chunks, vectors in part:
                for (index, cid, text, meta), v in zip(chunk_rows(rec, chunks), vectors):
                    cp.write_row((cid, rec["key"], index, rec.get("published"), text, Jsonb(meta), v))
    return removed


def _touch(cur, s: str, touches: dict[str, dict]) -> None:
    """New values for some fields of existing records (the row only; URL forms when the URLs changed)."""
    from psycopg.types.json import Jsonb

    for key, fields in touches.items():
        fields = _record(fields)
        cur.execute(f"UPDATE {s}.articles SET record = record || %s, url = coalesce(%s, url), "
                    "published = CASE WHEN %s THEN %s ELSE published END, "
                    "content_hash = coalesce(%s, content_hash) WHERE key = %s RETURNING record",
                    (Jsonb(fields), fields.get("url"), "published" in fields, fields.get("published"),
                     fields.get("content_hash"), key))
        row = cur.fetchone()
        if row is not None and {"url", "source", "aliases"} & set(fields):
            cur.executemany(f"INSERT INTO {s}.url_forms(url, key) VALUES (%s, %s) ON CONFLICT (url) DO UPDATE "
                            "SET key = excluded.key", [(u, key) for u in url_forms(row[0])])


def _notes(cur, s: str, staged: Staged, when: str) -> None:
    from psycopg.types.json import Jsonb

    cur.executemany(f"INSERT INTO {s}.expired(key, reason, removed_at) VALUES (%s,%s,%s) ON CONFLICT (key) "
                    "DO UPDATE SET reason = excluded.reason, removed_at = excluded.removed_at",
                    [(k, r, when) for k, r in staged.expired.items()])
    if staged.upserts:
        cur.execute(f"DELETE FROM {s}.expired WHERE key = ANY(%s)", (list(staged.upserts),))
    cur.executemany(f"INSERT INTO {s}.host_notes(host, record, updated) VALUES (%s,%s,%s) ON CONFLICT (host) "
                    "DO UPDATE SET record = excluded.record, updated = excluded.updated",
                    [(h, Jsonb(n), when) for h, n in staged.host_notes.items()])


def commit_pass(conn, s: str, staged: Staged, faults: Faults = NO_FAULTS) -> CommitResult:
    """Write ``staged`` into schema ``s`` through ``conn`` in one transaction; see the module docstring."""
    if not staged.pending:
        return CommitResult(pass_id=None)
    upserts = list(staged.upserts.values())
    added, written = staged.chunks_added, staged.articles_written
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id(s, "commit"),))
        for stmt in EXPIRY_INDEXES.format(s=s).split(";"):
            if stmt.strip():
                cur.execute(stmt)
        removed = _delete(cur, s, sorted(staged.removals), articles=True) if staged.removals else 0
        removed += _write_articles(cur, s, upserts)
        _touch(cur, s, staged.foreign_touches())
        when = utc_now()
        _notes(cur, s, staged, when)
        postgres_stories.write_pass(cur, s, staged)  # the pass's story entries (rag_news.stories)
        cur.execute(f"INSERT INTO {s}.passes(committed, chunks_added, chunks_removed, articles_written) "
                    "VALUES (%s,%s,%s,%s) RETURNING id", (when, added, removed, written))
        pass_id = int(cur.fetchone()[0])
        faults.reached("swapping")  # crash tests: everything written, the transaction not yet committed
    return CommitResult(pass_id=pass_id, chunks_added=added, chunks_removed=removed, articles_written=written)
