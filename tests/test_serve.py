"""The warm path: `serve` (and `watch`) answer queries over a private socket; `query` and
`similar` use it by themselves and answer alone when it is not there."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import env_settings, make_image, query_json, run

from mmsearch.client import ask, socket_path
from mmsearch.library import Library
from mmsearch.serve import serving


@pytest.fixture
def indexed(photos: Path) -> Path:
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


@pytest.fixture
def server(indexed: Path) -> Iterator[Path]:
    with serving(Library(env_settings())) as path:
        yield Path(path)


def answered_by_server(*args: str) -> bool:
    """Whether a query ran through the server: its timings then show no search of its own."""
    code = "from mmsearch.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "query", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MMSEARCH_TIMINGS": "1"},
    )
    assert result.returncode == 0, result.stderr
    return '"server"' in result.stderr and '"search"' not in result.stderr


def test_query_goes_to_a_running_server(server: Path) -> None:
    assert answered_by_server("x")


def test_server_and_one_shot_give_the_same_answers(
    server: Path, indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = query_json("red car", "-n", "5", "--in", str(indexed / "trips"))
    monkeypatch.setenv("MMSEARCH_NO_SERVER", "1")
    alone = query_json("red car", "-n", "5", "--in", str(indexed / "trips"))
    assert served == alone


def test_similar_goes_to_the_server_too(server: Path, indexed: Path) -> None:
    image = next(indexed.glob("*.jpg"))
    result = run("similar", str(image), "--json", "-n", "3")
    assert result.exit_code == 0 and str(image) not in result.stdout


def test_the_socket_is_reachable_by_its_user_only(server: Path) -> None:
    assert stat.S_IMODE(server.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.stat().st_mode) == 0o600


def test_server_errors_keep_their_message_and_exit_code(
    server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = ("--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k")
    served = run("query", "x", *other)
    monkeypatch.setenv("MMSEARCH_NO_SERVER", "1")
    alone = run("query", "x", *other)
    assert served.exit_code == alone.exit_code == 1
    assert served.stderr == alone.stderr and "nothing indexed with ViT-B-32" in served.stderr


def test_a_second_server_for_the_same_store_exits_3(server: Path) -> None:
    result = run("serve")
    assert result.exit_code == 3 and "already answers queries" in result.stderr


def test_a_dead_servers_socket_is_ignored_and_replaced(indexed: Path) -> None:
    import socket

    path = socket_path(env_settings().db)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # bound, never listening: a killed server's leftover
    assert query_json("x", "-n", "2") != []
    with serving(Library(env_settings())):
        assert ask(env_settings().db, {"ping": True}) is not None


def test_a_server_for_another_store_is_not_asked(server: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "other" / "a.jpg", seed=1)
    db = str(tmp_path / "other-store")
    assert run("index", "-q", "--db", db, str(tmp_path / "other")).exit_code == 0
    paths = [r["path"] for r in json.loads(run("query", "x", "--db", db, "--json").stdout)]
    assert paths == [str(tmp_path / "other" / "a.jpg")]


def test_serve_stops_on_sigterm_and_removes_its_socket(indexed: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "serve"],
        env=os.environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while ask(env_settings().db, {"ping": True}) is None:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(30) == 0
    assert not socket_path(env_settings().db).exists()


def test_watch_answers_queries_while_it_runs(indexed: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=Library(env_settings()).watch, args=([str(indexed)], stop), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while ask(env_settings().db, {"ping": True}) is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answered_by_server("x")
    finally:
        stop.set()
        thread.join(60)
