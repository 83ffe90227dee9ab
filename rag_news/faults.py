"""Fault injection for crash tests, passed in as a hook object: production code calls
``faults.reached(name)`` at a few named points of a pass, on the :class:`Faults` it was given, and the
default hook does nothing. Points: ``"embedding"`` (between embedding batches), ``"writing"`` (a FAISS
segment written, nothing committed; Milvus: an article batch's chunks and text written, records not yet),
``"swapping"`` (the pass's transaction written, not yet committed).

A store or embedder takes ``faults=``; without it, it uses the process's hook, :func:`installed_faults`
(:data:`NO_FAULTS` unless a test's wrapper called :func:`install`, e.g. ``tests/paused.py`` before running
``rag_news.reindex`` in a child process). Nothing here reads the environment.
"""

from __future__ import annotations


class Faults:
    """The hook: :meth:`reached` is called at each named point; this base class does nothing there."""

    def reached(self, name: str) -> None:
        """The caller is at point ``name`` (a test's hook may pause, sleep or raise here)."""


NO_FAULTS = Faults()
_installed: Faults = NO_FAULTS


def install(hook: Faults | None) -> None:
    """Make ``hook`` the process's default hook (None: back to :data:`NO_FAULTS`); for test wrappers."""
    global _installed
    _installed = hook or NO_FAULTS


def installed_faults() -> Faults:
    """The process's default hook (:data:`NO_FAULTS` unless a test installed one)."""
    return _installed
