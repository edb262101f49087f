"""Turn one file into what the model reads, with a locator; nothing here knows the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmsearch.core.config import DocumentOptions, VideoOptions
    from mmsearch.indexing.extract.subtitles import Cue
    from mmsearch.indexing.extract.video import Frame


@dataclass
class Loaded:
    """What one file gives the model: pictures (with their locators) and passages of text."""

    frames: list[Frame] = field(default_factory=list)
    texts: list[tuple[int | None, str]] = field(default_factory=list)  # (page, passage)
    said: list[Cue] = field(default_factory=list)  # what is said in a video, timed
    note: str = ""  # why part of it could not be read, though the rest was


def load(
    kind: str,
    path: str,
    data: bytes | None,
    size: int,
    video: VideoOptions,
    documents: DocumentOptions,
) -> Loaded:
    """An image is one frame with no time, a video several, a document pages and passages."""
    from mmsearch.indexing.extract.video import Frame, keyframes

    if kind == "video":
        from mmsearch.indexing.extract.said import subtitles
        from mmsearch.indexing.extract.video import probe

        info = probe(path)
        frames = keyframes(path, size, video, info)
        cues, note = subtitles(path, info.report, video.timeout)
        return Loaded(frames, said=cues, note=note)
    assert data is not None
    if kind == "document":
        from mmsearch.core.errors import NothingInside
        from mmsearch.indexing.extract.document import load_document, passages

        pages = load_document(path, data, size, documents)
        title = Path(path).stem.replace("_", " ")
        frames = [Frame(None, None, p.image, page=p.number) for p in pages if p.image]
        texts = [(n, f"{title}: {c}") for n, c in passages(pages, documents.max_passages)]
        if not frames and not texts:
            raise NothingInside("no text and no pictures in this document")
        return Loaded(frames, texts)
    from mmsearch.indexing.extract.image import capture_time, load_image

    return Loaded([Frame(None, None, load_image(data, size, path), capture_time(data))])
