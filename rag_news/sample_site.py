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
def serve(directory: str | Path = SITE_DIR, port: int = 0) -> Iterator[str]:
    """Serve ``directory`` on ``http://127.0.0.1:PORT`` (a free port by default); yields the base URL."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no site folder at {directory}")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sample-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def site_urls(base_url: str, directory: str | Path = SITE_DIR) -> list[str]:
    """The article URLs of the sample site (from its ``urls.txt``), resolved against ``base_url``."""
    lines = (Path(directory) / "urls.txt").read_text(encoding="utf-8").splitlines()
    return [urljoin(base_url, line.strip().lstrip("/")) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]
