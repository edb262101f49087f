"""Decode one image file into an upright RGB picture, cheaply and defensively."""

from __future__ import annotations

import io
import re
import warnings
from datetime import datetime

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from mmsearch.errors import ExtractError, one_line

register_heif_opener()

# Larger than any camera or panorama a person keeps, smaller than a decompression bomb declares.
MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = None  # we check the declared size ourselves, before decoding


def load_image(data: bytes, min_side: int) -> Image.Image:
    """Decode `data`, using JPEG draft mode to skip pixels the model will never see.

    `min_side` is the model's input size: draft decoding keeps both sides at least this large,
    so the later resize loses nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ExtractError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS:,})")
            if img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ExtractError:
        raise
    except UnidentifiedImageError:
        raise ExtractError("not a readable image (corrupt, or not what its name says)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise ExtractError(f"cannot decode image: {one_line(e)}") from None
    except Exception as e:
        raise ExtractError(f"cannot decode image: {type(e).__name__}: {one_line(e)}") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white: a logo on black would otherwise embed as a black square."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


_EXIF_IFD, _DATETIME_ORIGINAL, _OFFSET_ORIGINAL, _DATETIME = 0x8769, 0x9003, 0x9011, 0x0132


def capture_time(data: bytes) -> float | None:
    """When the photo was taken (EXIF DateTimeOriginal, with its offset when recorded, else
    local time), in seconds since the epoch; None when the file does not say."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            stamp = sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
            offset = sub.get(_OFFSET_ORIGINAL)
    except Exception:
        return None
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.strptime(stamp.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        if isinstance(offset, str) and re.fullmatch(r"[+-]\d\d:\d\d", offset.strip("\x00 ")):
            moment = datetime.fromisoformat(moment.isoformat() + offset.strip("\x00 "))
    except ValueError:
        return None
    return moment.timestamp() if moment.year > 1900 else None
