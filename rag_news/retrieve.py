"""Retrieve: the passages to show the model for a question.

Entry point: :class:`NewsRetriever`, a LangChain ``BaseRetriever`` over a :class:`~rag_news.store.NewsIndex`:

1. dense search (cosine on the embedding model's vectors) and BM25 keyword search (``rank_bm25``) each
   rank ``fetch_k`` candidates; BM25 catches exact names and numbers that embeddings blur;
2. reciprocal-rank fusion merges the two rankings (``1 / (rrf_k + rank)`` summed);
3. at most ``max_per_article`` passages per article, so one long article does not fill every slot;
4. optionally only articles published on or after ``since`` (ISO date);
5. optionally a cross-encoder reranks the first ``rerank_candidates`` and the best ``k`` are kept.

Returned ``Document``s carry ``metadata["score"]`` (fused) and ``metadata["dense_score"]`` (cosine).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from .errors import ConfigError
from .store import NewsIndex

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an and are as at be by did do does for from had has have how in is it its of on or that the their "
    "this to was were what when where which who whom why will with".split())


def _tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def parse_since(value: str | date | None) -> str | None:
    """Normalise a ``--since`` value to ``YYYY-MM-DD`` (or ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise ConfigError(f"--since expects a date like 2026-11-01, got {value!r}") from None


class NewsRetriever(BaseRetriever):
    """Hybrid (dense + BM25) retrieval with per-article de-duplication over a ``NewsIndex``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = 5
    fetch_k: int = 30
    use_bm25: bool = True
    rrf_k: int = 60
    max_per_article: int = 2
    since: str | None = None
    reranker: Any = None  # a sentence-transformers CrossEncoder (or anything with .predict(pairs))
    rerank_candidates: int = 20

    _bm25: Any = PrivateAttr(default=None)
    _docs: list = PrivateAttr(default_factory=list)

    def _bm25_index(self):
        if self._bm25 is None:
            from rank_bm25 import BM25Okapi

            self._docs = self.index.chunks()
            self._bm25 = BM25Okapi([_tokens(d.page_content) for d in self._docs]) if self._docs else False
        return self._bm25

    def _allowed(self, doc: Document, since: str | None) -> bool:
        if not since:
            return True
        published = str(doc.metadata.get("published") or "")[:10]
        return bool(published) and published >= since  # undated articles are left out of a --since query

    def search(self, query: str, k: int | None = None, since: str | None = None) -> list[Document]:
        k = k or self.k
        since = parse_since(since if since is not None else self.since)
        idx: NewsIndex = self.index
        n = idx.chunk_count
        if n == 0 or not query.strip():
            return []
        fetch = min(n, max(self.fetch_k, k * 4) if not since else n)
        ranked: dict[str, float] = {}
        docs: dict[str, Document] = {}
        dense: dict[str, float] = {}
        for rank, hit in enumerate(h for h in idx.search(query, k=fetch) if self._allowed(h.document, since)):
            cid = hit.chunk_id
            docs[cid], dense[cid] = hit.document, hit.score
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        if self.use_bm25:
            bm25 = self._bm25_index()
            terms = _tokens(query)
            if bm25 and terms:
                scores = bm25.get_scores(terms)
                order = sorted(range(len(scores)), key=lambda i: -scores[i])
                rank = 0
                for i in order:
                    if rank >= fetch or scores[i] <= 0:
                        break
                    d = self._docs[i]
                    if not self._allowed(d, since):
                        continue
                    cid = d.metadata["chunk_id"]
                    docs.setdefault(cid, d)
                    ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.rrf_k + rank + 1)
                    rank += 1
        out: list[Document] = []
        per_article: dict[str, int] = {}
        want = max(k, self.rerank_candidates) if self.reranker is not None else k
        for cid in sorted(ranked, key=lambda c: -ranked[c]):
            d = docs[cid]
            key = d.metadata.get("key") or d.metadata.get("url")
            if per_article.get(key, 0) >= self.max_per_article:
                continue
            per_article[key] = per_article.get(key, 0) + 1
            out.append(Document(page_content=d.page_content, id=cid,
                                metadata={**d.metadata, "score": ranked[cid], "dense_score": dense.get(cid)}))
            if len(out) >= want:
                break
        if self.reranker is not None and out:
            scores = self.reranker.predict([(query, d.page_content) for d in out])
            for d, s in zip(out, scores):
                d.metadata["rerank_score"] = float(s)
            out = sorted(out, key=lambda d: -d.metadata["rerank_score"])[:k]
        return out

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.search(query)
