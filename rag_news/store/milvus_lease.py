"""Per-shard leases for Milvus passes: two writers of one shard never overlap (a cron pass and an overrun).

Milvus has no transactions and no conditional write, so a lease is a claim row per writer in the records
collection (``l:<scope>:<owner>``, kind ``lease``, ``key`` the scope: ``i/N`` for ``reindex --shard i/N``,
``all`` for a whole-index pass), with the time it was claimed and when it expires. A writer inserts its
claim, reads every live claim that conflicts with it (the same shard, or ``all``; a whole-index pass
conflicts with every claim), and holds the lease when its own claim is the oldest (ties by owner id); it
reads again after ``settle_s`` (a claim written meanwhile by a writer whose clock is behind is seen
then), otherwise it withdraws its claim and exits (``IndexLocked``: "another pass holds shard i/N") or
waits. A holder renews its claim every ``ttl_s / 4`` from a thread; a killed writer's claim expires after
``ttl_s``. Safe as long as the writers' clocks differ by less than ``settle_s``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from typing import Iterator

from ..errors import IndexLocked
from .milvus_rows import quote as _quote, row as _row

TTL_S = 600.0
SETTLE_S = 0.5


def _scope(shard: tuple[int, int] | None) -> str:
    return "all" if shard is None else f"{shard[0]}/{shard[1]}"


def _claims(store, scope: str, now: float) -> list[dict]:
    where = 'kind == "lease"' if scope == "all" else f'kind == "lease" and (key == {_quote(scope)} or key == "all")'
    rows = store.client.query(store.records_col, filter=where, output_fields=["rid", "data"])
    return [dict(r["data"], rid=r["rid"]) for r in rows if float(r["data"].get("expires", 0)) > now]


def _holder(store, scope: str, me: str) -> dict | None:
    """The claim that holds the lease, if it is not ``me``'s."""
    claims = sorted(_claims(store, scope, time.time()), key=lambda c: (float(c["claimed"]), c["owner"]))
    return None if not claims or claims[0]["owner"] == me else claims[0]


@contextlib.contextmanager
def lease(store, shard: tuple[int, int] | None = None, wait: bool = False, ttl_s: float = TTL_S,
          settle_s: float = SETTLE_S, poll_s: float = 1.0) -> Iterator[str]:
    """Hold the lease of ``shard`` (None: the whole index) for the ``with`` block; yields the owner id.
    Raises :class:`IndexLocked` when another pass holds it, unless ``wait``."""
    scope = _scope(shard)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    rid = f"l:{scope}:{owner}"

    def claim(claimed: float) -> None:
        store.client.upsert(store.records_col, [_row(rid, "lease", scope, data={
            "scope": scope, "owner": owner, "claimed": claimed, "expires": time.time() + ttl_s})])

    while True:
        claimed = time.time()
        claim(claimed)
        other = _holder(store, scope, owner)
        if other is None:
            time.sleep(settle_s)
            other = _holder(store, scope, owner)
        if other is None:
            break
        store.client.delete(store.records_col, ids=[rid])
        if not wait:
            what = "the whole index" if other["scope"] == "all" else f"shard {other['scope']}"
            raise IndexLocked(f"another pass holds {what} (owner {other['owner']}, until "
                              f"{time.strftime('%H:%M:%S', time.localtime(float(other['expires'])))})")
        time.sleep(poll_s)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 4):
            claim(claimed)

    beat = threading.Thread(target=renew, name=f"rag-news-lease-{scope}", daemon=True)
    beat.start()
    try:
        yield owner
    finally:
        stop.set()
        beat.join(timeout=5)
        store.client.delete(store.records_col, ids=[rid])
