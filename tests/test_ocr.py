"""The OCR pass: words in screenshots, scans and video frames reach full-text search."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from helpers import env_settings, ffmpeg, file_rows, make_pdf, query_json, run
from PIL import Image, ImageDraw, ImageFont
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

    def broken(image: Image.Image) -> str:
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(mmsearch.indexing.ocr, "read_words", broken)
    stderr = index(mixed)
    assert "2 failed" in stderr
    assert file_rows()[str(mixed / "error.png")]["ocr"].startswith("error: RuntimeError")


def test_the_selector_skips_real_photos() -> None:
    from mmsearch.indexing.ocr import looks_like_text

    photos = (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "hubble_deep_field",
        "camera",
        "coins",
        "moon",
        "immunohistochemistry",
        "logo",
        "retina",
        "colorwheel",
    )
    assert [n for n in photos if looks_like_text(Image.fromarray(getattr(data, n)()))] == []


def test_the_selector_reads_scans_and_screens() -> None:
    from mmsearch.indexing.ocr import looks_like_text

    assert looks_like_text(Image.fromarray(data.page()))  # a real scanned page
    assert looks_like_text(render_screen("light mode error"))
    assert looks_like_text(render_screen("dark mode error", dark=True))


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
