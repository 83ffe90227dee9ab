"""Fetch: the article text of a list of URLs — plain HTTP first, Chromium only where a page needs it.

* :func:`fetch` / :func:`afetch` — the stage's entry point (:mod:`~rag_news.fetch.adaptive`; a long pass
  uses :func:`fetch_batches`, batch by batch under one politeness state): served HTML over httpx,
  cleaned, rendered in Chromium when a check fails or the host needs it; robots.txt, per-host limits and
  Retry-After obeyed (:mod:`~rag_news.fetch.polite`); PDFs read (:mod:`~rag_news.fetch.pdf`).
* :mod:`~rag_news.fetch.render` — the Chromium renderer (``scrape``/``ascrape``/``ChromiumScraper``).
* :class:`FetchRequest`, :class:`Fetched`, :class:`FetchError`, :class:`FetchResult`, :func:`check_url`.
"""

from .adaptive import MemoryNotes, afetch, fetch, fetch_batches
from .base import FetchError, Fetched, FetchRequest, FetchResult, check_url, host_of

__all__ = ["fetch", "afetch", "fetch_batches", "FetchRequest", "Fetched", "FetchError", "FetchResult", "check_url", "host_of",
           "MemoryNotes"]
