"""A file of every format in formats.py, generated (nothing committed as a blob): pictures
with the reference pixels they must decode to, documents with the word each page holds."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable

import numpy as np
from PIL import Image


def reference(w: int = 96, h: int = 64) -> np.ndarray:
    """Four coloured quadrants over a ramp: a wrong crop, flip, channel order or scale
    shows."""
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    colours = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.9, 0.9, 0.8]])
    quad = np.zeros((h, w, 3), np.float32)
    quad[: h // 2, : w // 2], quad[: h // 2, w // 2 :] = colours[0], colours[1]
    quad[h // 2 :, : w // 2], quad[h // 2 :, w // 2 :] = colours[2], colours[3]
    return np.clip(0.8 * quad + 0.2 * ramp, 0, 1)


def as_8bit(ref: np.ndarray) -> np.ndarray:
    return (ref * 255 + 0.5).astype(np.uint8)


def _pil(ref: np.ndarray) -> Image.Image:
    return Image.fromarray(as_8bit(ref))


def _save(image: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def _tiff(array: np.ndarray, **kw: object) -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, array, **kw)
    return out.getvalue()


def psd(ref: np.ndarray) -> bytes:
    """A Photoshop file: header, empty sections, the raw planar composite."""
    pixels = as_8bit(ref)
    h, w, _ = pixels.shape
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
    empty = struct.pack(">I", 0)
    planes = b"".join(pixels[:, :, c].tobytes() for c in range(3))
    return header + empty * 3 + struct.pack(">H", 0) + planes


def dng(ref: np.ndarray, preview: np.ndarray | None = None) -> bytes:
    """A camera raw file as a camera writes it: a DNG holding a 12-bit RGGB Bayer mosaic,
    and with `preview` an 8-bit RGB preview as its first picture (the mosaic a sub-IFD)."""
    import tifffile

    r, g, b = (ref[:, :, c] * 4000 for c in range(3))
    cfa = np.zeros(ref.shape[:2], np.uint16)
    cfa[0::2, 0::2], cfa[0::2, 1::2] = r[0::2, 0::2], g[0::2, 1::2]
    cfa[1::2, 0::2], cfa[1::2, 1::2] = g[1::2, 0::2], b[1::2, 1::2]
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    camera = [
        (271, "s", 0, "mmsearch", True),
        (272, "s", 0, "test camera", True),
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "mmsearch test camera", True),  # UniqueCameraModel
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
    ]
    mosaic = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50717, "I", 1, 4095, True),  # WhiteLevel
    ]
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tiff:
        if preview is None:
            tiff.write(cfa, photometric=32803, subfiletype=0, extratags=camera + mosaic)
        else:
            tiff.write(preview, photometric="rgb", subfiletype=1, subifds=1, extratags=camera)
            tiff.write(cfa, photometric=32803, subfiletype=0, extratags=mosaic)
    return out.getvalue()


def _two_frames(ref: np.ndarray) -> tuple[Image.Image, Image.Image]:
    return _pil(ref), _pil(1 - ref)


def _lab_tiff(ref: np.ndarray) -> bytes:
    from PIL import ImageCms

    lab = ImageCms.profileToProfile(
        _pil(ref), ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), outputMode="LAB"
    )
    return _save(lab, "TIFF")


def _heic(ref: np.ndarray) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(_pil(ref)).save(out, quality=95)
    return out.getvalue()


# name → (bytes, the RGB the decode must match, tolerance in mean absolute 8-bit levels)
PictureCase = tuple[Callable[[np.ndarray], bytes], Callable[[np.ndarray], np.ndarray], float]
_SAME: Callable[[np.ndarray], np.ndarray] = as_8bit
PICTURES: dict[str, PictureCase] = {
    "camera.mpo": (
        lambda r: _save(_two_frames(r)[0], "MPO", save_all=True, append_images=[_two_frames(r)[1]]),
        _SAME,
        6,
    ),
    "scan.jp2": (lambda r: _save(_pil(r), "JPEG2000"), _SAME, 4),
    "layers.psd": (psd, _SAME, 1),
    "moving.apng": (
        lambda r: _save(_two_frames(r)[0], "PNG", save_all=True, append_images=[_two_frames(r)[1]]),
        _SAME,
        1,
    ),
    "moving.avif": (
        lambda r: _save(
            _two_frames(r)[0], "AVIF", save_all=True, append_images=[_two_frames(r)[1]], quality=95
        ),
        _SAME,
        8,
    ),
    "phone.heic": (_heic, _SAME, 8),
    "big endian 16 bit.tif": (
        lambda r: _tiff((r * 65535).astype(">u2"), byteorder=">", photometric="rgb"),
        _SAME,
        1,
    ),
    "little endian 16 bit grey.tif": (
        lambda r: _tiff((r.mean(axis=2) * 65535).astype("<u2")),
        lambda r: as_8bit(np.repeat(r.mean(axis=2, keepdims=True), 3, axis=2)),
        1,
    ),
    "12 bit in 16.tif": (
        lambda r: _tiff((r * 4095).astype("<u2"), photometric="rgb"),
        _SAME,
        1,
    ),
    "float32 grey.tif": (
        lambda r: _tiff(r.mean(axis=2).astype(np.float32)),
        lambda r: as_8bit(np.repeat(r.mean(axis=2, keepdims=True), 3, axis=2)),
        1,
    ),
    "float64 rgb.tif": (lambda r: _tiff(r.astype(np.float64), photometric="rgb"), _SAME, 1),
    "cmyk.tif": (
        lambda r: _save(_pil(r).convert("CMYK"), "TIFF"),
        lambda r: np.asarray(_pil(r).convert("CMYK").convert("RGB")),
        1,
    ),
    "lab.tif": (_lab_tiff, _SAME, 6),
    "palette.png": (
        lambda r: _save(_pil(r).quantize(64), "PNG"),
        lambda r: np.asarray(_pil(r).quantize(64).convert("RGB")),
        1,
    ),
}


def docx(path_words: dict[str, str]) -> bytes:
    """A DOCX whose words sit in the body, a header, a footer, a table inside a table, a
    comment, a footnote and a text box."""
    import docx as python_docx

    document = python_docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = f"Header {path_words['header']}"
    section.footer.paragraphs[0].text = f"Footer {path_words['footer']}"
    body = document.add_paragraph(f"Body {path_words['body']}")
    outer = document.add_table(rows=1, cols=2)
    inner = outer.cell(0, 1).add_table(rows=1, cols=1)
    inner.cell(0, 0).text = f"Nested {path_words['nested']}"
    document.add_comment(body.runs, text=f"Comment {path_words['comment']}", author="t")
    out = io.BytesIO()
    document.save(out)
    return _with_footnote_and_text_box(out.getvalue(), path_words)


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _with_footnote_and_text_box(data: bytes, words: dict[str, str]) -> bytes:
    footnotes = (
        f'<w:footnotes {_W}><w:footnote w:id="1"><w:p><w:r><w:t>Footnote {words["footnote"]}'
        "</w:t></w:r></w:p></w:footnote></w:footnotes>"
    )
    box = (
        '<w:p><w:r><mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/'
        'markup-compatibility/2006"><mc:Choice Requires="wps"><w:drawing><w:txbxContent>'
        f"<w:p><w:r><w:t>Box {words['textbox']}</w:t></w:r></w:p></w:txbxContent></w:drawing>"
        "</mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>Box "
        f"{words['textbox']}</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r></w:p>"
    )
    return rezip(
        data,
        {"word/footnotes.xml": footnotes.encode()},
        edit={
            "word/document.xml": lambda x: x.replace(b"<w:sectPr", box.encode() + b"<w:sectPr", 1)
        },
    )


def rezip(
    data: bytes,
    add: dict[str, bytes],
    edit: dict[str, Callable[[bytes], bytes]] | None = None,
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info, (edit or {}).get(info.filename, lambda x: x)(body))
        for name, body in add.items():
            dst.writestr(name, body)
    return out.getvalue()


def docx_of_empty_tables() -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_table(rows=3, cols=3)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_of_a_picture(picture: bytes) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_picture(io.BytesIO(picture))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx(slides: list[tuple[str, str]], picture: bytes | None = None) -> bytes:
    """A deck of (slide text, notes), then a slide holding only `picture`."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for text, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = text
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    if picture is not None:
        slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank
        slide.shapes.add_picture(io.BytesIO(picture), Inches(1), Inches(1))
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"'
)


def opendocument(kind: str, pages: list[str]) -> bytes:
    """An ODT (one body), ODS (a sheet per entry) or ODP (a slide per entry)."""
    if kind == "text":
        body = "".join(f"<text:p>{p}</text:p>" for p in pages)
    elif kind == "spreadsheet":
        body = "".join(
            f'<table:table table:name="S{n}"><table:table-row><table:table-cell>'
            f"<text:p>{p}</text:p></table:table-cell></table:table-row></table:table>"
            for n, p in enumerate(pages, 1)
        )
    else:
        body = "".join(
            f'<draw:page draw:name="p{n}"><draw:frame><draw:text-box><text:p>{p}</text:p>'
            "</draw:text-box></draw:frame></draw:page>"
            for n, p in enumerate(pages, 1)
        )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODF_NS}>'
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body>"
        "</office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", f"application/vnd.oasis.opendocument.{kind}")
        z.writestr("content.xml", content)
    return out.getvalue()


def epub(chapters: list[str]) -> bytes:
    out = io.BytesIO()
    items = "".join(
        f'<item id="c{n}" href="text/c{n}.xhtml" media-type="application/xhtml+xml"/>'
        for n in range(1, len(chapters) + 1)
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(1, len(chapters) + 1))
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        z.writestr(
            "OEBPS/content.opf",
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            f"<manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        for n, text in enumerate(chapters, 1):
            z.writestr(
                f"OEBPS/text/c{n}.xhtml",
                '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>Chapter {n}</title></head><body><p>{text}</p></body></html>",
            )
    return out.getvalue()


def rtf(text: str, code_page: int) -> bytes:
    """RTF as word processors write it: ASCII, other characters as \\'xx in its code page."""
    escaped = "".join(
        c if ord(c) < 128 else "".join(f"\\'{b:02x}" for b in c.encode(f"cp{code_page}"))
        for c in text
    )
    return (
        f"{{\\rtf1\\ansi\\ansicpg{code_page}\\deff0 {{\\fonttbl{{\\f0 Arial;}}}}"
        f"\\f0\\fs24 {escaped}\\par}}"
    ).encode("ascii")


# Sentences in legacy code pages: (file name, encoding, text, a word only this text holds)
CODE_PAGES = [
    (
        "turkish.txt",
        "cp1254",
        "Çocuklar bahçede şarkı söylüyor, öğretmen ışığı açtı. Ağaçlar yeşil.",
        "şarkı",
    ),
    (
        "czech.txt",
        "cp1250",
        "Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásná řeč.",
        "žluťoučký",
    ),
    (
        "russian.txt",
        "cp1251",
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "французских",
    ),
    (
        "russian koi8.txt",
        "koi8_r",
        "Широкая электрификация южных губерний даст мощный толчок.",
        "электрификация",
    ),
    ("greek.txt", "cp1253", "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.", "αλεπού"),
    ("hebrew.txt", "cp1255", "דג סקרן שט בים מאוכזב ולפתע מצא חברה נחמדה.", "סקרן"),
    (
        "japanese.txt",
        "shift_jis",
        "いろはにほへと ちりぬるを。日本語のテキストです。",
        "日本語のテキストです",
    ),
    ("chinese.txt", "gbk", "我能吞下玻璃而不伤身体。这是一个中文的测试文本。", "玻璃"),
]
