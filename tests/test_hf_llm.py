"""The hf backend's LangChain model (rag_news.hf_llm): streaming, stop strings, and cancellation."""

from __future__ import annotations

import threading

import pytest

from rag_news.llm import load_llm
from rag_news.settings import Settings
from tests_support import tiny_mixtral


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    folder = tiny_mixtral(tmp_path_factory.mktemp("tiny-mixtral"))
    return load_llm(Settings(cache_dir=tmp_path_factory.mktemp("cache"), llm_model=str(folder), device="cpu",
                             progress=False, max_new_tokens=4000))


def _generating() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rag-news-generate" and t.is_alive()]


def test_an_abandoned_stream_ends_its_generation_thread(tiny_llm):
    steps = []
    hook = tiny_llm.pipeline.model.register_forward_hook(lambda *a: steps.append(1))
    try:
        # random weights rarely emit a space, and the streamer passes text on at word ends: favour spaces
        space = tiny_llm.pipeline.tokenizer.convert_tokens_to_ids(" ")
        stream = tiny_llm.stream("<s>[INST] Tell a very long story. [/INST]",
                                 pipeline_kwargs={"min_new_tokens": 4000, "max_new_tokens": 4000,
                                                  "sequence_bias": {(space,): 50.0}})
        first = next(stream)
        assert isinstance(first, str) and len(_generating()) == 1  # 4,000 tokens to go
        stream.close()  # the consumer walks away
    finally:
        hook.remove()
    assert _generating() == []  # the generation thread has ended...
    assert len(steps) < 4000  # ...having stopped early, not run to the end


def test_stop_strings_end_the_stream(tiny_llm):
    prompt = "<s>[INST] Count. [/INST]"
    text = tiny_llm.invoke(prompt, pipeline_kwargs={"max_new_tokens": 24})
    stop = text[5:8]
    assert "".join(tiny_llm.stream(prompt, stop=[stop], pipeline_kwargs={"max_new_tokens": 24})) == \
        text[: text.index(stop)]
    assert _generating() == []
