"""The threaded middle of indexing: read & hash → (reuse stored vectors | decode) → embed in
full batches → hand finished files to the writer, which commits them in batches.

Reading and decoding run in a thread pool ahead of the model. What they hold is bounded in
bytes, not files: a photo is a few MiB but a video keeps up to 200 model-sized frames (about
190 MiB at 256 px) and a PDF one per page, so a queue of N files could hold gigabytes. Every
file takes its bytes from one `Budget` before it is read (the raw bytes, until decoded) and
before it is decoded (its estimated frames, corrected to the real size once decoded), and
gives them back once its frames are with the batcher. The cap is `MMSEARCH_PIPELINE_MIB`
MiB, else `CAP_MIB`; a file larger than the cap is still indexed, alone.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmsearch.core.errors import ExtractError, NothingInside, UsageError, one_line
from mmsearch.core.formats import ext_of
from mmsearch.core.timings import phase
from mmsearch.core.vocab import FileStatus, Kind, OcrMode, OcrOutcome, Origin
from mmsearch.indexing import ocr
from mmsearch.indexing.reading import MAX_FILE_BYTES, FileRead, read_file
from mmsearch.indexing.scan import FileEntry
from mmsearch.storage.store import Collection, Item

if TYPE_CHECKING:
    from mmsearch.core.config import DocumentOptions, VideoOptions
    from mmsearch.indexing.extract.subtitles import Cue
    from mmsearch.model.embed import Embedder

FLUSH_BATCHES = 8  # commit every this many embedding batches ...
FLUSH_SECONDS = 5.0  # ... or this often, whichever comes first
CAP_MIB = 384  # bytes read and decoded ahead of the model, at most (MMSEARCH_PIPELINE_MIB)
DOCUMENT_PAGES = 32  # pages a PDF is assumed to render until it has (then its real count)
GUESS_SIDE = 256  # the default model's input side: frames are costed at it until one loads


def budget_bytes() -> int:
    """The pipeline's cap in bytes: `MMSEARCH_PIPELINE_MIB` when set, else `CAP_MIB`."""
    value = os.environ.get("MMSEARCH_PIPELINE_MIB", "").strip()
    if not value:
        return CAP_MIB << 20
    try:
        mib = float(value)
    except ValueError:
        mib = 0.0
    if not mib > 0:
        raise UsageError(f"MMSEARCH_PIPELINE_MIB: {value!r} is not a positive number of MiB")
    return int(mib * (1 << 20))


class Budget:
    """Bytes the pipeline holds, waited for before they are held.

    Deadlock-free because only the one thread that prepares files takes (in the order the
    consumer receives them), the consumer only gives, and a take also admits when everything
    held is the taker's own: the files it has read but not handed on yet cannot come back
    while it waits, so a file larger than the cap goes through alone instead of never.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.peak = 0  # the most held at once, for tests and benchmarks
        self._changed = threading.Condition()
        self._closed = False

    def take(self, n: int, own: int = 0) -> bool:
        """Wait until `n` more bytes fit under the cap, or until all that is held is `own`
        (the caller's earlier takes); False, taking nothing, once the budget is closed."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._closed or self.used + n <= self.cap or self.used <= own
            )
            if self._closed:
                return False
            self._count(n)
            return True

    def fits(self, n: int) -> bool:
        with self._changed:
            return self.used + n <= self.cap

    def settle(self, taken: int, actual: int) -> int:
        """Correct a take to what the file turned out to hold, without waiting (those bytes
        exist already); returns `actual`, the bytes now held for it."""
        with self._changed:
            self._count(actual - taken)
            if actual < taken:
                self._changed.notify_all()
        return actual

    def give(self, n: int) -> None:
        with self._changed:
            self.used -= n
            self._changed.notify_all()

    def close(self) -> None:
        """Wake and refuse every take: the consumer has stopped."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _count(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)


class Options(Protocol):
    """What the pipeline reads of `index.IndexOptions`."""

    @property
    def batch_size(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def video(self) -> VideoOptions: ...
    @property
    def documents(self) -> DocumentOptions: ...
    @property
    def ocr(self) -> OcrMode: ...


class Tally(Protocol):
    """The counters of `index.IndexReport` that the pipeline keeps."""

    new: int
    updated: int
    reused: int
    failed: int
    empty: int
    frames: int
    video_seconds: float
    failures: list[tuple[str, str]]
    first_look_skips: int


@dataclass
class _Failed:
    entry: FileEntry
    reason: str
    content_hash: str = ""
    status: FileStatus = FileStatus.ERROR


@dataclass
class _Reused:
    entry: FileEntry
    items: list[Item]  # the OCR pass's words among them
    ocr: str | None  # so a renamed or copied picture is not read again


@dataclass
class Frame:
    t: float | None
    t_end: float | None
    taken: float | None
    page: int | None
    pixels: Any  # the model's input tensor; None once the batcher has queued it


@dataclass
class Pixels:
    entry: FileEntry
    content_hash: str
    frames: list[Frame]
    texts: list[tuple[int | None, str]] = field(default_factory=list)  # (page, passage)
    said: list[Cue] = field(default_factory=list)  # timed lines of subtitles
    note: str = ""  # why part of the file could not be read, though the rest was
    held: int = 0  # bytes of the budget it holds until its frames are with the batcher
    ocr: str | None = None  # "skipped": the OCR selector saw no sign of text at decoding
    seconds: float = 0.0  # spent decoding it


class Writer:
    """Buffers finished files and commits them in batches."""

    def __init__(self, coll: Collection, report: Tally, flush_items: int):
        self.coll, self.report, self.flush_items = coll, report, flush_items
        self.items: list[Item] = []
        self.files: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.wrote = False

    def ok(
        self,
        entry: FileEntry,
        digest: str,
        items: list[Item],
        ocr: str | None = None,
        note: str = "",
    ) -> None:
        self.items.extend(items)
        row = self._row(entry, digest, FileStatus.OK, note, len(items))
        self.files.append({**row, "ocr": ocr})
        self._maybe_flush()

    def fail(
        self,
        entry: FileEntry,
        reason: str,
        kind: str | None = None,
        digest: str = "",
        status: FileStatus = FileStatus.ERROR,
    ) -> None:
        if status == FileStatus.EMPTY:
            self.report.empty += 1
        else:
            self.report.failed += 1
            self.report.failures.append((entry.path, reason))
        self.files.append(self._row(entry, digest, status, reason, 0, kind))
        self._maybe_flush()

    @staticmethod
    def _row(
        entry: FileEntry,
        digest: str,
        status: FileStatus,
        reason: str,
        n: int,
        kind: str | None = None,
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


def embed_all(
    todo: list[tuple[FileEntry, bool]],
    coll: Collection,
    embedder: Callable[[], Embedder],
    writer: Writer,
    options: Options,
    advance: Callable[..., None] | None = None,
) -> None:
    """Reuse, or decode and embed, every file of `todo` (entry, whether it was indexed ok
    before) and hand each to `writer`; `advance` is called once per file finished, with
    `embedded=True` for a file the model embedded (not reused, not failed)."""
    was_ok = {e.path: ok for e, ok in todo}
    report = writer.report

    def done(p: Pixels, vectors: list[np.ndarray]) -> None:
        items = items_of(p, vectors, embedder, options.batch_size)
        if was_ok[p.entry.path]:
            report.updated += 1
        else:
            report.new += 1
        if p.entry.kind == Kind.VIDEO:
            report.frames += len(items)
            report.video_seconds += p.seconds
        if p.ocr == OcrOutcome.SKIPPED:
            report.first_look_skips += 1
        writer.ok(p.entry, p.content_hash, items, p.ocr, p.note)
        if advance:
            advance(embedded=True)

    batcher = Batcher(embedder, options.batch_size, done)
    budget = Budget(budget_bytes())
    prepared = _prepare([e for e, _ in todo], coll, embedder, options, budget)
    try:
        for p in _in_background(prepared, maxsize=options.batch_size * 2):
            if isinstance(p, Pixels):
                batcher.add(p)
                budget.give(p.held)  # its pixels are the batcher's now: at most a batch
                continue
            if isinstance(p, _Failed):
                writer.fail(p.entry, p.reason, digest=p.content_hash, status=p.status)
            else:
                report.reused += 1
                writer.ok(p.entry, p.items[0].content_hash, p.items, p.ocr)
            if advance:
                advance()
        batcher.finish()
    finally:
        budget.close()


def items_of(
    p: Pixels, vectors: list[np.ndarray], embedder: Callable[[], Embedder], batch_size: int
) -> list[Item]:
    """A decoded file's items: its frames with their `vectors`, then its passages (embedded
    here, `batch_size` at a time). Every engine builds them this one way."""
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
            for i in range(0, len(passages), batch_size)
            for v in model.embed_texts(passages[i : i + batch_size])
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
    return items + said_items(p, embedder, batch_size)


def said_items(p: Pixels, embedder: Callable[[], Embedder], batch_size: int) -> list[Item]:
    """A video's timed lines of subtitles as passages at their moments, titled by the file
    like a document's passages (so the file's name finds them too)."""
    if not p.said:
        return []
    e = p.entry
    title = Path(e.path).stem.replace("_", " ")
    lines = [f"{title}: {c.text}" for c in p.said]
    model = embedder()
    vectors = [
        v
        for i in range(0, len(lines), batch_size)
        for v in model.embed_texts(lines[i : i + batch_size])
    ]
    return [
        Item(
            e.path,
            e.kind,
            p.content_hash,
            v,
            c.t,
            c.t_end,
            ext=ext_of(e.path),
            taken=e.mtime_ns / 1e9,
            text=line,
            origin=Origin.SUBTITLES,
        )
        for c, line, v in zip(p.said, lines, vectors, strict=True)
    ]


class Batcher:
    """Feeds the model full batches of frames, whichever files they come from (a video's
    frames and the photos after it share batches), and hands back each file once all its
    frames are embedded, in arrival order. Once a file is added the batcher holds only its
    frames not yet embedded (less than a batch), not the whole file's pixels."""

    def __init__(
        self,
        embedder: Callable[[], Embedder],
        size: int,
        done: Callable[[Pixels, list[np.ndarray]], None],
    ):
        self.embedder, self.size, self.done = embedder, size, done
        self.files: deque[tuple[Pixels, list[np.ndarray]]] = deque()
        self.queue: deque[tuple[list[np.ndarray], Any]] = deque()

    def add(self, p: Pixels) -> None:
        vectors: list[np.ndarray] = []
        self.files.append((p, vectors))
        for f in p.frames:
            self.queue.append((vectors, f.pixels))
            f.pixels = None  # the queue's reference is the only one: freed once embedded
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


def _raw_bytes(entry: FileEntry) -> int:
    """What reading `entry` holds until it is decoded: a video is hashed from samples and
    decoded from its path, and a file over the size limit is refused unread."""
    return 0 if entry.kind == Kind.VIDEO or entry.size > MAX_FILE_BYTES else entry.size


def _frame_bytes(side: int) -> int:
    """One frame while a file is decoded: the model's float32 CHW input and the RGB picture
    it is made from."""
    return side * side * 3 * (4 + 1)


def _decoded_bytes(entry: FileEntry, frame_bytes: int, options: Options) -> int:
    """A bound on what decoding `entry` holds, but for a PDF: its page count is a guess
    until it is read (and corrected then)."""
    if entry.kind == Kind.VIDEO:
        return options.video.max_frames * frame_bytes
    if entry.kind == Kind.DOCUMENT:
        renders = options.documents.render_pages and ext_of(entry.path) == ".pdf"
        return min(options.documents.max_pages, DOCUMENT_PAGES) * frame_bytes if renders else 0
    return frame_bytes


def _chunks(
    entries: list[FileEntry], count: int, cap: int, cost: Callable[[FileEntry], int]
) -> Iterator[list[FileEntry]]:
    """Runs of at most `count` files whose reading and decoding fit under `cap` together (a
    larger file alone): once earlier chunks have drained, a chunk's every take is admitted,
    so none waits on bytes that only its own progress could bring back."""
    chunk: list[FileEntry] = []
    total = 0
    for entry in entries:
        if chunk and (len(chunk) == count or total + cost(entry) > cap):
            yield chunk
            chunk, total = [], 0
        chunk.append(entry)
        total += cost(entry)
    if chunk:
        yield chunk


def _prepare(
    entries: list[FileEntry],
    coll: Collection,
    embedder: Callable[[], Embedder],
    options: Options,
    budget: Budget,
) -> Iterator[_Failed | _Reused | Pixels]:
    """Read and hash each file; reuse stored vectors for known contents, decode the rest,
    each within `budget` (the only thread that takes from it)."""
    frame_bytes = _frame_bytes(GUESS_SIDE)  # exact once a file needs the model

    def cost(entry: FileEntry) -> int:
        return _raw_bytes(entry) + _decoded_bytes(entry, frame_bytes, options)

    with ThreadPoolExecutor(options.workers, thread_name_prefix="mmsearch-decode") as pool:
        for chunk in _chunks(entries, options.batch_size, budget.cap, cost):
            raws: list[int] = []
            reading: list[Future[FileRead]] = []
            for entry in chunk:
                n = _raw_bytes(entry)
                if not budget.take(n, own=sum(raws)):
                    return
                raws.append(n)
                reading.append(pool.submit(read_file, entry))
            reads = deque(f.result() for f in reading)
            del reading
            known = coll.items_for_hashes([r.digest for r in reads if r.digest and not r.error])
            read_by_ocr = coll.ocr_outcomes(sorted({i[0].path for i in known.values()}))
            waiting: deque[tuple[FileEntry, FileRead, int]] = deque()
            for entry, n in zip(chunk, raws, strict=True):
                r = reads.popleft()
                raw = budget.settle(n, len(r.data) if r.data is not None else 0)
                if not r.error and r.digest and r.digest not in known:
                    waiting.append((entry, r, raw))
                    continue
                budget.give(raw)
                if r.error or not r.digest:
                    status = FileStatus.ERROR if r.digest else FileStatus.UNREADABLE
                    status = FileStatus.EMPTY if r.empty else status
                    yield _Failed(entry, r.error or FileStatus.UNREADABLE, r.digest, status)
                else:
                    items = [
                        replace(i, path=entry.path, ext=ext_of(entry.path)) for i in known[r.digest]
                    ]
                    source = known[r.digest][0].path
                    # A touched file is read again, as before; a renamed or copied one is not.
                    ocr = read_by_ocr.get(source) if source != entry.path else None
                    yield _Reused(entry, items, ocr)
            del r
            if not waiting:
                continue
            frame_bytes = _frame_bytes(embedder().image_size)
            own = sum(raw for _, _, raw in waiting)  # read, waiting here to be decoded
            decoding: deque[tuple[FileEntry, str, Future[Pixels]]] = deque()
            while waiting:
                entry, r, raw = waiting.popleft()
                need = _decoded_bytes(entry, frame_bytes, options)
                # Hand on what is decoded first, while that makes room: a take waits only
                # for bytes that the consumer can bring back without us.
                while decoding and not budget.fits(need):
                    yield _collect(*decoding.popleft())
                if not budget.take(need, own=own):
                    return
                own -= raw
                future = pool.submit(
                    _decode_within, budget, raw + need, entry, r.digest, r.data, embedder, options
                )
                decoding.append((entry, r.digest, future))
                del r
            while decoding:
                yield _collect(*decoding.popleft())


def _collect(entry: FileEntry, digest: str, future: Future[Pixels]) -> Pixels | _Failed:
    try:
        return future.result()
    except NothingInside as e:
        return _Failed(entry, str(e), digest, FileStatus.EMPTY)
    except ExtractError as e:
        return _Failed(entry, str(e), digest)


def _decode_within(
    budget: Budget,
    taken: int,
    entry: FileEntry,
    digest: str,
    data: bytes | None,
    model: Callable[[], Embedder],
    options: Options,
) -> Pixels:
    """Decode one file, then hold in `budget` the bytes its frames really take."""
    try:
        p = _decode(entry, digest, data, model, options)
    except BaseException:
        budget.give(taken)
        raise
    p.held = budget.settle(taken, sum(_nbytes(f.pixels) for f in p.frames))
    return p


def _nbytes(pixels: Any) -> int:
    return int(getattr(pixels, "nbytes", 0))  # numpy arrays and torch tensors alike


def _decode(
    entry: FileEntry,
    digest: str,
    data: bytes | None,
    model: Callable[[], Embedder],
    options: Options,
) -> Pixels:
    from mmsearch.indexing.extract import load

    embedder = model()
    size = embedder.image_size
    # The OCR selector judges a picture while it is in memory, so the OCR pass never opens
    # a photo again only to skip it; its two looks need a few hundred pixels a side.
    judge = entry.kind == Kind.IMAGE and options.ocr == OcrMode.AUTO and ocr.available()
    decode_side = max(size, ocr.SELECTOR_SIDE) if judge else size
    started = time.monotonic()
    try:
        loaded = load(entry.kind, entry.path, data, decode_side, options.video, options.documents)
    except ExtractError:
        raise
    except Exception as e:  # a decoder's bug on one hostile file must not end the run
        raise ExtractError(f"cannot read {entry.kind}: {type(e).__name__}: {one_line(e)}") from None
    try:
        frames = [
            Frame(f.t, f.t_end, f.taken, f.page, embedder.preprocess(f.image))
            for f in loaded.frames
        ]
    except Exception as e:
        raise ExtractError(f"cannot prepare image: {one_line(e)}") from None
    verdict = None
    if judge and not ocr.worth_reading(loaded.frames[0].image):
        verdict = OcrOutcome.SKIPPED
    seconds = time.monotonic() - started
    return Pixels(
        entry,
        digest,
        frames,
        loaded.texts,
        loaded.said,
        loaded.note,
        seconds=seconds,
        ocr=verdict,
    )


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
