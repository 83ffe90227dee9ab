"""rag-news: answer questions about recent news from the articles themselves.

The pipeline, one module a stage: :mod:`~rag_news.fetch` -> :mod:`~rag_news.clean` ->
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

import importlib

# Exports load on first use (PEP 562), so `import rag_news.mixtral` or `rag_news.llm` needs only torch and
# transformers (the GPU benchmark runs on a machine without LangChain), and `import rag_news` is instant.
_EXPORTS = {
    "Settings": "settings", "index_urls": "pipeline", "open_index": "pipeline", "IndexReport": "pipeline",
    "NewsIndex": "store", "SearchHit": "store", "NewsRetriever": "retrieve", "load_llm": "llm",
    "build_chain": "answer", "NewsQA": "answer", "ask": "answer", "Answer": "answer", "Source": "answer",
    "RagNewsError": "errors",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rag_news' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
