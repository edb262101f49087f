#!/usr/bin/env python3
"""Hostile query files: how long `mmsearch similar FILE` takes to refuse each one, and its
peak memory, in a fresh process (the docs' "Security and privacy" rows).

    python bench/bench_hostile_query.py --model local-dir:/path/to/model

Cases: /dev/zero, a FIFO named x.jpg, a 10 GB sparse file, a PNG declaring 100000x100000
pixels. Each row: exit code, the error line, wall seconds of the whole process (start-up
included) and of the command alone (`MMSEARCH_TIMINGS`), and peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

PROBE = (
    "import resource, subprocess, sys;"
    "r = subprocess.run([sys.executable, '-m', 'mmsearch', 'similar', sys.argv[1]],"
    " capture_output=True, text=True, stdin=subprocess.DEVNULL);"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.stderr.write(r.stderr)"
)


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


def cases(folder: Path) -> dict[str, str]:
    os.mkfifo(folder / "x.jpg")
    with open(folder / "huge.jpg", "wb") as f:
        f.truncate(10 << 30)
    (folder / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    return {
        "/dev/zero": "/dev/zero",
        "FIFO named x.jpg": str(folder / "x.jpg"),
        "10 GB sparse file": str(folder / "huge.jpg"),
        "PNG declaring 100000x100000": str(folder / "bomb.png"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a model the store below is indexed with")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from PIL import Image

        (folder / "pics").mkdir()
        Image.new("RGB", (64, 64), "red").save(folder / "pics" / "a.png")
        env = {
            **os.environ,
            "MMSEARCH_DB": str(folder / "db"),
            "MMSEARCH_MODEL": args.model,
            "MMSEARCH_NO_SERVER": "1",
        }
        cli = [sys.executable, "-m", "mmsearch"]
        subprocess.run([*cli, "index", "-q", str(folder / "pics")], env=env, check=True)
        rows = []
        for name, path in cases(folder).items():
            walls, peaks, command = [], [], []
            for _ in range(args.runs):
                started = time.monotonic()
                proc = subprocess.run(
                    [sys.executable, "-c", PROBE, path],
                    env={**env, "MMSEARCH_TIMINGS": "1"},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                walls.append(time.monotonic() - started)
                code, peak = proc.stdout.split()
                peaks.append(int(peak) / 1024)
                lines = proc.stderr.splitlines()
                timings = json.loads(lines[-1].removeprefix("timings: "))
                command.append(sum(v for k, v in timings.items() if k != "startup"))
            rows.append(
                {
                    "case": name,
                    "exit": int(code),
                    "error": lines[0],
                    "process_s": round(min(walls), 2),
                    "command_s": round(min(command), 3),
                    "peak_rss_mb": round(max(peaks)),
                }
            )
    for r in rows:
        print(
            f"{r['case']:<30} exit {r['exit']}  {r['process_s']:>5.2f} s process  "
            f"{r['command_s']:>6.3f} s command  {r['peak_rss_mb']:>4} MB  {r['error']}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
