"""Ask a running ``rag_news.serve`` over HTTP, with the same interface as :class:`~rag_news.answer.NewsQA`
(``stream`` / ``ask``), so the CLI works the same either way. Server-Sent Events are read with httpx-sse.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator

from .answer import Answer, Retraction, Source
from .errors import RagNewsError


def answer_from_dict(d: dict) -> Answer:
    """An :class:`Answer` from its JSON form (``Answer.as_dict``)."""
    sources = [Source(n=s["n"], url=s["url"], title=s["title"], published=s.get("published")) for s in d["sources"]]
    return Answer(question=d["question"], answer=d["answer"], sources=sources, abstained=d["abstained"],
                  cited=d.get("cited", []), timings=d.get("timings", {}), model=d.get("model"),
                  retrieved=d.get("retrieved", []), citations_added=d.get("citations_added", False),
                  bad_citations=d.get("bad_citations", []), unsupported_citation=d.get("unsupported_citation", False),
                  note=d.get("note"), raw_answer=d.get("raw_answer"), relevance=d.get("relevance"),
                  standalone_question=d.get("standalone_question"), cited_raw=d.get("cited_raw", []),
                  repointed=d.get("repointed", []), conflicts=d.get("conflicts", []),
                  unsupported_terms=d.get("unsupported_terms", []))


class ServerQA:
    """``NewsQA``'s asking interface, answered by a server at ``base_url``."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout))
        self.info = None
        self.conversation_id: str | None = None  # the server-side conversation the history lives in

    def new_conversation(self) -> None:
        """The next question with a history starts a new server-side conversation."""
        self.conversation_id = None

    def stream(self, question: str, since: str | None = None, until: str | None = None,
               history: list | None = None) -> Iterator[str | Retraction | Answer]:
        """As :meth:`NewsQA.stream`; with ``history`` (any list, its content kept by the server) the
        question is asked in this client's server-side conversation."""
        import httpx
        from httpx_sse import connect_sse

        body = {"question": question, "stream": True, "since": since, "until": until}
        if history is not None:
            body["conversation_id"] = self.conversation_id if history and self.conversation_id else "new"
        try:
            with connect_sse(self.http, "POST", "/ask", json={k: v for k, v in body.items() if v is not None}) as es:
                if es.response.status_code != 200:
                    es.response.read()
                    raise RagNewsError(f"server: {_message(es.response)}")
                for event in es.iter_sse():
                    data = json.loads(event.data)
                    if event.event == "answer" and data.get("conversation_id"):
                        self.conversation_id = data["conversation_id"]
                    item = _item(event.event, data)
                    if item is not None:
                        yield item
        except httpx.HTTPError as e:
            raise RagNewsError(f"cannot reach the server at {self.base_url}: {e}") from None

    def ask(self, question: str, since: str | None = None, until: str | None = None,
            on_token: Callable[[str], None] | None = None) -> Answer:
        result = None
        for item in self.stream(question, since, until):
            if isinstance(item, Answer):
                result = item
            elif isinstance(item, str) and on_token:
                on_token(item)
        if result is None:
            raise RagNewsError("the server's stream ended without an answer")
        return result


def _item(event: str, data: dict):
    if event == "token":
        return data["text"]
    if event == "retraction":
        return Retraction(data["reason"])
    if event == "answer":
        return answer_from_dict(data)
    if event == "tool":  # a research-mode tool call
        from .tools import ToolCall
        return ToolCall(data["name"], data.get("arguments") or {}, data.get("passages"), data.get("error"))
    if event == "error":
        raise RagNewsError(f"server: {data['error']['message']}")
    return None


def _message(response) -> str:
    try:
        return f"HTTP {response.status_code}: {response.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
