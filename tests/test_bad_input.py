"""Bad input is normal input: each bad file gets a one-line reason, the run goes on, exit 0."""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import file_rows, item_paths, make_image, query_json, run
from PIL import Image


def index_ok(folder: Path) -> str:
    result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def reasons() -> dict[str, str]:
    return {p: r["reason"] for p, r in file_rows().items() if r["status"] != "ok"}


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge picture: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_broken_files_are_recorded_and_the_rest_indexed(photos: Path) -> None:
    jpeg = (photos / "chelsea.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (photos / "empty.png").write_bytes(b"")
    (photos / "text.jpg").write_text("I am a text file with a photo's name\n")
    (photos / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    (photos / "noise.webp").write_bytes(os.urandom(4096))
    stderr = index_ok(photos)
    assert "7 new" in stderr and "4 failed, 1 empty" in stderr
    why = reasons()
    assert why[str(photos / "empty.png")] == "empty file (0 bytes)"
    assert file_rows()[str(photos / "empty.png")]["status"] == "empty"  # not a failure
    assert "too large: 100000x100000" in why[str(photos / "bomb.png")]
    assert "not a readable image" in why[str(photos / "text.jpg")]
    assert why[str(photos / "truncated.jpg")].startswith("cannot decode image")
    assert all("\n" not in r for r in why.values())
    assert len(item_paths()) == 7


def test_bad_files_are_not_retried_until_they_change(photos: Path) -> None:
    (photos / "text.jpg").write_text("not a photo")
    index_ok(photos)
    assert "0 new, 0 updated, 0 reused, 8 unchanged" in index_ok(photos)
    make_image(photos / "text.jpg", seed=2)
    assert "1 new" in index_ok(photos)
    assert reasons() == {}


def test_a_previously_good_file_that_breaks_leaves_the_index(photos: Path) -> None:
    index_ok(photos)
    (photos / "chelsea.jpg").write_bytes(b"corrupted by a bad disk")
    index_ok(photos)
    assert str(photos / "chelsea.jpg") in reasons()
    assert str(photos / "chelsea.jpg") not in item_paths()


@pytest.mark.parametrize(
    "mode",
    ["CMYK", "I;16", "P-alpha", "LA", "1", "animated-gif"],
)
def test_unusual_pixel_formats_are_indexed(tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    base = Image.open(make_image(tmp_path / "base.png", seed=7)).convert("RGB")
    if mode == "CMYK":
        base.convert("CMYK").save(folder / "cmyk.jpg")
    elif mode == "I;16":
        deep = np.asarray(base.convert("L"), np.uint16) * 257
        Image.fromarray(deep).save(folder / "deep.png")
    elif mode == "P-alpha":
        p = base.convert("P")
        p.info["transparency"] = 0
        p.save(folder / "palette.png", transparency=0)
    elif mode == "LA":
        base.convert("LA").save(folder / "gray-alpha.png")
    elif mode == "1":
        base.convert("1").save(folder / "bilevel.bmp")
    else:
        frames = [base, base.rotate(90)]
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], loop=0)
    index_ok(folder)
    assert reasons() == {}
    assert len(item_paths()) == 1


def test_exif_orientation_is_applied_before_embedding(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    folder.mkdir()
    picture = Image.open(make_image(tmp_path / "src.png", seed=8, size=(160, 96))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90° clockwise
    picture.save(folder / "camera.jpg", exif=exif, quality=95)
    upright = picture.transpose(Image.Transpose.ROTATE_270)
    upright.save(tmp_path / "upright.jpg", quality=95)
    index_ok(folder)
    result = run("similar", str(tmp_path / "upright.jpg"), "--json")
    import json

    assert json.loads(result.stdout)[0]["score"] > 0.99


ODD_NAMES = [
    "with space.jpg",
    "ünïcødé 写真.jpg",
    "new\nline.jpg",
    "-leading-dash.jpg",
    "quote'in.jpg",
    "100% _wild_.jpg",
]


def test_odd_file_names_are_indexed_and_returned_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "odd names"
    for i, name in enumerate(ODD_NAMES):
        make_image(folder / name, seed=20 + i)
    index_ok(folder)
    assert sorted(r["path"] for r in query_json("x", "-n", "100")) == sorted(
        str(folder / n) for n in ODD_NAMES
    )
    nul = run("query", "x", "-0", "-n", "100").stdout
    assert sorted(nul.split("\0")[:-1]) == sorted(str(folder / n) for n in ODD_NAMES)


def test_a_name_that_is_not_utf8_is_recorded_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "bytes"
    folder.mkdir()
    make_image(folder / "fine.jpg", seed=1)
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    shutil.copy(folder / "fine.jpg", bad)
    stderr = index_ok(folder)
    assert "1 failed" in stderr
    assert list(reasons().values()) == ["file name is not valid UTF-8"]
    assert "0 new, 0 updated, 0 reused, 1 unchanged, 0 removed" in index_ok(folder)


def test_fifos_and_broken_symlinks_never_block_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "special"
    make_image(folder / "real.jpg", seed=1)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "missing.jpg", folder / "dangling.jpg")
    os.symlink(folder, folder / "loop")  # a folder symlink to itself is not followed
    index_ok(folder)
    assert list(file_rows()) == [str(folder / "real.jpg")]


def test_a_file_that_vanishes_mid_run_is_recorded_and_the_run_goes_on(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmsearch.indexing.index
    from mmsearch.indexing.scan import scan

    def scan_then_delete(*args, **kwargs):
        found = scan(*args, **kwargs)
        (photos / "chelsea.jpg").unlink()
        return found

    monkeypatch.setattr(mmsearch.indexing.index, "scan", scan_then_delete)
    stderr = index_ok(photos)
    assert "6 new" in stderr and "1 failed" in stderr
    assert reasons() == {str(photos / "chelsea.jpg"): "vanished before it could be read"}
    monkeypatch.setattr(mmsearch.indexing.index, "scan", scan)
    index_ok(photos)
    assert str(photos / "chelsea.jpg") not in file_rows()


@pytest.fixture
def as_nobody() -> Iterator[Path]:
    """A world-writable folder, and (when we are root) an effective uid that honours file
    permissions, so unreadable files really are unreadable."""
    run("status")  # import everything while we still can read every module
    folder = Path(tempfile.mkdtemp(prefix="mmsearch-perm-"))
    folder.chmod(0o777)
    yield folder
    if os.geteuid() != 0:
        os.seteuid(0)
    for p in folder.rglob("*"):
        p.chmod(0o777) if p.is_dir() else None
    shutil.rmtree(folder)


def test_unreadable_files_and_folders_are_recorded(
    as_nobody: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_copy = shutil.copytree(tiny_model.removeprefix("local-dir:"), as_nobody / "model")
    for p in [model_copy, *model_copy.iterdir()]:
        p.chmod(0o755)
    photos = as_nobody / "photos"
    make_image(photos / "ok.jpg", seed=1)
    make_image(photos / "locked.jpg", seed=2).chmod(0o000)
    make_image(photos / "private" / "inside.jpg", seed=3)
    for p in (photos, photos / "private", photos / "ok.jpg"):
        p.chmod(0o777 if p.is_dir() else 0o644)
    (photos / "private").chmod(0o000)
    store = as_nobody / "store"
    monkeypatch.setenv("MMSEARCH_DB", str(store))
    monkeypatch.setenv("MMSEARCH_MODEL", f"local-dir:{model_copy}")
    monkeypatch.setenv("MMSEARCH_CACHE", str(as_nobody / "cache"))
    if os.geteuid() == 0:
        os.seteuid(65534)
    try:
        stderr = index_ok(photos)
    finally:
        if os.getuid() == 0:
            os.seteuid(0)
    assert "1 new" in stderr and "2 failed" in stderr
    assert reasons() == {
        str(photos / "locked.jpg"): "permission denied",
        str(photos / "private"): "permission denied",
    }


def test_exit_code_is_zero_when_some_files_fail(photos: Path) -> None:
    (photos / "bad.png").write_bytes(b"\x89PNG broken")
    assert run("index", str(photos)).exit_code == 0


def test_decoder_error_message_is_one_line(tmp_path: Path) -> None:
    from mmsearch.core.errors import ExtractError
    from mmsearch.indexing.extract.image import load_image

    with pytest.raises(ExtractError) as e:
        load_image(b"GIF89a" + b"\0" * 20, 64)
    assert "\n" not in str(e.value)
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG")
    assert load_image(buf.getvalue(), 64).mode == "RGB"
