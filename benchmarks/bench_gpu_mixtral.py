"""The 4-bit Mixtral path at full size on one GPU, with random weights: decode speed, prefill speed, memory.

Issue 11. The model is the product's: ``rag_news.llm.quantization_config`` gives the BitsAndBytesConfig
(NF4, double quant, bf16 compute on CUDA), ``rag_news.llm.model_class`` picks the class
(``MixtralLinearExpertsForCausalLM``: per-expert ``nn.Linear`` so the experts are quantized too), and
transformers' own bitsandbytes quantizer swaps the linears for ``Linear4bit`` (lm_head stays 16-bit, the
router is not a linear) exactly as ``from_pretrained`` does. Only the weights differ: no checkpoint is read.
The skeleton is built on the meta device and every weight is drawn at random (normal, std = the config's
initializer_range 0.02; norms 1) on the target device one matrix at a time and quantized there, so no full
16-bit copy ever exists (a bf16 Mixtral-8x7B is ~87 GiB, more than an H100 holds).

Measured, after a warm-up, by ``model.generate`` (greedy, batch 1, ``min_new_tokens = max_new_tokens`` so it
cannot stop early); a StoppingCriteria hook stamps the time (after a CUDA synchronize) as each token is
produced:
  prefill: prompt tokens / time to the first token (``--prompt-tokens``, default 2,048);
  decode: (new tokens - 1) / time from the first to the last token (``--new-tokens``, default 256);
  memory: peak allocated / reserved for that run and for a ``--context-tokens`` prompt (default 4,096),
          and what the device has in use afterwards (CUDA context included; compare with the ≤ 26 GiB goal);
          that run's prefill speed is reported too, as a first (not warmed-up) run at that length;
  profile (``--profile``): torch.profiler over 8 decode steps, top ops by device and by host time.

    python benchmarks/bench_gpu_mixtral.py --profile --out result.json          # full size, CUDA
    python benchmarks/bench_gpu_mixtral.py --config tiny --device cpu           # scaled, CPU (the tests)

Only rag_news.llm / .settings / .mixtral are imported (the package loads its other exports lazily), so this
runs on a machine with only torch, transformers, accelerate and bitsandbytes. Prints one JSON object, then
``decode_tok_s: X`` as the last line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024 ** 3

# Mixtral-8x7B's architecture, and a scaled copy with its ratios (8 experts, top-2, intermediate = 3.5 x hidden,
# 4 query heads per KV head). Input widths stay multiples of the NF4 block (64): bitsandbytes' CPU path needs it.
CONFIGS = {
    "full": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
                 max_position_embeddings=32768, rope_theta=1e6),
    "tiny": dict(vocab_size=256, hidden_size=128, intermediate_size=448, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                 max_position_embeddings=4096),
}
RUN_DEFAULTS = {"full": dict(prompt_tokens=2048, new_tokens=256, context_tokens=4096),
                "tiny": dict(prompt_tokens=48, new_tokens=16, context_tokens=96)}
PROFILE_STEPS = 8
DECODE_METHOD = ("model.generate, greedy, batch 1, min_new_tokens=max_new_tokens; tokens 2..N over the time "
                 "from the first to the last token (CUDA synchronized per token)")
TOP_OPS = 15


def import_rag_news():
    """``(rag_news.llm, rag_news.mixtral, rag_news.settings)``: these need only torch and transformers
    (``rag_news/__init__.py`` loads its exports lazily), which is all the GPU machine has."""
    sys.path.insert(0, str(ROOT))
    from rag_news import llm, mixtral, settings
    return llm, mixtral, settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI flags; the token counts default per ``--config`` (see ``RUN_DEFAULTS``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="full", help="model size (default full)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where to run (default cuda)")
    p.add_argument("--prompt-tokens", type=int, help="prompt length for prefill and decode")
    p.add_argument("--new-tokens", type=int, help="tokens generated in the decode measurement")
    p.add_argument("--context-tokens", type=int, help="prompt length of the memory-at-context measurement")
    p.add_argument("--profile", action="store_true", help=f"profile {PROFILE_STEPS} decode steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and prompts")
    p.add_argument("--out", type=Path, help="also write the JSON object to this file")
    args = p.parse_args(argv)
    for key, value in RUN_DEFAULTS[args.config].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.new_tokens < 2 or min(args.prompt_tokens, args.context_tokens) < 1:
        p.error("--new-tokens must be at least 2 and the prompt lengths at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA GPU (use --device cpu --config tiny)")
    return args


def build_model(config_name: str, device: str, seed: int):
    """The product's NF4 Mixtral with random weights on ``device``; returns ``(model, facts)``.

    ``config_name``: a key of ``CONFIGS``. ``seed``: seeds the weights. ``facts`` describes what was built.
    """
    from accelerate import init_empty_weights
    from transformers import MixtralConfig
    from transformers.quantizers import AutoHfQuantizer

    llm, mixtral, settings = import_rag_news()
    on_cuda = device == "cuda"
    bnb_config, qname = llm.quantization_config(settings.Settings(quantization="nf4"), on_cuda)
    config = MixtralConfig(**CONFIGS[config_name], bos_token_id=1, eos_token_id=2, pad_token_id=2)
    cls = llm.model_class(config, bnb_config)
    if cls is not mixtral.MixtralLinearExpertsForCausalLM:
        raise SystemExit(f"rag_news.llm chose {cls.__name__}, not the per-expert class: nothing to measure")
    dtype = bnb_config.bnb_4bit_compute_dtype  # load_hf_model's dtype: bf16/fp16 on CUDA, fp32 on CPU
    quantizer = AutoHfQuantizer.from_config(bnb_config, pre_quantized=False)
    quantizer.validate_environment(device_map={"": device})
    started = time.perf_counter()
    with init_empty_weights():  # parameters on meta, buffers (rotary frequencies) real
        model = cls(config)
    quantizer.preprocess_model(model=model, dtype=dtype, device_map={"": device})
    generator = torch.Generator(device=device).manual_seed(seed)
    materialise(model, device, dtype, config.initializer_range, generator)
    model.hf_quantizer = quantizer
    quantizer.postprocess_model(model)
    model.eval()
    sync(device)
    facts = dict(cls=cls.__name__, quantization=qname, double_quant=bnb_config.bnb_4bit_use_double_quant,
                 compute_dtype=str(dtype).removeprefix("torch."), build_s=time.perf_counter() - started,
                 quantized_fraction=llm.quantized_fraction(model))
    return model, facts


def materialise(model, device: str, dtype: torch.dtype, std: float, generator: torch.Generator) -> None:
    """Give every meta parameter random values on ``device``, one tensor at a time.

    ``Linear4bit`` weights are drawn in ``dtype`` and quantized at once with the module's own settings
    (as transformers' ``Bnb4bitQuantize`` does); other matrices (embeddings, router, lm_head) are drawn
    in ``dtype`` with standard deviation ``std``; vectors (RMSNorm weights) are ones. Buffers are moved.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if isinstance(module, bnb.nn.Linear4bit) and name == "weight":
                value = torch.empty(param.shape, dtype=dtype, device=device).normal_(0, std, generator=generator)
                new = bnb.nn.Params4bit(value, requires_grad=False, **param.__dict__).to(device)
            elif param.ndim == 1:
                new = torch.nn.Parameter(torch.ones(param.shape, dtype=dtype, device=device), requires_grad=False)
            else:
                value = torch.empty(param.shape, dtype=dtype, device=device).normal_(0, std, generator=generator)
                new = torch.nn.Parameter(value, requires_grad=False)
            module._parameters[name] = new
        for name, buffer in list(module.named_buffers(recurse=False)):
            module._buffers[name] = buffer.to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def model_facts(model) -> dict:
    """Architecture and size: parameters counted unpacked (a 4-bit weight by its quant_state shape)."""
    import bitsandbytes as bnb

    config = model.config
    params = 0
    for p in model.parameters():
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        params += int(torch.Size(shape).numel()) if shape is not None else p.numel()
    linear4bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    expert = model.model.layers[0].mlp.experts[0]
    return dict(layers=config.num_hidden_layers, hidden=config.hidden_size, intermediate=config.intermediate_size,
                experts=config.num_local_experts, top_k=config.num_experts_per_tok,
                heads=config.num_attention_heads, kv_heads=config.num_key_value_heads, vocab=config.vocab_size,
                parameters_b=params / 1e9, linear4bit_modules=len(linear4bit),
                experts_in_4bit=all(isinstance(getattr(expert, w), bnb.nn.Linear4bit) for w in ("w1", "w2", "w3")),
                lm_head_dtype=str(model.lm_head.weight.dtype).removeprefix("torch."),
                attn_implementation=config._attn_implementation,
                footprint_gib=model.get_memory_footprint() / GIB)


def step_clock(device: str, on_step=None):
    """A StoppingCriteria that never stops generation and records ``time.perf_counter()`` per new token.

    ``on_step``: optional callable run after each stamp (the profiler's ``step``).
    """
    from transformers import StoppingCriteria

    class StepClock(StoppingCriteria):
        def __init__(self):
            self.stamps: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            sync(device)
            self.stamps.append(time.perf_counter())
            if on_step is not None:
                on_step()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StepClock()


def timed_generate(model, prompt: torch.Tensor, new_tokens: int, on_step=None) -> dict:
    """Greedy ``generate`` of exactly ``new_tokens`` after ``prompt`` (1 x n ids); times per token.

    Returns prefill (time to the first token) and decode (first to last token) speeds in tokens/s.
    """
    from transformers import StoppingCriteriaList

    device = prompt.device.type
    clock = step_clock(device, on_step)
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=model.config.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([clock]))
    assert out.shape[1] == prompt.shape[1] + new_tokens, out.shape
    first, last = clock.stamps[0], clock.stamps[-1]
    decode_s = last - first
    return dict(prompt_tokens=prompt.shape[1], new_tokens=new_tokens, prefill_s=first - started,
                prefill_tok_s=prompt.shape[1] / (first - started), decode_s=decode_s,
                decode_tok_s=(new_tokens - 1) / decode_s,
                step_stamps=clock.stamps)


def random_prompt(n: int, vocab: int, device: str, seed: int) -> torch.Tensor:
    """``n`` random ids (ids 0-2 are special) as a 1 x n tensor on ``device``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (1, n), generator=g).to(device)


def memory_now(device: str) -> dict:
    """Peak allocated / reserved since the last reset, and what the device has in use (GiB; CUDA only)."""
    if device != "cuda":
        return dict(peak_allocated_gib=None, peak_reserved_gib=None, device_used_gib=None)
    free, total = torch.cuda.mem_get_info()
    return dict(peak_allocated_gib=torch.cuda.max_memory_allocated() / GIB,
                peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB, device_used_gib=(total - free) / GIB)


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def profile_decode(model, device: str, vocab: int, seed: int) -> dict:
    """torch.profiler over ``PROFILE_STEPS`` decode steps of a short generation (prefill + 2 steps skipped).

    Returns the top ``TOP_OPS`` ops by self device time and by self host time (ms over all profiled
    steps), kernel launches and device-busy time per step, and the wall time per profiled step.
    """
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    plan = schedule(wait=2, warmup=1, active=PROFILE_STEPS, repeat=1)
    with profile(activities=activities, schedule=plan) as prof:
        run = timed_generate(model, random_prompt(128, vocab, device, seed + 3), PROFILE_STEPS + 4, prof.step)
    averages = prof.key_averages()
    print(averages.table(sort_by="self_device_time_total" if device == "cuda" else "self_cpu_time_total",
                         row_limit=TOP_OPS, max_name_column_width=80), file=sys.stderr)
    stamps = run["step_stamps"]
    wall_ms = (stamps[2 + PROFILE_STEPS] - stamps[2]) * 1e3 / PROFILE_STEPS  # active steps: tokens 4..11

    def top(key: str) -> list[dict]:
        rows = sorted((a for a in averages if getattr(a, key) > 0), key=lambda a: -getattr(a, key))
        return [dict(name=a.key[:120], count=a.count, self_device_ms=a.self_device_time_total / 1e3,
                     self_cpu_ms=a.self_cpu_time_total / 1e3) for a in rows[:TOP_OPS]]

    launches = sum(a.count for a in averages if "LaunchKernel" in a.key)
    busy_ms = sum(a.self_device_time_total for a in averages) / 1e3
    return dict(steps=PROFILE_STEPS, wall_ms_per_step=wall_ms, device_busy_ms_per_step=busy_ms / PROFILE_STEPS,
                kernel_launches_per_step=launches / PROFILE_STEPS,
                top_device_ops=top("self_device_time_total"), top_host_ops=top("self_cpu_time_total"))


def profile_or_error(model, device: str, vocab: int, seed: int) -> dict:
    """:func:`profile_decode`, or ``{"error": ...}`` if the profiler fails (e.g. no CUPTI): the speed and
    memory measurements taken before it must not be lost on a one-shot GPU run."""
    try:
        return profile_decode(model, device, vocab, seed)
    except Exception as e:  # reported in the JSON instead
        return dict(error=f"{type(e).__name__}: {e}")


def environment(device: str) -> dict:
    """Card and library versions."""
    import bitsandbytes
    import transformers

    return dict(card=torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
                python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                transformers=transformers.__version__, bitsandbytes=bitsandbytes.__version__)


def run(args: argparse.Namespace) -> dict:
    """Build, warm up, then measure decode/prefill at ``prompt_tokens`` and memory at ``context_tokens``."""
    started = time.perf_counter()
    model, built = build_model(args.config, args.device, args.seed)
    facts = {**built, **model_facts(model)}
    weights_gib = torch.cuda.memory_allocated() / GIB if args.device == "cuda" else None
    vocab = model.config.vocab_size
    prompt = random_prompt(args.prompt_tokens, vocab, args.device, args.seed + 1)
    timed_generate(model, prompt, 4)  # warm-up: kernels, allocator, the prompt's shapes
    reset_peak(args.device)
    speed = timed_generate(model, prompt, args.new_tokens)
    at_prompt = memory_now(args.device)
    reset_peak(args.device)
    context = timed_generate(model, random_prompt(args.context_tokens, vocab, args.device, args.seed + 2), 8)
    at_context = memory_now(args.device)
    profiled = profile_or_error(model, args.device, vocab, args.seed) if args.profile else None
    decode = dict(method=DECODE_METHOD, prompt_tokens=speed["prompt_tokens"], new_tokens=speed["new_tokens"],
                  seconds=speed["decode_s"], tok_s=speed["decode_tok_s"])
    prefill = dict(prompt_tokens=speed["prompt_tokens"], seconds=speed["prefill_s"], tok_s=speed["prefill_tok_s"],
                   context_tokens=args.context_tokens, context_first_run_tok_s=context["prefill_tok_s"])
    memory = dict(weights_allocated_gib=weights_gib, at_prompt=at_prompt, context_tokens=args.context_tokens,
                  at_context=at_context)
    return dict(benchmark="bench_gpu_mixtral", config=args.config, device=args.device,
                **environment(args.device), model=facts, decode=decode, prefill=prefill, memory=memory,
                profile=profiled, seconds_total=time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    print(f"decode_tok_s: {result['decode']['tok_s']:.2f}")


if __name__ == "__main__":
    main()
