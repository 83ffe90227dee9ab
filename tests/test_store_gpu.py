"""FAISS on the GPU where there is one (rag_news.store.gpu + VectorSet): the path chosen and why, and the
same results as a plain CPU index. Real FAISS and real segment files throughout; the GPU branch is tested
with a stand-in for a GPU build of FAISS (this machine has none), and those tests say so in their names."""

import json

import faiss
import numpy as np
import pytest

from rag_news.store import NewsIndex, StoreOptions
from rag_news.store import gpu
from rag_news.store import vectors as vec
from test_store_backends import STORIES, stage

DIM = 32


def unit(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def segments(tmp_path):
    """Three flat segments (500, 700, 300 vectors) and one IVF segment (3000), their rows, the vectors by
    id, and queries; the dead vectors are the queries' best exact hits, so dropping them matters."""
    rng = np.random.default_rng(5)
    folder, rows, by_vid, start = tmp_path / "vectors", [], {}, 0
    for n in (500, 700, 300):
        x = unit(rng, n)
        rows.append(vec.write_segment(folder, f"s{start}", np.arange(start, start + n), x))
        by_vid.update(zip(range(start, start + n), x))
        start += n
    x, vids = unit(rng, 3000), np.arange(start, start + 3000)
    row = vec.write_segment(folder, "big", vids, x)
    row.update(kind="ivf", ivf_bytes=vec.build_ivf(folder, "big", vids, x))
    rows.append(row)
    by_vid.update(zip(vids.tolist(), x))
    queries = unit(rng, 12)
    all_vids = np.array(sorted(by_vid))
    all_x = np.stack([by_vid[v] for v in all_vids])
    best = all_vids[np.argsort(-(queries @ all_x.T), axis=1)[:, :3]]  # every query's 3 best vectors
    dead = sorted(set(best[:6].ravel().tolist()))
    return folder, rows, dead, queries, all_vids, all_x


def exact_top(all_vids, all_x, dead, q, k, allowed=None):
    """A plain exact CPU search over the live vectors (an IndexFlatIP of them alone)."""
    keep = ~np.isin(all_vids, dead)
    if allowed is not None:
        keep &= np.isin(all_vids, allowed)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(all_x[keep])
    scores, ids = flat.search(q.reshape(1, -1), k)
    return [int(all_vids[keep][i]) for i in ids[0] if i >= 0]


class FakeGpuFaiss:
    """Stands in for a GPU build of FAISS (there is no GPU here): the real module plus
    ``StandardGpuResources``, ``get_num_gpus`` and ``index_cpu_to_gpu``, whose "GPU" index behaves as real
    GPU indexes do: it ignores ID selectors (only ``nprobe`` is read from the search parameters) and
    selects at most 2048 results."""

    class StandardGpuResources:
        made = 0

        def __init__(self):
            FakeGpuFaiss.StandardGpuResources.made += 1

    def __init__(self, gpus=1):
        self.gpus, self.copies, self.searches = gpus, [], 0
        FakeGpuFaiss.StandardGpuResources.made = 0

    def __getattr__(self, name):
        return getattr(faiss, name)

    def get_num_gpus(self):
        return self.gpus

    def index_cpu_to_gpu(self, res, device, index):
        assert isinstance(res, FakeGpuFaiss.StandardGpuResources)
        self.copies.append((res, device))
        fake = self

        class GpuIndex:
            def search(self, q, k, params=None):
                assert k <= gpu.GPU_MAX_K
                fake.searches += 1
                if isinstance(params, faiss.SearchParametersIVF):
                    return index.search(q, k, params=faiss.SearchParametersIVF(nprobe=params.nprobe))
                return index.search(q, k)  # any selector in params is ignored, as on a GPU

        return GpuIndex()


def test_the_path_chosen_on_this_machine_and_results_equal_a_plain_cpu_index(segments):
    folder, rows, dead, queries, all_vids, all_x = segments
    chosen = vec.VectorSet(folder, DIM)  # device "auto": the chooser decides
    chosen.sync(rows[:3], dead)  # the exact segments, 1,500 vectors
    if not gpu.has_gpu_support(faiss):  # this machine: the faiss-cpu wheel
        assert chosen.placement == gpu.Placement("cpu", False, None, "faiss-cpu build has no GPU support")
        assert chosen.describe() == {"build": "cpu", "gpu": False, "device": None,
                                     "reason": "faiss-cpu build has no GPU support", "segments_on_gpu": 0,
                                     "segments": 3}
    for q in queries:
        for k in (1, 10, 40):
            assert [v for v, _ in chosen.search(q, k)] == exact_top(all_vids[:1500], all_x[:1500], dead, q, k)


def test_choose_says_why_for_each_setting_and_build_with_a_fake_gpu_faiss():
    fake = FakeGpuFaiss(gpus=1)
    assert gpu.choose("auto", fake) == gpu.Placement(
        "gpu", True, 0, "faiss-gpu build, 1 GPU(s) visible, device 'auto': segments searched on GPU 0")
    assert gpu.choose("cuda:0", fake).gpu and gpu.choose("cuda", fake).device == 0
    assert gpu.choose("cpu", fake) == gpu.Placement("gpu", False, None,
                                                    "the device setting is 'cpu': FAISS stays on the CPU")
    assert not gpu.choose("mps", fake).gpu
    assert gpu.choose("cuda:1", fake).reason == "faiss-gpu build, but only 1 GPU(s) visible (device 'cuda:1')"
    assert gpu.choose("auto", FakeGpuFaiss(gpus=0)).reason == "faiss-gpu build, but no GPU visible (device 'auto')"


def test_choose_with_the_installed_faiss_cpu_build():
    if gpu.has_gpu_support(faiss):
        pytest.skip("this FAISS build has GPU support")
    assert gpu.choose("auto") == gpu.Placement("cpu", False, None, "faiss-cpu build has no GPU support")
    asked = gpu.choose("cuda")  # asked for a GPU the FAISS build cannot use: said so, with the fix
    assert not asked.gpu and "swap faiss-cpu for faiss-gpu" in asked.reason


def test_gpu_search_drops_dead_vectors_and_equals_the_cpu_results_with_a_fake_gpu_faiss(segments):
    folder, rows, dead, queries, all_vids, all_x = segments
    fake = FakeGpuFaiss()
    on_gpu = vec.VectorSet(folder, DIM, nprobe=8, faiss=fake)
    on_gpu.sync(rows, dead)
    on_cpu = vec.VectorSet(folder, DIM, nprobe=8, device="cpu")
    on_cpu.sync(rows, dead)
    assert on_gpu.placement.gpu and not on_cpu.placement.gpu
    assert on_gpu.describe()["segments_on_gpu"] == 4 and len(fake.copies) == 4
    assert FakeGpuFaiss.StandardGpuResources.made == 1 and len({id(r) for r, _ in fake.copies}) == 1
    assert sum(s.dead for s in on_gpu.segments.values()) == len(dead)
    for q in queries:
        for k in (1, 10, 40):
            assert on_gpu.search(q, k) == on_cpu.search(q, k)
        assert not {v for v, _ in on_gpu.search(q, 10)} & set(dead)
    assert fake.searches == len(queries) * 4 * 4  # every segment, every search, on the "GPU"


def test_restricted_and_oversized_searches_use_the_cpu_copy_with_a_fake_gpu_faiss(segments):
    folder, rows, dead, queries, all_vids, all_x = segments
    fake = FakeGpuFaiss()
    on_gpu = vec.VectorSet(folder, DIM, faiss=fake)
    on_gpu.sync(rows[:3], dead)
    allowed = list(range(200, 900))
    for q in queries[:4]:  # dates: a set of allowed vectors, which a GPU index cannot filter by
        assert [v for v, _ in on_gpu.search(q, 5, allowed)] == exact_top(all_vids, all_x, dead, q, 5, allowed)
    assert fake.searches == 0
    on_gpu.segments["s0"].vectors = 5000  # pretend: more than a GPU selects; the CPU copy answers
    before = fake.searches
    on_gpu.search(queries[0], gpu.GPU_MAX_K)
    assert fake.searches - before == 2  # s500 and s1200 on the "GPU", s0 on the CPU


def test_two_indexes_share_one_gpu_resource_with_a_fake_gpu_faiss(segments):
    folder, rows, dead, *_ = segments
    fake = FakeGpuFaiss()
    for part in (rows[:2], rows[2:]):
        vec.VectorSet(folder, DIM, faiss=fake).sync(part, dead)
    assert len(fake.copies) == 4 and FakeGpuFaiss.StandardGpuResources.made == 1


def test_index_info_and_stats_say_which_faiss_is_in_use(tmp_path, small_embedder, settings, capsys):
    from rag_news.store.__main__ import main

    idx = NewsIndex(small_embedder, meta={"embedding_model": small_embedder.model_name},
                    options=StoreOptions(device="cpu"))
    for key, (title, published, text) in STORIES.items():
        stage(idx, small_embedder, settings, key, title, text, published)
    idx.save(tmp_path / "idx")
    in_use = idx.stats()["faiss"]
    assert in_use["gpu"] is False and in_use["reason"] and in_use["segments"] == 1
    idx.close()
    assert main(["info", "--index-dir", str(tmp_path / "idx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["faiss"]) == {"build", "gpu", "device", "reason", "segments_on_gpu", "segments"}
    if not gpu.has_gpu_support(faiss):
        assert info["faiss"] == {"build": "cpu", "gpu": False, "device": None,
                                 "reason": "faiss-cpu build has no GPU support", "segments_on_gpu": 0,
                                 "segments": 1}
