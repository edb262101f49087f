"""Which items may answer a query: one definition of each filter, rendered to the store's
SQL and evaluated as a mask over a snapshot's Arrow columns, so the two paths cannot drift
apart (a test compares them on random rows and filters)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmsearch.core.bounds import check_list
from mmsearch.core.errors import UsageError
from mmsearch.core.formats import same_files
from mmsearch.core.paths import normalize
from mmsearch.core.vocab import Kind, choose_all
from mmsearch.storage.sql import sql_str, subtree_ranges, subtree_sql

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


class Predicate:
    """One condition on a row: as SQL text, and as a boolean Arrow array (null where SQL
    would give NULL, so both treat missing values alike)."""

    def sql(self) -> str:
        raise NotImplementedError

    def mask(self, rows: pa.Table) -> pa.ChunkedArray:
        raise NotImplementedError


@dataclass(frozen=True)
class Subtree(Predicate):
    """`path` is one of `paths` or lies beneath one: byte-range tests, so no LIKE wildcard
    in a file name can widen it."""

    paths: Sequence[str]

    def sql(self) -> str:
        return subtree_sql(self.paths)

    def mask(self, rows: pa.Table) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        path = rows["path"]
        inside = [
            pc.or_(pc.equal(path, p), pc.and_(pc.greater_equal(path, lo), pc.less(path, hi)))
            for p, lo, hi in subtree_ranges(self.paths)
        ]
        if not inside:
            return pa.chunked_array([pa.array([False] * len(rows))])
        return functools.reduce(pc.or_, inside)


@dataclass(frozen=True)
class OneOf(Predicate):
    column: str
    values: Sequence[str]
    negate: bool = False

    def sql(self) -> str:
        listed = ", ".join(sql_str(v) for v in self.values)
        return f"{self.column} {'NOT IN' if self.negate else 'IN'} ({listed})"

    def mask(self, rows: pa.Table) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = rows[self.column]
        found = pc.is_in(column, pa.array(list(self.values), pa.string()))
        found = pc.invert(found) if self.negate else found
        return pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), found)


@dataclass(frozen=True)
class Bound(Predicate):
    """`column >= value` (a lower bound) or `column < value` (an upper one)."""

    column: str
    value: float
    lower: bool

    def sql(self) -> str:
        return f"{self.column} {'>=' if self.lower else '<'} {self.value!r}"

    def mask(self, rows: pa.Table) -> Any:
        import pyarrow.compute as pc

        compare = pc.greater_equal if self.lower else pc.less
        return compare(rows[self.column], self.value)


@dataclass(frozen=True)
class Filters:
    """Applied inside the store query, before the top N are cut. Values are read and checked
    on construction: kinds from the Kind vocabulary, extensions widened to every spelling
    of their format, paths normalised."""

    within: Sequence[str] = ()  # paths: at or under one of them
    kinds: Sequence[str] = ()  # image, video, document
    exts: Sequence[str] = ()  # file extensions, with or without the dot
    after: float | None = None  # capture time (EXIF, else mtime), seconds since the epoch
    before: float | None = None
    min_score: float | None = None  # drops weaker results (applied to scores, not rows)

    def __post_init__(self) -> None:
        check_list(self.within, "--in", what="folders")
        check_list(self.kinds, "--type", what="kinds")
        check_list(self.exts, "--ext", what="extensions")
        set_ = functools.partial(object.__setattr__, self)
        set_("within", tuple(normalize(w) for w in self.within))
        set_("kinds", tuple(str(k) for k in choose_all(Kind, self.kinds, "--type")))
        set_("exts", same_files(self.exts))
        for name in ("after", "before", "min_score"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(float(value)):
                raise UsageError(f"{name.replace('_', '-')} must be a finite number")
            set_(name, None if value is None else float(value))

    @classmethod
    def from_options(
        cls,
        within: Sequence[str] | None,
        kinds: Sequence[str] | None,
        exts: Sequence[str] | None,
        after: str | None,
        before: str | None,
        min_score: float | None,
    ) -> Filters:
        """The filter the command line's options ask for (dates as the user wrote them)."""
        from mmsearch.query.grammar import parse_date

        return cls(
            within=[str(w) for w in within or []],
            kinds=kinds or [],
            exts=exts or [],
            after=parse_date(after, "--after") if after else None,
            before=parse_date(before, "--before") if before else None,
            min_score=min_score,
        )

    def predicates(self, exclude: Sequence[str] = ()) -> list[Predicate]:
        found: list[Predicate] = []
        if self.within:
            found.append(Subtree(self.within))
        if self.kinds:
            found.append(OneOf("kind", self.kinds))
        if self.exts:
            found.append(OneOf("ext", self.exts))
        if self.after is not None:
            found.append(Bound("taken", self.after, lower=True))
        if self.before is not None:
            found.append(Bound("taken", self.before, lower=False))
        if exclude:
            found.append(OneOf("path", tuple(exclude), negate=True))
        return found

    def where(self, exclude: Sequence[str] = ()) -> str | None:
        """The store's SQL filter, or None when everything may answer."""
        return " AND ".join(p.sql() for p in self.predicates(exclude)) or None

    def mask(self, rows: pa.Table, exclude: Sequence[str] = ()) -> np.ndarray | None:
        """The same filter over a snapshot's columns: a row SQL would drop (false or NULL) is
        False. None when everything may answer."""
        predicates = self.predicates(exclude)
        if not predicates:
            return None
        import pyarrow.compute as pc

        masks = [p.mask(rows) for p in predicates]
        both = functools.reduce(pc.and_kleene, masks)
        return both.fill_null(False).to_numpy(zero_copy_only=False)

    def as_dict(self) -> dict[str, Any]:
        """The filter as the server protocol carries it."""
        return {
            "within": list(self.within),
            "kinds": list(self.kinds),
            "exts": list(self.exts),
            "after": self.after,
            "before": self.before,
            "min_score": self.min_score,
        }
