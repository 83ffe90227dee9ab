"""When does rendering help? The served HTML vs the Chromium-rendered page, on the 91 article-extraction pages.

Each page is read both ways (httpx, and the Chromium renderer with external hosts failing at once as in
bench_scrape.py), cleaned by rag-news's cleaner and scored against the true article text (word-4-gram F1,
the benchmark's score.py). Prints, in one run: the word counts of the served articles (for
``min_article_words``), how the rendered text differs from the served one (``compare``: share of the served
text kept, words added) at several thresholds (for ``render_min_kept`` / ``render_min_added``), and F1 of
static only, rendered only, and the per-page choice the fetch stage makes (rendered unless it lost the
served article). Thresholds are chosen here, on this dev set, never on test fixtures.

    python benchmarks/bench_render.py
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from _common import EXTRACTION, ground_truth, load_pages, machine, serve_pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import Settings  # noqa: E402
from rag_news.clean import clean  # noqa: E402
from rag_news.fetch import fetch  # noqa: E402
from rag_news.fetch.adaptive import compare  # noqa: E402
from rag_news.fetch.render import scrape  # noqa: E402

ISOLATE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)
spec = importlib.util.spec_from_file_location("score", EXTRACTION / "score.py")
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)


def f1(truth: dict, texts: dict) -> float:
    return score.score(truth, {k: {"articleBody": texts.get(k, "")} for k in truth})["f1"]


def main() -> None:
    pages, truth = load_pages(), ground_truth()
    settings = Settings.load(progress=False, browser_args=ISOLATE, render="never")
    with serve_pages(pages) as base:
        urls = {f"{base}/{k}.html": k for k in pages}
        static = {urls[f.url]: f.article for f in fetch(list(urls), settings).fetched}
        rendered_pages = scrape(list(urls), settings).pages
    rendered = {urls[d.metadata["source"]]: clean(d, settings) for d in rendered_pages}
    print(f"machine: {machine()}; pages {len(pages)}; served articles {len(static)}; rendered {len(rendered)}")
    words = sorted(len(a.page_content.split()) for a in static.values() if a is not None)
    print(f"served article words: min {words[0]}, 5th pct {int(np.percentile(words, 5))}, median "
          f"{int(np.median(words))}; pages under {settings.min_article_words} words (min_article_words): {sum(w < settings.min_article_words for w in words)}")
    diffs = {k: compare(static.get(k), rendered.get(k), settings) for k in pages if k in rendered}
    kept = np.array([d["kept"] for d in diffs.values()])
    added = np.array([d["added"] for d in diffs.values()])
    for t in (0.3, 0.5, 0.7, 0.9):
        print(f"rendered keeps < {t:.0%} of the served text: {int((kept < t).sum())} pages")
    for t in (5, 10, 20, 50):
        print(f"rendering adds >= {t} words: {int((added >= t).sum())} pages")
    chosen = {}
    for k in pages:
        d = diffs.get(k)
        use_rendered = d is not None and rendered.get(k) is not None and (d["verdict"] != "loses" or static.get(k) is None)
        art = rendered[k] if use_rendered else static.get(k)
        chosen[k] = art.page_content if art is not None else ""
    text = lambda d: {k: (a.page_content if a is not None else "") for k, a in d.items()}  # noqa: E731
    print(f"F1 static only {f1(truth, text(static)):.3f}; rendered only {f1(truth, text(rendered)):.3f}; "
          f"rendered unless it lost the served article {f1(truth, chosen):.3f}")
    adds = [k for k, d in diffs.items() if d["verdict"] == "adds"]
    print(f"pages where rendering adds article text (>= {settings.render_min_added} words, keeping >= "
          f"{settings.render_min_kept:.0%}): {len(adds)}; F1 on them static {f1({k: truth[k] for k in adds}, text(static)):.3f}"
          f" vs rendered {f1({k: truth[k] for k in adds}, text(rendered)):.3f}" if adds else "no page gains text")


if __name__ == "__main__":
    main()
