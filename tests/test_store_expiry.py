"""Expiry reads through date indexes, not every record (issue 23 part 3): ``Store.expiry_candidates`` on
every backend (FAISS + SQLite, Milvus Lite, PostgreSQL 18 + pgvector started by the tests), the SQLite query
plan using the indexes, and a pass's expiry never walking ``iter_articles``. Real MiniLM vectors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rag_news.reindex import run_pass
from rag_news.sources import Source
from rag_news.store import records

from test_reindex import ARTICLES, FERRY, live_site, write_feed  # noqa: F401
from test_store_backends import backend, stage  # noqa: F401

DATES = {  # key: (first_seen, last_seen, published)
    "http://127.0.0.1/old-seen": ("2026-01-01T08:00:00+00:00", "2026-02-01T08:00:00+00:00", "2026-09-01"),
    "http://127.0.0.1/old-born": ("2026-03-01T08:00:00+00:00", "2026-11-20T08:00:00+00:00", "2026-02-15"),
    "http://127.0.0.1/undated-old": ("2026-01-10T08:00:00+00:00", "2026-11-20T08:00:00+00:00", None),
    "http://127.0.0.1/fresh": ("2026-11-01T08:00:00+00:00", "2026-11-20T08:00:00+00:00", "2026-11-01"),
    "http://127.0.0.1/no-last-seen": ("2026-01-05T08:00:00+00:00", None, "2026-11-01"),
}


def test_expiry_candidates_are_the_records_past_either_date_on_every_backend(backend, small_embedder):  # noqa: F811
    s, open_ = backend
    idx = open_()
    for key, (first, last, published) in DATES.items():
        stage(idx, small_embedder, s, key, key.rsplit("/", 1)[1], f"Article {key} about the harbour.", published)
    idx.commit()
    for key, (first, last, published) in DATES.items():
        idx.touch(key, first_seen=first, **({"last_seen": last} if last else {}))
    idx.commit()
    keys = lambda recs: [r["key"] for r in recs]  # noqa: E731
    assert keys(idx.expiry_candidates("2026-06-01", None)) == [
        "http://127.0.0.1/no-last-seen", "http://127.0.0.1/old-seen"]  # last seen, else first seen
    assert keys(idx.expiry_candidates(None, "2026-06-01")) == [
        "http://127.0.0.1/old-born", "http://127.0.0.1/undated-old"]  # published, else first seen
    assert keys(idx.expiry_candidates("2026-06-01", "2026-06-01")) == sorted(set(DATES) - {"http://127.0.0.1/fresh"})
    assert idx.expiry_candidates(None, None) == []
    rec = idx.expiry_candidates("2026-03-01", None)[0]
    assert rec["key"] == "http://127.0.0.1/no-last-seen" and rec["first_seen"].startswith("2026-01-05")
    assert "text" not in rec and "chunk_ids" not in rec  # as iter_articles gives them


def test_the_sqlite_expiry_query_reads_through_its_indexes(settings, small_embedder):
    from rag_news.store import NewsIndex

    idx = NewsIndex.open(settings.index_dir, small_embedder, create=True)
    stage(idx, small_embedder, settings, "http://127.0.0.1/a", "A", "Harbour article.", "2026-01-01")
    idx.commit()
    plans = [" ".join(str(r[-1]) for r in idx._conn.execute("EXPLAIN QUERY PLAN " + sql, params))
             for sql, params in records.expiry_queries("2026-06-01", "2026-06-01")]
    assert len(plans) == 2 and "USING INDEX articles_by_seen" in plans[0] and "USING INDEX articles_by_born" in plans[1]
    assert not any("SCAN" in p for p in plans), plans


def test_a_pass_expires_through_the_candidates_without_walking_every_record(live_site, settings, small_embedder,  # noqa: F811
                                                                             monkeypatch):
    from rag_news.store.faiss_store import NewsIndex

    site, base = live_site
    sources = [Source("ledger", feed=base + "feed.xml")]
    run_pass(settings, sources, embedder=small_embedder)
    write_feed(site, base, [p for p in ARTICLES if p != FERRY])  # dropped from the feed
    asked = []
    real = NewsIndex.expiry_candidates

    def candidates(self, seen_before, born_before):
        asked.append((seen_before, born_before))
        return real(self, seen_before, born_before)

    def walk(self):
        raise AssertionError("expiry walked every record")

    monkeypatch.setattr(NewsIndex, "expiry_candidates", candidates)
    monkeypatch.setattr(NewsIndex, "iter_articles", walk)
    later = datetime.now(timezone.utc) + timedelta(days=31)
    report = run_pass(settings, sources, embedder=small_embedder, now=later)
    assert report.articles_removed == 1 and report.removed[0]["url"].endswith(FERRY)
    assert asked == [((later - timedelta(days=30) + timedelta(days=2)).date().isoformat(), None)]


def test_export_gives_every_article_as_upsert_arguments_on_every_backend(backend, small_embedder):  # noqa: F811
    """``Store.export`` (part of the protocol, used to copy an index between backends) on each backend."""
    s, open_ = backend
    idx = open_()
    texts = {}
    for key, (first, last, published) in DATES.items():
        texts[key] = f"Article {key.rsplit('/', 1)[1]} about the harbour and its winter ferry."
        stage(idx, small_embedder, s, key, key.rsplit("/", 1)[1], texts[key], published)
    idx.commit()
    out = {rec["key"]: (rec, chunks, vectors) for rec, chunks, vectors in idx.export()}
    assert set(out) == set(DATES)
    for key, (rec, chunks, vectors) in out.items():
        assert rec["text"] == texts[key] and rec["published"] == DATES[key][2]
        assert len(chunks) == 1 and chunks[0].page_content.endswith(texts[key]) and vectors.shape == (1, idx.dim)
        assert chunks[0].metadata["chunk_id"] == idx.article(key)["chunk_ids"][0]
        assert float(vectors[0] @ small_embedder.embed_array([chunks[0].page_content])[0]) > 0.999
