"""Named pause points for crash tests: with ``RAG_NEWS_PAUSE_AT=<name>`` the process announces
``rag-news: paused at <name>`` on stderr and sleeps there, so a test can SIGKILL it at that exact point;
with ``RAG_NEWS_PAUSE_UNTIL=<path>`` too, it goes on once that file exists (a test holds a pass there
while another process runs). Unset (always, outside tests), a pause point does nothing."""

from __future__ import annotations

import os
import sys
import time


def pause_point(name: str) -> None:
    if os.environ.get("RAG_NEWS_PAUSE_AT") == name:
        print(f"rag-news: paused at {name}", file=sys.stderr, flush=True)
        until, deadline = os.environ.get("RAG_NEWS_PAUSE_UNTIL"), time.time() + 3600
        while time.time() < deadline and not (until and os.path.exists(until)):
            time.sleep(0.2)
