"""Writing a :class:`~rag_news.store.faiss_store.NewsIndex`: commit a pass, compact segments, clean up.

Every function here runs with the index's writer lock held (``NewsIndex.commit`` / ``compact`` take it).
Order of a commit: (1) the pass's new vectors go to a new segment file (fsync'd), (2) one SQLite transaction
records the articles, chunks, keyword index entries, deleted vector ids and the segment. A crash before (2)
commits leaves an orphan segment file, which :func:`delete_orphans` removes on the next commit.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..faults import pause_point
from ..urls import normalize_url
from . import records, vectors as vec


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _url_forms(rec: dict) -> set[str]:
    forms = {rec["key"]}
    for u in (rec.get("url"), rec.get("source"), *(rec.get("aliases") or [])):
        if u:
            forms.add(normalize_url(u))
    return forms


def _chunk_rows(rec: dict, chunks, vids: list[int]) -> list[tuple]:
    rows = []
    for seq, (c, vid) in enumerate(zip(chunks, vids)):
        meta = {**c.metadata, "key": rec["key"], "published": rec.get("published")}  # the record's date wins
        rows.append((vid, meta["chunk_id"], rec["key"], meta.get("chunk_index", seq), rec.get("published"),
                     c.page_content, meta))
    return rows


def commit_pass(index):
    """Write the index's staged upserts, touches and removals as one pass."""
    from .base import CommitResult

    conn = index._conn
    if not index.pending:
        return CommitResult(pass_id=None)
    delete_orphans(index)
    meta = records.read_meta(conn, index.path / "index.db")
    pass_id = records.last_pass(conn) + 1
    upserts = list(index._upserts.values())
    n_new = sum(len(ch) for _, ch, _ in upserts)
    first_vid = int(meta["next_vid"])
    segment = None
    if n_new:
        all_vectors = np.concatenate([v for _, _, v in upserts if len(v)])
        if all_vectors.shape[1] != meta["dim"]:
            raise ValueError(f"vectors have dimension {all_vectors.shape[1]}, the index {meta['dim']}")
        segment = vec.write_segment(index.path / "vectors", vec.new_name(pass_id),
                                    np.arange(first_vid, first_vid + n_new), all_vectors)
        _add_ivf(index, segment, np.arange(first_vid, first_vid + n_new), all_vectors)
    pause_point("writing")  # crash tests: segment written, nothing committed
    try:
        removed = _write_records(conn, index, upserts, first_vid, pass_id, segment, meta)
    except BaseException:
        if segment:
            vec.flat_path(index.path / "vectors", segment["name"]).unlink(missing_ok=True)
            vec.ivf_path(index.path / "vectors", segment["name"]).unlink(missing_ok=True)
        raise
    return CommitResult(pass_id=pass_id, chunks_added=n_new, chunks_removed=removed,
                        articles_written=len(upserts) + len(index._removals) + len(index._touches))


def _add_ivf(index, row: dict, vids: np.ndarray, vectors: np.ndarray) -> None:
    """Give a new segment (a pass's or a merge's) its IVF index when it is big enough (``ivf_min_vectors``)."""
    if index.options.vector_index == "auto" and len(vids) >= index.options.ivf_min_vectors:
        row["ivf_bytes"] = vec.build_ivf(index.path / "vectors", row["name"], vids, vectors)
        row["kind"] = "ivf"


def _write_stories(conn, index) -> None:
    """The pass's story entries (rag_news.stories): reset (restory), removed articles' entries, new ones."""
    from . import story_tables

    if index._stories_reset:
        story_tables.clear(conn)
    story_tables.delete(conn, index._removals)
    story_tables.write(conn, index._stories)


def _write_records(conn, index, upserts, first_vid: int, pass_id: int, segment: dict | None, meta: dict) -> int:
    """The pass's one transaction. Returns how many chunks it deleted."""
    removed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for key in index._removals:
            removed += len(records.delete_article(conn, key))
        vid = first_vid
        for rec, chunks, _ in upserts:
            removed += len(records.delete_chunks(conn, rec["key"]))
            old = records.article(conn, rec["key"])
            if old is not None:
                conn.execute("DELETE FROM url_forms WHERE key=?", (rec["key"],))
            vids = list(range(vid, vid + len(chunks)))
            vid += len(chunks)
            records.write_article(conn, rec, rec.get("text", ""), _url_forms(rec))
            records.insert_chunks(conn, _chunk_rows(rec, chunks, vids))
        for key, fields in index._touches.items():
            if key not in index._upserts and records.update_article(conn, key, fields) and (
                    {"url", "source", "aliases"} & set(fields)):
                records.write_url_forms(conn, key, _url_forms(records.article(conn, key)))
        when = _now()
        conn.executemany("INSERT OR REPLACE INTO expired(key, reason, removed_at) VALUES (?,?,?)",
                         [(k, r, when) for k, r in index._expired.items()])
        conn.executemany("DELETE FROM expired WHERE key=?", [(rec["key"],) for rec, _, _ in upserts])
        for host, note in index._host_notes.items():
            records.put_host_note(conn, host, note, when)
        _write_stories(conn, index)
        if segment:
            records.put_segment(conn, segment, pass_id)
        got = records.add_pass(conn, when, vid - first_vid, removed, len(upserts) + len(index._removals)
                               + len(index._touches), None)
        assert got == pass_id, (got, pass_id)
        n_articles, n_chunks = records.counts(conn)
        records.put_meta(conn, {"next_vid": vid, "updated": when, "articles": n_articles, "chunks": n_chunks})
        pause_point("swapping")  # crash tests: everything written, the transaction not yet committed
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed


# ------------------------------------------------------------------------------------------ compaction
def compact(index, force: bool = False) -> list[dict]:
    """Run the merges :func:`~rag_news.store.vectors.plan_merges` asks for, again until it asks for none
    (a merge can fill the next tier); ``force``: one merge of everything, whatever its size."""
    conn, folder = index._conn, index.path / "vectors"
    done = []
    while True:
        rows = records.segments(conn)
        dead = set(records.dead_vids(conn))
        if force:
            groups = [[r["name"] for r in rows]] if len(rows) > 1 or dead else []
        else:
            groups = vec.plan_merges(rows, vec.dead_per_segment(folder, rows, dead), index.options.merge_factor,
                                     index.options.max_merge_vectors)
        if not groups:
            return done
        for names in groups:
            done.append(_merge(index, names, dead))
        if force:
            return done


def _merge(index, names: list[str], dead: set[int]) -> dict:
    """Merge segments ``names`` into one (dead vectors dropped), committed in its own transaction."""
    t0 = time.perf_counter()
    conn, folder = index._conn, index.path / "vectors"
    parts = [vec.read_segment(folder, n) for n in names]
    vids = np.concatenate([p[0] for p in parts])
    vectors = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, index.meta["dim"]), np.float32)
    live = ~np.isin(vids, np.fromiter(dead, dtype=np.int64, count=len(dead)))
    dropped = vids[~live]
    vids, vectors = vids[live], vectors[live]
    pass_id = records.last_pass(conn) + 1
    row = None
    if len(vids):
        row = vec.write_segment(folder, vec.new_name(pass_id), vids, vectors)
        _add_ivf(index, row, vids, vectors)
    conn.execute("BEGIN IMMEDIATE")
    try:
        when = _now()
        records.retire_segments(conn, names, pass_id, when)
        if row:
            records.put_segment(conn, row, pass_id)
        conn.executemany("DELETE FROM dead_vectors WHERE vid=?", [(int(v),) for v in dropped])
        records.add_pass(conn, when, 0, 0, 0, f"merged {len(names)} segments")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"merged": len(names), "vectors": int(len(vids)), "dropped": int(len(dropped)),
            "kind": row["kind"] if row else None, "seconds": round(time.perf_counter() - t0, 2)}


def delete_retired(index, grace_s: float | None = None) -> int:
    """Delete files of segments retired more than ``grace_s`` ago (readers may still map newer ones)."""
    from .faiss_store import RETIRED_GRACE_S

    grace = RETIRED_GRACE_S if grace_s is None else grace_s
    conn, folder = index._conn, index.path / "vectors"
    gone = 0
    for name, when in conn.execute("SELECT name, retired_at FROM retired_segments").fetchall():
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(when)).total_seconds()
        if age >= grace:
            for p in (vec.flat_path(folder, name), vec.ivf_path(folder, name)):
                p.unlink(missing_ok=True)
            conn.execute("DELETE FROM retired_segments WHERE name=?", (name,))
            gone += 1
    return gone


def delete_orphans(index) -> list[str]:
    """Remove segment files no committed pass refers to (left by a writer killed before its commit)."""
    conn, folder = index._conn, index.path / "vectors"
    if not folder.is_dir():
        return []
    known = {r["name"] for r in records.segments(conn)}
    known |= {r[0] for r in conn.execute("SELECT name FROM retired_segments")}
    removed = []
    for p in folder.iterdir():
        name = p.name.split(".")[0] if not p.name.startswith(".tmp-") else None
        if name is None or name not in known:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def check(index) -> list[str]:
    """Problems found by a full check (empty: none)."""
    problems = []
    conn, folder = index._conn, index.path / "vectors"
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        problems.append(f"SQLite integrity check: {result}")
    dead = set(records.dead_vids(conn))
    live_vectors = set()
    for row in records.segments(conn):
        path = vec.flat_path(folder, row["name"])
        if not path.is_file() or vec.sha256_of(path) != row["sha256"]:
            problems.append(f"segment {row['name']} is missing or does not match its sha256")
            continue
        vids, _ = vec.read_segment(folder, row["name"])
        live_vectors.update(int(v) for v in vids if int(v) not in dead)
    chunk_vids = {r[0] for r in conn.execute("SELECT vid FROM chunks")}
    if chunk_vids - live_vectors:
        problems.append(f"{len(chunk_vids - live_vectors)} chunks have no vector")
    if live_vectors - chunk_vids:
        problems.append(f"{len(live_vectors - chunk_vids)} live vectors belong to no chunk")
    orphans = conn.execute("SELECT count(*) FROM chunks WHERE key NOT IN (SELECT key FROM articles)").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} chunks belong to no article")
    return problems
