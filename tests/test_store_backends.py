"""The store interface (rag_news.store.base.Store) on every backend: FAISS + SQLite files, Milvus (Milvus
Lite in the test's folder) and PostgreSQL (a real PostgreSQL 18 + pgvector server started by the tests,
tests/pg_server.py). Real MiniLM vectors. Backend-specific behaviour (segments,
compaction, legacy migration) is in test_store.py; Milvus's crash behaviour in test_store_milvus.py."""

import pytest
from langchain_core.documents import Document

from rag_news.chunk import chunk
from rag_news.store import open_store

STORIES = {
    "http://127.0.0.1/ferry": ("Winter ferry timetable", "2026-11-02", "The last evening ferry to Gullholm Island "
                               "now leaves at 19:40, two hours earlier than in summer."),
    "http://127.0.0.1/football": ("Cup run", "2026-10-20", "Larkspur Athletic beat Corrington Rovers 2-1 to reach "
                                  "the fourth round of the national cup."),
    "http://127.0.0.1/library": ("New library", None, "The Eastmoor branch library will be built in the old "
                                 "tram depot on Quarry Lane."),
}


def stage(idx, embedder, settings, key, title, text, published=None):
    art = Document(page_content=text, metadata={"key": key, "url": key, "title": title, "published": published})
    chunks = chunk([art], embedder.tokenizer, settings, max_seq_length=embedder.max_seq_length)
    idx.upsert({"key": key, "url": key, "title": title, "text": text, "content_hash": f"h-{hash(text)}",
                "published": published}, chunks, embedder.embed_array([c.page_content for c in chunks]))
    return [c.metadata["chunk_id"] for c in chunks]


@pytest.fixture(params=["faiss", "milvus", "postgres"])
def backend(request, settings, small_embedder):
    """``(settings for the backend, open())``: ``open()`` opens (creating) the index as a new reader would."""
    s = request.getfixturevalue("postgres_settings") if request.param == "postgres" else \
        settings.replace(index_backend=request.param)
    opened = []

    def open_():
        idx = open_store(s, small_embedder, create=True)
        opened.append(idx)
        return idx

    yield s, open_
    for idx in opened:
        idx.close()


@pytest.fixture
def built(backend, small_embedder):
    s, open_ = backend
    idx = open_()
    for key, (title, published, text) in STORIES.items():
        stage(idx, small_embedder, s, key, title, text, published)
    assert idx.commit().chunks_added == 3
    return s, open_


def _url(doc):
    return doc.metadata.get("url") or doc.metadata.get("key")


def test_committed_articles_are_found_by_every_read(built):
    _, open_ = built
    idx = open_()
    assert len(idx) == 3 and idx.chunk_count == 3
    hit = idx.search("when does the last boat to the island leave?", k=2)[0]
    assert hit.url == "http://127.0.0.1/ferry" and 0 < hit.score <= 1
    assert idx.keyword_search("Corrington Rovers", k=3)[0].url == "http://127.0.0.1/football"
    rec = idx.article("http://127.0.0.1/ferry")
    assert rec["title"] == "Winter ferry timetable" and rec["published"] == "2026-11-02" and len(rec["chunk_ids"]) == 1
    assert idx.chunks_by_id(rec["chunk_ids"])[0].page_content.endswith("earlier than in summer.")
    assert idx.article_text("http://127.0.0.1/ferry").startswith("The last evening ferry")
    assert idx.key_for_url("http://127.0.0.1/ferry/?utm_source=x") == "http://127.0.0.1/ferry"
    assert idx.find_by_hash(rec["content_hash"]) == "http://127.0.0.1/ferry"
    assert [r["key"] for r in idx.iter_articles()] == sorted(STORIES)
    assert idx.embedding_model == idx.embeddings.model_name
    assert _url(idx.vectorstore.similarity_search("tram depot", k=1)[0]) == "http://127.0.0.1/library"
    assert idx.as_retriever(k=1).invoke("Gullholm ferry")[0].metadata["url"] == "http://127.0.0.1/ferry"


def test_since_and_until_filter_inside_both_searches(built):
    _, open_ = built
    idx = open_()
    assert {h.url for h in idx.search("news", k=5, since="2026-11-01")} == {"http://127.0.0.1/ferry"}
    assert {h.url for h in idx.search("news", k=5, until="2026-10-31")} == {"http://127.0.0.1/football"}
    assert idx.keyword_search("ferry Gullholm", k=5, until="2026-10-31") == []
    assert [h.url for h in idx.keyword_search("Corrington", k=5, since="2026-10-01",
                                              until="2026-10-31")] == ["http://127.0.0.1/football"]


def test_replacing_and_removing_leave_nothing_of_the_old_version(built, small_embedder):
    s, open_ = built
    idx = open_()
    old = idx.article("http://127.0.0.1/ferry")["chunk_ids"]
    new = stage(idx, small_embedder, s, "http://127.0.0.1/ferry", "Winter ferry timetable",
                "The last evening ferry to Gullholm Island now leaves at 18:15 on weekdays.", "2026-11-02")
    assert idx.remove("http://127.0.0.1/football") == 1
    idx.mark_expired("http://127.0.0.1/football", "older than 30 days")
    idx.put_host_note("127.0.0.1", {"render": False, "why": "served text is the article"})
    result = idx.commit()
    assert result.chunks_added == 1 and result.chunks_removed == 2

    reader = open_()
    assert len(reader) == 2 and reader.chunk_count == 2
    assert reader.article("http://127.0.0.1/ferry")["chunk_ids"] == new and reader.chunks_by_id(old) == []
    assert "18:15" in reader.search("last ferry to Gullholm", k=1)[0].text
    assert all(h.url != "http://127.0.0.1/football" for h in reader.keyword_search("Corrington Rovers", k=5))
    assert reader.article("http://127.0.0.1/football") is None
    assert reader.expired_reason("http://127.0.0.1/football") == "older than 30 days"
    assert reader.host_note("127.0.0.1")["render"] is False


def test_an_open_reader_sees_a_pass_another_writer_commits(built, small_embedder):
    s, open_ = built
    reader, writer = open_(), open_()
    assert reader.refresh() is False
    stage(writer, small_embedder, s, "http://127.0.0.1/lantern", "Lantern festival",
          "The harbour lantern festival drew 58,000 visitors, a record.", "2026-11-20")
    writer.commit()
    assert reader.refresh() is True and len(reader) == 4
    assert reader.search("how many visitors came to the lantern festival?", k=1)[0].url == "http://127.0.0.1/lantern"
    assert writer.commit().pass_id is None  # nothing staged: nothing written


def test_a_reader_opened_before_a_pass_finds_its_new_name_by_keyword(built, small_embedder):
    """A long-lived reader (the server) that searched for a word no chunk had yet finds it after the pass
    that brings it: keyword statistics are never kept across passes."""
    s, open_ = built
    filler = open_()
    for i in range(12):  # an index big enough that one article more is a small change (under 10%)
        stage(filler, small_embedder, s, f"http://127.0.0.1/council-{i}", f"Council {i}",
              f"The council met for the {i}th time this year to discuss the bus lanes on route {i}.")
    filler.commit()
    reader = open_()
    assert reader.keyword_search("orla", k=3) == []  # nobody has written about Orla yet
    writer = open_()
    stage(writer, small_embedder, s, "http://127.0.0.1/orla", "Storm Orla",
          "Storm Orla brings gusts of 90 km/h to the coast tonight.", "2026-11-03")
    writer.commit()
    reader.refresh()
    assert [h.url for h in reader.keyword_search("orla", k=3)] == ["http://127.0.0.1/orla"]
    assert [h.url for h in reader.keyword_search("storm orla gusts", k=3)][0] == "http://127.0.0.1/orla"
