"""Per-pass bookkeeping costs that should follow the change, not the corpus (issue 23 part 3), side by side
on one FAISS index: what expiry reads (the rows its query returns, and the time) through
``Store.expiry_candidates`` versus a walk over every record (``iter_articles``, what a pass did before), and
what planning merges reads to know each segment's dead vectors: the stored counts versus every segment's
id map (``vectors.count_segment`` on each, what it did before).

The index: ``--articles`` synthetic articles of one chunk (16-dim random unit vectors: only bookkeeping is
measured), first seen over ``--days`` days, committed ``--batch`` a pass (so it has several segments), then
1% of them removed. Expiry asks for the records last seen before the span's second day: what a daily
pass finds newly stale in an index whose older articles earlier passes already removed (``--stale-days``).

    nice -n 15 python benchmarks/bench_store_pass.py [--articles 100000] [--batch 10000] [--days 365]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import machine  # noqa: E402

from rag_news.store import NewsIndex, StoreOptions, records  # noqa: E402
from rag_news.store import vectors as vec  # noqa: E402

DIM = 16


class Vectors:
    """Embeddings stand-in: the index is given precomputed vectors only."""

    model_name, dim = "synthetic-16", DIM


def build(folder: Path, n: int, batch: int, days: int, start: datetime) -> NewsIndex:
    rng = np.random.default_rng(7)
    idx = NewsIndex.open(folder, Vectors(), create=True, options=StoreOptions(merge_factor=1000))
    for first in range(0, n, batch):
        for i in range(first, min(n, first + batch)):
            seen = (start + timedelta(days=days * i / n)).isoformat(timespec="seconds")
            key = f"http://news.example/{i}"
            v = rng.standard_normal(DIM).astype(np.float32)
            idx.upsert({"key": key, "url": key, "title": f"t{i}", "text": f"story {i}", "content_hash": str(i),
                        "published": seen[:10], "first_seen": seen, "last_seen": seen},
                       [Document(page_content=f"story {i}", metadata={"chunk_id": f"c{i}", "chunk_index": 0})],
                       (v / np.linalg.norm(v))[None, :])
        idx.commit()
    for i in range(0, n, 100):  # 1% removed: dead vectors in every segment
        idx.remove(f"http://news.example/{i}")
    idx.commit()
    return idx


def timed(fn, repeat: int = 3):
    best, out = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--stale-days", type=float, default=1.0)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="rag-news-pass-"))
    shutil.rmtree(folder, ignore_errors=True)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    t0 = time.perf_counter()
    idx = build(folder, args.articles, args.batch, args.days, start)
    built = time.perf_counter() - t0
    cutoff = (start + timedelta(days=args.stale_days)).isoformat(timespec="seconds")
    cand, t_index = timed(lambda: idx.expiry_candidates(cutoff, None))
    walk, t_walk = timed(lambda: [r for r in idx.iter_articles() if (r.get("last_seen") or "") < cutoff])
    assert [r["key"] for r in cand] == sorted(r["key"] for r in walk)
    rows = records.segments(idx._conn)
    dead = np.fromiter(records.dead_vids(idx._conn), dtype=np.int64)
    stored, t_stored = timed(lambda: {r["name"]: r["dead"] for r in records.segments(idx._conn)})
    mapped, t_maps = timed(lambda: {r["name"]: vec.count_segment(idx.path / "vectors", r["name"], dead)[0] for r in rows})
    assert stored == mapped
    print(json.dumps({"machine": machine(), "articles": len(idx), "segments": len(rows), "dead": int(len(dead)),
                      "build_s": round(built, 1)}))
    print(f"expiry: {len(cand)} candidates read through the index in {t_index * 1000:.1f} ms; "
          f"walk over {len(idx)} records {t_walk * 1000:.1f} ms ({t_walk / t_index:.0f}x)")
    print(f"dead counts of {len(rows)} segments: stored {t_stored * 1000:.2f} ms; "
          f"from the id maps {t_maps * 1000:.1f} ms ({t_maps / max(t_stored, 1e-9):.0f}x)")
    idx.close()
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
