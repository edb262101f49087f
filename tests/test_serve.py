"""The warm path: `serve` (and `watch`) answer queries over a private socket; `query` and
`similar` use it by themselves and answer alone when it is not there."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import env_settings, file_rows, item_paths, make_image, query_json, run, run_process

from mmsearch.doors.client import ask, socket_path
from mmsearch.doors.serve import serving
from mmsearch.library import Library


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
    code = "from mmsearch.doors.cli import main; main()"
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


def raw(path: Path, payload: bytes) -> dict:
    """Send `payload` as it is and read the server's reply."""
    import socket

    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(path))
        with contextlib.suppress(BrokenPipeError):  # a refusal may come before the end
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
        return json.loads(b"".join(iter(lambda: conn.recv(65536), b"")))


def request(**fields) -> bytes:
    base = {
        "v": 1,
        "db": env_settings().db,
        "model": env_settings().model,
        "pretrained": None,
        "parts": [{"kind": "text", "value": "x", "weight": 1.0}],
        "filters": {},
        "top": 3,
        "moments": False,
        "mode": "auto",
    }
    return json.dumps({**base, **fields}).encode() + b"\n"


@pytest.mark.parametrize(
    "fields",
    [
        {"top": "3"},
        {"top": 0},
        {"parts": "x"},
        {"parts": [{"kind": "sound", "value": "x", "weight": 1.0}]},
        {"parts": [{"kind": "text", "value": 3, "weight": 1.0}]},
        {"parts": [{"kind": "text", "value": "x", "weight": 1.0, "evil": 1}]},
        {"filters": {"kinds": ["nope"]}},
        {"mode": "fastest"},
        {"moments": "yes"},
        {"parts": [{"kind": "text", "value": "x" * 5000, "weight": 1.0}]},
        {"filters": {"within": ["/x"] * 300}},
        {"filters": {"exts": ["jpg"] * 300}},
        {"filters": {"within": "/x"}},
        {"model": "m" * 5000},
    ],
)
def test_a_malformed_request_is_a_usage_error_before_anything_runs(
    server: Path, fields: dict
) -> None:
    reply = raw(server, request(**fields))
    assert reply["exit_code"] == 2 and "\n" not in reply["error"], reply


def test_a_request_naming_fifty_thousand_folders_is_refused_at_once(server: Path) -> None:
    started = time.monotonic()
    reply = raw(server, request(filters={"within": [f"/p/{i}" for i in range(50_000)]}))
    assert reply["exit_code"] == 2 and reply["error"] == (
        "bad request: filters.within: at most 256 values, not 50000"
    )
    assert time.monotonic() - started < 5


def test_a_request_over_the_size_cap_is_refused_unread(server: Path) -> None:
    try:  # the refusal, or a reset: the server stops reading at the cap either way
        reply = raw(server, b'{"v": 1, "pad": "' + b"x" * (2 << 20) + b'"}\n')
        assert "request too large" in reply["error"]
    except ConnectionResetError:
        pass
    assert ask(env_settings().db, {"ping": True}) is not None


def test_a_model_the_store_does_not_hold_is_never_loaded(server: Path, tmp_path: Path) -> None:
    from mmsearch.model import embed

    checkpoint = tmp_path / "elsewhere"
    checkpoint.mkdir()
    before = set(embed._cache)
    reply = raw(server, request(model=f"local-dir:{checkpoint}"))
    assert "nothing indexed with local-dir:" in reply["error"] and reply["exit_code"] == 1
    assert set(embed._cache) == before


def test_two_servers_started_at_the_same_instant_one_serves_one_exits_3(indexed: Path) -> None:
    command = [sys.executable, "-m", "mmsearch", "serve"]
    env = {**os.environ, "MMSEARCH_NO_SERVER": "1"}  # only clients heed it
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    try:
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        assert loser.returncode == 3 and "already answers queries" in loser.stderr.read()
        while ask(env_settings().db, {"ping": True}) is None:
            assert winner.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert ask(env_settings().db, {"ping": True})["pid"] == winner.pid
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def test_no_server_for_clients_does_not_let_a_second_server_take_the_socket(
    server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_NO_SERVER", "1")
    assert run("serve").exit_code == 3
    monkeypatch.delenv("MMSEARCH_NO_SERVER")
    assert answered_by_server("x")


def test_clients_that_hang_up_cost_one_line_and_no_traceback(
    indexed: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from mmsearch.doors import serve

    monkeypatch.setattr(serve, "READ_TIMEOUT", 0.5)
    notices: list[str] = []
    with serving(Library(env_settings()), notices.append) as path:
        for i in range(60):
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(path)
            if i % 3 == 0:
                conn.sendall(request()[:20])  # half a request, then gone
            elif i % 3 == 1:
                conn.sendall(request())  # a whole one, gone before the answer
            conn.close()
        time.sleep(2)  # the reads time out
        assert ask(env_settings().db, {"ping": True}) is not None
    assert len(notices) == 1 and "went away" in notices[0]
    assert "Traceback" not in capfd.readouterr().err


def test_slow_clients_hold_no_worker_and_others_are_answered_meanwhile(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from mmsearch.doors import serve

    before = threading.active_count()
    with serving(Library(env_settings())) as path:
        slow = []
        for _ in range(20):  # one byte every 4 s, as the attacker did
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(path)
            conn.sendall(b"{")
            slow.append(conn)
        time.sleep(1)
        assert threading.active_count() <= before + 2 + serve.WORKERS
        assert answered_by_server("x")  # another process: answered, not told busy
        for conn in slow:
            conn.close()


def test_a_request_is_read_whole_within_the_deadline_however_it_trickles(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from mmsearch.doors import serve

    monkeypatch.setattr(serve, "READ_TIMEOUT", 1.0)
    with serving(Library(env_settings())) as path:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(path)
        started = time.monotonic()
        reply = b""
        with contextlib.suppress(OSError):
            for byte in request()[:40]:  # one byte every 0.2 s: each read is quick
                conn.sendall(bytes([byte]))
                time.sleep(0.2)
        conn.settimeout(5)
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
        conn.close()
        assert time.monotonic() - started < 4
        assert "no whole request within 1 s" in json.loads(reply)["error"]


def test_one_client_process_holds_a_few_connections_and_the_rest_are_told_busy(
    server: Path,
) -> None:
    import socket

    from mmsearch.doors import serve

    held = []
    for _ in range(serve.PER_PEER + 3):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(server))
        held.append(conn)
    time.sleep(0.5)
    told = []
    for conn in held:
        conn.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            told.append(json.loads(conn.recv(65536))["exit_code"])
    assert told == [3, 3, 3]  # busy, at once; the first PER_PEER wait for their requests
    for conn in held:
        conn.close()
    assert answered_by_server("x")


def test_an_error_inside_the_server_comes_back_as_one_line_and_is_not_rerun(
    server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def broken(self, request):
        calls.append(request.parts[0].value)
        raise RuntimeError("boom")

    monkeypatch.setattr(Library, "search_here", broken)
    result = run("query", "x")
    assert result.exit_code == 1 and calls == ["x"]  # run once, by the server
    assert result.stderr == (
        "mmsearch: error: internal error: RuntimeError: boom "
        "(set MMSEARCH_TRACEBACK=1 for details and report it)\n"
    )


def test_a_slow_query_is_never_run_twice(server: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmsearch.doors.client

    calls: list[str] = []
    real = Library.search_here

    def slow(self, request):
        calls.append("ran")
        time.sleep(2)
        return real(self, request)

    monkeypatch.setattr(Library, "search_here", slow)
    monkeypatch.setattr(mmsearch.doors.client, "ANSWER_TIMEOUT", 0.5)
    result = run("query", "x")
    assert result.exit_code == 1 and "no answer within 0.5 s" in result.stderr
    time.sleep(2)
    assert calls == ["ran"]


def stranger() -> int:
    """Another local user's uid (nobody's), for a test that plants what they could."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    return 65534


def test_a_caller_of_another_uid_gets_no_answer(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = stranger()
    probe = (
        "import socket, sys\n"
        "c = socket.socket(socket.AF_UNIX)\n"
        "c.connect(sys.argv[1])\n"
        "try:\n"
        "    c.sendall(sys.argv[2].encode())\n"
        "    c.shutdown(socket.SHUT_WR)\n"
        "    print(repr(c.recv(65536)))\n"
        "except (BrokenPipeError, ConnectionResetError):\n"
        "    print(repr(b''))\n"
    )
    ping = json.dumps({"v": 1, "db": env_settings().db, "ping": True}) + "\n"
    runtime = Path(tempfile.mkdtemp(prefix="mmsearch-xdg-"))  # where a stranger may pass
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        with serving(Library(env_settings())) as path:
            server = Path(path)
            for folder in (runtime, server.parent):  # let the stranger reach the socket:
                folder.chmod(0o711)  # only the uid check is left
            server.chmod(0o666)
            proc = subprocess.run(
                ["/usr/bin/python3", "-I", "-S", "-c", probe, str(server), ping],
                capture_output=True,
                text=True,
                user=uid,
                timeout=60,
            )
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "b''"


@pytest.mark.parametrize("xdg", ["unset", "shared", "missing"])
def test_without_a_runtime_folder_of_ones_own_the_socket_lies_in_the_cache(
    xdg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # never a name in the shared temporary folder
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    where = {"unset": None, "shared": str(shared), "missing": str(tmp_path / "gone")}[xdg]
    if where is None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", where)
    assert socket_path("/a/store").parent == Path(os.environ["MMSEARCH_CACHE"]) / "run"


def test_a_held_snapshot_stops_answering_once_another_process_commits(
    server: Path, indexed: Path
) -> None:
    """A long-lived server keeps its snapshot open between queries; a `watch` in another
    process commits a batch without writing a new snapshot. The server must notice the newer
    table version and answer from the store, not from the snapshot it holds."""

    def served_paths() -> set[str]:
        reply = raw(server, request(top=50, mode="vector"))
        return {hit["path"] for hit in reply["hits"]}

    assert len(served_paths()) == 7  # the server now holds the snapshot of these 7
    watcher = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "watch", "-q", str(indexed)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        new = str(make_image(indexed / "arrived.png", seed=99))
        deadline = time.monotonic() + 90
        while not (new in file_rows() and new in item_paths()):  # the watcher's commit
            assert watcher.poll() is None, watcher.communicate()[1]
            assert time.monotonic() < deadline, "the watcher never committed the new file"
            time.sleep(0.2)
        (meta,) = (Path(env_settings().db) / "snapshots").glob("*/meta.json")
        # The snapshot on disk is stale: watch refreshes it only every few minutes.
        assert json.loads(meta.read_text())["count"] == 7
        assert new in served_paths()
    finally:
        watcher.terminate()
        watcher.wait(60)


@pytest.mark.parametrize("weights", ["folder", "checkpoint"])
def test_the_server_never_opens_the_weights_of_a_model_the_store_does_not_hold(
    server: Path, tmp_path: Path, weights: str
) -> None:
    """A client may name any model: as a `local-dir:` folder or as a checkpoint file. The
    server must refuse it as one-shot would ("nothing indexed") without reading a byte of
    those weights — neither loading the model nor hashing the file to find its tables. Seen
    from outside: the file system reports no open of the foreign files."""
    from helpers import write_tiny_model
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    foreign = write_tiny_model(tmp_path / "foreign-model", seed=1)  # loadable, and not held
    named = (
        {"model": f"local-dir:{foreign}"}
        if weights == "folder"
        else {"model": "ViT-B-32", "pretrained": str(foreign / "open_clip_model.safetensors")}
    )
    seen: list[tuple[str, str]] = []

    class Opens(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            seen.append((event.event_type, os.path.basename(event.src_path)))

    observer = Observer()
    observer.schedule(Opens(), str(foreign))
    observer.start()
    try:
        reply = raw(server, request(**named))
        (foreign / "sentinel").touch()  # inotify keeps order: once this is seen, all is
        deadline = time.monotonic() + 30
        while ("created", "sentinel") not in seen:
            assert time.monotonic() < deadline, "inotify never reported the sentinel"
            time.sleep(0.05)
    finally:
        observer.stop()
        observer.join(10)
    assert reply["exit_code"] == 1 and "nothing indexed with" in reply["error"], reply
    opened = {name for kind, name in seen if kind == "opened" and name != "sentinel"}
    assert opened == set()


def test_a_private_xdg_runtime_dir_holds_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert socket_path("/a/store").parent == tmp_path / "run" / f"mmsearch-{os.getuid()}"


def plant(folder: Path, db: str, victim: Path) -> Path:
    """What another user leaves where a server might put its socket: a folder open to all,
    and the socket's lock as a link to a file they cannot write but its victim can."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    lock = folder / (socket_path(db).name + ".lock")
    lock.symlink_to(victim)
    victim.write_text("the victim's own\n")
    victim.chmod(0o600)
    return lock


def test_a_socket_folder_planted_in_the_temporary_folder_is_never_used(
    indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = stranger()
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    planted = shared / f"mmsearch-{os.getuid()}"
    victim = tmp_path / "precious"
    lock = plant(planted, env_settings().db, victim)
    os.lchown(lock, uid, uid)
    os.chown(planted, uid, uid)
    with serving(Library(env_settings())) as path:
        assert ask(env_settings().db, {"ping": True}) is not None
        folder = Path(path).parent.stat()
        assert folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o700
    assert victim.read_text() == "the victim's own\n"
    assert os.listdir(planted) == [lock.name] and planted.stat().st_uid == uid


@pytest.mark.parametrize("planted", ["another user's", "a link", "open to all", "a linked lock"])
def test_a_planted_runtime_folder_is_refused_in_one_line_and_never_written_through(
    planted: str, indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    folder = socket_path(env_settings().db).parent
    victim = tmp_path / "precious"
    if planted == "a link":
        lock = plant(tmp_path / "elsewhere", env_settings().db, victim)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        lock = plant(folder, env_settings().db, victim)
    if planted == "another user's":
        os.chown(folder, stranger(), stranger())
    elif planted == "a linked lock":
        folder.chmod(0o700)  # private now; what was planted while it was open stays
    result = run_process("serve", timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "mmsearch: error: " in result.stderr and "Traceback" not in result.stderr
    reason = "not a file of yours" if planted == "a linked lock" else "not a private folder"
    assert reason in result.stderr
    assert victim.read_text() == "the victim's own\n" and lock.is_symlink()


def test_watch_goes_on_without_answering_queries_when_the_socket_folder_is_planted(
    indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    socket_path(env_settings().db).parent.mkdir(mode=0o777)
    socket_path(env_settings().db).parent.chmod(0o777)
    notices: list[str] = []
    stop = threading.Event()
    stop.set()  # one pass over the folder, then stop
    Library(env_settings()).watch([str(indexed)], stop, on_notice=notices.append)
    assert any("not serving queries" in n and "not a private folder" in n for n in notices)
