"""Answering as a service: the server under load, and the time to a first token with the model kept loaded.

1. ``python -m rag_news.serve`` on 127.0.0.1 (a subprocess) over the sample site's index, with the packaged
   SmolLM2, 3 passages in a 128-token budget and 24-token answers (the server is under test, not the
   model; SmolLM2 reads ~130 prompt tokens/s on this 2-core machine): 20 concurrent clients x 10
   requests each (``POST /ask``, sample-site questions in turn). A client told 429 waits for Retry-After and
   asks again. Reported: answered / 429 / other errors, whether every answer equals the in-process
   ``NewsQA.ask`` answer to the same question, the server's resident memory after request 20 and after
   request 200, latency p50/p95 and queue wait p50/p95.
   Also: retrieval + passage compression per question in process, with the sentence vectors not yet kept
   (first time each question is asked) vs kept (second time).
2. Time to the first token of a second question: an interactive ``python -m rag_news.ask`` session (model
   and index loaded once) vs a second ``python -m rag_news.ask`` process, same question, with the offline
   default reader (the packaged Qwen 1.5B) and with SmolLM2.

    python benchmarks/bench_serve.py [--clients 20] [--requests 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import ROOT, machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news import NewsQA, Settings, index_urls  # noqa: E402
from rag_news.sample_site import serve, site_urls  # noqa: E402

QUESTIONS = [json.loads(x)["question"] for x in (ROOT / "data" / "sample-questions.jsonl").read_text().splitlines()
             if x.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


SERVE = {"llm_model": "smollm2", "max_new_tokens": 24, "k": 3, "context_tokens": 128}


def start_server(index_dir: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rag_news.serve", "--index-dir", str(index_dir), "--port", str(port),
           "--model", SERVE["llm_model"], "--max-new-tokens", str(SERVE["max_new_tokens"]), "--k", str(SERVE["k"]),
           "--context-tokens", str(SERVE["context_tokens"]), "--queue", "8"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read()[-2000:]}")


def load(url: str, pid: int, clients: int, per_client: int, expected: dict) -> dict:
    import httpx

    lock, rows, rss = threading.Lock(), [], {}

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            for r in range(per_client):
                question = QUESTIONS[(c + r) % len(QUESTIONS)]
                busy, t0 = 0, time.perf_counter()
                while True:
                    resp = http.post("/ask", json={"question": question})
                    if resp.status_code != 429:
                        break
                    busy += 1
                    time.sleep(float(resp.headers.get("retry-after", "1")))
                body = resp.json()
                with lock:
                    rows.append({"status": resp.status_code, "busy": busy, "seconds": time.perf_counter() - t0,
                                 "queue_wait": body.get("queue_wait_s", 0.0),
                                 "same": body.get("answer") == expected[question]})
                    if len(rows) in (20, clients * per_client):
                        rss[len(rows)] = rss_mb(pid)
                    if len(rows) % 20 == 0:
                        print(f"  {len(rows)} requests done", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    ok = [r for r in rows if r["status"] == 200]
    lat, wait = [r["seconds"] for r in ok], [r["queue_wait"] for r in ok]
    return {"requests": len(rows), "answered": len(ok), "answers_like_in_process": sum(r["same"] for r in ok),
            "429_then_retried": sum(r["busy"] for r in rows), "other_errors": len(rows) - len(ok),
            "rss_mb_after_20": rss.get(20), f"rss_mb_after_{len(rows)}": rss.get(len(rows)),
            "latency_p50_s": round(float(np.median(lat)), 2), "latency_p95_s": round(float(np.percentile(lat, 95)), 2),
            "queue_wait_p50_s": round(float(np.median(wait)), 2), "queue_wait_p95_s": round(float(np.percentile(wait, 95)), 2),
            "wall_s": round(took, 1), "answers_per_s": round(len(ok) / took, 2)}


def first_token_s(proc: subprocess.Popen, question: str) -> float:
    """Send a question to an interactive session; seconds until its answer's first character."""
    t0 = time.perf_counter()
    proc.stdin.write(question + "\n")
    proc.stdin.flush()
    proc.stdout.read(1)
    first = time.perf_counter() - t0
    while not proc.stdout.readline().startswith("retrieve") and proc.poll() is None:  # rest of this answer
        pass
    return first


def ttft(index_dir: Path, model: str, question: str) -> dict:
    """Second question in one session vs a second process (both after a first run warmed the OS caches)."""
    env = {**os.environ, "RAG_NEWS_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "rag_news.ask", "--model", model, "--max-new-tokens", "32"]
    subprocess.run(args + [question], cwd=ROOT, env=env, capture_output=True, timeout=900)  # warm caches
    t0 = time.perf_counter()
    proc = subprocess.Popen(args + [question], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    proc.stdout.read(1)
    second_process = time.perf_counter() - t0
    proc.wait(timeout=900)
    session = subprocess.Popen(args, cwd=ROOT, env={**env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    first_token_s(session, question)
    second_in_session = first_token_s(session, question)
    session.stdin.write(":quit\n")
    session.stdin.flush()
    session.wait(timeout=120)
    return {"model": model, "second_process_s": round(second_process, 2),
            "second_question_in_session_s": round(second_in_session, 2),
            "ratio": round(second_process / second_in_session, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rag-news-serve-"))
    settings = Settings.load(index_dir=tmp / "index", progress=False, **SERVE)
    with serve() as base:
        index_urls(site_urls(base), settings)
    print(f"machine: {machine()}; index: the sample site (10 articles); questions: {len(QUESTIONS)}; "
          f"server settings: {SERVE}")
    qa = NewsQA(settings).warm_up()
    cold = [qa.ask(q) for q in QUESTIONS]
    warm = [qa.ask(q) for q in QUESTIONS]
    expected = dict(zip(QUESTIONS, (a.answer for a in cold)))
    c, w = (float(np.median([a.timings["retrieve"] for a in x])) for x in (cold, warm))
    print(f"retrieve + compress per question, median: sentence vectors new {c:.3f}s, kept {w:.3f}s "
          f"({c / w:.1f}x); answers the same both times: {sum(a.answer == b.answer for a, b in zip(cold, warm))}"
          f"/{len(cold)}")
    del qa
    port = free_port()
    server = start_server(settings.index_dir, port)
    try:
        result = load(f"http://127.0.0.1:{port}", server.pid, args.clients, args.requests, expected)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print("server under load:", json.dumps(result, indent=1))
    rows = [ttft(settings.index_dir, m, QUESTIONS[2]) for m in ("qwen2.5-1.5b", "smollm2")]
    for r in rows:
        print(f"first token of a second question, {r['model']}: second process {r['second_process_s']}s, "
              f"interactive session {r['second_question_in_session_s']}s ({r['ratio']}x)")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"ttft_ratio_qwen: {rows[0]['ratio']}")


if __name__ == "__main__":
    main()
