"""mpnet embedding throughput on a device: chunks/s in fp32 and in fp16, over the texts of bench_embed.py.

all-mpnet-base-v2 (MPNet: 12 layers, hidden 768, at most 384 tokens) run as sentence-transformers runs it
(tokenize, the transformer, mean pooling over the attention mask, unit length) with torch and transformers
alone, since the GPU machine has nothing else. The texts are bench_embed.py's 540: 498 chunks of the
article-extraction pages and the sample site (chunked by rag-news with the mpnet tokenizer) and the 42
news-qa questions. Batches of length-sorted texts (``--batch``); each dtype is warmed up on one batch, then
every text is embedded, timed with the device synchronized. Reported per dtype: seconds, chunks/s,
tokens/s, peak GPU memory; and the cosine between the fp16 and the fp32 vectors.

Weights: the real model when ``--model`` is a copy with weights (here: the packaged one); a folder with
only the tokenizer and config (what ``--prepare`` writes for the GPU machine: the 418 MiB of weights do not
fit what travels there) gets random weights in the same architecture. Throughput depends on the shapes
and the token counts only, so it is the same; the fp16/fp32 cosine is then that of random weights, and says
so (``weights: random``).

    python benchmarks/bench_gpu_embed.py --prepare .gpu-data          # here: texts + tokenizer/config
    python benchmarks/bench_gpu_embed.py --device cuda --texts .gpu-data/embed_texts.json --model .gpu-data/mpnet
    python benchmarks/bench_gpu_embed.py --device cpu --limit 64     # a CPU smoke run (real weights)
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

MAX_SEQ = 384  # all-mpnet-base-v2's sentence_bert_config max_seq_length
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def prepare(dest: Path) -> dict:
    """Write ``dest/embed_texts.json`` (bench_embed.py's texts) and ``dest/mpnet/`` (the packaged mpnet's
    tokenizer and config, no weights); needs rag-news, its model package and ../shared."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench_embed import bench_texts
    from rag_news.embed import Embedder
    from rag_news.settings import Settings

    settings = Settings(progress=False)  # chunked with the default settings, as bench_embed.py does
    embedder = Embedder(settings.replace(embedding_backend="torch", device="cpu")).warm_up()
    texts, chunks, articles, questions = bench_texts(embedder, settings)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "embed_texts.json").write_text(json.dumps(texts), encoding="utf-8")
    src, model_dir = Path(embedder.describe()["path"]), dest / "mpnet"
    model_dir.mkdir(exist_ok=True)
    for f in src.iterdir():  # config, tokenizer, pooling: everything small, no weights, no ONNX export
        if f.is_file() and f.name not in WEIGHT_FILES and not f.name.startswith(".") and f.stat().st_size < 4 << 20:
            shutil.copy2(f, model_dir / f.name)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    return {"texts": len(texts), "chunks": chunks, "articles": articles, "questions": questions,
            "model_from": str(src), "bytes": size}


def load_model(folder: Path, device: str, dtype: torch.dtype):
    """MPNet from ``folder``: its weights if it has them, else random ones; ``(model, weights kind)``."""
    from transformers import AutoConfig, AutoModel

    if any((folder / w).is_file() for w in WEIGHT_FILES):
        model, kind = AutoModel.from_pretrained(folder), "real"
    else:
        torch.manual_seed(0)
        model, kind = AutoModel.from_config(AutoConfig.from_pretrained(folder)), "random"
    return model.to(device=device, dtype=dtype).eval(), kind


def embed(model, batches: list[dict], device: str) -> np.ndarray:
    """Unit-length mean-pooled vectors of the tokenized ``batches`` (in their order)."""
    out = []
    with torch.inference_mode():
        for enc in batches:
            enc = {k: v.to(device) for k, v in enc.items()}
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
    return torch.cat(out).numpy()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_dtype(folder: Path, device: str, dtype: torch.dtype, batches: list[dict], n_tokens: int) -> tuple:
    """Load, warm up, embed every batch timed; ``(result dict, vectors)``."""
    model, kind = load_model(folder, device, dtype)
    embed(model, batches[:1], device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    vectors = embed(model, batches, device)
    sync(device)
    s = time.perf_counter() - t
    res = {"seconds": round(s, 3), "chunks_per_s": float(f"{len(vectors) / s:.3g}"),
           "tokens_per_s": round(n_tokens / s), "weights": kind}
    if device.startswith("cuda"):
        res["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return res, vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare", type=Path, help="write the texts and the tokenizer/config folder here, then stop")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--texts", type=Path, help="JSON list of texts (default: build them, as bench_embed.py does)")
    ap.add_argument("--model", type=Path, help="mpnet folder (default: the packaged copy, real weights)")
    ap.add_argument("--limit", type=int, help="embed only the first N texts (smoke runs)")
    ap.add_argument("--batch", type=int, help="texts per batch (default 64 on CUDA, 32 on CPU)")
    ap.add_argument("--dtypes", default="fp32,fp16", help="comma-separated: fp32, fp16, bf16")
    ap.add_argument("--out", type=Path, help="also write the JSON result here")
    args = ap.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args.prepare)))
        return
    if args.texts:
        texts = json.loads(args.texts.read_text(encoding="utf-8"))
    else:
        texts = _built_texts()
    texts = texts[: args.limit] if args.limit else texts
    folder = args.model or _packaged_mpnet()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    order = np.argsort([-len(tok.tokenize(t)) for t in texts], kind="stable")  # longest first, like padding-aware batching
    batch = args.batch or (64 if args.device.startswith("cuda") else 32)
    batches = [tok([texts[i] for i in order[s:s + batch]], padding=True, truncation=True, max_length=MAX_SEQ,
                   return_tensors="pt") for s in range(0, len(texts), batch)]
    n_tokens = int(sum(int(b["attention_mask"].sum()) for b in batches))
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    out = {"device": _device_name(args.device), "texts": len(texts), "tokens": n_tokens, "batch": batch,
           "torch": torch.__version__, "python": platform.python_version()}
    vectors = {}
    for name in args.dtypes.split(","):
        out[name], vectors[name] = run_dtype(folder, args.device, dtypes[name], batches, n_tokens)
        print(f"{name}: {out[name]}", flush=True)
    if "fp32" in vectors:
        for name in vectors.keys() - {"fp32"}:
            cos = (vectors[name] * vectors["fp32"]).sum(1)
            out[f"cosine_{name}_vs_fp32"] = {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}
        if "fp16" in vectors:
            out["fp16_speedup"] = float(f"{out['fp32']['seconds'] / out['fp16']['seconds']:.3g}")
    print(json.dumps(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"


def _packaged_mpnet() -> Path:
    from rag_news.embed import Embedder
    from rag_news.settings import Settings

    return Path(Embedder(Settings(progress=False, embedding_backend="torch", device="cpu")).warm_up().describe()["path"])


def _built_texts() -> list[str]:
    from bench_embed import bench_texts
    from rag_news.embed import Embedder
    from rag_news.settings import Settings

    settings = Settings(progress=False)
    return bench_texts(Embedder(settings.replace(embedding_backend="torch", device="cpu")).warm_up(), settings)[0]


if __name__ == "__main__":
    main()
