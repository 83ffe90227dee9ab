"""Shared bits of the command-line tools: settings flags bound to ``RAG_NEWS_*`` and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .errors import RagNewsError
from .settings import Settings


def add_settings_flags(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("settings (each also RAG_NEWS_<NAME> or a key in the TOML config)")
    g.add_argument("--config", help="TOML settings file (default: $RAG_NEWS_CONFIG)")
    g.add_argument("--index-dir", help="index folder (default: data/index)")
    g.add_argument("--index-backend", choices=["faiss", "milvus", "postgres"],
                   help="where the index lives (default faiss)")
    g.add_argument("--milvus-uri", help="milvus backend: a path (Milvus Lite, default INDEX_DIR/milvus.db) or "
                   "http://host:19530 (a Milvus server)")
    g.add_argument("--postgres-dsn", help="postgres backend: the database (postgresql://user@host/dbname)")
    g.add_argument("--browser", dest="browser_path", help="Chromium executable (default: chromium on PATH, "
                   "else Playwright's browser)")
    g.add_argument("--concurrency", type=int, help="pages open at once (default 4)")
    g.add_argument("--timeout", dest="page_timeout", type=float, help="seconds per page load (default 30)")
    g.add_argument("--retries", type=int, help="retries on network errors / 5xx (default 2)")
    g.add_argument("--embedding-model", help="sentence-transformers model id or folder "
                   "(default sentence-transformers/all-mpnet-base-v2)")
    g.add_argument("--embedding-backend", choices=["auto", "onnx", "torch", "openai", "mistral"])
    g.add_argument("--embedding-base-url", help="openai / mistral embedding backends: the endpoint "
                   "(e.g. http://127.0.0.1:8080/v1)")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    p = g.add_mutually_exclusive_group()
    p.add_argument("--progress", dest="progress", action="store_true", default=None, help="force progress bars")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="log to stderr")


_FLAG_KEYS = ("index_dir", "index_backend", "milvus_uri", "postgres_dsn", "embedding_base_url", "browser_path", "concurrency", "page_timeout", "retries", "embedding_model",
              "embedding_backend", "device", "progress")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.load(config=args.config, **{k: getattr(args, k, None) for k in _FLAG_KEYS})


def add_answer_flags(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("answering (each also RAG_NEWS_<NAME> or a key in the TOML config)")
    g.add_argument("--k", type=int, help="passages shown to the model (default: 4 for the packaged readers, else 5)")
    g.add_argument("--since", help="only articles published on or after this date (YYYY-MM-DD)")
    g.add_argument("--until", help="only articles published on or before this date (YYYY-MM-DD)")
    g.add_argument("--today", help="answer as if today were this date (YYYY-MM-DD; default: the real date)")
    g.add_argument("--backend", choices=["hf", "llamacpp", "openai", "mistral"], help="default hf")
    g.add_argument("--model", dest="llm_model", help="Hub id, local folder or .gguf file; packaged readers: "
                   "qwen2.5-1.5b, qwen2.5-0.5b, smollm2 (default mistralai/Mixtral-8x7B-Instruct-v0.1; offline "
                   "without a GPU: qwen2.5-1.5b)")
    g.add_argument("--quantization", choices=["auto", "nf4", "fp4", "int8", "none"],
                   help="hf backend: auto = nf4 on CUDA, none on CPU")
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--temperature", type=float, help="0 = greedy (default)")
    g.add_argument("--context-tokens", type=int, help="keep only the passage sentences closest to the "
                   "question, up to this many tokens (default: by reader, see README; 0 = whole passages)")
    g.add_argument("--reranker", help="cross-encoder id or folder to rerank passages")
    g.add_argument("--research", choices=["auto", "always", "never"], help="let the reader run its own "
                   "searches (rag_news.research): auto = only for questions that compare, order or sum two "
                   "things (default: never)")
    g.add_argument("--base-url", dest="llm_base_url", help="openai/mistral backends: server URL, e.g. "
                   "http://127.0.0.1:8000/v1")


_ANSWER_KEYS = ("k", "since", "until", "today", "backend", "llm_model", "quantization", "max_new_tokens", "temperature",
                "context_tokens", "reranker", "llm_base_url", "research")


def answer_settings_from_args(args: argparse.Namespace) -> Settings:
    keys = _FLAG_KEYS + _ANSWER_KEYS
    settings = Settings.load(config=args.config, **{k: getattr(args, k, None) for k in keys})
    return settings


def run(main: Callable[[], int], prog: str) -> None:
    """Run a CLI body: user errors become one line on stderr and exit 1; Ctrl-C exits 130."""
    try:
        code = main()
    except RagNewsError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
