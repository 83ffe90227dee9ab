"""Story assignment cost as the index grows: ms per new article and bytes written per pass, with 10k / 100k /
1M story entries already stored (FAISS backend: the SQLite story tables), the batch's window read once a day
(``Neighbours``, as the pipeline's ``assign_many`` does) side by side with a read for every article.

Synthetic (``_synthetic.py``): an article is one 180-word synthetic text, its lead vector a 768-dim unit
vector clustered by topic; stored articles' days spread over a year (a +-3-day window holds ~2% of the
index). The stored entries are written in bulk (their own stories, no matching: only the size of the tables
matters here). Then passes of 100 new articles, the day's news: 50 near-copies (10 words changed) of stored
articles from the last three days, 50 fresh articles of the last day, go through
:func:`rag_news.stories.assign` and a commit, alternately with one ``Neighbours`` for the pass ("batch") and
with none (each article reads its window: "per article"); the time and the bytes the process writes
(``wchar``) are measured per pass. The copies must all join their originals' stories (printed).

    python benchmarks/bench_stories_scale.py [--sizes 10000 100000] [--passes 3]
    python benchmarks/bench_stories_scale.py --sizes 1000000 --bulk   # entries past the first 10k by SQL
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import machine  # noqa: E402
from _synthetic import BLOCK, Corpus  # noqa: E402

from rag_news import stories  # noqa: E402
from rag_news.store.faiss_store import NewsIndex  # noqa: E402

DAY0 = date(2026, 1, 1)
LAST_DAY = (DAY0 + timedelta(days=364)).isoformat()  # the stored articles' latest day


class NoEmbeddings:
    model_name, dim = "synthetic-768", 768


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def record(i: int) -> dict:
    day = (DAY0 + timedelta(days=i % 365)).isoformat()
    return {"key": f"https://outlet{i % 50}.example/a/{i}", "url": f"https://outlet{i % 50}.example/a/{i}",
            "title": f"Name{i} report {i % 97}", "published": day, "first_seen": day, "site_name": f"Outlet {i % 50}"}


def fill(idx: NewsIndex, corpus: Corpus, n: int) -> float:
    t = time.perf_counter()
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        texts, vecs = corpus.texts(start, stop), corpus.vectors(start, stop)
        for j, (text, v) in enumerate(zip(texts, vecs)):
            e = stories.make_entry(record(start + j), text, v)
            e["story"] = stories.story_id(e["key"])
            idx.put_story(e["key"], e)
        idx.commit()
    return time.perf_counter() - t


BULK_STORIES = """
WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?),
d(i, url, day) AS (SELECT i, 'https://outlet' || (i % 50) || '.example/a/' || i,
                          date('2026-01-01', '+' || (i % 365) || ' days') FROM c)
INSERT INTO stories SELECT url, 's' || printf('%012x', i), day,
    json_object('url', url, 'outlet', 'Outlet ' || (i % 50), 'title', 'Name' || i || ' report ' || (i % 97),
                'published', day, 'first_seen', day, 'terms', json_array('name' || i)),
    randomblob(512), zeroblob(3072) FROM d"""


def bulk_fill(folder: Path, start: int, n: int) -> float:
    """Entries ``start``..``n`` written by SQL straight into the story tables (``--bulk``): their own stories,
    random MinHash signatures and 32 random band rows each (never a copy of anything), zero lead vectors
    (never a write-up candidate), the same size on disk and the same rows a window reads as real entries.
    The store's own writer fills 100k in ~8 min here; 1M that way would take hours."""
    import sqlite3

    t = time.perf_counter()
    conn = sqlite3.connect(folder / "index.db")
    first = conn.execute("SELECT max(rowid) FROM stories").fetchone()[0] or 0
    with conn:
        conn.execute(BULK_STORIES, (start, n))
        conn.execute("CREATE TEMP TABLE b AS SELECT random() AS band, s.key AS key FROM stories s, "
                     "(WITH RECURSIVE j(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM j WHERE x < 31) SELECT x FROM j) "
                     "WHERE s.rowid > ?", (first,))
        conn.execute("INSERT OR IGNORE INTO story_bands SELECT band, key FROM b ORDER BY band")
    conn.execute("DROP TABLE b")
    conn.close()
    return time.perf_counter() - t


def one_pass(idx: NewsIndex, p: int, rng, blocks: dict, batch: bool) -> dict:
    old_texts, old_vecs = blocks["old"]
    new_texts, new_vecs = blocks["new"]
    items = []
    for o in rng.choice(blocks["recent"], size=50, replace=False):  # copies of the last three days' articles
        words = old_texts[o].split()
        for k in rng.choice(len(words), size=10, replace=False):
            words[k] = "changed"
        items.append((record(int(o)) | {"key": f"https://wire.example/{p}/{o}", "url": f"https://wire.example/{p}/{o}",
                                        "site_name": "Wire"}, " ".join(words), old_vecs[o], int(o)))
    for j in range(p * 50, p * 50 + 50):  # fresh stories of the last day: texts of a block beyond the stored ones
        items.append((record(blocks["new_key"] + j) | {"published": LAST_DAY, "first_seen": LAST_DAY},
                      new_texts[j], new_vecs[j], None))
    neighbours = stories.Neighbours(idx) if batch else None
    w0, t0 = wchar(), time.perf_counter()
    joined = 0
    for rec, text, v, orig in items:
        e = stories.assign(idx, rec, text, v, neighbours=neighbours)
        joined += orig is not None and e["story"] == stories.story_id(record(orig)["key"])
    idx.commit()
    return {"s": time.perf_counter() - t0, "bytes": wchar() - w0, "copies_joined": joined}


def _line(label: str, runs: list[dict]) -> str:
    ms = [1000 * r["s"] / 100 for r in runs]
    return (f"{label}: {np.median(ms):.1f} ms per new article (passes: {', '.join(f'{m:.1f}' for m in ms)}); "
            f"{np.median([r['bytes'] for r in runs]) / 1e3:.0f} kB written per pass of 100; "
            f"copies joined {sum(r['copies_joined'] for r in runs)}/{50 * len(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--passes", type=int, default=3, help="passes of each kind (batch, per article), alternated")
    ap.add_argument("--bulk", action="store_true", help="entries beyond the first 10k written by SQL (see bulk_fill)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    for n in args.sizes:
        new_start = -(-n // BLOCK) * BLOCK
        corpus = Corpus(2 * BLOCK if args.bulk else new_start + BLOCK)
        new_start = BLOCK if args.bulk else new_start  # (bulk: the fresh texts are the second block's)
        with tempfile.TemporaryDirectory() as tmp:
            idx = NewsIndex.open(Path(tmp) / "index", NoEmbeddings(), create=True)
            filled = fill(idx, corpus, min(n, BLOCK) if args.bulk else n)
            if args.bulk and n > BLOCK:  # the first block (the copies' originals) by the store's writer
                idx.close()
                filled += bulk_fill(Path(tmp) / "index", BLOCK, n)
                idx = NewsIndex.open(Path(tmp) / "index", NoEmbeddings())
            rng = np.random.default_rng(5)
            first = min(n, BLOCK)
            recent = [i for i in range(first) if i % 365 >= 362]
            blocks = {"old": (corpus.texts(0, first), corpus.vectors(0, first)), "new_key": max(n, new_start),
                      "recent": recent,
                      "new": (corpus.texts(new_start, new_start + BLOCK), corpus.vectors(new_start, new_start + BLOCK))}
            runs = {True: [], False: []}
            for p in range(args.passes):
                for batch in (True, False):
                    runs[batch].append(one_pass(idx, 2 * p + batch, rng, blocks, batch))
            size = sum(f.stat().st_size for f in (Path(tmp) / "index").glob("index.db*"))
            idx.close()
        med = {b: np.median([r["s"] for r in runs[b]]) for b in runs}
        print(f"{n:>7} stored entries ({'bulk ' if args.bulk else ''}filled in {filled:.0f}s, index.db {size / 1e6:.0f} MB, "
              f"~{n // 365} a day):", flush=True)
        print("    " + _line("batch (one Neighbours a pass)", runs[True]), flush=True)
        print("    " + _line("per article (the window read for each)", runs[False]), flush=True)
        print(f"    per article / batch: {med[False] / med[True]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
