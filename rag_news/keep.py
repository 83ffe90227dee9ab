"""Nothing good lost: when a known article's page now shows something that is not the article.

A page that used to hold an article can, on a bad night, serve a consent wall, a soft 404 ("this page
could not be found", with status 200), a paywall teaser or an error shell instead. Cleaned, that is a
short text that shares little with the stored article; indexed, it would replace the article (and, being
identical on many URLs, make them "copies" of each other). :func:`unlike_the_article` says when a page's
new text should not replace the stored one: it is much shorter (fewer than ``max_ratio`` times the stored
words) *and* shares little with it (fewer than ``min_shared`` of its distinct content words occur in the
stored text). A real edit that shortens an article keeps its words; a real rewrite keeps its length.
Thresholds chosen on the article-extraction dev set (``benchmarks/bench_keep.py``; README "Keep").

:func:`front_page` says when a redirect landed on a site's front page (an article "removed" by a redirect
home is not replaced by the home page's text).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "the and for are but not you all any can had her was one our out has his how its may new now old see two way "
    "who did get let put say she too use that with have this will your from they been more when what were "
    "which their there about would these other into than then them some could also only after".split())


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def _content(ws: list[str]) -> set[str]:
    return {w for w in ws if len(w) >= 3 and w not in _STOP and not w.isdigit()}


def shared_share(new_text: str, old_text: str) -> float:
    """The share of ``new_text``'s distinct content words that occur in ``old_text`` (1.0 for no words)."""
    new, old = _content(words(new_text)), _content(words(old_text))
    return len(new & old) / len(new) if new else 1.0


def unlike_the_article(new_text: str, old_text: str, max_ratio: float = 0.67, min_shared: float = 0.5) -> str | None:
    """Why ``new_text`` should not replace the stored ``old_text`` (``"the page now shows 52 words unlike
    the article"``), or None when it is a real new version (see the module docstring)."""
    if not old_text:
        return None
    n_new, n_old = len(words(new_text)), len(words(old_text))
    if n_old == 0 or n_new >= max_ratio * n_old:
        return None
    if shared_share(new_text, old_text) >= min_shared:
        return None
    return f"the page now shows {n_new} words unlike the article"


def front_page(requested: str, final: str | None) -> bool:
    """``final`` (where ``requested`` redirected to) is its site's front page."""
    if not final or final == requested:
        return False
    a, b = urlsplit(requested), urlsplit(final)
    path = b.path.rstrip("/").lower()
    home = path in ("", "/index.html", "/index.htm", "/index.php", "/home", "/default.aspx")
    return home and not b.query and a.path.rstrip("/") != b.path.rstrip("/")
