"""What a walk never enters: junk and partial files, `--exclude` globs and `.mmsearchignore`
files (gitignore syntax), each folder's rules applying beneath it."""

from __future__ import annotations

import os
from collections.abc import Callable

import pathspec

JUNK_NAMES = frozenset(
    {"Thumbs.db", "desktop.ini", "@eaDir", "node_modules", "$RECYCLE.BIN", "__pycache__"}
)
IGNORE_FILE = ".mmsearchignore"

# (folder, spec) pairs, outermost first: a path is ignored when any of them matches it.
Rules = list[tuple[str, pathspec.GitIgnoreSpec]]
# Called with a path that could not be read and why, so the walk can record it.
OnProblem = Callable[[str, BaseException], None]


def from_globs(root: str, globs: list[str]) -> Rules:
    return [(root, pathspec.GitIgnoreSpec.from_lines(globs))]


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
        rel = os.path.relpath(path, base)
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False


def rules_down_to(
    path: str, root: str, rules: Rules, skip: set[str], on_problem: OnProblem
) -> Rules | None:
    """The rules in force at `path` below `root`, or None if something on the way down (a
    junk or ignored folder, the store) hides it."""
    if path == root:
        return rules
    folder = root
    parts = os.path.relpath(path, root).split(os.sep)
    for i, name in enumerate(parts):
        rules = with_ignore_file(folder, rules, on_problem)
        folder = os.path.join(folder, name)
        is_dir = i < len(parts) - 1 or os.path.isdir(folder)
        if is_junk(name) or folder in skip or ignored(folder, is_dir, rules):
            return None
    return rules
