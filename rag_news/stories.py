"""Stories across outlets: one event told by many outlets is one story.

Entry point: :func:`assign` (one article -> its story, staged in the store with the pass; the pipeline calls
:func:`assign_many` for a pass's new and changed articles). An article joins a story when it is

* a **near-copy** of one of the story's articles (a wire story under another template, headline, a paragraph
  cut or added, an editor's note): MinHash of word 2-grams (datasketch, ``NUM_PERM`` permutations), looked
  up through LSH bands kept in the store (one indexed row per band, so assignment reads a few rows and a pass
  costs what its changed articles cost, never the corpus), confirmed by the signatures' estimated Jaccard
  ``>= copy_threshold``; or
* an **independent write-up** of the same event: the cosine of title+lead embeddings ``>= lead_threshold``
  with an article dated within ``window_days``, confirmed by at least ``min_shared`` names / figures both
  leads name.

Otherwise it starts a story of its own. An article removed leaves its story (the others stay);
:func:`restory` re-forms every story from the stored articles (``python -m rag_news.store restory``).
:func:`list_stories` is ``python -m rag_news.stories`` and ``GET /stories``. Thresholds were chosen on the
dev syndication set (benchmarks/stories, RESULTS.md).

Outlet: the site name the cleaner found (``og:site_name`` and the like), else the URL's host.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence
from urllib.parse import urlsplit

import numpy as np

NUM_PERM = 128
BANDS, ROWS = 32, 4  # LSH: P(candidate) = 1-(1-J^4)^32: 0.86 at J=0.3, 0.99 at J=0.45
LEAD_CHARS = 600
_PERMUTATIONS = None
_WORD = re.compile(r"\w+", re.UNICODE)
_NAME = re.compile(r"\b[A-Z][\w'’-]*[a-z][\w'’-]*(?:[ ]+[A-Z][\w'’-]*[a-z][\w'’-]*)*|\b[A-Z]{2,}\b")
_FIGURE = re.compile(r"\d[\d,.]*\d|\d")
_COMMON = frozenset(
    "A An And As At But By For From He Her His How I In It Its Mr Mrs Ms Dr New No Of On Or She So That The "
    "Their There These They This Those To We What When Where Which Who Why With You Monday Tuesday Wednesday "
    "Thursday Friday Saturday Sunday January February March April May June July August September October "
    "November December".split())


@dataclass
class StoryParams:
    """The grouping's thresholds (``Settings.story_*``)."""

    copy_threshold: float = 0.45
    lead_threshold: float = 0.75
    min_shared: int = 3
    window_days: float = 3.0

    @classmethod
    def from_settings(cls, settings) -> "StoryParams":
        return cls(copy_threshold=settings.story_copy_threshold, lead_threshold=settings.story_lead_threshold,
                   min_shared=settings.story_min_shared, window_days=settings.story_window_days)


# ------------------------------------------------------------------------------------------- features
def outlet(record: dict) -> str:
    """The site name the cleaner found, else the URL's host (without ``www.``)."""
    name = (record.get("site_name") or "").strip()
    if name:
        return name
    host = urlsplit(record.get("url") or record.get("key") or "").hostname or ""
    return host[4:] if host.startswith("www.") else host


def signature(text: str) -> np.ndarray:
    """MinHash values (uint32, ``NUM_PERM``) of the text's lower-cased word 2-grams."""
    from datasketch import MinHash

    words = _WORD.findall(text.lower())
    grams = {f"{a} {b}".encode() for a, b in zip(words, words[1:])} or {w.encode() for w in words}
    global _PERMUTATIONS
    if _PERMUTATIONS is None:  # drawing the permutations costs more than hashing an article: once
        _PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1).permutations
    m = MinHash(num_perm=NUM_PERM, seed=1, permutations=_PERMUTATIONS, scheme="affine32")
    m.update_batch(list(grams))
    return m.hashvalues.astype(np.uint32)


def bands(sig: Sequence[int]) -> list[str]:
    """The LSH band hashes of a signature (``BANDS`` bands of ``ROWS`` values)."""
    sig = np.asarray(sig, dtype=np.uint32)
    return [hashlib.blake2b(bytes([b]) + sig[b * ROWS:(b + 1) * ROWS].tobytes(), digest_size=8).hexdigest()
            for b in range(BANDS)]


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """Jaccard similarity estimated from two MinHash signatures."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.mean(a == b)) if len(a) and len(a) == len(b) else 0.0


def lead_text(title: str | None, text: str) -> str:
    """What the write-up test embeds: the headline and the article's opening."""
    return f"{title or ''}\n{text[:LEAD_CHARS]}".strip()


def terms(title: str | None, text: str) -> list[str]:
    """Names and figures of the headline and the lead (lower-cased), the write-up test's confirmation."""
    lead = lead_text(title, text)
    names = {m.group().lower() for m in _NAME.finditer(lead) if m.group() not in _COMMON}
    figures = {m.group().replace(",", "").rstrip(".") for m in _FIGURE.finditer(lead)}
    figures = {f for f in figures if len(f) > 1 and not (len(f) == 4 and f[:2] in ("19", "20"))}  # years aside
    return sorted(names | figures)


def _day(record: dict) -> str | None:
    for field in ("published", "first_seen"):
        value = str(record.get(field) or "")[:10]
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            continue
    return None


def story_id(key: str) -> str:
    return "s" + hashlib.sha1(key.encode()).hexdigest()[:12]


def make_entry(record: dict, text: str, lead: np.ndarray | None) -> dict:
    """An article's story entry, story not yet decided."""
    sig = signature(f"{text}")
    return {"key": record["key"], "url": record.get("url") or record["key"], "outlet": outlet(record),
            "title": record.get("title") or "", "published": record.get("published"),
            "first_seen": record.get("first_seen"), "day": _day(record), "terms": terms(record.get("title"), text),
            "sig": sig.tolist(), "bands": bands(sig), "lead": None if lead is None else np.asarray(lead, np.float32)}


# ------------------------------------------------------------------------------------------- assigning
def _staged(store) -> dict[str, dict]:
    return store.staged_stories()


def _copy_match(store, entry: dict, params: StoryParams, committed: bool) -> tuple[float, dict] | None:
    mine = set(entry["bands"])
    keys = store.story_keys_for_bands(entry["bands"]) if committed else set()
    found = store.story_entries(sorted(keys - {entry["key"]})) if keys else {}
    found.update({k: e for k, e in _staged(store).items() if k != entry["key"] and mine & set(e.get("bands", ()))})
    scored = [(jaccard(entry["sig"], e["sig"]), e) for e in found.values()]
    best = max(scored, key=lambda p: (p[0], p[1]["key"]), default=None)
    return best if best and best[0] >= params.copy_threshold else None


class Neighbours:
    """Committed entries with a lead vector, read from the store one day at a time and kept for a batch of
    assignments (a pass's articles share their days: each day is read once per batch, not once per article;
    at most ``max_days`` days are kept, the least recently used dropped). Valid until the next commit."""

    def __init__(self, store, max_days: int = 16):
        self.store, self.max_days, self.reads = store, max_days, 0
        self._days: dict[str, tuple[list[dict], np.ndarray | None]] = {}

    def day(self, day: str) -> tuple[list[dict], np.ndarray | None]:
        """The day's entries with a lead, and their leads stacked (None when there are none)."""
        if day in self._days:
            self._days[day] = self._days.pop(day)  # most recently used last
            return self._days[day]
        self.reads += 1
        entries = [{f: e.get(f) for f in ("key", "story", "day", "terms", "lead")}  # what matching reads
                   for e in self.store.stories_between(day, day) if e.get("lead") is not None]
        leads = np.stack([np.asarray(e["lead"], np.float32) for e in entries]) if entries else None
        self._days[day] = (entries, leads)
        while len(self._days) > self.max_days:
            self._days.pop(next(iter(self._days)))
        return self._days[day]


def _days(entry: dict, params: StoryParams) -> list[str]:
    d, span = date.fromisoformat(entry["day"]), int(params.window_days)
    return [(d + timedelta(days=i)).isoformat() for i in range(-span, span + 1)]


def _near(store, entry: dict, params: StoryParams, neighbours: Neighbours | None) -> list[tuple[float, dict]]:
    """``(cosine, entry)`` of the articles dated within the window whose lead is at least ``lead_threshold``
    from this one's: committed ones through ``neighbours`` (None: none), staged ones of the pass (they win
    over their committed versions)."""
    days, lead = _days(entry, params), np.asarray(entry["lead"], np.float32)
    staged = _staged(store)
    found = {}
    for day in days if neighbours is not None else []:
        entries, leads = neighbours.day(day)
        if leads is None:
            continue
        for i in np.flatnonzero(leads @ lead >= params.lead_threshold):
            if entries[i]["key"] not in staged:
                found[entries[i]["key"]] = entries[i]
    found.update({k: e for k, e in staged.items()
                  if e.get("day") and days[0] <= e["day"] <= days[-1] and e.get("lead") is not None})
    found.pop(entry["key"], None)
    scored = [(float(np.asarray(e["lead"], np.float32) @ lead), e) for e in found.values()]
    return sorted([p for p in scored if p[0] >= params.lead_threshold], key=lambda p: (-p[0], p[1]["key"]))


def _writeup_match(store, entry: dict, params: StoryParams, neighbours: Neighbours | None) -> tuple[float, dict] | None:
    if entry["lead"] is None or not entry["day"] or params.lead_threshold > 1:
        return None
    mine = set(entry["terms"])
    return next(((c, e) for c, e in _near(store, entry, params, neighbours)
                 if len(mine & set(e.get("terms", ()))) >= params.min_shared), None)


def assign(store, record: dict, text: str, lead: np.ndarray | None = None, params: StoryParams | None = None,
           *, committed: bool = True, neighbours: Neighbours | None = None) -> dict:
    """Decide the story of one article and stage its entry in ``store`` (written with the pass).

    ``record``: the article's record (``key``, ``url``, ``title``, ``published``, ``first_seen``,
    ``site_name``); ``text``: its cleaned text; ``lead``: the unit embedding of :func:`lead_text` (None: only
    near-copies are found); ``committed``: also look at committed entries (False while re-forming every story);
    ``neighbours``: the batch's :class:`Neighbours` (default: a fresh one, read for this article alone).
    Returns the entry, with ``story`` and ``joined`` (``"copy"``, ``"write-up"`` or None for a new story)."""
    params = params or StoryParams()
    entry = make_entry(record, text, lead)
    match = _copy_match(store, entry, params, committed)
    how = "copy" if match else None
    if match is None:
        match = _writeup_match(store, entry, params, (neighbours or Neighbours(store)) if committed else None)
        how = "write-up" if match else None
    if match is not None:
        entry["story"] = match[1]["story"]
    else:
        old = store.story_entries([entry["key"]]).get(entry["key"]) if committed else None
        entry["story"] = old["story"] if old else story_id(entry["key"])
    store.put_story(entry["key"], entry)
    return {**entry, "joined": how}


def embed_leads(embedder, texts: list[str]) -> np.ndarray:
    """Unit vectors of lead texts with a rag-news embedder (``embed_array``) or any LangChain embeddings."""
    if not texts:
        return np.zeros((0, 1), np.float32)
    if hasattr(embedder, "embed_array"):
        v = np.asarray(embedder.embed_array(texts), np.float32)
    else:
        v = np.asarray(embedder.embed_documents(texts), np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def assign_many(store, articles: Iterable[tuple[dict, str]], embedder=None, params: StoryParams | None = None,
                *, committed: bool = True) -> list[dict]:
    """:func:`assign` for ``(record, text)`` pairs in order, their leads embedded in one batch with
    ``embedder`` (None: near-copies only), the committed entries of their days read once for the batch."""
    articles = list(articles)
    leads = embed_leads(embedder, [lead_text(r.get("title"), t) for r, t in articles]) if embedder else None
    neighbours = Neighbours(store)
    return [assign(store, r, t, None if leads is None else leads[i], params, committed=committed,
                   neighbours=neighbours) for i, (r, t) in enumerate(articles)]


def restory(store, params: StoryParams | None = None, embedder=None) -> dict:
    """Re-form every story from the stored articles (oldest first) and commit: for new thresholds. Lead
    vectors already stored are reused; missing ones are embedded with ``embedder`` (default: the store's)."""
    params = params or StoryParams()
    recs = sorted(store.iter_articles(), key=lambda r: (_day(r) or "9999", str(r.get("first_seen") or ""), r["key"]))
    old = store.story_entries([r["key"] for r in recs])
    missing = [r for r in recs if old.get(r["key"], {}).get("lead") is None]
    texts = {r["key"]: store.article_text(r["key"]) or "" for r in recs}
    emb = embedder if embedder is not None else getattr(store, "embeddings", None)
    fresh = embed_leads(emb, [lead_text(r.get("title"), texts[r["key"]]) for r in missing]) if emb and missing else []
    leads = {r["key"]: fresh[i] for i, r in enumerate(missing)} if len(fresh) else {}
    store.reset_stories()
    joined = {"copy": 0, "write-up": 0, None: 0}
    for r in recs:
        lead = old[r["key"]]["lead"] if old.get(r["key"], {}).get("lead") is not None else leads.get(r["key"])
        joined[assign(store, r, texts[r["key"]], lead, params, committed=False)["joined"]] += 1
    store.commit()
    return {"articles": len(recs), "copies": joined["copy"], "write_ups": joined["write-up"],
            "stories": joined[None]}


# ------------------------------------------------------------------------------------------- reading
def _article(e: dict) -> dict:
    return {"url": e.get("url"), "outlet": e.get("outlet"), "title": e.get("title"), "published": e.get("published")}


def _story(sid: str, members: list[dict]) -> dict:
    members = sorted(members, key=lambda e: (str(e.get("published") or e.get("first_seen") or ""), e["key"]))
    seen = [str(e.get("first_seen") or e.get("published") or "") for e in members]
    dated = [str(e.get("published") or e.get("first_seen") or "") for e in members]
    return {"id": sid, "title": members[0].get("title") or "", "outlets": len({e.get("outlet") for e in members}),
            "first_seen": min(seen) or None, "last_updated": max(dated) or None,
            "articles": [_article(e) for e in members]}


def list_stories(store, since: str | None = None, until: str | None = None, limit: int | None = None) -> dict:
    """The stories with an article dated within ``since``..``until`` (ISO dates), most outlets first:
    ``{"stories": [{"id", "title", "outlets", "first_seen", "last_updated", "articles": [...]}]}``."""
    by_story: dict[str, list[dict]] = {}
    for e in store.stories_between(since, until):
        by_story.setdefault(e["story"], []).append(e)
    stories = [_story(sid, m) for sid, m in by_story.items()]
    stories.sort(key=lambda s: (-s["outlets"], -len(s["articles"]), s["last_updated"] or "", s["id"]))
    return {"stories": stories[:limit] if limit else stories}


def stories_of(store, keys: list[str]) -> dict[str, dict]:
    """For articles by key: ``{key: {"story", "outlets": [names]}}`` (articles without a story are left out)."""
    if not hasattr(store, "story_entries"):
        return {}
    own = store.story_entries(list(keys))
    members = store.story_members(sorted({e["story"] for e in own.values()})) if own else []
    outlets: dict[str, list[str]] = {}
    for e in sorted(members, key=lambda e: str(e.get("published") or "")):
        names = outlets.setdefault(e["story"], [])
        if e.get("outlet") not in names:
            names.append(e.get("outlet"))
    return {k: {"story": e["story"], "outlets": outlets.get(e["story"], [e.get("outlet")])} for k, e in own.items()}


# ------------------------------------------------------------------------------------------- CLI
PROG = "python -m rag_news.stories"


def _print(listing: dict) -> None:
    for s in listing["stories"]:
        span = f"{(s['first_seen'] or '?')[:10]} .. {(s['last_updated'] or '?')[:10]}"
        print(f"{s['outlets']:>3} outlet(s)  {s['title']}  [{span}]")
        for a in s["articles"]:
            print(f"      {a['outlet'] or '?'}: {a['title']}  {a['url']}")


def main(argv: list[str] | None = None) -> int:
    """``python -m rag_news.stories [--since DATE] [--until DATE] [--limit N] [--json]``: the period's stories
    ranked by number of outlets, each with its articles."""
    import argparse
    import json

    from .cli import add_settings_flags, settings_from_args
    from .pipeline import open_index
    from .retrieve import parse_since

    ap = argparse.ArgumentParser(prog=PROG, description=main.__doc__.splitlines()[0])
    ap.add_argument("--since", help="stories with an article dated on or after this date (YYYY-MM-DD)")
    ap.add_argument("--until", help="... on or before this date (YYYY-MM-DD)")
    ap.add_argument("--limit", type=int, help="at most this many stories")
    ap.add_argument("--json", action="store_true", help='JSON: {"stories": [{"id", "title", "outlets", ...}]}')
    add_settings_flags(ap)
    args = ap.parse_args(argv)
    settings = settings_from_args(args)
    store = open_index(settings.index_dir, settings)
    try:
        listing = list_stories(store, parse_since(args.since), parse_since(args.until, "--until"), args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(listing, ensure_ascii=False, indent=2))
    else:
        _print(listing)
    return 0


if __name__ == "__main__":
    from .cli import run

    run(main, PROG)
