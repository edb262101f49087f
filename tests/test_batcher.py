"""The embedding batcher: full batches across files, files released in order when complete."""

from __future__ import annotations

import weakref

import numpy as np

from mmsearch.indexing.pipeline import Batcher, Frame, Pixels
from mmsearch.indexing.scan import FileEntry


class RecordingModel:
    """Stands in for the model: records batch sizes, returns one vector per input."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed_images(self, pixels: list[float]) -> np.ndarray:
        self.batches.append(len(pixels))
        return np.array([[p] for p in pixels], dtype=np.float32)


def pixels(name: str, n: int, start: float = 0) -> Pixels:
    frames = [Frame(float(i), float(i + 1), None, None, start + i) for i in range(n)]
    return Pixels(FileEntry(name, 1, 1, "video"), name, frames)


def test_frames_of_different_files_share_full_batches() -> None:
    model, done = RecordingModel(), []
    batcher = Batcher(lambda: model, 4, lambda p, v: done.append((p.entry.path, v)))
    for name, n in (("a", 3), ("b", 1), ("c", 6)):
        batcher.add(pixels(name, n))
    batcher.finish()
    assert model.batches == [4, 4, 2]
    assert [name for name, _ in done] == ["a", "b", "c"]


def test_each_file_gets_its_own_vectors_in_frame_order() -> None:
    model, done = RecordingModel(), {}
    batcher = Batcher(lambda: model, 3, lambda p, v: done.update({p.entry.path: v}))
    batcher.add(pixels("a", 2, start=10))
    batcher.add(pixels("b", 3, start=20))
    batcher.finish()
    assert [float(v[0]) for v in done["a"]] == [10, 11]
    assert [float(v[0]) for v in done["b"]] == [20, 21, 22]


def test_a_file_is_released_only_when_all_its_frames_are_embedded() -> None:
    model, done = RecordingModel(), []
    batcher = Batcher(lambda: model, 4, lambda p, v: done.append(p.entry.path))
    batcher.add(pixels("long", 6))
    assert done == []  # 4 of 6 frames embedded so far
    batcher.finish()
    assert done == ["long"]


def test_a_queued_file_keeps_no_more_than_a_batch_of_its_pixels_alive() -> None:
    """The pipeline's byte budget gives a file's bytes back once the batcher has it: the
    batcher must then hold only the frames not embedded yet, not the whole file's pixels."""

    class Model:
        def embed_images(self, pixels: list[np.ndarray]) -> np.ndarray:
            return np.stack([p[:1] for p in pixels])

    alive: list[weakref.ref[np.ndarray]] = []

    def frame(i: int) -> Frame:
        px = np.full(1000, i, dtype=np.float32)
        alive.append(weakref.ref(px))
        return Frame(float(i), None, None, None, px)

    model = Model()
    batcher = Batcher(lambda: model, 4, lambda p, v: None)
    batcher.add(Pixels(FileEntry("long", 1, 1, "video"), "long", [frame(i) for i in range(10)]))
    assert sum(r() is not None for r in alive) == 2  # 8 of 10 embedded, 2 wait for a batch
    batcher.finish()
    assert all(r() is None for r in alive)
