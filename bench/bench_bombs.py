"""Peak memory and wall time of indexing picture bombs beside good photos (issue 30).

Usage: python bench/bench_bombs.py [--model local-dir:tests/scene_model/scene-clip] [--keep DIR]

Writes a real 15800x15800 RGBA PNG (249.6 Mpx, about 1 MB on disk: a gradient compresses
well) and three small photos into a folder, then indexes it in a child process under
`/usr/bin/time -f %M` and prints the child's peak RSS, wall time, exit status and the
bomb's outcome from `status`. Needs about 1.2 GB free memory to write the bomb once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDE = 15800


def write_bomb(path: Path) -> None:
    """A gradient RGBA PNG. Pillow's encoder needs the full raster once: here, not in the
    run that is measured."""
    import numpy as np
    from PIL import Image

    ramp = (np.arange(SIDE, dtype=np.uint32) * 255 // SIDE).astype(np.uint8)
    rgba = np.empty((SIDE, SIDE, 4), np.uint8)
    rgba[..., 0] = ramp[None, :]
    rgba[..., 1] = ramp[:, None]
    rgba[..., 2] = 128
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(path, compress_level=9)


def write_photos(folder: Path) -> None:
    from PIL import Image

    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (640, 480), colour).save(folder / f"good-{i}.jpg", quality=90)


def run(cmd: list[str], env: dict[str, str]) -> tuple[int, int, float, str]:
    """(exit status, peak RSS in KiB, seconds, stderr) of `cmd` under /usr/bin/time."""
    start = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    return done.returncode, int(lines[-1]), seconds, "\n".join(lines[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local-dir:tests/scene_model/scene-clip")
    parser.add_argument("--keep", type=Path, help="folder to reuse for the files and the store")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-bombs-"))
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    bomb = media / "bomb-15800-rgba.png"
    if not bomb.exists():
        write_bomb(bomb)
        write_photos(media)
    env = {**os.environ, "MMSEARCH_MODEL": args.model, "MMSEARCH_CACHE": str(root / "cache")}
    py = [sys.executable, "-m", "mmsearch"]
    warm = {**env, "MMSEARCH_DB": str(root / "warm")}  # the model's export, not measured
    subprocess.run([*py, "index", str(media / "good-0.jpg")], env=warm, capture_output=True)
    env["MMSEARCH_DB"] = str(root / "store")
    shutil.rmtree(root / "store", ignore_errors=True)  # a fresh store: every file decoded
    rc, kib, seconds, err = run([*py, "index", str(media)], env)
    print(f"bomb: {bomb.stat().st_size / 1e6:.2f} MB on disk, {SIDE}x{SIDE} RGBA")
    print(f"index: exit {rc}, peak RSS {kib / 1024:.0f} MiB, {seconds:.1f} s")
    if rc:
        print(err[-2000:])
    status = subprocess.run([*py, "status", "--json"], env=env, capture_output=True, text=True)
    print(status.stdout[-1500:])


if __name__ == "__main__":
    main()
