"""From ranked rows to what a user sees: lists fused, one hit per file at its best moment,
and the passage that explains a document hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Adjacent frames of a video whose scores lie this close together form one moment.
MOMENT_DELTA = 0.02
RRF_K = 60  # reciprocal rank fusion's damping constant (the usual value)


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


def fuse(lists: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Reciprocal rank fusion; `score` becomes the fused score scaled to 0-1 (1: first in
    every list), comparable within one query."""
    fused: dict[tuple[Any, ...], dict[str, Any]] = {}
    best = len(lists) / (RRF_K + 1)
    for rows in lists:
        for rank, row in enumerate(rows, 1):
            key = (row["path"], row["t"], row["page"], row["text"])
            entry = fused.setdefault(key, {**row, "score": 0.0})
            entry["score"] += 1.0 / (RRF_K + rank) / best
    return sorted(fused.values(), key=lambda r: -r["score"])


def group(
    rows: list[dict[str, Any]], moments: bool = False, terms: Sequence[str] = ()
) -> list[Hit]:
    """One hit per file, at its best moment; with `moments`, every moment of every video.

    A moment is a run of adjacent kept frames (each frame stands for the time until the next
    one) whose scores lie within MOMENT_DELTA of each other.
    """
    by_path: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    hits: list[Hit] = []
    for path, found in by_path.items():
        if found[0]["t"] is None:
            r = found[0]
            passage = next((x["text"] for x in found if x.get("text")), None)
            snippet = make_snippet(passage, terms) if passage else None
            hits.append(Hit(path, r["kind"], score(r), page=r["page"], snippet=snippet))
            continue
        runs = _moments(sorted(found, key=lambda r: r["t"]))
        hits.extend(runs if moments else runs[:1])
    return sorted(hits, key=lambda h: -h.score)


def _moments(frames: list[dict[str, Any]]) -> list[Hit]:
    runs: list[list[dict[str, Any]]] = []
    for f in frames:
        run = runs[-1] if runs else None
        if (
            run
            and abs(f["t"] - (run[-1]["t_end"] or run[-1]["t"])) < 1e-3
            and abs(f["score"] - max(r["score"] for r in run)) <= MOMENT_DELTA
        ):
            run.append(f)
        else:
            runs.append([f])
    hits = [
        Hit(
            run[0]["path"],
            run[0]["kind"],
            max(score(r) for r in run),
            run[0]["t"],
            run[-1]["t_end"],
        )
        for run in runs
    ]
    return sorted(hits, key=lambda h: -h.score)


def make_snippet(passage: str, terms: Sequence[str], before: int = 8, after: int = 22) -> str:
    """Up to 30 words of the passage around the first query word in it (title removed)."""
    words = passage.partition(": ")[2].split() or passage.split()
    at = next(
        (
            i
            for i, w in enumerate(words)
            if any(w.lower().strip(".,;:!?()\"'").startswith(t) for t in terms)
        ),
        0,
    )
    start = max(0, at - before)
    shown = " ".join(words[start : at + after])
    return ("… " if start else "") + shown + (" …" if at + after < len(words) else "")


def score(row: dict[str, Any]) -> float:
    return round(float(row["score"]), 6)
