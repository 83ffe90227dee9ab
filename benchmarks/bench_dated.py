"""Dated dense search on an index built in big passes: recall@10 against exact search over the window, and
latency, for windows of 1 day, 1 week and 1 year; side by side with a plain filtered IVF search at the
configured ``nprobe`` (what rag-news did before: no exact scoring, no extra lists).

The index: ``--size`` synthetic chunks (768-dim clustered unit vectors from ``_synthetic.py``, one chunk an
article, texts a few words: only vectors are measured) published on days spread at random over two years,
committed ``--batch`` chunks a pass as a first build would (each such pass writes its IVF index itself). The
window's exact answer is computed with numpy over the window's own vectors. Questions are 200 synthetic
question vectors (a chunk's vector plus noise).

    python benchmarks/bench_dated.py [--size 200000] [--batch 50000] [--dir /tmp/rag-news-dated] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

from _common import machine
from _synthetic import Corpus

SPAN_DAYS = 730
END = date(2026, 11, 30)


class Vectors:
    """Embeddings stand-in: the index is given precomputed vectors only."""

    model_name, dim = "synthetic-768", 768

    def embed_query(self, text):
        raise NotImplementedError


def build(corpus: Corpus, folder: Path, batch: int, days: np.ndarray) -> float:
    from rag_news.store import NewsIndex

    shutil.rmtree(folder, ignore_errors=True)
    idx = NewsIndex.open(folder, Vectors(), create=True)
    t0 = time.perf_counter()
    for start, stop in corpus.blocks():
        vecs = corpus.vectors(start, stop)
        for i in range(start, stop):
            key = f"https://news.example/d/{i}"
            published = (END - timedelta(days=int(days[i]))).isoformat()
            doc = Document(page_content=f"story {i}", metadata={"chunk_id": f"c{i}", "chunk_index": 0})
            idx.upsert({"key": key, "url": key, "content_hash": key, "published": published}, [doc],
                       vecs[i - start][None, :])
        if stop % batch == 0 or stop == corpus.n:
            idx.commit()
    idx.close()
    return time.perf_counter() - t0


def plain_filtered_ivf(idx, q: np.ndarray, k: int, since: str, until: str) -> list[int]:
    """The search before this change: every segment searched as it is, the window as an ID selector."""
    import faiss

    from rag_news.store import records

    vs = idx._vectors
    allowed = np.asarray(records.vids_between(idx._conn, since, until), dtype=np.int64)
    sel = faiss.IDSelectorAnd(faiss.IDSelectorBatch(allowed), vs._not_dead)
    found = []
    for seg in vs.segments.values():
        params = faiss.SearchParametersIVF(sel=sel, nprobe=vs.nprobe) if seg.kind == "ivf" else \
            faiss.SearchParameters(sel=sel)
        scores, ids = seg.index.search(q[None, :], k, params=params)
        found += [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
    return [v for v, _ in sorted(found, key=lambda p: -p[1])[:k]]


def measure(corpus: Corpus, folder: Path, days: np.ndarray, questions) -> dict:
    from rag_news.store import NewsIndex

    idx = NewsIndex.open(folder, Vectors())
    chunk_of = {r[0]: int(r[1][1:]) for r in idx._conn.execute("SELECT vid, chunk_id FROM chunks")}
    out = {"segments": [(s["kind"], s["vectors"]) for s in idx.segment_rows()]}
    for name, width in (("1 day", 1), ("1 week", 7), ("1 year", 365)):
        since, until = (END - timedelta(days=width - 1)).isoformat(), END.isoformat()
        members = np.flatnonzero(days < width)
        vecs = np.concatenate([corpus.vectors(s, e) for s, e in corpus.blocks()])[members] if len(members) else None
        row = {"window_chunks": int(len(members))}
        for label, search in (("rag_news", lambda q: [int(h.chunk_id[1:]) for h in
                                                      idx.dense_search(q, 10, since=since, until=until)]),
                              ("plain_ivf", lambda q: [v for v in plain_filtered_ivf(idx, q, 10, since, until)])):
            times, recalls = [], []
            for _, q, _ in questions:
                want = set(members[np.argsort(-(vecs @ q))[:10]].tolist())
                t = time.perf_counter()
                got = search(q)
                times.append(time.perf_counter() - t)
                got = set(got) if label == "rag_news" else {chunk_of[v] for v in got}
                recalls.append(len(want & got) / len(want))
            row[label] = {"recall_at_10": round(float(np.mean(recalls)), 3),
                          "p50_ms": round(float(np.median(times)) * 1000, 2),
                          "first_ms": round(times[0] * 1000, 2)}
        out[name] = row
        del vecs
    idx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--dir", default="/tmp/rag-news-dated")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--reuse", action="store_true", help="measure the index already in --dir (same --size/--batch)")
    args = ap.parse_args()
    corpus = Corpus(args.size)
    days = np.random.default_rng(5).integers(0, SPAN_DAYS, args.size)
    folder = Path(args.dir)
    build_s = float("nan") if args.reuse else build(corpus, folder, args.batch, days)
    result = {"machine": machine(), "size": args.size, "batch": args.batch, "build_s": round(build_s, 1),
              **measure(corpus, folder, days, corpus.questions(args.questions))}
    print(json.dumps(result, indent=1))
    if not args.reuse:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
