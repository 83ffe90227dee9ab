"""Local HTTP servers for the tests: bound to 127.0.0.1, started and stopped by fixtures."""

from __future__ import annotations

import contextlib
import socket
import gzip
import http.server
import threading
import time
import zlib

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


def make_pdf(title: str, date: str, lines: list[str]) -> bytes:
    """A small valid PDF (Helvetica text, one page) with /Title and /CreationDate metadata."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "BT /F1 11 Tf 72 740 Td " + " ".join(f"({esc(line)}) Tj 0 -15 Td" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({esc(title)}) /CreationDate (D:{date.replace('-', '')}120000Z) >>",
    ]
    return _assemble_pdf(objects, info=6)


def make_pdf_pages(n: int) -> bytes:
    """A valid PDF of ``n`` pages, one line of Helvetica text on each."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               "<< /Type /Pages /Kids [" + " ".join(f"{4 + 2 * i} 0 R" for i in range(n)) + f"] /Count {n} >>",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i in range(n):
        text = f"BT /F1 11 Tf 72 740 Td (Page {i} of the harbour report lists cargo figures.) Tj ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        objects.append(f"<< /Length {len(text)} >>\nstream\n{text}\nendstream")
    return _assemble_pdf(objects)


class PoliteHandler(_Quiet):
    """A site that watches how it is fetched: request log (path, start, end), concurrency, robots.txt,
    a page that answers 429 with Retry-After once, a JavaScript-only page, a PDF."""

    log: list = []
    active = 0
    peak = 0
    busy_hits: dict = {}
    robots = "User-agent: *\nDisallow:\n"
    lock = threading.Lock()

    @classmethod
    def reset(cls, robots: str = "User-agent: *\nDisallow:\n") -> None:
        cls.log, cls.active, cls.peak, cls.busy_hits, cls.robots = [], 0, 0, {}, robots

    def _send(self, code, body, ctype="text/html; charset=utf-8", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
            start = time.monotonic()
        try:
            self._route(self.path.split("?")[0])
        finally:
            with cls.lock:
                cls.active -= 1
                cls.log.append((self.path, start, time.monotonic(), self.headers.get("User-Agent", "")))

    def _route(self, path: str) -> None:  # noqa: C901 - a table of cases
        if path == "/robots.txt":
            if type(self).robots is None:
                return self._send(500, b"robots.txt is broken today", "text/plain")
            return self._send(200, type(self).robots.encode(), "text/plain")
        if path.startswith("/slow/"):
            time.sleep(0.3)
            return self._send(200, article_html(f"Slow story {path}", word="quay").encode())
        if path == "/busy":
            with type(self).lock:
                n = type(self).busy_hits.get(path, 0)
                type(self).busy_hits[path] = n + 1
            if n == 0:
                return self._send(429, b"slow down", headers={"Retry-After": "1"})
            return self._send(200, article_html("The busy page answered", word="pier").encode())
        if path == "/very-busy":
            return self._send(503, b"come back tomorrow", headers={"Retry-After": "86400"})
        if path == "/js-only":
            body = ("<html><head><title>App</title></head><body><div id='root'></div><script>"
                    "document.getElementById('root').innerHTML = '<article><h1>Lighthouse keepers return</h1>' + "
                    "Array.from({length: 6}, (_, i) => '<p>Paragraph ' + i + ' tells how the lighthouse keepers "
                    "returned to Gull Point after forty years, and what the council decided about the lamp.</p>')"
                    ".join('') + '</article>';</script></body></html>")
            return self._send(200, body.encode())
        if path == "/report.pdf":
            return self._send(200, make_pdf("Harbour authority annual report", "2026-11-04", [
                "The harbour authority handled 4.2 million tonnes of cargo in 2026.",
                "Passenger numbers on the island ferries rose by 11 percent.",
                "The authority will dredge the inner basin next spring."]), "application/pdf")
        if path.startswith(("/page/", "/private/")):
            return self._send(200, article_html(f"Story {path}", word="marina").encode())
        return self._send(404, b"no such page")


# ------------------------------------------------------------------------------------------ hostile sites
@contextlib.contextmanager
def serve_on(handler_cls, host: str = "127.0.0.1", port: int = 0):
    """Like ``serve_handler`` on another loopback address (``127.0.0.2`` stands for a host nobody named:
    an internal service, a cloud metadata address). Only 127.0.0.0/8 is ever bound."""
    import ipaddress

    assert ipaddress.ip_address(host).is_loopback, host
    server = http.server.ThreadingHTTPServer((host, port), handler_cls)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="rag-news-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class InternalHandler(_Quiet):
    """Site B: a service nobody listed. Every request it gets is logged (the tests want none)."""

    log: list = []
    hosts: list = []
    SECRET = "INTERNAL-ONLY payroll figures of the harbour authority"

    def do_GET(self):
        type(self).log.append(self.path)
        type(self).hosts.append(self.headers.get("Host"))
        body = article_html(self.SECRET, word="payroll").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_HEAD = do_GET


def _bomb(size: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join(z.compress(block) for _ in range(size >> 20)) + z.flush()


class HostileHandler(_Quiet):
    """Site A: listed by the operator, hostile in every way a site can be. ``other`` is site B's base URL;
    ``robots`` its robots.txt; ``log`` every path asked for."""

    other = "http://127.0.0.2:9"
    robots = "User-agent: *\nDisallow: /private/\n"
    log: list = []
    lock = threading.Lock()
    _bombs: dict = {}

    @classmethod
    def bomb(cls, size: int = 200 << 20) -> bytes:
        if size not in cls._bombs:
            cls._bombs[size] = _bomb(size)
        return cls._bombs[size]

    @classmethod
    def many_pages(cls, n: int = 2000) -> bytes:
        """A valid PDF of ``n`` pages (one line of text each): more than ``max_pdf_pages`` reads."""
        if n not in cls._bombs:
            cls._bombs[n] = make_pdf_pages(n)
        return cls._bombs[n]

    def _send(self, code, body=b"", ctype="text/html; charset=utf-8", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        headers = dict(headers or {})
        self.send_header("Content-Length", headers.pop("Content-Length", str(len(body))))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):  # noqa: C901 - a table of cases
        with type(self).lock:
            type(self).log.append(self.path)
        path, other = self.path.split("?")[0], type(self).other
        short = "<html><head><title>Moved</title>{head}</head><body><p>Moved.</p>{body}</body></html>"
        if path == "/robots.txt":
            return self._send(200, type(self).robots.encode(), "text/plain")
        if path.startswith(("/page/", "/private/")):
            return self._send(200, article_html(f"Story {path}", word="marina").encode())
        if path == "/redirect-to-b":
            return self._send(302, b"", headers={"Location": other + "/internal"})
        if path == "/meta-to-b":
            return self._send(200, short.format(head=f'<meta http-equiv="refresh" content="0; url={other}/meta">',
                                                body="").encode())
        if path == "/script-to-b":
            return self._send(200, article_html("A story that sends scripts elsewhere").replace(
                "</body>", f"<script>location.href = '{other}/script';</script></body>").encode())
        if path == "/embeds-b":
            return self._send(200, article_html("A story that embeds the internal service").replace(
                "</body>", f'<iframe src="{other}/frame"></iframe><script>fetch("{other}/xhr").catch(() => 0);'
                           f'</script><link rel="stylesheet" href="{other}/style.css"></body>').encode())
        if path == "/drip":  # a slow drip: one byte every 0.2 s for up to 20 s
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if path == "/gzip-bomb":
            return self._send(200, self.bomb(), headers={"Content-Encoding": "gzip"})
        if path == "/truncated-gzip":
            whole = gzip.compress(article_html("Cut short", n=40).encode())
            return self._send(200, whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})
        if path == "/lying-length":
            return self._send(200, b"<html><body><p>short", headers={"Content-Length": "100000"})
        if path == "/loop":
            return self._send(302, b"", headers={"Location": "/loop-2"})
        if path == "/loop-2":
            return self._send(302, b"", headers={"Location": "/loop"})
        if path == "/broken.pdf":
            return self._send(200, b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\nxref\n0 garbage",
                              "application/pdf")
        if path == "/huge.pdf":  # larger than any sane max_page_bytes
            return self._send(200, b"%PDF-1.4\n" + b"0" * (30 << 20), "application/pdf")
        if path == "/many-pages.pdf":
            return self._send(200, self.many_pages(), "application/pdf")
        if path == "/fanout.xml":  # a sitemap index fanning out to 10,000 sitemaps
            me = "http://" + self.headers["Host"]
            locs = "".join(f"<sitemap><loc>{me}/sm/{i}.xml</loc></sitemap>" for i in range(10_000))
            return self._send(200, ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
                                    f'sitemap/0.9">{locs}</sitemapindex>').encode(), "application/xml")
        if path.startswith("/sm/"):
            i = path.rsplit("/", 1)[1].split(".")[0]
            return self._send(200, ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/'
                                    f'0.9"><url><loc>http://{self.headers["Host"]}/page/{i}</loc></url></urlset>').encode(),
                              "application/xml")
        if path == "/feed-file.xml":
            items = "".join(f"<item><title>x</title><link>{u}</link></item>" for u in
                            ("file:///etc/passwd", "ftp://127.0.0.1/x", f"{other}/from-feed"))
            return self._send(200, f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}'
                                   "</channel></rss>".encode(), "application/rss+xml")
        if path == "/index-to-b.xml":
            locs = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in ("file:///etc/passwd", f"{other}/sm.xml"))
            return self._send(200, f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
                                   f'sitemap/0.9">{locs}</sitemapindex>'.encode(), "application/xml")
        if path == "/bomb.xml.gz":
            return self._send(200, self.bomb(), "application/gzip")
        if path == "/truncated.xml.gz":
            whole = gzip.compress(b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                  + b"<url><loc>http://127.0.0.1/a</loc></url>" * 2000 + b"</urlset>")
            return self._send(200, whole[: len(whole) // 2], "application/gzip")
        return self._send(404, b"no such page")


class LiveServer:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a thread, stopped on exit."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _assemble_pdf(objects: list[str], info: int | None = None) -> bytes:
    """Numbered objects, the cross-reference table and the trailer (``info``: the Info object's number)."""
    out, offsets = "%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out.encode("latin-1")))
        out += f"{i} 0 obj\n{body}\nendobj\n"
    xref = len(out.encode("latin-1"))
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010d} 00000 n \n" for o in offsets)
    extra = f" /Info {info} 0 R" if info else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{extra} >>\nstartxref\n{xref}\n%%EOF\n"
    return out.encode("latin-1")


@contextlib.contextmanager
def llama_cpp_server(model, log_dir, *args: str, wait_s: float = 120):
    """llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``, llama-cpp-python[server]) with
    ``model`` on a free port of 127.0.0.1 and the extra command-line ``args``; its output goes to
    ``log_dir/server.log``. Yields its base URL (…/v1) once ``/v1/models`` answers; stopped on exit."""
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = Path(log_dir) / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.time() + wait_s
            while True:
                try:
                    urllib.request.urlopen(base + "/models", timeout=2).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"llama.cpp server did not start: {log_path.read_text()[-2000:]}")
                    time.sleep(0.5)
            yield base
        finally:
            stop_process(proc)


def stop_process(proc, grace_s: float = 20) -> None:
    """Stop a server process a test started: SIGTERM, then SIGKILL after ``grace_s`` seconds."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
