"""Reach: where the crawler may connect — one policy for every request it makes.

Every request (a page and each of its redirect hops, robots.txt, feeds, sitemaps and their children, the
render samples, every Chromium navigation and subresource) asks :meth:`Reach.resolve` first:

* only ``http`` and ``https`` URLs;
* the host is resolved once; a host that resolves to a **non-public address** (loopback, private,
  link-local, unique-local, CGNAT, multicast, reserved, unspecified, IPv4-mapped forms of those) is reached
  only when the operator named it: a host of the URL lists and sources they gave (matched with its port:
  ``127.0.0.1:8001`` names that port only), or ``settings.allow_hosts`` (``host`` or ``host:port``), or an
  address inside ``settings.allow_networks`` (CIDRs);
* the checked address is the one connected to (:class:`PinnedTransport`: the URL's host is replaced by the
  address, the ``Host`` header and TLS SNI / certificate check keep the name), so a DNS answer that changes
  between check and connect (rebinding) cannot move the request.

A refusal is a :class:`Refused` whose ``reason`` is one line, e.g. ``refused: redirect to a non-public
address 10.0.0.5 that no source names``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

import httpx

from .base import check_url

_DEFAULT_PORT = {"http": 80, "https": 443}


class Refused(Exception):
    """A request the reach policy (or the robots.txt / budget checks beside it) does not make."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (what any site on the internet may use)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64: the IPv4 address it carries decides
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved)


def _netloc(host: str, port: int) -> str:
    host = host.lower().strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_netloc(url: str) -> str | None:
    """``host:port`` of ``url`` (default port filled in), or None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORT.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return _netloc(parts.hostname, port)


@dataclass
class Reach:
    """The operator's reach: named ``host:port`` pairs, ``allow_hosts`` and ``allow_networks``.

    ``named``: URLs (or ``host:port`` strings) the operator gave — URL lists, feed/sitemap/site sources.
    ``allow_hosts``: extra host names (any port) or ``host:port``. ``allow_networks``: CIDRs whose
    addresses are reached even though they are not public. ``resolver``: ``(host, port) -> [ip, ...]``
    (tests and the benchmark may swap it; default: the system resolver)."""

    named: set[str] = field(default_factory=set)
    allow_hosts: set[str] = field(default_factory=set)
    allow_networks: list = field(default_factory=list)
    resolver: object = None
    _answers: dict = field(default_factory=dict, repr=False)  # (host, port) -> addresses, once per pass

    @classmethod
    def from_settings(cls, settings, named: Iterable[str] = ()) -> "Reach":
        """The policy for one pass: ``named`` URLs plus ``settings.allow_hosts`` / ``allow_networks``."""
        reach = cls(allow_hosts={h.lower().strip() for h in getattr(settings, "allow_hosts", ()) if h.strip()},
                    allow_networks=[ipaddress.ip_network(n.strip(), strict=False)
                                    for n in getattr(settings, "allow_networks", ()) if n.strip()])
        reach.name(named)
        return reach

    def name(self, urls: Iterable[str]) -> None:
        """Add the hosts of ``urls`` (the operator's own inputs) to the named hosts."""
        for u in urls:
            if not isinstance(u, str):
                continue
            loc = url_netloc(u) if "://" in u else (u.lower().strip() or None)
            if loc:
                self.named.add(loc)

    def is_named(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (_netloc(host, port) in self.named or host in self.allow_hosts
                or _netloc(host, port) in self.allow_hosts)

    def _addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, looked up once per pass (the check and every later connection use the
        same answer: a name cannot rebind to another address in between)."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        key = (host.lower(), port)
        if key not in self._answers:
            if self.resolver is not None:
                answer = list(self.resolver(host, port))
            else:
                try:
                    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                    answer = list(dict.fromkeys(info[4][0] for info in infos))
                except (socket.gaierror, UnicodeError) as e:  # remembered too: one lookup per pass
                    answer = OSError(f"host not found (DNS lookup failed: {e})")
            self._answers.setdefault(key, answer)  # two lookups at once: the first answer stands
        answer = self._answers[key]
        if isinstance(answer, OSError):
            raise OSError(str(answer))
        return answer

    def resolve(self, url: str, via: str = "") -> str:
        """The address to connect to for ``url``, checked; :class:`Refused` when the policy says no,
        ``OSError`` when the host does not resolve. ``via`` says how the crawler came to the URL
        (``"redirect to"``, ``"a feed entry at"``, ...) for the refusal's reason."""
        why = check_url(url)
        if why:
            raise Refused(f"refused: {why}")
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port or _DEFAULT_PORT[parts.scheme.lower()]
        addrs = self._addresses(host, port)
        if not addrs:
            raise OSError("host not found (no address)")
        if self.is_named(host, port):
            return addrs[0]
        for a in addrs:  # every answer must be allowed: a name may not mix public and private addresses
            ip = ipaddress.ip_address(a)
            if not is_public(ip) and not any(ip in n for n in self.allow_networks):
                name = a if a == host.strip("[]") else f"{a} (of {host})"
                return _raise(f"refused: {via + ' ' if via else ''}a non-public address {name} that no source names")
        return addrs[0]

    async def aresolve(self, url: str, via: str = "") -> str:
        """:meth:`resolve` off the event loop (DNS lookups block)."""
        if self.resolver is None and _is_ip_url(url):
            return self.resolve(url, via)
        return await asyncio.get_running_loop().run_in_executor(None, self.resolve, url, via)


def _raise(reason: str):
    raise Refused(reason)


def _is_ip_url(url: str) -> bool:
    try:
        ipaddress.ip_address((urlsplit(url).hostname or "").strip("[]"))
        return True
    except ValueError:
        return False


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx async transport that connects only to the address :class:`Reach` checked.

    Each request's URL host is swapped for the checked address (``Host`` stays the name; for https the
    SNI and the certificate check use the name through httpcore's ``sni_hostname``). One connection pool
    per host name, so a TLS connection made for one name never carries another name's requests."""

    def __init__(self, reach: Reach, make_pool):
        """``make_pool()``: a new inner transport (``httpx.AsyncHTTPTransport``). A request's
        ``extensions["rag_news_via"]`` words its refusal (``"redirect to"`` for a redirect hop, ...)."""
        self.reach, self.make_pool = reach, make_pool
        self._pools: dict[str, object] = {}

    async def handle_async_request(self, request):
        host = request.url.host
        via = request.extensions.get("rag_news_via", "")
        ip = await self.reach.aresolve(str(request.url), via)
        if host not in self._pools:
            self._pools[host] = self.make_pool()
        if ip != host.strip("[]"):
            request.url = request.url.copy_with(host=ip)
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._pools[host].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
