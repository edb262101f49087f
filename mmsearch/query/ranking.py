"""From ranked lists to what a user sees: the lists' evidence gathered per locator (a file, a
PDF page, a video moment), fused by score, one hit per file at the locator whose evidence
won, and the passage of that locator that explains it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mmsearch.core.words import CJK, STOP_WORDS

# Adjacent frames of a video whose scores lie this close together form one moment.
MOMENT_DELTA = 0.02


class Source(StrEnum):
    """Where a piece of evidence comes from: one ranked list each."""

    VECTOR = "vector"  # every row by cosine (`--mode vector`)
    PICTURES = "pictures"  # photos, frames, pages by cosine
    PASSAGES = "passages"  # passages by cosine (CLIP's text-to-text: a weak signal)
    EXACT = "exact"  # passages by BM25 over unstemmed words (ICU word breaks: CJK too)
    STEMMED = "stemmed"  # passages by BM25 over stemmed English words
    GRAMS = "grams"  # CJK passages by BM25 over character bigrams (Korean, unsegmented text)


TEXT_SOURCES = (Source.EXACT, Source.STEMMED, Source.GRAMS)
Lists = Mapping[Source, Sequence[dict[str, Any]]]
# The query's words, each with how much it says (its rarity among passages), or just listed.
Terms = Mapping[str, float] | Sequence[str]


@dataclass(frozen=True)
class Hit:
    """One result: a file and, for a video, the moment in it (seconds, `t` to `t_end`)."""

    path: str
    kind: str
    score: float
    t: float | None = None
    t_end: float | None = None
    page: int | None = None
    snippet: str | None = None  # a document's best passage; the words said over a moment
    taken: float | None = None  # capture time (EXIF, video metadata, else mtime), epoch seconds


@dataclass
class Candidate:
    """Everything the lists say about one locator: for each list, its best row there (rank,
    score, row). A PDF page's picture and its passages are one candidate, as are a video
    frame and the words read off it."""

    key: tuple[Any, ...]
    row: dict[str, Any]
    found: dict[Source, tuple[int, float, dict[str, Any]]] = field(default_factory=dict)
    score: float = 0.0

    def passage(self) -> str | None:
        """The passage whose evidence won here: the best full-text row, else the best
        passage by meaning."""
        for source in (*TEXT_SOURCES, Source.PASSAGES, Source.VECTOR):
            if source in self.found and self.found[source][2].get("text"):
                return self.found[source][2]["text"]
        return None


def locator(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["path"], row["page"], row["t"])


def collect(lists: Lists) -> dict[tuple[Any, ...], Candidate]:
    """The candidates of all lists, each with its best row per list."""
    found: dict[tuple[Any, ...], Candidate] = {}
    for source, rows in lists.items():
        for rank, row in enumerate(rows, 1):
            key = locator(row)
            cand = found.get(key)
            if cand is None:
                cand = found[key] = Candidate(key, row)
            elif row.get("text") is None and cand.row.get("text") is not None:
                cand.row = row  # a picture row carries the moment's span
            if source not in cand.found:
                cand.found[source] = (rank, float(row["score"]), row)
    return found


@dataclass(frozen=True)
class Calibration:
    """How a picture's cosine similarity to one query becomes a relevance estimate, 0-1.

    A cosine means nothing alone: its scale differs from model to model, and between a text
    query (CLIP's text-to-picture cosines sit in a narrow band) and a picture query. What it
    says is how far it stands out from what the same query scores on the library's pictures
    in general: `centre` and `spread` are the mean and standard deviation of the query's
    cosines over them (near-copies counted once), so unrelated pictures added move a score
    little.

    - A text query: a picture counts by its standout z = (cosine - centre) / spread as a
      multiple r of `noise`, the standout that meaningless queries (NULL_QUERIES) reach among
      the same pictures with the same model: r^8 / (r^8 + 1.1^8), so 0.5 (a match) at 1.1x,
      0.32 at gibberish's own level, 0.92 at 1.5x; times `meaning`, 0 for a query the model
      places among the null queries themselves (words it does not know), 1 for any other.
    - A query with a picture (`noise` None): `ceiling` is the query's similarity to its own
      picture (1 for a picture alone, less for a picture moved by words), the library's
      centre the floor; a picture counts by the share of that span it covers: 0.5 at 70%,
      0.9 at 85%, 1 at all of it (a copy), near 0 below half of it.

    In a library of too few distinct pictures (`trusted` False) the standouts say little:
    scores are still given (measured with the model's reference pictures added), but no
    query is called "no good match" on them.
    """

    centre: float
    spread: float
    noise: float | None
    meaning: float = 1.0  # a text query's distance from gibberish to the model, 0-1
    trusted: bool = True  # measured on enough pictures to call a query "no good match"
    ceiling: float = 1.0

    def picture(self, cosine: float) -> float:
        if self.noise is None:
            share = (cosine - self.centre) / max(self.ceiling - self.centre, 1e-6)
            return min(1.0, _copied(share) / _copied(1.0))
        standout = max(0.0, (cosine - self.centre) / self.spread / self.noise)
        return self.meaning * standout**STEEPNESS / (standout**STEEPNESS + STANDOUT**STEEPNESS)


def _copied(share: float) -> float:
    """0.5 at REACHED of the way to the query's own picture, rising steeply past it."""
    return 1.0 - 2.0 ** -((max(0.0, share) / REACHED) ** 6)


NO_CALIBRATION = Calibration(0.0, 1.0, None)  # for a library without pictures
# Meaningless queries: how far they make a picture stand out is how far any words at all
# do, with this model, in this library.
NULL_QUERIES = ("qzxv", "blorft wemp", "xyzzy plugh", "asdf jkl", "zzkq vvbr", "fnord", "kfgh lmnp")
STANDOUT = 1.1  # a picture standing out 1.1x as far as gibberish's best does: 0.5, a match
STEEPNESS = 8  # 0.32 at gibberish's level, 0.67 at 1.2x, 0.92 at 1.5x, 0.07 at 0.8x
REACHED = 0.7  # a picture query's match covers 70% of the way to the query's own picture
CARRIED = 0.7  # a passage holding 70% of the query's weighted words within one stretch: 0.5
STEMMED_ONLY = 0.5  # a stemmed variant counts half an exact word
# The scale every calibrated score is on (docs, "Scores"): what `--min-score` compares to.
MATCH = 0.5  # a result at least this relevant is a good match; the default minimum score


def no_good_match(min_score: float | None, see_all: str = "") -> str:
    """What every front door says when no result reaches the minimum score (the one given,
    else MMSEARCH_MIN_SCORE's, else MATCH); `see_all` says, in that door's words, how to see
    the closest results anyway."""
    if min_score is None:
        from mmsearch.core.config import default_min_score

        min_score = default_min_score()
    floor = MATCH if min_score is None else min_score
    said = f"no good match: nothing scored {floor:.2f} or more"
    return f"{said} ({see_all})" if see_all else said


Rule = Callable[[Candidate, Calibration, Terms], float]


def text_evidence(c: Candidate, terms: Terms) -> float:
    """How much of the query's meaning a passage's words carry, 0-1: the share of the
    query's words it holds within one stretch of text (`coverage`), each word weighted by its
    rarity (a common word says little; a word no passage holds weighs as the rarest and is
    still missing), for a passage the full-text search found by its exact words (by a stemmed
    variant alone: half). One incidental word shared with a long description stays near 0."""
    if Source.EXACT in c.found or Source.GRAMS in c.found:
        found = 1.0
    elif Source.STEMMED in c.found:
        found = STEMMED_ONLY
    else:
        return 0.0
    return found * carried(coverage(c.passage(), terms))


def carried(share: float) -> float:
    """A passage's coverage of the query's meaning as a relevance estimate on the pictures'
    scale and shape: 0.53 (a match) at CARRIED of the query's weighted words, 1 at all of
    them, 0.07 at half: the few common words any everyday sentence shares with a
    long description say nothing, where a share squared gave them a quarter."""

    def steep(x: float) -> float:
        return x**STEEPNESS / (x**STEEPNESS + CARRIED**STEEPNESS)

    return steep(max(0.0, share)) / steep(1.0)


def by_cosine(c: Candidate, calibration: Calibration, terms: Terms) -> float:
    """`--mode vector`: the cosine similarity of the locator's best row."""
    return c.found[Source.VECTOR][1] if Source.VECTOR in c.found else -1.0


def by_words(c: Candidate, calibration: Calibration, terms: Terms) -> float:
    """`--mode text`: the full-text evidence alone, 0-1."""
    return text_evidence(c, terms)


def evidence_fusion(c: Candidate, calibration: Calibration, terms: Terms) -> float:
    """The calibrated score (the default): how likely the locator is relevant, 0-1, from
    its picture (`Calibration.picture`) and its words (`text_evidence`) as two independent
    witnesses (1 - (1 - picture) (1 - words)): either alone can make a match, both together
    more. A passage's meaning by CLIP (high for any two texts) only breaks ties; a passage
    never borrows a picture's similarity."""
    seen = c.found.get(Source.PICTURES) or c.found.get(Source.VECTOR)
    picture = 0.0
    if seen is not None and seen[2].get("text") is None:
        picture = calibration.picture(seen[1])
    words = text_evidence(c, terms)
    return 1.0 - (1.0 - picture) * (1.0 - words)


def fuse(
    lists: Lists, terms: Terms, calibration: Calibration, rule: Rule = evidence_fusion
) -> list[Candidate]:
    """One candidate per locator, scored by `rule` from its evidence, best first. Ties go to
    the stronger words, then the closer picture, then the path and locator: never to the
    order in which the lists were given."""
    found = list(collect(lists).values())
    for cand in found:
        cand.score = rule(cand, calibration, terms)
    if rule is evidence_fusion:
        _said_with_seen(found)
    return sorted(found, key=lambda c: _order(c))


def _said_with_seen(found: list[Candidate]) -> None:
    """A line said over a video's moment (subtitles) and the keyframe whose span it
    overlaps are two witnesses of one moment: the line's locator, the narrower and exact
    one, takes both (1 - (1 - words) (1 - picture)); the frame keeps its own score."""
    frames: dict[str, list[Candidate]] = {}
    for c in found:
        if c.row.get("text") is None and c.row.get("t") is not None:
            frames.setdefault(c.row["path"], []).append(c)
    for c in found:
        row = c.row
        if row.get("text") is None or row.get("t") is None or row["path"] not in frames:
            continue
        start, end = row["t"], row.get("t_end") or row["t"]
        seen = max(
            (f.score for f in frames[row["path"]] if _overlap(f.row, start, end)), default=0.0
        )
        c.score = 1.0 - (1.0 - c.score) * (1.0 - seen)


def _overlap(frame: dict[str, Any], start: float, end: float) -> bool:
    """The frame's span [t, t_end) shares time with [start, end]; touching is not sharing."""
    return frame["t"] <= start < (frame.get("t_end") or frame["t"]) or start < frame["t"] < end


def best_unseen(lists: Lists, limit: int, calibration: Calibration, rule: Rule) -> float:
    """The highest score a locator not fetched yet could reach: each list cut at the fetch
    limit at most at its last fetched row's score, every query word present."""
    cut = {s: rows[-1] for s, rows in lists.items() if len(rows) >= limit}
    if not cut:
        return float("-inf")
    best = Candidate(("", None, None), {"text": "", "path": ""})
    for source, row in cut.items():
        best.found[source] = (limit, float(row["score"]), row)
    return rule(best, calibration, ())


def _order(c: Candidate) -> tuple[Any, ...]:
    text = max((c.found[s][1] for s in TEXT_SOURCES if s in c.found), default=0.0)
    picture = max(
        (c.found[s][1] for s in (Source.PICTURES, Source.VECTOR) if s in c.found), default=-2.0
    )
    passage = c.found[Source.PASSAGES][1] if Source.PASSAGES in c.found else -2.0
    path, page, t = c.key
    return (-c.score, -text, -picture, -passage, path, page or 0, t or 0.0)


# Patterns as strings: compiled on first use (re caches them), not by every importer of Hit.
_WORD = r"\w+"


def query_terms(words: str) -> list[str]:
    """The words of a query that carry meaning (lower case, stop words out); CJK text as
    character bigrams, as the n-gram index reads it."""
    terms: list[str] = []
    for w in re.findall(_WORD, words.lower()):
        if re.search(CJK, w):
            terms.extend(w[i : i + 2] for i in range(max(1, len(w) - 1)))
        elif w not in STOP_WORDS:
            terms.append(w)
    return list(dict.fromkeys(terms))


def coverage(passage: str | None, terms: Terms) -> float:
    """The share of the query's words a passage holds within one stretch of it (the best
    window of `window_for` words: words scattered over unrelated sentences do not add up),
    each word weighted by how much it says (`terms` maps a word to its weight, or lists words
    of equal weight): an exact word counts fully, a word of the same stem (a shared prefix of
    all but its last three letters, at least four) half; CJK bigrams anywhere in the text."""
    weights = terms if isinstance(terms, Mapping) else dict.fromkeys(terms, 1.0)
    total = sum(weights.values())
    if total <= 0:
        return 1.0
    if not passage:
        return 0.0
    text = passage.lower()
    words = re.findall(_WORD, text)
    held: dict[int, dict[str, float]] = {}  # position -> the query words it holds, with credit
    cjk = 0.0
    for t, weight in weights.items():
        if re.search(CJK, t):
            cjk += weight if t in text else 0.0
            continue
        stem = t[: max(4, len(t) - 3)] if len(t) >= 5 else None
        for i, w in enumerate(words):
            if w == t:
                held.setdefault(i, {})[t] = weight
            elif stem and w.startswith(stem):
                held.setdefault(i, {})[t] = STEMMED_ONLY * weight
    best = 0.0
    span = window_for(len(weights))
    for start in held:  # windows that begin at a held word
        found: dict[str, float] = {}
        for i in range(start, start + span):
            for t, credit in held.get(i, {}).items():
                found[t] = max(found.get(t, 0.0), credit)
        best = max(best, sum(found.values()))
    return (best + cjk) / total


def window_for(count: int) -> int:
    """Words of a passage that one query of `count` words may spread over: a sentence or
    two (12 words, 3 per query word past four)."""
    return max(12, 3 * count)


def group(cands: Sequence[Candidate], moments: bool = False, terms: Terms = ()) -> list[Hit]:
    """One hit per file, at its best locator; with `moments`, every moment of every video.

    A moment is a run of adjacent kept frames (each frame stands for the time until the next
    one) whose scores lie within MOMENT_DELTA of each other.
    """
    by_path: dict[str, list[Candidate]] = {}
    for c in cands:
        by_path.setdefault(c.row["path"], []).append(c)
    hits: list[Hit] = []
    for found in by_path.values():
        if found[0].row["t"] is None:
            best = found[0]
            passage = best.passage()
            snippet = make_snippet(passage, terms) if passage else None
            hits.append(_hit(best, page=best.row["page"], snippet=snippet))
            continue
        runs = _moments(sorted(found, key=lambda c: c.row["t"]), terms)
        hits.extend(runs if moments else runs[:1])
    return sorted(hits, key=lambda h: -h.score)  # equal scores keep the candidates' order


def _hit(c: Candidate, **where: Any) -> Hit:
    return Hit(c.row["path"], c.row["kind"], score(c), taken=c.row.get("taken"), **where)


def _moments(frames: list[Candidate], terms: Terms = ()) -> list[Hit]:
    runs: list[list[Candidate]] = []
    for f in frames:
        run = runs[-1] if runs else None
        if (
            run
            and abs(f.row["t"] - (run[-1].row["t_end"] or run[-1].row["t"])) < 1e-3
            and abs(f.score - max(r.score for r in run)) <= MOMENT_DELTA
        ):
            run.append(f)
        else:
            runs.append([f])
    hits = [
        Hit(
            run[0].row["path"],
            run[0].row["kind"],
            max(score(r) for r in run),
            run[0].row["t"],
            run[-1].row["t_end"],
            snippet=_said(run, terms),
            taken=run[0].row.get("taken"),
        )
        for run in runs
    ]
    return sorted(hits, key=lambda h: -h.score)


def _said(run: list[Candidate], terms: Terms) -> str | None:
    """The words said (or read) over a moment, from its best passage."""
    passage = max(run, key=lambda c: c.score).passage()
    return make_snippet(passage, terms) if passage else None


def make_snippet(passage: str, terms: Terms, before: int = 8, after: int = 22) -> str:
    """Up to 30 words of the passage around the first query word in it (title removed)."""
    words = passage.partition(": ")[2].split() or passage.split()
    at = next((i for i, w in enumerate(words) if _holds_a_term(w, terms)), 0)
    start = max(0, at - before)
    shown = " ".join(words[start : at + after])
    return ("… " if start else "") + shown + (" …" if at + after < len(words) else "")


def _holds_a_term(word: str, terms: Terms) -> bool:
    """A passage's word (punctuation and markup around it aside) starts with a query word,
    or, for CJK, holds it."""
    w = re.sub(_EDGES, "", word.lower())
    return any(t in w if re.search(CJK, t) else w.startswith(t) for t in terms)


_EDGES = r"^\W+|\W+$"


def score(c: Candidate) -> float:
    return round(float(c.score), 6)
