"""Follow-up quality: two-turn conversations over the news-qa dev pages (benchmarks/followups/), answered
by NewsQA with the offline default reader (packaged Qwen2.5-1.5B on llama.cpp), the model loaded once.

Per conversation: turn 1 alone; turn 2 with the history and the rewrite (the reader makes it standalone);
turn 2 with the history but no rewrite (retrieval on the bare follow-up); turn 2 with the rewrite but without
the articles turn 1 cited read first (``focus=False``: index-wide retrieval only); and turn 2 written out in
full (the set's ``standalone`` form) asked alone, with no history: the same question as a standalone one. Scores:
turn-1 and turn-2 accuracy (an accepted answer as a whole phrase, not abstained), turn-2 abstention on
the unanswerable follow-ups, median seconds per rewrite; and, without the model, retrieval hit@4 of turn 2
searched bare, as the rule fallback would search it, and as the reader rewrote it. ``--budget-s``: no new
conversation starts after this long (the rows finished are scored and said to be a subset).

    nice -n 10 timeout 1500 python benchmarks/bench_followups.py --index-dir /tmp/fu25-index --budget-s 1380
    python benchmarks/bench_followups.py --retrieval-only   # no model: turn 2 bare vs the rule fallback
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _common import NEWS_QA, ROOT, load_pages, machine, serve_pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import NewsQA, Settings, index_urls  # noqa: E402
from rag_news.context import compress_passages  # noqa: E402
from rag_news.conversation import as_turns, fallback  # noqa: E402
from rag_news.eval import has_phrase  # noqa: E402
from rag_news.llm import READER_DEFAULTS  # noqa: E402
from rag_news.store import NewsIndex  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)


def hit(conv: dict, urls: list[str], k: int = 4) -> bool:
    return any(u == conv["url"] or conv["page_id"] in u for u in list(dict.fromkeys(urls))[:k])


def correct(answer, accepted: list[str]) -> bool:
    return not answer.abstained and any(has_phrase(answer.answer, a) for a in accepted)


def run_one(qa: NewsQA, conv: dict, baseline: bool = True, focus_baseline: bool = True,
            standalone: bool = True) -> dict:
    t1, t2 = conv["turns"]
    a1 = qa.ask(t1["question"])
    with_rw = qa.ask(t2["question"], history=[a1])
    without = qa.ask(t2["question"], history=[a1], rewrite=False) if baseline else None
    unfocused = qa.ask(t2["question"], history=[a1], focus=False) if focus_baseline else None
    alone = qa.ask(t2["standalone"]) if standalone else None
    turns = as_turns([a1])
    search = lambda q: [d.metadata.get("url", "") for d in qa.retrieve(q)]  # noqa: E731
    row = {"id": conv["id"], "answerable": bool(t2["answers"]),
           "turn1": {"answer": a1.answer, "abstained": a1.abstained, "correct": correct(a1, t1["answers"])},
           "rewrite": {"question": with_rw.standalone_question, "seconds": with_rw.timings.get("rewrite"),
                       "answer": with_rw.answer, "abstained": with_rw.abstained, "note": with_rw.note,
                       "raw_answer": with_rw.raw_answer,
                       "correct": correct(with_rw, t2["answers"]), "hit@4": hit(conv, with_rw.retrieved)},
           "no_rewrite": {"answer": without.answer, "abstained": without.abstained,
                          "correct": correct(without, t2["answers"]), "hit@4": hit(conv, without.retrieved)}
           if without else None,
           "no_focus": {"answer": unfocused.answer, "abstained": unfocused.abstained, "note": unfocused.note,
                        "raw_answer": unfocused.raw_answer,
                        "correct": correct(unfocused, t2["answers"]), "hit@4": hit(conv, unfocused.retrieved)}
           if unfocused else None,
           "standalone": {"question": t2["standalone"], "answer": alone.answer, "abstained": alone.abstained,
                          "note": alone.note, "correct": correct(alone, t2["answers"])} if alone else None,
           "bare_hit@4": hit(conv, search(t2["question"])),
           "fallback_hit@4": hit(conv, search(fallback(t2["question"], turns)))}
    return row


def summary(rows: list[dict], total: int) -> dict:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    mean = lambda xs: round(sum(xs) / len(xs), 3) if xs else None  # noqa: E731
    secs = [r["rewrite"]["seconds"] for r in rows if r["rewrite"]["seconds"]]
    return {"conversations": f"{len(rows)} of {total}", "answerable": len(ans), "unanswerable": len(una),
            "turn1_accuracy": mean([r["turn1"]["correct"] for r in ans]),
            "turn2_accuracy_rewrite": mean([r["rewrite"]["correct"] for r in ans]),
            "turn2_accuracy_no_rewrite": mean([r["no_rewrite"]["correct"] for r in ans if r["no_rewrite"]]),
            "turn2_abstention_rewrite": mean([r["rewrite"]["abstained"] for r in una]),
            "turn2_abstention_no_rewrite": mean([r["no_rewrite"]["abstained"] for r in una if r["no_rewrite"]]),
            "turn2_accuracy_no_focus": mean([r["no_focus"]["correct"] for r in ans if r.get("no_focus")]),
            "turn2_abstention_no_focus": mean([r["no_focus"]["abstained"] for r in una if r.get("no_focus")]),
            "turn2_accuracy_asked_standalone": mean([r["standalone"]["correct"] for r in ans if r.get("standalone")]),
            "turn2_abstention_asked_standalone": mean([r["standalone"]["abstained"] for r in una if r.get("standalone")]),
            "turn2_hit@4_bare": mean([r["bare_hit@4"] for r in ans]),
            "turn2_hit@4_rule_fallback": mean([r["fallback_hit@4"] for r in ans]),
            "turn2_hit@4_reader_rewrite": mean([r["rewrite"]["hit@4"] for r in ans]),
            "median_rewrite_s": round(statistics.median(secs), 2) if secs else None}


def retrieval_only(qa: NewsQA, convs: list[dict]) -> None:
    from rag_news.conversation import Turn

    print(f"machine: {machine()}; retrieval only (k=4, no model)")
    rows, budget = [], READER_DEFAULTS["packaged"]["context_tokens"]
    for c in convs:
        t1, t2 = c["turns"]
        turns = [Turn("user", t1["question"])]
        found = {"turn1": qa.retriever.search(t1["question"], k=4), "bare": qa.retriever.search(t2["question"], k=4),
                 "fallback": qa.retriever.search(fallback(t2["question"], turns), k=4)}
        # the cited article read first, as if turn 1's answer had cited its best passage's article
        found["focused"] = focused(qa, fallback(t2["question"], turns), found["turn1"][0].metadata["url"])
        # what the packaged reader reads: the same passages fitted to its sentence budget
        found["turn1 compressed"] = compress_passages(t1["question"], found["turn1"], qa.sentence_vectors, budget)
        found["focused compressed"] = compress_passages(fallback(t2["question"], turns), found["focused"],
                                                        qa.sentence_vectors, budget)
        rows.append({"id": c["id"], "answerable": bool(t2["answers"]),
                     **{key: hit(c, [d.metadata.get("url", "") for d in docs]) for key, docs in found.items()},
                     # does a passage shown hold an accepted answer of the turn it serves (not only the article)?
                     **{key + "_answer": holds(docs, (t1 if key.startswith("turn1") else t2)["answers"])
                        for key, docs in found.items()}})
    for key in ("turn1", "bare", "fallback", "focused"):
        print(f"{key:>18} hit@4: {sum(r[key] for r in rows) / len(rows):.3f} ({sum(r[key] for r in rows)}/{len(rows)})")
    ans = [r for r in rows if r["answerable"]]
    for key in ("turn1", "turn1 compressed", "bare", "fallback", "focused", "focused compressed"):
        n = sum(r[key + "_answer"] for r in ans)
        print(f"{key:>18} a passage holds the answer: {n / len(ans):.3f} ({n}/{len(ans)} answerable)")
    topic_shifts(qa)


def focused(qa: NewsQA, search: str, cited: str, k: int = 4) -> list:
    """The passages the answer stage shows a follow-up: the cited article's first, the index fills the rest."""
    within = qa.retriever.search_within(search, [cited], k=k)
    return (within + [d for d in qa.retriever.search(search, k=k) if d.id not in {w.id for w in within}])[:k]


def topic_shifts(qa: NewsQA) -> None:
    """A conversation that moves on: each answerable news-qa question asked after the one before it (whose
    article turn 1 is taken to have cited). Counts the new questions judged to refer back (they would be
    rewritten and read in the previous article first), and hit@4 of the new question's article as the answer
    stage retrieves it (the rule fallback and the cited article first where judged a follow-up), by
    ``needs_rewrite`` and by the rule before it (any pronoun or "that" in the question), vs asked alone."""
    from rag_news.conversation import _FRAGMENT, _REFERRING, Turn, needs_rewrite

    any_pronoun = lambda q, turns: bool(_REFERRING.search(q) or _FRAGMENT.match(q) or len(q.split()) <= 3)  # noqa: E731
    qs = [q for q in (json.loads(x) for x in (NEWS_QA / "questions.jsonl").read_text().splitlines() if x.strip())
          if q["answers"]]
    counts = {"needs_rewrite": [0, 0], "any pronoun (before)": [0, 0]}
    alone = 0
    for prev, q in zip(qs, qs[1:]):
        urls = [d.metadata.get("url", "") for d in qa.retriever.search(prev["question"], k=8)]
        cited = next((u for u in urls if prev["page_id"] in u), urls[0])  # its indexed URL (the pages are served here)
        turns = [Turn("user", prev["question"]), Turn("assistant", "...", {"cited_urls": [cited]})]
        conv = {"url": q["url"], "page_id": q["page_id"]}
        bare = qa.retriever.search(q["question"], k=4)
        alone += hit(conv, [d.metadata.get("url", "") for d in bare])
        for name, rule in (("needs_rewrite", needs_rewrite), ("any pronoun (before)", any_pronoun)):
            docs = bare
            if rule(q["question"], turns):
                counts[name][0] += 1
                docs = focused(qa, fallback(q["question"], turns), cited)
            counts[name][1] += hit(conv, [d.metadata.get("url", "") for d in docs])
    n = len(qs) - 1
    for name, (judged, kept) in counts.items():
        print(f"topic shifts, {name}: {judged}/{n} new questions judged to refer back; their article in the "
              f"top 4 as answered {kept}/{n} (asked alone {alone}/{n})")


def holds(docs, answers: list[str]) -> bool:
    return any(has_phrase(d.page_content, a) for d in docs for a in answers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", default="/tmp/rag-news-news-qa-index")
    ap.add_argument("--out", default="/tmp/bench_followups.jsonl")
    ap.add_argument("--budget-s", type=float, default=1380.0)
    ap.add_argument("--no-baseline", action="store_true", help="skip turn 2 without the rewrite (one answer less "
                    "per conversation)")
    ap.add_argument("--no-focus-baseline", action="store_true", help="skip turn 2 without the cited articles "
                    "read first (one answer less per conversation)")
    ap.add_argument("--no-standalone", action="store_true", help="skip turn 2 written out in full and asked "
                    "alone (one answer less per conversation)")
    ap.add_argument("--retrieval-only", action="store_true", help="no model: hit@4 of turn 2 searched bare and "
                    "as the rule fallback (previous question appended) searches it, on every conversation")
    args = ap.parse_args()
    convs = [json.loads(x) for x in (ROOT / "benchmarks" / "followups" / "followups.jsonl").read_text().splitlines()]
    # the two unanswerable follow-ups early, so a cut-short run still has both kinds
    convs = convs[:4] + [c for c in convs if not c["turns"][1]["answers"]] + \
        [c for c in convs[4:] if c["turns"][1]["answers"]]
    settings = Settings.load(index_dir=args.index_dir, progress=False, browser_args=ISOLATE, max_new_tokens=64)
    if not NewsIndex.exists(Path(args.index_dir)):
        pages = load_pages()
        with serve_pages(pages) as base:
            index_urls([f"{base}/{k}.html" for k in pages], settings)
    if args.retrieval_only:
        return retrieval_only(NewsQA(settings, llm=object()), convs)
    qa = NewsQA(settings).warm_up()
    print(f"machine: {machine()}; reader: {qa.info.model} on {qa.info.backend}", flush=True)
    start, rows = time.perf_counter(), []
    with open(args.out, "w", encoding="utf-8") as out:
        for conv in convs:
            if time.perf_counter() - start > args.budget_s:
                break
            row = run_one(qa, conv, baseline=not args.no_baseline, focus_baseline=not args.no_focus_baseline,
                          standalone=not args.no_standalone)
            rows.append(row)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            print(json.dumps(row, ensure_ascii=False), flush=True)
    print(f"wall {time.perf_counter() - start:.0f}s")
    print(json.dumps(summary(rows, len(convs)), indent=1))


if __name__ == "__main__":
    main()
