"""Hostile-site battery: every page accounted for with its reason, no request outside robots.txt or reach.

Two sites on loopback: A (127.0.0.1, named by the "operator" — the URL list and the sources below) plays
every trick in ``CASES``; B (127.0.0.2) is a host nobody named (an internal service, a metadata address):
it must get **0** requests. A's robots.txt disallows ``/private/``: A must get 0 requests there.

    python benchmarks/bench_faults.py            # prints one row per case, then the totals (and --json)

Each case is one row of ``CASES``: ``Case(name, kind, path, expect)`` — ``kind`` is ``page`` (the URL goes
through the fetch stage with the default ``render = "auto"``), ``feed`` or ``sitemap`` (a source read by
discovery); ``expect`` is a substring the page's reason must hold (``"ok"``: it must be fetched). Add a
case by adding a row (and, for a new trick, a path to ``tests/servers.HostileHandler``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


@dataclass
class Case:
    name: str
    kind: str  # page | feed | sitemap
    path: str
    expect: str  # substring of the reason; "ok" = fetched


CASES = [
    Case("a good page", "page", "/page/1", "ok"),
    Case("slow drip (1 byte / 0.2 s)", "page", "/drip", "timed out after"),
    Case("gzip bomb (200 MB of zeros, Content-Encoding)", "page", "/gzip-bomb", "after decompression"),
    Case("redirect loop", "page", "/loop", "redirect loop"),
    Case("redirect to an unlisted host", "page", "/redirect-to-b", "refused: redirect to a non-public address"),
    Case("meta refresh to an unlisted host", "page", "/meta-to-b", "refused: a page navigation to a non-public"),
    Case("script navigation to an unlisted host", "page", "/script-to-b", "ok"),
    Case("iframe / fetch / css from an unlisted host", "page", "/embeds-b", "ok"),
    Case("lying Content-Length", "page", "/lying-length", "network error"),
    Case("truncated gzip", "page", "/truncated-gzip", "truncated gzip"),
    Case("broken PDF", "page", "/broken.pdf", "PDF could not be read"),
    Case("huge PDF (30 MB)", "page", "/huge.pdf", "too large"),
    Case("PDF of 2,000 pages (max_pdf_pages)", "page", "/many-pages.pdf", "ok"),
    Case("robots.txt-disallowed page", "page", "/private/secret.html", "disallowed by robots.txt"),
    Case("sitemap index fanning out to 10,000 sitemaps", "sitemap", "/fanout.xml", "max_sitemaps"),
    Case("sitemap index with file:// and unlisted-host children", "sitemap", "/index-to-b.xml", "refused"),
    Case("gzip bomb sitemap (.xml.gz)", "sitemap", "/bomb.xml.gz", "after decompression"),
    Case("truncated gzip sitemap", "sitemap", "/truncated.xml.gz", "truncated gzip"),
    Case("feed listing file:// / ftp:// / unlisted-host URLs", "feed", "/feed-file.xml", "refused"),
]


def run(settings) -> dict:
    from rag_news.fetch import fetch
    from rag_news.sources import Source, discover, reach_for
    from servers import HostileHandler, InternalHandler, serve_handler, serve_on

    InternalHandler.log, HostileHandler.log = [], []
    HostileHandler.bomb(), HostileHandler.many_pages()  # made before the clock starts
    rows = []
    t0 = time.perf_counter()
    with serve_on(InternalHandler, "127.0.0.2") as b, serve_handler(HostileHandler) as a:
        HostileHandler.other = b
        source_cases = [c for c in CASES if c.kind != "page"]
        sources = [Source(c.name, **{c.kind: a + c.path}) for c in source_cases]
        reach = reach_for(sources + [Source("pages", urls=[a + "/"])], settings)
        found = {c.name: discover([src], settings=settings, reach=reach) for c, src in zip(source_cases, sources)}
        page_cases = [c for c in CASES if c.kind == "page"]
        entries = [t.url for c in source_cases if c.kind == "feed" for t in found[c.name].targets]
        result = fetch([a + c.path for c in page_cases] + entries, settings, reach=reach)
        outcome = {f.url: "ok" + (f" ({f.render})" if f.render else "") for f in result.fetched}
        outcome.update({e.url: e.reason for e in result.errors + result.skipped})
        for c in page_cases:
            reason = outcome.get(a + c.path, "NOT ACCOUNTED FOR")
            rows.append({"case": c.name, "outcome": reason, "expected": c.expect in reason})
        for c in source_cases:
            d = found[c.name]
            if c.kind == "feed":  # its entries went through the fetch stage
                parts = [f"{t.url} -> {outcome.get(t.url, 'NOT ACCOUNTED FOR')}" for t in d.targets]
                ok = bool(parts) and not any("NOT ACCOUNTED" in p or p.endswith("-> ok") for p in parts)
            else:
                parts = [f"{f['url']}: {f['reason']}" for f in d.failed]
                ok = any(c.expect in p for p in parts)
            text = f"{len(d.targets)} article URLs; " + "; ".join(parts)
            rows.append({"case": c.name, "outcome": text, "expected": ok})
    wall = time.perf_counter() - t0
    outside = len(InternalHandler.log) + sum(p.startswith("/private/") for p in HostileHandler.log)
    accounted = sum("NOT ACCOUNTED" not in r["outcome"] for r in rows)
    return {"rows": rows, "cases": len(CASES), "accounted": accounted,
            "as_expected": sum(r["expected"] for r in rows), "requests_outside_robots_or_reach": outside,
            "site_b_requests": list(InternalHandler.log), "requests_to_a": len(HostileHandler.log),
            "wall_s": round(wall, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_rss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def main() -> None:
    from rag_news.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--page-timeout", type=float, default=5.0)
    args = ap.parse_args()
    settings = Settings(page_timeout=args.page_timeout, retries=0, progress=False, settle_ms=500,
                        max_page_bytes=10_000_000, max_feed_bytes=20_000_000)
    out = run(settings)
    for r in out["rows"]:
        print(f"{'ok ' if r['expected'] else 'BAD'} {r['case']:<55} {r['outcome'][:150]}")
    print(f"cases {out['cases']}, accounted for {out['accounted']}, as expected {out['as_expected']}; "
          f"requests outside robots.txt or reach: {out['requests_outside_robots_or_reach']}; "
          f"requests to site A {out['requests_to_a']}; wall {out['wall_s']}s; peak RSS {out['peak_rss_mib']} MiB "
          f"(children: {out['peak_rss_children_mib']} MiB)")
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"requests_outside_robots_or_reach: {out['requests_outside_robots_or_reach']}")


if __name__ == "__main__":
    main()
