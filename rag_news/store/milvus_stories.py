"""Story entries in the Milvus backend's records collection (see :mod:`rag_news.stories`).

One row per article in a story: ``rid`` ``s:<key>``, ``kind`` ``"story"``, ``key`` the article,
``content_hash`` the story id (the collection's indexed string column; for story rows it holds the story,
not a hash), ``data`` the entry (url, outlet, title, published, first_seen, day and ``dayn`` = YYYYMMDD,
terms, ``sig`` the MinHash values, ``bands`` the LSH band hashes, ``lead`` the title+lead vector). Band
lookups are ``json_contains_any`` over ``data["bands"]``.
"""

from __future__ import annotations

import numpy as np

from .base import Staged
from .milvus_rows import BATCH, day_number, in_list as _in, row as _row

_FIELDS = ["key", "content_hash", "data"]


def _entry(row: dict) -> dict:
    e = dict(row["data"])
    e["key"], e["story"] = row["key"], row["content_hash"]
    e.pop("dayn", None)
    e.pop("bands", None)
    e["lead"] = np.asarray(e["lead"], np.float32) if e.get("lead") is not None else None
    return e


def _query(store, where: str) -> list[dict]:
    rows = []
    it = store.client.query_iterator(store.records_col, batch_size=1000, filter=f'kind == "story" and ({where})',
                                     output_fields=_FIELDS)
    try:
        while batch := it.next():
            rows += [_entry(r) for r in batch]
    finally:
        it.close()
    return rows


def write(store, staged: Staged) -> None:
    """The pass's story entries: a reset (restory), removed articles' entries dropped, new entries put."""
    if staged.stories_reset:
        store.client.delete(store.records_col, filter='kind == "story"')
    if staged.removals:
        store.client.delete(store.records_col, ids=[f"s:{k}" for k in staged.removals])
    rows = []
    for key, e in staged.stories.items():
        data = {k: v for k, v in e.items() if k not in ("key", "story", "lead")}
        data["lead"] = None if e.get("lead") is None else np.asarray(e["lead"], np.float32).tolist()
        data["dayn"] = day_number(e.get("day"))
        rows.append(_row(f"s:{key}", "story", key, data=data, content_hash=e["story"]))
    for i in range(0, len(rows), BATCH):
        store.client.upsert(store.records_col, rows[i:i + BATCH])


def by_keys(store, keys: list[str]) -> dict[str, dict]:
    out = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), BATCH):
        for r in store.client.get(store.records_col, ids=[f"s:{k}" for k in keys[i:i + BATCH]],
                                  output_fields=_FIELDS):
            out[r["key"]] = _entry(r)
    return out


def keys_for_bands(store, bands: list[str]) -> set[str]:
    if not bands:
        return set()
    rows = store.client.query(store.records_col, output_fields=["key"],
                              filter=f'kind == "story" and json_contains_any(data["bands"], {_in(bands)})')
    return {r["key"] for r in rows}


def between(store, since: str | None, until: str | None) -> list[dict]:
    lo = day_number(since) if since else 0
    hi = day_number(until) if until else 99_999_999
    return _query(store, f'data["dayn"] >= {lo} and data["dayn"] <= {hi}')


def members(store, story_ids: list[str]) -> list[dict]:
    ids = list(dict.fromkeys(story_ids))
    return _query(store, f"content_hash in {_in(ids)}") if ids else []
