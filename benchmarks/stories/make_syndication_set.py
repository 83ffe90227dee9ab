"""Build the dev syndication set (stories across outlets) from the 91 article-extraction dev pages.

Every page is one story, first run by its own site. Deterministic (``random.Random`` seeded per page):

* **copies** (2 for two pages in three, 1 for the rest): the article as another outlet runs it — that
  outlet's template furniture that survives extraction (dateline, byline, "Advertisement" and share lines,
  a related-links line, its footer), a rewritten headline, one of: last paragraph cut, a paragraph added
  (the outlet's own context line), a paragraph cut in the middle; an editor's note on some;
* **write-ups** (one page in four): a short independent-style report: a new headline, a sentence of its
  own, and 3 sentences of the story's lead reordered (a proxy for an outlet's own write-up: it shares the
  names and figures, not the text; no LLM rewrites here);
* **the same event from the dev pages' own outlets**: three pages report one announcement (``SAME_EVENT``),
  one story of three outlets;
* **hard negatives**: each page's nearest other page (TF-IDF cosine over the bodies) is listed as a pair of
  *different* stories on the same topic; every copy runs under an outlet's template that other stories of
  that outlet share too (shared furniture must not make a story).

Dates: the originals fall within 12 days (so most write-up windows hold many other stories), copies on the
same day or the next, write-ups within two days.

    python benchmarks/stories/make_syndication_set.py     # writes benchmarks/stories/syndication_dev.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
import math
import random
import re
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ground_truth, load_pages  # noqa: E402

OUT = Path(__file__).resolve().parent / "syndication_dev.jsonl.gz"
SEED = 24
OUTLETS = [  # (site name, host, header line, footer line)
    ("The Daily Ledger", "dailyledger.example", "Advertisement", "© The Daily Ledger. All rights reserved."),
    ("Metro Wire", "metrowire.example", "Share this article: Facebook Twitter Email",
     "Metro Wire is part of the Metro Media group. Subscribe for unlimited access."),
    ("Harbor Post", "harborpost.example", "Listen to this article", "Follow Harbor Post on social media."),
    ("Valley Times", "valleytimes.example", "ADVERTISEMENT", "Have a news tip? Email the Valley Times newsroom."),
    ("News Hub 24", "newshub24.example", "Read more: Top stories of the day", "Copyright News Hub 24."),
    ("Riverside Gazette", "riversidegazette.example", "Sign up for our newsletter",
     "The Riverside Gazette has been serving the community since 1901."),
]
NOTES = ["Editor's note: This story has been updated with additional information.",
         "Editor's note: An earlier version of this article misstated a detail; it has been corrected.",
         "Editor's note: This article was originally published by a partner outlet and is republished here."]
HEAD_PREFIX = ["", "UPDATE: ", "Breaking: ", "Analysis: ", "WATCH: "]
# Pages of the dev set that report the same event (found when the first sweep joined them, then read):
# Billboard, Rolling Stone and cleveland.com on the Doobie Brothers' 2020 reunion tour with Michael McDonald.
SAME_EVENT = {"ac1bfdd4c510": "9cb8224b660f", "35b158918c67": "9cb8224b660f"}
SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z“\"])")


def title_of(html: str, body: str) -> str:
    for pat in (r'<meta[^>]+property=["\']og:title["\'][^>]+content=["\']([^"\']+)', r"<title[^>]*>(.*?)</title>"):
        m = re.search(pat, html, re.I | re.S)
        if m and m.group(1).strip():
            return " ".join(m.group(1).split())[:200]
    return body.split("\n")[0][:120]


def rewrite_headline(title: str, rng: random.Random) -> str:
    t = re.split(r"\s+[|–—-]\s+", title)[0]  # drop the first outlet's " | Site" suffix
    words = t.split()
    if len(words) > 6 and rng.random() < 0.5:  # swap the two halves ("X, says Y" -> "Y: X")
        cut = len(words) // 2
        words = words[cut:] + [":"] + words[:cut]
    swaps = {"says": "said", "will": "to", "is": "is now", "new": "latest", "and": "&"}
    words = [swaps.get(w.lower(), w) if rng.random() < 0.5 else w for w in words]
    return (rng.choice(HEAD_PREFIX) + " ".join(words).replace(" :", ":")).strip()


def copy_of(page: dict, outlet: tuple, rng: random.Random) -> tuple[str, list[str]]:
    name, host, header, footer = outlet
    paras = [p for p in page["body"].split("\n\n") if p.strip()]
    ops = []
    edit = rng.choice(["cut_last", "add_paragraph", "cut_middle"])
    if edit == "cut_last" and len(paras) > 2:
        paras = paras[:-1]
        ops.append("cut last paragraph")
    elif edit == "cut_middle" and len(paras) > 4:
        del paras[rng.randrange(1, len(paras) - 1)]
        ops.append("cut a middle paragraph")
    else:
        paras.insert(rng.randrange(1, max(2, len(paras))),
                     f"{name} has contacted the people involved and will update this story as it develops.")
        ops.append("added paragraph")
    head = [f"By {name} staff", header]
    if rng.random() < 0.4:
        head.insert(0, rng.choice(NOTES))
        ops.append("editor's note")
    mid = len(paras) // 2
    paras = paras[:mid] + [f"Related: more {name} coverage"] + paras[mid:]
    ops.append(f"template {name}")
    return "\n\n".join(head + paras + [footer]), ops


def writeup_of(page: dict, outlet: tuple, rng: random.Random) -> str:
    sents = [s for s in SENT.split(" ".join(page["body"].split("\n\n")[:4])) if len(s.split()) > 4][:5]
    pick = sents[:3]
    rng.shuffle(pick)
    own = f"{outlet[0]} looked at what is known so far about the news reported this week."
    return "\n\n".join([own, " ".join(pick), f"Reporting by {outlet[0]} staff."])


def nearest_pairs(pages: list[dict]) -> list[tuple[str, str, float]]:
    """Each page's most similar other page (TF-IDF cosine): different stories on one topic."""
    docs = [Counter(re.findall(r"[a-z]{3,}", p["body"].lower())) for p in pages]
    df = Counter(w for d in docs for w in d)
    vecs = []
    for d in docs:
        v = {w: c * math.log(len(docs) / df[w]) for w, c in d.items()}
        n = math.sqrt(sum(x * x for x in v.values())) or 1.0
        vecs.append({w: x / n for w, x in v.items()})
    out = set()
    for i, a in enumerate(vecs):
        sims = [(sum(x * vecs[j].get(w, 0.0) for w, x in a.items()), j) for j in range(len(vecs)) if j != i]
        s, j = max(sims)
        out.add((min(pages[i]["id"], pages[j]["id"]), max(pages[i]["id"], pages[j]["id"]), round(s, 3)))
    return sorted((a, b, s) for a, b, s in out if SAME_EVENT.get(a, a) != SAME_EVENT.get(b, b))


def build() -> tuple[list[dict], list]:
    truth, html = ground_truth(), load_pages()
    pages = [{"id": pid[:12], "body": truth[pid]["articleBody"].strip(), "url": truth[pid]["url"],
              "title": title_of(html[pid], truth[pid]["articleBody"])} for pid in sorted(truth)]
    rows = []
    base = date(2026, 10, 1)
    for p in pages:
        rng = random.Random(f"{SEED}:{p['id']}")
        day = base + timedelta(days=rng.randrange(12))
        host = urlsplit(p["url"]).hostname or ""
        story = SAME_EVENT.get(p["id"], p["id"])
        rows.append({"id": p["id"], "story": story, "kind": "original", "ops": [], "url": p["url"],
                     "site_name": None, "outlet": host.removeprefix("www."), "title": p["title"],
                     "published": day.isoformat(), "text": p["body"]})
        for n, outlet in enumerate(rng.sample(OUTLETS, 2 if rng.random() < 2 / 3 else 1)):
            text, ops = copy_of(p, outlet, rng)
            rows.append({"id": f"{p['id']}-c{n}", "story": story, "kind": "copy", "ops": ops + ["new headline"],
                         "url": f"https://{outlet[1]}/news/{p['id']}-{n}", "site_name": outlet[0],
                         "outlet": outlet[0], "title": rewrite_headline(p["title"], rng),
                         "published": (day + timedelta(days=rng.randrange(2))).isoformat(), "text": text})
        if rng.random() < 0.25:
            outlet = rng.choice(OUTLETS)
            rows.append({"id": f"{p['id']}-w", "story": story, "kind": "writeup", "ops": ["own write-up"],
                         "url": f"https://{outlet[1]}/report/{p['id']}", "site_name": outlet[0],
                         "outlet": outlet[0], "title": rewrite_headline(p["title"], rng),
                         "published": (day + timedelta(days=rng.randrange(3))).isoformat(),
                         "text": writeup_of(p, outlet, rng)})
    return rows, nearest_pairs(pages)


def main() -> None:
    rows, negatives = build()
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode())
        # the hard negatives ride in the same file, one row marked as such
        f.write((json.dumps({"hard_negatives": negatives}) + "\n").encode())
    kinds = Counter(r["kind"] for r in rows)
    print(f"{OUT.name}: {len(rows)} articles ({dict(kinds)}), {len({r['story'] for r in rows})} stories, "
          f"{len(negatives)} hard-negative pairs, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
