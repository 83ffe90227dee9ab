"""Render: load pages in one headless Chromium (Playwright), for pages whose article needs JavaScript.

The fetch stage (:mod:`rag_news.fetch`) calls this only where the served HTML is not enough. Entry points:
:class:`ChromiumScraper` (one browser, many pages), :func:`scrape` (sync, also safe inside Jupyter's running
event loop) and :func:`ascrape` (async). They return a :class:`ScrapeResult`: the pages that loaded, as
LangChain ``Document``s whose ``page_content`` is the rendered HTML, and one
:class:`~rag_news.fetch.base.FetchError` per URL that did not. An error is never returned as page content.

One browser serves the whole run; at most ``settings.concurrency`` pages are open at once; each navigation
has a timeout; network errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff; images,
fonts and media are not downloaded.

Chromium never reaches the network by itself: its own name resolution is switched off
(``--host-resolver-rules``), and every request it makes — navigations, each redirect hop, client-side
redirects, subresources — is answered by the route handler through the crawler's one door
(:meth:`rag_news.fetch.http.HttpFetcher.hop`): the reach policy, robots.txt, the host's budget, the
deadline and the size cap apply to it exactly as to the plain HTTP fetch, and navigations wait for the
host's slot (concurrency, Crawl-delay). Chromium runs in its sandbox where the kernel allows it
(:func:`sandbox_flags`).
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
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # no network of its own: every request is fulfilled by the route handler (through the checked door);
    # what is not routed (DNS prefetch, preconnect hints) fails to resolve
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--dns-prefetch-disable",
]
# request headers Chromium sets that the door sets itself (or that describe Chromium's own connection)
_HOP_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding", "keep-alive",
                "proxy-connection", "te", "upgrade", "content-encoding", "trailer"}
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


def sandbox_flags(settings: Settings) -> tuple[list[str], str]:
    """``(flags, why)``: Chromium's sandbox stays on unless ``browser_sandbox = "off"``, or (``auto``) it
    cannot work here: Chromium refuses to start sandboxed as root, and without unprivileged user
    namespaces (``kernel.unprivileged_userns_clone = 0``, ``user.max_user_namespaces = 0``, or an
    AppArmor rule that forbids them) and no setuid ``chrome-sandbox`` helper it cannot sandbox itself."""
    mode = getattr(settings, "browser_sandbox", "auto")
    if mode == "on":
        return [], "sandbox on (browser_sandbox = on)"
    if mode == "off":
        return ["--no-sandbox"], "sandbox off (browser_sandbox = off)"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ["--no-sandbox"], "sandbox off: running as root (Chromium cannot sandbox itself as root)"
    for path, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"), ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            if Path(path).read_text().strip() == bad:
                return ["--no-sandbox"], f"sandbox off: the kernel forbids unprivileged user namespaces ({path} = {bad})"
        except OSError:
            continue
    return [], "sandbox on"


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

    def __init__(self, settings: Settings | None = None, limiter=None, door=None):
        """``limiter``: a :class:`~rag_news.fetch.polite.HostLimiter` whose per-host slots navigations wait
        for (politeness shared with the HTTP fetcher). ``door``: the pass's open
        :class:`~rag_news.fetch.http.HttpFetcher`, through which every browser request is made (None: one
        of its own, whose reach names the URLs given to :meth:`scrape` / :meth:`fetch`)."""
        self.settings = settings or Settings()
        self.limiter = limiter
        self.door = door
        self._own_door = None
        self._pw = None
        self._browser = None
        self._context = None
        self._failures: dict = {}  # tab -> (reason, retryable) of its main-frame request the door refused
        self._asked: dict = {}  # tab -> (the URL its navigation was asked for, how the crawler came to it)
        self._redirects: dict = {}  # tab -> where the server redirected its navigation
        self.sandbox = ""  # whether Chromium runs sandboxed, and why

    async def __aenter__(self) -> "ChromiumScraper":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _open_door(self) -> None:
        from .http import HttpFetcher
        from .polite import HostLimiter
        from .reach import Reach

        s = self.settings
        if self.limiter is None:
            self.limiter = HostLimiter(s.per_host_concurrency, s.per_host_interval, s.autothrottle,
                                       budget=s.max_requests_per_host)
        self._own_door = HttpFetcher(s, self.limiter, Reach.from_settings(s))
        self.door = await self._own_door.__aenter__()

    async def start(self) -> None:
        import logging

        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        if self.door is None:
            await self._open_door()
        elif self.limiter is None:
            self.limiter = self.door.limiter
        executable = find_browser(self.settings)
        self._pw = await async_playwright().start()
        flags, self.sandbox = sandbox_flags(self.settings)
        try:
            try:
                self._browser = await self._launch(executable, flags)
            except PlaywrightError as e:
                if flags or getattr(self.settings, "browser_sandbox", "auto") != "auto":
                    raise
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                self._browser = await self._launch(executable, ["--no-sandbox"])
                self.sandbox = f"sandbox off: Chromium could not start sandboxed ({first})"
        except PlaywrightError as e:
            await self._pw.stop()
            self._pw = None
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BrowserNotFound(
                "no usable Chromium: install Debian's 'chromium' package (apt-get install chromium), "
                "or run 'playwright install chromium', or set RAG_NEWS_BROWSER_PATH "
                f"({first})"
            ) from None
        logging.getLogger(__name__).info("Chromium: %s", self.sandbox)
        self._context = await self._browser.new_context(
            user_agent=self.settings.user_agent, accept_downloads=False, java_script_enabled=True,
            service_workers="block")
        self._blocked = set(self.settings.block_resources)
        await self._context.route("**/*", self._route)

    async def _launch(self, executable, flags: list[str]):
        return await self._pw.chromium.launch(executable_path=executable, headless=True, chromium_sandbox=not flags,
                                              args=CHROMIUM_FLAGS + flags + list(self.settings.browser_args))

    async def _route(self, route) -> None:
        """Answer one browser request through the door (see the module docstring); a refused or failed
        main-frame request is remembered for its tab, so the navigation error carries the reason."""
        from .http import MAX_REDIRECTS, _Fail, _Retry
        from .reach import Refused

        req = route.request
        if req.resource_type in self._blocked:
            return await _settle_route(route.abort("blockedbyclient"))
        try:
            page = req.frame.page
            nav = req.is_navigation_request() and req.frame == page.main_frame
        except Exception:  # a worker's request: no tab
            page, nav = None, False
        asked, asked_via = self._asked.get(page, (None, ""))
        first = nav and req.url == asked
        via = asked_via if first else "a page navigation to" if nav else "a subresource at"
        try:
            headers = {k: v for k, v in (await req.all_headers()).items()
                       if k.lower() not in _HOP_HEADERS and not k.startswith(":")}
            hop = await self._through_door(req, headers, nav, via)
            for _ in range(MAX_REDIRECTS):
                if hop.location is None:
                    break
                if first:  # the tab's own navigation: _goto goes to the next hop (checked like this one)
                    self._redirects[page] = hop.location
                    return await _settle_route(route.abort("aborted"))
                hop = await self._through_door(req, headers, nav, "redirect to", hop.location)
            if hop.location is not None:
                raise _Fail("redirect loop (too many redirects)")
        except (Refused, _Fail, _Retry, OSError) as e:
            reason = getattr(e, "reason", None) or str(e)
            retry = isinstance(e, _Retry)
            if nav:
                self._failures[page] = (reason, retry)
            code = ("blockedbyclient" if isinstance(e, Refused) else "timedout" if "timed out" in reason
                    else "connectionrefused" if "refused" in reason else "namenotresolved"
                    if "host not found" in reason else "failed")
            return await _settle_route(route.abort(code))
        except Exception as e:  # never leave the browser's request hanging
            if nav:
                self._failures[page] = (f"browser request failed ({type(e).__name__}: {str(e)[:120]})", True)
            return await _settle_route(route.abort("failed"))
        out = {k: v for k, v in hop.headers.items() if k.lower() not in _HOP_HEADERS}
        await _settle_route(route.fulfill(status=hop.status, headers=out, body=hop.body or b""))

    async def _through_door(self, req, headers: dict, nav: bool, via: str, url: str | None = None):
        """One browser request made by the door: reach and robots.txt first, the host's slot for a
        navigation (concurrency, Crawl-delay), then one hop within the deadline and the size cap."""
        url = url or req.url
        await self.door.admit(url, via)
        method, body = (req.method, req.post_data_buffer) if url == req.url else ("GET", None)
        async with (self.limiter.slot(url) if nav else contextlib.nullcontext()):
            return await self.door.hop(url, method=method, headers=headers, content=body,
                                       cap=self.settings.max_page_bytes, accept=self._accept_nav if nav else None,
                                       via=via)

    def _accept_nav(self, r) -> None:
        """A main-frame document: HTML only (a PDF or an image is not rendered), within the size cap."""
        from .http import _Fail

        ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
        if r.status_code < 400 and ctype and ctype not in _HTML_TYPES:
            raise _Fail(f"not an HTML page (content-type {ctype})", r.status_code)
        length = r.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_page_bytes and not r.headers.get("content-encoding"):
            raise _Fail(f"page too large ({int(length):,} bytes > {self.settings.max_page_bytes:,})", r.status_code)

    async def close(self) -> None:
        for closer in (self._context, self._browser):
            if closer is not None:
                try:
                    await asyncio.wait_for(closer.close(), 10)
                except Exception:  # already gone, or wedged: stopping Playwright ends the process
                    pass
        if self._pw is not None:
            await self._pw.stop()
        if self._own_door is not None:
            await self._own_door.__aexit__(None, None, None)
            self._own_door = self.door = None
        self._pw = self._browser = self._context = None

    async def fetch(self, url: str, page=None) -> Document | ScrapeError:
        """Fetch one URL with retries, in ``page`` (a tab to reuse) or a new tab. Never raises for a
        page-level failure. Each retry uses a fresh tab: a tab left on Chromium's error page can wedge
        (its ``close()`` never returns), so it is closed with a time limit and replaced."""
        from playwright.async_api import Error as PlaywrightError

        refused = _refused(url)
        if refused:
            return refused
        refused = await self._admit(url)
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
                await self._close_tab(p)

    async def _close_tab(self, page) -> None:
        """Close a tab (bounded, see :func:`_close_quietly`) and forget what the route handler kept for it."""
        for kept in (self._asked, self._failures, self._redirects):
            kept.pop(page, None)
        await _close_quietly(page)

    async def _admit(self, url: str) -> ScrapeError | None:
        """Reach and robots.txt before a tab is opened (the route handler checks every request again)."""
        from .reach import Refused

        if self._own_door is not None:
            self.door.reach.name([url])  # a URL given to this scraper is one the caller named
        try:
            await self.door.admit(url)
        except Refused as e:
            return ScrapeError(url=url, reason=e.reason, attempts=0)
        except OSError as e:
            return ScrapeError(url=url, reason=str(e), attempts=0)
        return None

    async def _fetch_once(self, url: str, page) -> Document:
        s = self.settings
        # one tab serves many URLs: each navigation replaces the previous document; a URL that differs
        # from the tab's current one only by #fragment would be a same-document jump, so reset first
        if page.url.split("#")[0] == url.split("#")[0]:
            await page.goto("about:blank")
        response = await self._goto(page, url)
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
        client_redirect = failed = None
        if page.url.startswith("chrome-error://") or _is_browser_error_page(html):
            # a script sent the tab to an address that failed: never take Chromium's error page as content
            failed = self._failures.pop(page, None)
            if early is None:
                raise _Permanent("the page redirected itself to an unreachable address"
                                 + (f" ({failed[0]})" if failed else ""))
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
                "client_redirect_reason": failed[0] if client_redirect and failed else None,
                "status": status,
                "content_type": ctype or "text/html",
                "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "etag": headers.get("etag"),  # validators for the next pass's conditional request
                "last_modified": headers.get("last-modified"),
            },
        )

    async def _goto(self, page, url: str):
        """``page.goto`` following the server's redirects one hop at a time: the route handler stops at a
        redirect (Chromium would follow it unrouted) and each next hop is a navigation checked again."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        from .http import MAX_REDIRECTS

        s, target, via, seen = self.settings, url, "", []
        for _ in range(MAX_REDIRECTS + 1):
            self._asked[page] = (target, via)
            self._failures.pop(page, None)
            self._redirects.pop(page, None)
            try:
                return await page.goto(target, wait_until=s.wait_until, timeout=s.page_timeout * 1000)
            except PlaywrightTimeout:
                raise _Retryable(f"timed out after {s.page_timeout:g}s") from None
            except PlaywrightError as e:
                nxt = self._redirects.pop(page, None)
                failed = self._failures.pop(page, None)
                if nxt is None and failed is not None:  # the door refused or failed it: its reason
                    raise (_Retryable if failed[1] else _Permanent)(failed[0]) from None
                if nxt is None:
                    raise _classify_navigation_error(str(e)) from None
                seen.append(target)
                if nxt in seen:
                    break
                target, via = nxt, "redirect to"
        raise _Permanent("redirect loop (too many redirects)")

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
                            await self._close_tab(page)
                            page = None
                        advance(1)
                finally:
                    if page is not None:
                        await self._close_tab(page)

            n = min(self.settings.concurrency, queue.qsize())
            await asyncio.gather(*(worker() for _ in range(n)))
        pages = [r for r in results if isinstance(r, Document)]
        errors = [r for r in results if isinstance(r, ScrapeError)]
        return ScrapeResult(pages=pages, errors=errors, seconds=time.perf_counter() - t0)


def _is_browser_error_page(html: str) -> bool:
    """Chromium's own "This site can't be reached" page (what a tab shows after a failed navigation)."""
    return 'id="main-frame-error"' in html or re.search(r'<body[^>]*class="[^"]*\bneterror\b', html) is not None


async def _settle_route(call) -> None:
    """Answer a route; a tab closed meanwhile makes Playwright raise, which is nobody's problem."""
    try:
        await call
    except Exception:
        pass


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
        if code == "ERR_TIMED_OUT":
            return _Retryable(f"timed out [{code}]")
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
