"""A hostile corpus, generated here (never committed as blobs): every case finishes with a
one-line reason or is indexed, no traceback, and everything good beside it is indexed.

The table in the docs' "Hostile input" section lists the same cases and outcomes."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    ffmpeg,
    file_rows,
    item_paths,
    make_encrypted_pdf,
    make_image,
    make_one_keyframe_video,
    make_pdf,
    make_video,
    run,
)
from PIL import Image
from test_bad_input import png_declaring
from test_documents import zip_bomb

OK = "ok"
# case file name → "ok", or a fragment of the recorded reason
EXPECTED = {
    "truncated.jpg": "cannot decode image",
    "truncated.png": "cannot decode image",
    "truncated.webp": "cannot decode image",
    "zero.jpg": "empty file",
    "text named.jpg": "not a readable image",
    "bomb.png": "image too large",
    "one pixel.png": OK,
    "panorama 30000x100.png": OK,
    "cmyk.jpg": OK,
    "deep 16 bit.png": OK,
    "palette alpha.png": OK,
    "animated.gif": OK,
    "animated.webp": OK,
    "garbage exif.jpg": OK,
    "cut heic.heic": "cannot decode image",
    "no moov.mp4": "moov atom not found",
    "cut mid stream.mp4": OK,
    "audio only.mp4": "no video stream",
    "garbage.mkv": "not a readable video",
    "one keyframe in ten minutes.mp4": OK,
    "encrypted.pdf": "encrypted PDF",
    "page tree loop.pdf": "PDF",
    "bomb.docx": "zip bomb",
    "binary.txt": "binary data",
}
ODD_NAMES = [  # good pictures under names that break naive tools
    "name with spaces.png",
    "ünïcødé 写真.png",
    "new\nline.png",
    "-leading dash.png",
    ("x" * 251) + ".png",  # 255 bytes, the longest a name can be
    "deep/" * 40 + "deep.png",
]
EXPECTED.update(dict.fromkeys(ODD_NAMES, OK))
BAD_UTF8 = b"caf\xe9.png"


def build_corpus(root: Path, tmp: Path) -> list[Path]:
    """Write every case; return the good files that must be indexed whatever happens."""
    root.mkdir(parents=True)
    photo = Image.open(make_image(tmp / "src.png", seed=1, size=(320, 240))).convert("RGB")
    for fmt, name in (
        ("JPEG", "truncated.jpg"),
        ("PNG", "truncated.png"),
        ("WEBP", "truncated.webp"),
    ):
        buf = io.BytesIO()
        photo.save(buf, fmt)
        (root / name).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "zero.jpg").write_bytes(b"")
    (root / "text named.jpg").write_text("just words\n")
    (root / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    Image.new("RGB", (1, 1), "red").save(root / "one pixel.png")
    Image.new("RGB", (30000, 100), "blue").save(root / "panorama 30000x100.png")
    photo.convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(__import__("numpy").asarray(photo.convert("L"), "uint16") * 257).save(
        root / "deep 16 bit.png"
    )
    photo.convert("P").save(root / "palette alpha.png", transparency=0)
    frames = [photo, photo.rotate(90)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(root / "animated.webp", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 99  # an orientation that does not exist
    exif.get_ifd(0x8769)[0x9003] = "not a date at all"
    photo.save(root / "garbage exif.jpg", exif=exif)
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buf = io.BytesIO()
    photo.save(buf, "HEIF")
    (root / "cut heic.heic").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    video = make_video(tmp / "src.mp4", seconds=2)
    data = video.read_bytes()
    (root / "no moov.mp4").write_bytes(data[: len(data) // 2])
    fast = make_video(tmp / "fast.mp4", seconds=2, extra=("-movflags", "+faststart"))
    (root / "cut mid stream.mp4").write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(root / "audio only.mp4"))
    (root / "garbage.mkv").write_bytes(bytes(range(256)) * 40)
    make_one_keyframe_video(root / "one keyframe in ten minutes.mp4", rate=1)

    make_encrypted_pdf(root / "encrypted.pdf")
    (root / "page tree loop.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[2 0 R]/Count 1>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    (root / "bomb.docx").write_bytes(zip_bomb())
    (root / "binary.txt").write_bytes(bytes(range(256)) * 16)

    for i, name in enumerate(ODD_NAMES):
        make_image(root / name, seed=100 + i)
    good = [make_image(root / "good" / f"fine {i}.png", seed=200 + i) for i in range(5)]
    good.append(make_pdf(root / "good" / "fine.pdf", ["a fine document"]))
    shutil_copy = root / "good" / "fine.mp4"
    shutil_copy.write_bytes(video.read_bytes())
    good.append(shutil_copy)

    special = root / "special"
    special.mkdir()
    os.symlink(special, special / "loop")  # a folder symlink to itself
    os.symlink(special / "missing.jpg", special / "dangling.jpg")
    os.mkfifo(special / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(special / "socket.png"))
    sock.close()
    bad_name = os.path.join(os.fsencode(root), BAD_UTF8)
    with open(bad_name, "wb") as f:
        f.write((root / "good" / "fine 0.png").read_bytes())
    return good


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "hostile"
    return root, build_corpus(root, tmp_path)


def test_every_hostile_case_is_indexed_or_has_a_one_line_reason(corpus) -> None:
    root, good = corpus
    result = run("index", str(root))
    assert result.exit_code == 0
    assert "Traceback" not in result.stderr
    rows = file_rows()
    outcomes = {}
    for name, want in EXPECTED.items():
        row = rows[str(root / name)]
        outcomes[name] = OK if row["status"] == "ok" else row["reason"]
        assert "\n" not in outcomes[name]
        if want == OK:
            assert row["status"] == "ok", (name, row["reason"])
        else:
            assert want in row["reason"], (name, row["reason"])
    assert all(rows[str(g)]["status"] == "ok" for g in good)
    assert set(item_paths()) >= {str(g) for g in good}
    assert [r for p, r in rows.items() if "caf" in p] != []  # the non-UTF-8 name is recorded
    assert not any("special" in p and r["status"] == "ok" for p, r in rows.items())


def test_files_that_change_during_a_run_never_break_it(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    for i in range(60):
        make_image(folder / f"p{i:02d}.png", seed=i, size=(256, 256))
    growing = folder / "growing.jpg"
    growing.write_bytes(b"\xff\xd8")
    stop = threading.Event()

    def meddle() -> None:
        while not stop.is_set():
            with growing.open("ab") as f:
                f.write(os.urandom(4096))
            for victim in (folder / "p10.png", folder / "p20.png"):
                if victim.exists():
                    victim.write_bytes(victim.read_bytes()[:100])  # truncated mid-run
            (folder / "p30.png").unlink(missing_ok=True)  # deleted mid-run
            time.sleep(0.01)

    thread = threading.Thread(target=meddle)
    thread.start()
    try:
        result = run("index", str(folder))
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0 and "Traceback" not in result.stderr
    run("index", str(folder))  # once the disk is quiet, the index catches up exactly
    rows = file_rows()
    assert set(rows) == {str(p) for p in folder.iterdir()}
    assert rows[str(folder / "p00.png")]["status"] == "ok"
