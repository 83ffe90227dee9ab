"""``python -m rag_news.quantize MODEL OUT_DIR``: save a model in 4-bit once, load it fast ever after.

Loading Mixtral-8x7B-Instruct the usual way reads ~87 GiB of bf16 weights and quantizes them to NF4 on
every start. This loads ``MODEL`` (Hub id or folder) once through the same path as ``ask`` (NF4 by default,
experts included: :mod:`rag_news.mixtral`), and saves the quantized weights with bitsandbytes'
serialisation (plus the tokenizer and ``rag-news-quantized.json``, what was done). ``--model OUT_DIR``
then loads the 4-bit weights as they are (~23 GiB for Mixtral), without quantizing again.

Exit status 0, or 1 with a one-line error.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .cli import run
from .errors import ConfigError
from .settings import Settings

PROG = "python -m rag_news.quantize"
MARKER = "rag-news-quantized.json"


def quantize(model: str, out_dir: Path, settings: Settings) -> dict:
    """Load ``model`` quantized as ``settings`` say (NF4 unless told otherwise) and save it to ``out_dir``."""
    from .llm import load_hf_model

    if settings.quantization in ("auto", "none"):
        settings = settings.replace(quantization="nf4")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} exists and is not empty: choose a new folder")
    t0 = time.perf_counter()
    loaded, tokenizer, info = load_hf_model(settings.replace(llm_model=model, llm_fallback=False))
    if info.quantization in ("none", "gguf"):
        raise ConfigError(f"{model} was not quantized ({info.quantization})")
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {"source": model, "quantization": info.quantization, "double_quant": settings.double_quant,
              "quantized_fraction": round(info.quantized_fraction or 0.0, 4),
              "footprint_bytes": info.footprint_bytes, "seconds": round(time.perf_counter() - t0, 1)}
    (out_dir / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Hub id or local folder of the model to quantize")
    ap.add_argument("out_dir", help="a new folder for the 4-bit model")
    ap.add_argument("--quantization", choices=["nf4", "fp4", "int8"], default="nf4")
    ap.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:N")
    ap.add_argument("--no-double-quant", action="store_true", help="do not quantize the 4-bit scales again")
    args = ap.parse_args(argv)
    settings = Settings.load(quantization=args.quantization, device=args.device,
                             double_quant=False if args.no_double_quant else None)
    record = quantize(args.model, Path(args.out_dir), settings)
    print(json.dumps(record))
    return 0


def cli() -> None:
    run(main, PROG)


if __name__ == "__main__":
    cli()
