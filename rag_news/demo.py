"""Offline demo: serve the sample news site in ``data/site`` on 127.0.0.1, index it, show what was indexed
and what a search finds. ``python -m rag_news.demo [--index-dir DIR] [--query TEXT]``."""

from __future__ import annotations

import argparse

from .cli import add_settings_flags, run, settings_from_args, setup_logging
from .index import print_report
from .pipeline import index_urls, open_index
from .sample_site import serve, site_urls

DEFAULT_QUERY = "How many homes can the tidal power plant supply?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag_news.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--query", default=DEFAULT_QUERY, help="a search to run on the new index")
    ap.add_argument("--k", type=int, default=3)
    add_settings_flags(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_from_args(args)
    with serve() as base:
        urls = site_urls(base) + [base + "no-such-page.html"]  # one failing URL, to show the report
        print(f"Serving the sample site at {base}; indexing {len(urls)} URLs into {settings.index_dir}")
        report = index_urls(urls, settings)
    print_report(report)
    index = open_index(settings.index_dir, settings)
    print(f"\nSearch: {args.query}")
    for n, hit in enumerate(index.search(args.query, k=args.k), 1):
        snippet = " ".join(hit.text.split())[:220]
        print(f"[{n}] {hit.score:.3f}  {hit.title}  ({hit.published})\n    {hit.url}\n    {snippet}…")
    return 0 if report.pages_ok else 1


if __name__ == "__main__":
    run(main, "python -m rag_news.demo")
