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


def pdf_article(body: bytes, meta: dict) -> Document | str:
    """The article a PDF holds, as the cleaner's output (Markdown-ish text + metadata), or a reason why
    there is none (damaged, encrypted, scanned without a text layer)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            return "PDF is encrypted"
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
        info = reader.metadata or {}
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
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
