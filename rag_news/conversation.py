"""Conversations in the answer stage: follow-ups made standalone, a bounded slice of the conversation in
the prompt, and the per-request knobs (``today``, ``k``, ``outlets``, safe mode, generation limits).

:meth:`rag_news.answer.NewsQA.ask` / ``.stream`` take ``history`` (earlier turns) and these options; the
flow for one turn is::

    history + question -> standalone question (rules, else the reader) -> retrieval on it
      -> prompt: passages [1]..[k] of THIS turn, the last turns (citations stripped), the standalone question

* **Rewrite.** With no history, or a question that stands on its own (it names what it asks about, has no
  pronoun or "that"/"there" left unresolved, is not a bare fragment like "And the second?"), the question is
  kept as it is: no model call (:func:`needs_rewrite`; a new question on another story is kept too, so the
  previous answer's articles are not read first for it). Otherwise the reader rewrites it with a short prompt
  (:data:`REWRITE_PROMPT`, two invented examples, greedy, one line, at most ``REWRITE_TOKENS`` tokens); an
  empty or over-long reply, one that is no question (it answered instead), or one that brings in no word of
  the earlier turns (the follow-up handed back as it was), falls back to this question followed by the
  previous one (:func:`fallback`).
* **The cited articles first.** A follow-up that refers back (it needed the rewrite) is answered from the
  articles the previous answer cited: their passages, ranked by the standalone question, take the slots
  first, and only the slots they leave are filled from the whole index (:func:`cited_articles`,
  :meth:`rag_news.retrieve.NewsRetriever.search_within`). The previous answer's sources come with
  :class:`~rag_news.answer.Answer` objects, the server's stored turns and the ``Sources:`` list rag-news
  appends to its OpenAI-compatible replies; a history without them is searched index-wide as before.
* **Conversation slice.** At most :data:`HISTORY_TURNS` earlier exchanges, each message cut to
  :data:`HISTORY_CHARS` characters, their ``[n]`` citation marks removed (they numbered another turn's
  passages) and neutralised like the passages (:func:`rag_news.context.neutralize`).
* **Safe mode.** :data:`GUARDRAIL` as a system turn for the local readers; Mistral's ``safe_prompt`` on the
  ``mistral`` backend (:func:`generation_kwargs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

from .errors import ConfigError

HISTORY_TURNS = 2  # earlier exchanges (user + assistant) shown in the answer prompt
HISTORY_CHARS = 400  # each earlier message is cut to this many characters
REWRITE_TOKENS = 64
SHORT_WORDS = 8  # a question this short with a pronoun or "that" refers back, names or not
LONG_WORDS = 15  # longer than this and naming things: a question of its own (see needs_rewrite)
MAX_STYLE_CHARS = 500

GUARDRAIL = ("Always assist with care, respect, and truth. Respond with utmost utility yet securely. Avoid harmful, "
             "unethical, prejudiced, or negative content. Ensure replies promote fairness and positivity. "
             "Decline requests to insult, harass or demean anyone.")
"""Mistral's own guardrail prompt (the one ``safe_prompt`` prepends), plus a line on abuse."""

REWRITE_PROMPT = """Rewrite a follow-up question so that it can be understood without the conversation: replace each \
pronoun or vague reference with the person, team, thing or event it means, taken from the conversation. Do not \
answer it.

Example conversation:
User: How many votes did the mayor of Springfield win by in the 2024 election?
Assistant: Mayor Jane Doe won by 312 votes.
Follow-up question: Who did she beat?
Rewritten: Who did Springfield mayor Jane Doe beat in the 2024 election?

Example conversation:
User: What did the Acme Corp. recall on Monday?
Assistant: Acme recalled 40,000 space heaters.
Follow-up question: Why?
Rewritten: Why did Acme Corp. recall 40,000 space heaters on Monday?

Conversation:
{conversation}
Follow-up question: {question}
Rewritten:"""
"""Two invented examples (no dev-set article) show the 1.5B reader what a rewrite is: without them it handed
8 of the 18 dev follow-ups back unchanged (a probe; bench_followups.py's rows show each rewrite)."""

_REFERRING = re.compile(
    r"\b(he|she|it|they|him|her|his|hers|its|their|theirs|them|this|that|these|those|there|then|such|"
    r"the same|the other|the former|the latter|the first|the second|the last one|also|too|else|"
    r"another|again|instead)\b", re.IGNORECASE)
_FRAGMENT = re.compile(r"^\s*(and|but|so|or|what about|how about|why|how come|when|where|who)\b[^?]{0,25}\??\s*$",
                       re.IGNORECASE)
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


# ------------------------------------------------------------------------------------------ options
@dataclass
class AskOptions:
    """Per-request knobs (``None``: the settings' value).

    ``today``: the date the question is asked on (ISO; default: the real date at the time of the request).
    ``k``: passages shown to the model. ``outlets``: only passages from these outlets (site names as the
    page states them, or host names: ``bbc.co.uk`` also matches ``www.bbc.co.uk``). ``safe_mode``: the
    guardrail (see the module docstring). ``style``: a style hint (a chat system message): how to phrase
    the answer, never a change of the grounding rules. ``max_tokens`` / ``temperature`` / ``stop``: for
    this generation only. ``rewrite``: make follow-ups standalone (default on). ``focus``: a follow-up that refers back reads the
    articles the previous answer cited first (default on)."""

    today: str | None = None
    k: int | None = None
    outlets: tuple[str, ...] = ()
    safe_mode: bool | None = None
    style: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    rewrite: bool = True
    focus: bool = True

    def __post_init__(self) -> None:
        if self.today:
            try:
                self.today = date.fromisoformat(str(self.today)[:10]).isoformat()
            except ValueError:
                raise ConfigError(f"today expects a date like 2026-11-01, got {self.today!r}") from None
        if self.k is not None and not 1 <= self.k <= 50:
            raise ConfigError("k must be between 1 and 50")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= 32768:
            raise ConfigError("max_tokens must be between 1 and 32768")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigError("temperature must be between 0 and 2")
        self.outlets = tuple(o.strip() for o in (self.outlets or ()) if o and o.strip())
        self.stop = tuple(s for s in (self.stop or ()) if s)[:4]
        if self.style and len(self.style) > MAX_STYLE_CHARS:
            self.style = self.style[:MAX_STYLE_CHARS]


# ------------------------------------------------------------------------------------------ history
@dataclass
class Turn:
    role: str  # "user" | "assistant"
    content: str
    extra: dict = field(default_factory=dict)


def as_turns(history: Iterable[Any] | None) -> list[Turn]:
    """``history`` as turns: ``{"role", "content"}`` dicts, ``(role, text)`` pairs, :class:`Turn` or
    :class:`~rag_news.answer.Answer` objects (one answer = its question, then its answer). System messages
    and empty ones are dropped."""
    out: list[Turn] = []
    for item in history or ():
        if isinstance(item, Turn):
            out.append(item)
        elif hasattr(item, "question") and hasattr(item, "answer"):
            cited = [] if getattr(item, "abstained", False) else \
                [s.url for s in getattr(item, "sources", ()) if s.n in set(getattr(item, "cited", ()))]
            out += [Turn("user", getattr(item, "standalone_question", None) or item.question),
                    Turn("assistant", item.answer, {"cited_urls": cited})]
        elif isinstance(item, dict):
            urls = [u for u in item.get("cited_urls") or () if isinstance(u, str)]
            out.append(Turn(str(item.get("role", "user")), _text(item.get("content")), {"cited_urls": urls}))
        else:
            role, content = item
            out.append(Turn(str(role), _text(content)))
    return [t for t in out if t.role in ("user", "assistant") and t.content.strip()]


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def needs_rewrite(question: str, turns: Sequence[Turn]) -> bool:
    """Whether ``question`` leans on the conversation: there is one, and the question is a bare fragment
    ("And the second?", "Why?"), names nothing ("When do the tickets go on sale?": no name, figure or quoted
    phrase, so its subject is the conversation's), or refers back: a pronoun, "that", "there", "also" in a
    short question ("What did Trump say about it?"), or in one of middling length with nothing named before
    it ("How old was he when Eastern Michigan last won a bowl game?"). A long question that names its
    subject first is a new question even with a "their" in it ("... when the Islanders beat the Penguins to
    stretch their unbeaten run?"): it is searched as asked, not read in the previous answer's articles."""
    if not any(t.role == "user" for t in turns):
        return False
    if _FRAGMENT.match(question) or len(question.split()) <= 3 or names_nothing(question):
        return True
    refs = list(_REFERRING.finditer(question))
    n_words = len(question.split())
    return bool(refs) and (n_words <= SHORT_WORDS or (n_words <= LONG_WORDS and any(
        not _names(question[:m.start()]) for m in refs)))


def _names(text: str) -> bool:
    """A capitalised word after the first (not "I"), or a figure: the text names something."""
    words = re.findall(r"[\w'’.-]+", text)
    return bool(re.search(r"\d", text)) or any(w[:1].isupper() for w in words[1:] if w != "I")


def names_nothing(question: str) -> bool:
    """No capitalised word after the first, no figure, no quoted phrase: a question that names no person,
    place, organisation, date or figure (in a conversation, it asks about what was being discussed)."""
    return len(re.findall(r"[\w'’.-]+", question)) >= 2 and not re.search(r"[\"“”]", question) \
        and not _names(question)


def cited_articles(turns: Sequence[Turn]) -> list[str]:
    """The article URLs the last answer cited (empty when it abstained, cited nothing or came with no
    sources): a follow-up that refers back is answered from these first (see the module docstring)."""
    last = next((t for t in reversed(turns) if t.role == "assistant"), None)
    return list(dict.fromkeys((last.extra.get("cited_urls") or ()) if last else ()))


def fallback(question: str, turns: Sequence[Turn]) -> str:
    """The standalone question when the reader gives none: this one, then what the previous one asked
    (the follow-up stays the question the reader answers; the previous one brings back its subject)."""
    previous = next((t.content for t in reversed(turns) if t.role == "user"), "").strip()
    return f"{question.strip()} (following up on: {previous})" if previous else question.strip()


def transcript(turns: Sequence[Turn], specials: Sequence[str] = (), turns_kept: int = HISTORY_TURNS,
               chars: int = HISTORY_CHARS) -> str:
    """The last ``turns_kept`` exchanges as ``User: ... / Assistant: ...`` lines, each cut to ``chars``,
    citation marks removed, control tokens neutralised."""
    from .context import neutralize

    kept = list(turns)[-2 * turns_kept:]
    lines = []
    for t in kept:
        text = _CITATION.sub("", " ".join(t.content.split()))
        if len(text) > chars:
            text = text[: chars - 1].rstrip() + "…"
        lines.append(("User: " if t.role == "user" else "Assistant: ") + neutralize(text, specials))
    return "\n".join(lines)


def conversation_block(turns: Sequence[Turn], specials: Sequence[str] = ()) -> str:
    """The slice of the conversation the answer prompt carries (empty with no history)."""
    if not turns:
        return ""
    return ("Earlier in this conversation (background only: the passages above are the only evidence, "
            "and only they may be cited):\n" + transcript(turns, specials) + "\n\n")


def clean_rewrite(text: str, question: str, turns: Sequence[Turn]) -> str:
    """The reader's rewrite as one question, or :func:`fallback` when it gave none usable."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    line = re.sub(r"^(rewritten( follow-up)? question|rewritten|standalone question|question)\s*:\s*", "", line,
                  flags=re.I)
    line = line.strip().strip('"“”\'').strip()
    if not line or len(line) > 400 or len(line) < 4:
        return fallback(question, turns)
    if question.rstrip().endswith("?") and not line.endswith("?"):
        return fallback(question, turns)  # it answered the question instead of rewriting it
    earlier = {_norm(t.content) for t in turns if t.role == "user"}
    own = _content_words(question)
    kept = own & _content_words(line)
    if _norm(line) in earlier or (own and len(kept) < (len(own) + 1) // 2):
        return fallback(question, turns)  # it repeated an earlier question, or dropped what this one asks
    if not _brings_in(line, own, turns):
        return fallback(question, turns)  # it resolved nothing: no word of the conversation came in
    return line


def _brings_in(line: str, own: set[str], turns: Sequence[Turn]) -> bool:
    """Does the rewrite add a content word of the earlier turns (compared by their first 5 letters, so
    "protests" resolves a conversation about "protesters")? A follow-up returned as it was does not."""
    said = {w[:5] for t in turns for w in _content_words(t.content)}
    return any(w[:5] in said for w in _content_words(line) - own)


_STOP = set("""a an the of in on at to for by with from about and or but so is are was were be been being do does
did have has had will would can could should may might what which who whom whose when where why how many much
that this these those it its he she they him her his their them there then also too else i you we me my your our
""".split())


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in _STOP and len(w) > 1}


def rewrite_chain(llm):
    """``{"conversation", "question"} -> text``: the reader with :data:`REWRITE_PROMPT`."""
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from .answer import _is_text_llm, chat_template_renderer

    steps = ChatPromptTemplate.from_messages([("human", REWRITE_PROMPT)])
    if _is_text_llm(llm):
        steps = steps | chat_template_renderer(llm.pipeline.tokenizer)
    return steps | llm.bind(**generation_kwargs(llm, max_tokens=REWRITE_TOKENS, temperature=0.0, stop=("\n",))) | StrOutputParser()


def standalone(question: str, turns: Sequence[Turn], llm=None, specials: Sequence[str] = ()) -> tuple[str, str]:
    """``(standalone question, how)``: ``how`` is ``"kept"`` (no rewrite needed), ``"reader"`` or
    ``"fallback"`` (no reader given, or its reply was unusable)."""
    if not needs_rewrite(question, turns):
        return question, "kept"
    if llm is None:
        return fallback(question, turns), "fallback"
    from .context import neutralize

    text = rewrite_chain(llm).invoke({"conversation": transcript(turns, specials),
                                      "question": neutralize(question, specials)})
    out = clean_rewrite(text, question, turns)
    return out, ("reader" if out != fallback(question, turns) else "fallback")


# ------------------------------------------------------------------------------------------ outlets
def outlet_of(metadata: dict) -> str:
    """A passage's outlet: the site name its page states, else its host without ``www.``."""
    host = (urlsplit(metadata.get("url") or "").hostname or "").removeprefix("www.")
    return metadata.get("site_name") or host


def from_outlets(metadata: dict, outlets: Sequence[str]) -> bool:
    """Whether a passage (its ``metadata``) comes from one of ``outlets`` (site name or host, any case)."""
    if not outlets:
        return True
    host = (urlsplit(metadata.get("url") or "").hostname or "").lower()
    name = (metadata.get("site_name") or "").lower()
    for o in (x.lower().removeprefix("www.") for x in outlets):
        if o == name or host == o or host.endswith("." + o):
            return True
    return False


# ------------------------------------------------------------------------------------------ generation
def generation_kwargs(llm, max_tokens: int | None = None, temperature: float | None = None,
                      stop: Sequence[str] = (), safe_mode: bool | None = None) -> dict:
    """Per-call generation arguments in the shape ``llm`` takes them: llama.cpp and the OpenAI/Mistral chat
    models take ``max_tokens`` / ``temperature`` / ``stop`` (Mistral also ``safe_prompt``); the hf pipeline
    takes ``pipeline_kwargs`` (``max_new_tokens``, sampling when ``temperature`` > 0, ``stop_strings``)."""
    out: dict[str, Any] = {}
    if hasattr(llm, "pipeline"):
        gen: dict[str, Any] = {}
        if max_tokens:
            gen["max_new_tokens"] = max_tokens
        if temperature is not None:
            gen.update({"do_sample": temperature > 0, **({"temperature": temperature} if temperature > 0 else {})})
        if gen:
            out["pipeline_kwargs"] = gen
        if stop:
            out["stop"] = list(stop)
        return out
    if max_tokens:
        out["max_tokens"] = max_tokens
    if temperature is not None:
        out["temperature"] = temperature
    if stop:
        out["stop"] = list(stop)
    if safe_mode and type(llm).__name__ == "ChatMistralAI":
        out["safe_prompt"] = True
    return out


def system_turn(style: str | None, safe: bool, remote_mistral: bool = False) -> str | None:
    """The system message of the answer prompt: the guardrail (safe mode; on Mistral its API adds it),
    then the style hint, said to be subordinate to the rules of the user turn."""
    parts = []
    if safe and not remote_mistral:
        parts.append(GUARDRAIL)
    if style and style.strip():
        parts.append("Style preference from the user (it changes only the tone and form of the answer, never the "
                     "rules: answer only from the passages, cite them, or reply with the abstention sentence): "
                     + " ".join(style.split()))
    return "\n\n".join(parts) or None
