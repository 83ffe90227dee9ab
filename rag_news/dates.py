"""Dates in questions: "yesterday", "this week", "in October", "latest" become a window or a recency wish.

Entry point: :func:`time_window` (question, today) -> :class:`Window` (``since``/``until`` as ISO dates,
inclusive, and ``recent`` for "latest"-style questions). Only phrases with one clear meaning are read; a
question with none gets an empty window. Relative phrases ("yesterday", "this week", "last month") are
filters on the publication date; a named date ("on November 20", "in October 2026") names when something
happened, which the report may trail, so it widens a little and is a preference, not a filter. The
retriever applies it (see :mod:`rag_news.retrieve`); explicit ``--since``/``--until`` win.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_RECENT = re.compile(r"\b(latest|most recent(ly)?|newest|recent(ly)?|lately|just (announced|happened))\b", re.I)
_IN_MONTH = re.compile(rf"\b(?:in|during|throughout|from|of)\s+({_MONTH_RE})\b\.?(?:\s+(\d{{4}}))?", re.I)
_ON_DAY = re.compile(rf"\bon\s+(?:({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?|(\d{{1,2}})(?:st|nd|rd|th)?\s+"
                     rf"(?:of\s+)?({_MONTH_RE}))\b\.?(?:,?\s+(\d{{4}}))?", re.I)


_NAMED_DATE = re.compile(rf"^(?:[a-z]+\.?,?\s+)??(?:({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})|"
                         rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}}))\b", re.I)


def iso_date(value) -> str | None:
    """``value`` as the ISO text the stores compare dates by, or None when it is not a date.

    ISO dates and datetimes are kept as given ("2026-11-03", "2026-11-03T08:00:00Z"); ``date`` objects
    and dates written out ("November 3, 2026", "3 Nov 2026", RFC 2822's "Tue, 03 Nov 2026 08:00:00 GMT")
    become YYYY-MM-DD. Anything else ("last Tuesday") is None: the article is undated rather than
    compared as text, where "Tue, ..." would sort after every ISO date."""
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return text if re.match(r"\d{4}-\d\d-\d\d", text) else parsed.date().isoformat()  # "20261103" too
    except ValueError:
        pass
    m = _NAMED_DATE.match(text)
    if not m:
        return None
    month, day, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
    try:
        return date(int(year), _MONTHS[month.lower()], int(day)).isoformat()
    except ValueError:  # "February 30, 2026"
        return None


@dataclass
class Window:
    """A date window read from a question (both ends inclusive; None: open)."""

    since: str | None = None
    until: str | None = None
    recent: bool = False
    phrase: str | None = None  # the words it was read from
    strict: bool = True  # a filter; False: a preference (an event's date, which publication may trail)

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.recent)


def _past_month(month: int, year: int | None, today: date) -> tuple[date, date]:
    """A month named without a year is the latest such month not after today."""
    if year is None:
        year = today.year if month <= today.month else today.year - 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, 1), date(year, month, last)


def _past_day(month: int, day: int, year: int | None, today: date) -> date | None:
    try:
        d = date(year or today.year, month, day)
    except ValueError:
        return None
    return d.replace(year=d.year - 1) if year is None and d > today else d


def time_window(question: str, today: date) -> Window:
    """The date window ``question`` asks about, relative to ``today``."""
    q = question.lower()
    relative = {
        "today": (today, today), "yesterday": (today - timedelta(days=1),) * 2,
        "this week": (today - timedelta(days=6), today),
        "last week": (today - timedelta(days=today.weekday() + 7), today - timedelta(days=today.weekday() + 1)),
        "past week": (today - timedelta(days=7), today), "this month": (today.replace(day=1), today),
        "last month": _past_month(12 if today.month == 1 else today.month - 1,
                                  today.year - 1 if today.month == 1 else today.year, today),
    }
    for phrase, (start, end) in relative.items():
        if re.search(rf"\b{phrase}\b", q):
            return Window(start.isoformat(), end.isoformat(), phrase=phrase)
    m = _ON_DAY.search(question)
    if m:
        month = _MONTHS[(m.group(1) or m.group(4)).lower()]
        d = _past_day(month, int(m.group(2) or m.group(3)), int(m.group(5)) if m.group(5) else None, today)
        if d:  # reported that day or in the few days after
            return Window(d.isoformat(), (d + timedelta(days=3)).isoformat(), phrase=m.group(0).strip(), strict=False)
    m = _IN_MONTH.search(question)
    if m and not (m.group(1).lower() == "may" and m.group(2) is None):  # "in may" is mostly the verb
        start, end = _past_month(_MONTHS[m.group(1).lower()], int(m.group(2)) if m.group(2) else None, today)
        return Window(start.isoformat(), (end + timedelta(days=7)).isoformat(), phrase=m.group(0).strip(),
                      strict=False)
    m = _RECENT.search(question)
    if m:
        return Window(recent=True, phrase=m.group(0))
    return Window()
