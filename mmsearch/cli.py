"""The `mmsearch` command: parse options, call one library function, render its result."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mmsearch import timings
from mmsearch.config import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DocumentOptions,
    Settings,
    VideoOptions,
)
from mmsearch.errors import MmsearchError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="mmsearch",
    help="Search your own photos, videos and documents from the terminal: words or pictures "
    "in, files, video moments and pages out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options every command takes, declared once.
Db = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="MMSEARCH_DB",
        show_default="the platform's user data dir",
        help="LanceDB store: a folder or any LanceDB URI.",
    ),
]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="MMSEARCH_MODEL",
        help="open_clip model name, hf-hub:ORG/REPO or local-dir:PATH.",
    ),
]
Pretrained = Annotated[
    str,
    typer.Option(
        "--pretrained",
        envvar="MMSEARCH_PRETRAINED",
        help="open_clip pretrained tag, or a local checkpoint file.",
    ),
]
# Result options shared by `query` and `similar`.
Top = Annotated[int, typer.Option("-n", "--top", min=1, help="How many results.")]
Json = Annotated[bool, typer.Option("--json", help="One JSON array of result objects.")]
Jsonl = Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")]
Paths = Annotated[bool, typer.Option("--paths", help="Paths only, one per line.")]
Nul = Annotated[bool, typer.Option("-0", "--null", help="Paths only, NUL-separated (xargs -0).")]
Within = Annotated[
    list[Path] | None,
    typer.Option("--in", help="Only results at or under this path (repeatable)."),
]
MinScore = Annotated[float | None, typer.Option("--min-score", help="Drop weaker results.")]
Kind = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        help="image, video or document (repeatable, or comma-separated).",
        autocompletion=lambda: ["image", "video", "document"],
    ),
]
Ext = Annotated[
    list[str] | None, typer.Option("--ext", help="File extensions, e.g. jpg,png (repeatable).")
]
After = Annotated[
    str | None,
    typer.Option("--after", help="Taken on or after DATE (YYYY, YYYY-MM, YYYY-MM-DD[THH:MM])."),
]
Before = Annotated[str | None, typer.Option("--before", help="Taken before DATE.")]
Explain = Annotated[bool, typer.Option("--explain", help="Show how the query was read.")]
Preview = Annotated[
    bool, typer.Option("--preview", help="Inline thumbnails (kitty, iTerm2, WezTerm).")
]
MaxFrames = Annotated[int, typer.Option("--max-frames", min=1, help="Most frames kept per video.")]
MinGap = Annotated[
    float, typer.Option("--min-gap", min=0.0, help="Fewest seconds between kept frames.")
]
MaxPages = Annotated[int, typer.Option("--max-pages", min=1, help="Most pages read per PDF.")]
Ocr = Annotated[
    str,
    typer.Option(
        "--ocr",
        help="Read words in pictures: auto (likely ones), always, never. Needs mmsearch[ocr].",
        autocompletion=lambda: ["auto", "always", "never"],
    ),
]
OcrVideo = Annotated[
    int, typer.Option("--ocr-video", min=0, help="Video frames per video to read words in.")
]
Mode = Annotated[
    str,
    typer.Option(
        "--mode",
        help="auto, vector, text (full-text search) or hybrid (both, fused by rank).",
        autocompletion=lambda: ["auto", "vector", "text", "hybrid"],
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        "--runtime",
        envvar="MMSEARCH_RUNTIME",
        help="auto (ONNX Runtime on CPUs, torch on GPUs), onnx or torch.",
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        envvar="MMSEARCH_PRECISION",
        help="auto (fp32 on CPUs, fp16 on GPUs), fp32, bf16 or fp16 (torch runtime).",
    ),
]
Moments = Annotated[
    bool, typer.Option("--moments", help="Every matching moment of a video, not just its best.")
]

F = TypeVar("F", bound=Callable[..., Any])


def _handle_errors(fn: F) -> F:
    """The one place library errors become a line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MmsearchError as e:
            typer.echo(f"mmsearch: error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("mmsearch: interrupted (run the same command again to finish)", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.BadParameter, typer.Exit, typer.Abort, BrokenPipeError):
            raise
        except Exception as e:
            if os.environ.get("MMSEARCH_TRACEBACK"):
                raise
            typer.echo(
                f"mmsearch: internal error: {type(e).__name__}: {e} "
                "(set MMSEARCH_TRACEBACK=1 for details and report it)",
                err=True,
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _settings(
    db: str, model: str, pretrained: str, runtime: str = "", precision: str = ""
) -> Settings:
    extra = {k: v for k, v in (("runtime", runtime), ("precision", precision)) if v}
    return Settings(db=db, model=model, pretrained=pretrained or None, **extra)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        from mmsearch import __version__

        typer.echo(f"mmsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _quiet_libraries(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    # Library chatter (open_clip's logging, torch/PIL warnings) is not the user's business;
    # real problems arrive as exceptions.
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")


@app.command()
@_handle_errors
def index(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Folders or files to index.")],
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Skip paths matching this gitignore-style glob."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Images per batch [default: 16, GPU 128]."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Decode threads [default: cores, ≤4].")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress, no summary.")] = False,
    max_frames: MaxFrames = VideoOptions.max_frames,
    min_gap: MinGap = VideoOptions.min_gap,
    max_pages: MaxPages = DocumentOptions.max_pages,
    ocr: Ocr = "auto",
    ocr_video: OcrVideo = 0,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
    runtime: Runtime = "auto",
    precision: Precision = "auto",
) -> None:
    """Build or refresh the index of PATHS.

    Photos, videos (keyframes, at their timestamps) and documents (PDF pages and their text,
    DOCX, text, Markdown, HTML). Unchanged files are skipped, moved
    or copied files reuse their vectors, vanished files leave the index.
    Example: mmsearch index ~/Photos --exclude 'raw/'
    """
    from mmsearch.index import index_paths
    from mmsearch.render import index_summary

    err = _stderr()
    with _progress(enabled=not quiet and err.is_terminal, console=err) as progress:
        report = index_paths(
            _settings(db, model, pretrained, runtime, precision),
            [str(p) for p in paths],
            excludes=exclude or [],
            batch_size=batch_size,
            workers=workers,
            video=VideoOptions(max_frames=max_frames, min_gap=min_gap),
            documents=DocumentOptions(max_pages=max_pages),
            ocr=_ocr_mode(ocr),
            ocr_video_frames=ocr_video,
            progress=progress,
        )
    if not quiet:
        index_summary(report, err)


@app.command()
@_handle_errors
def watch(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, file_okay=False, help="Folders to keep indexed.")
    ],
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Skip paths matching this gitignore-style glob."),
    ] = None,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll instead of inotify (network filesystems).")
    ] = False,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.1, help="Seconds between polls.")
    ] = 2.0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No output.")] = False,
    max_frames: MaxFrames = VideoOptions.max_frames,
    min_gap: MinGap = VideoOptions.min_gap,
    max_pages: MaxPages = DocumentOptions.max_pages,
    ocr: Ocr = "auto",
    ocr_video: OcrVideo = 0,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
    runtime: Runtime = "auto",
    precision: Precision = "auto",
) -> None:
    """Keep the index of PATHS exact while files change, until Ctrl-C or SIGTERM.

    Catches up with what changed while nothing watched, then indexes each change once the
    file has settled; prints one line per batch of changes.
    Example: mmsearch watch ~/Photos ~/Videos
    """
    from mmsearch.index import IndexOptions
    from mmsearch.render import watch_line
    from mmsearch.watch import WatchOptions
    from mmsearch.watch import watch as follow

    err = _stderr()

    def on_batch(report: Any) -> None:
        line = watch_line(report)
        if line and not quiet:
            err.print(line, markup=False)

    def on_notice(message: str) -> None:
        if not quiet:
            err.print(f"mmsearch: {message}", markup=False, style="yellow")

    with _until_signalled() as stop:
        follow(
            _settings(db, model, pretrained, runtime, precision),
            [str(p) for p in paths],
            IndexOptions(
                excludes=exclude or [],
                video=VideoOptions(max_frames=max_frames, min_gap=min_gap),
                documents=DocumentOptions(max_pages=max_pages),
                ocr=_ocr_mode(ocr),
                ocr_video_frames=ocr_video,
            ),
            WatchOptions(poll=poll, poll_interval=poll_interval),
            stop,
            on_batch,
            on_notice,
        )


@app.command()
@_handle_errors
def query(
    parts: Annotated[
        list[str],
        typer.Argument(
            help="Words, images, + and -, weights: see the examples.", show_default=False
        ),
    ],
    top: Top = 10,
    json_: Json = False,
    jsonl: Jsonl = False,
    paths: Paths = False,
    null: Nul = False,
    within: Within = None,
    kind: Kind = None,
    ext: Ext = None,
    after: After = None,
    before: Before = None,
    min_score: MinScore = None,
    moments: Moments = False,
    mode: Mode = "auto",
    explain: Explain = False,
    preview: Preview = False,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
) -> None:
    """Find indexed items matching a query of words and images.

    A part is an image when it starts with ./ / or ~ (or names a file), otherwise text;
    join parts with + and -, weight them with N: (rclip's grammar).

    Examples:
      mmsearch query red car at night -n 5 --json
      mmsearch query ./beach.jpg + "at sunset" - people
      mmsearch query 2:"golden retriever" + 0.5:./pool.jpg --type image --after 2024-06
    """
    from mmsearch.grammar import parse

    query_parts = parse(parts)
    _explain(query_parts, explain)
    fmt = _output_format(json_, jsonl, paths, null)
    filters = _filters(within, kind, ext, after, before, min_score)
    results = _search(
        _settings(db, model, pretrained), query_parts, top, filters, moments, _mode(mode)
    )
    _show(results, fmt, preview)


@app.command()
@_handle_errors
def similar(
    image: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="An image or video file.")
    ],
    at: Annotated[
        float | None, typer.Option("--at", min=0.0, help="For a video: the moment, in seconds.")
    ] = None,
    plus: Annotated[
        list[str] | None, typer.Option("--plus", help="Text to add to the image (repeatable).")
    ] = None,
    minus: Annotated[
        list[str] | None,
        typer.Option("--minus", help="Text to take away from the image (repeatable)."),
    ] = None,
    top: Top = 10,
    json_: Json = False,
    jsonl: Jsonl = False,
    paths: Paths = False,
    null: Nul = False,
    within: Within = None,
    kind: Kind = None,
    ext: Ext = None,
    after: After = None,
    before: Before = None,
    min_score: MinScore = None,
    moments: Moments = False,
    mode: Mode = "auto",
    explain: Explain = False,
    preview: Preview = False,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
) -> None:
    """Find indexed items that look like IMAGE (which may lie outside the index).

    Examples:
      mmsearch similar ~/Downloads/beach.jpg --paths
      mmsearch similar beach.jpg --plus "at sunset" --minus people
      mmsearch similar holiday.mp4 --at 83.5
    """
    from mmsearch.grammar import Part
    from mmsearch.paths import normalize

    query_parts = [
        Part("image", normalize(image), 1.0, at),
        *(Part("text", t, 1.0) for t in plus or []),
        *(Part("text", t, -1.0) for t in minus or []),
    ]
    _explain(query_parts, explain)
    fmt = _output_format(json_, jsonl, paths, null)
    filters = _filters(within, kind, ext, after, before, min_score)
    results = _search(
        _settings(db, model, pretrained), query_parts, top, filters, moments, _mode(mode)
    )
    _show(results, fmt, preview)


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


def _search(
    settings: Settings, parts: list[Any], top: int, filters: Any, moments: bool, mode: str
) -> list[Any]:
    """Ask the store's running server when there is one; otherwise answer here."""
    import dataclasses

    from mmsearch.client import ask
    from mmsearch.query import Hit, search

    request = {
        "model": settings.model,
        "pretrained": settings.pretrained,
        "parts": [dataclasses.asdict(p) for p in parts],
        "filters": dataclasses.asdict(filters),
        "top": top,
        "moments": moments,
        "mode": mode,
    }
    with timings.phase("server"):
        reply = ask(settings.db, request)
    if reply is None:
        return search(settings, parts, top=top, filters=filters, moments=moments, mode=mode)
    if "error" in reply:
        error = MmsearchError(reply["error"])
        error.exit_code = int(reply.get("exit_code", EXIT_ERROR))
        raise error
    return [Hit(**h) for h in reply["hits"]]


def _ocr_mode(mode: str) -> str:
    if mode not in ("auto", "always", "never"):
        raise typer.BadParameter(f"--ocr must be auto, always or never, not {mode!r}")
    return mode


def _mode(mode: str) -> str:
    if mode not in ("auto", "vector", "text", "hybrid"):
        raise typer.BadParameter(f"--mode must be auto, vector, text or hybrid, not {mode!r}")
    return mode


def _filters(
    within: list[Path] | None,
    kind: list[str] | None,
    ext: list[str] | None,
    after: str | None,
    before: str | None,
    min_score: float | None,
) -> Any:
    from mmsearch.grammar import parse_date
    from mmsearch.query import Filters

    return Filters(
        within=[str(w) for w in within or []],
        kinds=[k.strip() for v in kind or [] for k in v.split(",") if k.strip()],
        exts=[e.strip() for v in ext or [] for e in v.split(",") if e.strip()],
        after=parse_date(after, "--after") if after else None,
        before=parse_date(before, "--before") if before else None,
        min_score=min_score,
    )


def _explain(parts: list[Any], explain: bool) -> None:
    if explain:
        err = _stderr()
        err.print("query read as:", markup=False)
        for p in parts:
            err.print(f"  {p.describe()}", markup=False)


def _show(results: list[Any], fmt: str, preview: bool) -> None:
    from mmsearch import render
    from mmsearch.opener import remember

    with timings.phase("render"):
        remember(results)
        render.hits(results, fmt, preview=preview)


@app.command()
@_handle_errors
def serve(
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
    runtime: Runtime = "auto",
    precision: Precision = "auto",
) -> None:
    """Keep the model loaded and the index open; `query` and `similar` then answer in
    milliseconds (they use a running server by themselves). Runs until Ctrl-C or SIGTERM.

    `watch` serves too. The socket lives in a folder only you can enter.
    Example: mmsearch serve &
    """
    from mmsearch.serve import serving, warm_up

    settings = _settings(db, model, pretrained, runtime, precision)
    with _until_signalled() as stop, serving(settings) as path:
        warm_up(settings)
        _stderr().print(f"serving {settings.db} on {path} (pid {os.getpid()})", markup=False)
        stop.wait()


@app.command()
@_handle_errors
def dupes(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Only look at or under these paths.")
    ] = None,
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.0, max=1.0, help="Cosine similarity that makes a pair."),
    ] = 0.95,
    json_: Annotated[bool, typer.Option("--json", help="One JSON array of groups.")] = False,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
) -> None:
    """Find groups of near-duplicate photos (and video frames matching a photo), biggest first.

    Resized, re-encoded and slightly cropped copies of a picture land in one group.
    Example: mmsearch dupes ~/Photos --threshold 0.97
    """
    from mmsearch import render
    from mmsearch.dupes import find_dupes

    groups = find_dupes(_settings(db, model, pretrained), [str(p) for p in paths or []], threshold)
    render.dupes(groups, json_)


@app.command(name="open")
@_handle_errors
def open_(
    n: Annotated[int, typer.Argument(min=1, help="Which result of the last query (1 = best).")],
) -> None:
    """Open the Nth result of the last query or similar with the system's opener.

    A video opens at its moment in mpv or VLC when one is installed; set MMSEARCH_OPENER to
    choose the command ({path} and {t} are filled in).
    Example: mmsearch query "sunset at the beach" && mmsearch open 1
    """
    from mmsearch.opener import open_result

    command = open_result(n)
    _stderr().print(" ".join(command), markup=False, style="dim")


@app.command()
@_handle_errors
def status(
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable status.")] = False,
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
) -> None:
    """Show what is indexed: roots, counts, failed files and why, store size.

    Example: mmsearch status --json | jq .failures
    """
    from mmsearch import render
    from mmsearch.status import status as read_status

    report = read_status(_settings(db, model, pretrained))
    if json_:
        typer.echo(render.status_json(report))
    else:
        render.status_text(report)
    if report.problem:
        typer.echo(f"mmsearch: error: {report.problem}", err=True)
        raise typer.Exit(EXIT_ERROR)


@app.command()
@_handle_errors
def forget(
    paths: Annotated[list[Path], typer.Argument(help="Roots or subtrees to drop from the index.")],
    db: Db = "",
    model: Model = DEFAULT_MODEL,
    pretrained: Pretrained = DEFAULT_PRETRAINED,
) -> None:
    """Remove PATHS (and everything beneath them) from the index; files on disk are untouched.

    Example: mmsearch forget ~/Photos/private
    """
    from mmsearch.index import forget_paths

    report = forget_paths(_settings(db, model, pretrained), [str(p) for p in paths])
    _stderr().print(f"forgot {report.files} files ({report.items} items)", markup=False)


def _output_format(json_: bool, jsonl: bool, paths: bool, null: bool) -> str:
    chosen = [
        name
        for name, on in (("--json", json_), ("--jsonl", jsonl), ("--paths", paths), ("-0", null))
        if on
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(f"choose one output format, not {' and '.join(chosen)}")
    if chosen:
        return {"--json": "json", "--jsonl": "jsonl", "--paths": "paths", "-0": "nul"}[chosen[0]]
    return "table" if sys.stdout.isatty() else "plain"


class _progress:
    """A rich progress bar on stderr (files/s, ETA) when it is a terminal; otherwise nothing."""

    def __init__(self, enabled: bool, console: Any):
        self.enabled, self.console = enabled, console
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _progress | None:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.__enter__()
        return self

    def start(self, total: int, label: str = "indexing") -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=total, rate="")

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)
        speed = next(t.speed for t in self.bar.tasks if t.id == self.task)
        self.bar.update(self.task, rate=f"{speed:.1f} files/s" if speed else "")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def main() -> None:
    timings.mark_start()
    try:
        app(prog_name="mmsearch")
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    finally:
        timings.report()
