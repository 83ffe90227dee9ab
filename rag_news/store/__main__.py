"""``python -m rag_news.store info|check|compact|migrate [DIR | --index-dir DIR]``: look after an index
(``copy-to-milvus URI`` / ``copy-to-postgres DSN`` copy it).

* ``info``     counts, passes, vector segments (kind, vectors, bytes), deleted vectors waiting for a merge,
               which FAISS searches them (``faiss``: build cpu/gpu, on a GPU or not, and why)
* ``check``    full consistency check: SQLite integrity, every segment against its sha256, vectors vs chunks
* ``compact``  merge every segment into one now, dropping deleted vectors (passes also merge by themselves)
* ``migrate``  convert a snapshot-format index (rag-news <= 0.1) in place; opening one does it too
* ``copy-to-milvus URI``  copy the FAISS index (records, texts, chunks, the stored vectors: nothing is
  embedded again) into Milvus at URI (a Milvus Lite path or http://host:19530), collections
  ``--milvus-collection`` (default rag_news)
* ``copy-to-postgres DSN``  the same into PostgreSQL + pgvector at DSN (``postgresql://user@host/db``),
  schema ``--postgres-schema`` (default rag_news); one transaction per 500 articles
* ``restory``  re-form every story (rag_news.stories) from the stored articles with the current
  ``story_*`` settings (any backend, ``--index-backend``); stored lead vectors are reused

Exit status 0, or 1 with a one-line error (1 also when ``check`` finds problems).
"""

from __future__ import annotations

import argparse
import json

from ..cli import run
from ..settings import Settings
from .faiss_store import NewsIndex, StoreOptions

PROG = "python -m rag_news.store"


def _open(settings: Settings) -> NewsIndex:
    return NewsIndex.open(settings.index_dir, None, options=StoreOptions.from_settings(settings))


def info(settings: Settings) -> dict:
    idx = _open(settings)
    stats = idx.stats()
    stats["segments"] = [{k: s[k] for k in ("name", "kind", "vectors", "bytes", "ivf_bytes")} for s in stats["segments"]]
    return {"index_dir": str(settings.index_dir), "embedding_model": idx.embedding_model, "dim": idx.meta["dim"],
            **stats}


def copy_to_milvus(settings: Settings, uri: str, name: str = "rag_news") -> dict:
    """Copy the FAISS index in ``settings.index_dir`` into Milvus (see the module docstring)."""
    from ..embed import Embedder
    from .milvus_store import MilvusStore

    src = _open(settings)
    embedder = Embedder(settings.replace(embedding_model=src.embedding_model or settings.embedding_model))
    dst = MilvusStore.open(uri, embedder, name=name, create=True)
    out = {"uri": uri, **_copy(src, dst, settings)}
    dst.close()
    return out


class _IndexFacts:
    """What a new store needs of its embedder (``dim``, ``model_name``), read from the source index: copying
    embeds nothing, so no model is loaded."""

    def __init__(self, meta: dict):
        self.dim, self.model_name = int(meta["dim"]), meta.get("embedding_model")

    def embed_query(self, text: str):
        from ..errors import ConfigError

        raise ConfigError("this copy has no embedder: open the index with open_store() to search it")


def copy_to_postgres(settings: Settings, dsn: str, schema: str = "rag_news") -> dict:
    """Copy the FAISS index in ``settings.index_dir`` into PostgreSQL (see the module docstring)."""
    from .postgres_store import PostgresStore

    src = _open(settings)
    dst = PostgresStore.open(dsn, _IndexFacts(src.meta), schema=schema, create=True)
    if dst.embedding_model != src.embedding_model or dst.dim != int(src.meta["dim"]):
        from ..errors import ConfigError

        raise ConfigError(f"schema {schema!r} holds an index of {dst.embedding_model!r} ({dst.dim} dimensions), "
                          f"this one is {src.embedding_model!r} ({src.meta['dim']}): use another --postgres-schema")
    out = {"schema": schema, **_copy(src, dst, settings)}
    dst.close()
    return out


def _copy(src, dst, settings: Settings) -> dict:
    """Every article of ``src`` (record, text, chunks, stored vectors) into ``dst``, 500 a pass."""
    from ..progress import progress_bar

    with progress_bar("Copying articles", total=len(src), enabled=settings.show_progress()) as advance:
        for n, (rec, chunks, vectors) in enumerate(src.export(), 1):
            dst.upsert(rec, chunks, vectors)
            if n % 500 == 0:
                dst.commit()
            advance(1)
    dst.commit()
    return {"articles": len(dst), "chunks": dst.chunk_count}


def _index_dir(ap: argparse.ArgumentParser, args) -> str | None:
    """The folder the command was given (``info DIR`` or ``--index-dir DIR``), refused unless it is one a
    command can use: an existing folder (``migrate`` and ``check`` included), never silently the default."""
    from pathlib import Path

    given = args.index_dir
    if not args.command.startswith("copy-to") and args.target:
        if given and Path(given).resolve() != Path(args.target).resolve():
            ap.error(f"two index folders given: {args.target} and --index-dir {given}")
        given = args.target
    if given is not None and not Path(given).is_dir():
        ap.error(f"{given} is not a folder (an index folder holds index.db and vectors/)")
    return given


def restory(settings: Settings) -> dict:
    """Re-form the stories of the index ``settings`` name (see :func:`rag_news.stories.restory`)."""
    from ..pipeline import open_index
    from ..stories import StoryParams, restory as re_form

    store = open_index(settings.index_dir, settings)
    try:
        with store.writer():
            return {"index_dir": str(settings.index_dir), **re_form(store, StoryParams.from_settings(settings))}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["info", "check", "compact", "migrate", "copy-to-milvus",
                                        "copy-to-postgres", "restory"])
    ap.add_argument("target", nargs="?", metavar="DIR|URI|DSN",
                    help="info/check/compact/migrate/restory: the index folder (as --index-dir); copy-to-milvus: "
                         "where to (a path for Milvus Lite, or http://host:19530); copy-to-postgres: the database DSN")
    ap.add_argument("--milvus-collection", default="rag_news", help="copy-to-milvus: collection name prefix")
    ap.add_argument("--postgres-schema", default="rag_news", help="copy-to-postgres: the PostgreSQL schema")
    ap.add_argument("--index-dir", help="index folder (default: settings' index_dir)")
    ap.add_argument("--config", help="TOML settings file (default: $RAG_NEWS_CONFIG)")
    ap.add_argument("--index-backend", choices=["faiss", "milvus", "postgres"],
                    help="restory: the index backend (postgres: the postgres_dsn setting names the database)")
    args = ap.parse_args(argv)
    index_dir = _index_dir(ap, args)
    settings = Settings.load(config=args.config, index_dir=index_dir,
                             **({"index_backend": args.index_backend} if args.index_backend else {}))
    if args.command == "restory":
        print(json.dumps(restory(settings)))
        return 0
    if args.command == "migrate":
        from .legacy import is_legacy

        if not is_legacy(settings.index_dir):
            print(f"{settings.index_dir}: nothing to migrate")
            return 0
        print(json.dumps(NewsIndex.migrate(settings.index_dir)))
        return 0
    if args.command == "copy-to-milvus":
        if not args.target:
            ap.error("copy-to-milvus needs the Milvus URI")
        print(json.dumps(copy_to_milvus(settings, args.target, args.milvus_collection)))
        return 0
    if args.command == "copy-to-postgres":
        if not args.target:
            ap.error("copy-to-postgres needs the database DSN")
        print(json.dumps(copy_to_postgres(settings, args.target, args.postgres_schema)))
        return 0
    if args.command == "info":
        print(json.dumps(info(settings), indent=2))
        return 0
    idx = _open(settings)
    if args.command == "compact":
        print(json.dumps({"merges": idx.compact(force=True)}))
        return 0
    problems = idx.check()
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) found in {settings.index_dir}")
    return 1 if problems else 0


if __name__ == "__main__":
    run(main, PROG)
