"""Filters run inside the store query: -n N gives N results whenever N items match."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from helpers import make_image, make_video, query_json, run
from PIL import Image


def with_capture_time(path: Path, when: str) -> Path:
    img = Image.open(path).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when  # DateTimeOriginal
    img.save(path, exif=exif)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    for i in range(20):
        make_image(folder / f"p{i:02d}.png", seed=i)
    for i in range(3):
        make_image(folder / f"j{i}.jpg", seed=100 + i)
    make_video(folder / "clip.mp4", seconds=2)
    assert run("index", "-q", str(folder)).exit_code == 0
    return folder


def test_type_keeps_one_kind(mixed: Path) -> None:
    results = query_json("x", "--type", "video", "-n", "50")
    assert [r["path"] for r in results] == [str(mixed / "clip.mp4")]


def test_type_takes_several_kinds(mixed: Path) -> None:
    kinds = {r["kind"] for r in query_json("x", "--type", "image,video", "-n", "50")}
    assert kinds == {"image", "video"}


def test_ext_filter_fills_top_n_from_matching_files(mixed: Path) -> None:
    results = query_json("x", "--ext", "jpg", "-n", "3")
    assert sorted(r["path"] for r in results) == [str(mixed / f"j{i}.jpg") for i in range(3)]


def test_ext_is_case_insensitive_and_takes_a_dot(mixed: Path) -> None:
    (mixed / "j0.jpg").rename(mixed / "UPPER.JPG")
    run("index", "-q", str(mixed))
    paths = {r["path"] for r in query_json("x", "--ext", ".jpg", "-n", "50")}
    assert str(mixed / "UPPER.JPG") in paths and len(paths) == 3


def test_in_with_n_is_a_prefilter(mixed: Path) -> None:
    sub = mixed / "sub"
    sub.mkdir()
    shutil.move(mixed / "p19.png", sub / "p19.png")
    run("index", "-q", str(mixed))
    assert [r["path"] for r in query_json("x", "--in", str(sub), "-n", "1")] == [
        str(sub / "p19.png")
    ]


def test_after_and_before_use_the_exif_capture_time(tmp_path: Path) -> None:
    folder = tmp_path / "dated"
    old = with_capture_time(make_image(folder / "old.jpg", seed=1), "2019:07:01 10:00:00")
    new = with_capture_time(make_image(folder / "new.jpg", seed=2), "2024:07:01 10:00:00")
    run("index", "-q", str(folder))
    assert [r["path"] for r in query_json("x", "--after", "2024")] == [str(new)]
    assert [r["path"] for r in query_json("x", "--before", "2020-01-01")] == [str(old)]
    both = query_json("x", "--after", "2019-06", "--before", "2024-07-02")
    assert len(both) == 2


def test_without_exif_the_file_time_counts(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    image = make_image(folder / "a.png", seed=1)
    stamp = datetime(2015, 3, 1, 12, 0).timestamp()
    os.utime(image, (stamp, stamp))
    run("index", "-q", str(folder))
    assert len(query_json("x", "--before", "2016")) == 1
    assert query_json("x", "--after", "2016") == []


def test_a_bad_date_is_a_usage_error(mixed: Path) -> None:
    result = run("query", "x", "--after", "last week")
    assert result.exit_code == 2 and "--after" in result.stderr
