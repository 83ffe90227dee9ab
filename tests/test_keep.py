"""Nothing good lost on a bad night: walls and soft 404s, redirects, a source down for longer than the
retention period, an article removed for a misread date. Real passes (run_pass: feed, fetch, clean,
embed, commit) over a copy of the sample site served on 127.0.0.1 by a handler whose answers the tests
change between passes."""

from __future__ import annotations

import functools
import http.server
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from rag_news import open_index
from rag_news.reindex import run_pass
from rag_news.sample_site import SITE_DIR, serve_handler
from rag_news.sources import Source

ARTICLES = sorted(str(p.relative_to(SITE_DIR)) for p in SITE_DIR.glob("2026/*/*.html"))
FERRY, BRIDGE, STORM = "2026/11/ferry-timetable-winter.html", "2026/10/bridge-repairs.html", "2026/11/storm-warning.html"
# a soft 404 as news sites serve them: status 200, an article-like page of about 50 words
SOFT_404 = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Page not found</title></head>
<body><nav><a href="/">Home</a></nav><article><h1>Sorry, we could not find that page</h1>
<p>The page you are looking for may have been moved, renamed or is temporarily unavailable. Please check the
address you typed, or go back to the home page and use the search box to find the story you were looking for.</p>
<p>If you think this is an error, contact our newsroom support team and tell us which link brought you here.</p>
</article></body></html>"""


class Site(http.server.SimpleHTTPRequestHandler):
    """The site folder, except for the paths in ``rules``: ``("body", html)``, ``("redirect", location)``
    or ``("status", code)``."""

    rules: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        rule = self.rules.get(self.path.split("?")[0].lstrip("/"))
        if rule is None:
            return super().do_GET()
        kind, value = rule
        if kind == "redirect":
            self.send_response(301)
            self.send_header("Location", value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = value.encode() if kind == "body" else b"<html><body>unavailable</body></html>"
        self.send_response(200 if kind == "body" else value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def write_feed(site: Path, name: str, base: str, paths, dates: dict | None = None) -> None:
    dates = dates or {}
    items = "".join(f"<item><title>{p}</title><link>{base}{p}</link>"
                    + (f"<pubDate>{dates[p]}</pubDate>" if p in dates else "") + "</item>" for p in paths)
    (site / name).write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>{items}'
                             "</channel></rss>")


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(SITE_DIR, folder)
    handler = type("TestSite", (Site,), {"rules": {}})
    with serve_handler(functools.partial(handler, directory=str(folder))) as base:
        base += "/"
        write_feed(folder, "feed.xml", base, ARTICLES)
        yield folder, base, handler.rules


def texts(settings) -> dict[str, str]:
    index = open_index(settings.index_dir, settings)
    return {r["url"]: index.article_text(r["key"]) for r in index.iter_articles()}


def test_a_soft_404_on_a_known_article_keeps_its_text_and_the_pass_says_so(site, settings, small_embedder):
    folder, base, rules = site
    sources = [Source("ledger", feed=base + "feed.xml")]
    run_pass(settings, sources, embedder=small_embedder)
    before = texts(settings)
    rules[FERRY] = ("body", SOFT_404)
    report = run_pass(settings, sources, embedder=small_embedder)
    assert texts(settings) == before  # the ferry article's text is the stored one, not the wall's
    kept = [k for k in report.summary()["kept"] if k["url"].endswith(FERRY)]
    assert len(kept) == 1 and kept[0]["reason"].startswith("kept: the page now shows ")
    assert kept[0]["reason"].endswith(" words unlike the article")
    assert report.articles_changed == 0 and report.articles_removed == 0


# the same wall, long enough (~6 x 50 words) not to be "much shorter" than an article: only its being the
# same new text on several known articles at once marks it
LONG_WALL = SOFT_404.replace("<p>", "<p>" + "We use cookies to keep this site running and to measure our audience. " * 5)


@pytest.mark.parametrize("wall", [SOFT_404, LONG_WALL], ids=["short", "long"])
def test_identical_walls_on_many_articles_are_not_copies_that_remove_them(site, settings, small_embedder, wall):
    folder, base, rules = site
    sources = [Source("ledger", feed=base + "feed.xml")]
    first = run_pass(settings, sources, embedder=small_embedder)
    walled = ARTICLES[:3]  # ~30% of the host's pages
    for p in walled:
        rules[p] = ("body", wall)
    report = run_pass(settings, sources, embedder=small_embedder)
    assert report.articles_removed == 0 and report.articles_total == first.articles_total
    assert {k["url"].removeprefix(base) for k in report.kept} == set(walled)
    index = open_index(settings.index_dir, settings)
    assert not any("could not find that page" in c.page_content for c in index.chunks())  # indexed nowhere


def test_a_redirect_to_the_front_page_is_not_indexed_under_the_article(site, settings, small_embedder):
    folder, base, rules = site
    sources = [Source("ledger", feed=base + "feed.xml")]
    run_pass(settings, sources, embedder=small_embedder)
    before = texts(settings)
    rules[STORM] = ("redirect", "/")
    report = run_pass(settings, sources, embedder=small_embedder)
    assert texts(settings) == before and report.articles_new == 0  # the front page is no article
    assert any(k["url"].endswith(STORM) and "front page" in k["reason"] for k in report.kept)


def test_a_redirect_to_another_article_is_not_indexed_under_the_old_one(site, settings, small_embedder):
    folder, base, rules = site
    sources = [Source("ledger", feed=base + "feed.xml")]
    run_pass(settings, sources, embedder=small_embedder)
    before = texts(settings)
    rules[STORM] = ("redirect", "/" + BRIDGE)
    report = run_pass(settings, sources, embedder=small_embedder)
    after = texts(settings)
    assert after[base + STORM] == before[base + STORM] and after[base + BRIDGE] == before[base + BRIDGE]
    assert len(after) == len(before) and report.articles_removed == 0
    assert any(k["url"].endswith(STORM) and BRIDGE in k["reason"] for k in report.kept)


def test_a_source_down_for_longer_than_the_retention_loses_nothing(site, settings, small_embedder):
    """Two sources; one's feed fails (then its pages are all refused) for 40 days: its articles stay,
    each pass says why. Back up, an article it no longer lists is removed."""
    folder, base, rules = site
    write_feed(folder, "ledger.xml", base, ARTICLES[:5])
    write_feed(folder, "wire.xml", base, ARTICLES[5:])
    sources = [Source("ledger", feed=base + "ledger.xml"), Source("wire", feed=base + "wire.xml")]
    now = datetime.now(timezone.utc)
    run_pass(settings, sources, embedder=small_embedder, now=now)
    rules["wire.xml"] = ("status", 503)
    down = run_pass(settings, sources, embedder=small_embedder, now=now + timedelta(days=31))
    assert down.articles_removed == 0 and down.articles_total == len(ARTICLES)
    assert {k["url"].removeprefix(base) for k in down.kept} == set(ARTICLES[5:])
    del rules["wire.xml"]
    for p in ARTICLES[5:]:
        rules[p] = ("status", 403)  # the feed is back but every page refuses us
    blocked = run_pass(settings, sources, embedder=small_embedder, now=now + timedelta(days=40))
    assert blocked.articles_removed == 0 and blocked.articles_total == len(ARTICLES)
    rules.clear()
    write_feed(folder, "wire.xml", base, ARTICLES[6:])  # back, without ARTICLES[5]
    back = run_pass(settings, sources, embedder=small_embedder, now=now + timedelta(days=41))
    assert [r["url"] for r in back.removed] == [base + ARTICLES[5]] and back.articles_total == len(ARTICLES) - 1


def test_an_article_removed_for_its_age_comes_back_when_relisted_with_another_date(site, settings, small_embedder):
    folder, base, rules = site
    sources = [Source("ledger", feed=base + "feed.xml", max_age_days=10)]
    later = datetime(2026, 11, 30, tzinfo=timezone.utc)
    run_pass(settings, [Source("ledger", feed=base + "feed.xml")], embedder=small_embedder, now=later)
    aged = run_pass(settings, sources, embedder=small_embedder, now=later)
    assert any(r["url"].endswith(BRIDGE) for r in aged.removed)  # dated 2026-10-28 by its page
    write_feed(folder, "feed.xml", base, ARTICLES, dates={BRIDGE: "Wed, 25 Nov 2026 09:00:00 GMT"})
    again = run_pass(settings, sources, embedder=small_embedder, now=later)
    index = open_index(settings.index_dir, settings)
    bridge = next((r for r in index.iter_articles() if r["url"].endswith(BRIDGE)), None)
    assert again.articles_new == 1 and bridge is not None and bridge["published"].startswith("2026-11-25")


# ------------------------------------------------------------------------------------------ Milvus leases
def test_two_writers_of_one_milvus_shard_never_overlap(settings, small_embedder):
    """Real Milvus Lite (two stores of one process on its path): a second writer of shard 0/2 exits with
    "another pass holds shard 0/2", or with ``wait`` enters only once the first has left; shard 1/2 is free."""
    import threading

    from rag_news.errors import IndexLocked
    from rag_news.store import open_store

    s = settings.replace(index_backend="milvus")
    first, second = open_store(s, small_embedder, create=True), open_store(s, small_embedder, create=True)
    events = []
    try:
        with first.writer(shard=(0, 2)):
            with pytest.raises(IndexLocked, match=r"another pass holds shard 0/2"):
                with second.writer(shard=(0, 2)):
                    pass
            with pytest.raises(IndexLocked, match=r"another pass holds shard 0/2"):
                with second.writer():  # a whole-index pass conflicts with every shard
                    pass
            with second.writer(shard=(1, 2)):
                events.append("other shard")

            def waiter():
                with second.writer(shard=(0, 2), wait=True):
                    events.append("second in")

            t = threading.Thread(target=waiter)
            t.start()
            t.join(3)  # it is waiting
            events.append("first out")
        t.join(60)
        assert events == ["other shard", "first out", "second in"]
        with first.writer(shard=(0, 2)):  # every claim was withdrawn
            pass
    finally:
        first.close()
        second.close()
