"""A search snapshot: one collection's vectors (memory-mapped) and result columns.

Written after each run that changes the index, it lets a one-shot vector query answer with
numpy alone: importing LanceDB costs ~1.4 s of CPU, more than the whole query. It is used
only while it matches the items table's current version (a directory listing tells), so a
stale or missing snapshot just sends the query to LanceDB as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import is_local_uri
from mmsearch.store import ANN_MIN_ITEMS as MAX_ITEMS  # past it, the store's ANN index

if TYPE_CHECKING:
    import pyarrow as pa

    from mmsearch.store import Collection

COLUMNS = ["path", "kind", "t", "t_end", "page", "text", "ext", "taken"]
META, VECTORS, ROWS = "meta.json", "vectors.npy", "rows.arrow"


def folder(db: str, key: str) -> Path:
    return Path(db) / "snapshots" / key


def signature(db: str, key: str) -> str | None:
    """Names the items table's versions: any commit adds a manifest, so any change shows."""
    try:
        names = sorted(os.listdir(Path(db) / f"items_{key}.lance" / "_versions"))
    except OSError:
        return None
    return hashlib.sha1("\0".join(n for n in names if n.endswith(".manifest")).encode()).hexdigest()


def write(coll: Collection) -> None:
    """Snapshot the collection as it is now, or remove a snapshot that can no longer be made
    (too many items, a full disk): queries then simply go to LanceDB."""
    db, key = coll.store.uri, coll.info["key"]
    if not is_local_uri(db):
        return
    target = folder(db, key)
    work = target.parent / f".{key}.{os.getpid()}"
    try:
        _write(coll, db, key, target, work)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(coll: Collection, db: str, key: str, target: Path, work: Path) -> None:
    """Streamed batch by batch: memory stays flat however large the index."""
    import pyarrow as pa

    before = signature(db, key)
    count = coll.items.count_rows()
    if before is None or count > MAX_ITEMS:
        shutil.rmtree(target, ignore_errors=True)
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    vectors = np.lib.format.open_memmap(
        work / VECTORS, mode="w+", dtype=np.float32, shape=(count, coll.dim)
    )
    batches = coll.items.search().select([*COLUMNS, "vector"]).limit(None).to_batches(8192)
    rows_schema = batches.schema.remove(batches.schema.get_field_index("vector"))
    done, texts = 0, 0
    with pa.OSFile(str(work / ROWS), "wb") as sink, pa.ipc.new_file(sink, rows_schema) as out:
        for batch in batches:
            flat = batch["vector"].flatten().to_numpy(zero_copy_only=False)
            vectors[done : done + batch.num_rows] = flat.reshape(batch.num_rows, coll.dim)
            out.write_batch(batch.drop_columns(["vector"]))
            done += batch.num_rows
            texts += batch.num_rows - batch["text"].null_count
    vectors.flush()
    del vectors
    meta = {"signature": before, "count": done, "dim": coll.dim, "has_text": texts > 0}
    (work / META).write_text(json.dumps(meta))
    if done != count or signature(db, key) != before:  # a commit landed meanwhile
        return
    old = target.parent / f".{key}.old.{os.getpid()}"
    if target.exists():
        target.rename(old)  # readers keep their open maps of the old files
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class Snapshot:
    rows: pa.Table
    vectors: np.ndarray  # (n, dim) float32, memory-mapped: scores equal LanceDB's
    has_text: bool

    def holds(self, path: str) -> bool:
        import pyarrow.compute as pc

        return bool(pc.any(pc.equal(self.rows["path"], path)).as_py())

    def search(
        self, vector: np.ndarray, limit: int, mask: np.ndarray | None
    ) -> list[dict[str, Any]]:
        """Exact nearest rows by cosine (`score`), best first, among those `mask` allows."""
        scores = self.vectors @ vector.astype(np.float32)
        if mask is not None:
            scores[~mask] = -np.inf
        allowed = len(scores) if mask is None else int(mask.sum())
        limit = min(limit, allowed)
        if limit <= 0:
            return []
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.argsort(-scores[top], kind="stable")]
        rows = self.rows.take(top).select(["path", "kind", "t", "t_end", "page", "text"])
        found = rows.to_pylist()
        for r, s in zip(found, scores[top], strict=True):
            r["score"] = float(s)
        return found


_opened: dict[tuple[str, str], tuple[tuple[Any, ...], Snapshot]] = {}  # a server keeps its maps


def refresh(coll: Collection, changed: bool) -> None:
    """After a run: compact a changed collection and snapshot it; give an unchanged one a
    snapshot if it has none (or an old one)."""
    if changed:
        coll.optimize()
        write(coll)
    elif open_fresh(coll.store.uri, coll.info["key"]) is None:
        write(coll)


def open_fresh(db: str, key: str) -> Snapshot | None:
    """The snapshot, if it shows the items table as it is now."""
    if not is_local_uri(db):
        return None
    where = folder(db, key)
    try:
        st = os.stat(where / VECTORS)
    except OSError:
        return None
    current = (signature(db, key), st.st_ino, st.st_size, st.st_mtime_ns)
    if (db, key) in _opened and _opened[db, key][0] == current:
        return _opened[db, key][1]
    try:
        meta = json.loads((where / META).read_text())
        if current[0] is None or meta["signature"] != current[0]:
            return None
        import pyarrow as pa

        vectors = np.load(where / VECTORS, mmap_mode="r")
        rows = pa.ipc.open_file(pa.memory_map(str(where / ROWS))).read_all()
    except (OSError, ValueError, KeyError):
        return None
    snap = Snapshot(rows, vectors, bool(meta["has_text"]))
    _opened[db, key] = (current, snap)
    return snap
