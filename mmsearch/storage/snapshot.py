"""A search snapshot: one collection's vectors (memory-mapped) and result columns.

Written after each run that changes the index, it lets a one-shot vector query answer with
numpy alone: importing LanceDB costs ~1.4 s of CPU, more than the whole query. It is used
only while it matches the items table's current version and the store's schema (the store's
`version_token` tells, from directory listings), so a stale or missing snapshot just sends
the query to LanceDB as before, where the store checks its schema.

A snapshot is named by the model's key (what a query knows) and records the key of the
tables it shows (they differ for a collection adopted from an older store).

The rows are kept twice: as Arrow (for filters, read with pyarrow only when a query has
filters) and as JSON lines with their byte offsets, from which an unfiltered query reads its
top rows without importing pyarrow (a tenth of a one-shot query). Its passages are also in an
SQLite FTS5 file (storage.fulltext), so a word query is answered here too; which rows are
pictures is one boolean array.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from mmsearch.core.config import is_local_uri
from mmsearch.storage import fulltext
from mmsearch.storage.registry import SCHEMA_VERSION, version_token
from mmsearch.storage.sample import distinct

if TYPE_CHECKING:
    import pyarrow as pa

    from mmsearch.core.config import Settings
    from mmsearch.query.filters import Filters
    from mmsearch.storage.store import Collection

COLUMNS = ["path", "kind", "t", "t_end", "page", "text", "ext", "taken"]
SHOWN = ["path", "kind", "t", "t_end", "page", "text", "taken"]  # what a result holds
META, VECTORS, ROWS = "meta.json", "vectors.npy", "rows.arrow"
LINES, OFFSETS = "rows.jsonl", "rows.offsets.npy"  # line i: bytes offsets[i]:offsets[i + 1]
PICTURES = "pictures.npy"  # row i is a picture (no passage)
FORMAT = 3  # 2: the JSON lines; 3: the passages' full-text file and the pictures' mask


def folder(db: str, key: str) -> Path:
    """In the store's folder; for a remote store, in this machine's cache (by its URI)."""
    if not is_local_uri(db):
        from mmsearch.storage.remote import cache_folder

        return cache_folder(db) / "snapshots" / key
    return Path(db) / "snapshots" / key


def write(coll: Collection) -> None:
    """Snapshot the collection as it is now, or remove a snapshot that can no longer be made
    (too many items, a full disk): queries then simply go to LanceDB."""
    from mmsearch.core.private import private_folder, private_umask

    db, key = coll.store.uri, coll.model_key
    target = folder(db, key)
    work = target.parent / f".{key}.{os.getpid()}"
    try:
        if not is_local_uri(db):  # in this machine's cache: private from its top down
            from mmsearch.core.private import private_cache

            private_cache()
        with private_umask():  # paths and passages: readable by their owner only
            private_folder(target.parent)
            _write(coll, db, target, work)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(coll: Collection, db: str, target: Path, work: Path) -> None:
    """Streamed batch by batch: memory stays flat however large the index."""
    import pyarrow as pa

    from mmsearch.storage.store import ANN_MIN_ITEMS  # past it, the store's ANN index answers

    before = version_token(db, coll.key)
    count = coll.item_count()
    if before is None or count > ANN_MIN_ITEMS:
        shutil.rmtree(target, ignore_errors=True)
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    vectors = np.lib.format.open_memmap(
        work / VECTORS, mode="w+", dtype=np.float32, shape=(count, coll.dim)
    )
    batches = coll.batches([*COLUMNS, "vector"], 8192)
    rows_schema = batches.schema.remove(batches.schema.get_field_index("vector"))
    done, texts, offsets, pictures = 0, 0, [0], np.zeros(count, dtype=bool)
    passages = fulltext.Writer(work / fulltext.NAME)
    with (
        pa.OSFile(str(work / ROWS), "wb") as sink,
        pa.ipc.new_file(sink, rows_schema) as out,
        open(work / LINES, "wb") as lines,
    ):
        for batch in batches:
            flat = batch["vector"].flatten().to_numpy(zero_copy_only=False)
            vectors[done : done + batch.num_rows] = flat.reshape(batch.num_rows, coll.dim)
            out.write_batch(batch.drop_columns(["vector"]))
            written = []
            for i, row in enumerate(batch.select(SHOWN).to_pylist(), done):
                line = json.dumps(row).encode() + b"\n"
                lines.write(line)
                offsets.append(offsets[-1] + len(line))
                if row["text"] is None:
                    pictures[i] = True
                else:
                    written.append((i, row["text"]))
            passages.add(written)
            done += batch.num_rows
            texts += batch.num_rows - batch["text"].null_count
    passages.close()
    vectors.flush()
    del vectors
    np.save(work / OFFSETS, np.array(offsets, dtype=np.int64))
    np.save(work / PICTURES, pictures[:done])
    meta = {
        "format": FORMAT,
        "signature": before,
        "table": coll.key,
        "schema": SCHEMA_VERSION,
        "count": done,
        "dim": coll.dim,
        "has_text": texts > 0,
    }
    (work / META).write_text(json.dumps(meta))
    if done != count or version_token(db, coll.key) != before:  # a commit landed meanwhile
        return
    old = target.parent / f".{coll.model_key}.old.{os.getpid()}"
    if target.exists():
        target.rename(old)  # readers keep their open maps of the old files
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class Snapshot:
    """Its files are opened once: a newer snapshot renamed into place meanwhile leaves these
    readable, and in step with each other."""

    vectors: np.ndarray  # (n, dim) float32, memory-mapped: scores equal LanceDB's
    offsets: np.ndarray  # (n + 1,): where each row's JSON line starts in `lines`
    lines: BinaryIO
    arrow: BinaryIO
    has_text: bool
    pictures: np.ndarray  # (n,) bool: the rows without a passage
    passages: fulltext.FullText
    _table: pa.Table | None = None
    _sample: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def table(self) -> pa.Table:
        """Every column of every row, as Arrow: what filters are computed on."""
        with self._lock:
            if self._table is None:
                import pyarrow as pa

                self.arrow.seek(0)
                self._table = pa.ipc.open_file(self.arrow).read_all()
            return self._table

    def picture_sample(self, most: int) -> np.ndarray:
        """Up to `most` picture vectors (photos, frames, pages; no passages), evenly spread
        over the rows, near-copies once: what a query's scores are calibrated on (made once
        per snapshot)."""
        if self._sample is None:
            rows = np.flatnonzero(self.pictures)
            step = max(1, -(-len(rows) // most))
            self._sample = distinct(np.asarray(self.vectors[rows[::step]], dtype=np.float32))
        return self._sample

    def holds(self, path: str) -> bool:
        import pyarrow.compute as pc

        return bool(pc.any(pc.equal(self.table()["path"], path)).as_py())

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """The rows the filters let through; None (and no pyarrow) when they let all."""
        return filters.mask(self.table()) if filters.predicates() else None

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
        return [self.row(int(i), float(scores[i])) for i in top]

    def text_search(
        self, words: str, limit: int, mask: np.ndarray | None, column: str
    ) -> list[dict[str, Any]]:
        """Passages matching `words` by BM25 (`score`) in the full-text index that reads as
        the store's `column` does, best first, among those `mask` allows."""
        return [self.row(i, s) for i, s in self.passages.search(words, column, limit, mask)]

    def row(self, i: int, score: float) -> dict[str, Any]:
        """Row `i` as a result row, with its `score`."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        row = json.loads(os.pread(self.lines.fileno(), end - start, start))
        row["score"] = score
        return row


@dataclass
class _Opened:
    stamp: tuple[int, int, int]  # the vectors file's inode, size and mtime
    table: str
    token: str
    snapshot: Snapshot


_opened: dict[tuple[str, str], _Opened] = {}  # a server keeps its maps


def refresh(coll: Collection, changed: bool) -> None:
    """After a run: compact a changed collection and snapshot it; give an unchanged one a
    snapshot if it has none (or an old one)."""
    if changed:
        coll.optimize()
        write(coll)
    elif open_fresh(coll.store.uri, coll.model_key) is None:
        write(coll)


def open_fresh(db: str, key: str) -> Snapshot | None:
    """The snapshot of model `key`, if it shows its items table as it is now, written by
    this schema of the store."""
    where = folder(db, key)
    try:
        st = os.stat(where / VECTORS)
    except OSError:
        return None
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    known = _opened.get((db, key))
    if known is not None and known.stamp == stamp:
        return known.snapshot if version_token(db, known.table) == known.token else None
    try:
        meta = json.loads((where / META).read_text())
        if meta.get("schema") != SCHEMA_VERSION:
            return None
        table = str(meta["table"])
        token = version_token(db, table)
        if token is None or meta["signature"] != token:
            return None
        if meta.get("format") != FORMAT:
            return None
        vectors = np.load(where / VECTORS, mmap_mode="r")
        offsets = np.load(where / OFFSETS)
        pictures = np.load(where / PICTURES)
        passages = fulltext.FullText(where / fulltext.NAME)
        lines = open(where / LINES, "rb")  # noqa: SIM115 (kept open with the snapshot)
        arrow = open(where / ROWS, "rb")  # noqa: SIM115
        if offsets.shape != (len(vectors) + 1,) or offsets[-1] != os.fstat(lines.fileno()).st_size:
            return None
        if pictures.shape != (len(vectors),):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, sqlite3.Error):
        return None
    snap = Snapshot(vectors, offsets, lines, arrow, bool(meta["has_text"]), pictures, passages)
    _opened[db, key] = _Opened(stamp, table, token, snap)
    return snap


def fetch(settings: Settings) -> Snapshot | None:
    """For a remote store: the snapshot, made here from the store when this machine has
    none that is current. The vectors cross the network once per version of the table, not
    once per query."""
    from mmsearch.storage.store import open_collection

    write(open_collection(settings))
    return open_fresh(settings.db, settings.model_key)
