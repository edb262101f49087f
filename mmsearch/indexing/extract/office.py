"""Office documents: Word (DOCX), PowerPoint (PPTX) and OpenDocument (ODT, ODS, ODP).

DOCX is read from its XML parts, not python-docx's body paragraphs, so headers, footers,
footnotes, endnotes, comments, nested tables and text boxes are all found (a text box's
fallback copy is skipped). PPTX goes through python-pptx: each slide's text and notes, with
the slide number as its page. OpenDocument is read from content.xml: a sheet of ODS and a
slide of ODP are its pages. A document with no text but with pictures is indexed by them.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from lxml import etree

from mmsearch.core.errors import ExtractError, one_line

# Uncompressed bytes of one part that is read (XML, relationships, chapters: everything but
# pictures and media, which are only read a few at a time), and of all of them together:
# more is a zip bomb. A novel's EPUB holds ~1 MiB of text, a 300-page DOCX ~10 MiB of XML.
MAX_PART = 64 << 20
MAX_PARTS = 256 << 20
MAX_PICTURES = 8  # pictures a text-less document is indexed by
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_PICTURE_NAME = re.compile(r"\.(?:png|jpe?g|gif|bmp|tiff?|webp)$", re.IGNORECASE)
# Parts never read whole as text: pictures (read MAX_PICTURES at a time, each under MAX_PART),
# and embedded audio, video and fonts.
_MEDIA_NAME = re.compile(
    r"\.(?:png|jpe?g|gif|bmp|tiff?|webp|emf|wmf|svg|mp[34]|m4[av]|mov|avi|wav|ogg|ttf|otf|odttf)$",
    re.IGNORECASE,
)


def open_zip(data: bytes, what: str, required: str) -> zipfile.ZipFile:
    """The document's zip, refused when it is not one, lacks `required` or is a zip bomb."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        z.getinfo(required)
    except (zipfile.BadZipFile, KeyError):
        raise ExtractError(f"not a {what} file (not a zip with {required})") from None
    read = [i.file_size for i in z.infolist() if not _MEDIA_NAME.search(i.filename)]
    if any(size > MAX_PART for size in read) or sum(read) > MAX_PARTS:
        raise ExtractError(
            f"{what} too large inside: more than {MAX_PART >> 20} MiB in one part or "
            f"{MAX_PARTS >> 20} MiB in all (a zip bomb?)"
        )
    return z


def _xml(z: zipfile.ZipFile, name: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(z.read(name), parser)
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as e:
        raise ExtractError(f"damaged part {name}: {one_line(e)}") from None


def docx(data: bytes) -> str:
    z = open_zip(data, "DOCX", "word/document.xml")
    names = z.namelist()
    parts = [
        "word/document.xml",
        *sorted(
            n
            for n in names
            if re.fullmatch(r"word/(?:header\d*|footer\d*|footnotes|endnotes|comments)\.xml", n)
        ),
    ]
    return "\n".join(line for part in parts for line in _word_paragraphs(_xml(z, part)))


def _word_paragraphs(root: etree._Element) -> Iterator[str]:
    """Each paragraph's own text, wherever it sits: tables within tables, text boxes."""
    for p in root.iter(f"{_W}p"):
        if any(a.tag == _MC_FALLBACK for a in p.iterancestors()):
            continue  # the VML copy of a text box already read from its mc:Choice
        words = []
        for el in p.iter(f"{_W}t", f"{_W}tab", f"{_W}br"):
            if next(el.iterancestors(f"{_W}p")) is not p:
                continue  # a nested paragraph's (a text box inside this one)
            words.append((el.text or "") if el.tag == f"{_W}t" else " ")
        text = "".join(words).strip()
        if text:
            yield text


def word_pictures(data: bytes) -> list[tuple[bytes, str]]:
    z = open_zip(data, "DOCX", "word/document.xml")
    return _media(z, "word/media/")


def _media(z: zipfile.ZipFile, folder: str) -> list[tuple[bytes, str]]:
    names = [n for n in sorted(z.namelist()) if n.startswith(folder) and _PICTURE_NAME.search(n)]
    return [(z.read(n), n) for n in names[:MAX_PICTURES] if z.getinfo(n).file_size < MAX_PART]


def pptx(data: bytes) -> list[tuple[int, str, list[tuple[bytes, str]]]]:
    """Each slide: its number, its text and notes, and (for a slide without text) its
    pictures."""
    open_zip(data, "PPTX", "ppt/presentation.xml")
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as e:
        raise ExtractError(f"cannot read PPTX: {one_line(e)}") from None
    slides = []
    for number, slide in enumerate(deck.slides, 1):
        lines = [t for shape in slide.shapes for t in _shape_text(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            lines.append(slide.notes_slide.notes_text_frame.text)
        text = "\n".join(line for line in lines if line.strip())
        pictures = [] if text else list(_slide_pictures(slide.shapes))[:MAX_PICTURES]
        slides.append((number, text, pictures))
    return slides


def _shape_text(shape: object) -> Iterator[str]:
    if getattr(shape, "has_text_frame", False):
        yield shape.text_frame.text  # type: ignore[attr-defined]
    if getattr(shape, "has_table", False):
        for row in shape.table.rows:  # type: ignore[attr-defined]
            cells = [c.text for c in row.cells if c.text.strip()]
            if cells:
                yield " | ".join(cells)
    for child in getattr(shape, "shapes", ()):  # a group
        yield from _shape_text(child)


def _slide_pictures(shapes: object) -> Iterator[tuple[bytes, str]]:
    for shape in shapes:  # type: ignore[attr-defined]
        image = getattr(shape, "image", None) if shape.shape_type == 13 else None  # PICTURE
        if image is not None:
            yield image.blob, f"picture.{image.ext}"
        yield from _slide_pictures(getattr(shape, "shapes", ()))


def opendocument(data: bytes, ext: str) -> list[tuple[int | None, str]]:
    """(page, text): ODT as one passage run, each ODS sheet and ODP slide its own page."""
    z = open_zip(data, "OpenDocument", "content.xml")
    root = _xml(z, "content.xml")
    if ext == ".odt":
        return [(None, "\n".join(_odf_paragraphs(root)))]
    unit = f"{_TABLE}table" if ext == ".ods" else f"{_DRAW}page"
    return [(n, "\n".join(_odf_paragraphs(el))) for n, el in enumerate(root.iter(unit), 1)]


def opendocument_pictures(data: bytes) -> list[tuple[bytes, str]]:
    return _media(open_zip(data, "OpenDocument", "content.xml"), "Pictures/")


def _odf_paragraphs(root: etree._Element) -> Iterator[str]:
    for p in root.iter(f"{_TEXT}p", f"{_TEXT}h"):
        text = "".join(_odf_own_text(p)).strip()
        if text:
            yield text


def _odf_own_text(el: etree._Element) -> Iterator[str]:
    """An ODF paragraph's text, spaces and tabs spelled out, nested paragraphs left out."""
    if el.text:
        yield el.text
    for child in el:
        if child.tag in (f"{_TEXT}p", f"{_TEXT}h"):
            pass
        elif child.tag in (f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break"):
            yield " "
        else:
            yield from _odf_own_text(child)
        if child.tail:
            yield child.tail
