"""URL lists and URL identity (one article = one normalised URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from .errors import RagNewsError

_TRACKING = {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "_gl",
             "ref_src", "cmpid", "ocid", "smid", "sr_share"}


def normalize_url(url: str) -> str:
    """Canonical form used as an article's key: no fragment, no tracking parameters, no trailing slash,
    lower-case scheme and host, default port dropped, remaining query parameters sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in _TRACKING]
    return urlunsplit((scheme, host, path, urlencode(sorted(query)), ""))


def read_url_list(items: Iterable[str], base_url: str | None = None) -> list[str]:
    """Expand CLI/API input: each item is a URL or a file of URLs (one a line, ``#`` comments).

    Relative entries in a file (``/2026/article.html``) are joined to ``base_url`` when given.
    Order is kept; exact duplicates are dropped.
    """
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        p = Path(item)
        if "://" not in item and not item.startswith(("javascript:", "data:", "mailto:")) and p.is_file():
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise RagNewsError(f"cannot read URL list {p}: {e}") from None
            for line in lines:
                line = line.split(" #", 1)[0].strip()  # trailing comment; a URL's own #fragment stays
                if not line or line.startswith("#"):
                    continue
                if base_url and "://" not in line and ":" not in line.split("/")[0]:
                    line = urljoin(base_url.rstrip("/") + "/", line.lstrip("/"))
                out.append(line)
        elif "://" not in item and ":" not in item and "/" in item and not item.startswith("/"):
            raise RagNewsError(f"URL list file not found: {item}")
        elif "://" not in item and ":" not in item and "/" not in item:  # "urls.txtt": a mistyped file name
            raise RagNewsError(f"no such file: {item} (and not a URL: URLs start with http:// or https://)")
        else:
            out.append(item)
    return list(dict.fromkeys(out))


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) -> ``(I, N)``."""
    from .errors import ConfigError

    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N such as 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def shard_of(url: str, n: int) -> int:
    """The shard (0..n-1) a URL belongs to: a stable hash (SHA-1) of its normalised form, the same in
    every process and on every machine."""
    import hashlib

    return int.from_bytes(hashlib.sha1(normalize_url(url).encode("utf-8")).digest()[:8], "big") % n
