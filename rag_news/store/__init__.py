"""Store: where articles, chunks and vectors live, behind one interface (:class:`Store`).

* :class:`NewsIndex` — the default backend: SQLite (records, FTS5 keyword index) + FAISS segment files.
* :func:`open_store` — the backend the settings name, opened on ``settings.index_dir``.
* :func:`writer_lock`, :class:`SearchHit`, :class:`CommitResult` — shared by backends.
* ``python -m rag_news.store info|check|compact|migrate DIR`` — maintenance.
"""

from .base import BUILD_HINT, CommitResult, SearchHit, Store, writer_lock
from .faiss_store import NewsIndex, StoreOptions

__all__ = ["Store", "NewsIndex", "StoreOptions", "SearchHit", "CommitResult", "writer_lock", "BUILD_HINT",
           "open_store"]


def open_store(settings, embeddings, *, create: bool = False, index_dir=None):
    """The index backend named by ``settings`` (``index_backend``), opened on ``index_dir`` (default
    ``settings.index_dir``)."""
    from pathlib import Path

    return NewsIndex.open(Path(index_dir or settings.index_dir), embeddings, create=create,
                          options=StoreOptions.from_settings(settings))
