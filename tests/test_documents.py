"""Documents: found by their words (page and snippet), their meaning and their look."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers import (
    file_rows,
    item_paths,
    item_rows,
    make_encrypted_pdf,
    make_image,
    make_pdf,
    query_json,
    run,
)
from PIL import Image
from skimage import data


def index(folder: Path, *args: str) -> str:
    result = run("index", *args, str(folder))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def reason(path: Path) -> str:
    return file_rows()[str(path)]["reason"]


FILLER = "An ordinary page about gardens, rain and the history of bridges. " * 6


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    make_pdf(folder / "report.pdf", [FILLER, FILLER + " The xylophone was tuned twice.", FILLER])
    make_image(folder / "photo.png", seed=3)
    index(folder)
    return folder


def test_a_word_query_finds_the_file_at_the_right_page(library: Path) -> None:
    best = query_json("xylophone")[0]
    assert (best["path"], best["kind"], best["page"]) == (
        str(library / "report.pdf"),
        "document",
        2,
    )
    assert "xylophone" in best["snippet"]


def test_text_mode_uses_full_text_search_only(library: Path) -> None:
    results = query_json("xylophone", "--mode", "text")
    assert [(r["path"], r["page"]) for r in results] == [(str(library / "report.pdf"), 2)]


def test_a_quoted_phrase_must_match_as_a_phrase(tmp_path: Path) -> None:
    folder = tmp_path / "phrases"
    make_pdf(folder / "a.pdf", ["the quick brown fox jumps"])
    make_pdf(folder / "b.pdf", ["fox brown quick the jumps"])
    index(folder)
    results = query_json('"quick brown fox"', "--mode", "text")
    assert [r["path"] for r in results] == [str(folder / "a.pdf")]


def test_each_pdf_page_is_embedded_as_a_picture_too(library: Path) -> None:
    rows = item_rows(library / "report.pdf")
    assert sorted(r["page"] for r in rows if r["text"] is None) == [1, 2, 3]


def test_an_image_heavy_page_is_found_by_similar_with_the_same_image(tmp_path: Path) -> None:
    folder = tmp_path / "slides"
    picture = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(picture)
    make_pdf(folder / "slides.pdf", ["Intro " * 30, "", "Outro " * 30], images={2: picture})
    index(folder)
    best = json.loads(run("similar", str(picture), "--type", "document", "--json").stdout)[0]
    assert (best["path"], best["page"]) == (str(folder / "slides.pdf"), 2)


def test_text_inside_docx_tables_is_searchable(tmp_path: Path) -> None:
    import docx

    folder = tmp_path / "word"
    folder.mkdir()
    document = docx.Document()
    document.add_paragraph("Quarterly figures")
    table = document.add_table(rows=2, cols=2)
    table.cell(1, 1).text = "quartzite shipments"
    document.save(folder / "figures.docx")
    index(folder)
    results = query_json("quartzite", "--mode", "text")
    assert [r["path"] for r in results] == [str(folder / "figures.docx")]
    assert results[0]["page"] is None


def test_html_is_searched_by_its_visible_text_only(tmp_path: Path) -> None:
    folder = tmp_path / "web"
    folder.mkdir()
    (folder / "page.html").write_text(
        "<html><head><title>t</title><script>var hiddenword = 1;</script></head>"
        "<body><p>A visible marmalade recipe</p><style>.x{}</style></body></html>"
    )
    index(folder)
    assert [r["path"] for r in query_json("marmalade", "--mode", "text")] == [
        str(folder / "page.html")
    ]
    assert query_json("hiddenword", "--mode", "text") == []


def test_markdown_and_legacy_encoded_text_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.md").write_text("# Notes\n\nThe *pelican* brief.\n")
    (folder / "old.txt").write_bytes("Un café très crémeux à Liège.".encode("cp1252"))
    index(folder)
    assert [r["path"] for r in query_json("pelican", "--mode", "text")] == [
        str(folder / "readme.md")
    ]
    assert "crémeux" in query_json("liège", "--mode", "text")[0]["snippet"]


def test_status_counts_documents(library: Path) -> None:
    status = json.loads(run("status", "--json").stdout)
    assert status["files_by_kind"] == {"document": 1, "image": 1}
    assert status["items_by_kind"]["document"] == len(item_rows(library / "report.pdf"))


def test_type_document_keeps_documents_only(library: Path) -> None:
    assert {r["kind"] for r in query_json("gardens", "--type", "document", "-n", "20")} == {
        "document"
    }


def test_max_pages_caps_a_long_pdf(tmp_path: Path) -> None:
    folder = tmp_path / "long"
    make_pdf(folder / "long.pdf", [f"page {i} words" for i in range(1, 21)])
    index(folder, "--max-pages", "5")
    assert max(r["page"] for r in item_rows(folder / "long.pdf")) == 5


def test_a_ten_thousand_page_pdf_is_capped_and_indexed(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    folder = tmp_path / "huge"
    folder.mkdir()
    doc = pdfium.PdfDocument.new()
    for _ in range(10_000):
        doc.new_page(200, 200)
    doc.save(str(folder / "huge.pdf"))
    index(folder, "--max-pages", "50")
    pages = {r["page"] for r in item_rows(folder / "huge.pdf")}
    assert pages == set(range(1, 51))


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(80):
                f.write(chunk)
    return buf.getvalue()


def zero_page_pdf() -> bytes:
    import pypdfium2 as pdfium

    buf = io.BytesIO()
    pdfium.PdfDocument.new().save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("renamed.pdf", b"just some text, not a PDF", "not a readable PDF"),
        ("empty-tree.pdf", "zero-page", "no pages"),
        ("not-a-zip.docx", b"plain text pretending", "not a DOCX file"),
        ("bomb.docx", "zip-bomb", "zip bomb"),
        ("binary.txt", bytes(range(256)) * 16, "binary data"),
    ],
)
def test_bad_documents_get_a_reason_and_the_run_goes_on(
    tmp_path: Path, name: str, content: bytes | str, expected: str
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    made = {"zero-page": zero_page_pdf, "zip-bomb": zip_bomb}
    (folder / name).write_bytes(made[content]() if isinstance(content, str) else content)
    (folder / "fine.txt").write_text("a perfectly fine note")
    index(folder)
    assert expected in reason(folder / name)
    assert file_rows()[str(folder / "fine.txt")]["status"] == "ok"


def test_an_encrypted_pdf_is_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    make_encrypted_pdf(folder / "locked.pdf")
    index(folder)
    assert reason(folder / "locked.pdf") == "encrypted PDF (needs a password)"


def test_a_pdf_with_a_broken_xref_table_is_repaired_or_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "xref"
    source = make_pdf(tmp_path / "src.pdf", ["repairable content here"])
    broken = source.read_bytes().replace(b"xref", b"xxxx")
    (folder).mkdir()
    (folder / "broken.pdf").write_bytes(broken)
    index(folder)
    row = file_rows()[str(folder / "broken.pdf")]
    assert row["status"] == "ok"  # pdfium repairs the table
    assert str(folder / "broken.pdf") in item_paths()


class TestRankingAcrossPicturesAndPassages:
    """With CLIP-like geometry (texts far closer to texts than to pictures), one vector list
    over mixed rows buries pictures; hybrid ranking must not."""

    @pytest.fixture
    def colour_library(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        from colour_model import register

        monkeypatch.setenv("MMSEARCH_MODEL", register())
        folder = tmp_path / "mixed"
        folder.mkdir()
        Image.new("RGB", (32, 32), (230, 10, 10)).save(folder / "red square.png")
        for i in range(3):
            Image.new("RGB", (32, 32), (10, 10, 230)).save(folder / f"blue {i}.png")
        for i in range(8):
            (folder / f"note {i}.txt").write_text(f"Minutes of meeting {i} about the budget.")
        (folder / "paint.txt").write_text("We chose red paint for the door.")
        index(folder)
        return folder

    def test_a_strong_picture_match_is_not_buried_by_weak_passages(
        self, colour_library: Path
    ) -> None:
        vector = [r["path"] for r in query_json("red", "--mode", "vector", "-n", "20")]
        hybrid = [r["path"] for r in query_json("red", "-n", "20")]
        red = str(colour_library / "red square.png")
        assert vector.index(red) > 5  # one list: every passage outranks the picture
        assert hybrid.index(red) <= 1

    def test_a_strong_passage_match_is_not_buried_by_weak_pictures(
        self, colour_library: Path
    ) -> None:
        hybrid = [r["path"] for r in query_json("red", "-n", "20")]
        assert hybrid.index(str(colour_library / "paint.txt")) <= 1

    def test_scores_are_fused_and_best_first(self, colour_library: Path) -> None:
        scores = [r["score"] for r in query_json("red", "-n", "20")]
        assert scores == sorted(scores, reverse=True)
        assert 0 <= scores[-1] <= scores[0] <= 1
