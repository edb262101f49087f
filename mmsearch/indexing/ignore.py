"""What a walk never enters: junk and partial files, `--exclude` globs and `.mmsearchignore`
files (gitignore syntax), each folder's rules applying beneath it."""

from __future__ import annotations

import os
from collections.abc import Callable

import pathspec

from mmsearch.core.paths import is_within

JUNK_NAMES = frozenset(
    {"Thumbs.db", "desktop.ini", "@eaDir", "node_modules", "$RECYCLE.BIN", "__pycache__"}
)
IGNORE_FILE = ".mmsearchignore"

# (folder, spec) pairs, outermost first: a path is ignored when any of them matches it.
Rules = list[tuple[str, pathspec.GitIgnoreSpec]]
# Called with a path that could not be read and why, so the walk can record it.
OnProblem = Callable[[str, BaseException], None]


def from_globs(root: str, globs: list[str]) -> Rules:
    return [(root, pathspec.GitIgnoreSpec.from_lines(globs))] if globs else []


def is_junk(name: str) -> bool:
    """Hidden files, system clutter, and the partial or lock files of downloads and editors."""
    return (
        name.startswith((".", "~$"))
        or name.endswith(("~", ".part", ".crdownload", ".download", ".partial", ".tmp", ".swp"))
        or name in JUNK_NAMES
    )


def with_ignore_file(folder: str, rules: Rules, on_problem: OnProblem) -> Rules:
    """`rules` plus the folder's own `.mmsearchignore`, if it has one."""
    path = os.path.join(folder, IGNORE_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())
    except FileNotFoundError:
        return rules
    except (OSError, ValueError) as e:
        on_problem(path, e)
        return rules
    return [*rules, (folder, spec)]


def ignored(path: str, is_dir: bool, rules: Rules) -> bool:
    for base, spec in rules:
        # Rules apply beneath their folder: the relative path is a slice, not a relpath().
        rel = (
            path[len(base.rstrip("/")) + 1 :]
            if is_within(path, base)
            else os.path.relpath(path, base)
        )
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False


class RulesBelow:
    """The rules in force at paths below `root`, each folder's worked out once: a burst of
    thousands of new files in one folder reads that folder's ignore files once, not once a
    file."""

    def __init__(self, root: str, rules: Rules, skip: set[str], on_problem: OnProblem):
        self._root, self._top, self._skip, self._on_problem = root, rules, skip, on_problem
        self._inside: dict[str, Rules | None] = {}  # a root that is a file has no inside

    def at(self, path: str) -> Rules | None:
        """The rules `path` obeys (its own ignore file aside), or None if something on the
        way down (a junk or ignored folder, the store) hides it."""
        if path == self._root:
            return self._top
        inside = self._folder(os.path.dirname(path))
        if inside is None or self._hidden(path, None, inside):
            return None
        return inside

    def _folder(self, folder: str) -> Rules | None:
        """The rules inside `folder`, its own ignore file included."""
        pending = []
        while folder not in self._inside and folder != self._root:
            pending.append(folder)
            folder = os.path.dirname(folder)
        if folder not in self._inside:
            self._inside[folder] = with_ignore_file(folder, self._top, self._on_problem)
        rules = self._inside[folder]
        for below in reversed(pending):
            if rules is not None and not self._hidden(below, True, rules):
                rules = with_ignore_file(below, rules, self._on_problem)
            else:
                rules = None
            self._inside[below] = rules
        return rules

    def _hidden(self, path: str, is_dir: bool | None, rules: Rules) -> bool:
        """Whether a junk name, the store or a rule hides `path`; `is_dir` None: look."""
        if is_junk(os.path.basename(path)) or path in self._skip:
            return True
        if not rules:  # no rule to apply: no need to ask the disk what `path` is
            return False
        return ignored(path, os.path.isdir(path) if is_dir is None else is_dir, rules)
