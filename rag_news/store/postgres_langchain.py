"""The PostgreSQL backend's chunks as a LangChain vector store (``langchain_postgres.PGVector``), for reading.

PGVector reads two tables of its own (``langchain_pg_collection``, ``langchain_pg_embedding``). Rather than
copying the chunks into them, :func:`langchain_view` creates two SQL views of those names in a schema of
their own (``<schema>_langchain``) over this index's ``chunks`` table, and points PGVector there (through
``search_path``): one collection named after the index's schema, every chunk in it, the same HNSW index
serving ``similarity_search`` (dense, cosine), PGVector's JSONB metadata filters working on the chunks'
metadata. The views are read-only: write through the index (``rag_news.index``), not through this store.
"""

from __future__ import annotations

import uuid

from ..errors import MissingExtra

VIEWS = """
CREATE SCHEMA IF NOT EXISTS {v};
CREATE OR REPLACE VIEW {v}.langchain_pg_collection AS
    SELECT '{cid}'::uuid AS uuid, '{name}'::varchar AS name, '{{}}'::json AS cmetadata;
CREATE OR REPLACE VIEW {v}.langchain_pg_embedding AS
    SELECT chunk_id::varchar AS id, '{cid}'::uuid AS collection_id, embedding, text::varchar AS document,
           metadata AS cmetadata FROM {s}.chunks
"""


def sqlalchemy_url(dsn: str) -> str:
    """``postgresql://...`` as SQLAlchemy's URL for psycopg 3 (``postgresql+psycopg://...``). Key-value
    DSNs (``host=... dbname=...``) are passed through ``connect_args`` instead (see :func:`engine`)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


def engine(dsn: str, search_path: str):
    """A SQLAlchemy engine on ``dsn`` whose connections search ``search_path`` first."""
    import sqlalchemy

    options = {"options": f"-csearch_path={search_path},public"}
    if "://" in dsn:
        return sqlalchemy.create_engine(sqlalchemy_url(dsn), connect_args=options)
    import psycopg

    return sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, **options))


def langchain_view(store, views_schema: str | None = None):
    """``langchain_postgres.PGVector`` over ``store``'s chunks (see the module docstring)."""
    try:
        from langchain_postgres import PGVector
    except ImportError:
        raise MissingExtra("langchain-postgres", "postgres", "the LangChain view of the PostgreSQL index") from None
    v = views_schema or f"{store.schema}_langchain"
    cid = uuid.uuid5(uuid.NAMESPACE_URL, f"rag-news:{store.schema}")
    with store.transaction() as conn:
        for stmt in VIEWS.format(v=v, s=store.schema, cid=cid, name=store.schema).split(";"):
            if stmt.strip():
                conn.execute(stmt)
    return PGVector(embeddings=store.embeddings, connection=engine(store.dsn, v), collection_name=store.schema,
                    embedding_length=store.dim, use_jsonb=True, create_extension=False)
