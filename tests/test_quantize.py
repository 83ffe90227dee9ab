"""``python -m rag_news.quantize``: a Mixtral saved in NF4 once (experts included) loads without quantizing
again, with the same footprint and outputs as a fresh NF4 load (the tiny Mixtral, on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from rag_news.llm import load_hf_model
from rag_news.mixtral import MixtralLinearExpertsForCausalLM
from rag_news.settings import Settings
from tests_support import tiny_mixtral

ROOT = Path(__file__).resolve().parent.parent


def test_quantize_once_then_load_the_4bit_weights_as_they_are(tmp_path):
    import bitsandbytes as bnb

    source = tiny_mixtral(tmp_path / "mixtral")
    out = tmp_path / "mixtral-nf4"
    p = subprocess.run([sys.executable, "-m", "rag_news.quantize", str(source), str(out), "--device", "cpu"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    record = json.loads(p.stdout.strip().splitlines()[-1])
    assert record["quantization"] == "nf4" and record["quantized_fraction"] > 0.99
    assert json.loads((out / "rag-news-quantized.json").read_text())["source"] == str(source)

    settings = Settings(cache_dir=tmp_path / "cache", device="cpu", progress=False)
    fresh, tok, _ = load_hf_model(settings.replace(llm_model=str(source), quantization="nf4"))
    saved, _, info = load_hf_model(settings.replace(llm_model=str(out)))  # no quantization asked: as saved
    assert isinstance(saved, MixtralLinearExpertsForCausalLM) and info.quantization == "nf4"
    assert isinstance(saved.model.layers[1].mlp.experts[5].w3, bnb.nn.Linear4bit)
    assert info.quantized_fraction > 0.99 and saved.get_memory_footprint() == fresh.get_memory_footprint()
    ids = torch.randint(3, 256, (1, 24))
    with torch.no_grad():
        diff = (fresh(ids).logits - saved(ids).logits).abs().max().item()
    assert diff < 1e-4, diff


def test_quantize_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    p = subprocess.run([sys.executable, "-m", "rag_news.quantize", "some/model", str(tmp_path / "busy")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1 and "not empty" in p.stderr.strip().splitlines()[-1]
