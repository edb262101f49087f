"""Words inside pictures: a second, resumable pass that reads screenshots, scans, slides and
signs with RapidOCR (the optional `mmsearch[ocr]` extra) into the full-text index.

It runs after embedding, so it never holds up the visual index; files it has not looked at
yet carry no outcome and are picked up by the next run. In `auto` mode a picture is read only
when two looks agree that it holds words: a millisecond's look at its layout (much of it
plain: screenshots, scans, slides, pages), then the text detector alone on a small render
(~30 ms: boxes shaped like lines of text). The indexing pipeline takes both while it has
the picture decoded and stores the verdict, so a photo is never opened again to be skipped,
and one that fools the first look costs the detector's look, not the seconds a read takes.
PDF pages without a text layer get both looks from a small render; video frames only when
asked for (`video_frames`), a bounded sample per video.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
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

# The selector's view (short side): the detector's render of DETECT_SIDE a side comes from
# it, and a camera's JPEG still decodes at 1/8 scale (4000x3000: 500x375).
SELECTOR_SIDE = 360
MAX_SIDE = 1600  # pictures are shrunk to this before OCR: bounds its time and memory
# Lines read with less confidence are dropped: noise read off a photo (stars read as "★女女"
# at 0.6) would otherwise match queries as words do; real text reads at 0.9 and more.
MIN_CONFIDENCE = 0.8
# The detector's look (`holds_text`): a render this many pixels a side (a sign's word a
# twentieth of a photo high still shows), and what a box must be to count as a line of text.
DETECT_SIDE = 480
LINE_SCORE = 0.65  # one box this sure is a line: a sign, a title
FAINT_LINE = 0.5  # three boxes this sure are lines: a page, a screen
LINE_SHAPE = 1.8  # a line is at least this many times as wide as it is tall
LINE_AREA = 0.3  # and covers at most this share of the picture (not the photo itself)
STROKES = 0.1  # rows of print: 0.17-0.25 measured; textures (a brick wall) reach 0.094
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
    """The first look, a few milliseconds: screenshots, scans, slides and pages are mostly
    plain (locally flat blocks: a background) or a dense grey page, and either way hold rows
    of sharp strokes (letters: small print blurs away at 256 pixels, so rows are counted at
    DETECT_SIDE). Plain photos (the moon, a clock, a silhouette, a logo) have no such rows;
    what still passes, the detector's look (`holds_text`) turns away."""
    grey = np.asarray(image.convert("L").resize((256, 256)), dtype=np.float32)
    blocks = grey.reshape(32, 8, 32, 8).transpose(0, 2, 1, 3).reshape(32, 32, 64).std(axis=2)
    flat, busy = (blocks < 4).mean(), (blocks > 40).mean()
    rgb = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    colour = (rgb.max(axis=2) - rgb.min(axis=2)).mean()
    plain = flat >= 0.5  # a window, a slide, a page with margins, a sign
    page_of_strokes = flat >= 0.3 and busy >= 0.04 and flat + busy >= 0.55 and colour < 30
    return bool((plain or page_of_strokes) and _strokes(image) >= STROKES)


def _strokes(image: Image.Image) -> float:
    """The densest row's share of sharp left-to-right steps (a letter's edges) in a render of
    DETECT_SIDE a side: 0.17-0.25 for a line of print, under 0.07 for plain photos."""
    grey = image.convert("L")
    grey.thumbnail((DETECT_SIDE, DETECT_SIDE))
    steps = np.abs(np.diff(np.asarray(grey, dtype=np.int16), axis=1)) > 40
    return float(steps.mean(axis=1).max())


def worth_reading(image: Image.Image) -> bool:
    """`auto`'s verdict: both looks see words (the cheap one first)."""
    return looks_like_text(image) and holds_text(image)


def holds_text(image: Image.Image) -> bool:
    """The second look: the text detector alone on a render of DETECT_SIDE pixels finds a
    box shaped like a line of text (LINE_SCORE, wider than tall, not the whole picture), or
    several fainter ones (the lines of a scan or a screen). Photos give no box, or one
    square-ish box over most of the picture."""
    picture = image.convert("RGB")
    picture.thumbnail((DETECT_SIDE, DETECT_SIDE))
    with _engine_lock:
        found = _detector()(np.asarray(picture), use_det=True, use_cls=False, use_rec=False)
    boxes = found.boxes if getattr(found, "boxes", None) is not None else ()
    scores = found.scores if getattr(found, "scores", None) is not None else ()
    width, height = picture.size
    lines = []
    for box, box_score in zip(boxes, scores, strict=False):
        corners = np.asarray(box, dtype=np.float32)
        w, h = np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[3] - corners[0])
        if w >= LINE_SHAPE * h and w * h <= LINE_AREA * width * height:
            lines.append(float(box_score))
    return any(s >= LINE_SCORE for s in lines) or sum(s >= FAINT_LINE for s in lines) >= 3


_engines: dict[str, Any] = {}
_engine_lock = threading.Lock()


def _reader() -> Any:
    """The whole engine (detection, orientation, recognition), loaded once."""
    return _engine("reader", {})


def _detector() -> Any:
    """The detection model alone, at most DETECT_SIDE a side (the engine's own default
    scales a picture's short side up to 736 first, 4x the work for a first look)."""
    limits = {"Det.limit_side_len": DETECT_SIDE, "Det.limit_type": "max"}
    return _engine("detector", {"Global.use_cls": False, "Global.use_rec": False, **limits})


def _engine(name: str, params: dict[str, Any]) -> Any:
    if name not in _engines:
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        from rapidocr import RapidOCR

        _engines[name] = RapidOCR(params={"Global.log_level": "error", **params})
    return _engines[name]


Line = tuple[str, float]  # a line read, and how sure the engine was of it (0-1)


def read_lines(image: Image.Image) -> list[Line]:
    """The lines OCR reads in `image` with enough confidence that read as words."""
    with _engine_lock:
        picture = image.convert("RGB")
        picture.thumbnail((MAX_SIDE, MAX_SIDE))
        result = _reader()(np.asarray(picture), use_det=True, use_cls=True, use_rec=True)
    texts, scores = getattr(result, "txts", None) or (), getattr(result, "scores", None) or ()
    return [
        (t, round(float(s), 3))
        for t, s in zip(texts, scores, strict=False)
        if s >= MIN_CONFIDENCE and reads_as_words(t)
    ]


def passages(lines: list[Line]) -> Iterator[Line]:
    """Consecutive lines gathered into passages of up to CHUNK_WORDS words (a longer line
    alone, in overlapping chunks), each with its least certain line's confidence: what the
    store keeps of the engine's certainty."""
    from mmsearch.indexing.extract.document import CHUNK_WORDS, chunks

    held: list[Line] = []
    for text, sure in lines:
        if held and sum(len(t.split()) for t, _ in held) + len(text.split()) > CHUNK_WORDS:
            yield " ".join(t for t, _ in held), min(s for _, s in held)
            held = []
        if len(text.split()) > CHUNK_WORDS:
            yield from ((part, sure) for part in chunks(text))
        else:
            held.append((text, sure))
    if held:
        yield " ".join(t for t, _ in held), min(s for _, s in held)


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


Found = list[tuple[float | None, int | None, list[Line]]]  # (t, page, lines)


def _read_file(coll: Collection, row: dict[str, Any], mode: str, video_frames: int) -> Found | str:
    """The words in one file's pictures, or the outcome when there is nothing to read."""
    path, kind = row["path"], row["kind"]
    if kind == "image":
        from mmsearch.indexing.extract.image import load_image

        with open(path, "rb") as f:
            picture = load_image(f.read(), MAX_SIDE, path)
        if mode == "auto" and not worth_reading(picture):
            return OcrOutcome.SKIPPED
        lines = read_lines(picture)
        return [(None, None, lines)] if lines else []
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
        if mode == "auto" and not worth_reading(render_page(data, page, DETECT_SIDE)):
            continue
        looked += 1
        lines = read_lines(render_page(data, page, MAX_SIDE))
        if lines:
            found.append((None, page, lines))
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
        if mode == "auto" and not worth_reading(picture):
            continue
        looked += 1
        lines = read_lines(picture)
        if lines:
            found.append((t, None, lines))
    return found if looked else OcrOutcome.SKIPPED


def _items(row: dict[str, Any], found: Found, embedder: Callable[[], Embedder]) -> list[Item]:
    from mmsearch.storage.store import Item

    read = [(t, page, text, sure) for t, page, lines in found for text, sure in passages(lines)]
    if not read:
        return []
    vectors = embedder().embed_texts([text for _, _, text, _ in read])
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
            text=text,
            origin="ocr",
            confidence=sure,
        )
        for (t, page, text, sure), v in zip(read, vectors, strict=True)
    ]
