"""Build data/multihop-dev.jsonl: the dev multi-hop set (issue 26), each question needing two news-qa dev
pages (/work/shared/benchmarks/news-qa), written by hand from the facts the news-qa questions ask for.

Kinds: comparison (which of two figures is larger), temporal (which came first / before or after),
aggregate (a sum or difference of two figures), bridge (a fact from one page picks what to find in the
other), and 2 whose second fact no page holds (the news-qa unanswerable questions' facts): those should be
abstained. Each definition names the news-qa questions whose pages hold its facts; the script checks each
named fact is in its page's reference text (ground-truth.json) and writes one JSON line per question in the
news-qa format, with ``page_ids``/``urls`` (both pages) and ``kind``::

    python benchmarks/multihop/make_multihop.py [--shared /work/shared/benchmarks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "multihop-dev.jsonl"

# (id, kind, question, accepted answers, [(news-qa id, a fact string that page must hold)...])
DEFINITIONS = [
    ("mh-01", "comparison", "Which number is larger: the CPU cores the TNG50 simulation needed on Stuttgart's Hazel "
     "Hen machine, or the daily news organizations the merged Gannett encompasses? Give the larger number.",
     ["16,000"], [("dev-09", "16,000"), ("dev-22", "263")]),
    ("mh-02", "comparison", "Which was larger: the library fine John M. Ford ran up at Indiana University, or the "
     "bond Christopher D. Battin was held on in Columbus, Indiana? Give the larger amount.",
     ["$516,000", "516,000"], [("dev-21", "3,000"), ("dev-24", "516,000")]),
    ("mh-03", "comparison", "Which is larger: the number of days the seventh Amsterdam Light Festival runs, or the "
     "number of shots Semyon Varlamov stopped when the Islanders beat the Penguins 5-4 in overtime? Give the "
     "larger number.", ["53"], [("dev-34", "53"), ("dev-06", "27")]),
    ("mh-04", "comparison", "Which is larger: the weekly value of drugs PolitiFact calculated from fiscal 2019 "
     "border seizures, or the list-price value of Emirates' order for 30 Boeing 787-9 Dreamliners? Give the "
     "larger amount.", ["$8.8 billion", "8.8 billion"], [("dev-25", "44.2 million"), ("dev-08", "8.8 billion")]),
    ("mh-05", "temporal", "Which was earlier: the opening of the seventh Amsterdam Light Festival, or Eastern "
     "Michigan's 45-17 win at Northern Illinois? Give the date of the earlier one.",
     ["29 November 2018", "November 29, 2018", "Nov. 29, 2018"], [("dev-34", "29 November 2018"), ("dev-05", "45-17")]),
    ("mh-06", "temporal", "Which came later: Eastern Michigan's 45-17 win over Northern Illinois in DeKalb, or the "
     "2018 Milan Design Week installation by Michael Anastassiades at the Flos showroom? Give the winning team "
     "or the installation's title.", ["Eastern Michigan", "Eagles"],
     [("dev-05", "45-17"), ("dev-23", "2018")]),
    ("mh-07", "temporal", "Did my6sense hire Ivan Braiker as chief strategy officer before or after the Gannett-"
     "GateHouse merger formed the new Gannett? Answer before or after.", ["before"],
     [("dev-12", "Braiker"), ("dev-22", "GateHouse")]),
    ("mh-08", "aggregate", "Add the number of earlier Davis Cup meetings with Canada the United States had won "
     "before the 2019 Finals to the number of plague cases China recorded between 2009 and 2018 according to the "
     "Reuters figures cited by Smithsonian. What is the total?", ["41"], [("dev-03", "15"), ("dev-30", "26")]),
    ("mh-09", "aggregate", "What is the combined number of shots Semyon Varlamov stopped when the Islanders beat "
     "the Penguins 5-4 in overtime and the days the seventh Amsterdam Light Festival runs?", ["80"],
     [("dev-06", "27"), ("dev-34", "53")]),
    ("mh-10", "aggregate", "How much larger was the bond Christopher D. Battin was held on in Columbus, Indiana "
     "than the library fine John M. Ford ran up at Indiana University?", ["$513,000", "513,000"],
     [("dev-24", "516,000"), ("dev-21", "3,000")]),
    ("mh-11", "bridge", "The anesthesiologist who writes the Physician on FIRE blog retired at a certain age. What "
     "is the name of the Aberdeenshire man of that same age who developed feather duvet lung?", ["Martin Taylor"],
     [("dev-32", "43"), ("dev-35", "Martin Taylor")]),
    ("mh-12", "bridge", "The Islanders stretched an unbeaten run by beating the Penguins 5-4 in overtime. Is the "
     "length of that run in games the same as the number of earlier Davis Cup meetings with Canada the United "
     "States had won before the 2019 Finals? Give that number.", ["15"], [("dev-06", "15"), ("dev-03", "15")]),
    ("mh-u1", "unanswerable", "Which is larger: the number of daily news organizations the merged Gannett "
     "encompasses, or the number of people who died in the magnitude 6.4 earthquake that struck Albania in "
     "November 2019?", [], [("dev-22", "263"), ("dev-u2", None)]),
    ("mh-u2", "unanswerable", "What is the combined price of the cheapest Cybertruck Tesla announced in November "
     "2019 and the list-price value of Emirates' order for 30 Boeing 787-9 Dreamliners?", [],
     [("dev-08", "8.8 billion"), ("dev-u1", None)]),
]


def body_of(gt: dict, page_id: str) -> str:
    entry = gt[page_id]
    return entry.get("articleBody", "") if isinstance(entry, dict) else str(entry)


def build(shared: Path) -> list[dict]:
    qs = {q["id"]: q for q in map(json.loads, (shared / "news-qa" / "questions.jsonl").read_text().splitlines()) if q}
    gt = json.loads((shared / "article-extraction" / "ground-truth.json").read_text())
    rows = []
    for qid, kind, question, answers, parts in DEFINITIONS:
        pages, urls = [], []
        for part, fact in parts:
            q = qs[part]
            if fact is None:  # the fact no page holds
                assert not q["answers"], part
                continue
            assert fact.lower() in body_of(gt, q["page_id"]).lower(), (qid, part, fact)
            pages.append(q["page_id"])
            urls.append(q["url"])
        rows.append({"id": qid, "kind": kind, "question": question, "answers": answers, "page_id": pages[0],
                     "url": urls[0], "page_ids": pages, "urls": urls, "parts": [p for p, _ in parts]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("/work/shared/benchmarks"))
    args = ap.parse_args()
    rows = build(args.shared)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} questions to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
