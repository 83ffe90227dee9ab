"""The chat page at / in a real browser: Playwright (Python) driving Debian's Chromium against a real
rag_news.serve on 127.0.0.1 (bearer token on), over the sample site indexed by the real pipeline. The
page is under test, not the model: a scripted stub reader (tests/chat_stubs.py) streams its replies word
by word 0.15 s apart, so that tokens arriving before the end, a withheld figure and a full queue can be
produced on demand. The screenshot for the README is written to docs/chat.png."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from chat_stubs import ScriptedReader, sample_settings  # noqa: F401 (a fixture)
from rag_news import NewsQA
from rag_news.answer import MAX_QUESTION_CHARS
from servers import LiveServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "page-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOLD = "hold the model"


@pytest.fixture(scope="module")
def page_server(sample_settings, tmp_path_factory):  # noqa: F811
    from rag_news.serve import Service, create_app

    reader = ScriptedReader(delay=0.15, rules=[
        ("cost", "The conversion of the tram depot is budgeted at 6.4 million euros [1]."),
        ("built", "The Eastmoor branch library will be built in the old tram depot on Quarry Lane [1]."),
        ("visitors", "The Eastmoor branch library expects 912,345 visitors in its first year [1]."),
        (HOLD, " ".join(["The library will open in the old depot [1]."] * 3)),
        ("number of beds", "St Brennan's new children's wing has 36 beds [1]."),  # a two-figure question's sides
        ("number of rooms", "Larkspur College has 900 rooms for student housing [1]."),
        ("student housing", "Larkspur College has 900 rooms for student housing [4].")],
        plans=[("student housing", [("search_news", {"query": "Larkspur College student housing rooms"})])],
        rewrites={"How much will it cost?": "How much will the Eastmoor branch library conversion cost?"})
    settings = sample_settings.replace(cache_dir=tmp_path_factory.mktemp("pagecache"))
    qa = NewsQA(settings, llm=reader)
    qa.index  # opened at start, as rag_news.serve does (the page shows its counts)
    qa.retriever.search("Eastmoor library", k=1)  # the query embedder loaded before the first ask
    service = Service(qa, queue_size=1, max_generation_s=60)
    with LiveServer(create_app(service, token=TOKEN)) as live:
        yield live, service


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, page_server):
    live, _ = page_server
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    pg = context.new_page()
    pg.problems = []  # console errors and uncaught exceptions
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(f"uncaught: {e}"))
    pg.goto(live.url + "/")
    token = pg.get_by_label("Bearer token (kept in this browser)")
    pg.wait_for_function("() => document.querySelector('details.token').open")  # the page asks for it
    token.fill(TOKEN)
    token.press("Tab")  # change event: the page keeps it and reloads the lists
    yield pg
    context.close()


def ask(pg, question: str) -> None:
    box = pg.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")  # the keyboard sends


def last_answer(pg):
    return pg.locator("article.msg.assistant").last


def wait_done(pg, timeout: float = 60_000):
    pg.wait_for_function("() => { const a = [...document.querySelectorAll('article.msg.assistant')].pop();"
                         " return a && !a.hasAttribute('aria-busy'); }", timeout=timeout)


def unexpected(problems: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """Console errors other than Chromium's own line for a response status the test provoked."""
    return [p for p in problems if not any(f"status of {code}" in p for code in allowed)]


def test_tokens_stream_sources_are_links_and_a_follow_up_stays_on_the_article(page, page_server):
    pg = page
    pg.wait_for_function("() => document.getElementById('status').textContent.includes('articles')")
    assert "10 articles" in pg.locator("#status").inner_text()
    ask(pg, "Where will the Eastmoor branch library be built?")
    # tokens arrive before the end: part of the text is on screen while the answer is still busy
    pg.wait_for_function("() => { const a = [...document.querySelectorAll('article.msg.assistant')].pop();"
                         " return a && a.getAttribute('aria-busy') === 'true' && a.querySelector('.text').textContent"
                         ".split(' ').length >= 3; }", timeout=120_000)
    partial = last_answer(pg).locator(".text").inner_text()
    wait_done(pg)
    final = last_answer(pg).locator(".text").inner_text()
    assert partial and len(partial) < len(final) and final.startswith(partial.strip()[:10])
    link = last_answer(pg).get_by_role("link").first
    assert link.get_attribute("href").endswith("library-eastmoor.html")
    item = last_answer(pg).locator("ol.sources li").first
    assert "The Larkspur Ledger" in item.inner_text() and "2026-11-21" in item.inner_text()
    ask(pg, "How much will it cost?")
    wait_done(pg)
    follow = last_answer(pg)
    assert "6.4 million" in follow.locator(".text").inner_text()
    assert "Understood as: How much will the Eastmoor branch library conversion cost?" in follow.inner_text()
    assert follow.get_by_role("link").first.get_attribute("href").endswith("library-eastmoor.html")
    pg.wait_for_function("() => document.querySelectorAll('#recent li').length >= 1")
    (ROOT / "docs").mkdir(exist_ok=True)
    pg.screenshot(path=str(ROOT / "docs" / "chat.png"))
    pg.set_viewport_size({"width": 375, "height": 740})  # a phone: nothing wider than the screen
    assert pg.evaluate("document.documentElement.scrollWidth") <= 375
    assert pg.get_by_role("button", name="New conversation").is_visible()
    pg.get_by_role("button", name="New conversation").click()
    assert pg.locator("article.msg").count() == 0
    pg.get_by_role("button", name="Delete conversation: Where will the Eastmoor branch library be built?").click()
    pg.wait_for_function("() => document.querySelectorAll('#recent li').length === 0")
    assert unexpected(pg.problems) == []


def test_a_withdrawn_answer_is_shown_with_why(page):
    ask(page, "How many visitors will the Eastmoor branch library get?")
    wait_done(page)
    box = last_answer(page)
    assert "withdrawn" in box.get_attribute("class")
    why = box.locator(".why").inner_text()
    assert why.startswith("Withdrawn:") and "912345" in why and "appear in no passage" in why
    assert "912,345" in box.locator(".text").inner_text()  # what was streamed stays visible, struck through
    assert unexpected(page.problems) == []


def test_a_full_queue_is_shown_as_busy_and_retried(page, page_server):
    live, service = page_server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    held = []

    def hold():
        held.append(httpx.post(live.url + "/ask", json={"question": f"Please {HOLD}."}, headers=headers,
                               timeout=60).status_code)

    first = threading.Thread(target=hold)
    first.start()
    deadline = time.time() + 30
    while not (service._gate is not None and service._gate.locked()) and time.time() < deadline:
        time.sleep(0.05)
    second = threading.Thread(target=hold)
    second.start()
    while service.waiting < 1 and time.time() < deadline:
        time.sleep(0.05)
    ask(page, "Where will the Eastmoor branch library be built?")
    page.wait_for_selector("article.msg.assistant .busy", timeout=15_000)
    assert "busy" in last_answer(page).locator(".busy").inner_text().lower()
    wait_done(page, timeout=90_000)
    assert "tram depot" in last_answer(page).locator(".text").inner_text()
    first.join(), second.join()
    assert held == [200, 200]
    assert unexpected(page.problems, allowed=("429",)) == []


def test_an_over_long_question_shows_the_error_and_search_only_mode_lists_passages(page):
    ask(page, "why? " * (MAX_QUESTION_CHARS // 5 + 1))
    page.wait_for_selector("article.msg.error")
    assert "at most 2000 characters" in last_answer(page).inner_text()
    page.get_by_label("Search only").check()
    ask(page, "tram depot library")
    page.wait_for_selector("article.msg.search ol.sources a")
    found = page.locator("article.msg.search").last
    assert "passages found" in found.inner_text()
    assert found.get_by_role("link").first.get_attribute("href").endswith("library-eastmoor.html")
    assert unexpected(page.problems, allowed=("422",)) == []


def test_the_page_without_the_token_says_so_and_its_assets_are_local(browser, page_server):
    live, _ = page_server
    context = browser.new_context()
    pg = context.new_page()
    outside = []
    pg.on("request", lambda r: None if r.url.startswith(live.url) else outside.append(r.url))
    pg.goto(live.url + "/")
    pg.wait_for_function("() => document.getElementById('recent').textContent.includes('token')")
    ask(pg, "Where will the Eastmoor branch library be built?")
    pg.wait_for_selector("article.msg.error")
    assert "bearer token" in last_answer(pg).inner_text()
    assert outside == []  # nothing but the server: no CDN, no font service
    for control in ("Ask", "New conversation"):
        assert pg.get_by_role("button", name=control).count() == 1
    for label in ("Your question", "Published from", "Published until", "Outlets (comma-separated)",
                  "Passages to read (1-20)", "Reader's own searches"):
        assert pg.get_by_label(label).count() == 1
    context.close()


def test_research_searches_are_shown_before_the_answer_and_k_caps_the_sources(page):
    pg = page
    ask(pg, "Where will the Eastmoor branch library be built?")
    wait_done(pg)
    assert last_answer(pg).locator("ol.sources li").count() >= 2  # the server's k (3)
    pg.get_by_label("Passages to read (1-20)").fill("1")
    ask(pg, "Where will the Eastmoor branch library be built?")
    wait_done(pg)
    assert last_answer(pg).locator("ol.sources li").count() == 1
    assert last_answer(pg).locator("ul.tools").count() == 0  # no research asked: no searches shown
    pg.get_by_label("Passages to read (1-20)").fill("")
    pg.get_by_label("Reader's own searches").select_option("always")
    ask(pg, "How many rooms does Larkspur College have for student housing, and which is more?")
    wait_done(pg)
    box = last_answer(pg)
    searches = box.get_by_role("list", name="Searches made").locator("li")
    assert searches.count() == 1
    assert searches.first.inner_text().startswith("Searching: “Larkspur College student housing rooms”")
    assert "new passage" in searches.first.inner_text()
    assert box.evaluate("b => b.querySelector('ul.tools').nextElementSibling === b.querySelector('.text')")
    assert "900 rooms" in box.locator(".text").inner_text()
    ask(pg, "Which is larger: the number of beds in St Brennan's new children's wing, or the number of rooms "
            "Larkspur College has for student housing?")  # split into two sub-questions, each shown
    wait_done(pg)
    asked = last_answer(pg).get_by_role("list", name="Searches made").locator("li")
    assert asked.count() == 2 and asked.nth(0).inner_text().startswith("Asking: “What is the number of beds")
    assert asked.nth(1).inner_text().startswith("Asking: “What is the number of rooms")
    assert last_answer(pg).locator(".text").inner_text().startswith("The larger is the number of rooms")
    assert unexpected(pg.problems) == []
