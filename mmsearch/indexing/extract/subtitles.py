"""What is said in a video, read from its subtitles: sidecar files beside it and the text
subtitle streams inside it, as timed cues.

Subtitles come before any speech model: they are exact, and reading them costs nothing.
A sidecar shares the video's stem (`clip.srt`, also `clip.en.srt`); its bytes may be in a
legacy code page (`decode_text` reads them by what the text is). A file with no timed line
in it is named in one line and the video is indexed by its pictures all the same.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mmsearch.core.errors import ExtractError
from mmsearch.indexing.extract.encoding import decode_text

SIDECAR_SUFFIXES = (".srt", ".vtt", ".ass", ".ssa")
MAX_SIDECAR_BYTES = 16 << 20  # a two-hour film's subtitles are ~100 KB
TEXT_CODECS = ("subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text")

_SRT_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_CUE = re.compile(rf"{_SRT_TIME}\s*-->\s*{_SRT_TIME}[^\n]*\n(.*?)(?:\n\s*\n|\Z)", re.DOTALL)
_ASS_TIME = r"(\d+):(\d\d):(\d\d)[.:](\d\d)"
_TAGS = re.compile(r"\{[^}]*\}|<[^>]*>")


@dataclass(frozen=True)
class Cue:
    """A line of subtitles and the span of the video it is shown over, in seconds."""

    t: float
    t_end: float
    text: str


def sidecars(video: str) -> list[Path]:
    """Subtitle files beside `video`: same stem, or the stem and a language tag
    (`clip.en.srt`, `clip.pt-BR.vtt`), exact name first."""
    path = Path(video)
    try:
        siblings = [
            path.parent / name
            for name in _subtitle_files(str(path.parent), path.parent.stat().st_mtime_ns)
        ]
    except OSError:
        return []
    tagged = re.compile(re.escape(path.stem) + r"\.[A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?")
    exact = [p for p in siblings if p.stem == path.stem]
    return exact + [p for p in siblings if p not in exact and tagged.fullmatch(p.stem)]


@functools.lru_cache(maxsize=64)
def _subtitle_files(folder: str, mtime_ns: int) -> tuple[str, ...]:
    """The subtitle files of one folder, listed once per change of the folder (not once per
    video in it: a folder of 10,000 clips is read once, not 10,000 times)."""
    with os.scandir(folder) as entries:
        return tuple(
            sorted(e.name for e in entries if Path(e.name).suffix.lower() in SIDECAR_SUFFIXES)
        )


def read_sidecar(path: Path) -> list[Cue]:
    """The cues of one sidecar file, or ExtractError saying why it holds none."""
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise ExtractError(f"subtitles {path.name}: larger than {MAX_SIDECAR_BYTES >> 20} MB")
        data = path.read_bytes()
    except OSError as e:
        raise ExtractError(f"subtitles {path.name}: {e.strerror or e}") from None
    try:
        text = decode_text(data)
    except ExtractError as e:
        raise ExtractError(f"subtitles {path.name}: {e}") from None
    cues = parse(text, path.suffix.lower())
    if not cues:
        raise ExtractError(f"subtitles {path.name}: no timed lines (not SRT, WebVTT or ASS)")
    return cues


def parse(text: str, suffix: str) -> list[Cue]:
    """Cues of SRT/WebVTT (`-->` lines) or ASS/SSA (`Dialogue:` lines), in time order."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in (".ass", ".ssa") or "[Events]" in text:
        cues = _ass(text)
    else:
        cues = [
            Cue(_seconds(m.groups()[0:4]), _seconds(m.groups()[4:8]), _clean(m[9]))
            for m in _CUE.finditer(text + "\n")
        ]
    return sorted((c for c in cues if c.text and c.t_end >= c.t), key=lambda c: c.t)


def _ass(text: str) -> list[Cue]:
    cues = []
    for line in text.splitlines():
        if not line.startswith("Dialogue:"):
            continue
        fields = line.split(":", 1)[1].split(",", 9)
        start, end = (
            re.fullmatch(_ASS_TIME, fields[1].strip()),
            re.fullmatch(_ASS_TIME, fields[2].strip() if len(fields) > 2 else ""),
        )
        if len(fields) == 10 and start and end:
            cues.append(Cue(_centis(start), _centis(end), _clean(fields[9].replace(r"\N", " "))))
    return cues


def _seconds(parts: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = parts
    fraction = int(millis or 0) / 10 ** len(millis or "0")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + fraction


def _centis(m: re.Match[str]) -> float:
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + int(m[4]) / 100


def _clean(text: str) -> str:
    return " ".join(_TAGS.sub(" ", text).replace(r"\N", " ").split())


def stream_codecs(probe_report: str) -> list[str]:
    """The codec of each subtitle stream in ffmpeg's header report, in stream order."""
    return re.findall(r"Stream #\S+.*?: Subtitle: (\w+)", probe_report)


def embedded(ffmpeg: str, path: str, codecs: list[str], timeout: float) -> list[Cue]:
    """The cues of the first text subtitle stream inside the container (picture-based ones,
    DVD or PGS, hold no words to read)."""
    for index, codec in enumerate(codecs):
        if codec not in TEXT_CODECS:
            continue
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-i", path, "-map", f"0:s:{index}"]
        try:
            proc = subprocess.run(
                [*cmd, "-f", "srt", "pipe:1"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except (subprocess.TimeoutExpired, OSError):
            continue
        cues = parse(proc.stdout.decode("utf-8", "replace"), ".srt")
        if cues:
            return cues
    return []
