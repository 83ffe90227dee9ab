"""Checks on answers (rag_news.checks): abstention, citations, key terms, invented figures, attribution."""

from langchain_core.documents import Document

import pytest

from rag_news.checks import (ABSTAIN, attribute, citations, contains, declines, is_abstention, key_terms,
                             names_no_sum, restates, supporting, unsupported_figures)


def _doc(text, n=1):
    return Document(page_content=text, metadata={"title": f"Story {n}", "url": f"http://127.0.0.1/{n}.html"})


def test_only_the_bare_abstention_sentence_is_an_abstention():
    assert is_abstention(ABSTAIN) and is_abstention("I don’t know based on the indexed articles")
    assert is_abstention("") and is_abstention("I do not know.")
    assert not is_abstention("I don't know, but the plant cost 118 million euros [1].")
    assert not is_abstention("The plant cost 118 million euros [1].")


@pytest.mark.parametrize("answer, expected", [
    ("The cost of the ID. Space Vizzion wagon is not specified in the given passages.", True),  # seen on Qwen 1.5B
    ("The passage does not provide information about the payment amount.", True),
    ("The passages do not mention his age [1].", True),
    ("There is no information about the price.", True),
    ("The price is not specified in the passages, but the battery is 82 kWh [1].", False),
    ("The tickets go on sale Friday, Dec. 6 [1]. The price is not stated in the passages.", False),
    ("The passage does not provide the exact date; it was in June [2].", False),
    ("He was not given a penalty in the game [2].", False),
    ("Each of them had to pay $250,000 [2].", False)])
def test_an_answer_that_only_says_the_passages_do_not_say_declines(answer, expected):
    assert declines(answer) is expected


@pytest.mark.parametrize("answer, question, expected", [
    ("The tickets go on sale at 10 a.m. Friday, Dec. 6 [1].", "How much do the tickets cost?", True),
    ("Tickets cost $49.50 to $150 [1].", "How much do the tickets cost?", False),
    ("Each team was fined 250,000 dollars [2].", "How much did each of them have to pay?", False),
    ("The conversion is budgeted at 6.4 million euros [1].", "How much will it cost?", False),
    ("Entry is free [1].", "How much does it cost to get in?", False),
    ("It will cost a lot [1].", "How much will it cost?", True),
    ("Prices rose 3% [1].", "How much did prices rise?", False),  # not a question about a sum of money
    ("It grew 12 metres [1].", "How much did the tree grow?", False)])
def test_a_money_question_answered_with_no_sum_is_told(answer, question, expected):
    assert names_no_sum(answer, question) is expected


def test_citations_in_range_and_out_of_range_are_told_apart():
    found = citations("It opened [2][3], see also [9] and [1, 2]; and [4-5].", 4)
    assert found.valid == [2, 3, 1, 4] and found.out_of_range == [9, 5]


def test_citation_markers_are_not_figures():
    docs = [_doc("The wing has 36 beds.")]
    assert unsupported_figures("It has 36 beds, as passage [4] says [1].", "How many beds?", docs) == []
    assert unsupported_figures("It has 40 beds, 2 more than in 2025.", "Beds in 2025?", docs) == ["2", "40"]


def test_figures_in_a_copied_source_url_are_not_claims():
    docs = [_doc("The library will be built in the old tram depot.")]
    answer = "It will be built in the old tram depot — http://127.0.0.1:38519/2026/11/library-eastmoor.html"
    assert unsupported_figures(answer, "Where will the library be built?", docs) == []
    assert unsupported_figures(answer + ", for 12 million euros", "Where?", docs) == ["12"]  # the rest still counts


def test_key_terms_are_the_answers_figures_and_names_beyond_the_question():
    terms = key_terms("Mara Ellison said the plant cost 118 million euros [1].", "What did the plant cost?")
    assert terms == ["118", "Mara", "Ellison"]
    assert contains("Cost: 1,180 euros", "1180") and not contains("It cost 118 euros", "11")
    assert contains("said Mara Ellison", "Ellison") and not contains("Ellisonia", "Ellison")


def test_supporting_passages_and_attribution():
    docs = [_doc("Construction cost 118 million euros."), _doc("The wing has 36 beds and 12 nurses.", n=2)]
    assert supporting(["36", "12"], docs) == [2] and supporting(["999"], docs) == []
    assert attribute("The wing has 36 beds.", "How many beds?", docs) == [2]
    assert attribute("It was expensive: construction cost a lot of euros.", "Cost?", docs) == [1]
    assert attribute("Nothing related here at all.", "Cost?", docs) == []
    assert attribute("The wing has many beds and nurses — http://127.0.0.1:42421/2026/11", "Which wing?", docs) == [2]


def test_an_answer_that_only_restates_the_question_is_caught():
    assert restates("The hospital opened a new wing this week [1].", "Which hospital opened a new wing this week?")
    assert not restates("St Brennan's opened a children's wing [2].", "Which hospital opened a new wing this week?")
    assert not restates("", "Which hospital?")


def test_an_answer_picking_one_side_of_the_questions_choice_is_not_a_restatement():
    q = "Was the wing approved by the council before or after the election? Answer before or after."
    assert not restates("The council approved the wing before the election [1].", q)
    assert not restates("After [2].", q)
    assert restates("The council approved the wing before or after the election [1].", q)  # both sides: no choice
    assert restates("The council approved the wing [1].", q)  # neither side
    assert not restates("The wing was a loss [1].", "Was the wing a win or a loss?")
    # a choice between two long phrases is not a one-word choice: naming one side still restates
    assert restates("The wing is larger [1].", "Which is larger: the wing, or the lecture halls of the college?")


def test_figures_written_in_words_are_read_as_numbers():
    docs = [_doc("Support fell by five-and-a-half points; twelve people and twenty-five staff were hired.")]
    assert unsupported_figures("Support fell 5.5 points [1].", "By how much?", docs) == []
    assert unsupported_figures("It hired 12 people and 25 staff [1].", "Hires?", docs) == []
    assert unsupported_figures("Support fell 6.5 points [1].", "By how much?", docs) == ["6.5"]
    digits = [_doc("The plan costs 2.5 million euros, 5.50 per head.")]
    assert unsupported_figures("It costs 2,500,000 euros, 5.5 a head [1].", "Cost?", digits) == []
    assert unsupported_figures("It fell five-and-a-half points [1].", "By how much?", [_doc("It fell 5.5 points.")]) == []
    assert unsupported_figures("It fell seven-and-a-half points [1].", "Fall?", [_doc("It fell 5.5 points.")]) == ["7.5"]
    assert contains("Support fell by five-and-a-half points", "5.5")


def test_figures_inside_dates_and_times_are_not_claims():
    docs = [_doc("The council votes on Thursday; 40 members sit on it.")]
    for answer in ("The council votes on November 21, 2019 [1].", "The council votes on 2019-11-21 [1].",
                   "It votes on 21 November 2019 at 10:30 [1].", "It votes on Nov. 21 [1]."):
        assert unsupported_figures(answer, "When does it vote?", docs) == [], answer
    assert unsupported_figures("It votes on November 21; 41 members sit on it [1].", "When?", docs) == ["41"]
