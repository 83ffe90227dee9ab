"""The ``hf`` backend's LangChain model: a transformers text-generation pipeline that streams and stops.

:class:`NewsHuggingFacePipeline` is LangChain's ``HuggingFacePipeline`` with three differences: the prompt is
never echoed (``return_full_text=False``), stop strings stop generation inside ``generate`` and cut the
text, and :meth:`~NewsHuggingFacePipeline._stream` yields tokens from a generation thread that stops as
soon as the consumer stops reading (an abandoned stream does not keep the model busy).
:func:`build_hf_llm` wraps a loaded model in it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterator

from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_huggingface import HuggingFacePipeline
from pydantic import Field

# Used only when a tokenizer has no chat template of its own.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}### System:\n{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### User:\n{{ message['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)
DEFAULT_TEMPLATE_STOPS = ("### User:", "### System:")


class _StopWhenSet:
    """A transformers StoppingCriteria that ends generation once ``event`` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class NewsHuggingFacePipeline(HuggingFacePipeline):
    """``HuggingFacePipeline`` that honours stop strings, never echoes the prompt and streams tokens."""

    stop_strings: list[str] = []
    rag_news_info: Any = None
    abort_event: Any = Field(default_factory=threading.Event, exclude=True)  # rag_news.llm.interrupt sets it

    def _stops(self, stop: list[str] | None) -> list[str]:
        return list(dict.fromkeys([*(self.stop_strings or []), *(stop or [])]))

    def _gen_kwargs(self, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        out = dict(self.pipeline_kwargs or {})
        out.update(kwargs.get("pipeline_kwargs") or {})
        out["return_full_text"] = False
        if self._stops(stop):
            out["stop_strings"] = self._stops(stop)
            out["tokenizer"] = self.pipeline.tokenizer
        return out

    def _cut(self, text: str, stop: list[str] | None) -> str:
        for s in self._stops(stop):
            i = text.find(s)
            if i >= 0:
                text = text[:i]
        return text

    def _generate(self, prompts, stop=None, run_manager=None, **kwargs):
        from transformers import StoppingCriteriaList

        gen = {**self._gen_kwargs(stop, **kwargs), "stopping_criteria": StoppingCriteriaList([_StopWhenSet(self.abort_event)])}
        generations = []
        for prompt in prompts:
            out = self.pipeline(prompt, **gen)
            text = out[0]["generated_text"] if isinstance(out, list) else out["generated_text"]
            generations.append([Generation(text=self._cut(text, stop))])
        return LLMResult(generations=generations)

    def _stream(self, prompt: str, stop=None, run_manager=None, **kwargs) -> Iterator[GenerationChunk]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        stops = self._stops(stop)
        streamer = TextIteratorStreamer(self.pipeline.tokenizer, skip_prompt=True, skip_special_tokens=True)
        halt = threading.Event()
        gen = {**self._gen_kwargs(stop, **kwargs), "streamer": streamer,
               "stopping_criteria": StoppingCriteriaList([_StopWhenSet(halt), _StopWhenSet(self.abort_event)])}
        error: list[BaseException] = []

        def work():
            try:
                self.pipeline(prompt, **gen)
            except BaseException as e:  # surfaced in the caller's thread
                error.append(e)
                streamer.text_queue.put(streamer.stop_signal)

        worker = threading.Thread(target=work, name="rag-news-generate", daemon=True)
        worker.start()
        try:
            yield from self._pieces(streamer, stops, run_manager)
        finally:  # finished, stopped at a stop string, or abandoned by the consumer: end generation
            halt.set()  # the streamer's queue is unbounded: the worker never waits on it, it just stops
            worker.join()
        if error:
            raise error[0]

    @staticmethod
    def _pieces(streamer, stops: list[str], run_manager) -> Iterator[GenerationChunk]:
        """Streamed text, held back while it may be the start of a stop string, cut at the first one."""
        held = ""
        keep = max((len(s) - 1 for s in stops), default=0)
        for piece in streamer:
            held += piece
            cut = min((held.find(s) for s in stops if s in held), default=-1)
            if cut >= 0:
                held = held[:cut]
                break
            safe = held[: len(held) - keep] if keep else held
            if safe:
                held = held[len(safe):]
                if run_manager:
                    run_manager.on_llm_new_token(safe)
                yield GenerationChunk(text=safe)
        if held:
            if run_manager:
                run_manager.on_llm_new_token(held)
            yield GenerationChunk(text=held)


def build_hf_llm(model, tokenizer, settings, info=None) -> NewsHuggingFacePipeline:
    """Wrap a loaded transformers model in the LangChain LLM used by the chain."""
    from transformers import pipeline

    gen: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens,
                           "repetition_penalty": settings.repetition_penalty,
                           "pad_token_id": tokenizer.pad_token_id}
    if settings.temperature > 0:
        gen.update(do_sample=True, temperature=settings.temperature)
    else:
        gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    # transformers logs every supported class name when a model class is not in its task table (rag-news'
    # Mixtral with per-expert linears is not): the pipeline works, so that list is not shown
    log = logging.getLogger("transformers.pipelines.base")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, return_full_text=False)
    finally:
        log.setLevel(level)
    stops = list(DEFAULT_TEMPLATE_STOPS) if tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE else []
    return NewsHuggingFacePipeline(pipeline=pipe, model_id=info.model if info else "local", pipeline_kwargs=gen,
                                   stop_strings=stops, rag_news_info=info)
