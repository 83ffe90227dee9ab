"""The Chromium renderer against real Chromium and pages served on 127.0.0.1."""

import asyncio
import http.server
import socket
import threading
import time

import pytest

from rag_news.errors import BrowserNotFound
from rag_news.fetch import check_url
from rag_news.fetch.render import ChromiumScraper, ascrape, find_browser, scrape
from servers import article_html, serve_handler


def test_js_inserted_text_is_captured(site_article_urls, settings):
    result = scrape(site_article_urls[:2], settings)
    assert result.errors == []
    assert len(result.pages) == 2
    tidal = next(p for p in result.pages if "tidal-plant-opens" in p.metadata["source"])
    # this paragraph is added by a script 150 ms after the load event
    assert "The first full day of operation produced 612 megawatt-hours" in tidal.page_content
    assert tidal.metadata["status"] == 200 and tidal.metadata["content_type"] == "text/html"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_bad_url_battery_gives_structured_errors_never_content(bad_site, settings):
    dead = f"http://127.0.0.1:{_free_port()}/article"
    urls = {
        "ok": bad_site + "/ok",
        "flaky": bad_site + "/flaky",  # 500 first, 200 on the retry
        "missing": bad_site + "/missing",
        "always500": bad_site + "/always500",
        "hang": bad_site + "/hang",
        "pdf": bad_site + "/doc.pdf",
        "png": bad_site + "/image.png",
        "loop": bad_site + "/loop",
        "huge": bad_site + "/huge",
        "refused": dead,
        "file": "file:///etc/passwd",
        "js": "javascript:alert(1)",
        "malformed": "http//no-scheme.example",
    }
    s = settings.replace(page_timeout=2, retries=1, max_page_bytes=1_000_000, settle_ms=300)
    result = scrape(list(urls.values()), s)
    got = {p.metadata["source"] for p in result.pages}
    assert got == {urls["ok"], urls["flaky"]}
    attempts = {p.metadata["source"]: p.metadata["attempts"] for p in result.pages}
    assert attempts == {urls["ok"]: 1, urls["flaky"]: 2}  # the flaky page succeeded on its retry
    errors = {e.url: e for e in result.errors}
    assert set(errors) == set(urls.values()) - got

    def reason(name):
        return errors[urls[name]].reason

    assert errors[urls["missing"]].status == 404 and "HTTP 404" in reason("missing")
    assert errors[urls["missing"]].attempts == 1  # 4xx is not retried
    assert errors[urls["always500"]].status == 500 and errors[urls["always500"]].attempts == 2
    assert "timed out" in reason("hang")
    assert "not an HTML page" in reason("pdf") and "application/pdf" in reason("pdf")
    assert "not an HTML page" in reason("png")
    assert "redirect loop" in reason("loop")
    assert "too large" in reason("huge")
    # robots.txt comes first on every path: an unreachable host's robots.txt means nothing is fetched there
    assert reason("refused") == "connection refused (while fetching robots.txt; the host is not fetched)"
    assert errors[dead].attempts == 0
    assert "unsupported URL scheme 'file:'" in reason("file") and errors[urls["file"]].attempts == 0
    assert "unsupported URL scheme 'javascript:'" in reason("js")
    assert "malformed URL" in reason("malformed")
    for page in result.pages:  # failures never leak into page content
        assert "Error" not in page.page_content[:200]


def test_check_url():
    assert check_url("https://example.org/a?b=1") is None
    assert "no host" in check_url("http:///path")
    assert "whitespace" in check_url("http://exa mple.org/")
    assert "scheme" in check_url("ftp://example.org/file")
    assert "no scheme" in check_url("example.org/news")


class _Counting(http.server.BaseHTTPRequestHandler):
    active = 0
    peak = 0
    paths: list = []
    agents: list = []
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_GET(self):
        cls = type(self)
        with cls.lock:
            cls.paths.append(self.path)
            cls.agents.append(self.headers.get("User-Agent", ""))
        if not self.path.startswith("/story/"):  # images, and Chromium's own /favicon.ico
            body, ctype = b"\x89PNG\r\n\x1a\n", "image/png"
        else:
            with cls.lock:
                cls.active += 1
                cls.peak = max(cls.peak, cls.active)
            time.sleep(0.4)
            with cls.lock:
                cls.active -= 1
            body = article_html(f"Story {self.path}").replace(
                "<footer>", '<img src="/pixel.png"><footer>').encode()
            ctype = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_concurrency_is_bounded_images_blocked_user_agent_set(settings):
    with serve_handler(_Counting) as base:
        s = settings.replace(concurrency=2, settle_ms=0, user_agent="rag-news-test-agent/1.0")
        result = scrape([f"{base}/story/{i}" for i in range(6)], s)
    assert len(result.pages) == 6 and not result.errors
    assert _Counting.peak == 2  # six slow pages, never more than two at once
    assert not any(p.endswith(".png") for p in _Counting.paths)  # images are not downloaded
    assert set(_Counting.agents) == {"rag-news-test-agent/1.0"}


def test_sync_entry_point_works_inside_a_running_event_loop(site_article_urls, settings):
    async def notebook_cell():  # Jupyter runs cells inside a live asyncio loop
        return scrape(site_article_urls[:1], settings)

    result = asyncio.run(notebook_cell())
    assert len(result.pages) == 1


def test_async_entry_point_and_one_browser_for_many_pages(site_article_urls, settings):
    async def go():
        async with ChromiumScraper(settings) as scraper:
            browser = scraper._browser
            first = await scraper.scrape(site_article_urls[:3])
            second = await scraper.fetch(site_article_urls[3])
            assert scraper._browser is browser and len(browser.contexts) == 1
            return first, second

    first, second = asyncio.run(go())
    assert len(first.pages) == 3 and second.metadata["status"] == 200
    only_bad = asyncio.run(ascrape(["file:///x", "mailto:a@b"], settings))  # no browser started
    assert [e.attempts for e in only_bad.errors] == [0, 0]


def test_browser_path_is_configurable_and_missing_browser_is_a_clear_error(settings):
    assert find_browser(settings) is not None  # Debian's chromium on PATH
    with pytest.raises(BrowserNotFound, match="not an executable"):
        scrape(["http://127.0.0.1:9/"], settings.replace(browser_path="/nonexistent/chromium"))


def test_page_that_navigates_itself_after_load(settings):
    from servers import RedirectingHandler

    with serve_handler(RedirectingHandler) as base:
        result = scrape([base + "/bounce"], settings.replace(settle_ms=1000))
    assert not result.errors, result.errors
    page = result.pages[0]
    assert page.metadata["page_url"].endswith("/landed") and "lighthouse" in page.page_content
    assert page.metadata["final_url"].endswith("/bounce")  # identity: the URL asked for, after HTTP redirects


def test_failed_script_redirect_never_yields_the_browser_error_page(settings):
    from servers import RedirectingHandler

    with serve_handler(RedirectingHandler) as base:
        # to a closed port, and an upgrade to https on a plain-http server (Chromium's SSL error page)
        result = scrape([base + "/bounce-dead", base + "/bounce-https"], settings.replace(settle_ms=1500))
    for page in result.pages:  # the document as served, flagged; never Chromium's error page
        assert page.metadata["client_redirect"] == "failed", page.metadata
        assert "Wait..." in page.page_content and "main-frame-error" not in page.page_content
    for error in result.errors:  # or, when no earlier snapshot exists, a clear error
        assert error.reason.startswith("the page redirected itself to an unreachable address")
    assert len(result.pages) + len(result.errors) == 2
    assert len(result.pages) >= 1  # with the redirect 300 ms after load, the snapshot is normally there


def test_tab_is_replaced_after_a_success_on_retry(bad_site, settings):
    async def go():
        async with ChromiumScraper(settings.replace(concurrency=1, settle_ms=0)) as scraper:
            opened = []
            scraper._context.on("page", lambda p: opened.append(p))
            # /flaky?tab-test answers 500 once, then 200: attempt 1 in the worker's tab, attempt 2 in a new tab
            result = await scraper.scrape([bad_site + "/flaky?tab-test", bad_site + "/ok?after"])
            return result, len(opened)

    result, tabs = asyncio.run(go())
    assert [p.metadata["attempts"] for p in result.pages] == [2, 1]
    assert tabs == 3  # worker tab, retry tab, and a fresh tab for the next URL (not the one left on the 500)


def test_sandbox_decision(settings, monkeypatch):
    from rag_news.fetch import render

    monkeypatch.setattr(render.os, "geteuid", lambda: 0)
    assert render.sandbox_flags(settings)[0] == ["--no-sandbox"]  # Chromium cannot sandbox itself as root
    assert render.sandbox_flags(settings.replace(browser_sandbox="on"))[0] == []
    monkeypatch.setattr(render.os, "geteuid", lambda: 1000)
    flags, why = render.sandbox_flags(settings)
    assert (flags, why) == ([], "sandbox on") or why.startswith("sandbox off: the kernel forbids")


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root: a sandboxed launch must fail")
def test_a_sandboxed_launch_that_fails_falls_back_and_says_why(settings, monkeypatch):
    """Run as root, with geteuid made to say otherwise: "auto" tries the sandbox, real Chromium refuses
    (root without --no-sandbox), and the scraper starts without it and says so."""
    from rag_news.fetch import render

    monkeypatch.setattr(render.os, "geteuid", lambda: 1000)
    if render.sandbox_flags(settings)[0]:
        pytest.skip("this kernel forbids user namespaces: no sandboxed launch to try")

    async def go():
        async with ChromiumScraper(settings) as scraper:
            return scraper.sandbox

    assert asyncio.run(go()).startswith("sandbox off: Chromium could not start sandboxed")
