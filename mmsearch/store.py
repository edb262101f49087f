"""The LanceDB store: one `files` and one `items` table per model, plus a `models` registry.

Only this module talks to LanceDB. Writers hold the store's advisory lock; readers never lock.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

os.environ.setdefault("RUST_LOG", "error")  # lance logs routine warnings to stderr otherwise

import numpy as np
import pyarrow as pa
from filelock import FileLock, Timeout

from mmsearch.config import Settings, is_local_uri
from mmsearch.errors import MmsearchError, NoIndex, StoreBusy, StoreError, one_line
from mmsearch.sql import sql_str, subtree_filter

MODELS = "models"
KINDS = ("image", "video", "document")
_IN_CHUNK = 500  # paths per `IN (...)` clause: keeps each SQL filter small
# Old versions are kept this long after a compaction, so a query that opened the table
# just before it still finds its files.
RETENTION = timedelta(minutes=10)
# Past this many items an IVF_FLAT index answers vector queries (below, the search snapshot
# is exact and fast enough). Full vectors in sqrt(N) partitions, 20 probed: at 1M clustered
# items 12 ms and recall@10 1.0, where IVF_PQ (64 sub-vectors) needed 60x re-ranking and
# 127 ms for 0.98 and IVF_SQ 23 ms for 0.97 (bench/bench_search.py measures it).
ANN_MIN_ITEMS = 200_000
ANN_NPROBES = 20
_RESULT_COLUMNS = ["path", "kind", "t", "t_end", "page", "text"]
_held_locks: set[str] = set()  # writer locks this process holds

MODELS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("pretrained", pa.string()),
        ("dim", pa.int32()),
        ("roots", pa.list_(pa.string())),
        ("created", pa.float64()),
        ("updated", pa.float64()),
    ]
)
FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("content_hash", pa.string()),
        ("status", pa.string()),  # "ok", "error" (bad file) or "unreadable" (retried)
        ("reason", pa.string()),
        ("items", pa.int32()),
        ("indexed_at", pa.float64()),
        # The OCR pass: null (pending), "text", "none" (no words found), "skipped" (the
        # selector saw no sign of text), or "error: reason".
        ("ocr", pa.string()),
    ]
)


def items_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("path", pa.string()),
            ("kind", pa.string()),
            ("t", pa.float64()),  # seconds into a video where this frame's scene starts ...
            ("t_end", pa.float64()),  # ... and where the next kept frame takes over
            ("page", pa.int32()),  # page of a document
            ("text", pa.string()),  # a passage of a document; null for pictures
            ("origin", pa.string()),  # "ocr" for words read off a picture, else empty
            ("ext", pa.string()),  # ".jpg": for --ext
            ("taken", pa.float64()),  # capture time (EXIF, video metadata, else mtime): --after
            ("content_hash", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


@dataclass(frozen=True, slots=True)
class FileRecord:
    size: int
    mtime_ns: int
    content_hash: str
    status: str


@dataclass(slots=True)
class Item:
    """One embedding and where in its file it comes from."""

    path: str
    kind: str
    content_hash: str
    vector: np.ndarray
    t: float | None = None
    t_end: float | None = None
    page: int | None = None
    ext: str = ""
    taken: float | None = None
    text: str | None = None
    origin: str = ""


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def open_collection(settings: Settings) -> Collection:
    """The collection of `settings`' model, or a NoIndex error that says what to do."""
    store = Store(settings.db)
    coll = store.collection(settings) if store.exists() else None
    if coll is None:
        others = [m["model"] for m in store.models()] if store.exists() else []
        hint = f" (the store has vectors for: {', '.join(others)}; pass --model)" if others else ""
        raise NoIndex(
            f"nothing indexed with {settings.model} in {settings.db} yet: "
            f"run `mmsearch index PATH` first{hint}"
        )
    return coll


class Store:
    """A LanceDB database at `uri` (a folder, or any URI LanceDB accepts)."""

    def __init__(self, uri: str):
        self.uri = uri
        self._db: Any = None

    @property
    def db(self) -> Any:
        if self._db is None:
            self._make_local_dir()
            try:
                import lancedb  # here, not at import: snapshot checks must stay cheap

                self._db = lancedb.connect(self.uri)
            except Exception as e:
                raise StoreError(f"cannot open store {self.uri}: {one_line(e)}") from None
        return self._db

    def _make_local_dir(self) -> None:
        if not is_local_uri(self.uri):
            return
        try:
            os.makedirs(self.uri, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store folder {self.uri}: {e.strerror or e}") from None

    def exists(self) -> bool:
        if is_local_uri(self.uri) and not os.path.isdir(self.uri):
            return False
        return MODELS in self._table_names()

    def _table_names(self) -> list[str]:
        try:
            return list(self.db.list_tables().tables)
        except Exception as e:
            raise StoreError(f"cannot read store {self.uri}: {one_line(e)}") from None

    @contextmanager
    def writer_lock(self, purpose: str = "index") -> Iterator[None]:
        """Hold the one-writer lock, or fail at once saying who holds it. Re-entrant within
        a process, so `watch` can hold it for its lifetime and sync batch after batch."""
        lock_path = self._lock_path()
        if lock_path in _held_locks:
            yield
            return
        lock = FileLock(lock_path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise StoreBusy(
                f"{self._lock_owner(lock_path)} is writing to {self.uri}; "
                "wait for it to finish (or stop it) and try again"
            ) from None
        _held_locks.add(lock_path)
        try:
            with open(lock_path + ".owner", "w") as f:
                f.write(f"mmsearch {purpose} (pid {os.getpid()})")
            yield
        finally:
            _held_locks.discard(lock_path)
            lock.release()

    def _lock_path(self) -> str:
        if is_local_uri(self.uri):
            self._make_local_dir()
            return os.path.join(self.uri, ".writer.lock")
        from platformdirs import user_cache_path

        folder = user_cache_path("mmsearch") / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / (hashlib.sha1(self.uri.encode()).hexdigest() + ".lock"))

    @staticmethod
    def _lock_owner(lock_path: str) -> str:
        try:
            with open(lock_path + ".owner") as f:
                return f.read().strip() or "another mmsearch process"
        except OSError:
            return "another mmsearch process"

    def models(self) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        table = self._open(MODELS)
        try:
            return table.to_arrow().to_pylist()
        except Exception as e:
            raise damaged(self.uri, e) from None

    def collection(self, settings: Settings) -> Collection | None:
        """The tables of `settings`' model, or None if it has indexed nothing here."""
        key = settings.model_key
        info = next((m for m in self.models() if m["key"] == key), None)
        if info is None:
            return None
        return Collection(self, info)

    def create_collection(self, settings: Settings, dim: int) -> Collection:
        models = self.db.create_table(MODELS, schema=MODELS_SCHEMA, exist_ok=True)
        now = time.time()
        info = {
            "key": settings.model_key,
            "model": settings.model,
            "pretrained": settings.pretrained or "",
            "dim": dim,
            "roots": [],
            "created": now,
            "updated": now,
        }
        key = info["key"]
        self.db.create_table(f"files_{key}", schema=FILES_SCHEMA, exist_ok=True)
        self.db.create_table(f"items_{key}", schema=items_schema(dim), exist_ok=True)
        models.add(pa.Table.from_pylist([info], schema=MODELS_SCHEMA))
        return Collection(self, info)

    def _open(self, name: str) -> Any:
        try:
            return self.db.open_table(name)
        except Exception as e:
            raise damaged(self.uri, e) from None

    def size_bytes(self) -> int | None:
        if not is_local_uri(self.uri):
            return None
        total = 0
        for folder, _, names in os.walk(self.uri):
            for name in names:
                with suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total


def damaged(uri: str, error: BaseException) -> StoreError:
    return StoreError(
        f"the store {uri} is damaged or unreadable ({one_line(error)[:150]}); move it aside "
        "and run `mmsearch index` on your folders again to rebuild it"
    )


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """LanceDB reports a damaged dataset (a missing data file, a cut manifest) as whatever
    exception its layers raise: say it once, plainly, naming the store."""

    @functools.wraps(method)
    def wrapper(self: Collection, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MmsearchError:
            raise
        except Exception as e:
            raise damaged(self.store.uri, e) from None

    return wrapper  # type: ignore[return-value]


class Collection:
    """One model's view of the store: which files are indexed and their embeddings."""

    def __init__(self, store: Store, info: dict[str, Any]):
        self.store = store
        self.info = info
        self.files = store._open(f"files_{info['key']}")
        self.items = store._open(f"items_{info['key']}")
        self._text_index: bool | None = None

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @_guarded
    def records_under(self, roots: Sequence[str]) -> dict[str, FileRecord]:
        table = (
            self.files.search()
            .where(subtree_filter(roots))
            .select(["path", "size", "mtime_ns", "content_hash", "status"])
            .limit(None)
            .to_arrow()
        )
        names = ("path", "size", "mtime_ns", "content_hash", "status")
        cols = [table[c].to_pylist() for c in names]
        return {p: FileRecord(s, m, h, st) for p, s, m, h, st in zip(*cols, strict=True)}

    @_guarded
    def item_paths_under(self, paths: Sequence[str]) -> set[str]:
        rows = self.items.search().where(subtree_filter(paths)).select(["path"]).limit(None)
        return set(rows.to_arrow()["path"].to_pylist())

    @_guarded
    def items_for_hashes(self, hashes: Sequence[str]) -> dict[str, list[Item]]:
        """Stored embeddings of these contents, so a moved or copied file is not re-embedded;
        each item keeps the path it was read from.

        The same content can be indexed at several paths (copies, or a rename that a killed
        run left half done): the items of one path only, or the file would get them twice."""
        found: dict[str, list[Item]] = {}
        source: dict[str, str] = {}
        for chunk in _chunks(sorted(hashes)):
            rows = (
                self.items.search()
                .where(_in("content_hash", chunk))
                .select(
                    [
                        "path",
                        "content_hash",
                        "kind",
                        "t",
                        "t_end",
                        "page",
                        "taken",
                        "text",
                        "origin",
                        "vector",
                    ]
                )
                .limit(None)
                .to_arrow()
                .to_pylist()
            )
            for r in rows:
                if source.setdefault(r["content_hash"], r["path"]) != r["path"]:
                    continue
                found.setdefault(r["content_hash"], []).append(
                    Item(
                        path=r["path"],
                        kind=r["kind"],
                        content_hash=r["content_hash"],
                        vector=np.asarray(r["vector"], np.float32),
                        t=r["t"],
                        t_end=r["t_end"],
                        page=r["page"],
                        taken=r["taken"],
                        text=r["text"],
                        origin=r["origin"] or "",
                    )
                )
        return found

    @_guarded
    def stored_vector(self, path: str, size: int, mtime_ns: int) -> np.ndarray | None:
        """The embedding of an indexed, unchanged single-item file (an image), if any."""
        current = self.files.count_rows(
            f"path = {sql_str(path)} AND size = {size} AND mtime_ns = {mtime_ns} "
            "AND status = 'ok' AND items = 1"
        )
        if not current:
            return None
        rows = self.items.search().where(f"path = {sql_str(path)}").select(["vector"]).limit(1)
        rows = rows.to_arrow()["vector"].to_pylist()
        return np.asarray(rows[0], np.float32) if rows else None

    @_guarded
    def ocr_outcomes(self, paths: Sequence[str]) -> dict[str, str | None]:
        """What the OCR pass concluded for these files (None: not read yet)."""
        found: dict[str, str | None] = {}
        for chunk in _chunks(list(paths)):
            rows = self.files.search().where(_in("path", chunk)).select(["path", "ocr"])
            found.update({r["path"]: r["ocr"] for r in rows.limit(None).to_arrow().to_pylist()})
        return found

    @_guarded
    def write(self, items: Sequence[Item], files: Sequence[dict[str, Any]]) -> None:
        """Replace the items of these files, then record the files: the files row is written
        last, so a run killed in between redoes the file instead of trusting half a write."""
        paths = [f["path"] for f in files]
        for chunk in _chunks(paths):
            self.items.delete(_in("path", chunk))
        if items:
            self.items.add(self._items_table(items))
            if any(i.text for i in items):
                self._ensure_text_index()
        now = time.time()
        rows = [{**f, "indexed_at": now} for f in files]
        (
            self.files.merge_insert("path")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pa.Table.from_pylist(rows, schema=FILES_SCHEMA))
        )

    def _items_table(self, items: Sequence[Item]) -> pa.Table:
        vectors = np.stack([i.vector for i in items]).astype(np.float32, copy=False)
        return pa.table(
            {
                "path": [i.path for i in items],
                "kind": [i.kind for i in items],
                "t": pa.array([i.t for i in items], pa.float64()),
                "t_end": pa.array([i.t_end for i in items], pa.float64()),
                "page": pa.array([i.page for i in items], pa.int32()),
                "text": pa.array([i.text for i in items], pa.string()),
                "origin": [i.origin for i in items],
                "ext": [i.ext for i in items],
                "taken": pa.array([i.taken for i in items], pa.float64()),
                "content_hash": [i.content_hash for i in items],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), self.dim),
            },
            schema=items_schema(self.dim),
        )

    @_guarded
    def remove(self, paths: Sequence[str]) -> None:
        for chunk in _chunks(list(paths)):
            self.items.delete(_in("path", chunk))
            self.files.delete(_in("path", chunk))

    @_guarded
    def remove_subtrees(self, paths: Sequence[str]) -> tuple[int, int]:
        """Forget everything at or beneath `paths`; returns (files, items) removed."""
        where = subtree_filter(paths)
        counts = self.files.count_rows(where), self.items.count_rows(where)
        self.items.delete(where)
        self.files.delete(where)
        return counts

    @_guarded
    def search(self, vector: np.ndarray, limit: int, where: str | None) -> list[dict[str, Any]]:
        """Nearest items by cosine similarity (`score`), best first."""
        query = self.items.search(vector.astype(np.float32)).distance_type("dot")
        query = query.nprobes(ANN_NPROBES)  # only read when there is an ANN index
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_RESULT_COLUMNS, "_distance"]).limit(limit)
        rows = rows.to_arrow().to_pylist()
        for r in rows:
            r["score"] = 1.0 - r.pop("_distance")
        return rows

    @_guarded
    def text_search(self, text: str, limit: int, where: str | None) -> list[dict[str, Any]]:
        """Passages matching `text` by BM25 (`score`), best first; "quoted phrases" match
        as phrases. Empty when nothing with text was ever indexed."""
        if not self._has_text_index():
            return []
        query = self.items.search(text, query_type="fts")
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_RESULT_COLUMNS, "_score"]).limit(limit).to_arrow().to_pylist()
        for r in rows:
            r["score"] = r.pop("_score")
        return rows

    @_guarded
    def has_text(self) -> bool:
        """Whether any document passage was ever indexed here."""
        return self._has_text_index()

    def _has_vector_index(self) -> bool:
        return any(i.columns == ["vector"] for i in self.items.list_indices())

    def _has_text_index(self) -> bool:
        if self._text_index is None:
            self._text_index = any(i.columns == ["text"] for i in self.items.list_indices())
        return self._text_index

    def _ensure_text_index(self) -> None:
        if not self._has_text_index():
            from lancedb.index import FTS

            self.items.create_index("text", config=FTS(with_position=True))
            self._text_index = True

    @_guarded
    def vectors(self, where: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Every item matching `where`: (path, kind, t) rows and their vectors as a matrix."""
        table = self.items.search().where(where).select(["path", "kind", "t", "vector"])
        table = table.limit(None).to_arrow()
        matrix = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        rows = table.select(["path", "kind", "t"]).to_pylist()
        return rows, matrix.reshape(len(rows), self.dim).astype(np.float32, copy=False)

    @_guarded
    def ocr_pending(self, paths: Sequence[str], kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Indexed files under `paths` the OCR pass has not looked at yet."""
        where = (
            f"{subtree_filter(paths)} AND status = 'ok' AND ocr IS NULL AND "
            f"kind IN ({', '.join(sql_str(k) for k in kinds)})"
        )
        rows = self.files.search().where(where)
        rows = rows.select(["path", "kind", "mtime_ns", "content_hash"])
        return sorted(rows.limit(None).to_arrow().to_pylist(), key=lambda r: r["path"])

    @_guarded
    def pictures_of(self, path: str) -> list[dict[str, Any]]:
        """A file's picture rows (frames, pages) and whether each page has a text layer."""
        rows = self.items.search().where(f"path = {sql_str(path)}")
        rows = rows.select(["t", "page", "text", "origin"]).limit(None).to_arrow().to_pylist()
        return rows

    @_guarded
    def write_ocr(self, items: Sequence[Item], outcomes: dict[str, str]) -> None:
        """Replace the OCR rows of these files, then record each file's outcome: killed in
        between, the pass simply reads those files again."""
        paths = list(outcomes)
        for chunk in _chunks(paths):
            self.items.delete(f"{_in('path', chunk)} AND origin = 'ocr'")
        if items:
            self.items.add(self._items_table(items))
            self._ensure_text_index()
        for outcome in sorted(set(outcomes.values())):
            done = [p for p in paths if outcomes[p] == outcome]
            for chunk in _chunks(done):
                self.files.update(where=_in("path", chunk), values={"ocr": outcome})

    @_guarded
    def ocr_counts(self) -> dict[str, int]:
        rows = self.files.search().where("status = 'ok'").select(["ocr"]).limit(None)
        counts: dict[str, int] = {}
        for value in rows.to_arrow()["ocr"].to_pylist():
            key = "pending" if value is None else "failed" if value.startswith("error") else value
            counts[key] = counts.get(key, 0) + 1
        return counts

    @_guarded
    def set_roots(self, roots: Sequence[str]) -> None:
        info = {**self.info, "roots": sorted(set(roots)), "updated": time.time()}
        models = self.store._open(MODELS)
        (
            models.merge_insert("key")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pa.Table.from_pylist([info], schema=MODELS_SCHEMA))
        )
        self.info = info

    @_guarded
    def failures(self) -> list[dict[str, str]]:
        table = self.files.search().where("status != 'ok'").select(["path", "reason"])
        return sorted(table.limit(None).to_arrow().to_pylist(), key=lambda r: r["path"])

    @_guarded
    def counts(self) -> dict[str, Any]:
        items = {k: self.items.count_rows(f"kind = {sql_str(k)}") for k in KINDS}
        files = {k: self.files.count_rows(f"kind = {sql_str(k)} AND status = 'ok'") for k in KINDS}
        return {
            "files_indexed": sum(files.values()),
            "files_by_kind": {k: n for k, n in files.items() if n},
            "items": sum(items.values()),
            "items_by_kind": {k: n for k, n in items.items() if n},
        }

    @_guarded
    def optimize(self) -> None:
        """Compact the many small versions a run leaves behind (they slow every search)."""
        for table in (self.items, self.files):
            table.optimize(cleanup_older_than=RETENTION)  # also folds new rows into indices
        if not self._has_vector_index() and self.items.count_rows() > ANN_MIN_ITEMS:
            from lancedb.index import IvfFlat

            partitions = round(self.items.count_rows() ** 0.5)
            config = IvfFlat(distance_type="dot", num_partitions=partitions)
            self.items.create_index("vector", config=config)
