"""The store interface every index backend implements, and what backends share.

The pipeline, the retriever, the server and the CLIs talk to an index only through :class:`Store`:

* a pass of changes: :meth:`Store.upsert` (an article with its chunks and their vectors; replaces the
  article's old chunks), :meth:`Store.touch` (update an article's record without touching its chunks),
  :meth:`Store.remove`, then :meth:`Store.commit` (all of the pass or none of it becomes visible);
* reading: :meth:`Store.article`, :meth:`Store.key_for_url`, :meth:`Store.find_by_hash`,
  :meth:`Store.chunks_by_id`, :meth:`Store.dense_search` (a query vector), :meth:`Store.keyword_search`
  (BM25 over the chunk texts), both optionally limited to articles published within ``since``..``until``;
* :meth:`Store.refresh` picks up passes committed by another process;
* stories (see :mod:`rag_news.stories`): :meth:`Store.put_story` stages an article's story entry (written
  with the pass; a removed article's entry goes with it, the story keeps its other articles),
  :meth:`Store.story_entries` (by article key), :meth:`Store.story_keys_for_bands` (the MinHash LSH
  buckets), :meth:`Store.stories_between` (entries by day), :meth:`Store.story_members` (entries by story).

Article records are plain dicts: ``key`` (normalised URL, the identity), ``url``, ``title``,
``published`` (ISO date or None), ``content_hash``, ``first_seen``/``last_seen``, ``source_name``,
HTTP validators (``etag``, ``last_modified``), ``aliases`` and whatever else the cleaner found; ``text``
(the cleaned article) is stored too but only returned by :meth:`Store.article_text`. Records returned by
:meth:`Store.article` carry ``chunk_ids`` in article order.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np
from langchain_core.documents import Document

from ..errors import IndexLocked
from ..urls import normalize_url

BUILD_HINT = "build one with: python -m rag_news.index --urls URL_OR_FILE ... --index-dir {dir}"


@dataclass
class SearchHit:
    """One retrieved chunk and its score (cosine similarity for dense search, BM25 for keyword search)."""

    document: Document
    score: float

    @property
    def text(self) -> str:
        return self.document.page_content

    @property
    def url(self) -> str:
        return self.document.metadata.get("url") or self.document.metadata.get("source", "")

    @property
    def title(self) -> str:
        return self.document.metadata.get("title") or ""

    @property
    def published(self) -> str | None:
        return self.document.metadata.get("published")

    @property
    def chunk_id(self) -> str:
        return self.document.metadata.get("chunk_id", "")


@dataclass
class CommitResult:
    """What :meth:`Store.commit` wrote."""

    pass_id: int | None       # None: there was nothing to write
    chunks_added: int = 0
    chunks_removed: int = 0
    articles_written: int = 0  # records inserted, replaced, touched or removed
    compacted: list | None = None  # segment merges run after the commit


@runtime_checkable
class Store(Protocol):
    """What the pipeline, the retriever, the server, stories, MCP and the CLIs use of an index backend
    (:class:`~rag_news.store.faiss_store.NewsIndex`, :class:`~rag_news.store.milvus_store.MilvusStore`,
    :class:`~rag_news.store.postgres_store.PostgresStore`); nothing else of a backend is called from outside
    the store package. Writing methods stage (:class:`StagedPass`); only :meth:`commit` writes."""

    embeddings: object   # the embedder (``embed_query``/``embed_documents``, ``dim``, ``model_name``)
    meta: dict           # the index's settings: ``dim``, ``embedding_model``, ``distance``...

    # ---- reading
    def __len__(self) -> int: ...                     # articles
    @property
    def chunk_count(self) -> int: ...
    @property
    def embedding_model(self) -> str | None: ...       # the model the index was built with
    @property
    def dim(self) -> int: ...                          # vector dimension
    @property
    def pass_id(self) -> int: ...                      # the last committed pass this reader has seen
    def article(self, key: str) -> dict | None: ...   # the record, with ``chunk_ids``
    def article_text(self, key: str) -> str | None: ...
    def iter_articles(self) -> Iterator[dict]: ...     # every record (no text, no chunk ids), key order
    def expiry_candidates(self, seen_before: str, published_before: str | None) -> list[dict]: ...
    #   records last seen before ``seen_before`` or published before ``published_before`` (ISO), through an index
    def key_for_url(self, url: str) -> str | None: ...  # any URL form (aliases too) -> the article's key
    def find_by_hash(self, content_hash: str) -> str | None: ...
    def chunks_by_id(self, chunk_ids: list[str]) -> list[Document]: ...
    def dense_search(self, vector: np.ndarray, k: int, since: str | None = None,
                     until: str | None = None) -> list[SearchHit]: ...
    def keyword_search(self, query: str, k: int, since: str | None = None,
                       until: str | None = None) -> list[SearchHit]: ...
    def search(self, query: str, k: int = 4, since: str | None = None, until: str | None = None) -> list[SearchHit]: ...
    def refresh(self) -> bool: ...                     # pick up passes of other processes; True if any
    def host_note(self, host: str) -> dict | None: ...   # the fetch stage's per-host render decisions
    def expired_reason(self, url: str) -> str | None: ...
    def stats(self) -> dict: ...    # articles, chunks, pass, backend details (``store info``, /health, MCP)
    def export(self) -> Iterator[tuple[dict, list[Document], np.ndarray]]: ...  # upsert's arguments, all
    def check(self) -> list[str]: ...                  # problems a full check finds (empty: none)
    @property
    def vectorstore(self): ...                         # a LangChain ``VectorStore`` view
    def as_retriever(self, **kwargs): ...              # the hybrid retriever (rag_news.retrieve)

    # ---- writing: a pass
    def writer(self, wait: bool = False, shard: tuple[int, int] | None = None) -> contextlib.AbstractContextManager: ...
    #   hold the index (or ``shard`` (i, n) of it) for a whole pass; IndexLocked unless ``wait``
    def upsert(self, article: dict, chunks: list[Document], vectors: np.ndarray) -> None: ...
    def touch(self, key: str, **fields) -> None: ...
    def remove(self, key: str) -> int: ...
    def put_host_note(self, host: str, note: dict) -> None: ...
    def mark_expired(self, key: str, reason: str) -> None: ...
    @property
    def pending(self) -> bool: ...                     # something staged
    def commit(self) -> CommitResult: ...
    def save(self, index_dir=None, keep=None): ...     # commit (and create a new FAISS index in ``index_dir``)
    def close(self) -> None: ...

    # ---- stories (entries are dicts: key, story, day, url, outlet, title, published, first_seen, terms,
    #      sig (MinHash values), bands (LSH band hashes, written only), lead (title+lead vector or None))
    def put_story(self, key: str, entry: dict) -> None: ...
    def reset_stories(self) -> None: ...               # restory: drop every committed entry in this pass
    def staged_stories(self) -> dict[str, dict]: ...   # entries staged in this pass, by key
    def story_entries(self, keys: list[str]) -> dict[str, dict]: ...
    def story_keys_for_bands(self, bands: list[str]) -> set[str]: ...
    def stories_between(self, since: str | None = None, until: str | None = None) -> list[dict]: ...
    def story_members(self, story_ids: list[str]) -> list[dict]: ...


@dataclass
class Staged:
    """A pass staged in memory, what a backend's writer is given to write (it reads nothing else of the
    store's state): new versions of articles (``upserts``: key -> (record, chunks, vectors)), ``removals``,
    ``touches`` (key -> fields), ``expired`` notes (key -> reason), ``host_notes``, story entries
    (``stories``; ``stories_reset``: drop every committed entry first, for ``restory``)."""

    upserts: dict = field(default_factory=dict)
    removals: set = field(default_factory=set)
    touches: dict = field(default_factory=dict)
    expired: dict = field(default_factory=dict)
    host_notes: dict = field(default_factory=dict)
    stories: dict = field(default_factory=dict)
    stories_reset: bool = False

    @property
    def pending(self) -> bool:
        return bool(self.upserts or self.removals or self.touches or self.expired or self.host_notes
                    or self.stories or self.stories_reset)

    @property
    def articles_written(self) -> int:
        """Records inserted, replaced, touched or removed (:attr:`CommitResult.articles_written`)."""
        return len(self.upserts) + len(self.removals) + len(self.touches)

    @property
    def chunks_added(self) -> int:
        return sum(len(chunks) for _, chunks, _ in self.upserts.values())

    def foreign_touches(self) -> dict[str, dict]:
        """Touches of articles this pass does not also rewrite (an upsert carries its own fields)."""
        return {k: f for k, f in self.touches.items() if k not in self.upserts}


class StagedPass:
    """What every backend shares: a pass staged in memory (:meth:`upsert`, :meth:`touch`, :meth:`remove`,
    notes) in :attr:`staged` until the backend's ``commit`` hands it to its writer. Needs ``article(key)``
    and ``dim`` from the backend."""

    def _clear_staged(self) -> None:
        self.staged = Staged()

    def upsert(self, article: dict, chunks: list[Document], vectors: np.ndarray) -> None:
        """Stage an article (a record with ``key``; its ``text`` is stored too) with its chunks and one unit
        vector per chunk; an article already indexed under that key has its chunks replaced."""
        from ..errors import RagNewsError

        key = article["key"]
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1) if len(chunks) else \
            np.zeros((0, self.dim), np.float32)
        ids = [c.metadata["chunk_id"] for c in chunks]
        if len(set(ids)) != len(ids):
            raise RagNewsError(f"duplicate chunk ids while adding {key}")
        if vectors.shape[1] != self.dim:
            from ..errors import EmbeddingMismatch

            raise EmbeddingMismatch(
                f"vectors have dimension {vectors.shape[1]}, the index {self.dim} (embedding model "
                f"{getattr(self, 'embedding_model', None)!r}): an index never mixes models or dimensions; use its "
                "model, or a new index")
        self.staged.removals.discard(key)
        self.staged.upserts[key] = (dict(article), list(chunks), vectors)

    def touch(self, key: str, **fields) -> None:
        """Stage new values for some fields of an indexed article's record (``last_seen``, validators...)."""
        self.staged.touches.setdefault(key, {}).update(fields)

    def remove(self, key: str) -> int:
        """Stage the removal of an article and its chunks; returns how many chunks it had."""
        self.staged.upserts.pop(key, None)
        self.staged.touches.pop(key, None)
        self.staged.stories.pop(key, None)
        rec = self.article(key)
        if rec is None:
            return 0
        self.staged.removals.add(key)
        return len(rec.get("chunk_ids", []))

    def put_host_note(self, host: str, note: dict) -> None:
        """Stage a host note (the fetch stage's render decision); committed with the pass."""
        self.staged.host_notes[host] = note

    def mark_expired(self, key: str, reason: str) -> None:
        """Stage a note that ``key`` was removed for its age, so later passes do not fetch it again."""
        self.staged.expired[key] = reason

    def put_story(self, key: str, entry: dict) -> None:
        """Stage the story entry of article ``key`` (see :mod:`rag_news.stories`); committed with the pass."""
        self.staged.stories[key] = dict(entry, key=key)

    def reset_stories(self) -> None:
        """Stage the removal of every committed story entry (``restory`` re-forms them in the same pass)."""
        self.staged.stories_reset = True

    def staged_stories(self) -> dict[str, dict]:
        """The story entries staged in this pass, by article key (not committed yet: stories read them so
        that articles of one pass can join each other's story)."""
        return self.staged.stories

    @property
    def pending(self) -> bool:
        return self.staged.pending


# ------------------------------------------------------------------------------------------ shared helpers
def utc_now() -> str:
    """The time now, UTC, to the second, ISO (what every backend stamps records and passes with)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def url_forms(rec: dict) -> set[str]:
    """Every normalised URL an article record answers to: its key, ``url``, ``source`` and ``aliases``."""
    forms = {rec["key"]}
    for u in (rec.get("url"), rec.get("source"), *(rec.get("aliases") or [])):
        if u:
            forms.add(normalize_url(u))
    return forms


def chunk_rows(rec: dict, chunks: list[Document]) -> Iterator[tuple[int, str, str, dict]]:
    """The stored form of an article's chunks, for every backend: ``(chunk_index, chunk_id, text, metadata)``
    with the article's key and date in the metadata (the record's date wins over the chunk's)."""
    for seq, c in enumerate(chunks):
        meta = {**c.metadata, "key": rec["key"], "published": rec.get("published")}
        yield meta.get("chunk_index", seq), meta["chunk_id"], c.page_content, meta


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """Exclusive lock for writers of ``index_dir`` (an flock on ``.lock``). Raises :class:`IndexLocked`
    when another writer holds it (in this process too), unless ``wait``."""
    import fcntl

    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise IndexLocked(f"another writer is updating {index_dir} (lock held)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
