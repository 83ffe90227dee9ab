"""Crawl within bounds: the reach policy, robots.txt in every path, limits bad servers cannot get around.

Two local sites: A (127.0.0.1, listed by the operator) and B (127.0.0.2, listed by nobody — it stands for
an internal service or a cloud metadata address). Real httpx, real Chromium, default ``render = "auto"``.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from rag_news.fetch import fetch
from servers import HostileHandler, InternalHandler, PoliteHandler, serve_handler, serve_on


@pytest.fixture
def sites():
    """``(a, b)``: site A's and site B's base URLs; both logs cleared."""
    InternalHandler.log = []
    HostileHandler.log = []
    HostileHandler.robots = "User-agent: *\nDisallow: /private/\n"
    with serve_on(InternalHandler, "127.0.0.2") as b, serve_handler(HostileHandler) as a:
        HostileHandler.other = b
        yield a, b


def test_a_listed_site_cannot_lead_the_crawler_to_an_unlisted_one(sites, settings):
    a, b = sites
    urls = [a + p for p in ("/redirect-to-b", "/meta-to-b", "/script-to-b", "/embeds-b")]
    result = fetch(urls, settings)  # render = "auto": these hosts are sampled in Chromium too
    assert InternalHandler.log == []  # site B got no request at all: not the redirect, not Chromium
    for f in result.fetched:
        assert InternalHandler.SECRET not in f.article.page_content
    errors = {e.url: e.reason for e in result.errors}
    host_b = b.split("//")[1].split(":")[0]
    assert errors[urls[0]] == f"refused: redirect to a non-public address {host_b} that no source names"


def test_a_host_the_operator_allows_is_reached(sites, settings):
    a, b = sites
    result = fetch([a + "/redirect-to-b"], settings.replace(render="never", allow_hosts=(b.split("//")[1],)))
    assert [f.meta["final_url"] for f in result.fetched] == [b + "/internal"]
    assert InternalHandler.log == ["/robots.txt", "/internal"]  # robots.txt of the redirect's host first


def test_robots_txt_is_read_before_the_render_sample(sites, settings):
    a, _ = sites
    urls = [a + "/private/secret.html", a + "/page/1", a + "/page/2"]
    result = fetch(urls, settings)  # default render = "auto": the host's first pages are its render sample
    assert [e.url for e in result.skipped] == [urls[0]]
    assert "disallowed by robots.txt" in result.skipped[0].reason
    assert not [p for p in HostileHandler.log if p.startswith("/private/")]  # Chromium never asked either
    assert HostileHandler.log[0] == "/robots.txt"


def test_crawl_delay_spaces_chromium_navigations_too(settings):
    PoliteHandler.reset("User-agent: *\nCrawl-delay: 2\n")
    with serve_handler(PoliteHandler) as base:
        urls = [base + "/js-only"] + [base + f"/page/{i}" for i in range(2)]
        fetch(urls, settings.replace(render="always", per_host_concurrency=4))
    pages = sorted(start for path, start, _, _ in PoliteHandler.log if path != "/robots.txt")
    assert len(pages) >= 6  # each page served, then rendered
    gaps = [y - x for x, y in zip(pages, pages[1:])]
    # Crawl-delay: 2 between every request start, browser's included; the server logs arrivals, which a
    # loaded machine can bring up to ~0.1 s closer together (0.93 s seen for a 1 s delay), hence 1.75
    assert min(gaps) >= 1.75, gaps


def test_discovery_goes_through_the_same_door(sites, settings):
    from rag_news.fetch.reach import Reach
    from rag_news.sources import Source, discover

    a, b = sites
    found = discover([Source("feed", feed=a + "/feed-file.xml"), Source("index", sitemap=a + "/index-to-b.xml")],
                     settings=settings)
    assert InternalHandler.log == []
    reasons = {f["url"]: f["reason"] for f in found.failed}
    assert reasons["file:///etc/passwd"].startswith("sitemap: refused: unsupported URL scheme 'file:'")
    assert reasons[b + "/sm.xml"] == ("sitemap: refused: a sitemap index entry at a non-public address 127.0.0.2 "
                                      "that no source names")
    # the feed's entries are targets; the fetch stage refuses each with its reason
    result = fetch([t.url for t in found.targets], settings.replace(render="never"),
                   reach=Reach.from_settings(settings, [a]))
    why = {e.url: e.reason for e in result.errors}
    assert "unsupported URL scheme 'file:'" in why["file://etc/passwd"]  # (as feedparser + urljoin left it)
    assert "unsupported URL scheme 'ftp:'" in why["ftp://127.0.0.1/x"]
    assert why[b + "/from-feed"] == "refused: a non-public address 127.0.0.2 that no source names"
    assert InternalHandler.log == []


def test_public_and_non_public_addresses():
    from rag_news.fetch.reach import Reach, Refused, is_public

    for a in ("127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
              "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.5", "224.0.0.1", "240.0.0.1"):
        assert not is_public(ipaddress.ip_address(a)), a
    for a in ("93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert is_public(ipaddress.ip_address(a)), a
    reach = Reach.from_settings(_S(), ["http://127.0.0.1:8001/list"])
    with pytest.raises(Refused, match=r"^refused: redirect to a non-public address 10.0.0.5 that no source names$"):
        reach.resolve("http://10.0.0.5/latest/meta-data/", "redirect to")  # checked, never connected
    with pytest.raises(Refused, match="127.0.0.1 that no source names"):
        reach.resolve("http://127.0.0.1:8002/")  # named with its port: another port is another host
    assert reach.resolve("http://127.0.0.1:8001/other") == "127.0.0.1"
    with pytest.raises(Refused, match="unsupported URL scheme 'file:'"):
        reach.resolve("file:///etc/passwd")
    nets = Reach.from_settings(_S(allow_networks=("10.1.0.0/16",)))
    assert nets.resolve("http://10.1.2.3/") == "10.1.2.3"
    fake = Reach(resolver=lambda host, port: ["10.0.0.5"])  # a public-looking name that resolves inside
    with pytest.raises(Refused, match=r"10.0.0.5 \(of news.example\) that no source names"):
        fake.resolve("http://news.example/")


class _S:
    def __init__(self, allow_hosts=(), allow_networks=()):
        self.allow_hosts, self.allow_networks = allow_hosts, allow_networks


def test_the_checked_address_is_the_one_connected_to(settings):
    """A name is resolved once per pass; the connection goes to that address and Host keeps the name. The
    resolver is swapped for one that answers 127.0.0.2 (allowed) first and 127.0.0.1 (not) after, as a
    rebinding DNS would; a second site listens on 127.0.0.1 at the same port and must get nothing."""
    from rag_news.fetch.http import HttpFetcher
    from rag_news.fetch.polite import HostLimiter
    from rag_news.fetch.reach import Reach

    InternalHandler.log, InternalHandler.hosts = [], []
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
    with serve_on(InternalHandler, "127.0.0.2") as b:
        port = int(b.rsplit(":", 1)[1])
        PoliteHandler.reset()
        try:
            other = serve_on(PoliteHandler, "127.0.0.1", port)
            other.__enter__()
        except OSError:
            pytest.skip(f"127.0.0.1:{port} is taken")
        try:
            reach = Reach(allow_networks=[ipaddress.ip_network("127.0.0.2/32")], resolver=lambda h, p: next(answers))

            async def go():
                async with HttpFetcher(settings.replace(obey_robots=False), HostLimiter(), reach) as door:
                    return [await door.get_document(f"http://rebind.example:{port}/x{i}", 100_000) for i in range(2)]

            bodies = asyncio.run(go())
        finally:
            other.__exit__(None, None, None)
    assert InternalHandler.log == ["/x0", "/x1"] and PoliteHandler.log == []
    assert InternalHandler.hosts == [f"rebind.example:{port}"] * 2
    assert all(InternalHandler.SECRET.encode() in body for body in bodies)
