"""Dense search over 1M chunks: FAISS on a GPU vs FAISS on the CPU (p50 latency, recall@10 vs exact).

Vectors come from ``_synthetic.py`` as in bench_scale.py (768-dim unit vectors clustered around 2,000
topics); a question is one chunk's vector plus noise, as ``_synthetic`` makes them. The indexes are built as
``rag_news.store.vectors`` builds a segment: the exact ``IndexIDMap2(IndexFlatIP)`` and the approximate IVF
with 16-bit float codes (nlist = 2·√n, at most 4096, trained on 32·nlist vectors, 10 k-means iterations),
searched with nprobe 16 (the ``ivf_nprobe`` default). The GPU copies are made by ``rag_news.store.gpu``
(its placement and ``to_gpu``: one shared ``StandardGpuResources``), loaded from its file so this runs
without rag-news' other dependencies.

Timed: one question at a time, as the store searches (p50 and p95 ms over ``--questions`` after 10 warm-up
searches; the exact CPU index over the first ``--cpu-flat-questions`` only, it is slow), and the whole batch
in one call. recall@10 is against exact fp32 search on the CPU.

    python benchmarks/bench_gpu_faiss.py --n 1000000 --device cuda
    python benchmarks/bench_gpu_faiss.py --n 20000 --device cpu      # CPU smoke run: CPU columns only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time

import faiss
import numpy as np

from _common import ROOT
from _synthetic import DIM, Corpus

NPROBE = 16


def load_gpu_module():
    """``rag_news/store/gpu.py`` by itself (``rag_news.store``'s package needs LangChain, absent on the GPU
    machine; gpu.py needs only the standard library)."""
    spec = importlib.util.spec_from_file_location("rag_news_store_gpu", ROOT / "rag_news" / "store" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def build(n: int, seed: int = 1234) -> tuple:
    """``(exact index, IVF index, nlist, corpus)`` over ``n`` synthetic chunks, as the store builds them."""
    corpus = Corpus(n)
    nlist = int(min(4096, max(16, 2 * math.sqrt(n))))
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, 32 * nlist), replace=False))
    blocks = [(s, e, corpus.vectors(s, e)) for s, e in corpus.blocks()]
    train = np.concatenate([v[sample[(sample >= s) & (sample < e)] - s] for s, e, v in blocks])
    ivf.train(np.ascontiguousarray(train))
    for s, e, v in blocks:
        ids = np.arange(s, e, dtype=np.int64)
        exact.add_with_ids(v, ids)
        ivf.add_with_ids(v, ids)
    return exact, ivf, nlist, corpus


def question_vectors(exact, n: int, count: int, seed: int = 99) -> np.ndarray:
    """``count`` questions as ``_synthetic.Corpus.questions`` makes their vectors (a chunk's vector plus
    noise, unit length), without generating the chunks' texts."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=count, replace=False))
    flat = faiss.downcast_index(exact.index)
    x = np.stack([flat.reconstruct(int(i)) for i in picked])  # ids are 0..n-1 in insertion order
    x = x + rng.standard_normal(x.shape).astype(np.float32) * 0.03
    return np.ascontiguousarray((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))


def timed(index, q: np.ndarray, k: int, params=None, singles: int | None = None) -> tuple[dict, np.ndarray]:
    """p50/p95 ms of one-question searches (the first ``singles`` questions) and the batch's ms; the ids
    of the batch search."""
    for i in range(10):
        index.search(q[i % len(q)][None], k, params=params)
    times = []
    for row in q[: singles or len(q)]:
        t = time.perf_counter()
        index.search(row[None], k, params=params)
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    _, ids = index.search(q, k, params=params)
    batch_ms = (time.perf_counter() - t) * 1000
    return {"p50_ms": round(float(np.median(times)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
            "timed_questions": len(times), f"batch_{len(q)}_ms": round(batch_ms, 1)}, ids


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids.tolist(), truth.tolist())])), 4)


def measure(exact, ivf, q, truth, k, singles_flat, on: str) -> dict:
    out = {}
    res, ids = timed(exact, q, k, singles=singles_flat if on == "cpu" else None)
    out["flat"] = {**res, "recall_at_10": recall(ids, truth)}
    res, ids = timed(ivf, q, k, params=faiss.SearchParametersIVF(nprobe=NPROBE))
    out[f"ivf_nprobe_{NPROBE}"] = {**res, "recall_at_10": recall(ids, truth)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="chunks (vectors)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N (GPU and CPU columns) or cpu (CPU only)")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--cpu-flat-questions", type=int, default=50, help="questions timed one by one on exact CPU")
    ap.add_argument("--out", help="also write the JSON result here")
    args = ap.parse_args()
    gpu = load_gpu_module()
    placement = gpu.choose(args.device, faiss)
    out = {"n": args.n, "dim": DIM, "faiss": faiss.__version__, "machine": f"{platform.machine()}, "
           f"{os.cpu_count()} cores, {faiss.omp_get_max_threads()} FAISS threads", "placement": placement.as_dict()}
    if args.device != "cpu" and not placement.gpu:
        print(f"bench_gpu_faiss: GPU part skipped: {placement.reason}", file=sys.stderr)
    t = time.perf_counter()
    exact, ivf, nlist, corpus = build(args.n)
    out.update(nlist=nlist, nprobe=NPROBE, build_s=round(time.perf_counter() - t, 1))
    q = question_vectors(exact, args.n, args.questions)
    _, truth = exact.search(q, 10)
    out["questions"] = len(q)
    out["cpu"] = measure(exact, ivf, q, truth, 10, args.cpu_flat_questions, "cpu")
    print(f"cpu: {out['cpu']}", flush=True)
    if placement.gpu:
        t = time.perf_counter()
        g_exact, g_ivf = gpu.to_gpu(faiss, exact, placement.device), gpu.to_gpu(faiss, ivf, placement.device)
        out["gpu_copy_s"] = round(time.perf_counter() - t, 1)
        out["gpu"] = measure(g_exact, g_ivf, q, truth, 10, None, "gpu")
        print(f"gpu: {out['gpu']}", flush=True)
        out["p50_speedup"] = {kind: round(out["cpu"][kind]["p50_ms"] / out["gpu"][kind]["p50_ms"], 1)
                              for kind in out["gpu"]}
    else:
        out["gpu"] = {"skipped": placement.reason}
    print(json.dumps(out))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
