"""Answering quality on news-qa with the offline default model (the packaged SmolLM2-135M-Instruct).

The 91 benchmark pages are served on 127.0.0.1 and indexed by the real pipeline (Chromium -> clean ->
chunk -> all-mpnet-base-v2 -> FAISS); then every question goes through ``rag_news.eval``'s code path
(NewsQA: retrieval, prompt, generation, checks) with the model loaded once. Variants, same index, one run:

* default: passages compressed to the 384 tokens of sentences closest to the question, relevance floor
  0.5, figures checked against the passages (what the small model gets by default);
* whole passages: the 5 passages as retrieved, no floor, no check (the model on its own).

    python benchmarks/bench_answer.py [--index-dir /tmp/rag-news-news-qa-index] [--out-dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import NEWS_QA, load_pages, machine, serve_pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import NewsQA, Settings, index_urls  # noqa: E402
from rag_news.eval import evaluate, read_questions  # noqa: E402
from rag_news.store import NewsIndex  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)  # see bench_scrape.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", default="/tmp/rag-news-news-qa-index")
    ap.add_argument("--out-dir", default="/tmp")
    args = ap.parse_args()
    settings = Settings.load(index_dir=args.index_dir, progress=False, browser_args=ISOLATE)
    questions = read_questions(NEWS_QA / "questions.jsonl")
    if not NewsIndex.exists(Path(args.index_dir)):
        pages = load_pages()
        with serve_pages(pages) as base:
            report = index_urls([f"{base}/{k}.html" for k in pages], settings)
        print(f"indexed {report.pages_ok}/{len(pages)} pages, {report.chunks_total} chunks")
    print(f"machine: {machine()}")
    base_qa = NewsQA(settings)
    base_qa.warm_up()
    print(f"model: {base_qa.info.model} (substituted for {base_qa.info.substituted_for})")
    variants = {
        "default (compressed 384 tok, floor 0.5, figure check)": {},
        "whole passages, no floor, no check": dict(context_tokens=0, min_relevance=0.0, verify=False),
    }
    results = {}
    for name, kw in variants.items():
        qa = NewsQA(settings.replace(**kw), index=base_qa.index, llm=base_qa.llm, llm_info=base_qa.info)
        out = Path(args.out_dir) / f"news-qa-{'default' if not kw else 'whole'}.jsonl"
        t = time.perf_counter()
        with open(out, "w", encoding="utf-8") as f:
            _, scores = evaluate(questions, qa, out=f, k=4)
        scores["wall_seconds"] = round(time.perf_counter() - t, 1)
        results[name] = scores
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in scores.items()) + f"  -> {out}")
    # where is the answer lost? an accepted answer in the passages shown (compressed) / retrieved (whole)
    from rag_news.eval import has_phrase
    answerable = [q for q in questions if q.get("answers")]
    shown = whole = 0
    for q in answerable:
        texts_whole = " ".join(d.page_content for d in base_qa.retrieve(q["question"]))
        texts_shown = " ".join(d.page_content for d in base_qa.passages(q["question"]))
        whole += any(has_phrase(texts_whole, a) for a in q["answers"])
        shown += any(has_phrase(texts_shown, a) for a in q["answers"])
    print(f"answer text present in the 5 retrieved passages: {whole / len(answerable):.3f}; "
          f"in the compressed passages the small model sees: {shown / len(answerable):.3f}")
    d = results["default (compressed 384 tok, floor 0.5, figure check)"]
    print(json.dumps(results))
    print(f"answer_accuracy: {d['answer_accuracy']:.3f}")


if __name__ == "__main__":
    main()
