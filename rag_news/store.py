"""Index: a FAISS vector store (LangChain API) plus the article records, saved without pickle.

Entry point: :class:`NewsIndex`. On disk an index folder holds::

    CURRENT                   name of the live snapshot (replaced atomically)
    snapshots/<name>/
        meta.json             format, version, embedding model, dimension, counts
        index.faiss           faiss.write_index of an IndexFlatIP (cosine on normalised vectors)
        chunks.jsonl          one chunk a line, in FAISS order: {"id", "text", "metadata"}
        articles.jsonl        one article a line: url, title, published, ..., text, content_hash, chunk_ids
    .lock                     writers hold an flock on it

Writers build a new snapshot beside the live one and then swap ``CURRENT``: a reader, or a crash at any
point, sees the old index or the new one, never half of one. Nothing here unpickles anything, and every
snapshot is validated on load (counts, ids, dimension, references); other files in the folder, such as
a LangChain ``index.pkl``, are never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from langchain_core.documents import Document

from .errors import IndexCorrupt, IndexLocked, IndexNotFound, RagNewsError
from .faults import pause_point

FORMAT = "rag-news-index"
VERSION = 1
_SNAPSHOT_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$")
BUILD_HINT = "build one with: python -m rag_news.index --urls URL_OR_FILE ... --index-dir {dir}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SearchHit:
    """One retrieved chunk and its cosine similarity to the query."""

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


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """Exclusive lock for writers of ``index_dir``. Raises :class:`IndexLocked` unless ``wait``."""
    import fcntl

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


class NewsIndex:
    """Chunks in FAISS (via ``langchain_community.vectorstores.FAISS``) + one record per article."""

    def __init__(self, embeddings, vectorstore=None, articles: dict[str, dict] | None = None,
                 meta: dict | None = None, path: Path | None = None):
        self.embeddings = embeddings
        self._vs = vectorstore
        self.articles: dict[str, dict] = articles or {}
        self.meta: dict = meta or {}
        self.path = path  # the snapshot it was loaded from

    # ------------------------------------------------------------------ properties
    @property
    def vectorstore(self):
        """The LangChain ``FAISS`` store (for ``as_retriever()`` and friends)."""
        if self._vs is None:
            self._vs = _new_faiss(self.embeddings, self.embeddings.dim)
        return self._vs

    @property
    def chunk_count(self) -> int:
        return 0 if self._vs is None else int(self._vs.index.ntotal)

    @property
    def embedding_model(self) -> str | None:
        return self.meta.get("embedding_model")

    def __len__(self) -> int:
        return len(self.articles)

    # ------------------------------------------------------------------ reading
    def search(self, query: str, k: int = 4) -> list[SearchHit]:
        if self._vs is None or self.chunk_count == 0:
            return []
        pairs = self._vs.similarity_search_with_score(query, k=min(k, self.chunk_count))
        return [SearchHit(document=d, score=float(s)) for d, s in pairs]

    def chunks(self) -> list[Document]:
        """All chunks in FAISS order."""
        if self._vs is None:
            return []
        return [self._vs.docstore.search(self._vs.index_to_docstore_id[i]) for i in range(self.chunk_count)]

    # ------------------------------------------------------------------ writing (in memory)
    def find_by_hash(self, content_hash: str) -> str | None:
        for key, rec in self.articles.items():
            if rec.get("content_hash") == content_hash:
                return key
        return None

    def upsert(self, article: dict, chunks: list[Document], vectors: np.ndarray) -> None:
        """Insert or replace one article (its old chunks are deleted first: no orphan vectors)."""
        key = article["key"]
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk expected")
        if key in self.articles:
            self.remove(key)
        vs = self.vectorstore
        ids = [c.metadata["chunk_id"] for c in chunks]
        clash = set(ids) & set(vs.index_to_docstore_id.values())
        if clash or len(set(ids)) != len(ids):
            raise RagNewsError(f"chunk id collision while adding {key} ({len(clash)} ids already present)")
        if len(chunks):
            vs.add_embeddings(
                text_embeddings=list(zip([c.page_content for c in chunks], np.asarray(vectors, np.float32).tolist())),
                metadatas=[c.metadata for c in chunks], ids=ids,
            )
        self.articles[key] = {**article, "chunk_ids": ids}

    def remove(self, key: str) -> int:
        rec = self.articles.pop(key, None)
        if not rec:
            return 0
        ids = [i for i in rec.get("chunk_ids", []) if i in set(self.vectorstore.index_to_docstore_id.values())]
        if ids:
            self.vectorstore.delete(ids)
        return len(ids)

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def current_snapshot(index_dir: Path) -> Path | None:
        cur = Path(index_dir) / "CURRENT"
        if not cur.is_file():
            return None
        name = cur.read_text(encoding="utf-8").strip()
        if not _SNAPSHOT_NAME.match(name):
            raise IndexCorrupt(f"{cur} names an invalid snapshot {name[:40]!r}")
        return Path(index_dir) / "snapshots" / name

    @classmethod
    def exists(cls, index_dir: Path) -> bool:
        try:
            snap = cls.current_snapshot(Path(index_dir))
        except IndexCorrupt:
            return True
        return snap is not None

    @classmethod
    def load(cls, index_dir: Path, embeddings) -> "NewsIndex":
        """Open and validate the live snapshot of ``index_dir``. Never unpickles anything."""
        index_dir = Path(index_dir)
        snap = cls.current_snapshot(index_dir)
        if snap is None:
            raise IndexNotFound(f"no index in {index_dir}; {BUILD_HINT.format(dir=index_dir)}")
        if not snap.is_dir():
            raise IndexCorrupt(f"{index_dir}/CURRENT points to a missing snapshot {snap.name}")
        return cls._load_snapshot(snap, embeddings)

    @staticmethod
    def read_meta(index_dir: Path) -> dict:
        snap = NewsIndex.current_snapshot(Path(index_dir))
        if snap is None:
            raise IndexNotFound(f"no index in {index_dir}; {BUILD_HINT.format(dir=index_dir)}")
        return _read_meta(snap)

    @classmethod
    def _load_snapshot(cls, snap: Path, embeddings) -> "NewsIndex":
        import faiss

        meta = _read_meta(snap)
        dim = meta["dim"]
        try:
            index = faiss.read_index(str(snap / "index.faiss"))
        except (RuntimeError, OSError) as e:
            raise IndexCorrupt(f"{snap / 'index.faiss'} is unreadable (truncated or not a FAISS index): "
                               f"{str(e).strip().splitlines()[-1][:120]}") from None
        if index.d != dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexCorrupt(f"{snap / 'index.faiss'}: dimension/metric do not match meta.json")
        chunks = list(_read_jsonl(snap / "chunks.jsonl", ("id", "text", "metadata")))
        if len(chunks) != index.ntotal or len(chunks) != meta.get("chunks"):
            raise IndexCorrupt(f"{snap}: {index.ntotal} vectors but {len(chunks)} chunks "
                               f"(meta says {meta.get('chunks')})")
        ids = [c["id"] for c in chunks]
        if len(set(ids)) != len(ids):
            raise IndexCorrupt(f"{snap}/chunks.jsonl has duplicate chunk ids")
        articles = {}
        for rec in _read_jsonl(snap / "articles.jsonl", ("key", "url", "content_hash", "chunk_ids")):
            articles[rec["key"]] = rec
        if len(articles) != meta.get("articles"):
            raise IndexCorrupt(f"{snap}: {len(articles)} articles but meta says {meta.get('articles')}")
        idset = set(ids)
        referenced = 0
        for key, rec in articles.items():
            missing = [i for i in rec["chunk_ids"] if i not in idset]
            if missing:
                raise IndexCorrupt(f"{snap}: article {key} references {len(missing)} missing chunks")
            referenced += len(rec["chunk_ids"])
        if referenced != len(ids):
            raise IndexCorrupt(f"{snap}: {len(ids) - referenced} chunks belong to no article")
        from langchain_community.docstore.in_memory import InMemoryDocstore

        docstore = InMemoryDocstore({c["id"]: Document(page_content=c["text"], metadata=c["metadata"], id=c["id"])
                                     for c in chunks})
        vs = _new_faiss(embeddings, dim, index=index, docstore=docstore,
                        index_to_docstore_id=dict(enumerate(ids)))
        return cls(embeddings, vs, articles, meta, path=snap)

    def save(self, index_dir: Path, keep: int = 2) -> Path:
        """Write a new snapshot and make it live atomically. Returns the snapshot folder.

        Call it while holding :func:`writer_lock` (``index_urls`` does): it also clears what crashed
        writers left behind."""
        import faiss

        index_dir = Path(index_dir)
        snaps = index_dir / "snapshots"
        snaps.mkdir(parents=True, exist_ok=True)
        name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f") + "-" + secrets.token_hex(4)
        tmp = snaps / f".tmp-{name}"
        tmp.mkdir()
        try:
            vs = self.vectorstore
            faiss.write_index(vs.index, str(tmp / "index.faiss"))
            pause_point("writing")  # crash tests: killed with the new snapshot half written
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for doc in self.chunks():
                    f.write(json.dumps({"id": doc.metadata["chunk_id"], "text": doc.page_content,
                                        "metadata": doc.metadata}, ensure_ascii=False) + "\n")
            with open(tmp / "articles.jsonl", "w", encoding="utf-8") as f:
                for rec in self.articles.values():
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            meta = {
                **{k: v for k, v in self.meta.items() if k not in ("chunks", "articles")},
                "format": FORMAT, "version": VERSION, "dim": int(vs.index.d), "distance": "cosine",
                "embedding_model": self.meta.get("embedding_model") or getattr(self.embeddings, "model_name", None),
                "chunks": self.chunk_count, "articles": len(self.articles),
                "created": self.meta.get("created") or _now(), "updated": _now(),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            for f in tmp.iterdir():
                _fsync(f)
            final = snaps / name
            os.rename(tmp, final)
            _fsync_dir(snaps)
            cur_tmp = index_dir / f".CURRENT.{name}"
            cur_tmp.write_text(name + "\n", encoding="utf-8")
            _fsync(cur_tmp)
            pause_point("swapping")  # crash tests: snapshot complete, CURRENT not yet replaced
            os.replace(cur_tmp, index_dir / "CURRENT")
            _fsync_dir(index_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.meta, self.path = meta, final
        _prune(snaps, keep=keep, live=name)
        return final


def _new_faiss(embeddings, dim: int, index=None, docstore=None, index_to_docstore_id=None):
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    return FAISS(
        embedding_function=embeddings,
        index=index if index is not None else faiss.IndexFlatIP(dim),
        docstore=docstore if docstore is not None else InMemoryDocstore({}),
        index_to_docstore_id=index_to_docstore_id or {},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=False,  # our embeddings are already unit length
    )


def _read_meta(snap: Path) -> dict:
    try:
        meta = json.loads((snap / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{snap} has no meta.json") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"{snap}/meta.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IndexCorrupt(f"{snap} is not a rag-news index (meta.json format != {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise IndexCorrupt(f"{snap} has index format version {meta.get('version')}, this rag-news reads {VERSION}")
    if not isinstance(meta.get("dim"), int) or meta["dim"] <= 0:
        raise IndexCorrupt(f"{snap}/meta.json has no valid 'dim'")
    return meta


def _read_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise IndexCorrupt(f"{path}:{n} is not valid JSON (truncated file?)") from None
            if not isinstance(rec, dict) or any(k not in rec for k in required):
                raise IndexCorrupt(f"{path}:{n} lacks one of {', '.join(required)}")
            yield rec


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:  # some filesystems do not allow it
        pass


def _prune(snaps: Path, keep: int, live: str) -> None:
    """Drop old snapshots (keeping ``keep`` newest, so a reader mid-load still finds its files) and
    leftovers of crashed writers (we hold the writer lock, so no ``.tmp-*`` is in progress)."""
    others = sorted((p for p in snaps.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != live),
                    key=lambda p: p.name, reverse=True)  # names start with a UTC timestamp (microseconds)
    for old in others[max(keep - 1, 0):]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in snaps.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
