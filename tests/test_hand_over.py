"""A served `query`/`similar` is handed whole to the server (mmsearch.doors.client.hand_over): the
client imports next to nothing of mmsearch, and the server answers exactly as the client
would have, from the client's folder; where it could not (another environment, a table to
draw, another store, a relative model path), it refuses and the client runs it itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import env_settings, run

from mmsearch.core import private
from mmsearch.core.config import Settings
from mmsearch.doors import client, quick
from mmsearch.doors.serve import answer, serving
from mmsearch.library import Library

# Run as the `mmsearch` command runs, then list what the process imported into a file.
PROBE = """
import atexit, sys
def _listed(listing=sys.argv[1]):
    with open(listing, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(_listed)
from mmsearch.__main__ import run
sys.argv = ["mmsearch", *sys.argv[2:]]
run()
"""
FULL_CLI = "import sys; from mmsearch.doors.cli import main; sys.argv[0] = 'mmsearch'; main()"


@pytest.fixture
def served(photos: Path) -> Iterator[Path]:
    """The photos, indexed, with a server answering for their store (in this folder)."""
    assert run("index", "-q", str(photos)).exit_code == 0
    with serving(Library(env_settings())):
        yield photos


def python(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c ARGS` in `cwd` with `env` added, as a user's shell would start it."""
    return subprocess.run(
        [sys.executable, "-c", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=120,
    )


def probed(
    tmp_path: Path, *args: str, cwd: Path | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`mmsearch ARGS` in `cwd` with `env` added: what it said, and the modules it loaded."""
    listing = tmp_path / "modules.txt"
    said = python(PROBE, str(listing), *args, cwd=cwd, **env)
    return said, set(listing.read_text().split())


def full_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return python(FULL_CLI, *args, cwd=cwd, **env)


def said(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def handed_over(modules: set[str]) -> bool:
    return "mmsearch.doors.client" in modules and "mmsearch.doors.quick" not in modules


def test_a_served_query_loads_neither_settings_nor_grammar(served: Path, tmp_path: Path) -> None:
    done, modules = probed(tmp_path, "query", "red car", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)
    mmsearch = {
        "mmsearch.doors.quick",
        "mmsearch.core.config",
        "mmsearch.query.grammar",
        "mmsearch.doors.output",
    }
    # each a few milliseconds of every warm query: settings, hashing, annotations
    needless = {"dataclasses", "platformdirs", "hashlib", "typing"}
    assert "mmsearch.doors.client" in modules and not modules & {*mmsearch, *needless}


FROM_ANOTHER_FOLDER = {
    "similar, a file named from there": ["similar", "{photo}", "--json"],
    "an image shaped like a path": ["query", "./{photo}", "+", "red", "--json"],
    "an image named by a bare word": ["query", "{photo}", "--jsonl"],
    "a folder filter": ["query", "red", "--in", "photos/trips", "--paths"],
    "the store named from there": ["query", "red", "--db", "{store}", "--json"],
    "an image that is not there": ["query", "./nothing.jpg", "--json"],
}


@pytest.mark.parametrize("case", FROM_ANOTHER_FOLDER)
def test_from_another_folder_the_server_answers_as_the_cli(
    served: Path, tmp_path: Path, case: str
) -> None:
    """The client's relative paths are the client's, wherever the server runs."""
    there = served.parent
    assert Path.cwd() != there  # the server's folder
    photo = next(served.glob("*.jpg")).relative_to(there)
    store = Path(os.environ["MMSEARCH_DB"]).relative_to(there)
    args = [a.format(photo=photo, store=store) for a in FROM_ANOTHER_FOLDER[case]]
    done, modules = probed(tmp_path, *args, cwd=there)
    assert handed_over(modules)
    assert said(done) == said(full_cli(*args, cwd=there))


def test_with_another_environment_the_client_runs_it_itself(served: Path, tmp_path: Path) -> None:
    done, modules = probed(tmp_path, "query", "red", "--json", MMSEARCH_THREADS="1")
    assert not handed_over(modules)
    assert said(done) == said(full_cli("query", "red", "--json", MMSEARCH_THREADS="1"))


def test_a_relative_model_folder_from_another_folder_is_run_by_the_client(
    served: Path, tmp_path: Path
) -> None:
    """Settings reads a relative model folder from this process's folder: the server's
    would be another one, so it does not guess."""
    folder = os.environ["MMSEARCH_MODEL"].removeprefix("local-dir:")
    model = "local-dir:" + os.path.relpath(folder, served)
    args = ["query", "red", "--json", "--model", model]
    done, modules = probed(tmp_path, *args, cwd=served)
    assert not handed_over(modules)
    assert said(done) == said(full_cli(*args, cwd=served))


def handed(argv: list[str], **fields: object) -> dict[str, object]:
    """A hand-over request as `hand_over` writes it, from this folder and environment."""
    request = {
        "v": client.RUN,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": client.relevant_env(os.environ),
        "tty": False,
    }
    return {**request, **fields}


def test_a_server_runs_a_handed_over_command_line(served: Path) -> None:
    reply = answer(Library(env_settings()), handed(["query", "red", "--paths", "-n", "2"]))
    assert (reply["exit_code"], reply["stderr"]) == (0, "")
    paths = str(reply["stdout"]).splitlines()
    assert len(paths) == 2 and all(Path(p).is_relative_to(served) for p in paths)


REFUSED = {
    "a table for a terminal": lambda: handed(["query", "red"], tty=True),
    "another environment": lambda: handed(
        ["query", "red"], env={**client.relevant_env(os.environ), "TZ": "Asia/Tokyo"}
    ),
    "another store": lambda: handed(["query", "red", "--json", "--db", "/elsewhere/store"]),
    "a relative folder": lambda: handed(["query", "red", "--json"], cwd="photos"),
    "words that are not strings": lambda: handed(["query", 3, "--json"]),
    "a word no shell passes": lambda: handed(["similar", "a\0b.jpg", "--json"]),
    "a command it does not run": lambda: handed(["index", "/"]),
    "an option only the full CLI reads": lambda: handed(["query", "red", "--explain"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_server_refuses_what_it_cannot_answer_as_the_client(served: Path, case: str) -> None:
    assert "refused" in answer(Library(env_settings()), REFUSED[case]())


def test_a_variable_that_names_others_is_run_by_the_client(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hugging Face expands `$VAR` in its folders: from variables the server was not sent."""
    monkeypatch.setenv("HF_HOME", "$SCRATCH/hf")
    assert "refused" in answer(Library(env_settings()), handed(["query", "red", "--json"]))


def test_a_relative_cache_folder_is_run_by_the_client_from_another_folder(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", "relative/hf")
    library = Library(env_settings())
    assert "refused" in answer(library, handed(["query", "red", "--json"], cwd=str(served)))
    assert "refused" not in answer(library, handed(["query", "red", "--json"]))


STORES_NO_PATH_CAN_NAME = {"a user that does not exist": "~nobody-here/db", "not UTF-8": b"\xff"}


@pytest.mark.parametrize("case", STORES_NO_PATH_CAN_NAME)
def test_a_store_name_no_socket_can_have_is_left_to_the_client(
    served: Path, tmp_path: Path, case: str
) -> None:
    store = STORES_NO_PATH_CAN_NAME[case]
    args = ["query", "red", "--json", "--db"]
    done = subprocess.run(
        [sys.executable, "-m", "mmsearch", *args, store],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    full = subprocess.run(
        [sys.executable, "-c", FULL_CLI, *args, store],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert b"Traceback" not in done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )


def test_a_path_stdout_cannot_encode_is_said_as_one_shot_says_it(
    served: Path, tmp_path: Path
) -> None:
    accented = served / "café.jpg"
    accented.write_bytes(next(served.glob("*.jpg")).read_bytes())
    assert run("index", "-q", str(served)).exit_code == 0
    args = ["query", "red", "--paths", "-n", "100"]
    done, modules = probed(tmp_path, *args, PYTHONIOENCODING="ascii")
    alone, _ = probed(tmp_path, *args, PYTHONIOENCODING="ascii", MMSEARCH_NO_SERVER="1")
    assert handed_over(modules) and "café" in full_cli(*args).stdout
    assert said(done) == said(alone)


def test_a_folder_no_shell_has_is_answered_as_any_other(served: Path) -> None:
    request = handed(["query", "./a.jpg", "--json"], cwd="/tmp/a\0b")
    reply = answer(Library(env_settings()), request)
    assert (reply["exit_code"], reply["stderr"]) == (2, "mmsearch: error: no such image: ./a.jpg\n")


def test_a_bug_in_reading_a_command_line_reaches_the_client_as_one_line(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(quick, "_read", broken)
    reply = answer(Library(env_settings()), handed(["query", "red", "--json"]))
    assert reply["exit_code"] == 1 and reply["stdout"] == ""
    assert reply["stderr"] == (
        "mmsearch: internal error: RuntimeError: a bug over two lines "
        "(set MMSEARCH_TRACEBACK=1 for details and report it)\n"
    )


def test_a_broken_pipe_inside_a_servers_search_is_a_bug_not_a_reader_gone(served: Path) -> None:
    """In a server, stdout is a buffer: a broken pipe comes from elsewhere, and must not
    send the server's own output to /dev/null as `| head` would."""

    def search(request: object) -> list[object]:
        raise BrokenPipeError(32, "Broken pipe")

    db = env_settings().db
    status, out, err = quick.answer_handed(
        ["query", "red", "--json"], os.getcwd(), False, db, search
    )
    assert (status, out) == (1, "") and err.startswith("mmsearch: internal error: BrokenPipeError")
    assert os.fstat(sys.stdout.fileno()).st_ino != os.stat(os.devnull).st_ino


def test_a_servers_own_notices_stay_with_it(served: Path, tmp_path: Path) -> None:
    """A notice the server made (a store it made private) is for whoever runs the server,
    not for the next client."""
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert private.tighten(str(loose)) == 1  # the server's main thread, say `watch` starting
    replies = []
    worker = threading.Thread(
        target=lambda: replies.append(
            answer(Library(env_settings()), handed(["query", "x", "--json"]))
        )
    )
    worker.start()
    worker.join()
    assert "made the store" not in replies[0]["stderr"]
    assert [n for n in private.take_notices() if str(loose) in n]


@pytest.mark.parametrize(
    ("argv", "env", "db"),
    [
        (["query", "x"], {}, ""),
        (["query", "x"], {"XDG_DATA_HOME": None}, ""),
        (["query", "x"], {"XDG_DATA_HOME": "relative/data"}, ""),
        (["query", "x", "--db", "rel/./store/"], {}, "rel/./store/"),
        (["query", "x", "--db=~/store"], {}, "~/store"),
        (["query", "x", "--db", "a/../b"], {}, "a/../b"),
        (["query", "x"], {"MMSEARCH_DB": "from-env"}, "from-env"),
        (["query", "--", "--db", "x"], {"MMSEARCH_DB": "/abs/store"}, "/abs/store"),
        (["query", "x", "--db", "s3://bucket/store"], {}, "s3://bucket/store"),
    ],
)
def test_the_client_finds_the_server_of_the_store_settings_name(
    argv: list[str], env: dict[str, str | None], db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db`: what the command line names, as Settings gets it."""
    monkeypatch.delenv("MMSEARCH_DB")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert client.store_named(argv) == Settings(db=db).db
