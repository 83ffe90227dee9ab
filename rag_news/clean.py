"""Clean: keep the article, drop the page furniture.

Entry point: :func:`clean` turns a scraped page ``Document`` (HTML) into an article ``Document`` (Markdown
text) with metadata, or ``None`` when the page holds no text. The article text is read from every source
the page offers (:func:`candidates`: trafilatura's precision, default and recall modes, the page's
schema.org ``articleBody`` markup, readability-lxml, and the page's other containers built like the one
precision mode read) and one is kept by rules that compare the candidates of that page only
(:func:`choose`, parameters :data:`RULES` chosen by cross-validation on the dev pages, see
benchmarks/bench_clean.py and RESULTS.md). html2text turns HTML into Markdown without hard wrapping. The
choice and its reason are kept in ``metadata["extraction"]`` / ``metadata["extraction_reason"]``; only when
no candidate has text is the whole page converted instead (``extraction == "fallback"``).
"""

from __future__ import annotations

import hashlib
import html as _html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import html2text
import lxml.html
import trafilatura
from langchain_core.documents import Document
from readability import Document as ReadabilityDocument

from .settings import Settings

_BLANKS = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")
_MIN_WORDS = 5
_MAX_CONTAINERS = 6  # more containers alike are a list of teasers, not one article
_MIN_ARTICLE_WORDS = 40  # a shorter candidate below this is not an article (dev: smallest article 42 words)


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


_DROP_IN_MARKUP = ("//script|//style|//noscript|//nav|//footer|//aside|//form|//iframe|//button|//figure|"
                   "//figcaption")
_MICRODATA_BODY = "translate(@itemprop, 'ABODY', 'abody')='articlebody'"


def _trafilatura(html: str, url: str | None, settings: Settings, mode: str) -> str:
    """trafilatura's main content in ``mode`` (``precision`` | ``default`` | ``recall``) as Markdown."""
    body = trafilatura.extract(
        html, url=url, output_format="html", include_comments=False, include_tables=True,
        favor_precision=mode == "precision", favor_recall=mode == "recall",
        include_links=settings.include_links, include_images=settings.include_images, with_metadata=False,
    )
    return _html_to_markdown(body, settings) if body else ""


def _readability(html: str, settings: Settings) -> str:
    """readability-lxml's main content (a second, independent extractor) as Markdown."""
    try:
        body = ReadabilityDocument(html).summary(html_partial=True)
    except Exception:  # readability raises bare Unparseable / lxml errors on odd pages
        return ""
    return _html_to_markdown(body, settings) if body else ""


def _json_ld_bodies(tree) -> list[str]:
    """Every schema.org ``articleBody`` string in the page's JSON-LD blocks."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "articleBody" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for script in tree.xpath("//script[translate(@type, 'LDJSON+', 'ldjson+')='application/ld+json']"):
        try:
            walk(json.loads(script.text_content() or "", strict=False))
        except ValueError:
            continue
    return out


def _markup(html: str, settings: Settings) -> str:
    """The page's own article markup: schema.org ``articleBody`` in JSON-LD, else in microdata (every
    ``itemprop=articleBody`` element, in page order, without scripts, figures and asides), as Markdown."""
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    bodies = [b for b in _json_ld_bodies(tree) if b.strip()]
    if bodies:
        best = max(bodies, key=len)
        if "<" in best and ">" in best:
            return _html_to_markdown(best, settings)
        best = _html.unescape(best).replace("\r\n", "\n")
        return _BLANKS.sub("\n\n", _TRAILING.sub("\n", best)).strip()
    outermost = f"//*[{_MICRODATA_BODY}][not(ancestor::*[{_MICRODATA_BODY}])]"
    if not tree.xpath(outermost):
        return ""
    for el in tree.xpath(_DROP_IN_MARKUP):
        el.drop_tree()
    parts = tree.xpath(outermost)
    html_parts = "".join(lxml.html.tostring(el, encoding="unicode") for el in parts)
    return _html_to_markdown(html_parts, settings)


_FURNITURE = "//script|//style|//noscript|//nav|//footer|//header|//aside|//form|//iframe"


def _link_density(el) -> float:
    words = len(el.text_content().split())
    linked = sum(len(a.text_content().split()) for a in el.iter("a"))
    return linked / words if words else 1.0


def _containers(html: str, base: str, settings: Settings) -> str:
    """``base`` plus the prose of the page's other containers built like the one ``base`` came from (same
    tag and class around the paragraphs: an article split in two by an advert, a quote or a promo box;
    extractors keep one of them). "" when there is no such container."""
    if len(base.split()) < _MIN_WORDS:
        return ""
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    for el in tree.xpath(_FURNITURE):
        el.drop_tree()
    groups: dict[tuple, list] = {}
    for p in tree.iter("p"):
        parent = p.getparent()
        if parent is not None and parent.get("class"):
            sig = (parent.tag, " ".join(sorted(parent.get("class").split())))
            if parent not in groups.setdefault(sig, []):
                groups[sig].append(parent)
    base_grams, added = _shingles(base), []
    for parents in groups.values():
        if not 2 <= len(parents) <= _MAX_CONTAINERS:
            continue
        texts = [(el, _html_to_markdown(lxml.html.tostring(el, encoding="unicode"), settings)) for el in parents]
        inside = [_inside(_shingles(t), base_grams) for _, t in texts]
        if max(inside) < 0.8:
            continue  # base did not come from containers like these
        added += [t for (el, t), share in zip(texts, inside)
                  if share < 0.2 and len(t.split()) >= 20 and _link_density(el) < 0.2]
    return "\n\n".join([base, *added]) if added else ""


def candidates(html: str, url: str | None = None, settings: Settings | None = None,
               rules: Rules | None = None) -> dict[str, str]:
    """The article text from every source the page offers, as Markdown: ``trafilatura-precision`` /
    ``-default`` / ``-recall`` (trafilatura's three modes), ``markup`` (schema.org articleBody, "" when the
    page has none), ``readability`` (readability-lxml) and ``containers`` (the precision text plus the
    page's other containers built like its own, "" when there are none).

    ``rules``: when given, the default and recall modes are run only when :func:`choose` could pick one of
    them under these rules (the precision text is a fragment, or another extractor found much more text);
    otherwise they are "" (absent). ``None``: every candidate is computed."""
    settings = settings or Settings()
    base = _trafilatura(html, url, settings, "precision")
    out = {"trafilatura-precision": base, "markup": _markup(html, settings),
           "readability": _readability(html, settings)}
    out["containers"] = _containers(html, base, settings)
    if rules is None or _modes_may_win(out, rules):
        for mode in ("default", "recall"):
            out[f"trafilatura-{mode}"] = _trafilatura(html, url, settings, mode)
    return out


def _modes_may_win(cands: dict[str, str], rules: Rules) -> bool:
    """Whether trafilatura's default or recall text could replace the precision text under ``rules``: only
    when the precision text is no article by itself, or extractors of other families found text beyond it
    (at least half of what the ``longer`` and ``support`` rules ask of a winning mode's extra)."""
    base = cands["trafilatura-precision"]
    n = len(base.split())
    if n < _MIN_ARTICLE_WORDS:
        return True
    grams = _shingles(base)
    beyond = set().union(*(_shingles(t) for k, t in cands.items() if k != "trafilatura-precision")) - grams
    return len(beyond) >= 0.5 * rules.support * (rules.longer - 1) * len(grams)


_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?…:;\"'”’»)]$")


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _inside(a: set, b: set) -> float:
    """The share of ``a``'s word 4-grams that are also in ``b`` (1.0 for an empty ``a``)."""
    return len(a & b) / len(a) if a else 1.0


def _repetitive(text: str) -> bool:
    """The same passage twice or more (a JSON-LD body holding the article twice, say)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i:i + 8]) for i in range(max(0, len(words) - 7))]
    return len(grams) > 40 and len(set(grams)) < 0.6 * len(grams)  # twice over: about 0.5


def _prose_share(text: str, other: set) -> float:
    """Of the lines of ``text`` mostly absent from ``other`` (its extra), the share of words in prose lines
    (>= 8 words, ending like a sentence) rather than in headlines, link lists, captions and credits."""
    total = prose = 0
    for line in text.splitlines():
        words = len(line.split())
        if not words or _inside(_shingles(line), other) >= 0.5:
            continue
        total += words
        if words >= 8 and _SENTENCE_END.search(line.rstrip(" *_")):
            prose += words
    return prose / total if total else 1.0


@dataclass(frozen=True)
class Rules:
    """When another candidate replaces trafilatura's precision mode. Chosen by 5-fold cross-validation on
    the 91 dev pages (benchmarks/bench_clean.py); every rule compares candidates of the same page only.

    ``longer``: a candidate at least this many times the base text's length, that contains the base
    (``contains`` of its 4-grams), whose extra text is mostly prose (``prose``) and confirmed (``support``
    of its 4-grams) by an extractor of another family (or, for the page's own markup, by the page's
    visible text; no confirmation when the base is under 40 words), replaces it (precision kept a
    fragment; the article is split across containers). ``shorter``: a markup or
    readability text that the base contains, the base at least ``shorter`` times its length, and the
    base's extra mostly not prose (share of prose words below ``list_prose``: lists, headlines), replaces it.
    """

    longer: float = 1.5
    contains: float = 0.8
    support: float = 0.5
    shorter: float = 1.3
    prose: float = 0.7
    list_prose: float = 0.5


RULES = Rules()
_ORDER = ("trafilatura-precision", "trafilatura-default", "trafilatura-recall", "readability", "markup",
          "containers")
_FAMILY = {"trafilatura-precision": "trafilatura", "trafilatura-default": "trafilatura",
           "trafilatura-recall": "trafilatura", "markup": "markup", "readability": "readability",
           "containers": "containers"}


def _longer_choice(base: str, cands: dict[str, str], grams: dict[str, set], visible, rules: Rules):
    """The candidate confirmed to hold the most of the article beyond ``base`` (or ``None``), with why. A
    ``base`` under 40 words is no article by itself: then any longer candidate containing it qualifies."""
    best, n_base = None, len(cands[base].split())
    fragment = n_base < _MIN_ARTICLE_WORDS
    for name, text in cands.items():
        n = len(text.split())
        if name == base or n < rules.longer * n_base or _inside(grams[base], grams[name]) < rules.contains:
            continue
        if _repetitive(text) or not (fragment or _prose_share(text, grams[base]) >= rules.prose):
            continue
        extra = grams[name] - grams[base]
        others = set().union(*(g for o, g in grams.items() if _FAMILY[o] != _FAMILY[name]))
        if name == "markup":
            others |= visible()
        sup = 1.0 if name == "containers" else _inside(extra, others)  # containers: the page's structure
        confirmed = sup * len(extra)  # the most confirmed text wins (a teaser in the markup does not)
        if fragment:  # any other candidate confirms (the other trafilatura modes too)
            confirmed = len(extra & set().union(*(g for o, g in grams.items() if o not in (name, base))))
        if (sup >= rules.support or fragment) and (best is None or confirmed > best[0]):
            best = (confirmed, name, sup, n)
    if best is None:
        return None
    _, name, sup, n = best
    how = ("sits in containers built like the one it came from" if name == "containers"
           else f"is {sup:.0%} confirmed by another source")
    what = f"{base} is a fragment ({n_base} words)" if fragment else f"its extra text is prose and {how}"
    return name, f"{name} has {n / n_base:.1f}x the words of {base}, contains it, and " + what


def _shorter_choice(base: str, cands: dict[str, str], grams: dict[str, set], rules: Rules):
    """A markup / readability text that ``base`` contains, where ``base`` adds mostly non-prose."""
    n_base = len(cands[base].split())
    for name in ("markup", "readability"):
        text = cands.get(name, "")
        n = len(text.split())
        if name == base or n < _MIN_ARTICLE_WORDS or n_base < rules.shorter * n:
            continue
        if _inside(grams[name], grams[base]) < rules.contains:
            continue
        share = _prose_share(cands[base], grams[name])
        if share < rules.list_prose:
            return name, (f"{base} has {n_base / n:.1f}x the words of {name}, contains it, and only "
                          f"{share:.0%} of its extra is prose (lists, headlines, credits)")
    return None


def choose(cands: dict[str, str], visible=lambda: set(), rules: Rules = RULES,
           grams: dict[str, set] | None = None) -> tuple[str, str]:
    """Pick one of ``cands`` (name -> Markdown, see :func:`candidates`) by rules that compare the
    candidates of this page only. ``visible``: returns the 4-grams of the page's visible text (called
    only when needed); ``grams``: the candidates' 4-grams if already computed. Returns ``(name, reason)``;
    name ``""`` when no candidate has text."""
    cands = {k: v for k, v in cands.items() if len(v.split()) >= _MIN_WORDS}
    base = next((k for k in _ORDER if k in cands), "")
    if not base:
        return "", "no candidate has text"
    grams = {k: grams[k] if grams and k in grams else _shingles(v) for k, v in cands.items()}
    why = "trafilatura's precision mode" if base == _ORDER[0] else f"{base}: the first candidate with text"
    picked = _longer_choice(base, cands, grams, visible, rules) or _shorter_choice(base, cands, grams, rules)
    if picked is None:
        agree = [k for k in cands if k != base and _inside(grams[base], grams[k]) >= rules.contains]
        return base, f"{why}; no candidate is confirmed to be better (agreeing: {', '.join(agree) or 'none'})"
    return picked


def _visible_grams(html: str, settings: Settings):
    """A thunk: the 4-grams of the page's visible text (computed once, only if a rule asks)."""
    cache: list[set] = []

    def grams() -> set:
        if not cache:
            cache.append(_shingles(_html_to_markdown(_strip_furniture(html), settings)))
        return cache[0]
    return grams


def extract(html: str, url: str | None = None, settings: Settings | None = None,
            rules: Rules = RULES) -> tuple[str, dict[str, Any]]:
    """Return ``(markdown_text, metadata)`` for one HTML page. ``markdown_text`` may be empty.

    ``metadata["extraction"]`` names the candidate kept (see :func:`candidates`; ``fallback``: the whole
    page, when no candidate has text) and ``metadata["extraction_reason"]`` says why (:func:`choose`)."""
    settings = settings or Settings()
    cands = candidates(html, url, settings, rules)
    method, reason = choose(cands, _visible_grams(html, settings), rules)
    text = cands.get(method, "")
    if len(text.split()) < _MIN_WORDS:
        text = _html_to_markdown(_strip_furniture(html), settings)
        method, reason = "fallback", "no extractor found article text: the whole page without its furniture"
    meta = trafilatura.extract_metadata(html, default_url=url)
    info: dict[str, Any] = {
        "title": None, "author": None, "published": None, "site_name": None, "canonical_url": None,
        "language": _page_language(html), "description": None, "extraction": method,
        "extraction_reason": reason,
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
