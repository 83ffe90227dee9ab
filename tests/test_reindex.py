"""The re-index job: incremental passes driven by a feed, removal, crash safety (SIGKILL), the lock.

A copy of the sample site is served on 127.0.0.1 with an RSS feed the tests rewrite between passes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from rag_news import open_index
from rag_news.errors import NothingIndexed
from rag_news.reindex import parse_every, run_pass
from rag_news.retrieve import NewsRetriever
from rag_news.sample_site import SITE_DIR, serve
from rag_news.sources import Source
from rag_news.store import NewsIndex
from tests_support import SMALL_MODEL

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = sorted(str(p.relative_to(SITE_DIR)) for p in SITE_DIR.glob("2026/*/*.html"))
FERRY = "2026/11/ferry-timetable-winter.html"


def write_feed(site: Path, base: str, paths, extra: tuple[str, ...] = ()) -> None:
    items = "".join(f"<item><title>{p}</title><link>{base}{p}</link></item>" for p in paths)
    items += "".join(f"<item><title>x</title><link>{u}</link></item>" for u in extra)
    (site / "feed.xml").write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Ledger</title>'
                                   f"{items}</channel></rss>")


def edit(site: Path, path: str, old: str, new: str) -> None:
    f = site / path
    text = f.read_text(encoding="utf-8")
    assert old in text
    f.write_text(text.replace(old, new), encoding="utf-8")
    later = time.time() + 5
    os.utime(f, (later, later))  # a visibly newer Last-Modified, as a real edit gives


@pytest.fixture
def live_site(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(SITE_DIR, site)
    with serve(site) as base:
        write_feed(site, base, ARTICLES)
        yield site, base


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_passes_are_incremental_and_stale_articles_go(live_site, settings, small_embedder, backend):
    site, base = live_site
    settings = settings.replace(index_backend=backend)  # milvus: Milvus Lite in index_dir/milvus.db
    sources = [Source("ledger", feed=base + "feed.xml")]
    first = run_pass(settings, sources, embedder=small_embedder)
    assert first.articles_new == len(ARTICLES) and first.chunks_embedded > 0 and not first.pages_failed

    second = run_pass(settings, sources, embedder=small_embedder)
    assert second.chunks_embedded == 0 and second.articles_unchanged == len(ARTICLES)
    assert second.not_modified == len(ARTICLES)  # HTTP 304: not even rendered again
    assert second.summary()["new"] == second.summary()["changed"] == second.summary()["removed"] == 0

    before = {k: r["chunk_ids"] for k, r in open_index(settings.index_dir, settings).articles.items()}
    edit(site, FERRY, "cuts evening crossings", "cuts all evening and night crossings")
    third = run_pass(settings, sources, embedder=small_embedder)
    after = open_index(settings.index_dir, settings)
    ferry_key = next(k for k in after.articles if k.endswith(FERRY))
    assert third.articles_changed == 1 and third.articles_unchanged == len(ARTICLES) - 1
    assert third.chunks_embedded == len(after.articles[ferry_key]["chunk_ids"])
    assert {k: v for k, v in before.items() if k != ferry_key} == \
        {k: r["chunk_ids"] for k, r in after.articles.items() if k != ferry_key}
    assert "all evening and night crossings" in NewsRetriever(index=after, k=1).invoke("night crossings")[0].page_content

    # the same article under a tracking parameter, a fragment and a trailing slash is one article
    write_feed(site, base, ARTICLES, extra=(base + FERRY + "?utm_source=rss&utm_medium=feed", base + FERRY + "#x"))
    fourth = run_pass(settings, sources, embedder=small_embedder)
    assert fourth.articles_total == len(ARTICLES) and fourth.articles_new == 0 and fourth.duplicates == 2

    # dropped from the feed: kept while within the retention period, removed after it
    write_feed(site, base, [p for p in ARTICLES if p != FERRY])
    fifth = run_pass(settings, sources, embedder=small_embedder, now=datetime.now(timezone.utc) + timedelta(days=29))
    assert fifth.articles_removed == 0 and fifth.articles_total == len(ARTICLES)
    sixth = run_pass(settings, sources, embedder=small_embedder, now=datetime.now(timezone.utc) + timedelta(days=31))
    assert sixth.articles_removed == 1 and sixth.removed[0]["url"].endswith(FERRY)
    index = open_index(settings.index_dir, settings)
    assert len(index) == len(ARTICLES) - 1 and not any(FERRY in c.metadata["url"] for c in index.chunks())


def test_max_age_removes_old_articles(live_site, settings, small_embedder):
    site, base = live_site
    run_pass(settings, [Source("ledger", feed=base + "feed.xml")], embedder=small_embedder)
    # the sample articles are dated 2026-10-28 .. 2026-11-22; a 10-day limit on 2026-11-30 keeps 11-20 on
    report = run_pass(settings, [Source("ledger", feed=base + "feed.xml", max_age_days=10)], embedder=small_embedder,
                      now=datetime(2026, 11, 30, tzinfo=timezone.utc))
    kept = open_index(settings.index_dir, settings).articles.values()
    assert report.articles_removed > 0
    assert all(r["published"][:10] >= "2026-11-20" for r in kept)


def test_old_articles_do_not_churn_and_saved_removals_are_reported(live_site, settings, small_embedder):
    """A global max_age_days: articles past it are not re-fetched pass after pass once removed, nor added."""
    site, base = live_site
    sources = [Source("ledger", feed=base + "feed.xml")]
    run_pass(settings, sources, embedder=small_embedder)
    later = datetime(2026, 11, 30, tzinfo=timezone.utc)
    aged = settings.replace(max_age_days=10)
    first = run_pass(aged, sources, embedder=small_embedder, now=later)
    assert first.articles_removed > 0
    kept = first.articles_total
    for _ in range(2):  # the feed still lists them: skipped, not scraped, embedded and removed again
        again = run_pass(aged, sources, embedder=small_embedder, now=later)
        assert again.articles_new == again.articles_removed == again.chunks_embedded == 0
        assert again.articles_total == kept
        assert sum(p["status"].startswith("skipped: older than") for p in again.pages) == first.articles_removed
    # a pass whose every URL fails but which saved removals says so, instead of "left as it was"
    broken = [Source("gone", urls=["http://127.0.0.1:9/a.html"])]
    with pytest.raises(NothingIndexed, match=r"removal of \d+ stale article"):
        run_pass(settings.replace(retention_days=1), broken, embedder=small_embedder,
                 now=later + timedelta(days=5))
    assert open_index(settings.index_dir, settings).articles == {}


# ------------------------------------------------------------------------------ processes, crashes
def config_file(tmp_path: Path, settings, base: str) -> Path:
    cfg = tmp_path / "rag-news.toml"
    cfg.write_text(f'index_dir = "{settings.index_dir}"\ncache_dir = "{settings.cache_dir}"\n'
                   f'embedding_model = "{SMALL_MODEL}"\npage_timeout = 10\nretry_backoff = 0.1\n'
                   f'chunk_tokens = 48\nchunk_overlap = 8\n'  # many small chunks: embedding takes a while
                   f'[[sources]]\nname = "ledger"\nfeed = "{base}feed.xml"\n')
    return cfg


PAUSED = str(Path(__file__).with_name("paused.py"))  # runs a module with a pause point installed (rag_news.faults)


def start(cfg: Path, *args, pause: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    hook = [PAUSED, pause] if pause else []
    return subprocess.Popen([sys.executable, *hook, "-m", "rag_news.reindex", "--config", str(cfg), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_pause(proc: subprocess.Popen, name: str) -> None:
    deadline = time.time() + 240
    lines = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if f"paused at {name}" in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never paused at {name}: {''.join(lines)[-3000:]}")


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.parametrize("point", ["embedding", "writing", "swapping"])
def test_sigkill_mid_pass_leaves_the_previous_index_and_the_next_pass_completes(live_site, settings, tmp_path, point):
    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    code, out, err = finish(start(cfg, "--json"))
    assert code == 0, err[-3000:]
    assert json.loads(out)["new"] == len(ARTICLES)
    pass_before = NewsIndex.open(settings.index_dir, None).pass_id
    edit(site, FERRY, "cuts evening crossings", "cuts all evening and night crossings")
    proc = start(cfg, pause=point)
    wait_for_pause(proc, point)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert NewsIndex.open(settings.index_dir, None).pass_id == pass_before
    index = open_index(settings.index_dir, settings.replace(embedding_model=SMALL_MODEL))  # validates
    assert len(index) == len(ARTICLES)
    top = NewsRetriever(index=index, k=1).invoke("evening ferry crossings Gullholm")[0]
    assert top.metadata["url"].endswith(FERRY) and "night crossings" not in top.page_content

    code, out, err = finish(start(cfg, "--json"))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["changed"] == 1 and summary["unchanged"] == len(ARTICLES) - 1
    index = open_index(settings.index_dir, settings.replace(embedding_model=SMALL_MODEL))
    assert index.check() == []  # and no segment file of the killed pass is left behind:
    live = {f"{r['name']}.flat.faiss" for r in index.segment_rows()}
    assert {p.name for p in (settings.index_dir / "vectors").iterdir()} == live


def test_a_second_run_exits_while_the_first_holds_the_lock_and_wait_waits(live_site, settings, tmp_path):
    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    first = start(cfg, pause="embedding")
    wait_for_pause(first, "embedding")
    code, out, err = finish(start(cfg, "--json"))
    assert code == 0 and "another re-index is running" in err and out == ""
    waiter = start(cfg, "--wait", "--json")
    time.sleep(3)
    assert waiter.poll() is None  # blocked on the lock
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    code, out, err = finish(waiter)
    assert code == 0, err[-3000:]
    assert json.loads(out)["new"] == len(ARTICLES)
    assert len(open_index(settings.index_dir, settings.replace(embedding_model=SMALL_MODEL))) == len(ARTICLES)


def test_cli_errors_and_summary_line(live_site, settings, tmp_path):
    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    code, out, err = finish(start(cfg))
    assert code == 0 and out.startswith(f"discovered {len(ARTICLES)}: new {len(ARTICLES)}")
    assert " INFO rag_news.reindex: pass complete" in err  # timestamped log lines on stderr
    # every URL failing is an error; the index is left as it was
    broken = tmp_path / "broken.toml"
    broken.write_text(cfg.read_text().replace(f'feed = "{base}feed.xml"', 'urls = ["http://127.0.0.1:9/a.html"]'))
    code, out, err = finish(start(broken))
    assert code == 1 and "every URL failed" in err.strip().splitlines()[-1]
    nosrc = tmp_path / "nosrc.toml"
    nosrc.write_text(f'index_dir = "{settings.index_dir}"\n')
    code, out, err = finish(start(nosrc))
    assert code == 1 and "no [[sources]]" in err.strip().splitlines()[-1]
    # a crafted index is refused with one clear line, and nothing runs from it
    segment = next((settings.index_dir / "vectors").iterdir())
    segment.write_bytes(b"\x00" * 10)
    code, out, err = finish(start(cfg))
    assert code == 1 and "truncated or replaced" in err.strip().splitlines()[-1]
    code, out, err = finish(start(cfg, "--every", "soon"))
    assert code == 1 and "--every" in err


def test_every_repeats_passes_until_sigterm(live_site, settings, tmp_path):
    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    proc = start(cfg, "--every", "2s", "--json")
    records = []
    deadline = time.time() + 240
    while len(records) < 2 and time.time() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            records.append(json.loads(line))
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=120)
    assert code == 0, err[-2000:]
    assert records[0]["new"] == len(ARTICLES) and records[1]["chunks_embedded"] == 0
    assert set(records[1]) >= {"discovered", "new", "changed", "unchanged", "removed", "failed", "chunks_embedded",
                               "seconds"}


def test_parse_every():
    assert parse_every("30m") == 1800 and parse_every("1h30m") == 5400 and parse_every("90") == 90


# ------------------------------------------------------------------------------ shards on Milvus
@pytest.fixture
def milvus_server(tmp_path):
    """Milvus Lite's own gRPC server (``milvus-lite server``) on 127.0.0.1, stopped after the test."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_two_shard_workers_write_one_milvus_index_at_once(live_site, settings, tmp_path, milvus_server):
    from rag_news.urls import shard_of

    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    cfg.write_text(f'index_backend = "milvus"\nmilvus_uri = "{milvus_server}"\n' + cfg.read_text())
    workers = [start(cfg, "--json", "--shard", f"{i}/2") for i in range(2)]
    results = [finish(w) for w in workers]
    for code, out, err in results:
        assert code == 0, err[-3000:]
    new = [json.loads(out)["new"] for _, out, _ in results]
    expected = [sum(shard_of(base + p, 2) == i for p in ARTICLES) for i in range(2)]
    assert new == expected and min(new) > 0 and sum(new) == len(ARTICLES)

    index = open_index(settings.index_dir, settings.replace(index_backend="milvus", milvus_uri=milvus_server))
    records = index.articles
    assert sorted(records) == sorted(normalize(base + p) for p in ARTICLES)  # each article once
    listed = [c for r in records.values() for c in r["chunk_ids"]]
    assert len(listed) == len(set(listed)) == index.chunk_count and index.check() == []  # no duplicate chunk

    again = [finish(start(cfg, "--json", "--shard", f"{i}/2")) for i in range(2)]
    assert [json.loads(out)["unchanged"] for _, out, _ in again] == expected
    index.close()


def normalize(url: str) -> str:
    from rag_news.urls import normalize_url

    return normalize_url(url)
