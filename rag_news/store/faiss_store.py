"""The default index backend: records and keywords in SQLite, vectors in FAISS segments.

Entry point: :class:`NewsIndex` (implements :class:`~rag_news.store.base.Store`). On disk::

    index.db            SQLite (WAL): articles, article texts, chunks, FTS5 keyword index, the list of live
                        vector segments, deleted vector ids, passes
    vectors/            FAISS segment files, written once and never changed (see rag_news.store.vectors)
    .lock               writers hold an flock on it

A pass is staged in memory (:meth:`NewsIndex.upsert`, :meth:`~NewsIndex.touch`, :meth:`~NewsIndex.remove`)
and written by :meth:`NewsIndex.commit`: first the new vectors' segment file, then one SQLite transaction
that makes the pass visible. Killed at any point, the index keeps its last committed pass (a half-written
segment is an orphan file the next writer deletes). Readers see the last committed pass, never half of one,
and pick up newer passes by themselves (each read checks the pass number). Nothing is ever unpickled.

Bulk imports and migrations use the same public path::

    index = NewsIndex.open("data/index", embedder, create=True)
    index.upsert({"key": url, "url": url, "title": ..., "text": ..., "content_hash": ...}, chunks, vectors)
    index.commit()      # or index.save(): one pass, atomically
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
from langchain_core.documents import Document

from ..errors import ConfigError, IndexCorrupt, IndexNotFound
from ..faults import Faults, installed_faults
from ..urls import normalize_url
from . import gpu, legacy, records, story_tables, vectors as vec, writer
from .base import BUILD_HINT, CommitResult, SearchHit, StagedPass, utc_now, writer_lock
from .records import DB_NAME
from .vectors import StoreOptions

WINDOWS_KEPT = 16  # date windows whose vector selectors a reader keeps for the pass (see NewsIndex._window)


class NewsIndex(StagedPass):
    """Articles, chunks and vectors of one index folder; see the module docstring."""

    def __init__(self, embeddings, *, meta: dict | None = None, path: Path | None = None,
                 options: StoreOptions | None = None, faults: Faults | None = None):
        """An index not yet on disk (``save(folder)`` creates it); use :meth:`open` for an existing one.
        ``faults``: the hook crash tests stop a writer with (default: the process's, see :mod:`rag_news.faults`)."""
        self.embeddings = embeddings
        self.faults = faults or installed_faults()
        self.meta: dict = dict(meta or {})
        self.path = Path(path) if path else None  # the index folder, once the index exists on disk
        self._dir = self.path  # where it is, or will be created by the first commit
        self.options = options or StoreOptions()
        self._conn = None
        self._vectors: vec.VectorSet | None = None
        self._seen_pass = -1
        self._lock = threading.RLock()
        self._clear_staged()
        self._writing = False  # True inside writer(): the writer lock is already held
        self._df: dict[str, int] = {}  # keyword document frequencies of the pass last read (see _sync)
        self._windows: dict[tuple, vec.Window] = {}  # date windows' vector selectors, this pass's (see _window)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, index_dir: str | Path, embeddings, *, create: bool = False,
             options: StoreOptions | None = None, faults: Faults | None = None) -> "NewsIndex":
        """Open the index in ``index_dir`` (migrating a snapshot-format index first); ``create`` makes an
        empty one when there is none."""
        index_dir = Path(index_dir)
        if legacy.is_legacy(index_dir) and not (index_dir / DB_NAME).exists():
            cls.migrate(index_dir, embeddings)
        if not (index_dir / DB_NAME).exists():
            if not create:
                raise IndexNotFound(f"no index in {index_dir}; {BUILD_HINT.format(dir=index_dir)}")
            return cls.new(index_dir, embeddings, options=options, faults=faults)
        idx = cls(embeddings, path=index_dir, options=options, faults=faults)
        idx._connect()
        return idx

    @classmethod
    def new(cls, index_dir: str | Path, embeddings, *, meta: dict | None = None, lock_held: bool = False,
            options: StoreOptions | None = None, faults: Faults | None = None) -> "NewsIndex":
        """A new index whose first commit creates it in ``index_dir``; ``meta``: its settings (``dim``,
        ``embedding_model``; default the embedder's); ``lock_held``: the caller already holds the writer lock
        that covers ``index_dir`` (a migration building an index aside)."""
        idx = cls(embeddings, meta=meta or {"embedding_model": getattr(embeddings, "model_name", None)},
                  options=options, faults=faults)
        idx._dir, idx._writing = Path(index_dir), lock_held
        return idx

    @classmethod
    def migrate(cls, index_dir: str | Path, embeddings=None) -> dict:
        """Convert a snapshot-format index in ``index_dir`` in place (see :mod:`rag_news.store.legacy`)."""
        return legacy.migrate(Path(index_dir), lambda work, meta: cls.new(work, embeddings, meta=meta, lock_held=True),
                              DB_NAME)

    load = open  # the name earlier versions used

    @staticmethod
    def exists(index_dir: str | Path) -> bool:
        return (Path(index_dir) / DB_NAME).exists() or legacy.is_legacy(Path(index_dir))

    @staticmethod
    def read_meta(index_dir: str | Path) -> dict:
        """The index's settings (embedding model, dimension...) without opening its vectors."""
        index_dir = Path(index_dir)
        if not (index_dir / DB_NAME).exists():
            if legacy.is_legacy(index_dir):
                return legacy.legacy_meta(index_dir)
            raise IndexNotFound(f"no index in {index_dir}; {BUILD_HINT.format(dir=index_dir)}")
        conn = records.connect(index_dir / DB_NAME)
        try:
            return records.read_meta(conn, index_dir / DB_NAME)
        finally:
            conn.close()

    def _create(self) -> None:
        index_dir = self._dir
        dim = int(self.meta.get("dim") or self.embeddings.dim)
        model = self.meta.get("embedding_model") or getattr(self.embeddings, "model_name", None)
        index_dir.mkdir(parents=True, exist_ok=True)
        with self._write_locked():
            if not (index_dir / DB_NAME).exists():
                tmp = index_dir / f".{DB_NAME}.new"
                tmp.unlink(missing_ok=True)
                conn = records.connect(tmp, create=True)
                records.create(conn, {"dim": dim, "embedding_model": model, "distance": "cosine",
                                      "created": utc_now()})
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
                os.replace(tmp, index_dir / DB_NAME)
        self.path = index_dir
        self._connect()

    def _connect(self) -> None:
        db = self.path / DB_NAME
        self._conn = records.connect(db)
        try:
            self.meta = records.read_meta(self._conn, db)
            self._conn.execute("SELECT count(*) FROM chunk_fts WHERE chunk_fts MATCH 'x'").fetchone()
        except IndexCorrupt:
            self._conn.close()
            raise
        except Exception as e:  # noqa: BLE001 - sqlite3.DatabaseError and friends: a damaged file
            self._conn.close()
            raise IndexCorrupt(f"{db} is damaged or not a rag-news index ({str(e)[:120]})") from None
        self._vectors = vec.VectorSet(self.path / "vectors", self.meta["dim"], self.options.nprobe,
                                      self.options.device)
        self._seen_pass = -1
        with self._reading():
            pass

    def close(self) -> None:
        """Close the database (a writer also folds the write-ahead log back into index.db)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except Exception:  # noqa: BLE001 - readers of a read-only copy cannot checkpoint
                    pass
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ reading
    @contextlib.contextmanager
    def _reading(self) -> Iterator:
        """One read transaction: everything read inside it comes from the same committed pass."""
        with self._lock:
            if self._conn is None:
                yield None
                return
            conn = self._conn
            conn.execute("BEGIN")
            try:
                self._sync(conn)
                yield conn
            finally:
                conn.execute("COMMIT")

    def _sync(self, conn) -> None:
        latest = records.last_pass(conn)
        if latest != self._seen_pass:
            self.meta = records.read_meta(conn, self.path / DB_NAME)
            rows = records.segments(conn)
            # only the new passes' deletions, unless a merge retired a segment (it forgets the dead ids it
            # dropped): then all of them again, as on open
            merged = set(self._vectors.segments) - {r["name"] for r in rows}
            new = records.dead_vids_after(conn, self._seen_pass) if self._seen_pass >= 0 and not merged else None
            self._vectors.sync(rows, records.dead_vids(conn) if new is None else new, added=new is not None)
            self._df = {}  # a pass changes document frequencies: a word first seen in it must count at once
            self._windows = {}
            self._seen_pass = latest

    def refresh(self) -> bool:
        """Pick up a pass committed by another process; True when there was one."""
        before = self._seen_pass
        with self._reading():
            pass
        return self._seen_pass != before

    @property
    def pass_id(self) -> int:
        return max(self._seen_pass, 0)

    @property
    def embedding_model(self) -> str | None:
        return self.meta.get("embedding_model")

    @property
    def chunk_count(self) -> int:
        with self._reading() as conn:
            return int(self.meta.get("chunks", 0)) if conn else 0

    def __len__(self) -> int:
        with self._reading() as conn:
            return int(self.meta.get("articles", 0)) if conn else 0

    def article(self, key: str) -> dict | None:
        """The committed record of ``key`` (with ``chunk_ids``), or None."""
        with self._reading() as conn:
            return records.article(conn, key) if conn else None

    def article_text(self, key: str) -> str | None:
        with self._reading() as conn:
            return records.article_text(conn, key) if conn else None

    def iter_articles(self) -> Iterator[dict]:
        with self._reading() as conn:
            rows = list(records.iter_articles(conn)) if conn else []
        return iter(rows)

    def expiry_candidates(self, seen_before: str | None, born_before: str | None) -> list[dict]:
        """Records last seen (else first seen) before ``seen_before`` or published (else first seen) before
        ``born_before`` (ISO; None: that condition off), key order, through indexes on those dates: what
        expiry reads instead of every record."""
        with self._reading() as conn:
            return records.expiry_candidates(conn, seen_before, born_before) if conn else []

    @property
    def articles(self) -> dict[str, dict]:
        """Every committed article record by key, with ``chunk_ids`` (reads the whole table: for tools and
        tests; the pipeline reads by key)."""
        with self._reading() as conn:
            if conn is None:
                return {}
            return {r["key"]: records.article(conn, r["key"]) for r in records.iter_articles(conn)}

    def key_for_url(self, url: str) -> str | None:
        with self._reading() as conn:
            return records.key_for_url(conn, normalize_url(url)) if conn else None

    def find_by_hash(self, content_hash: str) -> str | None:
        with self._reading() as conn:
            return records.find_by_hash(conn, content_hash) if conn else None

    def expired_reason(self, url: str) -> str | None:
        """Why the article at ``url`` was removed for its age (then it is not fetched again), or None."""
        with self._reading() as conn:
            return records.expired_reason(conn, normalize_url(url)) if conn else None

    def chunks_by_id(self, chunk_ids: list[str]) -> list[Document]:
        with self._reading() as conn:
            found = records.chunk_documents(conn, "chunk_id", list(chunk_ids)) if conn else {}
        return [found[c] for c in chunk_ids if c in found]

    def chunks(self) -> list[Document]:
        """Every chunk, in the order they were added (for inspection; costs the whole index)."""
        with self._reading() as conn:
            if conn is None:
                return []
            vids = [r[0] for r in conn.execute("SELECT vid FROM chunks ORDER BY vid")]
            found = records.chunk_documents(conn, "vid", vids)
        return [found[v] for v in vids]

    def dense_search(self, vector: np.ndarray, k: int, since: str | None = None,
                     until: str | None = None) -> list[SearchHit]:
        """Chunks nearest to ``vector`` (cosine), optionally only those published within ``since``..``until``
        (ISO dates, inclusive)."""
        with self._reading() as conn:
            if conn is None or k <= 0:
                return []
            allowed = self._window(conn, since, until) if since or until else None
            if allowed is not None and not len(allowed):
                return []
            pairs = self._vectors.search(vector, k, allowed)
            docs = records.chunk_documents(conn, "vid", [v for v, _ in pairs])
        return [SearchHit(docs[v], s) for v, s in pairs if v in docs]

    def _window(self, conn, since: str | None, until: str | None) -> vec.Window:
        """The vectors published within ``since``..``until``, read and made a selector once per pass (the
        server's questions about "yesterday" share one); the last ``WINDOWS_KEPT`` windows are kept."""
        key = (since, until)
        if key not in self._windows:
            while len(self._windows) >= WINDOWS_KEPT:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = self._vectors.window(records.vids_between(conn, since, until))
        return self._windows[key]

    def keyword_search(self, query: str, k: int, since: str | None = None,
                       until: str | None = None) -> list[SearchHit]:
        """Chunks ranked by BM25 for the query's words (FTS5), optionally only those published within
        ``since``..``until``."""
        with self._reading() as conn:
            if conn is None or k <= 0:
                return []
            pairs = records.keyword(conn, query, k, since, until, df_cache=self._df)
            docs = records.chunk_documents(conn, "vid", [v for v, _ in pairs])
        return [SearchHit(docs[v], s) for v, s in pairs if v in docs]

    def search(self, query: str, k: int = 4, since: str | None = None, until: str | None = None) -> list[SearchHit]:
        """Dense search for a text query (embedded with the index's model)."""
        if not query.strip():
            return []
        vector = np.asarray(self.embeddings.embed_query(query), dtype=np.float32)
        return self.dense_search(vector, k, since, until)

    def export(self) -> Iterator[tuple[dict, list[Document], np.ndarray]]:
        """Every article as ``(record with text, chunks, their stored vectors)``, the arguments of
        :meth:`upsert` on another store (copying the index to another backend re-embeds nothing). Reads one
        committed pass; holds every live vector in memory (3 KB a chunk with mpnet)."""
        with self._reading() as conn:
            if conn is None:
                return
            by_vid = {}
            for row in records.segments(conn):
                vids, vecs = vec.read_segment(self.path / "vectors", row["name"])
                by_vid.update(zip(vids.tolist(), vecs))
            keys = [r["key"] for r in records.iter_articles(conn)]
            rows = []
            for key in keys:
                rec = records.article(conn, key)
                rec["text"] = records.article_text(conn, key) or ""
                vids = [v for v, in conn.execute("SELECT vid FROM chunks WHERE key=? ORDER BY seq", (key,))]
                docs = records.chunk_documents(conn, "vid", vids)
                rows.append((rec, [docs[v] for v in vids], np.array([by_vid[v] for v in vids], np.float32)))
        yield from rows

    def stats(self) -> dict:
        """Counts for ``python -m rag_news.store info``: articles, chunks, pass, segments, deleted vectors,
        and which FAISS searches them (``faiss``: build, gpu, device, reason, segments on the GPU)."""
        with self._reading() as conn:
            if conn is None:
                return {"articles": 0, "chunks": 0, "pass": 0, "segments": [], "deleted_vectors": 0,
                        "faiss": self.faiss_in_use()}
            return {"articles": self.meta.get("articles", 0), "chunks": self.meta.get("chunks", 0),
                    "pass": self._seen_pass, "segments": records.segments(conn),
                    "deleted_vectors": conn.execute("SELECT count(*) FROM dead_vectors").fetchone()[0],
                    "faiss": self.faiss_in_use()}

    def faiss_in_use(self) -> dict:
        """Which FAISS searches the vectors: ``{"build": "cpu"|"gpu", "gpu": bool, "device", "reason",
        "segments_on_gpu", "segments"}`` (see :mod:`rag_news.store.gpu`)."""
        if self._vectors is not None:
            return self._vectors.describe()
        return {**gpu.choose(self.options.device).as_dict(), "segments_on_gpu": 0, "segments": 0}

    def segment_rows(self) -> list[dict]:
        """The live vector segments (name, kind, vectors, bytes...)."""
        with self._reading() as conn:
            return records.segments(conn) if conn else []

    @property
    def vectorstore(self):
        """This index as a LangChain ``VectorStore`` (``.as_retriever()``, ``similarity_search``...)."""
        from .langchain import NewsVectorStore

        return NewsVectorStore(self)

    def as_retriever(self, **kwargs):
        """The hybrid retriever (dense + keyword fusion, per-article cap, ``since``) over this index."""
        from ..retrieve import NewsRetriever

        return NewsRetriever(index=self, **kwargs)

    # ------------------------------------------------------------------ stories (rag_news.stories)
    def story_entries(self, keys: list[str]) -> dict[str, dict]:
        """The committed story entries of these articles, by key."""
        with self._reading() as conn:
            return story_tables.by_keys(conn, keys) if conn else {}

    def story_keys_for_bands(self, bands: list[str]) -> set[str]:
        """Articles sharing at least one MinHash LSH band with ``bands``."""
        with self._reading() as conn:
            return story_tables.keys_for_bands(conn, bands) if conn else set()

    def stories_between(self, since: str | None = None, until: str | None = None) -> list[dict]:
        """Story entries whose day (published, else first seen) is within ``since``..``until``."""
        with self._reading() as conn:
            return story_tables.between(conn, since, until) if conn else []

    def story_members(self, story_ids: list[str]) -> list[dict]:
        """Every entry of these stories."""
        with self._reading() as conn:
            return story_tables.members(conn, story_ids) if conn else []

    # ------------------------------------------------------------------ writing: stage a pass (StagedPass)
    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.meta.get("dim") or self.embeddings.dim)

    def host_note(self, host: str) -> dict | None:
        """What the fetch stage learned about ``host`` (its render decision and evidence), or None."""
        if host in self.staged.host_notes:
            return self.staged.host_notes[host]
        with self._reading() as conn:
            return records.host_note(conn, host) if conn else None

    def save(self, index_dir: str | Path | None = None, keep: int | None = None) -> Path:
        """Commit the staged pass (creating the index in ``index_dir`` if it is not on disk yet)."""
        if self.path is None and index_dir is not None:
            self._dir = Path(index_dir)
        self.commit()
        return self.path

    @contextlib.contextmanager
    def writer(self, wait: bool = False, shard: tuple[int, int] | None = None) -> Iterator["NewsIndex"]:
        """Hold the index's writer lock for a whole pass (read, decide, stage, commit); raises
        :class:`~rag_news.errors.IndexLocked` when another writer has it, unless ``wait``. ``shard`` is
        accepted for the Store interface: the lock covers the whole folder, whatever the shard."""
        if self._dir is None:
            raise ConfigError("this index has no folder yet: open it with NewsIndex.open(folder, ..., create=True)")
        with writer_lock(self._dir, wait=wait):  # the flock only: reads from other threads go on meanwhile
            self._writing = True
            try:
                self.refresh()
                yield self
            finally:
                self._writing = False

    @contextlib.contextmanager
    def _write_locked(self) -> Iterator[None]:
        """The writer lock, unless this index already holds it (inside :meth:`writer` or a commit)."""
        if self._writing:
            yield
            return
        with writer_lock(self._dir):
            self._writing = True
            try:
                yield
            finally:
                self._writing = False

    def commit(self) -> CommitResult:
        """Write the staged pass: a new vector segment, then one transaction. Then compact if due."""
        if self._dir is None:
            raise ConfigError("save() needs an index folder for a new index")
        with self._lock, self._write_locked():
            if self.path is None:
                if not self.pending:
                    return CommitResult(pass_id=None)
                self._create()
            folder = self.path / "vectors"
            result = writer.commit_pass(self._conn, folder, self.staged, self.options, self.faults,
                                        self.path / DB_NAME)
            self._clear_staged()
            if result.pass_id is not None:
                result.compacted = writer.compact(self._conn, folder, self.options)
                writer.delete_retired(self._conn, folder)
            self.refresh()
        return result

    def compact(self, force: bool = False) -> list[dict]:
        """Merge segments now (``force``: everything into one segment, dropping every deleted vector)."""
        with self._lock, self._write_locked():
            merged = writer.compact(self._conn, self.path / "vectors", self.options, force=force)
            writer.delete_retired(self._conn, self.path / "vectors")
            self.refresh()
        return merged

    def check(self) -> list[str]:
        """Full consistency check (SQLite integrity, every segment's sha256, vectors vs chunks); problems found."""
        with self._lock:
            return writer.check(self._conn, self.path / "vectors") if self._conn else []
