"""Figures read as numbers, for the answer checks (:mod:`rag_news.checks`).

:func:`figures` turns a text's figures into canonical number strings: ``"1,180"`` -> ``1180``, ``"5.50"`` ->
``5.5``, ``"five-and-a-half"`` -> ``5.5``, ``"twenty-five"`` -> ``25``, and ``"2.5 million"`` -> both ``2.5``
and ``2500000``. With ``claims_only`` (an answer's figures), numbers inside dates and times ("November 21,
2019", "2019-11-21", "21 Nov", "10:30") are no figures, and a lone small number word ("one of them") is
none either; passages keep every form (they are what supports a claim).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000}
_FRACTIONS = {"half": Decimal("0.5"), "quarter": Decimal("0.25")}
_NUMWORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True))
_FIRST = "|".join(sorted([*_UNITS, *_TENS], key=len, reverse=True))
_WORDS = re.compile(rf"\b(?:{_FIRST})(?:[\s-]+(?:{_NUMWORD}))*"
                    rf"(?:[\s-]+and[\s-]+a[\s-]+(?:half|quarter))?\b", re.IGNORECASE)
_DIGITS = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s+(million|billion|thousand|trillion|bn|m)\b)?", re.IGNORECASE)
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DATES = re.compile(
    rf"\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?)?\b"                  # ISO
    rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"                         # November 21, 2019
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\b"               # 21 November 2019
    rf"|\b{_MONTH}\s+\d{{4}}\b"                                                            # November 2019
    rf"|\b\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\s*[ap]\.?m\.?)?\b"                              # 10:30
    rf"|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b", re.IGNORECASE)                                  # 11/21/2019
_SCALE_ABBR = {"bn": "billion", "m": "million"}


def canonical(value: Decimal) -> str:
    """``Decimal("5.50")`` -> ``"5.5"``, ``Decimal("1180")`` -> ``"1180"``."""
    s = format(value.normalize(), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def words_value(phrase: str) -> Decimal | None:
    """``"five-and-a-half"`` -> 5.5, ``"one hundred and twenty"`` -> 120, ``"2"`` -> None."""
    total, current, frac = 0, 0, Decimal(0)
    for w in re.split(r"[\s-]+", phrase.lower()):
        if w in ("and", "a"):
            continue
        if w in _FRACTIONS:
            frac = _FRACTIONS[w]
        elif w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _SCALES:
            total += max(current, 1) * _SCALES[w]
            current = 0
        else:
            return None
    return Decimal(total + current) + frac


def _digit_forms(m: re.Match) -> list[str]:
    raw = m.group().split()[0].replace(",", "").rstrip(".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return []
    out = [canonical(value)]
    scale = (m.group(1) or "").lower()
    scale = _SCALE_ABBR.get(scale, scale)
    if scale:
        out.append(canonical(value * _SCALES[scale]))
    return out


def claims(text: str, claims_only: bool = False) -> dict[str, set[str]]:
    """The figures ``text`` states: ``{as written (canonical): every form it may be found as}`` ("2.5
    million" -> ``{"2.5": {"2.5", "2500000"}}``)."""
    if claims_only:
        text = _DATES.sub(" ", text)
    out: dict[str, set[str]] = {}
    for m in _DIGITS.finditer(text):
        forms = _digit_forms(m)
        if forms:
            out.setdefault(forms[0], set()).update(forms)
    for m in _WORDS.finditer(text):
        phrase = m.group()
        value = words_value(phrase)
        if value is None:
            continue
        if claims_only and len(re.split(r"[\s-]+", phrase)) == 1 and value < 20:
            continue  # "one of them", "two weeks": a lone small number word is no checkable figure
        forms = out.setdefault(canonical(value), {canonical(value)})
        after = text[m.end():m.end() + 12].lower().split()
        if after and after[0].strip(",.") in _SCALES and phrase.lower().split()[-1] not in _SCALES:
            forms.add(canonical(value * _SCALES[after[0].strip(",.")]))
    return out


def figures(text: str, claims_only: bool = False) -> set[str]:
    """Every form of every figure ``text`` states (what a passage can support a claim with)."""
    return {f for forms in claims(text, claims_only).values() for f in forms}
