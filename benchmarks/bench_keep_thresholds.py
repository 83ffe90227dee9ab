"""Choose the "much shorter and shares little" thresholds of rag_news.keep on the article-extraction dev
set (../shared/benchmarks/article-extraction, 91 real articles).

Two kinds of new text for a stored article:
* real new versions, which must replace it: the article cut to its first half / first third of paragraphs
  (a shortened edit), its paragraphs with one replaced by another article's (an update), the full text
  with its last half removed and a correction line added;
* texts that are not the article, which must not: the first 40-80 words of every other article (an
  unrelated short page of the same kind of prose: the hardest case for word overlap) and five real-world
  wall / soft-404 / paywall / error-shell texts.

Prints, for a grid of (max_ratio, min_shared), the share of real versions wrongly kept out ("lost edits")
and the share of non-articles let in ("walls indexed"), then the chosen pair.

    python benchmarks/bench_keep_thresholds.py [--data ../shared/benchmarks/article-extraction]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag_news.keep import unlike_the_article, words  # noqa: E402

WALLS = [
    "Before you continue. We use cookies and data to deliver and maintain our services, track outages and "
    "protect against spam, fraud and abuse, measure audience engagement and site statistics to understand how "
    "our services are used and enhance the quality of those services. If you choose to Accept all, we will "
    "also use cookies and data to develop and improve new services. Accept all. Reject all. More options.",
    "Page not found. Sorry, the page you are looking for may have been moved, renamed or is temporarily "
    "unavailable. Please check the address, or go back to the home page and use the search box to find what "
    "you were looking for. If you think this is an error, contact our support team and tell us which link "
    "brought you here. Home. Latest news. Contact.",
    "Subscribe to continue reading. You have reached your limit of free articles this month. Subscribers get "
    "unlimited access to all our journalism, the daily newsletter, the puzzles and the archive on any device. "
    "Already a subscriber? Log in. Start your free trial today and cancel anytime. Offer for new customers "
    "only; terms apply.",
    "Something went wrong. We are having trouble loading this page right now. Our engineers have been notified "
    "and are working to fix the problem as quickly as possible. Please refresh the page or try again in a few "
    "minutes. If the problem continues, check our status page for updates on any ongoing service issues. "
    "Error reference 503.",
    "Access denied. Your request has been blocked by our security service because it looked automated. If you "
    "are a human reader, please enable JavaScript and cookies in your browser, then complete the check below "
    "to continue to the site. This helps us protect our readers and journalists from abuse. Ray ID "
    "7f2a9c1b. Performance and security by our provider.",
]


def versions(paras: list[str], other: list[str], rng: random.Random) -> list[str]:
    """Real new versions of an article (paragraph lists)."""
    n = len(paras)
    out = [" ".join(paras[: max(1, n // 2)]), " ".join(paras[: max(1, n // 3)])]
    if n > 1:
        swapped = list(paras)
        swapped[rng.randrange(n)] = rng.choice(other)
        out.append(" ".join(swapped))
    out.append(" ".join(paras[: max(1, n // 2)]) + " Correction: an earlier version of this article misstated "
               "the date of the meeting.")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"
                                          / "article-extraction"))
    args = ap.parse_args(argv)
    truth = json.loads((Path(args.data) / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values() if len(words(v["articleBody"])) >= 80]
    rng = random.Random(0)
    real, fake = [], []
    for i, text in enumerate(texts):
        paras = [p for p in text.split("\n") if p.strip()]
        other_paras = [p for j, t in enumerate(texts) if j != i for p in t.split("\n") if p.strip()]
        real += [(text, v) for v in versions(paras, other_paras, rng)]
        for j, t in enumerate(texts):
            if j != i:
                ws = t.split()
                fake.append((text, " ".join(ws[: rng.randrange(40, 81)])))
        fake += [(text, w) for w in WALLS]
    print(f"{len(texts)} articles (>= 80 words); {len(real)} real new versions, {len(fake)} non-article texts")
    print(f"{'max_ratio':>9} {'min_shared':>10} {'lost edits':>11} {'walls indexed':>14}")
    grid = {}
    for ratio in (0.25, 0.33, 0.5, 0.67, 0.8, 1.0):
        for shared in (0.3, 0.4, 0.5, 0.6, 0.7):
            lost = sum(unlike_the_article(new, old, ratio, shared) is not None for old, new in real) / len(real)
            let_in = sum(unlike_the_article(new, old, ratio, shared) is None for old, new in fake) / len(fake)
            print(f"{ratio:>9} {shared:>10} {lost:>10.2%} {let_in:>13.2%}")
            grid[ratio, shared] = lost, let_in
    # the rule: no real edit lost; "much shorter" means at most two thirds of the stored words (a longer
    # ratio also keeps out same-length rewrites, which are real new versions); min_shared in the middle of
    # the lossless range (0.3..0.6), a margin on both sides
    lost, let_in = grid[0.67, 0.5]
    pairs = [(w, t) for w in WALLS for t in texts if len(words(t)) >= 1.5 * len(words(w))]
    walls_out = sum(unlike_the_article(w, t, 0.67, 0.5) is not None for w, t in pairs)
    print(f"chosen: max_ratio=0.67 min_shared=0.5: lost edits {lost:.2%}, walls indexed {let_in:.2%}; "
          f"the {len(WALLS)} wall texts over articles 1.5x+ their length: {walls_out}/{len(pairs)} kept out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
