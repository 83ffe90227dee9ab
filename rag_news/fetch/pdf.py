"""PDF articles (reports, statements): text with ``pypdf``, title and date from the PDF's metadata."""

from __future__ import annotations

import io
import re
from datetime import datetime

from langchain_core.documents import Document

from ..clean import content_hash

_PDF_DATE = re.compile(r"^D:(\d{4})(\d{2})?(\d{2})?")


def pdf_date(value) -> str | None:
    """``D:20261104...`` (or a datetime, as pypdf may give) -> ``2026-11-04``."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    m = _PDF_DATE.match(str(value or ""))
    if not m:
        return None
    year, month, day = m.group(1), m.group(2) or "01", m.group(3) or "01"
    return f"{year}-{month}-{day}"


def pdf_article(body: bytes, meta: dict, max_pages: int = 300) -> Document | str:
    """The article a PDF holds, as the cleaner's output (Markdown-ish text + metadata), or a reason why
    there is none (damaged, encrypted, scanned without a text layer). At most ``max_pages`` pages are
    read; whatever pypdf raises on a hostile file is that file's reason, never the caller's exception."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            return "PDF is encrypted"
        pages = []
        for i, p in enumerate(reader.pages):
            if i >= max_pages:
                break
            pages.append((p.extract_text() or "").strip())
        info = reader.metadata or {}
        info = {k: info.get(k) for k in ("/Title", "/Author", "/CreationDate", "/ModDate")}
    except (Exception, RecursionError) as e:  # noqa: BLE001 - pypdf raises many types on damaged files
        return f"PDF could not be read ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
    text = "\n\n".join(_tidy(p) for p in pages if p)
    if len(text.split()) < 5:
        return "PDF holds no extractable text (a scan without a text layer?)"
    title = str(info.get("/Title") or "").strip() or text.strip().splitlines()[0][:200]
    published = pdf_date(info.get("/CreationDate")) or pdf_date(info.get("/ModDate"))
    url = meta.get("final_url") or meta["source"]
    return Document(page_content=text, metadata={
        **meta, "url": url, "title": title, "author": str(info.get("/Author") or "").strip() or None,
        "published": published, "extraction": "pdf", "pages": len(pages), "words": len(text.split()),
        "content_hash": content_hash(text)})


def _tidy(page_text: str) -> str:
    """Join lines that a PDF broke inside a paragraph; keep blank-line paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", page_text)
    return "\n\n".join(re.sub(r"-\n(?=[a-z])", "", p).replace("\n", " ").strip() for p in paragraphs if p.strip())


PDF_MEMORY_BYTES = 2 << 30  # the child that reads PDFs may use this much address space beyond its start


def _limit_memory() -> None:
    import pypdf  # noqa: F401 - loaded before the limit is measured

    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            base = int(f.read().split()[0]) * resource.getpagesize()
        want = base + PDF_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    except (ImportError, OSError, ValueError):  # not Linux: time bound only
        pass


class PdfReaderPool:
    """PDFs read in one child process (spawned on first use), bounded in time (``timeout`` per PDF: the
    child is killed and replaced) and memory (``PDF_MEMORY_BYTES``: a bomb fails with MemoryError there).
    ``await pool.read(body, meta)`` -> Document or a reason, like :func:`pdf_article`."""

    def __init__(self, timeout: float, max_pages: int):
        self.timeout, self.max_pages, self._pool = timeout, max_pages, None
        self._lock = None

    def _executor(self):
        import concurrent.futures
        import multiprocessing

        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_memory)
        return self._pool

    async def read(self, body: bytes, meta: dict) -> Document | str:
        import asyncio
        import concurrent.futures

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one PDF at a time in the child
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._executor(), pdf_article, body, meta, self.max_pages)
            try:
                return await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                self._kill()
                return f"PDF could not be read (took longer than {self.timeout:g}s)"
            except (concurrent.futures.process.BrokenProcessPool, MemoryError) as e:
                self._kill()
                return f"PDF could not be read (the reader ran out of memory or crashed: {type(e).__name__})"

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):  # the one child this pool started
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
