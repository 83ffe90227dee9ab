"""The on-disk index: save -> load -> search, validation on load, no pickle, atomic snapshots, locking."""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
from langchain_core.documents import Document

from rag_news.chunk import chunk
from rag_news.errors import IndexCorrupt, IndexLocked, IndexNotFound
from rag_news.store import NewsIndex, writer_lock

STORIES = {
    "http://127.0.0.1/ferry": ("Winter ferry timetable", "The last evening ferry to Gullholm Island now "
                               "leaves at 19:40, two hours earlier than in summer."),
    "http://127.0.0.1/football": ("Cup run", "Larkspur Athletic beat Corrington Rovers 2-1 to reach the "
                                  "fourth round of the national cup."),
    "http://127.0.0.1/library": ("New library", "The Eastmoor branch library will be built in the old "
                                 "tram depot on Quarry Lane."),
}


def _add(idx, embedder, settings, key, title, text):
    art = Document(page_content=text, metadata={"key": key, "url": key, "title": title})
    chunks = chunk([art], embedder.tokenizer, settings, max_seq_length=embedder.max_seq_length)
    vecs = embedder.embed_array([c.page_content for c in chunks])
    idx.upsert({"key": key, "url": key, "title": title, "text": text, "content_hash": str(hash(text)),
                "published": None}, chunks, vecs)


@pytest.fixture
def built(small_embedder, settings, tmp_path):
    idx = NewsIndex(small_embedder, meta={"embedding_model": small_embedder.model_name})
    for key, (title, text) in STORIES.items():
        _add(idx, small_embedder, settings, key, title, text)
    folder = tmp_path / "idx"
    idx.save(folder)
    return folder


def test_save_load_search_returns_the_right_article(built, small_embedder):
    idx = NewsIndex.load(built, small_embedder)
    assert len(idx) == 3 and idx.chunk_count == 3
    hit = idx.search("when does the last boat to the island leave?", k=2)[0]
    assert hit.url == "http://127.0.0.1/ferry" and 0 < hit.score <= 1
    snap = NewsIndex.current_snapshot(built)
    lines = (snap / "articles.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert {"url", "title", "published", "text", "content_hash", "chunk_ids"} <= set(rec)
    meta = json.loads((snap / "meta.json").read_text())
    assert meta["distance"] == "cosine" and meta["embedding_model"] == small_embedder.model_name
    retriever = idx.vectorstore.as_retriever(search_kwargs={"k": 1})  # plain LangChain API works
    assert retriever.invoke("tram depot")[0].metadata["url"] == "http://127.0.0.1/library"


def test_pickle_in_the_index_folder_is_never_executed(built, small_embedder, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    blob = pickle.dumps(Payload())
    snap = NewsIndex.current_snapshot(built)
    for where in (built / "index.pkl", snap / "index.pkl", snap / "docstore.pkl"):
        where.write_bytes(blob)
    idx = NewsIndex.load(built, small_embedder)
    idx.search("ferry")
    assert not marker.exists()
    pickle.loads(blob)  # the payload is real: unpickling it would have run code
    assert marker.exists()


def _corrupt(built, how):
    snap = NewsIndex.current_snapshot(built)
    if how == "truncated-faiss":
        data = (snap / "index.faiss").read_bytes()
        (snap / "index.faiss").write_bytes(data[: len(data) // 2])
    elif how == "missing-chunk":
        lines = (snap / "chunks.jsonl").read_text().splitlines()
        (snap / "chunks.jsonl").write_text("\n".join(lines[1:]) + "\n")
    elif how == "article-references-missing-chunk":
        recs = [json.loads(x) for x in (snap / "articles.jsonl").read_text().splitlines()]
        recs[0]["chunk_ids"].append("deadbeef")
        (snap / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    elif how == "truncated-jsonl":
        data = (snap / "chunks.jsonl").read_text()
        (snap / "chunks.jsonl").write_text(data[: len(data) - 40])
    elif how == "foreign-meta":
        (snap / "meta.json").write_text(json.dumps({"format": "something-else"}))
    elif how == "path-traversal":
        (built / "CURRENT").write_text("../../etc\n")
    elif how == "dangling-current":
        shutil.rmtree(snap)


@pytest.mark.parametrize("how, message", [
    ("truncated-faiss", "unreadable"),
    ("missing-chunk", "vectors but"),
    ("article-references-missing-chunk", "missing chunks"),
    ("truncated-jsonl", "not valid JSON|vectors but"),
    ("foreign-meta", "not a rag-news index"),
    ("path-traversal", "invalid snapshot"),
    ("dangling-current", "missing snapshot"),
])
def test_crafted_or_damaged_index_is_refused_clearly(built, small_embedder, how, message):
    _corrupt(built, how)
    with pytest.raises(IndexCorrupt, match=message):
        NewsIndex.load(built, small_embedder)


def test_missing_index_names_the_command_that_builds_it(tmp_path, small_embedder):
    with pytest.raises(IndexNotFound, match="python -m rag_news.index --urls"):
        NewsIndex.load(tmp_path / "nothing", small_embedder)


def test_replacing_an_article_leaves_no_orphan_vectors(built, small_embedder, settings):
    idx = NewsIndex.load(built, small_embedder)
    _add(idx, small_embedder, settings, "http://127.0.0.1/ferry", "Winter ferry timetable",
         "Bayline restores a 21:30 Friday crossing to Gullholm Island after a petition.")
    assert idx.chunk_count == 3 and len(idx) == 3
    assert set(idx.vectorstore.index_to_docstore_id.values()) == {
        c for rec in idx.articles.values() for c in rec["chunk_ids"]}
    assert "21:30" in idx.search("Friday crossing", k=1)[0].text
    idx.remove("http://127.0.0.1/football")
    assert idx.chunk_count == 2
    idx.save(built)
    again = NewsIndex.load(built, small_embedder)
    assert sorted(again.articles) == ["http://127.0.0.1/ferry", "http://127.0.0.1/library"]
    assert np.isclose(again.search("tram depot", k=1)[0].score, idx.search("tram depot", k=1)[0].score)


def test_snapshots_swap_atomically_and_old_ones_are_pruned(built, small_embedder):
    first = NewsIndex.current_snapshot(built)
    idx = NewsIndex.load(built, small_embedder)
    for _ in range(3):
        idx.save(built)
    live = NewsIndex.current_snapshot(built)
    assert live != first and live.is_dir()
    kept = sorted(p for p in (built / "snapshots").iterdir() if not p.name.startswith("."))
    assert len(kept) == 2 and kept[-1] == live  # the live one and the one before it (saved the same second)
    (built / "snapshots" / ".tmp-crashed").mkdir()  # a writer killed mid-write leaves this behind
    idx.save(built)
    assert not (built / "snapshots" / ".tmp-crashed").exists()


def test_one_writer_at_a_time(tmp_path):
    with writer_lock(tmp_path / "i"):
        with pytest.raises(IndexLocked, match="another writer"):
            with writer_lock(tmp_path / "i"):
                pass
    with writer_lock(tmp_path / "i"):  # released
        pass
