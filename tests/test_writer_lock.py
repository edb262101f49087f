"""The writer lock: one writer per store, whether the other writer is another process or
another thread of this one; the holding thread may nest it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mmsearch.core.errors import StoreBusy
from mmsearch.storage.store import Store


def store() -> Store:
    return Store(os.environ["MMSEARCH_DB"])


def try_in_thread(purpose: str = "index") -> BaseException | None:
    """Take the lock in a new thread of this process: what it raised, or None."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            with store().writer_lock(purpose):
                outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and len(outcome) == 1
    return outcome[0]


def test_another_thread_is_refused_while_one_holds_it() -> None:
    with store().writer_lock("watch"):
        refused = try_in_thread()
    assert isinstance(refused, StoreBusy)
    assert f"mmsearch watch (pid {os.getpid()}) is writing to" in str(refused)


def test_another_thread_can_take_it_once_released() -> None:
    with store().writer_lock("watch"):
        pass
    assert try_in_thread() is None


def test_the_holding_thread_may_nest_it_and_the_outermost_hold_releases_it() -> None:
    with store().writer_lock("watch"):
        with store().writer_lock("index"):  # another Store object of the same store
            pass
        assert isinstance(try_in_thread(), StoreBusy)  # still held after the inner hold
    assert try_in_thread() is None


def test_two_threads_racing_for_it_never_both_hold_it() -> None:
    start, holding, inside = threading.Barrier(8), threading.Lock(), [0, 0]  # now, most
    busy: list[StoreBusy] = []

    def contend() -> None:
        start.wait()
        try:
            with store().writer_lock():
                with holding:
                    inside[0] += 1
                    inside[1] = max(inside)
                threading.Event().wait(0.05)
                with holding:
                    inside[0] -= 1
        except StoreBusy as e:
            busy.append(e)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert inside[1] == 1 and len(busy) >= 1


def test_another_process_holding_it_is_named(tmp_path: Path) -> None:
    release = tmp_path / "release"
    code = (
        "import os, sys, time; from mmsearch.storage.store import Store\n"
        "with Store(os.environ['MMSEARCH_DB']).writer_lock('forget'):\n"
        "    print('held', flush=True)\n"
        "    deadline = time.monotonic() + 60\n"
        f"    while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
        "        time.sleep(0.02)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout and proc.stdout.readline().strip() == "held"
        busy = rf"mmsearch forget \(pid {proc.pid}\) is writing to "
        with pytest.raises(StoreBusy, match=busy), store().writer_lock():
            pass
        release.touch()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with store().writer_lock():  # free again once that process let go
        pass
