"""The MCP tools' arguments and results as schemas: what an agent reads in `tools/list` (enums,
bounds, a description per argument) is what each call is checked against, and a call that
breaks it is refused in one line naming the argument, never a pydantic dump."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmsearch.core.bounds import MAX_LIST, MAX_PARTS, MAX_SECONDS, MAX_TEXT
from mmsearch.core.vocab import Kind, Mode, Sort

MAX_TOP = 100
SIDES = (32, 2048)  # a picture's long side, pixels

Top = Annotated[int, Field(ge=1, le=MAX_TOP, description="How many results, 1 to 100.")]
Kinds = Annotated[
    list[Kind] | None, Field(max_length=MAX_LIST, description="Only these kinds of file.")
]
Folders = Annotated[
    list[str] | None,
    Field(max_length=MAX_LIST, description="Only files at or under these absolute paths."),
]
Exts = Annotated[
    list[str] | None, Field(max_length=MAX_LIST, description='Only these extensions, e.g. ["jpg"].')
]
Date = Annotated[
    str | None,
    Field(max_length=64, description="Capture date: YYYY, YYYY-MM or YYYY-MM-DD."),
]
Order = Annotated[
    Sort,
    Field(
        description='"score" (best first), or the same results by capture date: "date" '
        '(oldest first) or "-date" (newest first).'
    ),
]
MinScore = Annotated[
    float | None,
    Field(
        ge=0,
        le=1,
        description="Drop results scoring below this (0 to 1). Default: only good matches "
        "(0.5); 0 shows the closest whatever they score.",
    ),
]


class Arguments(BaseModel):
    """Unknown arguments are refused: a misspelt `kinds` must not silently mean "all"."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)


class SearchArguments(Arguments):
    query: Annotated[
        str,
        Field(
            max_length=MAX_TEXT,
            description='Words ("red car at night"), a picture\'s absolute path, parts joined '
            'by + and - ("/a/beach.jpg + sunset - people"), weights ("2:dog + 0.5:grass").',
        ),
    ]
    top: Top = 10
    kind: Kinds = None
    folder: Folders = None
    ext: Exts = None
    after: Date = None
    before: Date = None
    mode: Annotated[
        Mode,
        Field(
            description='"auto" (best), "hybrid", "vector" (meaning only) or "text" (words '
            "only); the last two are diagnostic: raw scores."
        ),
    ] = Mode.AUTO
    sort: Order = Sort.SCORE
    min_score: MinScore = None
    moments: Annotated[
        bool, Field(description="Every matching moment of a video, not only its best.")
    ] = False


class SimilarArguments(Arguments):
    path: Annotated[
        str,
        Field(max_length=MAX_TEXT, description="A picture or video inside the indexed folders."),
    ]
    moment: Annotated[
        float | None,
        Field(ge=0, le=MAX_SECONDS, description="For a video: the frame at these seconds."),
    ] = None
    plus: Annotated[
        list[str] | None,
        Field(max_length=MAX_PARTS, description="Words to move the search toward."),
    ] = None
    minus: Annotated[
        list[str] | None,
        Field(max_length=MAX_PARTS, description="Words to move the search away from."),
    ] = None
    top: Top = 10
    kind: Kinds = None
    folder: Folders = None
    after: Date = None
    before: Date = None
    sort: Order = Sort.SCORE
    min_score: MinScore = None


class PictureArguments(Arguments):
    path: Annotated[str, Field(max_length=MAX_TEXT, description="A result's path.")]
    page: Annotated[
        int | None, Field(ge=1, description="For a PDF: the page (1-based). Default 1.")
    ] = None
    moment: Annotated[
        float | None,
        Field(ge=0, le=MAX_SECONDS, description="For a video: the frame at these seconds."),
    ] = None
    size: Annotated[
        int,
        Field(ge=SIDES[0], le=SIDES[1], description="Long side in pixels, 32 to 2048."),
    ] = 768


class Result(BaseModel):
    """One result as an agent reads it."""

    n: int = Field(description="1-based rank; the picture labelled 'result n' is this one's.")
    path: str
    kind: Kind
    score: float = Field(description="Calibrated: 0.5 and over is a good match.")
    moment: float | None = Field(description="Video: where the match starts, in seconds.")
    moment_end: float | None = Field(description="Video: where it ends, in seconds.")
    page: int | None = Field(description="Document: the page, 1-based.")
    snippet: str | None = Field(description="Document: the best matching passage.")
    taken: str | None = Field(description="Capture date (EXIF, video metadata, else mtime).")


class Results(BaseModel):
    results: list[Result]
    message: str | None = Field(
        default=None, description="Why there are no results, when there are none."
    )


def refusal(error: ValidationError, fields: tuple[str, ...]) -> str:
    """The first problem in the arguments, in one line, named as the schema names it."""
    first: dict[str, Any] = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown argument {where!r}: the arguments are {', '.join(fields)}"
    if kind == "missing":
        return f"{where} is required"
    if kind == "enum":
        allowed = first.get("ctx", {}).get("expected", "")
        return f"{where} must be one of {allowed}, not {first['input']!r}"
    bounds = first.get("ctx", {})
    if kind in ("greater_than_equal", "less_than_equal") and where in _RANGES:
        low, high = _RANGES[where]
        return f"{where} must be {low} to {high}, not {first['input']!r}"
    if kind == "too_long":  # the words of core/bounds.py, as every door says them
        most, noun = bounds.get("max_length"), _NOUNS.get(where, "values")
        return f"{where}: at most {most} {noun}, not {bounds.get('actual_length')}"
    if kind == "string_too_long":
        most = bounds.get("max_length")
        return f"{where} is too long ({len(first['input'])} characters; at most {most})"
    return f"{where}: {first['msg'].lower()}, not {repr(first['input'])[:60]}"


_NOUNS = {
    "folder": "folders",
    "kind": "kinds",
    "ext": "extensions",
    "plus": "texts",
    "minus": "texts",
}
_RANGES = {
    "top": (1, MAX_TOP),
    "min_score": (0, 1),
    "moment": (0, f"{MAX_SECONDS:g} seconds"),
    "size": SIDES,
    "page": (1, "the last page"),
}
