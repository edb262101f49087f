"""Files a query names are read bounded, in one-shot mode and inside the server alike: only
regular files, the indexing size and pixel caps, a decode timeout. Each hostile input ends
in one line and exit 1, at once, in little memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import env_settings, make_image, run
from test_bad_input import png_declaring

from mmsearch.doors.serve import serving
from mmsearch.library import Library

PEAK_RSS_MB = 300
SECONDS = 2.0


def fifo(folder: Path) -> str:
    os.mkfifo(folder / "x.jpg")
    return str(folder / "x.jpg")


def sparse(folder: Path) -> str:
    with open(folder / "huge.jpg", "wb") as f:
        f.truncate(10 << 30)  # 10 GB that take no disk
    return str(folder / "huge.jpg")


def bomb(folder: Path) -> str:
    (folder / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    return str(folder / "bomb.png")


CASES = {
    "/dev/zero": (lambda folder: "/dev/zero", "is a device, not a file"),
    "fifo": (fifo, "is a named pipe (FIFO), not a file"),
    "10 GB sparse file": (sparse, "too large for a query (10240 MiB > 512 MiB)"),
    "100000x100000 PNG": (bomb, "image too large: 100000x100000 pixels"),
}


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    make_image(tmp_path / "pics" / "a.png", seed=1)
    assert run("index", "-q", str(tmp_path / "pics")).exit_code == 0
    run("similar", str(tmp_path / "pics" / "a.png"))  # warm: imports, model, snapshot
    return tmp_path


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_query_file_is_one_line_and_exit_1_at_once(indexed: Path, case: str) -> None:
    make, reason = CASES[case]
    path = make(indexed)
    regular = os.path.isfile(path)  # `query` takes only files as pictures (grammar)
    for args in (["similar", path], *([["query", path, "+", "words"]] if regular else [])):
        started = time.monotonic()
        result = run(*args)
        took = time.monotonic() - started
        assert result.exit_code == 1, result.stderr
        assert reason in result.stderr and result.stderr.count("\n") == 1
        assert took < SECONDS, (args, took)


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_query_file_stays_within_the_memory_bound(indexed: Path, case: str) -> None:
    make, reason = CASES[case]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run([sys.executable, '-m', 'mmsearch', 'similar', sys.argv[1]],"
        " capture_output=True, text=True, stdin=subprocess.DEVNULL);"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "print(r.stderr, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, make(indexed)], capture_output=True, text=True, timeout=300
    )
    code, peak_kb = proc.stdout.split()
    assert code == "1" and reason in proc.stderr
    assert int(peak_kb) / 1024 < PEAK_RSS_MB, (peak_kb, before)


def test_the_server_reads_query_files_bounded_too(indexed: Path) -> None:
    with serving(Library(env_settings())):
        for make, reason in CASES.values():
            result = run("similar", make(indexed))
            assert result.exit_code == 1 and reason in result.stderr
            assert result.stderr.count("\n") == 1


def test_a_decoder_that_hangs_is_given_up_on(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import mmsearch.indexing.extract.image
    import mmsearch.query.compose

    never = threading.Event()
    monkeypatch.setattr(mmsearch.query.compose, "DECODE_TIMEOUT", 0.5)
    monkeypatch.setattr(mmsearch.indexing.extract.image, "load_image", lambda *args: never.wait())
    make_image(indexed / "new.png", seed=7)  # not indexed: it must be decoded
    result = run("similar", str(indexed / "new.png"))
    never.set()
    assert result.exit_code == 1 and "decoding took longer than 0.5 s" in result.stderr
