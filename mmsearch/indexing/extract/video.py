"""Pick the frames worth embedding from one video with ffmpeg, with their timestamps.

ffmpeg runs as a subprocess with an argument list (never a shell string): keyframes only
(`-skip_frame nokey`), near-duplicates dropped by scene change, a minimum gap and a per-file
cap, frames scaled and cropped to the model's input size and piped out as raw RGB. Times
come from the stream (`showinfo`'s pts_time), never from frame counts.
"""

from __future__ import annotations

import functools
import itertools
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image

from mmsearch.core.config import VideoOptions
from mmsearch.core.errors import ExtractError


@dataclass(frozen=True)
class Frame:
    """A picture to embed and the span of its file it stands for (None for a still image)."""

    t: float | None
    t_end: float | None
    image: Image.Image
    taken: float | None = None  # when it was captured, seconds since the epoch, if known
    page: int | None = None  # for a rendered document page


@dataclass(frozen=True)
class Probe:
    duration: float | None
    has_video: bool
    created: float | None = None  # the container's creation_time, when recorded
    report: str = ""  # ffmpeg's header report, for what else is inside (subtitle streams)


@functools.cache
def ffmpeg_binary() -> str:
    """A system ffmpeg on PATH, else the one the imageio-ffmpeg package ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:
        raise ExtractError(f"no ffmpeg found (install ffmpeg or imageio-ffmpeg): {e}") from None


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_PTS_TIME = re.compile(r"pts_time:\s*(-?[\d.]+)")
_PROBLEM = re.compile(
    r"error|invalid|moov atom not found|corrupt|truncat|no such file|permission denied",
    re.IGNORECASE,
)


def probe(path: str, timeout: float = 60.0) -> Probe:
    """Duration and whether there is a video stream, from ffmpeg's own header report."""
    stderr = _run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", path], timeout)
    if "Stream #" not in stderr:
        raise ExtractError(f"not a readable video: {_problem(stderr)}")
    m = _DURATION.search(stderr)
    duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    has_video = re.search(r"Stream #\S+.*: Video: (?!mjpeg.*attached pic)", stderr) is not None
    return Probe(duration, has_video, _creation_time(stderr), stderr)


def _creation_time(stderr: str) -> float | None:
    m = re.search(r"creation_time\s*:\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)", stderr)
    if not m:
        return None
    try:
        moment = datetime.fromisoformat(m[1].replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() if moment.year > 1971 else None


def keyframes(
    path: str, size: int, options: VideoOptions, info: Probe | None = None
) -> list[Frame]:
    """The frames to embed, `size` by `size` RGB, each with the span of time it stands for
    (`info`: the file's probe, when the caller has it already)."""
    info = info or probe(path)
    if not info.has_video:
        raise ExtractError("no video stream (audio only?)")
    duration = info.duration or _stream_end(path, options.timeout)
    gap = options.min_gap
    if duration:
        gap = max(gap, duration / options.max_frames)
    interval = max(options.max_interval, gap)
    frames = _extract(path, size, options, gap, interval, keyframes_only=True)
    if duration and duration > interval and _largest_gap(frames, duration) > 2 * interval:
        # Too few keyframes (a long GOP, a screen recording): decode everything, sample evenly.
        frames = _extract(path, size, options, gap, interval, keyframes_only=False)
    if not frames:
        raise ExtractError("no frames could be decoded")
    end = duration if duration and duration > frames[-1][0] else frames[-1][0]
    times = [t for t, _ in frames] + [end]
    created = info.created
    return [
        Frame(t, times[i + 1], image, created + t if created else None)
        for i, (t, image) in enumerate(frames)
    ]


def _stream_end(path: str, timeout: float) -> float | None:
    """The time of the last packet, for a container that records no duration (a WebM
    written to a pipe): the streams are read without decoding them."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0"]
    stderr = _run([*cmd, "-c", "copy", "-f", "null", "-"], timeout)
    found = _TIME.findall(stderr)
    if not found:
        return None
    hours, minutes, seconds = found[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds) or None


def one_frame(path: str, t: float, scale: str) -> list[str]:
    """ffmpeg's arguments up to the output: seek to `t` seconds, decode the one frame there
    through the `scale` filter, video only."""
    return [
        *(ffmpeg_binary(), "-hide_banner", "-nostdin", "-ss", f"{t:.3f}", "-i", path),
        *("-an", "-sn", "-dn", "-frames:v", "1", "-vf", scale),
    ]


def frame_at(path: str, t: float, size: int, timeout: float = 120.0) -> Image.Image:
    """One frame at `t` seconds (for `similar VIDEO --at T`)."""
    length = probe(path).duration or _stream_end(path, timeout)
    if length is not None and t > length:
        raise ExtractError(f"--at {t:g} s is past its end: the video is {length:.3g} s long")
    cmd = [*one_frame(path, t, _scale(size)), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    data, stderr = _pipe(cmd, size * size * 3, timeout)
    if not data:
        raise ExtractError(f"no frame at {t:g} s: {_problem(stderr)}")
    return Image.frombytes("RGB", (size, size), data[0])


def _extract(
    path: str, size: int, options: VideoOptions, gap: float, interval: float, keyframes_only: bool
) -> list[tuple[float, Image.Image]]:
    since = "t-prev_selected_t"
    select = (
        f"(eq(n,0)+gt(scene,{options.scene})+gte({since},{interval}))"
        f"*(isnan(prev_selected_t)+gte({since},{gap}))"
    ).replace(",", r"\,")
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin"]
    if keyframes_only:
        cmd += ["-skip_frame", "nokey"]
    cmd += [
        "-i",
        path,
        "-an",
        "-sn",
        "-dn",
        "-vf",
        f"select='{select}',showinfo,{_scale(size)}",
        "-fps_mode",
        "vfr",
        "-frames:v",
        str(options.max_frames),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    chunks, stderr = _pipe(cmd, size * size * 3, options.timeout)
    times = [float(t) for t in _PTS_TIME.findall(stderr)]
    if len(times) < len(chunks):
        raise ExtractError(f"ffmpeg reported {len(times)} timestamps for {len(chunks)} frames")
    return [
        (max(t, 0.0), Image.frombytes("RGB", (size, size), c))
        for t, c in zip(times, chunks, strict=False)
    ]


def _scale(size: int) -> str:
    # The same framing as the model's own preprocessing: shortest side to size, centre crop.
    return (
        f"scale={size}:{size}:force_original_aspect_ratio=increase:flags=bicubic,crop={size}:{size}"
    )


def _largest_gap(frames: list[tuple[float, Image.Image]], duration: float) -> float:
    times = [0.0] + [t for t, _ in frames] + [duration]
    return max(b - a for a, b in itertools.pairwise(times))


def _run(cmd: list[str], timeout: float) -> str:
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ExtractError(f"ffmpeg took longer than {timeout:g} s") from None
    except OSError as e:
        raise ExtractError(f"cannot run ffmpeg: {e.strerror or e}") from None
    return proc.stderr.decode("utf-8", "replace")


def _pipe(cmd: list[str], frame_bytes: int, timeout: float) -> tuple[list[bytes], str]:
    """Run ffmpeg, collecting whole raw frames from stdout and its report from stderr."""
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as e:
        raise ExtractError(f"cannot run ffmpeg: {e.strerror or e}") from None
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    chunks = []
    try:
        while chunk := proc.stdout.read(frame_bytes):  # type: ignore[union-attr]
            if len(chunk) == frame_bytes:
                chunks.append(chunk)
        proc.wait()
        reader.join()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = b"".join(err).decode("utf-8", "replace")
    if timed_out and proc.returncode != 0:
        raise ExtractError(f"ffmpeg took longer than {timeout:g} s")
    if proc.returncode != 0 and not chunks:
        raise ExtractError(f"not a readable video: {_problem(stderr)}")
    return chunks, stderr


def _problem(stderr: str) -> str:
    """The line of ffmpeg's report that says what went wrong, without its `[tag @ 0x…]`."""
    for line in stderr.splitlines():
        if _PROBLEM.search(line) and "pts_time" not in line:
            text = re.sub(r"^\[[^\]]*\]\s*", "", line).strip()
            return text[:160]
    return "ffmpeg could not decode it"
