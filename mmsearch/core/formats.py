"""The table of file formats mmsearch reads: each format's spellings, kind, signature,
extractor and locator.

Scanning, `--ext`, `similar`, the document reader, the completion script and the docs'
format table all read this one table, so a format is known everywhere or nowhere, and
`--ext jpeg` means the same files as `--ext jpg`. Where an extension is shared with another
kind of file (`.ts` is also TypeScript), the content decides: `sniff` reads the first bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mmsearch.core.errors import UsageError
from mmsearch.core.vocab import Kind


@dataclass(frozen=True)
class Format:
    name: str
    kind: Kind
    extensions: tuple[str, ...]  # every spelling of one format: equal for --ext
    signature: str  # how its content starts (docs; `sniff` checks the ambiguous ones)
    extractor: str  # what reads it
    locator: str  # what a result points at inside it
    sniffed: bool = False  # the extension is shared with other files: the content decides


_IMG, _VID, _DOC = Kind.IMAGE, Kind.VIDEO, Kind.DOCUMENT
_PICTURE = "the picture"
_MOMENT = "moment (t, t_end)"
_WHOLE = "passage"
_FFMPEG = "ffmpeg"
_RAW = ("TIFF-based raw", "rawpy (LibRaw): embedded preview, else half-size demosaic", _PICTURE)

FORMATS = (
    Format("JPEG", _IMG, (".jpg", ".jpeg", ".jpe", ".jfif"), "FF D8 FF", "Pillow", _PICTURE),
    Format(
        "MPO (multi-picture JPEG)", _IMG, (".mpo",), "FF D8 FF", "Pillow (first picture)", _PICTURE
    ),
    Format("PNG / APNG", _IMG, (".png", ".apng"), "89 'PNG'", "Pillow (first frame)", _PICTURE),
    Format("WebP", _IMG, (".webp",), "'RIFF' … 'WEBP'", "Pillow (first frame)", _PICTURE),
    Format("GIF", _IMG, (".gif",), "'GIF8'", "Pillow (first frame)", _PICTURE),
    Format("BMP", _IMG, (".bmp",), "'BM'", "Pillow", _PICTURE),
    Format(
        "TIFF",
        _IMG,
        (".tif", ".tiff"),
        "'II*' / 'MM*'",
        "Pillow; tifffile for large or float",
        _PICTURE,
    ),
    Format(
        "HEIF/HEIC",
        _IMG,
        (".heic", ".heif", ".hif"),
        "'ftyp' heic/mif1",
        "pillow-heif (thumbnail when large)",
        _PICTURE,
    ),
    Format("AVIF", _IMG, (".avif",), "'ftyp' avif/avis", "Pillow (first frame)", _PICTURE),
    Format(
        "JPEG 2000",
        _IMG,
        (".jp2", ".j2k", ".j2c", ".jpf", ".jpx"),
        "'jP  ' box / FF 4F FF 51",
        "Pillow (OpenJPEG, reduced)",
        _PICTURE,
    ),
    Format("Photoshop", _IMG, (".psd",), "'8BPS'", "Pillow (the composite)", _PICTURE),
    Format("Adobe DNG", _IMG, (".dng",), *_RAW),
    Format("Nikon raw", _IMG, (".nef", ".nrw"), *_RAW),
    Format("Canon raw", _IMG, (".cr2", ".cr3"), "TIFF-based / 'ftyp' crx", *_RAW[1:]),
    Format("Sony raw", _IMG, (".arw", ".srf", ".sr2"), *_RAW),
    Format("Olympus raw", _IMG, (".orf",), "'IIRO' / 'IIRS'", *_RAW[1:]),
    Format("Panasonic raw", _IMG, (".rw2",), "'IIU'", *_RAW[1:]),
    Format("Fujifilm raw", _IMG, (".raf",), "'FUJIFILMCCD-RAW'", *_RAW[1:]),
    Format("Pentax raw", _IMG, (".pef",), *_RAW),
    Format("Samsung raw", _IMG, (".srw",), *_RAW),
    Format("MPEG-4", _VID, (".mp4",), "'ftyp'", _FFMPEG, _MOMENT),
    Format("M4V", _VID, (".m4v",), "'ftyp'", _FFMPEG, _MOMENT),
    Format("QuickTime", _VID, (".mov", ".qt"), "'ftyp' / 'moov'", _FFMPEG, _MOMENT),
    Format("Matroska", _VID, (".mkv",), "1A 45 DF A3", _FFMPEG, _MOMENT),
    Format("WebM", _VID, (".webm",), "1A 45 DF A3", _FFMPEG, _MOMENT),
    Format("AVI", _VID, (".avi",), "'RIFF' … 'AVI '", _FFMPEG, _MOMENT),
    Format("MPEG-1/2", _VID, (".mpg", ".mpeg"), "00 00 01 BA", _FFMPEG, _MOMENT),
    Format("MPEG-2 video", _VID, (".m2v",), "00 00 01 B3", _FFMPEG, _MOMENT),
    Format("MPEG transport stream", _VID, (".ts",), "47 every 188 bytes", _FFMPEG, _MOMENT, True),
    Format("AVCHD", _VID, (".mts", ".m2ts"), "47 every 192 bytes (at 4)", _FFMPEG, _MOMENT, True),
    Format("3GPP", _VID, (".3gp",), "'ftyp' 3gp", _FFMPEG, _MOMENT),
    Format("3GPP2", _VID, (".3g2",), "'ftyp' 3g2", _FFMPEG, _MOMENT),
    Format("Windows Media", _VID, (".wmv", ".asf"), "30 26 B2 75", _FFMPEG, _MOMENT),
    Format("Flash video", _VID, (".flv",), "'FLV'", _FFMPEG, _MOMENT),
    Format("F4V", _VID, (".f4v",), "'ftyp'", _FFMPEG, _MOMENT),
    Format("Ogg video", _VID, (".ogv",), "'OggS'", _FFMPEG, _MOMENT),
    Format("DVD video", _VID, (".vob",), "00 00 01 BA", _FFMPEG, _MOMENT),
    Format("MXF", _VID, (".mxf",), "06 0E 2B 34", _FFMPEG, _MOMENT),
    Format("DivX", _VID, (".divx",), "'RIFF' … 'AVI '", _FFMPEG, _MOMENT),
    Format("DV", _VID, (".dv",), "DV DIF", _FFMPEG, _MOMENT),
    Format("PDF", _DOC, (".pdf",), "'%PDF'", "pypdfium2 (text, page renders)", "page"),
    Format(
        "Word",
        _DOC,
        (".docx",),
        "zip: word/document.xml",
        "XML parts: body, headers, footers, notes, comments, text boxes",
        _WHOLE,
    ),
    Format(
        "PowerPoint",
        _DOC,
        (".pptx",),
        "zip: ppt/presentation.xml",
        "python-pptx (slide text, notes; pictures when no text)",
        "slide (as page)",
    ),
    Format("OpenDocument text", _DOC, (".odt",), "zip: mimetype …text", "content.xml", _WHOLE),
    Format(
        "OpenDocument spreadsheet",
        _DOC,
        (".ods",),
        "zip: mimetype …spreadsheet",
        "content.xml",
        "sheet (as page)",
    ),
    Format(
        "OpenDocument presentation",
        _DOC,
        (".odp",),
        "zip: mimetype …presentation",
        "content.xml",
        "slide (as page)",
    ),
    Format("Rich Text Format", _DOC, (".rtf",), "'{\\rtf'", "striprtf (its code page)", _WHOLE),
    Format(
        "EPUB",
        _DOC,
        (".epub",),
        "zip: mimetype application/epub+zip",
        "spine chapters (XHTML)",
        "chapter (as page)",
    ),
    Format("plain text", _DOC, (".txt", ".text"), "text", "decoded text", _WHOLE),
    Format("Markdown", _DOC, (".md", ".markdown"), "text", "decoded text", _WHOLE),
    Format("reStructuredText", _DOC, (".rst",), "text", "decoded text", _WHOLE),
    Format("HTML", _DOC, (".html", ".htm"), "text", "visible text", _WHOLE),
    Format("XHTML", _DOC, (".xhtml", ".xht"), "'<?xml' / text", "visible text", _WHOLE),
)
_BY_EXT = {ext: f for f in FORMATS for ext in f.extensions}


def ext_of(path: str) -> str:
    """The lower-case extension with its dot ("" when there is none)."""
    return os.path.splitext(path)[1].lower()


def format_of(path: str) -> Format | None:
    return _BY_EXT.get(ext_of(path))


def kind_of(path: str) -> Kind | None:
    """The kind of media at `path` by its extension, or None for a file mmsearch skips."""
    found = format_of(path)
    return found.kind if found else None


def kind_of_file(path: str) -> Kind | None:
    """The kind at `path` by its extension, and by its first bytes where the extension is
    shared (a TypeScript `index.d.ts` is not a transport stream): None to skip it."""
    found = format_of(path)
    if found is None or not found.sniffed:
        return found.kind if found else None
    try:
        with open(path, "rb") as f:
            head = f.read(3 * 192 + 8)
    except OSError:
        return found.kind  # reading will give the reason
    return found.kind if is_transport_stream(head) else None


def is_transport_stream(head: bytes) -> bool:
    """MPEG-TS (sync byte 0x47 every 188 bytes) or BDAV/AVCHD (every 192, after a 4-byte
    time code), checked over up to three packets, at least two."""
    for start, stride in ((0, 188), (4, 192)):
        offsets = [start + i * stride for i in range(3)]
        seen = [o for o in offsets if o < len(head)]
        if len(seen) >= 2 and all(head[o] == 0x47 for o in seen):
            return True
    return False


def extensions(kind: Kind | None = None) -> list[str]:
    return [ext for f in FORMATS if kind in (None, f.kind) for ext in f.extensions]


def same_files(exts: object) -> tuple[str, ...]:
    """The stored extensions a user's `--ext` values mean ("jpeg" → .jpg .jpeg .jpe .jfif),
    or a UsageError for one that mmsearch never indexes."""
    words = [exts] if isinstance(exts, str) else list(exts or [])  # type: ignore[call-overload]
    found: dict[str, None] = {}
    for word in (w.strip() for v in words for w in str(v).split(",")):
        if not word:
            continue
        ext = "." + word.lower().lstrip(".")
        if ext not in _BY_EXT:
            raise UsageError(f"--ext: mmsearch indexes no {ext} files (see docs: formats)")
        found.update(dict.fromkeys(_BY_EXT[ext].extensions))
    return tuple(sorted(found))


def markdown_table() -> str:
    """The docs' format table, from this one (a test keeps them equal)."""
    rows = [
        "| format | kind | extensions | signature | read by | locator |",
        "|---|---|---|---|---|---|",
    ]
    for f in FORMATS:
        exts = " ".join(f"`{e}`" for e in f.extensions)
        sniff = " (checked)" if f.sniffed else ""
        rows.append(
            f"| {f.name} | {f.kind} | {exts} | {f.signature}{sniff} | {f.extractor} | {f.locator} |"
        )
    return "\n".join(rows)
