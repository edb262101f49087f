"""The Ray engine (`mmsearch index --engine ray`): new and changed files are read, decoded
and embedded by a Ray Data pipeline, on a local Ray or on a cluster; everything else stays
where the local engine has it.

The driver (this process) scans, finds what changed, and writes: the same `Writer` and store
code as the local engine, so the ordering rules hold (each file's items before its row, so a
job killed anywhere leaves nothing the next run does not finish). In between, two stages:

1. read & hash (Ray tasks): each file's content hash, or why it cannot be read. The driver
   then reuses stored vectors for every content the store knows (a moved or copied file), as
   the local engine does, and records failures with their reasons;
2. decode & embed (`map_batches` over an actor pool, `ActorPoolStrategy(size=N)`, one GPU per
   actor when the cluster has GPUs): each actor loads the model once, decodes its batch of
   files in threads with the local engine's decoders (images, video keyframes, document
   pages and passages) and embeds them; each file comes back whole, pickled, as one row.

The OCR pass runs afterwards on the driver, as after a local run. Workers must see the files
at the same paths (a shared or network file system) and reach the same model weights.

Ray is imported here only, and this module only when `--engine ray` asks for it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.core.errors import EngineError, ExtractError, MmsearchError, UsageError, one_line
from mmsearch.core.formats import ext_of
from mmsearch.core.vocab import FileStatus, Kind
from mmsearch.indexing.pipeline import Pixels, Writer, _decode, items_of
from mmsearch.indexing.reading import read_file
from mmsearch.indexing.scan import FileEntry
from mmsearch.storage.store import Collection, Item

if TYPE_CHECKING:
    from mmsearch.core.config import Settings
    from mmsearch.indexing.index import IndexOptions
    from mmsearch.model.embed import Embedder

HASH_BATCH = 64  # files per read-and-hash task
# Passed on to the embedding actors, so they load the same model the same way as the driver.
_ENV_PREFIXES = ("MMSEARCH_", "HF_", "XDG_CACHE_HOME", "XDG_DATA_HOME", "AWS_")


def embed_all_on_ray(
    todo: list[tuple[FileEntry, bool]],
    coll: Collection,
    embedder: Callable[[], Embedder],
    writer: Writer,
    options: IndexOptions,
    settings: Settings,
    advance: Callable[[], None] | None = None,
) -> None:
    """What `pipeline.embed_all` does, with the reading, decoding and embedding on Ray."""
    ray = _connect(options.ray_address)
    report = writer.report
    was_ok = {e.path: ok for e, ok in todo}
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    entries = [_row(e) for e, _ in todo]
    with _job_errors():
        hashed = (
            ray.data.from_items(entries)
            .map_batches(_hash_batch, batch_size=HASH_BATCH, batch_format="pandas")
            .take_all()
        )
    digests = {r["path"]: (r["digest"], r["error"]) for r in hashed}
    known = coll.items_for_hashes(sorted({d for d, err in digests.values() if d and not err}))
    read_by_ocr = coll.ocr_outcomes(sorted({i[0].path for i in known.values()}))

    def finished() -> None:
        if advance:
            advance()

    to_embed: list[dict[str, Any]] = []
    for entry, _ in todo:
        digest, error = digests[entry.path]
        if error or not digest:
            status = FileStatus.ERROR if digest else FileStatus.UNREADABLE
            writer.fail(entry, error or FileStatus.UNREADABLE, digest=digest, status=status)
            finished()
        elif digest in known:
            items = [replace(i, path=entry.path, ext=ext_of(entry.path)) for i in known[digest]]
            source = known[digest][0].path
            ocr = read_by_ocr.get(source) if source != entry.path else None
            report.reused += 1
            writer.ok(entry, digest, items, ocr)
            finished()
        else:
            to_embed.append({**_row(entry), "digest": digest})
    if not to_embed:
        return
    workers, gpus = _pool_size(ray, options.ray_workers)
    cpus = _cpus_per_actor(ray, workers, gpus)
    embedded = ray.data.from_items(to_embed).map_batches(
        _EmbedFiles,
        batch_size=options.batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus,
        num_cpus=cpus,
        fn_constructor_args=(settings, options, max(1, int(cpus)), env),
    )
    with _job_errors():
        for batch in embedded.iter_batches(batch_format="pandas", batch_size=None):
            _write_back(batch, writer, was_ok, finished)


def _write_back(
    batch: Any, writer: Writer, was_ok: dict[str, bool], finished: Callable[[], None]
) -> None:
    """Hand each file of an embedded batch to the writer, as the local engine does."""
    report = writer.report
    for path, blob in zip(batch["path"], batch["result"], strict=True):
        entry, digest, outcome = pickle.loads(blob)
        if isinstance(outcome, str):
            writer.fail(entry, outcome, digest=digest)
        else:
            if was_ok[path]:
                report.updated += 1
            else:
                report.new += 1
            if entry.kind == Kind.VIDEO:
                report.frames += len(outcome)
            writer.ok(entry, digest, outcome)
        finished()


@contextlib.contextmanager
def _job_errors() -> Iterator[None]:
    """A failed Ray job (a worker that cannot load the model, a lost node) as one line
    naming its cause; what was written before it stays, and the next run goes on."""
    try:
        yield
    except (MmsearchError, KeyboardInterrupt):
        raise
    except Exception as e:
        cause = getattr(e, "cause", None) or e
        what = f"{type(cause).__name__}: {one_line(cause)}"
        raise EngineError(f"the Ray job failed: {what}") from None


def _row(entry: FileEntry) -> dict[str, Any]:
    return {**asdict(entry), "kind": str(entry.kind)}


def _connect(address: str | None) -> Any:
    """Ray, connected: to `address` (a cluster), else to a Ray already started in this
    process, else to a new local one with every core."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # no C++ notices on the terminal
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'mmsearch[ray]'") from None
    import logging

    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=False,
            )
        except Exception as e:
            where = address or "a local Ray"
            raise EngineError(f"cannot start or reach {where}: {one_line(e)}") from None
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def _pool_size(ray: Any, wanted: int | None) -> tuple[int, float]:
    """Actors and GPUs per actor: one actor per GPU on a GPU cluster, else one per two
    CPUs (an actor embeds with the ONNX Runtime threads of its cores)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return wanted or gpus, 1.0
    return wanted or max(1, int(resources.get("CPU", 1)) // 2), 0.0


def _cpus_per_actor(ray: Any, workers: int, gpus: float) -> float:
    """The cluster's CPUs shared among the actors, leaving the read-and-hash tasks and the
    driver room; at least one each."""
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1.0, cpus // workers) if not gpus else 1.0


def _hash_batch(batch: Any) -> Any:
    """Stage 1, in Ray tasks: each file's content hash, or why it could not be read."""
    digests, errors = [], []
    for row in batch.to_dict("records"):
        entry = FileEntry(row["path"], int(row["size"]), int(row["mtime_ns"]), row["kind"])
        r = read_file(entry)
        digests.append(r.digest or "")
        errors.append(r.error or "")
    return batch.assign(digest=digests, error=errors)[["path", "digest", "error"]]


class _EmbedFiles:
    """Stage 2, an actor of the pool: the model loaded once, then batches of files decoded
    (in threads) and embedded; one pickled (entry, digest, items | reason) per file."""

    def __init__(
        self, settings: Settings, options: IndexOptions, cpus: int, env: dict[str, str]
    ) -> None:
        from mmsearch.model.embed import load_embedder

        # The driver's model settings and caches (a per-job runtime_env would start new
        # worker processes for every job), and this actor's share of the cores.
        os.environ.update(env)
        os.environ.setdefault("MMSEARCH_THREADS", str(cpus))
        self.options = options
        self.model = load_embedder(settings)
        self.pool = ThreadPoolExecutor(max(1, min(options.workers, cpus * 2)))

    def embedder(self) -> Embedder:
        return self.model

    def __call__(self, batch: Any) -> Any:
        rows = batch.to_dict("records")
        entries = [
            FileEntry(r["path"], int(r["size"]), int(r["mtime_ns"]), r["kind"]) for r in rows
        ]
        decoded = list(self.pool.map(self._decode, entries, [r["digest"] for r in rows]))
        pixels = [p for p in decoded if isinstance(p, Pixels)]
        vectors = self._embed_frames(pixels)
        results = []
        for d in decoded:
            if isinstance(d, Pixels):
                outcome: list[Item] | str = items_of(
                    d, vectors[id(d)], self.embedder, self.options.batch_size
                )
                results.append(pickle.dumps((d.entry, d.content_hash, outcome)))
            else:
                results.append(pickle.dumps(d))
        return batch.assign(result=results)[["path", "result"]]

    def _decode(self, entry: FileEntry, digest: str) -> Pixels | tuple[FileEntry, str, str]:
        """Read the file again (the worker has no bytes from stage 1) and decode it; a file
        changed since it was hashed is recorded under its new content."""
        r = read_file(entry)
        if r.error or not r.digest:
            return entry, r.digest or digest, r.error or FileStatus.UNREADABLE
        try:
            return _decode(entry, r.digest, r.data, self.embedder, self.options)
        except ExtractError as e:
            return entry, r.digest, str(e)
        except MmsearchError as e:
            return entry, r.digest, one_line(e)

    def _embed_frames(self, pixels: Sequence[Pixels]) -> dict[int, list[np.ndarray]]:
        """Every frame of the batch's files, embedded in full batches across files."""
        flat = [(id(p), f.pixels) for p in pixels for f in p.frames]
        out: dict[int, list[np.ndarray]] = {id(p): [] for p in pixels}
        size = self.options.batch_size
        for chunk in _runs(flat, size):
            for (owner, _), v in zip(
                chunk, self.model.embed_images([px for _, px in chunk]), strict=True
            ):
                out[owner].append(v)
        return out


def _runs(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
