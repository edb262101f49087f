"""The indexing pipeline: scan → read & hash → (reuse stored vectors | decode → embed) → store.

Reading and decoding run in a thread pool ahead of the model; results are committed in
batches, each file's row last, so a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmsearch import snapshot
from mmsearch.config import DocumentOptions, Settings, VideoOptions, is_local_uri
from mmsearch.errors import ExtractError, ModelMismatch, one_line
from mmsearch.formats import ext_of
from mmsearch.ocr import OcrReport, ocr_pass
from mmsearch.paths import is_within, normalize, outermost
from mmsearch.reading import read_file
from mmsearch.scan import FileEntry, scan
from mmsearch.store import Collection, Item, Store
from mmsearch.timings import phase

if TYPE_CHECKING:
    from mmsearch.embed import Embedder

UNREADABLE = "unreadable"  # files status: could not be read (permissions, vanished, I/O)
FLUSH_BATCHES = 8  # commit every this many embedding batches ...
FLUSH_SECONDS = 5.0  # ... or this often, whichever comes first


class Progress(Protocol):
    def start(self, total: int, label: str = "indexing") -> None: ...
    def advance(self, n: int = 1) -> None: ...


@dataclass
class IndexReport:
    new: int = 0
    updated: int = 0
    reused: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    unsupported: int = 0
    frames: int = 0  # video frames embedded
    ocr: OcrReport = field(default_factory=OcrReport)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.new + self.updated + self.reused + self.failed


def default_workers() -> int:
    """Decode threads: on a CPU they share the cores with the model; a GPU needs them all."""
    from mmsearch.embed import has_gpu

    cores = os.cpu_count() or 1
    return cores if has_gpu() else max(1, min(4, cores))


def default_batch_size() -> int:
    from mmsearch.embed import has_gpu

    return 128 if has_gpu() else 16  # on a CPU 32 is no faster and holds 120 MiB more


@dataclass(frozen=True)
class IndexOptions:
    excludes: Sequence[str] = ()
    batch_size: int = field(default_factory=lambda: default_batch_size())
    workers: int = field(default_factory=lambda: default_workers())
    video: VideoOptions = field(default_factory=VideoOptions)
    documents: DocumentOptions = field(default_factory=DocumentOptions)
    ocr: str = "auto"  # auto, always or never: see mmsearch.ocr
    ocr_video_frames: int = 0  # frames per video the OCR pass may read (0: none)


def index_paths(
    settings: Settings,
    paths: Iterable[str],
    *,
    excludes: Sequence[str] = (),
    batch_size: int | None = None,
    workers: int | None = None,
    video: VideoOptions | None = None,
    documents: DocumentOptions | None = None,
    ocr: str = "auto",
    ocr_video_frames: int = 0,
    progress: Progress | None = None,
) -> IndexReport:
    """Bring the index of `paths` up to date with the disk; they become indexed roots."""
    roots = sorted({normalize(p) for p in paths})
    options = IndexOptions(
        excludes,
        batch_size or default_batch_size(),
        workers or default_workers(),
        video or VideoOptions(),
        documents or DocumentOptions(),
        ocr,
        ocr_video_frames,
    )
    store = Store(settings.db)
    with store.writer_lock("index"):
        report = sync(store, settings, roots, options, progress=progress)
        coll = store.collection(settings)
        if coll is not None:
            coll.set_roots(merge_roots(coll.info["roots"], roots))
    return report


def sync(
    store: Store,
    settings: Settings,
    paths: Sequence[str],
    options: IndexOptions,
    *,
    roots: Sequence[str] = (),
    progress: Progress | None = None,
    optimize: bool = True,
) -> IndexReport:
    """Make the index agree with the disk at and under `paths`: the one indexing code path,
    for `index` and for each batch of changes `watch` sees. The caller holds the writer lock;
    `roots` are the indexed folders whose ignore rules apply to `paths` inside them."""
    started = time.monotonic()
    report = IndexReport()
    skip = [store.uri] if is_local_uri(store.uri) else []
    found = scan(paths, options.excludes, skip=skip, roots=roots)
    report.unsupported = found.unsupported
    coll = store.collection(settings)
    existing = coll.records_under(paths) if coll else {}

    todo: list[tuple[FileEntry, bool]] = []
    for entry in found.files:
        rec = existing.get(entry.path)
        was_ok = rec is not None and rec.status == "ok"
        # A file judged bad is not retried until it changes; an unreadable one is.
        settled = rec is not None and rec.status != UNREADABLE
        if settled and (rec.size, rec.mtime_ns) == (entry.size, entry.mtime_ns):
            report.unchanged += 1
        else:
            todo.append((entry, was_ok))
    seen = {e.path for e in found.files} | {p for p, _ in found.problems}
    blocked = [p for p, _ in found.problems]
    vanished = [p for p in existing if p not in seen and not any(is_within(p, b) for b in blocked)]

    if coll is None and not (todo or found.problems):
        report.seconds = time.monotonic() - started
        return report
    # The model loads on first need: a run that only moves or removes files never waits.
    embedder = _model_loader(settings, coll.dim if coll else None)
    if coll is None:
        coll = store.create_collection(settings, embedder().dim)
    writer = _Writer(coll, report, flush_items=options.batch_size * FLUSH_BATCHES)
    for path, reason in found.problems:
        writer.fail(FileEntry(path, 0, 0), reason, kind="other", status=UNREADABLE)
    if todo:
        if progress:
            progress.start(len(todo))
        try:
            _embed_all(todo, coll, embedder, writer, options, progress)
        except KeyboardInterrupt:
            writer.flush()  # keep what is already embedded
            raise
    writer.flush()
    if vanished:
        coll.remove(vanished)
        report.removed = len(vanished)
    # Items a killed run wrote for a file whose row it never wrote, and the file has gone
    # since: no file row points at them, so only the items table can tell.
    orphans = coll.item_paths_under(paths) - seen
    orphans = {p for p in orphans if not any(is_within(p, b) for b in blocked)}
    if orphans:
        coll.remove(sorted(orphans))
    report.ocr = ocr_pass(
        coll, list(paths), embedder, options.ocr, options.ocr_video_frames, progress
    )
    with phase("optimize"):
        if optimize:
            snapshot.refresh(coll, bool(writer.wrote or vanished or report.ocr.text))
    report.seconds = time.monotonic() - started
    return report


def _model_loader(settings: Settings, dim: int | None) -> Callable[[], Embedder]:
    @functools.cache
    def load() -> Embedder:
        from mmsearch.embed import load_embedder

        embedder = load_embedder(settings)
        if dim is not None and dim != embedder.dim:
            raise ModelMismatch(
                f"the index for {settings.model} holds {dim}-d vectors but the model gives "
                f"{embedder.dim}-d; forget the index or use the model it was built with"
            )
        return embedder

    return load


def merge_roots(old: Iterable[str], new: Iterable[str]) -> list[str]:
    """Keep the outermost roots: indexing ~/Photos after ~/Photos/2020 leaves one root."""
    return outermost([*old, *new])


@dataclass
class _Failed:
    entry: FileEntry
    reason: str
    content_hash: str = ""
    status: str = "error"


@dataclass
class _Reused:
    entry: FileEntry
    items: list[Item]  # the OCR pass's words among them
    ocr: str | None  # so a renamed or copied picture is not read again


@dataclass
class _Frame:
    t: float | None
    t_end: float | None
    taken: float | None
    page: int | None
    pixels: Any  # the model's input tensor


@dataclass
class _Pixels:
    entry: FileEntry
    content_hash: str
    frames: list[_Frame]
    texts: list[tuple[int | None, str]] = field(default_factory=list)  # (page, passage)


class _Writer:
    """Buffers finished files and commits them in batches."""

    def __init__(self, coll: Collection, report: IndexReport, flush_items: int):
        self.coll, self.report, self.flush_items = coll, report, flush_items
        self.items: list[Item] = []
        self.files: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.wrote = False

    def ok(self, entry: FileEntry, digest: str, items: list[Item], ocr: str | None = None) -> None:
        self.items.extend(items)
        self.files.append({**self._row(entry, digest, "ok", "", len(items)), "ocr": ocr})
        self._maybe_flush()

    def fail(
        self,
        entry: FileEntry,
        reason: str,
        kind: str | None = None,
        digest: str = "",
        status: str = "error",
    ) -> None:
        self.report.failed += 1
        self.report.failures.append((entry.path, reason))
        self.files.append(self._row(entry, digest, status, reason, 0, kind))
        self._maybe_flush()

    @staticmethod
    def _row(
        entry: FileEntry, digest: str, status: str, reason: str, n: int, kind: str | None = None
    ) -> dict[str, Any]:
        return {
            "path": entry.path,
            "kind": kind or entry.kind,
            "size": entry.size,
            "mtime_ns": entry.mtime_ns,
            "content_hash": digest,
            "status": status,
            "reason": reason,
            "items": n,
        }

    def _maybe_flush(self) -> None:
        if (
            len(self.items) >= self.flush_items
            or time.monotonic() - self.last_flush > FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.files:
            with phase("write"):
                self.coll.write(self.items, self.files)
            self.wrote = True
        self.items, self.files = [], []
        self.last_flush = time.monotonic()


def _embed_all(
    todo: list[tuple[FileEntry, bool]],
    coll: Collection,
    embedder: Callable[[], Embedder],
    writer: _Writer,
    options: IndexOptions,
    progress: Progress | None,
) -> None:
    was_ok = {e.path: ok for e, ok in todo}
    report = writer.report

    def done(p: _Pixels, vectors: list[np.ndarray]) -> None:
        e = p.entry
        mtime = e.mtime_ns / 1e9
        items = [
            Item(
                e.path,
                e.kind,
                p.content_hash,
                v,
                f.t,
                f.t_end,
                f.page,
                ext=ext_of(e.path),
                taken=f.taken if f.taken is not None else mtime,
            )
            for f, v in zip(p.frames, vectors, strict=True)
        ]
        if p.texts:
            model = embedder()
            passages = [text for _, text in p.texts]
            text_vectors = [
                v
                for i in range(0, len(passages), options.batch_size)
                for v in model.embed_texts(passages[i : i + options.batch_size])
            ]
            items += [
                Item(
                    e.path,
                    e.kind,
                    p.content_hash,
                    v,
                    page=page,
                    ext=ext_of(e.path),
                    taken=mtime,
                    text=text,
                )
                for (page, text), v in zip(p.texts, text_vectors, strict=True)
            ]
        if was_ok[p.entry.path]:
            report.updated += 1
        else:
            report.new += 1
        if p.entry.kind == "video":
            report.frames += len(items)
        writer.ok(p.entry, p.content_hash, items)
        if progress:
            progress.advance()

    batcher = _Batcher(embedder, options.batch_size, done)
    prepared = _prepare([e for e, _ in todo], coll, embedder, options)
    for p in _in_background(prepared, maxsize=options.batch_size * 2):
        if isinstance(p, _Pixels):
            batcher.add(p)
            continue
        if isinstance(p, _Failed):
            writer.fail(p.entry, p.reason, digest=p.content_hash, status=p.status)
        else:
            report.reused += 1
            writer.ok(p.entry, p.items[0].content_hash, p.items, p.ocr)
        if progress:
            progress.advance()
    batcher.finish()


class _Batcher:
    """Feeds the model full batches of frames, whichever files they come from (a video's
    frames and the photos after it share batches), and hands back each file once all its
    frames are embedded, in arrival order."""

    def __init__(
        self,
        embedder: Callable[[], Embedder],
        size: int,
        done: Callable[[_Pixels, list[np.ndarray]], None],
    ):
        self.embedder, self.size, self.done = embedder, size, done
        self.files: deque[tuple[_Pixels, list[np.ndarray]]] = deque()
        self.queue: deque[tuple[list[np.ndarray], Any]] = deque()

    def add(self, p: _Pixels) -> None:
        vectors: list[np.ndarray] = []
        self.files.append((p, vectors))
        self.queue.extend((vectors, f.pixels) for f in p.frames)
        while len(self.queue) >= self.size:
            self._embed(self.size)
        self._release()  # a file with nothing to embed (a text document) is done at once

    def finish(self) -> None:
        while self.queue:
            self._embed(self.size)
        self._release()

    def _embed(self, n: int) -> None:
        batch = [self.queue.popleft() for _ in range(min(n, len(self.queue)))]
        embedder = self.embedder()
        with phase("embed"):
            embedded = embedder.embed_images([px for _, px in batch])
        for (vectors, _), vector in zip(batch, embedded, strict=True):
            vectors.append(vector)
        self._release()

    def _release(self) -> None:
        while self.files and len(self.files[0][1]) == len(self.files[0][0].frames):
            self.done(*self.files.popleft())


def _prepare(
    entries: list[FileEntry],
    coll: Collection,
    embedder: Callable[[], Embedder],
    options: IndexOptions,
) -> Iterator[_Failed | _Reused | _Pixels]:
    """Read and hash each file; reuse stored vectors for known contents, decode the rest."""
    chunk = options.batch_size
    with ThreadPoolExecutor(options.workers, thread_name_prefix="mmsearch-decode") as pool:
        for start in range(0, len(entries), chunk):
            batch = entries[start : start + chunk]
            reads = list(pool.map(read_file, batch))
            known = coll.items_for_hashes([r.digest for r in reads if r.digest and not r.error])
            read_by_ocr = coll.ocr_outcomes(sorted({i[0].path for i in known.values()}))
            decoding = []
            for entry, r in zip(batch, reads, strict=True):
                if r.error or not r.digest:
                    status = "error" if r.digest else UNREADABLE
                    yield _Failed(entry, r.error or "unreadable", r.digest, status)
                elif r.digest in known:
                    items = [
                        replace(i, path=entry.path, ext=ext_of(entry.path)) for i in known[r.digest]
                    ]
                    source = known[r.digest][0].path
                    # A touched file is read again, as before; a renamed or copied one is not.
                    ocr = read_by_ocr.get(source) if source != entry.path else None
                    yield _Reused(entry, items, ocr)
                else:
                    future = pool.submit(_decode, entry, r.digest, r.data, embedder, options)
                    decoding.append((entry, r.digest, future))
            del reads
            for entry, digest, future in decoding:
                try:
                    yield future.result()
                except ExtractError as e:
                    yield _Failed(entry, str(e), digest)


def _decode(
    entry: FileEntry,
    digest: str,
    data: bytes | None,
    model: Callable[[], Embedder],
    options: IndexOptions,
) -> _Pixels:
    from mmsearch.extract import load

    embedder = model()
    size = embedder.image_size
    try:
        loaded = load(entry.kind, entry.path, data, size, options.video, options.documents)
    except ExtractError:
        raise
    except Exception as e:  # a decoder's bug on one hostile file must not end the run
        raise ExtractError(f"cannot read {entry.kind}: {type(e).__name__}: {one_line(e)}") from None
    try:
        frames = [
            _Frame(f.t, f.t_end, f.taken, f.page, embedder.preprocess(f.image))
            for f in loaded.frames
        ]
    except Exception as e:
        raise ExtractError(f"cannot prepare image: {one_line(e)}") from None
    return _Pixels(entry, digest, frames, loaded.texts)


_DONE = object()


@dataclass
class _Raised:
    error: BaseException


def _in_background(items: Iterator[Any], maxsize: int) -> Iterator[Any]:
    """Run a generator in its own thread, `maxsize` results ahead of the consumer."""
    q: queue.Queue[Any] = queue.Queue(maxsize)
    stop = threading.Event()

    def put(x: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for x in items:
                if not put(x):
                    return
        except BaseException as e:
            put(_Raised(e))
        finally:
            items.close()  # type: ignore[attr-defined]
            put(_DONE)

    thread = threading.Thread(target=run, name="mmsearch-prepare", daemon=True)
    thread.start()
    try:
        while (x := q.get()) is not _DONE:
            if isinstance(x, _Raised):
                raise x.error
            yield x
    finally:
        stop.set()


@dataclass
class ForgetReport:
    files: int
    items: int


def forget_paths(settings: Settings, paths: Iterable[str]) -> ForgetReport:
    """Remove everything at or beneath `paths` from the index (the files stay on disk)."""
    targets = sorted({normalize(p) for p in paths})
    store = Store(settings.db)
    coll = store.collection(settings) if store.exists() else None
    if coll is None:
        return ForgetReport(0, 0)
    with store.writer_lock("forget"):
        files, items = coll.remove_subtrees(targets)
        roots = [r for r in coll.info["roots"] if not any(is_within(r, t) for t in targets)]
        coll.set_roots(roots)
        if files or items:
            snapshot.refresh(coll, changed=True)
    return ForgetReport(files, items)
