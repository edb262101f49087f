"""Answer a parsed query here, in this process: from the search snapshot when it is current
and enough, else from the store; rows ranked, then grouped into hits."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.compose import compose
from mmsearch.config import Settings, is_local_uri
from mmsearch.errors import UsageError
from mmsearch.filters import Filters
from mmsearch.grammar import Part
from mmsearch.ranking import Hit, fuse, group, score
from mmsearch.timings import phase
from mmsearch.vocab import Mode

if TYPE_CHECKING:
    from mmsearch.store import Collection

Ranked = Callable[[int], tuple[list[dict[str, Any]], int]]


def search(
    settings: Settings,
    parts: Sequence[Part],
    *,
    top: int = 10,
    filters: Filters | None = None,
    moments: bool = False,
    mode: Mode = Mode.AUTO,
) -> list[Hit]:
    """The items closest to the composed query: each part embedded and L2-normalised, scaled
    by its weight, summed, normalised again. Query images never answer themselves.

    `mode`: "vector" ranks every item by cosine similarity; "text" ranks passages by
    full-text search (BM25); "hybrid" ranks pictures and passages as separate lists, adds
    full-text search, and fuses the three by reciprocal rank, so that CLIP's high
    text-to-text similarities cannot bury a well matching photo. "auto" is hybrid when the
    query has words and the index has passages, else vector.
    """
    filters = filters or Filters()
    words = " ".join(p.words for p in parts if p.kind == "text" and p.weight > 0)
    if mode in (Mode.TEXT, Mode.HYBRID) and not words:
        raise UsageError(f"--mode {mode} needs words in the query")
    exclude = sorted({p.value for p in parts if p.kind == "image"})
    ranked = _from_snapshot(settings, parts, mode, words, filters, exclude)
    if ranked is None:
        ranked = _from_store(settings, parts, mode, words, filters, exclude)
    terms = [t.lower() for t in re.findall(r"\w+", words)]
    limit = max(top * 2, top + 8)
    while True:
        with phase("search"):
            rows, fetched = ranked(limit)
        if filters.min_score is not None:
            rows = [r for r in rows if score(r) >= filters.min_score]
        hits = group(rows, moments, terms)
        if len(hits) >= top or fetched < limit:
            return hits[:top]
        limit *= 4


def _from_snapshot(
    settings: Settings,
    parts: Sequence[Part],
    mode: Mode,
    words: str,
    filters: Filters,
    exclude: Sequence[str],
) -> Ranked | None:
    """A ranking served by the search snapshot, when it is current and the query needs
    nothing else (no full-text search, no query file that is itself indexed: its stored
    vector needs the store); None sends it to the store."""
    if mode not in (Mode.AUTO, Mode.VECTOR):
        return None
    from mmsearch.snapshot import open_fresh

    with phase("open index"):
        snap = open_fresh(settings.db, settings.model_key)
        if snap is None and not is_local_uri(settings.db):
            from mmsearch.snapshot import fetch

            snap = fetch(settings)
    if snap is None or (mode == Mode.AUTO and words and snap.has_text):
        return None
    if any(snap.holds(path) for path in exclude):
        return None
    vector = compose(settings, None, parts)
    mask = filters.mask(snap.rows)

    def ranked(limit: int) -> tuple[list[dict[str, Any]], int]:
        rows = snap.search(vector, limit, mask)
        return rows, len(rows)

    return ranked


def _from_store(
    settings: Settings,
    parts: Sequence[Part],
    mode: Mode,
    words: str,
    filters: Filters,
    exclude: Sequence[str],
) -> Ranked:
    with phase("open index"):
        from mmsearch.store import open_collection

        coll = open_collection(settings)
    if mode == Mode.AUTO:
        mode = Mode.HYBRID if words and coll.has_text() else Mode.VECTOR
    vector = compose(settings, coll, parts) if mode != Mode.TEXT else None
    where = filters.where(exclude)

    def ranked(limit: int) -> tuple[list[dict[str, Any]], int]:
        return _ranked(coll, mode, vector, words, limit, where)

    return ranked


def _ranked(
    coll: Collection,
    mode: Mode,
    vector: np.ndarray | None,
    words: str,
    limit: int,
    where: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """Rows best first with their `score`, and the length of the longest list fetched (when
    shorter than `limit`, the index has nothing more to give)."""
    if mode == Mode.TEXT:
        rows = coll.text_search(words, limit, where)
        return rows, len(rows)
    assert vector is not None
    if mode == Mode.VECTOR:
        rows = coll.search(vector, limit, where)
        return rows, len(rows)
    both = f"({where}) AND " if where else ""
    lists = [
        coll.search(vector, limit, both + "text IS NULL"),  # pictures: photos, frames, pages
        coll.search(vector, limit, both + "text IS NOT NULL"),  # passages, by meaning
        coll.text_search(words, limit, where),  # passages, by their words
    ]
    return fuse(lists), max(len(rows) for rows in lists)
