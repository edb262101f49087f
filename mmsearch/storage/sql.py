"""SQL text for the store's where clauses: quoted strings and path subtrees. Here, in the
storage layer, so the store builds its own clauses and the query layer's filters reuse them."""

from __future__ import annotations

from collections.abc import Sequence


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def subtree_ranges(paths: Sequence[str]) -> list[tuple[str, str, str]]:
    """Each path with the byte range of the paths beneath it (`p/` up to `p0`, the next
    byte after `/`): range tests, so no LIKE wildcard in a file name can widen them."""
    return [(p, p.rstrip("/") + "/", p.rstrip("/") + "0") for p in paths]


def subtree_sql(paths: Sequence[str]) -> str:
    """`path` is one of `paths` or lies beneath one; `false` for none."""
    parts = [
        f"(path = {sql_str(p)} OR (path >= {sql_str(lo)} AND path < {sql_str(hi)}))"
        for p, lo, hi in subtree_ranges(paths)
    ]
    return "(" + " OR ".join(parts) + ")" if parts else "false"
