"""Which runtime for the offline reader? The packaged Qwen2.5-Coder-1.5B-Instruct GGUF (Q4_K_M) on 2 cores:
llama.cpp (llama-cpp-python) vs transformers' own GGUF loading (dequantized to float32), one run.

Same prompt for both: five article passages from the article-extraction benchmark and a question, through
the model's chat template (~1,800 tokens, the size of a k = 5 RAG prompt of 256-token passages). Measured:
load time, prefill (time to the first new token), decode speed over 48 new tokens (greedy), resident
memory. llama.cpp also with ``n_batch = 8`` (LangChain's ``LlamaCpp``/``ChatLlamaCpp`` default) to show why
rag-news sets 512.

    python benchmarks/bench_reader.py [--new-tokens 48] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from _common import ground_truth, machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag_news.models import QWEN_1_5B, packaged_gguf  # noqa: E402
from rag_news.settings import Settings  # noqa: E402


def rss_mb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def messages() -> list[dict]:
    truth = ground_truth()
    texts = [v["articleBody"] for _, v in sorted(truth.items())[:40] if len(v["articleBody"].split()) > 400][:5]
    passages = "\n\n".join(f"[{i}] " + " ".join(t.split()[:270]) for i, t in enumerate(texts, 1))
    return [{"role": "user", "content": f"<context>\n{passages}\n</context>\n\nAnswer in one sentence from the "
             "passages, citing [n]. Question: what is the main event described in passage [2]?"}]


def llama_cpp(gguf: str, n_batch: int, new_tokens: int) -> dict:
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=gguf, n_ctx=4096, n_batch=n_batch, n_threads=os.cpu_count(), verbose=False)
    loaded = time.perf_counter() - t0
    stamps = []
    t1 = time.perf_counter()
    for chunk in llm.create_chat_completion(messages(), max_tokens=new_tokens, temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    out = {"load_s": round(loaded, 1), "prompt_tokens": llm.n_tokens - len(stamps) + 1,
           "prefill_s": round(stamps[0] - t1, 1),
           "decode_tok_s": round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2), "rss_mb": rss_mb()}
    del llm
    gc.collect()
    return out


def transformers_gguf(gguf: str, new_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    loaded = time.perf_counter() - t0
    ids = tok.apply_chat_template(messages(), add_generation_prompt=True, return_tensors="pt", return_dict=True)
    stamps = []

    from transformers import StoppingCriteria, StoppingCriteriaList

    class Clock(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    t1 = time.perf_counter()
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       stopping_criteria=StoppingCriteriaList([Clock()]))
    return {"load_s": round(loaded, 1), "prompt_tokens": int(ids["input_ids"].shape[1]),
            "prefill_s": round(stamps[0] - t1, 1), "decode_tok_s": round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2),
            "rss_mb": rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--skip-transformers", action="store_true")
    args = ap.parse_args()
    gguf = str(packaged_gguf(QWEN_1_5B, Settings().cache_dir))
    print(f"machine: {machine()}; model: {QWEN_1_5B.title}")
    rows = {"llama.cpp, n_batch 512 (rag-news)": llama_cpp(gguf, 512, args.new_tokens),
            "llama.cpp, n_batch 8 (LangChain's default)": llama_cpp(gguf, 8, args.new_tokens)}
    if not args.skip_transformers:
        rows["transformers GGUF loading (float32)"] = transformers_gguf(gguf, args.new_tokens)
    for name, r in rows.items():
        print(f"{name:45s} load {r['load_s']:6.1f}s  prompt {r['prompt_tokens']} tokens  prefill {r['prefill_s']:6.1f}s"
              f"  decode {r['decode_tok_s']:5.2f} tok/s  RSS {r['rss_mb']} MB")
    if "transformers GGUF loading (float32)" in rows:
        a, b = rows["llama.cpp, n_batch 512 (rag-news)"], rows["transformers GGUF loading (float32)"]
        print(f"llama.cpp / transformers: prefill time {a['prefill_s'] / b['prefill_s']:.2f}x, decode speed "
              f"{a['decode_tok_s'] / b['decode_tok_s']:.1f}x, load time {a['load_s'] / b['load_s']:.3f}x, "
              f"RSS {a['rss_mb'] / b['rss_mb']:.2f}x")
    print(f"prefill_s: {rows['llama.cpp, n_batch 512 (rag-news)']['prefill_s']}")


if __name__ == "__main__":
    main()
