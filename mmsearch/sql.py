"""SQL filter text for LanceDB, built without importing it (queries import this cheaply)."""

from __future__ import annotations

from collections.abc import Iterable


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def subtree_filter(paths: Iterable[str]) -> str:
    """Rows whose path is one of `paths` or lies beneath one: a byte-range test, so no
    LIKE wildcards in file names can widen it."""
    parts = []
    for p in paths:
        base = p.rstrip("/")
        parts.append(
            f"(path = {sql_str(p)} OR (path >= {sql_str(base + '/')} "
            f"AND path < {sql_str(base + '0')}))"
        )
    return "(" + " OR ".join(parts) + ")" if parts else "false"
