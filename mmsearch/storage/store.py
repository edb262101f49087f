"""The LanceDB store: one `files` and one `items` table per model, a `models` registry and
a `schema` record of the layout's version.

Only this module talks to LanceDB or knows how its tables lie on disk. Writers hold the
store's advisory lock; readers never wait for it (they take it only to upgrade an old layout,
and only when it is free).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("RUST_LOG", "error")  # lance logs routine warnings to stderr otherwise

import numpy as np
import pyarrow as pa
from filelock import FileLock, Timeout

from mmsearch.core.config import Settings, is_local_uri
from mmsearch.core.errors import MmsearchError, NoIndex, StoreBusy, StoreError, one_line
from mmsearch.core.paths import PathSet, cover, outermost
from mmsearch.core.private import (
    FILE_MODE,
    FOLDER_MODE,
    private_folder,
    private_umask,
    tighten,
)
from mmsearch.core.vocab import FileStatus, Kind
from mmsearch.core.words import CJK_RANGES, cjk_runs
from mmsearch.storage.registry import (
    MODELS,
    REGISTRY,
    SCHEMA,
    SCHEMA_VERSION,
    no_index_message,
    registry_tables,
    row_of,
    summary_token,
    tables_token,
    version_token,
    write_json,
)
from mmsearch.storage.remote import Lease, has_lease, redact, storage_options
from mmsearch.storage.sample import distinct
from mmsearch.storage.sql import sql_str, subtree_sql

KINDS = tuple(k.value for k in Kind)
_IN_CHUNK = 500  # paths per `IN (...)` clause: keeps each SQL filter small
SUBTREE_RANGES = 64  # path ranges one SQL filter may test on every row
# Old versions are kept this long after a compaction, so a query that opened the table
# just before it still finds its files.
RETENTION = timedelta(minutes=10)
# Past this many items an IVF_FLAT index answers vector queries (below, the search snapshot
# is exact and fast enough). Full vectors in sqrt(N) partitions, 20 probed: at 1M clustered
# items 12 ms and recall@10 1.0, where IVF_PQ (64 sub-vectors) needed 60x re-ranking and
# 127 ms for 0.98 and IVF_SQ 23 ms for 0.97 (bench/bench_search.py measures it).
ANN_MIN_ITEMS = 200_000
ANN_NPROBES = 20
_RESULT_COLUMNS = ["path", "kind", "t", "t_end", "page", "text", "taken"]
# A passage's CJK runs (words.CJK_RANGES) as the store's SQL finds them, for the upgrade.
_NOT_CJK_SQL = "[^" + "".join(f"\\x{{{a:04x}}}-\\x{{{b:04x}}}" for a, b in CJK_RANGES) + "]+"
# The three full-text indexes: column → how it reads words.
_TEXT_INDEXES = {
    "text": {"with_position": True},  # English: stemmed, stop words out
    # Exact words, split by ICU's word breaks (Chinese and Japanese too), stop words out.
    "words": {"with_position": True, "base_tokenizer": "icu", "stem": False},
    "grams": {
        "base_tokenizer": "ngram",
        "ngram_min_length": 2,
        "ngram_max_length": 2,
        "stem": False,
        "remove_stop_words": False,
    },
}
_OK = f"status = {sql_str(FileStatus.OK)}"


@dataclass(slots=True)
class _Holder:
    thread: int
    owner: str  # "mmsearch index (pid N)"
    lease: Lease | None = None  # the store's writer lease, for a store on s3://


# Writer locks this process holds, by lock file, and which thread holds each: the lock is
# re-entrant for that thread only, so two threads of one process never both write.
_holders: dict[str, _Holder] = {}
_holders_lock = threading.Lock()

MODELS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("pretrained", pa.string()),
        ("dim", pa.int32()),
        ("roots", pa.list_(pa.string())),
        ("created", pa.float64()),
        ("updated", pa.float64()),
        # Since schema 2. `weights`: the content identity of the weights (Settings.weights);
        # null on a row of schema 1 until a run with those weights adopts it. `checkpoint`:
        # where the weights were read from, if from disk.
        ("weights", pa.string()),
        ("checkpoint", pa.string()),
        # Since schema 3: subtrees `forget` dropped, skipped by later runs over their roots
        # until one of them is indexed by name. Null on older rows: none.
        ("excluded", pa.list_(pa.string())),
    ]
)
# The version lives in a table of its own, not in a column of `models`: it describes the
# whole layout (every table), it must be read before `models` can be read the right way, a
# store of schema 1 is exactly a store without it, and writing it last makes an upgrade that
# was cut short simply run again.
SCHEMA_SCHEMA = pa.schema([("version", pa.int32()), ("updated", pa.float64())])
FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("content_hash", pa.string()),
        ("status", pa.string()),  # a FileStatus: ok, error (bad file), unreadable (retried)
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
            # Since schema 3: `text` again and its CJK runs, each with its own full-text
            # index (`text` is indexed with English stemming, which neither can be).
            ("words", pa.string()),
            ("grams", pa.string()),
            # Since schema 4: for a passage read off a picture, how sure the OCR engine was
            # of its least certain line (0-1); null for every other row.
            ("confidence", pa.float32()),
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
    confidence: float | None = None  # OCR's, for its passages


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def _under(paths: Sequence[str]) -> tuple[str, PathSet | None]:
    """A filter for rows at or beneath `paths`, and the exact test it still needs: every
    range in an SQL filter is tested on every row, so a burst of thousands of paths is asked
    for by the folders that hold them and then sorted out in O(log n) per row."""
    exact = outermost(paths)
    if len(exact) <= SUBTREE_RANGES:
        return subtree_sql(exact), None
    return subtree_sql(cover(exact, SUBTREE_RANGES)), PathSet(exact)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def open_collection(settings: Settings) -> Collection:
    """The collection of `settings`' model, or a NoIndex error that says what to do."""
    store = Store(settings.db)
    coll = store.collection(settings) if store.exists() else None
    if coll is None:
        raise no_index(settings, store)
    return coll


def _committed(folder: Path) -> bool:
    """Whether a local table's folder holds a committed version (a manifest)."""
    try:
        return any(n.endswith(".manifest") for n in os.listdir(folder / "_versions"))
    except OSError:
        return False


_open_for_search: dict[tuple[str, str], tuple[str, Collection]] = {}


def search_collection(settings: Settings) -> Collection:
    """As `open_collection`, for searches: the collection of a local store stays open in this
    process (a server's) while its items table and layout are as they were (the version token:
    two directory listings), so a warm query does not reopen the store (~18 ms at 1M items).
    The token is read before the tables are opened: a commit landing meanwhile is seen by the
    next query."""
    if not is_local_uri(settings.db):
        return open_collection(settings)
    cache_key = (settings.db, settings.model_key)
    known = _open_for_search.get(cache_key)
    if known is not None and version_token(settings.db, known[1].key) == known[0]:
        return known[1]
    key = known[1].key if known else settings.model_key
    token = version_token(settings.db, key)
    coll = open_collection(settings)
    if token is not None and coll.key == key:
        _open_for_search[cache_key] = (token, coll)
    return coll


def no_index(settings: Settings, store: Store) -> NoIndex:
    """The error for a model that has indexed nothing in `store`, naming those that have."""
    return NoIndex(no_index_message(settings, store.models() if store.exists() else []))


class Store:
    """A LanceDB database at `uri` (a folder, or any URI LanceDB accepts)."""

    def __init__(self, uri: str):
        self.uri = uri
        self._db: Any = None
        self._version: int | None = None  # once checked: the layout as it is read

    @property
    def db(self) -> Any:
        if self._db is None:
            self._make_local_dir()
            try:
                import lancedb  # here, not at import: snapshot checks must stay cheap

                options = {} if is_local_uri(self.uri) else storage_options(self.uri)
                self._db = lancedb.connect(self.uri, storage_options=options or None)
            except MmsearchError:
                raise
            except Exception as e:
                raise StoreError(f"cannot open store {self.uri}: {redact(one_line(e))}") from None
        return self._db

    def _make_local_dir(self) -> None:
        if not is_local_uri(self.uri):
            return
        try:
            with private_umask():
                os.makedirs(self.uri, mode=FOLDER_MODE, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store folder {self.uri}: {e.strerror or e}") from None

    def exists(self) -> bool:
        if is_local_uri(self.uri) and not os.path.isdir(self.uri):
            return False
        return MODELS in self._table_names()

    def _table_names(self) -> list[str]:
        try:
            names = list(self.db.list_tables().tables)
        except MmsearchError:
            raise
        except Exception as e:
            raise StoreError(f"cannot read store {self.uri}: {redact(one_line(e))}") from None
        if is_local_uri(self.uri):  # a table a killed run began but never committed is not one
            names = [n for n in names if _committed(Path(self.uri) / f"{n}.lance")]
        return names

    def _create(self, name: str, **kwargs: Any) -> Any:
        """Create a table (the caller holds the writer lock), first clearing away the folder
        of one a killed run began: nothing in it was ever committed."""
        folder = Path(self.uri) / f"{name}.lance"
        if is_local_uri(self.uri) and folder.is_dir() and not _committed(folder):
            shutil.rmtree(folder, ignore_errors=True)
        return self.db.create_table(name, **kwargs)

    @contextmanager
    def writer_lock(self, purpose: str = "index") -> Iterator[None]:
        """Hold the one-writer lock, or fail at once saying who holds it. Re-entrant within
        one thread, so `watch` can hold it for its lifetime and sync batch after batch; any
        other thread, of this process or another, is refused like another process. On
        `s3://` the lock of this machine is backed by the store's lease (mmsearch.storage.remote),
        which other machines see too."""
        lock_path = self._lock_path()
        me = threading.get_ident()
        with _holders_lock:
            held = _holders.get(lock_path)
            if held is not None and held.thread != me:
                raise self._busy(held.owner)
        if held is not None:  # this thread holds it already: the outermost hold releases it
            yield
            return
        lock = FileLock(lock_path, timeout=0, mode=FILE_MODE)
        try:
            lock.acquire()
        except Timeout:
            with _holders_lock:
                other = _holders.get(lock_path)
            raise self._busy(other.owner if other else self._lock_owner(lock_path)) from None
        except OSError as e:  # after Timeout, which is one: a read-only or full disk
            raise damaged(self.uri, e) from None
        owner = f"mmsearch {purpose} (pid {os.getpid()})"
        lease = Lease(self.uri, owner) if has_lease(self.uri) else None
        try:
            if lease is not None:
                lease.acquire()
        except BaseException:
            lock.release()
            raise
        with _holders_lock:
            _holders[lock_path] = _Holder(me, owner, lease)
        try:
            with private_umask():  # LanceDB creates the files: see mmsearch.core.private
                self._make_private()
                with open(lock_path + ".owner", "w") as f:
                    f.write(owner)
                yield
        finally:
            with _holders_lock:
                del _holders[lock_path]
            if lease is not None:
                lease.release()
            lock.release()

    def _make_private(self) -> None:
        """A store folder open to others (made by an older mmsearch, or by hand) is made
        private on its first write; a private top folder means this was done."""
        if is_local_uri(self.uri) and os.stat(self.uri).st_mode & 0o077:
            tighten(self.uri)

    def _busy(self, owner: str) -> StoreBusy:
        return StoreBusy(
            f"{owner} is writing to {self.uri}; wait for it to finish (or stop it) and try again"
        )

    def check_lease(self) -> None:
        """Refuse to commit once another writer has taken, or may have taken, this store's
        lease (this one stalled past its expiry): two writers must never commit at once."""
        with _holders_lock:
            held = _holders.get(self._lock_path())
        if held is not None and held.lease is not None and held.lease.may_be_taken():
            raise StoreBusy(
                f"this writer stalled past its lease on {self.uri}, which another writer may "
                "have taken over; run the command again once that one has finished"
            )

    def _holds_writer_lock(self) -> bool:
        with _holders_lock:
            held = _holders.get(self._lock_path())
        return held is not None and held.thread == threading.get_ident()

    def _lock_path(self) -> str:
        if is_local_uri(self.uri):
            self._make_local_dir()
            return os.path.join(self.uri, ".writer.lock")
        # This machine's lock for a remote store: in the user's cache folder, whatever
        # MMSEARCH_CACHE says (machines share stores, never this folder).
        from platformdirs import user_cache_path

        folder = private_folder(private_folder(user_cache_path("mmsearch")) / "locks")
        return str(folder / (hashlib.sha1(self.uri.encode()).hexdigest() + ".lock"))

    @staticmethod
    def _lock_owner(lock_path: str) -> str:
        try:
            with open(lock_path + ".owner") as f:
                return f.read().strip() or "another mmsearch process"
        except OSError:
            return "another mmsearch process"

    def schema_version(self) -> int | None:
        """The layout version the store is read as: its record, 1 for a store older than the
        record, None when there is no store."""
        if self._version is not None:
            return self._version
        if is_local_uri(self.uri) and not os.path.isdir(self.uri):
            return None
        names = self._table_names()
        if MODELS not in names:
            return None
        if SCHEMA not in names:
            return 1
        try:
            versions = self._open(SCHEMA).to_arrow()["version"].to_pylist()
        except MmsearchError:
            raise
        except Exception as e:
            raise damaged(self.uri, e) from None
        if not versions or versions[0] is None:
            raise damaged(self.uri, ValueError("the schema record is empty"))
        return int(versions[0])

    def _check_schema(self) -> None:
        """Once per Store: refuse a layout newer than this code; upgrade an older one in
        place, under the writer lock (taken here only if free: a reader never waits); if the
        lock is busy, read the old layout as it is."""
        if self._version is not None:
            return
        version = self.schema_version()
        if version is None:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.uri} was written by a newer mmsearch (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}): upgrade mmsearch"
            )
        if version < SCHEMA_VERSION:
            writer = self._holds_writer_lock()
            try:
                with self.writer_lock("upgrade"):
                    version = self._upgrade()
            except StoreBusy:
                pass  # someone else writes; it upgrades (or already has): read as it is
            except Exception as e:
                if writer:
                    raise StoreError(
                        f"cannot upgrade the store {self.uri} to schema {SCHEMA_VERSION}: "
                        f"{one_line(e)}"
                    ) from None
                # A reader that cannot write here (a read-only store) reads it as it is.
        self._version = version

    def _upgrade(self) -> int:
        """Bring the layout to SCHEMA_VERSION in place, under the writer lock: every row is
        kept, nothing is re-embedded, no table is renamed. Each step can run twice, and the
        version is written last, so an upgrade cut short simply runs again."""
        version = self.schema_version()  # again: another writer may have just done it
        assert version is not None
        if version >= SCHEMA_VERSION:
            return version
        models = self._open(MODELS)
        add_missing_columns(models, MODELS_SCHEMA)
        names = set(self._table_names())
        for info in models.to_arrow().to_pylist():
            if f"files_{info['key']}" in names:
                add_missing_columns(self._open(f"files_{info['key']}"), FILES_SCHEMA)
            if f"items_{info['key']}" in names:
                items = self._open(f"items_{info['key']}")
                _add_word_columns(items)
                add_missing_columns(items, items_schema(info["dim"]))
        record = pa.Table.from_pylist(
            [{"version": SCHEMA_VERSION, "updated": time.time()}], schema=SCHEMA_SCHEMA
        )
        mode = "overwrite" if SCHEMA in names else "create"
        self._create(SCHEMA, data=record, mode=mode)
        return SCHEMA_VERSION

    def remember(self, summaries: dict[str, dict[str, Any]] | None = None) -> None:
        """Rewrite the registry file from the tables, adding these collections' summaries;
        the caller holds the writer lock (so nothing commits meanwhile)."""
        if not is_local_uri(self.uri) or not self.exists():
            return
        self._check_schema()
        if self._version != SCHEMA_VERSION:
            return
        models = self.models()
        path = Path(self.uri) / REGISTRY
        try:
            old = json.loads(path.read_text())
            kept = dict(old["summaries"]) if old.get("schema") == SCHEMA_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError):
            kept = {}
        keys = {m["key"] for m in models}
        kept = {k: v for k, v in {**kept, **(summaries or {})}.items() if k in keys}
        token = tables_token(self.uri, registry_tables())
        data = {"schema": SCHEMA_VERSION, "token": token, "models": models, "summaries": kept}
        write_json(path, data)

    def models(self) -> list[dict[str, Any]]:
        """The registry's rows; columns an old layout lacks read as null."""
        if not self.exists():
            return []
        self._check_schema()
        table = self._open(MODELS)
        try:
            rows = table.to_arrow().to_pylist()
        except Exception as e:
            raise damaged(self.uri, e) from None
        return [{name: r.get(name) for name in MODELS_SCHEMA.names} for r in rows]

    def collection(self, settings: Settings) -> Collection | None:
        """The tables of `settings`' model, or None if it has indexed nothing here.

        A row names the model by `key`. A store of schema 1 keyed a checkpoint by its first
        MiB only: a row under that legacy key whose `weights` are unknown is adopted (its
        weights recorded) by the first run that looks for it, and found by key and weights
        from then on; its tables keep their names."""
        key = settings.model_key
        info = row_of(self.models(), settings)
        if info is None:
            return None
        if info["weights"] is None:
            info = self._adopt(info, settings)
        return Collection(self, info, model_key=key)

    def _adopt(self, info: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """Record the weights on an old row, under the writer lock when it is free; when it
        is not (or the layout could not be upgraded), the row is used as it is, in memory."""
        info = {**info, "weights": settings.weights, "checkpoint": settings.checkpoint}
        if self._version != SCHEMA_VERSION:
            return info
        writer = self._holds_writer_lock()
        try:
            with self.writer_lock("upgrade"):
                _upsert_model(self._open(MODELS), info)
        except StoreBusy:
            pass
        except Exception as e:
            if writer:
                raise StoreError(f"cannot update the store {self.uri}: {one_line(e)}") from None
        return info

    def create_collection(self, settings: Settings, dim: int) -> Collection:
        """New, empty tables for `settings`' model; the caller holds the writer lock."""
        if not self.exists():
            self._create(MODELS, schema=MODELS_SCHEMA, exist_ok=True)
            self._version = None
        self._check_schema()  # a new store gets its record; an old one is upgraded first
        models = self._open(MODELS)
        now = time.time()
        info = {
            "key": settings.model_key,
            "model": settings.model,
            "pretrained": settings.pretrained or "",
            "dim": dim,
            "roots": [],
            "created": now,
            "updated": now,
            "weights": settings.weights,
            "checkpoint": settings.checkpoint,
            "excluded": [],
        }
        key = info["key"]
        self._create(f"files_{key}", schema=FILES_SCHEMA, exist_ok=True)
        self._create(f"items_{key}", schema=items_schema(dim), exist_ok=True)
        models.add(pa.Table.from_pylist([info], schema=MODELS_SCHEMA))
        return Collection(self, info, model_key=key)

    def _open(self, name: str) -> Any:
        try:
            return self.db.open_table(name)
        except Exception as e:
            raise damaged(self.uri, e) from None

    def size_bytes(self) -> int | None:
        from mmsearch.storage.registry import folder_size

        return folder_size(self.uri)


def add_missing_columns(table: Any, schema: pa.Schema) -> list[str]:
    """Add to `table` every nullable column of `schema` it lacks, all null: how a table of
    an older layout gains a column a newer one reads. Returns the names added."""
    have = set(table.schema.names)
    missing = [f for f in schema if f.name not in have and f.nullable]
    if missing:
        table.add_columns(missing)
    return [f.name for f in missing]


def _add_word_columns(items: Any) -> None:
    """Schema 3: fill `words` and `grams` from `text` in place (no row is rewritten by
    Python) and index them when `text` is indexed."""
    if "words" in items.schema.names:
        return
    grams = f"nullif(trim(regexp_replace(text, '{_NOT_CJK_SQL}', ' ', 'g')), '')"
    items.add_columns({"words": "text", "grams": grams})
    indexed = {c for i in items.list_indices() for c in i.columns}
    if "text" in indexed:
        _create_text_indexes(items, ("words", "grams"))


def _create_text_indexes(items: Any, columns: Sequence[str]) -> None:
    from lancedb.index import FTS

    for column in columns:
        items.create_index(column, config=FTS(**_TEXT_INDEXES[column]), replace=True)


def _upsert_model(models: Any, info: dict[str, Any]) -> None:
    (
        models.merge_insert("key")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute(pa.Table.from_pylist([info], schema=MODELS_SCHEMA))
    )


_FULL = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
_READ_ONLY = ("Read-only file system", "Permission denied", "os error 30", "os error 13")


def unwritable(uri: str, error: BaseException) -> StoreError | None:
    """A store that is whole but cannot be written (its disk full, mounted read-only), said
    as such: calling it damaged would send the user to rebuild a store that is intact."""
    text = f"{error}"  # an OSError's strerror, or Rust's words with its "os error N"
    if any(m in text for m in _FULL):
        return StoreError(
            f"disk full: the store {uri} could not be written. Free space on its disk (old "
            "files, the trash, `mmsearch forget` for folders you no longer search) and run "
            "again: nothing already indexed was lost"
        )
    if any(m in text for m in _READ_ONLY):
        return StoreError(f"the store {uri} is read-only: queries work, indexing cannot write")
    return None


def damaged(uri: str, error: BaseException) -> StoreError:
    if (instead := unwritable(uri, error)) is not None:
        return instead
    return StoreError(
        f"the store {uri} is damaged or unreadable ({redact(one_line(error))[:150]}); "
        "move it aside and run `mmsearch index` on your folders again to rebuild it"
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

    def __init__(self, store: Store, info: dict[str, Any], model_key: str | None = None):
        self.store = store
        self.info = info
        self.key: str = info["key"]  # names the tables
        # Names what is derived from the model (snapshot, caches): the key of its weights
        # now, which differs from `key` only for a collection adopted from schema 1.
        self.model_key: str = model_key or self.key
        self.files = store._open(f"files_{self.key}")
        self.items = store._open(f"items_{self.key}")
        self._text_indexed: set[str] | None = None

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @_guarded
    def item_count(self) -> int:
        return int(self.items.count_rows())

    @_guarded
    def batches(self, columns: list[str], batch_rows: int) -> pa.RecordBatchReader:
        """Every item's `columns`, streamed `batch_rows` at a time: memory stays flat however
        large the index."""
        query = self.items.search().select(columns).limit(None)
        return query.to_batches(batch_rows)

    @_guarded
    def records_under(self, roots: Sequence[str]) -> dict[str, FileRecord]:
        where, exact = _under(roots)
        table = (
            self.files.search()
            .where(where)
            .select(["path", "size", "mtime_ns", "content_hash", "status"])
            .limit(None)
            .to_arrow()
        )
        names = ("path", "size", "mtime_ns", "content_hash", "status")
        cols = [table[c].to_pylist() for c in names]
        return {
            p: FileRecord(s, m, h, st)
            for p, s, m, h, st in zip(*cols, strict=True)
            if exact is None or p in exact
        }

    @_guarded
    def item_paths_under(self, paths: Sequence[str]) -> set[str]:
        where, exact = _under(paths)
        rows = self.items.search().where(where).select(["path"]).limit(None)
        return {p for p in rows.to_arrow()["path"].to_pylist() if exact is None or p in exact}

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
                        "confidence",
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
                        confidence=r.get("confidence"),
                    )
                )
        return found

    @_guarded
    def holds_unchanged(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether the index holds the file at `path`, read fine, at this size and mtime: it
        is still the file that was indexed (the web UI serves no other)."""
        where = f"path = {sql_str(path)} AND size = {size} AND mtime_ns = {mtime_ns} AND {_OK}"
        return bool(self.files.count_rows(where))

    @_guarded
    def stored_vector(self, path: str, size: int, mtime_ns: int) -> np.ndarray | None:
        """The embedding of an indexed, unchanged single-item file (an image), if any."""
        current = self.files.count_rows(
            f"path = {sql_str(path)} AND size = {size} AND mtime_ns = {mtime_ns} "
            f"AND {_OK} AND items = 1"
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
        self.store.check_lease()
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
                "words": pa.array([i.text for i in items], pa.string()),
                "grams": pa.array([cjk_runs(i.text) for i in items], pa.string()),
                "origin": [i.origin for i in items],
                "confidence": pa.array([i.confidence for i in items], pa.float32()),
                "ext": [i.ext for i in items],
                "taken": pa.array([i.taken for i in items], pa.float64()),
                "content_hash": [i.content_hash for i in items],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), self.dim),
            },
            schema=items_schema(self.dim),
        )

    @_guarded
    def remove(self, paths: Sequence[str]) -> None:
        self.store.check_lease()
        for chunk in _chunks(list(paths)):
            self.items.delete(_in("path", chunk))
            self.files.delete(_in("path", chunk))

    @_guarded
    def remove_subtrees(self, paths: Sequence[str]) -> tuple[int, int]:
        """Forget everything at or beneath `paths`; returns (files, items) removed."""
        self.store.check_lease()
        where = subtree_sql(paths)
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
    def text_search(
        self, text: str, limit: int, where: str | None, column: str = "text"
    ) -> list[dict[str, Any]]:
        """Passages matching `text` by BM25 (`score`) in one full-text index (`text`:
        stemmed English, `words`: exact words, `grams`: CJK bigrams), best first; "quoted
        phrases" match as phrases. Empty when nothing with text was ever indexed."""
        if not self._has_text_index() or column not in self._text_columns():
            return []
        query = self.items.search(text, query_type="fts", fts_columns=column)
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

    def _text_columns(self) -> set[str]:
        """The columns with a full-text index (an old layout read as it is has `text` only)."""
        if self._text_indexed is None:
            indexed = {c for i in self.items.list_indices() for c in i.columns}
            self._text_indexed = indexed & set(_TEXT_INDEXES)
        return self._text_indexed

    def _has_text_index(self) -> bool:
        return "text" in self._text_columns()

    def _ensure_text_index(self) -> None:
        missing = [c for c in _TEXT_INDEXES if c not in self._text_columns()]
        if missing and set(missing) <= set(self.items.schema.names):
            _create_text_indexes(self.items, missing)
            self._text_indexed = None

    @_guarded
    def picture_sample(self, most: int) -> np.ndarray:
        """Up to `most` picture vectors (no passages), near-copies once, for calibrating a
        query's scores."""
        query = self.items.search().where("text IS NULL").select(["vector"]).limit(most)
        column = query.to_arrow()["vector"].combine_chunks()
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return distinct(flat.reshape(len(column), self.dim).astype(np.float32, copy=False))

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
        under, exact = _under(paths)
        where = (
            f"{under} AND {_OK} AND ocr IS NULL AND "
            f"kind IN ({', '.join(sql_str(k) for k in kinds)})"
        )
        rows = self.files.search().where(where)
        rows = rows.select(["path", "kind", "mtime_ns", "content_hash"]).limit(None)
        found = [r for r in rows.to_arrow().to_pylist() if exact is None or r["path"] in exact]
        return sorted(found, key=lambda r: r["path"])

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
        self.store.check_lease()
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
        rows = self.files.search().where(_OK).select(["ocr"]).limit(None)
        counts: dict[str, int] = {}
        for value in rows.to_arrow()["ocr"].to_pylist():
            key = "pending" if value is None else "failed" if value.startswith("error") else value
            counts[key] = counts.get(key, 0) + 1
        return counts

    @_guarded
    def set_roots(self, roots: Sequence[str], excluded: Sequence[str] | None = None) -> None:
        """Record the indexed roots (and, if given, the subtrees kept out of them)."""
        self.store.check_lease()
        info = {**self.info, "roots": sorted(set(roots)), "updated": time.time()}
        if excluded is not None:
            info["excluded"] = sorted(set(excluded))
        _upsert_model(self.store._open(MODELS), info)
        self.info = info
        self.store.remember()

    @property
    def excluded(self) -> list[str]:
        """Subtrees `forget` dropped: later runs over their roots leave them out."""
        return list(self.info.get("excluded") or [])

    @_guarded
    def summary(self) -> dict[str, Any]:
        """What `status` shows of this collection, and the table versions it was read at."""
        token = summary_token(self.store.uri, self.key)
        return {
            "token": token,
            **self.counts(),
            "failures": self.failures(),
            "ocr": self.ocr_counts(),
        }

    @_guarded
    def failures(self) -> list[dict[str, str]]:
        settled = f"({sql_str(FileStatus.OK)}, {sql_str(FileStatus.EMPTY)})"
        table = self.files.search().where(f"status NOT IN {settled}")
        table = table.select(["path", "reason"])
        return sorted(table.limit(None).to_arrow().to_pylist(), key=lambda r: r["path"])

    @_guarded
    def counts(self) -> dict[str, Any]:
        items = {k: self.items.count_rows(f"kind = {sql_str(k)}") for k in KINDS}
        files = {k: self.files.count_rows(f"kind = {sql_str(k)} AND {_OK}") for k in KINDS}
        return {
            "files_indexed": sum(files.values()),
            "files_by_kind": {k: n for k, n in files.items() if n},
            "items": sum(items.values()),
            "items_by_kind": {k: n for k, n in items.items() if n},
            "files_empty": self.files.count_rows(f"status = {sql_str(FileStatus.EMPTY)}"),
        }

    @_guarded
    def optimize(self) -> None:
        """Compact the many small versions a run leaves behind (they slow every search)."""
        self.store.check_lease()
        for table in (self.items, self.files):
            table.optimize(cleanup_older_than=RETENTION)  # also folds new rows into indices
        if not self._has_vector_index() and self.items.count_rows() > ANN_MIN_ITEMS:
            from lancedb.index import IvfFlat

            partitions = round(self.items.count_rows() ** 0.5)
            config = IvfFlat(distance_type="dot", num_partitions=partitions)
            self.items.create_index("vector", config=config)
