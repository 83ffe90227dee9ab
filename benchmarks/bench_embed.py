"""Embedding throughput: rag-news's default backend vs plain LangChain HuggingFaceEmbeddings.

Chunks: the article-extraction benchmark pages plus the sample site's articles, cleaned and chunked by
rag-news with the mpnet tokenizer (498 chunks), plus the 42 news-qa questions (query-side work), so that
540 texts are embedded. Both sides embed the same texts with all-mpnet-base-v2 (the packaged
copy) on CPU; we report chunks/s for each, the ratio, and the largest cosine difference between their
vectors.

    python benchmarks/bench_embed.py [--chunks 540]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import load_pages, machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_core.documents import Document  # noqa: E402
from langchain_huggingface import HuggingFaceEmbeddings  # noqa: E402

from rag_news.chunk import chunk  # noqa: E402
from rag_news.clean import extract  # noqa: E402
from rag_news.embed import Embedder  # noqa: E402
from rag_news.settings import Settings  # noqa: E402


def bench_texts(embedder, settings) -> tuple[list[str], int, int, int]:
    """The texts this benchmark embeds: chunks of the benchmark pages and the sample site (chunked by
    rag-news with ``embedder``'s tokenizer), then the news-qa questions. Returns ``(texts, chunks,
    articles, questions)`` counts beside the texts (``benchmarks/bench_gpu_embed.py`` embeds the same)."""
    import json

    from _common import NEWS_QA
    from rag_news.sample_site import SITE_DIR

    articles = []
    for pid, html in load_pages().items():
        text, info = extract(html)
        if text:
            articles.append(Document(page_content=text, metadata={"key": pid, "title": info["title"] or ""}))
    for f in sorted(SITE_DIR.glob("20*/*/*.html")):
        text, info = extract(f.read_text(encoding="utf-8"))
        articles.append(Document(page_content=text, metadata={"key": f.name, "title": info["title"] or ""}))
    chunks = chunk(articles, embedder.tokenizer, settings, max_seq_length=embedder.max_seq_length)
    questions = [json.loads(x)["question"] for x in (NEWS_QA / "questions.jsonl").read_text().splitlines() if x]
    return [c.page_content for c in chunks] + questions, len(chunks), len(articles), len(questions)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=540)
    args = ap.parse_args()
    settings = Settings(progress=False)
    ours = Embedder(settings).warm_up()
    texts, n_chunks, n_articles, n_questions = bench_texts(ours, settings)
    texts = texts[: args.chunks]
    print(f"machine: {machine()}; torch threads {__import__('torch').get_num_threads()}; "
          f"{len(texts)} texts: {n_chunks} chunks from {n_articles} articles + {n_questions} questions; model {ours.describe()['path']}")

    baseline = HuggingFaceEmbeddings(model_name=ours.describe()["path"], model_kwargs={"device": "cpu"},
                                     encode_kwargs={"normalize_embeddings": True})
    baseline.embed_documents(texts[:8])  # warm-up both sides
    ours.embed_array(texts[:8])

    t = time.perf_counter()
    mine = ours.embed_array(texts)
    ours_s = time.perf_counter() - t
    print(f"rag-news Embedder (backend {ours.backend}, length-batched, batch {settings.embedding_batch_size}): "
          f"{ours_s:.1f}s, {len(texts) / ours_s:.2f} chunks/s")

    t = time.perf_counter()
    theirs = np.asarray(baseline.embed_documents(texts), dtype=np.float32)
    base_s = time.perf_counter() - t
    print(f"HuggingFaceEmbeddings (sentence-transformers, torch): {base_s:.1f}s, {len(texts) / base_s:.2f} chunks/s")

    cos = (mine * theirs).sum(1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1))
    print(f"cosine(ours, baseline): min {cos.min():.6f}, mean {cos.mean():.6f}; "
          f"max |1 - cos| {float(np.abs(1 - cos).max()):.2e}")
    print(f"speedup: {base_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
