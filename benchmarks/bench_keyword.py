"""Keyword search engines side by side for the persistent index: SQLite FTS5, tantivy, bm25s.

Each engine indexes the same synthetic chunks (``_synthetic.py``: 180 Zipf-distributed words each) in its
own process (so resident memory is its own), then: build time, adding 60 chunks and deleting 60 (what a
re-index pass does; bm25s cannot update, so it is rebuilt), top-30 query p50/p95 over 200 questions of 5
terms (a rare name + 4 words of the chunk, mostly common ones: a hard case for an OR query), resident
memory with the index open, and disk size. FTS5 is also run the way the store queries it (``fts5-pruned``:
the query's terms taken rarest first until the chunks containing them add up to 20,000; the commonest
terms carry the least BM25 weight and the longest posting lists). Both FTS5 rows run the store's own code
(``rag_news.store.records``), document frequencies cached between queries as the store does.

    python benchmarks/bench_keyword.py --sizes 100000 1000000 [--dir /tmp/rag-news-kw]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import machine
from _synthetic import Corpus

ENGINES = ("fts5", "fts5-pruned", "tantivy", "bm25s")
_WORD = re.compile(r"\w+")


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


# ------------------------------------------------------------------------------------------ FTS5
class Fts5:
    """The store's own keyword index: rag_news.store.records (schema, inserts, deletes, query)."""

    def __init__(self, folder: Path, prune: bool):
        from rag_news.store import records

        self.records = records
        self.db = records.connect(folder / "index.db", create=True)
        records.create(self.db, {"dim": 768})
        self.budget = records.POSTINGS_BUDGET if prune else 10 ** 12
        self.df: dict = {}

    def add(self, start: int, texts: list[str]) -> None:
        rows = [(vid, f"c{vid}", f"a{vid // 3}", vid % 3, None, text, {})
                for vid, text in zip(range(start, start + len(texts)), texts)]
        self.db.execute("BEGIN")
        self.records.insert_chunks(self.db, rows)
        self.db.execute("COMMIT")

    def delete(self, vids: list[int]) -> None:
        self.db.execute("BEGIN")
        for key in sorted({f"a{v // 3}" for v in vids}):
            self.records.delete_chunks(self.db, key)
        self.db.execute("COMMIT")

    def finish(self) -> None:
        self.db.execute("INSERT INTO chunk_fts(chunk_fts) VALUES('optimize')")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def search(self, query: str, k: int) -> list[int]:
        return [vid for vid, _ in self.records.keyword(self.db, query, k, budget=self.budget, df_cache=self.df)]


# ------------------------------------------------------------------------------------------ tantivy
class Tantivy:
    def __init__(self, folder: Path):
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("vid", stored=True, indexed=True, fast=True)
        sb.add_text_field("text", stored=False, tokenizer_name="default")
        self.schema = sb.build()
        self.index = tantivy.Index(self.schema, path=str(folder))
        self.writer = self.index.writer(heap_size=256_000_000, num_threads=2)
        self.tantivy = tantivy

    def add(self, start: int, texts: list[str]) -> None:
        for vid, text in zip(range(start, start + len(texts)), texts):
            self.writer.add_document(self.tantivy.Document(vid=vid, text=text))
        self.writer.commit()

    def delete(self, vids: list[int]) -> None:
        for vid in vids:
            self.writer.delete_documents("vid", vid)
        self.writer.commit()

    def finish(self) -> None:
        self.writer.commit()
        self.writer.wait_merging_threads()
        self.writer = self.index.writer(heap_size=256_000_000, num_threads=2)
        self.index.reload()

    def search(self, query: str, k: int) -> list[int]:
        self.index.reload()
        q = self.index.parse_query(" OR ".join(_WORD.findall(query)), ["text"])
        searcher = self.index.searcher()
        return [searcher.doc(addr)["vid"][0] for _, addr in searcher.search(q, k).hits]


# ------------------------------------------------------------------------------------------ bm25s
class Bm25s:
    def __init__(self, folder: Path):
        self.folder, self.texts, self.model = folder, [], None

    def add(self, start: int, texts: list[str]) -> None:
        self.texts.extend(texts)
        self.model = None

    def delete(self, vids: list[int]) -> None:
        for vid in vids:
            self.texts[vid] = ""
        self.model = None

    def finish(self) -> None:
        import bm25s

        self.model = bm25s.BM25()
        self.model.index(bm25s.tokenize(self.texts, stopwords="en", show_progress=False), show_progress=False)
        self.model.save(str(self.folder / "bm25s"))

    def search(self, query: str, k: int) -> list[int]:
        import bm25s

        if self.model is None:
            self.finish()
        ids, _ = self.model.retrieve(bm25s.tokenize([query], stopwords="en", show_progress=False), k=k,
                                     show_progress=False, n_threads=1)
        return [int(i) for i in ids[0]]


def make(engine: str, folder: Path):
    if engine.startswith("fts5"):
        return Fts5(folder, prune=engine == "fts5-pruned")
    return Tantivy(folder) if engine == "tantivy" else Bm25s(folder)


def run_one(engine: str, n: int, folder: Path) -> dict:
    """Index n chunks with one engine, then measure (runs in its own process)."""
    corpus = Corpus(n)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base_rss = rss_mb()
    eng = make(engine, folder)
    gen = build = 0.0
    for start, stop in corpus.blocks():
        t = time.perf_counter()
        texts = corpus.texts(start, stop)
        gen += time.perf_counter() - t
        t = time.perf_counter()
        eng.add(start, texts)
        build += time.perf_counter() - t
    t = time.perf_counter()
    eng.finish()
    build += time.perf_counter() - t
    new_texts = Corpus(n + 60).texts(n, n + 60)  # n is a multiple of the generator's block
    t = time.perf_counter()
    eng.add(n, new_texts)
    eng.delete(list(range(60)))  # 20 articles of 3 chunks
    if engine == "bm25s":
        eng.finish()  # bm25s has no incremental update: the change costs a rebuild
    change = time.perf_counter() - t
    questions = corpus.questions(200)
    times = []
    found = 0
    for text, _, i in questions:
        t = time.perf_counter()
        hits = eng.search(text, 30)
        times.append(time.perf_counter() - t)
        found += i in hits
    return {"engine": engine, "n": n, "build_s": round(build, 1), "generate_s": round(gen, 1),
            "add60_delete60_s": round(change, 3), "query_p50_ms": round(float(np.median(times)) * 1000, 1),
            "query_p95_ms": round(float(np.percentile(times, 95)) * 1000, 1),
            "source_in_top30": round(found / len(questions), 3),
            "rss_mb": round(rss_mb() - base_rss), "disk_mb": round(disk_mb(folder))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES))
    ap.add_argument("--dir", default="/tmp/rag-news-kw")
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), Path(args.dir) / f"{args.one[0]}-{args.one[1]}")))
        return
    print(f"machine: {machine()}")
    print(f"{'engine':12s} {'chunks':>8s} {'build s':>8s} {'+60/-60 s':>9s} {'p50 ms':>7s} {'p95 ms':>7s} "
          f"{'src@30':>6s} {'RSS MB':>7s} {'disk MB':>7s}")
    for n in args.sizes:
        for engine in args.engines:
            out = subprocess.run([sys.executable, __file__, "--one", engine, str(n), "--dir", args.dir],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{engine} {n}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{engine:12s} {n:8d} {r['build_s']:8.1f} {r['add60_delete60_s']:9.3f} {r['query_p50_ms']:7.1f} "
                  f"{r['query_p95_ms']:7.1f} {r['source_in_top30']:6.2f} {r['rss_mb']:7d} {r['disk_mb']:7d}",
                  flush=True)
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
