"""Serve a folder (the sample news site in ``data/site`` by default) on 127.0.0.1 for demos and tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin

SITE_DIR = Path(__file__).resolve().parent.parent / "data" / "site"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_handler(handler_cls, port: int = 0) -> Iterator[str]:
    """Run an HTTP server with ``handler_cls`` on 127.0.0.1 in a thread; yields its base URL (no slash)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler_cls)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="rag-news-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serve(directory: str | Path = SITE_DIR, port: int = 0) -> Iterator[str]:
    """Serve ``directory`` on ``http://127.0.0.1:PORT/`` (a free port by default); yields the base URL."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no site folder at {directory}")
    with serve_handler(functools.partial(_QuietHandler, directory=str(directory)), port) as base:
        yield base + "/"


def site_urls(base_url: str, directory: str | Path = SITE_DIR) -> list[str]:
    """The article URLs of the sample site (from its ``urls.txt``), resolved against ``base_url``."""
    lines = (Path(directory) / "urls.txt").read_text(encoding="utf-8").splitlines()
    return [urljoin(base_url, line.strip().lstrip("/")) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]
