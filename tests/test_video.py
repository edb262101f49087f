"""Videos: keyframes with stream timestamps, moments in results, bad video input."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from helpers import (
    ffmpeg,
    file_rows,
    item_rows,
    make_image,
    make_one_keyframe_video,
    make_video,
    real_clip,
    run,
)
from PIL import Image

SEGMENT = 4.0  # seconds per test pattern in the generated video
KEYFRAME_INTERVAL = 1.0  # -g 10 at 10 fps


@pytest.fixture(scope="session")
def segments_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("videos") / "patterns.mp4")


@pytest.fixture
def library(segments_video: Path, tmp_path: Path) -> Path:
    """A folder with the four-segment video and a photo, indexed."""
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(segments_video, folder / "patterns.mp4")
    make_image(folder / "photo.png", seed=1)
    result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr
    return folder


def still(video: Path, t: float, out: Path) -> Path:
    ffmpeg("-ss", str(t), "-i", str(video), "-frames:v", "1", str(out))
    return out


def similar(*args: str) -> list[dict]:
    result = run("similar", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_each_segment_yields_a_frame_within_a_keyframe_of_its_start(library: Path) -> None:
    times = [r["t"] for r in item_rows(library / "patterns.mp4")]
    for k in range(4):
        inside = [t for t in times if k * SEGMENT <= t < (k + 1) * SEGMENT]
        assert inside, (k, times)
        assert min(inside) - k * SEGMENT <= KEYFRAME_INTERVAL


def test_frames_cover_the_video_end_to_end(library: Path) -> None:
    rows = item_rows(library / "patterns.mp4")
    assert rows[0]["t"] == 0
    assert all(a["t_end"] == b["t"] for a, b in itertools.pairwise(rows))
    assert rows[-1]["t_end"] == pytest.approx(4 * SEGMENT, abs=0.2)


@pytest.mark.parametrize("k", range(4))
def test_similar_with_a_still_from_segment_k_finds_that_moment(
    library: Path, tmp_path: Path, k: int
) -> None:
    query = still(library / "patterns.mp4", k * SEGMENT + 2, tmp_path / f"still{k}.png")
    best = similar(str(query))[0]
    assert best["path"] == str(library / "patterns.mp4")
    assert best["kind"] == "video"
    assert k * SEGMENT <= best["t"] < (k + 1) * SEGMENT
    assert best["t"] < best["t_end"]


def test_similar_with_a_video_moment_as_the_query(library: Path, tmp_path: Path) -> None:
    outside = shutil.copy(library / "patterns.mp4", tmp_path / "copy.mp4")
    best = similar(str(outside), "--at", "10")[0]
    assert best["path"] == str(library / "patterns.mp4")
    assert 2 * SEGMENT <= best["t"] < 3 * SEGMENT


def test_similar_with_a_video_needs_a_moment(library: Path) -> None:
    result = run("similar", str(library / "patterns.mp4"))
    assert result.exit_code == 2
    assert "--at SECONDS" in result.stderr


def test_a_video_appears_once_unless_moments_are_asked_for(library: Path, tmp_path: Path) -> None:
    query = str(still(library / "patterns.mp4", 2, tmp_path / "q.png"))
    default = [r for r in similar(query, "-n", "50") if r["kind"] == "video"]
    moments = [r for r in similar(query, "-n", "50", "--moments") if r["kind"] == "video"]
    assert len(default) == 1
    assert len(moments) > 1
    assert moments[0] == default[0]


def test_plain_output_gives_the_moment_for_a_player(library: Path, tmp_path: Path) -> None:
    query = str(still(library / "patterns.mp4", 6, tmp_path / "q.png"))
    first = run("similar", query, "-n", "1").stdout.rstrip("\n").split("\t")
    assert first[1] == str(library / "patterns.mp4")
    assert SEGMENT <= float(first[2]) < 2 * SEGMENT


def test_status_counts_videos_and_frames(library: Path) -> None:
    status = json.loads(run("status", "--json").stdout)
    frames = len(item_rows(library / "patterns.mp4"))
    assert status["files_by_kind"] == {"image": 1, "video": 1}
    assert status["items_by_kind"] == {"image": 1, "video": frames}


def test_index_summary_reports_frames_per_second(segments_video: Path, tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(segments_video, folder / "a.mp4")
    stderr = run("index", str(folder)).stderr
    assert "video frames at" in stderr and "frames/s" in stderr


def test_a_moved_video_keeps_its_frames_without_decoding(library: Path) -> None:
    before = [(r["t"], r["vector"]) for r in item_rows(library / "patterns.mp4")]
    (library / "sub").mkdir()
    (library / "patterns.mp4").rename(library / "sub" / "moved.mp4")
    assert "1 reused" in run("index", str(library)).stderr
    assert [(r["t"], r["vector"]) for r in item_rows(library / "sub" / "moved.mp4")] == before


def test_one_keyframe_in_ten_minutes_still_yields_frames_across_its_length(
    tmp_path: Path,
) -> None:
    video = tmp_path / "v" / "long.mp4"
    video.parent.mkdir()
    make_one_keyframe_video(video)
    run("index", str(video.parent))
    times = [r["t"] for r in item_rows(video)]
    assert len(times) >= 10
    assert max(times) >= 500


def test_max_frames_caps_and_spreads_the_frames(segments_video: Path, tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(segments_video, folder / "a.mp4")
    run("index", "--max-frames", "3", "--min-gap", "0", str(folder))
    times = [r["t"] for r in item_rows(folder / "a.mp4")]
    assert 1 <= len(times) <= 3


def test_rotation_metadata_is_honoured(tmp_path: Path) -> None:
    from mmsearch.core.config import VideoOptions
    from mmsearch.indexing.extract.video import keyframes

    plain = tmp_path / "plain.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=red:s=80x80:d=1",
        "-f",
        "lavfi",
        "-i",
        "color=blue:s=80x80:d=1",
        "-filter_complex",
        "[0][1]hstack,format=yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(plain),
    )
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))

    def reddish(video: Path, xy: tuple[int, int]) -> bool:
        frame = keyframes(str(video), 64, VideoOptions())[0].image
        r, _, b = frame.getpixel(xy)
        return r > b

    left, right, top, bottom = (8, 32), (56, 32), (32, 8), (32, 56)
    assert reddish(plain, left) and not reddish(plain, right)
    # A quarter turn: red and blue now lie above one another.
    assert reddish(rotated, left) == reddish(rotated, right)
    assert reddish(rotated, top) != reddish(rotated, bottom)


def test_a_real_clip_is_indexed_and_found_by_its_own_frame(tmp_path: Path) -> None:
    folder = tmp_path / "real"
    folder.mkdir()
    clip = shutil.copy(real_clip(), folder / "bunny.mp4")
    assert run("index", str(folder)).exit_code == 0
    assert file_rows()[str(clip)]["status"] == "ok"
    frames = item_rows(clip)
    assert frames
    query = still(Path(clip), frames[-1]["t"], tmp_path / "frame.png")
    best = similar(str(query))[0]
    assert best["path"] == str(clip)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("no-moov.mp4", "moov atom not found"),
        ("audio-only.mp4", "no video stream"),
        ("empty.mov", "empty file"),
        ("garbage.mkv", "not a readable video"),
    ],
)
def test_broken_videos_get_a_reason_and_the_run_goes_on(
    segments_video: Path, tmp_path: Path, name: str, reason: str
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    target = folder / name
    if name == "no-moov.mp4":
        data = segments_video.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif name == "audio-only.mp4":
        ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(target))
    elif name == "empty.mov":
        target.write_bytes(b"")
    else:
        target.write_bytes(bytes(range(256)) * 40)
    make_image(folder / "fine.png", seed=2)
    result = run("index", str(folder))
    assert result.exit_code == 0 and "Traceback" not in result.stderr
    rows = file_rows()
    assert rows[str(folder / "fine.png")]["status"] == "ok"
    assert reason in rows[str(target)]["reason"]


def test_a_video_cut_mid_stream_keeps_what_was_decodable(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "src.mp4", extra=("-movflags", "+faststart"))
    folder = tmp_path / "cut"
    folder.mkdir()
    data = whole.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    run("index", str(folder))
    assert file_rows()[str(folder / "cut.mp4")]["status"] == "ok"
    assert 1 <= len(item_rows(folder / "cut.mp4")) < 4


def test_a_slow_video_is_stopped_by_the_timeout(segments_video: Path, tmp_path: Path) -> None:
    from mmsearch.core.config import Settings, VideoOptions
    from mmsearch.indexing.index import IndexOptions, index_paths

    folder = tmp_path / "slow"
    folder.mkdir()
    shutil.copy(segments_video, folder / "a.mp4")
    import os

    settings = Settings(db=os.environ["MMSEARCH_DB"], model=os.environ["MMSEARCH_MODEL"])
    report = index_paths(settings, [str(folder)], IndexOptions(video=VideoOptions(timeout=0.001)))
    assert report.failed == 1
    assert "longer than" in report.failures[0][1]


def test_extracted_frames_are_model_sized_rgb(segments_video: Path) -> None:
    from mmsearch.core.config import VideoOptions
    from mmsearch.indexing.extract.video import keyframes

    frames = keyframes(str(segments_video), 48, VideoOptions())
    assert all(isinstance(f.image, Image.Image) and f.image.size == (48, 48) for f in frames)
    assert all(f.image.mode == "RGB" for f in frames)
