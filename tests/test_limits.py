"""Limits bad servers cannot get around, and one bad page / header / pass never ends the run. Real httpx and
sites on 127.0.0.1; where a failure cannot be produced by a real component (an unexpected exception deep in
a library) the test says it injects one."""

from __future__ import annotations

import os
import signal

import pytest

from rag_news.errors import RagNewsError
from rag_news.fetch import fetch
from servers import HostileHandler, InternalHandler, PoliteHandler, serve_handler, serve_on


@pytest.fixture
def hostile():
    HostileHandler.log = []
    InternalHandler.log = []
    HostileHandler.bomb()  # made before the server answers with it (200 MB to compress)
    with serve_on(InternalHandler, "127.0.0.2") as b, serve_handler(HostileHandler) as a:
        HostileHandler.other = b
        yield a


def test_a_slow_drip_is_cut_at_the_whole_request_deadline(hostile, settings):
    result = fetch([hostile + "/drip"], settings.replace(render="never", page_timeout=2, retries=0))
    assert [e.reason for e in result.errors] == ["timed out after 2s"]


def test_decompressed_size_caps_and_truncated_gzip(hostile, settings):
    s = settings.replace(render="never", max_page_bytes=1_000_000, retries=0)
    result = fetch([hostile + p for p in ("/gzip-bomb", "/truncated-gzip", "/lying-length")], s)
    why = {e.url.rsplit("/", 1)[1]: e.reason for e in result.errors}
    assert why["gzip-bomb"] == "page too large (more than 1,000,000 bytes after decompression)"
    assert why["truncated-gzip"].startswith("truncated gzip data")
    assert why["lying-length"].startswith("network error")  # the body ended before its Content-Length


def test_sitemap_gzip_bomb_and_truncated_gzip_fail_their_source_only(hostile, settings):
    from rag_news.sources import Source, discover

    found = discover([Source("bomb", sitemap=hostile + "/bomb.xml.gz"),
                      Source("cut", sitemap=hostile + "/truncated.xml.gz"),
                      Source("ok", urls=[hostile + "/page/1"])], settings=settings.replace(max_feed_bytes=5_000_000))
    reasons = {f["url"].rsplit("/", 1)[1]: f["reason"] for f in found.failed}
    assert reasons["bomb.xml.gz"] == "sitemap: more than 5,000,000 bytes after decompression"
    assert reasons["truncated.xml.gz"].startswith("sitemap: truncated gzip data")
    assert [t.url for t in found.targets] == [hostile + "/page/1"]


def test_sitemap_fan_out_is_capped(tmp_path, settings):
    from rag_news.sample_site import serve
    from rag_news.sources import Source, discover

    with serve(tmp_path) as base:
        (tmp_path / "index.xml").write_text(
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<sitemap><loc>{base}sm{i}.xml</loc></sitemap>" for i in range(50)) + "</sitemapindex>")
        for i in range(50):
            (tmp_path / f"sm{i}.xml").write_text(
                f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<url><loc>{base}a{i}.html</loc></url></urlset>")
        found = discover([Source("index", sitemap=base + "index.xml")], settings=settings.replace(max_sitemaps=5))
    assert len(found.targets) == 5
    assert found.failed == [{"url": base + "index.xml",
                             "reason": "sitemap: 45 of its 50 child sitemaps not read (max_sitemaps 5 per source)"}]


def test_a_host_gets_at_most_its_request_budget(settings):
    PoliteHandler.reset()
    with serve_handler(PoliteHandler) as base:
        urls = [base + f"/page/{i}" for i in range(5)]
        result = fetch(urls, settings.replace(render="never", max_requests_per_host=3))
    assert len(PoliteHandler.log) == 3  # robots.txt + two pages
    assert len(result.fetched) == 2
    assert {e.reason for e in result.errors} == {
        f"refused: the request budget for {base} in this pass is spent (3 requests, max_requests_per_host)"}


def test_redirect_loop_is_a_page_error(hostile, settings):
    result = fetch([hostile + "/loop"], settings.replace(render="never"))
    assert [e.reason for e in result.errors] == ["redirect loop (too many redirects)"]


def test_http_dates_ending_in_minus_0000_are_utc():
    from rag_news.fetch.http import retry_after
    from rag_news.pipeline import _strong_date

    assert retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0
    rec = {"last_modified": "Wed, 21 Oct 2015 07:28:00 -0000", "fetched_at": "2026-11-20T10:00:00+00:00"}
    assert _strong_date(rec) is True  # no TypeError from a naive date (the poison record)
    from rag_news.fetch.http import http_date

    assert http_date("Wed, 21 Oct 2015 07:28:00 -0000").utcoffset().total_seconds() == 0
    assert http_date("not a date") is None and http_date("Wed, 99 Foo 2015 99:99:99 GMT") is None


def test_one_page_that_raises_in_cleaning_is_that_pages_error(polite_site, settings, monkeypatch):
    """Injected: clean() raising an unexpected exception for one page (standing for a library bug)."""
    import rag_news.fetch.adaptive as adaptive

    real = adaptive.clean

    def flaky_clean(doc, s):
        if doc.metadata.get("source", "").endswith("/page/2"):
            raise AttributeError("'NoneType' object has no attribute 'text' (injected)")
        return real(doc, s)

    monkeypatch.setattr(adaptive, "clean", flaky_clean)
    urls = [polite_site + f"/page/{i}" for i in range(4)]
    result = fetch(urls, settings.replace(render="never"))
    assert sorted(f.url for f in result.fetched) == [u for u in urls if not u.endswith("/2")]
    assert [e.reason for e in result.errors] == [
        "unexpected error while fetching (AttributeError: 'NoneType' object has no attribute 'text' (injected))"]


@pytest.fixture
def polite_site():
    PoliteHandler.reset()
    with serve_handler(PoliteHandler) as base:
        yield base


def test_a_broken_pdf_is_that_pages_error(hostile, settings):
    result = fetch([hostile + "/broken.pdf", hostile + "/page/1"], settings.replace(render="never"))
    assert [f.url for f in result.fetched] == [hostile + "/page/1"]
    assert result.errors[0].reason.startswith("PDF could not be read")


def test_a_mistyped_url_list_file_is_no_such_file(tmp_path, monkeypatch):
    from rag_news.urls import read_url_list

    monkeypatch.chdir(tmp_path)
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a\n")
    assert read_url_list(["urls.txt"]) == ["http://127.0.0.1:9/a"]
    with pytest.raises(RagNewsError, match=r"^no such file: urls.txtt"):
        read_url_list(["urls.txtt"])


def test_reindex_every_logs_a_failed_pass_and_carries_on(tmp_path, monkeypatch, caplog):
    """Injected: run_pass raising a RuntimeError (standing for any bug a hostile site could trigger); the
    second pass sends SIGTERM to this process, which ends the loop the way an operator would."""
    import rag_news.reindex as reindex

    cfg = tmp_path / "rag-news.toml"
    cfg.write_text(f'index_dir = "{tmp_path / "index"}"\n[[sources]]\nurls = ["http://127.0.0.1:9/a"]\n')
    calls = []

    def failing_pass(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("a bug no test foresaw (injected)")

    monkeypatch.setattr(reindex, "run_pass", failing_pass)
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert reindex.main(["--config", str(cfg), "--every", "1s"]) == 0
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    assert len(calls) == 2
    assert "pass failed unexpectedly (RuntimeError: a bug no test foresaw (injected))" in caplog.text


def test_a_pdf_that_makes_pypdf_raise_limitreachederror_is_a_reason():
    """Found by tests/test_fuzz_parsers.py against the old pdf.py: two bytes changed in a valid PDF make
    pypdf raise LimitReachedError (a self-referencing object), which pdf.py did not catch."""
    from servers import make_pdf

    from rag_news.fetch.pdf import pdf_article

    body = bytearray(make_pdf("Harbour report", "2026-11-04", ["The harbour handled cargo this year."] * 3))
    for pos, val in [(40931, 1), (999987, 0)]:
        body[pos % len(body)] = val
    out = pdf_article(bytes(body), {"source": "http://127.0.0.1/r.pdf"})
    assert isinstance(out, str) and out.startswith("PDF could not be read")


def test_robots_txt_is_read_only_up_to_its_cap(hostile, settings):
    """RFC 9309 asks for 500 KiB to be parsed; a 3 MB robots.txt is read no further than that."""
    import asyncio

    from rag_news.fetch.http import HttpFetcher
    from rag_news.fetch.polite import ROBOTS_MAX_BYTES, HostLimiter
    from rag_news.fetch.reach import Reach

    HostileHandler.robots = "User-agent: *\nDisallow: /private/\n" + "# padding\n" * 300_000

    async def go():
        async with HttpFetcher(settings, HostLimiter(), Reach.from_settings(settings, [hostile])) as door:
            return await door.get_text(hostile + "/robots.txt")

    try:
        status, text = asyncio.run(go())
    finally:
        HostileHandler.robots = "User-agent: *\nDisallow: /private/\n"
    assert status == 200 and len(text) == ROBOTS_MAX_BYTES and text.startswith("User-agent: *")


def test_a_pdf_read_past_its_time_limit_is_that_pages_error(hostile, settings):
    result = fetch([hostile + "/many-pages.pdf", hostile + "/page/1"],
                   settings.replace(render="never", pdf_timeout=0.05))
    assert [f.url for f in result.fetched] == [hostile + "/page/1"]
    assert [e.reason for e in result.errors] == ["PDF could not be read (took longer than 0.05s)"]
