"""Hostile-site battery for "nothing good lost" (rag_news.keep and the pass's retention): the sample site
served on 127.0.0.1, two sources, real re-index passes (fetch, clean, embed with MiniLM, commit).

Pass 1: everything indexed. Pass 2 (next day): soft-404 walls on 30% of the ledger host's pages, one
known article redirected to the front page, and the wire source's feed down (HTTP 503). Passes 3..5:
the wire source stays down (its feed, then every one of its pages refusing us) until day 45, past
``retention_days`` (30). Pass 6: all back. Prints each pass's summary line and its ``kept`` reasons,
and "articles lost" (indexed articles whose stored text is gone or replaced while their page was bad).

    python benchmarks/bench_keep.py
"""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag_news.embed import Embedder  # noqa: E402
from rag_news.pipeline import open_index  # noqa: E402
from rag_news.reindex import run_pass, summary_line  # noqa: E402
from rag_news.sample_site import SITE_DIR, serve_handler  # noqa: E402
from rag_news.settings import Settings  # noqa: E402
from rag_news.sources import Source  # noqa: E402

SOFT_404 = ("<!doctype html><html><head><title>Page not found</title></head><body><article><h1>Sorry, we could "
            "not find that page</h1><p>The page you are looking for may have been moved, renamed or is "
            "temporarily unavailable. Please check the address you typed, or go back to the home page and use "
            "the search box to find the story you were looking for.</p><p>If you think this is an error, "
            "contact our newsroom support team and tell us which link brought you here.</p></article></body></html>")


class Site(http.server.SimpleHTTPRequestHandler):
    rules: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        rule = self.rules.get(self.path.split("?")[0].lstrip("/"))
        if rule is None:
            return super().do_GET()
        kind, value = rule
        if kind == "redirect":
            self.send_response(301)
            self.send_header("Location", value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = value.encode() if kind == "body" else b"<html><body>unavailable</body></html>"
        self.send_response(200 if kind == "body" else value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def feed(folder: Path, name: str, base: str, paths) -> None:
    items = "".join(f"<item><title>{p}</title><link>{base}{p}</link></item>" for p in paths)
    (folder / name).write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>{items}'
                               "</channel></rss>")


def main() -> int:
    articles = sorted(str(p.relative_to(SITE_DIR)) for p in SITE_DIR.glob("2026/*/*.html"))
    ledger, wire = articles[:7], articles[7:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "site"
        shutil.copytree(SITE_DIR, folder)
        handler = type("BenchSite", (Site,), {"rules": {}})
        settings = Settings(index_dir=Path(tmp) / "index", cache_dir=Settings().cache_dir, progress=False,
                            embedding_model="sentence-transformers/all-MiniLM-L6-v2", page_timeout=10, retries=1,
                            retry_backoff=0.1)
        embedder = Embedder(settings)
        with serve_handler(functools.partial(handler, directory=str(folder))) as base:
            base += "/"
            feed(folder, "ledger.xml", base, ledger)
            feed(folder, "wire.xml", base, wire)
            sources = [Source("ledger", feed=base + "ledger.xml"), Source("wire", feed=base + "wire.xml")]
            t0 = datetime.now(timezone.utc)
            run_pass(settings, sources, embedder=embedder, now=t0)
            index = open_index(settings.index_dir, settings)
            stored = {r["url"]: index.article_text(r["key"]) for r in index.iter_articles()}
            walls = ledger[:2]  # 2 of the ledger host's 7 pages: ~30%
            steps = [
                (1, "walls on 30% of ledger's pages, a front-page redirect, wire's feed down",
                 {**{p: ("body", SOFT_404) for p in walls}, ledger[2]: ("redirect", "/"), "wire.xml": ("status", 503)}),
                (31, "wire's feed still down (past retention_days)", {"wire.xml": ("status", 503)}),
                (40, "wire's feed back, every wire page refuses us (403)", {p: ("status", 403) for p in wire}),
                (45, "wire's feed down again", {"wire.xml": ("status", 503)}),
                (46, "everything back", {}),
            ]
            lost_total = 0
            for day, what, rules in steps:
                handler.rules.clear()
                handler.rules.update(rules)
                report = run_pass(settings, sources, embedder=embedder, now=t0 + timedelta(days=day))
                index = open_index(settings.index_dir, settings)
                now_text = {r["url"]: index.article_text(r["key"]) for r in index.iter_articles()}
                lost = [u for u, t in stored.items() if now_text.get(u) != t]
                if "--debug" in sys.argv:
                    print({r["url"].removeprefix(base): (r.get("source_name"), r.get("last_seen")) for r in index.iter_articles()})
                lost_total += len(lost)
                print(f"day {day}: {what}\n  {summary_line(report)}")
                for k in report.kept:
                    print(f"  {k['url'].removeprefix(base)}: {k['reason']}")
                print(f"  articles lost: {len(lost)}")
            print(f"articles lost over the battery: {lost_total} (of {len(stored)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
