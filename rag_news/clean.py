"""Clean: keep the article, drop the page furniture.

Entry point: :func:`clean` turns a scraped page ``Document`` (HTML) into an article ``Document`` (Markdown
text) with metadata, or ``None`` when the page holds no text. trafilatura finds the main content
(``favor_precision``, comments excluded: F1 0.975 on the article-extraction benchmark vs 0.965 with its
defaults, see benchmarks/RESULTS.md); html2text turns that HTML into Markdown without hard wrapping.
Only when trafilatura finds nothing is the whole page converted instead (``metadata["extraction"] ==
"fallback"``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urljoin

import html2text
import lxml.html
import trafilatura
from langchain_core.documents import Document

from .settings import Settings

_BLANKS = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")
_MIN_WORDS = 5


def _html_to_markdown(html: str, settings: Settings) -> str:
    h = html2text.HTML2Text()
    h.body_width = 0  # no hard wrapping (wrapping breaks words and sentences apart)
    h.ignore_links = not settings.include_links
    h.ignore_images = not settings.include_images
    h.ignore_emphasis = True
    h.ignore_tables = False
    h.unicode_snob = True
    h.single_line_break = False
    text = h.handle(html)
    text = _TRAILING.sub("\n", text)
    return _BLANKS.sub("\n\n", text).strip()


def _strip_furniture(html: str) -> str:
    """For the fallback: drop scripts, styles and obvious page furniture before html2text."""
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return html
    for el in tree.xpath("//script|//style|//noscript|//nav|//footer|//header|//aside|//form|//iframe"):
        el.drop_tree()
    return lxml.html.tostring(tree, encoding="unicode")


def content_hash(text: str) -> str:
    norm = " ".join(text.split()).lower()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


_CANONICAL = re.compile(r"<link\b[^>]*>", re.I)


def _canonical_url(html: str, url: str | None) -> str | None:
    """``<link rel="canonical">`` (or ``og:url``) resolved against the page URL."""
    head = html[:200_000]
    for tag in _CANONICAL.findall(head):
        if re.search(r"\brel\s*=\s*[\"']?canonical\b", tag, re.I):
            m = re.search(r"\bhref\s*=\s*[\"']([^\"']+)", tag, re.I)
            if m:
                return urljoin(url or "", m.group(1).strip())
    m = re.search(r"<meta[^>]+property\s*=\s*[\"']og:url[\"'][^>]*content\s*=\s*[\"']([^\"']+)", head, re.I)
    return urljoin(url or "", m.group(1).strip()) if m else None


def _page_language(html: str) -> str | None:
    m = re.search(r"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)", html[:5000], re.I)
    return m.group(1).lower() if m else None


def extract(html: str, url: str | None = None, settings: Settings | None = None) -> tuple[str, dict[str, Any]]:
    """Return ``(markdown_text, metadata)`` for one HTML page. ``markdown_text`` may be empty."""
    settings = settings or Settings()
    body_html = trafilatura.extract(
        html, url=url, output_format="html", include_comments=False, favor_precision=True,
        include_tables=True, include_links=settings.include_links, include_images=settings.include_images,
        with_metadata=False,
    )
    method = "trafilatura"
    text = _html_to_markdown(body_html, settings) if body_html else ""
    if len(text.split()) < _MIN_WORDS:
        text = _html_to_markdown(_strip_furniture(html), settings)
        method = "fallback"
    meta = trafilatura.extract_metadata(html, default_url=url)
    info: dict[str, Any] = {
        "title": None, "author": None, "published": None, "site_name": None, "canonical_url": None,
        "language": _page_language(html), "description": None, "extraction": method,
    }
    if meta is not None:
        info.update(
            title=meta.title, author=meta.author, published=meta.date, site_name=meta.sitename,
            description=meta.description,
        )
    info["canonical_url"] = _canonical_url(html, url) or (meta.url if meta is not None else None)
    if not info["title"]:
        m = re.search(r"<title[^>]*>(.*?)</title>", html, re.I | re.S)
        info["title"] = " ".join(m.group(1).split()) if m else None
    return text, info


def clean(page: Document, settings: Settings | None = None) -> Document | None:
    """Scraped page (HTML) -> article (Markdown) with metadata; ``None`` if the page has no text."""
    url = page.metadata.get("final_url") or page.metadata.get("source")
    text, info = extract(page.page_content, url=url, settings=settings)
    if len(text.split()) < _MIN_WORDS:
        return None
    metadata = {
        "source": page.metadata.get("source", url),
        "url": url,
        **info,
        "fetched_at": page.metadata.get("fetched_at"),
        "content_hash": content_hash(text),
        "words": len(text.split()),
    }
    if not metadata["title"]:
        metadata["title"] = url
    return Document(page_content=text, metadata=metadata)
