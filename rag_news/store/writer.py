"""Writing a :class:`~rag_news.store.faiss_store.NewsIndex`: commit a pass, compact segments, clean up.

Every function here runs with the index's writer lock held (``NewsIndex.commit`` / ``compact`` take it), and
is given what it works on: the index's SQLite connection, its ``vectors/`` folder, the staged pass
(:class:`~rag_news.store.base.Staged`), the :class:`StoreOptions` and the fault hook
(:class:`rag_news.faults.Faults`: crash tests stop a writer at ``"writing"`` and ``"swapping"``).
Order of a commit: (1) the pass's new vectors go to a new segment file (fsync'd), (2) one SQLite transaction
records the articles, chunks, keyword index entries, deleted vector ids and the segment. A crash before (2)
commits leaves an orphan segment file, which :func:`delete_orphans` removes on the next commit.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..faults import NO_FAULTS, Faults
from . import records, story_tables, vectors as vec
from .vectors import StoreOptions
from .base import CommitResult, Staged, chunk_rows, url_forms, utc_now

RETIRED_GRACE_S = 300  # retired segment files are deleted this long after a merge (readers may still map them)


def commit_pass(conn, folder: Path, staged: Staged, options: StoreOptions, faults: Faults = NO_FAULTS,
                db_path: Path | None = None) -> CommitResult:
    """Write ``staged`` as one pass of the index whose database is ``conn`` and whose segments live in
    ``folder``: a new segment file (fsync'd), then one SQLite transaction."""
    if not staged.pending:
        return CommitResult(pass_id=None)
    delete_orphans(conn, folder)
    meta = records.read_meta(conn, db_path or folder.parent / records.DB_NAME)
    pass_id = records.last_pass(conn) + 1
    upserts = list(staged.upserts.values())
    n_new = sum(len(ch) for _, ch, _ in upserts)
    first_vid = int(meta["next_vid"])
    segment = None
    if n_new:
        all_vectors = np.concatenate([v for _, _, v in upserts if len(v)])
        if all_vectors.shape[1] != meta["dim"]:
            raise ValueError(f"vectors have dimension {all_vectors.shape[1]}, the index {meta['dim']}")
        segment = vec.write_segment(folder, vec.new_name(pass_id), np.arange(first_vid, first_vid + n_new),
                                    all_vectors)
        _add_ivf(folder, options, segment, np.arange(first_vid, first_vid + n_new), all_vectors)
    faults.reached("writing")  # crash tests: segment written, nothing committed
    try:
        removed = _write_records(conn, staged, first_vid, pass_id, segment, faults)
    except BaseException:
        if segment:
            vec.flat_path(folder, segment["name"]).unlink(missing_ok=True)
            vec.ivf_path(folder, segment["name"]).unlink(missing_ok=True)
        raise
    return CommitResult(pass_id=pass_id, chunks_added=n_new, chunks_removed=removed,
                        articles_written=staged.articles_written)


def _add_ivf(folder: Path, options: StoreOptions, row: dict, vids: np.ndarray, vectors: np.ndarray) -> None:
    """Give a new segment (a pass's or a merge's) its IVF index when it is big enough (``ivf_min_vectors``)."""
    if options.vector_index == "auto" and len(vids) >= options.ivf_min_vectors:
        row["ivf_bytes"] = vec.build_ivf(folder, row["name"], vids, vectors)
        row["kind"] = "ivf"


def _write_stories(conn, staged: Staged) -> None:
    """The pass's story entries (rag_news.stories): reset (restory), removed articles' entries, new ones."""
    if staged.stories_reset:
        story_tables.clear(conn)
    story_tables.delete(conn, staged.removals)
    story_tables.write(conn, staged.stories)


def _chunk_rows(rec: dict, chunks, first_vid: int) -> list[tuple]:
    """The chunks table's rows of an article (vector ids from ``first_vid``)."""
    return [(first_vid + n, cid, rec["key"], index, rec.get("published"), text, meta)
            for n, (index, cid, text, meta) in enumerate(chunk_rows(rec, chunks))]


def _write_records(conn, staged: Staged, first_vid: int, pass_id: int, segment: dict | None,
                   faults: Faults) -> int:
    """The pass's one transaction. Returns how many chunks it deleted."""
    upserts = list(staged.upserts.values())
    conn.execute("BEGIN IMMEDIATE")
    try:
        records.ensure_additions(conn)  # an index made before them gets them here (no-op after)
        dead = []
        for key in staged.removals:
            dead += records.delete_article(conn, key)
        vid = first_vid
        for rec, chunks, _ in upserts:
            dead += records.delete_chunks(conn, rec["key"])
            old = records.article(conn, rec["key"])
            if old is not None:
                conn.execute("DELETE FROM url_forms WHERE key=?", (rec["key"],))
            records.write_article(conn, rec, rec.get("text", ""), url_forms(rec))
            records.insert_chunks(conn, _chunk_rows(rec, chunks, vid))
            vid += len(chunks)
        for key, fields in staged.foreign_touches().items():
            if records.update_article(conn, key, fields) and ({"url", "source", "aliases"} & set(fields)):
                records.write_url_forms(conn, key, url_forms(records.article(conn, key)))
        when = utc_now()
        conn.executemany("INSERT OR REPLACE INTO expired(key, reason, removed_at) VALUES (?,?,?)",
                         [(k, r, when) for k, r in staged.expired.items()])
        conn.executemany("DELETE FROM expired WHERE key=?", [(rec["key"],) for rec, _, _ in upserts])
        for host, note in staged.host_notes.items():
            records.put_host_note(conn, host, note, when)
        _write_stories(conn, staged)
        if segment:
            records.put_segment(conn, segment, pass_id, [(first_vid, vid - 1)])
        records.count_dead(conn, dead)  # the segments' dead counts follow the change (no id map read)
        records.stamp_dead(conn, dead, pass_id)
        removed = len(dead)
        got = records.add_pass(conn, when, vid - first_vid, removed, staged.articles_written, None)
        assert got == pass_id, (got, pass_id)
        n_articles, n_chunks = records.counts(conn)
        records.put_meta(conn, {"next_vid": vid, "updated": when, "articles": n_articles, "chunks": n_chunks})
        faults.reached("swapping")  # crash tests: everything written, the transaction not yet committed
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed


# ------------------------------------------------------------------------------------------ compaction
def compact(conn, folder: Path, options: StoreOptions, force: bool = False) -> list[dict]:
    """Run the merges :func:`~rag_news.store.vectors.plan_merges` asks for, again until it asks for none
    (a merge can fill the next tier); ``force``: one merge of everything, whatever its size. Reads the
    segments' dead counts from the database (kept as vectors die); the dead vector ids only to merge."""
    done = []
    while True:
        rows = records.segments(conn)
        dead_in = _dead_counts(conn, folder, rows)
        if force:
            any_dead = conn.execute("SELECT 1 FROM dead_vectors LIMIT 1").fetchone() is not None
            groups = [[r["name"] for r in rows]] if rows and (len(rows) > 1 or any_dead) else []
        else:
            groups = vec.plan_merges(rows, dead_in, options.merge_factor, options.max_merge_vectors)
        if not groups:
            return done
        dead = set(records.dead_vids(conn))
        for names in groups:
            done.append(_merge(conn, folder, options, names, dead))
        if force:
            return done


def _dead_counts(conn, folder: Path, rows: list[dict]) -> dict[str, int]:
    """Dead vectors per segment, from the database; a segment not counted yet (an index made before the
    counts) is counted once from its id map, and its count and id runs stored."""
    unknown = [r for r in rows if r["dead"] is None]
    if unknown:
        dead = np.fromiter(records.dead_vids(conn), dtype=np.int64)
        counted = {r["name"]: vec.count_segment(folder, r["name"], dead) for r in unknown}
        conn.execute("BEGIN IMMEDIATE")
        try:
            records.ensure_additions(conn)
            for name, (n, runs) in counted.items():
                records.set_counted(conn, name, n, runs)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for r in unknown:
            r["dead"] = counted[r["name"]][0]
    return {r["name"]: int(r["dead"]) for r in rows}


def _merge(conn, folder: Path, options: StoreOptions, names: list[str], dead: set[int]) -> dict:
    """Merge segments ``names`` (at least one) into one (dead vectors dropped), committed in its own
    transaction."""
    t0 = time.perf_counter()
    parts = [vec.read_segment(folder, n) for n in names]
    vids = np.concatenate([p[0] for p in parts])
    vectors = np.concatenate([p[1] for p in parts])
    live = ~np.isin(vids, np.fromiter(dead, dtype=np.int64, count=len(dead)))
    dropped = vids[~live]
    vids, vectors = vids[live], vectors[live]
    pass_id = records.last_pass(conn) + 1
    row = None
    if len(vids):
        row = vec.write_segment(folder, vec.new_name(pass_id), vids, vectors)
        _add_ivf(folder, options, row, vids, vectors)
    conn.execute("BEGIN IMMEDIATE")
    try:
        when = utc_now()
        records.retire_segments(conn, names, pass_id, when)
        if row:
            records.put_segment(conn, row, pass_id)
        records.move_runs(conn, names, row["name"] if row else None)
        conn.executemany("DELETE FROM dead_vectors WHERE vid=?", [(int(v),) for v in dropped])
        records.add_pass(conn, when, 0, 0, 0, f"merged {len(names)} segments")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"merged": len(names), "vectors": int(len(vids)), "dropped": int(len(dropped)),
            "kind": row["kind"] if row else None, "seconds": round(time.perf_counter() - t0, 2)}


def delete_retired(conn, folder: Path, grace_s: float | None = None) -> int:
    """Delete files of segments retired more than ``grace_s`` ago (readers may still map newer ones)."""
    grace = RETIRED_GRACE_S if grace_s is None else grace_s
    gone = 0
    for name, when in conn.execute("SELECT name, retired_at FROM retired_segments").fetchall():
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(when)).total_seconds()
        if age >= grace:
            for p in (vec.flat_path(folder, name), vec.ivf_path(folder, name)):
                p.unlink(missing_ok=True)
            conn.execute("DELETE FROM retired_segments WHERE name=?", (name,))
            gone += 1
    return gone


def delete_orphans(conn, folder: Path) -> list[str]:
    """Remove segment files no committed pass refers to (left by a writer killed before its commit)."""
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


def check(conn, folder: Path) -> list[str]:
    """Problems found by a full check of the index whose database is ``conn`` (empty: none)."""
    problems = []
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
