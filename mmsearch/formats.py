"""The table of file formats mmsearch reads: each format's spellings and its kind.

Scanning, `--ext`, `similar` and the completion script read this one table, so a format is
known everywhere or nowhere, and `--ext jpeg` means the same files as `--ext jpg`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mmsearch.errors import UsageError
from mmsearch.vocab import Kind


@dataclass(frozen=True)
class Format:
    name: str
    kind: Kind
    extensions: tuple[str, ...]  # every spelling of one format: equal for --ext


FORMATS = (
    Format("JPEG", Kind.IMAGE, (".jpg", ".jpeg", ".jpe", ".jfif")),
    Format("PNG", Kind.IMAGE, (".png",)),
    Format("WebP", Kind.IMAGE, (".webp",)),
    Format("GIF", Kind.IMAGE, (".gif",)),
    Format("BMP", Kind.IMAGE, (".bmp",)),
    Format("TIFF", Kind.IMAGE, (".tif", ".tiff")),
    Format("HEIF/HEIC", Kind.IMAGE, (".heic", ".heif", ".hif")),
    Format("AVIF", Kind.IMAGE, (".avif",)),
    Format("MPEG-4", Kind.VIDEO, (".mp4",)),
    Format("M4V", Kind.VIDEO, (".m4v",)),
    Format("QuickTime", Kind.VIDEO, (".mov", ".qt")),
    Format("Matroska", Kind.VIDEO, (".mkv",)),
    Format("WebM", Kind.VIDEO, (".webm",)),
    Format("AVI", Kind.VIDEO, (".avi",)),
    Format("MPEG-1/2", Kind.VIDEO, (".mpg", ".mpeg")),
    Format("MPEG-2 video", Kind.VIDEO, (".m2v",)),
    Format("MPEG transport stream", Kind.VIDEO, (".ts",)),
    Format("AVCHD", Kind.VIDEO, (".mts", ".m2ts")),
    Format("3GPP", Kind.VIDEO, (".3gp",)),
    Format("3GPP2", Kind.VIDEO, (".3g2",)),
    Format("Windows Media", Kind.VIDEO, (".wmv", ".asf")),
    Format("Flash video", Kind.VIDEO, (".flv",)),
    Format("F4V", Kind.VIDEO, (".f4v",)),
    Format("Ogg video", Kind.VIDEO, (".ogv",)),
    Format("DVD video", Kind.VIDEO, (".vob",)),
    Format("MXF", Kind.VIDEO, (".mxf",)),
    Format("DivX", Kind.VIDEO, (".divx",)),
    Format("DV", Kind.VIDEO, (".dv",)),
    Format("PDF", Kind.DOCUMENT, (".pdf",)),
    Format("Word", Kind.DOCUMENT, (".docx",)),
    Format("plain text", Kind.DOCUMENT, (".txt", ".text")),
    Format("Markdown", Kind.DOCUMENT, (".md", ".markdown")),
    Format("reStructuredText", Kind.DOCUMENT, (".rst",)),
    Format("HTML", Kind.DOCUMENT, (".html", ".htm")),
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


def extensions(kind: Kind) -> list[str]:
    return [ext for f in FORMATS if f.kind == kind for ext in f.extensions]


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
            raise UsageError(f"--ext: mmsearch indexes no {ext} files (see README: formats)")
        found.update(dict.fromkeys(_BY_EXT[ext].extensions))
    return tuple(sorted(found))
