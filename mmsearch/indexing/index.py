"""The indexing pipeline: scan → read & hash → (reuse stored vectors | decode → embed) → store.

Reading and decoding run in threads ahead of the model, within a byte budget (see
mmsearch.indexing.pipeline); results are committed in batches, each file's row last, so a killed run
loses at most the batch in flight.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mmsearch.core.config import DocumentOptions, Settings, VideoOptions, is_local_uri
from mmsearch.core.errors import ModelMismatch, UsageError
from mmsearch.core.paths import is_within, normalize, outermost
from mmsearch.core.timings import phase
from mmsearch.core.vocab import Engine, FileStatus, OcrMode, choose
from mmsearch.indexing.ocr import OcrReport, ocr_pass
from mmsearch.indexing.pipeline import FLUSH_BATCHES, Writer, embed_all
from mmsearch.indexing.scan import FileEntry, scan
from mmsearch.storage import snapshot
from mmsearch.storage.registry import remembered_summary
from mmsearch.storage.store import Store

if TYPE_CHECKING:
    from mmsearch.model.embed import Embedder


class Progress(Protocol):
    """What a run reports as it goes: a step with a total, files done (and whether each was
    embedded, so a rate counts only those), and open-ended steps such as loading the model."""

    def start(self, total: int, label: str = "indexing") -> None: ...
    def advance(self, n: int = 1, embedded: bool = False) -> None: ...
    def step(self, label: str) -> AbstractContextManager[None]: ...


@dataclass
class IndexReport:
    new: int = 0
    updated: int = 0
    reused: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    empty: int = 0  # read fine, nothing inside to index (not failures)
    unsupported: int = 0
    links_out: int = 0  # file links leaving their folder, skipped (see indexing.scan)
    frames: int = 0  # video frames embedded
    first_look_skips: int = 0  # pictures the OCR selector passed over while decoding them
    video_seconds: float = 0.0  # spent decoding videos (summed over decode threads)
    ocr: OcrReport = field(default_factory=OcrReport)
    seconds: float = 0.0
    model_seconds: float = 0.0  # loading the model (and preparing it, the first time)
    model_prepared: bool = False  # this run made the one-time ONNX export
    failures: list[tuple[str, str]] = field(default_factory=list)


def default_workers() -> int:
    """Decode threads: on a CPU they share the cores with the model; a GPU needs them all."""
    from mmsearch.model.embed import has_gpu

    cores = os.cpu_count() or 1
    return cores if has_gpu() else max(1, min(4, cores))


def default_batch_size() -> int:
    from mmsearch.model.embed import has_gpu

    return 128 if has_gpu() else 16  # on a CPU 32 is no faster and holds 120 MiB more


@dataclass(frozen=True)
class IndexOptions:
    """How to index: what to skip, how hard to work, how densely to sample."""

    excludes: Sequence[str] = ()
    batch_size: int = field(default_factory=lambda: default_batch_size())
    workers: int = field(default_factory=lambda: default_workers())
    video: VideoOptions = field(default_factory=VideoOptions)
    documents: DocumentOptions = field(default_factory=DocumentOptions)
    ocr: OcrMode = OcrMode.AUTO  # see mmsearch.indexing.ocr
    ocr_video_frames: int = 0  # frames per video the OCR pass may read (0: none)
    engine: Engine = Engine.LOCAL  # see mmsearch.indexing.engine_ray
    ray_address: str | None = None  # a Ray cluster ("auto", "ray://host:10001"); None: local
    ray_workers: int | None = None  # embedding actors; None: one per GPU, else per 2 CPUs
    follow_links: bool = False  # index file links that leave their folder (see scan)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ocr", choose(OcrMode, self.ocr, "--ocr"))
        object.__setattr__(self, "engine", choose(Engine, self.engine, "--engine"))
        if self.ray_workers is not None and self.ray_workers < 1:
            raise UsageError("ray_workers must be at least 1")
        if self.engine != Engine.RAY and (self.ray_address or self.ray_workers):
            raise UsageError("--ray-address and --ray-workers need --engine ray")
        for name in ("batch_size", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1")
        if self.ocr_video_frames < 0:
            raise UsageError("ocr_video_frames must be 0 or more")


def index_paths(
    settings: Settings,
    paths: Iterable[str],
    options: IndexOptions | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Bring the index of `paths` up to date with the disk; they become indexed roots."""
    roots = sorted({normalize(p) for p in paths})
    options = options or IndexOptions()
    store = Store(settings.db)
    with store.writer_lock("index"):
        coll = store.collection(settings) if store.exists() else None
        if coll is not None and (lifted := named_exclusions(coll.excluded, roots)):
            # Indexing a forgotten subtree (or a path in it) by name brings it back.
            kept = [e for e in coll.excluded if e not in lifted]
            coll.set_roots(coll.info["roots"], excluded=kept)
        report = sync(store, settings, roots, options, progress=progress)
        coll = store.collection(settings)
        if coll is not None:
            coll.set_roots(merge_roots(coll.info["roots"], roots))
    return report


def named_exclusions(excluded: Sequence[str], paths: Sequence[str]) -> list[str]:
    """The exclusions that `paths` name: each path at or inside one lifts it."""
    return [e for e in excluded if any(is_within(p, e) for p in paths)]


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
    coll = store.collection(settings)
    if coll is not None and coll.excluded:  # forgotten subtrees stay out
        skip += coll.excluded
        paths = [p for p in paths if not any(is_within(p, e) for e in coll.excluded)]
    found = scan(paths, options.excludes, skip=skip, roots=roots, follow_links=options.follow_links)
    report.unsupported = found.unsupported
    report.links_out = found.links_out
    existing = coll.records_under(paths) if coll and paths else {}

    todo: list[tuple[FileEntry, bool]] = []
    for entry in found.files:
        rec = existing.get(entry.path)
        was_ok = rec is not None and rec.status == "ok"
        # A file judged bad is not retried until it changes; an unreadable one is.
        settled = rec is not None and rec.status != FileStatus.UNREADABLE
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
    embedder = _model_loader(settings, coll.dim if coll else None, report, progress)
    if coll is None:
        coll = store.create_collection(settings, embedder().dim)
    writer = Writer(coll, report, flush_items=options.batch_size * FLUSH_BATCHES)
    for path, reason in found.problems:
        writer.fail(FileEntry(path, 0, 0), reason, kind="other", status=FileStatus.UNREADABLE)
    if todo:
        if progress:
            progress.start(len(todo))
        try:
            advance = progress.advance if progress else None
            if options.engine == Engine.RAY:
                from mmsearch.indexing.engine_ray import embed_all_on_ray

                embed_all_on_ray(todo, coll, embedder, writer, options, settings, advance)
            else:
                embed_all(todo, coll, embedder, writer, options, advance)
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
    report.ocr.skipped += report.first_look_skips
    with phase("optimize"):
        if optimize:
            snapshot.refresh(coll, bool(writer.wrote or vanished or report.ocr.text))
        changed = writer.wrote or vanished or orphans or report.ocr.text or found.problems
        if changed or remembered_summary(store.uri, coll.key) is None:
            store.remember({coll.key: coll.summary()})
    report.seconds = time.monotonic() - started
    return report


def _model_loader(
    settings: Settings, dim: int | None, report: IndexReport, progress: Progress | None
) -> Callable[[], Embedder]:
    @functools.cache
    def load() -> Embedder:
        from mmsearch.model.embed import load_embedder, needs_export

        started = time.monotonic()
        report.model_prepared = needs_export(settings)
        label = (
            "preparing the model for this CPU (once, about half a minute)"
            if report.model_prepared
            else "loading the model"
        )
        with progress.step(label) if progress else nullcontext():
            embedder = load_embedder(settings)
        report.model_seconds += time.monotonic() - started
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
        # A subtree inside a root that stays is kept out of later runs over that root.
        inside = [t for t in targets if any(is_within(t, r) for r in roots)]
        kept = [e for e in coll.excluded if not any(is_within(e, t) for t in inside)]
        coll.set_roots(roots, excluded=outermost([*kept, *inside]))
        if files or items:
            snapshot.refresh(coll, changed=True)
        store.remember({coll.key: coll.summary()})
    return ForgetReport(files, items)
