"""The ingestion pipeline: fetch (+ clean) -> chunk -> embed -> store, incrementally.

Entry points: :func:`update_index` (one incremental pass; the re-index job) and :func:`index_urls` (the
same for a list of URLs). For each URL: a new article is chunked, embedded and added; an article
whose cleaned text is unchanged (same content hash) is only touched (no re-embedding); a changed one has
its old chunks replaced; a page whose text is already indexed under another URL is recorded as an alias,
not stored twice. Failures are reported per URL and never indexed. The index on disk changes only when
the run succeeds for at least one page, and then atomically (see :mod:`rag_news.store`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from .chunk import chunk
from .embed import Embedder
from .errors import ConfigError, RagNewsError
from .fetch import FetchRequest, FetchResult, Fetched, check_url, fetch_batches
from .keep import front_page, unlike_the_article
from .sources import Target
from .settings import Settings
from .store import NewsIndex, open_store, read_meta
from .urls import normalize_url, shard_of

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
    skipped: list[dict] = field(default_factory=list)  # {url, reason}: not fetched (robots.txt, too old)
    rendered: int = 0          # pages opened in Chromium (host samples included)
    pages: list[dict] = field(default_factory=list)  # one row per page: url, title, status, chunks, render
    removed: list[dict] = field(default_factory=list)  # {url, reason}
    kept: list[dict] = field(default_factory=list)  # {url, reason}: stored text kept (a wall, a redirect, a source down)
    batches: int = 0           # batches of settings.commit_every articles the pass was fetched and embedded in
    commits: int = 0           # of them committed before the pass's end (readers saw them as they landed)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        return {"discovered": self.discovered, "new": self.articles_new, "changed": self.articles_changed,
                "unchanged": self.articles_unchanged, "removed": self.articles_removed,
                "failed": [{"url": f["url"], "reason": f["reason"]} for f in self.pages_failed],
                "chunks_embedded": self.chunks_embedded, "seconds": self.seconds,
                "not_modified": self.not_modified, "duplicates": self.duplicates, "skipped": self.skipped,
                "rendered": self.rendered, "kept": self.kept,
                "articles_total": self.articles_total, "chunks_total": self.chunks_total}


def _check_writable(index_dir: Path) -> None:
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=index_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise RagNewsError(f"cannot write to index folder {index_dir}: {e.strerror or e}") from None


def open_or_create(index_dir: Path, embedder: Embedder, settings: Settings | None = None) -> NewsIndex:
    """The index in ``index_dir`` for writing (created by its first commit if there is none yet)."""
    idx = open_store(settings or Settings(), embedder, create=True, index_dir=index_dir)
    if idx.embedding_model and idx.embedding_model != embedder.model_name:
        raise ConfigError(
            f"{index_dir} was built with embedding model {idx.embedding_model!r}, settings say "
            f"{embedder.model_name!r}: use the same model or a new --index-dir")
    check_dimension(idx, embedder, settings or Settings())
    return idx


def check_dimension(idx, embedder, settings: Settings) -> None:
    """An API embedder (one probe request) whose vectors would not fit the index: a clear error now, before
    any fetching. In-process models are checked when their vectors are staged (they load lazily)."""
    meta = getattr(idx, "meta", None) or {}
    if settings.embedding_backend not in ("openai", "mistral") or not meta.get("dim"):
        return
    if int(embedder.dim) != int(meta["dim"]):
        from .errors import EmbeddingMismatch

        raise EmbeddingMismatch(
            f"the index holds {meta['dim']}-dimensional vectors of {idx.embedding_model!r}; "
            f"{settings.embedding_backend} at {settings.embedding_base_url or 'its default endpoint'} returns "
            f"{embedder.dim} for {embedder.model_name!r}: an index never mixes models or dimensions")


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


def distinct_targets(targets: Iterable[Target]) -> tuple[dict[str, Target], int]:
    """``({normalised URL: target}, variants)``: the same article under tracking parameters, a #fragment or
    a trailing slash is fetched once."""
    by_key: dict[str, Target] = {}
    variants = 0
    for t in targets:
        url = (t.url or "").strip()
        if url:
            k = normalize_url(url) if check_url(url) is None else url
            variants += k in by_key
            by_key.setdefault(k, t)
    return by_key, variants


def update_index(targets: Iterable[Target], settings: Settings | None = None,
                 index_dir: str | Path | None = None, embedder: Embedder | None = None,
                 progress: bool | None = None, *, remove_stale: bool = False, sources: list | None = None,
                 now: datetime | None = None, wait: bool = False,
                 shard: tuple[int, int] | None = None, reach=None) -> IndexReport:
    """One incremental pass over ``targets`` (article URLs), committed to ``index_dir`` in batches of
    ``settings.commit_every`` articles, each atomically (a pass stopped part way keeps the batches it
    committed, and the next pass finds them known; readers see each batch as it lands).

    Nothing good is lost (:mod:`rag_news.keep`): a known article whose page now shows a much shorter text
    that shares little with it (a wall, a soft 404) keeps its stored text, as does one that now redirects
    to the site's front page or to another article; each is listed in ``report.kept``. With
    ``remove_stale``, an article's retention is counted up to the last pass that read its source
    successfully (at least one of its pages fetched), so a source that is down or blocking us loses
    nothing; an article removed for its age is fetched again when a source relists it with a date within
    the limit.

    ``shard``: ``(I, N)`` — only the targets, and the indexed articles, whose URL hashes to shard I of N
    (:func:`rag_news.urls.shard_of`), so N workers can pass over one (Milvus) index at once.
    ``reach``: where the crawler may connect (:class:`rag_news.fetch.reach.Reach`; the re-index job passes
    its sources' policy); None: the hosts of ``targets`` are the operator's named hosts.

    Phases: fetch (plain HTTP first, Chromium where a page needs it; known pages are asked for
    conditionally, and a 304 only touches their record) -> dedupe (unchanged content hash: touch; text
    already indexed under another URL: an alias) -> embed the new and changed articles -> commit, batch by
    batch (the next batch is fetched meanwhile) -> expire (with ``remove_stale``: articles not seen for
    ``settings.retention_days``, or older than their source's ``max_age_days``, else
    ``settings.max_age_days``) -> commit. ``now`` is the pass's clock (tests move it forward).
    """
    t0 = time.perf_counter()
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    by_key, variants = distinct_targets(targets)
    if shard is not None:
        by_key = {k: t for k, t in by_key.items() if shard_of(k, shard[1]) == shard[0]}
    if not by_key and not remove_stale and shard is None:
        raise RagNewsError("no URLs given")
    _check_writable(index_dir)
    embedder = embedder or Embedder(settings)
    report = IndexReport(index_dir=str(index_dir), discovered=len(by_key), duplicates=variants)
    idx = open_or_create(index_dir, embedder, settings)  # validates before any fetching
    with idx.writer(wait=wait, shard=shard):
        run = _Pass(idx, settings, report, now or datetime.now(timezone.utc), sources or [],
                    settings.show_progress() if progress is None else progress, shard)
        run.reach = reach
        wanted = run.skip_expired(by_key)
        with contextlib.closing(run.fetch_batches(wanted)) as batches:  # a failure stops the fetching too
            for batch, result in batches:  # each batch committed before the next is worked on
                run.embed(run.dedupe(result, batch), embedder)
                run.commit_batch()
        if remove_stale:
            run.expire()
        run.note_sources()
        run.commit(embedder)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def host_turns(urls: list[str]) -> list[int]:
    """Positions of ``urls`` taken in turns across their hosts (``host:port``): the first of each host, then
    the second of each, ...; each host's own order kept. Cut into batches, this gives every batch each host's
    share, so a batch is fetched from many hosts at once instead of waiting out one host's Crawl-delay."""
    from itertools import zip_longest
    from urllib.parse import urlsplit

    queues: dict[str, list[int]] = {}
    for i, url in enumerate(urls):
        queues.setdefault(urlsplit(url).netloc.lower(), []).append(i)
    return [i for turn in zip_longest(*queues.values()) for i in turn if i is not None]


class _Pass:
    """The phases of one :func:`update_index` pass, sharing the index, the settings and the report."""

    def __init__(self, idx: NewsIndex, settings: Settings, report: IndexReport, now: datetime, sources: list,
                 progress: bool, shard: tuple[int, int] | None = None):
        self.idx, self.settings, self.report, self.now, self.shard = idx, settings, report, now, shard
        self.stamp = _iso(now)
        self.max_age = {s.name: s.max_age_days for s in sources if getattr(s, "max_age_days", None)}
        self.progress = progress
        self.staged = 0  # records touched, replaced or removed: nothing to commit when 0
        self.new_aliases: dict[str, list[str]] = {}  # article new in this pass -> copies of it seen in this pass
        self.configured = {s.name for s in sources if getattr(s, "name", None)}
        self.sources_read: set[str] = set()  # sources with at least one page read in this pass
        self.walls: dict[str, int] = {}
        self.seen_now: set[str] = set()  # articles whose last_seen this pass moves (staged, not yet committed)
        self.seen_keys: set[str] = set()  # final URLs read in this pass (a second page landing on one: a duplicate)
        self.notes = _NotesBuffer(idx)  # the fetching thread's render decisions, staged at each commit

    def _row(self, url: str, key: str | None, title: str | None, status: str, chunks: int, **how) -> None:
        """One line of the report's per-page table (``how``: render / render_reason and extraction /
        extraction_reason, for fetched pages)."""
        self.report.pages.append({"url": url, "key": key, "title": title, "status": status, "chunks": chunks, **how})

    def _too_old(self, published: str | None, source: str | None) -> float | None:
        """The age limit ``published`` is past (None when within it, or undated)."""
        limit = self.max_age.get(source) or self.settings.max_age_days
        born = _when(published)
        return limit if limit and born and self.now - born > timedelta(days=limit) else None

    def skip_expired(self, by_key: dict[str, Target]) -> dict[str, Target]:
        """Drop targets already past their maximum age, or removed for their age before: fetching them
        would only add what the next expiry removes again."""
        kept = {}
        for k, t in by_key.items():
            gone = self.idx.expired_reason(k)
            limit = self._too_old(t.published, t.source)
            if gone and t.published and not limit:
                gone = None  # relisted with a date within the limit (the one it was removed for was misread)
            if gone or limit:
                why = gone or f"older than {limit:g} days"
                self._row(t.url, k, None, f"skipped: {why}", 0)
                self.report.skipped.append({"url": t.url, "reason": why})
                continue
            kept[k] = t
        return kept

    def fetch_batches(self, by_key: dict[str, Target]):
        """``(targets, FetchResult)`` for each batch of ``settings.commit_every`` targets (plain HTTP first,
        Chromium where needed; the next batch is fetched while this one is embedded); known pages are
        asked for conditionally with their validators, so an unchanged page costs one 304."""
        requests = []
        for k, t in by_key.items():
            key = self.idx.key_for_url(k)
            rec = self.idx.article(key) if key else None
            etag = lm = None
            if rec and self.settings.revalidate:
                etag, lm = rec.get("etag"), rec.get("last_modified") if _strong_date(rec) else None
            requests.append(FetchRequest(t.url, etag, lm))
        order = host_turns([r.url for r in requests])  # a batch holds every host's share, not one host's run
        items = list(by_key.items())
        requests, targets = [requests[i] for i in order], [items[i] for i in order]
        size = self.settings.commit_every or len(requests) or 1
        groups = [targets[i:i + size] for i in range(0, len(requests), size)]
        batches = [requests[i:i + size] for i in range(0, len(requests), size)]
        self.report.batches = len(batches)
        if not batches:
            return
        results = fetch_batches(batches, self.settings, notes=self.notes, progress=self.progress,
                                reach=getattr(self, "reach", None))
        with contextlib.closing(results):
            for group, result in zip(groups, results):
                yield dict(group), result

    def commit_batch(self) -> None:
        """Commit what this batch staged (its render decisions too), unless it is the pass's only batch:
        then the pass's one commit, after expiry, writes it."""
        if self.report.batches > 1 and (self.staged or self.notes.pending):
            self.notes.flush()
            self.idx.commit()
            self.staged, self.new_aliases = 0, {}
            self.report.commits += 1
            if self.progress:
                print(f"committed batch {self.report.commits} of {self.report.batches} "
                      f"({len(self.idx)} articles in the index)", file=sys.stderr, flush=True)

    def dedupe(self, result: FetchResult, by_key: dict[str, Target]) -> list[tuple]:
        """Decide what each fetched article is: not modified, unchanged, a copy of another article, too old,
        or new / changed (returned, with its record, for embedding)."""
        target_of = {t.url: t for t in by_key.values()}
        fresh, seen_keys, hashes = [], self.seen_keys, {}
        self._find_walls(result)
        for f in result.fetched:
            target = target_of.get(f.url) or Target(url=f.url)
            if target.source:
                self.sources_read.add(target.source)
            if self._redirected_away(f, target):
                continue
            if f.not_modified:
                self._not_modified(target)
                continue
            self.report.pages_ok += 1
            key = normalize_url(f.meta.get("final_url") or f.url)
            if key in seen_keys:
                self.report.duplicates += 1
                self._row(target.url, key, f.article.metadata.get("title"), "duplicate-url", 0)
                continue
            seen_keys.add(key)
            item = self._classify(f, target, key, hashes)
            if item is not None:
                fresh.append(item)
        self.report.pages_failed += [{"url": e.url, "reason": e.reason, "status": e.status} for e in result.errors]
        self.report.skipped += [{"url": e.url, "reason": e.reason} for e in result.skipped]
        for e in result.skipped:
            self._row(e.url, None, None, f"skipped: {e.reason}", 0)
        self.report.rendered += result.rendered
        return fresh

    def _keep(self, url: str, key: str | None, title: str | None, why: str, **how) -> None:
        """The stored article stays as it is (``why`` says what the page shows instead)."""
        self.report.kept.append({"url": url, "reason": f"kept: {why}"})
        self._row(url, key, title, f"kept: {why}", 0, **how)

    def _redirected_away(self, f: Fetched, target: Target) -> bool:
        """A page that redirected to its site's front page (never indexed), or a known article that now
        redirects to another article (the other one is read under its own URL; this one keeps its text)."""
        final = f.meta.get("final_url")
        if not final or normalize_url(final) == normalize_url(f.url):
            return False
        known = self.idx.key_for_url(normalize_url(target.url))
        if front_page(f.url, final):
            if known:
                self._keep(target.url, known, None, "the page now redirects to the site's front page")
            else:
                self.report.skipped.append({"url": target.url, "reason": "redirects to the site's front page"})
                self._row(target.url, None, None, "skipped: redirects to the site's front page", 0)
            return True
        other = self.idx.key_for_url(normalize_url(final))
        if known and other != known:
            self._keep(target.url, known, None, f"the page now redirects to {final}")
            return f.not_modified  # a 304 for the other page says nothing about this one; a page is read below
        return False

    def _unlike(self, key: str, text: str, content_hash: str) -> str | None:
        """Why a known article's new text must not replace its stored one (None: it is a new version)."""
        others = self.walls.get(content_hash, 0) - 1
        if others > 0:  # several known articles turned into one same new page in one pass: a wall
            return f"the page now shows the same text as {others} other known article(s)"
        stored = self.idx.article_text(key) or ""
        return unlike_the_article(text, stored, self.settings.keep_max_ratio, self.settings.keep_min_shared)

    def _find_walls(self, result: FetchResult) -> None:
        """Texts that several known, different articles show at once in this pass (a wall, a soft 404
        served on many URLs): {content hash: how many}."""
        counts: dict[str, int] = {}
        for f in result.fetched:
            if f.article is None:
                continue
            key = normalize_url(f.meta.get("final_url") or f.url)
            old = self.idx.article(key)
            h = f.article.metadata.get("content_hash")
            if old is not None and old.get("content_hash") != h:
                counts[h] = counts.get(h, 0) + 1
        self.walls = {h: n for h, n in counts.items() if n > 1}

    def _not_modified(self, target: Target) -> None:
        rec = self.idx.article(self.idx.key_for_url(target.url))
        self.idx.touch(rec["key"], last_seen=self.stamp, **({"source_name": target.source} if target.source else {}))
        self.seen_now.add(rec["key"])
        self.staged += 1
        self.report.pages_ok += 1
        self.report.articles_unchanged += 1
        self.report.not_modified += 1
        self._row(target.url, rec["key"], rec.get("title"), "not modified", len(rec["chunk_ids"]))

    def _classify(self, f: Fetched, target: Target, key: str, hashes: dict[str, str]) -> tuple | None:
        article = f.article
        h = article.metadata["content_hash"]
        title = article.metadata.get("title")
        validators = {"etag": f.meta.get("etag"), "last_modified": f.meta.get("last_modified")}
        how = {"render": f.render, "render_reason": f.render_reason,  # how the page was read, and cleaned
               "extraction": article.metadata.get("extraction"),
               "extraction_reason": article.metadata.get("extraction_reason")}
        old = self.idx.article(key)
        source = {"source_name": target.source} if target.source else {}
        if old is not None and old.get("content_hash") == h:
            self.idx.touch(key, last_seen=self.stamp, fetched_at=article.metadata.get("fetched_at"), **validators,
                           **source)
            self.seen_now.add(key)
            self.staged += 1
            self.report.articles_unchanged += 1
            self.report.chunks += len(old["chunk_ids"])
            self._row(target.url, key, title, "unchanged", len(old["chunk_ids"]), **how)
            return None
        twin = hashes.get(h) or self.idx.find_by_hash(h)
        why = self._unlike(key, article.page_content, h) if old is not None else None
        if why:
            self.idx.touch(key, last_seen=self.stamp, **source)  # listed and reachable: not stale
            self.seen_now.add(key)
            self.staged += 1
            self._keep(target.url, key, title, why, **how)
            return None
        if twin is not None and twin != key:
            self._alias(twin, key, old)
            self._row(target.url, key, title, f"duplicate of {twin}", 0, **how)
            return None
        published = target.published or article.metadata.get("published")  # the feed's date is explicit
        limit = self._too_old(published, target.source) if old is None else None
        if limit:
            self._row(target.url, key, title, f"skipped: older than {limit:g} days", 0, **how)
            return None
        hashes[h] = key
        article.metadata.update(key=key, published=published)
        record = {**article.metadata, "text": article.page_content, "published": published,
                  "source_name": target.source, **validators, "render": f.render,
                  "first_seen": (old or {}).get("first_seen", self.stamp), "last_seen": self.stamp}
        return article, record, "changed" if old is not None else "new", target.url, how

    def _alias(self, twin: str, key: str, old: dict | None) -> None:
        """``key``'s text is already indexed as ``twin``: record the URL as an alias of ``twin``; a known
        article whose text now equals ``twin``'s is removed (its old chunks would otherwise stay live)."""
        if old is not None:
            self.report.chunks_removed += self.idx.remove(key)
            self.report.articles_removed += 1
            self.report.removed.append({"url": old.get("url", key), "reason": f"now a copy of {twin}"})
        rec = self.idx.article(twin)
        if rec is not None:  # else: the twin is new in this very pass; its record is staged with this alias
            aliases = list(dict.fromkeys([*(rec.get("aliases") or []), key]))
            self.idx.touch(twin, aliases=aliases, last_seen=self.stamp)
            self.seen_now.add(twin)
        else:
            self.new_aliases.setdefault(twin, []).append(key)
        self.staged += 1
        self.report.duplicates += 1

    def embed(self, fresh: list[tuple], embedder: Embedder) -> None:
        """Chunk and embed new and changed articles, and stage them."""
        if not fresh:
            return
        chunks = chunk([a for a, *_ in fresh], embedder.tokenizer, self.settings,
                       max_seq_length=embedder.max_seq_length)
        vectors = embedder.embed_array([c.page_content for c in chunks], progress=self.progress)
        self.report.chunks_embedded += len(chunks)
        rows_by_key: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            rows_by_key.setdefault(c.metadata["key"], []).append(i)
        for article, record, status, url, how in fresh:
            rows = rows_by_key.get(record["key"], [])
            if status == "changed":
                self.report.chunks_removed += len(self.idx.article(record["key"])["chunk_ids"])
                self.report.articles_changed += 1
            else:
                self.report.articles_new += 1
            if record["key"] in self.new_aliases:
                record["aliases"] = [*(record.get("aliases") or []), *self.new_aliases[record["key"]]]
            self.idx.upsert(record, [chunks[i] for i in rows], vectors[rows] if rows else vectors[:0])
            self.seen_now.add(record["key"])
            self.staged += 1
            self.report.chunks += len(rows)
            self._row(url, record["key"], record.get("title"), status, len(rows), **how)
        if self.settings.stories:  # each new / changed article joins a story (rag_news.stories)
            from .stories import StoryParams, assign_many

            assign_many(self.idx, [(record, article.page_content) for article, record, *_ in fresh], embedder,
                        StoryParams.from_settings(self.settings))

    def _clock(self, source: str | None) -> datetime:
        """The time retention is counted up to for an article of ``source``: now, unless ``source`` is a
        configured source not read in this pass; then the last pass that read it (None: never recorded)."""
        if source not in self.configured or source in self.sources_read:
            return self.now
        note = self.idx.host_note(f"source:{source}") or {}
        return _when(note.get("last_read")) or datetime.min.replace(tzinfo=timezone.utc)

    def note_sources(self) -> None:
        """Stage, for each configured source read in this pass, the time of this pass."""
        for name in sorted(self.configured & self.sources_read):
            self.idx.put_host_note(f"source:{name}", {"last_read": self.stamp})
            self.staged += 1

    def _expiry_candidates(self) -> list[dict]:
        """The records :meth:`expire` looks at: last seen before the retention period or published before the
        shortest maximum age, read through the store's date indexes (two days of margin, so dates written
        with any UTC offset are in; :meth:`expire` decides on each exactly), not every record."""
        def bound(days: float | None) -> str | None:
            return None if days is None else (self.now - timedelta(days=days) + timedelta(days=2)).date().isoformat()

        limits = [d for d in [self.settings.max_age_days, *self.max_age.values()] if d]
        return self.idx.expiry_candidates(bound(self.settings.retention_days), bound(min(limits, default=None)))

    def expire(self) -> None:
        """Stage the removal of articles past the retention period (counted up to the last pass that read
        their source) or their maximum age."""
        retention = self.settings.retention_days
        for rec in self._expiry_candidates():
            if self.shard and shard_of(rec["key"], self.shard[1]) != self.shard[0]:
                continue  # another worker's article
            seen = self.now if rec["key"] in self.seen_now else _when(rec.get("last_seen")) or _when(rec.get("first_seen"))
            stale = retention is not None and seen and self.now - seen > timedelta(days=retention)
            if stale and self._clock(rec.get("source_name")) - seen <= timedelta(days=retention):
                self.report.kept.append({"url": rec.get("url", rec["key"]), "reason": (
                    f"kept: source {rec.get('source_name')} has not been read successfully since the article was seen")})
                stale = False
            if stale:
                reason = f"not seen for more than {retention:g} days"
            else:
                limit = self.max_age.get(rec.get("source_name")) or self.settings.max_age_days
                born = _when(rec.get("published")) or _when(rec.get("first_seen"))
                if not (limit and born and self.now - born > timedelta(days=limit)):
                    continue
                reason = f"older than {limit:g} days"
                self.idx.mark_expired(rec["key"], reason)
            self.report.chunks_removed += self.idx.remove(rec["key"])
            self.report.articles_removed += 1
            self.report.removed.append({"url": rec.get("url", rec["key"]), "reason": reason})
            self.staged += 1

    def commit(self, embedder: Embedder) -> None:
        if self.staged or self.notes.pending:
            self.notes.flush()
            self.idx.commit()
        self.report.chunks_total, self.report.articles_total = self.idx.chunk_count, len(self.idx)
        if embedder.backend:
            self.report.embedding = {"model": embedder.model_name, "backend": embedder.backend,
                                     "device": embedder.device}


class _NotesBuffer:
    """Host notes for the fetching thread: read through to the index, written here until :meth:`flush`
    stages them in the index's pass (from the pass's own thread, between commits)."""

    def __init__(self, idx):
        self.idx, self._lock, self._new = idx, threading.Lock(), {}

    @property
    def pending(self) -> bool:
        return bool(self._new)

    def host_note(self, host: str) -> dict | None:
        with self._lock:
            if host in self._new:
                return self._new[host]
        return self.idx.host_note(host)

    def put_host_note(self, host: str, note: dict) -> None:
        with self._lock:
            self._new[host] = note

    def flush(self) -> None:
        with self._lock:
            new, self._new = self._new, {}
        for host, note in new.items():
            self.idx.put_host_note(host, note)


def _strong_date(rec: dict) -> bool:
    """A Last-Modified within a second of when the page was fetched may hide a later change in the same
    second (RFC 9110 calls it weak): then it is not used as a validator."""
    from .fetch.http import http_date

    lm = http_date(rec.get("last_modified"))  # aware; "-0000" and zone-less dates read as UTC
    fetched = _when(rec.get("fetched_at"))
    return lm is not None and fetched is not None and (fetched - lm).total_seconds() > 1


def open_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> NewsIndex:
    """Open an index for search, with the embedding model it was built with."""
    settings = settings or Settings.load()
    index_dir = Path(index_dir or settings.index_dir)
    meta = read_meta(settings, index_dir)
    model = meta.get("embedding_model") or settings.embedding_model
    embedder = Embedder(settings.replace(embedding_model=model))
    return open_store(settings, embedder, index_dir=index_dir)
