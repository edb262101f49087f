"""The README's usage block and the commands' --help agree, help keeps its examples, and every
doc page's console examples are what the CLI prints (README.md and docs/)."""

from __future__ import annotations

import difflib
import functools
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run

REPO = Path(__file__).parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
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
# Every ```console block of the README and of the pages under docs/ is run, page after page in
# the order of EXAMPLE_PAGES and block after block within a page, by the real CLI in one
# made-up home folder (the files below), and its output compared with the page's. On a
# mismatch the test prints a diff per block; `MMSEARCH_UPDATE_README=1 python -m pytest
# tests/test_docs.py -k console` rewrites the pages' blocks with the real output instead.
# Paths, clock times, dates and fractional numbers (scores, seconds, sizes) are normalised
# before comparing: they vary from run to run; counts, order, words and layout do not.

# The pages whose examples run, in order: each page's examples see the store the pages before
# it left (README indexes ~/Photos, searching.md queries it, videos.md adds ~/Videos, ...).
# A page with a console block must be listed here (a test says so), so none goes unchecked.
EXAMPLE_PAGES = [
    "README.md",
    "docs/guides/searching.md",
    "docs/guides/videos.md",
    "docs/guides/watch.md",
    "docs/guides/serve.md",
    "docs/guides/documents.md",
    "docs/guides/duplicates.md",
    "docs/guides/status-and-forget.md",
    "docs/guides/ray.md",
]

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


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_every_page_with_console_examples_is_run() -> None:
    with_examples = {
        str(page.relative_to(REPO)) for page in doc_pages() if console_blocks(page.read_text())
    }
    assert with_examples == set(EXAMPLE_PAGES), (
        "list each page with ```console blocks in EXAMPLE_PAGES, in the order its examples run "
        "(and no page without one)"
    )


def run_page_examples(page: Path, home: Path, env: dict) -> tuple[str, list[str]]:
    """The page with its console blocks' real output, and a diff per mismatching command."""
    model_folder = env["MMSEARCH_MODEL"]
    text = page.read_text()
    name = str(page.relative_to(REPO))
    rewritten, mismatches, last = [], [], 0
    for start, end, body, indent in console_blocks(text):
        pairs = commands_of(body)
        if any(cmd.startswith(tuple(NOT_RUN)) for cmd, _ in pairs):
            continue
        produced = ""
        for command, expected in pairs:
            assert command.startswith(RUNNABLE), f"{name}: not a console example: {command!r}"
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
                    expected.splitlines(), output.splitlines(), name, "real", lineterm=""
                )
                mismatches.append(f"{name}: $ {command}\n" + "\n".join(diff))
        rewritten += [text[last:start], textwrap.indent(produced, indent)]
        last = end
    return "".join([*rewritten, text[last:]]), mismatches


@pytest.mark.timeout(1800)
def test_every_console_example_in_the_docs_is_what_the_cli_prints(
    readme_home: tuple[Path, dict],
) -> None:
    home, env = readme_home
    mismatches = []
    for name in EXAMPLE_PAGES:
        page = REPO / name
        rewritten, differ = run_page_examples(page, home, env)
        if os.environ.get("MMSEARCH_UPDATE_README"):
            page.write_text(rewritten)
        mismatches += differ
    assert os.environ.get("MMSEARCH_UPDATE_README") or not mismatches, (
        "console examples differ from what the CLI prints (rewrite them with "
        "MMSEARCH_UPDATE_README=1 python -m pytest tests/test_docs.py -k console):\n\n"
        + "\n\n".join(mismatches)
    )


def test_the_status_json_keys_in_the_docs_are_the_reports_fields() -> None:
    from dataclasses import fields

    from mmsearch.query.status import StatusReport

    page = DOCS / "guides" / "status-and-forget.md"
    sentence = re.search(r"`status --json` has (.*?)\.\n", page.read_text(), re.S)
    assert sentence
    listed = re.findall(r"`(\w+)`", sentence[1])
    assert set(listed) == {f.name for f in fields(StatusReport)}


def test_the_result_fields_in_the_docs_are_the_json_fields() -> None:
    from mmsearch.query.ranking import Hit

    page = DOCS / "reference" / "results.md"
    table = re.search(r"\*\*Result object\*\*.*?\n\n(\|.*?)\n\n", page.read_text() + "\n", re.S)
    assert table
    listed = re.findall(r"^\| `(\w+)` \|", table[1], re.M)
    hit = Hit(path="/x", kind="image", score=1.0)
    from mmsearch.doors import output

    assert listed == list(output.hit_json(hit)), "the results page's table is not the JSON's fields"


# The pages under docs/ -----------------------------------------------------------------


def test_the_cli_reference_is_what_the_app_generates() -> None:
    from mmsearch.doors import docs_reference

    assert (DOCS / "reference" / "cli.md").read_text() == docs_reference.reference_from_cli(), (
        "docs/reference/cli.md is stale: run python -m mmsearch.doors.docs_reference "
        "docs/reference/cli.md"
    )


def test_the_environment_page_lists_every_variable_the_code_reads() -> None:
    read = set()
    for source in (REPO / "mmsearch").rglob("*.py"):
        read |= set(re.findall(r"\b(MMSEARCH_[A-Z_]+)\b", source.read_text()))
    page = (DOCS / "reference" / "environment.md").read_text()
    listed = set(re.findall(r"^\| `(MMSEARCH_[A-Z_]+)", page, re.M))
    listed |= set(re.findall(r"^\| `MMSEARCH_\w+(?:=1)?` / `(MMSEARCH_[A-Z_]+)`", page, re.M))
    assert listed == read


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_every_link_between_the_pages_leads_somewhere() -> None:
    broken = []
    for page in doc_pages():
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_docs_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    linked = {(DOCS / t).resolve() for t in re.findall(r"\]\(([^)#\s]+)", index)}
    pending = set((DOCS / "pending").rglob("*.md"))  # new pages, not yet folded into the index
    pages = {p.resolve() for p in set(DOCS.rglob("*.md")) - pending - {DOCS / "README.md"}}
    assert not pages - linked, f"docs/README.md links no {sorted(pages - linked)}"


@functools.cache
def options_of(command: str) -> frozenset[str]:
    return frozenset(help_options(command))


def test_the_sh_examples_use_real_commands_and_options() -> None:
    """A ```sh example is not run (it installs, exports or runs until stopped), but each of
    its `mmsearch` lines names a real command and only options that command takes."""
    wrong = []
    for page in doc_pages():
        for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", page.read_text(), re.S | re.M):
            for line in block.splitlines():
                command = re.split(r"\s(?:\||&&|;)\s", line.split(" #")[0])[0]  # first command
                words = command.split()
                if len(words) < 2 or words[0] != "mmsearch" or words[1].startswith("-"):
                    continue
                if words[1] not in COMMANDS:
                    wrong.append(f"{page.relative_to(REPO)}: {line.strip()} (no such command)")
                    continue
                taken = options_of(words[1])
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", command):
                    if flag not in taken:
                        wrong.append(f"{page.relative_to(REPO)}: {line.strip()} ({flag}?)")
    assert not wrong, "\n".join(wrong)
