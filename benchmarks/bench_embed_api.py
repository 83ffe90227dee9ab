"""Embedding on a separate server vs in-process, the same model: all-MiniLM-L6-v2 (the packaged copy) run
in-process by rag-news (``embedding_backend = auto``: ONNX Runtime on CPU) and, converted to GGUF by
``python -m rag_news.embed_gguf``, served by llama.cpp's OpenAI-compatible server (llama-cpp-python,
``--embedding true``) on 127.0.0.1 and read through ``embedding_backend = "openai"``.

Texts: bench_embed.py's (the benchmark pages and sample site chunked by rag-news with MiniLM's tokenizer,
plus the news-qa questions). Prints chunks/s of each side (one warm-up batch first), the ratio, and the
cosine between the two vectors of each text (min, mean). Both run on this machine's cores: the server's
gain is where it runs (a GPU box, shared by many crawl workers), not speed on one CPU.

    python benchmarks/bench_embed_api.py [--chunks 300] [--threads 2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from _common import machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_embed import bench_texts  # noqa: E402
from rag_news.embed import Embedder  # noqa: E402
from rag_news.embed_gguf import convert  # noqa: E402
from rag_news.models import packaged_minilm  # noqa: E402
from rag_news.settings import Settings  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def start_server(gguf: Path, threads: int, log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--embedding", "true",
                             "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512",
                             "--n_threads", str(threads), "--n_batch", "512"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(base + "/models", timeout=2).read()
            return proc, base
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("llama.cpp server did not start")
            time.sleep(0.5)


def timed(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, float]:
    embedder.embed_array(texts[:8])  # warm-up (model load, first request)
    t = time.perf_counter()
    vecs = embedder.embed_array(texts)
    return vecs, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=300, help="texts embedded (the first N of bench_embed's)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp server threads")
    ap.add_argument("--concurrency", type=int, default=2, help="embedding_concurrency (requests in flight)")
    ap.add_argument("--batch", type=int, default=32, help="embedding_batch_size (texts a request)")
    ap.add_argument("--timeout", type=float, default=300, help="embedding_timeout (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(embedding_model=MODEL, progress=False, cache_dir=Path(tmp) / "cache", embedding_batch_size=args.batch)
        local = Embedder(s)
        texts = bench_texts(local, s)[0][:args.chunks]
        local_vecs, local_s = timed(local, texts)
        gguf = convert(packaged_minilm(), Path(tmp) / "minilm.gguf")
        with open(Path(tmp) / "server.log", "w") as log:
            proc, base = start_server(gguf, args.threads, log)
            try:
                api = Embedder(s.replace(embedding_backend="openai", embedding_base_url=base,
                                         embedding_concurrency=args.concurrency, embedding_timeout=args.timeout))
                api_vecs, api_s = timed(api, texts)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    cos = (local_vecs * api_vecs).sum(1)
    print(f"machine: {machine()}; {len(texts)} texts, {MODEL}")
    print(f"in-process ({local.backend}): {len(texts) / local_s:.1f} chunks/s ({local_s:.1f} s)")
    print(f"llama.cpp server via embedding_backend=openai ({args.threads} threads, batch {args.batch}, "
          f"{args.concurrency} in flight): {len(texts) / api_s:.1f} chunks/s ({api_s:.1f} s); "
          f"{api._api.requests} requests")
    print(f"server / in-process throughput: {local_s / api_s:.2f}x")
    print(f"cosine between the two vectors of each text: min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
