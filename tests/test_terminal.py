"""What reaches a terminal: names and passages written by strangers are shown escaped, never
acted on, and the table fits the screen. Rendered by the real CLI under a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import make_image, make_pdf, make_video, run
from rich.cells import cell_len

from mmsearch.core.sanitise import snippet, terminal

HOSTILE_NAMES = [
    "clear \x1b[2J\x1b[H.png",  # clears the screen, homes the cursor
    "title \x1b]0;pwned\x07.png",  # sets the window title
    "evil\u202egnp.exe.png",  # a right-to-left override: reads as ...exe.png reversed
    "new\nline.png",  # looks like a second row
    "c1 \x9b31m csi.png",  # an 8-bit CSI
    "bell \x07 del \x7f.png",
]
SNIPPET_TEXT = "meeting notes \x1b]0;pwned\x07 about \x1b[31mcats\x1b[0m and dogs\r\n"


def in_terminal(*args: str, columns: int = 80, env: dict[str, str] | None = None) -> str:
    """Everything `mmsearch ARGS` writes to a pseudo-terminal of `columns` columns (stdout
    and stderr both), as text."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        os.environ.update(env or {})
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)
        os.execv(sys.executable, [sys.executable, "-m", "mmsearch", *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 1), b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace")


def in_terminal_until(said: str, *args: str) -> str:
    """What a long-running `mmsearch ARGS` writes to an 80-column pseudo-terminal until it
    has said `said`; then it is interrupted (Ctrl-C) and its last words are read too."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "mmsearch", *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    chunks: list[bytes] = []
    deadline, interrupted = time.monotonic() + 120, False
    while time.monotonic() < deadline:
        if not interrupted and said.encode() in b"".join(chunks):
            os.kill(pid, signal.SIGINT)
            interrupted = True
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", "replace")


OUR_SEQUENCES = re.compile(
    r"\x1b\[[0-9;?]*[A-Za-z]"  # colours, cursor moves of our own progress/table
    r"|\x1b\]8;[^\x1b\x07]*;[!-~]*\x1b\\"  # hyperlinks whose target is percent-encoded ASCII
)
RAW = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def raw_controls(screen: str) -> list[str]:
    """Control characters left once our own sequences (and line ends) are taken out."""
    return RAW.findall(OUR_SEQUENCES.sub("", screen))


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    folder = tmp_path / "hostile"
    for seed, name in enumerate(HOSTILE_NAMES):
        make_image(folder / name, seed=seed)
    (folder / "notes.txt").write_text(SNIPPET_TEXT * 3)
    (folder / "broken \x1b[2J.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder.joinpath(os.fsdecode(b"latin1 \xe9t\xe9.png"))).write_bytes(
        (folder / HOSTILE_NAMES[0]).read_bytes()
    )
    assert run("index", "-q", str(folder)).exit_code == 0
    return folder


def test_hostile_names_and_passages_reach_the_terminal_escaped(hostile: Path) -> None:
    screens = {
        "query": in_terminal("query", "cats", "-n", "20", "--mode", "vector"),
        "similar": in_terminal("similar", str(hostile / HOSTILE_NAMES[1]), "-n", "20"),
        "index": in_terminal("index", str(hostile)),
        "status": in_terminal("status"),
        "error": in_terminal("similar", str(hostile / "broken \x1b[2J.jpg")),
    }
    for command, screen in screens.items():
        assert raw_controls(screen) == [], (command, screen)
    query = screens["query"]
    assert "clear \\x1b[2J\\x1b[H.png" in query and "new\\nline.png" in query
    assert "evil\\u202egnp.exe.png" in query
    assert "latin1 \ufffdt\ufffd.png: file name is not valid UTF-8" in screens["index"]
    assert "\\x1b]0;pwned\\x07 about" in query  # the passage, escaped
    assert "broken \\x1b[2J.jpg" in screens["status"] and "broken \\x1b[2J" in screens["error"]


def test_open_shows_the_command_it_ran_escaped(hostile: Path) -> None:
    assert run("query", "x", "--type", "image", "--json").exit_code == 0  # hostile names only
    screen = in_terminal("open", "1", env={"MMSEARCH_OPENER": "true"})
    assert raw_controls(screen) == []
    assert "true '" in screen and re.search(r"\\(x[0-9a-f]{2}|u202e|n)", screen), screen


def test_machine_formats_stay_exact(hostile: Path) -> None:
    hits = json.loads(run("query", "x", "-n", "20", "--json").stdout)
    names = {Path(h["path"]).name for h in hits}
    assert set(HOSTILE_NAMES) <= names  # JSON escapes, and so carries the name exactly
    nul = run("query", "x", "-n", "20", "-0").stdout
    assert set(HOSTILE_NAMES) <= {Path(p).name for p in nul.split("\0") if p}


def test_the_sanitiser_escapes_every_kind_of_control() -> None:
    assert terminal("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert terminal("\x9b\x7f\x00") == "\\x9b\\x7f\\x00"
    assert terminal("x\u202ey\u2066z\u2028") == "x\\u202ey\\u2066z\\u2028"
    assert terminal("tab\tnew\nret\r") == "tab\\tnew\\nret\\r"
    assert terminal(os.fsdecode(b"\xff.png")) == "\\xff.png"
    assert terminal("東京 🎉 café") == "東京 🎉 café"
    assert snippet("two\n\nlines\t and \x1b]0;t\x07") == "two lines and \\x1b]0;t\\x07"


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Documents, videos, CJK and emoji names, a deep path: a table that must fit."""
    folder = tmp_path / "一个很长的文件夹名字" / "and a deep folder" / "deeper still"
    make_image(folder / "東京タワーの夜景とても長い名前のファイルです.jpeg", seed=1)
    make_image(folder / "🎉 party 🎂 with friends.png", seed=2)
    make_video(folder / "holiday clip.mp4", seconds=1)
    make_pdf(folder / "a report with a rather long name.pdf", ["cats " * 40, "dogs " * 40])
    (folder / "notes.md").write_text("cats and dogs " * 60)
    assert run("index", "-q", str(tmp_path)).exit_code == 0
    return folder


ROW = re.compile(r"^\s*(\d+)  (-?\d\.\d{3})[ \u2588-\u258f]*  (image|video|document) ")


@pytest.mark.parametrize("columns", [80, 200])
def test_the_table_fits_with_rank_score_and_kind_on_every_row(mixed: Path, columns: int) -> None:
    screen = in_terminal("query", "cats", "-n", "20", "--mode", "vector", columns=columns)
    lines = OUR_SEQUENCES.sub("", screen).replace("\r", "").splitlines()
    assert all(cell_len(line) <= columns for line in lines), lines
    rows = [m.groups() for m in map(ROW.match, lines) if m]
    assert [int(r[0]) for r in rows] == list(range(1, 6)), lines  # every hit, rank first
    assert {r[2] for r in rows} == {"image", "video", "document"}
    for name in (".jpeg", "with friends.png", "holiday clip.mp4", ".pdf", "notes.md"):
        assert any(name in line for line in lines), (name, lines)
    text_rows = [i for i, line in enumerate(lines) if "notes.md" in line]
    assert ROW.match(lines[text_rows[0] + 1]) is None  # the passage has its own line
    assert "cats and dogs" in lines[text_rows[0] + 1]


def test_a_long_path_is_cut_in_the_middle_keeping_its_name() -> None:
    from mmsearch.doors.render import cut_middle

    path = "/home/someone/一个很长的文件夹名字/and a deep folder/東京タワーの夜景.jpeg"
    cut = cut_middle(path, 40)
    assert cell_len(cut) <= 40 and cut.endswith("/東京タワーの夜景.jpeg") and "…" in cut
    name = cut_middle("/a/" + "長" * 40 + ".jpeg", 30)
    assert cell_len(name) <= 30 and name.endswith("….jpeg")


def test_a_long_file_name_cut_to_fit_keeps_its_first_folder() -> None:
    from mmsearch.doors.render import cut_middle

    cut = cut_middle("~/Pictures/2024/IMG_20240101_a_very_long_name_for_a_photo.png", 40)
    assert cut == "~/…/IMG_20240101_a_very_long_name_f….png"


def test_dupes_shows_hostile_names_escaped(tmp_path: Path) -> None:
    """`dupes` prints every member's path to the terminal: one picture saved under each
    hostile name makes one group of all of them, and none may act on the screen."""
    folder = tmp_path / "copies"
    picture = make_image(tmp_path / "original.png", seed=7).read_bytes()
    folder.mkdir()
    for name in HOSTILE_NAMES:
        (folder / name).write_bytes(picture)
    assert run("index", "-q", str(folder)).exit_code == 0
    screen = in_terminal("dupes", str(folder))
    assert f"group 1: {len(HOSTILE_NAMES)} files" in screen
    assert raw_controls(screen) == [], screen
    for shown in ("clear \\x1b[2J\\x1b[H.png", "evil\\u202egnp.exe.png", "new\\nline.png"):
        assert shown in screen


@pytest.mark.parametrize("fmt", ["--paths", "plain"])
def test_paths_and_plain_lines_carry_hostile_names_byte_for_byte(hostile: Path, fmt: str) -> None:
    """Docs: `--paths`, `-0` and the plain lines print names byte for byte: a pipeline
    receives the raw name (escaping is for a person's screen). Read as bytes from a real
    process whose stdout is a pipe."""
    import subprocess

    args = ["query", "x", "-n", "20", "--mode", "vector"] + ([fmt] if fmt != "plain" else [])
    out = subprocess.run(
        [sys.executable, "-m", "mmsearch", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=True,
    ).stdout
    for name in HOSTILE_NAMES:
        raw = os.fsencode(hostile / name)
        assert (b"\n" if fmt == "--paths" else b"\t") + raw + b"\n" in b"\n" + out, name


def test_watch_shows_a_hostile_folder_name_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "clear \x1b[2J\x1b[H title \x1b]0;pwned\x07"
    make_image(folder / "a.png", seed=1)
    screen = in_terminal_until("watching", "watch", str(folder))
    assert "watching" in screen and raw_controls(screen) == [], screen
    assert "clear \\x1b[2J\\x1b[H title \\x1b]0;pwned\\x07" in screen
