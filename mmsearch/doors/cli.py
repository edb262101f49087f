"""The `mmsearch` command: parse options, call one method of the library, render its result.

Option groups shared by several commands are declared once, in `mmsearch.doors.options`."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from mmsearch.core import timings
from mmsearch.core.errors import ExitStatus, MmsearchError, UsageError, explain
from mmsearch.core.private import take_notices
from mmsearch.core.redact import redact
from mmsearch.core.sanitise import terminal
from mmsearch.doors.options import (
    IndexingOptions,
    RuntimeOptions,
    SearchOptions,
    StoreOptions,
    with_options,
)
from mmsearch.doors.output import reader_gone

if TYPE_CHECKING:
    from mmsearch.indexing.index import IndexOptions
    from mmsearch.library import Library
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import Part


app = typer.Typer(
    name="mmsearch",
    help="Search your own photos, videos and documents from the terminal: words or pictures "
    "in, files, video moments and pages out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,  # ours: see mmsearch.doors.completion
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _handle_errors(fn: F) -> F:
    """Every command's errors become a line on stderr and an exit code (`explain`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            reader_gone()
            raise typer.Exit(ExitStatus.OK) from None
        except (typer.BadParameter, typer.Exit, typer.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            line, status = explain(e)
            typer.echo(f"mmsearch: {line}", err=True)
            raise typer.Exit(status) from None
        finally:
            for notice in take_notices():
                typer.echo(f"mmsearch: {terminal(notice)}", err=True)

    return wrapper  # type: ignore[return-value]


class _Command(TyperCommand):
    """Arguments named by their metavar (`PATH...`) in the usage line and in the help,
    instead of Typer's `{paths}...` and `<list[Path]>`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(param.metavar or param.name.upper())  # type: ignore[union-attr]
        return pieces


def _command(**groups: type) -> Callable[[F], F]:
    """A command of the app, taking these option groups, with errors handled once."""

    def decorate(fn: F) -> F:
        name = fn.__name__.rstrip("_")
        return app.command(name=name, cls=_Command)(_handle_errors(with_options(**groups)(fn)))  # type: ignore[return-value]

    return decorate


def _library(store: StoreOptions, runtime: RuntimeOptions | None = None) -> Library:
    from mmsearch.core.config import Settings
    from mmsearch.library import Library

    extra = {"runtime": runtime.runtime, "precision": runtime.precision} if runtime else {}
    settings = Settings(db=store.db, model=store.model, pretrained=store.pretrained, **extra)
    return Library(settings)


def _stderr() -> Any:
    from mmsearch.doors.render import make_console

    return make_console(stderr=True, soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        from mmsearch import __version__

        typer.echo(f"mmsearch {__version__}")
        raise typer.Exit()


def _install_completion(value: bool) -> None:
    if value:
        from mmsearch.doors.completion import install, user_shell

        shell = user_shell()
        if shell is None:
            raise typer.BadParameter(
                "cannot tell your shell (bash, zsh or fish) from the parent process or SHELL; "
                "see completions/ in the source tree"
            )
        for line in install(shell):
            typer.echo(line)
        raise typer.Exit()


def _show_completion(value: str | None) -> None:
    if value:
        from mmsearch.doors.completion import SCRIPTS

        if value not in SCRIPTS:
            raise typer.BadParameter(f"choose one of {', '.join(SCRIPTS)}")
        typer.echo(SCRIPTS[value], nl=False)
        raise typer.Exit()


@app.callback()
def _quiet_libraries(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
    install_completion: Annotated[
        bool,
        typer.Option(
            "--install-completion",
            callback=_install_completion,
            is_eager=True,
            help="Install completion for the shell you run (bash, zsh or fish).",
        ),
    ] = False,
    show_completion: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            callback=_show_completion,
            is_eager=True,
            metavar="SHELL",
            help="Print the completion script for bash, zsh or fish.",
        ),
    ] = None,
) -> None:
    from mmsearch.doors.quick import quiet_libraries

    quiet_libraries()


@_command(indexing=IndexingOptions, store=StoreOptions, runtime=RuntimeOptions)
def index(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH...", help="Folders or files to index."),
    ],
    *,
    indexing: IndexingOptions,
    store: StoreOptions,
    runtime: RuntimeOptions,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, metavar="N", help="Images per batch [default: 16, GPU 128]."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, metavar="N", help="Decode threads [default: cores, ≤4]."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            envvar="MMSEARCH_ENGINE",
            metavar="local|ray",
            help="Decode and embed here (local) or on a Ray cluster (ray; needs mmsearch[ray]).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="Ray cluster to use (auto, ray://HOST:10001) [default: a local Ray].",
        ),
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option(
            "--ray-workers",
            min=1,
            metavar="N",
            help="Embedding actors on Ray [default: one per GPU, else one per 2 CPUs].",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress, no summary.")] = False,
) -> None:
    """Build or refresh the index of PATHS.

    Photos, videos (keyframes, at their timestamps) and documents (PDF pages and their text,
    DOCX, text, Markdown, HTML). Unchanged files are skipped, moved or copied files reuse
    their vectors, vanished files leave the index.

    \b
    Examples:
      mmsearch index ~/Photos
      mmsearch index ~/Photos ~/Documents --exclude 'raw/'
      mmsearch index /nas/photos --db s3://bucket/mmsearch --engine ray --ray-address auto
    """
    import dataclasses

    from mmsearch.doors.render import index_summary

    _require_existing(paths, "index")
    options = _index_options(indexing, batch_size=batch_size, workers=workers)
    if engine != "local" or ray_address or ray_workers:
        ray = {"engine": engine, "ray_address": ray_address, "ray_workers": ray_workers}
        options = dataclasses.replace(options, **ray)
    err = _stderr()
    with _progress(enabled=not quiet and err.is_terminal, console=err) as progress:
        report = _library(store, runtime).index([str(p) for p in paths], options, progress)
    if not quiet:
        index_summary(report, err, total=timings.since_start())


@_command(indexing=IndexingOptions, store=StoreOptions, runtime=RuntimeOptions)
def watch(
    paths: Annotated[
        list[Path],
        typer.Argument(file_okay=False, metavar="FOLDER...", help="Folders to keep indexed."),
    ],
    *,
    indexing: IndexingOptions,
    store: StoreOptions,
    runtime: RuntimeOptions,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll instead of inotify (network filesystems).")
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=0.1, metavar="SECONDS", help="Seconds between polls."),
    ] = 2.0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No output.")] = False,
) -> None:
    """Keep the index of FOLDERS exact while files change, until Ctrl-C or SIGTERM.

    Catches up with what changed while nothing watched, then indexes each change once the
    file has settled; prints one line per batch of changes. Answers queries meanwhile.

    \b
    Example:
      mmsearch watch ~/Photos ~/Videos
    """
    from mmsearch.doors.render import watch_line
    from mmsearch.indexing.watch import WatchOptions

    _require_existing(paths, "watch")
    err = _stderr()

    def on_start(line: str) -> None:  # names the folders: a stranger's names, escaped
        if not quiet:
            err.print(terminal(line), markup=False, soft_wrap=True)

    def on_batch(report: Any) -> None:
        line = watch_line(report)
        if line and not quiet:
            err.print(line, markup=False)

    def on_notice(message: str) -> None:
        if not quiet:
            err.print(f"mmsearch: {terminal(message)}", markup=False, style="yellow")

    with _until_signalled() as stop:
        _library(store, runtime).watch(
            [str(p) for p in paths],
            stop,
            options=_index_options(indexing),
            watch_options=WatchOptions(poll=poll, poll_interval=poll_interval),
            on_batch=on_batch,
            on_notice=on_notice,
            on_start=on_start,
        )


@_command(search=SearchOptions, store=StoreOptions)
def query(
    parts: Annotated[
        list[str],
        typer.Argument(
            metavar="PART...",
            help="Words, images, + and -, weights: see the examples.",
            show_default=False,
        ),
    ],
    *,
    search: SearchOptions,
    store: StoreOptions,
) -> None:
    """Find indexed items matching a query of words and images.

    A part is an image when it is path-shaped (./ ../ / ~ file://) or names an existing
    picture or video, otherwise text; join parts with + and -, weight them with N: (rclip's
    grammar).

    \b
    Examples:
      mmsearch query red car at night -n 5 --json
      mmsearch query ./beach.jpg + "at sunset" - people
      mmsearch query 2:"golden retriever" + 0.5:./pool.jpg --type image --after 2024-06
    """
    from mmsearch.query.grammar import parse

    _search(parse(parts), search, store)


@_command(search=SearchOptions, store=StoreOptions)
def similar(
    image: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="An image or video file."),
    ],
    *,
    search: SearchOptions,
    store: StoreOptions,
    at: Annotated[
        float | None,
        typer.Option(
            "--at", min=0.0, metavar="SECONDS", help="For a video: the moment, in seconds."
        ),
    ] = None,
    plus: Annotated[
        list[str] | None,
        typer.Option("--plus", metavar="TEXT", help="Text to add to the image (repeatable)."),
    ] = None,
    minus: Annotated[
        list[str] | None,
        typer.Option(
            "--minus", metavar="TEXT", help="Text to take away from the image (repeatable)."
        ),
    ] = None,
) -> None:
    """Find indexed items that look like FILE (which may lie outside the index).

    \b
    Examples:
      mmsearch similar ~/Downloads/beach.jpg --paths
      mmsearch similar beach.jpg --plus "at sunset" --minus people
      mmsearch similar holiday.mp4 --at 83.5
    """
    from mmsearch.query.grammar import similar_parts

    _search(similar_parts(str(image), at, plus or [], minus or []), search, store)


def _require_existing(paths: list[Path], command: str) -> None:
    """A folder that is not there is one line saying what to do, not a usage screen."""
    for p in paths:
        if not p.exists():
            raise UsageError(
                f"{p} does not exist: give `mmsearch {command}` a folder that holds your "
                "photos, videos or documents (e.g. ~/Pictures, ~/Documents), or create it first"
            )


def _search(parts: list[Part], search: SearchOptions, store: StoreOptions) -> None:
    """Shared by `query` and `similar`: explain, then what mmsearch.doors.quick does."""
    from mmsearch.doors.quick import show

    fmt = _output_format(search)
    filters = _filters(search)
    if search.explain:
        err = _stderr()
        err.print("query read as:", markup=False)
        for p in parts:
            err.print(f"  {terminal(p.describe())}", markup=False)
    show(
        _library(store),
        parts,
        fmt,
        top=search.top,
        filters=filters,
        moments=search.moments,
        mode=search.mode,
        sort=search.sort,
        preview=search.preview,
    )


@contextlib.contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    """An event SIGINT and SIGTERM set, so a long-running command finishes what it is doing
    and exits 0; the previous handlers come back afterwards."""
    import signal

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _index_options(indexing: IndexingOptions, **tuning: int | None) -> IndexOptions:
    from mmsearch.core.config import DocumentOptions, VideoOptions
    from mmsearch.indexing.index import IndexOptions

    return IndexOptions(
        excludes=indexing.exclude or [],
        video=VideoOptions(max_frames=indexing.max_frames, min_gap=indexing.min_gap),
        documents=DocumentOptions(max_pages=indexing.max_pages),
        ocr=indexing.ocr,
        ocr_video_frames=indexing.ocr_video,
        follow_links=indexing.follow_links,
        **{k: v for k, v in tuning.items() if v is not None},
    )


def _filters(search: SearchOptions) -> Filters:
    from mmsearch.query.filters import Filters

    return Filters.from_options(
        search.within, search.kind, search.ext, search.after, search.before, search.min_score
    )


def _output_format(search: SearchOptions) -> str:
    from mmsearch.doors.output import output_format

    flags = {"--json": search.json_, "--jsonl": search.jsonl, "--paths": search.paths}
    return output_format({**flags, "-0": search.null}, sys.stdout.isatty())


@_command(store=StoreOptions, runtime=RuntimeOptions)
def serve(*, store: StoreOptions, runtime: RuntimeOptions) -> None:
    """Keep the model loaded and the index open; `query` and `similar` then answer in
    milliseconds (they use a running server by themselves). Runs until Ctrl-C or SIGTERM.

    `watch` serves too. The socket lives in a folder only you can enter.

    \b
    Example:
      mmsearch serve &
    """
    lib = _library(store, runtime)

    def ready(path: str) -> None:
        message = f"serving {lib.settings.db} on {path} (pid {os.getpid()})"
        _stderr().print(terminal(redact(message)), markup=False)

    def notice(message: str) -> None:
        _stderr().print(f"mmsearch: {terminal(message)}", markup=False, style="yellow")

    with _until_signalled() as stop:
        lib.serve(stop, ready, notice)


@_command(store=StoreOptions, runtime=RuntimeOptions)
def ui(
    *,
    store: StoreOptions,
    runtime: RuntimeOptions,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, metavar="N", help="Port on 127.0.0.1 (0: any free one)."
        ),
    ] = 0,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
) -> None:
    """Search in a browser: a local web app on 127.0.0.1, its address (with a private token)
    printed on stdout's first line. Needs mmsearch[ui]. Runs until Ctrl-C.

    It answers `query` and `similar` too (the model stays warm), or uses a running
    `serve`/`watch`. MMSEARCH_UI_TOKEN sets the token.

    \b
    Example:
      mmsearch ui --port 8765
    """
    from mmsearch.doors import ui as web

    err = _stderr()

    def ready(url: str) -> None:
        typer.echo(url)
        sys.stdout.flush()

    def open_browser(url: str) -> None:
        import webbrowser

        webbrowser.open(url)

    desktop = sys.platform in ("darwin", "win32") or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    web.run(
        _library(store, runtime),
        port,
        web.token_from_env(),
        ready,
        lambda message: err.print(message, markup=False),
        open_browser if not no_open and desktop else None,  # never a text browser here
    )


@_command(store=StoreOptions, runtime=RuntimeOptions)
def mcp(*, store: StoreOptions, runtime: RuntimeOptions) -> None:
    """Answer an agent's searches: a Model Context Protocol server on stdin/stdout, with the
    tools search, similar, picture and status. Needs mmsearch[mcp].

    An agent starts it itself: name `mmsearch mcp` as a stdio server in its configuration.

    \b
    Example:
      mmsearch mcp --db ~/media-index
    """
    try:
        from mmsearch.doors.mcp_server import run
    except ImportError as e:
        raise MmsearchError(
            f"the MCP server needs its extra: pip install 'mmsearch[mcp]' ({e.name} is missing)"
        ) from None
    run(_library(store, runtime))


@_command(store=StoreOptions)
def dupes(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[PATH]...", help="Only look at or under these paths."),
    ] = None,
    *,
    store: StoreOptions,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            metavar="COSINE",
            help="Cosine similarity that makes a pair.",
        ),
    ] = 0.95,
    json_: Annotated[bool, typer.Option("--json", help="One JSON array of groups.")] = False,
) -> None:
    """Find groups of near-duplicate photos (and video frames matching a photo), biggest first.

    Resized, re-encoded and slightly cropped copies of a picture land in one group.

    \b
    Example:
      mmsearch dupes ~/Photos --threshold 0.97
    """
    from mmsearch.doors import render

    groups = _library(store).dupes([str(p) for p in paths or []], threshold)
    render.dupes(groups, json_)


@_command()
def open_(
    n: Annotated[
        int, typer.Argument(min=1, metavar="N", help="Which result of the last query (1 = best).")
    ],
) -> None:
    """Open the Nth result of the last query or similar with the system's opener.

    A video opens at its moment in mpv or VLC when one is installed; set MMSEARCH_OPENER to
    choose the command ({path}, {t} and {page} are filled in). An opener that fails is an
    error with its own message.

    \b
    Example:
      mmsearch query "sunset at the beach" && mmsearch open 1
    """
    from mmsearch.doors.opener import open_result

    command = open_result(n)
    _stderr().print(terminal(shlex.join(command)), markup=False, style="dim")


@_command(store=StoreOptions)
def status(
    *,
    store: StoreOptions,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable status.")] = False,
) -> None:
    """Show what is indexed: roots, counts, failed files and why, store size.

    \b
    Example:
      mmsearch status --json | jq .failures
    """
    from mmsearch.core.errors import StoreError
    from mmsearch.doors import render

    report = _library(store).status()
    if json_:
        typer.echo(render.status_json(report))
    else:
        render.status_text(report)
    if report.problem:
        raise StoreError(report.problem)


@_command(store=StoreOptions)
def forget(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH...", help="Roots or subtrees to drop from the index."),
    ],
    *,
    store: StoreOptions,
) -> None:
    """Remove PATHS (and everything beneath them) from the index; files on disk are untouched.

    \b
    Example:
      mmsearch forget ~/Photos/private
    """
    report = _library(store).forget([str(p) for p in paths])
    _stderr().print(f"forgot {report.files} files ({report.items} items)", markup=False)


class _progress:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing. The rate and
    ETA count only files the model embedded (reused and failed files take no model time),
    from the first of them on; open-ended steps (loading the model) show as their own line."""

    def __init__(self, enabled: bool, console: Any):
        self.enabled, self.console = enabled, console
        self.bar: Any = None
        self.task: Any = None
        self.total = self.done = self.embedded = 0
        self.embedding_since: float | None = None

    def __enter__(self) -> _progress | None:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            console=self.console,
            transient=True,
        )
        self.bar.__enter__()
        return self

    def start(self, total: int, label: str = "indexing") -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=total, rate="")
        self.total, self.done, self.embedded, self.embedding_since = total, 0, 0, None

    def advance(self, n: int = 1, embedded: bool = False) -> None:
        import time

        now = time.monotonic()
        self.done += n
        if embedded:
            if self.embedding_since is None:  # the first file's own time is not known
                self.embedding_since = now
            else:
                self.embedded += n
        rate = ""
        if self.embedding_since is not None and self.embedded and now > self.embedding_since:
            speed = self.embedded / (now - self.embedding_since)
            left = (self.total - self.done) / speed
            rate = f"{speed:.1f} files/s embedded, ETA {int(left) // 60}:{int(left) % 60:02d}"
        self.bar.update(self.task, advance=n, rate=rate)

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        task = self.bar.add_task(label, total=None, rate="")
        try:
            yield
        finally:
            self.bar.remove_task(task)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def main() -> None:
    if os.environ.get("_MMSEARCH_COMPLETE"):  # an install whose entry point is this one
        from mmsearch.doors.completion import respond

        respond()
    timings.mark_start()
    try:
        app(prog_name="mmsearch")
    except BrokenPipeError:  # raised outside a command: by the final flush of stdout
        reader_gone()
        sys.exit(ExitStatus.OK)
    except SystemExit as e:
        # Click answers a closed pipe outside our commands (--help, usage) by exiting 1 and
        # muting stdout with its flush wrapper; the convention here is exit 0.
        if e.code == ExitStatus.ERROR and "PacifyFlushWrapper" in type(sys.stdout).__name__:
            reader_gone()
            sys.exit(ExitStatus.OK)
        raise
    finally:
        timings.report()
