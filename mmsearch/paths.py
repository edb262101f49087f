"""Paths as the index keys them: absolute, normalised, symlinks kept."""

from __future__ import annotations

import os
from collections.abc import Iterable


def normalize(path: str | os.PathLike[str]) -> str:
    """Absolute, lexically normalised, symlinks kept: the path the user sees is the key."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or lies beneath it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def outermost(paths: Iterable[str]) -> list[str]:
    """The given paths minus those inside another of them, sorted. Sorting by components
    puts every path right after its nearest kept ancestor, so one comparison each:
    O(n log n) for a burst of thousands of new files."""
    kept: list[str] = []
    for p in sorted(set(paths), key=lambda p: p.split("/")):
        if not kept or not is_within(p, kept[-1]):
            kept.append(p)
    return sorted(kept)


def display_path(path: str) -> str:
    """A path that can be stored as UTF-8 even when the name on disk is not."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
