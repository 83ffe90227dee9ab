"""Where FAISS searches the vector segments: on a GPU when it can, on the CPU otherwise.

:func:`choose` is the one place that decides. The segments go to a GPU when all three hold:

* the FAISS build has GPU support (the ``faiss-gpu`` wheel: ``faiss.StandardGpuResources`` exists; the
  ``faiss-cpu`` wheel, rag-news' default dependency, has none; both wheels provide the module ``faiss``);
* FAISS sees a GPU (``faiss.get_num_gpus() > 0``; for ``cuda:N``, more than N);
* the ``device`` setting allows it (``auto``, ``cuda`` or ``cuda:N``; ``cpu`` and ``mps`` keep FAISS on the
  CPU).

Otherwise everything stays on the CPU, and the :class:`Placement` says why. One
``faiss.StandardGpuResources`` per GPU is shared by every segment of every index in the process
(:func:`resources`), as FAISS recommends (each one reserves scratch memory on the card).

This module imports nothing but the standard library (``faiss`` is passed in or imported when needed), so
the GPU benchmark can load it on a machine without rag-news' other dependencies.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

# GPU FAISS selects at most this many results per query (k and nprobe; 2048 since faiss 1.7.3)
GPU_MAX_K = 2048

_resources: dict[tuple[object, int], object] = {}  # (faiss module, device) -> its StandardGpuResources
_resources_lock = threading.Lock()
_search_locks: dict[int, threading.Lock] = {}


@dataclass(frozen=True)
class Placement:
    """The path chosen: ``build`` ``"gpu"`` or ``"cpu"`` (what the installed FAISS can do), ``gpu`` (the
    segments are searched on a GPU), ``device`` (its number, or None), ``reason`` (one line, for people)."""

    build: str
    gpu: bool
    device: int | None
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def has_gpu_support(faiss) -> bool:
    """True for a FAISS build with GPU support (the ``faiss-gpu`` wheel or a CUDA build from source)."""
    return hasattr(faiss, "StandardGpuResources") and hasattr(faiss, "index_cpu_to_gpu")


def _wanted_gpu(setting: str) -> tuple[bool, int, str]:
    """``(allowed, device number, why not)`` for the ``device`` setting."""
    setting = (setting or "auto").strip().lower()
    if setting in ("auto", "cuda"):
        return True, 0, ""
    if setting.startswith("cuda:") and setting[5:].isdigit():
        return True, int(setting[5:]), ""
    return False, 0, f"the device setting is {setting!r}"


def choose(device: str = "auto", faiss=None) -> Placement:
    """Decide where the vector segments are searched, for the ``device`` setting (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``, ``mps``) and the FAISS module ``faiss`` (default: the installed one)."""
    if faiss is None:
        import faiss
    allowed, number, why_not = _wanted_gpu(device)
    if not has_gpu_support(faiss):
        reason = "faiss-cpu build has no GPU support"
        if allowed and device not in ("auto", "", None):
            reason += f" (device {device!r} asked for: swap faiss-cpu for faiss-gpu, see README 'Install')"
        return Placement("cpu", False, None, reason)
    if not allowed:
        return Placement("gpu", False, None, f"{why_not}: FAISS stays on the CPU")
    try:
        count = int(faiss.get_num_gpus())
    except Exception as e:  # noqa: BLE001 - a CUDA driver problem shows up here
        return Placement("gpu", False, None, f"faiss-gpu build, but it cannot count GPUs ({str(e)[:80]})")
    if count <= number:
        seen = "no GPU visible" if count == 0 else f"only {count} GPU(s) visible"
        return Placement("gpu", False, None, f"faiss-gpu build, but {seen} (device {device!r})")
    return Placement("gpu", True, number, f"faiss-gpu build, {count} GPU(s) visible, device {device!r}: "
                                          f"segments searched on GPU {number}")


def resources(faiss, device: int):
    """The ``StandardGpuResources`` for GPU ``device``, made once and shared by every segment."""
    key = (faiss, device)
    with _resources_lock:
        if key not in _resources:
            _resources[key] = faiss.StandardGpuResources()
        return _resources[key]


def to_gpu(faiss, index, device: int):
    """A copy of the CPU ``index`` on GPU ``device`` (``faiss.index_cpu_to_gpu`` with the shared resources;
    an ``IndexIDMap2`` keeps its id map on the host around a GPU flat index; IVF with 16-bit codes becomes
    a ``GpuIndexIVFScalarQuantizer``)."""
    return faiss.index_cpu_to_gpu(resources(faiss, device), device, index)


def search_lock(device: int) -> threading.Lock:
    """The lock GPU searches on ``device`` take: the shared resources are not for concurrent use."""
    with _resources_lock:
        return _search_locks.setdefault(device, threading.Lock())
