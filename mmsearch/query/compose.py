"""The query vector: each part embedded (text through the query-vector cache, pictures
from their stored vector when indexed and unchanged), weighted, summed, normalised."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.core.config import Settings
from mmsearch.core.errors import ExtractError, MmsearchError, UsageError
from mmsearch.core.formats import kind_of
from mmsearch.core.timings import phase
from mmsearch.core.vocab import Kind
from mmsearch.indexing.reading import query_file, read_query_file
from mmsearch.query.grammar import Part

if TYPE_CHECKING:
    from PIL import Image

    from mmsearch.storage.store import Collection


def compose(settings: Settings, coll: Collection | None, parts: Sequence[Part]) -> np.ndarray:
    return compose_with_reach(settings, coll, parts)[0]


def compose_with_reach(
    settings: Settings, coll: Collection | None, parts: Sequence[Part]
) -> tuple[np.ndarray, float]:
    """The query vector, and how close it is to the nearest of its own pictures (1 for a
    picture alone, less when words move it): the most a result can be expected to reach."""
    vectors: dict[int, np.ndarray] = {}
    for p in parts:  # pictures first: a bad query file fails before any text is embedded
        if p.kind == "image":
            vectors[id(p)] = _image_vector(settings, coll, p)
    texts = [p for p in parts if p.kind == "text"]
    if texts:
        from mmsearch.query.query_cache import text_vectors

        embedded = text_vectors(settings, [p.value for p in texts], text_embedder(settings))
        vectors.update({id(p): v for p, v in zip(texts, embedded, strict=True)})
    total = sum(p.weight * _unit(vectors[id(p)]) for p in parts)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query's parts cancel each other out")
    vector = (total / norm).astype(np.float32)
    pictures = [_unit(vectors[id(p)]) for p in parts if p.kind == "image" and p.weight > 0]
    reach = max((float(vector @ v) for v in pictures), default=1.0)
    return vector, reach


def text_embedder(settings: Settings) -> Callable[[list[str]], np.ndarray]:
    def embed(texts: list[str]) -> np.ndarray:
        from mmsearch.model.embed import load_embedder

        with phase("model load"):
            embedder = load_embedder(settings)
        with phase("encode"):
            return embedder.embed_texts(texts)

    return embed


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _image_vector(settings: Settings, coll: Collection | None, part: Part) -> np.ndarray:
    path = part.value
    is_video = kind_of(path) == Kind.VIDEO
    if is_video and part.at is None:
        raise UsageError(f"{path} is a video: pass --at SECONDS to choose the frame to match")
    if part.at is not None and not is_video:
        raise UsageError("--at picks a moment of a video; the query is not a video")
    if kind_of(path) == Kind.DOCUMENT:
        raise MmsearchError(f"{path} is a document, not an image")
    st = query_file(path)  # a regular file within the size cap, or a one-line error
    if part.at is not None:
        from mmsearch.indexing.extract.video import frame_at

        at = part.at
        return _embed_picture(settings, path, lambda size: frame_at(path, at, size))
    stored = coll.stored_vector(path, st.st_size, st.st_mtime_ns) if coll else None
    if stored is not None:
        return stored
    from mmsearch.indexing.extract.image import load_image

    data = read_query_file(path)
    return _embed_picture(settings, path, lambda size: load_image(data, size, path))


def _embed_picture(
    settings: Settings, name: str, picture: Callable[[int], Image.Image]
) -> np.ndarray:
    from mmsearch.model.embed import load_embedder

    embedder = load_embedder(settings)
    pixels = embedder.preprocess(_decoded(name, lambda: picture(embedder.image_size)))
    return embedder.embed_images([pixels])[0]


DECODE_TIMEOUT = 30.0  # seconds to turn a query file into a picture


def _decoded(name: str, picture: Callable[[], Image.Image]) -> Image.Image:
    """`picture()`, or a one-line error when it fails or takes longer than DECODE_TIMEOUT
    (the decoder is left behind in a daemon thread: a query, or the server, moves on)."""
    outcome: list[Image.Image | BaseException] = []

    def decode() -> None:
        try:
            outcome.append(picture())
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=decode, name="mmsearch-query-decode", daemon=True)
    thread.start()
    thread.join(DECODE_TIMEOUT)
    if not outcome:
        raise MmsearchError(f"{name}: decoding took longer than {DECODE_TIMEOUT:g} s")
    result = outcome[0]
    if isinstance(result, ExtractError):
        raise MmsearchError(f"{name}: {result}") from None
    if isinstance(result, BaseException):
        raise result
    return result
