"""``python -m rag_news.ask "question"``: answer from the index, streaming tokens, then the sources.

Exit codes: 0 answered (an abstention is an answer), 1 a one-line error (no index, bad question, model not
found, GPU asked for but absent, backend extra missing), 2 bad flags.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli import add_answer_flags, add_settings_flags, answer_settings_from_args, run, setup_logging

PROG = "python -m rag_news.ask"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Answer a question from the indexed news articles.")
    ap.add_argument("question", help="the question (quote it)")
    ap.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    ap.add_argument("--json", action="store_true", help="print one JSON object (question, answer, sources, "
                    "abstained, timings) and nothing else on stdout")
    add_answer_flags(ap)
    add_settings_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from .answer import NewsQA, check_question

    settings = answer_settings_from_args(args)
    question = check_question(args.question)  # before loading anything
    qa = NewsQA(settings)
    qa.index  # a missing index is reported before the model loads
    qa.llm
    notice = qa.info.notice() if qa.info else None
    if notice:
        print(notice, file=sys.stderr)
    if args.json:
        answer = qa.ask(question)
        print(json.dumps(answer.as_dict(), ensure_ascii=False))
        return 0
    if args.no_stream:
        answer = qa.ask(question)
        print(answer.answer)
    else:
        answer = qa.ask(question, on_token=lambda t: (sys.stdout.write(t), sys.stdout.flush()))
        print()
        if answer.raw_answer is not None:  # the streamed text was withheld after the check
            print(f"({answer.note})\n{answer.answer}")
    if answer.note and answer.raw_answer is None:
        print(f"({answer.note})", file=sys.stderr)
    if answer.citations_added:
        print("(the model cited no passage; * marks the one its answer was matched to)", file=sys.stderr)
    print()
    if not answer.sources:
        print("No passages matched the question.")
    for s in answer.sources:
        mark = "*" if s.n in answer.cited else " "
        date = f" ({s.published[:10]})" if s.published else ""
        print(f"{mark}[{s.n}] {s.title}{date}\n     {s.url}")
    t = answer.timings
    print(f"\nretrieve {t['retrieve']:.2f}s · generate {t['generate']:.2f}s · {answer.model or ''}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main, PROG)
