from pathlib import Path

import pytest

from rag_news.errors import ConfigError
from rag_news.settings import Settings


def test_defaults_are_the_documented_ones():
    s = Settings.load(env={})
    assert s.embedding_model == "sentence-transformers/all-mpnet-base-v2"
    assert s.concurrency == 4 and s.wait_until == "domcontentloaded"
    assert s.index_dir == Path("data/index")
    assert s.chunk_tokens == 256 and s.chunk_overlap == 32


def test_precedence_defaults_toml_env_overrides(tmp_path):
    cfg = tmp_path / "rag.toml"
    cfg.write_text('concurrency = 7\npage_timeout = 12.5\nindex_dir = "/srv/idx"\n'
                   'block_resources = ["image"]\n[[sources]]\nurl = "https://example.org/feed"\n')
    s = Settings.load(env={"RAG_NEWS_CONFIG": str(cfg)})
    assert (s.concurrency, s.page_timeout, s.index_dir) == (7, 12.5, Path("/srv/idx"))
    assert s.block_resources == ("image",)
    s = Settings.load(env={"RAG_NEWS_CONFIG": str(cfg), "RAG_NEWS_CONCURRENCY": "3",
                           "RAG_NEWS_PROGRESS": "false"})
    assert s.concurrency == 3 and s.page_timeout == 12.5 and s.progress is False
    s = Settings.load(env={"RAG_NEWS_CONFIG": str(cfg), "RAG_NEWS_CONCURRENCY": "3"}, concurrency=9,
                      page_timeout=None)
    assert s.concurrency == 9 and s.page_timeout == 12.5  # None overrides fall through


def test_explicit_config_path_beats_env_path(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("retries = 5\n")
    b.write_text("retries = 1\n")
    assert Settings.load(config=b, env={"RAG_NEWS_CONFIG": str(a)}).retries == 1


@pytest.mark.parametrize("env, message", [
    ({"RAG_NEWS_CONCURRENCY": "many"}, "concurrency"),
    ({"RAG_NEWS_CONCURRENCY": "0"}, "at least 1"),
    ({"RAG_NEWS_WAIT_UNTIL": "never"}, "wait_until"),
    ({"RAG_NEWS_EMBEDDING_BACKEND": "tpu"}, "embedding_backend"),
    ({"RAG_NEWS_CHUNK_OVERLAP": "400"}, "chunk_overlap"),
])
def test_bad_values_are_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env=env)


def test_unknown_key_and_bad_toml_are_reported(tmp_path):
    cfg = tmp_path / "x.toml"
    cfg.write_text("concurency = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'concurency'"):
        Settings.load(config=cfg, env={})
    cfg.write_text("concurrency = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(config=cfg, env={})
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(config=tmp_path / "missing.toml", env={})


def test_describe_says_where_each_value_came_from(tmp_path):
    cfg = tmp_path / "rag.toml"
    cfg.write_text("concurrency = 7\nretries = 4\n")
    s = Settings.load(cfg, env={"RAG_NEWS_RETRIES": "1", "RAG_NEWS_K": "8"}, page_timeout=12)
    rows = {r["setting"]: r for r in s.describe()}
    assert set(rows) == set(s.as_dict())
    assert rows["concurrency"]["source"] == "toml (rag.toml)" and rows["concurrency"]["value"] == 7
    assert rows["retries"]["source"] == "env RAG_NEWS_RETRIES" and rows["retries"]["value"] == 1
    assert rows["page_timeout"]["source"] == "argument" and rows["page_timeout"]["default"] == 30.0
    assert rows["chunk_tokens"]["source"] == "default" and rows["chunk_tokens"]["env"] == "RAG_NEWS_CHUNK_TOKENS"
    later = {r["setting"]: r for r in s.replace(chunk_tokens=128).describe()}
    assert later["chunk_tokens"]["source"] == "argument" and later["k"]["source"] == "env RAG_NEWS_K"
