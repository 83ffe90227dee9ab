"""The PostgreSQL backend's own guarantees (rag_news.store.postgres_store), on a real PostgreSQL 18 +
pgvector server started by the tests (tests/pg_server.py): a pass is one transaction (a writer SIGKILLed
inside it leaves nothing of it), writers are kept apart by advisory locks (whole index vs shards), readers
on other connections see a pass once it commits; copy-to-postgres keeps the FAISS index's vectors; the
LangChain view (langchain-postgres PGVector) reads the same chunks."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag_news.errors import IndexLocked
from rag_news.store import open_store

from test_store_backends import STORIES, stage

ROOT = Path(__file__).resolve().parent.parent

PAUSED = str(Path(__file__).with_name("paused.py"))  # runs code with a pause point installed
WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests")
    from rag_news.embed import Embedder
    from rag_news.settings import Settings
    from rag_news.store import open_store
    from test_store_backends import stage
    s = Settings(cache_dir=sys.argv[1], embedding_model=sys.argv[2], progress=False, index_backend="postgres",
                 postgres_dsn=sys.argv[3], postgres_schema=sys.argv[4])
    emb = Embedder(s)
    idx = open_store(s, emb)
    stage(idx, emb, s, "http://127.0.0.1/ferry", "Winter ferry timetable",
          "The last evening ferry to Gullholm Island now leaves at 18:15 on weekdays.", "2026-11-02")
    idx.remove("http://127.0.0.1/football")
    with idx.writer():
        idx.commit()
""")


@pytest.fixture
def pg(postgres_settings, small_embedder):
    s = postgres_settings
    idx = open_store(s, small_embedder, create=True)
    for key, (title, published, text) in STORIES.items():
        stage(idx, small_embedder, s, key, title, text, published)
    idx.commit()
    yield s, idx
    idx.close()


def test_a_writer_killed_inside_its_pass_leaves_nothing_of_it_and_releases_its_locks(pg, small_embedder):
    s, idx = pg
    old = idx.article("http://127.0.0.1/ferry")["chunk_ids"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, PAUSED, "swapping", "-c", WRITER, str(s.cache_dir), s.embedding_model, s.postgres_dsn,
                             s.postgres_schema], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "paused at swapping" in line:
            break
    assert any("paused at swapping" in x for x in lines), "".join(lines)[-3000:]
    # everything written, not committed: readers see the last pass, whole
    assert idx.article("http://127.0.0.1/ferry")["chunk_ids"] == old and len(idx) == 3
    with pytest.raises(IndexLocked):  # the paused writer holds the pass lock
        with idx.writer():
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    reader = open_store(s, small_embedder)
    assert reader.refresh() is False and len(reader) == 3 and reader.chunk_count == 3
    assert reader.article("http://127.0.0.1/ferry")["chunk_ids"] == old
    assert all("18:15" not in h.text for h in reader.search("last evening ferry to Gullholm", k=3))
    assert reader.keyword_search("Corrington", k=3)[0].url == "http://127.0.0.1/football"
    with reader.writer():  # the killed writer's session is gone, and its locks with it
        stage(reader, small_embedder, s, "http://127.0.0.1/ferry", "Winter ferry timetable",
              "The last evening ferry to Gullholm Island now leaves at 18:30 from December.", "2026-11-02")
        assert reader.commit().chunks_removed == 1
    assert idx.refresh() is True and "18:30" in idx.search("last evening ferry to Gullholm", k=1)[0].text
    assert reader.check() == []
    reader.close()


def test_advisory_locks_keep_a_whole_index_pass_apart_from_every_other_writer(pg, small_embedder):
    s, idx = pg
    other = open_store(s, small_embedder)
    with idx.writer(shard=(0, 2)):
        with other.writer(shard=(1, 2)):  # another shard: both run at once
            pass
        with pytest.raises(IndexLocked, match="shard 0/2"):
            with other.writer(shard=(0, 2)):
                pass
        with pytest.raises(IndexLocked, match="whole index"):
            with other.writer():
                pass
    with idx.writer():
        with pytest.raises(IndexLocked, match="whole index"):
            with other.writer(shard=(1, 2)):
                pass
    with other.writer():  # released on leaving the block
        pass
    other.close()


def test_a_pass_is_visible_to_other_connections_only_once_committed(pg, small_embedder):
    s, idx = pg
    reader = open_store(s, small_embedder)
    stage(idx, small_embedder, s, "http://127.0.0.1/lantern", "Lantern festival",
          "The harbour lantern festival drew 58,000 visitors, a record.", "2026-11-20")
    idx.touch("http://127.0.0.1/library", last_seen="2026-11-30T10:00:00+00:00", etag='"v2"')
    assert len(reader) == 3 and reader.keyword_search("lantern festival", k=2) == []
    idx.commit()
    assert reader.refresh() is True and len(reader) == 4
    assert reader.keyword_search("lantern festival visitors", k=2)[0].url == "http://127.0.0.1/lantern"
    rec = reader.article("http://127.0.0.1/library")
    assert rec["etag"] == '"v2"' and rec["title"] == "New library" and len(rec["chunk_ids"]) == 1
    reader.close()


def test_an_index_of_another_dimension_is_refused_when_vectors_do_not_fit(pg):
    s, idx = pg
    from langchain_core.documents import Document
    import numpy as np

    doc = Document(page_content="x", metadata={"chunk_id": "x-0"})
    with pytest.raises(ValueError, match="dimension 768, the index 384"):
        idx.upsert({"key": "http://127.0.0.1/x", "url": "http://127.0.0.1/x", "text": "x"}, [doc],
                   np.ones((1, 768), np.float32))


def test_copy_to_postgres_keeps_records_chunks_and_vectors(settings, small_embedder, postgres_settings, capsys):
    from rag_news.store.__main__ import main

    faiss = open_store(settings, small_embedder, create=True)
    for key, (title, published, text) in STORIES.items():
        stage(faiss, small_embedder, settings, key, title, text, published)
    faiss.commit()
    schema = postgres_settings.postgres_schema
    assert main(["copy-to-postgres", postgres_settings.postgres_dsn, "--postgres-schema", schema,
                 "--index-dir", str(settings.index_dir)]) == 0
    assert '"articles": 3' in capsys.readouterr().out

    pg = open_store(postgres_settings, small_embedder)
    assert pg.embedding_model == faiss.embedding_model and pg.meta["dim"] == 384
    for key in STORIES:
        a, b = faiss.article(key), pg.article(key)
        assert a["chunk_ids"] == b["chunk_ids"] and a["title"] == b["title"] and a["published"] == b["published"]
        assert pg.article_text(key) == faiss.article_text(key)
    for (_, _, va), (_, _, vb) in zip(faiss.export(), pg.export()):
        assert (va == vb).all()  # the stored vectors, bit for bit: nothing was embedded again
    question = "when does the last boat to the island leave?"
    dense = [(h.url, round(h.score, 4)) for h in faiss.search(question, k=3)]
    assert [(h.url, round(h.score, 4)) for h in pg.search(question, k=3)] == dense
    pg.close()


def test_the_langchain_pgvector_view_reads_the_index_chunks_with_metadata_filters(pg):
    s, idx = pg
    from langchain_postgres import PGVector

    store = idx.vectorstore
    assert isinstance(store, PGVector)
    hits = store.similarity_search_with_score("the last boat to Gullholm", k=3)
    assert hits[0][0].metadata["url"] == "http://127.0.0.1/ferry" and hits[0][0].id in \
        idx.article("http://127.0.0.1/ferry")["chunk_ids"]
    ours = idx.search("the last boat to Gullholm", k=1)[0].score
    assert abs((1 - hits[0][1]) - ours) < 1e-5  # PGVector's cosine distance over the same vectors
    only = store.similarity_search("the last boat to Gullholm", k=3, filter={"key": "http://127.0.0.1/library"})
    assert [d.metadata["key"] for d in only] == ["http://127.0.0.1/library"]
