"""Run a rag-news module or code with a pause point installed (the test side of rag_news.faults):

    python tests/paused.py NAME [--until PATH] -m rag_news.reindex ARGS...
    python tests/paused.py NAME [--until PATH] -c CODE ARGS...

At point ``NAME`` the process prints ``rag-news: paused at NAME`` on stderr and sleeps there (up to an
hour), so a test can SIGKILL it at that exact point; with ``--until PATH`` it goes on once that file exists
(a test holds a pass there while another process runs). Production code never reads any of this: the
hook is installed with :func:`rag_news.faults.install` before the module runs."""

from __future__ import annotations

import os
import runpy
import sys
import time

sys.path[0] = os.getcwd()  # as `python -m` / `python -c` would have it (the tests run this from the repo root)

from rag_news.faults import Faults, install  # noqa: E402


class PauseAt(Faults):
    """Pause at point ``name`` until the file ``until`` exists (or an hour has passed)."""

    def __init__(self, name: str, until: str | None = None):
        self.name, self.until = name, until

    def reached(self, name: str) -> None:
        if name != self.name:
            return
        print(f"rag-news: paused at {name}", file=sys.stderr, flush=True)
        deadline = time.time() + 3600
        while time.time() < deadline and not (self.until and os.path.exists(self.until)):
            time.sleep(0.2)


def main(argv: list[str]) -> None:
    name, rest = argv[0], argv[1:]
    until = None
    if rest[:1] == ["--until"]:
        until, rest = rest[1], rest[2:]
    install(PauseAt(name, until))
    mode, target, args = rest[0], rest[1], rest[2:]
    if mode == "-m":
        sys.argv = [target, *args]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *args]
        exec(compile(target, "<paused -c>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit(f"usage: paused.py NAME [--until PATH] (-m MODULE | -c CODE) ARGS...; got {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
