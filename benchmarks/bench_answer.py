"""Answering quality and speed on news-qa with the offline default reader (packaged Qwen2.5-Coder-1.5B-
Instruct, Q4_K_M, on llama.cpp), and on the sample site's dated questions.

The 91 benchmark pages are served on 127.0.0.1 and indexed by the real pipeline (as bench_retrieval.py);
every question goes through ``rag_news.eval`` (NewsQA: retrieval, prompt, generation, checks), the model
loaded once. Variants of the passages shown (k, and the budget in embedding-model tokens within which the
sentences closest to the question are kept; 0 = whole passages), same index, one run. For the default
variant the effect of a relevance floor (best passage cosine below it: abstain without asking the model)
and of the figure check (answers whose figures no passage holds are withheld) is read off the same rows:
every variant is answered with the floor off, and each floor is applied to those rows afterwards; the floor
is also chosen on one half of the questions and scored on the other (both ways), since the default (0.5)
was chosen on all 42.
Scores: hit@1, answer accuracy, abstention accuracy, grounded citations (non-abstained answers whose cited
passage holds their key figure or name), median seconds and prompt tokens per question.

    python benchmarks/bench_answer.py [--index-dir /tmp/rag-news-news-qa-index] [--variants 4:512 5:768 3:0] [--dated-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import NEWS_QA, ROOT, load_pages, machine, serve_pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import NewsQA, Settings, index_urls  # noqa: E402
from rag_news.answer import prompt_template  # noqa: E402
from rag_news.context import format_passages  # noqa: E402
from rag_news.eval import evaluate, read_questions, score  # noqa: E402
from rag_news.sample_site import serve, site_urls  # noqa: E402
from rag_news.store import NewsIndex  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)  # see bench_scrape.py


def prompt_tokens(qa: NewsQA, question: str) -> int:
    text = prompt_template().invoke({"context": format_passages(qa.passages(question)), "question": question,
                                     "today": qa.today.isoformat()}).to_messages()[0].content
    return len(qa.llm.client.tokenize(text.encode("utf-8")))


FLOORS = [round(0.05 * i, 2) for i in range(15)]  # 0.00 .. 0.70
DEFAULT_FLOOR = 0.5  # the packaged readers' default (rag_news.llm.reader_defaults)


def floored(rows: dict[str, dict], floor: float) -> dict[str, dict]:
    """The rows as a relevance floor would have left them: below it, abstain without asking the model."""
    return {i: ({**r, "abstained": True, "answer": "I don't know", "raw_answer": None}
                if (r.get("relevance") or 1) < floor else r) for i, r in rows.items()}


def handled(questions: list[dict], rows: dict[str, dict]) -> float:
    """Questions handled right: answerable ones answered right, unanswerable ones abstained."""
    s = score(questions, rows, 4)
    return (s["answer_accuracy"] * s["answerable"] + s["abstention_accuracy"] * s["unanswerable"]) / s["questions"]


def halves(questions: list[dict]) -> tuple[list[dict], list[dict]]:
    """Two halves, answerable and unanswerable questions split evenly (alternately, in id order)."""
    a, b = [], []
    for group in ([q for q in questions if q["answers"]], [q for q in questions if not q["answers"]]):
        for n, q in enumerate(sorted(group, key=lambda q: q["id"])):
            (a if n % 2 == 0 else b).append(q)
    return a, b


def floors_and_check(questions: list[dict], rows: dict[str, dict]) -> list[str]:
    """What a relevance floor, and dropping the figure check, would have done, read off rows answered with
    the floor off; then the floor chosen on one half of the questions and scored on the other."""
    lines = []
    for floor in FLOORS:
        s = score(questions, floored(rows, floor), 4)
        mark = "  (default)" if floor == DEFAULT_FLOOR else ""
        lines.append(f"  floor {floor:.2f}: accuracy {s['answer_accuracy']:.3f}  abstention "
                     f"{s['abstention_accuracy']:.3f}{mark}")
    unchecked = {i: ({**r, "abstained": False, "answer": r["raw_answer"]} if r.get("raw_answer") else r)
                 for i, r in floored(rows, DEFAULT_FLOOR).items()}
    s = score(questions, unchecked, 4)
    lines.append(f"  floor {DEFAULT_FLOOR:.2f} without the figure check: accuracy {s['answer_accuracy']:.3f}  "
                 f"abstention {s['abstention_accuracy']:.3f}  (withheld by it: "
                 f"{sum(bool(r.get('raw_answer')) for r in floored(rows, DEFAULT_FLOOR).values())})")
    for name, (chosen_on, scored_on) in (("A->B", halves(questions)), ("B->A", halves(questions)[::-1])):
        best = max(FLOORS, key=lambda f: (handled(chosen_on, floored(rows, f)), -f))  # ties: the lower floor
        for floor, label in ((best, "chosen"), (DEFAULT_FLOOR, "default"), (0.0, "off")):
            s = score(scored_on, floored(rows, floor), 4)
            lines.append(f"  split {name}: {label} floor {floor:.2f} on the other half ({s['questions']} questions): "
                         f"accuracy {s['answer_accuracy']:.3f}  abstention {s['abstention_accuracy']:.3f}")
    return lines


def run_variant(base: NewsQA, settings: Settings, questions: list[dict], k: int, budget: int, out: Path) -> dict:
    """One variant answered with the relevance floor off (floors are applied to its rows afterwards)."""
    qa = NewsQA(settings.replace(k=k, context_tokens=budget, min_relevance=0), index=base.index, llm=base.llm,
                llm_info=base.info)
    t = time.perf_counter()
    with open(out, "w", encoding="utf-8") as f:
        rows, scores = evaluate(questions, qa, out=f, k=4)
    scores["wall_seconds"] = round(time.perf_counter() - t, 1)
    scores["median_prompt_tokens"] = statistics.median(prompt_tokens(qa, q["question"]) for q in questions)
    return {"scores": scores, "rows": {r["id"]: r for r in rows}}


def dated(settings: Settings) -> dict:
    """The sample site's dated questions (data/dated-questions.jsonl), answered on 2026-11-23."""
    with tempfile.TemporaryDirectory() as tmp:
        s = settings.replace(index_dir=Path(tmp) / "index", today="2026-11-23")
        with serve() as base:
            index_urls(site_urls(base), s)
        qa = NewsQA(s)
        _, scores = evaluate(read_questions(ROOT / "data" / "dated-questions.jsonl"), qa, k=4)
    return scores


def print_dated(d: dict) -> None:
    print("dated questions (sample site, today 2026-11-23): " + "  ".join(
        f"{key} {v:.3f}" if isinstance(v, float) else f"{key} {v}" for key, v in d.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", default="/tmp/rag-news-news-qa-index")
    ap.add_argument("--out-dir", default="/tmp")
    ap.add_argument("--variants", nargs="+", default=["4:512", "5:768", "3:0"], help="k:budget (budget 0: whole)")
    ap.add_argument("--dated-only", action="store_true", help="only the sample site's dated questions")
    args = ap.parse_args()
    settings = Settings.load(index_dir=args.index_dir, progress=False, browser_args=ISOLATE)
    if args.dated_only:
        print(f"machine: {machine()}")
        return print_dated(dated(settings))
    questions = read_questions(NEWS_QA / "questions.jsonl")
    if not NewsIndex.exists(Path(args.index_dir)):
        pages = load_pages()
        with serve_pages(pages) as base:
            report = index_urls([f"{base}/{k}.html" for k in pages], settings)
        print(f"indexed {report.pages_ok}/{len(pages)} pages, {report.chunks_total} chunks")
    base_qa = NewsQA(settings).warm_up()
    print(f"machine: {machine()}; reader: {base_qa.info.model} on {base_qa.info.backend} "
          f"(substituted for {base_qa.info.substituted_for})")
    results = {}
    for variant in args.variants:
        k, budget = (int(x) for x in variant.split(":"))
        name = f"k={k}, " + (f"{budget}-token budget" if budget else "whole passages") + ", floor off"
        out = Path(args.out_dir) / f"news-qa-k{k}-b{budget}.jsonl"
        results[name] = run_variant(base_qa, settings, questions, k, budget, out)
        print(f"{name}: " + "  ".join(f"{key} {v:.3f}" if isinstance(v, float) else f"{key} {v}"
                                      for key, v in results[name]["scores"].items()) + f"  -> {out}", flush=True)
    first = next(iter(results))
    print(f"{first}, floors applied to its rows:")
    print("\n".join(floors_and_check(questions, results[first]["rows"])))
    print_dated(dated(settings))
    print(json.dumps({k: v["scores"] for k, v in results.items()}))
    default = score(questions, floored(results[first]["rows"], DEFAULT_FLOOR), 4)
    print(f"answer_accuracy: {default['answer_accuracy']:.3f}  (first variant, floor {DEFAULT_FLOOR})")


if __name__ == "__main__":
    main()
