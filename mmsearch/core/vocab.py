"""The fixed vocabularies the library and every front door share, and the one way to read
a user's word for them: a value outside a vocabulary is a usage error that lists the valid
ones, whether it came from a flag, an environment variable or a Python caller."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from mmsearch.core.errors import UsageError


class Kind(StrEnum):
    """What a file holds, and so how it is read and what its locators mean."""

    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"


class Mode(StrEnum):
    """How a query ranks: by meaning, by words, or both fused."""

    AUTO = "auto"  # hybrid when the query has words and the index has passages, else vector
    VECTOR = "vector"
    TEXT = "text"
    HYBRID = "hybrid"


class Sort(StrEnum):
    """The order of the top hits: by score, or by capture date (oldest or newest first)."""

    SCORE = "score"
    DATE = "date"
    NEWEST = "-date"


class FileStatus(StrEnum):
    """A file row's outcome."""

    OK = "ok"
    ERROR = "error"  # the file itself is bad: not retried until it changes
    UNREADABLE = "unreadable"  # could not be read (permissions, vanished): retried
    EMPTY = "empty"  # nothing to index (no bytes, no text, no pictures): not a failure


class OcrMode(StrEnum):
    """Which pictures the OCR pass reads."""

    AUTO = "auto"  # the ones that look like they hold words
    ALWAYS = "always"
    NEVER = "never"


class OcrOutcome(StrEnum):
    """What the OCR pass made of a file (null: not looked at yet; "error: …": it failed)."""

    TEXT = "text"  # words were read
    NONE = "none"  # read, no words found
    SKIPPED = "skipped"  # the selector saw no sign of text


class Origin(StrEnum):
    """Where a passage's words came from, when not from the file's own text."""

    OCR = "ocr"  # read off a picture
    SUBTITLES = "subtitles"  # a video's subtitles, sidecar or inside it


class Engine(StrEnum):
    """Where new and changed files are decoded and embedded."""

    LOCAL = "local"  # threads in this process
    RAY = "ray"  # a Ray Data actor pool, on a local Ray or a cluster (mmsearch[ray])


class Runtime(StrEnum):
    AUTO = "auto"  # ONNX Runtime on CPUs, torch on GPUs
    ONNX = "onnx"
    TORCH = "torch"


class Precision(StrEnum):
    AUTO = "auto"  # int8 on ONNX Runtime where the export proved it, fp16 on GPUs
    FP32 = "fp32"
    INT8 = "int8"
    BF16 = "bf16"
    FP16 = "fp16"


E = TypeVar("E", bound=StrEnum)
# Words people use for a vocabulary's values: suggested, never taken silently.
SYNONYMS = {
    **dict.fromkeys(("photo", "photos", "picture", "pictures", "pic", "img"), "image"),
    **dict.fromkeys(("movie", "movies", "clip", "clips", "film"), "video"),
    **dict.fromkeys(("doc", "docs", "pdf", "page", "pages", "text"), "document"),
}


def choose(vocabulary: type[E], value: str | E, what: str) -> E:
    """`value` as a member of `vocabulary`, or a UsageError naming `what` and the valid
    values (and the closest one, for a typo)."""
    if isinstance(value, vocabulary):
        return value
    word = str(value).strip().lower()
    try:
        return vocabulary(word)
    except ValueError:
        valid = [m.value for m in vocabulary]
        import difflib  # only for a mistake: 1 ms of every query

        close = difflib.get_close_matches(SYNONYMS.get(word, word), valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"{what}: {str(value)!r} is not one of {', '.join(valid)}{hint}") from None


def choose_all(vocabulary: type[E], values: object, what: str) -> tuple[E, ...]:
    """Several values, each given alone or comma-separated (`--type image,video`)."""
    items = [values] if isinstance(values, str) else list(values or [])  # type: ignore[call-overload]
    words = [w for v in items for w in str(v).split(",") if w.strip()]
    return tuple(dict.fromkeys(choose(vocabulary, w, what) for w in words))
