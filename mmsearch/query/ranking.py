"""From ranked lists to what a user sees: the lists' evidence gathered per locator (a file, a
PDF page, a video moment), fused by score, one hit per file at the locator whose evidence
won, and the passage of that locator that explains it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
    snippet: str | None = None  # for a document: the best matching passage
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
class Norms:
    """Per list: its best score and the score of its last fetched row when the list was cut
    at the fetch limit (None when the list holds all it has)."""

    top: dict[Source, float]
    last: dict[Source, float | None]

    @classmethod
    def of(cls, lists: Lists, limit: int) -> Norms:
        top = {s: float(rows[0]["score"]) for s, rows in lists.items() if rows}
        last = {
            s: float(rows[-1]["score"]) if len(rows) >= limit else None
            for s, rows in lists.items()
            if rows
        }
        return cls(top, last)


Rule = Callable[[dict[Source, float], Norms, Terms, str | None], float]

# The chosen fusion (bench/bench_relevance.py measures it against its rivals): a convex
# combination of the evidence, each list's scores taken relative to its best. Words count
# most: a passage holding every query word scores 1 in full text, and only full-text
# evidence can lift a candidate past PICTURE_WEIGHT; a picture counts fully at the best
# picture's cosine and loses a factor e for every PICTURE_MARGIN below it (a soft relevance
# floor: a list that always returns something cannot lift an unrelated picture, and the
# pictures keep their order). Passages by meaning (CLIP's text-to-text similarity, high for
# any two texts) only break ties: on the benchmark any weight for them cost more than it won.
TEXT_WEIGHT = 0.6
PICTURE_WEIGHT = 0.4
PICTURE_MARGIN = 0.03
STEMMED_ONLY = 0.5  # a stemmed variant counts half an exact word


def relative(source: Source, score: float, norms: Norms) -> float:
    """A list's score as a share of its best: 1 at the top."""
    top = norms.top.get(source, 0.0)
    return score / top if top > 0 else 0.0


def decayed(source: Source, score: float, norms: Norms, margin: float) -> float:
    """1 at the list's best score, a factor e less for every `margin` below it."""
    top = norms.top.get(source)
    return 0.0 if top is None else math.exp(-max(0.0, top - score) / margin)


def text_evidence(
    scores: dict[Source, float], norms: Norms, terms: Terms, passage: str | None
) -> float:
    """How well a passage's words answer the query, 0-1: BM25 relative to the best passage
    (exact words count fully, stemmed variants half) times the share of the query's words it
    holds, so a passage that shares one common word with a long caption stays weak."""
    exact = relative(Source.EXACT, scores.get(Source.EXACT, 0.0), norms)
    stemmed = relative(Source.STEMMED, scores.get(Source.STEMMED, 0.0), norms)
    grams = relative(Source.GRAMS, scores.get(Source.GRAMS, 0.0), norms)
    bm25 = max(grams, exact, STEMMED_ONLY * stemmed)
    return bm25 * coverage(passage, terms) if bm25 else 0.0


def by_cosine(
    scores: dict[Source, float], norms: Norms, terms: Terms, passage: str | None
) -> float:
    """`--mode vector`: the cosine similarity of the locator's best row."""
    return scores.get(Source.VECTOR, -1.0)


def by_words(scores: dict[Source, float], norms: Norms, terms: Terms, passage: str | None) -> float:
    """`--mode text`: the full-text evidence alone, 0-1."""
    return text_evidence(scores, norms, terms, passage)


def evidence_fusion(
    scores: dict[Source, float], norms: Norms, terms: Terms, passage: str | None
) -> float:
    """The chosen rule (see the constants above); 0-1."""
    picture = scores.get(Source.PICTURES)
    pictures = 0.0 if picture is None else decayed(Source.PICTURES, picture, norms, PICTURE_MARGIN)
    return TEXT_WEIGHT * text_evidence(scores, norms, terms, passage) + PICTURE_WEIGHT * pictures


def fuse(lists: Lists, terms: Terms, limit: int, rule: Rule = evidence_fusion) -> list[Candidate]:
    """One candidate per locator, scored by `rule` from its evidence, best first. Ties go to
    the stronger words, then the closer picture, then the path and locator: never to the
    order in which the lists were given."""
    norms = Norms.of(lists, limit)
    found = list(collect(lists).values())
    for cand in found:
        scores = {s: f[1] for s, f in cand.found.items()}
        cand.score = rule(scores, norms, terms, cand.passage())
    return sorted(found, key=lambda c: _order(c))


def best_unseen(lists: Lists, limit: int, rule: Rule) -> float:
    """The highest score a locator not fetched yet could reach: each list cut at the fetch
    limit at most at its last fetched score, every query word present."""
    norms = Norms.of(lists, limit)
    scores = {s: v for s, v in norms.last.items() if v is not None}
    return rule(scores, norms, (), None) if scores else float("-inf")


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
# Scripts written without spaces between words (Hangul, kana, CJK ideographs): their runs are
# indexed and searched as character bigrams (the store's `grams` column).
CJK_RANGES = (
    (0x1100, 0x11FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
)
_CJK = "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in CJK_RANGES) + "]"
_STOP = "a an and are as at be by for from has in is it its of on or that the this to was were with"
STOP_WORDS = frozenset(_STOP.split(" "))


def query_terms(words: str) -> list[str]:
    """The words of a query that carry meaning (lower case, stop words out); CJK text as
    character bigrams, as the n-gram index reads it."""
    terms: list[str] = []
    for w in re.findall(_WORD, words.lower()):
        if re.search(_CJK, w):
            terms.extend(w[i : i + 2] for i in range(max(1, len(w) - 1)))
        elif w not in STOP_WORDS:
            terms.append(w)
    return list(dict.fromkeys(terms))


def cjk_runs(text: str | None) -> str | None:
    """The CJK runs of a text, space-separated (what the bigram index holds and is asked);
    None when it has none."""
    runs = " ".join(re.findall(f"{_CJK}+", text)) if text else ""
    return runs or None


def coverage(passage: str | None, terms: Terms) -> float:
    """The share of the query's words a passage holds, each word weighted by how much it
    says (a rare word most, a word no passage holds not at all): an exact word counts fully,
    a word of the same stem (a shared prefix of all but its last three letters, at least
    four) half."""
    weights = terms if isinstance(terms, Mapping) else dict.fromkeys(terms, 1.0)
    total = sum(weights.values())
    if total <= 0:
        return 1.0
    if not passage:
        return 0.0
    text = passage.lower()
    words = set(re.findall(_WORD, text))
    held = 0.0
    for t, weight in weights.items():
        if t in words or (re.search(_CJK, t) and t in text):
            held += weight
        elif len(t) >= 5 and any(w.startswith(t[: max(4, len(t) - 3)]) for w in words):
            held += STEMMED_ONLY * weight
    return held / total


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
        runs = _moments(sorted(found, key=lambda c: c.row["t"]))
        hits.extend(runs if moments else runs[:1])
    return sorted(hits, key=lambda h: (-h.score, h.path, h.t or 0.0))


def _hit(c: Candidate, **where: Any) -> Hit:
    return Hit(c.row["path"], c.row["kind"], score(c), taken=c.row.get("taken"), **where)


def _moments(frames: list[Candidate]) -> list[Hit]:
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
            taken=run[0].row.get("taken"),
        )
        for run in runs
    ]
    return sorted(hits, key=lambda h: -h.score)


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
    return any(t in w if re.search(_CJK, t) else w.startswith(t) for t in terms)


_EDGES = r"^\W+|\W+$"


def score(c: Candidate) -> float:
    return round(float(c.score), 6)
