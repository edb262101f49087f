"""Decode one image file into an upright RGB picture, faithfully, cheaply and defensively.

Faithfully: 16-bit pictures in either byte order, 10- and 12-bit data stored in 16 bits and
float TIFFs are scaled by their real range (not by 1/256, which leaves 12-bit data black);
CMYK and LAB go through colour management; transparency is laid on white. Cheaply: JPEG and
JPEG 2000 decode at a reduced scale, HEIC from its embedded thumbnail when it is large
enough, camera raw from its embedded preview (else a half-size demosaic), and a large TIFF
or 8-bit PNG (png.py) strip by strip into a box-filtered reduction, so no single picture
holds its full-size pixels. `load_image` is what indexing, `similar` and OCR all call.
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import datetime

import numpy as np
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from mmsearch.core.errors import ExtractError, NothingInside, one_line
from mmsearch.core.formats import format_of
from mmsearch.indexing.extract import png
from mmsearch.indexing.extract.quiet import decoder_stderr

register_heif_opener()

# Larger than any camera or panorama a person keeps, smaller than a decompression bomb declares.
MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = None  # we check the declared size ourselves, before decoding
# A TIFF larger than this, or deeper than 8 bits, is read strip by strip (tifffile).
STREAM_PIXELS = 16_000_000
# The most a picture decoded whole (WebP, GIF, BMP, interlaced or 16-bit PNG) may hold in
# Pillow: an 8000x8000 RGBA WebP of 22 KB (244 MiB) peaks at 1,019 MiB while decoding.
MAX_RASTER_BYTES = 256 << 20
WORKING_SIDE = 1024  # the short side a reduced decode keeps at least (OCR reads up to this)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_STREAMED_COMPRESSIONS = {1, 5, 7, 8, 32773, 32946, 34925, 50000}  # none, LZW, JPEG, deflate …


def load_image(data: bytes, min_side: int, name: str = "") -> Image.Image:
    """Decode `data` (named `name`, whose extension picks camera raw) into RGB whose short
    side is at least `min_side` where the file is that large, so the model's later resize
    loses nothing."""
    if not data:
        raise NothingInside("empty file (0 bytes)")
    fmt = format_of(name) if name else None
    said: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt is not None and fmt.extractor.startswith("rawpy"):
                return _raw(data, min_side)
            if data[:4] not in _TIFF_MAGIC:
                return _pillow(data, min_side)
            with decoder_stderr() as said:  # libtiff prints to fd 2
                return _pillow(data, min_side)
    except ExtractError:
        raise
    except MemoryError:
        raise ExtractError("not enough memory to decode this image") from None
    except Exception as e:
        reason = said[-1] if said else _reason(e)  # the decoder's own words, when it said any
        raise ExtractError(f"cannot decode image: {reason}") from None


def _pillow(data: bytes, min_side: int) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[:4] in _TIFF_MAGIC:
            return _tiff(data, min_side)  # layouts Pillow does not open (float64 RGB, …)
        raise ExtractError(_not_an_image(data)) from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ExtractError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS:,})")
    if img.format == "TIFF" and (w * h > STREAM_PIXELS or _deep(img)):
        streamed = _tiff(data, min_side, fallback=False)
        if streamed is not None:
            return streamed
    if img.format == "PNG" and w * h > STREAM_PIXELS and png.streamable(data):
        factor = max(1, min(w, h) // max(min_side, WORKING_SIDE))
        return _orient(png.reduced_png(data, img, factor, to_rgb), png.exif(data).get(274, 1))
    if img.format in ("JPEG", "MPO"):
        img.draft("RGB", (min_side, min_side))  # MPO: the first picture, like a JPEG
    elif img.format == "JPEG2000":
        img.reduce = _halvings(min(w, h), max(min_side, WORKING_SIDE))  # type: ignore[method-assign]
    elif hasattr(img, "_heif_file"):
        img.draft(None, (max(min_side, WORKING_SIDE),) * 2)  # an embedded thumbnail, if any
    elif w * h * _pixel_bytes(img.mode) > MAX_RASTER_BYTES:
        raise ExtractError(
            f"image too large to decode: {w}x{h} {img.format} pixels take "
            f"{w * h * _pixel_bytes(img.mode) >> 20:,} MiB (limit {MAX_RASTER_BYTES >> 20} MiB)"
        )
    img.load()
    orientation = img.getexif().get(274, 1)
    return _orient(to_rgb(_reduced(img, max(min_side, WORKING_SIDE))), orientation)


def _pixel_bytes(mode: str) -> int:
    """What Pillow holds for one pixel of `mode` (three or two bands take four bytes)."""
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _reduced(img: Image.Image, keep: int) -> Image.Image:
    """A whole decode box-filtered down to a short side of at least `keep` at once, before
    colour conversion and transparency copy its pixels three times over."""
    factor = min(img.size) // keep
    if factor < 2:
        return img
    if img.mode in ("1", "P"):  # no box filter for a palette: the nearest pixel keeps it
        size = (-(-img.width // factor), -(-img.height // factor))
        return img.resize(size, Image.Resampling.NEAREST)
    try:
        return img.reduce(factor)
    except ValueError:  # a mode Pillow does not reduce (I;16): whole, as before
        return img


def _halvings(side: int, keep: int) -> int:
    """How many times a side can be halved and stay at least `keep`."""
    n = 0
    while side >> (n + 1) >= keep:
        n += 1
    return n


def _deep(img: Image.Image) -> bool:
    """More than 8 bits a sample, or samples that are not unsigned integers: Pillow would
    truncate them (16-bit RGB by 1/256) or refuse them."""
    tags = getattr(img, "tag_v2", {})

    def values(tag: int, default: int) -> tuple[int, ...]:
        v = tags.get(tag, default)
        return v if isinstance(v, tuple) else (v,)

    return max(values(258, 8)) > 8 or set(values(339, 1)) != {1}  # BitsPerSample, SampleFormat


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB with its colours kept: transparency on white (a logo on
    black would embed as a black square), deep data by its real range, CMYK/LAB managed."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_8bit(np.asarray(img))).convert("RGB")
    if mode in ("CMYK", "LAB"):
        return _managed(img)
    return img.convert("RGB")


def _managed(img: Image.Image) -> Image.Image:
    from PIL import ImageCms

    try:
        icc = img.info.get("icc_profile")
        if img.mode == "LAB":
            source = ImageCms.createProfile("LAB")
        elif icc:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        else:
            return img.convert("RGB")
        return ImageCms.profileToProfile(
            img, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )  # type: ignore[return-value]
    except (ImageCms.PyCMSError, OSError, ValueError):
        if img.mode == "LAB":
            return img.getchannel("L").convert("RGB")  # lightness at least, faithfully
        return img.convert("RGB")


def _to_8bit(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Deep samples to 8 bits by their real range: integers by the bits they use (12-bit
    data in 16 by 4095), floats by 0..1 when they lie there, else by their own extremes."""
    if lo is None or hi is None:
        finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
    lo, hi = _range(a.dtype, lo, hi)
    scaled = (np.nan_to_num(a.astype(np.float32), nan=lo) - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _range(dtype: np.dtype, lo: float, hi: float) -> tuple[float, float]:
    if dtype.kind == "f":
        return (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
    if lo >= 0:
        bits = max(8, int(hi).bit_length())
        return 0.0, float((1 << bits) - 1)
    return lo, hi


def _tiff(data: bytes, min_side: int, fallback: bool = True) -> Image.Image | None:
    """A TIFF read segment by segment (strips or tiles) into a box-filtered reduction whose
    short side stays at least `WORKING_SIDE`: bounded memory for a 200 MP scan. None (or,
    with `fallback`, an ExtractError) when its layout is not one this reads."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        shape = page.shape
        if page.planarconfig == 2:
            samples, h, w = (shape[0], shape[-2], shape[-1]) if len(shape) == 3 else (1, *shape)
        else:
            h, w = shape[0], shape[1]
            samples = shape[2] if len(shape) == 3 else 1
        if len(shape) > 3 or page.compression not in _STREAMED_COMPRESSIONS:
            if fallback:
                raise ExtractError(f"unsupported TIFF layout: {_describe(page)}")
            return None
        if page.dtype is None or page.dtype.kind == "c":
            raise ExtractError(f"unsupported pixel format: {_describe(page)}")
        if h * w > MAX_PIXELS:
            raise ExtractError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS:,})")
        f = max(1, min(h, w) // max(min_side, WORKING_SIDE))
        ho, wo = -(-h // f), -(-w // f)
        sums = np.zeros((ho, wo, samples), np.float64)
        counts = np.zeros((ho, wo, 1), np.float64)
        lo, hi = np.inf, -np.inf
        for seg, (plane, _, y0, x0, _), _shape in page.segments(maxworkers=1):
            block = seg[0][: h - y0, : w - x0].astype(np.float64)  # edge tiles are padded
            finite = block[np.isfinite(block)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
            rows = np.flatnonzero(np.diff((np.arange(block.shape[0]) + y0) // f, prepend=-1))
            cols = np.flatnonzero(np.diff((np.arange(block.shape[1]) + x0) // f, prepend=-1))
            reduced = np.add.reduceat(np.add.reduceat(block, rows, axis=0), cols, axis=1)
            oy, ox = y0 // f, x0 // f
            rh, rw = reduced.shape[:2]
            channel = slice(plane, plane + 1) if page.planarconfig == 2 else slice(None)
            sums[oy : oy + rh, ox : ox + rw, channel] += reduced
            if plane == 0:
                n = np.add.reduceat(np.add.reduceat(np.ones(block.shape[:2]), rows, 0), cols, 1)
                counts[oy : oy + rh, ox : ox + rw, 0] += n
        mean = sums / np.maximum(counts, 1)
        if not np.isfinite(lo):
            lo, hi = 0.0, 1.0
        pixels = _to_8bit(mean, *_range(page.dtype, lo, hi))
        picture = _from_samples(pixels, page)
        return _orient(picture, page.tags.valueof(274, 1))


def _from_samples(pixels: np.ndarray, page: object) -> Image.Image:
    samples = pixels.shape[2]
    extra = tuple(getattr(page, "extrasamples", ()) or ())
    if samples in (2, 4) and extra:  # grey or colour with alpha: laid on white
        alpha = pixels[:, :, -1:].astype(np.float32) / 255.0
        pixels = (pixels[:, :, :-1] * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)
        samples -= 1
    if samples == 1 or getattr(page, "photometric", 2) in (0, 1) or samples == 2:
        grey = pixels[:, :, 0]
        if getattr(page, "photometric", 1) == 0:  # min-is-white
            grey = 255 - grey
        return Image.fromarray(np.ascontiguousarray(grey)).convert("RGB")
    if getattr(page, "photometric", 2) == 5 and samples >= 4:  # separated: CMYK
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, :4]), "CMYK").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]))


_ORIENTATIONS = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _orient(picture: Image.Image, orientation: object) -> Image.Image:
    for step in _ORIENTATIONS.get(orientation if isinstance(orientation, int) else 1, ()):
        picture = picture.transpose(step)
    return picture


def _describe(page: object) -> str:
    """A TIFF page's pixels in words: "64-bit float RGB", "12-bit grey"."""
    dtype = getattr(page, "dtype", None)
    bits = getattr(page, "bitspersample", 0)
    kind = {"f": "float", "c": "complex", "i": "signed integer"}.get(getattr(dtype, "kind", ""), "")
    samples = getattr(page, "samplesperpixel", 1)
    colour = {1: "grey", 2: "grey with alpha", 3: "RGB", 4: "RGBA or CMYK"}.get(
        samples, f"{samples}-channel"
    )
    return f"{bits}-bit {kind} {colour}".replace("  ", " ")


def _raw(data: bytes, min_side: int) -> Image.Image:
    """A camera raw file: its embedded preview when large enough, else a half-size demosaic."""
    import rawpy

    try:
        raw = rawpy.imread(io.BytesIO(data))
    except (rawpy.LibRawFileUnsupportedError, rawpy.LibRawDataError, rawpy.LibRawIOError):
        raise ExtractError("not a camera raw file LibRaw can read") from None
    with raw:
        try:
            thumb = raw.extract_thumb()
        except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
            thumb = None
        except rawpy.LibRawError:
            thumb = None
        if thumb is not None:
            if thumb.format == rawpy.ThumbFormat.JPEG:
                preview = _pillow(bytes(thumb.data), min_side)
            else:
                preview = to_rgb(Image.fromarray(thumb.data))
            if min(preview.size) >= max(min_side, WORKING_SIDE // 2):
                return preview
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except rawpy.LibRawError as e:
            raise ExtractError(f"cannot develop camera raw: {_reason(e)}") from None
    return Image.fromarray(rgb)


_CONTAINERS = ((b"%PDF", "a PDF"), (b"PK\x03\x04", "a zip archive (a document?)"))


def _not_an_image(data: bytes) -> str:
    """Why Pillow could not open it, in the user's words."""
    for magic, what in _CONTAINERS:
        if data.startswith(magic):
            return f"is {what}, not an image"
    if data[4:8] == b"ftyp" and data[8:12] not in (b"heic", b"heix", b"mif1", b"avif", b"avis"):
        return "is a video, not an image"
    return "not a readable image (corrupt, or not what its name says)"


_LIBRARY_CONSTANT = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b0x[0-9a-fA-F]+\b|<[^>]*>")
_DAMAGED = re.compile(r"truncated|broken data|decoder error|premature end|corrupt", re.IGNORECASE)


def _reason(e: BaseException) -> str:
    """A decoder's exception in a person's words: no library constants, no addresses."""
    text = one_line(e)
    if "point operation not supported" in text or "unrecognized image mode" in text.lower():
        return "unsupported pixel format"
    if isinstance(e, (EOFError, SyntaxError)) or _DAMAGED.search(text):
        return "the file is cut short or damaged"
    text = _LIBRARY_CONSTANT.sub("", text)
    return re.sub(r"\s+", " ", text).strip(" :()") or "damaged data"


_EXIF_IFD, _DATETIME_ORIGINAL, _OFFSET_ORIGINAL, _DATETIME = 0x8769, 0x9003, 0x9011, 0x0132


def capture_time(data: bytes) -> float | None:
    """When the photo was taken (EXIF DateTimeOriginal, with its offset when recorded, else
    local time), in seconds since the epoch; None when the file does not say."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = png.exif(data) if img.format == "PNG" else img.getexif()
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
