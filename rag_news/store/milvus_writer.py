"""Writing a pass into the Milvus backend (:func:`commit_pass`) and checking it (:func:`check`).

Order (see :mod:`rag_news.store.milvus_store` for what a crash leaves): removals (record first, then its
text, URL forms and chunks); then, 500 articles at a time, their new chunks -> texts -> URL forms -> records
(each article's switch) -> their old chunks deleted; then touches, expired notes, host notes, and a pass row.
"""

from __future__ import annotations

import uuid

from ..faults import NO_FAULTS, Faults
from ..urls import shard_of
from . import milvus_stories
from .base import CommitResult, Staged, chunk_rows, url_forms, utc_now
from .milvus_cas import apply_pending, owns, stage
from .milvus_rows import BATCH, TEXT_PIECE, count, day_number, get_records, in_list as _in, quote as _quote
from .milvus_rows import record_row as _record_row, row as _row


def _chunk_rows(rec: dict, chunks, vectors) -> list[dict]:
    rows = []
    for (index, cid, text, meta), v in zip(chunk_rows(rec, chunks), vectors):
        meta["chunk_index"] = index
        rows.append({"chunk_id": cid, "key": rec["key"], "text": text, "published": day_number(rec.get("published")),
                     "meta": meta, "dense": v.tolist()})
    return rows


def _put(store, collection: str, rows: list[dict]) -> None:
    for i in range(0, len(rows), BATCH):
        store.client.upsert(collection, rows[i:i + BATCH])


def _records(store, rids: list[str]) -> dict[str, dict]:
    return get_records(store.client, store.records_col, rids)


def _forget(store, key: str) -> None:
    """Delete an article: its record first (readers stop seeing it), then the rest."""
    store.client.delete(store.records_col, ids=[f"a:{key}"])
    store.client.delete(store.records_col, filter=f'key == {_quote(key)} and (kind == "text" or kind == "url")')
    store.client.delete(store.chunks_col, filter=f"key == {_quote(key)}")


def _text_rows(rec: dict, version: str) -> list[dict]:
    """The article's text in pieces, under ids of their own version (an older version's pieces stay
    readable until the record switches to these)."""
    text = rec.get("text") or ""
    pieces = [text[j:j + TEXT_PIECE] for j in range(0, len(text), TEXT_PIECE)] or [""]
    return [_row(f"t:{rec['key']}:{version}:{n}", "text", rec["key"], data={"version": version}, text=p)
            for n, p in enumerate(pieces)]


def _drop_other_texts(store, versions: dict[str, str]) -> None:
    """Delete the text pieces of ``versions``' keys that belong to no current version."""
    rows = store.client.query(store.records_col, filter=f'kind == "text" and key in {_in(list(versions))}',
                              output_fields=["rid", "key", "data"])
    stale = [r["rid"] for r in rows if (r.get("data") or {}).get("version") != versions[r["key"]]]
    if stale:
        store.client.delete(store.records_col, ids=stale)


def _write_articles(store, upserts: list, faults: Faults) -> int:
    """New versions of articles, BATCH at a time: chunks -> text (new pieces beside the old) -> URL forms ->
    records (each article's switch) -> the old chunks and text pieces deleted. Returns how many old chunks
    were deleted."""
    removed = 0
    for i in range(0, len(upserts), BATCH):
        part = upserts[i:i + BATCH]
        keys = [rec["key"] for rec, _, _ in part]
        old = _records(store, [f"a:{k}" for k in keys])
        _put(store, store.chunks_col, [row for rec, ch, v in part for row in _chunk_rows(rec, ch, v)])
        versions = {k: uuid.uuid4().hex[:12] for k in keys}
        texts, urls = [], []
        for rec, _, _ in part:
            texts += _text_rows(rec, versions[rec["key"]])
            urls += [_row(f"u:{u}", "url", rec["key"], data={"key": rec["key"]}) for u in url_forms(rec)]
        _put(store, store.records_col, texts + urls)
        faults.reached("writing")  # crash tests: chunks and text written, records not yet
        ids = {rec["key"]: [c.metadata["chunk_id"] for c in ch] for rec, ch, _ in part}
        revs = {k: int((old.get(f"a:{k}") or {}).get("record_rev") or 0) + 1 for k in keys}
        _put(store, store.records_col, [_record_row(rec, ids[rec["key"]], versions[rec["key"]], rev=revs[rec["key"]])
                                        for rec, _, _ in part])
        keep = [c for cs in ids.values() for c in cs]
        store.client.delete(store.chunks_col, filter=f"key in {_in(keys)}" + (
            f" and chunk_id not in {_in(keep)}" if keep else ""))
        _drop_other_texts(store, versions)
        removed += sum(len(set(r.get("chunk_ids", [])) - set(ids[r["key"]])) for r in old.values())
    return removed


def _touch(store, touches: dict[str, dict]) -> None:
    """New values for some fields of existing records, BATCH at a time."""
    keys = list(touches)
    for i in range(0, len(keys), BATCH):
        recs = _records(store, [f"a:{k}" for k in keys[i:i + BATCH]])
        rows, urls = [], []
        for rec in recs.values():
            fields = touches[rec["key"]]
            rec.update(fields)
            rows.append(_record_row(rec, rec.get("chunk_ids", [])))
            if {"url", "source", "aliases"} & set(fields):
                urls += [_row(f"u:{u}", "url", rec["key"], data={"key": rec["key"]}) for u in url_forms(rec)]
        _put(store, store.records_col, urls + rows)


def commit_pass(store, staged: Staged, shard: tuple[int, int] | None = None, owner: str = "",
                faults: Faults = NO_FAULTS) -> tuple[CommitResult, set]:
    """Write ``staged`` into ``store``'s collections; one pass row at the end. ``shard``: the pass's
    (None: the whole index), ``owner``: its lease owner id. Returns the result and the shards ``(i, n)``
    whose records got compare-and-set updates staged (applied under their leases, :mod:`.milvus_cas`)."""
    if not staged.pending:
        return CommitResult(pass_id=None), set()
    removed = 0
    for key in staged.removals:
        rec = store.article(key)
        removed += len(rec.get("chunk_ids", [])) if rec else 0
        _forget(store, key)
    upserts = list(staged.upserts.values())
    removed += _write_articles(store, upserts, faults)
    added = staged.chunks_added
    touches = staged.foreign_touches()
    _touch(store, {k: f for k, f in touches.items() if owns(shard, k)})
    foreign = {k: f for k, f in touches.items() if not owns(shard, k)}
    if foreign:  # another shard's records: compare-and-set by their shard's lease holder (milvus_cas)
        stage(store, foreign, owner)
    when = utc_now()
    _put(store, store.records_col, [_row(f"x:{k}", "expired", k, data={"reason": r, "removed_at": when})
                                    for k, r in staged.expired.items()])
    if staged.upserts:
        store.client.delete(store.records_col, ids=[f"x:{k}" for k in staged.upserts])
    _put(store, store.records_col, [_row(f"h:{h}", "host", h, data={**n, "noted_at": when})
                                    for h, n in staged.host_notes.items()])
    apply_pending(store, shard)  # other shards' updates of this shard's records, under its lease
    milvus_stories.write(store, staged)  # the pass's story entries (rag_news.stories)
    written = staged.articles_written
    store.client.insert(store.records_col, [_row(f"p:{when}:{uuid.uuid4().hex[:8]}", "pass", "", data={
        "when": when, "added": added, "removed": removed, "written": written})])
    result = CommitResult(pass_id=count(store.client, store.records_col, 'kind == "pass"'), chunks_added=added,
                          chunks_removed=removed, articles_written=written)
    return result, {(shard_of(k, shard[1]), shard[1]) for k in foreign}


def check(store) -> list[str]:
    """Chunks no record lists, and records listing chunks that are missing."""
    listed = {}
    for rec in store.articles.values():
        for cid in rec.get("chunk_ids", []):
            listed[cid] = rec["key"]
    present = set()
    it = store.client.query_iterator(store.chunks_col, batch_size=1000, filter="", output_fields=["chunk_id"])
    try:
        while batch := it.next():
            present.update(r["chunk_id"] for r in batch)
    finally:
        it.close()
    problems = []
    orphans = present - set(listed)
    if orphans:
        problems.append(f"{len(orphans)} chunk(s) no article lists (a writer stopped mid-article; deleted when "
                        "their article is next written)")
    missing = set(listed) - present
    if missing:
        problems.append(f"{len(missing)} chunk(s) listed by a record are missing")
    return problems
