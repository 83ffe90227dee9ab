"""A scripted stub reader for tests where the page, the server or the conversation plumbing is under test,
not the model (a real model cannot be made to invent a figure, or to answer in exactly 2 s, on demand)."""

from __future__ import annotations

import re
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field


class ScriptedReader(BaseChatModel):
    """Replies with the first ``rules`` entry whose key occurs in the prompt's last message (else
    ``default``); a rewrite prompt ("Follow-up question:") gets ``rewrites[follow-up]``. Streams word by
    word, ``delay`` seconds apart; records every call's messages and per-call arguments in ``calls``."""

    rules: list = Field(default_factory=list)  # [(substring of the question line, reply)]
    rewrites: dict = Field(default_factory=dict)
    default: str = "I don't know."
    delay: float = 0.0
    calls: list = Field(default_factory=list)
    plans: list = Field(default_factory=list)  # [(substring of the question, [(tool, args), ...])]: research

    def bind_tools(self, tools, **kwargs):  # research mode's native driver: the plan comes from ``plans``
        return self

    def _plan(self, messages) -> AIMessage | None:
        """In research mode (the research system turn first): the next scripted tool call, one per turn."""
        from rag_news.research_drivers import SYSTEM

        if not messages or messages[0].content != SYSTEM:
            return None
        made = sum(m.type == "tool" for m in messages)
        plan = next((calls for key, calls in self.plans if key in messages[1].content), [])
        return AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": f"call_{made}"}
                                                 for n, a in plan[made:made + 1]])

    @property
    def _llm_type(self) -> str:
        return "scripted-stub"

    def _reply(self, messages, kwargs: dict) -> str:
        self.calls.append({"messages": [(m.type, m.content) for m in messages], "kwargs": dict(kwargs)})
        last = messages[-1].content
        follow = re.findall(r"Follow-up question: (.*)", last)  # the last one: the prompt's examples come first
        if follow:
            return self.rewrites.get(follow[-1].strip(), "")
        question = last.rsplit("Question:", 1)[-1]
        return next((reply for key, reply in self.rules if key in question), self.default)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        plan = self._plan(messages)
        if plan is not None:
            return ChatResult(generations=[ChatGeneration(message=plan)])
        text = self._reply(messages, {**kwargs, **({"stop": stop} if stop else {})})
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs: Any):
        for piece in re.findall(r"\S+\s*", self._reply(messages, {**kwargs, **({"stop": stop} if stop else {})})):
            if self.delay:
                time.sleep(self.delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sample_settings(tmp_path_factory, site_article_urls, cache_dir):
    """The sample site indexed by the real pipeline (MiniLM), whole passages, no relevance floor, k=3:
    shared by the conversation and chat page tests (import it into the module)."""
    from conftest import make_settings
    from rag_news import index_urls

    settings = make_settings(tmp_path_factory.mktemp("conv"), cache_dir, min_relevance=0, context_tokens=0, k=3)
    index_urls(site_article_urls, settings)
    return settings
