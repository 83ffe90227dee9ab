"""Questions that combine two figures, answered as two sub-questions and combined by arithmetic.

"Which is larger: A, or B?", "What is the combined number of A and the B?", "Add A to B. What is the
total?", "How much larger was A than B?": each side needs its own article, and the arithmetic is where a
small reader fails (on the dev multi-hop set the 1.5B reader, given both passages, answered "larger by
$3,000" and "a total of 3"). Here (:func:`plan`, rules, no model call) the question is split into its two
sides; each side is asked as its own question on the one-retrieval path (:meth:`NewsQA.ask`, with its own
passages, citations and checks); the figure each answer states is read (:func:`figure_of`) and the two
are compared, added or subtracted here (:func:`combine`). The answer states both figures with their
citations and the result.

* A side whose answer abstains (or is withheld by the checks) makes the whole answer abstain: the index
  does not hold that fact.
* A side answered without a figure, or figures in different currencies, cannot be combined here: the
  question goes to research mode instead (:mod:`rag_news.research`), as it would without this step.
* Each sub-question is streamed as a tool call (``ask_news``) before the answer, like research mode's
  searches: an SSE ``tool`` event, a CLI line, a line on the chat page.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Iterator, Sequence

from .checks import without_citations
from .figures import _DATES, _SCALE_ABBR, _SCALES, canonical, figures
from .tools import ToolCall

_BIGGER = r"larger|bigger|greater|higher|more"
_SMALLER = r"smaller|lower|less|fewer"
_COMPARE = re.compile(rf"^\s*(?:which|what)\b(?:\s+(?P<noun>\w+))?\s+(?P<verb>is|was|are|were)\s+(?P<dir>{_BIGGER}|{_SMALLER})"
                      r"\s*[:,\u2014-]?\s*(?P<a>.+?),?\s+or\s+(?P<b>.+?)\?", re.IGNORECASE)
_COMBINED = re.compile(r"^\s*what\s+(?P<verb>is|was|are|were)\s+the\s+(?:combined|total)\s+(?P<head>[\w-]+)\s+of\s+"
                       r"(?P<a>.+?)\s+and\s+(?P<b>the\s.+?)\?\s*$", re.IGNORECASE)
_ADD = re.compile(r"^\s*add\s+(?P<a>.+?)\s+to\s+(?P<b>the\s.+?)\.\s+what\s+(?P<verb>is|was)\s+the\s+(?:total|sum)\??\s*$",
                  re.IGNORECASE)
_DIFFERENCE = re.compile(rf"^\s*how\s+much\s+(?P<dir>{_BIGGER}|{_SMALLER})\s+(?P<verb>is|was|are|were)\s+(?P<a>.+?)"
                         r"\s+than\s+(?P<b>.+?)\?\s*$", re.IGNORECASE)
_FIGURE = re.compile(r"(?P<cur>[$€£])?\s?(?<![\w.])(?P<num>\d[\d,]*(?:\.\d+)?)"
                     r"(?:\s*(?P<scale>million|billion|trillion|thousand|bn)\b)?", re.IGNORECASE)


@dataclass
class Plan:
    """What :func:`plan` read: ``op`` (``larger`` | ``smaller`` | ``sum`` | ``difference``), the two
    ``sides`` as noun phrases, and the ``questions`` asked for them."""

    op: str
    sides: tuple[str, str]
    questions: tuple[str, str]


@dataclass
class Figure:
    value: Decimal
    currency: str
    text: str  # as the answer wrote it


def plan(question: str) -> Plan | None:
    """The two sides of a question that compares, adds or subtracts two figures; None for any other."""
    q = " ".join(question.split())
    m = _COMPARE.match(q)
    if m:
        op = "larger" if re.fullmatch(_BIGGER, m["dir"], re.I) else "smaller"
        noun = (m["noun"] or "").lower()
        if noun in ("number", "amount", "figure", "sum"):  # "Which number is larger: the CPU cores ..., or ...?"
            return _plan(op, _headed(noun, m["a"]), _headed(noun, m["b"]), m["verb"])
        return _plan(op, m["a"], m["b"], m["verb"])
    m = _DIFFERENCE.match(q)
    if m:
        return _plan("difference", m["a"], m["b"], m["verb"])
    m = _COMBINED.match(q)
    if m:  # "the combined number of A and the B": both sides are numbers of something
        return _plan("sum", _headed(m["head"], m["a"]), _headed(m["head"], m["b"]), m["verb"])
    m = _ADD.match(q)
    if m:
        return _plan("sum", m["a"], m["b"], m["verb"])
    return None


def _headed(head: str, side: str) -> str:
    """``"days the festival runs"`` under ``number`` -> ``"the number of days the festival runs"``; a side
    that names its own quantity ("the list-price value of the order") is kept."""
    words = side.split()
    if "of" in [w.lower() for w in words[:4]]:
        return side
    plural = words[0].lower() == "the" and any(w.endswith("s") and not w.endswith(("'s", "ss")) for w in words[1:4])
    return f"the {head} of {side[4:] if plural else side}"  # "the number of days ...", "the price of the cheapest ..."


def _plan(op: str, a: str, b: str, verb: str) -> Plan | None:
    a, b = a.strip(" ,"), b.strip(" ,")
    if len(a.split()) < 3 or len(b.split()) < 3:
        return None  # "Which is larger, 3 or 4?": nothing to look up
    verb = verb.lower() if verb.lower() in ("is", "was") else ("was" if verb.lower() == "were" else "is")
    return Plan(op, (a, b), (f"What {verb} {a}?", f"What {verb} {b}?"))


def figure_of(answer: str, question: str) -> Figure | None:
    """The first figure an answer states that its question does not (dates and citation marks aside)."""
    text = _DATES.sub(" ", without_citations(answer))
    asked = figures(question)
    for m in _FIGURE.finditer(text):
        try:
            value = Decimal(m["num"].replace(",", "").rstrip("."))
        except InvalidOperation:
            continue
        if canonical(value) in asked:
            continue
        scale = (m["scale"] or "").lower()
        return Figure(value * _SCALES.get(_SCALE_ABBR.get(scale, scale), 1), m["cur"] or "", m.group().strip())
    return None


def combine(op: str, a: Figure, b: Figure) -> Decimal | None:
    """The result of ``op`` on the two figures (``larger`` / ``smaller``: the chosen one's value); None when
    they are in different currencies."""
    if a.currency != b.currency and a.currency and b.currency:
        return None
    if op == "larger":
        return max(a.value, b.value)
    if op == "smaller":
        return min(a.value, b.value)
    return a.value + b.value if op == "sum" else abs(a.value - b.value)


def written(value: Decimal, currency: str) -> str:
    """``516000`` -> ``516,000``; ``8800000000`` with ``$`` -> ``$8.8 billion``."""
    for word, scale in (("trillion", 10 ** 12), ("billion", 10 ** 9), ("million", 10 ** 6)):
        if abs(value) >= scale:
            return f"{currency}{canonical(value / scale)} {word}"
    whole = value == value.to_integral_value()
    return f"{currency}{int(value):,}" if whole else f"{currency}{canonical(value)}"


def sentence(p: Plan, figs: Sequence[Figure], marks: Sequence[str], result: Decimal) -> str:
    """The answer: the result first, then each side's figure with its citation."""
    cur = figs[0].currency or figs[1].currency
    sides = [f"{side}: {fig.text} {mark}".rstrip() for side, fig, mark in zip(p.sides, figs, marks)]
    if p.op in ("larger", "smaller"):
        chosen = 0 if figs[0].value == result else 1
        if figs[0].value == figs[1].value:
            return f"They are the same: {written(result, cur)} ({sides[0]}; {sides[1]})."
        return f"The {p.op} is {p.sides[chosen]}, {written(result, cur)} ({sides[0]}; {sides[1]})."
    if p.op == "sum":
        return f"The total is {written(result, cur)} ({sides[0]}; {sides[1]})."
    more = figs[0].value >= figs[1].value
    return (f"The difference is {written(result, cur)}: {p.sides[0]} is {'larger' if more else 'smaller'} "
            f"({sides[0]}; {sides[1]}).")


def stream_decomposed(qa, question: str, p: Plan, since: str | None = None, until: str | None = None,
                      k: int | None = None, outlets: Sequence[str] = ()) -> Iterator:
    """:meth:`NewsQA.stream` for a planned question: a :class:`ToolCall` (``ask_news``) per side once it is
    answered, then the answer text, then the :class:`~rag_news.answer.Answer`; or, when a side's answer
    holds no usable figure, nothing but the sub-answers' tool calls and ``None`` last (the caller then runs
    research mode)."""
    t0 = time.perf_counter()
    subs, figs = [], []
    for sub in p.questions:
        a = qa.ask(sub, since=since, until=until, research="never", k=k, outlets=outlets)
        offset = sum(len(s.sources) for s in subs)
        subs.append(a)
        yield ToolCall("ask_news", {"question": sub}, passages=[n + offset for n in a.cited],
                       error=None if not a.abstained else (a.note or "no answer in the indexed articles"))
        if a.abstained:
            yield _abstained(question, subs, t0, f"no answer found for: {sub}")
            return
        figs.append(figure_of(a.answer, sub))
    result = None if None in figs else combine(p.op, figs[0], figs[1])
    if result is None:
        yield None
        return
    answer = _merged(question, subs, t0)
    offsets = [0, len(subs[0].sources)]
    marks = ["".join(f"[{n + off}]" for n in a.cited) for a, off in zip(subs, offsets)]
    answer.answer = sentence(p, figs, marks, result)
    answer.note = f"combined by arithmetic ({p.op}) from the answers to: " + " | ".join(p.questions)
    yield answer.answer
    yield answer


def _merged(question: str, subs: list, t0: float):
    """One Answer over the sub-answers' passages (renumbered in order), citing what they cited."""
    from .answer import Answer

    sources, cited, offset = [], [], 0
    for a in subs:
        sources += [replace(s, n=s.n + offset) for s in a.sources]
        cited += [n + offset for n in a.cited]
        offset += len(a.sources)
    secs = round(time.perf_counter() - t0, 3)
    return Answer(question=question, answer="", sources=sources, abstained=False, cited=cited,
                  timings={"research": secs, "tool_calls": len(subs),
                           "retrieve": round(sum(a.timings.get("retrieve", 0) for a in subs), 3),
                           "generate": round(sum(a.timings.get("generate", 0) for a in subs), 3)},
                  model=subs[0].model, retrieved=list(dict.fromkeys(u for a in subs for u in a.retrieved)),
                  standalone_question=question)


def _abstained(question: str, subs: list, t0: float, note: str):
    from .checks import ABSTAIN

    answer = _merged(question, subs, t0)
    answer.answer, answer.abstained, answer.cited, answer.note = ABSTAIN, True, [], note
    return answer
