"""Answer text and image queries: embed the query, search the store, keep each file's best item."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsearch.config import Settings
from mmsearch.errors import ExtractError, MmsearchError, NoIndex
from mmsearch.scan import normalize
from mmsearch.store import Collection, Store, sql_str, subtree_filter


@dataclass(frozen=True)
class Hit:
    """One result: a file and, for media with more than one item, where in it."""

    path: str
    kind: str
    score: float
    t: float | None = None
    page: int | None = None


def search_text(
    settings: Settings,
    text: str,
    *,
    top: int = 10,
    within: Sequence[str] = (),
    min_score: float | None = None,
) -> list[Hit]:
    """The indexed items that best match `text`."""
    coll = _collection(settings)
    from mmsearch.embed import load_embedder

    vector = load_embedder(settings).embed_texts([text])[0]
    return _search(coll, vector, top, within, min_score, exclude=None)


def search_image(
    settings: Settings,
    image: str,
    *,
    top: int = 10,
    within: Sequence[str] = (),
    min_score: float | None = None,
) -> list[Hit]:
    """The indexed items most like the image file `image` (which is never among them)."""
    path = normalize(image)
    coll = _collection(settings)
    try:
        st = os.stat(path)
        vector = coll.stored_vector(path, st.st_size, st.st_mtime_ns)
        if vector is None:
            with open(path, "rb") as f:
                vector = _embed_image_bytes(settings, f.read(), image)
    except OSError as e:
        raise MmsearchError(f"cannot read {image}: {e.strerror or e}") from None
    return _search(coll, vector, top, within, min_score, exclude=path)


def _embed_image_bytes(settings: Settings, data: bytes, name: str) -> np.ndarray:
    from mmsearch.embed import load_embedder
    from mmsearch.extract.image import load_image

    embedder = load_embedder(settings)
    try:
        pixels = embedder.preprocess(load_image(data, embedder.image_size))
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
    exclude: str | None,
) -> list[Hit]:
    """Best item per file, best files first; fetches more rows until `top` files are found
    or the index runs out, since one video or document can fill many rows."""
    clauses = []
    if within:
        clauses.append(subtree_filter([normalize(w) for w in within]))
    if exclude:
        clauses.append(f"path != {sql_str(exclude)}")
    where = " AND ".join(clauses) or None
    limit = max(top * 2, top + 8)
    while True:
        rows = coll.search(vector, limit, where)
        best: dict[str, Hit] = {}
        for r in rows:
            if r["path"] not in best:  # rows arrive best first
                best[r["path"]] = Hit(
                    r["path"], r["kind"], round(float(r["score"]), 6), r["t"], r["page"]
                )
        hits = list(best.values())
        if min_score is not None:
            hits = [h for h in hits if h.score >= min_score]
        exhausted = len(rows) < limit or (min_score is not None and rows[-1]["score"] < min_score)
        if len(hits) >= top or exhausted:
            return hits[:top]
        limit *= 4
