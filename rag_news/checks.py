"""Checks on a generated answer: abstention, citations, and whether the passages support what it says.

* :func:`is_abstention` — the answer is the fixed abstention sentence and nothing else ("I don't know,
  but ... [1]" is an answer, not an abstention).
* :func:`declines` — an answer that only says, in its own words, that the passages do not say (treated as
  the abstention it is).
* :func:`citations` — the ``[n]`` an answer cites, split into passages that exist and numbers that do not.
* :func:`key_terms` — what an answer asserts that can be checked: its figures and its names.
* :func:`unsupported_figures` — figures that no passage (nor the question) contains: invented.
* :func:`restates` — an "answer" that only repeats the question's words.
* :func:`names_no_sum` — a question about money ("How much do the tickets cost?") answered with no sum.
* :func:`supporting` — the passages that contain the answer's key terms (to check or attribute citations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from langchain_core.documents import Document

from .figures import claims, figures

ABSTAIN = "I don't know based on the indexed articles."
_CITE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_NUM = re.compile(r"\d[\d,.]*\d|\d")
_WORDS = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"\b[A-Z][\w'’-]*[a-z][\w'’-]*\b|\b[A-Z]{2,}\b")
_STOPWORDS = frozenset(
    "a about after all also an and any are as at be been before but by can could did do does for from had has "
    "have he her his how i in into is it its may might more most much must new no not of on one or our out over "
    "said says she should so some than that the their them there these they this those to under up was we were "
    "what when where which who will with would you your".split())
_ABSTAIN_FORMS = ("i don't know based on the indexed articles", "i do not know based on the indexed articles",
                  "i don't know", "i do not know")


_WHERE = r"(?:in|by|from)\s+(?:the\s+|these\s+|any\s+)?(?:given\s+|provided\s+|above\s+)?(?:passages?|articles?|context|texts?|sources?)"
_DECLINES = re.compile(
    rf"\bnot\s+(?:specified|mentioned|stated|provided|given|disclosed|reported|included)\s+{_WHERE}"
    r"|\b(?:passages?|articles?|context|texts?|sources?)\s+(?:do|does|did)\s*(?:n[o']t)\s+"
    r"(?:provide|mention|say|state|specify|contain|include|give|disclose|report)\b"
    r"|\bno\s+(?:information|mention|details?)\s+(?:about|on|of|regarding)\b", re.IGNORECASE)


def declines(answer: str) -> bool:
    """The answer says, in its own words, that the passages do not hold what was asked ("The cost is not
    specified in the given passages.") and states nothing else: no figure before those words, no figure, ";"
    or ":" after them, no "but" / "however" anywhere (an answer that goes on to give something is an answer)."""
    text = " ".join(answer.split()).replace("’", "'")
    m = _DECLINES.search(text)
    if not m or re.search(r"\d", text[: m.start()]):
        return False
    after = without_citations(text[m.end():])
    return not re.search(r"[;:]|\d", after) and \
        not re.search(r"\b(?:but|however|although|though|instead)\b", text, re.IGNORECASE)


def without_citations(text: str) -> str:
    return _CITE.sub(" ", text)


def is_abstention(answer: str) -> bool:
    """The answer is only the abstention sentence (or an empty answer)."""
    a = re.sub(r"\s+", " ", answer.replace("’", "'")).strip().lower().rstrip(".!").strip()
    return not a or a in _ABSTAIN_FORMS


@dataclass
class Citations:
    valid: list[int] = field(default_factory=list)        # cited passages that exist, in order
    out_of_range: list[int] = field(default_factory=list)  # cited numbers with no such passage


def citations(answer: str, n_sources: int) -> Citations:
    out = Citations()
    for group in _CITE.findall(answer):
        for x in re.split(r"\s*[,;–-]\s*", group):
            n = int(x)
            bucket = out.valid if 1 <= n <= n_sources else out.out_of_range
            if n not in bucket:
                bucket.append(n)
    return out


_URL = re.compile(r"\bhttps?://\S+")


def _claims(text: str) -> str:
    """``text`` without citation markers and URLs (a port or a date in a copied source URL is no claim)."""
    return _URL.sub(" ", without_citations(text))


def _numbers(text: str, claims_only: bool = False) -> set[str]:
    """The figures ``text`` states, read as numbers ("1,180" = 1180, "five-and-a-half" = 5.5; citation
    markers and URLs aside); ``claims_only``: an answer's checkable figures (none inside dates and times,
    no lone small number word), see :mod:`rag_news.figures`."""
    return figures(_claims(text), claims_only)


def key_terms(answer: str, question: str) -> list[str]:
    """The answer's figures and names that the question does not already hold (what must be sourced)."""
    asked = question.lower()
    asked_figures = _numbers(question)
    stated = sorted(n for n, forms in claims(_claims(answer), claims_only=True).items() if not forms & asked_figures)
    names = [m.group() for m in _NAME.finditer(_claims(answer))
             if m.group().lower() not in asked and m.group().lower() not in _STOPWORDS]
    return stated + list(dict.fromkeys(names))


def contains(passage: str, term: str) -> bool:
    if term[0].isdigit():
        return term in _numbers(passage)
    return re.search(r"(?<!\w)" + re.escape(term.lower()) + r"(?!\w)", passage.lower()) is not None


def unsupported_figures(answer: str, question: str, docs: Sequence[Document]) -> list[str]:
    """Figures in the answer (citation markers, URLs, dates and times aside) that occur, as numbers, in no
    passage nor in the question ("5.5 points" is in "five-and-a-half points")."""
    seen = _numbers(question)
    for d in docs:
        seen |= _numbers(d.page_content)
    return sorted(n for n, forms in claims(_claims(answer), claims_only=True).items() if not forms & seen)


_MONEY_QUESTION = re.compile(
    r"\bhow\s+much\b.*\b(?:costs?|costing|pay|pays|paid|charge[ds]?|spen[dt]|spending|worth|fees?|fined?|"
    r"budget(?:ed)?|earn(?:ed|s)?|invest(?:ed)?|funding|owe[ds]?|salary|money)\b",
    re.IGNORECASE)
_SUM = re.compile(
    r"[$€£¥₹]|\b(?:USD|EUR|GBP|CAD|AUD|Rs\.?|INR|CHF|JPY|CNY)\b|\b(?:dollars?|euros?|pounds?|cents?|pence|yen|"
    r"yuan|rupees?|francs?|crores?|lakhs?|pesos?|rubles?|roubles?|kronor|kroner|krona)\b|\bfree\b|"
    r"\bno\s+(?:cost|charge)\b", re.IGNORECASE)


def names_no_sum(answer: str, question: str) -> bool:
    """``question`` asks for a sum of money ("How much will it cost?", "How much did they pay?") and the
    answer names none: no currency sign, code or word, not "free" ("The tickets go on sale Friday." answers
    another question)."""
    return bool(_MONEY_QUESTION.search(question)) and not _SUM.search(without_citations(answer))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def restates(answer: str, question: str) -> bool:
    """The answer adds no word the question lacks ("The hospital opened a new wing this week [1]."), and
    does not pick one side of a choice the question ends with ("... before or after?": "It was before the
    merger" answers it with the question's own words)."""
    asked = {_stem(w) for w in _WORDS.findall(question.lower())}
    said_all = set(_WORDS.findall(without_citations(answer).lower()))
    said = {_stem(w) for w in said_all if w not in _STOPWORDS}
    if not said or not said <= asked:
        return False
    choice = _CHOICE.search(question.lower())
    return not (choice and len(set(choice.groups()) & said_all) == 1)


_CHOICE = re.compile(r"\b([a-z]+),? or (?:an? |the )?([a-z]+)\s*[?.!]?\s*$")
"""A question ending in a choice of two words ("Answer before or after.", "Did it rise or fall?")."""


def supporting(terms: list[str], docs: Sequence[Document]) -> list[int]:
    """Passages (1-based) holding the most of ``terms``, best first; [] when none holds any."""
    counts = [(sum(contains(d.page_content, t) for t in terms), n) for n, d in enumerate(docs, start=1)]
    best = max((c for c, _ in counts), default=0)
    return [n for c, n in counts if c == best] if best else []


def attribute(answer: str, question: str, docs: Sequence[Document], at_most: int = 2) -> list[int]:
    """For an answer that cites nothing: the passages its key terms, else its words, come from."""
    terms = key_terms(answer, question)
    found = supporting(terms, docs) if terms else []
    if found:
        return found[:at_most]
    q = set(_WORDS.findall(question.lower()))
    words = {w for w in _WORDS.findall(_claims(answer).lower())
             if w not in _STOPWORDS and w not in q and len(w) > 1}
    if not words:
        return []
    scores = [(len(words & set(_WORDS.findall(d.page_content.lower()))) / len(words), n)
              for n, d in enumerate(docs, start=1)]
    top = max(sc for sc, _ in scores)
    if top < 0.5:
        return []
    return sorted((n for sc, n in scores if sc >= 0.9 * top), key=lambda n: -scores[n - 1][0])[:at_most]
