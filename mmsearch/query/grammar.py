"""The query language: text and image parts, each with a weight, added or subtracted.

    ./beach.jpg + "at sunset" - people          rclip's grammar
    2:"golden retriever" + 0.5:./pool.jpg       weights
    "cat + dog - grass"                          the same in one argument

A part is an image when it is shaped like a path (`./`, `../`, `/`, `~`, `file://`) or names
an existing file with a picture or video extension; any other part is text, even a bare word
that happens to name a file here. Weights are written as rclip writes them (`2:`, `0.5:`,
`.5:`, `1.:`). A web address is refused: nothing leaves the machine. Words in a row without an
operator between them are one text part; a part kept in quotes through the shell
('"quick brown fox"') is a phrase for full-text search.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmsearch.core.bounds import MAX_PARTS, MAX_TEXT, check_text
from mmsearch.core.errors import UsageError
from mmsearch.core.formats import kind_of
from mmsearch.core.paths import normalize
from mmsearch.core.vocab import Kind

_OPERATOR = re.compile(r"\s+([+-])\s+")
_WEIGHT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+):(.+)$", re.DOTALL)  # rclip's: 2: 0.5: .5: 1.:
_PATH_SHAPED = ("./", "../", "/", "~", "file://")
_WEB = re.compile(r"^https?://", re.IGNORECASE)
OUTSIDE_LIBRARY = (
    "not a picture of the library (only files inside the indexed folders can be searched by here)"
)


@dataclass(frozen=True)
class Part:
    kind: str  # "text" or "image"
    value: str  # the text, or the image's absolute path
    weight: float  # negative for a subtracted part
    at: float | None = None  # for a video: the moment, in seconds
    phrase: bool = False  # text that was quoted: full-text search matches it as a phrase

    @property
    def words(self) -> str:
        """The part as full-text search reads it."""
        return f'"{self.value}"' if self.phrase else self.value

    def describe(self) -> str:
        sign = "-" if self.weight < 0 else "+"
        where = f" at {self.at:g} s" if self.at is not None else ""
        return f"{sign} {abs(self.weight):g} x {self.kind} {self.value!r}{where}"


def parse(
    tokens: Sequence[str], base: str | None = None, allowed: Callable[[str], bool] | None = None
) -> list[Part]:
    """Read a query given as command-line words (see the module docstring); relative image
    paths are taken from the folder `base` (a client's), else from this process's.

    `allowed`: the pictures a door may read (the web UI's and the MCP server's: those inside
    the library). A path-shaped part it refuses is an error that says the same whether
    anything is there or not, and a bare word is a picture only where it allows."""
    if sum(len(t) for t in tokens) > MAX_PARTS * MAX_TEXT // 4:
        raise UsageError(f"the query is too long (at most {MAX_PARTS * MAX_TEXT // 4} characters)")
    pieces: list[str] = []
    for token in tokens:
        if token in ("+", "-"):
            pieces.append(token)
        else:
            pieces.extend(p for p in _OPERATOR.split(token) if p != "")
    parts: list[Part] = []
    sign, words = 1.0, []
    for piece in [*pieces, "+"]:
        if piece in ("+", "-"):
            if not words:
                if parts or piece == "+":
                    raise UsageError("a query operator (+ or -) needs a part on each side")
                sign = -1.0  # a leading "-": the first part is subtracted
                continue
            parts.append(_part(" ".join(words), sign, base, allowed))
            sign, words = (1.0 if piece == "+" else -1.0), []
        else:
            words.append(piece)
    if not parts:
        raise UsageError("the query is empty")
    if len(parts) > MAX_PARTS:
        raise UsageError(f"a query has at most {MAX_PARTS} parts, not {len(parts)}")
    return parts


def _part(
    text: str, sign: float, base: str | None, allowed: Callable[[str], bool] | None = None
) -> Part:
    weight = 1.0
    if m := _WEIGHT.match(text):
        weight, text = float(m[1]), m[2]
    text = text.strip()
    phrase = len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"
    if phrase:
        text = text[1:-1]
    if not text:
        raise UsageError("a query part is empty")
    check_text(text, "a query part")
    if _WEB.match(text):
        raise UsageError(f"{text} is a web address: download it first (nothing leaves here)")
    if text.startswith(_PATH_SHAPED) or _names_a_picture(text, base, allowed):
        path = normalize(_file_uri_path(text), base)
        if allowed is not None and not allowed(path):  # before anything tells what is there
            raise UsageError(f"{text}: {OUTSIDE_LIBRARY}")
        if not os.path.isfile(path):
            raise UsageError(f"no such image: {text}")
        return Part("image", path, sign * weight)
    return Part("text", text, sign * weight, phrase=phrase)


def _names_a_picture(text: str, base: str | None, allowed: Callable[[str], bool] | None) -> bool:
    """An existing file whose extension says picture or video (and that `allowed` allows):
    a bare word that happens to name a file (`dog`, `notes.txt`) stays text."""
    if kind_of(text) not in (Kind.IMAGE, Kind.VIDEO):
        return False
    if allowed is not None and not allowed(normalize(text, base)):
        return False
    return os.path.isfile(os.path.join(base, text) if base is not None else text)


def _file_uri_path(text: str) -> str:
    """`file:///a/b%20c.jpg` → `/a/b c.jpg`; anything else as it is."""
    if not text.startswith("file://"):
        return text
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{text}: only file:// addresses on this machine can be read")
    return unquote(parts.path)


def similar_parts(
    path: str, at: float | None = None, plus: Sequence[str] = (), minus: Sequence[str] = ()
) -> list[Part]:
    """`similar PATH --plus T --minus U` as a query: the picture, then its texts."""
    return [
        Part("image", normalize(path), 1.0, at),
        *(Part("text", t, 1.0) for t in plus),
        *(Part("text", t, -1.0) for t in minus),
    ]


_DATE_FORMATS = (
    "%Y",
    "%Y-%m",
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)


def parse_date(text: str, option: str = "date") -> float:
    """A calendar date or time in local time, as seconds since the epoch."""
    from datetime import datetime  # only for queries with dates: 2 ms of every other one

    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    raise UsageError(
        f"{option}: {text!r} is not a date (use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
    )
