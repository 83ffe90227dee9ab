"""``python -m rag_news.index --urls FILE_OR_URL... [--index-dir DIR] [--json]``: build or extend an index.

Prints what was indexed and what failed (with reasons). Exit status 0 when at least one page was indexed
(or was already indexed and unchanged), 1 when nothing could be indexed or the run could not start, 2 for
bad flags.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli import add_settings_flags, run, settings_from_args, setup_logging
from .errors import NothingIndexed
from .pipeline import IndexReport, index_urls
from .urls import read_url_list


def print_report(report: IndexReport, file=sys.stdout) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, soft_wrap=True)
    if report.pages:
        t = Table(title=f"Indexed into {report.index_dir}", show_lines=False)
        for col in ("status", "read", "chunks", "title", "url"):
            t.add_column(col, overflow="fold")
        for row in report.pages:
            t.add_row(row["status"], row.get("render") or "", str(row["chunks"]), row.get("title") or "", row["url"])
        console.print(t)
    for f in report.pages_failed:
        console.print(f"[red]failed[/red] {f['url']}: {f['reason']}", highlight=False)
    for f in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {f['url']}: {f['reason']}", highlight=False)
    console.print(
        f"pages ok {report.pages_ok}, failed {len(report.pages_failed)}; articles new {report.articles_new}, "
        f"changed {report.articles_changed}, unchanged {report.articles_unchanged}, duplicates "
        f"{report.duplicates}; rendered in Chromium {report.rendered}; chunks embedded {report.chunks_embedded}, "
        f"in index {report.chunks_total} "
        f"({report.articles_total} articles); {report.seconds:.1f}s", highlight=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag_news.index", description=__doc__.splitlines()[0])
    ap.add_argument("--urls", nargs="+", required=True, metavar="FILE_OR_URL",
                    help="article URLs, or files with one URL a line")
    ap.add_argument("--base-url", help="join relative lines of URL files to this base")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_settings_flags(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_from_args(args)
    urls = read_url_list(args.urls, base_url=args.base_url)
    report = index_urls(urls, settings)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print_report(report)
    if report.pages_ok == 0:
        if not args.json:
            raise NothingIndexed(f"nothing could be indexed: all {len(report.pages_failed)} URLs failed "
                                 f"(index in {report.index_dir} left as it was)")
        print(f"python -m rag_news.index: error: nothing could be indexed: all {len(report.pages_failed)} "
              "URLs failed", file=sys.stderr)
        return 1
    return 0


def cli() -> None:
    """The console script: the same one-line errors as ``python -m rag_news.index``."""
    run(main, "python -m rag_news.index")


if __name__ == "__main__":
    cli()
