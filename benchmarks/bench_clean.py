"""Cleaning quality on the article-extraction benchmark (91 real pages, word-4-gram F1 via its score.py).

Compares, in one run: html2text on the whole page (the seed tutorial's cleaner), trafilatura's plain text
with its defaults, and rag-news's cleaner (trafilatura favor_precision, no comments, HTML -> html2text).

    python benchmarks/bench_clean.py
"""

from __future__ import annotations

import importlib.util
import sys
import time

import html2text
import trafilatura

from _common import EXTRACTION, ground_truth, load_pages, machine

sys.path.insert(0, str(EXTRACTION))
spec = importlib.util.spec_from_file_location("score", EXTRACTION / "score.py")
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)

from rag_news.clean import extract  # noqa: E402


def whole_page_html2text(html: str) -> str:
    h = html2text.HTML2Text()
    h.ignore_links = True
    h.ignore_images = True
    return h.handle(html)


def main() -> None:
    pages, truth = load_pages(), ground_truth()
    runs = {
        "html2text (whole page)": whole_page_html2text,
        "trafilatura defaults (txt)": lambda h: trafilatura.extract(h) or "",
        "rag-news clean": lambda h: extract(h)[0],
    }
    print(f"machine: {machine()}; pages: {len(pages)}")
    results = {}
    for name, fn in runs.items():
        t = time.perf_counter()
        pred = {k: {"articleBody": fn(pages[k])} for k in truth}
        secs = time.perf_counter() - t
        m = score.score(truth, pred)
        results[name] = m["f1"]
        print(f"{name:28s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  F1 {m['f1']:.3f}  "
              f"({secs / len(truth) * 1000:.0f} ms/page)")
    print(f"f1: {results['rag-news clean']:.3f}")


if __name__ == "__main__":
    main()
