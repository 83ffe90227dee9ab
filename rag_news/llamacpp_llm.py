"""The ``llamacpp`` backend's LangChain model: ``ChatLlamaCpp`` that answers the same prompt the same way.

llama.cpp keeps the KV cache of the previous prompt and evaluates only what differs after the longest
common prefix. The different batch split changes floating-point sums enough that greedy answers then
depend on what was asked before (seen here: the same question, two different answers within one session).
:class:`ReproducibleChatLlamaCpp` evaluates every prompt from the start; the prefix it gives up is the
prompt's first few dozen tokens.

It can also be stopped mid-work (:func:`rag_news.llm.interrupt`): ``abort_event`` is read by llama.cpp's
abort callback, which the compute graph asks between its steps, so a long prompt read stops within the
batch it is on (llama.cpp then fails the decode, the call raises, and the model is free).
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from langchain_community.chat_models import ChatLlamaCpp
from pydantic import Field, PrivateAttr


class Interrupted(RuntimeError):
    """llama.cpp stopped because :func:`rag_news.llm.interrupt` asked it to."""


class ReproducibleChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` with no reuse of the previous prompt's KV cache, that can be interrupted."""

    abort_event: Any = Field(default_factory=threading.Event, exclude=True)
    _abort_cb: Any = PrivateAttr(default=None)
    _abort_checks: list = PrivateAttr(default_factory=lambda: [0])

    @property
    def abort_checks(self) -> int:
        """How many times llama.cpp asked whether to stop (tests and benchmarks read it)."""
        return self._abort_checks[0]

    def install_abort(self) -> None:
        """Register the abort callback on the llama.cpp context once."""
        if self._abort_cb is not None:
            return
        import llama_cpp

        event, checks = self.abort_event, self._abort_checks

        def asked(_data) -> bool:
            checks[0] += 1
            return event.is_set()

        cb = llama_cpp.ggml_abort_callback(asked)
        llama_cpp.llama_set_abort_callback(self.client._ctx.ctx, cb, None)
        self._abort_cb = cb  # kept alive as long as the model

    def _checked(self, call):
        try:
            return call()
        except RuntimeError as e:
            if self.abort_event.is_set():
                raise Interrupted("stopped by request (time limit)") from e
            raise

    def _generate(self, *args: Any, **kwargs: Any):
        self.install_abort()
        self.client.reset()
        return self._checked(lambda: super(ReproducibleChatLlamaCpp, self)._generate(*args, **kwargs))

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator:
        self.install_abort()
        self.client.reset()
        it = super()._stream(*args, **kwargs)
        while True:
            try:
                chunk = self._checked(lambda: next(it))
            except StopIteration:
                return
            yield chunk
