"""index_urls end to end: real Chromium, real cleaning, real embeddings, pages served on 127.0.0.1."""

import re
import shutil

import pytest

from rag_news import IndexReport, index_urls, open_index
from rag_news.errors import ConfigError, IndexLocked, RagNewsError
from rag_news.sample_site import SITE_DIR, serve
from rag_news.store import NewsIndex, writer_lock
from rag_news.urls import normalize_url


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
    # the article's text is kept: one can inspect or rebuild without re-scraping
    recs = list(index.iter_articles())
    assert len(recs) == 10
    tidal = next(r for r in recs if r["url"].endswith("tidal-plant-opens.html"))
    text = index.article_text(tidal["key"])
    assert "612 megawatt-hours" in text  # inserted by JavaScript after load
    assert "We use cookies" not in text and "Most read" not in text


def test_second_run_embeds_nothing_and_failed_urls_are_listed(indexed, bad_site, small_embedder):
    first, settings = indexed
    urls = [r["url"] for r in first.pages] + [bad_site + "/missing", bad_site + "/doc.pdf", "file:///etc/hosts",
                                         bad_site + "/empty", bad_site + "/image.png"]
    second = index_urls(urls, settings, embedder=small_embedder)
    assert second.chunks_embedded == 0 and second.articles_unchanged == 10
    assert second.chunks_total == first.chunks_total
    reasons = {f["url"]: f["reason"] for f in second.pages_failed}
    assert "HTTP 404" in reasons[bad_site + "/missing"]
    assert "PDF could not be read" in reasons[bad_site + "/doc.pdf"]  # a damaged PDF (a real one is indexed)
    assert "not an HTML page (content-type image/png)" in reasons[bad_site + "/image.png"]
    assert "unsupported URL scheme" in reasons["file:///etc/hosts"]
    assert reasons[bad_site + "/empty"] == "no article text found on the page"
    assert second.pages_ok == 10
    index = open_index(settings.index_dir, settings)
    assert not any(bad_site in c.metadata["url"] for c in index.chunks())


def test_a_run_where_everything_fails_leaves_the_index_untouched(indexed, bad_site, small_embedder):
    first, settings = indexed
    before = open_index(settings.index_dir, settings).pass_id
    report = index_urls([bad_site + "/missing", "javascript:void(0)"], settings, embedder=small_embedder)
    assert report.pages_ok == 0 and len(report.pages_failed) == 2
    assert open_index(settings.index_dir, settings).pass_id == before
    assert open_index(settings.index_dir, settings).chunk_count == first.chunks_total
    fresh = settings.replace(index_dir=settings.index_dir.parent / "never-built")
    index_urls([bad_site + "/missing"], fresh, embedder=small_embedder)
    assert not NewsIndex.exists(fresh.index_dir)  # a first run where everything fails creates no index


def test_url_variants_and_copied_text_are_stored_once(tmp_path, settings, small_embedder):
    site_copy = tmp_path / "site"
    shutil.copytree(SITE_DIR, site_copy)
    storm = "2026/11/storm-warning.html"
    shutil.copy(site_copy / storm, site_copy / "2026/11/storm-warning-copy.html")  # the same text, another URL
    shutil.copy(site_copy / storm, site_copy / "2026/11/storm-warning-syndicated.html")
    with serve(site_copy) as base:
        page = base + storm
        urls = [page, page + "?utm_source=newsletter&utm_medium=email", page + "#comments",
                base + "2026/11/storm-warning-copy.html"]
        report = index_urls(urls, settings, embedder=small_embedder)
        assert report.articles_new == 1 and report.duplicates == 3  # two URL variants + one copy in the pass
        index = open_index(settings.index_dir, settings)
        assert len(index) == 1 and {h.url for h in index.search("storm", k=50)} == {page}
        later = index_urls([base + "2026/11/storm-warning-syndicated.html"], settings, embedder=small_embedder)
        assert later.articles_new == 0 and later.duplicates == 1 and later.chunks_embedded == 0
    rec = open_index(settings.index_dir, settings).article(normalize_url(page))
    assert {normalize_url(base + "2026/11/storm-warning-copy.html"),
            normalize_url(base + "2026/11/storm-warning-syndicated.html")} <= set(rec["aliases"])


def test_a_changed_article_that_now_copies_another_is_removed_not_left_live(tmp_path, settings, small_embedder):
    site_copy = tmp_path / "site"
    shutil.copytree(SITE_DIR, site_copy)
    ferry, bridge = "2026/11/ferry-timetable-winter.html", "2026/10/bridge-repairs.html"
    with serve(site_copy) as base:
        index_urls([base + ferry, base + bridge], settings, embedder=small_embedder)
        shutil.copy(site_copy / bridge, site_copy / ferry)  # the ferry page now carries the bridge story
        report = index_urls([base + ferry], settings, embedder=small_embedder)
    index = open_index(settings.index_dir, settings)
    assert report.articles_removed == 1 and report.duplicates == 1
    assert len(index) == 1 and not any("ferry" in c.metadata["url"] for c in index.chunks())
    assert normalize_url(base + ferry) in index.article(normalize_url(base + bridge))["aliases"]


def test_feed_dates_reach_the_chunks(tmp_path, settings, small_embedder):
    """The feed's date (explicit, where the page's is a guess: htmldate reads one off its links) reaches the
    record and every chunk."""
    from rag_news.pipeline import update_index
    from rag_news.sources import Target

    undated = tmp_path / "undated"
    shutil.copytree(SITE_DIR, undated)
    html = (undated / "2026/11/storm-warning.html").read_text()
    html = re.sub(r"<meta[^>]+published[^>]*>", "", html)
    html = re.sub(r"<time[^>]*>.*?</time>", "", html, flags=re.S)
    html = re.sub(r'"datePublished": "[^"]*", ', "", html)
    html = re.sub(r'<link rel="canonical"[^>]*>', "", html)
    (undated / "storm.html").write_text(html)
    with serve(undated) as base:
        update_index([Target(url=base + "storm.html", source="feed", published="2026-11-20")], settings,
                     embedder=small_embedder)
    index = open_index(settings.index_dir, settings)
    hits = index.search("storm warning", k=5, since="2026-11-15")
    assert hits and all(h.published == "2026-11-20" for h in hits)
    assert index.article(hits[0].document.metadata["key"])["published"] == "2026-11-20"


def test_changed_article_replaces_its_chunks(tmp_path, settings, small_embedder):
    site_copy = tmp_path / "site"
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


@pytest.mark.timeout(180)
def test_index_urls_inside_a_running_event_loop_as_in_jupyter(site_article_urls, settings, small_embedder):
    """fetch() then runs in a worker thread: it must not wait on a lock the pass holds in the caller's."""
    import asyncio

    async def cell():
        return index_urls(site_article_urls[:2], settings, embedder=small_embedder)

    report = asyncio.run(cell())
    assert report.articles_new == 2 and open_index(settings.index_dir, settings).host_note(
        site_article_urls[0].rsplit("/", 3)[0])["decision"] == "render"


class _Watching:
    """The real embedder, with ``before()`` run before each call (chunks, and the stories' article vectors)."""

    def __init__(self, embedder, before):
        self._e, self.before = embedder, before

    def __getattr__(self, name):
        return getattr(self._e, name)

    def embed_array(self, texts, **kw):
        self.before()
        return self._e.embed_array(texts, **kw)


@pytest.mark.parametrize("store", ["faiss", "milvus", "postgres"])
def test_a_pass_commits_batch_by_batch_and_readers_see_each_batch(store, request, site_article_urls, settings,
                                                                   small_embedder):
    """10 articles, 4 a batch: three batches, each committed before the next is embedded; a reader opened
    before the pass finds more articles at each batch (on every backend)."""
    settings = request.getfixturevalue("postgres_settings") if store == "postgres" else \
        settings.replace(index_backend=store)
    index_urls(site_article_urls[:1], settings, embedder=small_embedder)  # the index exists: a reader opens it
    reader = open_index(settings.index_dir, settings)
    seen = []

    def look():
        reader.refresh()
        seen.append(len(reader))

    report = index_urls(site_article_urls, settings.replace(commit_every=4), embedder=_Watching(small_embedder, look))
    assert report.batches == 3 and report.commits == 3 and report.articles_new == 9
    assert sorted(set(seen)) == [1, 4, 8]  # the first article, then +3 new of batch 1, then +4 of batch 2
    reader.refresh()
    assert len(reader) == 10 and reader.search("How many beds does the new children's wing have?", k=1)


def test_a_pass_that_fails_part_way_keeps_its_committed_batches_and_the_next_resumes(
        site_article_urls, settings, small_embedder):
    """The embedder fails in the third batch: the first two batches (8 articles) are in the index; the next
    pass embeds only the two articles that were lost and finds the eight known."""
    batched = settings.replace(commit_every=4)
    index_urls(site_article_urls[:1], settings, embedder=small_embedder)
    reader = open_index(settings.index_dir, settings)

    def fail_in_the_third_batch():
        reader.refresh()
        if len(reader) >= 8:
            raise RuntimeError("the embedding server went away")

    with pytest.raises(RuntimeError, match="went away"):
        index_urls(site_article_urls, batched, embedder=_Watching(small_embedder, fail_in_the_third_batch))
    assert len(open_index(settings.index_dir, settings)) == 8
    again = index_urls(site_article_urls, batched, embedder=small_embedder)
    assert again.articles_new == 2 and again.articles_unchanged == 8 and again.articles_total == 10
    assert again.chunks_embedded == sum(r["chunks"] for r in again.pages if r["status"] == "new")


def test_a_pass_of_one_batch_commits_once(site_article_urls, settings, small_embedder):
    """``commit_every`` 0 (or a pass smaller than a batch): one commit at the end, as before."""
    report = index_urls(site_article_urls, settings.replace(commit_every=0), embedder=small_embedder)
    assert report.batches == 1 and report.commits == 0
    assert open_index(settings.index_dir, settings).pass_id == 1


def test_batches_take_the_hosts_in_turns(site_article_urls, settings, small_embedder, monkeypatch):
    """Targets listed one host after the other are cut into batches that each hold both hosts' share (the
    sample site served twice, on two ports), so a batch is fetched from both at once; every article lands."""
    import rag_news.pipeline as pipeline

    seen = []
    real = pipeline.fetch_batches

    def recording(batches, *a, **kw):  # a spy: the real fetch runs
        seen.extend([[r.url for r in b] for b in batches])
        return real(batches, *a, **kw)

    monkeypatch.setattr(pipeline, "fetch_batches", recording)
    with serve(SITE_DIR) as other:
        second = [u.replace(u.split("/")[2], other.split("/")[2], 1) for u in site_article_urls[:6]]
        urls = site_article_urls[:6] + second  # one host's six, then the other's
        report = index_urls(urls, settings.replace(commit_every=4), embedder=small_embedder)
    hosts = [[u.split("/")[2] for u in b] for b in seen]
    assert len(seen) == 3 and all(len(set(h)) == 2 and h.count(h[0]) == 2 for h in hosts), hosts
    assert [u for b in seen for u in b if u in second] == second  # each host's own order kept
    assert report.batches == 3 and report.pages_ok == 12
