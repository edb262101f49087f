"""A picture decodes only to the size the model and the thumbnails need: a large PNG whose
few compressed bytes declare hundreds of megabytes of pixels is read strip by strip into a
reduction, in indexing, thumbnails and uploads alike, and gives the picture Pillow would."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import file_rows, make_image, run
from PIL import Image

from mmsearch.core.errors import ExtractError
from mmsearch.indexing.extract import image, png

SIDE = 6000  # 36 Mpx RGBA: 144 MB of pixels from a file of about 50 KB


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_gradient_png(path: Path, side: int = SIDE) -> None:
    """An RGBA PNG written a row at a time (so the test never holds its pixels), each row
    filtered with Up: a horizontal ramp, the same on every row."""
    row = np.zeros((side, 4), np.uint8)
    row[:, 0] = np.arange(side) * 255 // side
    row[:, 1:] = (90, 200, 255)
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(b"\x00" + row.tobytes())]
    up = b"\x02" + bytes(side * 4)  # each later row: the one above it, unchanged
    parts += [deflate.compress(up) for _ in range(side - 1)]
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def peak_mib(code: str) -> tuple[float, float]:
    """Peak RSS (MiB) of a child process after its imports, and at the end of `code`: its
    own high-water mark (VmHWM), since ru_maxrss survives exec and would be pytest's."""
    script = (
        textwrap.dedent(
            """
        import re
        import mmsearch.doors.pictures, mmsearch.indexing.extract, PIL.PngImagePlugin
        def peak():
            status = open("/proc/self/status").read()
            return int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024
        before = peak()
        """
        )
        + textwrap.dedent(code)
        + "\nprint(before, peak())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    before, after = map(float, done.stdout.split())
    return before, after


CALLERS = {
    "indexing": "from mmsearch.core.config import DocumentOptions, VideoOptions\n"
    "mmsearch.indexing.extract.load("
    "'image', path, open(path, 'rb').read(), 224, VideoOptions(), DocumentOptions())",
    "a thumbnail": "mmsearch.doors.pictures._make(path, 'image', None, None, 1024)",
    "an upload": "from mmsearch.indexing.extract.image import load_image\n"
    "load_image(open(path, 'rb').read(), 512)",
}


@pytest.mark.parametrize("caller", CALLERS)
def test_a_large_png_is_decoded_without_its_full_raster(tmp_path: Path, caller: str) -> None:
    """144 MB of declared RGBA pixels cost well under their size (Pillow's whole decode and
    its copies took over 500 MB)."""
    path = tmp_path / "big.png"
    write_gradient_png(path)
    before, after = peak_mib(f"path = {str(path)!r}\n{CALLERS[caller]}")
    assert after - before < 64, f"{caller}: {after - before:.0f} MiB"


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P"])
@pytest.mark.parametrize("factor", [1, 3])
def test_a_streamed_png_is_the_picture_pillow_decodes(
    mode: str, factor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strip by strip (strips of a few rows here, every filter type in play) the pixels are
    Pillow's own, reduced by the same box filter."""
    monkeypatch.setattr(png, "STRIP_BYTES", 4096)
    rng = np.random.default_rng(7)
    h, w = 203, 157
    ramp = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    grey = ramp + rng.integers(0, 40, (h, w), dtype=np.uint8)
    layers = np.stack([grey, grey[::-1], 255 - grey, grey // 2 + 100], -1)
    if mode == "P":
        picture = Image.fromarray(layers[..., :3]).quantize(200)
    else:
        bands = len(mode)
        picture = Image.fromarray(layers[..., 0] if bands == 1 else layers[..., :bands], mode)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", **({"transparency": 3} if mode == "P" else {}))
    data = buffer.getvalue()
    assert png.streamable(data)
    got = png.reduced_png(data, Image.open(io.BytesIO(data)), factor, image.to_rgb)
    want = image.to_rgb(Image.open(io.BytesIO(data))).reduce(factor)
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_a_large_png_cut_short_fails_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    write_gradient_png(path)
    data = path.read_bytes()
    with pytest.raises(ExtractError, match="cut short or damaged"):
        image.load_image(data[: len(data) // 2], 224)


def test_a_large_png_is_indexed_beside_good_photos(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    make_image(folder / "good.jpg", seed=1)
    write_gradient_png(folder / "big.png")
    result = run("index", "-q", "--ocr", "never", str(folder))
    assert result.exit_code == 0, result.stderr
    assert {r["status"] for r in file_rows().values()} == {"ok"}


def test_a_picture_decoded_whole_past_the_raster_limit_fails_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WebP (no reduced decode exists) that declares more pixels than the limit holds is
    refused before decoding, beside a good photo that is indexed."""
    monkeypatch.setattr(image, "MAX_RASTER_BYTES", 1 << 20)
    folder = tmp_path / "lib"
    make_image(folder / "good.jpg", seed=1)
    Image.new("RGBA", (1024, 1024), (10, 20, 30, 128)).save(folder / "big.webp", lossless=True)
    result = run("index", "-q", "--ocr", "never", str(folder))
    assert result.exit_code == 0, result.stderr
    rows = file_rows()
    assert rows[str(folder / "good.jpg")]["status"] == "ok"
    assert "image too large to decode" in rows[str(folder / "big.webp")]["reason"]


def test_a_picture_decoded_whole_is_reduced_to_what_is_needed() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4200, 3000), (200, 30, 30)).save(buffer, "WEBP", lossless=True)
    picture = image.load_image(buffer.getvalue(), 224)
    assert min(picture.size) < 3000
    assert min(picture.size) >= image.WORKING_SIDE
