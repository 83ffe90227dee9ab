"""Re-index cost on the 91 article-extraction pages: full build vs re-index of the unchanged corpus vs
re-index after 10% of the articles changed. One run, same machine, same pages.

The pages are served on 127.0.0.1 with an RSS feed listing them, as a news site would, and with ETags
(conditional requests answered 304 when unchanged), then a second time with no validators at all (the
job must fetch every page again to know). The job is the real one (`rag_news.reindex.run_pass`:
discover from the feed, fetch (conditional GETs; Chromium only where needed), clean, chunk, embed with
mpnet, commit). "written" is every byte the process wrote during the pass (/proc/self/io wchar).

    python benchmarks/bench_reindex.py
"""

from __future__ import annotations

import hashlib
import http.server
import os
import tempfile
from pathlib import Path

from _common import ground_truth, load_pages, machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import Settings  # noqa: E402
from rag_news.embed import Embedder  # noqa: E402
from rag_news.reindex import run_pass  # noqa: E402
from rag_news.sample_site import serve_handler  # noqa: E402
from rag_news.sources import Source  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)  # see bench_scrape.py


def make_handler(pages: dict[str, str], validators: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/feed.xml":
                host = self.headers.get("Host")
                items = "".join(f"<item><title>{k}</title><link>http://{host}/{k}.html</link></item>" for k in pages)
                body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>b</title>{items}</channel></rss>'
                return self._send(200, body.encode(), "application/rss+xml")
            html = pages.get(path[1:-len(".html")]) if path.endswith(".html") else None
            if html is None:
                return self._send(404, b"not found", "text/plain")
            body = html.encode("utf-8")
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            if validators["on"] and self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", None, etag)
            self._send(200, body, "text/html; charset=utf-8", etag if validators["on"] else None)

        def _send(self, code, body, ctype, etag=None):
            try:
                self.send_response(code)
                if ctype:
                    self.send_header("Content-Type", ctype)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def wchar() -> int:
    return int(next(line for line in open("/proc/self/io") if line.startswith("wchar:")).split()[1])


def change(html: str, body: str, n: int) -> str:
    """Edit the article text itself: the first long word of its body that the HTML holds is replaced."""
    import re

    for word in re.findall(r"[A-Za-z]{8,}", body):
        i = html.find(word, html.find("<body"))
        if i >= 0:
            return html[:i] + f"Revised{n}" + html[i + len(word):]
    return html


def main() -> None:
    pages = load_pages()
    truth = ground_truth()
    validators = {"on": True}
    print(f"machine: {machine()}; {len(pages)} pages")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serve_handler(make_handler(pages, validators)) as base:
        settings = Settings.load(index_dir=Path(tmp) / "index", progress=False, browser_args=ISOLATE)
        embedder = Embedder(settings).warm_up()  # model load is not part of any pass
        sources = [Source("bench", feed=f"{base}/feed.xml")]

        def run(name):
            w = wchar()
            r = run_pass(settings, sources, embedder=embedder)
            written = (wchar() - w) / 1e6
            rows.append((name, r))
            print(f"{name:55s} {r.seconds:7.1f}s  new {r.articles_new:3d} changed {r.articles_changed:3d} "
                  f"unchanged {r.articles_unchanged:3d} (304: {r.not_modified:3d}) failed {len(r.pages_failed):2d} "
                  f"rendered {r.rendered:2d} chunks embedded {r.chunks_embedded:4d} written {written:.2f} MB")
            for f in r.pages_failed:
                print(f"    failed {f['url'].rsplit('/', 1)[-1][:16]}…: {f['reason']}")
            return r

        full = run("full build")
        same = run("re-index, nothing changed (ETags)")
        keys = sorted(pages)[:: 10]  # every 10th page: 10%
        for n, k in enumerate(keys):
            pages[k] = change(pages[k], truth[k]["articleBody"], n)
        changed = run(f"re-index, {len(keys)} pages ({len(keys) / len(pages):.0%}) changed (ETags)")
        validators["on"] = False
        run("re-index, nothing changed, server without validators")
    print(f"\nunchanged re-index / full build: {same.seconds / full.seconds:.3f} "
          f"({same.chunks_embedded} chunks embedded)")
    print(f"10% changed re-index / full build: {changed.seconds / full.seconds:.3f}; embed work "
          f"{changed.chunks_embedded}/{full.chunks_embedded} chunks = {changed.chunks_embedded / full.chunks_embedded:.3f}")
    nov = rows[-1][1]
    print(f"without validators, unchanged re-index / full build: {nov.seconds / full.seconds:.3f}")
    print(f"unchanged_reindex_ratio: {same.seconds / full.seconds:.3f}")


if __name__ == "__main__":
    main()
