"""Subtitles: sidecar files and text streams inside a video make its words findable at
their moments; unreadable subtitles are named in one line and the video is still indexed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ffmpeg, file_rows, item_rows, make_pdf, make_video, query_json, run

from mmsearch.indexing.extract.subtitles import parse, sidecars
from mmsearch.query.ranking import Calibration, Source, fuse

SRT = """1
00:00:02,000 --> 00:00:04,500
Good morning everyone.

2
00:00:09,000 --> 00:00:11,000
Please pass the <i>marmalade</i> to grandpa.

3
00:00:13,000 --> 00:00:15,000
Thank you, that was lovely.
"""
EMBEDDED = "1\n00:00:05,000 --> 00:00:07,000\nThe xylophone lesson starts now.\n"
LEGACY = "1\n00:00:01,000 --> 00:00:03,000\nUne crème brûlée, s'il vous plaît.\n"


@pytest.fixture(scope="module")
def shared_store(
    tiny_model: str,
    model_cache: Path,
    photo_library: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Path]]:
    """One indexed library for the module: videos with subtitles of each sort beside
    photos and a PDF (queries only read it)."""
    root = tmp_path_factory.mktemp("subtitles")
    folder = root / "library"
    shutil.copytree(photo_library, folder)
    make_pdf(folder / "notes.pdf", ["Minutes of the garden club: roses and tulips."])
    make_video(folder / "talk.mp4")
    (folder / "talk.srt").write_text(SRT, encoding="utf-8")
    sources = ("smptebars", "testsrc2")
    make_video(root / "lesson.mp4", sources=sources)
    (root / "lesson.srt").write_text(EMBEDDED, encoding="utf-8")
    ffmpeg(
        "-i",
        str(root / "lesson.mp4"),
        "-i",
        str(root / "lesson.srt"),
        "-c:v",
        "copy",
        "-c:s",
        "srt",
        str(folder / "lesson.mkv"),
    )
    make_video(folder / "dessert.mp4", sources=sources)
    (folder / "dessert.en.srt").write_bytes(LEGACY.encode("cp1252"))
    make_video(folder / "broken.mp4", sources=sources)
    (folder / "broken.srt").write_bytes(b"this is not\x01 a subtitle file at all\n" * 20)
    store = root / "store"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MMSEARCH_DB", str(store))
        env.setenv("MMSEARCH_CACHE", str(model_cache))
        env.setenv("MMSEARCH_MODEL", tiny_model)
        env.setenv("HF_HUB_OFFLINE", "1")
        result = run("index", str(folder))
        assert result.exit_code == 0, result.stderr
    yield folder, store


@pytest.fixture
def library(shared_store: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    folder, store = shared_store
    monkeypatch.setenv("MMSEARCH_DB", str(store))
    return folder


def test_a_word_of_a_sidecar_finds_its_video_first_at_its_moment(library: Path) -> None:
    best = query_json("marmalade")[0]
    assert best["path"] == str(library / "talk.mp4")
    assert best["t"] == pytest.approx(9.0, abs=2.0)


def test_the_moment_shows_the_words_said_as_its_snippet(library: Path) -> None:
    best = query_json("marmalade")[0]
    assert "marmalade to grandpa" in best["snippet"]  # markup (<i>) removed


def test_a_text_subtitle_stream_inside_the_container_is_read(library: Path) -> None:
    best = query_json("xylophone")[0]
    assert best["path"] == str(library / "lesson.mkv")
    assert best["t"] == pytest.approx(5.0, abs=2.0)


def test_a_sidecar_named_with_a_language_in_a_legacy_code_page_is_read(library: Path) -> None:
    said = [r["text"] for r in item_rows(library / "dessert.mp4") if r["text"]]
    assert said == ["dessert: Une crème brûlée, s'il vous plaît."]


def test_a_malformed_sidecar_is_named_in_one_line_and_the_pictures_are_indexed(
    library: Path,
) -> None:
    row = file_rows()[str(library / "broken.mp4")]
    assert row["status"] == "ok"
    assert row["reason"] == "subtitles broken.srt: no timed lines (not SRT, WebVTT or ASS)"
    assert item_rows(library / "broken.mp4")


def test_pictures_and_documents_are_still_found_beside_subtitled_videos(library: Path) -> None:
    best = query_json("garden club roses")[0]
    assert best["path"] == str(library / "notes.pdf")


def test_sidecars_are_the_same_stem_first_then_the_stem_with_a_language(tmp_path: Path) -> None:
    for name in ("clip.mp4", "clip.en.srt", "clip.srt", "clip.pt-BR.vtt", "clipper.srt", "x.srt"):
        (tmp_path / name).touch()
    found = [p.name for p in sidecars(str(tmp_path / "clip.mp4"))]
    assert found == ["clip.srt", "clip.en.srt", "clip.pt-BR.vtt"]


def test_webvtt_and_ass_cues_are_parsed_with_their_times() -> None:
    vtt = "WEBVTT\n\n01:02.500 --> 01:04.000 align:start\nHello <b>there</b>\n"
    assert [(c.t, c.t_end, c.text) for c in parse(vtt, ".vtt")] == [(62.5, 64.0, "Hello there")]
    ass = (
        "[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:03.50,0:00:05.00,Default,,0,0,0,,{\\i1}Over here,\\Nplease\n"
    )
    assert [(c.t, c.t_end, c.text) for c in parse(ass, ".ass")] == [(3.5, 5.0, "Over here, please")]


def _moment(t: float, t_end: float, score: float, text: str | None = None) -> dict:
    return {
        "path": "/v.mp4",
        "kind": "video",
        "t": t,
        "t_end": t_end,
        "page": None,
        "text": text,
        "score": score,
        "taken": None,
    }


def test_a_line_said_and_the_keyframe_it_overlaps_count_together_at_the_lines_moment() -> None:
    cal = Calibration(centre=0.2, spread=0.05, noise=2.0)
    frame = _moment(8.0, 12.0, cal.centre + cal.spread * cal.noise * 1.15)
    touching = _moment(4.0, 9.0, cal.centre + cal.spread * cal.noise * 1.5)  # ends as it starts
    line = _moment(9.0, 11.0, 2.0, "v: the kelvaro circle")
    terms = ("kelvaro", "circle", "red")
    alone = {c.key: c.score for c in fuse({Source.EXACT: [line]}, terms, cal)}
    seen = {c.key: c.score for c in fuse({Source.PICTURES: [frame, touching]}, terms, cal)}
    both = {
        c.key: c.score
        for c in fuse({Source.PICTURES: [frame, touching], Source.EXACT: [line]}, terms, cal)
    }
    words, picture = alone[("/v.mp4", None, 9.0)], seen[("/v.mp4", None, 8.0)]
    assert both[("/v.mp4", None, 9.0)] == pytest.approx(1 - (1 - words) * (1 - picture))
    assert both[("/v.mp4", None, 8.0)] == picture  # the frame keeps its own score


def test_what_is_seen_still_finds_its_segment_when_the_talk_is_about_something_else(
    with_scene_model: str, tmp_path: Path
) -> None:
    """Each segment's subtitles talk over it, one of them naming another segment's shape:
    the words do not drown the pictures."""
    from scene_model.scenes import caption
    from test_semantics import SCENES, SEGMENT, scene_video

    names = ["stars", "orange-square", "triangle", "blue-circle"]
    video = scene_video(tmp_path / "clips" / "scenes.mp4", [SCENES[n] for n in names])
    talk = ["look at the blue circle over there", "we went to the beach", "lovely weather", "ok"]
    video.with_suffix(".srt").write_text(
        "".join(
            f"{k + 1}\n00:00:{k * SEGMENT:02d},500 --> 00:00:{k * SEGMENT + 2:02d},500\n{line}\n\n"
            for k, line in enumerate(talk)
        )
    )
    assert run("index", str(video.parent)).exit_code == 0
    for k, name in enumerate(names):
        best = query_json(caption(SCENES[name]))[0]
        assert best["path"] == str(video)
        assert k * SEGMENT <= best["t"] < (k + 1) * SEGMENT, name
