"""``python -m rag_news.ask "question"``: answer from the index, streaming tokens, then the sources.

With no question, an interactive session: the model and the index are loaded once, then every line you
type is a question (arrow keys recall earlier ones; ``:since DATE`` / ``:until DATE`` set a window,
``:quit`` or Ctrl-D ends). The session is a conversation: a follow-up ("How old is he?") is read with the
earlier turns (see :mod:`rag_news.conversation`); ``:new`` starts a new one. ``--server URL`` (or ``RAG_NEWS_SERVER``) asks a running ``rag_news.serve``
instead of loading anything here.

Exit codes: 0 answered (an abstention is an answer), 1 a one-line error (no index, bad question, model not
found, GPU asked for but absent, backend extra missing, server unreachable), 2 bad flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .cli import add_answer_flags, add_settings_flags, answer_settings_from_args, run, setup_logging
from .errors import RagNewsError

PROG = "python -m rag_news.ask"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Answer a question from the indexed news articles.")
    ap.add_argument("question", nargs="?", help="the question (quote it); none: an interactive session")
    ap.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    ap.add_argument("--json", action="store_true", help="print one JSON object (question, answer, sources, "
                    "abstained, timings) and nothing else on stdout")
    ap.add_argument("--server", help="ask a running rag_news.serve at this URL (default: $RAG_NEWS_SERVER)")
    ap.add_argument("--token", help="bearer token for --server (default: $RAG_NEWS_SERVER_TOKEN)")
    add_answer_flags(ap)
    add_settings_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from .answer import NewsQA, check_question

    settings = answer_settings_from_args(args)
    question = check_question(args.question) if args.question is not None else None  # before loading anything
    server = args.server or os.environ.get("RAG_NEWS_SERVER")
    if server:
        from .client import ServerQA
        qa = ServerQA(server, token=args.token or os.environ.get("RAG_NEWS_SERVER_TOKEN"),
                      timeout=settings.request_timeout)
    else:
        qa = NewsQA(settings)
        qa.index  # a missing index is reported before the model loads
        qa.llm
        if qa.info and qa.info.notice():
            print(qa.info.notice(), file=sys.stderr)
    if question is None:
        return session(qa, settings)
    if args.json:
        print(json.dumps(qa.ask(question).as_dict(), ensure_ascii=False))
        return 0
    answer = print_answer(qa, question, stream=not args.no_stream)
    print_sources(answer)
    return 0


def session(qa, settings) -> int:
    """Questions from the terminal (or stdin) until ``:quit`` or end of input; the model stays loaded."""
    history = settings.cache_dir / "ask_history"
    try:
        import readline
        history.parent.mkdir(parents=True, exist_ok=True)
        if history.exists():
            readline.read_history_file(history)
    except (ImportError, OSError):
        readline = None
    window = {"since": settings.since, "until": settings.until}
    turns: list = []  # this conversation's answers (the history of the next question)
    prompt = "? " if sys.stdin.isatty() else ""
    while True:
        try:
            line = input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if not line:
            continue
        if line in (":quit", ":q", "quit", "exit"):
            break
        if line == ":new":
            turns = []
            getattr(qa, "new_conversation", lambda: None)()
            print("(new conversation)")
            continue
        if line.startswith((":since", ":until")):
            name, _, value = line[1:].partition(" ")
            window[name] = value.strip() or None
            print(f"({name} {window[name] or 'cleared'})")
            continue
        try:
            answer = print_answer(qa, line, since=window["since"], until=window["until"], history=turns)
            print_sources(answer)
            turns = (turns + [answer])[-4:]
        except RagNewsError as e:
            print(f"error: {e}", file=sys.stderr)
        sys.stdout.flush()
    if readline is not None:
        try:
            readline.write_history_file(history)
        except OSError:
            pass
    return 0


def print_answer(qa, question: str, stream: bool = True, since: str | None = None, until: str | None = None,
                 history: list | None = None):
    """Stream (or print) the answer; a withheld answer is marked as such where its tokens were shown.
    ``history``: the conversation's earlier answers (a follow-up's rewrite is printed to stderr)."""
    from .answer import Answer, Retraction

    answer, shown = None, False
    items = qa.stream(question, since=since, until=until, history=history) if history is not None else \
        qa.stream(question, since=since, until=until)
    for item in items:
        if isinstance(item, Answer):
            answer = item
        elif isinstance(item, Retraction):
            print(f"\n[withdrawn: {item.reason}]")
        elif not isinstance(item, str):  # a research-mode tool call (rag_news.tools.ToolCall)
            print(item.line(), file=sys.stderr, flush=True)
        elif stream:
            sys.stdout.write(item)
            sys.stdout.flush()
            shown = True
    if shown:
        print()
    if not shown or answer.raw_answer is not None:
        print(answer.answer)
    if answer.standalone_question and answer.standalone_question != question:
        print(f"(read as: {answer.standalone_question})", file=sys.stderr)
    if answer.note and answer.raw_answer is None:
        print(f"({answer.note})", file=sys.stderr)
    if answer.citations_added:
        print("(the model cited no passage; * marks the one its answer was matched to)", file=sys.stderr)
    return answer


def print_sources(answer) -> None:
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


def cli() -> None:
    """The ``rag-news-ask`` console script: the same one-line errors as ``python -m rag_news.ask``."""
    run(main, PROG)


if __name__ == "__main__":
    cli()
