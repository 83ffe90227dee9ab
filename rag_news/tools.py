"""The search and read operations that other agents (:mod:`rag_news.mcp`) and the reader itself
(:mod:`rag_news.research`) call as tools, over the same :class:`~rag_news.answer.NewsQA` the CLI and the
server use.

* :func:`search_news`: the hybrid retriever's passages for a query, optionally within ``since``..``until``
  and from one outlet (a host name or a site name, matched case-insensitively; the retriever has no outlet
  filter, so more candidates are asked for and the others dropped);
* :func:`passage_dict`: a passage as plain JSON (what both tool layers return);
* :func:`list_stories`: the period's stories across outlets (:mod:`rag_news.stories`);
* :func:`index_status`: what the index holds.

Bad arguments raise :class:`~rag_news.errors.ConfigError` with a sentence a model can act on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from langchain_core.documents import Document

from .answer import check_question
from .errors import ConfigError
from .retrieve import parse_since

MAX_K = 20
OUTLET_OVERSAMPLE = 5  # candidates asked for per passage kept when filtering by outlet


def outlet_of(doc: Document) -> str:
    """The outlet a passage comes from: its URL's host without ``www.``."""
    host = urlsplit(doc.metadata.get("url") or doc.metadata.get("source") or "").hostname or ""
    return host[4:] if host.startswith("www.") else host


def matches_outlet(doc: Document, outlet: str) -> bool:
    """``outlet`` (``"bbc.co.uk"``, ``"BBC"``, ``"Eastmoor Gazette"``) names the passage's host or site."""
    want = outlet.strip().lower()
    site = str(doc.metadata.get("site_name") or doc.metadata.get("sitename") or "").lower()
    host = outlet_of(doc)
    return bool(want) and (want in host or (bool(site) and want in site) or host.split(".")[0] == want)


def search_news(qa, query: str, k: int = 5, since: str | None = None, until: str | None = None,
                outlet: str | None = None) -> list[Document]:
    """The best ``k`` passages for ``query`` (``qa``: a :class:`~rag_news.answer.NewsQA`).

    ``since`` / ``until``: ISO dates bounding publication (inclusive). ``outlet``: keep passages from this
    outlet only (see :func:`matches_outlet`). Raises :class:`ConfigError` on an empty query, a bad date or
    ``k`` outside 1..20."""
    query = check_question(query)
    if not 1 <= int(k) <= MAX_K:
        raise ConfigError(f"k must be between 1 and {MAX_K}, got {k}")
    since, until = parse_since(since), parse_since(until, flag="until")
    if since and until and since > until:
        raise ConfigError(f"since ({since}) is after until ({until})")
    if not outlet:
        return qa.retriever.search(query, k=k, since=since, until=until)
    docs = qa.retriever.search(query, k=k * OUTLET_OVERSAMPLE, since=since, until=until)
    return [d for d in docs if matches_outlet(d, outlet)][:k]


def passage_dict(n: int, doc: Document, text_chars: int | None = None) -> dict[str, Any]:
    """A passage as JSON: ``n``, ``title``, ``url``, ``outlet``, ``published``, ``score``, ``text``
    (cut to ``text_chars`` when given)."""
    text = doc.page_content if text_chars is None else doc.page_content[:text_chars]
    return {"n": n, "title": doc.metadata.get("title") or "", "url": doc.metadata.get("url") or "",
            "outlet": outlet_of(doc), "published": doc.metadata.get("published"),
            "score": doc.metadata.get("score"), "text": text}


def list_stories(qa, since: str | None = None, until: str | None = None, limit: int | None = 20) -> dict[str, Any]:
    """The stories with an article published within ``since``..``until`` (ISO dates), most outlets first,
    at most ``limit`` (see :func:`rag_news.stories.list_stories`). Raises :class:`ConfigError` on a bad date."""
    from .stories import list_stories as listing

    since, until = parse_since(since), parse_since(until, flag="until")
    if since and until and since > until:
        raise ConfigError(f"since ({since}) is after until ({until})")
    if limit is not None and not 1 <= int(limit) <= 200:
        raise ConfigError(f"limit must be between 1 and 200, got {limit}")
    return listing(qa.index, since, until, limit)


def index_status(qa) -> dict[str, Any]:
    """What the index holds: articles, chunks, pass, the backend, the embedding model, its folder."""
    stats = qa.index.stats()
    return {"articles": stats.get("articles", 0), "chunks": stats.get("chunks", 0), "pass": stats.get("pass"),
            "backend": stats.get("backend", qa.settings.index_backend),
            "embedding_model": qa.settings.embedding_model, "index_dir": str(qa.settings.index_dir)}


class ToolCall:
    """One tool call made in research mode (streamed before the answer's tokens): ``name``
    (``search_news`` / ``open_article`` by the reader, ``ask_news`` for a sub-question of
    :mod:`rag_news.decompose`), its ``arguments``, and what came back — ``passages`` (the numbers the new
    passages got in the answer's prompt) or ``error`` (the message the reader was shown)."""

    def __init__(self, name: str, arguments: dict[str, Any], passages: list[int] | None = None,
                 error: str | None = None):
        self.name, self.arguments, self.passages, self.error = name, dict(arguments), list(passages or []), error

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "passages": self.passages, "error": self.error}

    def line(self) -> str:
        """The CLI's line for it: ``searching: "hospital wing beds"`` / ``opening: [3]``."""
        if self.name == "search_news":
            extra = "".join(f" {k}={v}" for k, v in self.arguments.items() if k != "query" and v)
            text = f'searching: "{self.arguments.get("query", "")}"{extra}'
        elif self.name == "ask_news":  # a sub-question of a two-figure question (rag_news.decompose)
            text = f'asking: "{self.arguments.get("question", "")}"'
        else:
            text = f"opening: [{self.arguments.get('n', '?')}]"
        return text + (f" (error: {self.error})" if self.error else "")

    def __repr__(self) -> str:
        return f"ToolCall({self.line()})"
