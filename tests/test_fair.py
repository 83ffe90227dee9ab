"""The fair queue in front of the server's answer queue (rag_news.fair): clients turned away with 429 are
let in in the order they were turned away, whatever order their retries land in.

The server test runs the real app on 127.0.0.1 over a stub reader (named so) whose answers wait for the
test's go-ahead, so the queue's state at each step is the test's choice, not a race against a model.
"""

from __future__ import annotations

import threading
import time

import httpx

from rag_news.answer import Answer
from rag_news.fair import HEADER, TicketQueue
from rag_news.serve import Service, create_app

from servers import LiveServer


def test_tickets_keep_the_order_clients_were_turned_away_in():
    now = [0.0]
    q = TicketQueue(grace_s=5, clock=lambda: now[0])
    a, retry_a = q.turn_away(None, free=0, mean_s=2.0)
    b, retry_b = q.turn_away(None, free=0, mean_s=2.0)
    assert (retry_a, retry_b) == (2, 4)  # one and two places must free up first, 2 s each
    assert not q.admit(None, free=1)  # a newcomer does not take the place owed to a ticket holder
    assert not q.admit(b, free=1)  # b came back first, but a is ahead
    assert q.turn_away(b, free=1, mean_s=2.0)[0] == b  # b keeps its place
    assert q.admit(a, free=1) and q.admit(b, free=1) and q.admit(None, free=1)
    assert not q.admit(a, free=0) and len(q) == 0  # a used ticket is a newcomer's
    c, retry_c = q.turn_away(None, free=0, mean_s=2.0)
    now[0] += retry_c + 5.5  # its holder never came back: the ticket lapses and blocks nobody
    assert len(q) == 0 and q.admit(None, free=1)


class GatedStubReader:
    """Stub reader (no model): each answer starts, is recorded, and ends when the test says so."""

    def __init__(self):
        self.started, self.go = [], {}

    def stream(self, question: str, since=None, until=None, **request):  # history, options, research: unused
        self.started.append(question)
        self.go.setdefault(question, threading.Event()).wait(60)
        yield Answer(question=question, answer="ok", sources=[], abstained=False, cited=[], timings={})

    def interrupt(self) -> None:
        pass

    def release(self, question: str) -> None:
        self.go.setdefault(question, threading.Event()).set()


def _until(condition, what: str) -> None:
    deadline = time.time() + 30
    while not condition():
        assert time.time() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_a_retry_that_lands_first_does_not_jump_ahead_of_one_turned_away_earlier_with_a_stub_reader():
    reader = GatedStubReader()
    service = Service(reader, queue_size=1, max_generation_s=60)
    done: dict[str, int] = {}

    def ask(live, question, ticket=None):
        with httpx.Client(base_url=live.url, timeout=60) as c:
            done[question] = c.post("/ask", json={"question": question},
                                    headers={HEADER: ticket} if ticket else {}).status_code

    with LiveServer(create_app(service)) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        running = threading.Thread(target=ask, args=(live, "first?"))
        running.start()
        _until(lambda: reader.started == ["first?"], "the first answer runs")
        queued = threading.Thread(target=ask, args=(live, "second?"))
        queued.start()
        _until(lambda: service.waiting == 1, "the second waits")
        early = http.post("/ask", json={"question": "x?"})  # the queue is full: x, then y, are turned away
        late = http.post("/ask", json={"question": "y?"})
        assert early.status_code == late.status_code == 429
        x, y = early.headers[HEADER], late.headers[HEADER]
        assert int(late.headers["retry-after"]) >= int(early.headers["retry-after"]) >= 1
        reader.release("first?")
        _until(lambda: reader.started == ["first?", "second?"] and service.waiting == 0, "a place frees")
        again = http.post("/ask", json={"question": "y?"}, headers={HEADER: y})  # y's retry lands first
        assert again.status_code == 429 and again.headers[HEADER] == y  # x is ahead; y keeps its place
        assert http.post("/ask", json={"question": "z?"}).status_code == 429  # nor does a newcomer get in
        ahead = threading.Thread(target=ask, args=(live, "x?", x))
        ahead.start()
        _until(lambda: service.waiting == 1, "x waits")
        reader.release("second?")
        _until(lambda: reader.started[-1] == "x?", "x runs")
        behind = threading.Thread(target=ask, args=(live, "y?", y))
        behind.start()
        _until(lambda: service.waiting == 1, "y waits")
        for q in ("x?", "y?"):
            reader.release(q)
        for t in (running, queued, ahead, behind):
            t.join(60)
    assert reader.started == ["first?", "second?", "x?", "y?"]
    assert all(code == 200 for code in done.values()) and len(done) == 4
