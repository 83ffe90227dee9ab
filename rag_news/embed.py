"""Embed: sentence-transformers models (all-mpnet-base-v2 by default) as a LangChain ``Embeddings``.

Entry point: :class:`Embedder` (lazy: nothing loads until first use or :meth:`Embedder.warm_up`).
Vectors are L2-normalised, so inner product = cosine.

Backends (``settings.embedding_backend``):

* ``torch``: ``langchain_huggingface.HuggingFaceEmbeddings`` (sentence-transformers).
* ``onnx``: the same transformer exported once to ONNX (cached under ``cache_dir/onnx``) and run with
  ONNX Runtime, with the model's own pooling and normalisation. Same vectors (checked at export against
  torch, max |diff| < 1e-4), about twice the throughput on CPU. Needs the ``onnx`` extra.
* ``auto``: ``onnx`` on CPU when its extra is installed, else ``torch``.
* ``openai`` / ``mistral``: an embedding API or server (:mod:`rag_news.embed_api`): batched, concurrent,
  retried with backoff; no model is loaded here (a local tokenizer measures chunks).

Texts are batched by token length so padding is not wasted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from .errors import MissingExtra, ModelNotFound
from .faults import Faults, installed_faults
from .models import hub_hint, resolve_sentence_model
from .progress import progress_bar
from .settings import Settings

log = logging.getLogger(__name__)
_ONNX_OPSET = 17
# ONNX Runtime on CPU is fastest with tiny batches of length-sorted texts (measured on 2 cores with mpnet,
# ~270-token chunks: batch 1-2 ~3.5 chunks/s, 8 ~2.9, 32 ~2.0); see benchmarks/RESULTS.md
_ONNX_CPU_BATCH = 2


def pick_device(setting: str) -> str:
    if setting and setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class _OnnxEncoder:
    """A sentence-transformers model (Transformer + Pooling [+ Normalize]) run by ONNX Runtime."""

    def __init__(self, model_dir: Path, cache_dir: Path):
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        st = _read_json(model_dir / "sentence_bert_config.json")
        cfg = AutoConfig.from_pretrained(str(model_dir))
        self.max_seq_length = int(st.get("max_seq_length") or min(512, cfg.max_position_embeddings))
        self.dim = int(cfg.hidden_size)
        pool = _read_json(model_dir / "1_Pooling" / "config.json")
        if pool.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pool.get("pooling_mode_mean_tokens", True):
            self.pooling = "mean"
        else:
            raise ValueError(f"unsupported pooling {pool} for the ONNX backend")
        path = self._export(cache_dir)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _export(self, cache_dir: Path) -> Path:
        import torch

        h = hashlib.sha256()
        for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
            f = self.model_dir / name
            if f.is_file():
                st = f.stat()
                h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
        h.update(f"{self.model_dir.resolve()}:{torch.__version__}:{_ONNX_OPSET}".encode())
        out_dir = Path(cache_dir) / "onnx" / f"{self.model_dir.name}-{h.hexdigest()[:16]}"
        path = out_dir / "model.onnx"
        if path.is_file():
            return path
        from transformers import AutoModel

        log.info("exporting %s to ONNX (once) in %s", self.model_dir, out_dir)
        model = AutoModel.from_pretrained(str(self.model_dir)).eval()

        class _Forward(torch.nn.Module):  # positional (ids, mask) -> last hidden state, for any encoder
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]

        wrapped = _Forward(model).eval()
        probe = self.tokenizer(["a short text", "a somewhat longer text to check dynamic shapes work"],
                               padding=True, return_tensors="pt")
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
            tmp_path = Path(tmp) / "model.onnx"
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter about shapes; the export is checked below
                torch.onnx.export(
                    wrapped, (probe["input_ids"], probe["attention_mask"]), str(tmp_path),
                    input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                    dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                  ("input_ids", "attention_mask", "last_hidden_state")},
                    opset_version=_ONNX_OPSET, dynamo=False,
                )
            # check the export on a batch of another shape before trusting it
            import onnxruntime as ort

            check = self.tokenizer(["one", "two words here", "a third, longer text " * 7], padding=True,
                                   return_tensors="pt")
            sess = ort.InferenceSession(str(tmp_path), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"input_ids": check["input_ids"].numpy(),
                                  "attention_mask": check["attention_mask"].numpy()})[0]
            with torch.no_grad():
                ref = wrapped(check["input_ids"], check["attention_mask"]).numpy()
            diff = float(np.abs(got - ref).max())
            if diff > 1e-3:
                raise ValueError(f"ONNX export differs from torch by {diff:.2e}")
            out_dir.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, path)
        return path

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length,
                                 return_tensors="np")
            feed = {"input_ids": enc["input_ids"].astype(np.int64),
                    "attention_mask": enc["attention_mask"].astype(np.int64)}
            hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
            if self.pooling == "cls":
                vec = hidden[:, 0]
            else:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                vec = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            out[start:start + len(batch)] = vec
        return out


class Embedder(Embeddings):
    """LangChain ``Embeddings`` over a sentence-transformers model, with a choice of backend."""

    def __init__(self, settings: Settings | None = None, faults: Faults | None = None):
        """``faults``: the hook crash tests stop between batches with (default: the process's, see
        :mod:`rag_news.faults`)."""
        self.settings = settings or Settings()
        self.faults = faults or installed_faults()
        self.model_name = self.settings.embedding_model
        self.backend: str | None = None
        self.device: str | None = None
        self._path: str | None = None
        self._hf = None  # HuggingFaceEmbeddings
        self._onnx: _OnnxEncoder | None = None
        self._api = None  # embed_api.ApiEncoder for the openai / mistral backends

    # ---------------------------------------------------------------- loading
    def warm_up(self) -> "Embedder":
        if self.backend is not None:
            return self
        if not self.settings.show_progress():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        s = self.settings
        if s.embedding_backend in ("openai", "mistral"):
            from .embed_api import ApiEncoder

            self._api = ApiEncoder(s)
            self.backend, self.device = s.embedding_backend, s.embedding_base_url or "api"
            return self
        self._path = resolve_sentence_model(s.embedding_model, s.cache_dir)
        self.device = pick_device(s.device)
        backend = s.embedding_backend
        if backend == "onnx" and not _onnx_available():
            raise MissingExtra("onnxruntime", "onnx", "the ONNX embedding backend")
        if backend == "auto":
            backend = "onnx" if (self.device == "cpu" and _onnx_available() and Path(self._path).is_dir()) \
                else "torch"
        if backend == "onnx":
            if not Path(self._path).is_dir():
                raise ModelNotFound(
                    f"the ONNX backend needs a local model folder; {s.embedding_model!r} is not one "
                    f"({hub_hint(s.embedding_model)})")
            try:
                self._onnx = _OnnxEncoder(Path(self._path), s.cache_dir)
                self.backend = "onnx"
                return self
            except Exception as e:  # export/run problem: the torch backend gives the same vectors
                if s.embedding_backend == "onnx":
                    raise
                log.warning("ONNX backend unavailable (%s); using torch", e)
        self._load_torch()
        self.backend = "torch"
        return self

    def _load_torch(self) -> None:
        from langchain_huggingface import HuggingFaceEmbeddings

        try:
            self._hf = HuggingFaceEmbeddings(
                model_name=self._path, model_kwargs={"device": self.device},
                encode_kwargs={"normalize_embeddings": True, "batch_size": self.settings.embedding_batch_size},
            )
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelNotFound(
                f"cannot load embedding model {self.settings.embedding_model!r}: {first[:200]} "
                f"({hub_hint(self.settings.embedding_model)})") from None

    # ---------------------------------------------------------------- facts
    @property
    def tokenizer(self):
        self.warm_up()
        if self._api:
            return self._api.tokenizer
        return self._onnx.tokenizer if self._onnx else self._hf._client.tokenizer

    @property
    def max_seq_length(self) -> int:
        self.warm_up()
        if self._api:
            return self._api.max_seq_length
        return self._onnx.max_seq_length if self._onnx else int(self._hf._client.max_seq_length)

    @property
    def dim(self) -> int:
        self.warm_up()
        if self._api:
            return self._api.dim
        if self._onnx:
            return self._onnx.dim
        client = self._hf._client
        get = getattr(client, "get_embedding_dimension", None) or client.get_sentence_embedding_dimension
        return int(get())

    # ---------------------------------------------------------------- embedding
    def embed_array(self, texts: Sequence[str], progress: bool = False, description: str = "Embedding") -> np.ndarray:
        """Normalised float32 vectors, one row per text, in input order (batched by length inside)."""
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._api:
            with progress_bar(description, total=len(texts), enabled=progress) as advance:
                out = self._api.encode(texts, advance)
            return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        # longest first, so each batch holds similar lengths and padding is small
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        bs = self.settings.embedding_batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with progress_bar(description, total=len(texts), enabled=progress) as advance:
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                batch = [texts[i] for i in idx]
                if self._onnx:
                    vecs = self._onnx.encode(batch, min(bs, _ONNX_CPU_BATCH))
                else:
                    vecs = np.asarray(self._hf.embed_documents(batch), dtype=np.float32)
                out[idx] = vecs
                advance(len(idx))
                self.faults.reached("embedding")  # crash tests: killed between batches
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()

    def describe(self) -> dict:
        self.warm_up()
        return {"model": self.model_name, "path": self._path, "backend": self.backend, "device": self.device,
                "dim": self.dim, "max_seq_length": self.max_seq_length}
