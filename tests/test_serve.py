"""The HTTP service (rag_news.serve) on a real uvicorn server on 127.0.0.1, started and stopped by the
tests, with the packaged SmolLM2 on llama.cpp; clients: httpx, httpx-sse, the openai client, the ask CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag_news import NewsQA, index_urls
from rag_news.answer import MAX_QUESTION_CHARS
from servers import LiveServer

from rag_news.serve import Service, create_app

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Where will the Eastmoor branch library be built?"


@pytest.fixture(scope="module")
def served(tmp_path_factory, site_article_urls, cache_dir):
    """A small writable index (3 sample articles, MiniLM), SmolLM2, and a server over them."""
    from conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("serve"), cache_dir, llm_model="smollm2", max_new_tokens=48,
                             today="2026-11-23")
    index_urls(site_article_urls[:3] + [u for u in site_article_urls if "library" in u], settings)
    qa = NewsQA(settings).warm_up()
    service = Service(qa, queue_size=1, max_generation_s=60)
    with LiveServer(create_app(service, token="s3cret", max_body_bytes=4096, body_timeout_s=1.0)) as live:
        yield live, qa, service, settings


def client(live, token="s3cret") -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=120)


def test_health_search_and_an_answer_identical_to_the_in_process_one(served):
    live, qa, _, _ = served
    with client(live, token=None) as c:
        health = c.get("/health").json()  # no token needed
    assert health["status"] == "ok" and health["index"]["articles"] == 4 and "SmolLM2" in health["model"]
    assert health["faiss"] == qa.index.faiss_in_use() and health["faiss"]["reason"]  # which FAISS, and why
    with client(live) as c:
        found = c.get("/search", params={"q": "tram depot library", "k": 2}).json()
        body = c.post("/ask", json={"question": QUESTION}).json()
    assert found["passages"][0]["url"].endswith("library-eastmoor.html") and len(found["passages"]) <= 2
    local = qa.ask(QUESTION)
    assert body["answer"] == local.answer and body["cited"] == local.cited
    assert [s["url"] for s in body["sources"]] == [s.url for s in local.sources] and body["queue_wait_s"] >= 0


def test_server_sent_events_stream_tokens_then_the_answer(served):
    from httpx_sse import connect_sse

    live, *_ = served
    events = []
    with client(live) as c, connect_sse(c, "POST", "/ask", json={"question": QUESTION, "stream": True}) as es:
        assert es.response.headers["content-type"].startswith("text/event-stream")
        events = [(e.event, json.loads(e.data)) for e in es.iter_sse()]
    kinds = [k for k, _ in events]
    assert kinds[0] == "token" and kinds[-2:] == ["answer", "done"]
    answer = events[-2][1]
    tokens = "".join(d["text"] for k, d in events if k == "token")
    assert tokens.strip() == (answer["raw_answer"] or answer["answer"]) and answer["sources"]


def test_openai_compatible_endpoint_with_the_openai_client(served):
    from openai import OpenAI

    live, qa, _, _ = served
    oa = OpenAI(base_url=live.url + "/v1", api_key="s3cret")
    assert [m.id for m in oa.models.list().data] == ["rag-news"]
    reply = oa.chat.completions.create(model="rag-news", messages=[{"role": "user", "content": QUESTION}])
    text = reply.choices[0].message.content
    answer = qa.ask(QUESTION)  # the in-process answer: the endpoint gives its text, then the sources it cites
    assert answer.cited and text.startswith(answer.answer) and "Sources:" in text
    assert all(answer.sources[n - 1].url in text.split("Sources:", 1)[1] for n in answer.cited)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in oa.chat.completions.create(
        model="rag-news", messages=[{"role": "user", "content": QUESTION}], stream=True))
    assert streamed.replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize("body, status, words", [
    ({"question": ""}, 422, "question"),
    ({"question": "   "}, 400, "empty"),
    ({"question": 123}, 422, "question"),
    ({"question": "q?", "colour": "red"}, 422, "colour"),
    ({"question": "q?", "since": "last week"}, 422, "since"),
    ({"question": "why? " * (MAX_QUESTION_CHARS // 5 + 1)}, 422, "question"),
])
def test_bad_requests_get_a_json_error_with_the_right_status(served, body, status, words):
    live, *_ = served
    with client(live) as c:
        r = c.post("/ask", json=body)
    assert r.status_code == status and words in r.json()["error"]["message"]


def test_size_token_malformed_and_slow_bodies(served):
    live, *_ = served
    with client(live) as c:
        assert c.post("/ask", content=b"{" + b" " * 10_000 + b"}", headers={"content-type": "application/json"}
                      ).status_code == 413
        assert c.post("/ask", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    with client(live, token="wrong") as c:
        r = c.post("/ask", json={"question": "q?"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    with socket.create_connection(("127.0.0.1", live.port)) as s:  # a client that never finishes its body
        s.sendall(b"POST /ask HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"question\":")
        s.settimeout(10)
        reply = b""
        while b"did not arrive" not in reply:  # the headers and the body may come in separate reads
            part = s.recv(4096)
            if not part:
                break
            reply += part
    reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive" in reply


def recording_generations(qa: NewsQA) -> list[list[float]]:
    """Wrap ``qa.stream`` so each generation's ``[start, end]`` (monotonic clock) is recorded."""
    spans: list[list[float]] = []
    stream = qa.stream

    def recorded(*args, **kw):
        span = [time.monotonic(), None]
        spans.append(span)
        try:
            yield from stream(*args, **kw)
        finally:
            span[1] = time.monotonic()

    qa.stream = recorded
    return spans


def test_one_generation_at_a_time_and_a_full_queue_gets_429(served):
    _, qa, _, settings = served
    slow = NewsQA(settings.replace(max_new_tokens=400), index=qa.index)  # long answers: time to queue up
    service = Service(slow.warm_up(), queue_size=1, max_generation_s=120)
    spans = recording_generations(slow)
    results = {}

    def ask(live, name, question):
        with client(live, token=None) as c:
            results[name] = c.post("/ask", json={"question": question})

    with LiveServer(create_app(service)) as live:
        first = threading.Thread(target=ask, args=(live, "first", "Tell everything the articles say, in detail."))
        first.start()
        deadline = time.time() + 60
        while not (service._gate and service._gate.locked()) and time.time() < deadline:
            time.sleep(0.01)
        queued = threading.Thread(target=ask, args=(live, "queued", QUESTION))
        queued.start()
        while service.waiting < 1 and time.time() < deadline:
            time.sleep(0.01)
        with client(live, token=None) as c:
            busy = c.post("/ask", json={"question": QUESTION})
        first.join(300)
        queued.join(300)
    spans.sort()
    assert all(end is not None for _, end in spans), spans
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # each started after the one before ended
    assert busy.status_code == 429 and busy.headers["retry-after"] and busy.json()["error"]["type"] == "busy"
    assert results["first"].status_code == 200 and results["queued"].status_code == 200
    assert results["queued"].json()["queue_wait_s"] > 0 and len(spans) == 2  # the 429 never reached the model


def test_a_generation_past_its_time_limit_is_stopped(served):
    live, qa, _, _ = served
    question = "Tell everything the articles say about the library."
    client_ = qa.llm.client  # llama.cpp: one eval() per generated token
    evals: list[int] = []
    original = client_.eval
    client_.eval = lambda tokens: (evals.append(len(tokens)), original(tokens))[1]  # a counting spy
    try:
        qa.ask(question)  # unlimited: how many tokens the whole answer takes
        whole = sum(1 for n in evals if n == 1)
        evals.clear()
        quick = Service(qa, queue_size=2, max_generation_s=0.05)
        with LiveServer(create_app(quick)) as other, client(other, token=None) as c:
            r = c.post("/ask", json={"question": question})
            at_504 = len(evals)
            time.sleep(1.0)
            after = len(evals)
    finally:
        del client_.eval
    assert r.status_code == 504 and "longer than" in r.json()["error"]["message"]
    decoded = sum(1 for n in evals[:at_504] if n == 1)
    assert whole > 8 and decoded < min(8, whole), (whole, decoded)  # stopped early, not run to its end
    assert after == at_504  # nothing generated once the 504 was sent


def test_a_newer_index_pass_is_picked_up_without_a_restart(served, site_article_urls):
    live, _, _, settings = served
    with client(live) as c:
        before = c.get("/health").json()["index"]
        index_urls([u for u in site_article_urls if "storm-warning" in u], settings)
        after = c.get("/health").json()["index"]
        found = c.get("/search", params={"q": "Storm Orla gusts"}).json()["passages"]
    assert after["articles"] == before["articles"] + 1 and after["pass"] > before["pass"]
    assert found[0]["url"].endswith("storm-warning.html")


def test_ask_cli_against_the_server(served):
    live, qa, _, _ = served
    env = {**os.environ, "RAG_NEWS_SERVER": live.url, "RAG_NEWS_SERVER_TOKEN": "s3cret"}
    p = subprocess.run([sys.executable, "-m", "rag_news.ask", QUESTION], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith(qa.ask(QUESTION).answer) and "library-eastmoor.html" in p.stdout
    down = subprocess.run([sys.executable, "-m", "rag_news.ask", "--server", "http://127.0.0.1:9", "q?"],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ, timeout=60)
    assert down.returncode == 1 and "cannot reach the server" in down.stderr.strip().splitlines()[-1]
