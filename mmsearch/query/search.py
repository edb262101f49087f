"""Answer a parsed query here, in this process: from the search snapshot when it is current
and enough, else from the store; rows ranked, then grouped into hits."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmsearch.core.config import Settings, default_min_score, is_local_uri
from mmsearch.core.errors import UsageError
from mmsearch.core.timings import phase
from mmsearch.core.vocab import Mode, Sort
from mmsearch.core.words import cjk_runs
from mmsearch.query.compose import compose_with_reach
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part
from mmsearch.query.ranking import (
    MATCH,
    NO_CALIBRATION,
    NULL_QUERIES,
    Calibration,
    Hit,
    Lists,
    Rule,
    Source,
    Terms,
    best_unseen,
    by_cosine,
    by_words,
    evidence_fusion,
    fuse,
    group,
    query_terms,
    score,
)

if TYPE_CHECKING:
    from mmsearch.storage.snapshot import Snapshot
    from mmsearch.storage.store import Collection

Row = dict[str, Any]

DF_PROBE = 256  # passages fetched to tell a rare word from a common one
SAMPLE = 4096  # the library's pictures a query's calibration is measured on, at most
MIN_SPREAD = 0.005  # cosine: a library of near-identical pictures has no standout
MIN_NOISE = 0.5  # standouts: gibberish's level, in a library too small to measure it
# Distinct pictures a calibration needs before "no good match" is said on it: among fewer,
# the best of anything stands out about as far as a description's picture does (and the
# library is measured together with the model's reference pictures).
TRUSTED = 20
# A text query as like the null queries as they are to their own centre (NONSENSE of it) is
# gibberish to the model: its pictures count nothing; at MEANINGFUL of it or less, fully.
NONSENSE, MEANINGFUL = 0.97, 0.85


@dataclass(frozen=True)
class Ranked:
    """A query made ready: `fetch(limit)` gives the ranked lists with `limit` rows each, and
    `rule` scores a locator from them with the query's words and calibration."""

    fetch: Callable[[int], Lists]
    rule: Rule
    terms: Terms
    calibration: Calibration


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
    passages as separate lists, adds the full-text lists, and scores each locator's evidence
    on the calibrated scale (ranking.evidence_fusion, ranking.Calibration); "auto" is hybrid
    when the query has words and no picture and the index has passages, else every row by
    cosine, calibrated too. A calibrated search keeps only hits of at least the minimum score
    (MATCH, or MMSEARCH_MIN_SCORE) unless the filters name one, or the calibration is not
    trusted. `sort`: the top hits by score, then ordered by capture date when asked.
    """
    filters = filters or Filters()
    words = " ".join(p.words for p in parts if p.kind == "text" and p.weight > 0)
    if mode in (Mode.TEXT, Mode.HYBRID) and not words:
        raise UsageError(f"--mode {mode} needs words in the query")
    exclude = sorted({p.value for p in parts if p.kind == "image"})
    ranked = _from_snapshot(settings, parts, mode, words, filters, exclude)
    if ranked is None:
        ranked = _from_store(settings, parts, mode, words, filters, exclude)
    min_score = filters.min_score
    if min_score is None and ranked.rule is evidence_fusion:  # calibrated: below it, no good match
        min_score = default_min_score()
        if min_score is None and ranked.calibration.trusted:
            min_score = MATCH
    return sort_hits(_best(ranked, top, min_score, moments), sort)


def _best(ranked: Ranked, top: int, min_score: float | None, moments: bool) -> list[Hit]:
    """Fetch deeper until `top` hits are found, the index has nothing more, or (with a
    minimum score) nothing not fetched yet could reach it."""
    limit = max(top * 2, top + 8)
    while True:
        with phase("search"):
            lists = ranked.fetch(limit)
        cands = fuse(lists, ranked.terms, ranked.calibration, ranked.rule)
        if min_score is not None:
            cands = [c for c in cands if score(c) >= min_score]
        hits = group(cands, moments, ranked.terms)
        if len(hits) >= top or all(len(rows) < limit for rows in lists.values()):
            return hits[:top]
        unseen = best_unseen(lists, limit, ranked.calibration, ranked.rule)
        if min_score is not None and unseen < min_score:
            return hits[:top]
        limit *= 4


def sort_hits(hits: list[Hit], sort: Sort) -> list[Hit]:
    """The hits in the order asked; by date, undated hits last, ties by score."""
    if sort == Sort.SCORE:
        return hits
    sign = 1.0 if sort == Sort.DATE else -1.0
    return sorted(hits, key=lambda h: (h.taken is None, sign * (h.taken or 0.0), -h.score))


class Rows(Protocol):
    """Where a query's ranked lists come from: the snapshot or the store, within the query's
    filters."""

    has_text: bool

    def nearest(self, vector: np.ndarray, limit: int, pictures: bool | None) -> list[Row]:
        """Rows by cosine, best first: pictures, passages, or every row (None)."""
        ...

    def matching(self, words: str, limit: int, column: str) -> list[Row]:
        """Passages by BM25 in the full-text index the store keeps as `column`."""
        ...

    def holding(self, word: str, column: str) -> int:
        """How many passages hold `word`, up to DF_PROBE (with no filter)."""
        ...

    def pictures(self) -> np.ndarray:
        """A sample of the library's distinct picture vectors (whatever the filters: the
        filtered ones are often too few, or all alike, to measure a standout on)."""
        ...


def _from_snapshot(
    settings: Settings,
    parts: Sequence[Part],
    mode: Mode,
    words: str,
    filters: Filters,
    exclude: Sequence[str],
) -> Ranked | None:
    """A ranking served by the search snapshot (vectors by numpy, words by its SQLite FTS5
    file), when it is current and no query file is itself indexed (its stored vector needs
    the store); None sends it to the store."""
    from mmsearch.storage.snapshot import open_fresh

    with phase("open index"):
        snap = open_fresh(settings.db, settings.model_key)
        if snap is None and not is_local_uri(settings.db):
            from mmsearch.storage.snapshot import fetch

            snap = fetch(settings)
    if snap is None or any(snap.holds(path) for path in exclude):
        return None
    return _ranked(settings, parts, mode, words, _SnapshotRows(snap, snap.allowed(filters)), None)


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
    rows = _StoreRows(settings, coll, filters.where(exclude))
    return _ranked(settings, parts, mode, words, rows, coll)


def _ranked(
    settings: Settings,
    parts: Sequence[Part],
    mode: Mode,
    words: str,
    rows: Rows,
    coll: Collection | None,
) -> Ranked:
    """The query made ready over `rows`: its rule, lists, words' weights and calibration.
    `auto` is hybrid for words (without a picture: a composed query's words only move the
    picture) in an index with passages, else every row by cosine; calibrated either way."""
    rule = {Mode.VECTOR: by_cosine, Mode.TEXT: by_words}.get(mode, evidence_fusion)
    if mode == Mode.AUTO:
        pictured = any(p.kind == "image" and p.weight > 0 for p in parts)
        mode = Mode.HYBRID if words and not pictured and rows.has_text else Mode.VECTOR
    vector, reach = compose_with_reach(settings, coll, parts) if mode != Mode.TEXT else (None, 1.0)
    terms: Terms = query_terms(words)
    if mode != Mode.VECTOR:
        terms = term_weights(rows.holding, terms)
    calibration = NO_CALIBRATION
    if rule is evidence_fusion:
        assert vector is not None
        calibration = calibrate(settings, parts, vector, reach, rows.pictures())

    def fetch(limit: int) -> Lists:
        lists: dict[Source, list[Row]] = {}
        if mode != Mode.TEXT:
            assert vector is not None
            if mode == Mode.VECTOR:
                return {Source.VECTOR: rows.nearest(vector, limit, None)}
            lists[Source.PICTURES] = rows.nearest(vector, limit, True)
            lists[Source.PASSAGES] = rows.nearest(vector, limit, False)
        grams = cjk_runs(words)
        for source, column, text in (
            (Source.EXACT, "words", words),
            (Source.STEMMED, "text", words),
            (Source.GRAMS, "grams", grams),
        ):
            if text:
                lists[source] = rows.matching(text, limit, column)
        return lists

    return Ranked(fetch, rule, terms, calibration)


class _SnapshotRows:
    def __init__(self, snap: Snapshot, mask: np.ndarray | None):
        self.snap, self.mask, self.has_text = snap, mask, snap.has_text

    def nearest(self, vector: np.ndarray, limit: int, pictures: bool | None) -> list[Row]:
        if pictures is None:
            return self.snap.search(vector, limit, self.mask)
        kind = self.snap.pictures if pictures else ~self.snap.pictures
        return self.snap.search(vector, limit, kind if self.mask is None else kind & self.mask)

    def matching(self, words: str, limit: int, column: str) -> list[Row]:
        return self.snap.text_search(words, limit, self.mask, column)

    def holding(self, word: str, column: str) -> int:
        return self.snap.passages.count(word, column, DF_PROBE)

    def pictures(self) -> np.ndarray:
        return self.snap.picture_sample(SAMPLE)


class _StoreRows:
    def __init__(self, settings: Settings, coll: Collection, where: str | None):
        self.settings, self.coll, self.where = settings, coll, where
        self.has_text = coll.has_text()

    def nearest(self, vector: np.ndarray, limit: int, pictures: bool | None) -> list[Row]:
        if pictures is None:
            return self.coll.search(vector, limit, self.where)
        kind = "text IS NULL" if pictures else "text IS NOT NULL"
        return self.coll.search(vector, limit, f"({self.where}) AND {kind}" if self.where else kind)

    def matching(self, words: str, limit: int, column: str) -> list[Row]:
        return self.coll.text_search(words, limit, self.where, column)

    def holding(self, word: str, column: str) -> int:
        return len(self.coll.text_search(word, DF_PROBE, None, column))

    def pictures(self) -> np.ndarray:
        """From the snapshot when it is current (a query file that is itself indexed sends
        a query here), else the first SAMPLE the store gives."""
        from mmsearch.storage.snapshot import open_fresh

        snap = open_fresh(self.settings.db, self.settings.model_key)
        return (snap or self.coll).picture_sample(SAMPLE)


def term_weights(holding: Callable[[str, str], int], terms: Sequence[str]) -> dict[str, float]:
    """How much each query word says about passages: its inverse document frequency among
    them, from `holding(word, column)`, how many passages (up to DF_PROBE) a full-text
    index finds it in. A word no passage holds weighs as the rarest (half a passage): it is
    part of what the query asks, and a passage that lacks it lacks that much of its meaning."""
    weights: dict[str, float] = {}
    for term in terms:
        found = holding(term, "grams" if cjk_runs(term) else "words")
        weights[term] = math.log(1 + DF_PROBE / max(found, 0.5))
    return weights


def calibrate(
    settings: Settings,
    parts: Sequence[Part],
    vector: np.ndarray,
    reach: float,
    pictures: np.ndarray,
) -> Calibration:
    """What this query scores on the library's pictures in general (ranking.Calibration),
    from a sample of their vectors; for a text query, with how far meaningless queries make
    a picture stand out in the same sample."""
    if len(pictures) == 0:
        return NO_CALIBRATION
    trusted = len(pictures) >= TRUSTED
    if not trusted:  # a handful of pictures: their mean and spread are mostly chance
        pictures = np.concatenate([pictures, reference_pictures(settings)])
    centre, spread = centre_and_spread(pictures @ vector)
    if any(p.kind == "image" and p.weight > 0 for p in parts):
        return Calibration(centre, spread, None, ceiling=reach, trusted=trusted)
    nulls = _null_vectors(settings)
    noise = _noise(nulls, pictures)
    return Calibration(centre, spread, noise, meaning(nulls, vector), trusted)


def reference_pictures(settings: Settings) -> np.ndarray:
    """The model's unit vectors of the probe pictures (photos, crops, drawn pages and
    shapes), made once per model: what a small library's pictures are measured among."""
    from mmsearch.query.query_cache import reference_vectors

    def embed() -> np.ndarray:
        from mmsearch.model.embed import load_embedder
        from mmsearch.model.onnx_export import probe_pictures

        embedder = load_embedder(settings)
        vectors = embedder.embed_images([embedder.preprocess(p) for p in probe_pictures()])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    return reference_vectors(settings, embed)


def centre_and_spread(cosines: np.ndarray) -> tuple[float, float]:
    """The mean and the standard deviation (at least MIN_SPREAD)."""
    return float(cosines.mean()), max(float(cosines.std()), MIN_SPREAD)


def _null_vectors(settings: Settings) -> np.ndarray:
    """NULL_QUERIES' unit vectors (from the query-vector cache after the first time)."""
    from mmsearch.query.compose import text_embedder
    from mmsearch.query.query_cache import text_vectors

    nulls = np.stack(text_vectors(settings, list(NULL_QUERIES), text_embedder(settings)))
    return nulls / np.maximum(np.linalg.norm(nulls, axis=1, keepdims=True), 1e-12)


def _noise(nulls: np.ndarray, pictures: np.ndarray) -> float:
    """The median over the null queries of the standout of the picture each makes stand out
    most (at least MIN_NOISE): what standing out by chance looks like here, for this model."""
    best = []
    for null in nulls:
        cosines = pictures @ null
        centre, spread = centre_and_spread(cosines)
        best.append((float(cosines.max()) - centre) / spread)
    return max(float(np.median(best)), MIN_NOISE)


def meaning(nulls: np.ndarray, vector: np.ndarray) -> float:
    """How far the model places the query from gibberish, 0-1: its similarity to the null
    queries' centre as a share of theirs (1: as meaningless as they are); past NONSENSE of
    theirs a picture's standout says nothing, below MEANINGFUL it counts fully."""
    centre = nulls.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    likeness = float(vector @ centre) / max(float((nulls @ centre).mean()), 1e-6)
    return min(1.0, max(0.0, (NONSENSE - likeness) / (NONSENSE - MEANINGFUL)))
