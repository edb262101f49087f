"""Documents: the text of each page, slide, sheet or chapter (or of the whole file) and,
for PDFs, each page's look; a document without text is indexed by its pictures.

PDFs go through pypdfium2 (text and rendering; it is not thread-safe, so every call holds
one lock); office formats through `office`, HTML, XHTML, EPUB and RTF through `markup`,
plain text through `encoding`. Which reader a file gets is formats.py's table.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from mmsearch.core.config import DocumentOptions
from mmsearch.core.errors import ExtractError, one_line
from mmsearch.core.formats import ext_of
from mmsearch.indexing.extract.encoding import decode_text

_PDFIUM = threading.Lock()
_EMPTY_PAGE_TREE = re.compile(rb"/Count\s*0\s*/Kids\s*\[\s*\]|/Kids\s*\[\s*\]\s*/Count\s*0\b")
CHUNK_WORDS, CHUNK_OVERLAP = 120, 20


@dataclass(frozen=True)
class Page:
    number: int | None  # 1-based for formats with pages, else None
    text: str
    image: Image.Image | None = None  # the rendered page, square, for the image tower


def load_document(path: str, data: bytes, size: int, options: DocumentOptions) -> list[Page]:
    from mmsearch.indexing.extract import markup, office

    ext = ext_of(path)
    if ext == ".pdf":
        return _pdf(data, size, options)
    if ext == ".docx":
        text = office.docx(data)
        return [Page(None, text)] if text.strip() else _pictures(office.word_pictures(data), size)
    if ext == ".pptx":
        pages = []
        for n, text, pictures in office.pptx(data)[: options.max_pages]:
            pages += [Page(n, text)] if text else _pictures(pictures, size, n)
        return pages
    if ext in (".odt", ".ods", ".odp"):
        pages = [Page(n, t) for n, t in office.opendocument(data, ext) if t.strip()]
        return pages or _pictures(office.opendocument_pictures(data), size)
    if ext == ".epub":
        return [Page(n, t) for n, t in markup.epub(data, options.max_pages) if t]
    if ext == ".rtf":
        return [Page(None, markup.rtf(data))]
    if ext in (".html", ".htm", ".xhtml", ".xht"):
        return [Page(None, markup.html(decode_text(data)))]
    return [Page(None, decode_text(data))]


def _pictures(pictures: list[tuple[bytes, str]], size: int, page: int | None = None) -> list[Page]:
    """A text-less document's pictures, each a page of its look; the broken ones left out."""
    from mmsearch.indexing.extract.image import load_image

    pages = []
    for data, name in pictures:
        try:
            pages.append(Page(page, "", load_image(data, size, name)))
        except ExtractError:
            continue
    return pages


def passages(pages: list[Page], most: int) -> list[tuple[int | None, str]]:
    """(page, passage) of a document, each identical one of a page once, the first `most`."""
    found: dict[tuple[int | None, str], None] = {}
    for page in pages:
        for chunk in chunks(page.text):
            found[page.number, chunk] = None
            if len(found) == most:
                return list(found)
    return list(found)


def chunks(text: str, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP) -> Iterator[str]:
    """Overlapping windows of words: small enough to point at a passage, long enough for
    full-text search to rank well. Read as a stream: a text of millions of words never
    becomes a list of them (an 88 MiB log peaked at 1.4 GiB that way)."""
    step = max(1, words - overlap)
    window: list[str] = []
    said = False
    for match in re.finditer(r"\S+", text):
        window.append(match.group())
        if len(window) == words + overlap:  # a window, and what the next one needs after it
            yield " ".join(window[:words])
            said = True
            del window[:step]
    while len(window) > overlap or (window and not said):
        yield " ".join(window[:words])
        said = True
        del window[:step]


def _pdf(data: bytes, size: int, options: DocumentOptions) -> list[Page]:
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            if "password" in str(e).lower():
                raise ExtractError("encrypted PDF (needs a password)") from None
            if _EMPTY_PAGE_TREE.search(data[: 1 << 20]):  # PDFium refuses to open those
                raise ExtractError("PDF has no pages") from None
            raise ExtractError(f"not a readable PDF: {one_line(e)}") from None
        try:
            count = len(doc)
            if count == 0:
                raise ExtractError("PDF has no pages")
            pages = []
            for i in range(min(count, options.max_pages)):
                page = doc[i]
                try:
                    text = page.get_textpage().get_text_bounded()
                    image = _render(page, size) if options.render_pages else None
                finally:
                    page.close()
                pages.append(Page(i + 1, text, image))
            return pages
        except ExtractError:
            raise
        except Exception as e:  # pdfium raises on damaged page trees and content streams
            raise ExtractError(f"cannot read PDF: {one_line(e)}") from None
        finally:
            doc.close()


def render_page(data: bytes, number: int, max_side: int) -> Image.Image:
    """One PDF page (1-based) rendered with its long side `max_side` pixels, for OCR."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[number - 1]
            try:
                width, height = page.get_size()
                return page.render(scale=max_side / max(width, height, 1)).to_pil().convert("RGB")
            finally:
                page.close()
        finally:
            doc.close()


def _render(page: object, size: int) -> Image.Image:
    """The page fitted, not cropped, into a white square of the model's size."""
    width, height = page.get_size()  # type: ignore[attr-defined]
    scale = size / max(width, height, 1)
    picture = page.render(scale=scale).to_pil().convert("RGB")  # type: ignore[attr-defined]
    square = Image.new("RGB", (size, size), "white")
    square.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return square
