"""Research mode: the reader runs its own searches before it answers.

A question that needs two articles ("Which holds more people, the new hospital wing or the college's
lecture halls?") gets, from one retrieval for its own words, passages for one side or a blur of both. In
research mode the reader is given two tools and decides its searches, up to ``research_max_calls``
(default 3)::

    search_news(query, since?, until?, outlet?)   -> new passages, numbered [n] in the order gathered
    open_article(n)                               -> the whole stored text of passage n's article

It starts from the question's own retrieval (today's one-retrieval path, so research can only add
passages), calls tools while it finds facts missing, then the gathered passages (fitted to a budget)
go through the usual prompt, ``[n]`` citations, checks and abstention (:meth:`NewsQA.check_answer`); the
relevance floor reads each passage's best cosine with the queries that found it, not with the whole
question. A tool that fails (a bad date, a passage number that does not exist) answers the reader with the
error and counts as a call; the loop goes on. A call that repeats an earlier one is not run and ends the
research, as do two searches in a row that find no new passage (small readers otherwise spend every call
on one query).

How the reader is asked for a tool call depends on what it can do (:func:`driver_for`):

* ``native`` — chat models with tool calling (OpenAI-compatible servers such as vLLM or llama.cpp's
  server, Mistral's API): LangChain's ``bind_tools``, calls read from ``AIMessage.tool_calls``;
* ``template`` — a GGUF reader on llama.cpp whose chat template renders tools (the packaged Qwen2.5):
  the template's own tool format (``<tools>`` in the system turn, ``<tool_call>{...}</tool_call>`` back);
* ``grammar`` — readers whose template has no tools (Mixtral-8x7B-Instruct-v0.1): one JSON object
  ``{"tool": "search_news" | "open_article" | "answer", ...}`` held to a JSON schema while it is generated
  — a llama.cpp grammar (``LlamaGrammar.from_json_schema``) on llama.cpp, lm-format-enforcer's
  ``prefix_allowed_tokens_fn`` on transformers.

``--research always|auto|never`` (setting ``research``, and per request): ``auto`` sends a question to
research mode only when :func:`wants_research`'s rules see two things compared, ordered or summed, so a
simple question stays on the one-retrieval path with no extra model call.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator, Sequence

from langchain_core.documents import Document

from . import tools
from .checks import ABSTAIN
from .conversation import from_outlets
from .errors import ConfigError, RagNewsError
from .tools import ToolCall

SEARCH_K = 3  # new passages a search adds
MAX_PASSAGES = 10  # passages gathered at most (before the budget)
SNIPPET_CHARS = 200  # of each passage, in the tool results the reader plans from
ARTICLE_CHARS = 1500  # of an opened article
PLAN_TOKENS = 64  # new tokens for one tool decision (a call is ~30)
STALE_SEARCHES = 2  # searches in a row that add no new passage end the research

TOOL_SPECS = [
    {"type": "function", "function": {
        "name": "search_news",
        "description": "Search the news articles for passages about one fact you still need. Use the words an "
                       "article would use: names, places, figures.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "since": {"type": "string", "description": "only articles published on or after YYYY-MM-DD"},
            "until": {"type": "string", "description": "only articles published on or before YYYY-MM-DD"},
            "outlet": {"type": "string", "description": "only articles from this site (host name)"}},
            "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "open_article",
        "description": "Read the full text of the article passage [n] comes from.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer", "description": "passage number"}},
                       "required": ["n"]}}},
    {"type": "function", "function": {
        "name": "answer",
        "description": "Call when the passages found hold every fact the question needs (ends the research).",
        "parameters": {"type": "object", "properties": {}}}},
]
DONE = "answer"  # the call that ends the research (a reply without a call does too)

# the grammar path's one JSON object (no tools in the template): a tool, or "answer" when done
CALL_SCHEMA = {"anyOf": [
    {"type": "object", "properties": {"tool": {"const": "search_news"}, "query": {"type": "string", "maxLength": 120}},
     "required": ["tool", "query"], "additionalProperties": False},
    {"type": "object", "properties": {"tool": {"const": "open_article"}, "n": {"type": "integer"}},
     "required": ["tool", "n"], "additionalProperties": False},
    {"type": "object", "properties": {"tool": {"const": "answer"}}, "required": ["tool"],
     "additionalProperties": False},
]}

PLAN = """Question: {question}

Today is {today}. Passages found so far (numbered):
{found}

If a fact the question needs is missing from these passages (for example the other item of a comparison, or
the second date), call search_news with a short query naming it. If they hold every fact, call answer.
You may make {left} more call(s)."""

GRAMMAR_TAIL = """

Reply with one JSON object and nothing else:
{{"tool": "search_news", "query": "..."}} to search, {{"tool": "open_article", "n": N}} to read an article in full,
or {{"tool": "answer"}} when the passages are enough."""


# ------------------------------------------------------------------------------------------ rules
_TWO_SIDES = re.compile(
    r"\b(?:which|who|what)\b[^?]*\b(?:more|less|fewer|larger|bigger|smaller|higher|lower|older|newer|longer|"
    r"shorter|earlier|later|first|faster|slower|cheaper|greater)\b[^?]*\b(?:or|than)\b", re.IGNORECASE)
_COMBINED = re.compile(r"\b(?:combined|in total|the total|altogether|added together|sum of|difference between|"
                       r"how (?:much|many) (?:more|fewer|less|larger|bigger|smaller|higher|lower|longer)|"
                       r"how many years (?:after|before)|how long (?:after|before)|both|add the|plus)\b", re.IGNORECASE)
_ORDER = re.compile(r"\b(?:came first|happened first|before or after|after or before|which came (?:first|later)|"
                    r"which was (?:earlier|later))\b", re.IGNORECASE)
_BRIDGE = re.compile(r"\b(?:that same|the same as|the (?:same|other) (?:article|story|person|team|company|city|age|"
                     r"number))\b", re.IGNORECASE)


def wants_research(question: str) -> bool:
    """The rules of ``--research auto``: the question compares two things ("which ... more ... or ..."),
    combines figures ("combined", "in total", "how many more"), orders events ("came first ... or") or
    refers across stories ("the same company"). No model call."""
    return any(p.search(question) for p in (_TWO_SIDES, _COMBINED, _ORDER, _BRIDGE))


def research_mode(settings, asked: str | None) -> str:
    """The mode for one request: ``asked`` (per request) else the ``research`` setting."""
    mode = asked or settings.research
    if mode not in ("auto", "always", "never"):
        raise ConfigError(f"research must be auto, always or never, got {mode!r}")
    return mode


def uses_research(settings, question: str, asked: str | None) -> bool:
    mode = research_mode(settings, asked)
    return mode == "always" or (mode == "auto" and wants_research(question))


# ------------------------------------------------------------------------------------------ the tools
class Gathered:
    """The passages the reader has gathered, numbered in the order found (duplicates kept once)."""

    def __init__(self, qa, since: str | None, until: str | None, outlets: Sequence[str] = ()):
        self.qa, self.since, self.until, self.outlets = qa, since, until, tuple(outlets or ())
        self.docs: list[Document] = []
        self._by_key: dict[str, Document] = {}
        self._seed = 0

    def add(self, docs: list[Document]) -> list[int]:
        """Add the passages not gathered yet; the numbers of those added. A passage found again keeps the
        best of its cosines (``dense_score``) with the queries that found it."""
        new = []
        for d in docs:
            key = d.id or (d.metadata.get("url", "") + d.page_content[:80])
            if key in self._by_key:
                had = self._by_key[key]
                old, score = had.metadata.get("dense_score"), d.metadata.get("dense_score")
                if score is not None and (old is None or score > old):
                    had.metadata = {**had.metadata, "dense_score": score}
                continue
            if len(self.docs) >= MAX_PASSAGES:
                continue
            self._by_key[key] = d
            self.docs.append(d)
            new.append(len(self.docs))
        return new

    @property
    def seed(self) -> int:
        """How many passages the question's own retrieval gave (the first ones)."""
        return self._seed

    def listing(self, numbers: list[int] | None = None) -> str:
        numbers = numbers if numbers is not None else list(range(1, len(self.docs) + 1))
        lines = []
        for n in numbers:
            d = self.docs[n - 1]
            when = str(d.metadata.get("published") or "")[:10] or "undated"
            text = " ".join(d.page_content.split())[:SNIPPET_CHARS]
            lines.append(f"[{n}] {d.metadata.get('title') or ''} ({when}): {text}")
        return "\n".join(lines) or "(none)"

    def run(self, name: str, args: dict[str, Any]) -> tuple[str, list[int]]:
        """Run one tool: ``(text for the reader, new passage numbers)``; raises RagNewsError on bad calls."""
        if name == "search_news":
            query = str(args.get("query") or "").strip()
            docs = tools.search_news(self.qa, query, k=SEARCH_K * 2, since=args.get("since") or self.since,
                                     until=args.get("until") or self.until, outlet=args.get("outlet") or None)
            new = self.add([d for d in docs if from_outlets(d.metadata, self.outlets)])[:SEARCH_K]
            return (self.listing(new) if new else "no new passages (the ones found are already listed)"), new
        if name == "open_article":
            try:
                n = int(args.get("n"))
            except (TypeError, ValueError):
                raise ConfigError(f"open_article needs a passage number, got {args.get('n')!r}") from None
            if not 1 <= n <= len(self.docs):
                raise ConfigError(f"there is no passage [{n}]: passages are numbered 1 to {len(self.docs)}")
            return self._article(n), [n]
        raise ConfigError(f"unknown tool {name!r}: use search_news or open_article")

    def _article(self, n: int) -> str:
        d = self.docs[n - 1]
        url = d.metadata.get("url") or ""
        get = getattr(self.qa.index, "article_text", None)
        text = get(url) if callable(get) else None
        if not text:  # no whole-article read on this store: the article's passages retrieval can find
            hits = self.qa.retriever.search(d.metadata.get("title") or d.page_content[:200], k=8)
            text = "\n".join(h.page_content for h in hits if (h.metadata.get("url") or "") == url) or d.page_content
        return f"[{n}] {d.metadata.get('title') or ''}\n" + " ".join(text.split())[:ARTICLE_CHARS]


# ------------------------------------------------------------------------------------------ the loop
def plan_text(question: str, gathered: Gathered, today: str, left: int) -> str:
    return PLAN.format(question=question, today=today, found=gathered.listing(), left=left)


def seed_passages(qa, question: str, since: str | None = None, until: str | None = None, k: int | None = None,
                  outlets: Sequence[str] = ()) -> list[Document]:
    """The question's own retrieval, as on the one-retrieval path: ``k`` passages (default: the reader's),
    from ``outlets`` only when given."""
    from .answer import check_question

    want = k or qa.passage_count()
    docs = qa.retriever.search(check_question(question), k=want * (6 if outlets else 1), since=since, until=until)
    return [d for d in docs if from_outlets(d.metadata, outlets)][:want]


def research(qa, question: str, driver, since: str | None = None, until: str | None = None,
             max_calls: int | None = None, k: int | None = None,
             outlets: Sequence[str] = ()) -> Iterator[ToolCall | list[Document]]:
    """Yield each :class:`ToolCall` as it is made, then the gathered passages (a list of Documents).

    ``driver``: asks the reader for its next calls (see :func:`driver_for`). ``max_calls``: the bound on
    tool calls (default: the ``research_max_calls`` setting). The question's own retrieval comes first
    and is not counted. The research also ends when the reader repeats a call it made (same tool and
    arguments: it is not run again) or when ``STALE_SEARCHES`` searches in a row add no new passage.
    ``k`` / ``outlets``: this request's, for the question's own retrieval (``outlets`` also filters what the
    reader's searches add)."""
    bound = max_calls or qa.settings.research_max_calls
    gathered = Gathered(qa, since, until, outlets)
    gathered.add(seed_passages(qa, question, since, until, k, outlets))
    gathered._seed = len(gathered.docs)
    made, history, seen, idle = 0, [], set(), 0  # history: (call, result) pairs for drivers that keep one
    today = qa.today.isoformat()
    while made < bound:
        calls = driver.next_calls(question, gathered, history, today, bound - made)
        if DONE in [name for name, _ in calls]:
            calls = calls[: [name for name, _ in calls].index(DONE)]
            bound = made + len(calls)  # the calls before "answer" run, then the research ends
        if not calls:
            break
        for name, args in calls[: bound - made]:
            if _call_key(name, args) in seen:  # going in circles: it would find what it found; stop here
                bound = made
                break
            seen.add(_call_key(name, args))
            made += 1
            try:
                text, new = gathered.run(name, args)
                call = ToolCall(name, args, passages=new)
            except RagNewsError as e:
                text, call, new = f"error: {e}", ToolCall(name, args, error=str(e)), None
            idle = idle + 1 if name == "search_news" and new == [] else 0
            history.append((call, text))
            yield call
            if idle >= STALE_SEARCHES:  # searches that bring nothing new: the index holds no more for it
                bound = made
                break
    yield gathered.docs


def _call_key(name: str, args: dict[str, Any]) -> str:
    """A call's identity for spotting repeats: the tool and its arguments, case and spacing ignored."""
    norm = {k: " ".join(str(v).lower().split()) for k, v in args.items() if v not in (None, "")}
    return name + json.dumps(norm, sort_keys=True)


def stream_research(qa, question: str, since: str | None = None, until: str | None = None, driver=None,
                    k: int | None = None, outlets: Sequence[str] = ()):
    """:meth:`NewsQA.stream` in research mode: ToolCalls, then the answer's tokens, a Retraction if the
    checks withhold it, then the :class:`~rag_news.answer.Answer` (its ``timings`` add ``research`` and
    ``tool_calls``). ``k`` / ``outlets``: this request's (see :func:`research`). The relevance floor
    judges each gathered passage by its best cosine with the queries that found it (the question for the
    question's own retrieval, the reader's query for its searches)."""
    from .answer import Retraction, best_relevance, format_passages, generation_chain, special_tokens, without_label
    from .context import compress_passages

    llm = qa.llm
    driver = driver or driver_for(llm, qa.settings)
    t0 = time.perf_counter()
    docs, calls = [], 0
    for item in research(qa, question, driver, since=since, until=until, k=k, outlets=outlets):
        if isinstance(item, ToolCall):
            calls += 1
            yield item
        else:
            docs = item
    # the floor judges each passage against the queries that found it (the question for its own retrieval,
    # the reader's queries for its searches): a question joining two stories is far from every passage
    rel, floor = best_relevance(docs), qa.relevance_floor()
    budget = qa.context_budget()
    if budget and docs:
        docs = compress_passages(question, docs, qa.sentence_vectors, int(budget * 1.5))
    t1 = time.perf_counter()
    pieces: list[str] = []
    too_far = floor > 0 and rel is not None and rel < floor
    if not docs or too_far:
        pieces = [ABSTAIN]
    else:
        chain = generation_chain(llm)
        stream = chain.stream({"context": format_passages(docs, special_tokens(llm)), "question": question,
                               "today": qa.today.isoformat()})
        for piece in without_label(stream):
            pieces.append(piece)
            yield piece
    t2 = time.perf_counter()
    answer = qa.check_answer(question, "".join(pieces), docs, t1 - t0, t2 - t1)
    answer.timings["tool_calls"] = calls
    if too_far:
        answer.note = f"no passage is close enough to the query that found it (best {rel:.2f} < {floor:.2f})"
    elif (answer.note or "").startswith("no passage is close"):  # check_answer read the compressed passages
        answer.note = None  # against the whole question; the gate above passed them
    if answer.raw_answer is not None:
        yield Retraction(answer.note or "withheld")
    yield answer


# ------------------------------------------------------------------------------------------ drivers
def driver_for(llm, settings):
    """The tool-call driver for ``llm``: ``research_tool_format`` when set, else native tool calling for
    chat models that have it, the chat template's tools on llama.cpp when the template renders them, a
    schema-held JSON call otherwise (see the module docstring)."""
    from .research_drivers import GrammarDriver, HFConstrainedDriver, NativeDriver, TemplateDriver, template_has_tools

    fmt = getattr(settings, "research_tool_format", "auto")
    if hasattr(llm, "pipeline"):
        return HFConstrainedDriver(llm)
    client = getattr(llm, "client", None)
    if client is not None and hasattr(client, "create_completion"):  # llama.cpp
        if fmt == "grammar" or (fmt == "auto" and not template_has_tools(client)):
            return GrammarDriver(llm)
        return TemplateDriver(llm)
    return NativeDriver(llm)


def parse_json_call(text: str) -> tuple[str, dict] | None:
    """``(tool, arguments)`` from a grammar path reply (``{"tool": ..., ...}``), None for "answer"."""
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError:
        m = re.search(r"\{.*\}", text, re.DOTALL)
        if not m:
            return None
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            return None
    if not isinstance(obj, dict) or obj.get("tool") in (None, "answer"):
        return None
    args = {k: v for k, v in obj.items() if k != "tool"}
    return str(obj["tool"]), args
