"""`mmsearch dupes`: near-duplicate groups from generated copies of real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ffmpeg, make_video, run
from PIL import Image
from skimage import data

THRESHOLD = "0.99"  # the tiny test model puts distinct photos below 0.985, copies above 0.995


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir()
    cat = Image.fromarray(data.chelsea())
    cat.save(folder / "cat.jpg", quality=95)
    cat.resize((cat.width // 2, cat.height // 2)).save(folder / "cat small.jpg")
    cat.save(folder / "cat low quality.jpg", quality=40)
    w, h = cat.size
    cat.crop((w // 25, h // 25, w - w // 25, h - h // 25)).save(folder / "cat cropped.png")
    rocket = Image.fromarray(data.rocket())
    rocket.save(folder / "rocket.jpg")
    rocket.resize((rocket.width // 3, rocket.height // 3)).save(folder / "rocket thumb.png")
    for name in ("astronaut", "coffee", "hubble_deep_field"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg")
    assert run("index", "-q", str(folder)).exit_code == 0
    return folder


def groups(*args: str) -> list[dict]:
    result = run("dupes", *args, "--threshold", THRESHOLD, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_copies_group_together_and_distinct_photos_stay_out(library: Path) -> None:
    found = [sorted(Path(f["path"]).name for f in g["files"]) for g in groups()]
    assert found == [
        ["cat cropped.png", "cat low quality.jpg", "cat small.jpg", "cat.jpg"],
        ["rocket thumb.png", "rocket.jpg"],
    ]


def test_the_best_copy_comes_first_most_pixels_then_most_bytes(library: Path) -> None:
    """Not the quality-40 re-encode, the crop or the half-size copy: the original."""
    firsts = [Path(g["files"][0]["path"]).name for g in groups()]
    assert firsts == ["cat.jpg", "rocket.jpg"]


def test_groups_come_biggest_first_with_sizes(library: Path) -> None:
    assert [g["size"] for g in groups()] == [4, 2]


def test_dupes_limited_to_a_subtree(library: Path) -> None:
    sub = library / "sub"
    sub.mkdir()
    (library / "rocket thumb.png").rename(sub / "rocket thumb.png")
    (library / "rocket.jpg").rename(sub / "rocket.jpg")
    run("index", "-q", str(library))
    assert [g["size"] for g in groups(str(sub))] == [2]


def test_a_video_frame_that_matches_a_photo_joins_its_group(library: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", sources=("testsrc2", "smptebars"), seconds=2)
    ffmpeg("-ss", "3", "-i", str(src), "-frames:v", "1", str(library / "bars.png"))
    (library / "clip.mp4").write_bytes(src.read_bytes())
    run("index", "-q", str(library))
    kinds = [
        sorted(f["kind"] for f in g["files"])
        for g in groups()
        if any(Path(f["path"]).name == "bars.png" for f in g["files"])
    ]
    assert kinds == [["image", "video"]]


def test_text_output_lists_each_group(library: Path) -> None:
    out = run("dupes", "--threshold", THRESHOLD).stdout
    assert out.startswith("group 1: 4 files\n")
    assert "group 2: 2 files" in out


def test_text_output_shows_paths_under_home_with_a_tilde(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(library.parent))
    out = run("dupes", "--threshold", THRESHOLD).stdout
    assert f"  ~/{library.name}/" in out and str(library) not in out
