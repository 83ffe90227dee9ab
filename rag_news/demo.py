"""Offline demo: serve the sample news site in ``data/site`` on 127.0.0.1, index it, show what was indexed
and what a search finds, then answer questions from it with citations.
``python -m rag_news.demo [--index-dir DIR] [--query TEXT] [--question TEXT ...] [--model ...]``."""

from __future__ import annotations

import argparse

from .cli import add_answer_flags, add_settings_flags, answer_settings_from_args, run, setup_logging
from .index import print_report
from .pipeline import index_urls, open_index
from .sample_site import serve, site_urls

DEFAULT_QUERY = "How many homes can the tidal power plant supply?"
DEFAULT_QUESTIONS = ("Where will the Eastmoor branch library be built?",
                     "How many students are enrolled at Larkspur College?",
                     "What is the population of Paris?")  # not in the articles: should abstain


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag_news.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--query", default=DEFAULT_QUERY, help="a search to run on the new index")
    ap.add_argument("--question", action="append", help="a question to answer (repeatable; default: three)")
    add_answer_flags(ap)
    add_settings_flags(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    settings = answer_settings_from_args(args)
    with serve() as base:
        urls = site_urls(base) + [base + "no-such-page.html"]  # one failing URL, to show the report
        print(f"Serving the sample site at {base}; indexing {len(urls)} URLs into {settings.index_dir}")
        report = index_urls(urls, settings)
    print_report(report)
    index = open_index(settings.index_dir, settings)
    print(f"\nSearch: {args.query}")
    for n, hit in enumerate(index.search(args.query, k=3), 1):
        snippet = " ".join(hit.text.split())[:220]
        print(f"[{n}] {hit.score:.3f}  {hit.title}  ({hit.published})\n    {hit.url}\n    {snippet}…")
    if not report.pages_ok:
        return 1
    from .answer import NewsQA
    from .ask import print_answer

    qa = NewsQA(settings, index=index)
    print("\nLoading the answering model…", flush=True)
    qa.llm
    if qa.info and qa.info.notice():
        print(qa.info.notice())
    for question in args.question or DEFAULT_QUESTIONS:
        print(f"\nQ: {question}\nA: ", end="", flush=True)
        a = print_answer(qa, question)
        for src in a.sources:
            if src.n in a.cited or not a.cited:
                mark = "cited" if src.n in a.cited else "shown"
                print(f"   [{src.n}] {mark}: {src.title} — {src.url}")
    return 0


if __name__ == "__main__":
    run(main, "python -m rag_news.demo")
