"""Fetching throughput: rag-news's fetch stage vs LangChain's AsyncChromiumLoader on the same local pages.

Same end product on both sides: the cleaned article text of each page (the baseline's HTML goes through
the same cleaner, timed with it). Three readers, one run:

* ``auto`` (the default): plain HTTP first, Chromium only where a page needs it (see rag_news.fetch);
* ``chromium``: rag-news's own renderer for every page (``render = "always"``: one browser, 4 tabs);
* AsyncChromiumLoader, unchanged except for where its browser lives (a new browser per URL, sequential).

Pages: the first N article-extraction benchmark pages served on 127.0.0.1. They reference dozens of
external hosts, and this machine's DNS takes 1-5 s to fail each name inside Chromium, so the ``isolated``
scenario (headline) gives every browser ``--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`` (as on
a machine whose DNS answers promptly); ``sandbox-dns`` keeps this machine's DNS; ``sample-site`` reads 40
URLs of the project's sample site, whose articles get a paragraph from JavaScript after load.

    python benchmarks/bench_scrape.py [--pages 48] [--dns-pages 16]
"""

from __future__ import annotations

import argparse
import time

from _common import load_pages, machine, serve_pages

from rag_news.clean import clean
from rag_news.fetch import fetch
from rag_news.fetch.render import CHROMIUM_FLAGS, find_browser, scrape
from rag_news.sample_site import serve, site_urls
from rag_news.settings import Settings


ISOLATE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def baseline_loader(urls, executable, extra_args):
    from langchain_community.document_loaders import AsyncChromiumLoader
    from playwright.async_api import async_playwright

    class LocalChromiumLoader(AsyncChromiumLoader):
        async def ascrape_playwright(self, url: str) -> str:  # upstream body; only launch() arguments added
            results = ""
            async with async_playwright() as p:
                browser = await p.chromium.launch(headless=self.headless, executable_path=executable,
                                                  args=CHROMIUM_FLAGS + extra_args)
                try:
                    page = await browser.new_page(user_agent=self.user_agent)
                    await page.goto(url)
                    results = await page.content()
                except Exception as e:
                    results = f"Error: {e}"
                await browser.close()
            return results

    return LocalChromiumLoader(urls)


def run_ours(name: str, urls: list[str], settings: Settings) -> tuple[float, dict]:
    t = time.perf_counter()
    result = fetch(urls, settings)
    took = time.perf_counter() - t
    texts = {f.url: f.article.page_content for f in result.fetched if f.article is not None}
    print(f"[{name}] rag-news render={settings.render}: {len(texts)} articles, {len(result.errors)} failed, "
          f"{result.rendered} rendered in Chromium, {took:.1f}s, {len(urls) / took:.2f} pages/s", flush=True)
    return took, texts


def run_baseline(name: str, urls: list[str], settings: Settings, extra_args: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    docs = baseline_loader(urls, find_browser(settings), extra_args).load()
    texts = {}
    for d in docs:
        if not d.page_content.startswith("Error:"):
            article = clean(d, settings)
            if article is not None:
                texts[d.metadata["source"]] = article.page_content
    took = time.perf_counter() - t
    print(f"[{name}] AsyncChromiumLoader.load() + clean (browser per URL, sequential): {len(texts)} articles, "
          f"{len(urls) - len(texts)} without, {took:.1f}s, {len(urls) / took:.2f} pages/s", flush=True)
    return took, texts


def compare(name: str, urls: list[str], extra_args: list[str], marker: str | None = None) -> tuple[float, float]:
    """``(auto / baseline, render=always / baseline)`` speedups: HTTP-first fetching vs a browser per URL,
    and the like-for-like one (every page through Chromium on both sides)."""
    base = Settings(progress=False, browser_args=tuple(extra_args))
    auto_s, auto = run_ours(name, urls, base)
    chrome_s, chrome = run_ours(name, urls, base.replace(render="always"))
    base_s, baseline = run_baseline(name, urls, base, extra_args)
    lost = [u for u in baseline if u not in auto]
    print(f"[{name}] pages the baseline got an article for and auto did not: {len(lost)} {lost[:3]}")
    if marker:  # a sentence that a script inserts after the load event
        print(f"[{name}] articles holding the JavaScript-inserted sentence: auto "
              f"{sum(marker(u) in t for u, t in auto.items())}/{len(urls)}, chromium "
              f"{sum(marker(u) in t for u, t in chrome.items())}/{len(urls)}, AsyncChromiumLoader "
              f"{sum(marker(u) in t for u, t in baseline.items())}/{len(urls)}")
    print(f"[{name}] speedup vs AsyncChromiumLoader: auto {base_s / auto_s:.1f}x, chromium {base_s / chrome_s:.1f}x",
          flush=True)
    return base_s / auto_s, base_s / chrome_s


def late_sentence(url: str) -> str:
    """The sentence the sample-site page at ``url`` inserts by script after load."""
    import re

    from rag_news.sample_site import SITE_DIR

    path = SITE_DIR / url.split("/", 3)[3].split("?")[0]
    return re.search(r'p\.textContent = "([^"]+)"', path.read_text(encoding="utf-8")).group(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=48)
    ap.add_argument("--dns-pages", type=int, default=16, help="pages for the sandbox-dns scenario (0: skip)")
    args = ap.parse_args()
    pages = dict(list(load_pages().items())[: args.pages])
    print(f"machine: {machine()}; browser: {find_browser(Settings())}; pages: {len(pages)}")
    with serve_pages(pages) as base:
        urls = [f"{base}/{k}.html" for k in pages]
        scrape(urls[:2], Settings(progress=False))  # warm the OS file cache for the browser binary
        if args.dns_pages:
            compare("sandbox-dns", urls[: args.dns_pages], [])
        headline = compare("isolated", urls, ISOLATE)
    with serve() as base:
        sample = [f"{u}?copy={i}" for i in range(4) for u in site_urls(base)]
        compare("sample-site", sample, [], marker=late_sentence)
    print(f"like-for-like (render=always, every page in Chromium) vs AsyncChromiumLoader: {headline[1]:.1f}x")
    print(f"speedup: {headline[0]:.1f}  (HTTP first, Chromium where needed, vs AsyncChromiumLoader's browser per URL)")


if __name__ == "__main__":
    main()
