"""A fair queue in front of the server's answer queue: clients turned away with 429 are served in the
order they were turned away, not in the order their retries happen to land.

With a bounded first-come-first-served queue alone, a client told "429, retry after N s" competes again
with every other retrying client when it comes back: the ones whose retry lands just after a slot frees
get in, the others are turned away again, and an unlucky client can be turned away many times (measured
with 20 retrying clients: p95 latency 10x the median, one request turned away 11 times;
``benchmarks/bench_fairness.py``).

So a 429 carries a **ticket** (header ``Queue-Ticket``) and a ``Retry-After`` computed for that ticket's
place: the tickets handed out earlier are ahead of it. A retry that sends its ticket back is let in once
fewer tickets are ahead of it than there are free places in the queue; a request without a (live) ticket
is let in only into the places not owed to ticket holders. A ticket whose holder has not come back
within its Retry-After plus :data:`GRACE_S` lapses (the client gave up), so a vanished client blocks
nobody. A client that does not send tickets back is still served, behind the ticket holders.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time

GRACE_S = 10.0
HEADER = "Queue-Ticket"


class TicketQueue:
    """The tickets handed out with 429s, in order. ``grace_s``: how long past its Retry-After a ticket
    stays valid; ``clock``: a monotonic clock (seconds)."""

    def __init__(self, grace_s: float = GRACE_S, clock=time.monotonic):
        self.grace_s, self.clock = grace_s, clock
        self._seq = itertools.count()
        self._live: dict[str, list[float]] = {}  # ticket -> [order, expires]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._prune()
            return len(self._live)

    def _prune(self) -> None:
        now = self.clock()
        for t in [t for t, (_, expires) in self._live.items() if expires < now]:
            del self._live[t]

    def _ahead(self, ticket: str) -> int:
        order = self._live[ticket][0]
        return sum(o < order for o, _ in self._live.values())

    def admit(self, ticket: str | None, free: int) -> bool:
        """Whether a request (with ``ticket``, or None) may join a queue with ``free`` places now; an
        admitted ticket is used up."""
        with self._lock:
            self._prune()
            if ticket in self._live:
                if self._ahead(ticket) < free:
                    del self._live[ticket]
                    return True
                return False
            return free > len(self._live)

    def turn_away(self, ticket: str | None, free: int, mean_s: float) -> tuple[str, int]:
        """``(ticket, retry_after_s)`` for a request not admitted: its own ticket when it is still live (it
        keeps its place), else a new one at the back; Retry-After: the mean generation time ``mean_s``
        times the places that must free up before its turn, at least 1 s."""
        with self._lock:
            self._prune()
            if ticket not in self._live:
                ticket = secrets.token_urlsafe(12)
                self._live[ticket] = [next(self._seq), 0.0]
            needed = max(1, self._ahead(ticket) + 1 - max(free, 0))
            retry = max(1, math.ceil(mean_s * needed))
            self._live[ticket][1] = self.clock() + retry + self.grace_s
            return ticket, retry
