"""The context block the model reads: numbered passages with title, URL and date, within a token budget.

* :func:`format_passages` — ``[n] title — url — published date`` then the text, for each passage. Scraped
  text is data: titles, URLs and passages are all cleaned so that none can close the ``<context>`` block
  (``</context>``, ``< /context >``, fullwidth forms...) or break a header line, and chat-template control
  tokens in them (``<|im_start|>``, ``<|im_end|>``, ``</s>``, ``[INST]``, the reader's own special tokens)
  are broken up so that the reader's tokenizer reads them as plain text: an article cannot end the user
  turn and forge a system or assistant turn (:func:`neutralize`).
* :func:`compress_passages` — within ``budget_tokens``, the sentences closest to the question (cosine with
  the index's embedding model), each passage keeping its chosen sentences in order; the budget is never
  exceeded (a sentence too long for what is left is cut to fit).
* :class:`SentenceVectors` — the embedder with a bounded memory of sentence vectors, so a long-lived
  :class:`~rag_news.answer.NewsQA` (server, interactive session) embeds a passage's sentences once, not
  on every question that retrieves it.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from typing import Sequence

from langchain_core.documents import Document

_BLOCK = re.compile(r"[<＜‹〈]\s*[/\\／]?\s*context\s*[/\\／]?\s*[>＞›〉]", re.IGNORECASE)
# control-token shapes of the common chat templates, whatever the reader: ChatML / Qwen / SmolLM2
# (<|im_start|>, <|im_end|>, <|endoftext|>), Llama 3 (<|eot_id|>, <|start_header_id|>), Mistral / Mixtral
# ([INST], [/INST], [SYSTEM_PROMPT], <s>, </s>), Llama 2 (<<SYS>>), Gemma (<start_of_turn>)
_CONTROL = re.compile(
    r"<\|[^|<>\s]{1,48}\|>|</?s>|<(?:unk|pad|bos|eos|mask|sep|cls)>|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|"
    r"TOOL_CALLS|TOOL_RESULTS|TOOL_CONTENT)\]|<</?SYS>>|<(?:start|end)_of_turn>|<\|?(?:system|user|assistant)\|?>",
    re.IGNORECASE)
_BREAK = "\u2009"  # a thin space after the first character: the string reads the same, no tokenizer matches it


def _break(token: str) -> str:
    return token[0] + _BREAK + token[1:]


@functools.lru_cache(maxsize=16)
def _pattern(own: tuple[str, ...]) -> re.Pattern:
    longest_first = sorted(own, key=len, reverse=True)
    return re.compile("|".join([*(re.escape(t) for t in longest_first), _CONTROL.pattern]), re.IGNORECASE)


def neutralize(text: str, special_tokens: Sequence[str] = ()) -> str:
    """``text`` with every chat-template control token (the common shapes, plus ``special_tokens``: the
    reader's own list) broken up by a thin space after its first character, so that a tokenizer that
    parses special tokens in text (llama.cpp, transformers) reads them as plain characters."""
    pattern = _pattern(tuple(sorted({t for t in special_tokens if t and len(t.strip()) >= 2})))
    for _ in range(8):  # a break can never create a new match, but nested forms are re-checked
        text, n = pattern.subn(lambda m: _break(m.group(0)), text)
        if not n:
            break
    return text


_SENT = re.compile(r"(?<=[.!?…])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")


def sanitize(text: str, one_line: bool = False, special_tokens: Sequence[str] = ()) -> str:
    """Scraped text made safe for the context block (and, with ``one_line``, for a header line):
    ``<context>`` tags removed, control tokens neutralised (:func:`neutralize`; ``special_tokens``: the
    reader's own)."""
    text = text or ""
    while True:  # removing a tag must not join a control token, nor breaking one make a tag
        cleaned = neutralize(_BLOCK.sub("", text), special_tokens)
        if cleaned == text:
            break
        text = cleaned
    return " ".join(text.split()) if one_line else text.strip()


def format_passages(docs: Sequence[Document], special_tokens: Sequence[str] = ()) -> str:
    """``[n] title — url — published date`` then the passage text, for each passage (``special_tokens``:
    the reader's special-token strings, neutralised in all scraped text along with the common ones)."""
    parts = []
    clean = lambda t, one=False: sanitize(t, one, special_tokens)  # noqa: E731
    for n, d in enumerate(docs, start=1):
        m = d.metadata
        head = f"[{n}] {clean(m.get('title') or 'Untitled', True)} — {clean(m.get('url') or m.get('source') or '', True)}"
        if m.get("published"):
            head += f" — published {clean(str(m['published'])[:10], True)}"
        parts.append(f"{head}\n{clean(d.page_content)}")
    return "\n\n".join(parts)


class SentenceVectors:
    """``embedder`` (an :class:`~rag_news.embed.Embedder`) with the vectors of the last ``capacity``
    distinct texts kept (least recently used dropped first; 20,000 mpnet vectors are 61 MB). Has the
    ``embed_array`` and ``tokenizer`` that :func:`compress_passages` uses; thread-safe."""

    def __init__(self, embedder, capacity: int = 20_000):
        self.embedder, self.capacity = embedder, capacity
        self._vectors: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def tokenizer(self):
        return self.embedder.tokenizer

    def __len__(self) -> int:
        return len(self._vectors)

    def embed_array(self, texts: Sequence[str]):
        """One normalised row per text, in order; only texts not kept already reach the model."""
        import numpy as np

        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
            if missing:
                for t, v in zip(missing, self.embedder.embed_array(missing)):
                    self._vectors[t] = v
            rows = []
            for t in texts:
                self._vectors.move_to_end(t)
                rows.append(self._vectors[t])
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)
        return np.stack(rows) if rows else self.embedder.embed_array([])


def _sentences(docs: Sequence[Document]) -> list[tuple[int, int, str]]:
    out = []
    for di, d in enumerate(docs):
        text, title = d.page_content, d.metadata.get("title") or ""
        if title and text.startswith(title):  # chunks carry a title prefix; the header shows it already
            text = text[len(title):].lstrip(" \n:—-")
        for si, s in enumerate(x.strip() for x in _SENT.split(text.replace("\n", " "))):
            if len(s) > 2:
                out.append((di, si, s))
    return out


def compress_passages(question: str, docs: Sequence[Document], embedder, budget_tokens: int) -> list[Document]:
    """Keep, across the passages, the sentences closest to the question within ``budget_tokens`` (counted
    in the embedding model's tokens); passages left with none are dropped. Each kept passage records its
    best sentence's cosine as ``metadata["relevance"]``."""
    import numpy as np

    sentences = _sentences(docs)
    if not sentences:
        return list(docs)
    vecs = embedder.embed_array([question] + [s for _, _, s in sentences])
    sims = vecs[1:] @ vecs[0]
    tok = embedder.tokenizer
    chosen: dict[int, list[tuple[int, str]]] = {}
    left = budget_tokens
    for i in np.argsort(-sims):
        di, si, s = sentences[i]
        ids = tok.encode(s, add_special_tokens=False)
        if len(ids) > left:
            if chosen:
                continue  # a shorter sentence may still fit
            ids = ids[:left]  # the best sentence alone is too long: its start
            s = tok.decode(ids)
            while ids and len(tok.encode(s, add_special_tokens=False)) > left:  # decoding may re-tokenise longer
                ids = ids[:-1]
                s = tok.decode(ids)
        left -= len(ids)
        chosen.setdefault(di, []).append((si, s))
        if left <= 0:
            break
    best: dict[int, float] = {}
    for (di, _, _), sim in zip(sentences, sims):
        best[di] = max(best.get(di, -1.0), float(sim))
    return [Document(page_content=" ".join(s for _, s in sorted(chosen[di])), id=d.id,
                     metadata={**d.metadata, "compressed": True, "relevance": best.get(di)})
            for di, d in enumerate(docs) if di in chosen]
