"""Words inside pictures: a second, resumable pass that reads screenshots, scans, slides and
signs with RapidOCR (the optional `mmsearch[ocr]` extra) into the full-text index.

It runs after embedding, so it never holds up the visual index; files it has not looked at
yet carry no outcome and are picked up by the next run. In `auto` mode a cheap look at each
picture (a flat background and sharp strokes: screenshots, scans, slides) decides whether
the OCR engine is worth its second per picture: the indexing pipeline takes that look while
it decodes a picture and stores the verdict, and PDF pages without a text layer get it from
a small render; video frames only when asked for (`video_frames`), a bounded sample per video.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mmsearch.core.errors import MmsearchError, one_line
from mmsearch.core.formats import ext_of
from mmsearch.core.vocab import OcrOutcome

if TYPE_CHECKING:
    from mmsearch.model.embed import Embedder
    from mmsearch.storage.store import Collection, Item

SELECTOR_SIDE = 256  # the selector's view: strokes still show, a JPEG decodes at 1/8 scale
MAX_SIDE = 1600  # pictures are shrunk to this before OCR: bounds its time and memory
# Lines read with less confidence are dropped: noise read off a photo (stars read as "★女女"
# at 0.6) would otherwise match queries as words do; real text reads at 0.9 and more.
MIN_CONFIDENCE = 0.8
PAGE_TEXT_LAYER = 20  # a PDF page with fewer extracted characters is treated as a scan


@dataclass
class OcrReport:
    text: int = 0  # files where words were read
    none: int = 0  # read, but no words found
    skipped: int = 0  # the selector saw no sign of text
    failed: int = 0
    seconds: float = 0.0


def available() -> bool:
    return importlib.util.find_spec("rapidocr") is not None


def looks_like_text(image: Image.Image) -> bool:
    """Screenshots, scans, slides: much of the picture locally flat (a background), many
    blocks crossed by sharp strokes, and little colour. About a millisecond; measured on
    scikit-image's photos and scans and on rendered screens (see README)."""
    grey = np.asarray(image.convert("L").resize((256, 256)), dtype=np.float32)
    blocks = grey.reshape(32, 8, 32, 8).transpose(0, 2, 1, 3).reshape(32, 32, 64).std(axis=2)
    flat, busy = (blocks < 4).mean(), (blocks > 40).mean()
    rgb = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    colour = (rgb.max(axis=2) - rgb.min(axis=2)).mean()
    plain_with_strokes = flat >= 0.8 and busy >= 0.005  # a window with a few lines of text
    page_of_strokes = flat >= 0.3 and busy >= 0.04 and flat + busy >= 0.55  # a dense page
    return bool((plain_with_strokes or page_of_strokes) and colour < 30)


_engine: Any = None
_engine_lock = threading.Lock()


def read_words(image: Image.Image) -> str:
    """The lines OCR reads in `image` with enough confidence, one per line."""
    global _engine
    with _engine_lock:
        if _engine is None:
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            from rapidocr import RapidOCR

            _engine = RapidOCR()
        picture = image.convert("RGB")
        picture.thumbnail((MAX_SIDE, MAX_SIDE))
        result = _engine(np.asarray(picture))
    texts, scores = getattr(result, "txts", None) or (), getattr(result, "scores", None) or ()
    kept = (t for t, s in zip(texts, scores, strict=False) if s >= MIN_CONFIDENCE)
    return "\n".join(t for t in kept if reads_as_words(t))


def reads_as_words(line: str) -> bool:
    """Whether an OCR line reads as words: mostly letters or digits, with a word of two or
    more different characters ("EXIT", "图书", "42 km"), not symbols or one stroke repeated."""
    shown = [ch for ch in line if not ch.isspace()]
    if not shown or sum(ch.isalnum() for ch in shown) < 0.6 * len(shown):
        return False
    return any(len(set(word)) >= 2 for word in re.findall(r"\w+", line))


def ocr_pass(
    coll: Collection,
    paths: list[str],
    embedder: Callable[[], Embedder],
    mode: str,
    video_frames: int,
    progress: Any = None,
) -> OcrReport:
    report = OcrReport()
    if mode == "never":
        return report
    if not available():
        if mode == "always":
            raise MmsearchError("--ocr always needs the OCR extra: pip install 'mmsearch[ocr]'")
        return report
    started = time.monotonic()
    pending = coll.ocr_pending(paths, ["image", "video", "document"])
    if progress and pending:
        progress.start(len(pending), "reading words")
    items: list[Item] = []
    outcomes: dict[str, str] = {}
    last_flush = time.monotonic()
    for row in pending:
        try:
            found = _read_file(coll, row, mode, video_frames)
        except Exception as e:  # the engine failing on one picture is that file's outcome
            found = f"error: {type(e).__name__}: {one_line(e)}"
        if isinstance(found, str):
            outcomes[row["path"]] = found
        else:
            items += _items(row, found, embedder)
            outcomes[row["path"]] = OcrOutcome.TEXT if found else OcrOutcome.NONE
        key = outcomes[row["path"]]
        key = "failed" if key.startswith("error") else key
        setattr(report, key, getattr(report, key) + 1)
        if progress:
            progress.advance()
        if len(outcomes) >= 32 or time.monotonic() - last_flush > 5:
            coll.write_ocr(items, outcomes)
            items, outcomes, last_flush = [], {}, time.monotonic()
    if outcomes:
        coll.write_ocr(items, outcomes)
    report.seconds = time.monotonic() - started
    return report


Found = list[tuple[float | None, int | None, str]]  # (t, page, words)


def _read_file(coll: Collection, row: dict[str, Any], mode: str, video_frames: int) -> Found | str:
    """The words in one file's pictures, or the outcome when there is nothing to read."""
    path, kind = row["path"], row["kind"]
    if kind == "image":
        from mmsearch.indexing.extract.image import load_image

        with open(path, "rb") as f:
            picture = load_image(f.read(), MAX_SIDE, path)
        if mode == "auto" and not looks_like_text(picture):
            return OcrOutcome.SKIPPED
        words = read_words(picture)
        return [(None, None, words)] if words else []
    if kind == "document" and ext_of(path) == ".pdf":
        return _read_scanned_pages(coll, path, mode)
    if kind == "video" and video_frames > 0:
        return _read_video(coll, path, mode, video_frames)
    return OcrOutcome.SKIPPED


def _read_scanned_pages(coll: Collection, path: str, mode: str) -> Found | str:
    rows = coll.pictures_of(path)
    pages = {r["page"] for r in rows if r["page"] is not None}
    text_length: dict[int, int] = {}
    for r in rows:
        if r["text"] and r["origin"] != "ocr" and r["page"] is not None:
            text_length[r["page"]] = text_length.get(r["page"], 0) + len(r["text"])
    scans = sorted(p for p in pages if text_length.get(p, 0) < PAGE_TEXT_LAYER)
    if not scans:
        return OcrOutcome.SKIPPED
    from mmsearch.indexing.extract.document import render_page

    with open(path, "rb") as f:
        data = f.read()
    found: Found = []
    looked = 0
    for page in scans:
        # A page without a text layer may be a scan or may be blank (a divider, a photo):
        # a small render shows which, for a fraction of what reading it costs.
        if mode == "auto" and not looks_like_text(render_page(data, page, SELECTOR_SIDE * 2)):
            continue
        looked += 1
        words = read_words(render_page(data, page, MAX_SIDE))
        if words:
            found.append((None, page, words))
    return found if looked else OcrOutcome.SKIPPED


def _read_video(coll: Collection, path: str, mode: str, limit: int) -> Found | str:
    from mmsearch.indexing.extract.video import frame_at

    times = sorted({r["t"] for r in coll.pictures_of(path) if r["t"] is not None})
    found: Found = []
    looked = 0
    for t in times:
        if looked >= limit:
            break
        picture = frame_at(path, t, 960)
        if mode == "auto" and not looks_like_text(picture):
            continue
        looked += 1
        words = read_words(picture)
        if words:
            found.append((t, None, words))
    return found if looked else OcrOutcome.SKIPPED


def _items(row: dict[str, Any], found: Found, embedder: Callable[[], Embedder]) -> list[Item]:
    from mmsearch.indexing.extract.document import chunks
    from mmsearch.storage.store import Item

    passages = [(t, page, passage) for t, page, words in found for passage in chunks(words)]
    if not passages:
        return []
    vectors = embedder().embed_texts([p for _, _, p in passages])
    return [
        Item(
            row["path"],
            row["kind"],
            row["content_hash"],
            v,
            t=t,
            page=page,
            ext=ext_of(row["path"]),
            taken=row["mtime_ns"] / 1e9,
            text=passage,
            origin="ocr",
        )
        for (t, page, passage), v in zip(passages, vectors, strict=True)
    ]
