"""Score story grouping (rag_news.stories) on the dev syndication set: pairwise precision / recall of
same-story pairs, recall by kind of pair (copy / write-up), hard-negative pairs wrongly joined.

The articles arrive in date order (then id), as an index would meet them. The chosen parameters run
through a real FAISS-backend index (story entries committed every 40 articles, so both the committed and
the in-pass lookups are used); ``--sweep`` also runs a grid of thresholds through an in-memory stand-in of
the store's five story methods (same assignment code) and prints each point.

    python benchmarks/stories/score.py [--sweep] [--model sentence-transformers/all-mpnet-base-v2]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import stories  # noqa: E402

SET = Path(__file__).resolve().parent / "syndication_dev.jsonl.gz"


def load(path: Path = SET) -> tuple[list[dict], list[tuple[str, str]]]:
    rows = [json.loads(x) for x in gzip.open(path, "rt", encoding="utf-8") if x.strip()]
    negatives = [tuple(p[:2]) for r in rows if "hard_negatives" in r for p in r["hard_negatives"]]
    arts = sorted((r for r in rows if "id" in r), key=lambda r: (r["published"], r["id"]))
    return arts, negatives


class MemoryStories:
    """The store's story methods in memory (for the sweep; the real backends are in rag_news.store)."""

    def __init__(self):
        self._stories, self.committed = {}, {}

    def put_story(self, key, entry):
        self._stories[key] = dict(entry, key=key)

    def commit(self):
        self.committed.update(self._stories)
        self._stories = {}

    def story_entries(self, keys):
        return {k: self.committed[k] for k in keys if k in self.committed}

    def story_keys_for_bands(self, bands):
        b = set(bands)
        return {k for k, e in self.committed.items() if b & set(e["bands"])}

    def stories_between(self, since=None, until=None):
        return [e for e in self.committed.values() if (not since or e["day"] >= since) and (not until or e["day"] <= until)]

    def story_members(self, ids):
        return [e for e in self.committed.values() if e["story"] in ids]


def record(a: dict) -> dict:
    return {"key": a["id"], "url": a["url"], "title": a["title"], "published": a["published"],
            "first_seen": a["published"], "site_name": a["site_name"]}


def group(store, arts: list[dict], leads: np.ndarray | None, params, every: int = 40) -> dict[str, str]:
    out = {}
    for i, a in enumerate(arts):
        e = stories.assign(store, record(a), a["text"], None if leads is None else leads[i], params)
        out[a["id"]] = e["story"]
        if (i + 1) % every == 0:
            store.commit()
    store.commit()
    return out


def score(arts: list[dict], got: dict[str, str], negatives) -> dict:
    truth = {a["id"]: a["story"] for a in arts}
    kind = {a["id"]: a["kind"] for a in arts}
    tp = fp = fn = 0
    by_kind: dict[str, list[int]] = {}
    for x, y in itertools.combinations(sorted(truth), 2):
        same, said = truth[x] == truth[y], got[x] == got[y]
        tp += same and said
        fp += said and not same
        fn += same and not said
        if same:
            k = "write-up" if "writeup" in (kind[x], kind[y]) else "copy"
            by_kind.setdefault(k, [0, 0])[0] += said
            by_kind[k][1] += 1
    neg = sum(got[a] == got[b] for a, b in negatives)
    return {"precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
            "pairs": tp + fn, "false_pairs": fp,
            "recall_by_kind": {k: round(s / n, 3) for k, (s, n) in sorted(by_kind.items())},
            "hard_negatives_joined": f"{neg}/{len(negatives)}"}


def line(p, s) -> str:
    return (f"copy>={p.copy_threshold:<5} lead>={p.lead_threshold:<5} shared>={p.min_shared}  P={s['precision']:.3f} "
            f"R={s['recall']:.3f}  copy R={s['recall_by_kind'].get('copy', 0):.3f} "
            f"write-up R={s['recall_by_kind'].get('write-up', 0):.3f}  false pairs {s['false_pairs']}, "
            f"hard negatives joined {s['hard_negatives_joined']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--model", default="sentence-transformers/all-mpnet-base-v2")
    args = ap.parse_args()
    from rag_news.embed import Embedder
    from rag_news.settings import Settings
    from rag_news.store.faiss_store import NewsIndex

    arts, negatives = load()
    settings = Settings.load(embedding_model=args.model, progress=False)
    emb = Embedder(settings).warm_up()
    t = time.perf_counter()
    texts = [stories.lead_text(a["title"], a["text"]) for a in arts]
    cache = Path(tempfile.gettempdir()) / f"rag-news-story-leads-{hashlib.sha1((args.model + repr(texts)).encode()).hexdigest()[:16]}.npy"
    if cache.exists():  # the lead vectors of this set and model, from an earlier run
        leads = np.load(cache)
    else:
        leads = stories.embed_leads(emb, texts)
        np.save(cache, leads)
    print(f"{len(arts)} articles, {len({a['story'] for a in arts})} stories, {len(negatives)} hard-negative pairs; "
          f"leads embedded with {args.model} in {time.perf_counter() - t:.1f}s")
    if args.sweep:
        for c, lt, ms in itertools.product((0.3, 0.45, 0.6, 0.75), (0.7, 0.75, 0.8, 0.85, 0.9, 2.0), (2, 3, 4)):
            p = stories.StoryParams(copy_threshold=c, lead_threshold=lt, min_shared=ms)
            print(line(p, score(arts, group(MemoryStories(), arts, leads, p), negatives)), flush=True)
    p = stories.StoryParams.from_settings(settings)
    with tempfile.TemporaryDirectory() as tmp:
        index = NewsIndex.open(Path(tmp) / "index", emb, create=True)
        t = time.perf_counter()
        got = group(index, arts, leads, p)
        ms = (time.perf_counter() - t) * 1000 / len(arts)
        index.close()
    s = score(arts, got, negatives)
    print(f"chosen (settings defaults), FAISS-backend index, {ms:.1f} ms/article:\n  {line(p, s)}")
    print(json.dumps(s))


if __name__ == "__main__":
    main()
