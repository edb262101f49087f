"""Near-duplicate groups: photos that are the same picture resized, re-encoded or cropped,
and video frames that match a photo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmsearch.core.config import Settings
from mmsearch.core.paths import normalize
from mmsearch.storage.sql import subtree_sql
from mmsearch.storage.store import open_collection

BLOCK = 512  # rows compared at a time: bounds memory at BLOCK * items floats


@dataclass(frozen=True)
class Member:
    path: str
    kind: str
    t: float | None
    similarity: float  # to the group's first member


@dataclass
class Group:
    members: list[Member] = field(default_factory=list)


def find_dupes(
    settings: Settings, within: Sequence[str] = (), threshold: float = 0.95
) -> list[Group]:
    """Groups of files whose embeddings lie within `threshold` cosine similarity of each
    other (linked transitively), biggest first. Frames of one video never group together,
    nor frames of two videos: a video joins a group through a frame that matches a photo."""
    coll = open_collection(settings)
    where = "kind IN ('image', 'video')"
    if within:
        where += " AND " + subtree_sql([normalize(w) for w in within])
    rows, vectors = coll.vectors(where)
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    is_image = np.array([r["kind"] == "image" for r in rows], dtype=bool)
    for start in range(0, len(rows), BLOCK):
        sims = vectors[start : start + BLOCK] @ vectors.T
        for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
            i, j = start + int(a), int(b)
            if j <= i or rows[i]["path"] == rows[j]["path"]:
                continue
            if not (is_image[i] or is_image[j]):
                continue
            parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(rows)):
        members.setdefault(root(i), []).append(i)
    groups = []
    for indices in members.values():
        group = _group(rows, vectors, indices)
        if len(group.members) > 1:
            groups.append(group)
    return sorted(groups, key=lambda g: (-len(g.members), g.members[0].path))


def _group(rows: list[dict], vectors: np.ndarray, indices: list[int]) -> Group:
    """One member per file (a video by its best matching frame), the best copy first: the
    photo of the most pixels, then the most bytes (the original, not a re-encode of it)."""
    quality = {rows[i]["path"]: _quality(rows[i]["path"]) for i in indices}
    ordered = sorted(
        indices,
        key=lambda i: (rows[i]["kind"] != "image", quality[rows[i]["path"]], rows[i]["path"]),
    )
    head = vectors[ordered[0]]
    best: dict[str, Member] = {}
    for i in ordered:
        sim = round(float(vectors[i] @ head), 6)
        r = rows[i]
        if r["path"] not in best or sim > best[r["path"]].similarity:
            best[r["path"]] = Member(r["path"], r["kind"], r["t"], sim)
    first = best.pop(rows[ordered[0]]["path"])
    return Group([first, *sorted(best.values(), key=lambda m: -m.similarity)])


def _quality(path: str) -> tuple[int, int]:
    """(-pixels, -bytes) of a picture as it is on disk now (its header only); (0, 0) when it
    cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            width, height = picture.size
        return -(width * height), -os.stat(path).st_size
    except (OSError, ValueError, Image.DecompressionBombError):
        return 0, 0
