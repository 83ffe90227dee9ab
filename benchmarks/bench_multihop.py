"""One retrieval vs research mode on the dev multi-hop set (data/multihop-dev.jsonl, issue 26).

Index: the news-qa dev pages (../shared/benchmarks/article-extraction/pages) served on 127.0.0.1 and indexed
by the real pipeline (mpnet), as bench_answer.py does (an existing index in --index-dir is reused).

First the measures that need no reader (complete, cheap):
* the ``--research auto`` rules: how many multi-hop questions they send to research mode, and how many
  of the 42 news-qa dev questions (those stay on the one-retrieval path, unchanged: no extra model call);
* both pages retrieved: the share of answerable multi-hop questions whose two pages are both among the
  distinct articles of the one retrieval the default path makes (k passages).

Then ONE bounded reader run (the offline reader, the packaged Qwen2.5 1.5B on llama.cpp): for each question,
one retrieval then research mode (``always``), side by side, until ``--budget-s`` is spent (no question is
started after it; run it under ``timeout`` too). Printed over the questions both modes finished: answer
accuracy (answerable), abstention (unanswerable), median seconds and tool calls per question. Rows go to
``--out``.

    nice -n 10 timeout 1500 python benchmarks/bench_multihop.py --budget-s 1380
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from _common import NEWS_QA, ROOT, index_news_pages, machine

sys.path.insert(0, str(ROOT))

from rag_news import NewsQA, Settings  # noqa: E402
from rag_news.eval import has_phrase, read_questions  # noqa: E402
from rag_news.research import wants_research  # noqa: E402
from rag_news.store import NewsIndex  # noqa: E402
from rag_news.tools import ToolCall  # noqa: E402

DEV = ROOT / "data" / "multihop-dev.jsonl"
ORDER = ["mh-01", "mh-05", "mh-08", "mh-11", "mh-u1", "mh-02", "mh-06", "mh-09", "mh-12", "mh-u2", "mh-03",
         "mh-07", "mh-10", "mh-04"]  # kinds interleaved, so a cut-off run still covers each kind


def both_pages(qa: NewsQA, q: dict) -> bool:
    urls = list(dict.fromkeys(d.metadata.get("url", "") for d in qa.retrieve(q["question"])))
    return all(any(p in u for u in urls) for p in q["page_ids"])


def answer_row(qa: NewsQA, q: dict, mode: str) -> dict:
    t, calls, answer = time.perf_counter(), [], None
    for item in qa.stream(q["question"], research=mode):
        if isinstance(item, ToolCall):
            calls.append(item.as_dict())
        elif not isinstance(item, str) and hasattr(item, "abstained"):
            answer = item
    right = bool(q["answers"]) and not answer.abstained and any(has_phrase(answer.answer, a) for a in q["answers"])
    return {"id": q["id"], "kind": q["kind"], "mode": mode, "answer": answer.answer, "raw_answer": answer.raw_answer, "abstained": answer.abstained,
            "correct": right, "note": answer.note, "tool_calls": calls, "sources": answer.retrieved,
            "seconds": round(time.perf_counter() - t, 1)}


def summary(rows: list[dict]) -> dict:
    ans = [r for r in rows if r["kind"] != "unanswerable"]
    un = [r for r in rows if r["kind"] == "unanswerable"]
    return {"questions": len(rows),
            "answer_accuracy": round(sum(r["correct"] for r in ans) / len(ans), 3) if ans else None,
            "answerable": len(ans), "abstained_unanswerable": f"{sum(r['abstained'] for r in un)}/{len(un)}",
            "median_seconds": statistics.median(r["seconds"] for r in rows) if rows else None,
            "median_tool_calls": statistics.median(len(r["tool_calls"]) for r in rows) if rows else None,
            "mean_tool_calls": round(statistics.mean(len(r["tool_calls"]) for r in rows), 2) if rows else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", type=Path, default=Path("/tmp/rag-news-multihop-index"))
    ap.add_argument("--copy-index-from", type=Path, default=Path("/tmp/rag-news-news-qa-index"),
                    help="an index of the same pages (bench_answer.py's) to copy instead of indexing again")
    ap.add_argument("--out", type=Path, default=Path("/tmp/multihop-rows.jsonl"))
    ap.add_argument("--budget-s", type=float, default=1380.0, help="start no question after this many seconds")
    ap.add_argument("--no-reader", action="store_true", help="only the measures that need no reader")
    args = ap.parse_args()
    t0 = time.perf_counter()
    settings = Settings.load(index_dir=args.index_dir, progress=False, device="cpu")
    if not NewsIndex.exists(args.index_dir) and NewsIndex.exists(args.copy_index_from):
        shutil.copytree(args.copy_index_from, args.index_dir, ignore=shutil.ignore_patterns(".lock"))
    index_news_pages(args.index_dir, settings)
    questions = {q["id"]: q for q in read_questions(DEV)}
    news_qa = read_questions(NEWS_QA / "questions.jsonl")
    fired = [i for i, q in questions.items() if wants_research(q["question"])]
    fired_news = [q["id"] for q in news_qa if wants_research(q["question"])]
    print(f"machine: {machine()}")
    print(f"auto rules: research for {len(fired)}/{len(questions)} multi-hop questions, "
          f"{len(fired_news)}/{len(news_qa)} news-qa dev questions {fired_news}")
    qa = NewsQA(settings)
    qa.llm
    print(f"reader: {qa.info.model} on {qa.info.backend}; k={qa.passage_count()}, budget={qa.context_budget()}, "
          f"research_max_calls={settings.research_max_calls}")
    answerable = [q for q in questions.values() if q["answers"]]
    hits = sum(both_pages(qa, q) for q in answerable)
    print(f"both pages among the one retrieval's articles: {hits}/{len(answerable)}", flush=True)
    if args.no_reader:
        return
    rows: dict[str, list[dict]] = {"never": [], "always": []}
    with open(args.out, "w", encoding="utf-8") as f:
        for qid in ORDER:
            if time.perf_counter() - t0 > args.budget_s:
                print(f"budget spent: stopped before {qid}", flush=True)
                break
            for mode in ("never", "always"):
                row = answer_row(qa, questions[qid], mode)
                rows[mode].append(row)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                print(f"{qid} {mode:6} {row['seconds']:6.1f}s calls={len(row['tool_calls'])} correct={row['correct']} "
                      f"abstained={row['abstained']} {[c['arguments'] for c in row['tool_calls']]} "
                      f"{row['answer'][:120]!r}", flush=True)
    done = {r["id"] for r in rows["always"]}
    for mode, name in (("never", "one retrieval"), ("always", "research mode")):
        print(f"{name}: " + json.dumps(summary([r for r in rows[mode] if r["id"] in done])))
    print(f"wall {time.perf_counter() - t0:.0f}s; rows in {args.out}")


if __name__ == "__main__":
    main()
