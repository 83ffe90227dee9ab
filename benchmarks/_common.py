"""Helpers shared by the benchmark scripts: the ../shared benchmark pages, served on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
import gzip
import http.server
import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RAG_NEWS_SHARED", ROOT.parent / "shared"))
EXTRACTION = SHARED / "benchmarks" / "article-extraction"
NEWS_QA = SHARED / "benchmarks" / "news-qa"


def load_pages() -> dict[str, str]:
    """``{page_id: html}`` for the article-extraction pages (sorted by id)."""
    if not EXTRACTION.is_dir():
        raise SystemExit(f"benchmark pages not found at {EXTRACTION} (set RAG_NEWS_SHARED)")
    out = {}
    for f in sorted((EXTRACTION / "pages").glob("*.html.gz")):
        out[f.name[: -len(".html.gz")]] = gzip.decompress(f.read_bytes()).decode("utf-8", "replace")
    return out


def ground_truth() -> dict:
    return json.loads((EXTRACTION / "ground-truth.json").read_text(encoding="utf-8"))


@contextlib.contextmanager
def serve_pages(pages: Mapping[str, str]):
    """Serve ``pages`` (any mapping of id to HTML: a lazy one keeps nothing in memory) as
    ``http://127.0.0.1:PORT/<id>.html``; yields the base URL. Each page is encoded when it is asked for."""
    from rag_news.sample_site import serve_handler

    def page(path: str) -> bytes | None:
        name = path.split("?")[0].lstrip("/")
        html = pages.get(name[: -len(".html")]) if name.endswith(".html") else None
        return html.encode("utf-8") if html is not None else None

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = page(self.path)
            code = 200 if body is not None else 404
            body = body if body is not None else b"not found"
            try:
                self.send_response(code)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    with serve_handler(Handler) as base:
        yield base


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def index_news_pages(index_dir: Path, settings) -> None:
    """Index the article-extraction pages (served on 127.0.0.1) into ``index_dir`` by the real pipeline,
    unless an index is already there."""
    from rag_news import index_urls
    from rag_news.store import NewsIndex

    if NewsIndex.exists(index_dir):
        return
    pages = load_pages()
    with serve_pages(pages) as base:
        report = index_urls([f"{base}/{k}.html" for k in pages], settings)
    print(f"indexed {report.pages_ok}/{len(pages)} pages, {report.chunks_total} chunks", flush=True)
