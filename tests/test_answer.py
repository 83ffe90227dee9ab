"""The answer stage: the LCEL chain and NewsQA on the real packaged readers, the checks on what they say,
dated questions, retraction and cancellation of streams, and every backend.

End-to-end tests use the sample site served on 127.0.0.1 and indexed by the real pipeline (mpnet), the
packaged Qwen2.5-Coder-1.5B-Instruct on llama.cpp (the offline default), SmolLM2-135M-Instruct, a tiny
Mixtral, and llama.cpp's OpenAI-compatible server (openai and mistral backends: Mistral's API is
unreachable here, its client is pointed at that server).
"""

from __future__ import annotations


import json
import time
from pathlib import Path

import pytest
from langchain_community.chat_models import ChatLlamaCpp
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag_news.answer import ABSTAIN, Answer, NewsQA, Retraction, build_chain, without_label
from rag_news.llm import DEFAULT_LLM, load_llm
from rag_news.retrieve import NewsRetriever
from tests_support import tiny_mixtral

ANSWERABLE = "Where will the Eastmoor branch library be built?"
UNANSWERABLE = "What is the population of Paris?"
MONDAY = "2026-11-23"  # the day after the sample site's newest article
DATED = {q["id"]: q for q in map(json.loads, (Path(__file__).parent.parent / "data" / "dated-questions.jsonl")
                                 .read_text().splitlines()) if q}


@pytest.fixture(scope="module")
def qwen(news_index):
    """The offline default reader: the Hub unreachable and the CPU asked for (``device="cpu"``, so a host
    with a GPU runs the same test) -> the packaged Qwen 1.5B on llama.cpp in Mixtral's place."""
    return NewsQA(news_index.replace(max_new_tokens=60, today=MONDAY, device="cpu"))


def stub_reader(text: str) -> GenericFakeChatModel:
    """A chat model that streams ``text`` word by word, whatever it is asked (for tests of the checks)."""
    return GenericFakeChatModel(messages=iter([text] * 100))


def test_offline_default_is_the_packaged_qwen_and_its_answer_cites_the_right_passage(qwen):
    tokens = []
    a = qwen.ask(ANSWERABLE, on_token=tokens.append)
    assert qwen.info.backend == "llamacpp" and qwen.info.reader == "packaged"
    assert qwen.info.substituted_for == DEFAULT_LLM and "Qwen2.5-Coder-1.5B-Instruct" in qwen.info.notice()
    assert not a.abstained and "tram depot" in a.answer.lower(), a
    assert a.cited and a.sources[a.cited[0] - 1].url.endswith("/2026/11/library-eastmoor.html")
    assert not a.bad_citations and not a.unsupported_citation
    assert len(tokens) > 1 and "".join(tokens).strip() == a.answer  # streamed as generated
    assert a.retrieved[0].endswith("/2026/11/library-eastmoor.html") and set(a.timings) == {"retrieve", "generate"}


def test_an_answer_saying_the_passages_do_not_say_is_an_abstention_with_a_stub_reader(news_index):
    """The check under test, not the model: the reader's own words for "not in the passages"."""
    said = "The opening date is not specified in the given passages [1]."
    qa = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3), llm=stub_reader(said))
    items = list(qa.stream(ANSWERABLE))
    answer = items[-1]
    assert answer.abstained and answer.answer == ABSTAIN and answer.raw_answer == said and not answer.cited
    assert isinstance(items[-2], Retraction) and "do not hold" in items[-2].reason
    partial = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3),
                     llm=stub_reader("The cost is not stated in the passages, but it opens in the old tram depot [1]."))
    assert not partial.ask(ANSWERABLE).abstained  # it goes on to answer: an answer


def test_a_money_question_answered_with_no_sum_is_withheld_with_a_stub_reader(news_index):
    """The check under test, not the model: asked what the conversion costs, the reader tells when it opens."""
    question = "How much will the conversion of the Eastmoor tram depot cost?"
    off = "The conversion of the tram depot will open next year [1]."
    qa = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3), llm=stub_reader(off))
    items = list(qa.stream(question))
    answer = items[-1]
    assert answer.abstained and answer.answer == ABSTAIN and answer.raw_answer == off
    assert isinstance(items[-2], Retraction) and "sum of money" in items[-2].reason
    paid = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3),
                  llm=stub_reader("The conversion is budgeted at 6.4 million euros [1]."))
    assert not paid.ask(question).abstained  # a sum: an answer


def test_an_invented_figure_is_withheld_and_the_streamed_text_retracted_with_a_stub_reader(news_index):
    """The check under test, not the model: a stub reader writes a figure no passage holds, every time."""
    invented = "The library will seat 4825 readers [1]."
    qa = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3), llm=stub_reader(invented))
    items = list(qa.stream(ANSWERABLE))
    answer = items[-1]
    streamed = "".join(i for i in items if isinstance(i, str))
    assert streamed.strip() == invented  # the tokens were shown as they came...
    assert isinstance(items[-2], Retraction) and "4825" in items[-2].reason  # ...then withdrawn, and why
    assert "appear in no passage" in items[-2].reason
    assert isinstance(answer, Answer) and answer.abstained and answer.answer == ABSTAIN
    assert answer.raw_answer == invented and answer.note.startswith("withheld")
    grounded = NewsQA(news_index.replace(min_relevance=0, context_tokens=0, k=3),
                      llm=stub_reader("It will be built in the old tram depot [1]."))
    kept = list(grounded.stream(ANSWERABLE))
    assert not any(isinstance(i, Retraction) for i in kept) and not kept[-1].abstained  # a held figure stays


def test_the_real_reader_never_keeps_an_answer_to_an_unanswerable_question(qwen, news_index):
    """The packaged Qwen without the relevance floor: whatever it writes, the answer ends abstained — by its
    own abstention or by the figure check, whose retraction then follows exactly the streamed text."""
    qa = NewsQA(news_index.replace(max_new_tokens=40, min_relevance=0, device="cpu"), llm=qwen.llm,
                llm_info=qwen.info)
    items = list(qa.stream(UNANSWERABLE))
    answer = items[-1]
    assert isinstance(answer, Answer) and answer.abstained and answer.answer == ABSTAIN, answer
    retracted = [i for i in items if isinstance(i, Retraction)]
    assert len(retracted) == (answer.raw_answer is not None)
    if retracted:
        assert "".join(i for i in items if isinstance(i, str)).strip() == answer.raw_answer


def test_dated_questions_read_their_window(qwen):
    q = DATED["dated-01"]
    a = qwen.ask(q["question"])
    assert {s.published[:10] for s in a.sources} == {"2026-11-22"}  # yesterday's articles only
    assert a.sources[0].url.endswith("storm-warning.html"), a
    assert not a.abstained and a.answer != ABSTAIN, a  # answered (its wording varies: bench_answer --dated-only)
    none = qwen.ask("Which hospital opened a new wing this week?")  # that article is from 11-09: not this week
    assert none.abstained and all(s.published[:10] >= "2026-11-17" for s in none.sources), none


def test_citation_checks_report_out_of_range_and_unsupported_citations(qwen):
    docs = qwen.retrieve(ANSWERABLE)
    out = qwen.check_answer(ANSWERABLE, "The library will be built in the old tram depot [9].", docs, 0, 0)
    assert out.bad_citations == [9] and out.cited == [] and not out.citations_added
    assert "cites [9], but only" in out.note
    other = next(n for n, d in enumerate(docs, 1) if "tram depot" not in d.page_content)
    holder = next(n for n, d in enumerate(docs, 1) if "Quarry Lane" in d.page_content)
    wrong = qwen.check_answer(ANSWERABLE, f"It will be built on Quarry Lane [{other}].", docs, 0, 0)  # re-pointed
    assert wrong.answer == f"It will be built on Quarry Lane [{holder}]." and wrong.cited_raw == [other]
    assert not wrong.unsupported_citation and f"re-pointed [{other}] to [{holder}]" in wrong.note
    nowhere = qwen.check_answer(ANSWERABLE, f"It will be built on Marrowgate Heath [{other}].", docs, 0, 0)
    assert nowhere.unsupported_citation and "does not contain Marrowgate" in nowhere.note  # flagged, kept
    hedge = qwen.check_answer(ANSWERABLE, "I don't know, but probably the tram depot [1].", docs, 0, 0)
    assert not hedge.abstained  # a hedged answer is an answer


def test_an_abandoned_stream_stops_the_model(news_index):
    qwen = NewsQA(news_index.replace(max_new_tokens=400, today=MONDAY, device="cpu"))  # a long answer allowed
    client = qwen.llm.client  # llama.cpp: one eval() per generated token (a prompt read: one call, many tokens)
    steps = []
    original = client.eval
    client.eval = lambda tokens: (steps.append(len(tokens)), original(tokens))[1]  # a counting spy
    try:
        stream = qwen.stream("Write everything the passages say about the Larkspur Bay tidal power plant.",
                             since="2026-01-01")  # a date window: the model is asked, whatever the floor
        first = next(i for i in stream if isinstance(i, str))
        at_first = len(steps)
        stream.close()
        at_close = len(steps)
        time.sleep(2.0)  # a decoder left running elsewhere (a thread) would go on evaluating meanwhile
        after_wait = len(steps)
        nxt = qwen.ask(ANSWERABLE)
    finally:
        del client.eval
    decoded = sum(1 for n in steps[:at_close] if n == 1)
    assert first and 1 <= decoded < 200  # stopped well before its 400-token limit
    assert at_close - at_first <= 1, (at_first, at_close)  # close() asked the model for no more than one token
    assert after_wait == at_close  # nothing evaluated after close()
    next_start = steps[at_close]
    assert next_start > 1, steps[at_close:at_close + 3]  # the next call to the model reads a prompt: no token
    assert not nxt.abstained and "tram depot" in nxt.answer.lower()  # the model is free for the next question


def test_the_chain_and_the_stream_are_one_path_with_a_tiny_mixtral(news_index, tmp_path):
    folder = tiny_mixtral(tmp_path / "mixtral")
    settings = news_index.replace(llm_model=str(folder), max_new_tokens=8, device="cpu", verify=False)
    llm = load_llm(settings)
    qa = NewsQA(settings, llm=llm)
    out = qa.chain().invoke(ANSWERABLE)
    assert out["question"] == ANSWERABLE and out["passages"][0].metadata["url"].endswith("library-eastmoor.html")
    assert isinstance(out["answer"], str) and "[INST]" not in out["answer"]
    assert qa.ask(ANSWERABLE).answer == "".join(without_label([out["answer"].strip()]))  # greedy: same text
    plain = build_chain(NewsRetriever(index=qa.index, k=3), llm).invoke(ANSWERABLE)  # a LangChain user's chain
    assert 1 <= len(plain["passages"]) <= 3


def test_smollm2_keeps_its_small_model_aids(news_index):
    qa = NewsQA(news_index.replace(llm_model="smollm2", max_new_tokens=40))
    u = qa.ask(UNANSWERABLE)
    assert qa.info.reader == "smollm2" and qa.context_budget() == 384 and qa.relevance_floor() == 0.5
    assert u.abstained and "close enough" in u.note


# ------------------------------------------------------------------------------------------ backends
def test_openai_backend_against_a_llama_cpp_server(news_index, llama_server):
    qa = NewsQA(news_index.replace(backend="openai", llm_base_url=llama_server, llm_model="smollm2",
                                   max_new_tokens=40, context_tokens=200))
    tokens = []
    a = qa.ask(ANSWERABLE, on_token=tokens.append)
    assert type(qa.llm).__name__ == "ChatOpenAI" and qa.info.backend == "openai"
    assert len(tokens) > 1 and a.sources[0].url.endswith("library-eastmoor.html")
    assert_answered_from_the_library_article(a)


def assert_answered_from_the_library_article(a: Answer) -> None:
    """Not an abstention; the library article's fact (the old tram depot) stated, from the library article
    among the sources, and any citation pointing at it. SmolLM2 (135M) writes the [n] marker or not
    depending on the digits of the sample site's port in the prompt (a random port: seen in CI, the answer
    "…in the old tram depot, which is located in the Eastmoor district." with no marker, which attribution
    rightly leaves uncited for its unsupported clause); the citation rules are tested on fixed outputs."""
    assert not a.abstained and a.answer != ABSTAIN and "tram depot" in a.answer.lower(), a
    library = [i for i, s in enumerate(a.sources, 1) if s.url.endswith("library-eastmoor.html")]
    assert library and (not a.cited or set(a.cited) & set(library)), a


def test_mistral_backend_client_against_a_local_endpoint(news_index, llama_server, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "local-test-key")
    qa = NewsQA(news_index.replace(backend="mistral", llm_base_url=llama_server, llm_model="smollm2",
                                   max_new_tokens=40, context_tokens=200))
    a = qa.ask(ANSWERABLE)
    assert type(qa.llm).__name__ == "ChatMistralAI"
    assert_answered_from_the_library_article(a)


def test_llamacpp_backend_runs_a_packaged_gguf(news_index):
    qa = NewsQA(news_index.replace(backend="llamacpp", llm_model="smollm2", max_new_tokens=40))
    a = qa.ask(ANSWERABLE)
    assert isinstance(qa.llm, ChatLlamaCpp) and qa.info.reader == "smollm2"
    assert_answered_from_the_library_article(a)


def test_mistral_backend_needs_a_key(news_index, monkeypatch):
    from rag_news.errors import ConfigError
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MISTRAL_API_KEY"):
        load_llm(news_index.replace(backend="mistral"))


def test_streamed_answer_loses_a_leading_label_but_not_an_article():
    assert "".join(without_label(["A", ":", " 7,400", " students", " [1]."])) == "7,400 students [1]."
    assert "".join(without_label([" Answer: the", " old tram depot"])) == "the old tram depot"
    assert "".join(without_label(["A man", " was", " arrested."])) == "A man was arrested."
    assert "".join(without_label(["A:"])) == ""


def test_streamed_answer_ends_where_the_model_invents_its_next_question():
    # what the real Qwen2.5 1.5B wrote after a follow-up's answer (the follow-up benchmark's rows)
    seen = ["The battery of the ID. Space", " Vizzion is 82 kWh", ".\n", "\nQues", "tion: What is", " its range?"]
    consumed = []
    stream = (consumed.append(p) or p for p in seen)
    assert "".join(without_label(stream)).strip() == "The battery of the ID. Space Vizzion is 82 kWh."
    assert len(consumed) == 5  # the model's stream is left at the invented question, not read to its end
    kept = ["It is 5", "\nQ", "uestions remain open [1]."]  # a line merely beginning with "Q..." stays
    assert "".join(without_label(kept)) == "It is 5\nQuestions remain open [1]."
