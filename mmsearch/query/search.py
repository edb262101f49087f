"""Answer a parsed query here, in this process: from the search snapshot when it is current
and enough, else from the store; rows ranked, then grouped into hits."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.core.config import Settings, is_local_uri
from mmsearch.core.errors import UsageError
from mmsearch.core.timings import phase
from mmsearch.core.vocab import Mode, Sort
from mmsearch.query.compose import compose
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part
from mmsearch.query.ranking import (
    Hit,
    Lists,
    Rule,
    Source,
    Terms,
    best_unseen,
    by_cosine,
    by_words,
    cjk_runs,
    evidence_fusion,
    fuse,
    group,
    query_terms,
    score,
)

if TYPE_CHECKING:
    from mmsearch.storage.store import Collection

# A ranking: fetch `limit` rows per list → the lists, how to fuse them, the query's words.
Ranked = Callable[[int], tuple[Lists, Rule, Terms]]
DF_PROBE = 64  # passages fetched to tell a rare word from a common one


def search(
    settings: Settings,
    parts: Sequence[Part],
    *,
    top: int = 10,
    filters: Filters | None = None,
    moments: bool = False,
    mode: Mode = Mode.AUTO,
    sort: Sort = Sort.SCORE,
) -> list[Hit]:
    """The items closest to the composed query: each part embedded and L2-normalised, scaled
    by its weight, summed, normalised again. Query images never answer themselves.

    `mode`: "vector" ranks every item by cosine similarity; "text" ranks passages by their
    words (BM25 over exact words, stemmed words and CJK bigrams); "hybrid" ranks pictures and
    passages as separate lists, adds the full-text lists, and fuses their evidence per
    locator by score (ranking.evidence_fusion), so that a word only one file holds puts that
    file first and CLIP's high text-to-text similarities cannot bury a well matching photo.
    "auto" is hybrid when the query has words and the index has passages, else vector.
    `sort`: the top hits by score, then ordered by capture date when asked.
    """
    filters = filters or Filters()
    words = " ".join(p.words for p in parts if p.kind == "text" and p.weight > 0)
    if mode in (Mode.TEXT, Mode.HYBRID) and not words:
        raise UsageError(f"--mode {mode} needs words in the query")
    exclude = sorted({p.value for p in parts if p.kind == "image"})
    ranked = _from_snapshot(settings, parts, mode, words, filters, exclude)
    if ranked is None:
        ranked = _from_store(settings, parts, mode, words, filters, exclude)
    return sort_hits(_best(ranked, words, top, filters.min_score, moments), sort)


def _best(
    ranked: Ranked, words: str, top: int, min_score: float | None, moments: bool
) -> list[Hit]:
    """Fetch deeper until `top` hits are found, the index has nothing more, or (with a
    minimum score) nothing not fetched yet could reach it."""
    limit = max(top * 2, top + 8)
    while True:
        with phase("search"):
            lists, rule, terms = ranked(limit)
        cands = fuse(lists, terms, limit, rule)
        if min_score is not None:
            cands = [c for c in cands if score(c) >= min_score]
        hits = group(cands, moments, terms)
        if len(hits) >= top or all(len(rows) < limit for rows in lists.values()):
            return hits[:top]
        if min_score is not None and best_unseen(lists, limit, rule) < min_score:
            return hits[:top]
        limit *= 4


def sort_hits(hits: list[Hit], sort: Sort) -> list[Hit]:
    """The hits in the order asked; by date, undated hits last, ties by score."""
    if sort == Sort.SCORE:
        return hits
    sign = 1.0 if sort == Sort.DATE else -1.0
    return sorted(hits, key=lambda h: (h.taken is None, sign * (h.taken or 0.0), -h.score))


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
    from mmsearch.storage.snapshot import open_fresh

    with phase("open index"):
        snap = open_fresh(settings.db, settings.model_key)
        if snap is None and not is_local_uri(settings.db):
            from mmsearch.storage.snapshot import fetch

            snap = fetch(settings)
    if snap is None or (mode == Mode.AUTO and words and snap.has_text):
        return None
    if any(snap.holds(path) for path in exclude):
        return None
    vector = compose(settings, None, parts)
    mask = snap.allowed(filters)

    terms = query_terms(words)

    def ranked(limit: int) -> tuple[Lists, Rule, Terms]:
        return {Source.VECTOR: snap.search(vector, limit, mask)}, by_cosine, terms

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
        from mmsearch.storage.store import search_collection

        coll = search_collection(settings)
    if mode == Mode.AUTO:
        mode = Mode.HYBRID if words and coll.has_text() else Mode.VECTOR
    vector = compose(settings, coll, parts) if mode != Mode.TEXT else None
    where = filters.where(exclude)
    rule = {Mode.VECTOR: by_cosine, Mode.TEXT: by_words}.get(mode, evidence_fusion)
    terms = query_terms(words)
    if mode != Mode.VECTOR:
        terms = term_weights(coll, terms)

    def ranked(limit: int) -> tuple[Lists, Rule, Terms]:
        return evidence(coll, mode, vector, words, limit, where), rule, terms

    return ranked


def term_weights(coll: Collection, terms: Sequence[str]) -> dict[str, float]:
    """How much each query word says about passages: its inverse document frequency among
    them, estimated from one small full-text probe per word. A word no passage holds says
    nothing about passages (weight 0): a caption's picture words do not dilute the one rare
    word a passage shares with the query."""
    weights: dict[str, float] = {}
    for term in terms:
        column = "grams" if cjk_runs(term) else "words"
        found = len(coll.text_search(term, DF_PROBE, None, column))
        weights[term] = math.log(1 + DF_PROBE / found) if found else 0.0
    return weights


def evidence(
    coll: Collection,
    mode: Mode,
    vector: np.ndarray | None,
    words: str,
    limit: int,
    where: str | None,
) -> dict[Source, list[dict[str, Any]]]:
    """The ranked lists a mode fuses, each best first with its `score` and at most `limit`
    rows long."""
    lists: dict[Source, list[dict[str, Any]]] = {}
    if mode == Mode.VECTOR:
        assert vector is not None
        lists[Source.VECTOR] = coll.search(vector, limit, where)
        return lists
    if mode == Mode.HYBRID:
        assert vector is not None
        both = f"({where}) AND " if where else ""
        lists[Source.PICTURES] = coll.search(vector, limit, both + "text IS NULL")
        lists[Source.PASSAGES] = coll.search(vector, limit, both + "text IS NOT NULL")
    for source, column, text in (
        (Source.EXACT, "words", words),
        (Source.STEMMED, "text", words),
        (Source.GRAMS, "grams", cjk_runs(words)),
    ):
        if text:
            lists[source] = coll.text_search(text, limit, where, column)
    return lists
