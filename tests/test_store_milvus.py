"""The Milvus backend's own guarantees (rag_news.store.milvus_store): a writer killed between an article's
new chunks and its record leaves the old version readable, and the next write of that article removes
what the killed one left. Real Milvus Lite, a real SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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
    s = Settings(index_dir=sys.argv[1], cache_dir=sys.argv[2], embedding_model=sys.argv[3], progress=False,
                 index_backend="milvus")
    emb = Embedder(s)
    idx = open_store(s, emb, create=True)
    stage(idx, emb, s, "http://127.0.0.1/ferry", "Winter ferry timetable",
          "The last evening ferry to Gullholm Island now leaves at 18:15 on weekdays.", "2026-11-02")
    idx.commit()
""")


def test_a_writer_killed_mid_article_leaves_the_old_version_and_the_next_write_cleans_up(settings, small_embedder):
    s = settings.replace(index_backend="milvus")
    idx = open_store(s, small_embedder, create=True)
    for key, (title, published, text) in STORIES.items():
        stage(idx, small_embedder, s, key, title, text, published)
    idx.commit()
    old = idx.article("http://127.0.0.1/ferry")["chunk_ids"]
    idx.close()  # Milvus Lite admits one process per path

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, PAUSED, "writing", "-c", WRITER, str(s.index_dir), str(s.cache_dir), s.embedding_model],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "paused at writing" in line:
            break
    assert any("paused at writing" in x for x in lines), "".join(lines)[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    reader = open_store(s, small_embedder)
    assert reader.article("http://127.0.0.1/ferry")["chunk_ids"] == old
    assert reader.article_text("http://127.0.0.1/ferry") == STORIES["http://127.0.0.1/ferry"][2]  # the old text
    assert reader.chunk_count == 4  # the killed writer's chunk is there...
    hits = reader.search("last evening ferry to Gullholm Island", k=3) + reader.keyword_search("ferry 18:15", k=3)
    assert hits and all("18:15" not in h.text for h in hits)  # ...but no search returns it
    assert reader.check() and "no article lists" in reader.check()[0]

    new = stage(reader, small_embedder, s, "http://127.0.0.1/ferry", "Winter ferry timetable",
                "The last evening ferry to Gullholm Island now leaves at 18:30 from December.", "2026-11-02")
    reader.commit()
    assert reader.check() == [] and reader.chunk_count == 3
    assert reader.article("http://127.0.0.1/ferry")["chunk_ids"] == new
    assert "18:30" in reader.search("last evening ferry to Gullholm Island", k=1)[0].text
    reader.close()


def test_copy_to_milvus_keeps_records_chunks_and_vectors(settings, small_embedder, tmp_path, capsys):
    from rag_news.store.__main__ import main

    faiss = open_store(settings, small_embedder, create=True)
    for key, (title, published, text) in STORIES.items():
        stage(faiss, small_embedder, settings, key, title, text, published)
    faiss.commit()
    uri = str(tmp_path / "copy.db")
    assert main(["copy-to-milvus", uri, "--index-dir", str(settings.index_dir)]) == 0
    assert '"articles": 3' in capsys.readouterr().out

    milvus = open_store(settings.replace(index_backend="milvus", milvus_uri=uri), small_embedder)
    for key in STORIES:
        a, b = faiss.article(key), milvus.article(key)
        assert a["chunk_ids"] == b["chunk_ids"] and a["title"] == b["title"] and a["published"] == b["published"]
        assert milvus.article_text(key) == faiss.article_text(key)
    question = "when does the last boat to the island leave?"
    dense = [(h.url, round(h.score, 4)) for h in faiss.search(question, k=3)]
    assert [(h.url, round(h.score, 4)) for h in milvus.search(question, k=3)] == dense  # the same vectors
    milvus.close()
