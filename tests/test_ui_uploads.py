"""Uploaded pictures are kept only while recent: the cache holds the most recently used ones
and removes the rest, so searching by many pictures never fills the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from mmsearch.doors.ui.app import _prune


def test_only_the_most_recently_used_uploads_are_kept(tmp_path: Path) -> None:
    for i in range(5):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"x")
        os.utime(path, (1e9 + i, 1e9 + i))
    os.utime(tmp_path / "0.png")  # used again just now
    _prune(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "3.png", "4.png"]
