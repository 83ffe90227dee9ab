"""Plain HTTP fetching with httpx: pooled connections, HTTP/2 where offered, compression, size and time
limits, conditional GETs, retries with backoff, ``Retry-After`` honoured (bounded), robots.txt obeyed.

It is the crawler's one door to the network: every request — a page and each redirect hop (followed here,
one checked hop at a time), robots.txt, feeds and sitemaps (:mod:`rag_news.sources`), and every Chromium
request (:mod:`~rag_news.fetch.render` fulfils its requests through :meth:`HttpFetcher.browser_hop`) —
passes the reach policy (:mod:`~rag_news.fetch.reach`, connected to the checked address), robots.txt, the
host's request budget, a deadline for the whole request and a size cap counted after decompression.

Entry point: :class:`HttpFetcher` (``async with HttpFetcher(settings, limiter) as f: await f.get(request)``)
returning a :class:`RawPage` or a :class:`~rag_news.fetch.base.FetchError`.
"""

from __future__ import annotations

import asyncio
import random
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urldefrag

from ..settings import Settings
from .base import FetchError, FetchRequest, check_url
from .polite import ROBOTS_MAX_BYTES, HostLimiter, Robots
from .reach import PinnedTransport, Reach, Refused

HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf", "application/x-pdf")
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
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
        self.reason, self.status, self.wait, self.attempts = reason, status, wait, 0


class _Fail(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status, self.attempts = reason, status, 0


class TooLarge(OSError):
    pass


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Last-Modified``, ``Retry-After``, ...) as an aware UTC datetime, or None. A date
    that names no zone (``-0000``, none at all) is read as UTC (RFC 9110 dates are GMT)."""
    if not value or not isinstance(value, str):
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = http_date(value)
    if when is None:
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Inflater:
    """Bounded decompression: gzip (or zlib / raw deflate) decoded in pieces, never more than ``cap``
    bytes out (:class:`TooLarge` beyond), a stream that ends before the gzip trailer says so."""

    def __init__(self, cap: int, kind: str = "gzip"):
        self.cap, self.kind, self.size, self.out = cap, kind, 0, []
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 32 if kind == "gzip" else zlib.MAX_WBITS)
        self._fresh = True

    def feed(self, data: bytes) -> None:
        while data:
            try:
                piece = self._d.decompress(data, self.cap + 1 - self.size)
            except zlib.error as e:
                if self.kind == "deflate" and self._fresh:  # a raw deflate stream, as some servers send
                    self._d, self._fresh = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise OSError(f"bad {self.kind} data ({e})") from None
            self._fresh = False
            self.size += len(piece)
            if self.size > self.cap:
                raise TooLarge(f"more than {self.cap:,} bytes after decompression")
            self.out.append(piece)
            data = self._d.unconsumed_tail
            if not data and self._d.eof and self._d.unused_data:  # another gzip member follows
                data = self._d.unused_data
                self._d = zlib.decompressobj(zlib.MAX_WBITS | 32)

    def finish(self) -> bytes:
        if not self._d.eof:
            raise OSError(f"truncated {self.kind} data (the body ended before the end of the stream)")
        return b"".join(self.out)


def gunzip(body: bytes, cap: int) -> bytes:
    """``body`` decompressed (gzip), at most ``cap`` bytes; OSError for a truncated or damaged stream."""
    inflater = Inflater(cap)
    inflater.feed(body)
    return inflater.finish()


@dataclass
class Hop:
    """One request and its answer (``body`` None for a redirect, a 304, or a refused body)."""

    url: str
    status: int
    reason_phrase: str
    headers: object  # httpx.Headers
    body: bytes | None
    location: str | None = None  # where a redirect points (absolute, no fragment)


class HttpFetcher:
    """One pooled httpx client for a pass, the crawler's only door to the network (see the module
    docstring). ``reach``: the pass's :class:`~rag_news.fetch.reach.Reach` (default: only public addresses,
    plus ``settings.allow_hosts`` / ``allow_networks``)."""

    def __init__(self, settings: Settings, limiter: HostLimiter, reach: Reach | None = None):
        self.settings, self.limiter = settings, limiter
        self.reach = reach if reach is not None else Reach.from_settings(settings)
        self.client = None
        self.robots = Robots(self.get_text, settings.robots_agent, limiter) if settings.obey_robots else None

    async def __aenter__(self) -> "HttpFetcher":
        import httpx

        s = self.settings
        limits = httpx.Limits(max_connections=s.http_concurrency, max_keepalive_connections=s.http_concurrency)
        transport = PinnedTransport(self.reach, lambda: httpx.AsyncHTTPTransport(http2=True, limits=limits))
        self.client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=httpx.Timeout(s.page_timeout),
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "gzip, deflate",
                     "Accept": "text/html,application/xhtml+xml,application/pdf;q=0.9,*/*;q=0.5"})
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------------ admission and one request
    async def admit(self, url: str, via: str = "", robots: bool = True) -> None:
        """:class:`Refused` unless ``url`` may be requested now: the reach policy, then robots.txt."""
        await self.reach.aresolve(url, via)
        if robots and self.robots is not None:
            why = await self.robots.check(url)
            if why:
                raise Refused(why)

    async def hop(self, url: str, *, method: str = "GET", headers: dict | None = None, content: bytes | None = None,
                  cap: int, accept=None, via: str = "", truncate: bool = False) -> Hop:
        """One request, no redirect followed, within the deadline (``page_timeout`` from connect to last
        byte) and the host's budget. ``accept(response)`` may raise before the body is read; ``cap``
        bounds the decoded body (``truncate``: keep the first ``cap`` bytes instead of failing)."""
        import httpx

        self.limiter.spend(url)
        t = self.settings.page_timeout
        try:
            return await asyncio.wait_for(self._hop(url, method, headers, content, cap, accept, via, truncate), t)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retry(f"timed out after {t:g}s") from None
        except Refused:
            raise
        except httpx.HTTPError as e:
            if isinstance(e.__cause__ or e.__context__, Refused):
                raise (e.__cause__ or e.__context__) from None
            raise _Retry(_describe(e)) from None

    async def _hop(self, url, method, headers, content, cap, accept, via, truncate) -> Hop:
        req = self.client.build_request(method, url, headers=headers, content=content,
                                        extensions={"rag_news_via": via})
        r = await self.client.send(req, stream=True)
        try:
            location = r.headers.get("location") if r.status_code in _REDIRECTS else None
            if location is not None:
                target = urldefrag(urljoin(url, location.strip()))[0]
                return Hop(url, r.status_code, r.reason_phrase, r.headers, None, target)
            if accept is not None:
                accept(r)
            body = None
            if r.status_code != 304 and method != "HEAD":
                body = await _read(r, cap, truncate)
            return Hop(url, r.status_code, r.reason_phrase, r.headers, body)
        finally:
            await r.aclose()

    async def _retrying(self, url: str, measure: bool = True, **kw) -> tuple[Hop, int]:
        """:meth:`hop` with retries (network errors, timeouts, 429/5xx as ``accept`` decides) and backoff;
        ``measure``: the response time feeds the host's autothrottle spacing."""
        s, attempts = self.settings, 0
        while True:
            attempts += 1
            try:
                async with self.limiter.slot(url, measure=measure):
                    return await self.hop(url, **kw), attempts
            except _Fail as e:
                e.attempts = attempts
                raise
            except _Retry as e:
                if attempts > s.retries:
                    failed = _Fail(e.reason, e.status)
                    failed.attempts = attempts
                    raise failed from None
                if e.wait is not None:
                    self.limiter.pause(url, e.wait)
                else:
                    await asyncio.sleep(s.retry_backoff * 2 ** (attempts - 1) * (1 + 0.25 * random.random()))

    async def follow(self, url: str, *, robots: bool = True, via: str = "", measure: bool = True,
                     **kw) -> tuple[Hop, int]:
        """GET ``url`` following redirects one checked hop at a time (each hop: reach, robots.txt,
        budget); ``_Fail`` / :class:`Refused` when it cannot."""
        seen = []
        for _ in range(MAX_REDIRECTS + 1):
            await self.admit(url, via, robots)
            hop, attempts = await self._retrying(url, measure=measure, via=via, **kw)
            if hop.location is None:
                return hop, attempts
            seen.append(url)
            if hop.location in seen:
                break
            url, via = hop.location, "redirect to"
        raise _Fail("redirect loop (too many redirects)")

    # ------------------------------------------------------------------ what the crawler asks for
    async def get_text(self, url: str) -> tuple[int, str]:
        """robots.txt (through the limiter, retried like pages, its first ``ROBOTS_MAX_BYTES`` kept):
        ``(status, text)``; OSError when unreachable or refused. Its response time is not the host's
        (asked once, while everything starts): it does not set the autothrottle spacing."""
        try:
            hop, _ = await self.follow(url, robots=False, measure=False, cap=ROBOTS_MAX_BYTES, truncate=True)
        except (_Fail, Refused) as e:
            raise OSError(e.reason) from None
        except OSError as e:
            raise OSError(str(e)) from None
        return hop.status, (hop.body or b"").decode("utf-8", errors="replace")

    async def get_document(self, url: str, cap: int, via: str = "") -> bytes:
        """A feed or sitemap: the body (at most ``cap`` bytes decoded), OSError with the reason otherwise."""
        try:
            hop, _ = await self.follow(url, via=via, cap=cap, accept=self._check_status)
        except (_Fail, Refused) as e:
            raise OSError(e.reason) from None
        return hop.body or b""

    async def get(self, req: FetchRequest) -> RawPage | FetchError:
        """GET one URL (conditional when the request carries validators), with retries; never raises for
        a page-level failure."""
        refused = check_url(req.url)
        if refused:
            return FetchError(req.url, refused, attempts=0)
        headers = {}
        if req.etag:
            headers["If-None-Match"] = req.etag
        if req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        try:
            hop, attempts = await self.follow(req.url, headers=headers, cap=self.settings.max_page_bytes,
                                              accept=self._accept_page)
        except Refused as e:
            return FetchError(req.url, e.reason, attempts=0)
        except _Fail as e:
            return FetchError(req.url, e.reason, e.status, e.attempts)
        except OSError as e:  # the host does not resolve
            return FetchError(req.url, str(e), attempts=1)
        ctype = _ctype(hop.headers) or "text/html"
        return self._page(req, hop, ctype, attempts)

    def _accept_page(self, r) -> None:
        self._check_status(r)
        ctype = _ctype(r.headers)
        if r.status_code != 304 and ctype and ctype not in HTML_TYPES + PDF_TYPES:
            raise _Fail(f"not an HTML page (content-type {ctype})", r.status_code)
        self._check_length(r)

    def _check_length(self, r) -> None:
        limit, length = self.settings.max_page_bytes, r.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit and not r.headers.get("content-encoding"):
            raise _Fail(f"page too large ({int(length):,} bytes > {limit:,})", r.status_code)

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

    @staticmethod
    def _page(req: FetchRequest, hop: Hop, ctype: str, attempts: int) -> RawPage:
        keep = {k: hop.headers[k] for k in ("etag", "last-modified", "content-type") if k in hop.headers}
        return RawPage(url=req.url, final_url=hop.url, status=hop.status, content_type=ctype, body=hop.body,
                       headers=keep, fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       attempts=attempts)


def _ctype(headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def _read(r, cap: int, truncate: bool = False) -> bytes:
    """The body, decoded (gzip / deflate by :class:`Inflater`, others by httpx), at most ``cap`` bytes
    after decoding: ``_Fail`` beyond (``truncate``: the first ``cap`` bytes)."""
    enc = r.headers.get("content-encoding", "").strip().lower()
    kind = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}.get(enc)
    inflater = Inflater(cap, kind) if kind else None
    chunks, size = [], 0
    stream = r.aiter_raw() if kind or enc in ("", "identity") else r.aiter_bytes()
    try:
        async for chunk in stream:
            if inflater is not None:
                inflater.feed(chunk)
                continue
            size += len(chunk)
            chunks.append(chunk)
            if size > cap:
                raise TooLarge(f"more than {cap:,} bytes")
        body = inflater.finish() if inflater is not None else b"".join(chunks)
    except TooLarge as e:
        if truncate:
            return (b"".join(inflater.out) if inflater is not None else b"".join(chunks))[:cap]
        raise _Fail(f"page too large ({e})", r.status_code) from None
    except OSError as e:
        raise _Fail(f"{e}", r.status_code) from None
    return body


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
