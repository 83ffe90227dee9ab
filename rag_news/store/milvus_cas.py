"""Cross-shard record updates on Milvus as compare-and-set: no update of another shard's record is lost.

A shard worker (``reindex --shard I/N``) sometimes updates a record of another shard: a page of its own
whose text is already indexed under an article of shard J becomes an alias of that article (its record's
``aliases`` and ``last_seen``). Milvus has no conditional write and no transaction, so writing that record
directly is a read-modify-write that races the record's owner (shard J's writer rewriting the article)
and any other shard adding its own alias: the last upsert wins and the others' updates are lost.

So such an update is never written into the record by the worker that wants it. It is staged as an
**intent**: a row of its own (``q:<key>:<id>``, kind ``intent``, ``key`` the record's key, the fields in
``data``), inserted under a fresh id, so two intents never overwrite each other. Intents are applied only
by a writer that holds the lease of the record's own shard (:mod:`rag_news.store.milvus_lease`; a
whole-index pass holds every shard), as a compare-and-set on the record's version ``record_rev``: read the
record and its version, merge the intents (``aliases`` united, ``last_seen`` the later, other fields set),
write it with the version + 1 and a write id, read it back; a record read back with another write id
(a writer that did not respect the lease, e.g. a clock far off) is merged again, up to :data:`TRIES`
times; only then are the intents deleted. A record removed meanwhile has nothing to update: its intents
are dropped.

Who applies them: the owner at the end of each of its passes (under its lease), and every worker right
after it leaves its own lease, for the shards its intents went to and for its own, taking each lease
without waiting (when another pass holds it, that pass applies them at its commit or just after it leaves
its lease: it reads the intents only after releasing, so an intent written while it held the lease is seen).
A killed worker's intents stay until the next holder applies them. No worker waits for another shard's
lease while holding its own, so two workers cannot deadlock.
"""

from __future__ import annotations

import logging
import time
import uuid

from ..errors import IndexLocked, RagNewsError
from ..urls import shard_of
from . import milvus_lease
from .base import url_forms
from .milvus_rows import BATCH, record_row, row as _row

log = logging.getLogger(__name__)
TRIES = 5


def owns(shard: tuple[int, int] | None, key: str) -> bool:
    """Whether a pass over ``shard`` (None: the whole index) owns the record of ``key``."""
    return shard is None or shard_of(key, shard[1]) == shard[0]


def merge(record: dict, fields: dict) -> dict:
    """``record`` with an intent's ``fields``: ``aliases`` united (order kept), ``last_seen`` the later of
    the two, any other field set."""
    out = dict(record)
    for name, value in fields.items():
        if name == "aliases":
            out[name] = list(dict.fromkeys([*(record.get("aliases") or []), *(value or [])]))
        elif name == "last_seen" and isinstance(value, str) and isinstance(record.get(name), str):
            out[name] = max(value, record[name])
        else:
            out[name] = value
    return out


def stage(store, touches: dict[str, dict], by: str) -> list[str]:
    """Insert one intent row per record of ``touches`` (``{key: fields}``); returns their ids."""
    rows = [_row(f"q:{key}:{uuid.uuid4().hex}", "intent", key, data={"fields": fields, "by": by, "at": time.time()})
            for key, fields in touches.items()]
    for i in range(0, len(rows), BATCH):
        store.client.insert(store.records_col, rows[i:i + BATCH])
    return [r["rid"] for r in rows]


def pending(store, shard: tuple[int, int] | None = None) -> dict[str, list[dict]]:
    """The intents not yet applied to records of ``shard`` (None: all), ``{key: [intent row]}`` oldest first."""
    rows = store.client.query(store.records_col, filter='kind == "intent"', output_fields=["rid", "key", "data"])
    out: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: float((r.get("data") or {}).get("at", 0))):
        if owns(shard, r["key"]):
            out.setdefault(r["key"], []).append(r)
    return out


def compare_and_set(store, key: str, updates: list[dict]) -> bool:
    """Apply ``updates`` (field dicts, in order) to ``key``'s record as a compare-and-set on its version;
    the caller holds the lease of the record's shard. False when the record no longer exists."""
    for _ in range(TRIES):
        rec = store.article(key)
        if rec is None:
            return False
        rev = int(rec.get("record_rev") or 0)
        new = rec
        for fields in updates:
            new = merge(new, fields)
        write_id = uuid.uuid4().hex
        row = record_row(new, new.get("chunk_ids", []), rev=rev + 1, write_id=write_id)
        urls = [_row(f"u:{u}", "url", key, data={"key": key}) for u in url_forms(new)]
        store.client.upsert(store.records_col, urls + [row])
        got = store.article(key) or {}
        if got.get("record_write") == write_id and int(got.get("record_rev") or 0) == rev + 1:
            return True
        log.warning("the record of %s changed while it was updated (version %s -> %s); merging again",
                    key, rev, got.get("record_rev"))
    raise RagNewsError(f"the record of {key} kept changing under its shard's lease ({TRIES} tries)")


def apply_pending(store, shard: tuple[int, int] | None) -> int:
    """Apply every pending intent for records of ``shard`` (the caller holds its lease); returns how many
    intents were applied or dropped."""
    done = []
    for key, rows in pending(store, shard).items():
        compare_and_set(store, key, [(r.get("data") or {}).get("fields", {}) for r in rows])
        done += [r["rid"] for r in rows]
    for i in range(0, len(done), BATCH):
        store.client.delete(store.records_col, ids=done[i:i + BATCH])
    return len(done)


def settle(store, shards: set) -> int:
    """After a pass left its lease: for each of ``shards`` (``(I, N)``; None: the whole index) with pending
    intents, take its lease without waiting and apply them; a shard whose lease another pass holds is left
    to that pass. Returns how many intents were applied."""
    applied = 0
    for shard in sorted(shards, key=lambda s: (-1, 0) if s is None else s):
        if not pending(store, shard):
            continue
        try:
            with milvus_lease.lease(store, shard, wait=False):
                applied += apply_pending(store, shard)
        except IndexLocked:
            log.info("%s is being written by another pass; it applies the pending updates",
                     "the index" if shard is None else f"shard {shard[0]}/{shard[1]}")
    return applied

