"""Recent text-query vectors are kept on disk: asking again loads no model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from helpers import run

from mmsearch.core.config import Settings
from mmsearch.query import query_cache


def timed_query(text: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "mmsearch", "query", text],
        capture_output=True,
        text=True,
        env={**os.environ, "MMSEARCH_TIMINGS": "1", "MMSEARCH_NO_SERVER": "1"},
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("timings: "))
    return json.loads(line.removeprefix("timings: "))


def test_asking_again_loads_no_model(photos: Path) -> None:
    run("index", "-q", str(photos))
    text = f"a cat on a sofa {uuid.uuid4()}"  # the cache is shared by the whole session
    assert "model load" in timed_query(text)
    assert "model load" not in timed_query(text)


def test_cached_vectors_equal_fresh_ones(tiny_model: str) -> None:
    from mmsearch.model.embed import load_embedder

    settings = Settings(db="/unused", model=tiny_model)
    embed = load_embedder(settings).embed_texts
    first = query_cache.text_vectors(settings, ["one", "two"], embed)
    again = query_cache.text_vectors(settings, ["two", "one"], lambda t: 1 / 0)
    assert np.array_equal(first[0], again[1]) and np.array_equal(first[1], again[0])


def test_the_cache_keeps_the_most_recent_vectors_pruning_a_tenth_at_a_time(
    tiny_model: str, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(query_cache, "KEEP", 10)
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path))
    settings = Settings(db="/unused", model=tiny_model)
    folder, counts = query_cache._folder(settings), []
    for i in range(13):
        query_cache.text_vectors(settings, [f"q{i}"], lambda t: np.ones((len(t), 4), np.float32))
        kept = folder / (hashlib.sha1(f"q{i}".encode()).hexdigest() + ".npy")
        os.utime(kept, ns=(0, i * 10**9))  # used in this order, whatever the clock's grain
        counts.append(len(list(folder.iterdir())))
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 10, 9]
    left = {p.name for p in folder.iterdir()}
    assert left == {hashlib.sha1(f"q{i}".encode()).hexdigest() + ".npy" for i in range(4, 13)}
