"""Where the process boundary is the point: import cost, the writer lock, signals, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import file_rows, item_paths, make_image, run, run_process

from mmsearch.core.errors import ExitStatus


def test_importing_the_cli_loads_neither_torch_nor_lancedb() -> None:
    code = (
        "import sys, mmsearch, mmsearch.doors.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'open_clip', 'lancedb', 'pyarrow', 'PIL', 'numpy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_never_imports_torch(photos: Path) -> None:
    run("index", "-q", str(photos))
    code = (
        "import sys; from mmsearch.doors.cli import app; "
        "app(['status'], standalone_mode=False); print('torch' in sys.modules, file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stderr.strip() == "False"


@contextmanager
def lock_held_elsewhere(purpose: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's writer lock, as a running `watch` would."""
    code = (
        "import os, sys, time; from mmsearch.storage.store import Store; "
        f"lock = Store(os.environ['MMSEARCH_DB']).writer_lock({purpose!r}); lock.__enter__(); "
        "print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_and_told_who_writes(photos: Path) -> None:
    with lock_held_elsewhere("watch") as holder:
        result = run("index", str(photos))
    assert result.exit_code == ExitStatus.BUSY
    assert f"mmsearch watch (pid {holder.pid}) is writing to" in result.stderr


def test_forget_is_refused_while_another_process_writes(photos: Path) -> None:
    run("index", "-q", str(photos))
    with lock_held_elsewhere("watch"):
        assert run("forget", str(photos)).exit_code == ExitStatus.BUSY
    assert len(file_rows()) == 7


def test_the_lock_is_free_again_when_its_holder_dies(photos: Path) -> None:
    with lock_held_elsewhere("index"):
        pass
    assert run("index", "-q", str(photos)).exit_code == 0


def test_queries_do_not_wait_for_the_writer(photos: Path) -> None:
    from mmsearch.storage.store import Store

    run("index", "-q", str(photos))
    with Store(os.environ["MMSEARCH_DB"]).writer_lock():
        assert run("query", "x", "--json").exit_code == 0


@pytest.fixture
def many_images(tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    for i in range(240):
        make_image(folder / f"d{i % 7}" / f"img {i:03d}.png", seed=i, size=(320, 240))
    return folder


def _index_process(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "index", "--batch-size", "4", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        # a suite started in the background passes "SIGINT ignored" on, and Python keeps it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_first_commit(proc: subprocess.Popen[str], timeout: float = 120) -> bool:
    """True once the run has committed some files and is still going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if file_rows():
                return proc.poll() is None
        except (AssertionError, ValueError, OSError, StopIteration):
            pass  # tables not created yet
        time.sleep(0.05)
    return False


def _assert_index_equals(folder: Path) -> None:
    on_disk = sorted(str(p) for p in folder.rglob("*.png"))
    assert sorted(file_rows()) == on_disk
    assert item_paths() == on_disk  # no missing, stale or duplicate rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_mid_run_then_rerun_gives_an_exact_index(many_images: Path, seed: int) -> None:
    rng = random.Random(seed)
    proc = _index_process(many_images)
    assert _wait_for_first_commit(proc), proc.communicate()
    time.sleep(rng.uniform(0, 0.1))  # a whole run of these tiny images takes about a second
    proc.kill()
    proc.wait()
    assert len(file_rows()) < 240  # it really was cut short
    rerun = run_process("index", str(many_images))
    assert rerun.returncode == 0, rerun.stderr
    _assert_index_equals(many_images)


@pytest.fixture
def more_images(many_images: Path) -> Path:
    """Enough pictures that a Ctrl-C sent after the first commit lands while the run is still
    at work (240 alone can be done before the signal arrives)."""
    for i in range(240, 960):
        make_image(many_images / f"d{i % 7}" / f"img {i:03d}.png", seed=i, size=(320, 240))
    return many_images


def test_ctrl_c_exits_130_and_keeps_committed_work(more_images: Path) -> None:
    many_images = more_images
    proc = _index_process(many_images)
    assert _wait_for_first_commit(proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert "interrupted" in stderr and "Traceback" not in stderr
    kept = len(file_rows())
    assert kept > 0
    rerun = run_process("index", str(many_images))
    assert f"{kept} unchanged" in rerun.stderr
    _assert_index_equals(many_images)


def test_help_is_fast_and_lists_every_command() -> None:
    started = time.monotonic()
    result = run_process("--help")
    assert time.monotonic() - started < 10
    for command in ("index", "query", "similar", "status", "forget"):
        assert command in result.stdout


def test_json_output_survives_a_closed_pipe(photos: Path) -> None:
    run("index", "-q", str(photos))
    proc = subprocess.run(
        f"{sys.executable} -m mmsearch query x --jsonl -n 7 | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert "Traceback" not in proc.stderr


def test_a_store_path_that_cannot_be_a_folder_fails_in_one_line(
    photos: Path, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = run("index", str(photos), "--db", str(not_a_folder))
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"mmsearch: error: cannot create store folder {not_a_folder}: File exists\n"
    )


def test_progress_bar_shows_counts_and_rate_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from mmsearch.doors.cli import _progress

    out = io.StringIO()
    with _progress(enabled=True, console=Console(file=out, force_terminal=True, width=100)) as bar:
        assert bar is not None
        bar.start(10)
        for _ in range(4):
            bar.advance(embedded=True)
            time.sleep(0.05)
        bar.bar.refresh()
    assert "4/10" in out.getvalue() and "files/s" in out.getvalue()


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    from mmsearch.doors.cli import _progress

    with _progress(enabled=False, console=None) as bar:
        assert bar is None


def test_version_prints_the_package_version() -> None:
    from mmsearch import __version__

    result = run("--version")
    assert (result.exit_code, result.stdout) == (0, f"mmsearch {__version__}\n")
