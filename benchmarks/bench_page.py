"""Time to the first token in the chat page with the real offline reader, side by side with the same
questions asked over the API the page uses (``POST /ask`` as an SSE stream, httpx).

A real ``rag_news.serve`` app (uvicorn on 127.0.0.1, bearer token on) over the news-qa dev pages' index
(mpnet; built by the real pipeline when ``--index-dir`` holds none), the packaged Qwen2.5-1.5B reader on
llama.cpp loaded once and warmed by one question before anything is timed. Playwright drives Debian's
Chromium. Per conversation of the follow-ups dev set (benchmarks/followups/): turn 1, then the follow-up
(which adds the rewrite before retrieval), once in the page and once over the API, in alternating order
(the reader keeps no prompt cache between calls, so the order should not matter; it is alternated anyway).
"first" is from the question's Enter (page) or request (API) to the first answer text on screen / the first
``token`` event; "done" to the finished answer. The page's figures include its own work (rendering,
fetching the sources list) and the browser's.

    python benchmarks/bench_page.py --conversations 3 [--index-dir /tmp/rag-news-multihop-index] [--model smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx

from _common import ROOT, index_news_pages, machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import NewsQA, Settings  # noqa: E402
from rag_news.serve import Service, create_app  # noqa: E402

TOKEN = "bench-page-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CONVERSATIONS = ROOT / "benchmarks" / "followups" / "followups.jsonl"
LAST = "[...document.querySelectorAll('article.msg.assistant')].pop()"


class Server:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a thread, stopped on exit."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def page_turn(pg, question: str) -> dict:
    """Ask in the page; seconds to the first answer text on screen and to the finished answer."""
    n = pg.locator("article.msg.assistant").count()
    box = pg.get_by_label("Your question")
    box.fill(question)
    t0 = time.perf_counter()
    box.press("Enter")
    pg.wait_for_function(f"() => document.querySelectorAll('article.msg.assistant').length > {n} && "
                         f"{LAST}.querySelector('.text').textContent.trim().length > 0", timeout=600_000, polling=20)
    first = time.perf_counter() - t0
    pg.wait_for_function(f"() => !{LAST}.hasAttribute('aria-busy')", timeout=600_000, polling=20)
    return {"first": first, "done": time.perf_counter() - t0,
            "text": pg.locator("article.msg.assistant").last.locator(".text").inner_text()}


def api_turn(client: httpx.Client, question: str, cid: str | None) -> tuple[dict, str | None]:
    """The same over ``POST /ask`` (SSE); returns the timings and the conversation id."""
    t0, first, event = time.perf_counter(), None, None
    body = {"question": question, "stream": True, "conversation_id": cid or "new"}
    with client.stream("POST", "/ask", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "token" and first is None:
                first = time.perf_counter() - t0
            elif line.startswith("data:") and event == "answer":
                cid = json.loads(line[5:]).get("conversation_id") or cid
    done = time.perf_counter() - t0
    return {"first": first if first is not None else done, "done": done}, cid


def new_page(browser, url: str):
    pg = browser.new_context(viewport={"width": 1100, "height": 820}).new_page()
    pg.problems = []
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
    pg.goto(url + "/")
    pg.wait_for_function("() => document.querySelector('details.token').open")
    token = pg.get_by_label("Bearer token (kept in this browser)")
    token.fill(TOKEN)
    token.press("Tab")
    pg.wait_for_function("() => document.getElementById('status').textContent.includes('articles')")
    return pg


def run_conversation(browser, client, url: str, conv: dict, page_first: bool) -> list[dict]:
    """Both turns of ``conv`` in a fresh page and over the API (a new conversation each), in the given order."""
    questions = [t["question"] for t in conv["turns"]]
    rows = []

    def in_page():
        pg = new_page(browser, url)
        for turn, q in enumerate(questions, 1):
            rows.append({"id": conv["id"], "turn": turn, "via": "page", **page_turn(pg, q)})
            if turn == len(questions):
                rows[-1]["console_errors"] = len(pg.problems)
            show(rows[-1])
        pg.context.close()

    def over_api():
        cid = None
        for turn, q in enumerate(questions, 1):
            timing, cid = api_turn(client, q, cid)
            rows.append({"id": conv["id"], "turn": turn, "via": "api", **timing})
            show(rows[-1])

    for step in ((in_page, over_api) if page_first else (over_api, in_page)):
        step()
    return rows


def show(r: dict) -> None:
    print(f"{r['id']:>6} turn {r['turn']} {r['via']:>4}: first {r['first']:6.2f} s  done {r['done']:6.2f} s"
          + (f"  console errors {r['console_errors']}" if "console_errors" in r else ""), flush=True)


def report(rows: list[dict]) -> None:
    for turn in (1, 2):
        med = {via: statistics.median(r["first"] for r in rows if r["turn"] == turn and r["via"] == via)
               for via in ("page", "api")}
        done = {via: statistics.median(r["done"] for r in rows if r["turn"] == turn and r["via"] == via)
                for via in ("page", "api")}
        print(f"turn {turn} median first token: page {med['page']:.2f} s, api {med['api']:.2f} s "
              f"(page / api {med['page'] / med['api']:.2f}x); median done: page {done['page']:.2f} s, "
              f"api {done['api']:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index-dir", type=Path, default=Path("/tmp/rag-news-multihop-index"))
    ap.add_argument("--conversations", type=int, default=3, help="the first N answerable conversations")
    ap.add_argument("--model", help="the reader (default: the settings' one, the packaged Qwen2.5-1.5B offline)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"machine: {machine()}", flush=True)
    settings = Settings.load(index_dir=args.index_dir, progress=False, device="cpu",
                             **({"llm_model": args.model} if args.model else {}))
    index_news_pages(args.index_dir, settings)
    convs = [c for c in map(json.loads, open(CONVERSATIONS)) if c["turns"][1]["answers"]][: args.conversations]
    qa = NewsQA(settings)
    t0 = time.perf_counter()
    qa.ask("What happened this week?")  # the reader and the query embedder loaded before anything is timed
    print(f"reader loaded and warmed in {time.perf_counter() - t0:.1f} s ({qa.info.model})", flush=True)
    rows: list[dict] = []
    with Server(create_app(Service(qa, queue_size=2, max_generation_s=600), token=TOKEN)) as live, \
            httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=900) as client, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        for i, conv in enumerate(convs):
            rows += run_conversation(browser, client, live.url, conv, page_first=i % 2 == 0)
        browser.close()
    report(rows)


if __name__ == "__main__":
    main()
