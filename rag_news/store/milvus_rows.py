"""The Milvus backend's row formats and small queries, shared by the store, its writer, the cross-shard
compare-and-set, the leases and the story rows (a leaf: it imports no other Milvus module).

Rows of ``<name>_records`` (see :mod:`rag_news.store.milvus_store`) are made by :func:`row`; an article's
record row by :func:`record_row`; chunk rows come back as documents through :func:`document`."""

from __future__ import annotations

import json

from langchain_core.documents import Document

TEXT_PIECE = 16_000   # characters per article-text row (VARCHAR holds 65,535 bytes)
MAX_TEXT = 65_535
BATCH = 500           # rows per insert / upsert call


def day_number(published: str | None) -> int:
    """``"2026-11-02..."`` -> 20261102; undated (or unreadable) -> -1."""
    try:
        return int(str(published)[:10].replace("-", "")) if published else -1
    except ValueError:
        return -1


def quote(value: str) -> str:
    """``value`` as a Milvus filter string literal."""
    return json.dumps(value, ensure_ascii=False)


def in_list(values) -> str:
    """A Milvus filter list literal of strings (``["a", "b"]``)."""
    return "[" + ", ".join(quote(v) for v in values) + "]"


def row(rid: str, kind: str, key: str, data: dict | None = None, text: str = "", content_hash: str = "") -> dict:
    """A row of the records collection."""
    return {"rid": rid, "kind": kind, "key": key, "content_hash": content_hash, "data": data or {}, "text": text,
            "v": [0.0, 0.0]}


def record_row(rec: dict, chunk_ids: list[str], text_version: str | None = None, rev: int | None = None,
               write_id: str | None = None) -> dict:
    """The record row of ``rec``; ``rev``: its version (``record_rev``, the old one + 1 on each write, for the
    compare-and-set of :mod:`rag_news.store.milvus_cas`), ``write_id``: who wrote it."""
    data = {k: v for k, v in rec.items() if k not in ("text", "record_write")}
    data["chunk_ids"] = chunk_ids
    data["record_rev"] = int(rec.get("record_rev") or 0) + 1 if rev is None else rev
    if write_id is not None:
        data["record_write"] = write_id
    if text_version is not None:
        data["text_version"] = text_version  # the text pieces this version of the article reads
    return row(f"a:{rec['key']}", "article", rec["key"], data=data, content_hash=rec.get("content_hash") or "")


def document(r: dict) -> Document:
    """A chunk row (``chunk_id``, ``text``, ``meta``) as a document."""
    meta = dict(r.get("meta") or {})
    meta["chunk_id"] = r["chunk_id"]
    return Document(page_content=r.get("text", ""), metadata=meta, id=r["chunk_id"])


def get_records(client, collection: str, rids: list[str]) -> dict[str, dict]:
    """The ``data`` of the records rows ``rids`` that exist, by rid (BATCH ids a request)."""
    out = {}
    for i in range(0, len(rids), BATCH):
        for r in client.get(collection, ids=rids[i:i + BATCH], output_fields=["data"]):
            out[r["rid"]] = dict(r["data"])
    return out


def count(client, collection: str, where: str = "") -> int:
    """Rows of ``collection`` matching the filter ``where``."""
    rows = client.query(collection, filter=where, output_fields=["count(*)"])
    return int(rows[0]["count(*)"]) if rows else 0
