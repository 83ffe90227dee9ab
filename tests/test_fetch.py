"""The fetch stage: static first and Chromium where needed, politeness (robots.txt, per-host limits,
Retry-After), PDFs, the bad-URL battery. Real httpx, real Chromium, servers on 127.0.0.1."""

from __future__ import annotations

import re

import pytest

from rag_news import index_urls, open_index
from rag_news.fetch import MemoryNotes, fetch
from rag_news.fetch.adaptive import compare, static_problem
from rag_news.fetch.http import retry_after
from rag_news.sample_site import SITE_DIR
from servers import BadSiteHandler, PoliteHandler, serve_handler


@pytest.fixture
def polite_site():
    PoliteHandler.reset()
    with serve_handler(PoliteHandler) as base:
        yield base


def starts(path_prefix: str) -> list[float]:
    import time

    for _ in range(500):  # a handler logs after its response is sent: let the server's threads finish
        if PoliteHandler.active == 0:
            break
        time.sleep(0.01)
    return sorted(start for path, start, _, _ in PoliteHandler.log if path.startswith(path_prefix))


def test_robots_disallow_and_crawl_delay_are_obeyed(polite_site, settings):
    PoliteHandler.robots = ("User-agent: rag-news\nDisallow: /private/\nCrawl-delay: 1\n\n"
                            "User-agent: *\nDisallow: /\n")
    urls = [polite_site + f"/page/{i}" for i in range(3)] + [polite_site + "/private/secret"]
    result = fetch(urls, settings.replace(render="never"))
    assert sorted(f.url for f in result.fetched) == urls[:3]
    assert [(e.url, e.reason) for e in result.skipped] == [
        (urls[3], "disallowed by robots.txt (user agent 'rag-news')")]
    assert not starts("/private/")  # never requested
    assert len(starts("/robots.txt")) == 1  # once per host per pass
    gaps = [b - a for a, b in zip(starts("/page/"), starts("/page/")[1:])]
    assert len(gaps) == 2 and min(gaps) >= 0.95  # Crawl-delay: 1

    other = fetch(urls[:1], settings.replace(render="never", robots_agent="otherbot"))  # falls under "*"
    assert other.fetched == [] and "disallowed by robots.txt" in other.skipped[0].reason


def test_robots_txt_errors_follow_rfc_9309(polite_site, settings):
    PoliteHandler.robots = None  # robots.txt answers 500: assume everything is disallowed this pass
    result = fetch([polite_site + "/page/1"], settings.replace(render="never"))
    assert result.fetched == [] and "robots.txt answered HTTP 500" in result.skipped[0].reason
    assert not starts("/page/")
    with serve_handler(BadSiteHandler) as bad:  # its robots.txt is a 404: no rules, everything allowed
        ok = fetch([bad + "/ok"], settings.replace(render="never"))
    assert [f.url for f in ok.fetched] == [bad + "/ok"]


def test_per_host_concurrency_cap_is_observed(polite_site, settings):
    urls = [polite_site + f"/slow/{i}" for i in range(6)]
    result = fetch(urls, settings.replace(render="never", per_host_concurrency=2, autothrottle=False))
    assert len(result.fetched) == 6
    assert PoliteHandler.peak == 2  # never more than two at once, and it did run two at once


def test_retry_after_is_honoured_and_bounded(polite_site, settings):
    result = fetch([polite_site + "/busy"], settings.replace(render="never", retries=2))
    assert len(result.fetched) == 1 and result.fetched[0].meta["attempts"] == 2
    first, second = starts("/busy")
    assert second - first >= 0.95  # Retry-After: 1
    too_long = fetch([polite_site + "/very-busy"], settings.replace(render="never", max_retry_after=30))
    error = too_long.errors[0]
    assert error.status == 503 and "asked to wait 86400s (more than max_retry_after 30s)" in error.reason
    assert len(starts("/very-busy")) == 1  # not retried
    assert retry_after("120") == 120 and retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0 and retry_after("soon") is None


def test_a_javascript_only_page_is_rendered_and_static_pages_are_not(polite_site, settings):
    s = settings.replace(render_sample=2)
    notes = MemoryNotes()
    static_urls = [polite_site + f"/page/{i}" for i in range(5)]
    result = fetch([polite_site + "/js-only", *static_urls], s, notes=notes)
    by_url = {f.url: f for f in result.fetched}
    js = by_url[polite_site + "/js-only"]
    assert js.render == "rendered" and "too little article text" in js.render_reason
    assert "lighthouse keepers returned to Gull Point" in js.article.page_content
    assert all(by_url[u].render == "static" for u in static_urls)
    assert "does not need rendering" in by_url[static_urls[-1]].render_reason
    gets = {u: sum(p == u.removeprefix(polite_site) for p, *_ in PoliteHandler.log) for u in static_urls}
    # the host's sample is its first two pages (the JS-only one and one static page), read both ways while
    # the rest are fetched; rendering added text on one of two: not the majority, so the rest are not rendered
    assert sorted(gets.values()) == [1, 1, 1, 1, 2]
    note = notes.host_note(polite_site)
    assert note["decision"] == "static" and [e["verdict"] for e in note["evidence"]] == ["adds", "same"]

    PoliteHandler.log.clear()  # the decision is remembered: no page of that host is sampled again
    again = fetch(static_urls, s, notes=notes)
    assert again.rendered == 0 and len(PoliteHandler.log) == len(static_urls) + 1  # + robots.txt


def test_sample_site_late_paragraph_is_captured_on_every_page_in_auto_mode(site_article_urls, settings, small_embedder):
    report = index_urls(site_article_urls, settings, embedder=small_embedder)
    index = open_index(settings.index_dir, settings)
    for url in site_article_urls:
        late = re.search(r'p\.textContent = "([^"]+)"', (SITE_DIR / url.split("/", 3)[3]).read_text()).group(1)
        assert late in index.article_text(index.key_for_url(url)), url
    rows = {r["url"]: r for r in report.pages}
    assert all(rows[u]["render"] == "rendered" for u in site_article_urls)
    assert "needs rendering" in rows[site_article_urls[-1]]["render_reason"]
    note = index.host_note(site_article_urls[0].rsplit("/", 3)[0])
    assert note["decision"] == "render" and {e["verdict"] for e in note["evidence"]} == {"adds"}


def test_a_pdf_article_is_indexed_with_its_title_and_date(polite_site, settings, small_embedder):
    report = index_urls([polite_site + "/report.pdf"], settings, embedder=small_embedder)
    assert report.articles_new == 1 and report.pages[0]["render"] == "pdf"
    index = open_index(settings.index_dir, settings)
    hit = index.search("How much cargo did the harbour authority handle?", k=1)[0]
    assert hit.title == "Harbour authority annual report" and hit.published == "2026-11-04"
    assert "4.2 million tonnes" in hit.text


def test_bad_url_battery_through_the_fetch_stage(bad_site, settings):
    urls = {"missing": "/missing", "flaky": "/flaky?battery", "always500": "/always500", "hang": "/hang",
            "png": "/image.png", "loop": "/loop", "huge": "/huge", "empty": "/empty", "pdf": "/doc.pdf"}
    urls = {k: bad_site + v for k, v in urls.items()}
    urls.update(refused="http://127.0.0.1:9/", file="file:///etc/passwd", js="javascript:alert(1)",
                malformed="http://exa mple.org/")
    s = settings.replace(page_timeout=3, max_page_bytes=1_000_000, retries=1)
    result = fetch(list(urls.values()), s)
    errors = {e.url: e for e in result.errors}
    reason = lambda name: errors[urls[name]].reason  # noqa: E731
    assert [f.url for f in result.fetched] == [urls["flaky"]] and result.fetched[0].meta["attempts"] == 2
    assert errors[urls["missing"]].status == 404 and "HTTP 404" in reason("missing")
    assert "HTTP 500" in reason("always500") and errors[urls["always500"]].attempts == 2
    assert "timed out" in reason("hang")
    assert "not an HTML page (content-type image/png)" in reason("png")
    assert "redirect loop" in reason("loop")
    assert "too large" in reason("huge")
    assert reason("empty") == "no article text found on the page"
    assert "PDF could not be read" in reason("pdf")
    assert reason("refused") == "connection refused (while fetching robots.txt; the host is not fetched)"
    assert "unsupported URL scheme 'file:'" in reason("file") and errors[urls["file"]].attempts == 0
    assert "unsupported URL scheme 'javascript:'" in reason("js")
    assert "malformed URL" in reason("malformed")


def test_static_checks_and_comparison_rules(settings):
    from langchain_core.documents import Document

    doc = lambda words: Document(page_content=" ".join(f"w{i}" for i in range(words)))  # noqa: E731
    assert "too little article text (10 words)" in static_problem("<html></html>", doc(10), 40)
    assert static_problem("<p>Please enable JavaScript to read this.</p>", doc(50), 40) == \
        "the served page asks for JavaScript"
    assert static_problem('<div id="root"></div>', doc(50), 40) == "the served page is an application shell"
    assert static_problem("<p>Please enable JavaScript</p>", doc(500), 40) is None  # a banner beside a real article
    served = Document(page_content="The ferry leaves at nine and returns at five every day of the week.")
    longer = Document(page_content=served.page_content + " A new late sailing at ten was added on Fridays "
                      "after a petition from island residents and workers.")
    wall = Document(page_content="This page is not available in your region. Copy for personal use only.")
    assert compare(served, longer, settings)["verdict"] == "adds"
    assert compare(served, served, settings)["verdict"] == "same"
    assert compare(served, wall, settings)["verdict"] == "loses"


def test_batches_share_one_politeness_state(polite_site, settings):
    """A pass fetched in batches is as polite as one fetch: robots.txt read once for the host, Crawl-delay
    kept between the batches' requests, and the per-host request budget counted over the whole pass."""
    from rag_news.fetch import FetchRequest, fetch_batches

    PoliteHandler.robots = "User-agent: *\nCrawl-delay: 1\n"
    urls = [polite_site + f"/page/{i}" for i in range(5)]
    batches = [[FetchRequest(u) for u in urls[i:i + 2]] for i in range(0, 5, 2)]
    results = list(fetch_batches(batches, settings.replace(render="never", max_requests_per_host=5)))
    assert [sorted(f.url for f in r.fetched) for r in results] == [urls[0:2], urls[2:4]] + [[]]
    assert "budget" in results[2].errors[0].reason  # robots.txt + 4 pages: the budget of 5 is spent
    assert len(starts("/robots.txt")) == 1
    pages = starts("/page/")
    assert len(pages) == 4 and min(b - a for a, b in zip(pages, pages[1:])) >= 0.95  # across batches too


def test_closing_the_batches_early_stops_the_fetching(polite_site, settings):
    """The caller fails on the first batch: the batch under way is cancelled and no later batch starts."""
    from rag_news.fetch import FetchRequest, fetch_batches

    batches = [[FetchRequest(polite_site + f"/slow/{b}-{i}") for i in range(3)] for b in range(4)]
    results = fetch_batches(batches, settings.replace(render="never", per_host_interval=0.5))
    first = next(results)
    assert len(first.fetched) == 3
    results.close()
    asked = {p.split("-")[0] for p in (path for path, *_ in PoliteHandler.log) if p.startswith("/slow/")}
    assert asked <= {"/slow/0", "/slow/1"}  # batch 1 was fetched meanwhile (or cancelled); 2 and 3 never began
