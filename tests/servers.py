"""Local HTTP servers for the tests: bound to 127.0.0.1, started and stopped by fixtures."""

from __future__ import annotations

import http.server
import threading
import time

from rag_news.sample_site import serve_handler  # noqa: F401  (re-exported for the tests)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


ARTICLE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>{title}</h1>{paras}</article>
<footer>Copyright footer text here</footer></body></html>"""


def article_html(title: str, n: int = 6, word: str = "harbour") -> str:
    paras = "".join(
        f"<p>Paragraph {i} of the {word} story explains in full sentences what happened at the {word} "
        f"and why the council voted on the {word} plan this week, with more detail number {i}.</p>"
        for i in range(n)
    )
    return ARTICLE.format(title=title, paras=paras)


class BadSiteHandler(_Quiet):
    """Pages that fail in the ways real sites fail."""

    flaky_hits: dict = {}
    lock = threading.Lock()

    def _send(self, code, body=b"", ctype="text/html; charset=utf-8", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: C901 - a table of cases
        path = self.path.split("?")[0]
        if path == "/ok":
            return self._send(200, article_html("A good article about the harbour").encode())
        if path == "/missing":
            return self._send(404, b"<html><body>not found</body></html>")
        if path == "/always500":
            return self._send(500, b"<html><body>server error</body></html>")
        if path == "/flaky":
            with self.lock:
                n = self.flaky_hits.get(self.path, 0)
                self.flaky_hits[self.path] = n + 1
            if n == 0:
                return self._send(500, b"<html><body>try again</body></html>")
            return self._send(200, article_html("The flaky page recovered", word="bridge").encode())
        if path == "/hang":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body><p>loading")
            self.wfile.flush()
            time.sleep(8)
            return
        if path == "/doc.pdf":
            return self._send(200, b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", ctype="application/pdf")
        if path == "/image.png":
            return self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, ctype="image/png")
        if path.startswith("/loop"):
            return self._send(302, b"", headers={"Location": "/loop2" if path == "/loop" else "/loop"})
        if path == "/empty":  # loads fine, holds no article
            return self._send(200, b"<html><head><title>Home</title></head><body><nav>Home</nav></body></html>")
        if path == "/huge":
            return self._send(200, b"<html><body>" + b"x" * 2_000_000 + b"</body></html>")
        return self._send(404, b"no such test page")


class RedirectingHandler(_Quiet):
    """A page that replaces itself by script right after load (as consent walls and A/B tests do)."""

    def do_GET(self):
        if self.path.startswith("/bounce"):
            # /bounce goes to /landed; /bounce-dead to a port where nothing listens
            target = {"/bounce-dead": "http://127.0.0.1:9/gone",  # nothing listens there
                      "/bounce-https": "https://" + self.headers["Host"] + "/secure"}.get(self.path, "/landed")
            body = ("<html><head><title>Bouncing</title></head><body><p>Wait...</p><script>"
                    f"window.addEventListener('load', () => setTimeout(() => location.replace('{target}'), "
                    f"{50 if target == '/landed' else 300}));"
                    "</script></body></html>").encode()
        else:
            body = article_html("The article after the redirect", word="lighthouse").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
