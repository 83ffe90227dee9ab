"""Citations that point at the passage holding the claim, and figures that outlets of one story disagree on.

One entry point, :func:`check_citations` (called by :class:`rag_news.answer.NewsQA` after the model answers;
deterministic, no model call, no embedding: plain reads of the passages' figures and names):

1. **Claims.** The answer is cut into sentences; inside a sentence, the text before a citation marker
   ``[n]`` (back to the previous marker or the sentence start) is that marker's claim, and the text after a
   sentence's last marker belongs to it too (``"It opened [1], two years late."``). Sentences without a
   marker are not checked here (an answer that cites nothing is attributed by :func:`rag_news.checks.attribute`).
2. **Re-pointing.** A claim's key terms are its figures and names beyond the question
   (:func:`rag_news.checks.key_terms`). When the cited passages together hold them all, the citation stays.
   Otherwise the passages that hold them are chosen greedily (the passage holding most of the terms not yet
   held, ties to a passage the model cited, then to the earlier one), and when that set holds more of the
   terms than the model's citation did, the marker is rewritten to it — plus every other outlet's passage of
   the same story that holds the same terms. When the chosen passages hold no more than half of the
   claim's terms, the citation stays (a passage sharing one word of "Mulberry Street" is no better
   source). Out-of-range numbers (``[9]`` of 4 passages) count as citing nothing. What no passage holds
   is reported (``unsupported``), never re-pointed. A claim without key terms keeps its citation (word
   overlap alone would move citations between paraphrases; not done).
3. **Conflicting figures.** For each figure of a claim with its unit (the word after it: ``dead``,
   ``km/h``, ``euros``; past a ``million``), its mention with that unit in a cited passage gives "the thing"
   it counts: the unit and the content words around it there (six words either side). A figure without a
   unit word is not compared. A passage of the same story from another outlet that states a
   different figure with the same unit, sharing a context word, and does not state the answer's figure with
   that unit, is a conflict: the answer gets ``", 15 dead in another report [2]"`` after the claim's marker
   (the other passage's own words for the figure and unit), unless the answer already states that figure.
   Dates and times are no figures here (``June 9`` vs ``June 10`` of a tour list is no conflict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from langchain_core.documents import Document

from . import checks
from .figures import _DATES, _DIGITS, _WORDS, _digit_forms, canonical, claims, words_value

_CITE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\](?:\s*\[(\d+(?:\s*[,;–-]\s*\d+)*)\])*")
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z\"“(])")
_WORD = re.compile(r"[a-z][a-z'’-]*")
_UNIT = re.compile(r"[\s-]*(%|[A-Za-z][\w/]*)")
_SCALE_WORDS = {"million", "billion", "thousand", "trillion", "bn", "m", "hundred"}
_CONTEXT_WORDS = 6
_LEAD_IN = "in another report"


@dataclass
class Conflict:
    """Passage ``passage`` holds the answer's ``figure``; ``other`` (same story, outlet ``other_outlet``)
    says ``other_figure`` of the same thing (``unit``)."""

    figure: str
    unit: str
    passage: int
    other_figure: str
    other: int
    other_outlet: str

    def as_dict(self) -> dict:
        return {"figure": self.figure, "unit": self.unit, "passage": self.passage, "other_figure": self.other_figure,
                "other": self.other, "other_outlet": self.other_outlet}


@dataclass
class CitationCheck:
    """What :func:`check_citations` found and did."""

    text: str  # the answer with markers re-pointed and conflicts said
    cited: list[int] = field(default_factory=list)  # passages cited after re-pointing, in order
    cited_raw: list[int] = field(default_factory=list)  # the model's own valid citations, in order
    repointed: list[dict] = field(default_factory=list)  # {"claim", "from", "to", "terms"} per rewritten marker
    unsupported: list[str] = field(default_factory=list)  # key terms of cited claims no passage holds
    conflicts: list[Conflict] = field(default_factory=list)


def _numbers(group: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", group)]


def _claims_of(text: str) -> list[tuple[int, int, str, list[int]]]:
    """``(marker start, marker end, claim text, cited numbers)`` for each citation marker group."""
    out = []
    markers = list(_CITE.finditer(text))
    ends = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    for i, m in enumerate(markers):
        start = max([0] + [e for e in ends if e <= m.start()])
        if i and markers[i - 1].end() > start:
            start = markers[i - 1].end()
        sentence_end = min(e for e in ends if e >= m.end()) if any(e >= m.end() for e in ends) else len(text)
        nxt = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        tail = text[m.end():sentence_end] if nxt >= sentence_end else ""
        out.append((m.start(), m.end(), text[start:m.start()] + " " + tail, _numbers(m.group())))
    return out


def _cover(terms: list[str], held: list[set[str]], cited: list[int]) -> list[int]:
    """Passages (1-based) holding the terms, chosen greedily (most new terms; ties: cited, then earlier)."""
    chosen, covered = [], set()
    while True:
        gains = [(len(h - covered), n in cited, -n) for n, h in enumerate(held, start=1) if n not in chosen]
        best = max(gains, default=(0, False, 0))
        if best[0] == 0:
            return chosen
        n = -best[2]
        chosen.append(n)
        covered |= held[n - 1]


def _repoint(claim: str, question: str, cited: list[int], docs: Sequence[Document], stories: Sequence[str | None],
             outlets: Sequence[str]) -> tuple[list[int], list[str]]:
    """The citations a claim should carry and its terms no passage holds."""
    terms = checks.key_terms(claim, question)
    valid = [n for n in cited if 1 <= n <= len(docs)]
    if not terms:
        return valid, []
    held = [{t for t in terms if checks.contains(d.page_content, t)} for d in docs]
    own = set().union(*(held[n - 1] for n in valid)) if valid else set()
    chosen = _cover(terms, held, valid)
    covered = set().union(*(held[n - 1] for n in chosen)) if chosen else set()
    missing = [t for t in terms if t not in covered]
    if len(covered) <= len(own) or 2 * len(covered) <= len(terms):
        return valid, missing  # no better, or most of the claim held nowhere: flagged, not moved
    for n in list(chosen):  # every other outlet of that story holding the same terms
        for m, h in enumerate(held, start=1):
            if (m not in chosen and stories[n - 1] and stories[m - 1] == stories[n - 1]
                    and outlets[m - 1] != outlets[n - 1] and h >= held[n - 1]):
                chosen.append(m)
    return chosen, missing


# ------------------------------------------------------------------------------------ conflicts
@dataclass
class _Mention:
    value: str  # canonical
    forms: set[str]
    unit: str
    context: set[str]
    surface: str  # the figure and its unit as the passage writes them


def _stem(word: str) -> str:
    return checks._stem(word.strip("'’-"))


def _mentions(text: str) -> list[_Mention]:
    """The figures ``text`` states (dates and times aside), each with its unit and context words."""
    text = _DATES.sub(lambda m: " " * len(m.group()), text)
    found = []
    for m in _DIGITS.finditer(text):
        forms = _digit_forms(m)
        found.append((m, forms[0] if forms else "", set(forms)))
    for m in _WORDS.finditer(text):
        value = words_value(m.group())
        if value is not None and (len(re.split(r"[\s-]+", m.group())) > 1 or value >= 20):
            found.append((m, canonical(value), {canonical(value)}))
    out = []
    for m, value, forms in found:
        end, unit = m.end(), ""
        for _ in range(2):
            u = _UNIT.match(text, end)
            if not u:
                break
            end, unit = u.end(), u.group(1).lower()
            if unit not in _SCALE_WORDS:
                break
        if not forms or not unit or unit in _SCALE_WORDS:
            continue
        before = _WORD.findall(text[max(0, m.start() - 80):m.start()].lower())[-_CONTEXT_WORDS:]
        after = _WORD.findall(text[end:end + 80].lower())[:_CONTEXT_WORDS]
        context = {_stem(w) for w in before + after if w not in checks._STOPWORDS and len(w) > 2}
        out.append(_Mention(value, forms, _stem(unit) if unit != "%" else "%", context, text[m.start():end].strip()))
    return out


def _conflicts(claim: str, cited: list[int], docs: Sequence[Document], stories: Sequence[str | None],
               outlets: Sequence[str], said: set[str]) -> list[Conflict]:
    """Figures of ``claim`` that another outlet's passage of the cited passage's story gives otherwise."""
    out: list[Conflict] = []
    mentions: dict[int, list[_Mention]] = {}
    for figure in _mentions(checks._claims(claim)):
        for p in cited:
            if not stories[p - 1]:
                continue
            mentions.setdefault(p, _mentions(docs[p - 1].page_content))
            for mine in (x for x in mentions[p] if x.forms & figure.forms and x.unit == figure.unit):
                for q in range(1, len(docs) + 1):
                    if q == p or stories[q - 1] != stories[p - 1] or outlets[q - 1] == outlets[p - 1]:
                        continue
                    mentions.setdefault(q, _mentions(docs[q - 1].page_content))
                    same = [x for x in mentions[q] if x.unit == mine.unit and x.context & mine.context]
                    if any(x.forms & figure.forms for x in same):
                        continue  # the other report states the answer's figure too
                    x = next((x for x in same if not x.forms & said), None)
                    if x and all(c.other != q or c.figure != figure.value for c in out):
                        out.append(Conflict(figure.value, mine.unit, p, x.surface, q, outlets[q - 1]))
    return out


# ------------------------------------------------------------------------------------ the entry point
def _marker(ns: list[int]) -> str:
    return "[" + ", ".join(str(n) for n in ns) + "]"


def check_citations(answer: str, question: str, docs: Sequence[Document], stories: Sequence[str | None] | None = None,
                    outlets: Sequence[str] | None = None) -> CitationCheck:
    """Re-point ``answer``'s citations to the passages holding each claim and say where outlets disagree.

    ``docs``: the passages the model was shown, numbered from 1 as in its prompt. ``stories``: each
    passage's story id (None: no story; default: ``metadata["story"]``). ``outlets``: each passage's outlet
    (default: its site name, else host). Returns the rewritten text, citations before and after, what was
    moved, the key terms no passage holds, and the conflicts (see the module docstring).
    """
    from .conversation import outlet_of

    stories = list(stories) if stories is not None else [d.metadata.get("story") for d in docs]
    outlets = list(outlets) if outlets is not None else [outlet_of(d.metadata) for d in docs]
    said = {f for forms in claims(checks._claims(answer), claims_only=True).values() for f in forms}
    result = CitationCheck(text=answer)
    edits: list[tuple[int, int, str]] = []
    for start, end, claim, cited in _claims_of(answer):
        valid = [n for n in cited if 1 <= n <= len(docs)]
        result.cited_raw += [n for n in valid if n not in result.cited_raw]
        new, missing = _repoint(claim, question, cited, docs, stories, outlets)
        result.unsupported += [t for t in missing if t not in result.unsupported]
        text = answer[start:end]
        if new and (new != valid or len(valid) != len(cited)):
            text = _marker(new) if new else ""
            result.repointed.append({"claim": re.sub(r"\s+", " ", claim).strip(), "from": cited, "to": new,
                                     "terms": checks.key_terms(claim, question)})
        for c in _conflicts(claim, new, docs, stories, outlets, said):
            result.conflicts.append(c)
            text += f", {c.other_figure} {_LEAD_IN} [{c.other}]"
            new = new + [c.other]
        for n in new:
            if n not in result.cited:
                result.cited.append(n)
        if text != answer[start:end]:
            edits.append((start, end, text))
    out = answer
    for start, end, text in reversed(edits):
        out = out[:start] + text + out[end:]
    result.text = re.sub(r"[ \t]+([.,;])", r"\1", out) if edits else answer
    return result
