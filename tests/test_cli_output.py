"""What people and pipelines see: the table, inline previews, the JSON schema, `open`."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import make_video, query_json, run
from rich.console import Console

from mmsearch.doors.render import hits
from mmsearch.doors.thumbnails import escape as thumbnail_escape
from mmsearch.doors.thumbnails import image_protocol
from mmsearch.query.ranking import Hit


def table(results: list[Hit], width: int = 80, preview: bool = False) -> str:
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    console = Console(file=out, force_terminal=True, width=width)
    hits(results, "table", out=console.file, preview=preview)
    return out.getvalue()


LONG = "/home/someone/" + "/".join(f"folder number {i}" for i in range(8)) + "/photo.jpg"


def test_table_rows_fit_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    monkeypatch.setenv("COLUMNS", "80")
    text = table([Hit(LONG, "image", 0.31), Hit("/v/clip.mp4", "video", 0.29, 83.0, 95.0)])
    plain = re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\", "", text)
    assert all(len(line) <= 80 for line in plain.splitlines())
    assert "photo.jpg" in plain  # the end of a long path survives, its start is cut
    assert "01:23-01:35" in plain


def test_table_paths_are_clickable_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = table([Hit("/photos/a b.jpg", "image", 0.3)])
    assert "\x1b]8;" in text and "file:///photos/a%20b.jpg" in text


def test_table_shows_the_home_folder_as_tilde(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("COLUMNS", "120")
    assert "~/pics/a.jpg" in table([Hit("/home/someone/pics/a.jpg", "image", 0.3)])


def test_table_draws_score_bars_relative_to_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = table([Hit("/a.jpg", "image", 0.9), Hit("/b.jpg", "image", 0.5)])
    assert "0.900 ████" in text


@pytest.mark.parametrize(
    ("env", "protocol"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"KITTY_WINDOW_ID": "1"}, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"TERM": "xterm-256color"}, None),
    ],
)
def test_inline_image_support_is_detected(env: dict[str, str], protocol: str | None) -> None:
    assert image_protocol(env) == protocol


def test_kitty_preview_sends_a_png_thumbnail(photos: Path) -> None:
    import base64

    escape = thumbnail_escape(Hit(str(photos / "chelsea.jpg"), "image", 0.3), "kitty")
    assert escape.startswith("\x1b_Ga=T,f=100,")
    payload = "".join(part.split(";", 1)[1] for part in escape.split("\x1b\\") if part)
    assert base64.b64decode(payload).startswith(b"\x89PNG")


def test_iterm_preview_of_a_video_shows_its_moment(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    escape = thumbnail_escape(Hit(str(clip), "video", 0.3, 1.5, 2.0), "iterm")
    assert escape.startswith("\x1b]1337;File=inline=1;") and escape.endswith("\x07")


def test_preview_falls_back_to_the_plain_table(photos: Path, monkeypatch) -> None:
    monkeypatch.delenv("KITTY_WINDOW_ID", raising=False)
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("TERM_PROGRAM", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    text = table([Hit(str(photos / "chelsea.jpg"), "image", 0.3)], preview=True)
    assert "chelsea.jpg" in text and "\x1b_G" not in text


def test_json_output_matches_the_published_schema(photos: Path) -> None:
    import jsonschema

    schema = json.loads(
        (Path(__file__).parent.parent / "schema" / "result.schema.json").read_text()
    )
    make_video(photos / "clip.mp4", seconds=1)
    run("index", "-q", str(photos))
    results = query_json("x", "-n", "50")
    assert {r["kind"] for r in results} == {"image", "video"}
    for r in results:
        jsonschema.validate(r, schema)
    for line in run("query", "x", "--jsonl", "-n", "50").stdout.splitlines():
        jsonschema.validate(json.loads(line), schema)


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MMSEARCH_OPENER pointed at a script that writes its arguments to a file."""
    log = tmp_path / "opened.txt"
    script = tmp_path / "record.py"
    script.write_text(f"import sys; open({str(log)!r}, 'w').write('\\n'.join(sys.argv[1:]))")
    monkeypatch.setenv("MMSEARCH_OPENER", f"{sys.executable} {script} {{t}} {{path}}")
    return log


def wait_for(path: Path) -> str:
    import time

    for _ in range(100):
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError("the opener never ran")


def test_open_n_opens_the_nth_result_of_the_last_query(photos: Path, recorder: Path) -> None:
    run("index", "-q", str(photos))
    second = query_json("x", "-n", "3")[1]
    result = run("open", "2")
    assert result.exit_code == 0
    assert wait_for(recorder).splitlines() == ["0", second["path"]]


def test_open_passes_a_video_moment(tmp_path: Path, recorder: Path) -> None:
    folder = tmp_path / "v"
    make_video(folder / "clip.mp4", seconds=2)
    run("index", "-q", str(folder))
    best = query_json("x", "-n", "1")[0]
    run("open", "1")
    assert wait_for(recorder).splitlines() == [str(best["t"]), best["path"]]


def test_open_beyond_the_last_results_is_a_usage_error(photos: Path, recorder: Path) -> None:
    run("index", "-q", str(photos))
    query_json("x", "-n", "2")
    result = run("open", "3")
    assert result.exit_code == 2 and "1-2" in result.stderr


def test_open_before_any_query_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))  # where the results would be
    result = run("open", "1")
    assert result.exit_code == 1 and "run `mmsearch query` first" in result.stderr


def test_completion_scripts_in_the_repo_are_current() -> None:
    from mmsearch.doors.completion import SHELLS, script

    folder = Path(__file__).parent.parent / "completions"
    for shell, name in SHELLS.items():
        assert (folder / name).read_text() == script(shell), (
            f"completions/{name} is stale: run python -m mmsearch.doors.completion_gen completions"
        )


def test_completion_imports_neither_torch_nor_lancedb() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from mmsearch.doors.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lancedb'}),"
        " file=sys.stderr)"
    )
    env = {
        **os.environ,
        "_MMSEARCH_COMPLETE": "bash",
        "COMP_WORDS": "mmsearch qu",
        "COMP_CWORD": "1",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "query"
    assert out.stderr.strip().endswith("[]")
