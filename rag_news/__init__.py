"""rag-news: answer questions about recent news from the articles themselves.

The pipeline, one module a stage: :mod:`~rag_news.scrape` -> :mod:`~rag_news.clean` ->
:mod:`~rag_news.chunk` -> :mod:`~rag_news.embed` -> :mod:`~rag_news.store` (index) ->
:mod:`~rag_news.retrieve` -> :mod:`~rag_news.answer` (model: :mod:`~rag_news.llm`).

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

    answer = ask("how many visitors came to the harbour festival?", settings)   # -> Answer
    print(answer.answer, [(s.n, s.url) for s in answer.sources], answer.abstained)
    qa = NewsQA(settings).warm_up()                 # index + model loaded once, for many questions
    llm = load_llm(settings)                        # the LangChain model (hf: a HuggingFacePipeline)
    chain = build_chain(NewsRetriever(index=index), llm)   # LCEL: question -> {question, passages, answer}
"""

from .answer import Answer, NewsQA, Source, ask, build_chain
from .errors import RagNewsError
from .llm import load_llm
from .pipeline import IndexReport, index_urls, open_index
from .retrieve import NewsRetriever
from .settings import Settings
from .store import NewsIndex, SearchHit

__all__ = ["Settings", "index_urls", "open_index", "IndexReport", "NewsIndex", "SearchHit", "NewsRetriever",
           "load_llm", "build_chain", "NewsQA", "ask", "Answer", "Source", "RagNewsError"]
__version__ = "0.1.0"
