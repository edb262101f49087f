"""Recent text-query vectors on disk: asking again skips loading the model altogether."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mmsearch.core.config import Settings, cache_root
from mmsearch.core.private import private_cache

KEEP = 1000  # vectors per model; the least recently used go first ...
PRUNE_TO = 0.9  # ... a tenth at a time: sorting them by age costs a stat each (5 ms for 1000)


def _folder(settings: Settings) -> Path:
    return cache_root() / "queries" / settings.model_key


def text_vectors(
    settings: Settings, texts: Sequence[str], embed: Callable[[list[str]], np.ndarray]
) -> list[np.ndarray]:
    """One vector per text, from the cache where it has one, else from `embed` (then kept)."""
    folder = _folder(settings)
    files = [folder / (hashlib.sha1(t.encode()).hexdigest() + ".npy") for t in texts]
    found: dict[int, np.ndarray] = {}
    for i, f in enumerate(files):
        try:
            found[i] = np.load(f)
            os.utime(f)  # recently used
        except (OSError, ValueError):
            pass
    missing = [i for i in range(len(texts)) if i not in found]
    if missing:
        fresh = embed([texts[i] for i in missing])
        for i, vector in zip(missing, fresh, strict=True):
            found[i] = vector
            _keep(folder, files[i], vector)
    return [found[i] for i in range(len(texts))]


def _keep(folder: Path, path: Path, vector: np.ndarray) -> None:
    try:
        private_cache("queries", folder.name)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            np.save(f, vector.astype(np.float32))
        os.replace(tmp, path)
        entries = list(os.scandir(folder))
        if len(entries) > KEEP:
            entries.sort(key=lambda e: e.stat().st_mtime_ns)
            for e in entries[: len(entries) - int(KEEP * PRUNE_TO)]:
                os.unlink(e.path)
    except OSError:
        pass  # a cache: failing to keep a vector costs only the next query's time


def reference_vectors(settings: Settings, embed: Callable[[], np.ndarray]) -> np.ndarray:
    """The model's vectors of the probe pictures (model.onnx_export.probe_pictures), kept
    beside its query vectors: made once per model."""
    folder = _folder(settings)
    path = folder / "reference-pictures.npy"
    try:
        return np.load(path)
    except (OSError, ValueError):
        vectors = embed().astype(np.float32)
        _keep(folder, path, vectors)
        return vectors
