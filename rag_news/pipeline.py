"""The ingestion pipeline: scrape -> clean -> chunk -> embed -> index, incrementally.

Entry points: :func:`update_index` (one incremental pass; the re-index job) and :func:`index_urls` (the
same for a list of URLs). For each URL: a new article is chunked, embedded and added; an article
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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from .chunk import chunk
from .clean import clean
from .embed import Embedder
from .errors import ConfigError, RagNewsError
from .scrape import ScrapeError, check_url, not_modified, scrape
from .sources import Target
from .settings import Settings
from .store import NewsIndex, writer_lock
from .urls import normalize_url

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What one indexing pass did. ``as_dict()`` is ``index --json``; ``summary()`` is ``reindex --json``."""

    index_dir: str
    discovered: int = 0        # distinct article URLs asked for (after URL normalisation)
    pages_ok: int = 0
    pages_failed: list[dict] = field(default_factory=list)
    articles_new: int = 0
    articles_changed: int = 0
    articles_unchanged: int = 0
    not_modified: int = 0      # of the unchanged: confirmed by HTTP 304, so not rendered again
    articles_removed: int = 0
    duplicates: int = 0
    chunks: int = 0            # chunks of the pages indexed in this run
    chunks_embedded: int = 0   # chunks actually embedded (0 for unchanged pages)
    chunks_removed: int = 0
    chunks_total: int = 0      # chunks in the index after the run
    articles_total: int = 0
    seconds: float = 0.0
    embedding: dict = field(default_factory=dict)
    pages: list[dict] = field(default_factory=list)  # one row per page: url, title, status, chunks
    removed: list[dict] = field(default_factory=list)  # {url, reason}

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        return {"discovered": self.discovered, "new": self.articles_new, "changed": self.articles_changed,
                "unchanged": self.articles_unchanged, "removed": self.articles_removed,
                "failed": [{"url": f["url"], "reason": f["reason"]} for f in self.pages_failed],
                "chunks_embedded": self.chunks_embedded, "seconds": self.seconds,
                "not_modified": self.not_modified, "duplicates": self.duplicates,
                "articles_total": self.articles_total, "chunks_total": self.chunks_total}


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


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def index_urls(urls: Iterable[str], settings: Settings | None = None, index_dir: str | Path | None = None,
               embedder: Embedder | None = None, progress: bool | None = None) -> IndexReport:
    """Scrape ``urls`` and add what they hold to the index in ``index_dir`` (default ``settings.index_dir``).

    The one-shot form of :func:`update_index` (nothing is removed). Raises :class:`RagNewsError` subclasses
    for problems that stop the whole run (no URLs, unwritable folder, no browser, corrupt index, another
    writer).
    """
    targets = [Target(url=u.strip()) for u in urls if u and u.strip()]
    return update_index(targets, settings, index_dir=index_dir, embedder=embedder, progress=progress)


def update_index(targets: Iterable[Target], settings: Settings | None = None,
                 index_dir: str | Path | None = None, embedder: Embedder | None = None,
                 progress: bool | None = None, *, remove_stale: bool = False, sources: list | None = None,
                 now: datetime | None = None, wait: bool = False) -> IndexReport:
    """One incremental pass over ``targets`` (article URLs), written atomically to ``index_dir``.

    Known articles whose server answers a conditional request with 304 are only touched; the rest are
    rendered, cleaned and compared by content hash: new -> chunk, embed, add; unchanged -> touch
    ``last_seen``, no embedding; changed -> old chunks replaced. With ``remove_stale``, articles not seen
    for ``settings.retention_days``, or older than their source's ``max_age_days`` (else
    ``settings.max_age_days``), are removed. ``now`` is the pass's clock (tests move it forward).
    """
    t0 = time.perf_counter()
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    now = now or datetime.now(timezone.utc)
    stamp = _iso(now)
    by_key: dict[str, Target] = {}
    variants = 0  # the same article under tracking parameters, a #fragment, a trailing slash: fetched once
    for t in targets:
        if t.url and t.url.strip():
            k = normalize_url(t.url.strip()) if check_url(t.url.strip()) is None else t.url.strip()
            if k in by_key:
                variants += 1
            by_key.setdefault(k, t)
    if not by_key and not remove_stale:
        raise RagNewsError("no URLs given")
    show = settings.show_progress() if progress is None else progress
    _check_writable(index_dir)
    embedder = embedder or Embedder(settings)
    report = IndexReport(index_dir=str(index_dir), discovered=len(by_key), duplicates=variants)
    with writer_lock(index_dir, wait=wait):
        idx = open_or_create(index_dir, embedder)  # validates before any scraping
        lookup: dict[str, str] = {}  # any known URL form -> article key
        for key, rec in idx.articles.items():
            for u in (key, rec.get("source"), rec.get("url"), *rec.get("aliases", [])):
                if u:
                    lookup.setdefault(normalize_url(u), key)
        touched = 0
        # 1. known pages the server says are unchanged (HTTP 304): no browser, no embedding
        candidates = []
        for k, t in by_key.items():
            key = lookup.get(k)
            rec = idx.articles.get(key) if key else None
            if rec and settings.revalidate:
                lm = rec.get("last_modified") if _strong_date(rec) else None
                if rec.get("etag") or lm:
                    candidates.append((t.url, rec.get("etag"), lm))
        same = not_modified(candidates, settings) if candidates else set()
        to_scrape = []
        for k, t in by_key.items():
            if t.url in same:
                rec = idx.articles[lookup[k]]
                rec["last_seen"] = stamp
                if t.source:
                    rec["source_name"] = t.source
                report.pages_ok += 1
                report.articles_unchanged += 1
                report.not_modified += 1
                touched += 1
                report.pages.append({"url": t.url, "key": lookup[k], "title": rec.get("title"),
                                     "status": "not modified", "chunks": len(rec["chunk_ids"])})
            else:
                to_scrape.append(t)
        if to_scrape:
            result = scrape([t.url for t in to_scrape], settings, progress=show)
            pages, failed = result.pages, list(result.errors)
        else:
            pages, failed = [], []
        target_of = {t.url: t for t in to_scrape}
        fresh = []  # (article Document, record, status, row) to chunk and embed
        seen_keys: set[str] = set()
        for page in pages:
            article = clean(page, settings)
            if article is None:
                failed.append(ScrapeError(url=page.metadata["source"], reason="no article text found on the page",
                                          status=page.metadata.get("status"), attempts=1))
                continue
            report.pages_ok += 1
            target = target_of.get(page.metadata["source"]) or Target(url=page.metadata["source"])
            key = normalize_url(page.metadata.get("final_url") or page.metadata["source"])
            article.metadata["key"] = key
            row = {"url": page.metadata["source"], "key": key, "title": article.metadata.get("title")}
            if key in seen_keys:
                report.duplicates += 1
                report.pages.append({**row, "status": "duplicate-url", "chunks": 0})
                continue
            seen_keys.add(key)
            validators = {"etag": page.metadata.get("etag"), "last_modified": page.metadata.get("last_modified")}
            h = article.metadata["content_hash"]
            old = idx.articles.get(key)
            if old is not None and old.get("content_hash") == h:
                old.update(last_seen=stamp, fetched_at=article.metadata.get("fetched_at"), **validators)
                if target.source:
                    old["source_name"] = target.source
                touched += 1
                report.articles_unchanged += 1
                report.chunks += len(old["chunk_ids"])
                report.pages.append({**row, "status": "unchanged", "chunks": len(old["chunk_ids"])})
                continue
            twin = idx.find_by_hash(h)
            if twin is not None and twin != key:
                aliases = idx.articles[twin].setdefault("aliases", [])
                if key not in aliases:
                    aliases.append(key)
                idx.articles[twin]["last_seen"] = stamp
                touched += 1
                report.duplicates += 1
                report.pages.append({**row, "status": f"duplicate of {twin}", "chunks": 0})
                continue
            record = {
                **article.metadata,
                "text": article.page_content,
                "published": article.metadata.get("published") or target.published,
                "source_name": target.source,
                **validators,
                "first_seen": (old or {}).get("first_seen", stamp),
                "last_seen": stamp,
            }
            fresh.append((article, record, "changed" if old is not None else "new", row))
        report.pages_failed = [{"url": e.url, "reason": e.reason, "status": e.status} for e in failed]

        removals = _stale(idx, settings, sources or [], now) if remove_stale else []
        if report.pages_ok == 0 and not touched and not removals:
            report.seconds = round(time.perf_counter() - t0, 3)
            report.chunks_total, report.articles_total = idx.chunk_count, len(idx)
            return report  # nothing to write; the index on disk is untouched

        if fresh:
            chunks = chunk([a for a, _, _, _ in fresh], embedder.tokenizer, settings,
                           max_seq_length=embedder.max_seq_length)
            vectors = embedder.embed_array([c.page_content for c in chunks], progress=show)
            report.chunks_embedded = len(chunks)
            rows_by_key: dict[str, list[int]] = {}
            for i, c in enumerate(chunks):
                rows_by_key.setdefault(c.metadata["key"], []).append(i)
            for article, record, status, row in fresh:
                rows = rows_by_key.get(record["key"], [])
                if status == "changed":
                    report.chunks_removed += len(idx.articles[record["key"]].get("chunk_ids", []))
                    report.articles_changed += 1
                else:
                    report.articles_new += 1
                idx.upsert(record, [chunks[i] for i in rows], vectors[rows] if rows else vectors[:0])
                report.chunks += len(rows)
                report.pages.append({**row, "status": status, "chunks": len(rows)})
        for key, reason in removals:
            if key in idx.articles:
                url = idx.articles[key].get("url", key)
                report.chunks_removed += idx.remove(key)
                report.articles_removed += 1
                report.removed.append({"url": url, "reason": reason})
        idx.meta.setdefault("embedding_model", embedder.model_name)
        idx.save(index_dir)
        report.chunks_total, report.articles_total = idx.chunk_count, len(idx)
        if embedder.backend:
            report.embedding = {"model": embedder.model_name, "backend": embedder.backend, "device": embedder.device}
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _strong_date(rec: dict) -> bool:
    """A Last-Modified within a second of when the page was fetched may hide a later change in the same
    second (RFC 9110 calls it weak): then it is not used as a validator."""
    from email.utils import parsedate_to_datetime

    try:
        lm = parsedate_to_datetime(rec["last_modified"])
    except (KeyError, TypeError, ValueError):
        return False
    fetched = _when(rec.get("fetched_at"))
    return fetched is not None and (fetched - lm).total_seconds() > 1


def _stale(idx: NewsIndex, settings: Settings, sources: list, now: datetime) -> list[tuple[str, str]]:
    """``(key, reason)`` for articles past the retention period or their source's maximum age."""
    max_age = {s.name: s.max_age_days for s in sources if getattr(s, "max_age_days", None)}
    out = []
    for key, rec in idx.articles.items():
        seen = _when(rec.get("last_seen")) or _when(rec.get("first_seen"))
        if settings.retention_days is not None and seen and now - seen > timedelta(days=settings.retention_days):
            out.append((key, f"not seen for more than {settings.retention_days:g} days"))
            continue
        age_limit = max_age.get(rec.get("source_name")) or settings.max_age_days
        born = _when(rec.get("published")) or _when(rec.get("first_seen"))
        if age_limit and born and now - born > timedelta(days=age_limit):
            out.append((key, f"older than {age_limit:g} days"))
    return out


def open_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> NewsIndex:
    """Open an index for search, with the embedding model it was built with."""
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    meta = NewsIndex.read_meta(index_dir)
    model = meta.get("embedding_model") or settings.embedding_model
    embedder = Embedder(settings.replace(embedding_model=model))
    return NewsIndex.load(index_dir, embedder)
