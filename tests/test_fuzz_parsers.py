"""Fuzzing the parsers a hostile site feeds (hypothesis, a bounded budget per parser): the cleaner, feeds,
sitemaps, robots.txt, PDFs and gzip bodies. Each may refuse an input with its documented error (a reason
string, OSError); nothing else may escape. Budget: ``RAG_NEWS_FUZZ_EXAMPLES`` examples per parser
(default 150; derandomized, so a run is reproducible)."""

from __future__ import annotations

import gzip
import os

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("RAG_NEWS_FUZZ_EXAMPLES", "150"))
BUDGET = hsettings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_TAGS = ["html", "head", "body", "article", "p", "div", "h1", "title", "meta", "script", "style", "a", "nav",
         "time", "rss", "channel", "item", "link", "feed", "entry", "urlset", "url", "loc", "sitemapindex",
         "sitemap", "lastmod", "news:publication_date", "![CDATA[", "!DOCTYPE x [<!ENTITY a 'aaaa'>]", "?xml"]
_markup = st.lists(st.one_of(
    st.sampled_from(_TAGS).map(lambda t: f"<{t}>"), st.sampled_from(_TAGS).map(lambda t: f"</{t}>"),
    st.sampled_from(['<meta charset="utf-8">', '<meta property="og:title" content="x">', "&amp;", "&#0;",
                     "&a;", "\x00", "\ud7ff", "<p>" + "word " * 60 + "</p>", 'href="javascript:x"',
                     "<link>file:///etc/passwd</link>", "<loc>http://127.0.0.1/a</loc>", "]]>", "-->"]),
    st.text(max_size=40)), max_size=40).map("".join)


@BUDGET
@given(_markup)
def test_clean_never_raises(html):
    from langchain_core.documents import Document

    from rag_news.clean import clean
    from rag_news.settings import Settings

    out = clean(Document(html, metadata={"source": "http://127.0.0.1/x", "final_url": "http://127.0.0.1/x"}),
                Settings())
    assert out is None or isinstance(out.page_content, str)


@BUDGET
@given(st.one_of(_markup.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=2000)))
def test_feed_and_sitemap_parsers_raise_only_oserror(body):
    from rag_news.sources import parse_feed, parse_sitemap

    for parse in (lambda b: parse_feed(b, "http://127.0.0.1/feed"), parse_sitemap):
        try:
            parse(body)
        except OSError:
            pass


@BUDGET
@given(st.lists(st.one_of(
    st.sampled_from(["User-agent: *", "User-agent: rag-news", "Disallow: /", "Disallow:", "Allow: /a$",
                     "Disallow: /*?", "Crawl-delay: 5", "Crawl-delay: -1", "Crawl-delay: 1e400", "Crawl-delay: nan",
                     "Sitemap: file:///etc/passwd", "Sitemap: http://10.0.0.5/s.xml", "Request-rate: 1/0", "\x00"]),
    st.text(max_size=30)), max_size=30).map("\n".join), st.text(max_size=30))
def test_robots_txt_parser_never_raises(text, path):
    from protego import Protego

    from rag_news.fetch.polite import HostLimiter

    rules = Protego.parse(text)
    rules.can_fetch("http://127.0.0.1/" + path, "rag-news")
    list(rules.sitemaps)
    delay = rules.crawl_delay("rag-news")
    if delay is not None:  # what Robots does with it: bounded, whatever the file says
        limiter = HostLimiter()
        limiter.set_crawl_delay("http://127.0.0.1/", float(delay))
        assert 0 <= limiter.spacing("http://127.0.0.1/") <= 60 or delay != delay


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, val in edits:
        if buf:
            buf[pos % len(buf)] = val
    return bytes(buf)


@BUDGET
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
       st.integers(0, 2000), st.booleans())
def test_pdf_reader_returns_an_article_or_a_reason(edits, cut, truncate):
    from servers import make_pdf

    from rag_news.fetch.pdf import pdf_article

    body = _mutate(make_pdf("Harbour report", "2026-11-04", ["The harbour handled cargo this year."] * 3), edits)
    if truncate:
        body = body[:cut]
    out = pdf_article(body, {"source": "http://127.0.0.1/r.pdf"}, max_pages=5)
    assert isinstance(out, str) or out.page_content


@BUDGET
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.integers(0, 4000))
def test_gzip_bodies_decode_within_the_cap_or_fail_with_oserror(edits, cut):
    from rag_news.fetch.http import gunzip

    body = _mutate(gzip.compress(b"<urlset>" + b"<url><loc>http://127.0.0.1/a</loc></url>" * 200), edits)[:cut or None]
    try:
        out = gunzip(body, 20000)
    except OSError:
        return
    assert len(out) <= 20000
