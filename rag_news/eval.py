"""``python -m rag_news.eval --questions FILE``: answer a question set with one loaded model and score it.

The questions file is JSON lines in the news-qa format: ``{"id", "question", "answers": [...], "page_id",
"url"}`` (``answers`` empty for questions with no answer in the articles). One JSON line per question is
written (``id``, ``question``, ``answer``, ``sources`` (URLs, retrieval order), ``abstained``, plus
``cited``, ``note``, ``seconds``). When the file has accepted answers, the scores are printed:

* retrieval hit@1 / hit@k: the question's page is among the first 1 / k distinct retrieved articles
  (its ``url``, or a served URL whose path holds its ``page_id``);
* answer accuracy: an accepted answer occurs in the answer as a whole phrase and the system did not abstain;
* abstention accuracy: on the unanswerable questions, the system abstained (its own verdict: "I don't
  know, but ... [1]" is an answer, not an abstention);
* grounded citations: of the answers that assert a figure or name, the share whose cited passage holds it,
  after rag-news re-pointed citations to the passages holding each claim (``grounded_citations``, rows'
  ``grounded``) and as the model cited (``grounded_citations_raw``, rows' ``grounded_raw``; an answer that
  cited nothing counts with the passages it was attributed to, as before re-pointing existed).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from .cli import add_answer_flags, add_settings_flags, answer_settings_from_args, run, setup_logging
from .errors import ConfigError

PROG = "python -m rag_news.eval"


def read_questions(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"questions file not found: {path}") from None
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{i}: not JSON ({e.msg})") from None
        if not isinstance(q, dict) or not q.get("question"):
            raise ConfigError(f"{path}:{i}: each line needs a \"question\"")
        q.setdefault("id", f"q{i}")
        out.append(q)
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").lower()).strip()


def has_phrase(answer: str, phrase: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(_norm(phrase)) + r"(?![\w])", _norm(answer)) is not None


def is_hit(q: dict, urls: list[str]) -> bool:
    return any(u == q.get("url") or (q.get("page_id") and q["page_id"] in u) for u in urls)


def score(questions: list[dict], rows: dict[str, dict], k: int) -> dict:
    answerable = [q for q in questions if q.get("answers")]
    unanswerable = [q for q in questions if "answers" in q and not q["answers"]]
    out: dict = {"questions": len(questions), "answerable": len(answerable), "unanswerable": len(unanswerable)}
    if answerable:
        out["hit@1"] = sum(is_hit(q, rows[q["id"]]["sources"][:1]) for q in answerable) / len(answerable)
        out[f"hit@{k}"] = sum(is_hit(q, rows[q["id"]]["sources"][:k]) for q in answerable) / len(answerable)
        out["answer_accuracy"] = sum(
            not _abstained(rows[q["id"]]) and any(has_phrase(rows[q["id"]]["answer"], a) for a in q["answers"])
            for q in answerable) / len(answerable)
    if unanswerable:
        out["abstention_accuracy"] = sum(_abstained(rows[q["id"]]) for q in unanswerable) / len(unanswerable)
    for name, field_ in (("grounded_citations_raw", "grounded_raw"), ("grounded_citations", "grounded")):
        checked = [r[field_] for r in rows.values() if r.get(field_) is not None]
        if checked:
            out[name] = sum(checked) / len(checked)
    secs = [r["seconds"] for r in rows.values()]
    out["median_seconds"] = statistics.median(secs) if secs else 0.0
    return out


def _abstained(row: dict) -> bool:
    return bool(row.get("abstained"))


def grounded(a, raw: bool = False) -> bool | None:
    """For an answer (not an abstention): does a passage it cites hold its key figure or name? (None when
    it abstained or asserts nothing checkable.) ``raw``: its citations before re-pointing (``cited_raw``)."""
    from .checks import contains

    if a.abstained or not a.key_terms:
        return None
    cited = a.cited_raw if raw else a.cited
    return any(contains(a.sources[n - 1].text, t) for n in cited for t in a.key_terms)


def evaluate(questions: list[dict], qa, out=None, k: int = 4, progress: bool = False) -> tuple[list[dict], dict]:
    """Answer every question with ``qa`` (a :class:`~rag_news.answer.NewsQA`); rows and (if labelled) scores."""
    from .progress import progress_bar

    rows = []
    with progress_bar("Answering", total=len(questions), enabled=progress) as advance:
        for q in questions:
            t = time.perf_counter()
            a = qa.ask(q["question"])
            row = {"id": q["id"], "question": q["question"], "answer": a.answer, "sources": a.retrieved,
                   "abstained": a.abstained, "cited": [a.sources[n - 1].url for n in a.cited],
                   "cited_raw": [a.sources[n - 1].url for n in a.cited_raw],
                   "grounded_raw": grounded(a, raw=True), "grounded": grounded(a),
                   "repointed": a.repointed, "conflicts": a.conflicts, "bad_citations": a.bad_citations, "note": a.note,
                   "raw_answer": a.raw_answer, "relevance": a.relevance, "timings": a.timings,
                   "seconds": round(time.perf_counter() - t, 3)}
            rows.append(row)
            if out is not None:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            advance(1)
    labelled = any("answers" in q for q in questions)
    return rows, (score(questions, {r["id"]: r for r in rows}, k) if labelled else {})


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Answer a questions file (news-qa format) and score it.")
    ap.add_argument("--questions", required=True, help="JSON lines: id, question[, answers, page_id, url]")
    ap.add_argument("--out", help="write one JSON line per question here (default: stdout)")
    ap.add_argument("--hit-k", type=int, default=4, help="k for retrieval hit@k (default 4)")
    ap.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    add_answer_flags(ap)
    add_settings_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from .answer import NewsQA

    settings = answer_settings_from_args(args)
    questions = read_questions(Path(args.questions))
    qa = NewsQA(settings)
    qa.index
    qa.llm
    notice = qa.info.notice() if qa.info else None
    if notice:
        print(notice, file=sys.stderr)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        _, scores = evaluate(questions, qa, out=out, k=args.hit_k, progress=settings.show_progress())
    finally:
        if args.out:
            out.close()
    if scores:
        dest = sys.stdout if args.out else sys.stderr
        if args.json:
            print(json.dumps(scores), file=dest)
        else:
            print("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()),
                  file=dest)
    return 0


def cli() -> None:
    """The console script: the same one-line errors as ``python -m rag_news.eval``."""
    run(main, PROG)


if __name__ == "__main__":
    cli()
