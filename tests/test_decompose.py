"""Two-figure questions as two sub-questions combined by arithmetic (rag_news.decompose): the rules that
split a question, the figures read from answers, the arithmetic, and the whole path through
``NewsQA.stream`` in research mode over the sample site indexed by the real pipeline (MiniLM). The reader's
answers to the sub-questions are scripted (tests/chat_stubs.py, named so): retrieval, the checks, the
citations and the arithmetic are real."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chat_stubs import ScriptedReader, sample_settings  # noqa: F401 (a fixture)
from rag_news import NewsQA
from rag_news.decompose import Figure, combine, figure_of, plan, sentence, written
from rag_news.tools import ToolCall

TWO_HOP = ("Which is larger: the number of beds in St Brennan's new children's wing, or the number of rooms "
           "Larkspur College has for student housing?")
BEDS, ROOMS = ("What is the number of beds in St Brennan's new children's wing?",
               "What is the number of rooms Larkspur College has for student housing?")


@pytest.mark.parametrize("question, op, questions", [
    (TWO_HOP, "larger", (BEDS, ROOMS)),
    ("Which number is smaller: the CPU cores the simulation needed, or the daily papers the group owns?", "smaller",
     ("What is the number of CPU cores the simulation needed?", "What is the number of daily papers the group owns?")),
    ("What is the combined number of beds in the new wing and the rooms the college has?", "sum",
     ("What is the number of beds in the new wing?", "What is the number of rooms the college has?")),
    ("Add the number of nurses the hospital recruited to the number of rooms the college has. What is the total?",
     "sum", ("What is the number of nurses the hospital recruited?", "What is the number of rooms the college has?")),
    ("How much larger was the bond the man was held on than the library fine the author ran up?", "difference",
     ("What was the bond the man was held on?", "What was the library fine the author ran up?")),
])
def test_plan_splits_a_two_figure_question_into_its_sides(question, op, questions):
    p = plan(question)
    assert p is not None and p.op == op and p.questions == questions


@pytest.mark.parametrize("question", [
    "Where will the Eastmoor branch library be built?", "Which is larger, 3 or 4?",
    "Which came later: the festival's opening, or the team's win at Northern Illinois?",
    "Did the company hire him before or after the merger?"])
def test_plan_leaves_other_questions_alone(question):
    assert plan(question) is None


def test_figure_of_reads_the_answers_own_figure_with_its_currency_and_scale():
    q = "What is the number of shots he stopped when the Islanders won 5-4?"
    assert figure_of("In the 5-4 win he stopped 27 shots [1].", q).value == 27  # the question's own figures skipped
    fine = figure_of("The fine was $3,000 [2].", "What was the fine?")
    assert (fine.value, fine.currency, fine.text) == (Decimal(3000), "$", "$3,000")
    assert figure_of("An order worth $8.8 billion [1].", "What was the order?").value == Decimal("8.8E9")
    assert figure_of("From 29 November 2018 it runs for 53 days [1].", "How long?").value == 53  # dates skipped
    assert figure_of("It has none [1].", "How many?") is None


def test_combine_and_the_answer_sentence():
    small, big = Figure(Decimal(3000), "$", "$3,000"), Figure(Decimal(516000), "$", "$516,000")
    assert combine("larger", small, big) == 516000 and combine("smaller", small, big) == 3000
    assert combine("sum", small, big) == 519000 and combine("difference", big, small) == 513000
    assert combine("sum", small, Figure(Decimal(5), "€", "€5")) is None  # different currencies: not combined
    assert written(Decimal("8800000000"), "$") == "$8.8 billion" and written(Decimal(513000), "$") == "$513,000"
    p = plan("How much larger was the bond the man was held on than the library fine the author ran up?")
    text = sentence(p, [big, small], ["[3]", "[1]"], combine(p.op, big, small))
    assert text.startswith("The difference is $513,000: the bond the man was held on is larger")
    assert "$516,000 [3]" in text and "$3,000 [1]" in text


def stub(beds: str = "The new children's wing has 36 beds [1].", rooms: str = "The college has 900 rooms [1].",
         ) -> ScriptedReader:
    return ScriptedReader(rules=[("number of beds", beds), ("number of rooms", rooms)])


def test_a_two_figure_question_is_answered_from_two_sub_questions_with_a_scripted_reader(sample_settings):
    qa = NewsQA(sample_settings, llm=stub())
    items = list(qa.stream(TWO_HOP, research="always"))
    calls, answer = [i for i in items if isinstance(i, ToolCall)], items[-1]
    assert [c.name for c in calls] == ["ask_news", "ask_news"]
    assert [c.arguments["question"] for c in calls] == [BEDS, ROOMS] and calls[0].line() == f'asking: "{BEDS}"'
    assert not answer.abstained and answer.answer.startswith("The larger is the number of rooms Larkspur College")
    assert "900" in answer.answer and "36" in answer.answer and answer.timings["tool_calls"] == 2
    assert calls[0].passages and calls[1].passages and min(calls[1].passages) > max(calls[0].passages)
    texts = {s.n: s.text for s in answer.sources}  # each figure's citation points at a passage that holds it
    assert any("36 beds" in texts[n] for n in calls[0].passages) and any("900 rooms" in texts[n] for n in calls[1].passages)
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))  # renumbered in order
    assert answer.cited == calls[0].passages + calls[1].passages
    asked = [c["messages"][-1][1].rsplit("Question:", 1)[-1].strip() for c in qa.llm.calls]
    assert asked == [BEDS, ROOMS]  # one reader call per side, nothing else


def test_a_side_the_index_cannot_answer_makes_the_whole_answer_abstain_with_a_scripted_reader(sample_settings):
    qa = NewsQA(sample_settings, llm=stub(rooms="I don't know based on the indexed articles."))
    items = list(qa.stream(TWO_HOP, research="always"))
    answer = items[-1]
    assert answer.abstained and answer.note == f"no answer found for: {ROOMS}" and "900" not in answer.answer
    assert [i.error is not None for i in items if isinstance(i, ToolCall)] == [False, True]


def test_a_side_answered_without_a_figure_goes_to_research_mode_and_the_setting_turns_the_step_off(sample_settings):
    qa = NewsQA(sample_settings, llm=stub(rooms="The college has plenty of rooms [1]."))
    items = list(qa.stream(TWO_HOP, research="always"))
    assert [i.name for i in items if isinstance(i, ToolCall)] == ["ask_news", "ask_news"]
    assert "tool_calls" in items[-1].timings and not (items[-1].note or "").startswith("combined by arithmetic")
    off = NewsQA(sample_settings.replace(research_arithmetic=False), llm=stub())
    assert not [i for i in off.stream(TWO_HOP, research="always") if isinstance(i, ToolCall) and i.name == "ask_news"]
    never = NewsQA(sample_settings, llm=stub()).ask(TWO_HOP, research="never")
    assert "tool_calls" not in never.timings  # one retrieval: no sub-questions
