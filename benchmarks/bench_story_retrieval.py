"""Retrieval with copies indexed beside the originals: distinct stories among the k passages, and whether
the question's story is found, with one passage per story (the default) vs. no story cap (before).

The dev syndication set (benchmarks/stories: the 91 dev pages, their copies on other outlets and short
write-ups) is chunked and embedded (all-mpnet-base-v2, the default model) into a FAISS-backend index through
the public store API, every article assigned a story (rag_news.stories, default thresholds); then the 36
answerable news-qa dev questions are retrieved (hybrid dense + BM25, k = 4, at most 2 passages an article).
hit@1 / hit@k: the first passage / any passage belongs to the question's page's story; answer in the
passages: an accepted answer occurs (as a phrase) in one of the k passages shown. No LLM.

    python benchmarks/bench_story_retrieval.py [--k 4] [--model sentence-transformers/all-MiniLM-L6-v2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "stories"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from _common import NEWS_QA, machine  # noqa: E402
from score import load, record  # noqa: E402  (benchmarks/stories/score.py)

from langchain_core.documents import Document  # noqa: E402

from rag_news import stories  # noqa: E402
from rag_news.chunk import chunk  # noqa: E402
from rag_news.embed import Embedder  # noqa: E402
from rag_news.eval import has_phrase  # noqa: E402
from rag_news.retrieve import NewsRetriever  # noqa: E402
from rag_news.settings import Settings  # noqa: E402
from rag_news.store.faiss_store import NewsIndex  # noqa: E402


def build(folder: Path, settings: Settings, emb: Embedder) -> tuple[NewsIndex, float]:
    arts, _ = load()
    t = time.perf_counter()
    idx = NewsIndex.open(folder, emb, create=True)
    docs = [Document(page_content=a["text"], metadata={"key": a["id"], "url": a["url"], "title": a["title"],
                                                       "published": a["published"]}) for a in arts]
    chunks = chunk(docs, emb.tokenizer, settings, max_seq_length=emb.max_seq_length)
    vectors = emb.embed_array([c.page_content for c in chunks])
    rows: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        rows.setdefault(c.metadata["key"], []).append(i)
    for a in arts:
        r = rows.get(a["id"], [])
        idx.upsert({**record(a), "text": a["text"], "content_hash": a["id"]}, [chunks[i] for i in r], vectors[r])
    stories.assign_many(idx, [(record(a), a["text"]) for a in arts], emb)
    idx.commit()
    return idx, time.perf_counter() - t


def run(idx: NewsIndex, questions: list[dict], story_of: dict[str, str], k: int, cap: int, per_article: int = 2) -> dict:
    r = NewsRetriever(index=idx, k=k, read_dates=False, max_per_story=cap, max_per_article=per_article)
    distinct, h1, hk, held = [], 0, 0, 0
    for q in questions:
        docs = r.search(q["question"], k=k)
        got = [story_of[d.metadata["key"]] for d in docs]
        want = story_of[q["page_id"][:12]]
        distinct.append(len(set(got)))
        h1 += bool(got) and got[0] == want
        hk += want in got
        held += any(has_phrase(d.page_content, a) for d in docs for a in q["answers"])
    n = len(questions)
    return {"distinct_stories": float(np.mean(distinct)), "hit@1": h1 / n, f"hit@{k}": hk / n, "answer_held": held / n}


VARIANTS = [("no story cap (before stories)", 0, 2), ("1 passage a story (the first default)", 1, 1),
            ("1 article a story (default)", 1, 2)]  # (name, max_per_story, max_per_article)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--model", help="embedding model (default: the settings', all-mpnet-base-v2)")
    args = ap.parse_args()
    settings = Settings.load(progress=False, **({"embedding_model": args.model} if args.model else {}))
    emb = Embedder(settings).warm_up()
    questions = [json.loads(x) for x in (NEWS_QA / "questions.jsonl").read_text().splitlines() if x.strip()]
    questions = [q for q in questions if q.get("page_id")]
    arts, _ = load()
    truth = {a["id"]: a["story"] for a in arts}
    with tempfile.TemporaryDirectory() as tmp:
        idx, took = build(Path(tmp) / "index", settings, emb)
        found = {e["key"]: e["story"] for e in idx.stories_between()}
        print(f"machine: {machine()}; {len(arts)} articles ({len(set(truth.values()))} true stories, "
              f"{len(set(found.values()))} found) indexed with {settings.embedding_model} in {took:.0f}s; "
              f"{len(questions)} questions, k={args.k}")
        for name, cap, per_article in VARIANTS:
            got = run(idx, questions, found, args.k, cap, per_article)
            # scored against the true stories (hits) and the found ones (the cap's unit)
            got_true = run(idx, questions, truth, args.k, cap, per_article)
            print(f"  {name:<36} distinct true stories among {args.k}: {got_true['distinct_stories']:.2f}  "
                  f"hit@1 {got_true['hit@1']:.3f}  hit@{args.k} {got_true[f'hit@{args.k}']:.3f}  "
                  f"answer in the passages {got_true['answer_held']:.3f}  (found stories: {got['distinct_stories']:.2f})")
        idx.close()


if __name__ == "__main__":
    main()
