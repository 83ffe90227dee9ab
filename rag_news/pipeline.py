"""The ingestion pipeline: scrape -> clean -> chunk -> embed -> index, incrementally.

Entry point: :func:`index_urls`. For each URL: a new article is chunked, embedded and added; an article
whose cleaned text is unchanged (same content hash) is only touched (no re-embedding); a changed one has
its old chunks replaced; a page whose text is already indexed under another URL is recorded as an alias,
not stored twice. Failures are reported per URL and never indexed. The index on disk changes only when
the run succeeds for at least one page, and then atomically (see :mod:`rag_news.store`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .chunk import chunk
from .clean import clean
from .embed import Embedder
from .errors import ConfigError, RagNewsError
from .scrape import ScrapeError, scrape
from .settings import Settings
from .store import NewsIndex, writer_lock
from .urls import normalize_url

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What one indexing run did. ``as_dict()`` is the CLI's ``--json`` output."""

    index_dir: str
    pages_ok: int = 0
    pages_failed: list[dict] = field(default_factory=list)
    articles_new: int = 0
    articles_changed: int = 0
    articles_unchanged: int = 0
    duplicates: int = 0
    chunks: int = 0            # chunks of the pages indexed in this run
    chunks_embedded: int = 0   # chunks actually embedded (0 for unchanged pages)
    chunks_removed: int = 0
    chunks_total: int = 0      # chunks in the index after the run
    articles_total: int = 0
    seconds: float = 0.0
    embedding: dict = field(default_factory=dict)
    pages: list[dict] = field(default_factory=list)  # one row per page scraped: url, title, status, chunks

    def as_dict(self) -> dict:
        return asdict(self)


def _check_writable(index_dir: Path) -> None:
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=index_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise RagNewsError(f"cannot write to index folder {index_dir}: {e.strerror or e}") from None


def open_or_create(index_dir: Path, embedder: Embedder) -> NewsIndex:
    if NewsIndex.exists(index_dir):
        idx = NewsIndex.load(index_dir, embedder)
        if idx.embedding_model and idx.embedding_model != embedder.model_name:
            raise ConfigError(
                f"{index_dir} was built with embedding model {idx.embedding_model!r}, settings say "
                f"{embedder.model_name!r}: use the same model or a new --index-dir")
        return idx
    return NewsIndex(embedder, meta={"embedding_model": embedder.model_name})


def index_urls(urls: Iterable[str], settings: Settings | None = None, index_dir: str | Path | None = None,
               embedder: Embedder | None = None, progress: bool | None = None) -> IndexReport:
    """Scrape ``urls`` and add what they hold to the index in ``index_dir`` (default ``settings.index_dir``).

    Returns an :class:`IndexReport`. Raises :class:`RagNewsError` subclasses for problems that stop the
    whole run (no URLs, unwritable folder, no browser, corrupt index, another writer).
    """
    t0 = time.perf_counter()
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    urls = list(dict.fromkeys(u.strip() for u in urls if u and u.strip()))
    if not urls:
        raise RagNewsError("no URLs given")
    show = settings.show_progress() if progress is None else progress
    _check_writable(index_dir)
    embedder = embedder or Embedder(settings)
    report = IndexReport(index_dir=str(index_dir))
    with writer_lock(index_dir):
        idx = open_or_create(index_dir, embedder)  # validates before any scraping
        result = scrape(urls, settings, progress=show)
        failed: list[ScrapeError] = list(result.errors)
        fresh = []  # (article Document, record) to chunk and embed
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        seen_keys: set[str] = set()
        for page in result.pages:
            article = clean(page, settings)
            if article is None:
                failed.append(ScrapeError(url=page.metadata["source"], reason="no article text found on the page",
                                          status=page.metadata.get("status"), attempts=1))
                continue
            report.pages_ok += 1
            key = normalize_url(page.metadata.get("final_url") or page.metadata["source"])
            article.metadata["key"] = key
            row = {"url": page.metadata["source"], "key": key, "title": article.metadata.get("title")}
            if key in seen_keys:
                report.duplicates += 1
                report.pages.append({**row, "status": "duplicate-url", "chunks": 0})
                continue
            seen_keys.add(key)
            h = article.metadata["content_hash"]
            old = idx.articles.get(key)
            if old is not None and old.get("content_hash") == h:
                old.update(last_seen=now, fetched_at=article.metadata.get("fetched_at"))
                report.articles_unchanged += 1
                report.chunks += len(old["chunk_ids"])
                report.pages.append({**row, "status": "unchanged", "chunks": len(old["chunk_ids"])})
                continue
            twin = idx.find_by_hash(h)
            if twin is not None and twin != key:
                aliases = idx.articles[twin].setdefault("aliases", [])
                if key not in aliases:
                    aliases.append(key)
                idx.articles[twin]["last_seen"] = now
                report.duplicates += 1
                report.pages.append({**row, "status": f"duplicate of {twin}", "chunks": 0})
                continue
            record = {
                **article.metadata,
                "text": article.page_content,
                "first_seen": (old or {}).get("first_seen", now),
                "last_seen": now,
            }
            fresh.append((article, record, "changed" if old is not None else "new", row))
        report.pages_failed = [{"url": e.url, "reason": e.reason, "status": e.status} for e in failed]

        if report.pages_ok == 0:
            report.seconds = round(time.perf_counter() - t0, 3)
            report.chunks_total, report.articles_total = idx.chunk_count, len(idx)
            return report  # nothing to write; the index on disk is untouched

        if fresh:
            chunks = chunk([a for a, _, _, _ in fresh], embedder.tokenizer, settings,
                           max_seq_length=embedder.max_seq_length)
            vectors = embedder.embed_array([c.page_content for c in chunks], progress=show)
            report.chunks_embedded = len(chunks)
            by_key: dict[str, list[int]] = {}
            for i, c in enumerate(chunks):
                by_key.setdefault(c.metadata["key"], []).append(i)
            for article, record, status, row in fresh:
                rows = by_key.get(record["key"], [])
                if status == "changed":
                    report.chunks_removed += len(idx.articles[record["key"]].get("chunk_ids", []))
                    report.articles_changed += 1
                else:
                    report.articles_new += 1
                idx.upsert(record, [chunks[i] for i in rows], vectors[rows] if rows else vectors[:0])
                report.chunks += len(rows)
                report.pages.append({**row, "status": status, "chunks": len(rows)})
        idx.meta.setdefault("embedding_model", embedder.model_name)
        idx.save(index_dir)
        report.chunks_total, report.articles_total = idx.chunk_count, len(idx)
        if embedder.backend:
            report.embedding = {"model": embedder.model_name, "backend": embedder.backend, "device": embedder.device}
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def open_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> NewsIndex:
    """Open an index for search, with the embedding model it was built with."""
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    meta = NewsIndex.read_meta(index_dir)
    model = meta.get("embedding_model") or settings.embedding_model
    embedder = Embedder(settings.replace(embedding_model=model))
    return NewsIndex.load(index_dir, embedder)
