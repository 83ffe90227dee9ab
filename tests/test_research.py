"""Research mode (rag_news.research): the loop's bound and its tool errors with scripted drivers (the
reader's decisions are what is scripted; retrieval, tools, checks and the answer's path are real), the
``auto`` rules, and each backend's tool path on real models: the packaged Qwen2.5 through its chat
template's tool format on llama.cpp, the JSON call held by a llama.cpp grammar (SmolLM2 GGUF, whose
template has no tools, as Mixtral's has none), the same call held by lm-format-enforcer on the tiny
Mixtral (transformers, random weights: only a constraint can make it emit a valid call), and native tool
calling through LangChain's ``bind_tools`` against llama.cpp's OpenAI-compatible server on 127.0.0.1.

The index: the sample site on 127.0.0.1, indexed by the real pipeline with all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from conftest import make_settings
from rag_news.answer import Answer, NewsQA
from rag_news.research import (CALL_SCHEMA, Gathered, parse_json_call, stream_research, wants_research)
from rag_news.tools import ToolCall
from servers import llama_cpp_server

ROOT = Path(__file__).resolve().parent.parent
TWO_HOP = ("Which is larger: the number of beds in St Brennan's new children's wing, or the number of rooms "
           "Larkspur College has for student housing?")
SIMPLE = "Where will the Eastmoor branch library be built?"


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory, cache_dir, site_article_urls):
    from rag_news import index_urls

    s = make_settings(tmp_path_factory.mktemp("research"), cache_dir)
    assert index_urls(site_article_urls, s).pages_ok == len(site_article_urls)
    # every search fills its k: the tools' mechanics, not the gap, are tested here; the reader's own tool loop
    # is, so two-figure questions are not first split into sub-questions (that step: tests/test_decompose.py)
    return s.replace(today="2026-11-23", min_relevance=0, context_tokens=0, k=3, max_gap=0, research_arithmetic=False)


def stub_reader(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([text] * 100))


class Scripted:
    """A driver that replays scripted decisions and records what it was shown."""

    def __init__(self, *turns):
        self.turns, self.seen = list(turns), []

    def next_calls(self, question, gathered, history, today, left):
        self.seen.append({"history": [(c.as_dict(), text) for c, text in history], "left": left,
                          "passages": len(gathered.docs)})
        return self.turns.pop(0) if self.turns else []


def run(qa, question, driver):
    items = list(stream_research(qa, question, driver=driver))
    return [i for i in items if isinstance(i, ToolCall)], items[-1]


def test_the_reader_makes_at_most_research_max_calls_tool_calls(mini_index):
    qa = NewsQA(mini_index.replace(research_max_calls=2), llm=stub_reader("The wing has 36 beds [1]."))
    always = Scripted(*[[("search_news", {"query": f"hospital wing {i}"}), ("search_news", {"query": "college"})]
                        for i in range(10)])
    calls, answer = run(qa, TWO_HOP, always)
    assert len(calls) == 2 and answer.timings["tool_calls"] == 2  # a turn asking two calls is cut to the bound
    assert len(always.seen) == 1 and always.seen[0]["left"] == 2
    qa3 = NewsQA(mini_index, llm=stub_reader("The wing has 36 beds [1]."))  # the default bound: 3
    one_each = Scripted(*[[("search_news", {"query": q})] for q in ("beds", "rooms", "nurses", "library", "ferry")])
    calls, answer = run(qa3, TWO_HOP, one_each)
    assert [c.arguments["query"] for c in calls] == ["beds", "rooms", "nurses"] and len(one_each.seen) == 3
    assert isinstance(answer, Answer) and not answer.abstained and answer.answer.startswith("The wing has 36 beds")


def test_a_tool_error_goes_back_to_the_reader_and_the_loop_goes_on(mini_index):
    qa = NewsQA(mini_index, llm=stub_reader("Larkspur College has 900 rooms [2]."))
    driver = Scripted([("open_article", {"n": 99})], [("search_news", {"query": "rooms", "since": "soon"})],
                      [("search_news", {"query": "Larkspur College student housing rooms"})])
    calls, answer = run(qa, TWO_HOP, driver)
    assert [c.error is not None for c in calls] == [True, True, False]
    assert "no passage [99]" in calls[0].error and "soon" in calls[1].error
    shown = driver.seen[1]["history"][0][1]
    assert shown.startswith("error:") and "no passage [99]" in shown  # the reader read the error
    assert driver.seen[2]["history"][1][1].startswith("error:")
    assert answer.timings["tool_calls"] == 3
    assert any(s.url.endswith("/2026/11/college-enrolment.html") for s in answer.sources)
    assert "900" in answer.answer and not answer.abstained  # the checks found 900 in a gathered passage


def test_open_article_reads_the_whole_article_and_searches_add_new_passages(mini_index):
    qa = NewsQA(mini_index, llm=stub_reader("x"))
    g = Gathered(qa, None, None)
    g.add(qa.retrieve(TWO_HOP))
    before = len(g.docs)
    text, new = g.run("search_news", {"query": "Larkspur College student housing rooms"})
    assert all(n > before for n in new) and len(g.docs) == before + len(new)
    assert g.run("search_news", {"query": "Larkspur College student housing rooms"})[1] == []  # nothing new twice
    n = next(i for i, d in enumerate(g.docs, 1) if d.metadata["url"].endswith("college-enrolment.html"))
    article, _ = g.run("open_article", {"n": n})
    assert "900 rooms" in article and article.startswith(f"[{n}]")
    assert g.run("search_news", {"query": "ferry", "outlet": "no-such-outlet.example"})[1] == []


def test_auto_rules_send_comparisons_to_research_and_leave_simple_questions(mini_index, monkeypatch):
    assert wants_research(TWO_HOP)
    assert wants_research("How many beds and rooms do the hospital wing and the college have combined?")
    assert not wants_research(SIMPLE)
    dev = ROOT / "data" / "multihop-dev.jsonl"
    rows = [json.loads(line) for line in dev.read_text().splitlines() if line.strip()]
    fired = sum(wants_research(r["question"]) for r in rows)
    assert fired >= len(rows) - 2, [r["question"] for r in rows if not wants_research(r["question"])]
    dated = [json.loads(line) for line in (ROOT / "data" / "dated-questions.jsonl").read_text().splitlines() if line]
    assert not any(wants_research(q["question"]) for q in dated)
    # auto + a simple question: the one-retrieval path, no driver built, no tool call
    import rag_news.research as research

    monkeypatch.setattr(research, "driver_for", lambda *a: pytest.fail("research mode entered"))
    qa = NewsQA(mini_index.replace(research="auto"), llm=stub_reader("In the old tram depot [1]."))
    items = list(qa.stream(SIMPLE))
    assert not any(isinstance(i, ToolCall) for i in items) and "tool_calls" not in items[-1].timings
    assert list(qa.stream(SIMPLE, research="never"))[-1].answer.startswith("In the old tram depot")


def test_parse_tool_calls_reads_the_qwen_reply_seen_on_the_real_model():
    from rag_news.research_drivers import parse_tool_calls

    seen = ('<tool_call>\n{"name": "search_news", "arguments": {"query": "St Brennan\'s new children\'s wing beds"}}}\n'
            '{"name": "search_news", "arguments": {"query": "Larkspur College new library funding"}}}\n'
            '{"name": "search_news", "arguments": {"query": "Larkspur County council')  # the packaged Qwen's reply
    assert parse_tool_calls(seen) == [("search_news", {"query": "St Brennan's new children's wing beds"}),
                                      ("search_news", {"query": "Larkspur College new library funding"})]
    assert parse_tool_calls('<tool_call>\n{"name": "answer", "arguments": {}}\n</tool_call>') == [("answer", {})]


def test_parse_json_call():
    assert parse_json_call('{"tool": "search_news", "query": "beds"}') == ("search_news", {"query": "beds"})
    assert parse_json_call('{"tool": "answer"}') is None and parse_json_call("not json") is None


# ------------------------------------------------------------------------------ each backend's tool path
def gathered_for(qa) -> Gathered:
    g = Gathered(qa, None, None)
    g.add(qa.retrieve(TWO_HOP))
    g._seed = len(g.docs)
    return g


def valid_call(text: str) -> dict:
    obj = json.loads(text)
    import jsonschema
    jsonschema.validate(obj, CALL_SCHEMA)
    return obj


@pytest.mark.timeout(1800)  # one ~700-token prompt: seconds alone, many minutes on a loaded 2-core machine
def test_qwen_tool_call_through_its_chat_template_on_llama_cpp(mini_index):
    from rag_news.research import driver_for
    from rag_news.research_drivers import TemplateDriver

    qa = NewsQA(mini_index.replace(device="cpu", max_new_tokens=60))  # the packaged Qwen2.5 1.5B, offline
    driver = driver_for(qa.llm, qa.settings)
    assert isinstance(driver, TemplateDriver) and qa.info.backend == "llamacpp"
    g = gathered_for(qa)
    prompt = driver.prompt(TWO_HOP, g, [], "2026-11-23", 3)
    assert "<tools>" in prompt and '"name": "search_news"' in prompt  # the template's own tool section
    calls = driver.next_calls(TWO_HOP, g, [], "2026-11-23", 3)
    assert driver.last_reply.startswith("<tool_call>"), driver.last_reply
    assert calls and calls[0][0] in ("search_news", "open_article", "answer"), driver.last_reply
    if calls[0][0] == "search_news":
        assert calls[0][1].get("query"), calls


def test_grammar_held_json_call_on_llama_cpp_with_a_template_without_tools(mini_index):
    from rag_news.research import driver_for
    from rag_news.research_drivers import GrammarDriver, template_has_tools

    qa = NewsQA(mini_index.replace(backend="llamacpp", llm_model="smollm2", device="cpu"))
    assert not template_has_tools(qa.llm.client)
    driver = driver_for(qa.llm, qa.settings)
    assert isinstance(driver, GrammarDriver)
    driver.next_calls(TWO_HOP, gathered_for(qa), [], "2026-11-23", 3)
    valid_call(driver.last_reply)  # the 135M model's reply is a call of the schema, whatever it chose


def test_constrained_json_call_on_the_tiny_mixtral_with_transformers(mini_index, tmp_path):
    from tests_support import tiny_mixtral

    from rag_news.research import driver_for
    from rag_news.research_drivers import HFConstrainedDriver

    folder = tiny_mixtral(tmp_path / "tiny-mixtral")
    qa = NewsQA(mini_index.replace(backend="hf", llm_model=str(folder), device="cpu", max_new_tokens=20))
    driver = driver_for(qa.llm, qa.settings)
    assert isinstance(driver, HFConstrainedDriver)
    driver.next_calls(TWO_HOP, gathered_for(qa), [], "2026-11-23", 3)
    valid_call(driver.last_reply)  # random weights: only the constraint makes this a valid call


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on 127.0.0.1 with the packaged
    SmolLM2 GGUF and llama-cpp-python's ``chatml-function-calling`` chat format (OpenAI ``tools``; a
    forced ``tool_choice`` is held by a grammar there), stopped after the module."""
    from rag_news.llm import packaged_smollm2

    with llama_cpp_server(packaged_smollm2(), tmp_path_factory.mktemp("toolsrv"), "--model_alias", "smollm2",
                          "--chat_format", "chatml-function-calling", "--n_ctx", "4096", wait_s=180) as base:
        yield base


def test_native_tool_calls_via_bind_tools_against_an_openai_compatible_server(mini_index, tool_server):
    from rag_news.research import driver_for
    from rag_news.research_drivers import NativeDriver

    qa = NewsQA(mini_index.replace(backend="openai", llm_base_url=tool_server, llm_model="smollm2", max_new_tokens=80))
    driver = driver_for(qa.llm, qa.settings)
    assert isinstance(driver, NativeDriver)
    forced = NativeDriver(qa.llm, tool_choice="search_news")  # the server holds a forced call to the schema
    calls = forced.next_calls(TWO_HOP, gathered_for(qa), [], "2026-11-23", 3)
    assert len(calls) == 1 and calls[0][0] == "search_news" and "query" in calls[0][1], calls


# ------------------------------------------------------------------------------ each tool call visible
def test_each_tool_call_is_an_sse_tool_event_and_a_cli_line(mini_index, monkeypatch, capsys):
    """The server streams each call as a ``tool`` event before the answer's tokens (per-request
    ``research``), the CLI prints ``searching: "..."``, and rag-news' own client reads the events back."""
    import httpx

    import rag_news.research as research
    from rag_news.ask import print_answer
    from rag_news.client import ServerQA
    from rag_news.serve import Service, create_app
    from servers import LiveServer

    monkeypatch.setattr(research, "driver_for",
                        lambda *a: Scripted([("search_news", {"query": "hospital wing beds"})],
                                            [("open_article", {"n": 42})]))
    qa = NewsQA(mini_index, llm=stub_reader("The wing has 36 beds [1]."))
    with LiveServer(create_app(Service(qa))) as live:
        body = {"question": TWO_HOP, "stream": True, "research": "always"}
        with httpx.stream("POST", live.url + "/ask", json=body, timeout=120) as r:
            lines = [line for line in r.iter_lines() if line.startswith(("event:", "data:"))]
        events = [line.split(":", 1)[1].strip() for line in lines if line.startswith("event:")]
        assert events[:2] == ["tool", "tool"] and events.index("token") > 1 and events[-2:] == ["answer", "done"]
        first = json.loads(lines[lines.index("event: tool") + 1].split(":", 1)[1])
        assert first["name"] == "search_news" and first["arguments"] == {"query": "hospital wing beds"}
        assert first["passages"] and first["error"] is None
        answer = json.loads(lines[[i for i, x in enumerate(lines) if x == "event: answer"][0] + 1].split(":", 1)[1])
        assert answer["timings"]["tool_calls"] == 2
        never = httpx.post(live.url + "/ask", json={"question": TWO_HOP, "research": "never"}, timeout=120).json()
        assert "tool_calls" not in never["timings"]
        relayed = [i for i in ServerQA(live.url).stream(TWO_HOP) if isinstance(i, ToolCall)]
        assert relayed == []  # the server's setting is "never"; the request did not ask
    qa_always = NewsQA(mini_index.replace(research="always"), llm=stub_reader("The wing has 36 beds [1]."))
    print_answer(qa_always, TWO_HOP)
    err = capsys.readouterr().err
    assert 'searching: "hospital wing beds"' in err and "opening: [42] (error: there is no passage [42]" in err


def test_a_repeated_call_is_not_run_again_and_ends_the_research(mini_index):
    qa = NewsQA(mini_index, llm=stub_reader("The wing has 36 beds [1]."))
    driver = Scripted([("search_news", {"query": "Larkspur College rooms"})],
                      [("search_news", {"query": "  larkspur college ROOMS "})],  # the same search again
                      [("search_news", {"query": "ferry timetable"})])
    calls, answer = run(qa, TWO_HOP, driver)
    assert [c.arguments["query"] for c in calls] == ["Larkspur College rooms"]
    assert len(driver.seen) == 2 and answer.timings["tool_calls"] == 1  # the third turn is never asked for


def test_two_searches_in_a_row_that_find_nothing_new_end_the_research(mini_index):
    qa = NewsQA(mini_index.replace(research_max_calls=5), llm=stub_reader("The wing has 36 beds [1]."))
    driver = Scripted(*[[("search_news", {"query": "zzqx", "outlet": f"nowhere-{i}.example"})] for i in range(5)])
    calls, answer = run(qa, TWO_HOP, driver)
    assert len(calls) == 2 and all(c.passages == [] for c in calls) and len(driver.seen) == 2


def test_research_takes_the_requests_k_and_outlets_with_a_scripted_driver(mini_index, monkeypatch):
    """Per-request ``k`` sizes the question's own retrieval and ``outlets`` filters it and what the
    reader's searches add, as on the one-retrieval path (the driver scripted: the plumbing is tested)."""
    import rag_news.research as research

    driver = Scripted([("search_news", {"query": "Larkspur news this week"})])
    monkeypatch.setattr(research, "driver_for", lambda *a: driver)
    qa = NewsQA(mini_index, llm=stub_reader("The wing has 36 beds [1]."))
    one = list(qa.stream(TWO_HOP, research="always", k=1))[-1]
    assert driver.seen[0]["passages"] == 1 and one.timings["tool_calls"] == 1
    driver.turns, driver.seen = [[("search_news", {"query": "Larkspur news this week"})]], []
    nowhere = list(qa.stream(TWO_HOP, research="always", outlets=("elsewhere.example",)))[-1]
    assert driver.seen[0]["passages"] == 0 and nowhere.sources == [] and nowhere.abstained  # seed and search
    driver.turns = [[("search_news", {"query": "Larkspur news this week"})]]
    ledger = list(qa.stream(TWO_HOP, research="always", outlets=("The Larkspur Ledger",)))[-1]
    assert ledger.sources and {s.outlet for s in ledger.sources} == {"The Larkspur Ledger"}  # the sample site's


def test_the_relevance_floor_judges_a_searched_passage_by_the_query_that_found_it(mini_index, monkeypatch):
    """A question joining two stories is far from every single passage (news-qa's multi-hop dev set: 5 of
    12 answerable questions abstained at the floor in research mode after their searches had found both
    pages). With passages fitted to a budget, the floor must read the searched passage's cosine with the
    reader's query, not the compressed sentences' cosine with the whole question (driver scripted)."""
    import rag_news.research as research
    from rag_news.answer import best_relevance
    from rag_news.context import compress_passages

    search = "St Brennan's hospital children's wing beds"
    qa = NewsQA(mini_index.replace(context_tokens=512), llm=stub_reader("The wing has 36 beds [1]."))
    g = Gathered(qa, None, None)
    g.add(research.seed_passages(qa, TWO_HOP))
    g.run("search_news", {"query": search})
    by_query = best_relevance(g.docs)
    by_question = best_relevance(compress_passages(TWO_HOP, g.docs, qa.sentence_vectors, 768))
    assert by_query > by_question + 0.02  # MiniLM: the search's passage is nearer its query than the question
    floor = (by_query + by_question) / 2
    gated = NewsQA(mini_index.replace(context_tokens=512, min_relevance=floor),
                   llm=stub_reader("The wing has 36 beds [1]."))
    monkeypatch.setattr(research, "driver_for", lambda *a: Scripted([("search_news", {"query": search})]))
    found = list(gated.stream(TWO_HOP, research="always"))[-1]
    assert not found.abstained and "36 beds" in found.answer and found.timings["tool_calls"] == 1
    one_retrieval = list(gated.stream(TWO_HOP, research="never"))[-1]
    assert one_retrieval.abstained and "close enough" in one_retrieval.note  # the floor is on: it gates there


def test_a_passage_found_again_by_a_search_keeps_its_best_cosine(mini_index):
    """The question's own retrieval may already hold the passage the reader's search is for (multi-hop dev
    mh-05: its search found "no new passages", and the passage stayed scored against the whole question)."""
    qa = NewsQA(mini_index, llm=stub_reader("x"))
    g = Gathered(qa, None, None)
    g.add(qa.retriever.search(TWO_HOP, k=3))
    first = g.docs[0]
    before, count = first.metadata["dense_score"], len(g.docs)
    query = " ".join(first.page_content.split()[:30])  # the passage's own opening: it is found again, nearer
    again = next(d for d in qa.retriever.search(query, k=6) if d.id == first.id)
    assert again.metadata["dense_score"] > before
    g.run("search_news", {"query": query})
    assert g.docs[0] is first and g.docs.count(first) == 1 and len(g.docs) >= count
    assert first.metadata["dense_score"] == again.metadata["dense_score"]
