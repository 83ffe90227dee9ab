"""``python -m rag_news.store info|check|compact|migrate [--index-dir DIR]``: look after an index.

* ``info``     counts, passes, vector segments (kind, vectors, bytes), deleted vectors waiting for a merge
* ``check``    full consistency check: SQLite integrity, every segment against its sha256, vectors vs chunks
* ``compact``  merge every segment into one now, dropping deleted vectors (passes also merge by themselves)
* ``migrate``  convert a snapshot-format index (rag-news <= 0.1) in place; opening one does it too

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["info", "check", "compact", "migrate"])
    ap.add_argument("--index-dir", help="index folder (default: settings' index_dir)")
    ap.add_argument("--config", help="TOML settings file (default: $RAG_NEWS_CONFIG)")
    args = ap.parse_args(argv)
    settings = Settings.load(config=args.config, index_dir=args.index_dir)
    if args.command == "migrate":
        from .legacy import is_legacy, migrate

        if not is_legacy(settings.index_dir):
            print(f"{settings.index_dir}: nothing to migrate")
            return 0
        print(json.dumps(migrate(settings.index_dir)))
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
