"""Answer text and image queries: embed the query, search the store, keep each file's best item."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import Settings
from mmsearch.errors import ExtractError, MmsearchError, NoIndex, UsageError
from mmsearch.scan import kind_of, normalize
from mmsearch.store import Collection, Store, sql_str, subtree_filter

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Hit:
    """One result: a file and, for a video, the moment in it (seconds, `t` to `t_end`)."""

    path: str
    kind: str
    score: float
    t: float | None = None
    t_end: float | None = None
    page: int | None = None


# Adjacent frames of a video whose scores lie this close together form one moment.
MOMENT_DELTA = 0.02


def search_text(
    settings: Settings,
    text: str,
    *,
    top: int = 10,
    within: Sequence[str] = (),
    min_score: float | None = None,
    moments: bool = False,
) -> list[Hit]:
    """The indexed items that best match `text`."""
    coll = _collection(settings)
    from mmsearch.embed import load_embedder

    vector = load_embedder(settings).embed_texts([text])[0]
    return _search(coll, vector, top, within, min_score, moments, exclude=None)


def search_image(
    settings: Settings,
    image: str,
    *,
    at: float | None = None,
    top: int = 10,
    within: Sequence[str] = (),
    min_score: float | None = None,
    moments: bool = False,
) -> list[Hit]:
    """The indexed items most like the image file `image`, or the frame at `at` seconds of a
    video; the query file itself is never among them."""
    path = normalize(image)
    is_video = kind_of(path) == "video"
    if is_video and at is None:
        raise UsageError(f"{image} is a video: pass --at SECONDS to choose the frame to match")
    if at is not None and not is_video:
        raise UsageError("--at picks a moment of a video; the query is not a video")
    coll = _collection(settings)
    try:
        st = os.stat(path)
        if at is not None:
            from mmsearch.extract.video import frame_at

            vector = _embed_picture(settings, image, lambda size: frame_at(path, at, size))
        elif (vector := coll.stored_vector(path, st.st_size, st.st_mtime_ns)) is None:
            from mmsearch.extract.image import load_image

            with open(path, "rb") as f:
                data = f.read()
            vector = _embed_picture(settings, image, lambda size: load_image(data, size))
    except OSError as e:
        raise MmsearchError(f"cannot read {image}: {e.strerror or e}") from None
    return _search(coll, vector, top, within, min_score, moments, exclude=path)


def _embed_picture(
    settings: Settings, name: str, picture: Callable[[int], Image.Image]
) -> np.ndarray:
    from mmsearch.embed import load_embedder

    embedder = load_embedder(settings)
    try:
        pixels = embedder.preprocess(picture(embedder.image_size))
    except ExtractError as e:
        raise MmsearchError(f"{name}: {e}") from None
    return embedder.embed_images([pixels])[0]


def _collection(settings: Settings) -> Collection:
    store = Store(settings.db)
    coll = store.collection(settings) if store.exists() else None
    if coll is None:
        others = [m["model"] for m in store.models()] if store.exists() else []
        hint = f" (the store has vectors for: {', '.join(others)}; pass --model)" if others else ""
        raise NoIndex(
            f"nothing indexed with {settings.model} in {settings.db} yet: "
            f"run `mmsearch index PATH` first{hint}"
        )
    return coll


def _search(
    coll: Collection,
    vector: np.ndarray,
    top: int,
    within: Sequence[str],
    min_score: float | None,
    moments: bool,
    exclude: str | None,
) -> list[Hit]:
    """Best files (or moments) first; fetches more rows until `top` are found or the index
    runs out, since one video can fill many rows."""
    clauses = []
    if within:
        clauses.append(subtree_filter([normalize(w) for w in within]))
    if exclude:
        clauses.append(f"path != {sql_str(exclude)}")
    where = " AND ".join(clauses) or None
    limit = max(top * 2, top + 8)
    while True:
        rows = coll.search(vector, limit, where)
        if min_score is not None:
            rows = [r for r in rows if _score(r) >= min_score]
        hits = group(rows, moments)
        exhausted = len(rows) < limit
        if len(hits) >= top or exhausted:
            return hits[:top]
        limit *= 4


def group(rows: list[dict[str, Any]], moments: bool = False) -> list[Hit]:
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
            hits.append(Hit(path, r["kind"], _score(r), page=r["page"]))
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
            max(_score(r) for r in run),
            run[0]["t"],
            run[-1]["t_end"],
        )
        for run in runs
    ]
    return sorted(hits, key=lambda h: -h.score)


def _score(row: dict[str, Any]) -> float:
    return round(float(row["score"]), 6)
