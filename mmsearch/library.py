"""The library object: one store and one model, and everything mmsearch does with them.

Every front door (the CLI, a Python caller, the server) goes through it. It holds the
settings, opens the store and loads the model only when a call needs them, and asks a
running `mmsearch serve`/`watch` for searches by itself, so every caller gets the warm path.

    from mmsearch import Library
    lib = Library()                               # the default store and model
    lib.index(["~/Photos"])
    for hit in lib.search("red car at night", top=5):
        print(f"{hit.score:.3f} {hit.path}")
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mmsearch.core.bounds import MAX_PARTS, MAX_TOP, check_text
from mmsearch.core.config import Settings, is_local_uri
from mmsearch.core.errors import NoIndex, NotPrivate, StoreBusy, UsageError
from mmsearch.core.redact import redact
from mmsearch.core.timings import phase
from mmsearch.core.vocab import Mode, Sort, choose
from mmsearch.doors.protocol import SearchRequest, hits_from
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part, parse, similar_parts
from mmsearch.query.ranking import Hit

if TYPE_CHECKING:
    from mmsearch.indexing.index import ForgetReport, IndexOptions, IndexReport, Progress
    from mmsearch.indexing.watch import WatchOptions
    from mmsearch.model.embed import Embedder
    from mmsearch.query.dupes import Group
    from mmsearch.query.status import StatusReport
    from mmsearch.storage.store import Store

Query = str | Sequence[str] | Sequence[Part]


class Library:
    """A store and a model. `ask_server=False` answers every search in this process (the
    server itself does, and so can a caller that wants no socket traffic)."""

    def __init__(self, settings: Settings | None = None, *, ask_server: bool = True):
        self.given = settings or Settings()
        self.ask_server = ask_server
        self._store: Store | None = None
        self._settings: Settings | None = None
        self._folders: tuple[float, list[tuple[list[str], list[str]]]] | None = None
        self._unchanged: dict[tuple[str, int, int, int, int], bool] = {}

    @property
    def settings(self) -> Settings:
        """The given settings with the model chosen: what the caller named, completed from
        the model the store was built with (the most recently indexed, if several), else
        the default. Read from the store's registry file: no LanceDB import, no torch."""
        if self._settings is None:
            if self.given.chosen:
                self._settings = self.given
            else:
                self._settings = self.given.with_remembered(_remembered_models(self.given.db))
        return self._settings

    def with_model(self, model: str, pretrained: str | None) -> Library:
        """The same store seen through another model."""
        if (model, pretrained) == (self.settings.model, self.settings.pretrained):
            return self
        settings = dataclasses.replace(self.settings, model=model, pretrained=pretrained)
        return Library(settings, ask_server=self.ask_server)

    def check_model(self) -> None:
        """Fail now, in one line and without importing torch, for a model that cannot load:
        an unknown name, a missing checkpoint or folder, weights not cached while offline."""
        from mmsearch.model.embed import exported
        from mmsearch.model.preflight import check, check_given

        check_given(self.given)  # before reading the store for what was not given
        check(self.settings, weights_needed=not exported(self.settings))

    def _check_model_for_search(self) -> None:
        """As `check_model`, but weights matter only for a model the store has vectors of:
        for any other, "nothing indexed with it" is the useful answer, given here for a
        local store (its registry file or an empty folder tells, without LanceDB)."""
        from mmsearch.model.preflight import check
        from mmsearch.storage.registry import no_index_message, row_of

        rows = _remembered_models(self.settings.db)
        if row_of(rows, self.settings) is not None:
            self.check_model()
            return
        check(self.settings, weights_needed=False)
        if is_local_uri(self.settings.db):
            raise NoIndex(no_index_message(self.settings, rows))

    @property
    def store(self) -> Store:
        if self._store is None:
            from mmsearch.storage.store import Store

            self._store = Store(self.settings.db)
        return self._store

    def holds(self, path: str) -> bool:
        """Whether the file at `path`, its links resolved, lies inside a folder indexed into
        this store (by any model) and outside the subtrees `forget` dropped: the only files
        the web UI and the MCP server read or serve. A link inside a root that points out of
        it is outside; so is a path that does not exist."""
        from mmsearch.core.paths import is_within

        real = os.path.realpath(path)
        return any(
            any(is_within(real, r) for r in roots) and not any(is_within(real, x) for x in out)
            for roots, out in self._library_folders()
        )

    def unchanged(self, path: str, st: os.stat_result) -> bool:
        """Whether the index of this model holds the file at `path` at the size and mtime of
        `st` (read fine): it is still the very file that was indexed. Remembered per file
        state, so a video's hundred range requests cost one look-up."""
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        known = self._unchanged.get(key)
        if known is None:
            from mmsearch.storage.store import open_collection

            try:
                coll = open_collection(self.settings)
                known = coll.holds_unchanged(path, st.st_size, st.st_mtime_ns)
            except NoIndex:
                known = False
            if len(self._unchanged) > 10_000:
                self._unchanged.clear()
            self._unchanged[key] = known
        return known

    def _library_folders(self) -> list[tuple[list[str], list[str]]]:
        """Per model, its roots and forgotten subtrees, links resolved: read from the
        registry file each time, or for a remote store (a LanceDB read) every 2 s."""
        import time

        now = time.monotonic()
        kept = self._folders
        if kept is not None and now - kept[0] < 2.0 and not is_local_uri(self.settings.db):
            return kept[1]

        folders = [
            (
                [os.path.realpath(r) for r in m.get("roots") or []],
                [os.path.realpath(x) for x in m.get("excluded") or []],
            )
            for m in _remembered_models(self.settings.db)
        ]
        self._folders = (now, folders)
        return folders

    def embedder(self) -> Embedder:
        """The model, loaded once per process."""
        from mmsearch.model.embed import load_embedder

        return load_embedder(self.settings)

    # Writing ------------------------------------------------------------------------

    def index(
        self,
        paths: Sequence[str],
        options: IndexOptions | None = None,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Bring the index of `paths` up to date with the disk; they become indexed roots."""
        from mmsearch.indexing.index import IndexOptions, index_paths

        self.check_model()
        return index_paths(self.settings, paths, options or IndexOptions(), progress)

    def watch(
        self,
        paths: Sequence[str],
        stop: threading.Event,
        *,
        options: IndexOptions | None = None,
        watch_options: WatchOptions | None = None,
        on_batch: Callable[[IndexReport], None] = lambda report: None,
        on_notice: Callable[[str], None] = lambda message: None,
        serve: bool = True,
        on_start: Callable[[str], None] = lambda line: None,
    ) -> None:
        """Keep the index of `paths` exact until `stop` is set, answering searches for the
        store meanwhile (the model is loaded anyway) unless another server already does."""
        from mmsearch.indexing.index import IndexOptions
        from mmsearch.indexing.watch import WatchOptions, watch

        self.check_model()
        with (
            self.store.writer_lock("watch"),
            self._serving_if_free(serve, on_notice) as serving,
        ):
            on_start(
                redact(
                    f"watching {', '.join(paths)} into {self.settings.db} with "
                    f"{self.settings.describe()}; "
                    + ("answering queries meanwhile" if serving else "not answering queries")
                )
            )
            watch(
                self.settings,
                paths,
                options or IndexOptions(),
                watch_options or WatchOptions(),
                stop,
                on_batch,
                on_notice,
            )

    def forget(self, paths: Sequence[str]) -> ForgetReport:
        """Remove everything at or beneath `paths` from the index (the files stay on disk)."""
        from mmsearch.indexing.index import forget_paths

        return forget_paths(self.settings, paths)

    # Reading ------------------------------------------------------------------------

    def search(
        self,
        query: Query,
        *,
        top: int = 10,
        filters: Filters | None = None,
        moments: bool = False,
        mode: Mode | str = Mode.AUTO,
        sort: Sort | str = Sort.SCORE,
    ) -> list[Hit]:
        """The best hits for a query: a string in the CLI's grammar ("./beach.jpg + sunset"),
        its words as a list (as a shell splits them), or parsed parts. `sort`: "score", or
        the same top hits by capture date, "date" (oldest first) or "-date" (newest first)."""
        request = self.request(
            query, top=top, filters=filters, moments=moments, mode=mode, sort=sort
        )
        hits = self.ask(request) if self.ask_server else None
        return hits if hits is not None else self.search_here(request)

    def request(
        self,
        query: Query,
        *,
        top: int = 10,
        filters: Filters | None = None,
        moments: bool = False,
        mode: Mode | str = Mode.AUTO,
        sort: Sort | str = Sort.SCORE,
    ) -> SearchRequest:
        """A search checked as far as it can be without the model or LanceDB: arguments,
        the model's name and weights, that the store exists."""
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise UsageError(f"top must be a whole number from 1 to {MAX_TOP}, not {top!r}")
        from mmsearch.model.preflight import check_given

        check_given(self.given)  # names alone, before the store is read for the rest
        request = SearchRequest(
            model=self.settings.model,
            pretrained=self.settings.pretrained,
            parts=tuple(_parts(query)),  # at most MAX_PARTS (grammar, or below)
            top=top,
            filters=filters or Filters(),
            moments=bool(moments),
            mode=choose(Mode, mode, "--mode"),
            sort=choose(Sort, sort, "--sort"),
        )
        self._check_model_for_search()
        return request

    def ask(self, request: SearchRequest) -> list[Hit] | None:
        """A running server's answer (its error raised here), or None when no server
        answers for this store: then nothing ran anywhere."""
        from mmsearch.doors.client import ask

        with phase("server"):
            reply = ask(self.settings.db, request.to_wire())
        return None if reply is None else hits_from(reply)

    def search_here(self, request: SearchRequest) -> list[Hit]:
        """Answer in this process, whatever servers run."""
        from mmsearch.indexing.reading import query_file
        from mmsearch.query.search import search

        for part in request.parts:
            if part.kind == "image":
                query_file(part.value)  # a FIFO, device or huge file: refused before any work

        return search(
            self.with_model(request.model, request.pretrained).settings,
            request.parts,
            top=request.top,
            filters=request.filters,
            moments=request.moments,
            mode=request.mode,
            sort=request.sort,
        )

    def similar(
        self,
        path: str,
        *,
        at: float | None = None,
        plus: Sequence[str] = (),
        minus: Sequence[str] = (),
        top: int = 10,
        filters: Filters | None = None,
        moments: bool = False,
        mode: Mode | str = Mode.AUTO,
        sort: Sort | str = Sort.SCORE,
    ) -> list[Hit]:
        """Hits that look like the picture at `path` (or the frame at `at` seconds of a
        video), moved toward the `plus` texts and away from the `minus` ones; the query file
        itself is never among them."""
        parts = similar_parts(path, at, plus, minus)
        return self.search(parts, top=top, filters=filters, moments=moments, mode=mode, sort=sort)

    def dupes(self, within: Sequence[str] = (), threshold: float = 0.95) -> list[Group]:
        """Groups of near-duplicate pictures, biggest first."""
        from mmsearch.query.dupes import find_dupes

        return find_dupes(self.settings, within, threshold)

    def status(self) -> StatusReport:
        """What the store holds for this model; never raises for a damaged store (the
        report's `problem` says what is wrong)."""
        from mmsearch.core.errors import MmsearchError
        from mmsearch.query.status import status

        try:
            settings = self.settings
        except MmsearchError as e:  # a moved checkpoint, a damaged store: say it, show the rest
            return status(self.given.concrete(), problem=str(e))
        return status(settings)

    # Serving ------------------------------------------------------------------------

    def serve(
        self,
        stop: threading.Event,
        on_ready: Callable[[str], None] = print,
        on_notice: Callable[[str], None] = lambda message: None,
    ) -> None:
        """Answer searches for this store over its socket until `stop` is set, with the
        model and the index warm. Raises StoreBusy when another server answers already."""
        from mmsearch.doors.serve import serving, warm_up

        self.check_model()
        with serving(self, on_notice) as path:
            warm_up(self)
            on_ready(path)
            stop.wait()

    @contextlib.contextmanager
    def _serving_if_free(self, serve: bool, on_notice: Callable[[str], None]) -> Iterator[bool]:
        """Serve while the body runs, if asked and no other server does; yields whether."""
        from mmsearch.doors.serve import serving

        with contextlib.ExitStack() as stack:
            served = False
            if serve:
                try:
                    stack.enter_context(serving(self, on_notice))
                    served = True
                except (StoreBusy, NotPrivate) as e:
                    on_notice(f"not serving queries: {e}")
            yield served


def _parts(query: Query) -> list[Part]:
    if isinstance(query, str):
        return parse([query])
    items = list(query)
    if items and all(isinstance(p, Part) for p in items):
        if len(items) > MAX_PARTS:
            raise UsageError(f"a query has at most {MAX_PARTS} parts, not {len(items)}")
        for part in items:
            check_text(part.value, "a query part")
        return items  # type: ignore[return-value]
    if all(isinstance(p, str) for p in items):
        return parse(items)  # type: ignore[arg-type]
    raise UsageError("a query is a string, a list of words, or a list of parts")


def _remembered_models(db: str) -> list[dict[str, Any]]:
    """The models a store was built with (registry rows; empty for no store), from the
    registry file when it is current (no LanceDB, no pyarrow), else from the tables."""
    from pathlib import Path

    from mmsearch.storage.registry import MODELS, read_registry

    if is_local_uri(db) and not os.path.isdir(Path(db) / f"{MODELS}.lance"):
        return []  # no store, or an empty folder: nothing to ask LanceDB
    data = read_registry(db)
    if data is not None:
        return list(data["models"])
    from mmsearch.storage.store import Store

    store = Store(db)
    return store.models() if store.exists() else []
