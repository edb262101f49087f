"""What a result looks like: a photo, a video's frame at its moment, a document's page, as a
JPEG of a given size, made once and kept under the cache (the web UI's grid and the MCP
server's thumbnails), so a result seen twice costs a file read."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.core.config import cache_root
from mmsearch.core.errors import ExtractError, one_line
from mmsearch.core.private import private_cache, write_private
from mmsearch.core.vocab import Kind

if TYPE_CHECKING:
    from PIL import Image

THUMB = 256  # the long side of a grid thumbnail
LARGE = 1024  # the long side of a picture shown alone (a page, a photo)


def cache_dir() -> Path:
    return cache_root() / "pictures"  # private: made by `private_cache` when first written


def picture(path: str, kind: str, t: float | None, page: int | None, side: int) -> bytes:
    """The JPEG of a result, `side` pixels on its long side; ExtractError when the file has
    no picture (a text file) or cannot be read any more."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ExtractError(f"cannot read {path}: {e.strerror or e}") from None
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{kind}\0{t}\0{page}\0{side}"
    cached = cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".jpg")
    try:
        return cached.read_bytes()
    except OSError:
        pass
    try:
        data = _make(path, kind, t, page, side)
    except ExtractError:
        raise
    except Exception as e:  # a page past the end, a file changed under us: no picture
        raise ExtractError(f"no picture of {os.path.basename(path)}: {one_line(e)}") from None
    with contextlib.suppress(OSError):  # a cache: failing to keep it costs time, no more
        write_private(private_cache("pictures") / cached.name, data)  # 0700 folder, 0600 file
    return data


def _make(path: str, kind: str, t: float | None, page: int | None, side: int) -> bytes:
    from PIL import Image

    if kind == Kind.VIDEO:
        picture = _frame(path, t or 0.0, side)  # uncropped (the model's frames are square)
    elif kind == Kind.DOCUMENT:
        if not path.lower().endswith(".pdf"):
            raise ExtractError("a text document has no picture")
        from mmsearch.indexing.extract.document import render_page

        with open(path, "rb") as f:
            picture = render_page(f.read(), page or 1, side)
    else:
        from mmsearch.indexing.extract.image import load_image

        with open(path, "rb") as f:
            picture = load_image(f.read(), side)
    picture.thumbnail((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _frame(path: str, t: float, side: int) -> Image.Image:
    """One frame at `t` seconds, its long side `side` pixels, uncropped."""
    import subprocess

    from PIL import Image

    from mmsearch.indexing.extract.video import one_frame

    fit = f"scale={side}:{side}:force_original_aspect_ratio=decrease"
    png = ["-loglevel", "error", "-f", "image2pipe", "-c:v", "png", "pipe:1"]
    cmd = [*one_frame(path, t, fit), *png]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExtractError(f"no frame at {t:g} s: {e}") from None
    if not done.stdout:
        problem = " ".join(done.stderr.decode(errors="replace").split())[:200]
        raise ExtractError(f"no frame at {t:g} s: {problem or 'ffmpeg gave nothing'}")
    return Image.open(io.BytesIO(done.stdout))
