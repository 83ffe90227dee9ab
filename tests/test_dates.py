"""Dates in questions become a filter, a preference or a recency wish (rag_news.dates)."""

from datetime import date

from rag_news.dates import time_window

MONDAY = date(2026, 11, 23)


def test_relative_phrases_are_filters_on_the_publication_date():
    w = time_window("What happened yesterday?", MONDAY)
    assert (w.since, w.until, w.strict) == ("2026-11-22", "2026-11-22", True)
    assert (time_window("Any news this week?", MONDAY).since, time_window("today's news", MONDAY).until) == \
        ("2026-11-17", "2026-11-23")
    last = time_window("What did the council approve last week?", MONDAY)
    assert (last.since, last.until) == ("2026-11-16", "2026-11-22")
    month = time_window("Which bridge was reported last month?", date(2026, 1, 10))
    assert (month.since, month.until) == ("2025-12-01", "2025-12-31")


def test_named_dates_are_widened_preferences():
    october = time_window("Which team won in October?", MONDAY)
    assert (october.since, october.until, october.strict) == ("2026-10-01", "2026-11-07", False)
    december = time_window("What opened in December?", MONDAY)  # not yet this year: last year's
    assert december.since == "2025-12-01"
    day = time_window("What did the Sensex touch on November 20, 2019?", MONDAY)
    assert (day.since, day.until) == ("2019-11-20", "2019-11-23")
    assert time_window("What happened on 3rd of November?", MONDAY).since == "2026-11-03"


def test_latest_asks_for_recency_and_plain_questions_get_no_window():
    assert time_window("What is the latest on the ferry?", MONDAY).recent
    assert not time_window("Who may win the cup?", MONDAY)  # "may" the verb
    assert not time_window("How many beds does the wing have?", MONDAY)
