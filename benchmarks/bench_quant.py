"""Is 4-bit Mixtral really 4-bit? Footprints of a scaled-down Mixtral, and the VRAM projected for the real one.

Scaled Mixtral (random weights, Mixtral's proportions: 8 experts, top-2, intermediate = 3.5 x hidden;
hidden 256, vocab 256, 2 layers), all loaded on CPU in one run:
  bf16 (reference) | stock transformers class + BitsAndBytesConfig NF4 (experts stay 16-bit: bitsandbytes
  #1849) | rag-news (MixtralLinearExpertsForCausalLM: per-expert nn.Linear, quantized as they load).
"footprint" is transformers' get_memory_footprint() (parameters + buffers); "with scales" adds the NF4
block scales (quant_state absmax), which live outside the parameters.

The projection for Mixtral-8x7B counts the real model's parameters on the meta device (no weights needed)
and prices them as measured here: NF4 linear weights at 0.5 byte + scales, everything else bf16.

    python benchmarks/bench_quant.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from _common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import BitsAndBytesConfig, MixtralConfig, MixtralForCausalLM  # noqa: E402

from rag_news.llm import quantized_fraction  # noqa: E402
from rag_news.mixtral import MixtralLinearExpertsForCausalLM  # noqa: E402
from tests_support import tiny_mixtral  # noqa: E402


def scale_bytes(model) -> int:
    total = 0
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        if qs is None:
            continue
        for t in (qs.absmax, getattr(getattr(qs, "state2", None), "absmax", None)):
            if t is not None:
                total += t.numel() * t.element_size()
    return total


def nf4(double_quant: bool) -> BitsAndBytesConfig:
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                              bnb_4bit_use_double_quant=double_quant)


def main() -> None:
    print(f"machine: {machine()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_mixtral(Path(tmp) / "m")
        bf16 = MixtralForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        ref = bf16.get_memory_footprint()
        rows = []
        for name, cls, dq in [("stock class, NF4", MixtralForCausalLM, False),
                              ("rag-news, NF4", MixtralLinearExpertsForCausalLM, False),
                              ("rag-news, NF4 + double quant", MixtralLinearExpertsForCausalLM, True)]:
            m = cls.from_pretrained(folder, quantization_config=nf4(dq), device_map="cpu")
            fp = m.get_memory_footprint()
            rows.append((name, fp / ref, (fp + scale_bytes(m)) / ref, quantized_fraction(m)))
            out = m.generate(torch.tensor([[1, 40, 41]]), max_new_tokens=4, do_sample=False)
            assert out.shape[1] == 7
    print(f"{'scaled Mixtral':32s} {'footprint/bf16':>15s} {'with scales':>12s} {'weights in 4-bit':>17s}")
    for name, r, rs, q in rows:
        print(f"{name:32s} {r:15.3f} {rs:12.3f} {q:17.1%}")

    # projection for the real model
    cfg = MixtralConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2)
    with torch.device("meta"):
        real = MixtralLinearExpertsForCausalLM(cfg)
    linear = sum(m.weight.numel() for n, m in real.named_modules()
                 if isinstance(m, torch.nn.Linear) and n != "lm_head")
    other = sum(p.numel() for p in real.parameters()) - linear
    gib = 1024 ** 3
    bf16_total = (linear + other) * 2
    nf4_dq = linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + other * 2
    nf4_plain = linear * (0.5 + 4 / 64) + other * 2
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 2
    print(f"\nMixtral-8x7B: {(linear + other) / 1e9:.1f}B parameters ({linear / 1e9:.1f}B in linear layers)")
    print(f"  bf16 weights                  {bf16_total / gib:6.1f} GiB")
    print(f"  NF4 + double quant weights    {nf4_dq / gib:6.1f} GiB  (ratio {nf4_dq / bf16_total:.3f})")
    print(f"  NF4 weights                   {nf4_plain / gib:6.1f} GiB")
    print(f"  KV cache, bf16, per 1k tokens {kv * 1024 / gib:6.3f} GiB")
    print(f"  projected VRAM at 4k context  {(nf4_dq + kv * 4096) / gib + 1.0:6.1f} GiB "
          "(weights + KV cache + ~1 GiB CUDA context/activations; projected, not measured)")
    print(f"nf4_footprint_ratio: {rows[1][1]:.3f}")


if __name__ == "__main__":
    main()
