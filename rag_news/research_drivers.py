"""How research mode asks each kind of reader for its next tool calls (see :mod:`rag_news.research`).

Every driver has ``next_calls(question, gathered, history, today, left) -> [(tool name, arguments)]``
(empty: the reader is done); ``history`` holds the ``(ToolCall, result text)`` pairs so far.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .research import CALL_SCHEMA, GRAMMAR_TAIL, PLAN, PLAN_TOKENS, TOOL_SPECS, parse_json_call

SYSTEM = ("You research news questions with tools. Search for each fact the question needs that the passages "
          "found so far do not state; stop calling tools when they state everything.")
Call = tuple[str, dict[str, Any]]


def first_message(question: str, gathered, today: str, left: int) -> str:
    """The opening user turn: the question and the passages its own retrieval found."""
    return PLAN.format(question=question, today=today, found=gathered.listing(list(range(1, gathered.seed + 1))),
                       left=left)


def replay_text(question: str, gathered, history, today: str, left: int) -> str:
    """One self-contained user turn (for readers without tool turns): every passage so far and the calls made."""
    made = "\n".join(f"- {c.name}({json.dumps(c.arguments, ensure_ascii=False)}): "
                     + (f"error: {c.error}" if c.error else f"added {', '.join(f'[{n}]' for n in c.passages) or 'nothing'}")
                     for c, _ in history)
    text = PLAN.format(question=question, today=today, found=gathered.listing(), left=left)
    return text + (f"\n\nCalls made so far:\n{made}" if made else "") + GRAMMAR_TAIL


# ------------------------------------------------------------------------------- native (bind_tools)
class NativeDriver:
    """Chat models with tool calling (``ChatOpenAI`` on vLLM / llama.cpp's server, ``ChatMistralAI``):
    the tools bound with LangChain's ``bind_tools``, the calls read from ``AIMessage.tool_calls``."""

    def __init__(self, llm, tool_choice: str | None = None):
        """``tool_choice``: passed to ``bind_tools`` (a tool name forces that tool; default: the model's choice)."""
        if not hasattr(llm, "bind_tools"):
            raise TypeError(f"{type(llm).__name__} has no bind_tools")
        self.llm = llm.bind_tools(TOOL_SPECS, **({"tool_choice": tool_choice} if tool_choice else {}))

    def next_calls(self, question, gathered, history, today, left) -> list[Call]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        messages: list = [SystemMessage(SYSTEM), HumanMessage(first_message(question, gathered, today, left + len(history)))]
        for i, (call, text) in enumerate(history):
            cid = f"call_{i}"
            messages.append(AIMessage(content="", tool_calls=[{"name": call.name, "args": call.arguments, "id": cid}]))
            messages.append(ToolMessage(content=text, tool_call_id=cid))
        reply = self.llm.invoke(messages)
        return [(c["name"], dict(c.get("args") or {})) for c in getattr(reply, "tool_calls", None) or []]


# ------------------------------------------------------------------------------- llama.cpp helpers
def _template(client) -> str | None:
    return getattr(client, "metadata", {}).get("tokenizer.chat_template")


def template_has_tools(client) -> bool:
    """The GGUF's chat template renders a ``tools`` list (Qwen2.5's does; Mixtral-Instruct's does not)."""
    t = _template(client) or ""
    return "tools" in t and "tool_call" in t


def _render(client, messages: list[dict], tools: list | None = None) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    eos, bos = client.token_eos(), client.token_bos()
    piece = lambda t: client.detokenize([t]).decode("utf-8", "replace") if t >= 0 else ""  # noqa: E731
    fmt = Jinja2ChatFormatter(_template(client), eos_token=piece(eos), bos_token=piece(bos))
    return fmt(messages=messages, tools=tools).prompt


def _complete(llm, prompt: str, **kwargs) -> str:
    """One llama.cpp completion from the start of the prompt (no KV-cache reuse: see llamacpp_llm)."""
    client = llm.client
    if hasattr(llm, "install_abort"):
        llm.install_abort()
    client.reset()
    out = client.create_completion(prompt, max_tokens=kwargs.pop("max_tokens", PLAN_TOKENS), temperature=0.0,
                                   **kwargs)
    return out["choices"][0]["text"]


def parse_tool_calls(text: str) -> list[Call]:
    """The ``{"name", "arguments"}`` calls of a Qwen-format reply (``<tool_call>`` blocks). Each object is
    read with ``raw_decode`` from its ``{"name"``, so what follows it (a stray ``}`` seen from the 1.5B
    model, a missing ``</tool_call>``, a next call) does not lose it."""
    decoder, calls = json.JSONDecoder(), []
    for m in re.finditer(r'\{\s*"name"', text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("name"):
            args = obj.get("arguments") or {}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {}
            calls.append((str(obj["name"]), args if isinstance(args, dict) else {}))
    return calls


# ------------------------------------------------------------------------------- template (Qwen)
class TemplateDriver:
    """A llama.cpp reader whose chat template renders tools (the packaged Qwen2.5): the conversation with
    the template's own tool turns, the calls parsed from ``<tool_call>`` blocks."""

    def __init__(self, llm):
        self.llm = llm

    def prompt(self, question, gathered, history, today, left) -> str:
        messages: list[dict] = [{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": first_message(question, gathered, today, left + len(history))}]
        for call, text in history:
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": call.name, "arguments": call.arguments}}]})
            messages.append({"role": "tool", "content": text})
        return _render(self.llm.client, messages, TOOL_SPECS)

    def next_calls(self, question, gathered, history, today, left) -> list[Call]:
        # the reply starts as the template's tool call (so a small reader calls a tool instead of describing
        # one: "answer" is the call that ends the research), one call per turn: it stops at the closing tag
        opened = '<tool_call>\n{"name": "'
        text = opened + _complete(self.llm, self.prompt(question, gathered, history, today, left) + opened,
                                  stop=["<|im_end|>", "</tool_call>"])
        self.last_reply = text
        return parse_tool_calls(text)


# ------------------------------------------------------------------------------- grammar (Mixtral)
class GrammarDriver:
    """A llama.cpp reader whose template has no tools (Mixtral-8x7B-Instruct-v0.1): one JSON call,
    generated under a llama.cpp grammar built from :data:`CALL_SCHEMA`, so it always parses."""

    def __init__(self, llm):
        from llama_cpp import LlamaGrammar

        self.llm = llm
        self.grammar = LlamaGrammar.from_json_schema(json.dumps(CALL_SCHEMA), verbose=False)

    def next_calls(self, question, gathered, history, today, left) -> list[Call]:
        prompt = _render(self.llm.client, [{"role": "user", "content": replay_text(question, gathered, history, today,
                                                                                    left)}])
        text = _complete(self.llm, prompt, grammar=self.grammar)
        self.last_reply = text
        call = parse_json_call(text)
        return [call] if call else []


def _regular_tokens(tok) -> list[tuple[int, str, bool]]:
    """``(id, text, starts a word)`` for each non-special token (what lm-format-enforcer's tree is built from)."""
    zero = tok.encode("0", add_special_tokens=False)[-1]
    special = set(tok.all_special_ids)
    out = []
    for i in range(len(tok)):
        if i in special:
            continue
        after_zero, alone = tok.decode([zero, i])[1:], tok.decode([i])
        out.append((i, after_zero, len(after_zero) > len(alone)))
    return out


class HFConstrainedDriver:
    """A transformers reader (Mixtral-Instruct on ``hf``): the same JSON call, held to :data:`CALL_SCHEMA`
    token by token by lm-format-enforcer (its ``TokenEnforcer`` as ``generate``'s
    ``prefix_allowed_tokens_fn``; its own transformers adapter does not import under transformers 5)."""

    max_new_tokens = 160

    def __init__(self, llm):
        try:
            from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData
        except ImportError:
            from .errors import MissingExtra
            raise MissingExtra("lm-format-enforcer", "research", "research mode on the hf backend") from None
        self.llm = llm
        self.tokenizer = tok = llm.pipeline.tokenizer
        data = TokenEnforcerTokenizerData(_regular_tokens(tok), lambda ids: tok.decode(ids).rstrip("\ufffd"),
                                          tok.eos_token_id, False, len(tok))
        enforcer = TokenEnforcer(data, JsonSchemaParser(CALL_SCHEMA))
        self.allowed = lambda batch_id, sent: enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens

    def next_calls(self, question, gathered, history, today, left) -> list[Call]:
        import torch

        tok, model = self.tokenizer, self.llm.pipeline.model
        prompt = tok.apply_chat_template([{"role": "user", "content": replay_text(question, gathered, history, today,
                                                                                   left)}],
                                         tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 prefix_allowed_tokens_fn=self.allowed, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        self.last_reply = text
        call = parse_json_call(text)
        return [call] if call else []
