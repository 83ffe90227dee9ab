"""The index as a LangChain ``VectorStore``: ``as_retriever()``, ``similarity_search``, ``add_documents``.

Dense search only (cosine); :class:`~rag_news.retrieve.NewsRetriever` (``index.as_retriever()``) is the
hybrid retriever the answering chain uses. The same view serves every backend (it needs only the ``Store``
interface) and behaves as LangChain's own stores do (LangChain's standard ``VectorStoreIntegrationTests``
run against it in tests/test_store_langchain.py):

* a document added here is stored as an article of one chunk whose key is the document's id (given, or a
  new UUID); adding the same id again replaces it (idempotent), ``delete(ids)`` removes it;
* documents come back with the metadata they were given, nothing added: rag-news's own fields (``key``,
  ``url``, ``chunk_id``, ``published``...) live in the article record and the chunk's columns, and the
  given metadata is kept beside them under ``GIVEN``;
* chunks written by the pipeline come back with the metadata the chunker gave them (``url``, ``title``,
  ``published``, ``chunk_id``...), as before;
* ``metadata["url"]`` (or ``"source"``) and ``metadata["published"]`` of an added document become the
  article's URL and date, so ``since`` / ``until`` filters, expiry and the hybrid retriever see them; the
  date is read by :func:`rag_news.dates.iso_date` (ISO, RFC 2822, "November 3, 2026"; anything else
  leaves the article undated), the given metadata keeps it as written.

Each ``add_*`` call is one committed pass.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Iterable

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from ..dates import iso_date

GIVEN = "given_metadata"  # chunk metadata key holding what a LangChain caller gave (see the module docstring)
KEY_PREFIX = "lc:"        # article keys of documents added through the view


def as_given(doc: Document) -> Document:
    """``doc`` as its writer gave it: the caller's own metadata for a document added through the view."""
    meta = doc.metadata
    if isinstance(meta.get(GIVEN), dict):
        return Document(page_content=doc.page_content, metadata=dict(meta[GIVEN]), id=doc.id)
    return Document(page_content=doc.page_content, metadata=dict(meta), id=doc.id or meta.get("chunk_id"))


def _unit(vectors) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


class NewsVectorStore(VectorStore):
    """A LangChain view of a :class:`~rag_news.store.faiss_store.NewsIndex` (or any ``Store``)."""

    # the backend :meth:`from_texts` opens on ``index_dir`` (``open(folder, embeddings, create=True)``): the
    # package sets NewsIndex (rag_news/store/__init__.py), so this view imports no backend
    default_backend = None

    def __init__(self, index):
        self.index = index

    @property
    def embeddings(self):
        return self.index.embeddings

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed ``texts`` and commit them as one-chunk articles, one pass. ``metadatas``: returned as given
        by every read; ``ids``: the documents' ids (a new UUID where missing or None); an id already in the
        index is replaced. Returns the ids."""
        texts = list(texts)
        metadatas = list(metadatas) if metadatas else [{} for _ in texts]
        ids = [(ids[i] if ids and i < len(ids) else None) or str(uuid.uuid4()) for i in range(len(texts))]
        vectors = _unit(self.embeddings.embed_documents(texts)) if texts else None
        for i, (text, given, cid) in enumerate(zip(texts, metadatas, ids)):
            self.index.upsert(*self._article(text, dict(given or {}), str(cid)), vectors[i:i + 1])
        if texts:
            self.index.commit()
        return [str(c) for c in ids]

    @staticmethod
    def _article(text: str, given: dict, cid: str) -> tuple[dict, list[Document]]:
        """The article record and its one chunk for a document added through the view."""
        key = KEY_PREFIX + cid
        url = given.get("url") or given.get("source")
        url = url if isinstance(url, str) and url else key
        published = iso_date(given.get("published"))
        title = given.get("title") if isinstance(given.get("title"), str) else None
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        meta = {"key": key, "url": url, "title": title, "published": published, "chunk_id": cid,
                "chunk_index": 0, GIVEN: given}
        rec = {"key": key, "url": url, "title": title, "published": published, "content_hash": digest, "text": text}
        return rec, [Document(page_content=text, metadata=meta, id=cid)]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove the articles owning the chunks ``ids`` (one pass); ids not in the index are ignored.
        True when something was asked for (LangChain's convention: deletion succeeded)."""
        if not ids:
            return False
        keys = {d.metadata["key"] for d in self.index.chunks_by_id(list(ids))}
        for key in keys:
            self.index.remove(key)
        if keys:
            self.index.commit()
        return True

    def get_by_ids(self, ids, /) -> list[Document]:
        """The documents with these ids, in that order; ids not found are skipped."""
        return [as_given(d) for d in self.index.chunks_by_id(list(ids))]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """Dense search; ``since`` / ``until`` (ISO dates) keep chunks published within them."""
        vector = _unit(self.embeddings.embed_query(query)) if query.strip() else None
        return self._by_vector(vector, k, **kwargs) if vector is not None else []

    def _by_vector(self, vector, k: int, since: str | None = None, until: str | None = None,
                   **kwargs: Any) -> list[tuple[Document, float]]:
        hits = self.index.dense_search(np.asarray(vector, dtype=np.float32), k, since=since, until=until)
        return [(as_given(h.document), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self._by_vector(_unit(embedding), k, **kwargs)]

    def _select_relevance_score_fn(self):
        return lambda score: score  # cosine similarity of unit vectors

    @classmethod
    def from_texts(cls, texts: list[str], embedding, metadatas: list[dict] | None = None, *,
                   index_dir: str, ids: list[str] | None = None, **kwargs: Any) -> "NewsVectorStore":
        """A new (or existing) index in ``index_dir`` (a :attr:`default_backend` index) holding ``texts``."""
        store = cls(cls.default_backend.open(index_dir, embedding, create=True))
        store.add_texts(texts, metadatas, ids=ids)
        return store
