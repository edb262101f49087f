"""A large PNG decoded strip by strip into a box-filtered reduction, so a 250 Mpx RGBA
picture (1 GB of pixels, often a 1 MB file) never holds more than one strip at full size.

Pillow decodes a PNG only whole. Each strip here is handed to Pillow's own decoder as a
small PNG stream of its own: the strip's filtered rows, inflated from the file a bounded
piece at a time, behind the previous strip's last row (unfiltered, filter type 0), which is
all that PNG's Up, Average and Paeth filters look back at.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator

from PIL import Image

from mmsearch.core.errors import ExtractError

STRIP_BYTES = 4 << 20  # filtered bytes of one strip (its copies while decoding: ~8x this)
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MODES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}


def streamable(data: bytes) -> bool:
    """An 8-bit, non-interlaced PNG: the layouts whose rows Pillow unpacks byte for byte."""
    if not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    depth, colour, interlace = data[24], data[25], data[28]
    return depth == 8 and colour in _MODES and interlace == 0


def reduced_png(
    data: bytes, img: Image.Image, factor: int, to_rgb: Callable[[Image.Image], Image.Image]
) -> Image.Image:
    """The PNG in `data` (opened, not loaded, as `img`) as RGB, each side divided by
    `factor` (box filter); `to_rgb` lays each strip's transparency on white first."""
    w, h = img.size
    mode, bands = _MODES[data[25]]
    stride = 1 + w * bands
    rows = max(factor, (STRIP_BYTES // stride) // factor * factor)
    out = Image.new("RGB", (-(-w // factor), -(-h // factor)))
    prior = bytes(stride)  # the row above the first: zeros, as PNG defines it
    pieces = _Pieces(data)
    for y0 in range(0, h, rows):
        n = min(rows, h - y0)
        filtered = _take(pieces, n * stride)
        strip = Image.frombytes(mode, (w, n + 1), zlib.compress(prior + filtered, 0), "zip", mode)
        prior = b"\x00" + strip.crop((0, n, w, n + 1)).tobytes()
        strip = strip.crop((0, 1, w, n + 1))
        if mode == "P":
            strip.palette = img.palette.copy()
            strip.info.update({k: v for k, v in img.info.items() if k == "transparency"})
        out.paste(to_rgb(strip).reduce(factor), (0, y0 // factor))
    return out


class _Pieces:
    """The inflated image data, a bounded piece at a time, with what is left of the last."""

    def __init__(self, data: bytes) -> None:
        self.chunks, self.buf = _chunks(data, b"IDAT"), b""
        self.inflate = zlib.decompressobj()


def _take(p: _Pieces, n: int) -> bytes:
    """The next `n` inflated bytes: never inflates more than a strip ahead, so a stream that
    says it holds more than the picture cannot grow past it."""
    parts, have = [p.buf], len(p.buf)
    while have < n:
        pending = p.inflate.unconsumed_tail or next(p.chunks, b"")
        if not pending:
            raise ExtractError("cannot decode image: the file is cut short or damaged")
        try:
            piece = p.inflate.decompress(pending, n - have)
        except zlib.error:
            raise ExtractError("cannot decode image: the file is cut short or damaged") from None
        parts.append(piece)
        have += len(piece)
    whole = b"".join(parts)
    p.buf = whole[n:]
    return whole[:n]


def exif(data: bytes) -> Image.Exif:
    """The EXIF of a PNG (its eXIf chunk), empty when it has none. Pillow's own `getexif`
    decodes the whole picture first, to find a chunk that may follow the image data."""
    value = Image.Exif()
    for chunk in _chunks(data, b"eXIf"):
        value.load(chunk)
        break
    return value


def _chunks(data: bytes, wanted: bytes) -> Iterator[bytes]:
    """The data of each chunk of type `wanted`, in order."""
    view, at = memoryview(data), 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == wanted:
            yield bytes(view[at + 8 : at + 8 + length])
        elif kind == b"IEND":
            return
        at += 12 + length
