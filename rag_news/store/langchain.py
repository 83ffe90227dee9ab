"""The index as a LangChain ``VectorStore``: ``as_retriever()``, ``similarity_search``, ``add_texts``.

Dense search only (cosine); :class:`~rag_news.retrieve.NewsRetriever` (``index.as_retriever()``) is the
hybrid retriever the answering chain uses. ``add_texts`` stores each text as an article of one chunk and
commits them as one pass; ``delete`` removes the articles that own the given chunk ids.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore


class NewsVectorStore(VectorStore):
    """A LangChain view of a :class:`~rag_news.store.faiss_store.NewsIndex` (or any ``Store``)."""

    def __init__(self, index):
        self.index = index

    @property
    def embeddings(self):
        return self.index.embeddings

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        """Embed ``texts`` and commit them as one-chunk articles (key: ``metadata["key"]`` or ``["url"]``,
        else a hash of the text). Returns the chunk ids."""
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        vectors = np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)
        out = []
        for i, (text, meta) in enumerate(zip(texts, metadatas)):
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            key = meta.get("key") or meta.get("url") or f"text:{digest[:16]}"
            cid = (ids[i] if ids else None) or f"{digest[:16]}-0"
            doc = Document(page_content=text, id=cid,
                           metadata={**meta, "key": key, "url": meta.get("url", key), "chunk_id": cid, "chunk_index": 0})
            self.index.upsert({**meta, "key": key, "url": meta.get("url", key), "title": meta.get("title"),
                               "published": meta.get("published"), "content_hash": digest, "text": text},
                              [doc], vectors[i:i + 1])
            out.append(cid)
        self.index.commit()
        return out

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        keys = {d.metadata["key"] for d in self.index.chunks_by_id(list(ids or []))}
        for key in keys:
            self.index.remove(key)
        if keys:
            self.index.commit()
        return bool(keys)

    def get_by_ids(self, ids, /) -> list[Document]:
        return self.index.chunks_by_id(list(ids))

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return [(h.document, h.score) for h in self.index.search(query, k=k, since=kwargs.get("since"))]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        hits = self.index.dense_search(np.asarray(embedding, dtype=np.float32), k, since=kwargs.get("since"))
        return [h.document for h in hits]

    def _select_relevance_score_fn(self):
        return lambda score: score  # cosine similarity of unit vectors

    @classmethod
    def from_texts(cls, texts: list[str], embedding, metadatas: list[dict] | None = None, *,
                   index_dir: str, ids: list[str] | None = None, **kwargs: Any) -> "NewsVectorStore":
        """A new (or existing) index in ``index_dir`` holding ``texts``."""
        from .faiss_store import NewsIndex

        store = cls(NewsIndex.open(index_dir, embedding, create=True))
        store.add_texts(texts, metadatas, ids=ids)
        return store
