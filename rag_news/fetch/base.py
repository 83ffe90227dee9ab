"""What the fetch stage takes and gives: requests, fetched articles, per-URL errors, URL checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from langchain_core.documents import Document


@dataclass
class FetchRequest:
    """One URL to fetch, with the validators of the copy already indexed (for a conditional GET)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FetchError:
    """Why one URL produced no article (``reason`` is one line meant for people)."""

    url: str
    reason: str
    status: int | None = None
    attempts: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


ScrapeError = FetchError  # the name the Chromium renderer has always used


@dataclass
class Fetched:
    """One URL that answered: its cleaned article (None when the server said 304 Not Modified), the page's
    HTTP facts (``final_url``, ``status``, ``etag``, ``last_modified``, ``fetched_at``, ``content_type``),
    and how it was read: ``render`` is ``static`` (the served HTML), ``rendered`` (Chromium) or ``pdf``;
    ``render_reason`` says why."""

    url: str
    article: Document | None
    meta: dict = field(default_factory=dict)
    render: str = "static"
    render_reason: str = ""

    @property
    def not_modified(self) -> bool:
        return self.article is None and self.meta.get("status") == 304


@dataclass
class FetchResult:
    fetched: list[Fetched]
    errors: list[FetchError]
    skipped: list[FetchError] = field(default_factory=list)  # e.g. disallowed by robots.txt
    seconds: float = 0.0
    rendered: int = 0  # pages Chromium opened (samples included)


def check_url(url: str) -> str | None:
    """Return why ``url`` cannot be fetched, or ``None`` if it is an http(s) URL we can try."""
    if not isinstance(url, str) or not url.strip():
        return "empty URL"
    url = url.strip()
    if any(c.isspace() for c in url):
        return "malformed URL (contains whitespace)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        return f"malformed URL ({e})"
    scheme = parts.scheme.lower()
    if not scheme:
        return "malformed URL (no scheme; expected http:// or https://)"
    if scheme not in ("http", "https"):
        return f"unsupported URL scheme '{scheme}:' (only http and https pages are fetched)"
    if not parts.hostname:
        return "malformed URL (no host)"
    return None


def host_of(url: str) -> str:
    """``scheme://host[:port]``: the unit of politeness and of render decisions."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"
