"""``python -m rag_news.ask`` and ``python -m rag_news.eval``: output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(module, args, settings, code: str | None = None, **env):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_NEWS_CACHE_DIR": str(settings.cache_dir),
                "RAG_NEWS_EMBEDDING_MODEL": settings.embedding_model, **env}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=600)


def one_line_error(p, *needles):
    lines = [x for x in p.stderr.splitlines() if x.strip() and not x.startswith("note:")]
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert len(lines) == 1, p.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_json_answer(news_index):
    p = run("rag_news.ask", ["--index-dir", str(news_index.index_dir), "--json", "--max-new-tokens", "60",
                             "Where will the Eastmoor branch library be built?"], news_index)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert {"question", "answer", "sources", "abstained", "timings"} <= set(out)
    assert out["question"] == "Where will the Eastmoor branch library be built?"
    assert isinstance(out["answer"], str) and out["answer"] and out["abstained"] is False
    assert out["sources"] and {"n", "url", "title", "published", "outlet"} <= set(out["sources"][0])
    assert [s["n"] for s in out["sources"]] == list(range(1, len(out["sources"]) + 1))
    assert set(out["timings"]) == {"retrieve", "generate"} and all(v >= 0 for v in out["timings"].values())
    assert "note: no CUDA GPU" in p.stderr  # the substitution is announced once, on stderr


def test_streamed_answer_then_numbered_sources(news_index):
    p = run("rag_news.ask", ["--index-dir", str(news_index.index_dir), "--max-new-tokens", "40",
                             "--model", "smollm2", "What is the population of Paris?"], news_index)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("I don't know based on the indexed articles.")
    assert "[1] " in p.stdout and "http://127.0.0.1:" in p.stdout


def test_errors_are_one_line_with_a_nonzero_exit(news_index, tmp_path):
    idx = ["--index-dir", str(news_index.index_dir)]
    one_line_error(run("rag_news.ask", ["--index-dir", str(tmp_path / "none"), "what happened?"], news_index),
                   "no index in", "python -m rag_news.index")
    one_line_error(run("rag_news.ask", [*idx, "   "], news_index), "question is empty")
    one_line_error(run("rag_news.ask", [*idx, "why? " * 500], news_index), "too long")
    one_line_error(run("rag_news.ask", [*idx, "--model", str(tmp_path / "nope"), "q?"], news_index),
                   "does not exist")
    one_line_error(run("rag_news.ask", [*idx, "--device", "cuda", "q?"], news_index), "no CUDA GPU")
    one_line_error(run("rag_news.ask", [*idx, "--since", "last week", "q?"], news_index), "since")
    one_line_error(run("rag_news.ask", [*idx, "--until", "soon", "q?"], news_index), "until")
    one_line_error(run("rag_news.ask", [*idx, "--backend", "mistral", "q?"], news_index, MISTRAL_API_KEY=""),
                   "MISTRAL_API_KEY")
    bad_flag = run("rag_news.ask", [*idx, "--k", "many", "q?"], news_index)
    assert bad_flag.returncode == 2


def test_a_missing_backend_extra_is_named_package_mocked_absent(news_index):
    """langchain-openai is installed here: hide it from the import system to see the error its absence gives."""
    hide = ("import sys; sys.modules['langchain_openai'] = None; sys.argv[0] = 'ask'; "
            "from rag_news.ask import main, PROG; from rag_news.cli import run; run(main, PROG)")
    one_line_error(run(None, ["--index-dir", str(news_index.index_dir), "--backend", "openai", "--base-url",
                              "http://127.0.0.1:9/v1", "q?"], news_index, code=hide), 'pip install "rag-news[openai]"')


def test_eval_writes_one_line_per_question_and_scores(news_index, site, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"id": "a1", "question": "Where will the Eastmoor branch library be built?", "answers": ["old tram depot"],
         "page_id": "library-eastmoor", "url": None},
        {"id": "u1", "question": "What is the population of Paris?", "answers": [], "page_id": None, "url": None},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    p = run("rag_news.eval", ["--questions", str(questions), "--index-dir", str(news_index.index_dir),
                              "--out", str(out), "--json", "--max-new-tokens", "60"], news_index)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a1", "u1"]
    assert {"id", "question", "answer", "sources", "abstained", "grounded_raw", "grounded"} <= set(rows[0])
    assert rows[0]["sources"][0].endswith("/2026/11/library-eastmoor.html")
    scores = json.loads(p.stdout.strip().splitlines()[-1])
    assert scores["hit@1"] == 1.0 and scores["abstention_accuracy"] == 1.0 and scores["answer_accuracy"] == 1.0
    assert rows[1]["grounded"] is None and rows[1]["grounded_raw"] is None  # an abstention asserts nothing
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    one_line_error(run("rag_news.eval", ["--questions", str(bad), "--index-dir", str(news_index.index_dir)],
                       news_index), "not JSON")


def test_an_interactive_session_answers_each_line_with_one_model_load(news_index):
    """No question: questions are read a line at a time (here from stdin) until :quit, one model load."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_NEWS_CACHE_DIR": str(news_index.cache_dir),
           "RAG_NEWS_EMBEDDING_MODEL": news_index.embedding_model}
    lines = "What is the population of Paris?\n:until 2026-11-01\nWhat is the population of Paris?\n:quit\n"
    p = subprocess.run([sys.executable, "-m", "rag_news.ask", "--index-dir", str(news_index.index_dir),
                        "--model", "smollm2", "--max-new-tokens", "24", "--verbose"], input=lines,
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (p.stdout + p.stderr).count("retrieve ") == 2  # two answers, each with its timings line
    assert "(until 2026-11-01)" in p.stdout
    loads = [x for x in p.stderr.splitlines() if "rag_news.llm: loaded the reader" in x]
    assert len(loads) == 1 and "SmolLM2" in loads[0], p.stderr[-2000:]  # one load, of the model asked for


def test_console_scripts_give_the_same_one_line_errors(news_index):
    script = Path(sys.executable).parent / "rag-news-ask"  # made by pip install -e .
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_NEWS_CACHE_DIR": str(news_index.cache_dir)}
    p = subprocess.run([str(script), "--index-dir", str(news_index.index_dir), "   "], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=600)
    one_line_error(p, "question is empty")
    assert "Traceback" not in p.stderr
