"""rag_news.serve under hostile or unlucky use: the token compared in constant time, no unprotected public
bind, /search rate-limited, every stream failure reported as an ``error`` event, the model loaded once
however many threads ask, a time limit that frees llama.cpp even in the middle of reading the prompt,
Retry-After computed from the queue, and schemathesis against the server's own OpenAPI schema.

Real uvicorn servers on 127.0.0.1 (started and stopped here), the packaged SmolLM2 on llama.cpp, a small
index of the sample site built by the real pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from rag_news import NewsQA, index_urls
from rag_news.errors import ConfigError
from servers import LiveServer

from rag_news.serve import Service, check_exposure, create_app, is_loopback

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Where will the Eastmoor branch library be built?"


@pytest.fixture(scope="module")
def small(tmp_path_factory, site_article_urls, cache_dir):
    """Settings for a small index (4 sample articles, MiniLM) answered by SmolLM2, and a loaded NewsQA."""
    from conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("safety"), cache_dir, llm_model="smollm2", max_new_tokens=24,
                             today="2026-11-23")
    index_urls(site_article_urls[:3] + [u for u in site_article_urls if "library" in u], settings)
    return settings, NewsQA(settings).warm_up()


def _client(live, token=None) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=120)


# ------------------------------------------------------------------------------------------ token, bind
def test_the_token_is_compared_with_hmac_compare_digest(small, monkeypatch):
    import hmac

    import rag_news.serve as serve

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(serve.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    with LiveServer(create_app(Service(small[1]), token="s3cret")) as live:
        with _client(live, "wrong") as c:
            assert c.get("/v1/models").status_code == 401
        with _client(live, "s3cret") as c:
            assert c.get("/v1/models").status_code == 200
        with _client(live) as c:
            assert c.get("/v1/models").status_code == 401
    assert len(calls) == 3 and calls[1] == (b"Bearer s3cret", b"Bearer s3cret")


def test_a_public_host_without_a_token_is_refused_unless_insecure_no_token(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("news.example")
    with pytest.raises(ConfigError, match="--insecure-no-token"):
        check_exposure("0.0.0.0", None, insecure=False)
    check_exposure("0.0.0.0", "s3cret", insecure=False)  # a token: fine
    check_exposure("0.0.0.0", None, insecure=True)  # said so explicitly: fine (with a warning)
    check_exposure("127.0.0.1", None, insecure=False)
    # the command refuses before loading anything (nothing is bound: the check comes first)
    p = subprocess.run([sys.executable, "-m", "rag_news.serve", "--host", "0.0.0.0", "--index-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**__import__("os").environ, "RAG_NEWS_SERVER_TOKEN": ""})
    assert p.returncode == 1 and "--insecure-no-token" in p.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------------ /search rate
def test_search_is_counted_against_a_per_client_rate_limit(small):
    with LiveServer(create_app(Service(small[1]), search_rate=0.01)) as live, _client(live) as c:
        first = c.get("/search", params={"q": "library"})
        second = c.get("/search", params={"q": "library"})
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["type"] == "busy"
    assert int(second.headers["retry-after"]) >= 50  # one request per 100 s: the next one in ~100 s


# ------------------------------------------------------------------------------------------ failures
def test_any_exception_in_a_stream_ends_it_with_an_error_event_fault_injected(small, monkeypatch):
    """A failure the server does not expect (here injected: a KeyError after the first token) ends the
    stream with an ``error`` event (the CLI then shows it), and a plain request gets a JSON 500."""
    from httpx_sse import connect_sse

    settings, qa = small
    broken = NewsQA(settings, index=qa.index, llm=qa.llm, llm_info=qa.info)

    def stream(question, since=None, until=None, **request):  # history, options, research: unused
        yield "The library"
        raise KeyError("passage 7")

    monkeypatch.setattr(broken, "stream", stream)
    with LiveServer(create_app(Service(broken))) as live, _client(live) as c:
        with connect_sse(c, "POST", "/ask", json={"question": QUESTION, "stream": True}) as es:
            events = [(e.event, json.loads(e.data)) for e in es.iter_sse()]
        plain = c.post("/ask", json={"question": QUESTION})
        with connect_sse(c, "POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": QUESTION}], "stream": True}) as es:
            chat = [e.event for e in es.iter_sse()]
    assert [k for k, _ in events] == ["token", "error"] and events[-1][1]["error"]["type"] == "server_error"
    assert plain.status_code == 500 and plain.json()["error"]["type"] == "server_error"
    assert "error" in chat


def test_two_threads_asking_at_once_load_the_model_once(small, monkeypatch):
    """The loader is the real one, wrapped to count calls and to hold the first caller until a second
    thread has had every chance to enter (a barrier that times out when the lock keeps it out)."""
    import rag_news.llm as llm_module

    settings, _ = small
    real, calls, barrier = llm_module.load_llm_with_info, [], threading.Barrier(2, timeout=3)

    def counting(s):
        calls.append(threading.current_thread().name)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other thread is waiting on the lock, as it should
        return real(s)

    monkeypatch.setattr(llm_module, "load_llm_with_info", counting)
    qa = NewsQA(settings)
    got = []
    threads = [threading.Thread(target=lambda: got.append(qa.llm), name=f"asker-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]


# ------------------------------------------------------------------------------------------ time limit
def test_the_time_limit_frees_llama_cpp_in_the_middle_of_the_prompt_read(small):
    """A one-token-a-batch prompt read (thousands of llama.cpp decodes) is far longer than the time limit:
    the 504 comes back with the model already free, its prompt read stopped part way (the tokens it had
    read are fewer than the prompt's), and the next question is answered as usual. The limit starts at
    0.5 s and doubles while it passes before the read has begun (retrieval on a loaded machine); a limit
    passing then must also stop the model, before it reads anything."""
    settings, _ = small
    qa = NewsQA(settings.replace(context_tokens=0, k=5, max_new_tokens=8)).warm_up()  # whole passages: long
    llm = qa.llm
    prompt_len = len(llm.client.tokenize(qa.passages(QUESTION)[0].page_content.encode())) * 3
    llm.client.n_batch = 1
    service = Service(qa, queue_size=2, max_generation_s=0.5)
    reads = []
    with LiveServer(create_app(service)) as live, _client(live) as c:
        while not (reads and reads[-1] > 0) and service.max_generation_s <= 8:
            checks = llm.abort_checks
            r = c.post("/ask", json={"question": QUESTION})
            reads.append(llm.client.n_tokens)
            assert r.status_code == 504 and "longer than" in r.json()["error"]["message"]
            assert llm.abort_checks > checks and reads[-1] < prompt_len  # stopped before the read's end
            service.max_generation_s *= 2
        assert 0 < reads[-1] < prompt_len, reads  # one limit passed inside the prompt read
        llm.client.n_batch = 512
        service.max_generation_s = 120
        again = c.post("/ask", json={"question": QUESTION})
    assert again.status_code == 200 and again.json()["answer"]


# ------------------------------------------------------------------------------------------ fairness
def test_retry_after_is_computed_from_the_queue(small):
    service = Service(small[1], queue_size=4, max_generation_s=60)
    assert service.retry_after() == 2  # nothing measured yet: one 2 s generation ahead
    service._durations.extend([4.0, 6.0])  # the mean generation: 5 s
    service.waiting = 3
    assert service.retry_after() == 15  # three ahead
    assert service.busy().retry_after == 15
