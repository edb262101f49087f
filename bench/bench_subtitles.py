#!/usr/bin/env python3
"""Measure what looking for subtitles costs: on videos that have none (a folder of clips,
its folder listed once, its probe's report read for a text stream) against their keyframe
extraction, and reading a feature film's sidecar (1,800 cues) and its text stream inside
a Matroska file. Medians of interleaved runs.

    python bench/bench_subtitles.py [--videos 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmsearch.core.config import VideoOptions
from mmsearch.indexing.extract.said import subtitles
from mmsearch.indexing.extract.video import Probe, ffmpeg_binary, keyframes, probe


def film_srt(cues: int) -> str:
    def stamp(s: float) -> str:
        return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{s % 60:06.3f}".replace(".", ",")

    return "".join(
        f"{i + 1}\n{stamp(4 * i)} --> {stamp(4 * i + 3)}\nLine {i} of the film, said here.\n\n"
        for i in range(cues)
    )


def ffmpeg(*args: str) -> None:
    cmd = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True)


def clip(path: Path, seconds: int, source: str = "testsrc2") -> None:
    ffmpeg("-f", "lavfi", "-i", f"{source}=s=320x240:r=25:d={seconds}", "-c:v", "libx264",
           "-preset", "ultrafast", "-g", "50", str(path))  # fmt: skip


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def read(video: Path, info: Probe) -> tuple[list, str]:
    return subtitles(str(video), info.report, 60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    options = VideoOptions()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = [folder / f"clip{i:03d}.mp4" for i in range(args.videos)]
        for v in videos:
            clip(v, 10)
        (folder / "film.srt").write_text(film_srt(1800), encoding="utf-8")
        clip(folder / "film.mp4", 2)
        ffmpeg("-i", str(folder / "film.mp4"), "-i", str(folder / "film.srt"), "-c:v", "copy",
               "-c:s", "srt", str(folder / "inside.mkv"))  # fmt: skip
        mkv = folder / "inside.mkv"
        look, frames, sidecar, inside = [], [], [], []
        pairs = [(v, probe(str(v))) for v in videos]
        for _ in range(args.runs):
            look.append(timed(lambda: [read(v, i) for v, i in pairs]) / len(videos))
            each = timed(lambda: [keyframes(str(v), 224, options, i) for v, i in pairs])
            frames.append(each / len(videos))
            sidecar.append(
                timed(lambda: read(folder / "film.mp4", probe(str(folder / "film.mp4"))))
            )
            inside.append(timed(lambda: read(mkv, probe(str(mkv)))))
        assert len(read(mkv, probe(str(mkv)))[0]) == 1800
        med = statistics.median
        share = med(look) / med(frames)
        print(f"videos without subtitles: looking costs {med(look) * 1e6:.0f} µs a video, "
              f"keyframes {med(frames) * 1000:.0f} ms ({share:.1%} more)")  # fmt: skip
        print(f"1,800-cue sidecar, probe included: {med(sidecar) * 1000:.0f} ms; inside a .mkv: "
              f"{med(inside) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
