"""Packaged answering models (rag_news.models): reassembled from their PyPI part packages, checked."""

from __future__ import annotations

import hashlib
import sys

import pytest

from rag_news.errors import ModelNotFound
from rag_news.models import QWEN_1_5B, PackagedGGUF, packaged_gguf, sha256_file


def test_the_packaged_qwen_is_reassembled_once_and_byte_identical_to_qwens_file(tmp_path):
    path = packaged_gguf(QWEN_1_5B, tmp_path)
    assert path.stat().st_size == 1_117_320_768 and sha256_file(path) == QWEN_1_5B.sha256
    mtime = path.stat().st_mtime_ns
    assert packaged_gguf(QWEN_1_5B, tmp_path) == path and path.stat().st_mtime_ns == mtime  # not redone
    assert QWEN_1_5B.licence == "Apache-2.0"


def _parts(tmp_path, chunks: list[bytes]) -> tuple[str, ...]:
    """Real importable part packages (``<name>/data/partNN.bin``) on sys.path."""
    names = []
    for i, chunk in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"ragnews_test_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        names.append(pkg.name)
    sys.path.insert(0, str(tmp_path / "site"))
    return tuple(names)


def test_parts_that_do_not_reassemble_are_refused_and_leave_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50]
    names = _parts(tmp_path, chunks)
    good = PackagedGGUF("t", "Test model", "t.gguf", names, 154, hashlib.sha256(b"".join(chunks)).hexdigest(), "MIT")
    assert packaged_gguf(good, tmp_path / "cache").read_bytes() == b"".join(chunks)
    bad = PackagedGGUF("t", "Test model", "u.gguf", names, 154, "0" * 64, "MIT")
    with pytest.raises(ModelNotFound, match="does not reassemble.*--force-reinstall"):
        packaged_gguf(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / "u.gguf").exists()
    assert not list((tmp_path / "cache" / "models").glob(".gguf-*"))  # no half-written file left
    missing = PackagedGGUF("t", "Test model", "v.gguf", names + ("ragnews_test_absent",), 154, "0" * 64, "MIT")
    assert packaged_gguf(missing, tmp_path / "cache") is None
