"""Dead-vector accounting kept as vectors die (issue 23 part 3): each segment's dead count is in the
database, updated by the pass that deletes vectors, so planning merges reads no segment's id map; an index
made before the counts is counted once. Real MiniLM vectors, real FAISS segments."""

from __future__ import annotations

import numpy as np
from rag_news.store import NewsIndex, StoreOptions, records
from rag_news.store import vectors as vec

from test_store_backends import stage


COUNT = vec.count_segment  # the real one (tests replace vec.count_segment to watch for id map reads)


def truth(idx) -> dict[str, int]:
    """Dead vectors per live segment, counted from the segment files' id maps."""
    dead = np.fromiter(records.dead_vids(idx._conn), dtype=np.int64)
    return {r["name"]: COUNT(idx.path / "vectors", r["name"], dead)[0] for r in records.segments(idx._conn)}


def counted(idx) -> dict[str, int]:
    return {r["name"]: r["dead"] for r in records.segments(idx._conn)}


def add(idx, embedder, settings, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        stage(idx, embedder, settings, f"http://127.0.0.1/{i}", f"Story {i}", f"Story number {i} about the quay {i}.")


def refuse(*a, **k):
    raise AssertionError("a segment's id map was read to count dead vectors")


def test_a_pass_counts_the_vectors_it_kills_without_reading_id_maps(tmp_path, small_embedder, settings, monkeypatch):
    idx = NewsIndex.open(tmp_path / "d", small_embedder, create=True, options=StoreOptions(merge_factor=50))
    add(idx, small_embedder, settings, 4)
    idx.commit()
    add(idx, small_embedder, settings, 4, first=4)
    idx.commit()
    monkeypatch.setattr(vec, "count_segment", refuse)
    assert sorted(counted(idx).values()) == [0, 0]
    idx.remove("http://127.0.0.1/1")                   # first segment: one dead
    stage(idx, small_embedder, settings, "http://127.0.0.1/5", "Story 5", "Story five, rewritten, about the quay.")
    result = idx.commit()                               # second segment: one dead (replaced); a third segment
    assert result.chunks_removed == 2 and result.compacted == [] and len(counted(idx)) == 3
    monkeypatch.undo()
    assert counted(idx) == truth(idx) and sorted(counted(idx).values()) == [0, 1, 1]


def test_dead_counts_follow_removals_replacements_and_merges(tmp_path, small_embedder, settings):
    idx = NewsIndex.open(tmp_path / "m", small_embedder, create=True, options=StoreOptions(merge_factor=3))
    add(idx, small_embedder, settings, 4)
    idx.commit()
    add(idx, small_embedder, settings, 4, first=4)
    idx.commit()                                        # two segments of 4
    idx.remove("http://127.0.0.1/1")
    idx.commit()
    assert counted(idx) == truth(idx) and sorted(counted(idx).values()) == [0, 1]
    stage(idx, small_embedder, settings, "http://127.0.0.1/5", "Story 5", "Story five, rewritten, about the quay.")
    result = idx.commit()                               # a third segment in the tier: all merged, 2 dropped
    assert [m["dropped"] for m in result.compacted] == [2] and counted(idx) == truth(idx)
    assert list(counted(idx).values()) == [0]
    idx.remove("http://127.0.0.1/2")                    # its vector now lives in the merged segment
    idx.commit()
    assert counted(idx) == truth(idx) and list(counted(idx).values()) == [1]
    idx.remove("http://127.0.0.1/0")
    idx.remove("http://127.0.0.1/3")
    result = idx.commit()                               # 3 of 7 dead: rewritten alone
    assert [m["dropped"] for m in result.compacted] == [3] and counted(idx) == truth(idx)
    assert list(counted(idx).values()) == [0] and idx.check() == []


def test_an_index_made_before_the_counts_is_counted_once(tmp_path, small_embedder, settings, monkeypatch):
    idx = NewsIndex.open(tmp_path / "o", small_embedder, create=True, options=StoreOptions(merge_factor=50))
    add(idx, small_embedder, settings, 7)
    idx.commit()
    idx.remove("http://127.0.0.1/0")
    idx.commit()
    idx._conn.execute("UPDATE segments SET dead = NULL")  # as an index written before the counts left it
    idx._conn.execute("DELETE FROM segment_runs")
    reads = []
    real = vec.count_segment
    monkeypatch.setattr(vec, "count_segment", lambda *a: reads.append(a[1]) or real(*a))
    idx.remove("http://127.0.0.1/1")
    assert idx.commit().compacted == [] and len(reads) == 1  # 2 of 7 dead: counted from the id map, once
    assert counted(idx) == truth(idx) == {reads[0]: 2}
    idx.remove("http://127.0.0.1/2")
    result = idx.commit()                               # 3 of 7: rewritten, counted from the stored count
    assert len(reads) == 1 and [m["dropped"] for m in result.compacted] == [3] and counted(idx) == truth(idx)


def test_a_long_lived_reader_reads_only_each_new_pass_deletions(tmp_path, small_embedder, settings, monkeypatch):
    """A reader open for months (the server) picks up a pass's deleted vectors without reading every dead
    id again: each pass's deletions are stamped with it and read through an index on the pass; a merge
    (which forgets the ids it dropped) makes the reader read them all once, as on open. Searches stay right."""
    folder = tmp_path / "r"
    writer = NewsIndex.open(folder, small_embedder, create=True, options=StoreOptions(merge_factor=50))
    add(writer, small_embedder, settings, 12)  # 2 of 12 dead stays under a third: no merge is due
    writer.commit()
    reader = NewsIndex.open(folder, small_embedder)
    full, since = [], []
    real_all, real_after = records.dead_vids, records.dead_vids_after
    monkeypatch.setattr(records, "dead_vids", lambda conn: full.append(1) or real_all(conn))
    monkeypatch.setattr(records, "dead_vids_after", lambda conn, p: since.append(real_after(conn, p)) or since[-1])
    query = lambda i: np.asarray(small_embedder.embed_query(f"Story number {i} about the quay {i}."))  # noqa: E731
    for gone in (1, 2):
        writer.remove(f"http://127.0.0.1/{gone}")
        assert writer.commit().compacted == []
        full.clear()  # the writer's own reads of this pass
        assert reader.refresh() and full == [] and len(since[-1]) == 1  # that pass's one dead vector, no more
        top = reader.dense_search(query(gone), k=12)
        assert len(top) == 12 - gone and all(h.url != f"http://127.0.0.1/{gone}" for h in top)
    assert writer.compact(force=True)
    full.clear()
    assert reader.refresh() and full == [1]  # a merge: all of them again, once
    assert len(reader.dense_search(query(3), k=12)) == 10
    writer.remove("http://127.0.0.1/3")
    writer.commit()
    full.clear()
    assert reader.refresh() and full == [] and len(since[-1]) == 1
    assert all(h.url != "http://127.0.0.1/3" for h in reader.dense_search(query(3), k=12))
