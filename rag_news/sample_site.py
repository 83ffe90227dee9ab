"""Serve a folder (the sample news site in ``data/site`` by default) on 127.0.0.1 for demos and tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import tempfile
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


class SampleSite:
    """The sample site on 127.0.0.1 with an explicit ``start()`` / ``stop()`` (for notebooks), or a with-block.

    ``copy=True`` serves a temporary copy of the folder, so its pages can be edited (``page_path(url)``)
    to show a re-index picking up a change; the copy is deleted by ``stop()``.
    """

    def __init__(self, directory: str | Path = SITE_DIR, copy: bool = False):
        self.source = Path(directory)
        self.copy = copy
        self.directory: Path | None = None
        self.base_url: str | None = None
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> "SampleSite":
        if self._stack is not None:
            return self
        stack = contextlib.ExitStack()
        try:
            directory = self.source
            if self.copy:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-news-site-")))
                directory = Path(shutil.copytree(self.source, tmp / "site"))
            self.base_url = stack.enter_context(serve(directory))
        except BaseException:
            stack.close()
            raise
        self.directory, self._stack = directory, stack
        return self

    def urls(self) -> list[str]:
        """The article URLs (from the site's ``urls.txt``)."""
        self._require()
        return site_urls(self.base_url, self.directory)

    def page_path(self, url: str) -> Path:
        """The file on disk that ``url`` serves."""
        self._require()
        if not url.startswith(self.base_url):
            raise ValueError(f"{url} is not served by this site ({self.base_url})")
        return self.directory / url[len(self.base_url):].split("?")[0].split("#")[0]

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self.base_url, self.directory = None, None, None

    def _require(self) -> None:
        if self._stack is None:
            raise RuntimeError("the site is not running: call start() first")

    def __enter__(self) -> "SampleSite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
