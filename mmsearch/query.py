"""Answer text and image queries: embed the query, search the store, keep each file's best item."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import Settings
from mmsearch.errors import ExtractError, MmsearchError, UsageError
from mmsearch.formats import kind_of
from mmsearch.grammar import Part
from mmsearch.paths import normalize
from mmsearch.sql import sql_str, subtree_filter
from mmsearch.timings import phase

if TYPE_CHECKING:
    import pyarrow as pa
    from PIL import Image

    from mmsearch.store import Collection


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


# Adjacent frames of a video whose scores lie this close together form one moment.
MOMENT_DELTA = 0.02


@dataclass(frozen=True)
class Filters:
    """Which items may answer: applied inside the store query, before the top N are cut."""

    within: Sequence[str] = ()  # paths: at or under one of them
    kinds: Sequence[str] = ()  # "image", "video", "document"
    exts: Sequence[str] = ()  # file extensions, with or without the dot
    after: float | None = None  # capture time (EXIF, else mtime), seconds since the epoch
    before: float | None = None
    min_score: float | None = None

    def where(self, exclude: Sequence[str] = ()) -> str | None:
        clauses = []
        if self.within:
            clauses.append(subtree_filter([normalize(w) for w in self.within]))
        if self.kinds:
            clauses.append(f"kind IN ({', '.join(sql_str(k) for k in self.kinds)})")
        if self.exts:
            exts = {"." + e.lower().lstrip(".") for e in self.exts}
            clauses.append(f"ext IN ({', '.join(sql_str(e) for e in sorted(exts))})")
        if self.after is not None:
            clauses.append(f"taken >= {self.after!r}")
        if self.before is not None:
            clauses.append(f"taken < {self.before!r}")
        if exclude:
            clauses.append(f"path NOT IN ({', '.join(sql_str(p) for p in exclude)})")
        return " AND ".join(clauses) or None

    def mask(self, rows: pa.Table) -> np.ndarray | None:
        """`where` evaluated over a snapshot's columns (same byte-wise comparisons, and a
        missing capture time matches no date bound, as NULL does in SQL)."""
        import pyarrow.compute as pc

        keep = []
        path = rows["path"]
        if self.within:
            inside = []
            for w in (normalize(w) for w in self.within):
                base = w.rstrip("/")
                below = pc.and_(pc.greater_equal(path, base + "/"), pc.less(path, base + "0"))
                inside.append(pc.or_(pc.equal(path, w), below))
            keep.append(functools.reduce(pc.or_, inside))
        if self.kinds:
            keep.append(pc.is_in(rows["kind"], _strings(self.kinds)))
        if self.exts:
            exts = sorted({"." + e.lower().lstrip(".") for e in self.exts})
            keep.append(pc.is_in(rows["ext"], _strings(exts)))
        if self.after is not None:
            keep.append(pc.greater_equal(rows["taken"], self.after))
        if self.before is not None:
            keep.append(pc.less(rows["taken"], self.before))
        if not keep:
            return None
        both = functools.reduce(pc.and_, keep)
        return both.fill_null(False).to_numpy(zero_copy_only=False)


def _strings(values: Sequence[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def search(
    settings: Settings,
    parts: Sequence[Part],
    *,
    top: int = 10,
    filters: Filters = Filters(),
    moments: bool = False,
    mode: str = "auto",
) -> list[Hit]:
    """The items closest to the composed query: each part embedded and L2-normalised, scaled
    by its weight, summed, normalised again. Query images never answer themselves.

    `mode`: "vector" ranks every item by cosine similarity; "text" ranks passages by
    full-text search (BM25); "hybrid" ranks pictures and passages as separate lists, adds
    full-text search, and fuses the three by reciprocal rank, so that CLIP's high
    text-to-text similarities cannot bury a well matching photo. "auto" is hybrid when the
    query has words and the index has passages, else vector.
    """
    words = " ".join(p.words for p in parts if p.kind == "text" and p.weight > 0)
    if mode in ("text", "hybrid") and not words:
        raise UsageError(f"--mode {mode} needs words in the query")
    exclude = sorted({p.value for p in parts if p.kind == "image"})
    ranked = _from_snapshot(settings, parts, mode, words, filters)
    if ranked is None:
        with phase("open index"):
            from mmsearch.store import open_collection

            coll = open_collection(settings)
        if mode == "auto":
            mode = "hybrid" if words and coll.has_text() else "vector"
        vector = compose(settings, coll, parts) if mode != "text" else None
        where = filters.where(exclude)

        def ranked(limit: int) -> tuple[list[dict[str, Any]], int]:
            return _ranked(coll, mode, vector, words, limit, where)

    terms = [t.lower() for t in re.findall(r"\w+", words)]
    limit = max(top * 2, top + 8)
    while True:
        with phase("search"):
            rows, fetched = ranked(limit)
        if filters.min_score is not None:
            rows = [r for r in rows if _score(r) >= filters.min_score]
        hits = group(rows, moments, terms)
        if len(hits) >= top or fetched < limit:
            return hits[:top]
        limit *= 4


def search_text(
    settings: Settings,
    text: str,
    *,
    top: int = 10,
    filters: Filters = Filters(),
    moments: bool = False,
) -> list[Hit]:
    """The indexed items that best match `text`."""
    return search(settings, [Part("text", text, 1.0)], top=top, filters=filters, moments=moments)


def search_image(
    settings: Settings,
    image: str,
    *,
    at: float | None = None,
    top: int = 10,
    filters: Filters = Filters(),
    moments: bool = False,
) -> list[Hit]:
    """The indexed items most like the image file `image`, or the frame at `at` seconds of a
    video; the query file itself is never among them."""
    part = Part("image", normalize(image), 1.0, at)
    return search(settings, [part], top=top, filters=filters, moments=moments)


def _from_snapshot(
    settings: Settings, parts: Sequence[Part], mode: str, words: str, filters: Filters
) -> Callable[[int], tuple[list[dict[str, Any]], int]] | None:
    """A ranking served by the search snapshot, when it is current and the query needs
    nothing else (no full-text search, no query file that is itself indexed: its stored
    vector and its exclusion need LanceDB); None sends it to LanceDB."""
    if mode not in ("auto", "vector"):
        return None
    from mmsearch.snapshot import open_fresh

    with phase("open index"):
        snap = open_fresh(settings.db, settings.model_key)
    if snap is None or (mode == "auto" and words and snap.has_text):
        return None
    if any(p.kind == "image" and snap.holds(p.value) for p in parts):
        return None
    vector = compose(settings, None, parts)
    mask = filters.mask(snap.rows)

    def ranked(limit: int) -> tuple[list[dict[str, Any]], int]:
        rows = snap.search(vector, limit, mask)
        return rows, len(rows)

    return ranked


def compose(settings: Settings, coll: Collection | None, parts: Sequence[Part]) -> np.ndarray:
    texts = [p for p in parts if p.kind == "text"]
    vectors: dict[int, np.ndarray] = {}
    if texts:
        from mmsearch.query_cache import text_vectors

        embedded = text_vectors(settings, [p.value for p in texts], _text_embedder(settings))
        vectors.update({id(p): v for p, v in zip(texts, embedded, strict=True)})
    for p in parts:
        if p.kind == "image":
            vectors[id(p)] = _image_vector(settings, coll, p)
    total = sum(p.weight * _unit(vectors[id(p)]) for p in parts)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query's parts cancel each other out")
    return (total / norm).astype(np.float32)


def _text_embedder(settings: Settings) -> Callable[[list[str]], np.ndarray]:
    def embed(texts: list[str]) -> np.ndarray:
        from mmsearch.embed import load_embedder

        with phase("model load"):
            embedder = load_embedder(settings)
        with phase("encode"):
            return embedder.embed_texts(texts)

    return embed


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _image_vector(settings: Settings, coll: Collection | None, part: Part) -> np.ndarray:
    path = part.value
    is_video = kind_of(path) == "video"
    if is_video and part.at is None:
        raise UsageError(f"{path} is a video: pass --at SECONDS to choose the frame to match")
    if part.at is not None and not is_video:
        raise UsageError("--at picks a moment of a video; the query is not a video")
    try:
        st = os.stat(path)
        if part.at is not None:
            from mmsearch.extract.video import frame_at

            at = part.at
            return _embed_picture(settings, path, lambda size: frame_at(path, at, size))
        stored = coll.stored_vector(path, st.st_size, st.st_mtime_ns) if coll else None
        if stored is not None:
            return stored
        from mmsearch.extract.image import load_image

        with open(path, "rb") as f:
            data = f.read()
        return _embed_picture(settings, path, lambda size: load_image(data, size))
    except OSError as e:
        raise MmsearchError(f"cannot read {path}: {e.strerror or e}") from None


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


RRF_K = 60  # reciprocal rank fusion's damping constant (the usual value)


def _ranked(
    coll: Collection,
    mode: str,
    vector: np.ndarray | None,
    words: str,
    limit: int,
    where: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """Rows best first with their `score`, and the length of the longest list fetched (when
    shorter than `limit`, the index has nothing more to give)."""
    if mode == "text":
        rows = coll.text_search(words, limit, where)
        return rows, len(rows)
    assert vector is not None
    if mode == "vector":
        rows = coll.search(vector, limit, where)
        return rows, len(rows)
    both = f"({where}) AND " if where else ""
    lists = [
        coll.search(vector, limit, both + "text IS NULL"),  # pictures: photos, frames, pages
        coll.search(vector, limit, both + "text IS NOT NULL"),  # passages, by meaning
        coll.text_search(words, limit, where),  # passages, by their words
    ]
    return fuse(lists), max(len(rows) for rows in lists)


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
            hits.append(Hit(path, r["kind"], _score(r), page=r["page"], snippet=snippet))
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


def _score(row: dict[str, Any]) -> float:
    return round(float(row["score"]), 6)
