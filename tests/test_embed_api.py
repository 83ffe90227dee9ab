"""Embeddings from an API (rag_news.embed_api): the openai backend against a real llama.cpp embedding server
(llama-cpp-python's server on 127.0.0.1 serving all-MiniLM-L6-v2 converted to GGUF by rag_news.embed_gguf:
the same model as in-process), and, since Mistral's API cannot be reached from here, the mistral client
(langchain-mistralai) and the retry / concurrency / timeout behaviour against a local endpoint on 127.0.0.1
that speaks the same /v1/embeddings protocol."""

from __future__ import annotations

import http.server
import json
import threading
import time

import numpy as np
import pytest

from rag_news.embed import Embedder
from rag_news.embed_api import EmbeddingAPIError
from rag_news.errors import ConfigError, EmbeddingMismatch

from servers import llama_cpp_server, serve_handler
from tests_support import SMALL_MODEL

TEXTS = ["The last evening ferry to Gullholm Island now leaves at 19:40, two hours earlier than in summer.",
         "Larkspur Athletic beat Corrington Rovers 2-1 to reach the fourth round of the national cup.",
         "The Eastmoor branch library will be built in the old tram depot on Quarry Lane.",
         "The harbour lantern festival drew 58,000 visitors, a record.",
         "Gullholm", "Council tax will rise by 4.9 percent from April, the finance committee agreed."]


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server with --embedding on 127.0.0.1, serving the packaged MiniLM as
    GGUF under the model's own name; stopped after the session. Yields its base URL (…/v1)."""
    from rag_news.embed_gguf import convert
    from rag_news.models import packaged_minilm

    folder = tmp_path_factory.mktemp("embed-server")
    gguf = convert(packaged_minilm(), folder / "minilm.gguf")
    with llama_cpp_server(gguf, folder, "--embedding", "true", "--model_alias", SMALL_MODEL, "--n_ctx", "512",
                          "--n_threads", "1") as base:
        yield base


def test_openai_backend_on_a_llama_cpp_server_gives_the_in_process_vectors(settings, small_embedder,
                                                                           embedding_server):
    s = settings.replace(embedding_backend="openai", embedding_base_url=embedding_server, embedding_batch_size=2,
                         embedding_concurrency=3)
    api = Embedder(s)
    got = api.embed_array(TEXTS)
    assert api.backend == "openai" and api.dim == 384 and got.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    cos = (got * small_embedder.embed_array(TEXTS)).sum(1)
    assert cos.min() > 0.999, cos  # the same model on the server, in input order across 3 batches in flight
    assert api._api.requests == 3
    assert api.tokenizer("Gullholm")["input_ids"] == small_embedder.tokenizer("Gullholm")["input_ids"]


def test_an_index_built_through_the_embedding_server_answers_searches(settings, embedding_server, site_article_urls):
    from rag_news import index_urls
    from rag_news.pipeline import open_index

    s = settings.replace(embedding_backend="openai", embedding_base_url=embedding_server)
    report = index_urls(site_article_urls[:3], s)
    assert report.pages_ok == 3 and report.chunks_embedded > 0 and report.embedding["backend"] == "openai"
    idx = open_index(settings=s)
    assert idx.embedding_model == SMALL_MODEL
    first = idx.article(next(r["key"] for r in idx.iter_articles()))
    hit = idx.search(first["title"], k=1)[0]
    assert hit.chunk_id in first["chunk_ids"]
    with pytest.raises(ConfigError, match="was built with embedding model"):  # another model: refused
        index_urls(site_article_urls[:1], s.replace(embedding_model="mistral-embed"))


class FakeEmbeddings(http.server.BaseHTTPRequestHandler):
    """A local /v1/embeddings endpoint: vectors of ``dim`` from each text's hash; the first ``fail`` requests
    answer ``codes`` in turn; ``delay`` seconds per request; ``reverse``: the data list in reverse order (each
    item keeps its ``index``, as the protocol allows); records headers and the most requests in flight."""

    dim, fail, codes, delay, reverse = 1024, 0, [429], 0.0, False
    seen: list = []
    in_flight = peak = 0
    lock = threading.Lock()

    @classmethod
    def reset(cls, **kw):
        cls.dim, cls.fail, cls.codes, cls.delay, cls.reverse = 1024, 0, [429], 0.0, False
        cls.seen, cls.in_flight, cls.peak = [], 0, 0
        for k, v in kw.items():
            setattr(cls, k, v)

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            n, cls.in_flight = len(cls.seen), cls.in_flight + 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            time.sleep(cls.delay)
            if n <= cls.fail:
                code = cls.codes[(n - 1) % len(cls.codes)]
                out = json.dumps({"error": f"status {code}"}).encode()
                self.send_response(code)
                self.send_header("Retry-After", "0")
            else:
                data = [{"object": "embedding", "index": i, "embedding": np.random.default_rng(
                    abs(hash(t)) % 2**32).normal(size=cls.dim).tolist()} for i, t in enumerate(body["input"])]
                out = json.dumps({"object": "list", "model": body["model"], "data": data[::-1] if cls.reverse else data}).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        finally:
            with cls.lock:
                cls.in_flight -= 1


@pytest.fixture
def fake_api():
    FakeEmbeddings.reset()
    with serve_handler(FakeEmbeddings) as base:
        yield base + "/v1"


def test_mistral_client_against_a_local_endpoint_sends_mistral_embed_with_the_key(settings, fake_api, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key-local")
    s = settings.replace(embedding_backend="mistral", embedding_model="mistral-embed", embedding_base_url=fake_api,
                         embedding_batch_size=4)
    emb = Embedder(s)
    vecs = emb.embed_array(TEXTS)
    assert emb.backend == "mistral" and vecs.shape == (len(TEXTS), 1024)
    assert {r["model"] for r in FakeEmbeddings.seen} == {"mistral-embed"}
    assert {r["auth"] for r in FakeEmbeddings.seen} == {"Bearer test-key-local"}
    assert sorted(len(r["input"]) for r in FakeEmbeddings.seen) == [2, 4]
    again = emb.embed_array(TEXTS[::-1])[::-1]
    assert np.allclose(vecs, again, atol=1e-6)  # each vector belongs to its text, whatever the order


def test_mistral_backend_without_a_key_is_one_clear_error(settings, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MISTRAL_API_KEY"):
        Embedder(settings.replace(embedding_backend="mistral", embedding_model="mistral-embed")).warm_up()


def test_429_and_5xx_are_retried_with_backoff_and_other_errors_are_not(settings, fake_api):
    waits = []
    s = settings.replace(embedding_backend="openai", embedding_base_url=fake_api, embedding_retries=4,
                         retry_backoff=0.5)
    emb = Embedder(s).warm_up()
    emb._api._sleep = waits.append
    FakeEmbeddings.reset(fail=3, codes=[429, 503, 500])
    assert emb.embed_array(TEXTS[:2]).shape == (2, 1024)
    assert len(FakeEmbeddings.seen) == 4 and waits == [0.5, 1.0, 2.0]  # exponential backoff
    FakeEmbeddings.reset(fail=10, codes=[503])
    with pytest.raises(EmbeddingAPIError, match="still failing after 5 tries"):
        emb.embed_array(TEXTS[:1])
    FakeEmbeddings.reset(fail=1, codes=[400])
    with pytest.raises(EmbeddingAPIError, match="HTTP 400"):
        emb.embed_array(TEXTS[:1])
    assert len(FakeEmbeddings.seen) == 1  # a bad request is not retried


def test_requests_in_flight_never_exceed_the_concurrency_cap(settings, fake_api):
    s = settings.replace(embedding_backend="openai", embedding_base_url=fake_api, embedding_batch_size=1,
                         embedding_concurrency=2)
    FakeEmbeddings.reset(delay=0.2)
    one_by_one = Embedder(s).embed_array(TEXTS)
    assert one_by_one.shape == (len(TEXTS), 1024)
    assert len(FakeEmbeddings.seen) == len(TEXTS) and FakeEmbeddings.peak == 2
    FakeEmbeddings.reset(reverse=True)  # items out of order: placed by their index
    batched = Embedder(s.replace(embedding_batch_size=4, embedding_concurrency=4)).embed_array(TEXTS)
    assert np.allclose(batched, one_by_one, atol=1e-6)


def test_a_request_past_the_timeout_is_retried_then_reported(settings, fake_api):
    s = settings.replace(embedding_backend="openai", embedding_base_url=fake_api, embedding_timeout=0.2,
                         embedding_retries=1, retry_backoff=0.01)
    FakeEmbeddings.reset(delay=1.0)
    with pytest.raises(EmbeddingAPIError, match="still failing after 2 tries.*Timeout"):
        Embedder(s).embed_array(TEXTS[:1])
    assert len(FakeEmbeddings.seen) == 2


def test_an_index_refuses_an_embedding_server_of_another_dimension(settings, small_embedder, fake_api):
    from rag_news.pipeline import open_or_create
    from rag_news.store import open_store

    from test_store_backends import stage

    idx = open_store(settings, small_embedder, create=True)  # MiniLM in-process: 384 dimensions
    stage(idx, small_embedder, settings, "http://127.0.0.1/ferry", "Ferry", TEXTS[0], "2026-11-02")
    idx.commit()
    idx.close()
    s = settings.replace(embedding_backend="openai", embedding_base_url=fake_api)  # same name, 1024 dimensions
    with pytest.raises(EmbeddingMismatch, match="384-dimensional vectors .* returns 1024"):
        open_or_create(settings.index_dir, Embedder(s), s)
