"""The README's usage block and the commands' --help agree, and help keeps its examples."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run

README = Path(__file__).parent.parent / "README.md"
COMMANDS = [
    *("index", "query", "similar", "dupes", "open", "watch", "serve", "status", "forget"),
    *("ui", "mcp"),
]
EVERY_COMMAND = {"--db", "--model", "--pretrained", "--help"}  # said once, under the block


def usage_block() -> dict[str, str]:
    block = re.search(r"## Usage\n\n```\n(.*?)```", README.read_text(), re.S)
    assert block
    entries: dict[str, str] = {}
    for line in block[1].splitlines():
        if m := re.match(r"mmsearch (\w+)", line):
            current = m[1]
        entries[current] = entries.get(current, "") + line + "\n"
    return entries


def help_options(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", run(command, "--help").stdout))


@pytest.mark.parametrize("command", COMMANDS)
def test_the_readme_usage_block_lists_each_commands_options(command: str) -> None:
    entry = usage_block()[command]
    documented = set(re.findall(r"(--[a-z][a-z0-9-]*)", entry))
    shown = help_options(command) - EVERY_COMMAND
    if "same result options as query" in entry:
        documented |= help_options("query") - EVERY_COMMAND
    assert documented == shown


@pytest.mark.parametrize("command", COMMANDS)
def test_the_usage_line_names_arguments_and_examples_keep_their_lines(command: str) -> None:
    text = run(command, "--help").stdout
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in text.split("Options:")[0]
    examples = re.search(r"Examples?:\n((?:    mmsearch .*\n)+)", text)
    assert examples, text
    readme_line = usage_block()[command].split()[1]
    assert readme_line == command


# Console examples ---------------------------------------------------------------------
#
# Every ```console block of the README is run, in order, by the real CLI in one made-up home
# folder (the files below), and its output compared with the README's. On a mismatch the test
# prints a diff per block; `MMSEARCH_UPDATE_README=1 python -m pytest tests/test_docs.py -k
# console` rewrites the README's blocks with the real output instead. Paths, clock times,
# dates and fractional numbers (scores, seconds, sizes) are normalised before comparing: they
# vary from run to run; counts, order, words and layout do not.

HOME = "/home/me"
TEST_MODEL = "local-dir:/home/me/tiny-model"  # the model the examples show (see the README)
# A console block shows real output of the CLI in the made-up home, nothing else: an example
# that installs, exports credentials or reaches a server is a ```sh block, never run here.
RUNNABLE = ("mmsearch ", "mv ")
NOT_RUN = {  # blocks that run until stopped, with why
    "mmsearch watch": "runs until stopped",
    "mmsearch serve &": "runs until stopped",
}


def console_blocks(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, body, indent) of each ```console block (offsets into `text`), its body
    without the indent a block inside a list item has."""
    found = []
    for m in re.finditer(r"^([ \t]*)```console\n(.*?)^[ \t]*```", text, re.S | re.M):
        indent = m[1]
        body = "".join(line.removeprefix(indent) for line in m[2].splitlines(keepends=True))
        found.append((m.start(2), m.end(2), body, indent))
    return found


def commands_of(body: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of one block."""
    pairs: list[tuple[str, str]] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("$ "):
            pairs.append((line[2:].rstrip("\n"), ""))
        elif pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + line)
    return pairs


def normalise(text: str) -> str:
    text = re.sub(r"\b\d\d:\d\d:\d\d\b", "HH:MM:SS", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]HH:MM:SS[+-]\d\d:\d\d", "DATE", text)
    text = re.sub(r"\d+\.\d+(e-?\d+)?", "#", text)
    return re.sub(r"[ \t]+\n", "\n", text)


@pytest.fixture
def readme_home(tmp_path: Path, tiny_model: str, model_cache: Path) -> tuple[Path, dict]:
    """The home folder the README's examples run in, and their environment."""
    import shutil

    from helpers import make_image, make_pdf, make_video, real_clip
    from PIL import Image
    from skimage import data

    home = tmp_path / "home"
    photos = home / "Photos"
    (photos / "2024").mkdir(parents=True)
    for name, folder in (("astronaut", photos), ("chelsea", photos), ("rocket", photos)):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=90)
    Image.fromarray(data.coffee()).save(photos / "2024" / "coffee.jpg", quality=90)
    Image.open(photos / "rocket.jpg").resize((213, 142)).save(photos / "rocket thumb.png")
    (photos / "IMG_0042.jpg").write_bytes(b"\xff\xd8\xff" + b"not really a photo" * 8)
    videos = home / "Videos"
    make_video(videos / "patterns.mp4")
    shutil.copy(real_clip(), videos / "bigbuckbunny.mp4")
    make_image(home / "slide-photo.png", seed=1)
    from mmsearch.indexing.extract.video import ffmpeg_binary

    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-ss", "9", "-i",
         str(videos / "patterns.mp4"), "-frames:v", "1", str(home / "frame.png")],
        check=True,
    )  # fmt: skip
    make_pdf(
        home / "Documents" / "report.pdf",
        ["A quarterly report on gardens.", "Gardens, rain and the history of bridges. "
         "The xylophone was tuned twice."],
    )  # fmt: skip
    (home / "receipts").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mmsearch").write_text(f'#!/bin/sh\nexec {sys.executable} -m mmsearch "$@"\n')
    (bin_dir / "mmsearch").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]),
        "MMSEARCH_MODEL": tiny_model,  # shown as TEST_MODEL
        "MMSEARCH_CACHE": str(model_cache),
        "MMSEARCH_NO_SERVER": "1",
        "HF_HUB_OFFLINE": "1",
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "COLUMNS": "80",
        "LANG": "C.UTF-8",
    }
    return home, env


@pytest.mark.timeout(1800)
def test_every_console_example_in_the_readme_is_what_the_cli_prints(
    readme_home: tuple[Path, dict],
) -> None:
    home, env = readme_home
    model_folder = env["MMSEARCH_MODEL"]
    text = README.read_text()
    rewritten, mismatches, last = [], [], 0
    for start, end, body, indent in console_blocks(text):
        pairs = commands_of(body)
        if any(cmd.startswith(tuple(NOT_RUN)) for cmd, _ in pairs):
            continue
        produced = ""
        for command, expected in pairs:
            assert command.startswith(RUNNABLE), f"not a console example to run: {command!r}"
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=300,
            )
            output = done.stdout.replace(model_folder, TEST_MODEL).replace(str(home), HOME)
            produced += f"$ {command}\n{output}"
            if normalise(output) != normalise(expected):
                diff = difflib.unified_diff(
                    expected.splitlines(), output.splitlines(), "README", "real", lineterm=""
                )
                mismatches.append(f"$ {command}\n" + "\n".join(diff))
        rewritten += [text[last:start], textwrap.indent(produced, indent)]
        last = end
    if os.environ.get("MMSEARCH_UPDATE_README"):
        README.write_text("".join([*rewritten, text[last:]]))
        return
    assert not mismatches, (
        "README console examples differ from what the CLI prints (rewrite them with "
        "MMSEARCH_UPDATE_README=1 python -m pytest tests/test_docs.py -k console):\n\n"
        + "\n\n".join(mismatches)
    )


def test_the_status_json_keys_in_the_readme_are_the_reports_fields() -> None:
    from dataclasses import fields

    from mmsearch.query.status import StatusReport

    sentence = re.search(r"`status --json` has (.*?)\.\n", README.read_text(), re.S)
    assert sentence
    listed = re.findall(r"`(\w+)`", sentence[1])
    assert set(listed) == {f.name for f in fields(StatusReport)}


def test_the_result_fields_in_the_readme_are_the_json_fields() -> None:
    from mmsearch.query.ranking import Hit

    table = re.search(r"\*\*Result object\*\*.*?\n\n(\|.*?)\n\n", README.read_text(), re.S)
    assert table
    listed = re.findall(r"^\| `(\w+)` \|", table[1], re.M)
    hit = Hit(path="/x", kind="image", score=1.0)
    from mmsearch.doors import output

    assert listed == list(output.hit_json(hit)), "the README's table is not the JSON's fields"
