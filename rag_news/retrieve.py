"""Retrieve: the passages to show the model for a question.

Entry point: :class:`NewsRetriever`, a LangChain ``BaseRetriever`` over an index (:class:`~rag_news.store.Store`):

1. dense search (cosine on the embedding model's vectors) and BM25 keyword search (the store's: SQLite
   FTS5 for the default index) each rank ``fetch_k`` candidates; BM25 catches exact names and numbers
   that embeddings blur;
2. reciprocal-rank fusion merges the two rankings (``1 / (rrf_k + rank)`` summed);
3. at most ``max_per_article`` passages per article, so one long article does not fill every slot, and at
   most ``max_per_story`` articles per story (copies and write-ups of one event across outlets,
   rag_news.stories; default 1: the best-ranked outlet's article tells the story, its copies elsewhere take
   no slot; 0 = no cap);
4. optionally only articles published within ``since``..``until`` (ISO dates), filtered inside the store's
   searches (an index on the date), so the whole index is never scanned; without explicit bounds, a date
   the question names ("yesterday", "in October") is the window, and "latest" adds a recency ranking;
5. of those, a passage whose cosine is more than ``max_gap`` below the best candidate's is not shown and its
   slot stays empty (a passage about something else only distracts the reader and costs prompt reading: on
   the news-qa dev questions such passages never held the answer); passages found by keywords alone stay;
6. optionally a cross-encoder reranks the first ``rerank_candidates`` and the best ``k`` are kept.

Returned ``Document``s carry ``metadata["score"]`` (fused) and ``metadata["dense_score"]`` (cosine).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .dates import Window, time_window
from .errors import ConfigError


def parse_since(value: str | date | None, flag: str = "--since") -> str | None:
    """Normalise a ``--since`` / ``--until`` value to ``YYYY-MM-DD`` (or ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise ConfigError(f"{flag} expects a date like 2026-11-01, got {value!r}") from None


class NewsRetriever(BaseRetriever):
    """Hybrid (dense + BM25) retrieval with per-article de-duplication over an index (any ``Store``).

    ``since`` / ``until``: ISO dates bounding the articles' publication (inclusive). ``read_dates``: when
    neither is given, a date the question names ("yesterday", "this week", "in October") becomes the
    window and "latest"/"recent" adds a recency ranking to the fusion (see :mod:`rag_news.dates`), relative
    to ``today`` (default: the real date).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = 5
    fetch_k: int = 30
    use_bm25: bool = True
    rrf_k: int = 60
    max_per_article: int = 2
    max_per_story: int = 1  # articles per story (rag_news.stories), each up to max_per_article passages; 0 = no cap
    max_gap: float | None = 0.3  # not shown: a passage whose cosine is this far below the best's; None / 0 = off
    since: str | None = None
    until: str | None = None
    read_dates: bool = True
    today: date | None = None
    reranker: Any = None  # a sentence-transformers CrossEncoder (or anything with .predict(pairs))
    rerank_candidates: int = 20

    def window(self, query: str, since: str | None = None, until: str | None = None) -> Window:
        """The date window a search uses: explicit bounds, else the question's own dates."""
        since = parse_since(since if since is not None else self.since)
        until = parse_since(until if until is not None else self.until, flag="--until")
        if since or until or not self.read_dates:
            return Window(since, until)
        return time_window(query, self.today or date.today())

    def candidates(self, query: str, fetch: int, window: Window) -> dict[str, dict]:
        """Dense and keyword candidates (and, for "latest" questions, their order by date) fused by
        reciprocal rank: ``{chunk_id: {doc, score, dense}}``."""
        idx = self.index
        vector = np.asarray(idx.embeddings.embed_query(query), dtype=np.float32)
        bounds = [(window.since, window.until)] if window.strict else [(None, None)]
        if not window.strict and (window.since or window.until):
            bounds.append((window.since, window.until))  # a preference: in-window passages rank twice
        rankings = []  # (is it the dense ranking, hits)
        for since, until in bounds:
            rankings.append((True, idx.dense_search(vector, fetch, since=since, until=until)))
            if self.use_bm25:
                rankings.append((False, idx.keyword_search(query, fetch, since=since, until=until)))
        fused: dict[str, dict] = {}
        for dense, hits in rankings:
            for rank, hit in enumerate(hits):
                entry = fused.setdefault(hit.chunk_id, {"doc": hit.document, "score": 0.0, "dense": None})
                entry["score"] += 1.0 / (self.rrf_k + rank + 1)
                if dense:
                    entry["dense"] = hit.score
        if window.recent:
            by_date = sorted(fused, key=lambda c: str(fused[c]["doc"].metadata.get("published") or ""), reverse=True)
            for rank, cid in enumerate(by_date):
                fused[cid]["score"] += 1.0 / (self.rrf_k + rank + 1)
        return fused

    def _story_of(self, fused: dict[str, dict], cap: int) -> dict[str, str]:
        """Article key -> story id for the candidates (empty when uncapped or the store keeps no stories)."""
        if not cap or not hasattr(self.index, "story_entries"):
            return {}
        keys = list(dict.fromkeys(d["doc"].metadata.get("key") or d["doc"].metadata.get("url") for d in fused.values()))
        return {k: e["story"] for k, e in self.index.story_entries(keys).items()}

    def _dense_floor(self, fused: dict[str, dict]) -> float | None:
        """The cosine below which a candidate is not shown: ``max_gap`` below the best (None: no floor)."""
        dense = [e["dense"] for e in fused.values() if e["dense"] is not None]
        return max(dense) - self.max_gap if self.max_gap and dense else None

    def search(self, query: str, k: int | None = None, since: str | None = None,
               until: str | None = None, max_per_story: int | None = None) -> list[Document]:
        """The ``k`` best passages for ``query`` (at most ``max_per_article`` per article, and passages of
        at most ``max_per_story`` articles per story: this request's, else the retriever's) within the date
        window (see the class docstring). Passages carry ``metadata["story"]`` where the store knows the article's story."""
        k = k or self.k
        if not query.strip():
            return []
        window = self.window(query, since, until)
        want = max(k, self.rerank_candidates) if self.reranker is not None else k
        fused = self.candidates(query, max(self.fetch_k, want * 4), window)
        out: list[Document] = []
        per_article: dict[str, int] = {}
        cap = self.max_per_story if max_per_story is None else max_per_story
        story_of, per_story = self._story_of(fused, cap), {}
        for cid in sorted(fused, key=lambda c: -fused[c]["score"]):
            d = fused[cid]["doc"]
            key = d.metadata.get("key") or d.metadata.get("url")
            story = story_of.get(key)
            told = per_story.setdefault(story, set()) if story else set()
            if per_article.get(key, 0) >= self.max_per_article or (story and key not in told and len(told) >= cap):
                continue
            per_article[key] = per_article.get(key, 0) + 1
            told.add(key)
            out.append(Document(page_content=d.page_content, id=cid, metadata={
                **d.metadata, **({"story": story} if story else {}), "score": fused[cid]["score"],
                "dense_score": fused[cid]["dense"],
                "window": window.phrase, "window_filtered": bool(window.strict and (window.since or window.until))}))
            if len(out) >= want:
                break
        floor = self._dense_floor(fused)  # far passages leave their slots empty (no filler takes them)
        out = [d for d in out if floor is None or d.metadata["dense_score"] is None or d.metadata["dense_score"] >= floor]
        if self.reranker is not None and out:
            scores = self.reranker.predict([(query, d.page_content) for d in out])
            for d, s in zip(out, scores):
                d.metadata["rerank_score"] = float(s)
            out = sorted(out, key=lambda d: -d.metadata["rerank_score"])[:k]
        return out

    def search_within(self, query: str, urls: list[str], k: int | None = None, since: str | None = None,
                      until: str | None = None) -> list[Document]:
        """The ``k`` best passages of the articles at ``urls`` only (a follow-up about the articles the
        previous answer cited). Ranked by the fused score ``query`` gives them among the index-wide
        candidates; their other passages follow in article order (no score: they were not among the
        candidates). Explicit ``since`` / ``until`` still bound the articles; a removed article is skipped."""
        k = k or self.k
        idx = self.index
        keys = list(dict.fromkeys(key for key in (idx.key_for_url(u) for u in urls if u) if key))
        records = [r for r in (idx.article(key) for key in keys) if r and _within(r, since, until)]
        if not records or not query.strip():
            return []
        wanted = {cid: n for n, cid in enumerate(c for r in records for c in r.get("chunk_ids") or ())}
        fused = self.candidates(query, max(self.fetch_k, k * 4), Window())
        ranked = sorted((c for c in fused if c in wanted), key=lambda c: -fused[c]["score"])
        rest = sorted(set(wanted) - set(ranked), key=wanted.get)
        docs = {d.id: d for d in idx.chunks_by_id(rest)} if rest else {}
        out = [Document(page_content=fused[c]["doc"].page_content, id=c, metadata={
            **fused[c]["doc"].metadata, "score": fused[c]["score"], "dense_score": fused[c]["dense"], "focus": True})
            for c in ranked]
        out += [Document(page_content=docs[c].page_content, id=c, metadata={
            **docs[c].metadata, "score": 0.0, "dense_score": None, "focus": True}) for c in rest if c in docs]
        return out[:k]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, since: str | None = None,
                                until: str | None = None) -> list[Document]:
        """LangChain's entry point: ``invoke(query, k=..., since=..., until=...)`` overrides the
        retriever's own ``k`` and date window for this call."""
        return self.search(query, k=k, since=since, until=until)


def _within(record: dict, since: str | None, until: str | None) -> bool:
    """Whether an article's publication date lies within explicit bounds (an undated one always does)."""
    published = str(record.get("published") or "")[:10]
    if not published:
        return True
    return (not since or published >= parse_since(since)) and (not until or published <= parse_since(until, "--until"))
