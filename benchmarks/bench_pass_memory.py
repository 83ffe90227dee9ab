"""Peak memory of a first build: one pass committed in batches (``commit_every``) vs one commit at the end.

N synthetic articles (120 words of the synthetic corpus's vocabulary, benchmarks/_synthetic.py, in pages
of 117 kB: a menu and inline scripts around the article, the median size of the 91 article-extraction
dev pages unzipped) are served on 127.0.0.1 and indexed by the real pass (`rag_news.update_index`: fetch over httpx, clean
with trafilatura, chunk, embed with the packaged MiniLM, commit to FAISS + SQLite). Each run is a fresh
process; "pass" is its peak RSS during the pass (VmHWM, reset when the pass starts) minus the RSS after the
embedder was loaded and used once.
Chromium is off (render = never): the pages are plain HTML.

    python benchmarks/bench_pass_memory.py --sizes 1000 3000 --commit-every 250 [--batches-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

from _common import machine, serve_pages
from _synthetic import vocabulary

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def article(i: int, words: list[str]) -> str:
    import random

    rng = random.Random(i)
    paras = "".join("<p>" + " ".join(rng.choice(words) for _ in range(40)).capitalize() + ".</p>" for _ in range(3))
    menu = "".join(f"<li><a href='/section/{rng.choice(words)}'>{rng.choice(words)}</a></li>" for _ in range(400))
    script = "var cfg = {" + ",".join(f"'{rng.choice(words)}{j}': {rng.random():.6f}" for j in range(3900)) + "};"
    return (f"<html><head><title>Story {i}</title><meta property='article:published_time' content='2026-11-20'>"
            f"<script>{script}</script></head><body><nav><ul>{menu}</ul></nav>"
            f"<article><h1>Story number {i} of the day</h1>{paras}</article></body></html>")


def status_mb(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def rss_now() -> float:
    """Resident memory now (ru_maxrss is the peak so far: loading the model peaks above what stays)."""
    return status_mb("VmRSS")


def reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) to what it holds now (Linux ``clear_refs`` 5); False where it
    can't be, and then the peak counts from the process's start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Pages(Mapping):
    """The ``n`` pages, each made when it is asked for: the benchmark holds none, so the pass's memory is the
    pass's own (a dict of them held ~0.12 MB an article in this process, counted as the pass's until this)."""

    def __init__(self, n: int, words: list[str]):
        self.n, self.words = n, words

    def __getitem__(self, name: str) -> str:
        if not (name.startswith("a") and name[1:].isdigit() and int(name[1:]) < self.n):
            raise KeyError(name)
        return article(int(name[1:]), self.words)

    def __iter__(self):
        return (f"a{i}" for i in range(self.n))

    def __len__(self) -> int:
        return self.n


def child(n: int, commit_every: int) -> dict:
    from rag_news import Settings
    from rag_news.pipeline import update_index
    from rag_news.embed import Embedder
    from rag_news.sources import Target

    pages = Pages(n, vocabulary(3000))
    settings = Settings(index_dir=tempfile.mkdtemp(prefix="rag-news-mem-"), embedding_model="sentence-transformers/all-MiniLM-L6-v2",
                        render="never", per_host_interval=0, per_host_concurrency=16, http_concurrency=16,
                        max_requests_per_host=None, commit_every=commit_every, progress=False, stories=False)
    embedder = Embedder(settings)
    embedder.embed_array(["warm up"])
    base, reset = rss_now(), reset_peak()
    with serve_pages(pages) as site:
        t0 = time.perf_counter()
        report = update_index([Target(url=f"{site}/a{i}.html") for i in range(n)], settings, embedder=embedder)
        seconds = time.perf_counter() - t0
    peak = status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"articles": report.articles_total, "chunks": report.chunks_total, "commits": report.commits,
            "base_mb": round(base), "peak_mb": round(peak), "pass_mb": round(peak - base), "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--commit-every", type=int, default=250)
    ap.add_argument("--batches-only", action="store_true", help="measure the batched pass only (no one-commit run)")
    ap.add_argument("--child", type=int, nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    print(f"machine: {machine()}")
    print(f"{'articles':>8} {'commit_every':>12} {'commits':>7} {'chunks':>7} {'base MB':>7} {'peak MB':>7} "
          f"{'pass MB':>7} {'seconds':>7}")
    for n in args.sizes:
        row = {}
        for every in ((args.commit_every,) if args.batches_only else (0, args.commit_every)):
            out = subprocess.run([sys.executable, __file__, "--child", str(n), str(every)], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = row[every] = json.loads(out)
            print(f"{n:>8} {every or 'one commit':>12} {r['commits']:>7} {r['chunks']:>7} {r['base_mb']:>7} "
                  f"{r['peak_mb']:>7} {r['pass_mb']:>7} {r['seconds']:>7}", flush=True)
        if 0 in row:
            one, batched = row[0]["pass_mb"], row[args.commit_every]["pass_mb"]
            print(f"{n:>8} pass memory, one commit / batches: {one / max(batched, 1):.2f}x")


if __name__ == "__main__":
    main()
