"""`mmsearch watch` with the real watchdog observer on temp folders, in its own process."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import file_rows, item_paths, make_image, run

from mmsearch.indexing.reading import content_hash

SETTLE_TIMEOUT = 90


class Watcher:
    """A running `mmsearch watch` process whose stderr lines are collected."""

    def __init__(self, *args: str):
        self.args = args
        self.log = Path(os.environ["MMSEARCH_DB"] + f".watch-{time.monotonic_ns()}.log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmsearch", "watch", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def embedded(self) -> int:
        """How many files this watcher embedded (new + updated)."""
        total = 0
        for line in self.lines():
            for n in re.findall(r"(\d+) (?:new|updated)", line):
                total += int(n)
        return total

    def embedded_reaches(self, n: int, timeout: float = 30) -> int:
        """The count of embedded files once it reaches `n` (a batch's line is printed
        after its rows are committed), or whatever it is when time runs out."""
        deadline = time.monotonic() + timeout
        while self.embedded() < n and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # and nothing more arrives
        return self.embedded()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def watcher() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def disk_state(folder: Path) -> dict[str, str]:
    return {
        str(p): content_hash(p.read_bytes())
        for p in folder.rglob("*.png")
        if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def index_state() -> dict[str, str]:
    try:
        rows = file_rows()
    except (AssertionError, ValueError, OSError, StopIteration):
        return {}
    return {p: r["content_hash"] for p, r in rows.items() if r["status"] == "ok"}


def wait_until_exact(folder: Path, timeout: float = SETTLE_TIMEOUT) -> float:
    """Seconds until the index holds exactly the folder's (path, content) pairs."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        want = disk_state(folder)
        try:
            if index_state() == want and item_paths() == sorted(want):
                return time.monotonic() - started
        except (ValueError, OSError, RuntimeError):
            pass  # read while the watcher commits: look again
        time.sleep(0.2)
    want, have, items = disk_state(folder), index_state(), item_paths()
    doubled = sorted({p for p in items if items.count(p) > 1})
    raise AssertionError(
        f"index never matched the disk: missing {sorted(set(want) - set(have))[:5]}, "
        f"stale {sorted(set(have) - set(want))[:5]}, doubled items {doubled[:5]}, "
        f"items without a file {sorted(set(items) - set(want))[:5]}, "
        f"files without items {sorted(set(want) - set(items))[:5]}"
    )


def populate(folder: Path, count: int, seed: int = 0) -> list[Path]:
    return [
        make_image(folder / f"d{i % 6}" / f"img {i:03d}.png", seed=seed + i, size=(32, 32))
        for i in range(count)
    ]


def test_watch_indexes_what_exists_when_it_starts(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 10)
    watcher.append(Watcher(str(folder)))
    wait_until_exact(folder)


def test_a_burst_of_changes_settles_into_an_exact_index_without_reembedding_moves(
    tmp_path: Path, watcher
) -> None:
    folder = tmp_path / "photos"
    files = populate(folder, 120)
    w = Watcher(str(folder))
    watcher.append(w)
    wait_until_exact(folder)
    before = w.embedded_reaches(120)
    assert before == 120

    for f in files[:30]:  # renames
        f.rename(f.with_name("renamed " + f.name))
    (folder / "d1").rename(folder / "d1 moved")  # a whole directory
    for f in files[30:50]:  # deletes
        if f.exists():
            f.unlink()
    shutil.rmtree(folder / "d2")  # rm -r
    changed = [f for f in files[60:120] if f.exists()][:20]
    for i, f in enumerate(changed[:10]):  # modified in place
        make_image(f, seed=5000 + i, size=(32, 32))
    for i, f in enumerate(changed[10:]):  # atomic saves: temp file, then rename over
        tmp = f.with_name(f".{f.name}.tmp")
        make_image(tmp, seed=6000 + i, size=(32, 32), fmt="PNG")
        os.replace(tmp, f)
    populate(folder / "new", 30, seed=7000)  # a new subfolder

    wait_until_exact(folder)  # fails past SETTLE_TIMEOUT
    expected = 10 + len(changed[10:]) + 30
    assert w.embedded_reaches(before + expected) - before == expected


def test_temporary_and_partial_files_never_reach_the_index(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 2)
    watcher.append(Watcher(str(folder)))
    wait_until_exact(folder)
    before = set(index_state())
    for name in (
        "a.png.part",
        "~$b.png",
        ".~lock.c.png#",
        "d.png.crdownload",
        "e.png~",
        ".hidden.png",
        "f.png.tmp",
    ):
        make_image(folder / name, seed=9, size=(32, 32), fmt="PNG")
    make_image(folder / "real.png", seed=10, size=(32, 32))
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while str(folder / "real.png") not in index_state() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # junk events arrived before real.png's: they are settled too
    assert set(index_state()) == before | {str(folder / "real.png")}


WATCH_KILL_TRIALS = int(os.environ.get("MMSEARCH_WATCH_KILL_TRIALS", "3"))


def test_killing_the_watcher_mid_burst_then_restarting_converges(tmp_path: Path, watcher) -> None:
    """Seeded trials: a burst, kill -9 at a random moment in it, changes while nothing
    watches, a new watcher; each time the index must become exact again."""
    rng = random.Random(99)
    folder = tmp_path / "photos"
    populate(folder, 40)
    watcher.append(Watcher(str(folder)))
    wait_until_exact(folder)
    for trial in range(WATCH_KILL_TRIALS):
        files = sorted(folder.rglob("*.png"))
        for f in rng.sample(files, 10):
            f.rename(f.with_name(f"t{trial} {f.name}"))
        populate(folder / f"burst {trial}", 20, seed=1000 * (trial + 1))
        time.sleep(rng.uniform(0.2, 2.5))  # somewhere in the burst's batches
        watcher[-1].proc.kill()
        watcher[-1].proc.wait()
        for f in rng.sample(sorted(folder.rglob("*.png")), 5):
            f.unlink()  # and changes while nothing watches
        watcher.append(Watcher(str(folder)))
        wait_until_exact(folder)


def test_index_is_refused_while_a_watcher_owns_the_store(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 3)
    w = Watcher(str(folder))
    watcher.append(w)
    wait_until_exact(folder)
    result = run("index", str(folder))
    assert result.exit_code == 3
    assert f"mmsearch watch (pid {w.proc.pid})" in result.stderr


def test_queries_keep_working_during_heavy_watch_activity(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 5)
    watcher.append(Watcher(str(folder)))
    wait_until_exact(folder)
    populate(folder / "burst", 150, seed=100)
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = subprocess.run(
            [sys.executable, "-m", "mmsearch", "query", "x", "-n", "500", "--paths"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        seen.add(len(result.stdout.splitlines()))
        if max(seen) == 155:
            break
    assert max(seen) == 155  # later queries saw the watcher's commits


def test_polling_mode_follows_changes(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    files = populate(folder, 3)
    watcher.append(Watcher(str(folder), "--poll", "--poll-interval", "0.5"))
    wait_until_exact(folder)
    files[0].unlink()
    make_image(folder / "new.png", seed=50, size=(32, 32))
    wait_until_exact(folder)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_watcher_cleanly(tmp_path: Path, watcher, sig: int) -> None:
    folder = tmp_path / "photos"
    populate(folder, 3)
    w = Watcher(str(folder))
    watcher.append(w)
    wait_until_exact(folder)
    assert w.stop(sig) == 0
    assert "Traceback" not in w.log.read_text()


def test_one_line_per_batch_of_changes(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 4)
    w = Watcher(str(folder))
    watcher.append(w)
    wait_until_exact(folder)
    (folder / "d0" / "img 000.png").unlink()
    wait_until_exact(folder)
    deadline = time.monotonic() + 30
    while "removed" not in (w.lines() or [""])[-1] and time.monotonic() < deadline:
        time.sleep(0.1)
    start, *lines = w.lines()
    assert start.startswith(f"watching {folder} into ") and "answering queries" in start
    assert re.fullmatch(r"\d\d:\d\d:\d\d 4 new \(\d+\.\d s\)", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d 1 removed \(\d+\.\d s\)", lines[-1])


def test_quiet_watcher_prints_nothing(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    populate(folder, 2)
    w = Watcher("-q", str(folder))
    watcher.append(w)
    wait_until_exact(folder)
    assert w.stop() == 0
    assert w.lines() == []


def test_running_out_of_inotify_watches_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    from mmsearch.indexing.watch import ChangeSet, WatchOptions, _start_observer

    def no_watches_left(*args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Observer, "schedule", no_watches_left)
    notices: list[str] = []
    observer = _start_observer([str(tmp_path)], ChangeSet(), WatchOptions(), notices.append)
    try:
        assert isinstance(observer, PollingObserver)
        assert "max_user_watches" in notices[0]
    finally:
        observer.stop()
        observer.join()


def test_a_file_still_being_written_is_not_released(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mmsearch.indexing.watch import ChangeSet

    changes = ChangeSet()
    growing = tmp_path / "growing.png"
    growing.write_bytes(b"x")
    changes.dispatch(
        SimpleNamespace(event_type="created", is_directory=False, src_path=str(growing))
    )
    assert changes.settled(0) == []  # first look records size and mtime
    with growing.open("ab") as f:
        f.write(b"more")
    assert changes.settled(0) == []  # it changed between looks
    assert changes.settled(0) == [str(growing)]  # stable at two looks in a row


def test_watch_honours_exclude_and_mmsearchignore(tmp_path: Path, watcher) -> None:
    folder = tmp_path / "photos"
    (folder / "keep").mkdir(parents=True)
    (folder / ".mmsearchignore").write_text("private/\n")
    make_image(folder / "keep" / "a.png", seed=1, size=(32, 32))
    make_image(folder / "raw" / "b.png", seed=2, size=(32, 32))
    make_image(folder / "private" / "c.png", seed=3, size=(32, 32))
    watcher.append(Watcher(str(folder), "--exclude", "raw/"))

    def indexed_names(want: set[str]) -> set[str]:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            names = {Path(p).name for p in index_state()}
            if want <= names:
                time.sleep(1)  # and whatever else the batch held
                return {Path(p).name for p in index_state()}
            time.sleep(0.2)
        raise AssertionError(f"never indexed {want}")

    assert indexed_names({"a.png"}) == {"a.png"}  # the first scan
    make_image(folder / "raw" / "d.png", seed=4, size=(32, 32))
    make_image(folder / "private" / "e.png", seed=5, size=(32, 32))
    make_image(folder / "keep" / "f.png", seed=6, size=(32, 32))
    assert indexed_names({"f.png"}) == {"a.png", "f.png"}  # changes seen while watching


def test_a_file_written_in_slow_pieces_is_read_once_when_it_is_complete(tmp_path: Path) -> None:
    """A download or a slow copy writes a file in pieces with pauses shorter than the settle
    time: the watcher must wait for the path to be quiet before reading it, not read each
    intermediate state (a failed or half picture, then an update)."""
    import io
    import threading

    from helpers import env_settings
    from PIL import Image

    from mmsearch.indexing.index import IndexOptions, IndexReport
    from mmsearch.indexing.watch import WatchOptions
    from mmsearch.library import Library

    folder = tmp_path / "photos"
    populate(folder, 1)
    reports: list[IndexReport] = []
    stop = threading.Event()
    watching = threading.Thread(
        target=Library(env_settings()).watch,
        args=([str(folder)], stop),
        kwargs={
            "options": IndexOptions(workers=1),
            "watch_options": WatchOptions(settle=3.0),
            "on_batch": reports.append,
            "serve": False,
        },
        daemon=True,
    )
    watching.start()
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not reports:  # the catch-up pass is done: the observer is running
            assert watching.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        caught_up = len(reports)

        picture = io.BytesIO()
        Image.effect_noise((96, 96), 80).convert("RGB").save(picture, "PNG")
        data = picture.getvalue()
        arriving = folder / "arriving.png"
        with arriving.open("wb") as f:
            for start in range(0, len(data), len(data) // 8 + 1):
                f.write(data[start : start + len(data) // 8 + 1])
                f.flush()
                time.sleep(0.4)  # the writer's own pace, well inside the settle time
        want = content_hash(data)
        while index_state().get(str(arriving)) != want:
            assert watching.is_alive() and time.monotonic() < deadline, reports[caught_up:]
            time.sleep(0.1)
    finally:
        stop.set()
        watching.join(60)
    batches = [(r.new, r.updated, r.failed, r.empty) for r in reports[caught_up:]]
    assert batches == [(1, 0, 0, 0)]  # read once, complete


def test_a_change_no_event_reports_is_caught_by_the_periodic_reconcile(tmp_path: Path) -> None:
    """inotify can lose events (an overflowing queue); docs: watch reconciles with a full
    incremental pass every 10 minutes anyway. A real change no event reports: the file is
    rewritten through a hard link outside the watched folder, which inotify on the folder
    never sees. Only the reconcile pass (here every second) can bring it in."""
    import threading

    from helpers import env_settings

    from mmsearch.indexing.index import IndexOptions
    from mmsearch.indexing.watch import WatchOptions
    from mmsearch.library import Library

    assert WatchOptions().reconcile_every == 600  # the documented 10 minutes
    folder = tmp_path / "photos"
    (picture,) = populate(folder, 1)
    outside = tmp_path / "elsewhere" / "same-file.png"
    outside.parent.mkdir()
    os.link(picture, outside)
    stop = threading.Event()
    watching = threading.Thread(
        target=Library(env_settings()).watch,
        args=([str(folder)], stop),
        kwargs={
            "options": IndexOptions(workers=1),
            "watch_options": WatchOptions(reconcile_every=1.0),
            "serve": False,
        },
        daemon=True,
    )
    watching.start()
    try:
        wait_until_exact(folder)
        make_image(outside, seed=4242, size=(32, 32))  # the same inode, written elsewhere
        assert picture.stat().st_ino == outside.stat().st_ino
        wait_until_exact(folder, timeout=30)
    finally:
        stop.set()
        watching.join(60)
