"""Turn one file into what the model reads, with a locator; nothing here knows the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmsearch.config import VideoOptions
    from mmsearch.extract.video import Frame


def load_frames(
    kind: str, path: str, data: bytes | None, size: int, video: VideoOptions
) -> list[Frame]:
    """The pictures of one file: an image is one frame with no time, a video several."""
    from mmsearch.extract.video import Frame, keyframes

    if kind == "video":
        return keyframes(path, size, video)
    from mmsearch.extract.image import capture_time, load_image

    assert data is not None
    return [Frame(None, None, load_image(data, size), capture_time(data))]
