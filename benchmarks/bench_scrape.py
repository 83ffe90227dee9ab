"""Scraping throughput: rag-news's loader vs LangChain's AsyncChromiumLoader on the same local pages.

Both drive the same Debian Chromium with the same flags. The baseline is AsyncChromiumLoader unchanged
except for where its browser lives (it has no executable-path option): a new browser per URL, pages loaded
one after another by ``load()``. Pages: the first N article-extraction benchmark pages, served on 127.0.0.1.

These real pages reference dozens of external hosts each. This machine has no network and its DNS takes
1-5 s to fail each name inside Chromium, which swamps both loaders. So two scenarios run side by side:

* ``isolated`` (headline): both browsers get ``--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1``,
  so external hosts fail at once, as on a machine whose DNS answers promptly; this measures the loaders.
* ``sandbox-dns``: this machine's DNS as it is (fewer pages, it is slow for both).
* ``sample-site``: 40 URLs of the project's own sample site (``data/site``: light pages, no external
  hosts, one paragraph inserted by JavaScript after load), the kind of page the brief's first figures used.

    python benchmarks/bench_scrape.py [--pages 48] [--dns-pages 16]
"""

from __future__ import annotations

import argparse
import time

from _common import load_pages, machine, serve_pages

from rag_news.sample_site import serve, site_urls
from rag_news.scrape import CHROMIUM_FLAGS, find_browser, scrape
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


def compare(name: str, urls: list[str], extra_args: list[str], marker: str | None = None) -> float:
    settings = Settings(progress=False, browser_args=tuple(extra_args))
    executable = find_browser(settings)
    t = time.perf_counter()
    ours = scrape(urls, settings)
    ours_s = time.perf_counter() - t
    print(f"[{name}] rag-news (1 browser, {settings.concurrency} pages at once): {len(ours.pages)} ok, "
          f"{len(ours.errors)} failed, {ours_s:.1f}s, {len(urls) / ours_s:.2f} pages/s", flush=True)
    t = time.perf_counter()
    docs = baseline_loader(urls, executable, extra_args).load()
    base_s = time.perf_counter() - t
    errors = sum(d.page_content.startswith("Error:") for d in docs)
    print(f"[{name}] AsyncChromiumLoader.load() (browser per URL, sequential): {len(docs) - errors} ok, "
          f"{errors} 'Error:' pages, {base_s:.1f}s, {len(urls) / base_s:.2f} pages/s", flush=True)
    ours_by_url = {p.metadata["source"]: p.page_content for p in ours.pages}
    same = sum(1 for d in docs if len(ours_by_url.get(d.metadata["source"], "")) >= 0.5 * len(d.page_content))
    print(f"[{name}] pages whose HTML we got at least half as long as the baseline's: {same}/{len(urls)}")
    if marker:  # text that a script inserts after the load event
        print(f"[{name}] pages holding the JavaScript-inserted paragraph: rag-news "
              f"{sum(marker in p.page_content for p in ours.pages)}/{len(urls)}, AsyncChromiumLoader "
              f"{sum(marker in d.page_content for d in docs)}/{len(urls)}")
    print(f"[{name}] speedup {base_s / ours_s:.1f}x", flush=True)
    return base_s / ours_s


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
        compare("sample-site", sample, [], marker='class="late"')
    print(f"speedup: {headline:.1f}")


if __name__ == "__main__":
    main()
