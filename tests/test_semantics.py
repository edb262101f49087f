"""What a search means, asserted with the scene model (a small CLIP trained on generated
scenes, tests/scene_model): captions find their scenes, composition moves along a word,
copies group as duplicates, a video and a PDF answer with the right moment and page."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers import ffmpeg, make_pdf, query_json, run
from PIL import Image
from scene_model.scenes import Scene, Thing, caption, render

pytestmark = pytest.mark.usefixtures("with_scene_model")

SCENES = {
    "red-circle": Scene("white", things=(Thing("circle", "red"),), size="large"),
    "blue-circle": Scene("white", things=(Thing("circle", "blue"),), size="large"),
    "blue-on-yellow": Scene("yellow", things=(Thing("circle", "blue"),), size="large"),
    "orange-square": Scene("blue", things=(Thing("square", "orange"),), size="large"),
    "stars": Scene("black", things=(Thing("star", "yellow"),), count=3),
    "triangle": Scene("green", "striped", (Thing("triangle", "white"),), position="left"),
    "stop": Scene("gray", words="stop", ink="red"),
    "pair": Scene("yellow", "dotted", (Thing("cross", "purple"), Thing("circle", "black"))),
}


def save(scene: Scene, path: Path, size: int = 192) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render(scene, size).save(path)
    return path


def index(folder: Path) -> None:
    result = run("index", "-q", "--ocr", "never", str(folder))
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    folder = tmp_path / "scenes"
    for name, scene in SCENES.items():
        save(scene, folder / f"{name}.png")
    index(folder)
    return folder


@pytest.mark.parametrize("name", SCENES)
def test_a_caption_finds_its_scene_first(scenes: Path, name: str) -> None:
    best = query_json(caption(SCENES[name]))[0]
    assert best["path"] == str(scenes / f"{name}.png")


def test_an_image_plus_blue_minus_red_moves_to_the_blue_version(scenes: Path) -> None:
    red = str(scenes / "red-circle.png")
    assert query_json(red)[0]["path"] != str(scenes / "blue-circle.png")  # not by itself
    assert query_json(red, "+", "blue", "-", "red")[0]["path"] == str(scenes / "blue-circle.png")


def reencoded(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_dupes_groups_resized_cropped_and_reencoded_copies_and_nothing_else(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "dupes"
    for name, scene in SCENES.items():
        save(scene, folder / f"{name}.png", size=256)
    stars = Image.open(folder / "stars.png")
    stars.resize((120, 120)).save(folder / "stars small.png")
    reencoded(stars, 35).save(folder / "stars low quality.jpg")
    # a crop that keeps the content (the stars reach the edges: cutting them changes the count)
    Image.open(folder / "orange-square.png").crop((10, 10, 246, 246)).save(
        folder / "square cut.png"
    )
    Image.open(folder / "pair.png").resize((300, 300)).save(folder / "pair large.jpg", quality=80)
    index(folder)
    result = run("dupes", "--json")
    assert result.exit_code == 0, result.stderr
    groups = [sorted(Path(f["path"]).name for f in g["files"]) for g in json.loads(result.stdout)]
    assert sorted(groups) == [
        ["orange-square.png", "square cut.png"],
        ["pair large.jpg", "pair.png"],
        ["stars low quality.jpg", "stars small.png", "stars.png"],
    ]


SEGMENT = 3  # seconds each scene is shown in the video


def scene_video(path: Path, scenes: list[Scene]) -> Path:
    """An H.264 video showing each scene for SEGMENT seconds, a keyframe every second."""
    inputs: list[str] = []
    for i, scene in enumerate(scenes):
        still = save(scene, path.parent / f"still{i}.png", size=160)
        inputs += ["-loop", "1", "-t", str(SEGMENT), "-r", "10", "-i", str(still)]
    joined = "".join(f"[{i}]" for i in range(len(scenes)))
    ffmpeg(
        *inputs, "-filter_complex", f"{joined}concat=n={len(scenes)}:v=1:a=0,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", str(path),
    )  # fmt: skip
    for i in range(len(scenes)):
        (path.parent / f"still{i}.png").unlink()
    return path


def test_a_video_of_captioned_scenes_answers_with_the_right_segment(tmp_path: Path) -> None:
    names = ["stars", "orange-square", "triangle", "blue-circle"]
    video = scene_video(tmp_path / "clips" / "scenes.mp4", [SCENES[n] for n in names])
    index(video.parent)
    for k, name in enumerate(names):
        best = query_json(caption(SCENES[name]))[0]
        assert best["path"] == str(video)
        assert k * SEGMENT <= best["t"] < (k + 1) * SEGMENT, name


def test_a_pdf_page_is_found_by_its_look(tmp_path: Path) -> None:
    pictures = {
        page: save(SCENES[name], tmp_path / f"{name}.png")
        for page, name in ((1, "stop"), (2, "stars"), (3, "orange-square"))
    }
    pdf = make_pdf(tmp_path / "docs" / "slides.pdf", ["Notes"] * 3, images=pictures)
    save(SCENES["red-circle"], tmp_path / "docs" / "photo.png")
    index(pdf.parent)
    for page, name in ((2, "stars"), (3, "orange-square")):
        best = query_json(caption(SCENES[name]))[0]
        assert (best["path"], best["page"]) == (str(pdf), page)
