"""Sources: where article URLs come from — explicit lists, RSS/Atom feeds and (news) sitemaps.

Entry points: :func:`load_sources` reads the ``[[sources]]`` tables of the settings file; :func:`discover`
turns them into :class:`Target` URLs (with the feed's or sitemap's date where there is one), applying each
source's ``max_articles`` and ``max_age_days``. Feeds are parsed by ``feedparser``; sitemaps (``urlset``,
``sitemapindex``, gzipped or not, Google News ``news:publication_date``) by ``lxml``.

Feeds, sitemaps (and each child of a sitemap index) and robots.txt are read through the fetch stage's one
door (:class:`rag_news.fetch.http.HttpFetcher`): http(s) only, the reach policy (:func:`reach_for`: the
hosts the sources name), robots.txt, a deadline per request, ``max_feed_bytes`` after decompression, at
most ``max_sitemaps`` child sitemaps per source.

    [[sources]]
    name = "Ledger"                      # optional; shown in reports and kept on each article
    feed = "https://example.com/rss.xml" # or: sitemap = "...", or: urls = ["...", "..."], or:
                                         # site = "https://example.com/" (the sitemaps its robots.txt lists)
    max_articles = 50                    # newest first, when dates are known
    max_age_days = 14                    # older articles are not fetched, and are removed from the index
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import read_toml
from .urls import normalize_url

log = logging.getLogger(__name__)
_KEYS = {"name", "urls", "feed", "sitemap", "site", "max_articles", "max_age_days"}


@dataclass
class Source:
    name: str
    urls: list[str] = field(default_factory=list)
    feed: str | None = None
    sitemap: str | None = None
    site: str | None = None  # a site's home: its sitemaps are read from its robots.txt
    max_articles: int | None = None
    max_age_days: float | None = None


@dataclass
class Target:
    """One article URL to (re)index, and what discovery knew about it."""

    url: str
    source: str | None = None
    published: str | None = None  # ISO date from the feed / sitemap, if any


@dataclass
class Discovery:
    targets: list[Target]
    failed: list[dict]  # {"url": feed or sitemap, "reason"}
    per_source: dict[str, int]
    duplicates: int = 0  # URL variants (tracking parameters, #fragments, ...) and repeats across sources


def _source_from(i: int, raw: Any) -> Source:
    where = f"[[sources]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})")
    kinds = [k for k in ("urls", "feed", "sitemap", "site") if raw.get(k)]
    if len(kinds) != 1:
        raise ConfigError(f"{where} needs exactly one of urls, feed, sitemap, site")
    urls = raw.get("urls") or []
    if isinstance(urls, str) or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"{where}: urls must be a list of strings")
    for key in ("feed", "sitemap", "site"):
        if raw.get(key) is not None and not str(raw[key]).startswith(("http://", "https://")):
            raise ConfigError(f"{where}: {key} must be an http(s) URL")
    n = raw.get("max_articles")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ConfigError(f"{where}: max_articles must be a positive integer")
    age = raw.get("max_age_days")
    if age is not None and (not isinstance(age, (int, float)) or age <= 0):
        raise ConfigError(f"{where}: max_age_days must be a positive number")
    name = str(raw.get("name") or raw.get("feed") or raw.get("sitemap") or raw.get("site") or f"urls-{i}")
    return Source(name=name, urls=list(urls), feed=raw.get("feed"), sitemap=raw.get("sitemap"), site=raw.get("site"),
                  max_articles=n, max_age_days=float(age) if age is not None else None)


def load_sources(config: str | Path) -> list[Source]:
    """The ``[[sources]]`` of a TOML settings file (validated; one-line ``ConfigError`` otherwise)."""
    path = Path(config)
    data = read_toml(path)
    raw = data.get("sources", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'sources' must be an array of tables ([[sources]])")
    sources = [_source_from(i, r) for i, r in enumerate(raw, start=1)]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two sources have the same name")
    return sources


# ------------------------------------------------------------------------------------------ fetching
def reach_for(sources: list[Source], settings=None, base_url: str | None = None):
    """The reach policy of a pass over ``sources``: the hosts they name (feed, sitemap, site, URL lists,
    ``base_url``) plus ``settings.allow_hosts`` / ``allow_networks``."""
    from .fetch.reach import Reach
    from .settings import Settings

    named = [base_url] if base_url else []
    for src in sources:
        named += [u for u in (src.feed, src.sitemap, src.site) if u]
        named += [urllib.parse.urljoin(base_url, u) if base_url else u for u in src.urls]
    return Reach.from_settings(settings or Settings(), named)


def _body(data: bytes, cap: int) -> bytes:
    """A gzipped file (``.xml.gz``) decompressed within ``cap``; others as they are."""
    from .fetch.http import gunzip

    return gunzip(data, cap) if data[:2] == b"\x1f\x8b" else data


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):  # feedparser's time.struct_time (UTC)
        return datetime(*value[:6], tzinfo=timezone.utc).isoformat()
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


def parse_feed(body: bytes, base: str) -> list[Target]:
    import feedparser

    parsed = feedparser.parse(body, response_headers={"content-location": base})
    if parsed.bozo and not parsed.entries:
        raise OSError(f"not a feed ({type(parsed.bozo_exception).__name__})")
    out = []
    for e in parsed.entries:
        link = e.get("link")
        if not link:
            continue
        date = e.get("published_parsed") or e.get("updated_parsed")
        out.append(Target(url=urllib.parse.urljoin(base, link), published=_iso(date)))
    return out


def parse_sitemap(body: bytes) -> tuple[list[Target], list[str]]:
    """``(articles, child sitemaps)`` of a sitemap or sitemap index."""
    from lxml import etree

    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        raise OSError(f"not a sitemap ({e})") from None
    tag = etree.QName(root).localname
    children, out = [], []
    for el in root:
        if not isinstance(el.tag, str):
            continue
        # the entry's own <loc>/<lastmod> are its direct children; <image:loc> and friends sit deeper
        own = {etree.QName(c).localname: (c.text or "").strip() for c in el if isinstance(c.tag, str)}
        loc = own.get("loc")
        if not loc:
            continue
        if tag == "sitemapindex":
            children.append(loc)
            continue
        news_date = next(((c.text or "").strip() for c in el.iter() if isinstance(c.tag, str)
                          and etree.QName(c).localname == "publication_date"), None)
        out.append(Target(url=loc, published=_iso(news_date or own.get("lastmod"))))
    return out, children


async def read_sitemaps(door, urls: list[str], failed: list[dict], via: str = "") -> list[Target]:
    """Articles of sitemaps (following sitemap indexes two levels down, at most ``max_sitemaps`` child
    sitemaps); failures appended to ``failed``."""
    cap, budget = door.settings.max_feed_bytes, door.settings.max_sitemaps
    found, queue, depth, children = [], list(urls), 0, 0
    while queue and depth < 3:
        nxt = []
        for sm in queue:
            try:
                arts, kids = parse_sitemap(_body(await door.get_document(sm, cap, via), cap))
            except OSError as e:
                failed.append({"url": sm, "reason": f"sitemap: {e}"})
                continue
            found.extend(arts)
            room = max(0, budget - children - len(nxt))
            if len(kids) > room:
                failed.append({"url": sm, "reason": f"sitemap: {len(kids) - room:,} of its {len(kids):,} child sitemaps "
                               f"not read (max_sitemaps {budget:,} per source)"})
            nxt.extend(kids[:room])
        children += len(nxt)
        queue, depth, via = nxt, depth + 1, "a sitemap index entry at"
    return found


async def robots_sitemaps(door, site: str) -> list[str]:
    """The sitemaps a site's robots.txt lists (``Sitemap:`` lines), else its ``/sitemap.xml``."""
    from protego import Protego

    root = urllib.parse.urljoin(site, "/")
    if door.robots is not None:
        listed, problem = await door.robots.listing(root)
        if problem:
            raise OSError(f"robots.txt: {problem}")
    else:
        status, text = await door.get_text(root + "robots.txt")
        if status >= 500:
            raise OSError(f"robots.txt: HTTP {status}")
        listed = list(Protego.parse(text).sitemaps) if 200 <= status < 300 else []
    return [urllib.parse.urljoin(root, u) for u in listed] or [root + "sitemap.xml"]


def _apply_limits(targets: list[Target], source: Source, now: datetime) -> list[Target]:
    if source.max_age_days is not None:
        cutoff = now - timedelta(days=source.max_age_days)
        targets = [t for t in targets if not t.published or datetime.fromisoformat(t.published) >= cutoff]
    if source.max_articles is not None and len(targets) > source.max_articles:
        dated = sorted((t for t in targets if t.published), key=lambda t: t.published, reverse=True)
        undated = [t for t in targets if not t.published]
        targets = (dated + undated)[: source.max_articles]
    return targets


def discover(sources: list[Source], timeout: float = 30.0, user_agent: str = "rag-news",
             now: datetime | None = None, base_url: str | None = None, settings=None, reach=None) -> Discovery:
    """Article URLs from every source, de-duplicated across sources (first source wins). ``settings``:
    limits, politeness and reach settings (default: ``Settings(page_timeout=timeout, user_agent=...)``);
    ``reach``: the pass's policy (default :func:`reach_for` the sources)."""
    import asyncio
    import concurrent.futures

    from .settings import Settings

    settings = settings or Settings(page_timeout=timeout, user_agent=user_agent)
    reach = reach if reach is not None else reach_for(sources, settings, base_url)
    args = (sources, settings, reach, now or datetime.now(timezone.utc), base_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_discover(*args))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # inside a running loop (Jupyter)
        return pool.submit(lambda: asyncio.run(_discover(*args))).result()


async def _discover(sources: list[Source], settings, reach, now: datetime, base_url: str | None) -> Discovery:
    from .fetch.http import HttpFetcher
    from .fetch.polite import HostLimiter

    limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_interval, settings.autothrottle,
                          budget=settings.max_requests_per_host)
    targets: list[Target] = []
    failed: list[dict] = []
    per_source: dict[str, int] = {}
    seen: set[str] = set()
    duplicates = 0
    async with HttpFetcher(settings, limiter, reach) as door:
        for src in sources:
            found = await _one_source(door, src, failed, base_url)
            found = _apply_limits(found, src, now)
            kept = 0
            for t in found:
                key = normalize_url(t.url)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                t.source = src.name
                targets.append(t)
                kept += 1
            per_source[src.name] = kept
            log.info("source %s: %d article URLs", src.name, kept)
    return Discovery(targets=targets, failed=failed, per_source=per_source, duplicates=duplicates)


async def _one_source(door, src: Source, failed: list[dict], base_url: str | None) -> list[Target]:
    """One source's article URLs (its failures appended to ``failed``; a surprise fails only this source)."""
    cap = door.settings.max_feed_bytes
    try:
        if src.urls:
            return [Target(url=urllib.parse.urljoin(base_url, u) if base_url else u) for u in src.urls]
        if src.feed:
            try:
                return parse_feed(_body(await door.get_document(src.feed, cap), cap), src.feed)
            except OSError as e:
                failed.append({"url": src.feed, "reason": f"feed: {e}"})
                return []
        if src.sitemap:
            return await read_sitemaps(door, [src.sitemap], failed)
        try:
            listed = await robots_sitemaps(door, src.site)
        except OSError as e:
            failed.append({"url": src.site, "reason": f"site: {e}"})
            return []
        return await read_sitemaps(door, listed, failed, "a robots.txt Sitemap: line at")
    except Exception as e:  # noqa: BLE001 - one source's surprise is that source's failure
        log.warning("source %s failed", src.name, exc_info=e)
        failed.append({"url": src.feed or src.sitemap or src.site or src.name,
                       "reason": f"unexpected error ({type(e).__name__}: {str(e)[:160]})"})
        return []
