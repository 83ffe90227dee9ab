"""The server's conversation layer and chat page (routes added to :func:`rag_news.serve.create_app`).

* ``GET /`` — the chat page (``rag_news/web/``: plain HTML, CSS and JavaScript served from the package;
  no CDN, nothing built with Node); ``GET /web/{file}`` its assets. Neither needs the bearer token (they
  hold no data); the page sends the token the reader types on every API call.
* ``GET /conversations`` — the caller's recent conversations (``id``, ``title``, ``updated``);
  ``GET /conversations/{id}`` its messages; ``DELETE /conversations/{id}`` deletes it (404 when it is not
  the caller's). A conversation belongs to the bearer token that made it.
* ``POST /ask`` with ``"conversation_id"`` (``"new"`` starts one) answers in that conversation: its earlier
  turns are the history, and the question and answer are appended; the answer JSON carries the id.
* ``POST /v1/chat/completions``: the whole ``messages`` list — system messages are a style hint (they
  cannot loosen the grounding rules), earlier user/assistant messages the history, the last user message
  the question; ``max_tokens``, ``temperature``, ``stop`` and ``safe_mode`` apply to this request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse

from .answer import Answer
from .chat_store import ConversationStore, owner_of
from .conversation import AskOptions

WEB_DIR = Path(__file__).resolve().parent / "web"
_ASSETS = {"chat.css": "text/css", "chat.js": "text/javascript"}
_SOURCES_TAIL = re.compile(r"\n\nSources:\n.*\Z", re.S)
_SOURCE_URL = re.compile(r"^\[\d+\] .* — (\S+)$", re.M)


def store_for(settings, max_conversations: int | None = None) -> ConversationStore:
    """The conversation store in the cache folder (``conversations.sqlite3``)."""
    return ConversationStore(Path(settings.cache_dir) / "conversations.sqlite3",
                             max_conversations or getattr(settings, "max_conversations", 200),
                             getattr(settings, "conversation_days", 30.0))


def caller(request: Request) -> str:
    """The owner key of the request's bearer token."""
    header = request.headers.get("authorization") or ""
    return owner_of(header[7:] if header.lower().startswith("bearer ") else None)


def chat_history(messages: list) -> tuple[str | None, list[dict], str]:
    """OpenAI ``messages`` as ``(style, history, question)``: system messages joined (the style hint),
    the user/assistant messages before the last user one (rag-news' own "Sources:" tails removed), the
    last user message."""
    def text(m) -> str:
        c = m.content
        if isinstance(c, list):
            return " ".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
        return c or ""

    style = "\n".join(text(m) for m in messages if m.role in ("system", "developer")).strip() or None
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        return style, [], ""
    history = [{"role": m.role, "content": _SOURCES_TAIL.sub("", text(m)), "cited_urls": tail_urls(text(m))}
               for m in messages[:last] if m.role in ("user", "assistant")]
    return style, history, text(messages[last])


def tail_urls(content: str) -> list[str]:
    """The URLs of the "Sources:" list rag-news appends to a chat completion (``[n] title — url`` lines):
    what that answer cited, so a follow-up sent back through the endpoint reads those articles first."""
    tail = _SOURCES_TAIL.search(content or "")
    return _SOURCE_URL.findall(tail.group(0)) if tail else []


def chat_options(body) -> AskOptions:
    """The per-request knobs of a chat completion request (extra fields OpenAI clients send are ignored)."""
    extra = body.model_extra or {}
    stop = extra.get("stop")
    stop = (stop,) if isinstance(stop, str) else tuple(s for s in (stop or ()) if isinstance(s, str))
    max_tokens = extra.get("max_completion_tokens", extra.get("max_tokens"))
    temperature = extra.get("temperature")
    safe = extra.get("safe_mode", extra.get("safe_prompt"))
    return AskOptions(max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
                      else None,
                      temperature=float(temperature) if isinstance(temperature, (int, float))
                      and not isinstance(temperature, bool) else None,
                      stop=stop, safe_mode=safe if isinstance(safe, bool) else None)


async def recorded(events: AsyncIterator[Any], store: ConversationStore, owner: str, cid: str,
                   question: str) -> AsyncIterator[Any]:
    """The answer's events, passed on; once the :class:`Answer` arrives the question and the answer are
    appended to conversation ``cid``."""
    async for item in events:
        if isinstance(item, Answer):
            store.add(owner, cid, "user", question, {"standalone_question": item.standalone_question})
            store.add(owner, cid, "assistant", item.answer, {
                "sources": [{"n": s.n, "url": s.url, "title": s.title, "published": s.published}
                            for s in item.sources],
                "cited": item.cited, "abstained": item.abstained, "note": item.note, "raw_answer": item.raw_answer})
        yield item


def history_of(turns: list[dict]) -> list[dict]:
    """Stored messages as the history :meth:`NewsQA.stream` takes (an answer with the URLs it cited)."""
    def cited(extra: dict) -> list[str]:
        if extra.get("abstained"):
            return []
        return [s["url"] for s in extra.get("sources") or () if s.get("n") in set(extra.get("cited") or ())]

    return [{"role": t["role"], "content": t["content"], "cited_urls": cited(t.get("extra") or {})} for t in turns]


def add_routes(app, service, errors) -> None:
    """The page and the conversation endpoints (``errors``: serve's OpenAPI error table builder)."""
    from .serve import _error

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/web/{name}", include_in_schema=False)
    def asset(name: str):
        if name not in _ASSETS:
            return _error(404, "no such asset", "not_found")
        return FileResponse(WEB_DIR / name, media_type=_ASSETS[name] + "; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/conversations", responses=errors())
    def conversations(request: Request):
        return {"conversations": service.conversations.recent(caller(request))}

    @app.get("/conversations/{conversation_id}", responses=errors(404))
    def conversation(conversation_id: str, request: Request):
        turns = service.conversations.turns(caller(request), conversation_id)
        if turns is None:
            return _error(404, "no such conversation", "not_found")
        return {"id": conversation_id, "messages": turns}

    @app.delete("/conversations/{conversation_id}", responses=errors(404))
    def delete(conversation_id: str, request: Request):
        if not service.conversations.delete(caller(request), conversation_id):
            return _error(404, "no such conversation", "not_found")
        return JSONResponse({"deleted": conversation_id})
