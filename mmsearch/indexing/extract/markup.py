"""Marked-up text: HTML and XHTML (the visible text), EPUB (each spine chapter a page) and
RTF (striprtf, which honours the file's own code page)."""

from __future__ import annotations

import posixpath
import re
from html.parser import HTMLParser

from mmsearch.core.errors import ExtractError, one_line
from mmsearch.indexing.extract.encoding import decode_text
from mmsearch.indexing.extract.office import _xml, open_zip


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


def html(text: str) -> str:
    parser = _VisibleText()
    parser.feed(text)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def epub(data: bytes, most: int) -> list[tuple[int, str]]:
    """(chapter number in reading order, its visible text) of the first `most` chapters; a
    chapter the spine lists again is read once (a spine can list one part a thousand times)."""
    z = open_zip(data, "EPUB", "META-INF/container.xml")
    rootfile = next(_xml(z, "META-INF/container.xml").iter(f"{_CONTAINER}rootfile"), None)
    opf_path = rootfile.get("full-path") if rootfile is not None else None
    if not opf_path or opf_path not in z.namelist():
        raise ExtractError("EPUB without its package document (content.opf)")
    opf = _xml(z, opf_path)
    hrefs = {i.get("id"): i.get("href") for i in opf.iter(f"{_OPF}item")}
    folder = posixpath.dirname(opf_path)
    chapters: dict[str, None] = {}
    for ref in opf.iter(f"{_OPF}itemref"):
        href = hrefs.get(ref.get("idref"))
        name = posixpath.normpath(posixpath.join(folder, href)) if href else None
        if name in z.namelist():
            chapters[name] = None
    read = list(chapters)[:most]
    return [(n, html(decode_text(z.read(name)))) for n, name in enumerate(read, 1)]


def rtf(data: bytes) -> str:
    if not data.lstrip().startswith(b"{\\rtf"):
        raise ExtractError("not an RTF file (does not start with {\\rtf)")
    from striprtf.striprtf import rtf_to_text

    try:
        return rtf_to_text(data.decode("latin-1"), errors="replace")
    except Exception as e:
        raise ExtractError(f"cannot read RTF: {one_line(e)}") from None
