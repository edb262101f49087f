"""The CLI's options, declared once: groups of options several commands share, as
dataclasses whose fields become each command's options (sqlite-utils' `output_options`
decorator, for Typer). A command names the groups it takes and receives one instance each."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from mmsearch.core.bounds import MAX_TOP
from mmsearch.core.config import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    UNSET,
    DocumentOptions,
    VideoOptions,
)
from mmsearch.core.formats import extensions
from mmsearch.core.vocab import Kind, Mode, OcrMode, Precision, Runtime, Sort


def _words(vocabulary: type) -> Callable[[], list[str]]:
    return lambda: [m.value for m in vocabulary]


def _choice(flag: str, vocabulary: type, help: str, envvar: str | None = None) -> Any:
    """An option whose value is one word of a vocabulary: shown, completed and named alike."""
    return typer.Option(
        flag,
        envvar=envvar,
        metavar="|".join(m.value for m in vocabulary),
        autocompletion=_words(vocabulary),
        help=help,
    )


def _extension_words() -> list[str]:
    """`--ext` completes from formats.py's table."""
    return [e.lstrip(".") for e in extensions()]


@dataclasses.dataclass
class StoreOptions:
    """Which store, which model: every command."""

    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar="MMSEARCH_DB",
            metavar="PATH|URI",
            show_default="the platform's user data dir",
            help="LanceDB store: a folder or any LanceDB URI.",
        ),
    ] = ""
    model: Annotated[
        str,
        typer.Option(
            "--model",
            envvar="MMSEARCH_MODEL",
            metavar="NAME",
            show_default=False,
            help="open_clip model name, hf-hub:ORG/REPO or local-dir:PATH "
            f"[default: the store's model, else {DEFAULT_MODEL}].",
        ),
    ] = UNSET
    pretrained: Annotated[
        str,
        typer.Option(
            "--pretrained",
            envvar="MMSEARCH_PRETRAINED",
            metavar="TAG|FILE",
            show_default=False,
            help="open_clip pretrained tag, or a local checkpoint file [default: the store's "
            f"weights, else {DEFAULT_PRETRAINED}].",
        ),
    ] = UNSET


@dataclasses.dataclass
class RuntimeOptions:
    """How the model runs: the commands that embed."""

    runtime: Annotated[
        str,
        _choice(
            "--runtime",
            Runtime,
            "auto (ONNX Runtime on CPUs, torch on GPUs), onnx or torch.",
            envvar="MMSEARCH_RUNTIME",
        ),
    ] = Runtime.AUTO.value
    precision: Annotated[
        str,
        _choice(
            "--precision",
            Precision,
            "auto (int8 on ONNX Runtime where the export proved it, fp16 on GPUs), "
            "fp32, int8, bf16 or fp16 (torch runtime).",
            envvar="MMSEARCH_PRECISION",
        ),
    ] = Precision.AUTO.value


@dataclasses.dataclass
class IndexingOptions:
    """What to read and how densely: `index` and `watch`."""

    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", metavar="GLOB", help="Skip paths matching this gitignore-style glob."
        ),
    ] = None
    max_frames: Annotated[
        int, typer.Option("--max-frames", min=1, metavar="N", help="Most frames kept per video.")
    ] = VideoOptions.max_frames
    min_gap: Annotated[
        float,
        typer.Option(
            "--min-gap", min=0.0, metavar="SECONDS", help="Fewest seconds between kept frames."
        ),
    ] = VideoOptions.min_gap
    max_pages: Annotated[
        int, typer.Option("--max-pages", min=1, metavar="N", help="Most pages read per PDF.")
    ] = DocumentOptions.max_pages
    ocr: Annotated[
        str,
        _choice(
            "--ocr",
            OcrMode,
            "Read words in pictures: auto (likely ones), always, never. Needs mmsearch[ocr].",
        ),
    ] = OcrMode.AUTO.value
    ocr_video: Annotated[
        int,
        typer.Option(
            "--ocr-video", min=0, metavar="N", help="Video frames per video to read words in."
        ),
    ] = 0
    follow_links: Annotated[
        bool,
        typer.Option(
            "--follow-links",
            help="Index file links that point out of the folder (skipped by default).",
        ),
    ] = False


@dataclasses.dataclass
class SearchOptions:
    """What to find and how to show it: `query` and `similar`."""

    top: Annotated[
        int,
        typer.Option("-n", "--top", min=1, max=MAX_TOP, metavar="N", help="How many results."),
    ] = 10
    json_: Annotated[bool, typer.Option("--json", help="One JSON array of result objects.")] = False
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False
    paths: Annotated[bool, typer.Option("--paths", help="Paths only, one per line.")] = False
    null: Annotated[
        bool, typer.Option("-0", "--null", help="Paths only, NUL-separated (xargs -0).")
    ] = False
    within: Annotated[
        list[Path] | None,
        typer.Option(
            "--in", metavar="PATH", help="Only results at or under this path (repeatable)."
        ),
    ] = None
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="KIND",
            autocompletion=_words(Kind),
            help="image, video or document (repeatable, or comma-separated).",
        ),
    ] = None
    ext: Annotated[
        list[str] | None,
        typer.Option(
            "--ext",
            metavar="EXT",
            autocompletion=_extension_words,
            help="File extensions, e.g. jpg,png (repeatable); every spelling of a format "
            "counts (jpg = jpeg).",
        ),
    ] = None
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            metavar="DATE",
            help="Taken on or after DATE (YYYY, YYYY-MM, YYYY-MM-DD[THH:MM]).",
        ),
    ] = None
    before: Annotated[
        str | None, typer.Option("--before", metavar="DATE", help="Taken before DATE.")
    ] = None
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", metavar="SCORE", help="Drop weaker results."),
    ] = None
    moments: Annotated[
        bool,
        typer.Option("--moments", help="Every matching moment of a video, not just its best."),
    ] = False
    mode: Annotated[
        str,
        _choice(
            "--mode",
            Mode,
            "auto, vector, text (full-text search) or hybrid (both, fused by their scores).",
        ),
    ] = Mode.AUTO.value
    sort: Annotated[
        str,
        _choice(
            "--sort", Sort, "score, or the top results by capture date: date (oldest first), -date."
        ),
    ] = Sort.SCORE.value
    explain: Annotated[bool, typer.Option("--explain", help="Show how the query was read.")] = False
    preview: Annotated[
        bool, typer.Option("--preview", help="Inline thumbnails (kitty, iTerm2, WezTerm).")
    ] = False


F = TypeVar("F", bound=Callable[..., Any])


def with_options(**groups: type) -> Callable[[F], F]:
    """Give the command every field of each group as an option, and call it with one
    instance per group under the group's keyword (`@with_options(store=StoreOptions)`)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        hints = get_type_hints(command, include_extras=True)
        own = [
            p.replace(annotation=hints.get(name, p.annotation))
            for name, p in signature.parameters.items()
            if name not in groups
        ]
        added = []
        for cls in groups.values():
            group_hints = get_type_hints(cls, include_extras=True)
            for f in dataclasses.fields(cls):
                added.append(
                    inspect.Parameter(
                        f.name,
                        inspect.Parameter.KEYWORD_ONLY,
                        default=f.default,
                        annotation=group_hints[f.name],
                    )
                )

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for name, cls in groups.items():
                fields = [f.name for f in dataclasses.fields(cls)]
                kwargs[name] = cls(**{f: kwargs.pop(f) for f in fields})
            return command(*args, **kwargs)

        parameters = own + added
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate
