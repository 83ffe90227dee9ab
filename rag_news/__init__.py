"""rag-news: answer questions about recent news from the articles themselves.

The pipeline, one module a stage: :mod:`~rag_news.scrape` -> :mod:`~rag_news.clean` ->
:mod:`~rag_news.chunk` -> :mod:`~rag_news.embed` -> :mod:`~rag_news.store` (index) ->
:mod:`~rag_news.retrieve`.

Public API::

    from rag_news import Settings, index_urls, open_index

    settings = Settings.load()                      # defaults < TOML < RAG_NEWS_* env vars < kwargs
    report = index_urls(["https://example.com/news/story"], settings)   # -> IndexReport
    print(report.pages_ok, report.pages_failed, report.chunks_embedded)
    index = open_index(settings.index_dir)
    for hit in index.search("what happened at the harbour?", k=4):
        print(round(hit.score, 3), hit.title, hit.url)
    retriever = NewsRetriever(index=index, k=5)     # dense + BM25 fusion, a LangChain retriever
    docs = retriever.invoke("what happened at the harbour?")
"""

from .errors import RagNewsError
from .pipeline import IndexReport, index_urls, open_index
from .retrieve import NewsRetriever
from .settings import Settings
from .store import NewsIndex, SearchHit

__all__ = ["Settings", "index_urls", "open_index", "IndexReport", "NewsIndex", "SearchHit", "NewsRetriever",
           "RagNewsError"]
__version__ = "0.1.0"
