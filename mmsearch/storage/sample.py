"""The picture vectors a query's scores are calibrated on, near-copies once: shared by the
store and its snapshot (numpy alone, so the snapshot's fast path stays free of pyarrow)."""

from __future__ import annotations

import numpy as np


def distinct(vectors: np.ndarray) -> np.ndarray:
    """One of each set of (nearly) identical vectors, in their order: a document's text-only
    pages render alike, and fifty copies of one page would make a library look like it."""
    first: dict[bytes, int] = {}
    for i, key in enumerate(np.round(vectors, 2) + 0.0):  # + 0.0: -0.0 and 0.0 alike
        first.setdefault(key.tobytes(), i)
    return np.ascontiguousarray(vectors[list(first.values())])
