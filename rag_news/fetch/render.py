"""Render: load pages in one headless Chromium (Playwright), for pages whose article needs JavaScript.

The fetch stage (:mod:`rag_news.fetch`) calls this only where the served HTML is not enough. Entry points:
:class:`ChromiumScraper` (one browser, many pages), :func:`scrape` (sync, also safe inside Jupyter's running
event loop) and :func:`ascrape` (async). They return a :class:`ScrapeResult`: the pages that loaded, as
LangChain ``Document``s whose ``page_content`` is the rendered HTML, and one
:class:`~rag_news.fetch.base.FetchError` per URL that did not. An error is never returned as page content.

One browser serves the whole run; at most ``settings.concurrency`` pages are open at once; each navigation
has a timeout; network errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff; images,
fonts and media are not downloaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from langchain_core.documents import Document

from ..errors import BrowserNotFound
from ..progress import progress_bar
from ..settings import Settings
from .base import FetchError as ScrapeError
from .base import check_url

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Chromium network errors that will not go away by asking again
_PERMANENT_NET_ERRORS = {
    "ERR_TOO_MANY_REDIRECTS": "redirect loop (too many redirects)",
    "ERR_NAME_NOT_RESOLVED": "host not found (DNS lookup failed)",
    "ERR_INVALID_URL": "malformed URL",
    "ERR_UNSAFE_PORT": "port blocked by the browser (unsafe port)",
    "ERR_UNSAFE_REDIRECT": "unsafe redirect",
    "ERR_BLOCKED_BY_CLIENT": "blocked by the browser",
    "ERR_INVALID_RESPONSE": "invalid HTTP response",
    "ERR_CERT_AUTHORITY_INVALID": "TLS certificate not trusted",
    "ERR_CERT_COMMON_NAME_INVALID": "TLS certificate does not match the host",
    "ERR_CERT_DATE_INVALID": "TLS certificate expired or not yet valid",
}


_DOM_QUIET_JS = """([quietMs, maxMs]) => new Promise((resolve) => {
  let timer = null;
  const done = () => { observer.disconnect(); clearTimeout(timer); clearTimeout(cap); resolve(true); };
  const observer = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(done, quietMs); });
  observer.observe(document, {subtree: true, childList: true, characterData: true});
  timer = setTimeout(done, quietMs);
  const cap = setTimeout(done, maxMs);
})"""


@dataclass
class ScrapeResult:
    pages: list[Document]
    errors: list[ScrapeError]
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.pages)


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


class _Permanent(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


def _refused(url: str) -> ScrapeError | None:
    reason = check_url(url)
    return ScrapeError(url=url, reason=reason, attempts=0) if reason else None


def find_browser(settings: Settings) -> str | None:
    """The Chromium executable to launch, or ``None`` to use Playwright's own browser.

    Order: ``settings.browser_path`` (``RAG_NEWS_BROWSER_PATH``), then a system Chromium/Chrome on PATH,
    then Playwright's downloaded browser if ``playwright install chromium`` was run.
    """
    if settings.browser_path:
        p = Path(settings.browser_path).expanduser()
        found = str(p) if p.is_file() else shutil.which(settings.browser_path)
        if not found or not os.access(found, os.X_OK):
            raise BrowserNotFound(
                f"browser_path {settings.browser_path!r} is not an executable file "
                "(set RAG_NEWS_BROWSER_PATH or --browser to a Chromium binary)"
            )
        return found
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumScraper:
    """One Chromium for many pages. Use as ``async with ChromiumScraper(settings) as s: await s.scrape(urls)``."""

    def __init__(self, settings: Settings | None = None, limiter=None):
        """``limiter``: a :class:`~rag_news.fetch.polite.HostLimiter` whose per-host slots pages wait for
        (politeness shared with the HTTP fetcher); None: only ``settings.concurrency`` limits."""
        self.settings = settings or Settings()
        self.limiter = limiter
        self._pw = None
        self._browser = None
        self._context = None

    async def __aenter__(self) -> "ChromiumScraper":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        executable = find_browser(self.settings)
        self._pw = await async_playwright().start()
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=executable, headless=True,
                args=CHROMIUM_FLAGS + list(self.settings.browser_args),
            )
        except PlaywrightError as e:
            await self._pw.stop()
            self._pw = None
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BrowserNotFound(
                "no usable Chromium: install Debian's 'chromium' package (apt-get install chromium), "
                "or run 'playwright install chromium', or set RAG_NEWS_BROWSER_PATH "
                f"({first})"
            ) from None
        self._context = await self._browser.new_context(
            user_agent=self.settings.user_agent, accept_downloads=False, java_script_enabled=True
        )
        blocked = set(self.settings.block_resources)
        if blocked:
            async def _route(route):
                if route.request.resource_type in blocked:
                    await route.abort()
                else:
                    await route.continue_()

            await self._context.route("**/*", _route)

    async def close(self) -> None:
        for closer in (self._context, self._browser):
            if closer is not None:
                try:
                    await asyncio.wait_for(closer.close(), 10)
                except Exception:  # already gone, or wedged: stopping Playwright ends the process
                    pass
        if self._pw is not None:
            await self._pw.stop()
        self._pw = self._browser = self._context = None

    async def fetch(self, url: str, page=None) -> Document | ScrapeError:
        """Fetch one URL with retries, in ``page`` (a tab to reuse) or a new tab. Never raises for a
        page-level failure. Each retry uses a fresh tab: a tab left on Chromium's error page can wedge
        (its ``close()`` never returns), so it is closed with a time limit and replaced."""
        from playwright.async_api import Error as PlaywrightError

        refused = _refused(url)
        if refused:
            return refused
        s = self.settings
        own: list = []  # tabs opened here, closed here
        if page is None:
            page = await self._context.new_page()
            own.append(page)
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    try:
                        async with self._slot(url):
                            doc = await self._fetch_once(url, page)
                        doc.metadata["attempts"] = attempts
                        return doc
                    except PlaywrightError as e:  # anything else the browser throws is this URL's problem
                        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                        raise _Retryable(f"browser error: {first[:200]}") from None
                except _Permanent as e:
                    return ScrapeError(url=url, reason=e.reason, status=e.status, attempts=attempts)
                except _Retryable as e:
                    if attempts > s.retries:
                        return ScrapeError(url=url, reason=e.reason, status=e.status, attempts=attempts)
                    delay = s.retry_backoff * (2 ** (attempts - 1)) * (1 + 0.25 * random.random())
                    await asyncio.sleep(delay)
                    page = await self._context.new_page()
                    own.append(page)
        finally:
            for p in own:
                await _close_quietly(p)

    def _slot(self, url: str):
        return self.limiter.slot(url) if self.limiter is not None else contextlib.nullcontext()

    async def _fetch_once(self, url: str, page) -> Document:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        s = self.settings
        # one tab serves many URLs: each navigation replaces the previous document; a URL that differs
        # from the tab's current one only by #fragment would be a same-document jump, so reset first
        if page.url.split("#")[0] == url.split("#")[0]:
            await page.goto("about:blank")
        try:
            response = await page.goto(url, wait_until=s.wait_until, timeout=s.page_timeout * 1000)
        except PlaywrightTimeout:
            raise _Retryable(f"timed out after {s.page_timeout:g}s") from None
        except PlaywrightError as e:
            raise _classify_navigation_error(str(e)) from None
        if response is None:
            raise _Permanent("no response (navigation to the same document?)")
        status = response.status
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status} {response.status_text}".strip(), status)
        if status >= 400:
            raise _Permanent(f"HTTP {status} {response.status_text}".strip(), status)
        headers = await response.all_headers()
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype not in _HTML_TYPES:
            raise _Permanent(f"not an HTML page (content-type {ctype})", status)
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > s.max_page_bytes:
            raise _Permanent(f"page too large ({int(length):,} bytes > {s.max_page_bytes:,})", status)
        early = None
        if s.settle_ms > 0:
            early = await self._content_now(page)  # the document as served, before its scripts run on
            await self._settle(page, s.settle_ms)
        html = await self._content(page)
        client_redirect = None
        if page.url.startswith("chrome-error://") or _is_browser_error_page(html):
            # a script sent the tab to an address that failed: never take Chromium's error page as content
            if early is None:
                raise _Permanent("the page redirected itself to an unreachable address")
            html, client_redirect = early, "failed"
        size = len(html.encode("utf-8", "replace"))
        if size > s.max_page_bytes:
            raise _Permanent(f"page too large ({size:,} bytes > {s.max_page_bytes:,})", status)
        return Document(
            page_content=html,
            metadata={
                "source": url,
                "final_url": response.url,  # after HTTP redirects: the article's identity
                "page_url": page.url,  # after the page's own scripts (history API, JS redirects)
                "client_redirect": client_redirect,
                "status": status,
                "content_type": ctype or "text/html",
                "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "etag": headers.get("etag"),  # validators for the next pass's conditional request
                "last_modified": headers.get("last-modified"),
            },
        )

    async def _content(self, page) -> str:
        """``page.content()``, waiting out a navigation the page starts by itself (JS/meta redirect)."""
        from playwright.async_api import Error as PlaywrightError

        for _ in range(3):
            try:
                return await page.content()
            except PlaywrightError as e:
                if "navigating" not in str(e):
                    raise
                try:
                    await page.wait_for_load_state("domcontentloaded", timeout=self.settings.page_timeout * 1000)
                except PlaywrightError:
                    pass
        raise _Retryable("the page kept navigating (client-side redirects)")

    @staticmethod
    async def _content_now(page) -> str | None:
        """The DOM right now, or ``None`` if the page is already navigating away."""
        from playwright.async_api import Error as PlaywrightError

        try:
            html = await page.content()
        except PlaywrightError:
            return None
        return None if _is_browser_error_page(html) else html

    async def _settle(self, page, budget_ms: int) -> None:
        """Let scripts insert late text: wait for the load event, then until the DOM has been quiet for
        300 ms, all within ``budget_ms`` (pages whose ads or timers never stop are cut off there)."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        t0 = time.perf_counter()
        try:
            await page.wait_for_load_state("load", timeout=budget_ms)
        except PlaywrightTimeout:
            return
        left = budget_ms - (time.perf_counter() - t0) * 1000
        if left <= 0:
            return
        try:
            await page.evaluate(_DOM_QUIET_JS, [min(300, left), left])
        except PlaywrightError:  # page navigated away or closed its context: take what is there
            pass

    async def scrape(self, urls: Sequence[str], progress: bool | None = None) -> ScrapeResult:
        t0 = time.perf_counter()
        urls = list(dict.fromkeys(u.strip() if isinstance(u, str) else u for u in urls))
        show = self.settings.show_progress() if progress is None else progress
        results: list[Document | ScrapeError | None] = [None] * len(urls)
        queue: asyncio.Queue = asyncio.Queue()
        for i, u in enumerate(urls):
            results[i] = _refused(u)  # refused without opening a tab
            if results[i] is None:
                queue.put_nowait((i, u))
        with progress_bar("Scraping", total=len(urls), enabled=show) as advance:
            advance(sum(r is not None for r in results))

            async def worker() -> None:  # one tab per worker, reused: at most `concurrency` pages open
                page = None
                try:
                    while not queue.empty():
                        i, u = queue.get_nowait()
                        if page is None or page.is_closed():
                            page = await self._context.new_page()
                        results[i] = r = await self.fetch(u, page)
                        # after a failure or a retry this tab may sit on Chromium's error page (and can wedge):
                        # the next URL gets a fresh one
                        if isinstance(r, ScrapeError) or r.metadata["attempts"] > 1:
                            await _close_quietly(page)
                            page = None
                        advance(1)
                finally:
                    if page is not None:
                        await _close_quietly(page)

            n = min(self.settings.concurrency, queue.qsize())
            await asyncio.gather(*(worker() for _ in range(n)))
        pages = [r for r in results if isinstance(r, Document)]
        errors = [r for r in results if isinstance(r, ScrapeError)]
        return ScrapeResult(pages=pages, errors=errors, seconds=time.perf_counter() - t0)


def _is_browser_error_page(html: str) -> bool:
    """Chromium's own "This site can't be reached" page (what a tab shows after a failed navigation)."""
    return 'id="main-frame-error"' in html or re.search(r'<body[^>]*class="[^"]*\bneterror\b', html) is not None


async def _close_quietly(page, timeout: float = 5.0) -> None:
    try:
        await asyncio.wait_for(page.close(), timeout)
    except Exception:  # already closed, crashed, or wedged on an error page
        pass


def _classify_navigation_error(message: str) -> Exception:
    if "Download is starting" in message:
        return _Permanent("not an HTML page (the server sent a file download)")
    m = re.search(r"net::(ERR_[A-Z0-9_]+)", message)
    if m:
        code = m.group(1)
        if code in _PERMANENT_NET_ERRORS:
            return _Permanent(f"{_PERMANENT_NET_ERRORS[code]} [{code}]")
        if code == "ERR_ABORTED":
            return _Permanent(f"navigation aborted (often a file download or a blocked page) [{code}]")
        if code == "ERR_CONNECTION_REFUSED":
            return _Retryable(f"connection refused [{code}]")
        return _Retryable(f"network error [{code}]")
    first = message.strip().splitlines()[0] if message.strip() else "unknown browser error"
    return _Retryable(f"browser error: {first[:200]}")


async def ascrape(urls: Iterable[str], settings: Settings | None = None,
                  progress: bool | None = None) -> ScrapeResult:
    """Scrape ``urls`` with one browser. Await it from async code (a Jupyter cell can ``await`` it)."""
    urls = list(urls)
    settings = settings or Settings()
    refused = [_refused(u) for u in dict.fromkeys(urls)]
    if all(refused):  # nothing to open a browser for
        return ScrapeResult(pages=[], errors=refused)
    async with ChromiumScraper(settings) as scraper:
        return await scraper.scrape(urls, progress=progress)


def scrape(urls: Iterable[str], settings: Settings | None = None, progress: bool | None = None) -> ScrapeResult:
    """Synchronous :func:`ascrape`. Inside a running event loop (Jupyter) it runs in a worker thread."""
    coro_args = (list(urls), settings, progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(ascrape(*coro_args))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(ascrape(*coro_args))).result()
