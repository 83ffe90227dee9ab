"""Plain HTTP fetching with httpx: pooled connections, HTTP/2 where offered, compression, size and time
limits, conditional GETs, retries with backoff, ``Retry-After`` honoured (bounded), robots.txt obeyed.

Entry point: :class:`HttpFetcher` (``async with HttpFetcher(settings, limiter) as f: await f.get(request)``)
returning a :class:`RawPage` or a :class:`~rag_news.fetch.base.FetchError`.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ..settings import Settings
from .base import FetchError, FetchRequest, check_url
from .polite import HostLimiter, Robots

HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf", "application/x-pdf")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.I)


@dataclass
class RawPage:
    """What the server sent for one URL (``body`` is None for a 304)."""

    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes | None
    headers: dict
    fetched_at: str
    attempts: int

    def text(self) -> str:
        """The body decoded: the header's charset, else a ``<meta charset>`` near the top, else UTF-8."""
        charset = None
        m = re.search(r"charset=([\w.:-]+)", self.headers.get("content-type", ""), re.I)
        if m:
            charset = m.group(1)
        else:
            m2 = _META_CHARSET.search(self.body[:4096])
            charset = m2.group(1).decode("ascii") if m2 else None
        try:
            return self.body.decode(charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.body.decode("utf-8", errors="replace")

    def meta(self) -> dict:
        return {"source": self.url, "final_url": self.final_url, "status": self.status,
                "content_type": self.content_type, "fetched_at": self.fetched_at, "attempts": self.attempts,
                "etag": self.headers.get("etag"), "last_modified": self.headers.get("last-modified")}


class _Retry(Exception):
    def __init__(self, reason: str, status: int | None = None, wait: float | None = None):
        super().__init__(reason)
        self.reason, self.status, self.wait = reason, status, wait


class _Fail(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class HttpFetcher:
    """One pooled httpx client for a pass; politeness through ``limiter`` and robots.txt."""

    def __init__(self, settings: Settings, limiter: HostLimiter):
        self.settings, self.limiter = settings, limiter
        self.client = None
        self.robots = Robots(self._get_text, settings.robots_agent, limiter) if settings.obey_robots else None

    async def __aenter__(self) -> "HttpFetcher":
        import httpx

        s = self.settings
        self.client = httpx.AsyncClient(
            http2=True, follow_redirects=True, max_redirects=10, timeout=httpx.Timeout(s.page_timeout),
            headers={"User-Agent": s.user_agent,
                     "Accept": "text/html,application/xhtml+xml,application/pdf;q=0.9,*/*;q=0.5"},
            limits=httpx.Limits(max_connections=s.http_concurrency, max_keepalive_connections=s.http_concurrency))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    async def _get_text(self, url: str) -> tuple[int, str]:
        """A small GET (robots.txt, through the limiter, retried like pages): ``(status, text)``; OSError
        when unreachable."""
        import httpx

        for attempt in range(self.settings.retries + 1):
            try:
                async with self.limiter.slot(url, measure=True):
                    r = await self.client.get(url)
                return r.status_code, r.text
            except httpx.HTTPError as e:
                if attempt == self.settings.retries:
                    raise OSError(_describe(e)) from None
                await asyncio.sleep(self.settings.retry_backoff * 2 ** attempt)

    async def get(self, req: FetchRequest) -> RawPage | FetchError:
        """GET one URL (conditional when the request carries validators), with retries; never raises for
        a page-level failure."""
        refused = check_url(req.url)
        if refused:
            return FetchError(req.url, refused, attempts=0)
        if self.robots is not None:
            why = await self.robots.check(req.url)
            if why:
                return FetchError(req.url, why, attempts=0)
        s, attempts = self.settings, 0
        while True:
            attempts += 1
            try:
                async with self.limiter.slot(req.url, measure=True):
                    return await self._once(req, attempts)
            except _Fail as e:
                return FetchError(req.url, e.reason, e.status, attempts)
            except _Retry as e:
                if attempts > s.retries:
                    return FetchError(req.url, e.reason, e.status, attempts)
                if e.wait is not None:
                    self.limiter.pause(req.url, e.wait)
                else:
                    await asyncio.sleep(s.retry_backoff * 2 ** (attempts - 1) * (1 + 0.25 * random.random()))

    async def _once(self, req: FetchRequest, attempts: int) -> RawPage:
        import httpx

        headers = {}
        if req.etag:
            headers["If-None-Match"] = req.etag
        if req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        try:
            async with self.client.stream("GET", req.url, headers=headers) as r:
                self._check_status(r)
                ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if r.status_code == 304:
                    return self._page(req, r, ctype, None, attempts)
                if ctype and ctype not in HTML_TYPES + PDF_TYPES:
                    raise _Fail(f"not an HTML page (content-type {ctype})", r.status_code)
                body = await self._read(r)
        except httpx.TooManyRedirects:
            raise _Fail("redirect loop (too many redirects)") from None
        except httpx.TimeoutException:
            raise _Retry(f"timed out after {self.settings.page_timeout:g}s") from None
        except httpx.HTTPError as e:
            raise _Retry(_describe(e)) from None
        return self._page(req, r, ctype or "text/html", body, attempts)

    def _check_status(self, r) -> None:
        code, text = r.status_code, f"HTTP {r.status_code} {r.reason_phrase}".strip()
        if code in (429, 503):
            wait = retry_after(r.headers.get("retry-after"))
            if wait is not None and wait > self.settings.max_retry_after:
                raise _Fail(f"{text}: the server asked to wait {wait:.0f}s (more than max_retry_after "
                            f"{self.settings.max_retry_after:g}s)", code)
            raise _Retry(text, code, wait)
        if code >= 500:
            raise _Retry(text, code)
        if code >= 400:
            raise _Fail(text, code)

    async def _read(self, r) -> bytes:
        limit = self.settings.max_page_bytes
        length = r.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            raise _Fail(f"page too large ({int(length):,} bytes > {limit:,})", r.status_code)
        chunks, size = [], 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _Fail(f"page too large (more than {limit:,} bytes)", r.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _page(req: FetchRequest, r, ctype: str, body: bytes | None, attempts: int) -> RawPage:
        keep = {k: r.headers[k] for k in ("etag", "last-modified", "content-type") if k in r.headers}
        return RawPage(url=req.url, final_url=str(r.url), status=r.status_code, content_type=ctype, body=body,
                       headers=keep, fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       attempts=attempts)


def _describe(e: Exception) -> str:
    """A one-line reason for an httpx transport error (the OS error underneath, where there is one)."""
    import socket

    seen, cause = [], e
    while cause is not None and len(seen) < 8:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for c in seen:
        if isinstance(c, ConnectionRefusedError) or "refused" in str(c).lower():
            return "connection refused"
        if isinstance(c, socket.gaierror) or "name or service not known" in str(c).lower():
            return "host not found (DNS lookup failed)"
        if isinstance(c, ConnectionResetError):
            return "connection reset by the server"
    text = str(e) or type(e).__name__
    return f"network error ({text.splitlines()[0][:160]})"
