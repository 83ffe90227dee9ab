"""index_urls end to end: real Chromium, real cleaning, real embeddings, pages served on 127.0.0.1."""

import json

import pytest

from rag_news import IndexReport, index_urls, open_index
from rag_news.errors import ConfigError, IndexLocked, RagNewsError
from rag_news.store import NewsIndex, writer_lock


@pytest.fixture
def indexed(site_article_urls, settings, small_embedder):
    report = index_urls(site_article_urls, settings, embedder=small_embedder)
    return report, settings


def test_index_the_sample_site_then_search(indexed):
    report, settings = indexed
    assert isinstance(report, IndexReport)
    assert report.pages_ok == 10 and report.pages_failed == []
    assert report.articles_new == 10 and report.chunks_embedded == report.chunks == report.chunks_total > 10
    assert {row["status"] for row in report.pages} == {"new"}
    index = open_index(settings.index_dir, settings)
    hit = index.search("How many beds does the new children's wing have?", k=1)[0]
    assert hit.url.endswith("/2026/11/hospital-wing.html")
    assert hit.published == "2026-11-09" and hit.title.startswith("St Brennan's hospital")
    # the article file lets one inspect or rebuild without re-scraping
    snap = NewsIndex.current_snapshot(settings.index_dir)
    recs = [json.loads(x) for x in (snap / "articles.jsonl").read_text().splitlines()]
    assert len(recs) == 10
    tidal = next(r for r in recs if r["url"].endswith("tidal-plant-opens.html"))
    assert "612 megawatt-hours" in tidal["text"]  # inserted by JavaScript after load
    assert "We use cookies" not in tidal["text"] and "Most read" not in tidal["text"]


def test_second_run_embeds_nothing_and_failed_urls_are_listed(indexed, bad_site, small_embedder):
    first, settings = indexed
    urls = [r["url"] for r in first.pages] + [bad_site + "/missing", bad_site + "/doc.pdf", "file:///etc/hosts",
                                         bad_site + "/empty"]
    second = index_urls(urls, settings, embedder=small_embedder)
    assert second.chunks_embedded == 0 and second.articles_unchanged == 10
    assert second.chunks_total == first.chunks_total
    reasons = {f["url"]: f["reason"] for f in second.pages_failed}
    assert "HTTP 404" in reasons[bad_site + "/missing"]
    assert "not an HTML page" in reasons[bad_site + "/doc.pdf"]
    assert "unsupported URL scheme" in reasons["file:///etc/hosts"]
    assert reasons[bad_site + "/empty"] == "no article text found on the page"
    assert second.pages_ok == 10
    index = open_index(settings.index_dir, settings)
    assert not any(bad_site in c.metadata["url"] for c in index.chunks())


def test_a_run_where_everything_fails_leaves_the_index_untouched(indexed, bad_site, small_embedder):
    first, settings = indexed
    before = NewsIndex.current_snapshot(settings.index_dir)
    report = index_urls([bad_site + "/missing", "javascript:void(0)"], settings, embedder=small_embedder)
    assert report.pages_ok == 0 and len(report.pages_failed) == 2
    assert NewsIndex.current_snapshot(settings.index_dir) == before
    assert open_index(settings.index_dir, settings).chunk_count == first.chunks_total


def test_url_variants_and_copied_text_are_stored_once(site, settings, small_embedder):
    page = site + "2026/11/storm-warning.html"
    urls = [page, page + "?utm_source=newsletter&utm_medium=email", page + "#comments"]
    report = index_urls(urls, settings, embedder=small_embedder)
    assert report.articles_new == 1 and report.duplicates == 2
    assert open_index(settings.index_dir, settings).search("storm", k=50)[0].url == page


def test_changed_article_replaces_its_chunks(tmp_path, settings, small_embedder):
    from rag_news.sample_site import SITE_DIR, serve

    site_copy = tmp_path / "site"
    import shutil

    shutil.copytree(SITE_DIR, site_copy)
    with serve(site_copy) as base:
        url = base + "2026/11/ferry-timetable-winter.html"
        index_urls([url, base + "2026/10/bridge-repairs.html"], settings, embedder=small_embedder)
        page = site_copy / "2026/11/ferry-timetable-winter.html"
        page.write_text(page.read_text().replace("19:40", "20:15"))
        report = index_urls([url], settings, embedder=small_embedder)
    assert report.articles_changed == 1 and report.chunks_removed >= 1
    index = open_index(settings.index_dir, settings)
    ferry = [c for c in index.chunks() if c.metadata["url"] == url]
    assert ferry and all("19:40" not in c.page_content for c in ferry)
    assert any("20:15" in c.page_content for c in ferry)
    assert len(index) == 2


def test_run_level_errors(tmp_path, settings, small_embedder, site_article_urls):
    with pytest.raises(RagNewsError, match="no URLs"):
        index_urls([], settings, embedder=small_embedder)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(RagNewsError, match="cannot write to index folder"):
        index_urls(site_article_urls[:1], settings.replace(index_dir=blocker / "index"), embedder=small_embedder)
    with writer_lock(settings.index_dir):
        with pytest.raises(IndexLocked):
            index_urls(site_article_urls[:1], settings, embedder=small_embedder)


def test_index_built_with_another_model_is_not_mixed(indexed, site_article_urls):
    _, settings = indexed
    with pytest.raises(ConfigError, match="was built with embedding model"):
        index_urls(site_article_urls[:1], settings.replace(embedding_model="sentence-transformers/all-mpnet-base-v2"))


@pytest.mark.slow
def test_real_mpnet_end_to_end(site_article_urls, settings):
    """The default model, all-mpnet-base-v2, from its packaged copy: index the site and search it."""
    s = settings.replace(embedding_model="sentence-transformers/all-mpnet-base-v2")
    report = index_urls(site_article_urls, s)
    assert report.pages_ok == 10 and report.embedding["model"] == "sentence-transformers/all-mpnet-base-v2"
    index = open_index(s.index_dir, s)
    assert index.embeddings.dim == 768 and index.embeddings.max_seq_length == 384
    assert all(c.metadata["tokens"] + 2 <= 384 for c in index.chunks())
    for question, path in [("How many homes will the tidal turbines power?", "tidal-plant-opens"),
                           ("Who scored the goals in the cup win?", "football-cup-run"),
                           ("When will the Millbridge bridge close?", "bridge-repairs")]:
        assert path in index.search(question, k=1)[0].url, question
