"""``python -m rag_news.index``: output shape, exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import SMALL_MODEL

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args, cache_dir, **env):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_NEWS_CACHE_DIR": str(cache_dir),
                "RAG_NEWS_EMBEDDING_MODEL": SMALL_MODEL, "RAG_NEWS_RETRY_BACKOFF": "0.1", **env}
    return subprocess.run([sys.executable, "-m", "rag_news.index", *args], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=300)


def test_json_summary_from_a_url_file(site, tmp_path, cache_dir, bad_site):
    urls = tmp_path / "urls.txt"
    urls.write_text("# sample\n/2026/11/tidal-plant-opens.html\n/2026/11/hospital-wing.html  # two\n"
                    f"{bad_site}/missing\n")
    p = run_cli(["--urls", str(urls), "--base-url", site, "--index-dir", str(tmp_path / "i"), "--json"],
                cache_dir)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["pages_ok"] == 2 and out["chunks"] == out["chunks_embedded"] > 0
    assert out["pages_failed"] == [{"url": f"{bad_site}/missing", "reason": "HTTP 404 Not Found", "status": 404}]
    assert isinstance(out["seconds"], float)
    human = run_cli(["--urls", site + "2026/11/tidal-plant-opens.html", "--index-dir", str(tmp_path / "i")],
                    cache_dir)
    assert human.returncode == 0 and "unchanged" in human.stdout and "chunks embedded 0" in human.stdout


def _one_line_error(p):
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("python -m rag_news.index: error: "), p.stderr
    return lines[0]


def test_nothing_indexable_exits_1(tmp_path, cache_dir, bad_site):
    p = run_cli(["--urls", bad_site + "/missing", "ftp://x.example/a", "--index-dir", str(tmp_path / "i")],
                cache_dir)
    assert "nothing could be indexed" in _one_line_error(p)
    assert "HTTP 404" in p.stdout  # the per-URL reasons are still listed


@pytest.mark.parametrize("args, expect", [
    (["--urls", "http://127.0.0.1:9/a", "--browser", "/nonexistent/chrome"], "not an executable"),
    (["--urls", "missing-dir/urls.txt"], "URL list file not found"),
    (["--urls", "http://127.0.0.1:9/a", "--concurrency", "0"], "concurrency must be at least 1"),
])
def test_run_level_errors_are_one_line(args, expect, tmp_path, cache_dir):
    p = run_cli(args + ["--index-dir", str(tmp_path / "i")], cache_dir)
    assert expect in _one_line_error(p)


def test_unwritable_index_folder(tmp_path, cache_dir):
    (tmp_path / "file").write_text("x")
    p = run_cli(["--urls", "http://127.0.0.1:9/a", "--index-dir", str(tmp_path / "file" / "i")], cache_dir)
    assert "cannot write to index folder" in _one_line_error(p)


def test_corrupt_index_is_refused_before_scraping(tmp_path, cache_dir):
    idx = tmp_path / "i"
    idx.mkdir()
    (idx / "CURRENT").write_text("../../../etc\n")
    p = run_cli(["--urls", "http://127.0.0.1:9/a", "--index-dir", str(idx)], cache_dir)
    assert "invalid snapshot" in _one_line_error(p)


def test_usage_errors_exit_2(cache_dir):
    p = run_cli([], cache_dir)
    assert p.returncode == 2 and "--urls" in p.stderr
