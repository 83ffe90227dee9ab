"""Hybrid retrieval over a real index of the sample site (MiniLM)."""

import pytest

from rag_news import index_urls, open_index
from rag_news.errors import ConfigError
from rag_news.retrieve import NewsRetriever, parse_since


@pytest.fixture(scope="module")
def site_index(site_article_urls, tmp_path_factory, cache_dir, small_embedder):
    from conftest import make_settings

    s = make_settings(tmp_path_factory.mktemp("retr"), cache_dir, chunk_tokens=64, chunk_overlap=8)
    index_urls(site_article_urls, s, embedder=small_embedder)
    return open_index(s.index_dir, s)


def test_fused_retrieval_finds_the_article_and_is_a_langchain_retriever(site_index):
    r = NewsRetriever(index=site_index, k=4)
    docs = r.invoke("How many nurses were recruited for the children's wing?")
    assert docs[0].metadata["url"].endswith("hospital-wing.html")
    assert all("score" in d.metadata for d in docs) and len(docs) == 4
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_bm25_rescues_exact_names(site_index):
    # rare names that one article mentions once: embeddings blur them, keyword search does not
    cases = {"Vantongeren": "tidal-plant-opens", "Norwell Civil": "bridge-repairs", "Abernathy": "college-enrolment"}
    fused = {q: NewsRetriever(index=site_index, k=1).invoke(q)[0].metadata["url"] for q in cases}
    dense = {q: NewsRetriever(index=site_index, k=1, use_bm25=False).invoke(q)[0].metadata["url"] for q in cases}
    assert all(page in fused[q] for q, page in cases.items()), fused
    assert sum(page in dense[q] for q, page in cases.items()) < len(cases), dense  # dense alone misses some


def test_one_article_does_not_fill_every_slot(site_index):
    r = NewsRetriever(index=site_index, k=5, max_per_article=1)
    docs = r.invoke("Larkspur Bay tidal power plant turbines capacity cost construction")
    urls = [d.metadata["url"] for d in docs]
    assert len(urls) == len(set(urls)) == 5
    loose = NewsRetriever(index=site_index, k=5, max_per_article=5).invoke(
        "Larkspur Bay tidal power plant turbines capacity cost construction")
    assert len({d.metadata["url"] for d in loose}) < 5  # without the cap the long article dominates


def test_since_filter(site_index):
    docs = NewsRetriever(index=site_index, k=10, since="2026-11-15").invoke("news in Larkspur")
    assert docs and all(d.metadata["published"] >= "2026-11-15" for d in docs)
    assert not any("bridge-repairs" in d.metadata["url"] for d in docs)  # published 2026-10-28
    assert parse_since("2026-11-01T10:00") == "2026-11-01"
    with pytest.raises(ConfigError, match="--since"):
        parse_since("last tuesday")
