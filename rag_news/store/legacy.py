"""Migration from the snapshot format (rag-news index version 1) to the SQLite + segments store.

Version 1 kept ``CURRENT`` naming ``snapshots/<name>/`` with ``meta.json``, ``index.faiss`` (a flat inner
product index), ``chunks.jsonl`` (in FAISS order) and ``articles.jsonl``. :func:`migrate` validates the
live snapshot as version 1 did (no pickle is ever read), copies every article, chunk and vector (read
back exactly from the flat index: nothing is scraped or embedded again) into a new store through the
public ``upsert``/``commit`` path, and moves the old files aside to ``legacy-v1/`` (nothing is deleted).
It runs automatically when such a folder is opened, or by ``python -m rag_news.store migrate DIR``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from langchain_core.documents import Document

from ..errors import IndexCorrupt
from .base import fsync_path, writer_lock

FORMAT = "rag-news-index"
VERSION = 1
_SNAPSHOT_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$")


def is_legacy(index_dir: Path) -> bool:
    return (Path(index_dir) / "CURRENT").is_file()


def live_snapshot(index_dir: Path) -> Path:
    cur = Path(index_dir) / "CURRENT"
    name = cur.read_text(encoding="utf-8").strip()
    if not _SNAPSHOT_NAME.match(name):
        raise IndexCorrupt(f"{cur} names an invalid snapshot {name[:40]!r}")
    snap = Path(index_dir) / "snapshots" / name
    if not snap.is_dir():
        raise IndexCorrupt(f"{index_dir}/CURRENT points to a missing snapshot {name}")
    return snap


def legacy_meta(index_dir: Path) -> dict:
    return _read_meta(live_snapshot(index_dir))


def _read_meta(snap: Path) -> dict:
    try:
        meta = json.loads((snap / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{snap} has no meta.json") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"{snap}/meta.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IndexCorrupt(f"{snap} is not a rag-news index (meta.json format != {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise IndexCorrupt(f"{snap} has index format version {meta.get('version')}; only version 1 migrates")
    if not isinstance(meta.get("dim"), int) or meta["dim"] <= 0:
        raise IndexCorrupt(f"{snap}/meta.json has no valid 'dim'")
    return meta


def _read_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing") from None
    with f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError:
            raise IndexCorrupt(f"{path} is not UTF-8 text (not a chunks/articles file)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise IndexCorrupt(f"{path}:{n} is not valid JSON (truncated file?)") from None
        if not isinstance(rec, dict) or any(k not in rec for k in required):
            raise IndexCorrupt(f"{path}:{n} lacks one of {', '.join(required)}")
        yield rec


def read_snapshot(snap: Path) -> tuple[dict, list[dict], dict[str, dict], np.ndarray]:
    """``(meta, chunks, articles by key, vectors in chunk order)`` of a version-1 snapshot, validated."""
    import faiss

    meta = _read_meta(snap)
    try:
        index = faiss.read_index(str(snap / "index.faiss"))
    except (RuntimeError, OSError) as e:
        raise IndexCorrupt(f"{snap / 'index.faiss'} is unreadable (truncated or not a FAISS index): "
                           f"{str(e).strip().splitlines()[-1][:120]}") from None
    if index.d != meta["dim"] or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexCorrupt(f"{snap / 'index.faiss'}: dimension/metric do not match meta.json")
    chunks = list(_read_jsonl(snap / "chunks.jsonl", ("id", "text", "metadata")))
    if len(chunks) != index.ntotal or len(chunks) != meta.get("chunks"):
        raise IndexCorrupt(f"{snap}: {index.ntotal} vectors but {len(chunks)} chunks (meta says {meta.get('chunks')})")
    ids = {c["id"] for c in chunks}
    if len(ids) != len(chunks):
        raise IndexCorrupt(f"{snap}/chunks.jsonl has duplicate chunk ids")
    articles = {r["key"]: r for r in _read_jsonl(snap / "articles.jsonl", ("key", "url", "content_hash", "chunk_ids"))}
    if len(articles) != meta.get("articles"):
        raise IndexCorrupt(f"{snap}: {len(articles)} articles but meta says {meta.get('articles')}")
    referenced = [i for rec in articles.values() for i in rec["chunk_ids"]]
    if set(referenced) - ids:
        raise IndexCorrupt(f"{snap}: an article references missing chunks")
    if len(referenced) != len(chunks):
        raise IndexCorrupt(f"{snap}: {len(chunks) - len(referenced)} chunks belong to no article")
    vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, meta["dim"]), np.float32)
    return meta, chunks, articles, vectors


def migrate(index_dir: Path, new_store: Callable[[Path, dict], Any], db_name: str) -> dict:
    """Copy the live version-1 snapshot of ``index_dir`` into a new store; returns counts.

    ``new_store(folder, meta)``: a new, empty store whose first commit creates it in ``folder`` (``meta``:
    ``dim``, ``embedding_model``), writing without taking the writer lock (this function holds
    ``index_dir``'s); ``db_name``: the database file that store creates there (the rename that commits)."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir):
        if (index_dir / db_name).exists() or not is_legacy(index_dir):
            return {"migrated": False}
        meta, chunks, articles, vectors = read_snapshot(live_snapshot(index_dir))
        work = index_dir / ".migrating"  # built aside, then moved in: the rename of index.db commits it
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(index_dir / "vectors", ignore_errors=True)  # only a crashed migration leaves one here
        _copy_into(new_store(work, {"dim": meta["dim"], "embedding_model": meta.get("embedding_model")}),
                   chunks, articles, vectors)
        os.replace(work / "vectors", index_dir / "vectors")
        os.replace(work / db_name, index_dir / db_name)
        fsync_path(index_dir)
        aside = index_dir / "legacy-v1"
        aside.mkdir(exist_ok=True)
        os.replace(index_dir / "snapshots", aside / "snapshots")
        os.replace(index_dir / "CURRENT", aside / "CURRENT")
        shutil.rmtree(work, ignore_errors=True)
    return {"migrated": True, "articles": len(articles), "chunks": len(chunks)}


def _copy_into(new, chunks: list[dict], articles: dict, vectors: np.ndarray) -> None:
    """One pass through the public store API: every article with its chunks and their exact vectors."""
    row = {c["id"]: i for i, c in enumerate(chunks)}
    by_id = {c["id"]: c for c in chunks}
    for key, rec in articles.items():
        ids = rec["chunk_ids"]
        docs = [Document(page_content=by_id[i]["text"], metadata={**by_id[i]["metadata"], "chunk_id": i}, id=i)
                for i in ids]
        new.upsert({k: v for k, v in rec.items() if k != "chunk_ids"}, docs,
                   vectors[[row[i] for i in ids]] if ids else vectors[:0])
    new.commit()
    new.close()
