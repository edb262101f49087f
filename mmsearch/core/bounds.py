"""How much one request may ask, in every door (command line, socket, web UI, MCP): far
above what a person or an agent needs, far below what costs the server seconds or memory.
A request over a bound is a usage error that names the argument in the door's own words
(`--in`, `filters.within`, `folder`), before anything runs."""

from __future__ import annotations

from collections.abc import Sized

from mmsearch.core.errors import UsageError

MAX_PARTS = 64  # parts of one query (`a + b - c`)
MAX_LIST = 256  # folders, extensions or kinds one filter names
MAX_TEXT = 4096  # characters of one word part, path, date or name
MAX_TOP = 10_000  # results of one search
MAX_SECONDS = 1e9  # a moment in a video (about 31 years)


def check_text(value: str, name: str, most: int = MAX_TEXT) -> str:
    """`value`, if it is at most `most` characters long."""
    if len(value) > most:
        raise UsageError(f"{name} is too long ({len(value)} characters; at most {most})")
    return value


def check_list(values: Sized, name: str, most: int = MAX_LIST, what: str = "values") -> None:
    """Refuse more than `most` values, or one longer than MAX_TEXT."""
    if len(values) > most:
        raise UsageError(f"{name}: at most {most} {what}, not {len(values)}")
    for value in values if isinstance(values, (list, tuple)) else ():
        if isinstance(value, str):
            check_text(value, f"a value of {name}")
