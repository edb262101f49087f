"""Inline thumbnails for terminals that show pictures (kitty, iTerm2, WezTerm): a result's
picture, or its video moment, made small and wrapped in the terminal's escape sequence."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mmsearch.core.vocab import Kind

if TYPE_CHECKING:
    from mmsearch.query.ranking import Hit


def image_protocol(env: Mapping[str, str]) -> str | None:
    """ "kitty" or "iterm" when the terminal shows inline images that way, else None."""
    if env.get("KITTY_WINDOW_ID") or env.get("TERM") == "xterm-kitty":
        return "kitty"
    if env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    return None


def escape(hit: Hit, protocol: str, rows: int = 6) -> str:
    """An inline thumbnail of the hit (its moment, for a video), or "" if none can be made."""
    try:
        png = png_of(hit)
    except Exception:  # a missing or unreadable file just gets no thumbnail
        return ""
    data = base64.b64encode(png).decode("ascii")
    if protocol == "iterm":
        return f"\x1b]1337;File=inline=1;height={rows};preserveAspectRatio=1:{data}\x07"
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    escapes = []
    for i, chunk in enumerate(chunks):
        more = 1 if i < len(chunks) - 1 else 0
        head = f"a=T,f=100,r={rows}," if i == 0 else ""
        escapes.append(f"\x1b_G{head}m={more};{chunk}\x1b\\")
    return "".join(escapes)


def png_of(hit: Hit) -> bytes:
    import io

    from PIL import Image

    if hit.kind == Kind.VIDEO:
        from mmsearch.indexing.extract.video import frame_at

        picture = frame_at(hit.path, hit.t or 0.0, 256)
    else:
        from mmsearch.indexing.extract.image import load_image

        with open(hit.path, "rb") as f:
            picture = load_image(f.read(), 256, hit.path)
    picture.thumbnail((256, 256), Image.BILINEAR)
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()
