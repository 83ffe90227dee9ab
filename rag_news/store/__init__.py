"""Store: where articles, chunks and vectors live, behind one interface (:class:`Store`).

* :class:`NewsIndex` — the default backend: SQLite (records, FTS5 keyword index) + FAISS segment files.
* :class:`~rag_news.store.milvus_store.MilvusStore` — the same interface on Milvus (Milvus Lite for a
  path, a Milvus server or cluster for an ``http://`` URI).
* :class:`~rag_news.store.postgres_store.PostgresStore` — the same interface on PostgreSQL + pgvector
  (``postgres_dsn``, one schema per index).
* :func:`open_store` — the backend the settings name, opened on ``settings.index_dir``.
* :func:`writer_lock`, :class:`SearchHit`, :class:`CommitResult` — shared by backends.
* ``python -m rag_news.store info|check|compact|migrate DIR`` — maintenance.

The modules, who imports whom (``A --> B, C``: A imports B and C; a module imports only modules drawn
below it, so there is no cycle; ``tests/test_store_layout.py`` checks this drawing against the code)::

    package    __init__           --> base, faiss_store, langchain, milvus_store, postgres_store
               __main__           --> faiss_store, legacy, milvus_store, postgres_store
                  |
    backends   faiss_store        --> base, gpu, langchain, legacy, records, story_tables, vectors, writer
               milvus_store       --> base, langchain, milvus_cas, milvus_lease, milvus_rows, milvus_stories, milvus_writer
               postgres_store     --> base, postgres_langchain, postgres_stories, postgres_writer, records
                  |
    writers    milvus_writer      --> base, milvus_cas, milvus_rows, milvus_stories
               writer             --> base, records, story_tables, vectors
               milvus_cas         --> base, milvus_lease, milvus_rows
               postgres_writer    --> base, postgres_stories
               legacy             --> base
                  |
    pieces     vectors            --> base, gpu
               milvus_lease       --> milvus_rows
               milvus_stories     --> base, milvus_rows
                  |
    leaves     base               -->
               records            -->
               story_tables       -->
               gpu                -->
               milvus_rows        -->
               postgres_stories   -->
               langchain          -->
               milvus_langchain   -->
               postgres_langchain -->

Writers are given what they write — the staged pass (:class:`~rag_news.store.base.Staged`), the
connection or client, the folder, the options, the fault hook (:mod:`rag_news.faults`) — and read nothing
private of the store that calls them. Shared pieces live in the leaves: ``base`` (the :class:`Store`
protocol, :class:`SearchHit`, :class:`CommitResult`, the staged pass, ``utc_now``, ``url_forms``,
``chunk_rows``, ``writer_lock``), ``milvus_rows`` (the Milvus row formats). Outside the package the store
imports only ``rag_news.errors``, ``urls``, ``faults`` (and, lazily, ``retrieve`` for ``as_retriever`` and
``stories`` for band hashes).
"""

from .base import BUILD_HINT, CommitResult, SearchHit, Store, writer_lock
from .faiss_store import NewsIndex, StoreOptions
from .langchain import NewsVectorStore

NewsVectorStore.default_backend = NewsIndex  # what NewsVectorStore.from_texts(index_dir=...) opens

__all__ = ["Store", "NewsIndex", "StoreOptions", "SearchHit", "CommitResult", "writer_lock", "BUILD_HINT",
           "open_store", "read_meta"]


def read_meta(settings, index_dir=None) -> dict:
    """The index's settings (embedding model, dimension) for the backend ``settings`` name."""
    if settings.index_backend == "postgres":
        from .postgres_store import PostgresStore

        return PostgresStore.read_meta(postgres_dsn(settings), settings.postgres_schema)
    if settings.index_backend == "milvus":
        from .milvus_store import MilvusStore, resolve_uri

        return MilvusStore.read_meta(resolve_uri(settings, index_dir), settings.milvus_collection)
    from pathlib import Path

    return NewsIndex.read_meta(Path(index_dir or settings.index_dir))


def open_store(settings, embeddings, *, create: bool = False, index_dir=None):
    """The index backend named by ``settings`` (``index_backend``), opened on ``index_dir`` (default
    ``settings.index_dir``)."""
    from pathlib import Path

    if settings.index_backend == "postgres":
        from .postgres_store import PostgresStore

        return PostgresStore.open(postgres_dsn(settings), embeddings, schema=settings.postgres_schema, create=create)
    if settings.index_backend == "milvus":
        from .milvus_store import MilvusStore, resolve_uri

        return MilvusStore.open(resolve_uri(settings, index_dir), embeddings, name=settings.milvus_collection,
                                create=create)
    return NewsIndex.open(Path(index_dir or settings.index_dir), embeddings, create=create,
                          options=StoreOptions.from_settings(settings))


def postgres_dsn(settings) -> str:
    """``settings.postgres_dsn``, or a one-line error saying how to set it."""
    if not settings.postgres_dsn:
        from ..errors import ConfigError

        raise ConfigError("index_backend = postgres needs postgres_dsn (RAG_NEWS_POSTGRES_DSN, --postgres-dsn), "
                          "e.g. postgresql://user@host/dbname")
    return str(settings.postgres_dsn)
