"""``python -m rag_news.serve``: answer questions over HTTP with the model and the index loaded once.

Endpoints (FastAPI, served by uvicorn, bound to 127.0.0.1 unless ``--host`` says otherwise):

* ``POST /ask`` — ``{"question", "since"?, "until"?, "stream"?, "conversation_id"?, "k"?, "outlets"?,
  "today"?, "safe_mode"?, "max_per_story"?}``: the answer as JSON (question, answer,
  sources, cited, abstained, timings), or, with ``"stream": true`` or ``Accept: text/event-stream``,
  Server-Sent Events: ``token`` (``{"text"}``) as generated, ``retraction`` if the checks withhold what was
  streamed, then ``answer`` (the same JSON); ``"research": "auto"|"always"|"never"`` lets the reader run
  its own searches (:mod:`rag_news.research`), each one streamed first as a ``tool`` event
  (``{"name", "arguments", "passages", "error"}``);
* ``GET /search?q=...&k=5&since=&until=&max_per_story=`` — the passages retrieval finds (no model involved);
* ``GET /stories?since=&until=&limit=`` — the period's stories across outlets (rag_news.stories), most
  outlets first: ``{"stories": [{"id", "title", "outlets", "first_seen", "last_updated", "articles"}]}``;
* ``GET /health`` — index counts and pass, which FAISS (CPU or GPU, and why), model, queue;
* ``POST /v1/chat/completions`` (and ``GET /v1/models``) — OpenAI-compatible, streaming or not, so chat
  front-ends can use it: the whole ``messages`` list is read (see :mod:`rag_news.chat_api`); the sources
  follow the answer;
* ``GET /`` the chat page, ``/conversations`` the server-side conversations (:mod:`rag_news.chat_api`).

One generation runs at a time; up to ``--queue`` requests wait for it (first come, first served), more
get HTTP 429 with a ``Retry-After`` computed from the queue (the waiting requests times the recent mean
generation time), so clients that retry come back when there is room rather than all at once. The 429
carries a ``Queue-Ticket``: a retry that sends it back is let in in the order it was turned away, ahead
of newcomers (:mod:`rag_news.fair`; ``--fifo``: no tickets, whichever retry lands first gets in).
``/search`` is counted against a per-client rate limit (``--search-rate`` requests a second, bursts of
twice that; 429 with ``Retry-After`` beyond it). Questions are limited in length, bodies in size (413)
and in how slowly they may arrive (408), generation in time (``--max-generation-s``: the model is freed
when it passes, even in the middle of reading the prompt on llama.cpp, see :func:`rag_news.llm.interrupt`).
``--token`` (or ``RAG_NEWS_SERVER_TOKEN``) requires ``Authorization: Bearer <token>`` on everything but
``/health`` (compared in constant time); a ``--host`` other than a loopback address is refused without a
token unless ``--insecure-no-token`` says so. Errors are JSON (``{"error": {"message", "type"}}``),
never a traceback; a stream that fails after its start ends with an ``error`` event. A newer index pass
is picked up by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from datetime import date
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .answer import MAX_QUESTION_CHARS, Answer, NewsQA, Retraction, check_question
from .errors import ConfigError, IndexNotFound, RagNewsError
from .fair import HEADER as TICKET
from .fair import TicketQueue
from .settings import Settings

PROG = "python -m rag_news.serve"
log = logging.getLogger("rag_news.serve")
_DONE = object()


class Busy(Exception):
    """The queue is full (or a client is over its rate): retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float = 2.0, message: str = "busy: the answer queue is full, retry shortly",
                 ticket: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.ticket = ticket  # the fair queue's place for the retry (rag_news.fair), sent as Queue-Ticket


class TimedOut(Exception):
    """Generation ran past its time limit."""


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    since: date | None = None
    until: date | None = None
    stream: bool = False
    conversation_id: str | None = Field(None, max_length=64, description='a conversation to continue ("new": start one)')
    k: int | None = Field(None, ge=1, le=50, description="passages shown to the model")
    outlets: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=20,
                                                                 description="only these outlets (site names or hosts)")
    today: date | None = Field(None, description="answer as on this date (default: the real date now)")
    safe_mode: bool | None = Field(None, description="the guardrail instruction (Mistral: safe_prompt)")
    research: Literal["auto", "always", "never"] | None = None  # the reader's own searches (rag_news.research)
    max_per_story: int | None = Field(None, ge=0, le=50,
                                      description="articles per story (0: no cap; default: the setting)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send many fields; the ones used are checked
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class ErrorDetail(BaseModel):
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"message", "type"}}``."""

    error: ErrorDetail


_WHY = {400: "bad question", 401: "missing or wrong bearer token", 404: "no such conversation", 408: "the body arrived too slowly",
        413: "body too large", 422: "invalid request", 429: "busy or over the rate limit (see Retry-After)",
        500: "internal error", 503: "no index yet", 504: "generation ran past its time limit"}


def _errors(*codes: int) -> dict:
    """OpenAPI responses for these error statuses (all share :class:`ErrorBody`)."""
    out: dict = {c: {"model": ErrorBody, "description": _WHY[c]} for c in (401, 408, 413, 422, 500, *codes)}
    for c in (429,):
        if c in out:
            out[c]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    return out


_JSON_OR_SSE = {200: {"description": "the answer as JSON, or Server-Sent Events when streamed",
                      "content": {"application/json": {"schema": {"type": "object"}},
                                  "text/event-stream": {"schema": {
                                      "type": "object", "required": ["data"],
                                      "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}}}


class Service:
    """One :class:`~rag_news.answer.NewsQA` (model and index loaded once), one generation at a time,
    ``queue_size`` requests waiting at most, each generation stopped after ``max_generation_s``; ``fair``:
    clients turned away are let in in the order they were turned away (:mod:`rag_news.fair`), else first
    come, first served among whoever retries first."""

    def __init__(self, qa: NewsQA, queue_size: int = 8, max_generation_s: float = 120.0, fair: bool = True):
        self.qa, self.queue_size, self.max_generation_s = qa, queue_size, max_generation_s
        self.tickets = TicketQueue() if fair else None
        self.waiting = 0
        self.served = 0
        self._gate: asyncio.Semaphore | None = None
        self._durations: deque[float] = deque(maxlen=20)  # recent generation times (s)
        self._conversations = None

    @property
    def conversations(self):
        """The conversation store (:mod:`rag_news.chat_store`, in the cache folder; opened on first use)."""
        if self._conversations is None:
            from .chat_api import store_for
            self._conversations = store_for(self.qa.settings)
        return self._conversations

    def full(self) -> bool:
        return self.waiting >= self.queue_size

    def retry_after(self) -> int:
        """Seconds until a rejected request may find room: the requests ahead of it (waiting, plus the one
        running) times the recent mean generation time (2 s before any is known), at least 1."""
        ahead = self.waiting + (1 if self._gate is not None and self._gate.locked() else 0)
        return max(1, min(math.ceil(self.mean_s() * max(ahead, 1)), int(self.max_generation_s * (self.queue_size + 1))))

    def mean_s(self) -> float:
        """The mean of the recent generation times (2 s before any is known)."""
        return sum(self._durations) / len(self._durations) if self._durations else 2.0

    def busy(self) -> Busy:
        return Busy(self.retry_after())

    def admit(self, ticket: str | None = None) -> None:
        """Raise :class:`Busy` (with Retry-After, and with ``fair`` a ticket) unless a request that sent
        ``ticket`` (its ``Queue-Ticket`` header, or None) may join the queue now."""
        if self.tickets is None:
            if self.full():
                raise self.busy()
            return
        free = self.queue_size - self.waiting
        if not self.tickets.admit(ticket, free):
            ticket, retry = self.tickets.turn_away(ticket, free, self.mean_s())
            raise Busy(min(retry, int(self.max_generation_s * (self.queue_size + 1))), ticket=ticket)

    async def answer(self, question: str, since: str | None, until: str | None, history: list | None = None,
                     options: Any = None, research: str | None = None, **per_request: Any) -> AsyncIterator[Any]:
        """The stream's items (tokens, a retraction, the :class:`Answer`, then ``{"queue_wait_s"}``);
        ``per_request``: more of :meth:`NewsQA.stream`'s keywords (``max_per_story``)."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(1)
        if self.full():
            raise self.busy()
        self.waiting += 1
        queued = time.perf_counter()
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        started = time.perf_counter()
        try:
            wait = started - queued
            async for item in self._generate(question, since, until, history, options, research, **per_request):
                yield item
            self.served += 1
            yield {"queue_wait_s": round(wait, 3)}
        finally:
            self._durations.append(time.perf_counter() - started)
            self._gate.release()

    async def _generate(self, question: str, since: str | None, until: str | None, history: list | None = None,
                        options: Any = None, research: str | None = None, **per_request: Any) -> AsyncIterator[Any]:
        """Run ``NewsQA.stream`` in a worker thread; stop it at the deadline or when the consumer goes."""
        loop, items, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def work() -> None:
            gen = self.qa.stream(question, since=since, until=until, history=history, options=options,
                                 research=research, **per_request)
            try:
                for item in gen:
                    loop.call_soon_threadsafe(items.put_nowait, item)
                    if stop.is_set():
                        break
            except BaseException as e:  # noqa: BLE001 - handed to the request's task
                loop.call_soon_threadsafe(items.put_nowait, e)
            finally:
                gen.close()
                loop.call_soon_threadsafe(items.put_nowait, _DONE)

        worker = loop.run_in_executor(None, work)
        deadline = time.monotonic() + self.max_generation_s
        try:
            while True:
                try:
                    item = await asyncio.wait_for(items.get(), max(deadline - time.monotonic(), 0.001))
                except asyncio.TimeoutError:
                    raise TimedOut(f"generation took longer than {self.max_generation_s:g}s") from None
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while not worker.done():  # asked again until it stops: the worker clears a stop left from before
                self.qa.interrupt()  # llama.cpp stops between (and inside) prompt batches, hf between tokens
                await asyncio.wait({worker}, timeout=0.05)
            await worker  # the model is free again before the next request starts


# ------------------------------------------------------------------------------------------ the app
def _error(status: int, message: str, kind: str, headers: dict | None = None):

    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def _iso(d: date | str | None) -> str | None:
    return d.isoformat() if isinstance(d, date) else d


class RateLimit:
    """A token bucket per client address: ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None, clients: int = 10_000):
        self.rate, self.burst, self.clients = rate, burst or max(1.0, 2 * rate), clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when ``client`` may go ahead (one token taken), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.clients:  # forget the idlest half
                for k in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: self.clients // 2]:
                    del self._buckets[k]
        return wait


def _token_ok(header: str | None, token: str | tuple[str, ...]) -> bool:
    """``Authorization: Bearer <token>`` (one of ``token`` when several), compared in constant time."""
    given = (header or "").encode("utf-8", "replace")
    tokens = (token,) if isinstance(token, str) else token
    return any([hmac.compare_digest(given, f"Bearer {t}".encode()) for t in tokens])


def _open_path(path: str) -> bool:
    """Paths served without the token: the health check and the chat page's static files (no data)."""
    return path in ("/health", "/") or path.startswith("/web/")


def create_app(service: Service, token: str | None = None, max_body_bytes: int = 65_536,
               body_timeout_s: float = 10.0, search_rate: float = 10.0):
    """The FastAPI application (see the module docstring). ``search_rate``: ``/search`` requests a second
    per client address (bursts of twice that)."""

    app = FastAPI(title="rag-news", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.search_limit = RateLimit(search_rate)
    app.state.token_required = bool(token)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Bearer token, body size and body arrival time, before any endpoint sees the request."""
        if token and not _open_path(request.url.path) and not _token_ok(request.headers.get("authorization"), token):
            return _error(401, "missing or wrong bearer token", "unauthorized", {"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body_bytes:
            return _error(413, f"request body over {max_body_bytes} bytes", "too_large")
        if request.method == "POST":
            try:
                body = await asyncio.wait_for(_read_capped(request, max_body_bytes), body_timeout_s)
            except asyncio.TimeoutError:
                return _error(408, f"the request body did not arrive within {body_timeout_s:g}s", "timeout")
            except ValueError as e:
                return _error(413, str(e), "too_large")
            request._body = body  # read once here; FastAPI reuses it
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request body",
                      "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "http_error")

    @app.exception_handler(Exception)
    async def crashed(request, exc: Exception):
        log.exception("request %s %s failed", request.method, request.url.path)
        return _error(500, "internal error (logged on the server)", "server_error")

    _routes(app, service)
    from .chat_api import add_routes
    add_routes(app, service, _errors)
    return app


async def _read_capped(request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _mistake(e: Exception):
    """A request-level failure as its JSON error response."""
    if isinstance(e, Busy):
        headers = {"Retry-After": str(max(1, math.ceil(e.retry_after)))}
        return _error(429, str(e), "busy", {**headers, **({TICKET: e.ticket} if e.ticket else {})})
    if isinstance(e, TimedOut):
        return _error(504, str(e), "timeout")
    if isinstance(e, ConfigError):
        return _error(400, str(e), "invalid_request")
    if isinstance(e, IndexNotFound):
        return _error(503, str(e), "no_index")
    return _error(500, str(e), "server_error")


def _routes(app, service: Service) -> None:

    @app.get("/health", responses=_errors())
    def health(request: Request):
        qa = service.qa
        stats = qa.loaded_index.stats() if qa.loaded_index is not None else {}
        return {"status": "ok", "index": {k: stats.get(k) for k in ("articles", "chunks", "pass")},
                "faiss": stats.get("faiss"),  # which FAISS searches the vectors (None: not FAISS, or not loaded)
                "model": qa.info.model if qa.info else None,
                "queue": {"waiting": service.waiting, "capacity": service.queue_size, "served": service.served},
                "token_required": request.app.state.token_required}

    @app.get("/search", responses=_errors(400, 429, 503))
    def search(request: Request, q: str = Query(min_length=1, max_length=MAX_QUESTION_CHARS),
               k: int = Query(5, ge=1, le=50), since: date | None = None, until: date | None = None,
               outlet: list[Annotated[str, Field(max_length=200)]] = Query([], max_length=20),
               today: date | None = None, max_per_story: int | None = Query(None, ge=0, le=50)):
        wait = request.app.state.search_limit.take(request.client.host if request.client else "?")
        if wait:
            return _mistake(Busy(wait, "over the search rate limit, retry shortly"))
        from .conversation import from_outlets, outlet_of
        try:
            r = service.qa.retriever
            r = r.model_copy(update={"today": today}) if today else r
            docs = r.search(check_question(q), k=k * (6 if outlet else 1), since=_iso(since), until=_iso(until),
                            max_per_story=max_per_story)
            docs = [d for d in docs if from_outlets(d.metadata, outlet)][:k]
        except RagNewsError as e:
            return _mistake(e)
        return {"query": q, "passages": [{"n": n, "url": d.metadata.get("url"), "title": d.metadata.get("title"),
                                          "published": d.metadata.get("published"), "score": d.metadata.get("score"),
                                          "outlet": outlet_of(d.metadata),
                                          "text": d.page_content} for n, d in enumerate(docs, 1)]}

    @app.get("/stories", responses=_errors(400, 503))
    def stories(since: date | None = None, until: date | None = None, limit: int | None = Query(None, ge=1)):
        from .stories import list_stories

        try:
            return list_stories(service.qa.index, _iso(since), _iso(until), limit)
        except RagNewsError as e:
            return _mistake(e)

    @app.post("/ask", responses={**_JSON_OR_SSE, **_errors(400, 404, 429, 503, 504)})
    async def ask(body: AskRequest, request: Request):
        try:
            question = check_question(body.question)
        except RagNewsError as e:
            return _mistake(e)
        try:  # say so with the status code, before a stream starts
            service.admit(request.headers.get(TICKET))
        except Busy as e:
            return _mistake(e)
        from .chat_api import caller, history_of, recorded
        from .conversation import AskOptions
        try:
            options = AskOptions(today=_iso(body.today), k=body.k, outlets=tuple(body.outlets), safe_mode=body.safe_mode)
        except RagNewsError as e:
            return _mistake(e)
        owner, cid, history = caller(request), body.conversation_id, None
        if cid == "new":
            cid = service.conversations.create(owner, question)
        elif cid is not None:
            turns = service.conversations.turns(owner, cid)
            if turns is None:
                return _error(404, "no such conversation", "not_found")
            history = history_of(turns)
        per_story = {"max_per_story": body.max_per_story} if body.max_per_story is not None else {}
        events = service.answer(question, _iso(body.since), _iso(body.until), history=history, options=options,
                                research=body.research, **per_story)
        if cid is not None:
            events = recorded(events, service.conversations, owner, cid, question)
        extra = {"conversation_id": cid} if cid is not None else {}
        if body.stream or "text/event-stream" in request.headers.get("accept", ""):
            return await _sse(events, lambda item: _ask_events(item, extra))
        return await _complete(events, lambda a, wait: {**a.as_dict(), **extra, "queue_wait_s": wait})

    @app.get("/v1/models", responses=_errors())
    def models():
        return {"object": "list", "data": [{"id": "rag-news", "object": "model", "owned_by": "rag-news"}]}

    @app.post("/v1/chat/completions", responses={**_JSON_OR_SSE, **_errors(400, 429, 503, 504)})
    async def chat(body: ChatRequest, request: Request):
        from .chat_api import chat_history, chat_options
        style, history, question = chat_history(body.messages)
        try:
            question = check_question(question)
            options = chat_options(body)
        except RagNewsError as e:
            return _mistake(e)
        try:
            service.admit(request.headers.get(TICKET))
        except Busy as e:
            return _mistake(e)
        options.style = style
        events = service.answer(question, None, None, history=history, options=options)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.stream:
            return await _sse(events, lambda item: _chat_chunks(item, cid, created), done="[DONE]")
        return await _complete(events, lambda a, wait: _chat_completion(a, cid, created))



async def _complete(events, build):
    """Run a request's answer to its end; the JSON ``build(answer, queue_wait_s)`` or an error response."""

    answer, wait = None, 0.0
    try:
        async for item in events:
            if isinstance(item, Answer):
                answer = item
            elif isinstance(item, dict):
                wait = item["queue_wait_s"]
    except (Busy, TimedOut, RagNewsError) as e:
        return _mistake(e)
    except Exception:  # noqa: BLE001 - any failure is a JSON 500, its traceback in the log
        log.exception("answering failed")
        return _error(500, "internal error (logged on the server)", "server_error")
    return JSONResponse(build(answer, wait))


async def _sse(events, convert, done: str | None = None):
    """Stream a request's answer as Server-Sent Events (a failure after the start is an ``error`` event)."""

    async def stream():
        try:
            async for item in events:
                for event in convert(item):
                    yield event
        except (Busy, TimedOut, RagNewsError) as e:
            yield _error_event(str(e) or "busy", "timeout" if isinstance(e, TimedOut) else "error")
        except Exception:  # noqa: BLE001 - whatever broke, the client is told, not cut off
            log.exception("streaming an answer failed")
            yield _error_event("internal error (logged on the server)", "server_error")
        if done:
            yield {"data": done}

    return EventSourceResponse(stream(), ping=15)


def _error_event(message: str, kind: str) -> dict:
    return {"event": "error", "data": json.dumps({"error": {"message": message, "type": kind}}, ensure_ascii=False)}


def _ask_events(item, extra: dict | None = None) -> list[dict]:
    if isinstance(item, str):
        return [{"event": "token", "data": json.dumps({"text": item}, ensure_ascii=False)}]
    if isinstance(item, Retraction):
        return [{"event": "retraction", "data": json.dumps({"reason": item.reason}, ensure_ascii=False)}]
    if isinstance(item, Answer):
        return [{"event": "answer", "data": json.dumps({**item.as_dict(), **(extra or {})}, ensure_ascii=False)}]
    if hasattr(item, "as_dict"):  # a research-mode tool call (rag_news.tools.ToolCall)
        return [{"event": "tool", "data": json.dumps(item.as_dict(), ensure_ascii=False)}]
    return [{"event": "done", "data": json.dumps(item)}]


def _sources_text(a: Answer) -> str:
    cited = [s for s in a.sources if s.n in a.cited] or ([] if a.abstained else a.sources)
    return "" if not cited else "\n\nSources:\n" + "\n".join(f"[{s.n}] {s.title} — {s.url}" for s in cited)


def _chunk(cid: str, created: int, delta: dict, finish: str | None = None) -> dict:
    payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": "rag-news",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return {"data": json.dumps(payload, ensure_ascii=False)}


def _chat_chunks(item, cid: str, created: int) -> list[dict]:
    if isinstance(item, str):
        return [_chunk(cid, created, {"role": "assistant", "content": item})]
    if isinstance(item, Retraction):
        return [_chunk(cid, created, {"content": f"\n\n[withdrawn: {item.reason}]\n"})]
    if isinstance(item, Answer):
        tail = item.answer if item.raw_answer is not None else ""
        return [_chunk(cid, created, {"content": tail + _sources_text(item)}, "stop")]
    return []


def _chat_completion(a: Answer, cid: str, created: int) -> dict:
    return {"id": cid, "object": "chat.completion", "created": created, "model": "rag-news",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.answer + _sources_text(a)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, "rag_news": a.as_dict()}


# ------------------------------------------------------------------------------------------ command
def build_parser() -> argparse.ArgumentParser:
    from .cli import add_answer_flags, add_settings_flags

    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default: $RAG_NEWS_SERVER_TOKEN); "
                    "several, comma-separated: one per reader, each seeing only its own conversations")
    ap.add_argument("--insecure-no-token", action="store_true",
                    help="allow a non-loopback --host without a token (anyone who can reach it may ask)")
    ap.add_argument("--search-rate", type=float, default=10.0, help="/search requests a second per client "
                    "(bursts of twice that; default 10)")
    ap.add_argument("--queue", type=int, default=8, help="requests that may wait for the model (default 8)")
    ap.add_argument("--fifo", action="store_true", help="no fair queue: a client turned away with 429 competes "
                    "with every other retry when it comes back (default: served in the order turned away)")
    ap.add_argument("--max-generation-s", type=float, default=120.0, help="stop a generation after this long")
    ap.add_argument("--max-body-bytes", type=int, default=65_536)
    ap.add_argument("--lazy", action="store_true", help="load the model on the first question, not at start")
    add_answer_flags(ap)
    add_settings_flags(ap)
    return ap


def is_loopback(host: str) -> bool:
    """``host`` (a --host value) reaches this machine only."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to serve a non-loopback address without a token, unless ``insecure`` (--insecure-no-token)."""
    if not token and not insecure and not is_loopback(host):
        raise ConfigError(f"--host {host} would let anyone who can reach this machine ask (and load) the model: "
                          "set --token (or RAG_NEWS_SERVER_TOKEN), or pass --insecure-no-token to do it anyway")
    if not token and not is_loopback(host):
        log.warning("serving %s without a token (--insecure-no-token)", host)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from .cli import answer_settings_from_args, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(True)
    token = args.token or os.environ.get("RAG_NEWS_SERVER_TOKEN")
    if token and "," in token:  # several readers, each with a token (their conversations kept apart)
        token = tuple(t.strip() for t in token.split(",") if t.strip())
    check_exposure(args.host, token, args.insecure_no_token)
    settings = answer_settings_from_args(args)
    if args.queue < 1 or args.max_generation_s <= 0 or args.search_rate <= 0:
        raise ConfigError("--queue must be at least 1, --max-generation-s and --search-rate positive")
    qa = NewsQA(settings)
    qa.index  # a missing index is reported now, in one line
    if not args.lazy:
        log.info("loading the model and the index")
        qa.warm_up()
        if qa.info and qa.info.notice():
            log.warning("%s", qa.info.notice())
    app = create_app(Service(qa, args.queue, args.max_generation_s, fair=not args.fifo), token=token, max_body_bytes=args.max_body_bytes,
                     search_rate=args.search_rate)
    log.info("serving on http://%s:%d", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=5)
    return 0


def cli() -> None:
    from .cli import run
    run(main, PROG)


if __name__ == "__main__":
    cli()
