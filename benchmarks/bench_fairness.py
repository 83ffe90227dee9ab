"""Fairness between clients that retry after a 429: 20 concurrent clients against the real server.

The server is ``rag_news.serve``'s own app (``create_app`` + ``Service``, uvicorn on 127.0.0.1, in a
subprocess) with a stub reader: every answer takes a fixed ``--service-s`` (0.25 s) in the worker thread,
as a model would, and returns a fixed answer. The queue and its Retry-After are under test, not the model;
a fixed service time makes every difference in latency the queue's doing (a real model's time varies with
the question and with the other jobs on this machine).

20 clients (threads, one ``httpx.Client`` each) ask ``--requests`` questions each, one after the other,
all starting together. A client told 429 sleeps for the ``Retry-After`` it was given and asks again (and
sends back the ``Queue-Ticket`` it was given, when there is one). Latency is from a request's first attempt
to its answer. Printed per policy: latency p50 / p95 and p95 / p50 (goal <= 3), the slowest client's mean
latency over the fastest's, the most 429s one request got, and the slowest single request.

    python benchmarks/bench_fairness.py [--clients 20] [--requests 10] [--service-s 0.25] [--queue 8]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from _common import ROOT, machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubQA:
    """A reader that takes ``seconds`` per answer (the server's ``NewsQA`` as ``Service`` uses it)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def stream(self, question: str, since=None, until=None):
        from rag_news.answer import Answer

        time.sleep(self.seconds)
        yield "stub answer"
        yield Answer(question=question, answer="stub answer", sources=[], abstained=False, cited=[],
                     timings={"generate": self.seconds}, model="stub")

    def interrupt(self) -> None:
        pass


def serve_stub(port: int, service_s: float, queue: int, fair: bool) -> None:
    """The server process: the real app over the stub reader."""
    import uvicorn

    from rag_news.serve import Service, create_app

    service = Service(StubQA(service_s), queue, 60.0, fair=fair)
    uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning")


def start(service_s: float, queue: int, fair: bool) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--service-s", str(service_s),
                             "--queue", str(queue)] + (["--fair"] if fair else []), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            httpx.post(f"{url}/docs-none", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start")


def run_clients(url: str, clients: int, per_client: int) -> list[dict]:
    import httpx

    rows, lock = [], threading.Lock()
    go = threading.Barrier(clients)

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            go.wait()
            for r in range(per_client):
                busy, ticket, t0 = 0, None, time.perf_counter()
                while True:
                    headers = {"Queue-Ticket": ticket} if ticket else {}
                    resp = http.post("/ask", json={"question": f"question {c}-{r}?"}, headers=headers)
                    if resp.status_code != 429:
                        break
                    busy += 1
                    ticket = resp.headers.get("queue-ticket", ticket)
                    time.sleep(float(resp.headers.get("retry-after", "1")))
                with lock:
                    rows.append({"client": c, "status": resp.status_code, "busy": busy,
                                 "seconds": time.perf_counter() - t0})

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows


def figures(rows: list[dict], wall: float) -> dict:
    ok = [r for r in rows if r["status"] == 200]
    lat = [r["seconds"] for r in ok]
    per_client = {}
    for r in ok:
        per_client.setdefault(r["client"], []).append(r["seconds"])
    means = [statistics.mean(v) for v in per_client.values()]
    p50, p95 = float(np.median(lat)), float(np.percentile(lat, 95))
    return {"answered": len(ok), "errors": len(rows) - len(ok), "p50_s": round(p50, 2), "p95_s": round(p95, 2),
            "p95_over_p50": round(p95 / p50, 2), "max_s": round(max(lat), 2),
            "slowest_over_fastest_client": round(max(means) / min(means), 2),
            "most_429s_one_request": max(r["busy"] for r in rows), "429s": sum(r["busy"] for r in rows),
            "answers_per_s": round(len(ok) / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--service-s", type=float, default=0.25)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--policies", nargs="+", default=["fifo", "fair"])
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--fair", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve_stub(args.serve, args.service_s, args.queue, args.fair)
    print(f"machine: {machine()}; {args.clients} clients x {args.requests} requests, stub reader "
          f"{args.service_s}s per answer, queue {args.queue}")
    for policy in args.policies:
        proc, url = start(args.service_s, args.queue, policy == "fair")
        try:
            t0 = time.perf_counter()
            rows = run_clients(url, args.clients, args.requests)
            result = figures(rows, time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"{policy:5s} " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
