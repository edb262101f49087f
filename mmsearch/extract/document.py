"""Documents: the text of each page (or of the whole file) and, for PDFs, each page's look.

PDFs go through pypdfium2 (text and rendering; it is not thread-safe, so every call holds
one lock); DOCX through python-docx (paragraphs and table cells); plain text, Markdown and
reStructuredText as decoded text; HTML as its visible text.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser

from PIL import Image

from mmsearch.config import DocumentOptions
from mmsearch.errors import ExtractError, one_line

_PDFIUM = threading.Lock()
_EMPTY_PAGE_TREE = re.compile(rb"/Count\s*0\s*/Kids\s*\[\s*\]|/Kids\s*\[\s*\]\s*/Count\s*0\b")
MAX_DOCX_XML = 64 << 20  # uncompressed bytes of the main part: more is a zip bomb
CHUNK_WORDS, CHUNK_OVERLAP = 120, 20


@dataclass(frozen=True)
class Page:
    number: int | None  # 1-based for formats with pages, else None
    text: str
    image: Image.Image | None = None  # the rendered page, square, for the image tower


def load_document(path: str, data: bytes, size: int, options: DocumentOptions) -> list[Page]:
    ext = path[path.rfind(".") :].lower()
    if ext == ".pdf":
        return _pdf(data, size, options)
    if ext == ".docx":
        return [Page(None, _docx(data))]
    if ext in (".html", ".htm"):
        return [Page(None, _html(decode_text(data)))]
    return [Page(None, decode_text(data))]


def chunks(text: str, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Overlapping windows of words: small enough to point at a passage, long enough for
    full-text search to rank well."""
    tokens = text.split()
    if not tokens:
        return []
    step = max(1, words - overlap)
    return [" ".join(tokens[i : i + words]) for i in range(0, max(1, len(tokens) - overlap), step)]


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else a guess; never fails on bytes."""
    if b"\0" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError("binary data, not text")
    for encoding in ("utf-8-sig", "utf-16"):
        if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    # Short texts fit several code pages equally well; Windows-1252 is by far the most
    # common legacy one, so it wins whenever it fits at all.
    matches = from_bytes(data[: 1 << 20])
    encodings = [m.encoding for m in matches]
    chosen = "cp1252" if "cp1252" in encodings or not encodings else encodings[0]
    return data.decode(chosen, errors="replace")


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


def _docx(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = z.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML:
                raise ExtractError("DOCX too large inside (a zip bomb?)")
    except (zipfile.BadZipFile, KeyError):
        raise ExtractError("not a DOCX file (not a zip with word/document.xml)") from None
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:
        raise ExtractError(f"cannot read DOCX: {one_line(e)}") from None
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(lines)


class _VisibleText(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def _html(text: str) -> str:
    parser = _VisibleText()
    parser.feed(text)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()
