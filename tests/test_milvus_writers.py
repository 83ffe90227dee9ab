"""Concurrent Milvus writers (issue 21): two re-index processes on one shard never overlap, and a record
of another shard is updated as a compare-and-set, so no writer's update of it is lost.

Real Milvus: Milvus Lite's own gRPC server (``milvus-lite server``) on 127.0.0.1 for the two processes,
Milvus Lite in this process for the record races (several stores of one process share its path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from rag_news import open_index
from rag_news.retrieve import NewsRetriever
from rag_news.store import open_store
from rag_news.urls import normalize_url, shard_of

from test_reindex import ARTICLES, FERRY, PAUSED, ROOT, config_file, edit, finish, live_site, milvus_server  # noqa: F401
from test_store_backends import stage
from tests_support import SMALL_MODEL

TIMEOUT = 300


def _start(cfg, *args, pause: str | None = None, until=None) -> subprocess.Popen:
    """``reindex`` in a process; ``pause``: hold the pass at that pause point until the file ``until`` exists."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    hook = [PAUSED, pause, "--until", str(until)] if pause else []  # a pause point installed (rag_news.faults)
    return subprocess.Popen([sys.executable, *hook, "-m", "rag_news.reindex", "--config", str(cfg), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, text: str) -> None:
    deadline, lines = time.time() + TIMEOUT, []
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never printed {text!r}: {''.join(lines)[-3000:]}")


def test_two_reindex_processes_on_one_milvus_shard_never_overlap(live_site, settings, tmp_path, milvus_server):
    """A cron pass and an overrun of the same shard: the second exits with "another pass holds shard i/2",
    a third with ``--wait`` waits and passes only after the first committed (it finds nothing left to do);
    every article of the shard is visible, the edited one in its new version, and no chunk is orphaned."""
    site, base = live_site
    cfg = config_file(tmp_path, settings, base)
    cfg.write_text(f'index_backend = "milvus"\nmilvus_uri = "{milvus_server}"\n' + cfg.read_text())
    i = shard_of(normalize_url(base + FERRY), 2)
    shard = f"{i}/2"
    mine = sorted(normalize_url(base + p) for p in ARTICLES if shard_of(base + p, 2) == i)
    code, out, err = finish(_start(cfg, "--json", "--shard", shard), TIMEOUT)
    assert code == 0 and json.loads(out)["new"] == len(mine), err[-3000:]

    edit(site, FERRY, "cuts evening crossings", "cuts all evening and night crossings")
    go_on = tmp_path / "go-on"
    cron = _start(cfg, "--json", "--shard", shard, pause="writing", until=go_on)  # chunks written, records not
    _wait_for(cron, "paused at writing")
    code, out, err = finish(_start(cfg, "--json", "--shard", shard), TIMEOUT)
    assert code == 0 and out == "" and f"another pass holds shard {shard}" in err, err[-3000:]
    waiter = _start(cfg, "--json", "--shard", shard, "--wait")
    time.sleep(15)
    assert waiter.poll() is None  # waiting for the lease
    go_on.touch()
    code, out, err = finish(cron, TIMEOUT)
    assert code == 0 and json.loads(out)["changed"] == 1, err[-3000:]
    code, out, err = finish(waiter, TIMEOUT)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["changed"] == 0 and summary["unchanged"] == len(mine)  # it ran after the cron pass, not beside

    index = open_index(settings.index_dir, settings.replace(index_backend="milvus", milvus_uri=milvus_server,
                                                            embedding_model=SMALL_MODEL))
    try:
        assert sorted(index.articles) == mine  # no article hidden
        assert index.check() == []  # no chunk orphaned, none missing
        listed = [c for r in index.articles.values() for c in r["chunk_ids"]]
        assert len(listed) == len(set(listed)) == index.chunk_count
        top = NewsRetriever(index=index, k=1).invoke("evening ferry crossings Gullholm")[0]
        assert top.metadata["url"].endswith(FERRY) and "night crossings" in top.page_content
    finally:
        index.close()


# ------------------------------------------------------------------------------ cross-shard records
TEXT = "The last evening ferry to Gullholm Island now leaves at 19:40, two hours earlier than in summer."


def _key(shard: int, n: int, name: str) -> str:
    return next(k for j in range(1000) if shard_of(k := f"http://127.0.0.1/{name}-{j}", n) == shard)


def test_two_writers_racing_one_record_of_another_shard_lose_neither_update(settings, small_embedder):
    """Shards 0/3 and 1/3 each add an alias to an article of shard 2/3, their read-modify-writes
    overlapping (the pipeline reads the record when it finds the copy and writes at commit); then 0/3 adds
    one while the owner rewrites the article. Every alias survives, and the owner's new version too."""
    from rag_news.store.milvus_cas import pending

    s = settings.replace(index_backend="milvus")
    owner, a, b = (open_store(s, small_embedder, create=True) for _ in range(3))
    twin, copy_a, copy_b, copy_c = _key(2, 3, "twin"), _key(0, 3, "a"), _key(1, 3, "b"), _key(0, 3, "c")
    try:
        with owner.writer(shard=(2, 3)):
            stage(owner, small_embedder, s, twin, "Winter ferry timetable", TEXT, "2026-11-02")
            owner.commit()
        with a.writer(shard=(0, 3)):
            seen = a.article(twin)
            a.touch(twin, aliases=[*(seen.get("aliases") or []), copy_a], last_seen="2026-11-23T10:00:00+00:00")
            with b.writer(shard=(1, 3)):  # b reads, updates and commits between a's read and a's commit
                seen = b.article(twin)
                b.touch(twin, aliases=[*(seen.get("aliases") or []), copy_b], last_seen="2026-11-23T10:00:05+00:00")
                b.commit()
            a.commit()
        got = owner.article(twin)
        assert {copy_a, copy_b} <= set(got["aliases"])
        assert got["last_seen"] == "2026-11-23T10:00:05+00:00"  # the later one
        assert owner.key_for_url(copy_a) == owner.key_for_url(copy_b) == twin

        with owner.writer(shard=(2, 3)):  # the owner rewrites the article while shard 0/3 adds an alias
            new_ids = stage(owner, small_embedder, s, twin, "Winter ferry timetable",
                            TEXT.replace("19:40", "19:10"), "2026-11-02")
            with a.writer(shard=(0, 3)):
                a.touch(twin, aliases=[*(a.article(twin).get("aliases") or []), copy_c])
                a.commit()
            assert pending(owner, (2, 3))  # shard 2/3 is held: the update waits for its holder
            owner.commit()
        got = owner.article(twin)
        assert got["chunk_ids"] == new_ids and copy_c in got["aliases"]
        assert "19:10" in owner.article_text(twin) and owner.check() == [] and not pending(owner)
    finally:
        for store in (owner, a, b):
            store.close()
