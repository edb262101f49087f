"""Every format in formats.py, generated here: each picture decodes to its reference pixels,
each document's words are found on their page, slide, sheet or chapter, and the formats page's
format table is the code's."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from format_corpus import (
    CODE_PAGES,
    PICTURES,
    as_8bit,
    dng,
    docx,
    docx_of_a_picture,
    docx_of_empty_tables,
    epub,
    opendocument,
    pptx,
    reference,
    rtf,
)
from helpers import ffmpeg, file_rows, item_rows, run
from PIL import Image

from mmsearch.core.errors import ExtractError
from mmsearch.core.formats import FORMATS, kind_of_file, markdown_table
from mmsearch.indexing.extract.encoding import decode_text
from mmsearch.indexing.extract.image import load_image

FORMATS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "formats.md"


def mean_difference(decoded: Image.Image, expected: np.ndarray) -> float:
    h, w = expected.shape[:2]
    got = np.asarray(decoded.convert("RGB").resize((w, h), Image.BILINEAR), np.float32)
    return float(np.abs(got - expected.astype(np.float32)).mean())


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_a_picture_decodes_to_its_reference_pixels(name: str) -> None:
    make, expected, tolerance = PICTURES[name]
    ref = reference()
    decoded = load_image(make(ref), 32, name)
    assert decoded.mode == "RGB"
    assert mean_difference(decoded, expected(ref)) <= tolerance


def test_twelve_bit_data_in_sixteen_is_scaled_by_its_range_not_by_256() -> None:
    make, expected, _ = PICTURES["12 bit in 16.tif"]
    decoded = np.asarray(load_image(make(reference()), 32, "x.tif"), np.float32)
    assert decoded.mean() > 0.8 * expected(reference()).mean()  # not "almost black"


def test_a_camera_raw_file_is_developed_with_its_colours() -> None:
    ref = reference(192, 128)
    decoded = np.asarray(load_image(dng(ref), 32, "camera.dng"), np.float32)
    h, w, _ = decoded.shape
    top_left, top_right = decoded[h // 8, w // 8], decoded[h // 8, w - w // 8]
    bottom_left = decoded[h - h // 8, w // 8]
    assert top_left.argmax() == 0  # red quadrant
    assert top_right.argmax() == 1  # green
    assert bottom_left.argmax() == 2  # blue


def test_a_camera_raw_file_with_a_large_preview_is_read_from_the_preview() -> None:
    preview = as_8bit(1 - reference(1536, 1024))  # inverted: tells the preview from the raw
    decoded = load_image(dng(reference(192, 128), preview), 224, "camera.dng")
    assert decoded.size == (1536, 1024)
    assert mean_difference(decoded, preview) <= 1


def test_a_large_tiff_is_read_reduced_within_600_mb(tmp_path: Path) -> None:
    """200 megapixels of RGB (600 MB decoded) stream through in strips: peak RSS measured in
    a fresh process."""
    import subprocess
    import sys

    path = tmp_path / "scan.tif"
    subprocess.run([sys.executable, "-c", _WRITE_BIG_TIFF, str(path)], check=True)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path)], check=True, capture_output=True, text=True
    ).stdout.split()
    size, peak_mib = out[0], int(out[1]) / 1024
    assert size == "1366x1024"  # reduced 12 times, the short side kept at least 1024
    print(f"peak RSS decoding a 201 MP RGB TIFF: {peak_mib:.0f} MiB")
    assert peak_mib <= 600, f"peak RSS {peak_mib:.0f} MiB"


_WRITE_BIG_TIFF = """
import sys, numpy as np, tifffile
h, w = 12288, 16384  # 201 MP
tile = np.zeros((512, 512, 3), np.uint8); tile[..., 0] = 200; tile[..., 2] = np.arange(512) % 256
tiles = (tile for _ in range((h // 512) * (w // 512)))
tifffile.imwrite(sys.argv[1], tiles, shape=(h, w, 3), dtype=np.uint8, tile=(512, 512),
                 photometric="rgb", compression="zlib", compressionargs={"level": 1})
"""
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
_PEAK_RSS = """
import re, sys
from mmsearch.indexing.extract.image import load_image
picture = load_image(open(sys.argv[1], "rb").read(), 224, sys.argv[1])
peak = re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read())[1]
print(f"{picture.width}x{picture.height}", peak)
"""


def test_a_decoders_own_messages_stay_off_stderr_and_become_the_reason(capfd) -> None:
    data = bytearray(PICTURES["float32 grey.tif"][0](reference()))
    tag = data.find(b"\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00")  # Compression = 1
    data[tag + 8 : tag + 10] = (50001).to_bytes(2, "little")  # WebP, not built into libtiff
    with pytest.raises(ExtractError) as e:
        load_image(bytes(data), 32, "x.tif")
    assert "WEBP compression support is not configured" in str(e.value)
    assert "WEBP" not in capfd.readouterr().err


@pytest.mark.parametrize(("data", "reason"), [(b"%PDF-1.7\n", "is a PDF, not an image")])
def test_a_document_given_as_a_picture_is_named_for_what_it_is(data: bytes, reason: str) -> None:
    with pytest.raises(ExtractError, match=reason):
        load_image(data, 32, "x.jpg")


@pytest.mark.parametrize(("name", "encoding", "text", "word"), CODE_PAGES)
def test_legacy_code_pages_are_chosen_by_what_the_text_is(
    name: str, encoding: str, text: str, word: str
) -> None:
    assert decode_text(text.encode(encoding)) == text


def test_a_typescript_file_named_ts_is_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "index.d.ts").write_text("export declare const x: number;\n" * 20)
    (tmp_path / "module.mts").write_text("export const y = 1;\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:d=1", "-f", "mpegts", str(tmp_path / "clip.ts"))
    assert kind_of_file(str(tmp_path / "index.d.ts")) is None
    assert kind_of_file(str(tmp_path / "module.mts")) is None
    assert kind_of_file(str(tmp_path / "clip.ts")) == "video"


def test_the_formats_page_lists_the_format_table_of_the_code() -> None:
    assert markdown_table() in FORMATS_PAGE.read_text()
    assert len({e for f in FORMATS for e in f.extensions}) == sum(
        len(f.extensions) for f in FORMATS
    )


# --- one corpus of every format, indexed once ---------------------------------------------

DOCX_WORDS = {
    "body": "bodyword",
    "header": "headerword",
    "footer": "footerword",
    "nested": "nestedword",
    "comment": "commentword",
    "footnote": "footnoteword",
    "textbox": "textboxword",
}


@pytest.fixture(scope="module")
def indexed(
    tiny_model: str, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The corpus, generated and indexed once for this module: (folder, store)."""
    folder = tmp_path_factory.mktemp("formats")
    store = tmp_path_factory.mktemp("formats-store") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSEARCH_CACHE", str(model_cache))
        mp.setenv("MMSEARCH_DB", str(store))
        mp.setenv("MMSEARCH_MODEL", tiny_model)
        mp.setenv("HF_HUB_OFFLINE", "1")
        _generate(folder)
        result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return folder, store


@pytest.fixture
def corpus(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMSEARCH_DB", str(indexed[1]))
    return indexed[0]


def _generate(folder: Path) -> None:
    ref = reference()
    for name, (make, _, _) in PICTURES.items():
        (folder / name).write_bytes(make(ref))
    (folder / "camera.dng").write_bytes(dng(reference(192, 128)))
    png = PICTURES["palette.png"][0](ref)
    (folder / "letter.docx").write_bytes(docx(DOCX_WORDS))
    (folder / "empty tables.docx").write_bytes(docx_of_empty_tables())
    (folder / "picture only.docx").write_bytes(docx_of_a_picture(png))
    (folder / "deck.pptx").write_bytes(
        pptx([("alphaslide", ""), ("betaslide", "notesword")], picture=png)
    )
    (folder / "novel.odt").write_bytes(opendocument("text", ["odtword here"]))
    (folder / "book.ods").write_bytes(opendocument("spreadsheet", ["first", "odsword"]))
    (folder / "talk.odp").write_bytes(opendocument("presentation", ["one", "two", "odpword"]))
    (folder / "memo.rtf").write_bytes(rtf("Bugün çocuklar şarkı söylüyor rtfword", 1254))
    (folder / "page.xhtml").write_text(
        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title>'
        "</head><body><p>xhtmlword</p></body></html>"
    )
    (folder / "title only.html").write_text("<html><head><title>Only a title</title></head></html>")
    (folder / "book.epub").write_bytes(epub(["opening chapter", "epubword in the second"]))
    for name, encoding, text, _ in CODE_PAGES:
        (folder / name).write_bytes((text + "\n").encode(encoding))
    (folder / "index.d.ts").write_text("export declare const x: number;\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:d=2", "-f", "mpegts", str(folder / "clip.ts"))
    # A WebM written to a pipe records no duration in its container.
    webm = folder / "no duration.webm"
    import subprocess

    from mmsearch.indexing.extract.video import ffmpeg_binary

    with open(webm, "wb") as out:
        subprocess.run(
            [
                ffmpeg_binary(),
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=s=64x48:r=10:d=6",
                "-c:v",
                "libvpx",
                "-g",
                "100",
                "-f",
                "webm",
                "pipe:1",
            ],
            stdout=out,
            check=True,
        )


def _texts(path: Path) -> list[tuple[int | None, str]]:
    return [(r["page"], r["text"]) for r in item_rows(path) if r["text"]]


def test_every_file_of_the_corpus_is_indexed(corpus: Path) -> None:
    rows = file_rows()
    expected_empty = {"empty tables.docx", "title only.html"}
    for path in sorted(p for p in corpus.iterdir() if p.name != "index.d.ts"):
        status = rows[str(path)]["status"]
        want = "empty" if path.name in expected_empty else "ok"
        assert status == want, (path.name, rows[str(path)]["reason"])
    assert str(corpus / "index.d.ts") not in rows  # unsupported, quietly


def test_docx_words_are_found_wherever_they_sit(corpus: Path) -> None:
    text = " ".join(t for _, t in _texts(corpus / "letter.docx"))
    for word in DOCX_WORDS.values():
        assert word in text
    assert text.count("textboxword") == 1  # the text box's fallback copy is not read twice


def test_empty_tables_add_no_passages(corpus: Path) -> None:
    assert _texts(corpus / "empty tables.docx") == []
    assert "| |" not in " ".join(t for _, t in _texts(corpus / "letter.docx"))


def test_a_picture_only_document_is_indexed_by_its_look(corpus: Path) -> None:
    rows = item_rows(corpus / "picture only.docx")
    assert rows and all(r["text"] is None for r in rows)


@pytest.mark.parametrize(
    ("name", "word", "page"),
    [
        ("deck.pptx", "alphaslide", 1),
        ("deck.pptx", "betaslide", 2),
        ("deck.pptx", "notesword", 2),
        ("book.ods", "odsword", 2),
        ("talk.odp", "odpword", 3),
        ("book.epub", "epubword", 2),
        ("novel.odt", "odtword", None),
        ("memo.rtf", "şarkı", None),
        ("page.xhtml", "xhtmlword", None),
    ],
)
def test_a_word_is_found_on_its_page(corpus: Path, name: str, word: str, page: int | None) -> None:
    assert any(word in t and p == page for p, t in _texts(corpus / name)), _texts(corpus / name)


def test_a_slide_with_only_a_picture_is_indexed_by_its_look_at_its_number(corpus: Path) -> None:
    pictures = [r["page"] for r in item_rows(corpus / "deck.pptx") if r["text"] is None]
    assert pictures == [3]


@pytest.mark.parametrize(("name", "encoding", "text", "word"), CODE_PAGES)
def test_legacy_text_files_are_indexed_with_their_words(
    corpus: Path, name: str, encoding: str, text: str, word: str
) -> None:
    assert any(word in t for _, t in _texts(corpus / name))


def test_a_video_without_a_recorded_duration_ends_where_its_stream_ends(corpus: Path) -> None:
    rows = item_rows(corpus / "no duration.webm")
    assert rows[-1]["t_end"] == pytest.approx(6, abs=0.6)


def test_a_transport_stream_named_ts_is_a_video(corpus: Path) -> None:
    assert {r["kind"] for r in item_rows(corpus / "clip.ts")} == {"video"}


def test_empty_outcomes_are_shown_apart_from_failures(corpus: Path) -> None:
    out = run("status", "--json")
    assert out.exit_code == 0
    import json

    report = json.loads(out.stdout)
    assert report["files_empty"] == 2
    assert not any(Path(f["path"]).name == "title only.html" for f in report["failures"])
    again = run("index", str(corpus))
    assert re.search(r"0 new, 0 updated, 0 reused, \d+ unchanged", again.stderr)


def test_ext_completion_offers_the_tables_extensions() -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "_MMSEARCH_COMPLETE": "bash",
        "COMP_WORDS": "mmsearch query x --ext dn",
        "COMP_CWORD": "4",
    }
    out = subprocess.run(
        [sys.executable, "-m", "mmsearch"], env=env, capture_output=True, text=True
    )
    assert out.stdout.split() == ["dng"]


def _similar_reason(query: Path) -> str:
    result = run("similar", str(query))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_similar_names_a_document_for_what_it_is(corpus: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.7\n")
    assert "is a document, not an image" in _similar_reason(pdf)


def test_similar_and_index_give_the_same_reason(corpus: Path, tmp_path: Path) -> None:
    query = tmp_path / "empty.png"
    query.write_bytes(b"")
    assert "empty file (0 bytes)" in _similar_reason(query)


def test_similar_beyond_a_videos_end_says_how_long_it_is(corpus: Path) -> None:
    result = run("similar", str(corpus / "clip.ts"), "--at", "100")
    assert result.exit_code == 1
    assert "the video is 2 s long" in result.stderr


def test_a_cut_picture_is_called_cut_not_named_by_a_decoder_constant() -> None:
    whole = PICTURES["palette.png"][0](reference())
    with pytest.raises(ExtractError) as e:
        load_image(whole[: len(whole) // 2], 32, "cut.png")
    assert str(e.value) == "cannot decode image: the file is cut short or damaged"


def test_a_large_heic_decodes_from_its_embedded_thumbnail() -> None:
    import pillow_heif

    picture = Image.fromarray(as_8bit(reference(260, 220))).resize((2600, 2200))
    out = io.BytesIO()
    pillow_heif.from_pillow(picture).save(out, quality=60, thumbnails=[1300])
    decoded = load_image(out.getvalue(), 224, "phone.heic")
    assert decoded.size == (1300, 1100)
    assert mean_difference(decoded, as_8bit(reference(260, 220))) <= 8


def test_the_summarys_frame_rate_is_over_the_time_spent_on_video() -> None:
    from rich.console import Console

    from mmsearch.doors.render import index_summary
    from mmsearch.indexing.index import IndexReport

    out = io.StringIO()
    report = IndexReport(new=2, frames=10, seconds=300.0, video_seconds=2.0)
    index_summary(report, Console(file=out, width=200))
    assert "10 video frames at 5.0 frames/s" in out.getvalue()
