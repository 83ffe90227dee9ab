"""The on-disk index (SQLite records + FAISS segments): save -> open -> search, passes, compaction, readers,
validation, no pickle, migration of the snapshot format. Real MiniLM embeddings, real FAISS and SQLite."""

import json
import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from rag_news.errors import IndexCorrupt, IndexLocked, IndexNotFound
from rag_news.store import NewsIndex, StoreOptions, writer_lock
from rag_news.store import vectors as vec
from test_store_backends import STORIES, stage  # the three stories both backends' tests index

LEGACY = Path(__file__).parent / "data" / "legacy-v1-index"


@pytest.fixture
def built(small_embedder, settings, tmp_path):
    idx = NewsIndex(small_embedder, meta={"embedding_model": small_embedder.model_name})
    for key, (title, published, text) in STORIES.items():
        stage(idx, small_embedder, settings, key, title, text, published)
    folder = tmp_path / "idx"
    idx.save(folder)
    idx.close()
    return folder


def segment_files(folder):
    return sorted(p.name for p in (folder / "vectors").iterdir())


def test_save_open_search_dense_keyword_and_langchain(built, small_embedder):
    idx = NewsIndex.open(built, small_embedder)
    assert len(idx) == 3 and idx.chunk_count == 3
    hit = idx.search("when does the last boat to the island leave?", k=2)[0]
    assert hit.url == "http://127.0.0.1/ferry" and 0 < hit.score <= 1
    assert idx.keyword_search("Corrington Rovers", k=3)[0].url == "http://127.0.0.1/football"
    rec = idx.article("http://127.0.0.1/ferry")
    assert {"url", "title", "published", "content_hash", "chunk_ids", "first_seen"} - {"first_seen"} <= set(rec)
    assert idx.article_text("http://127.0.0.1/ferry").startswith("The last evening ferry")
    assert idx.key_for_url("http://127.0.0.1/ferry/?utm_source=x") == "http://127.0.0.1/ferry"
    assert idx.meta["distance"] == "cosine" and idx.embedding_model == small_embedder.model_name
    retriever = idx.vectorstore.as_retriever(search_kwargs={"k": 1})  # plain LangChain API works
    assert retriever.invoke("tram depot")[0].metadata["url"] == "http://127.0.0.1/library"
    hybrid = idx.as_retriever(k=1)
    assert hybrid.invoke("Gullholm ferry")[0].metadata["url"] == "http://127.0.0.1/ferry"


def test_langchain_add_texts_and_delete_commit_passes(tmp_path, small_embedder):
    from rag_news.store.langchain import NewsVectorStore

    store = NewsVectorStore.from_texts(["Harbour lantern festival drew 58,000 visitors.",
                                        "The council approved a new cycle lane on Mill Road."],
                                       small_embedder, [{"url": "http://x/a"}, {"url": "http://x/b"}],
                                       index_dir=str(tmp_path / "lc"))
    assert store.similarity_search("how many visitors at the festival", k=1)[0].metadata["url"] == "http://x/a"
    ids = [d.id for d in store.similarity_search("cycle lane", k=1)]
    assert store.delete(ids) and len(store.index) == 1


def test_since_filters_inside_both_searches(built, small_embedder):
    idx = NewsIndex.open(built, small_embedder)
    dense = idx.search("ferry football library", k=10, since="2026-11-01")
    assert [h.url for h in dense] == ["http://127.0.0.1/ferry"]  # undated and older articles left out
    assert [h.url for h in idx.keyword_search("Rovers ferry library", 10, since="2026-10-01")] in (
        ["http://127.0.0.1/ferry", "http://127.0.0.1/football"], ["http://127.0.0.1/football", "http://127.0.0.1/ferry"])
    assert idx.search("ferry", k=5, since="2027-01-01") == []


def test_pickle_in_the_index_folder_is_never_executed(built, small_embedder, tmp_path):
    """Pickles planted where a loader would look: beside a version-1 snapshot's ``index.faiss`` (where
    LangChain's ``FAISS.load_local`` reads its docstore), in place of the files the migration reads, and in
    place of a vector segment of the current store. Opening never runs them."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    blob = pickle.dumps(Payload())

    def legacy_copy(name):
        folder = tmp_path / name
        shutil.copytree(LEGACY, folder)
        return folder, folder / "snapshots" / (folder / "CURRENT").read_text().strip()

    beside, snap = legacy_copy("beside")
    (snap / "index.pkl").write_bytes(blob)  # LangChain FAISS's docstore name, next to the FAISS file
    idx = NewsIndex.open(beside, small_embedder)  # migrates: reads meta.json, index.faiss, the two .jsonl
    assert len(idx) == 10 and idx.search("tidal power plant")
    idx.close()
    for name in ("chunks.jsonl", "articles.jsonl", "meta.json", "index.faiss"):
        folder, snap = legacy_copy(f"as-{name}")
        (snap / name).write_bytes(blob)
        with pytest.raises(IndexCorrupt):
            NewsIndex.open(folder, small_embedder)
    (built / "vectors" / segment_files(built)[0]).write_bytes(blob)  # a segment of the current store
    with pytest.raises(IndexCorrupt):
        NewsIndex.open(built, small_embedder).search("ferry")
    assert not marker.exists()
    pickle.loads(blob)  # the payload is real: unpickling it would have run code
    assert marker.exists()


def _damage(folder, how):
    seg = folder / "vectors" / segment_files(folder)[0]
    db = folder / "index.db"
    if how == "truncated-segment":
        seg.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    elif how == "altered-segment":
        data = bytearray(seg.read_bytes())
        data[-100] ^= 0xFF
        seg.write_bytes(bytes(data))
    elif how == "missing-segment":
        seg.unlink()
    elif how == "garbage-db":
        for p in folder.glob("index.db*"):
            p.unlink()
        db.write_bytes(b"\x00not a database" * 100)
    elif how == "foreign-db":
        for p in folder.glob("index.db*"):
            p.unlink()
        sqlite3.connect(db).execute("CREATE TABLE meta(name TEXT, value TEXT)").connection.commit()
    elif how == "future-version":
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value='99' WHERE name='version'")
        conn.commit()
        conn.close()


@pytest.mark.parametrize("how, message", [
    ("truncated-segment", "truncated or replaced"),
    ("missing-segment", "is missing"),
    ("garbage-db", "not a"),
    ("foreign-db", "not a rag-news index"),
    ("future-version", "format version 99"),
])
def test_crafted_or_damaged_index_is_refused_in_one_line(built, small_embedder, how, message):
    _damage(built, how)
    with pytest.raises(IndexCorrupt, match=message) as err:
        NewsIndex.open(built, small_embedder)
    assert "\n" not in str(err.value)


def test_an_altered_segment_is_found_by_check_and_open_hashes_nothing(built, small_embedder, monkeypatch):
    """Opening reads no segment's bytes (its size and FAISS header only); ``check`` reads them all."""
    _damage(built, "altered-segment")
    monkeypatch.setattr(vec, "sha256_of", lambda path: pytest.fail(f"{path.name} hashed on open"))
    idx = NewsIndex.open(built, small_embedder)
    monkeypatch.undo()
    assert any("sha256" in p for p in idx.check())


def test_missing_index_names_the_command_that_builds_it(tmp_path, small_embedder):
    with pytest.raises(IndexNotFound, match="python -m rag_news.index --urls"):
        NewsIndex.open(tmp_path / "nothing", small_embedder)


def test_replacing_and_removing_leave_no_live_orphan_vectors(built, small_embedder, settings):
    idx = NewsIndex.open(built, small_embedder)
    stage(idx, small_embedder, settings, "http://127.0.0.1/ferry", "Winter ferry timetable",
          "Bayline restores a 21:30 Friday crossing to Gullholm Island after a petition.", "2026-11-02")
    assert idx.chunk_count == 3  # staged, not committed: readers still see the last pass
    idx.commit()
    assert idx.chunk_count == 3 and len(idx) == 3
    assert "21:30" in idx.search("Friday crossing", k=1)[0].text
    assert all("19:40" not in h.text for h in idx.search("last evening ferry 19:40", k=5))
    idx.remove("http://127.0.0.1/football")
    idx.commit()
    assert idx.chunk_count == 2 and idx.check() == []
    again = NewsIndex.open(built, small_embedder)
    assert sorted(r["key"] for r in again.iter_articles()) == ["http://127.0.0.1/ferry", "http://127.0.0.1/library"]
    assert np.isclose(again.search("tram depot", k=1)[0].score, idx.search("tram depot", k=1)[0].score)
    assert not any("Rovers" in h.text for h in again.keyword_search("Corrington Rovers", 5))


def test_a_pass_writes_only_what_it_adds_and_an_empty_pass_writes_nothing(built, small_embedder, settings):
    idx = NewsIndex.open(built, small_embedder)
    before = segment_files(built)
    assert idx.commit().pass_id is None  # nothing staged
    assert segment_files(built) == before
    stage(idx, small_embedder, settings, "http://127.0.0.1/new", "Bridge", "The Millbridge bridge closes in March.")
    result = idx.commit()
    new = sorted(set(segment_files(built)) - set(before))
    assert result.chunks_added == 1 and len(new) == 1
    assert (built / "vectors" / new[0]).stat().st_size < 384 * 4 * 4 + 4096  # one vector, not the whole index
    idx.touch("http://127.0.0.1/new", last_seen="2026-12-01T00:00:00+00:00")
    assert idx.commit().chunks_added == 0 and len(segment_files(built)) == len(before) + 1
    assert idx.article("http://127.0.0.1/new")["last_seen"].startswith("2026-12-01")


def test_compaction_merges_segments_and_drops_deleted_vectors(tmp_path, small_embedder, settings):
    idx = NewsIndex.open(tmp_path / "c", small_embedder, create=True, options=StoreOptions(merge_factor=3))
    for i in range(5):
        stage(idx, small_embedder, settings, f"http://127.0.0.1/{i}", f"Story {i}", f"Story number {i} about harbour {i}.")
        idx.commit()
    idx.remove("http://127.0.0.1/0")
    idx.commit()
    top = [h.chunk_id for h in idx.search("harbour story", k=4)]
    merged = idx.compact(force=True)
    assert merged and merged[0]["dropped"] == 1
    assert len(vec_rows(idx)) == 1 and idx.check() == []
    assert [h.chunk_id for h in idx.search("harbour story", k=4)] == top
    assert sqlite3.connect(tmp_path / "c" / "index.db").execute("SELECT count(*) FROM dead_vectors").fetchone()[0] == 0


def test_merge_plan_tiers_dead_segments_and_the_size_cap():
    seg = lambda name, n: {"name": name, "vectors": n}  # noqa: E731
    tens = [seg(f"s{i}", 10_000) for i in range(10)]
    assert vec.plan_merges(tens, {}) == [[s["name"] for s in tens]]  # ten in one tier: merged
    assert vec.plan_merges(tens[:9], {}) == []
    big = [seg(f"b{i}", 100_000) for i in range(10)]
    assert vec.plan_merges(big, {}) == []  # would pass max_merge_vectors: only an explicit compact merges it
    assert vec.plan_merges(big, {}, max_vectors=2_000_000) == [[s["name"] for s in big]]
    assert vec.plan_merges([seg("d", 300), seg("e", 300)], {"d": 120}) == [["d"]]  # 40% dead: rewritten


def test_merges_cascade_within_the_commit_that_fills_a_tier(tmp_path, small_embedder, settings):
    idx = NewsIndex.open(tmp_path / "t", small_embedder, create=True)
    for i in range(10):
        stage(idx, small_embedder, settings, f"http://127.0.0.1/{i}", f"S{i}", f"Story {i} about the quay.")
        merged = idx.commit().compacted
    assert len(merged) == 1 and merged[0]["merged"] == 10 and len(vec_rows(idx)) == 1
    idx.touch("http://127.0.0.1/3", last_seen="2026-12-01T00:00:00+00:00")
    assert idx.commit().compacted == []  # a touch-only pass merges nothing


def vec_rows(idx):
    from rag_news.store import records

    return records.segments(idx._conn)


def test_ivf_segment_finds_what_exact_search_finds(tmp_path, small_embedder):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 384)).astype(np.float32)
    x = centers[rng.integers(0, 20, 3000)] + rng.standard_normal((3000, 384)).astype(np.float32) * 0.05
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = tmp_path / "exact"
    vec.write_segment(exact, "s", np.arange(3000), x)
    vec.build_ivf(exact, "s", np.arange(3000), x)
    flat = vec.open_segment(exact, {"name": "s", "kind": "flat", "vectors": 3000,
                                    "bytes": vec.flat_path(exact, "s").stat().st_size, "sha256": None}, 384)
    ivf = vec.open_segment(exact, {"name": "s", "kind": "ivf", "vectors": 3000, "sha256": None,
                                   "bytes": vec.flat_path(exact, "s").stat().st_size,
                                   "ivf_bytes": vec.ivf_path(exact, "s").stat().st_size}, 384)
    assert ivf.index.nlist >= 16
    q = x[:50]
    _, want = flat.index.search(q, 10)
    ivf.index.nprobe = ivf.index.nlist  # every list: only the 16-bit codes differ from exact search
    _, got = ivf.index.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got)])
    assert recall >= 0.9 and (want[:, 0] == got[:, 0]).mean() >= 0.9


def test_auto_index_builds_ivf_for_big_merged_segments(tmp_path, small_embedder):
    idx = NewsIndex(small_embedder, meta={"dim": 384}, options=StoreOptions(ivf_min_vectors=1000))
    rng = np.random.default_rng(1)
    for batch in range(2):
        for a in range(300):
            key = f"http://127.0.0.1/{batch}/{a}"
            chunks = [Document(page_content=f"text {batch} {a} {j}", metadata={"chunk_id": f"{key}#{j}", "chunk_index": j})
                      for j in range(3)]
            v = rng.standard_normal((3, 384)).astype(np.float32)
            idx.upsert({"key": key, "url": key, "content_hash": key}, chunks, v / np.linalg.norm(v, axis=1, keepdims=True))
        idx.save(tmp_path / "big")
    idx.compact(force=True)
    assert [r["kind"] for r in vec_rows(idx)] == ["ivf"] and idx.chunk_count == 1800
    reader = NewsIndex.open(tmp_path / "big", small_embedder)
    probe = reader.chunks_by_id(["http://127.0.0.1/1/7#2"])[0]
    assert probe.page_content == "text 1 7 2"
    assert reader.keyword_search("text", 3)  # keyword search is unaffected by the vector index kind


def test_a_reader_sees_whole_passes_and_notices_new_ones(built, small_embedder, settings):
    reader = NewsIndex.open(built, small_embedder)
    assert reader.search("Millbridge bridge", k=1)[0].url != "http://127.0.0.1/bridge"
    writer = NewsIndex.open(built, small_embedder)
    hold = sqlite3.connect(built / "index.db")  # a reader in the middle of a long read transaction
    hold.execute("BEGIN")
    hold.execute("SELECT count(*) FROM chunks").fetchone()
    stage(writer, small_embedder, settings, "http://127.0.0.1/bridge", "Bridge", "The Millbridge bridge closes in March.")
    writer.commit()  # not blocked by the open read transaction (WAL)
    assert hold.execute("SELECT count(*) FROM chunks").fetchone()[0] == 3  # still its own pass
    hold.execute("COMMIT")
    assert reader.search("Millbridge bridge", k=1)[0].url == "http://127.0.0.1/bridge"  # picked up by itself
    assert len(reader) == 4


def test_orphan_segments_of_a_killed_writer_are_removed_by_the_next_commit(built, small_embedder, settings):
    orphan = built / "vectors" / "seg-99999999-abcdef.flat.faiss"
    orphan.write_bytes(b"half written")
    (built / "vectors" / ".tmp-seg-x.flat.faiss").write_bytes(b"x")
    idx = NewsIndex.open(built, small_embedder)  # readers ignore what the database does not list
    assert idx.search("ferry", k=1)
    stage(idx, small_embedder, settings, "http://127.0.0.1/x", "X", "Something new about the harbour.")
    idx.commit()
    assert not orphan.exists() and not (built / "vectors" / ".tmp-seg-x.flat.faiss").exists()


def test_legacy_snapshot_index_is_migrated_on_open_without_reembedding(tmp_path, small_embedder):
    """tests/data/legacy-v1-index was built by rag-news 286417c (snapshot format, MiniLM, the sample site)."""
    import faiss

    folder = tmp_path / "old"
    shutil.copytree(LEGACY, folder)
    snap = folder / "snapshots" / (folder / "CURRENT").read_text().strip()
    old_vectors = faiss.read_index(str(snap / "index.faiss"))
    old_chunks = [json.loads(x) for x in (snap / "chunks.jsonl").read_text().splitlines()]
    idx = NewsIndex.open(folder, small_embedder)
    assert len(idx) == 10 and idx.chunk_count == len(old_chunks) == 21
    assert not (folder / "CURRENT").exists() and (folder / "legacy-v1" / "CURRENT").exists()  # kept aside
    q = np.asarray(small_embedder.embed_query("tidal power plant homes"), dtype=np.float32)
    scores, rows = old_vectors.search(q[None], 3)
    got = idx.dense_search(q, 3)
    assert [h.chunk_id for h in got] == [old_chunks[r]["id"] for r in rows[0]]
    assert np.allclose([h.score for h in got], scores[0], atol=1e-6)  # the very same vectors
    tidal = idx.article(got[0].document.metadata["key"])
    assert tidal["published"] == "2026-11-18" and "612 megawatt-hours" in idx.article_text(tidal["key"])
    assert idx.check() == []


def test_damaged_legacy_index_is_refused_and_left_untouched(tmp_path, small_embedder):
    folder = tmp_path / "old"
    shutil.copytree(LEGACY, folder)
    snap = folder / "snapshots" / (folder / "CURRENT").read_text().strip()
    (snap / "index.faiss").write_bytes((snap / "index.faiss").read_bytes()[:100])
    with pytest.raises(IndexCorrupt, match="unreadable"):
        NewsIndex.open(folder, small_embedder)
    assert (folder / "CURRENT").exists() and not (folder / "index.db").exists()


def test_one_writer_at_a_time(tmp_path):
    with writer_lock(tmp_path / "i"):
        with pytest.raises(IndexLocked, match="another writer"):
            with writer_lock(tmp_path / "i"):
                pass
    with writer_lock(tmp_path / "i"):  # released
        pass
