"""Keep the index exact while files change: watchdog events → debounced, stable change sets
→ the same `sync` that `index` runs. The watcher holds the writer lock for its lifetime."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mmsearch.core.config import Settings, is_local_uri
from mmsearch.core.paths import is_within, normalize, outermost
from mmsearch.indexing.index import IndexOptions, IndexReport, merge_roots, sync
from mmsearch.storage import snapshot
from mmsearch.storage.store import Store

INOTIFY_HINT = (
    "inotify ran out of watches or instances; polling instead. To watch natively, raise the "
    "limits: sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=1024"
)


@dataclass(frozen=True)
class WatchOptions:
    poll: bool = False  # force polling (network filesystems)
    poll_interval: float = 2.0
    settle: float = 0.5  # a path is synced once quiet and unchanged for this long, twice
    reconcile_every: float = 600.0  # full rescan: inotify overflows lose events silently
    optimize_every: float = 300.0  # compact the tables at most this often


class ChangeSet:
    """Paths touched by file-system events, released once they have settled: no event for
    `settle` seconds and the same size and mtime at two looks in a row (slow copies,
    downloads and editors keep writing)."""

    # Parents report "modified" whenever a child changes: following those would rescan the
    # whole tree on every save. Opening and reading change nothing.
    _IGNORED = frozenset({"opened", "closed_no_write", "attrib"})

    def __init__(self, skip: Iterable[str] = ()):
        self._skip = [normalize(s) for s in skip]
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._stat: dict[str, tuple[int, int] | None] = {}

    def dispatch(self, event: Any) -> None:
        """watchdog's handler entry point."""
        if event.event_type in self._IGNORED:
            return
        if event.is_directory and event.event_type == "modified":
            return
        now = time.monotonic()
        with self._lock:
            for path in (event.src_path, getattr(event, "dest_path", "")):
                path = os.fsdecode(path) if path else ""
                if path and not any(is_within(path, s) for s in self._skip):
                    self._seen[path] = now
                    self._stat.pop(path, None)

    def settled(self, settle: float) -> list[str]:
        now = time.monotonic()
        ready = []
        with self._lock:
            for path, seen in list(self._seen.items()):
                if now - seen < settle:
                    continue
                current = _stat(path)
                if path in self._stat and self._stat[path] == current:
                    ready.append(path)
                    del self._seen[path], self._stat[path]
                else:
                    self._stat[path] = current
                    self._seen[path] = now
        return outermost(ready)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def watch(
    settings: Settings,
    paths: Iterable[str],
    options: IndexOptions,
    watch_options: WatchOptions,
    stop: threading.Event,
    on_batch: Callable[[IndexReport], None],
    on_notice: Callable[[str], None],
) -> None:
    """Reconcile `paths` with the index, then follow their changes until `stop` is set; a
    batch in flight always finishes."""
    roots = outermost(normalize(p) for p in paths)
    store = Store(settings.db)
    with store.writer_lock("watch"):
        changes = ChangeSet(skip=[store.uri] if is_local_uri(store.uri) else [])
        observer = _start_observer(roots, changes, watch_options, on_notice)
        try:
            _follow(store, settings, roots, options, watch_options, changes, stop, on_batch)
        finally:
            observer.stop()
            observer.join(timeout=10)


def _follow(
    store: Store,
    settings: Settings,
    roots: list[str],
    options: IndexOptions,
    watch_options: WatchOptions,
    changes: ChangeSet,
    stop: threading.Event,
    on_batch: Callable[[IndexReport], None],
) -> None:
    def run(paths: list[str]) -> None:
        nonlocal dirty
        report = sync(store, settings, paths, options, roots=roots, optimize=False)
        dirty |= bool(
            report.new or report.updated or report.reused or report.removed or report.failed
        )
        on_batch(report)

    dirty = False
    run(roots)  # what changed while nothing watched
    coll = store.collection(settings)
    if coll is not None:
        coll.set_roots(merge_roots(coll.info["roots"], roots))
    last_reconcile = last_optimize = time.monotonic()
    while not stop.wait(0.1):
        ready = changes.settled(watch_options.settle)
        if ready:
            run(ready)
        now = time.monotonic()
        if now - last_reconcile >= watch_options.reconcile_every:
            run(roots)
            last_reconcile = now
        if dirty and now - last_optimize >= watch_options.optimize_every:
            _optimize(store, settings)
            dirty, last_optimize = False, now
    if dirty:
        _optimize(store, settings)


def _optimize(store: Store, settings: Settings) -> None:
    coll = store.collection(settings)
    if coll is not None:
        snapshot.refresh(coll, changed=True)


def _start_observer(
    roots: list[str], changes: ChangeSet, options: WatchOptions, on_notice: Callable[[str], None]
) -> Any:
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if not options.poll:
        observer = Observer()
        try:
            for root in roots:
                observer.schedule(changes, root, recursive=True)
            observer.start()
            return observer
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            observer.stop()
            on_notice(INOTIFY_HINT)
    observer = PollingObserver(timeout=options.poll_interval)
    for root in roots:
        observer.schedule(changes, root, recursive=True)
    observer.start()
    return observer
