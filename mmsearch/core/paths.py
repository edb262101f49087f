"""Paths as the index keys them: absolute, normalised, symlinks kept."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable


def normalize(path: str | os.PathLike[str], base: str | None = None) -> str:
    """Absolute, lexically normalised, symlinks kept: the path the user sees is the key. A
    relative path is taken from `base` (a client's folder), else from this process's."""
    expanded = os.path.expanduser(os.fspath(path))
    if base is not None:
        expanded = os.path.join(base, expanded)
    return os.path.normpath(os.path.abspath(expanded))


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or lies beneath it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def outermost(paths: Iterable[str]) -> list[str]:
    """The given paths minus those inside another of them, sorted. Sorting by components
    puts every path right after its nearest kept ancestor, so one comparison each:
    O(n log n) for a burst of thousands of new files."""
    kept: list[str] = []
    for p in sorted(set(paths), key=_in_tree_order):
        if not kept or not is_within(p, kept[-1]):
            kept.append(p)
    return sorted(kept)


class PathSet:
    """Paths and everything beneath them: membership in O(log n), where a chain of n
    subtree tests (or an SQL filter with n ranges) costs O(n) per path asked about."""

    def __init__(self, paths: Iterable[str]):
        # In tree order a path comes right after its nearest ancestor among non-nested
        # paths, so the one entry before it is the only candidate.
        self._keys = sorted(map(_in_tree_order, outermost(paths)))

    def __contains__(self, path: str) -> bool:
        key = _in_tree_order(path)
        i = bisect.bisect_right(self._keys, key)
        if i == 0:
            return False
        above = self._keys[i - 1]
        return key == above or key.startswith(above + "\0")


def cover(paths: Iterable[str], limit: int) -> list[str]:
    """At most `limit` folders (or the paths themselves) holding every one of `paths`: a
    coarse filter a store can apply cheaply before PathSet decides exactly."""
    kept = outermost(paths)
    while len(kept) > limit:
        kept = outermost(os.path.dirname(p) for p in kept)
    return kept


def _in_tree_order(path: str) -> str:
    """A sort key that orders paths component by component (a folder, then everything in
    it, then its next sibling: `a/b` before `a/b c`), compared in C, not as lists."""
    return path.rstrip("/").replace("/", "\0")


def display_path(path: str) -> str:
    """A path that can be stored as UTF-8 even when the name on disk is not."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
