"""The OCR pass: words in screenshots, scans and video frames reach full-text search."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from helpers import env_settings, ffmpeg, file_rows, item_rows, make_pdf, query_json, run
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data

pytest.importorskip("rapidocr")


def render_screen(
    words: str, size: tuple[int, int] = (900, 260), dark: bool = False
) -> Image.Image:
    """Text on a plain window, as in a screenshot of an error message (light or dark mode)."""
    background, ink = ((30, 30, 30), (225, 225, 225)) if dark else ((245, 245, 245), (20, 20, 20))
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, size[0], 30], fill=(60, 60, 90))
    draw.text((30, 90), words, fill=ink, font=ImageFont.load_default(size=44))
    return img


def screenshot(path: Path, words: str, size: tuple[int, int] = (900, 260)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_screen(words, size).save(path)
    return path


def index(folder: Path, *args: str) -> str:
    result = run("index", *args, str(folder))
    assert result.exit_code == 0, result.stderr
    return result.stderr


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    screenshot(folder / "error.png", "Segfault in module flamingo")
    screenshot(folder / "receipt.png", "Invoice 4711 total 99.50")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(folder.joinpath(f"{name}.jpg"))
    return folder


def test_words_in_a_screenshot_are_found_by_a_word_query(mixed: Path) -> None:
    index(mixed)
    best = query_json("flamingo", "--mode", "text")[0]
    assert best["path"] == str(mixed / "error.png")
    assert "flamingo" in best["snippet"].lower()


def test_the_store_keeps_how_sure_the_engine_was_of_each_passage(mixed: Path) -> None:
    index(mixed)
    read = [r for r in item_rows(mixed / "error.png") if r["origin"] == "ocr"]
    assert read and all(0.8 <= r["confidence"] <= 1.0 for r in read)
    assert all(r["confidence"] is None for r in item_rows(mixed / "coffee.jpg"))


def test_lines_gather_into_passages_at_their_least_certain_lines_confidence() -> None:
    from mmsearch.indexing.extract.document import CHUNK_WORDS
    from mmsearch.indexing.ocr import passages

    assert list(passages([("EXIT", 0.97), ("Platform 4", 0.88)])) == [("EXIT Platform 4", 0.88)]
    long = " ".join(f"w{n}" for n in range(CHUNK_WORDS + 50))
    split = list(passages([("Title", 0.99), (long, 0.91), ("Footer", 0.85)]))
    assert split[0] == ("Title", 0.99) and split[-1] == ("Footer", 0.85)
    assert {sure for _, sure in split[1:-1]} == {0.91} and len(split) == 4


def test_hybrid_queries_find_screenshots_by_their_words(mixed: Path) -> None:
    index(mixed)
    assert query_json("invoice 4711")[0]["path"] == str(mixed / "receipt.png")


def test_the_selector_reads_screenshots_and_skips_photos(mixed: Path) -> None:
    stderr = index(mixed)
    assert "OCR: words in 2 files, none in 0, 3 skipped, 0 failed" in stderr
    status = json.loads(run("status", "--json").stdout)
    assert status["ocr"] == {"text": 2, "skipped": 3}


def test_a_renamed_screenshot_keeps_its_words_and_is_not_read_again(mixed: Path) -> None:
    index(mixed)
    (mixed / "error.png").rename(mixed / "renamed.png")
    stderr = index(mixed)
    assert "1 reused" in stderr and "OCR:" not in stderr  # nothing left for the pass to read
    assert query_json("flamingo", "--mode", "text")[0]["path"] == str(mixed / "renamed.png")
    assert "pending" not in json.loads(run("status", "--json").stdout)["ocr"]


def test_always_reads_every_picture(mixed: Path) -> None:
    stderr = index(mixed, "--ocr", "always")
    assert "0 skipped" in stderr


def test_never_leaves_pictures_unread_and_a_later_run_resumes(mixed: Path) -> None:
    index(mixed, "--ocr", "never")
    assert json.loads(run("status", "--json").stdout)["ocr"] == {"pending": 5}
    assert query_json("flamingo", "--mode", "text") == []
    stderr = index(mixed)
    assert "0 new, 0 updated, 0 reused, 5 unchanged" in stderr
    assert query_json("flamingo", "--mode", "text")[0]["path"] == str(mixed / "error.png")


class Labels:
    """A progress that remembers each phase it was started with, and for how many files."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}

    def start(self, total: int, label: str = "indexing") -> None:
        self.started[label] = total

    def advance(self, n: int = 1, embedded: bool = False) -> None:
        pass

    def step(self, label: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def test_photos_are_judged_while_decoded_and_the_ocr_pass_opens_only_the_screenshots(
    mixed: Path,
) -> None:
    from mmsearch.indexing.index import index_paths

    progress = Labels()
    report = index_paths(env_settings(), [str(mixed)], progress=progress)
    assert progress.started == {"indexing": 5, "reading words": 2}
    assert (report.ocr.text, report.ocr.skipped) == (2, 3)
    outcomes = {Path(p).name: r["ocr"] for p, r in file_rows().items()}
    assert outcomes["chelsea.jpg"] == "skipped" and outcomes["error.png"] == "text"


def test_blank_pdf_pages_without_a_text_layer_are_not_read(tmp_path: Path) -> None:
    make_pdf(tmp_path / "docs" / "dividers.pdf", ["", "", "", ""])
    index(tmp_path / "docs")
    assert json.loads(run("status", "--json").stdout)["ocr"] == {"skipped": 1}


def test_a_scanned_pdf_page_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    scan = screenshot(tmp_path / "scan.png", "Letter from the harbourmaster", (1000, 300))
    make_pdf(
        folder / "letter.pdf", ["A typed first page about nothing much.", ""], images={2: scan}
    )
    index(folder)
    best = query_json("harbourmaster", "--mode", "text")[0]
    assert (best["path"], best["page"]) == (str(folder / "letter.pdf"), 2)


def test_words_in_video_frames_are_read_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "video"
    folder.mkdir()
    slide = screenshot(tmp_path / "slide.png", "Quarterly review penguin")
    ffmpeg(
        "-loop",
        "1",
        "-i",
        str(slide),
        "-t",
        "2",
        "-r",
        "5",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(folder / "talk.mp4"),
    )
    index(folder)
    assert query_json("penguin", "--mode", "text") == []  # off by default
    (folder / "talk.mp4").touch()
    index(folder, "--ocr-video", "3")
    best = query_json("penguin", "--mode", "text")[0]
    assert (best["path"], best["t"]) == (str(folder / "talk.mp4"), 0.0)


def test_an_ocr_engine_failure_is_recorded_and_the_run_goes_on(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmsearch.indexing.ocr

    def broken(image: Image.Image) -> list[tuple[str, float]]:
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(mmsearch.indexing.ocr, "read_lines", broken)
    stderr = index(mixed)
    assert "2 failed" in stderr
    assert file_rows()[str(mixed / "error.png")]["ocr"].startswith("error: RuntimeError")


PHOTOS = (
    *("astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins"),
    *("colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry"),
    *("logo", "microaneurysms", "moon", "retina", "rocket"),
)  # every photograph scikit-image ships, none holding words


def photo(name: str) -> Image.Image:
    pixels = getattr(data, name)().astype("float32")  # the horse is a binary silhouette
    low, high = float(pixels.min()), float(pixels.max())
    pixels = 255 * (pixels - low) / max(high - low, 1e-9)
    return Image.fromarray(pixels.astype("uint8")).convert("RGB")


def variants(picture: Image.Image) -> list[Image.Image]:
    """The photo, mirrored, cropped and turned: what a camera roll holds of one scene."""
    w, h = picture.size
    cropped = picture.crop((w // 8, h // 8, w - w // 8, h - h // 8))
    return [picture, ImageOps.mirror(picture), cropped, picture.rotate(90, expand=True)]


def test_real_photos_are_not_worth_reading() -> None:
    """80 photos without words: at most 1 is sent to the OCR engine (today: none)."""
    from mmsearch.indexing.ocr import worth_reading

    read = [n for n in PHOTOS for v in variants(photo(n)) if worth_reading(v)]
    assert len(read) <= 1, read


def test_the_first_look_alone_keeps_real_photos_from_the_engines() -> None:
    """Plain photos (the moon, a clock, a silhouette, a logo) have no rows of print: at most
    2 of 80 photos get as far as the detector (today: a brick wall and a rocket at 512 px)."""
    from mmsearch.indexing.ocr import looks_like_text

    passed = [n for n in PHOTOS for v in variants(photo(n)) if looks_like_text(v)]
    assert len(passed) <= 2, passed


def test_the_detector_alone_turns_plain_photos_away() -> None:
    """Its boxes over a photo are square-ish and cover most of it, or are unsure."""
    from mmsearch.indexing.ocr import holds_text

    plain = ("moon", "horse", "clock", "cell", "logo", "retina", "rocket", "microaneurysms")
    assert [n for n in plain if holds_text(photo(n))] == []


def slide(title: str, background: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (1920, 1080), background)
    draw = ImageDraw.Draw(img)
    draw.text((120, 100), title, fill=(255, 255, 255), font=ImageFont.load_default(size=80))
    for row in range(4):
        words = f"- point {row + 1} about the travel costs"
        draw.text(
            (160, 320 + 110 * row),
            words,
            fill=(255, 255, 255),
            font=ImageFont.load_default(size=48),
        )
    return img


def scan(line: str) -> Image.Image:
    """A page of small print, grey and noisy, slightly turned: a phone's photo of a letter."""
    import numpy as np

    img = Image.new("L", (2480, 3508), 245)
    draw = ImageDraw.Draw(img)
    for row in range(40):
        draw.text((200, 250 + 75 * row), line, fill=30, font=ImageFont.load_default(size=40))
    noisy = np.asarray(img, dtype=np.float32) + np.random.default_rng(0).normal(0, 8, (3508, 2480))
    return Image.fromarray(noisy.clip(0, 255).astype("uint8")).rotate(1.2, fillcolor=245)


def test_scans_screens_and_slides_are_worth_reading() -> None:
    from mmsearch.indexing.ocr import worth_reading

    assert worth_reading(photo("page"))  # a real scanned page
    assert worth_reading(render_screen("light mode error"))
    assert worth_reading(render_screen("dark mode error", dark=True))
    assert worth_reading(slide("Budget review", (20, 50, 90)))  # white on dark blue
    assert worth_reading(scan("The tenant agrees to pay the rent on the first of each month."))


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("EXIT", True),
        ("Error in module kelvaro", True),
        ("图书馆", True),
        ("42 km", True),
        ("★女女", False),  # read off three yellow stars: a symbol and one stroke repeated
        ("|||", False),
        ("—~", False),
        ("aa", False),
    ],
)
def test_only_ocr_lines_that_read_as_words_are_kept(line: str, kept: bool) -> None:
    """Noise read off a photo would match queries as words do (ranking counts OCR passages
    as evidence): a line must be mostly letters or digits, with a word of two different
    characters."""
    from mmsearch.indexing.ocr import reads_as_words

    assert reads_as_words(line) is kept
