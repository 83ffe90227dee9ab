"""The Milvus index backend (``index_backend = "milvus"``): the :class:`~rag_news.store.base.Store`
interface on Milvus, through ``pymilvus`` (and ``langchain-milvus`` for the LangChain view).

``milvus_uri`` picks the engine: a path runs Milvus Lite in this process (one process per path: Milvus
Lite locks it); ``http://host:19530`` talks to a Milvus server or cluster (and to
``milvus-lite server --data-dir DIR``), where several processes (re-index shards, servers) share the
index. Two collections, named from ``milvus_collection`` (default ``rag_news``):

``<name>_chunks``   ``chunk_id`` (primary key), ``key`` (the article), ``text`` (analysed: Milvus's BM25
                    function fills ``sparse`` from it), ``dense`` (the unit vector; inner product =
                    cosine), ``published`` (YYYYMMDD, -1 when undated), ``meta`` (JSON);
``<name>_records``  one row per article record (``a:<key>``, with its ``chunk_ids``), article text piece
                    (``t:<key>:<n>``), URL form (``u:<url>`` -> key), host note (``h:<host>``), expired
                    note (``x:<key>``), pass (``p:<time>:<id>``) and the index's settings (``m``).

**Crash guarantees.** Milvus writes rows, not transactions, so a pass is not atomic here (with the FAISS
backend it is). What holds: each article changes for readers in one step — its new chunks are written
first, then its record (one row, listing the chunk ids), then its old chunks are deleted; searches return
only chunks their article's record lists. Killed mid-pass, the articles whose record was written show
their new version, the others their old one; the next pass finds those still changed and writes them.
Chunks written without their record (invisible) are deleted when that article is next written, and
``check()`` counts them. A removal deletes the record first. Durability is Milvus's: a write it has
acknowledged survives a crash of this process.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
from langchain_core.documents import Document

from ..errors import ConfigError, IndexNotFound, MissingExtra, RagNewsError
from ..faults import Faults, installed_faults
from ..urls import normalize_url
from . import milvus_cas, milvus_lease, milvus_stories, milvus_writer
from .base import BUILD_HINT, CommitResult, SearchHit, StagedPass
from .milvus_rows import BATCH, MAX_TEXT, count, day_number, document as _document, get_records, quote as _quote
from .milvus_rows import row as _row

log = logging.getLogger(__name__)
# Milvus Lite does not implement AllocTimestamp: pymilvus's query iterator falls back to a client-side
# timestamp, and both sides log it (the in-process server as an error) on every iterator
logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(lambda r: "mvccTs" not in r.getMessage())
logging.getLogger("grpc._server").addFilter(
    lambda r: not (r.exc_info and isinstance(r.exc_info[1], NotImplementedError)))
def _window(since: str | None, until: str | None) -> str:
    if not since and not until:
        return ""
    lo = day_number(since) if since else 0
    hi = day_number(until) if until else 99_999_999
    return f"published >= {lo} and published <= {hi}"


def resolve_uri(settings, index_dir: Path | None = None) -> str:
    """``settings.milvus_uri``, or Milvus Lite in ``index_dir/milvus.db``."""
    if settings.milvus_uri:
        return str(settings.milvus_uri)
    return str(Path(index_dir or settings.index_dir) / "milvus.db")


def is_local(uri: str) -> bool:
    return "://" not in uri


class MilvusStore(StagedPass):
    """Articles, chunks and vectors in two Milvus collections; see the module docstring."""

    def __init__(self, embeddings, client, name: str, uri: str, meta: dict, faults: Faults | None = None):
        self.embeddings, self.client, self.name, self.uri, self.meta = embeddings, client, name, uri, meta
        self.chunks_col, self.records_col = f"{name}_chunks", f"{name}_records"
        self.faults = faults or installed_faults()  # crash tests' hook (rag_news.faults)
        self._clear_staged()
        self._shard = self._owner = None   # the pass's shard and lease owner, inside writer()
        self._foreign_shards: set = set()  # shards whose records the pass staged compare-and-set updates for
        self._seen_pass = self._pass_count()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, uri: str, embeddings, *, name: str = "rag_news", create: bool = False,
             faults: Faults | None = None) -> "MilvusStore":
        """The index in ``name``'s collections at ``uri``; ``create`` makes them when missing."""
        client = connect(uri)
        if not client.has_collection(f"{name}_records"):
            if not create:
                client.close()
                release(uri)
                raise IndexNotFound(f"no Milvus index {name!r} at {uri}; "
                                    f"{BUILD_HINT.format(dir='DIR')} --index-backend milvus")
            _create_collections(client, name, int(embeddings.dim))
        for collection in (f"{name}_records", f"{name}_chunks"):
            client.load_collection(collection)  # a restarted Milvus (Lite) has them released
        got = client.get(f"{name}_records", ids=["m"], output_fields=["data"])
        if not got and create:  # new (or being created by another worker: the same row from every creator)
            meta = {"dim": int(embeddings.dim), "embedding_model": getattr(embeddings, "model_name", None),
                    "distance": "cosine", "backend": "milvus"}
            client.upsert(f"{name}_records", [_row("m", "meta", "", data=meta)])
            got = client.get(f"{name}_records", ids=["m"], output_fields=["data"])
        if not got:
            client.close()
            release(uri)
            raise RagNewsError(f"the Milvus collections {name}_* at {uri} are not a rag-news index (no settings row)")
        return cls(embeddings, client, name, uri, dict(got[0]["data"]), faults)

    @staticmethod
    def read_meta(uri: str, name: str = "rag_news") -> dict:
        """The index's settings (embedding model, dimension) without an embedder."""
        client = connect(uri)
        try:
            if not client.has_collection(f"{name}_records"):
                raise IndexNotFound(f"no Milvus index {name!r} at {uri}; {BUILD_HINT.format(dir='DIR')} "
                                    "--index-backend milvus")
            client.load_collection(f"{name}_records")
            got = client.get(f"{name}_records", ids=["m"], output_fields=["data"])
            return dict(got[0]["data"]) if got else {}
        finally:
            client.close()
            release(uri)

    def close(self) -> None:
        """Close the connection; the last store of this process on a Milvus Lite path also stops Milvus
        Lite there (releasing the path for other processes)."""
        if self.client is not None:
            self.client.close()
            self.client = None
            release(self.uri)

    # ------------------------------------------------------------------ reading
    def _count(self, collection: str, where: str = "") -> int:
        return count(self.client, collection, where)

    def _pass_count(self) -> int:
        return self._count(self.records_col, 'kind == "pass"')

    def refresh(self) -> bool:
        """True when a pass was committed since the last look (reads always see Milvus's latest rows)."""
        now = self._pass_count()
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
        return self._count(self.chunks_col)

    def __len__(self) -> int:
        return self._count(self.records_col, 'kind == "article"')

    def _records(self, rids: list[str]) -> dict[str, dict]:
        return get_records(self.client, self.records_col, rids)

    def article(self, key: str) -> dict | None:
        """The record of ``key`` (with ``chunk_ids`` in article order), or None."""
        return self._records([f"a:{key}"]).get(f"a:{key}")

    def article_text(self, key: str) -> str | None:
        """The text of the article's current version: the pieces its record names (a writer stopped between
        writing new pieces and switching the record leaves them unread)."""
        rec = self.article(key)
        if rec is None:
            return None
        rows = self.client.query(self.records_col, filter=f'kind == "text" and key == {_quote(key)}',
                                 output_fields=["rid", "text", "data"])
        version = rec.get("text_version")  # absent in indexes written before versioned text: every piece
        rows = [r for r in rows if (r.get("data") or {}).get("version") == version]
        if not rows:
            return None
        return "".join(r["text"] for r in sorted(rows, key=lambda r: int(r["rid"].rsplit(":", 1)[1])))

    def iter_articles(self) -> Iterator[dict]:
        """Every article record (without text), in key order."""
        rows = []
        it = self.client.query_iterator(self.records_col, batch_size=1000, filter='kind == "article"',
                                        output_fields=["data"])
        try:
            while batch := it.next():
                rows += [dict(r["data"]) for r in batch]
        finally:
            it.close()
        for rec in sorted(rows, key=lambda r: r["key"]):
            rec.pop("chunk_ids", None)
            yield rec

    def expiry_candidates(self, seen_before: str | None, born_before: str | None) -> list[dict]:
        """Records last seen (else first seen) before ``seen_before`` or published (else first seen) before
        ``born_before`` (ISO; None: that condition off), key order: one filtered query (Milvus evaluates it;
        the records are not read here one by one)."""
        def older(field: str, fallback: str, bound: str) -> str:  # coalesce(field, fallback) < bound
            return (f'((exists data["{field}"] and data["{field}"] < {_quote(bound)}) or '
                    f'(not exists data["{field}"] and data["{fallback}"] < {_quote(bound)}))')

        conds = [older("last_seen", "first_seen", seen_before)] if seen_before else []
        conds += [older("published", "first_seen", born_before)] if born_before else []
        if not conds:
            return []
        rows = []
        it = self.client.query_iterator(self.records_col, batch_size=1000, output_fields=["data"],
                                        filter=f'kind == "article" and ({" or ".join(conds)})')
        try:
            while batch := it.next():
                rows += [dict(r["data"]) for r in batch]
        finally:
            it.close()
        for rec in rows:
            rec.pop("chunk_ids", None)
        return sorted(rows, key=lambda r: r["key"])

    @property
    def articles(self) -> dict[str, dict]:
        """Every article record by key, with ``chunk_ids`` (for tools and tests)."""
        keys = [r["key"] for r in self.iter_articles()]
        return {k: self.article(k) for k in keys}

    def key_for_url(self, url: str) -> str | None:
        got = self._records([f"u:{normalize_url(url)}"])
        return next(iter(got.values()))["key"] if got else None

    def find_by_hash(self, content_hash: str) -> str | None:
        rows = self.client.query(self.records_col, filter=f'kind == "article" and content_hash == {_quote(content_hash)}',
                                 output_fields=["key"])
        return min((r["key"] for r in rows), default=None)

    def expired_reason(self, url: str) -> str | None:
        got = self._records([f"x:{normalize_url(url)}"])
        return next(iter(got.values()))["reason"] if got else None

    def host_note(self, host: str) -> dict | None:
        if host in self.staged.host_notes:
            return self.staged.host_notes[host]
        got = self._records([f"h:{host}"])
        return next(iter(got.values())) if got else None

    # ---- stories (rag_news.stories; rows of kind "story", see rag_news.store.milvus_stories)
    def story_entries(self, keys: list[str]) -> dict[str, dict]:
        """The story entries of these articles, by key."""
        return milvus_stories.by_keys(self, keys)

    def story_keys_for_bands(self, bands: list[str]) -> set[str]:
        """Articles sharing at least one MinHash LSH band with ``bands``."""
        return milvus_stories.keys_for_bands(self, bands)

    def stories_between(self, since: str | None = None, until: str | None = None) -> list[dict]:
        """Story entries whose day (published, else first seen) is within ``since``..``until``."""
        return milvus_stories.between(self, since, until)

    def story_members(self, story_ids: list[str]) -> list[dict]:
        """Every entry of these stories."""
        return milvus_stories.members(self, story_ids)

    def chunks_by_id(self, chunk_ids: list[str]) -> list[Document]:
        found = {}
        for i in range(0, len(chunk_ids), BATCH):
            for r in self.client.get(self.chunks_col, ids=list(chunk_ids[i:i + BATCH]),
                                     output_fields=["text", "meta"]):
                found[r["chunk_id"]] = _document(r)
        return [found[c] for c in chunk_ids if c in found]

    def chunks(self) -> list[Document]:
        """Every live chunk, article by article (for inspection; costs the whole index)."""
        return [d for rec in self.articles.values() for d in self.chunks_by_id(rec["chunk_ids"])]

    def _live(self, hits: list[dict], k: int, score) -> list[SearchHit]:
        """Search hits whose article record lists them (chunks of a half-written article are skipped)."""
        recs = self._records(list(dict.fromkeys(f"a:{h['entity']['key']}" for h in hits)))
        out = []
        for h in hits:
            rec = recs.get(f"a:{h['entity']['key']}")
            if rec is not None and h["chunk_id"] in rec.get("chunk_ids", ()):
                out.append(SearchHit(_document({"chunk_id": h["chunk_id"], **h["entity"]}), score(h["distance"])))
        return out[:k]

    def dense_search(self, vector: np.ndarray, k: int, since: str | None = None,
                     until: str | None = None) -> list[SearchHit]:
        """Chunks nearest to ``vector`` (cosine), optionally only those published within ``since``..``until``."""
        if k <= 0:
            return []
        hits = self.client.search(self.chunks_col, data=[np.asarray(vector, np.float32).ravel().tolist()],
                                  anns_field="dense", limit=2 * k, filter=_window(since, until),
                                  output_fields=["key", "text", "meta"], search_params={"metric_type": "IP"})
        return self._live(list(hits[0]) if hits else [], k, float)

    def keyword_search(self, query: str, k: int, since: str | None = None,
                       until: str | None = None) -> list[SearchHit]:
        """Chunks ranked by Milvus's BM25 full-text search, optionally within ``since``..``until``."""
        if k <= 0 or not query.strip():
            return []
        hits = self.client.search(self.chunks_col, data=[query], anns_field="sparse", limit=2 * k,
                                  filter=_window(since, until), output_fields=["key", "text", "meta"],
                                  search_params={"metric_type": "BM25"})
        return self._live(list(hits[0]) if hits else [], k, lambda d: abs(float(d)))

    def search(self, query: str, k: int = 4, since: str | None = None, until: str | None = None) -> list[SearchHit]:
        """Dense search for a text query (embedded with the index's model)."""
        if not query.strip():
            return []
        return self.dense_search(np.asarray(self.embeddings.embed_query(query), np.float32), k, since, until)

    def export(self) -> Iterator[tuple[dict, list[Document], np.ndarray]]:
        """Every article as ``(record with text, chunks, their stored vectors)``, the arguments of
        :meth:`upsert` on another store (nothing re-embedded), article by article."""
        for rec in self.articles.values():
            ids = rec.pop("chunk_ids", [])
            rec["text"] = self.article_text(rec["key"]) or ""
            found = {}
            for i in range(0, len(ids), BATCH):
                for r in self.client.get(self.chunks_col, ids=ids[i:i + BATCH], output_fields=["text", "meta", "dense"]):
                    found[r["chunk_id"]] = r
            rows = [found[c] for c in ids if c in found]
            yield rec, [_document(r) for r in rows], np.array([r["dense"] for r in rows], np.float32).reshape(
                len(rows), self.dim)

    def stats(self) -> dict:
        self.refresh()
        return {"articles": len(self), "chunks": self.chunk_count, "pass": self._seen_pass, "backend": "milvus",
                "uri": self.uri}

    @property
    def vectorstore(self):
        """This index as a LangChain ``VectorStore`` (the same view as the FAISS index's, see
        :mod:`rag_news.store.langchain`); Milvus's own ``langchain_milvus.Milvus`` over the chunks, with its
        dense + BM25 hybrid search, is :func:`rag_news.store.milvus_langchain.langchain_view`."""
        from .langchain import NewsVectorStore

        return NewsVectorStore(self)

    def as_retriever(self, **kwargs):
        """The hybrid retriever (dense + keyword fusion, per-article cap, dates) over this index."""
        from ..retrieve import NewsRetriever

        return NewsRetriever(index=self, **kwargs)

    # ------------------------------------------------------------------ writing: stage a pass (StagedPass)
    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.meta["dim"])

    def writer(self, wait: bool = False, shard: tuple[int, int] | None = None):
        """A pass's context, holding the lease of ``shard`` (None: the whole index) for the pass, so two
        writers of one shard never overlap (:mod:`rag_news.store.milvus_lease`): raises
        :class:`~rag_news.errors.IndexLocked` ("another pass holds shard i/N") unless ``wait``. Writers
        of different shards run at once on disjoint articles (``reindex --shard I/N``); a record of another
        shard is updated through its shard's lease holder, as a compare-and-set (:mod:`.milvus_cas`)."""
        @contextlib.contextmanager
        def ctx():
            self._foreign_shards = set()
            with milvus_lease.lease(self, shard, wait=wait) as owner:
                self._shard, self._owner = shard, owner
                try:
                    self.refresh()
                    yield self
                finally:
                    self._shard = self._owner = None
            milvus_cas.settle(self, self._foreign_shards | {shard})  # other shards' records it updated, its own
        return ctx()

    def save(self, index_dir=None, keep=None):
        self.commit()
        return self.uri

    def commit(self) -> CommitResult:
        """Write the staged pass (see the module docstring for what a crash leaves)."""
        result, foreign = milvus_writer.commit_pass(self, self.staged, self._shard, self._owner or "", self.faults)
        self._foreign_shards |= foreign
        self._clear_staged()
        self.refresh()
        return result

    def check(self) -> list[str]:
        """Problems found: chunks no record lists (left by a killed writer), records whose chunks are missing."""
        return milvus_writer.check(self)


# ------------------------------------------------------------------------------------------ helpers
_LOCAL_USERS: dict[str, int] = {}  # Milvus Lite path -> clients of this process on it


def connect(uri: str):
    """A ``MilvusClient`` for ``uri`` (a path: Milvus Lite, created if missing)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MissingExtra("pymilvus", "milvus", "the Milvus index backend") from None

    if is_local(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        client = MilvusClient(uri=uri)
        if is_local(uri):
            path = str(Path(uri).resolve())
            _LOCAL_USERS[path] = _LOCAL_USERS.get(path, 0) + 1
        return client
    except Exception as e:  # noqa: BLE001 - pymilvus raises several kinds; one line for the user
        hint = (" (Milvus Lite admits one process per path: stop the other one, or run `milvus-lite server "
                "--data-dir PATH --host 127.0.0.1` and use http://127.0.0.1:19530)") if is_local(uri) else ""
        raise ConfigError(f"cannot open Milvus at {uri}: {str(e).splitlines()[0][:200]}{hint}") from None


def release(uri: str) -> None:
    """One client of this process on ``uri`` is gone; the last one stops Milvus Lite on that path."""
    if not is_local(uri):
        return
    path = str(Path(uri).resolve())
    _LOCAL_USERS[path] = _LOCAL_USERS.get(path, 1) - 1
    if _LOCAL_USERS[path] <= 0:
        _LOCAL_USERS.pop(path, None)
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)


def _create_collections(client, name: str, dim: int) -> None:
    """The two collections, unless there; several workers may create them at once (the last wins nothing:
    a creation that finds the collection made meanwhile is taken as done)."""
    for collection, schema, index in (_chunks_schema(client, dim), _records_schema(client)):
        if client.has_collection(f"{name}_{collection}"):
            continue
        try:
            client.create_collection(f"{name}_{collection}", schema=schema, index_params=index,
                                     consistency_level="Strong")
        except Exception:  # noqa: BLE001 - another worker created it first; anything else shows below
            if not client.has_collection(f"{name}_{collection}"):
                raise


def _chunks_schema(client, dim: int):
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=256)
    s.add_field("key", DataType.VARCHAR, max_length=4096)
    s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
    s.add_field("published", DataType.INT64)
    s.add_field("meta", DataType.JSON)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function(name="text_bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                            output_field_names=["sparse"]))
    ip = client.prepare_index_params()
    ip.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    ip.add_index("key", index_type="INVERTED")
    ip.add_index("published", index_type="INVERTED")
    return "chunks", s, ip


def _records_schema(client):
    from pymilvus import DataType

    r = client.create_schema(auto_id=False, enable_dynamic_field=False)
    r.add_field("rid", DataType.VARCHAR, is_primary=True, max_length=8192)
    r.add_field("kind", DataType.VARCHAR, max_length=16)
    r.add_field("key", DataType.VARCHAR, max_length=4096)
    r.add_field("content_hash", DataType.VARCHAR, max_length=128)
    r.add_field("data", DataType.JSON)
    r.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
    r.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    ip = client.prepare_index_params()
    ip.add_index("v", index_type="AUTOINDEX", metric_type="L2")
    ip.add_index("kind", index_type="INVERTED")
    ip.add_index("key", index_type="INVERTED")
    ip.add_index("content_hash", index_type="INVERTED")
    return "records", r, ip
