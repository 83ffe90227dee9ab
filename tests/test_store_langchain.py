"""LangChain's own standard test suites (``langchain-tests``) against rag-news's LangChain views, run as a
LangChain user would: ``VectorStoreIntegrationTests`` against ``index.vectorstore`` on both backends (FAISS +
SQLite files, Milvus Lite in the test's folder) and ``RetrieversIntegrationTests`` against
:class:`~rag_news.retrieve.NewsRetriever` on both. Real MiniLM embeddings (the suites' default
``DeterministicFakeEmbedding`` is not used), real FAISS, SQLite and Milvus Lite."""

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from rag_news.retrieve import NewsRetriever
from rag_news.store import open_store
from test_store_backends import stage

BACKENDS = ["faiss", "milvus"]
pytestmark = [pytest.mark.asyncio,  # the suites' async tests (LangChain runs them with asyncio_mode=auto)
              pytest.mark.filterwarnings("ignore:The test <Function:pytest.PytestWarning")]


@pytest.fixture(params=BACKENDS)
def empty_store(request, settings, small_embedder):
    idx = open_store(settings.replace(index_backend=request.param), small_embedder, create=True)
    yield idx
    idx.close()


class TestVectorStoreView(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, empty_store):
        return empty_store.vectorstore


NEWS = [("http://127.0.0.1/ferry-1", "2026-11-02", "The last evening ferry to Gullholm Island now leaves at 19:40."),
        ("http://127.0.0.1/ferry-2", "2026-11-03", "Ferry crews on the Gullholm route voted to strike on Friday."),
        ("http://127.0.0.1/ferry-3", "2026-10-01", "A new electric ferry for Gullholm was ordered from the yard."),
        ("http://127.0.0.1/ferry-4", "2026-11-04", "Gullholm ferry fares rise by ten percent in January."),
        ("http://127.0.0.1/tram", None, "The Eastmoor branch library will be built in the old tram depot.")]


@pytest.fixture(params=BACKENDS)
def news_store(request, settings, small_embedder):
    s = settings.replace(index_backend=request.param)
    idx = open_store(s, small_embedder, create=True)
    for key, published, text in NEWS:
        stage(idx, small_embedder, s, key, key.rsplit("/", 1)[-1], text, published)
    idx.commit()
    yield idx
    idx.close()


class TestNewsRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _index(self, news_store):
        self.index = news_store

    @property
    def retriever_constructor(self):
        return NewsRetriever

    @property
    def retriever_constructor_params(self):
        return {"index": self.index, "read_dates": False}

    @property
    def retriever_query_example(self) -> str:
        return "Gullholm ferry"


def test_invoke_time_dates_filter_the_retriever(news_store):
    retriever = NewsRetriever(index=news_store, read_dates=False, max_gap=None)  # k honoured: no slot left empty
    docs = retriever.invoke("Gullholm ferry", k=5, since="2026-11-03", until="2026-11-03")
    assert [d.metadata["url"] for d in docs] == ["http://127.0.0.1/ferry-2"]
    assert len(retriever.invoke("Gullholm ferry", k=2)) == 2 and len(retriever.invoke("Gullholm ferry")) == 5


def test_view_documents_keep_rag_news_fields_in_the_record(empty_store):
    """What the view adds is an ordinary article: its url and date reach the record, the date filter and the
    hybrid retriever, while the document itself comes back exactly as given."""
    view = empty_store.vectorstore
    given = {"url": "http://x/lantern", "published": "2026-11-05", "section": "culture"}
    [cid] = view.add_documents([Document(page_content="Harbour lantern festival drew 58,000 visitors.",
                                         metadata=given)], ids=["lantern"])
    assert cid == "lantern" and view.get_by_ids(["lantern"])[0].metadata == given
    rec = empty_store.article("lc:lantern")
    assert rec["url"] == "http://x/lantern" and rec["published"] == "2026-11-05" and rec["chunk_ids"] == ["lantern"]
    assert view.similarity_search("lantern festival", k=1, since="2026-11-06") == []
    assert view.similarity_search("lantern festival", k=1, since="2026-11-05")[0].metadata == given
    hybrid = empty_store.as_retriever(k=1, read_dates=False).invoke("lantern festival visitors")
    assert hybrid[0].metadata["url"] == "http://x/lantern"


def test_view_dates_written_out_reach_the_date_filter_and_expiry(empty_store):
    """Dates a LangChain caller writes out (RFC 2822, "November 3, 2026") are the article's date for the
    window filter and for expiry; compared as text they would sort after every ISO date ("Tue..." > "2026")
    and an expiry pass would never see them. A phrase that is no date leaves the article undated."""
    view = empty_store.vectorstore
    written = {"iso": "2026-11-03T08:00:00Z", "rfc": "Tue, 03 Nov 2026 08:00:00 GMT", "words": "November 3, 2026",
               "vague": "last Tuesday"}
    view.add_documents([Document(page_content=f"Gullholm harbour crane number {i} was inspected.",
                                 metadata={"published": when}) for i, when in enumerate(written.values())],
                       ids=list(written))
    assert {k: empty_store.article("lc:" + k)["published"] for k in written} == {
        "iso": "2026-11-03T08:00:00Z", "rfc": "2026-11-03", "words": "2026-11-03", "vague": None}
    assert view.get_by_ids(["rfc"])[0].metadata == {"published": "Tue, 03 Nov 2026 08:00:00 GMT"}  # as given
    hits = view.similarity_search("Gullholm harbour crane", k=10, since="2026-11-03", until="2026-11-03")
    assert sorted(d.id for d in hits) == ["iso", "rfc", "words"]
    expiring = empty_store.expiry_candidates(None, "2026-11-04")  # published before Nov 4 (undated: first seen)
    assert sorted(r["key"] for r in expiring) == ["lc:iso", "lc:rfc", "lc:words"]
