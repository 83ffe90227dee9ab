"""The index's records in SQLite (WAL): articles, chunks, keyword index, vector segments, passes.

One file, ``index.db``, is the source of truth for everything but the vectors themselves (those live in
FAISS segment files, see :mod:`rag_news.store.vectors`; this database lists which segment files are live
and which vector ids are deleted). Writers change it in one transaction per pass, so a crash leaves the
last committed pass; readers read inside a transaction and see one pass, never half of one, without
blocking the writer (WAL).

Keyword search is SQLite's FTS5 (BM25 ranking) over the chunk texts, kept in the same transactions as the
chunks, so it is never out of step with them and is never rebuilt. A query's terms are taken rarest first
until their documents add up to ``POSTINGS_BUDGET``: the commonest terms carry the least BM25 weight and
cost the most (see benchmarks/bench_keyword.py for the measurements behind this).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import IndexCorrupt

DB_NAME = "index.db"  # the SQLite database in an index folder
FORMAT = "rag-news-index"
SCHEMA_VERSION = 2  # version 1 was the JSON snapshot format (migrated by rag_news.store.legacy)
POSTINGS_BUDGET = 20_000
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an and are as at be by did do does for from had has have how in is it its of on or that the their "
    "this to was were what when where which who whom why will with".split())
_ARTICLE_COLUMNS = ("key", "url", "title", "published", "content_hash", "first_seen", "last_seen")

SCHEMA = """
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE articles(key TEXT PRIMARY KEY, url TEXT, title TEXT, published TEXT, content_hash TEXT,
                      first_seen TEXT, last_seen TEXT, record TEXT NOT NULL);
CREATE INDEX articles_by_hash ON articles(content_hash);
CREATE INDEX articles_by_published ON articles(published);
CREATE TABLE article_text(key TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE url_forms(url TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE INDEX url_forms_by_key ON url_forms(key);
CREATE TABLE chunks(vid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, key TEXT NOT NULL, seq INTEGER NOT NULL,
                    published TEXT, text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX chunks_by_key ON chunks(key, seq);
CREATE INDEX chunks_by_published ON chunks(published);
CREATE VIRTUAL TABLE chunk_fts USING fts5(text, content='chunks', content_rowid='vid',
                                          tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE chunk_terms USING fts5vocab(chunk_fts, 'row');
CREATE TABLE segments(name TEXT PRIMARY KEY, kind TEXT NOT NULL, vectors INTEGER NOT NULL, bytes INTEGER NOT NULL,
                      sha256 TEXT, ivf_bytes INTEGER, pass INTEGER NOT NULL);
CREATE TABLE dead_vectors(vid INTEGER PRIMARY KEY);
CREATE TABLE retired_segments(name TEXT PRIMARY KEY, retired_pass INTEGER NOT NULL, retired_at TEXT NOT NULL);
CREATE TABLE passes(id INTEGER PRIMARY KEY AUTOINCREMENT, committed TEXT NOT NULL, chunks_added INTEGER NOT NULL,
                    chunks_removed INTEGER NOT NULL, articles_written INTEGER NOT NULL, note TEXT);
CREATE TABLE expired(key TEXT PRIMARY KEY, reason TEXT NOT NULL, removed_at TEXT NOT NULL);
CREATE TABLE host_notes(host TEXT PRIMARY KEY, record TEXT NOT NULL, updated TEXT NOT NULL);
"""


def terms(text: str) -> list[str]:
    """Keyword terms of a query: lower-cased words, stop words dropped, each once, in order."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in _STOP))


def connect(path: Path, create: bool = False) -> sqlite3.Connection:
    """Open ``index.db`` (WAL, full sync on commit). Transactions are explicit (``BEGIN``/``COMMIT``)."""
    if not create and not path.is_file():
        raise IndexCorrupt(f"{path} is missing")
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(f"{path} is not a readable rag-news index database ({e})") from None
    return conn


def create(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for stmt in [s for s in SCHEMA.split(";") if s.strip()]:
        conn.execute(stmt)
    ensure_additions(conn)
    put_meta(conn, {"format": FORMAT, "version": SCHEMA_VERSION, "next_vid": 1, "articles": 0, "chunks": 0, **meta})
    conn.execute("COMMIT")


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """The ``meta`` table, validated: this is a rag-news index this code can read."""
    try:
        rows = conn.execute("SELECT name, value FROM meta").fetchall()
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(f"{path} is not a rag-news index database ({e})") from None
    meta = {name: json.loads(value) for name, value in rows}
    if meta.get("format") != FORMAT:
        raise IndexCorrupt(f"{path} is not a rag-news index (format != {FORMAT!r})")
    if meta.get("version") != SCHEMA_VERSION:
        raise IndexCorrupt(f"{path} has index format version {meta.get('version')}, this rag-news reads "
                           f"{SCHEMA_VERSION}")
    if not isinstance(meta.get("dim"), int) or meta["dim"] <= 0:
        raise IndexCorrupt(f"{path} has no valid vector dimension")
    return meta


def put_meta(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                     [(k, json.dumps(v)) for k, v in values.items()])


# ---------------------------------------------------------------------------------------- articles
def _record(row: sqlite3.Row | tuple) -> dict:
    rec = json.loads(row[-1])
    rec.update(zip(_ARTICLE_COLUMNS, row[:-1]))
    return rec


def article(conn: sqlite3.Connection, key: str) -> dict | None:
    row = conn.execute(f"SELECT {', '.join(_ARTICLE_COLUMNS)}, record FROM articles WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    rec = _record(row)
    rec["chunk_ids"] = [r[0] for r in conn.execute("SELECT chunk_id FROM chunks WHERE key=? ORDER BY seq", (key,))]
    return rec


def iter_articles(conn: sqlite3.Connection) -> Iterator[dict]:
    """Every article record (without text or chunk ids), in key order."""
    for row in conn.execute(f"SELECT {', '.join(_ARTICLE_COLUMNS)}, record FROM articles ORDER BY key"):
        yield _record(row)


# schema additions made at create and by the next commit of an index made before them (in its transaction):
# the expiry indexes (expiry_candidates), each segment's vector id runs and dead count (dead_counts)
ADDITIONS = """
CREATE INDEX IF NOT EXISTS articles_by_seen ON articles(coalesce(last_seen, first_seen));
CREATE INDEX IF NOT EXISTS articles_by_born ON articles(coalesce(published, first_seen));
CREATE TABLE IF NOT EXISTS segment_runs(lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS segment_runs_by_name ON segment_runs(name);
CREATE INDEX IF NOT EXISTS dead_by_pass ON dead_vectors(pass)
"""


def ensure_additions(conn: sqlite3.Connection) -> None:
    """Make :data:`ADDITIONS` (and the ``segments.dead`` and ``dead_vectors.pass`` columns) where missing; a
    writer, in its transaction."""
    if "dead" not in {r[1] for r in conn.execute("PRAGMA table_info(segments)")}:
        conn.execute("ALTER TABLE segments ADD COLUMN dead INTEGER")  # NULL: not counted yet (older index)
    if "pass" not in {r[1] for r in conn.execute("PRAGMA table_info(dead_vectors)")}:
        conn.execute("ALTER TABLE dead_vectors ADD COLUMN pass INTEGER")  # NULL: died before passes were kept
    for stmt in [s for s in ADDITIONS.split(";") if s.strip()]:
        conn.execute(stmt)


def expiry_queries(seen_before: str | None, born_before: str | None) -> list[tuple[str, tuple]]:
    """The statements of :func:`expiry_candidates`, one per condition: each a range read of one expiry index
    (no ORDER BY: with one, SQLite may walk the key index instead)."""
    cols = ", ".join(_ARTICLE_COLUMNS)
    return [(f"SELECT {cols}, record FROM articles WHERE {expr} < ?", (bound,))
            for expr, bound in (("coalesce(last_seen, first_seen)", seen_before),
                                ("coalesce(published, first_seen)", born_before)) if bound]


def expiry_candidates(conn: sqlite3.Connection, seen_before: str | None, born_before: str | None) -> list[dict]:
    """Records (as :func:`iter_articles`) last seen (else first seen) before ``seen_before``, or published
    (else first seen) before ``born_before`` (ISO strings, compared as such; None: no such condition), in
    key order; read through the expiry indexes, not a walk over every record."""
    found = {}
    for sql, params in expiry_queries(seen_before, born_before):
        for row in conn.execute(sql, params):
            found.setdefault(row[0], row)
    return [_record(found[k]) for k in sorted(found)]


def article_text(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT text FROM article_text WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def key_for_url(conn: sqlite3.Connection, url: str) -> str | None:
    row = conn.execute("SELECT key FROM url_forms WHERE url=?", (url,)).fetchone()
    return row[0] if row else None


def find_by_hash(conn: sqlite3.Connection, content_hash: str) -> str | None:
    row = conn.execute("SELECT key FROM articles WHERE content_hash=? ORDER BY key LIMIT 1", (content_hash,)).fetchone()
    return row[0] if row else None


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """``(articles, chunks)``."""
    return (conn.execute("SELECT count(*) FROM articles").fetchone()[0],
            conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def write_article(conn: sqlite3.Connection, rec: dict, text: str | None, url_forms: Iterable[str]) -> None:
    """Insert or replace an article's record (and its text when given); ``url_forms`` map to its key."""
    extra = {k: v for k, v in rec.items() if k not in _ARTICLE_COLUMNS and k not in ("text", "chunk_ids")}
    conn.execute(f"INSERT OR REPLACE INTO articles({', '.join(_ARTICLE_COLUMNS)}, record) VALUES (?,?,?,?,?,?,?,?)",
                 (*[rec.get(c) for c in _ARTICLE_COLUMNS], json.dumps(extra, ensure_ascii=False)))
    if text is not None:
        conn.execute("INSERT OR REPLACE INTO article_text(key, text) VALUES (?, ?)", (rec["key"], text))
    write_url_forms(conn, rec["key"], url_forms)


def write_url_forms(conn: sqlite3.Connection, key: str, url_forms: Iterable[str]) -> None:
    conn.executemany("INSERT OR REPLACE INTO url_forms(url, key) VALUES (?, ?)", [(u, key) for u in url_forms])


def update_article(conn: sqlite3.Connection, key: str, fields: dict) -> bool:
    """Change some fields of an article's record in place (the row only: a touch writes a page or two)."""
    row = conn.execute("SELECT record FROM articles WHERE key=?", (key,)).fetchone()
    if row is None:
        return False
    columns = {k: v for k, v in fields.items() if k in _ARTICLE_COLUMNS and k != "key"}
    extra = {k: v for k, v in fields.items() if k not in _ARTICLE_COLUMNS and k not in ("text", "chunk_ids")}
    if extra:
        columns["record"] = json.dumps({**json.loads(row[0]), **extra}, ensure_ascii=False)
    if columns:
        conn.execute(f"UPDATE articles SET {', '.join(f'{c}=?' for c in columns)} WHERE key=?", (*columns.values(), key))
    return True


def delete_article(conn: sqlite3.Connection, key: str) -> list[int]:
    """Delete an article, its text, URL forms and chunks (keyword index included); returns the chunks' vids."""
    vids = delete_chunks(conn, key)
    for table in ("articles", "article_text", "url_forms"):
        conn.execute(f"DELETE FROM {table} WHERE key=?", (key,))
    return vids


# ---------------------------------------------------------------------------------------- chunks
def insert_chunks(conn: sqlite3.Connection, rows: list[tuple[int, str, str, int, str | None, str, dict]]) -> None:
    """``rows``: ``(vid, chunk_id, key, seq, published, text, metadata)``; indexed for keywords too."""
    conn.executemany("INSERT INTO chunks(vid, chunk_id, key, seq, published, text, metadata) VALUES (?,?,?,?,?,?,?)",
                     [(*r[:6], json.dumps(r[6], ensure_ascii=False)) for r in rows])
    conn.executemany("INSERT INTO chunk_fts(rowid, text) VALUES (?, ?)", [(r[0], r[5]) for r in rows])


def delete_chunks(conn: sqlite3.Connection, key: str) -> list[int]:
    """Delete an article's chunks from the table and the keyword index; their vids become dead vectors."""
    rows = conn.execute("SELECT vid, text FROM chunks WHERE key=?", (key,)).fetchall()
    conn.executemany("INSERT INTO chunk_fts(chunk_fts, rowid, text) VALUES('delete', ?, ?)", rows)
    conn.execute("DELETE FROM chunks WHERE key=?", (key,))
    conn.executemany("INSERT OR IGNORE INTO dead_vectors(vid) VALUES (?)", [(r[0],) for r in rows])
    return [r[0] for r in rows]


def chunk_documents(conn: sqlite3.Connection, column: str, values: list) -> dict[Any, "Document"]:
    """Chunks whose ``column`` (``vid`` or ``chunk_id``) is in ``values``, as LangChain Documents."""
    from langchain_core.documents import Document

    out = {}
    for i in range(0, len(values), 500):
        part = values[i:i + 500]
        sql = f"SELECT {column}, chunk_id, text, metadata FROM chunks WHERE {column} IN ({','.join('?' * len(part))})"
        for ident, cid, text, meta in conn.execute(sql, part):
            out[ident] = Document(page_content=text, metadata={**json.loads(meta), "chunk_id": cid}, id=cid)
    return out


def vids_between(conn: sqlite3.Connection, since: str | None, until: str | None) -> list[int]:
    """Chunks of articles published within ``since``..``until`` (ISO dates, inclusive; an index range scan)."""
    lo, hi = since or "", (until + "\uffff") if until else "\uffff"
    return [r[0] for r in conn.execute("SELECT vid FROM chunks WHERE published >= ? AND published <= ?", (lo, hi))]


def keyword(conn: sqlite3.Connection, query: str, k: int, since: str | None = None, until: str | None = None,
            budget: int = POSTINGS_BUDGET, df_cache: dict | None = None) -> list[tuple[int, float]]:
    """BM25 (FTS5) over chunk texts: ``(vid, score)`` best first, higher is better. ``df_cache`` keeps
    document frequencies between queries (FTS5 counts them by reading a term's postings)."""
    words = _rarest(conn, terms(query), budget, {} if df_cache is None else df_cache)
    if not words:
        return []
    match = " OR ".join(f'"{w}"' for w in words)
    if since or until:
        sql = ("SELECT f.rowid, bm25(chunk_fts) AS s FROM chunk_fts f JOIN chunks c ON c.vid = f.rowid "
               "WHERE chunk_fts MATCH ? AND c.published >= ? AND c.published <= ? ORDER BY s LIMIT ?")
        rows = conn.execute(sql, (match, since or "", (until + "\uffff") if until else "\uffff", k))
    else:
        rows = conn.execute("SELECT rowid, bm25(chunk_fts) AS s FROM chunk_fts WHERE chunk_fts MATCH ? "
                            "ORDER BY s LIMIT ?", (match, k))
    return [(vid, -score) for vid, score in rows]  # FTS5's bm25() is lower-is-better


def _rarest(conn: sqlite3.Connection, words: list[str], budget: int, df: dict) -> list[str]:
    """The query's words rarest first, while the chunks containing them add up to at most ``budget``
    (always at least one word). Words no chunk contains are dropped."""
    for w in words:
        if w not in df:
            row = conn.execute("SELECT doc FROM chunk_terms WHERE term=?", (w,)).fetchone()
            df[w] = row[0] if row else 0
    kept, total = [], 0
    for w in sorted((w for w in words if df[w]), key=df.get):
        if kept and total + df[w] > budget:
            break
        kept.append(w)
        total += df[w]
    return kept


# ---------------------------------------------------------------------------------------- segments, passes
def segments(conn: sqlite3.Connection) -> list[dict]:
    """The live segments: name, kind, vectors, bytes, sha256, ivf_bytes, pass, and ``dead`` (how many of its
    vectors are deleted; None in an index made before that was counted, until its next compaction)."""
    cur = conn.execute("SELECT * FROM segments ORDER BY name")
    cols = [d[0] for d in cur.description]
    return [{"dead": None, **dict(zip(cols, r))} for r in cur.fetchall()]


def put_segment(conn: sqlite3.Connection, row: dict, pass_id: int, runs: list[tuple[int, int]] | None = None) -> None:
    """Record a new segment with no dead vector; ``runs``: its vector ids as ``(lo, hi)`` ranges (inclusive)."""
    conn.execute("INSERT INTO segments(name, kind, vectors, bytes, sha256, ivf_bytes, pass, dead) "
                 "VALUES (?,?,?,?,?,?,?,0)", (row["name"], row["kind"], row["vectors"], row["bytes"], row.get("sha256"),
                                              row.get("ivf_bytes"), pass_id))
    conn.executemany("INSERT INTO segment_runs(lo, hi, name) VALUES (?,?,?)", [(lo, hi, row["name"]) for lo, hi in runs or []])


def move_runs(conn: sqlite3.Connection, names: list[str], to: str | None) -> None:
    """The vector id runs of segments ``names`` now belong to ``to`` (a merge's segment; None: dropped)."""
    if to is None:
        conn.executemany("DELETE FROM segment_runs WHERE name=?", [(n,) for n in names])
    else:
        conn.executemany("UPDATE segment_runs SET name=? WHERE name=?", [(to, n) for n in names])


def count_dead(conn: sqlite3.Connection, vids: list[int]) -> None:
    """Add newly deleted vectors ``vids`` to their segments' dead counts (one run lookup per vector)."""
    per: dict[str, int] = {}
    for vid in vids:
        row = conn.execute("SELECT hi, name FROM segment_runs WHERE lo <= ? ORDER BY lo DESC LIMIT 1", (vid,)).fetchone()
        if row is not None and row[0] >= vid:
            per[row[1]] = per.get(row[1], 0) + 1
    conn.executemany("UPDATE segments SET dead = dead + ? WHERE name=? AND dead IS NOT NULL",
                     [(n, name) for name, n in per.items()])


def set_counted(conn: sqlite3.Connection, name: str, dead: int, runs: list[tuple[int, int]]) -> None:
    """Record the dead count and the id runs of a segment counted the old way (its id map read once)."""
    conn.execute("DELETE FROM segment_runs WHERE name=?", (name,))
    conn.executemany("INSERT INTO segment_runs(lo, hi, name) VALUES (?,?,?)", [(lo, hi, name) for lo, hi in runs])
    conn.execute("UPDATE segments SET dead=? WHERE name=?", (dead, name))


def retire_segments(conn: sqlite3.Connection, names: list[str], pass_id: int, when: str) -> None:
    conn.executemany("DELETE FROM segments WHERE name=?", [(n,) for n in names])
    conn.executemany("INSERT OR REPLACE INTO retired_segments(name, retired_pass, retired_at) VALUES (?,?,?)",
                     [(n, pass_id, when) for n in names])


def add_pass(conn: sqlite3.Connection, when: str, added: int, removed: int, written: int, note: str | None) -> int:
    cur = conn.execute("INSERT INTO passes(committed, chunks_added, chunks_removed, articles_written, note) "
                       "VALUES (?,?,?,?,?)", (when, added, removed, written, note))
    return cur.lastrowid


def dead_vids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT vid FROM dead_vectors")]


def dead_vids_after(conn: sqlite3.Connection, after_pass: int) -> list[int] | None:
    """The ids of vectors deleted by passes after ``after_pass`` (an index range read), or None for an
    index whose deletions carry no pass yet (made before they did, no writer since)."""
    try:
        return [r[0] for r in conn.execute("SELECT vid FROM dead_vectors WHERE pass > ?", (after_pass,))]
    except sqlite3.OperationalError:  # no such column: pass
        return None


def stamp_dead(conn: sqlite3.Connection, vids: list[int], pass_id: int) -> None:
    """Record that pass ``pass_id`` deleted ``vids`` (readers then read only the pass's own dead ids)."""
    conn.executemany("UPDATE dead_vectors SET pass=? WHERE vid=?", [(pass_id, int(v)) for v in vids])


def last_pass(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM passes").fetchone()[0]


def expired_reason(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT reason FROM expired WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def host_note(conn: sqlite3.Connection, host: str) -> dict | None:
    row = conn.execute("SELECT record FROM host_notes WHERE host=?", (host,)).fetchone()
    return json.loads(row[0]) if row else None


def put_host_note(conn: sqlite3.Connection, host: str, record: dict, when: str) -> None:
    conn.execute("INSERT OR REPLACE INTO host_notes(host, record, updated) VALUES (?, ?, ?)",
                 (host, json.dumps(record, ensure_ascii=False), when))
