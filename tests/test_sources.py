"""Sources: the [[sources]] tables, and discovery from feeds and sitemaps served on 127.0.0.1."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

import pytest

from rag_news.errors import ConfigError
from rag_news.sample_site import serve
from rag_news.sources import Source, discover, load_sources

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>A</title><link>{base}a.html</link><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>B</title><link>{base}b.html?utm_source=rss</link><pubDate>Sun, 22 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>C</title><link>/c.html</link><pubDate>Sun, 01 Nov 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><title>D</title><link href="{base}d.html"/><updated>2026-11-20T10:00:00Z</updated></entry></feed>"""
INDEX = """<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{base}news.xml.gz</loc></sitemap></sitemapindex>"""
NEWS = """<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{base}e.html</loc><news:news><news:publication_date>2026-11-21T06:00:00+00:00</news:publication_date></news:news></url>
<url><loc>{base}a.html#top</loc><lastmod>2026-11-23</lastmod></url></urlset>"""

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)


def test_feeds_and_sitemaps_become_dated_article_urls(tmp_path):
    with serve(tmp_path) as base:
        (tmp_path / "rss.xml").write_text(RSS.format(base=base))
        (tmp_path / "atom.xml").write_text(ATOM.format(base=base))
        (tmp_path / "index.xml").write_text(INDEX.format(base=base))
        (tmp_path / "news.xml.gz").write_bytes(gzip.compress(NEWS.format(base=base).encode()))
        found = discover([Source("rss", feed=base + "rss.xml", max_age_days=7), Source("atom", feed=base + "atom.xml"),
                          Source("sitemap", sitemap=base + "index.xml"),
                          Source("missing", feed=base + "nope.xml")], now=NOW)
    urls = {t.url: t for t in found.targets}
    assert set(urls) == {base + "a.html", base + "b.html?utm_source=rss", base + "d.html", base + "e.html"}
    assert urls[base + "a.html"].published == "2026-11-23T08:00:00+00:00" and urls[base + "a.html"].source == "rss"
    assert urls[base + "e.html"].published.startswith("2026-11-21")  # news:publication_date
    assert found.per_source == {"rss": 2, "atom": 1, "sitemap": 1, "missing": 0}  # c.html too old; a.html#top = a
    assert found.failed == [{"url": base + "nope.xml", "reason": "feed: HTTP 404 File not found"}]


def test_max_articles_keeps_the_newest(tmp_path):
    with serve(tmp_path) as base:
        (tmp_path / "rss.xml").write_text(RSS.format(base=base))
        found = discover([Source("rss", feed=base + "rss.xml", max_articles=1)], now=NOW)
    assert [t.url for t in found.targets] == [base + "a.html"]


def test_sources_tables_are_validated(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text('k = 4\n[[sources]]\nname = "x"\nurls = ["http://127.0.0.1/a"]\n'
                    '[[sources]]\nfeed = "http://127.0.0.1/rss"\nmax_age_days = 3\n')
    s = load_sources(good)
    assert [x.name for x in s] == ["x", "http://127.0.0.1/rss"] and s[1].max_age_days == 3.0
    for body, msg in [('[[sources]]\nurls = ["a"]\nfeed = "http://x/rss"\n', "exactly one"),
                      ('[[sources]]\nfeed = "ftp://x/rss"\n', "http"),
                      ('[[sources]]\nfeed = "http://x/rss"\nmax_articles = 0\n', "max_articles"),
                      ('[[sources]]\nfeed = "http://x/rss"\nevery = "1h"\n', "unknown key"),
                      ('[[sources]\n', "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=msg):
            load_sources(bad)


IMAGES = """<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{base}story.html</loc>
 <news:news><news:publication_date>2026-11-22T07:00:00Z</news:publication_date></news:news>
 <image:image><image:loc>{base}img/story.jpg</image:loc></image:image></url>
<url><image:image><image:loc>{base}img/first.jpg</image:loc></image:image><loc>{base}second.html</loc></url>
</urlset>"""


def test_image_sitemap_entries_keep_the_article_url(tmp_path):
    with serve(tmp_path) as base:
        (tmp_path / "news.xml").write_text(IMAGES.format(base=base))
        found = discover([Source("news", sitemap=base + "news.xml")], now=NOW)
    assert [t.url for t in found.targets] == [base + "story.html", base + "second.html"]
    assert found.targets[0].published.startswith("2026-11-22")


def test_site_source_reads_the_sitemaps_robots_txt_lists(tmp_path):
    with serve(tmp_path) as base:
        (tmp_path / "robots.txt").write_text(f"User-agent: *\nDisallow: /private/\nSitemap: {base}maps/news.xml\n")
        (tmp_path / "maps").mkdir()
        (tmp_path / "maps" / "news.xml").write_text(NEWS.format(base=base))
        found = discover([Source("site", site=base)], now=NOW)
        (tmp_path / "robots.txt").unlink()  # no robots.txt: the conventional /sitemap.xml
        (tmp_path / "sitemap.xml").write_text(NEWS.format(base=base))
        fallback = discover([Source("site", site=base)], now=NOW)
    assert {t.url for t in found.targets} == {base + "e.html", base + "a.html#top"} == \
        {t.url for t in fallback.targets}
