"""The ``llamacpp`` backend's LangChain model: ``ChatLlamaCpp`` that answers the same prompt the same way.

llama.cpp keeps the KV cache of the previous prompt and evaluates only what differs after the longest
common prefix. The different batch split changes floating-point sums enough that greedy answers then
depend on what was asked before (seen here: the same question, two different answers within one session).
:class:`ReproducibleChatLlamaCpp` evaluates every prompt from the start; the prefix it gives up is the
prompt's first few dozen tokens.
"""

from __future__ import annotations

from typing import Any, Iterator

from langchain_community.chat_models import ChatLlamaCpp


class ReproducibleChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` with no reuse of the previous prompt's KV cache."""

    def _generate(self, *args: Any, **kwargs: Any):
        self.client.reset()
        return super()._generate(*args, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator:
        self.client.reset()
        yield from super()._stream(*args, **kwargs)
