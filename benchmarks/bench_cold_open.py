"""A cold open at 1M chunks: the IVF lists a question probes asked of the disk at once, vs faulted in.

The index is bench_scale's synthetic 1M chunks built as a first build committing in batches writes it
(``--commit-every``, default one pass per 100,000 chunks: 10 IVF segments). Then, in fresh processes
that alternate between the two ways (``--rounds`` each), with the OS page cache dropped before each:

* ``prefetch``: the store as shipped (``VectorSet.prefetch``: every probed list's byte range asked for
  with ``posix_fadvise`` WILLNEED before the search scans);
* ``faulted``: the same code with that one step made a no-op (patched in this benchmark's child only),
  so FAISS's memory-mapped lists are read by page faults, each one reading the disk's read-ahead window.

Each prints the open + first hybrid question (``NewsRetriever``, dense + keyword, no LLM), the bytes the
process read from disk for it (``/proc/self/io`` read_bytes), the next 100 questions right after (still
reading the index from disk: their p50 and bytes read) and the same 100 again (warm, p50); then the
medians of the runs and their ratios side by side.

    python benchmarks/bench_cold_open.py [--size 1000000] [--commit-every 100000] [--rounds 3]
        [--dir /tmp/rag-news-cold] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import machine

QUESTIONS = 101  # the first one, then 100 asked twice


def read_bytes() -> int:
    for line in open("/proc/self/io"):
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def measure(n: int, folder: Path, way: str) -> dict:
    """One cold open and its questions, ``way`` = prefetch | faulted (see the module docstring)."""
    from bench_scale import StandIn, drop_caches
    from _synthetic import Corpus
    from rag_news.retrieve import NewsRetriever
    from rag_news.store import NewsIndex
    from rag_news.store import vectors

    if way == "faulted":
        vectors.VectorSet.prefetch = lambda self, *a, **k: 0
    questions = Corpus(n).questions(QUESTIONS)
    import faiss  # noqa: F401  (loaded before the clock starts: the library's own files are not the index)

    cold = drop_caches()
    before, t0 = read_bytes(), time.perf_counter()
    retriever = NewsRetriever(index=NewsIndex.open(folder, StandIn(questions)), k=5)
    retriever.invoke(questions[0][0])
    first, first_read = time.perf_counter() - t0, read_bytes() - before
    rounds, reads = [], []
    for _ in range(2):
        times, at = [], read_bytes()
        for text, _, _ in questions[1:]:
            t = time.perf_counter()
            retriever.invoke(text)
            times.append(time.perf_counter() - t)
        rounds.append(times)
        reads.append(read_bytes() - at)
    return {"way": way, "cold_cache": cold, "open_plus_first_s": round(first, 3),
            "first_read_mb": round(first_read / 1e6, 1), "next_read_mb": round(reads[0] / 1e6, 1),
            "next_p50_ms": round(float(np.median(rounds[0])) * 1000, 1),
            "warm_p50_ms": round(float(np.median(rounds[1])) * 1000, 1)}


def child(what: str, n: int, folder: Path, commit_every: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_SCALE_COMMIT_EVERY": str(commit_every),
           "BENCH_SCALE_BACKEND": "faiss"}
    out = subprocess.run([sys.executable, __file__, "--child", what, str(n), str(folder)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--commit-every", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/rag-news-cold")
    ap.add_argument("--keep", action="store_true", help="keep the index (and reuse one already there)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        what, n, folder = args.child
        if what == "build":
            from bench_scale import build

            print(json.dumps(build(int(n), Path(folder))))
        else:
            print(json.dumps(measure(int(n), Path(folder), what)))
        return
    folder = Path(args.dir) / f"faiss-{args.size}"
    print(f"machine: {machine()}; {args.size:,} chunks, build passes of {args.commit_every:,}", flush=True)
    if not (args.keep and (folder / "index.db").exists()):
        print("build", child("build", args.size, folder, args.commit_every), flush=True)
    runs: dict[str, list[dict]] = {"prefetch": [], "faulted": []}
    for _ in range(args.rounds):
        for way in runs:
            m = child(way, args.size, folder, args.commit_every)
            print(json.dumps(m), flush=True)
            runs[way].append(m)
    med = {way: {k: float(np.median([m[k] for m in ms])) for k in ms[0] if k not in ("way", "cold_cache")}
           for way, ms in runs.items()}
    for k in med["prefetch"]:
        print(f"median {k}: prefetch {med['prefetch'][k]} vs faulted {med['faulted'][k]} "
              f"(faulted / prefetch {med['faulted'][k] / max(med['prefetch'][k], 1e-9):.2f}x)")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
