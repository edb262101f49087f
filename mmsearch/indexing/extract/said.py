"""What is said in a video or an audio file, from the cheapest exact source first."""

from __future__ import annotations

from mmsearch.core.errors import ExtractError
from mmsearch.indexing.extract.subtitles import Cue, embedded, read_sidecar, sidecars, stream_codecs
from mmsearch.indexing.extract.video import ffmpeg_binary


def subtitles(path: str, report: str, timeout: float) -> tuple[list[Cue], str]:
    """The cues of the first readable sidecar file, else of a text subtitle stream inside
    the video (`report`: ffmpeg's header report of it); and, when a sidecar was there but
    unreadable, the one line saying why."""
    note = ""
    for sidecar in sidecars(path):
        try:
            return read_sidecar(sidecar), ""
        except ExtractError as e:
            note = note or str(e)
    return embedded(ffmpeg_binary(), path, stream_codecs(report), timeout), note
