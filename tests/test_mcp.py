"""``python -m rag_news.mcp``: the MCP server's tools listed and called through the MCP SDK's own client,
over stdio (the client starts the server as a subprocess) and over streamable HTTP on 127.0.0.1 (the
server started by the test and stopped after it).

The index: the sample site served on 127.0.0.1 and indexed by the real pipeline with the small packaged
embedder (all-MiniLM-L6-v2). The reader behind ``ask_news``: the packaged SmolLM2-135M-Instruct on
llama.cpp (the smallest real reader; what it says is not judged here, only what the tool returns).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from conftest import make_settings  # noqa: E402
from servers import stop_process  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"search_news", "ask_news", "list_stories", "index_status"}


@pytest.fixture(scope="module")
def mcp_index(tmp_path_factory, cache_dir, site_article_urls):
    from rag_news import index_urls

    s = make_settings(tmp_path_factory.mktemp("mcp"), cache_dir)
    report = index_urls(site_article_urls, s)
    assert report.pages_ok == len(site_article_urls)
    return s


def server_env(settings, index_dir=None) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "RAG_NEWS_INDEX_DIR": str(index_dir or settings.index_dir), "RAG_NEWS_CACHE_DIR": str(settings.cache_dir),
            "RAG_NEWS_EMBEDDING_MODEL": settings.embedding_model, "RAG_NEWS_LLM_MODEL": "smollm2",
            "RAG_NEWS_MAX_NEW_TOKENS": "32", "RAG_NEWS_DEVICE": "cpu", "RAG_NEWS_TODAY": "2026-11-23",
            "RAG_NEWS_MIN_RELEVANCE": "0"}


def stdio(settings, index_dir=None) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "rag_news.mcp"], cwd=str(ROOT),
                                 env=server_env(settings, index_dir))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 300))


async def exercise(server) -> dict:
    """List the tools and call each one (and one bad call) through the SDK client."""
    async with Client(server) as client:
        listed = await client.list_tools()
        found = await client.call_tool("search_news", {"query": "Eastmoor branch library tram depot", "k": 3})
        bad = await client.call_tool("search_news", {"query": "library", "since": "last Tuesday"})
        status = await client.call_tool("index_status", {})
        stories = await client.call_tool("list_stories", {"since": "2026-01-01"})
        bad_stories = await client.call_tool("list_stories", {"until": "yesterday-ish"})
        asked = await client.call_tool("ask_news", {"question": "Where will the Eastmoor branch library be built?"})
    return {"tools": listed.tools, "found": found, "bad": bad, "status": status, "asked": asked,
            "stories": stories, "bad_stories": bad_stories}


def check_results(r: dict, articles: int) -> None:
    tools = {t.name: t for t in r["tools"]}
    assert set(tools) == TOOLS
    search = tools["search_news"]
    assert search.description.startswith("Search the indexed news articles")
    props = search.input_schema["properties"]
    assert search.input_schema["required"] == ["query"]
    assert {"query", "k", "since", "until", "outlet"} <= set(props)
    assert all(props[p].get("description") for p in ("query", "since", "until", "outlet"))
    assert tools["ask_news"].input_schema["properties"]["research"]
    found = r["found"]
    assert not found.is_error
    passages = found.structured_content["passages"]
    assert 1 <= len(passages) <= 3 and passages[0]["url"].endswith("/2026/11/library-eastmoor.html")
    assert {"n", "title", "url", "outlet", "published", "text"} <= set(passages[0])
    assert r["bad"].is_error and "since" in r["bad"].content[0].text and "last Tuesday" in r["bad"].content[0].text
    assert not r["status"].is_error and r["status"].structured_content["articles"] == articles
    assert not r["stories"].is_error, r["stories"].content
    stories = r["stories"].structured_content["stories"]
    listed = [a["url"] for s in stories for a in s["articles"]]
    assert len(listed) == len(set(listed)) == articles  # every article in exactly one story
    assert all(s["outlets"] >= 1 and s["title"] and s["articles"][0]["outlet"] for s in stories)
    assert r["bad_stories"].is_error and "yesterday-ish" in r["bad_stories"].content[0].text
    asked = r["asked"]
    assert not asked.is_error, asked.content
    a = asked.structured_content
    assert a["question"].startswith("Where will the Eastmoor") and a["answer"] and isinstance(a["abstained"], bool)
    assert any(s["url"].endswith("/2026/11/library-eastmoor.html") for s in a["sources"])
    assert a["searches"] == [] and "SmolLM2" in (a["model"] or "")


def test_mcp_tools_listed_and_called_over_stdio_with_the_sdk_client(mcp_index, site_article_urls):
    check_results(run(exercise(stdio(mcp_index))), len(site_article_urls))


def test_mcp_no_index_is_a_tool_error_over_stdio(mcp_index, tmp_path):
    async def go():
        async with Client(stdio(mcp_index, tmp_path / "nothing-here")) as client:
            return await client.call_tool("index_status", {})

    r = run(go())
    assert r.is_error and "no index" in r.content[0].text and "rag_news.index" in r.content[0].text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mcp_tools_listed_and_called_over_streamable_http(mcp_index, site_article_urls, tmp_path):
    port = free_port()
    log = open(tmp_path / "mcp.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "rag_news.mcp", "--transport", "http", "--port", str(port)],
                            cwd=str(ROOT), env={**os.environ, **server_env(mcp_index)}, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((tmp_path / "mcp.log").read_text()[-2000:])
                time.sleep(0.3)
        check_results(run(exercise(f"http://127.0.0.1:{port}/mcp")), len(site_article_urls))
    finally:
        stop_process(proc)
        log.close()


def test_mcp_http_refuses_a_non_loopback_host():
    r = subprocess.run([sys.executable, "-m", "rag_news.mcp", "--transport", "http", "--host", "0.0.0.0"],
                       cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "loopback" in r.stderr
