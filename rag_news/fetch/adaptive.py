"""Static first, Chromium where a page needs it: the fetch stage's decisions.

For every URL the served HTML is fetched over plain HTTP (:mod:`~rag_news.fetch.http`) and cleaned. A page
is rendered in Chromium (:mod:`~rag_news.fetch.render`) when

* ``render = "always"``; or
* its served HTML fails a check: too little article text, a page that asks for JavaScript, an app shell
  (:func:`static_problem`); or
* its host is known to need it. Per host the first ``render_sample`` pages are read both ways and their
  cleaned texts compared (:func:`compare`); the host is rendered from then on when rendering adds article
  text on most of them. The decision, with its evidence and date, is kept in the index's host notes and
  taken again after ``render_recheck_days``.

A rendered page whose text lost most of the served article (a bot wall or a "not available" notice that
scripts put in place, a redirect to an unreachable origin) keeps the served HTML's article instead.
PDF responses become articles through :mod:`~rag_news.fetch.pdf`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator, Protocol

from langchain_core.documents import Document

from ..clean import clean
from ..progress import progress_bar
from ..settings import Settings
from .base import FetchError, Fetched, FetchRequest, FetchResult, check_url, host_of
from .http import PDF_TYPES, HttpFetcher, RawPage
from .pdf import PdfReaderPool
from .polite import HostLimiter
from .reach import Reach

NOTE_VERSION = 1
_JS_REQUIRED = re.compile(
    r"(enable|turn on|activate|allow)\s+javascript|javascript\s+(is\s+)?(required|disabled|(must|needs to) be "
    r"(enabled|turned on))|requires?\s+javascript|without\s+javascript|javascript\s+is\s+not\s+available", re.I)
_APP_SHELL = re.compile(r"<div[^>]+id=[\"'](root|app|__next|__nuxt|svelte|main-app)[\"'][^>]*>\s*</div>", re.I)
_WORD = re.compile(r"\w+", re.UNICODE)


class HostNotes(Protocol):
    """Where render decisions are kept (the index's host notes; a dict-backed one when there is no index)."""

    def host_note(self, host: str) -> dict | None: ...
    def put_host_note(self, host: str, note: dict) -> None: ...


class MemoryNotes:
    def __init__(self):
        self.notes: dict[str, dict] = {}

    def host_note(self, host: str) -> dict | None:
        return self.notes.get(host)

    def put_host_note(self, host: str, note: dict) -> None:
        self.notes[host] = note


@dataclass
class _Page:
    """One URL on its way through: the served page, its article, and what rendering gave."""

    request: FetchRequest
    raw: RawPage | None = None
    static: Document | None = None
    problem: str | None = None        # why the served HTML is not enough (None: it is)
    rendered: Document | None = None  # the rendered page's article
    render_tried: bool = False         # Chromium loaded the page (its article may still be None)
    render_error: FetchError | None = None
    outcome: Fetched | FetchError | None = None


# ------------------------------------------------------------------------------------------ checks
def static_problem(html: str, article: Document | None, min_words: int) -> str | None:
    """Why the served HTML cannot stand for the article, or None."""
    words = len(article.page_content.split()) if article is not None else 0
    if words < min_words:
        return f"the served HTML holds too little article text ({words} words)"
    if words < 2 * min_words:
        visible = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
        if _JS_REQUIRED.search(re.sub(r"<[^>]+>", " ", visible)):
            return "the served page asks for JavaScript"
        if _APP_SHELL.search(html):
            return "the served page is an application shell"
    return None


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + 4]) for i in range(max(len(words) - 3, 0))}


def compare(static: Document | None, rendered: Document | None, settings: Settings) -> dict:
    """How the rendered article differs from the served one: ``kept`` (share of the served text's word
    4-grams the rendered text still has), ``added`` (rendered 4-grams the served text lacks, ~ new words)
    and the verdict: ``adds`` (rendering adds article text), ``loses`` (rendering lost the article) or
    ``same``."""
    s = _shingles(static.page_content) if static is not None else set()
    r = _shingles(rendered.page_content) if rendered is not None else set()
    kept = len(s & r) / len(s) if s else 1.0
    added = len(r - s)
    if s and kept < settings.render_min_kept:
        verdict = "loses"
    elif added >= settings.render_min_added:
        verdict = "adds"
    else:
        verdict = "same"
    return {"verdict": verdict, "kept": round(kept, 3), "added": added,
            "static_words": len(static.page_content.split()) if static is not None else 0,
            "rendered_words": len(rendered.page_content.split()) if rendered is not None else 0}


def host_decision(evidence: list[dict]) -> str:
    """``render`` when rendering adds article text on more than half of the sampled pages, else ``static``."""
    adds = sum(e["verdict"] == "adds" for e in evidence)
    return "render" if evidence and adds > len(evidence) / 2 else "static"


def _note_is_fresh(note: dict | None, settings: Settings, now: datetime) -> bool:
    if not note or note.get("version") != NOTE_VERSION or note.get("decision") not in ("render", "static"):
        return False
    try:
        decided = datetime.fromisoformat(note["decided"])
    except (KeyError, TypeError, ValueError):
        return False
    return now - decided < timedelta(days=settings.render_recheck_days)


def _why(host: str, note: dict) -> str:
    adds = sum(e["verdict"] == "adds" for e in note.get("evidence", []))
    need = "needs" if note["decision"] == "render" else "does not need"
    return (f"{host} {need} rendering (it added article text on {adds} of {len(note.get('evidence', []))} "
            f"pages sampled {note['decided'][:10]})")


# ------------------------------------------------------------------------------------------ the run
class _Run:
    """One fetch: static pass over every URL, then the renders the checks and host decisions ask for."""

    def __init__(self, settings: Settings, notes: HostNotes, progress: bool, reach: Reach):
        self.settings, self.notes, self.progress, self.reach = settings, notes, progress, reach
        self.limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_interval, settings.autothrottle,
                                   budget=settings.max_requests_per_host)
        # cleaning runs beside the event loop, one page at a time: trafilatura shares lxml parsers between
        # calls, and two threads cleaning at once crashed the process ("double free or corruption")
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pdfs = PdfReaderPool(settings.pdf_timeout, settings.max_pdf_pages)  # a child process, bounded
        self.browser = None
        self.rendered = 0
        self.now = datetime.now(timezone.utc)

    async def __aenter__(self) -> "_Run":
        self._door = HttpFetcher(self.settings, self.limiter, self.reach)
        try:
            self.http = await self._door.__aenter__()  # the one door: Chromium's requests go through it too
        except BaseException:
            self.pool.shutdown(wait=False)
            self.pdfs.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.browser is not None:
                await self.browser.close()
                self.browser = None
        finally:
            try:
                await self._door.__aexit__(*exc)
            finally:
                self.pool.shutdown(wait=False)
                self.pdfs.close()

    async def run(self, requests: list[FetchRequest]) -> FetchResult:
        """Fetch one batch (inside ``async with``: robots.txt, spacing and budgets carry over to the next)."""
        t0, rendered = time.perf_counter(), self.rendered
        pages = [_Page(r) for r in {r.url: r for r in requests}.values()]
        try:
            samples = self._samples(pages)  # known before anything is fetched: render them meanwhile
            sampling = asyncio.create_task(self._render([p for group in samples.values() for p in group], False))
            await self._fetch_static(self.http, pages)
            await sampling
            await self._isolated(self._plan_and_render([p for p in pages if p.outcome is None], samples), pages)
        finally:
            if self.browser is not None:  # Chromium does not outlive its batch: its memory stays bounded
                await self.browser.close()
                self.browser = None
        fetched = [p.outcome for p in pages if isinstance(p.outcome, Fetched)]
        errors = [p.outcome for p in pages if isinstance(p.outcome, FetchError)]
        skipped = [e for e in errors if e.reason.startswith(("disallowed by robots.txt", "robots.txt"))]
        return FetchResult(fetched=fetched, errors=[e for e in errors if e not in skipped], skipped=skipped,
                           seconds=time.perf_counter() - t0, rendered=self.rendered - rendered)

    async def _fetch_static(self, http: HttpFetcher, pages: list[_Page]) -> None:
        gate = asyncio.Semaphore(self.settings.http_concurrency)
        with progress_bar("Fetching", len(pages), self.progress) as advance:
            async def one(p: _Page) -> None:
                try:
                    async with gate:
                        raw = await http.get(p.request)
                    if isinstance(raw, FetchError):
                        p.outcome = raw
                    else:
                        p.raw = raw
                        await self._read_static(p)
                except Exception as e:  # one page's surprise is that page's error, never the pass's
                    p.outcome = _unexpected(p.request.url, e, "fetching")
                advance(1)

            await asyncio.gather(*(one(p) for p in pages))

    async def _read_static(self, p: _Page) -> None:
        raw, loop = p.raw, asyncio.get_running_loop()
        if raw.status == 304:
            p.outcome = Fetched(p.request.url, None, raw.meta(), "static", "not modified (HTTP 304)")
        elif raw.content_type in PDF_TYPES or raw.body.startswith(b"%PDF-"):
            art = await self.pdfs.read(raw.body, raw.meta())
            p.outcome = (Fetched(p.request.url, art, raw.meta(), "pdf", "a PDF document") if isinstance(art, Document)
                         else FetchError(p.request.url, art, raw.status, raw.attempts))
        else:
            html = raw.text()
            p.static = await loop.run_in_executor(self.pool, clean, Document(html, metadata=raw.meta()), self.settings)
            p.problem = static_problem(html, p.static, self.settings.min_article_words)

    def _samples(self, pages: list[_Page]) -> dict[str, list[_Page]]:
        """Per host with no fresh render decision (``render = "auto"``), its first ``render_sample`` pages."""
        samples: dict[str, list[_Page]] = {}
        if self.settings.render != "auto":
            return samples
        new_first = sorted(pages, key=lambda p: bool(p.request.etag or p.request.last_modified))  # a known page
        for p in new_first:                                                                   # may answer 304
            if check_url(p.request.url) is not None:
                continue
            host = host_of(p.request.url)
            if host not in samples and _note_is_fresh(self.notes.host_note(host), self.settings, self.now):
                continue
            if len(samples.setdefault(host, [])) < self.settings.render_sample:
                samples[host].append(p)
        return {h: g for h, g in samples.items() if g}

    async def _plan_and_render(self, todo: list[_Page], samples: dict[str, list[_Page]]) -> None:
        """Render what the checks ask for; decide sampled hosts; render the other pages of hosts that need it."""
        mode = self.settings.render
        forced = [p for p in todo if mode == "always" or (mode == "auto" and p.problem)]
        decided: dict[str, dict] = {}
        for host, group in samples.items():
            decided[host] = self._learn(host, [p for p in group if p.outcome is None])
        for p in todo:
            host = host_of(p.request.url)
            if host not in decided and mode == "auto":
                decided[host] = self.notes.host_note(host)
        later = [p for p in todo if not p.render_tried and p.render_error is None
                 and (p in forced or (decided.get(host_of(p.request.url)) or {}).get("decision") == "render")]
        await self._render(later)
        for p in todo:
            note = decided.get(host_of(p.request.url))
            if p in forced:
                self._choose(p, p.problem or "render = always", prefer_rendered=True)
            elif note:
                self._choose(p, _why(host_of(p.request.url), note), prefer_rendered=note["decision"] == "render")
            else:
                self._choose(p, "render = never", prefer_rendered=False)

    def _learn(self, host: str, sampled: list[_Page]) -> dict:
        """Decide ``host`` from its sampled pages (read both ways) and keep the decision in the notes."""
        evidence = [{"url": p.request.url, **compare(p.static, p.rendered, self.settings)}
                    for p in sampled if p.rendered is not None]
        if not evidence:  # every sample failed to render: no evidence, decide nothing durable
            return {"decision": "static", "evidence": [], "decided": self.now.isoformat(timespec="seconds")}
        note = {"version": NOTE_VERSION, "decision": host_decision(evidence), "evidence": evidence,
                "decided": self.now.isoformat(timespec="seconds")}
        self.notes.put_host_note(host, note)
        return note

    async def _isolated(self, work, pages: list[_Page]) -> None:
        """Run ``work``; if it raises, every page still without an outcome gets that as its error."""
        try:
            await work
        except Exception as e:
            for p in pages:
                if p.outcome is None:
                    p.outcome = _unexpected(p.request.url, e, "rendering")

    async def _render(self, pages: list[_Page], progress: bool | None = None) -> None:
        if not pages:
            return
        from ..errors import BrowserNotFound
        from .render import ChromiumScraper

        if self.browser is None:
            try:
                self.browser = ChromiumScraper(self.settings, limiter=self.limiter, door=self.http)
                await self.browser.start()
            except BrowserNotFound as e:
                self.browser = None
                for p in pages:
                    p.render_error = FetchError(p.request.url, f"rendering unavailable: {e}")
                return
        result = await self.browser.scrape([p.request.url for p in pages],
                                           progress=self.progress if progress is None else progress)
        self.rendered += len(pages)
        by_url = {d.metadata["source"]: d for d in result.pages}
        errors = {e.url: e for e in result.errors}
        loop = asyncio.get_running_loop()
        for p in pages:
            doc = by_url.get(p.request.url)
            if doc is None:
                p.render_error = errors.get(p.request.url) or FetchError(p.request.url, "rendering failed")
                continue
            p.render_tried = True
            try:
                p.rendered = await loop.run_in_executor(self.pool, clean, doc, self.settings)
            except Exception as e:
                p.render_error = _unexpected(p.request.url, e, "cleaning the rendered page")

    def _choose(self, p: _Page, reason: str, prefer_rendered: bool) -> None:
        """The article to keep: the rendered one where rendering is preferred, unless it lost the served
        article; the served one otherwise (a page sampled on a host that needs no rendering included)."""
        url, meta, failed = p.request.url, p.raw.meta(), p.render_error
        if not prefer_rendered and p.static is not None:
            p.outcome = Fetched(url, p.static, meta, "static", reason)
            return
        if p.rendered is not None:
            diff = compare(p.static, p.rendered, self.settings)
            if diff["verdict"] != "loses" or p.static is None:
                p.outcome = Fetched(url, p.rendered, {**meta, "rendered": True}, "rendered", reason)
                return
            reason += f"; the rendered page lost the article (kept {diff['kept']:.0%} of the served text)"
        elif failed is not None:
            reason += f"; rendering failed ({failed.reason})"
        elif p.render_tried:
            reason += "; the rendered page held no article"
        if p.static is not None:
            kept = ", kept the served HTML" if p.render_tried or failed else ""
            p.outcome = Fetched(url, p.static, meta, "static", reason + kept)
        else:
            why = (f"no article text in the served HTML, and rendering failed: {failed.reason}" if failed
                   else "no article text found on the page")
            p.outcome = FetchError(url, why, p.raw.status, p.raw.attempts)


def _unexpected(url: str, e: Exception, doing: str) -> FetchError:
    import logging

    logging.getLogger(__name__).warning("%s: unexpected %s while %s", url, type(e).__name__, doing, exc_info=e)
    first = (str(e).strip().splitlines() or [""])[0][:160]
    return FetchError(url, f"unexpected error while {doing} ({type(e).__name__}{': ' + first if first else ''})")


def _check_browser(settings: Settings) -> None:
    """A ``browser_path`` that is not a browser is a configuration error: say so before fetching anything."""
    if settings.render != "never" and settings.browser_path:
        from .render import find_browser
        find_browser(settings)


async def afetch(requests: list[FetchRequest | str], settings: Settings | None = None, notes: HostNotes | None = None,
                 progress: bool | None = None, reach: Reach | None = None) -> FetchResult:
    """Fetch and clean ``requests`` (URLs, or :class:`FetchRequest` with validators). ``notes`` keeps the
    per-host render decisions (the index, normally); None keeps them for this call only. ``reach``: where
    the crawler may connect (:class:`~rag_news.fetch.reach.Reach`); None: the hosts of ``requests`` are the
    operator's named hosts (plus ``settings.allow_hosts`` / ``allow_networks``)."""
    settings = settings or Settings()
    _check_browser(settings)
    reqs = [r if isinstance(r, FetchRequest) else FetchRequest(r) for r in requests]
    show = settings.show_progress() if progress is None else progress
    if reach is None:
        reach = Reach.from_settings(settings, [r.url for r in reqs])
    async with _Run(settings, notes if notes is not None else MemoryNotes(), show, reach) as run:
        return await run.run(reqs)


def fetch(requests: list[FetchRequest | str], settings: Settings | None = None, notes: HostNotes | None = None,
          progress: bool | None = None, reach: Reach | None = None) -> FetchResult:
    """Synchronous :func:`afetch`; inside a running event loop (Jupyter) it runs in a worker thread."""
    import concurrent.futures

    args = (list(requests), settings, notes, progress, reach)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(afetch(*args))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(afetch(*args))).result()


class _End:
    """The end of :func:`fetch_batches`'s results (``error``: what stopped the fetching, if anything)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def fetch_batches(batches: list[list[FetchRequest]], settings: Settings | None = None, notes: HostNotes | None = None,
                  progress: bool | None = None, reach: Reach | None = None) -> Iterator[FetchResult]:
    """:func:`fetch` over ``batches`` one after another, each result yielded when its batch is done while the
    next batch is fetched (at most one batch waits: memory stays bounded). One politeness state for all of
    them: robots.txt read once a host, one per-host spacing and request budget, as in a single fetch.
    ``notes`` is read and written from the fetching thread (pass one that is safe for that). Closing the
    iterator early (the caller failed) cancels the batch under way."""
    settings = settings or Settings()
    _check_browser(settings)
    show = settings.show_progress() if progress is None else progress
    if reach is None:
        reach = Reach.from_settings(settings, [r.url for b in batches for r in b])
    results: queue.Queue = queue.Queue(maxsize=1)
    stop, running = threading.Event(), {}

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                return results.put(item, timeout=0.2)
            except queue.Full:
                continue

    async def produce() -> None:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        async with _Run(settings, notes if notes is not None else MemoryNotes(), show, reach) as run:
            for batch in batches:
                if stop.is_set():
                    return
                hand_over(await run.run(batch))  # blocks the loop while the caller is behind: nothing else runs

    def work() -> None:
        end = _End()
        try:
            asyncio.run(produce())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            end = _End(e)
        hand_over(end)

    thread = threading.Thread(target=work, name="rag-news-fetch", daemon=True)
    thread.start()
    try:
        while not isinstance(item := results.get(), _End):
            yield item
        if item.error is not None and not isinstance(item.error, asyncio.CancelledError):
            raise item.error
    finally:
        stop.set()
        if "loop" in running and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has closed already: nothing left to cancel
                running["loop"].call_soon_threadsafe(running["task"].cancel)
        thread.join()
