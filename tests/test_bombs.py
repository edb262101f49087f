"""Files that hold far more than they look cost what their limits allow, not what they say:
every part an office zip would have read is size-checked, an EPUB chapter the spine lists
again is read once, a document's identical passages are kept once and its passages stop at a
limit. Each is indexed beside a good picture, which is indexed too."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from format_corpus import epub
from helpers import env_settings, file_rows, item_paths, item_rows, make_image, run

from mmsearch.indexing.extract import office


def index(folder: Path) -> None:
    result = run("index", "-q", "--ocr", "never", str(folder))
    assert result.exit_code == 0, result.stderr


def passages(path: Path) -> list[str]:
    return [r["text"] for r in item_rows(path) if r["text"] is not None]


def test_an_office_part_past_the_limit_fails_that_file_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PPTX whose relationships part inflates past the limit (not an .xml name: the old
    check missed it) is refused before python-pptx reads it."""
    from pptx import Presentation

    monkeypatch.setattr(office, "MAX_PART", 1 << 20)
    folder = tmp_path / "lib"
    make_image(folder / "good.png", seed=1)
    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = "quarterly figures"
    buffer = io.BytesIO()
    deck.save(buffer)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ppt/slides/_rels/bomb.xml.rels", b"\0" * (2 << 20))  # 2 MiB, ~2 KiB packed
    (folder / "deck.pptx").write_bytes(buffer.getvalue())
    index(folder)
    rows = file_rows()
    assert rows[str(folder / "good.png")]["status"] == "ok"
    assert rows[str(folder / "deck.pptx")]["status"] == "error"
    assert "too large inside" in rows[str(folder / "deck.pptx")]["reason"]


def test_office_parts_past_the_limit_together_fail_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(office, "MAX_PARTS", 1 << 20)
    folder = tmp_path / "lib"
    chapters = ["word " * 60_000] * 4  # four parts of ~300 KiB each, more than 1 MiB in all
    (folder / "book.epub").parent.mkdir(parents=True)
    (folder / "book.epub").write_bytes(epub(chapters))
    index(folder)
    assert file_rows()[str(folder / "book.epub")]["status"] == "error"


def test_a_chapter_the_spine_lists_a_thousand_times_is_read_once(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    book = io.BytesIO(epub(["the only chapter says zarkovite"]))
    with zipfile.ZipFile(book) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    opf = parts["OEBPS/content.opf"].decode()
    parts["OEBPS/content.opf"] = opf.replace(
        '<itemref idref="c1"/>', '<itemref idref="c1"/>' * 1000
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    (folder / "looped.epub").write_bytes(out.getvalue())
    index(folder)
    assert file_rows()[str(folder / "looped.epub")]["status"] == "ok", file_rows()
    assert [r["page"] for r in item_rows(folder / "looped.epub")] == [1], item_paths()


def test_a_file_of_one_repeated_sentence_keeps_each_passage_once(tmp_path: Path) -> None:
    """A log that repeats one line: its passages repeat too, and one copy of each says all
    there is (a hundred thousand alike broke the store's vector index before)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "app-log.txt").write_text("the service restarted again\n" * 50_000)
    index(folder)
    found = passages(folder / "app-log.txt")
    assert 1 <= len(found) <= 4 and len(set(found)) == len(found)
    assert run("query", "restarted", "--json").exit_code == 0


def test_a_documents_passages_stop_at_the_limit(tmp_path: Path) -> None:
    from mmsearch import DocumentOptions, IndexOptions, Library

    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "long.txt").write_text(" ".join(f"word{n}" for n in range(5000)))
    options = IndexOptions(documents=DocumentOptions(max_passages=7), ocr="never")
    Library(env_settings(), ask_server=False).index([str(folder)], options)
    assert len(passages(folder / "long.txt")) == 7


def test_a_long_text_is_chunked_without_a_list_of_its_words() -> None:
    """Four million words: a list of them alone would take ~250 MB."""
    import tracemalloc

    from mmsearch.indexing.extract.document import Page, passages

    text = "alpha beta " * 2_000_000
    tracemalloc.start()
    try:
        found = passages([Page(None, text)], 5000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(found) == 2 and peak < 40 << 20
