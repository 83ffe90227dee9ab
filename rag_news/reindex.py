"""``python -m rag_news.reindex [--config FILE] [--index-dir DIR] [--every 30m]``: keep the index fresh.

One pass: discover article URLs from the ``[[sources]]`` of the settings file (URL lists, RSS/Atom feeds,
sitemaps), then :func:`rag_news.pipeline.update_index` with removal of stale articles. Prints a summary
line (``--json``: one JSON object a pass). ``--shard I/N`` takes only the URLs (and indexed articles) of
shard I of N, by a stable hash of the URL: with the Milvus backend N workers run at once, one per shard.
``--every`` repeats passes in this process (a tick whose
predecessor is still running is skipped); a pass that fails — for any reason but a configuration error —
is logged and the next one runs on schedule; SIGTERM / Ctrl-C end it after the current pass.

Exit status: 0 when the pass completed (even with some failed URLs) or another re-index holds the lock
(without ``--wait``); 1 when it could not run (bad config, no browser, unreadable index, every URL
failed); 2 for bad flags. Logs go to stderr with timestamps; progress bars only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from .cli import add_settings_flags, run, settings_from_args
from .embed import Embedder
from .errors import ConfigError, IndexLocked, NothingIndexed, RagNewsError
from .pipeline import IndexReport, update_index
from .settings import ENV_PREFIX, Settings
from .sources import Source, discover, load_sources, reach_for
from .urls import parse_shard

PROG = "python -m rag_news.reindex"
log = logging.getLogger("rag_news.reindex")


def parse_every(text: str) -> float:
    """``30m``, ``1h``, ``90s``, ``1h30m``, or plain seconds -> seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", t)
        if not parts or "".join(a + b for a, b in parts) != re.sub(r"\s+", "", t):
            raise ConfigError(f"--every expects a duration like 30m, 1h or 90s, got {text!r}")
        unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        seconds = sum(float(a) * unit[b] for a, b in parts)
    if seconds < 1:
        raise ConfigError("--every must be at least 1s")
    return seconds


def run_pass(settings: Settings, sources: list[Source], *, wait: bool = False, now: datetime | None = None,
             base_url: str | None = None, embedder=None, shard: tuple[int, int] | None = None) -> IndexReport:
    """Discover, then update the index (removing stale articles). Raises on problems that stop the pass.
    ``shard``: ``(I, N)``, only this worker's share of the URLs (see :func:`rag_news.pipeline.update_index`)."""
    t0 = time.perf_counter()
    reach = reach_for(sources, settings, base_url)  # one policy for discovery and the pages it finds
    found = discover(sources, timeout=settings.page_timeout, user_agent=settings.user_agent, now=now,
                     base_url=base_url, settings=settings, reach=reach)
    for f in found.failed:
        log.warning("%s", f["reason"] + f" ({f['url']})")
    if not found.targets and found.failed and len(found.failed) >= len(sources):
        raise NothingIndexed("no source could be read: " + "; ".join(f"{f['url']}: {f['reason']}" for f in found.failed))
    report = update_index(found.targets, settings, remove_stale=True, sources=sources, now=now, wait=wait,
                          embedder=embedder, shard=shard, reach=reach)
    report.pages_failed = found.failed + report.pages_failed
    report.duplicates += found.duplicates
    report.discovered += found.duplicates
    report.seconds = round(time.perf_counter() - t0, 3)
    if found.targets and report.pages_ok == 0 and report.pages_failed:
        saved = (f"only the removal of {report.articles_removed} stale article(s) was saved" if report.articles_removed
                 else "the index was left as it was")
        raise NothingIndexed(f"every URL failed ({len(report.pages_failed)}); {saved}: "
                             + "; ".join(f"{f['url']}: {f['reason']}" for f in report.pages_failed[:3]))
    return report


def summary_line(r: IndexReport) -> str:
    return (f"discovered {r.discovered}: new {r.articles_new}, changed {r.articles_changed}, unchanged "
            f"{r.articles_unchanged} ({r.not_modified} not modified), removed {r.articles_removed}, failed "
            f"{len(r.pages_failed)}; chunks embedded {r.chunks_embedded}; index {r.articles_total} articles / "
            f"{r.chunks_total} chunks; {r.seconds:.1f}s" + (f"; kept {len(r.kept)}" if r.kept else ""))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--every", help="repeat: a duration like 30m, 1h, 90s (default: one pass and exit)")
    ap.add_argument("--wait", action="store_true", help="wait for another re-index to finish instead of exiting")
    ap.add_argument("--base-url", help="join relative entries of `urls` sources to this base")
    ap.add_argument("--json", action="store_true", help="print one JSON object a pass on stdout")
    ap.add_argument("--shard", help="I/N: only shard I of N of the URLs (stable hash); run N workers at once "
                    "with the milvus backend")
    add_settings_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    config = args.config or os.environ.get(ENV_PREFIX + "CONFIG")
    if not config:
        raise ConfigError("no settings file: pass --config FILE (or set RAG_NEWS_CONFIG) with [[sources]] tables "
                          "(see data/sources.example.toml)")
    sources = load_sources(Path(config))
    if not sources:
        raise ConfigError(f"{config} has no [[sources]] (see data/sources.example.toml)")
    every = parse_every(args.every) if args.every else None
    shard = parse_shard(args.shard) if args.shard else None
    embedder = Embedder(settings)  # lazy: loaded by the first pass that embeds, then kept for the next ones

    def one() -> int:
        try:
            report = run_pass(settings, sources, wait=args.wait, base_url=args.base_url, embedder=embedder,
                              shard=shard)
        except IndexLocked as e:
            log.info("another re-index is running on %s; this pass is skipped (%s)", settings.index_dir, e)
            print(f"another re-index is running: {e}", file=sys.stderr)
            return 0
        log.info("pass complete: %s", summary_line(report))
        for f in report.pages_failed:
            log.warning("failed %s: %s", f["url"], f["reason"])
        for r in report.removed:
            log.info("removed %s: %s", r["url"], r["reason"])
        if args.json:
            print(json.dumps(report.summary(), ensure_ascii=False), flush=True)
        else:
            print(summary_line(report), flush=True)
        return 0

    if every is None:
        return one()

    stop = threading.Event()

    def _stop(signum, frame):
        log.info("signal %s: stopping after the current pass", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("re-indexing every %gs; SIGTERM or Ctrl-C stops", every)
    next_tick = time.monotonic()
    while not stop.is_set():
        try:
            one()
        except ConfigError:
            raise
        except RagNewsError as e:  # a bad pass (no browser, every URL failed...) does not end the loop
            log.error("pass failed: %s", e)
        except Exception as e:  # noqa: BLE001 - nor does a surprise: logged with its traceback, next tick
            log.error("pass failed unexpectedly (%s: %s); the next pass runs on schedule", type(e).__name__, e,
                      exc_info=e)
        next_tick += every
        now = time.monotonic()
        if now > next_tick:
            missed = int((now - next_tick) // every) + 1
            log.warning("the pass overran; skipping %d tick(s)", missed)
            next_tick += missed * every
        stop.wait(max(0.0, next_tick - time.monotonic()))
    return 0


def cli() -> None:
    """The console script: the same one-line errors as ``python -m rag_news.reindex``."""
    run(main, PROG)


if __name__ == "__main__":
    cli()
