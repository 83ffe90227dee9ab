"""Build the follow-up dev set: two-turn conversations over the news-qa dev pages.

Turn 1 is the news-qa dev question; turn 2 is short, names nothing of the article (no person, place,
product or event: "How big is its battery?") and asks another detail of the same article. Each accepted
answer must occur verbatim in the page's reference ``articleBody``; the unanswerable follow-ups ask what the
article does not state (checked here: none of the listed patterns occurs in it). A search for turn 2 alone
must not find the article: with ``--check-index DIR`` (an index of the dev pages, e.g. bench_answer.py's) the
real retriever searches each turn 2 bare (k = 4 passages) and the set is refused if any finds its article.

    python benchmarks/followups/make_followups.py --check-index /tmp/rag-news-news-qa-index
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _common import EXTRACTION, NEWS_QA  # noqa: E402

# (news-qa id of turn 1, turn 2, accepted answers; [] = unanswerable, with patterns the body must lack)
CONVERSATIONS = [
    ("dev-01", "How big is its battery?", ["82 kWh"]),
    ("dev-02", "How much did each of them have to pay?", ["$250,000", "250,000"]),
    ("dev-03", "Who finished it off for the home side?", ["Granollers", "Lopez"]),
    ("dev-05", "Who led them on the ground?", ["Shaq Vann"]),
    ("dev-06", "Who got the decisive one?", ["Brock Nelson", "Nelson"]),
    ("dev-07", "When do the tickets go on sale?", ["Dec. 6", "Friday, Dec. 6"]),
    ("dev-08", "How many people does it carry?", ["242 to 330", "242"]),
    ("dev-09", "How many did it track?", ["20 billion"]),
    ("dev-12", "Who founded the company that hired him?", ["Avinoam Rubinstain"]),
    ("dev-13", "How many of those can one carer face?", ["1,000"]),
    ("dev-14", "When did it all start?", ["June"]),
    ("dev-15", "Which director was quoted explaining it?", ["Sanjiv Bhasin"]),
    ("dev-16", "For how many nights did they watch?", ["17"]),
    ("dev-14", "How old is he?", {"absent": [r"years old", r"\baged\b", r"\bage\b", r", \d\d,"]}),
    ("dev-07", "How much do the tickets cost?", {"absent": [r"\$", r"\bprice", r"\bcost"]}),
    # unanswerable follow-ups that refer back to an article turn 1 is answered from (the cited article is
    # read first, so these check that its passages do not make the reader answer what they do not hold)
    ("dev-01", "How much will it cost?", {"absent": [r"\$", r"€", r"\bprice", r"\bcosts?\b(?! effective)", r"\bmsrp\b"]}),
    ("dev-04", "How old is the winner?", {"absent": [r"years old", r"\baged\b", r"\bage\b", r", \d\d,"]}),
    ("dev-16", "How old is he?", {"absent": [r"years old", r"\baged\b", r"\bage\b", r", \d\d,"]}),
]

# each turn 2 written out as someone who had not seen the conversation would ask it (its references replaced
# by what turn 1 established, its own words kept): bench_followups.py asks these alone, so a follow-up's
# accuracy can be set beside the same question asked standalone
STANDALONE = [
    "How big is the battery of Volkswagen's ID. Space Vizzion electric wagon concept?",
    "How much did each of the Browns and the Steelers have to pay after the Myles Garrett helmet fight?",
    "Who finished it off for the home side at the 2019 Davis Cup Finals in Madrid, where Canada beat the United States?",
    "Who led Eastern Michigan on the ground when it beat Northern Illinois 45-17 in DeKalb?",
    "Who got the decisive goal when the Islanders beat the Penguins 5-4 in overtime?",
    "When do the tickets for the Doobie Brothers' reunion tour with Michael McDonald go on sale?",
    "How many people does the Boeing 787-9 Dreamliner that Emirates ordered at the 2019 Dubai Air Show carry?",
    "How many did the TNG50 cosmological simulation on Stuttgart's Hazel Hen machine track?",
    "Who founded my6sense, the native ad platform that hired Ivan Braiker as chief strategy officer?",
    "How many of the alarms that Ascom's Digistat Patient Watch manages can one intensive care carer face?",
    "When did the Hong Kong protests that ended with protesters holed up at Polytechnic University start?",
    "Which director was quoted explaining the record level India's Sensex index touched on November 20, 2019?",
    "For how many nights did the Keck Observatory team led by Lucas Paganini watch Europa?",
    "How old is Cheuk Hau-yip, the Hong Kong police commander for Kowloon West?",
    "How much do the tickets for the Doobie Brothers' reunion tour with Michael McDonald cost?",
    "How much will Volkswagen's ID. Space Vizzion electric wagon concept cost?",
    "How old is Keetan Munsell, the Salina South junior who won the Kansas 5-1A state diving title?",
    "How old is Lucas Paganini, who led the Keck Observatory team that watched Europa's water vapor plumes?",
]


def build() -> list[dict]:
    questions = {json.loads(x)["id"]: json.loads(x) for x in (NEWS_QA / "questions.jsonl").read_text().splitlines()
                 if x.strip()}
    truth = json.loads((EXTRACTION / "ground-truth.json").read_text(encoding="utf-8"))
    assert len(STANDALONE) == len(CONVERSATIONS)
    out = []
    for n, ((qid, follow_up, answers), written_out) in enumerate(zip(CONVERSATIONS, STANDALONE), 1):
        first = questions[qid]
        body = truth[first["page_id"]]["articleBody"]
        if isinstance(answers, dict):
            found = [p for p in answers["absent"] if re.search(p, body, re.I)]
            assert not found, f"{qid}: the article may answer {follow_up!r} ({found})"
            answers = []
        for a in answers:
            assert a.lower() in body.lower(), f"{qid}: {a!r} is not in the article"
        assert len(follow_up.split()) <= 9, follow_up
        out.append({"id": f"fu-{n:02d}", "page_id": first["page_id"], "url": first["url"],
                    "turns": [{"question": first["question"], "answers": first["answers"]},
                              {"question": follow_up, "answers": answers, "standalone": written_out}]})
    return out


def found_bare(rows: list[dict], index_dir: str) -> list[str]:
    """The conversations whose turn 2, searched alone by the real retriever (k = 4), finds their article."""
    sys.path.insert(0, str(HERE.parent.parent))
    from rag_news import NewsQA, Settings

    qa = NewsQA(Settings.load(index_dir=index_dir, progress=False), llm=object())
    out = []
    for r in rows:
        urls = [d.metadata.get("url", "") for d in qa.retriever.search(r["turns"][1]["question"], k=4)]
        if any(u == r["url"] or r["page_id"] in u for u in urls):
            out.append(f'{r["id"]}: {r["turns"][1]["question"]!r}')
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--check-index", help="an index of the dev pages: refuse follow-ups a bare search finds")
    rows = build()
    if ap.parse_args().check_index:
        found = found_bare(rows, ap.parse_args().check_index)
        assert not found, "turn 2 alone finds the article: " + "; ".join(found)
    target = HERE / "followups.jsonl"
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} conversations ({sum(not r['turns'][1]['answers'] for r in rows)} unanswerable follow-ups) "
          f"-> {target}")
