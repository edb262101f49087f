"""The pipeline's byte budget: what decode threads hold ahead of the model is capped in bytes,
a file larger than the cap still goes through (alone), and the cap changes nothing stored."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import ffmpeg, file_rows, item_rows, make_image, run
from PIL import Image

from mmsearch.core.errors import UsageError
from mmsearch.indexing import pipeline
from mmsearch.indexing.pipeline import Budget

FRAMES = 40  # kept per test video (--max-frames 40 --min-gap 0: every frame is a keyframe)
TINY_FRAME = 64 * 64 * 3 * (4 + 1)  # the tiny model's float32 input plus the RGB picture


class Taker:
    """`budget.take(n, own)` in a thread of its own, so a test can see whether it waits."""

    def __init__(self, budget: Budget, n: int, own: int = 0) -> None:
        self.result: list[bool] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(budget.take(n, own)), daemon=True
        )
        self.thread.start()

    def returned(self, within: float = 0.3) -> bool:
        self.thread.join(within)
        return not self.thread.is_alive()


def test_a_take_waits_until_the_bytes_fit_under_the_cap() -> None:
    budget = Budget(100)
    assert budget.take(60)
    taker = Taker(budget, 50)
    assert not taker.returned()
    budget.give(20)
    assert taker.returned(5) and taker.result == [True]
    assert (budget.used, budget.peak) == (90, 90)


def test_a_file_larger_than_the_cap_is_admitted_alone() -> None:
    budget = Budget(100)
    assert budget.take(10)
    taker = Taker(budget, 250)
    assert not taker.returned()  # not beside anything else
    budget.give(10)
    assert taker.returned(5) and taker.result == [True]
    assert budget.peak == 250


def test_a_take_is_admitted_when_all_that_is_held_is_the_takers_own() -> None:
    """The preparing thread's own reads cannot come back while it waits: waiting for them
    would never end."""
    budget = Budget(100)
    assert budget.take(80)
    assert Taker(budget, 50, own=80).returned()
    budget.give(130)
    assert budget.take(80)
    assert budget.take(10)  # someone else's
    assert not Taker(budget, 50, own=80).returned()


def test_settling_corrects_a_take_without_waiting_and_wakes_waiters() -> None:
    budget = Budget(100)
    assert budget.take(90)
    taker = Taker(budget, 50)
    assert not taker.returned()
    assert budget.settle(90, 30) == 30  # decoded smaller than estimated
    assert taker.returned(5)
    assert budget.settle(50, 120) == 120  # those bytes exist already: no wait
    assert budget.used == 150


def test_closing_wakes_a_waiting_take_and_refuses_it() -> None:
    budget = Budget(100)
    assert budget.take(100)
    taker = Taker(budget, 1)
    assert not taker.returned()
    budget.close()
    assert taker.returned(5) and taker.result == [False]
    assert budget.used == 100


def test_the_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMSEARCH_PIPELINE_MIB", raising=False)
    assert pipeline.budget_bytes() == pipeline.CAP_MIB << 20
    monkeypatch.setenv("MMSEARCH_PIPELINE_MIB", "0.5")
    assert pipeline.budget_bytes() == 1 << 19
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("MMSEARCH_PIPELINE_MIB", bad)
        with pytest.raises(UsageError, match="MMSEARCH_PIPELINE_MIB"):
            pipeline.budget_bytes()


def many_frames_video(path: Path, seed: int) -> Path:
    """FRAMES frames that all survive keyframe and scene selection: each a keyframe, the
    brightness jumping by more than the scene threshold every frame; 8 fps keeps the stream
    times exact, so the even spacing passes the minimum gap."""
    levels = "if(eq(mod(N,4),1),40,if(eq(mod(N,4),2),240,if(eq(mod(N,4),3),200,0)))"
    luma = levels.replace(",", "\\,")  # differences alternate 40 and 200: all scene changes
    chroma = f"cb='128+50*sin(N+{seed})':cr='128+50*cos(N*1.3+{seed})'"
    graph = f"color=black:s=96x64:r=8:d={FRAMES / 8},geq=lum='{luma}':{chroma}"
    path.parent.mkdir(parents=True, exist_ok=True)
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "1", "-pix_fmt", "yuv420p"]
    ffmpeg("-f", "lavfi", "-i", graph, *encode, str(path))
    return path


def noisy_photo(path: Path, seed: int) -> Path:
    """A PNG that does not compress (~230 KB): a few of them outweigh a small cap unread."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four videos of FRAMES kept frames each, between incompressible and small photos."""
    folder = tmp_path_factory.mktemp("library")
    for i in range(4):
        many_frames_video(folder / f"{i}-clip.mp4", seed=i)
        for j in range(3):
            noisy_photo(folder / f"{i}-noise-{j}.png", seed=10 * i + j)
        make_image(folder / f"{i}-small.jpg", seed=i)
    return folder


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch) -> list[Budget]:
    """Every budget an indexing run makes (the real class, only remembered)."""
    made: list[Budget] = []

    class Remembered(Budget):
        def __init__(self, cap: int) -> None:
            super().__init__(cap)
            self.grown: list[tuple[int, int]] = []  # (taken, actual) where actual > taken
            made.append(self)

        def settle(self, taken: int, actual: int) -> int:
            if actual > taken:
                self.grown.append((taken, actual))
            return super().settle(taken, actual)

    monkeypatch.setattr(pipeline, "Budget", Remembered)
    return made


def index_into(db: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Index `folder` into a fresh store; every file's row and item rows, read back."""
    monkeypatch.setenv("MMSEARCH_DB", str(db))
    args = ["index", str(folder), "--max-frames", str(FRAMES), "--min-gap", "0", "--workers", "4"]
    result = run(*args, "--ocr", "never")
    assert result.exit_code == 0, result.stderr
    rows = {}
    for path, row in file_rows().items():
        items = item_rows(path)
        key = [(r["kind"], r["t"], r["t_end"], r["page"], r["content_hash"]) for r in items]
        rows[path] = (row["status"], row["items"], key, np.array([r["vector"] for r in items]))
    return rows


def test_the_pipeline_never_holds_more_than_the_cap_and_stores_the_same_rows(
    library: Path, tmp_path: Path, budgets: list[Budget], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "CAP_MIB", 10_000)
    unbounded = index_into(tmp_path / "unbounded", library, monkeypatch)
    monkeypatch.setattr(pipeline, "CAP_MIB", 3)
    bounded = index_into(tmp_path / "bounded", library, monkeypatch)

    free, capped = budgets
    assert free.peak > 3 << 20  # without the cap this library is held at once ...
    assert 0 < capped.peak <= 3 << 20  # ... with it, never more than the cap
    assert capped.used == 0  # every byte taken was given back
    assert capped.grown == []  # photos and videos take their bytes before they exist
    videos = [p for p in bounded if p.endswith(".mp4")]
    assert len(videos) == 4 and all(bounded[p][1] == FRAMES for p in videos)
    assert len(bounded) == 4 * 5
    for path, (status, n, key, vectors) in unbounded.items():
        assert bounded[path][:3] == (status, n, key), path
        np.testing.assert_allclose(bounded[path][3], vectors, atol=1e-5)


@pytest.mark.timeout(120)  # a wait that never ends fails here, not at the suite's limit
def test_a_file_larger_than_the_cap_still_indexes(
    library: Path, tmp_path: Path, budgets: list[Budget], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "CAP_MIB", 1)  # a video's FRAMES frames take 2.3 MiB
    rows = index_into(tmp_path / "store", library, monkeypatch)
    assert all(status == "ok" for status, *_ in rows.values())
    assert [n for p, (_, n, *_) in sorted(rows.items()) if p.endswith(".mp4")] == [FRAMES] * 4
    (budget,) = budgets
    assert budget.peak > 1 << 20  # a video went through, alone: nothing else beside it
    assert budget.peak <= FRAMES * TINY_FRAME


@pytest.mark.timeout(120)
def test_a_model_larger_than_the_first_guess_neither_stalls_nor_changes_rows(
    library: Path, tmp_path: Path, budgets: list[Budget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until a file needs the model, frames are costed at the default model's size; with a
    larger model the first chunk holds more than that, and must still drain."""
    monkeypatch.setattr(pipeline, "CAP_MIB", 3)
    expected = index_into(tmp_path / "first", library, monkeypatch)
    monkeypatch.setattr(pipeline, "GUESS_SIDE", 8)  # the tiny model's frames are 64 px
    rows = index_into(tmp_path / "second", library, monkeypatch)
    assert {p: r[:3] for p, r in rows.items()} == {p: r[:3] for p, r in expected.items()}
    assert budgets[1].used == 0
