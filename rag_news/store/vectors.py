"""Vectors in FAISS segment files: append-only, deletions as tombstones, compacted now and then.

A pass writes one new segment with just the vectors it adds (``vectors/<name>.flat.faiss``: an
``IndexIDMap2(IndexFlatIP)`` keyed by the chunks' vector ids), so a pass writes bytes in proportion to what
it adds. Deleted vectors stay in their segment file and are listed in the database's ``dead_vectors``
with the pass that deleted them (a long-lived reader reads only a new pass's own, all of them again after a
merge); every search excludes them with a FAISS ID selector. Segment files never change once written: readers
memory-map them (opening costs milliseconds, whatever the size) and never see a half-written one.

An IVF segment's lists are read from disk on demand, so before a search scans anything the lists it will
probe in every segment are asked of the disk at once (``posix_fadvise`` WILLNEED on their exact byte
ranges, see :meth:`VectorSet.prefetch`): a cold question reads those lists, in parallel, instead of
faulting them in one after another, each fault reading the disk's whole read-ahead window around it
(8 MB on the machine the benchmarks ran on: 882 MB read for a question's 39 MB of lists at 1M chunks).

A pass that adds at least ``ivf_min_vectors`` vectors (a first build committing in batches) writes that
IVF index with its segment at once, as a merge does, so a big index is never searched exactly however it
was built.

Dated searches (a window of publication dates: a set of allowed vector ids, see :class:`Window`) stay
exact where the window is small and fast where it is large: in an IVF segment a filtered search probes
``nprobe / f`` lists, ``f`` the window's share of the live vectors (a filtered IVF search over a narrow
window otherwise lands mostly in lists with nothing of the window in them); once that is at least
``EXACT_LIST_SHARE`` of the segment's lists, the segment's exact file is scored instead, vectors of the
window only (FAISS skips the others with the selector), which is exact and costs about what the probes
would. A window's selector is built once per pass and window and reused by every question asking for it.

Compaction merges segments tier by tier (a tier is a power of ten of vectors; ``merge_factor``
segments in one tier become one segment of the next, up to ``MAX_MERGE_VECTORS``, as Lucene caps its
merged segment size), and rewrites a segment alone once a third of it is dead. A merge of everything
(``python -m rag_news.store compact``) is for quiet hours. A merged segment with at least ``ivf_min_vectors`` vectors also gets an approximate index,
``<name>.ivf.faiss`` (IVF with 16-bit float codes, searched with ``nprobe`` lists), which
readers search instead of the exact file; the exact file stays as the source for later merges.

Where there is a GPU (a faiss-gpu build, a GPU visible, the ``device`` setting allowing it: the choice is
made in :mod:`rag_news.store.gpu`), each segment is also copied to the GPU and searched there, with the same
results: GPU indexes ignore FAISS ID selectors, so a GPU search asks for ``k`` plus the segment's dead
vectors and drops the dead ones itself; searches restricted to a set of vectors (dates) and ``k`` beyond
what a GPU selects (:data:`~rag_news.store.gpu.GPU_MAX_K`) use the memory-mapped CPU copy.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IndexCorrupt
from . import gpu
from .base import fsync_path

log = logging.getLogger(__name__)

MERGE_FACTOR = 10
MAX_MERGE_VECTORS = 200_000  # automatic merges stop here (a pass never rewrites more than ~1 GB of vectors)
MAX_DEAD_FRACTION = 1 / 3
EXACT_LIST_SHARE = 0.25  # a dated search needing this share of an IVF segment's lists scores it exactly
GATHER_SHARE = 1 / 8  # a window holding at most this share of a segment is scored from its rows directly


def new_name(pass_id: int) -> str:
    return f"seg-{pass_id:08d}-{secrets.token_hex(3)}"


def flat_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.flat.faiss"


def ivf_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.ivf.faiss"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_index(index, path: Path) -> tuple[int, str]:
    """Write a FAISS index durably (temporary name, fsync, rename); returns ``(bytes, sha256)``."""
    import faiss

    tmp = path.with_name(f".tmp-{path.name}")
    faiss.write_index(index, str(tmp))
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)
    return path.stat().st_size, sha256_of(path)


def write_segment(folder: Path, name: str, vids: np.ndarray, vectors: np.ndarray) -> dict:
    """Write the exact segment file for ``vectors`` (unit length) under ids ``vids``; its ``segments`` row."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors, np.asarray(vids, dtype=np.int64))
    size, digest = _write_index(index, flat_path(folder, name))
    return {"name": name, "kind": "flat", "vectors": len(vids), "bytes": size, "sha256": digest}


def build_ivf(folder: Path, name: str, vids: np.ndarray, vectors: np.ndarray, seed: int = 1234) -> int:
    """Write ``<name>.ivf.faiss``: IVF (about 2·sqrt(n) lists, trained on a sample) with 16-bit float codes.
    Returns its size in bytes."""
    import faiss

    n, dim = vectors.shape
    nlist = int(min(4096, max(16, 2 * math.sqrt(n))))
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, size=min(n, 32 * nlist), replace=False))]
    ivf.train(np.ascontiguousarray(sample))
    for start in range(0, n, 50_000):
        ivf.add_with_ids(np.ascontiguousarray(vectors[start:start + 50_000]), vids[start:start + 50_000])
    size, _ = _write_index(ivf, ivf_path(folder, name))
    return size


@dataclass
class Segment:
    """An open (memory-mapped) segment: the index searched and its kind; ``on_gpu`` its GPU copy (or None),
    with ``vids`` (its vector ids) and ``dead`` (how many of them are deleted) for GPU searches."""

    name: str
    kind: str
    index: object
    vectors: int
    on_gpu: object = None
    vids: np.ndarray | None = None
    dead: int = 0
    nlist: int = 0           # IVF lists (0 for an exact segment)
    exact: object = None     # an IVF segment's exact file, memory-mapped on its first dated search
    rows: tuple | None = None  # (sorted vids, their rows, the vectors) of the exact file, for window scoring
    lists: tuple | None = None  # an IVF segment's (byte offset, byte length) of each list in its file


@dataclass
class Window:
    """The vector ids of a date window, with their FAISS selector (dead vectors excluded): built once by
    :meth:`VectorSet.window` and reused by every search over that window in the same pass."""

    ids: np.ndarray
    selector: object
    keep: tuple = ()  # FAISS selectors reference these arrays and objects
    rows: dict = field(default_factory=dict)  # segment name -> (rows, vids) of the window's live vectors

    def __len__(self) -> int:
        return len(self.ids)


def open_segment(folder: Path, row: dict, dim: int) -> Segment:
    """Memory-map a segment after checking it against its database row (there, its size; FAISS's header:
    dimension, metric, count); damage -> :class:`IndexCorrupt`. Nothing is hashed on open (a reader's
    open costs the same at any size): every byte is checked against its sha256 by ``check``
    (``python -m rag_news.store check``)."""
    import faiss

    path = flat_path(folder, row["name"])
    if not path.is_file():
        raise IndexCorrupt(f"vector segment {path.name} is missing from {folder}")
    if path.stat().st_size != row["bytes"]:
        raise IndexCorrupt(f"vector segment {path.name} has {path.stat().st_size} bytes, the index recorded "
                           f"{row['bytes']} (truncated or replaced)")
    searched, flags = path, faiss.IO_FLAG_MMAP_IFC
    if row["kind"] == "ivf":
        searched, flags = ivf_path(folder, row["name"]), faiss.IO_FLAG_MMAP
        if not searched.is_file() or searched.stat().st_size != row["ivf_bytes"]:
            raise IndexCorrupt(f"approximate index {searched.name} is missing or not the size recorded")
    try:
        index = faiss.read_index(str(searched), flags)
    except (RuntimeError, OSError) as e:
        raise IndexCorrupt(f"vector segment {searched.name} is unreadable: {str(e).strip().splitlines()[-1][:120]}") \
            from None
    if index.d != dim or index.metric_type != faiss.METRIC_INNER_PRODUCT or index.ntotal != row["vectors"]:
        raise IndexCorrupt(f"vector segment {searched.name} does not match the index (dimension, metric or count)")
    nlist = faiss.extract_index_ivf(index).nlist if row["kind"] == "ivf" else 0
    return Segment(row["name"], row["kind"], index, row["vectors"], nlist=nlist)


def read_segment(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All ``(vids, vectors)`` of a segment's exact file (for merges and checks)."""
    import faiss

    index = faiss.read_index(str(flat_path(folder, name)), faiss.IO_FLAG_MMAP_IFC)
    vids = faiss.vector_to_array(index.id_map).astype(np.int64)
    flat = faiss.downcast_index(index.index)
    vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    return vids, np.array(vectors, copy=True)


class VectorSet:
    """The live segments of one index, searched together; deleted vectors excluded by a selector (on the
    CPU) or dropped from an over-fetched result (on a GPU).

    ``device`` is the ``device`` setting (see :func:`rag_news.store.gpu.choose`); ``faiss`` the FAISS module
    that copies segments to the GPU (default: the installed one; tests pass a stand-in for a GPU)."""

    def __init__(self, folder: Path, dim: int, nprobe: int = 16, device: str = "auto", faiss=None):
        if faiss is None:
            import faiss
        self.folder, self.dim, self.nprobe = folder, dim, nprobe
        self.segments: dict[str, Segment] = {}
        self._keep: list = []  # FAISS selectors reference these arrays and objects
        self._not_dead = None
        self._dead = np.zeros(0, dtype=np.int64)
        self._faiss = faiss
        self.placement = gpu.choose(device, faiss)

    def sync(self, rows: list[dict], dead: list[int], added: bool = False) -> None:
        """Match the database: open new segments, drop retired ones, rebuild the deleted-vector selector.
        ``dead``: every deleted vector's id, or (``added``) those deleted since the last sync."""
        import faiss

        wanted = {r["name"]: r for r in rows}
        for name in list(self.segments):
            if name not in wanted or wanted[name]["kind"] != self.segments[name].kind:
                del self.segments[name]
        for name, row in wanted.items():
            if name not in self.segments:
                self.segments[name] = open_segment(self.folder, row, self.dim)
                if self.placement.gpu:
                    self._copy_to_gpu(self.segments[name])
        dead_arr = np.unique(np.asarray(dead, dtype=np.int64))
        if added:
            dead_arr = np.union1d(self._dead, dead_arr)
        batch = faiss.IDSelectorBatch(dead_arr)
        self._keep = [dead_arr, batch]
        self._not_dead = faiss.IDSelectorNot(batch)
        self._dead = dead_arr
        for seg in self.segments.values():
            if seg.on_gpu is not None:
                seg.dead = int(np.isin(seg.vids, dead_arr, assume_unique=True).sum()) if len(dead_arr) else 0

    def _copy_to_gpu(self, seg: Segment) -> None:
        """Put a GPU copy of ``seg`` beside its memory-mapped CPU index (left on the CPU if that fails)."""
        import faiss

        try:
            flat = seg.index if seg.kind == "flat" else \
                faiss.read_index(str(flat_path(self.folder, seg.name)), faiss.IO_FLAG_MMAP_IFC)
            seg.vids = faiss.vector_to_array(flat.id_map).astype(np.int64)
            seg.on_gpu = gpu.to_gpu(self._faiss, seg.index, self.placement.device)
        except (RuntimeError, MemoryError) as e:  # out of GPU memory, an index type the GPU lacks...
            log.warning("vector segment %s stays on the CPU: %s", seg.name, str(e).strip().splitlines()[-1][:160])
            seg.on_gpu, seg.vids = None, None

    def describe(self) -> dict:
        """Which FAISS is in use (``build``, ``gpu``, ``device``, ``reason``) and how many segments are on
        the GPU (for ``python -m rag_news.store info`` and ``/health``)."""
        on_gpu = sum(s.on_gpu is not None for s in self.segments.values())
        return {**self.placement.as_dict(), "segments_on_gpu": on_gpu, "segments": len(self.segments)}

    @property
    def count(self) -> int:
        return sum(s.vectors for s in self.segments.values())

    def window(self, allowed) -> Window:
        """A :class:`Window` over the vector ids ``allowed`` (a dated search's), for :meth:`search`."""
        import faiss

        arr = np.unique(np.asarray(allowed, dtype=np.int64))
        only = faiss.IDSelectorBatch(arr)
        return Window(arr, faiss.IDSelectorAnd(only, self._not_dead), (arr, only, self._not_dead, self._keep))

    def search(self, query: np.ndarray, k: int, allowed=None) -> list[tuple[int, float]]:
        """``(vid, cosine)`` best first over every segment, skipping dead vectors (and, when ``allowed`` is
        given, any vector not in it: a :class:`Window`, or vector ids)."""
        import faiss

        sel, share = self._not_dead, 1.0
        if allowed is not None:
            allowed = allowed if isinstance(allowed, Window) else self.window(allowed)
            sel, share = allowed.selector, max(len(allowed), 1) / max(self.count, 1)
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        on_gpu = {name for name, seg in self.segments.items() if seg.on_gpu is not None and allowed is None
                  and min(k + seg.dead, seg.vectors) <= gpu.GPU_MAX_K and self.nprobe <= gpu.GPU_MAX_K}
        self.prefetch(q, share, allowed is not None, skip=on_gpu)
        found: list[tuple[int, float]] = []
        for seg in self.segments.values():
            if seg.name in on_gpu:
                found.extend(self._search_gpu(seg, q, k))
                continue
            if allowed is not None and (seg.kind == "flat" or math.ceil(self.nprobe / share) >=
                                        EXACT_LIST_SHARE * seg.nlist):
                rows, vids = self._window_rows(seg, allowed)
                if len(rows) <= GATHER_SHARE * seg.vectors:  # a few rows: scored directly, nothing scanned
                    scores = self._rows(seg)[2][rows] @ q[0]
                    top = np.argsort(-scores)[:k]
                    found.extend((int(vids[i]), float(scores[i])) for i in top)
                    continue
            index, params = seg.index, faiss.SearchParameters(sel=sel)
            if seg.kind == "ivf":
                nprobe = min(seg.nlist, math.ceil(self.nprobe / share))
                if allowed is not None and nprobe >= EXACT_LIST_SHARE * seg.nlist:
                    index = self._exact(seg)  # the window's vectors scored exactly
                else:
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
            scores, ids = index.search(q, min(k, seg.vectors), params=params)
            found.extend((int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0)
        return sorted(found, key=lambda p: -p[1])[:k]

    def prefetch(self, q: np.ndarray, share: float = 1.0, dated: bool = False, skip=()) -> int:
        """Ask the disk at once for every list a search of ``q`` will probe in the IVF segments (``share``:
        a dated search's share of the live vectors, as in :meth:`search`; segments in ``skip`` are not
        searched here). The reads run in the background while the search scans; lists already in memory
        cost a system call each. Returns how many byte ranges were asked for."""
        import faiss

        asked = 0
        for seg in self.segments.values():
            nprobe = min(seg.nlist, math.ceil(self.nprobe / share)) if seg.kind == "ivf" else 0
            if not nprobe or seg.name in skip or (dated and nprobe >= EXACT_LIST_SHARE * seg.nlist):
                continue  # an exact segment (scanned through), a GPU copy, or the window scored exactly
            ranges = self._lists(seg)
            if ranges is None:
                continue
            _, probed = faiss.extract_index_ivf(seg.index).quantizer.search(q, nprobe)
            fd = os.open(ivf_path(self.folder, seg.name), os.O_RDONLY)
            try:
                for i in probed[0][probed[0] >= 0]:
                    if ranges[1][i]:
                        os.posix_fadvise(fd, int(ranges[0][i]), int(ranges[1][i]), os.POSIX_FADV_WILLNEED)
                        asked += 1
            finally:
                os.close(fd)
        return asked

    def _lists(self, seg: Segment) -> tuple | None:
        """``(offsets, lengths)`` in bytes of an IVF segment's lists in its file (each list's codes, then its
        ids), read once from FAISS's memory-mapped lists; None where the lists are not read from the file."""
        import faiss

        if seg.lists is None and hasattr(os, "posix_fadvise"):
            ivf = faiss.extract_index_ivf(seg.index)
            lists = faiss.downcast_InvertedLists(ivf.invlists)
            if not isinstance(lists, faiss.OnDiskInvertedLists):
                return None
            at = [lists.lists.at(i) for i in range(ivf.nlist)]
            seg.lists = (np.array([a.offset for a in at], dtype=np.int64),
                         np.array([a.capacity for a in at], dtype=np.int64) * (ivf.code_size + 8))
        return seg.lists

    def _rows(self, seg: Segment) -> tuple:
        """``(sorted vids, their rows, vectors)`` of a segment's exact file (a view of the mapped file)."""
        import faiss

        if seg.rows is None:
            flat = self._exact(seg) if seg.kind == "ivf" else seg.index
            ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
            inner = faiss.downcast_index(flat.index)
            xb = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(inner.ntotal, inner.d)
            order = np.argsort(ids, kind="stable")
            seg.rows = (ids[order], order, xb)
        return seg.rows

    def _window_rows(self, seg: Segment, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Rows and vids of ``window``'s live vectors in ``seg`` (found once per window and segment)."""
        if seg.name not in window.rows:
            ids, order, _ = self._rows(seg)
            at = np.minimum(np.searchsorted(ids, window.ids), max(len(ids) - 1, 0))
            hit = (ids[at] == window.ids) if len(ids) else np.zeros(len(window.ids), bool)
            vids = window.ids[hit]
            live = ~np.isin(vids, self._dead) if len(self._dead) else np.ones(len(vids), bool)
            window.rows[seg.name] = (order[at[hit]][live], vids[live])
        return window.rows[seg.name]

    def _exact(self, seg: Segment):
        """The exact (flat) file of an IVF segment, memory-mapped once."""
        import faiss

        if seg.exact is None:
            seg.exact = faiss.read_index(str(flat_path(self.folder, seg.name)), faiss.IO_FLAG_MMAP_IFC)
        return seg.exact

    def _search_gpu(self, seg: Segment, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The best ``k`` live vectors of ``seg`` from its GPU copy: ``k`` + its dead vectors asked for (GPU
        indexes ignore ID selectors), the dead ones dropped here."""
        import faiss

        want = min(k + seg.dead, seg.vectors)
        with gpu.search_lock(self.placement.device):
            if seg.kind == "ivf":
                scores, ids = seg.on_gpu.search(q, want, params=faiss.SearchParametersIVF(nprobe=self.nprobe))
            else:
                scores, ids = seg.on_gpu.search(q, want)
        ids, scores = ids[0], scores[0]
        live = ids >= 0
        if seg.dead:
            live &= ~np.isin(ids, self._dead)
        return [(int(i), float(s)) for i, s in zip(ids[live][:k], scores[live][:k])]


def tier(live: int) -> int:
    return int(math.log10(max(live, 1)))


def plan_merges(rows: list[dict], dead_in: dict[str, int], merge_factor: int = MERGE_FACTOR,
                max_vectors: int = MAX_MERGE_VECTORS) -> list[list[str]]:
    """Groups of segment names to merge: a segment a third dead is rewritten alone; ``merge_factor``
    segments in one tier are merged into one, unless the result would pass ``max_vectors`` (bigger
    merges run only when asked for: ``python -m rag_news.store compact``)."""
    groups, tiers = [], defaultdict(list)
    for r in rows:
        dead = dead_in.get(r["name"], 0)
        if r["vectors"] and dead / r["vectors"] >= MAX_DEAD_FRACTION:
            groups.append([r["name"]])
        else:
            tiers[tier(r["vectors"])].append(r)
    for members in tiers.values():
        live = sum(m["vectors"] - dead_in.get(m["name"], 0) for m in members)
        if len(members) >= merge_factor and live <= max_vectors:
            groups.append([m["name"] for m in members])
    return groups


def id_runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """Sorted vector ids as inclusive ``(lo, hi)`` runs of consecutive ids (a pass's segment is one run)."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if not len(ids):
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(ids) - 1]])
    return [(int(ids[a]), int(ids[b])) for a, b in zip(starts, ends)]


def count_segment(folder: Path, name: str, dead: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """How many of a segment's vectors are in ``dead``, and its id runs: reads its id map (once, for a
    segment of an index made before dead vectors were counted as they die)."""
    import faiss

    index = faiss.read_index(str(flat_path(folder, name)), faiss.IO_FLAG_MMAP_IFC)
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    return int(np.isin(ids, dead).sum()), id_runs(ids)


@dataclass
class StoreOptions:
    """How a FAISS index writes, merges and searches its segments (``Settings.vector_index``, ``ivf_min_vectors``, ``ivf_nprobe``, ``device``:
    FAISS on a GPU where the build, the machine and the setting allow it, see :mod:`rag_news.store.gpu`)."""

    vector_index: str = "auto"      # auto: IVF for segments (a merge's or a pass's) of >= ivf_min_vectors; flat: exact
    ivf_min_vectors: int = 50_000
    nprobe: int = 16
    merge_factor: int = MERGE_FACTOR
    max_merge_vectors: int = MAX_MERGE_VECTORS
    device: str = "auto"            # auto | cpu | cuda | cuda:N | mps (Settings.device)

    @classmethod
    def from_settings(cls, settings) -> "StoreOptions":
        return cls(vector_index=settings.vector_index, ivf_min_vectors=settings.ivf_min_vectors,
                   nprobe=settings.ivf_nprobe, device=settings.device)
