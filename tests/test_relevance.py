"""Ranking end to end, in the default mode: a word only one item holds puts that item's file
first, at the page that holds it, quoting it; exact words beat their stemmed variants; CJK
text is searchable; a minimum score stops the fetching; a date sort keeps the top hits."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from helpers import make_image, make_pdf, query_json, run
from PIL import Image, ImageDraw, ImageFont
from skimage import data

FILLER = "An ordinary page about gardens, rain and the history of bridges in the old town. " * 3
SYLLABLES = [c + v for c in "bdfgkmnprstvz" for v in "aeu"]


def distinctive_words(n: int, seed: int = 7) -> list[str]:
    """Made-up words of three or four syllables: each occurs in exactly one item."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((3, 4)))))
    return sorted(words)


def index(folder: Path) -> None:
    result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr


def screenshot(path: Path, words: str) -> None:
    img = Image.new("RGB", (900, 260), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 900, 30], fill=(60, 60, 90))
    draw.text((30, 90), words, fill=(20, 20, 20), font=ImageFont.load_default(size=44))
    img.save(path)


@pytest.fixture
def distinctive(tmp_path: Path) -> tuple[Path, dict[str, tuple[str, int | None]]]:
    """50 words, each in one item: PDF pages, DOCX, text, Markdown, HTML and (with OCR
    installed) screenshots; photos and filler documents around them. Maps each word to its
    file and page."""
    import docx

    ocr = _has_ocr()
    folder = tmp_path / "corpus"
    folder.mkdir()
    words = iter(distinctive_words(50))
    where: dict[str, tuple[str, int | None]] = {}
    for p in range(3):  # 3 PDFs x 5 pages: one word per page, the same filler on every page
        pages = [next(words) for _ in range(5)]
        path = folder / f"report {p}.pdf"
        make_pdf(path, [f"{FILLER} The {w} was noted. {FILLER}" for w in pages])
        where.update({w: (str(path), n) for n, w in enumerate(pages, 1)})
    for i in range(15 if ocr else 20):
        w = next(words)
        document = docx.Document()
        document.add_paragraph(FILLER)
        document.add_paragraph(f"Minutes: the {w} budget was approved.")
        document.save(folder / f"minutes {i}.docx")
        where[w] = (str(folder / f"minutes {i}.docx"), None)
    for i in range(5):
        for ext, body in (
            (".txt", "{filler} Remember the {w}. {filler}"),
            (".md", "# Notes\n\n{filler}\n\n* the *{w}* item\n"),
            (".html", "<html><body><p>{filler}</p><p>A {w} recipe.</p></body></html>"),
        ):
            w = next(words)
            path = folder / f"note {i}{ext}"
            path.write_text(body.format(filler=FILLER, w=w))
            where[w] = (str(path), None)
    if ocr:
        for i in range(5):
            w = next(words)
            screenshot(folder / f"screen {i}.png", f"Error in module {w}")
            where[w] = (str(folder / f"screen {i}.png"), None)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg")
    make_pdf(folder / "filler.pdf", [FILLER] * 4)
    assert len(where) == 50
    index(folder)
    return folder, where


def _has_ocr() -> bool:
    try:
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(900)  # 50 queries over a corpus of every kind: minutes on a busy machine
def test_a_word_only_one_item_holds_puts_its_file_first_at_its_page_quoting_it(
    distinctive: tuple[Path, dict[str, tuple[str, int | None]]],
) -> None:
    _, where = distinctive
    wrong = []
    for word, (path, page) in where.items():
        best = query_json(word, "-n", "3")[0]
        if (best["path"], best["page"]) != (path, page) or word not in (best["snippet"] or ""):
            wrong.append((word, path, page, best["path"], best["page"], best["snippet"]))
    assert wrong == [], "\n".join(map(str, wrong))


def test_an_exact_word_beats_its_stemmed_variants(tmp_path: Path) -> None:
    folder = tmp_path / "stats"
    make_pdf(
        folder / "variants.pdf",
        [f"{FILLER} homogeneous groups, homogeneous samples, homogeneous soil." for _ in range(3)],
    )
    (folder / "exact.txt").write_text(f"{FILLER} We assume homogeneity of variance.")
    index(folder)
    for mode in ("auto", "text"):
        assert query_json("homogeneity", "--mode", mode)[0]["path"] == str(folder / "exact.txt")


CJK = {
    "zh": ("我们今天去北京大学参观了新的图书馆。", "人工智能正在改变世界的每一个角落。", "图书馆"),
    "ja": (
        "東京の図書館で新しい本を借りました。",
        "機械学習のモデルを訓練するのは楽しい。",
        "図書館",
    ),
    "ko": ("서울 도서관에서 책을 빌렸습니다.", "인공지능이 세상을 바꾸고 있습니다.", "도서관"),
}


@pytest.mark.parametrize("language", list(CJK))
def test_cjk_passages_are_found_by_their_words(tmp_path: Path, language: str) -> None:
    hit, miss, word = CJK[language]
    folder = tmp_path / language
    folder.mkdir()
    (folder / "hit.txt").write_text(hit)
    (folder / "miss.txt").write_text(miss)
    make_image(folder / "photo.png", seed=2)
    index(folder)
    found = query_json(word)
    assert found[0]["path"] == str(folder / "hit.txt")
    assert word in found[0]["snippet"]
    assert [r["path"] for r in query_json(word, "--mode", "text")] == [str(folder / "hit.txt")]


def test_a_minimum_score_above_every_score_stops_fetching_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmsearch.query.search

    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(120):
        (folder / f"n{i}.txt").write_text(f"Note {i} about the garden and the rain.")
    index(folder)
    fetches: list[int] = []
    real = mmsearch.query.search.group

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        fetches.append(1)  # hits are grouped once per fetch
        return real(*args, **kwargs)

    monkeypatch.setattr(mmsearch.query.search, "group", counted)
    for mode in ("auto", "vector", "text"):
        fetches.clear()
        assert query_json("garden", "--mode", mode, "--min-score", "2") == []
        assert len(fetches) == 1, mode  # the first fetch only


def test_sort_by_date_orders_the_top_hits_by_capture_time(photos: Path) -> None:
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    for i, p in enumerate(files):
        os.utime(p, (1_600_000_000 + 86_400 * ((i * 5) % len(files)),) * 2)
    index(photos)
    top = query_json("x", "-n", "4")
    by_date = query_json("x", "-n", "4", "--sort", "date")
    newest = query_json("x", "-n", "4", "--sort", "-date")
    assert {r["path"] for r in by_date} == {r["path"] for r in top}
    assert [r["taken"] for r in by_date] == sorted(r["taken"] for r in top)
    assert [r["path"] for r in newest] == [r["path"] for r in reversed(by_date)]


def test_an_unknown_sort_is_a_usage_error() -> None:
    result = run("query", "x", "--sort", "size")
    assert result.exit_code == 2 and "score, date, -date" in result.stderr
