"""Politeness: robots.txt, a per-host concurrency cap and spacing, and pauses a server asks for.

* :class:`HostLimiter` — per host (``scheme://host:port``) at most ``per_host_concurrency`` requests at
  once; request starts spaced by at least the largest of ``per_host_interval``, the host's robots.txt
  ``Crawl-delay`` and (``autothrottle``, as Scrapy's AutoThrottle does) the host's recent response time;
  after a 429/503 with ``Retry-After`` no request to that host starts before the time asked for.
* :class:`Robots` — robots.txt fetched once per host per pass and obeyed for ``robots_agent`` (Allow,
  Disallow with ``*``/``$`` patterns, Crawl-delay; parsed by Scrapy's ``protego``), following RFC 9309: a
  4xx robots.txt means no rules, a 5xx or an unreachable one means "disallow all" for this pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from .base import host_of

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: at least 500 KiB must be parsed; the rest may be ignored


@dataclass
class _Host:
    slots: asyncio.Semaphore
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0
    crawl_delay: float = 0.0
    latency: float = 0.0
    spent: int = 0  # requests made to the host in this pass


class HostLimiter:
    """Per-host concurrency cap and spacing of request starts (see the module docstring)."""

    def __init__(self, per_host: int = 2, interval: float = 0.0, autothrottle: bool = True, max_delay: float = 60.0,
                 budget: int | None = None):
        """``budget``: the most requests one host gets in this pass (None: no limit); see :meth:`spend`."""
        self.per_host, self.interval, self.autothrottle, self.max_delay = per_host, interval, autothrottle, max_delay
        self.budget = budget
        self._hosts: dict[str, _Host] = {}

    def spend(self, url: str) -> None:
        """Count one request to ``url``'s host; :class:`~rag_news.fetch.reach.Refused` once the host's
        budget for this pass is spent (a site cannot keep the crawler busy with endless redirects, sitemaps
        or subresources)."""
        from .reach import Refused

        h = self._host(url)
        if self.budget is not None and h.spent >= self.budget:
            raise Refused(f"refused: the request budget for {host_of(url)} in this pass is spent "
                          f"({self.budget} requests, max_requests_per_host)")
        h.spent += 1

    def spent(self, url: str) -> int:
        return self._host(url).spent

    def _host(self, url: str) -> _Host:
        host = host_of(url)
        if host not in self._hosts:
            self._hosts[host] = _Host(asyncio.Semaphore(self.per_host))
        return self._hosts[host]

    def set_crawl_delay(self, url: str, seconds: float) -> None:
        self._host(url).crawl_delay = min(max(seconds, 0.0), self.max_delay)

    def pause(self, url: str, seconds: float) -> None:
        """No request to ``url``'s host starts for ``seconds`` (a server's Retry-After)."""
        h = self._host(url)
        h.next_start = max(h.next_start, time.monotonic() + seconds)

    def spacing(self, url: str) -> float:
        h = self._host(url)
        return min(max(self.interval, h.crawl_delay, h.latency if self.autothrottle else 0.0), self.max_delay)

    @contextlib.asynccontextmanager
    async def slot(self, url: str, measure: bool = False) -> AsyncIterator[None]:
        """Wait for a free slot and the host's next start time; ``measure`` records the response time
        (HTTP requests: a rendered page's time is the browser's, not the server's)."""
        h = self._host(url)
        async with h.slots:
            async with h.gate:
                wait = h.next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                h.next_start = time.monotonic() + self.spacing(url)
            t0 = time.monotonic()
            yield
            if measure:
                took = time.monotonic() - t0
                h.latency = took if h.latency == 0 else 0.7 * h.latency + 0.3 * took


class Robots:
    """robots.txt rules per host, fetched once per pass through ``get(url) -> (status, text)``."""

    def __init__(self, get, agent: str, limiter: HostLimiter | None = None):
        self._get, self.agent, self.limiter = get, agent, limiter
        self._rules: dict[str, tuple] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _load(self, url: str) -> tuple:
        from protego import Protego

        host = host_of(url)
        async with self._locks.setdefault(host, asyncio.Lock()):
            if host not in self._rules:
                try:
                    status, text = await self._get(host + "/robots.txt")
                except OSError as e:  # unreachable: RFC 9309 says assume complete disallow
                    self._rules[host] = (None, f"{e} (while fetching robots.txt; the host is not fetched)")
                    return self._rules[host]
                if 200 <= status < 300:
                    rules = Protego.parse(text[:ROBOTS_MAX_BYTES])
                    delay = rules.crawl_delay(self.agent)
                    if delay and self.limiter is not None:
                        self.limiter.set_crawl_delay(url, float(delay))
                    self._rules[host] = (rules, None)
                elif 400 <= status < 500:
                    self._rules[host] = ("allow-all", None)
                else:
                    self._rules[host] = (None, f"robots.txt answered HTTP {status}: the host is not fetched this pass")
        return self._rules[host]

    async def check(self, url: str) -> str | None:
        """Why ``url`` must not be fetched, or None."""
        rules, problem = await self._load(url)
        if problem:
            return problem
        if rules == "allow-all" or rules.can_fetch(url, self.agent):
            return None
        return f"disallowed by robots.txt (user agent {self.agent!r})"

    async def sitemaps(self, url: str) -> list[str]:
        rules, _ = await self._load(url)
        return list(rules.sitemaps) if rules not in (None, "allow-all") else []

    async def listing(self, url: str) -> tuple[list[str], str | None]:
        """``(the Sitemap: lines of url's robots.txt, why the host is not fetched or None)``."""
        rules, problem = await self._load(url)
        return (list(rules.sitemaps) if rules not in (None, "allow-all") else []), problem
