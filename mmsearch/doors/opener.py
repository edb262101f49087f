"""Remember the last results, and open one of them with the system's opener."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.core.errors import MmsearchError, UsageError

if TYPE_CHECKING:
    from mmsearch.query.ranking import Hit


PLACEHOLDERS = ("path", "t", "page")
GRACE = 2.0  # seconds an opener has to fail before we take it as opened (xdg-open: ~0.1 s)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _last_results() -> Path:
    from mmsearch.core.config import cache_root

    return cache_root() / "last-results.json"


def remember(hits: Sequence[Hit]) -> None:
    """Keep the results for `mmsearch open N`, private (they hold paths and passages); a
    cache, so failing to write is harmless."""
    from mmsearch.core.private import private_cache, write_private

    try:
        private_cache()
        write_private(_last_results(), json.dumps([asdict(h) for h in hits], ensure_ascii=False))
    except OSError:
        pass


def open_result(n: int) -> list[str]:
    """Open the Nth result of the last query (1-based); returns the command it ran."""
    try:
        hits = json.loads(_last_results().read_text())
    except (OSError, ValueError):
        raise MmsearchError("no previous results: run `mmsearch query` first") from None
    if not 1 <= n <= len(hits):
        raise UsageError(f"the last query had {len(hits)} results; pick one of 1-{len(hits)}")
    hit = hits[n - 1]
    if not os.path.exists(hit["path"]):
        raise MmsearchError(f"{hit['path']} no longer exists")
    command = opener_command(hit)
    _launch(command)
    return command


def _launch(command: list[str]) -> None:
    """Run the opener and wait `GRACE` seconds: one that fails by then (xdg-open with no
    desktop) is an error with its own last line; what it wrote is shown on stderr either way.
    One still running (a viewer) is left to run, its later output kept in a temporary file."""
    import subprocess  # here: `query` remembers its results without it
    import tempfile

    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise MmsearchError(
                f"no program to open files with ({command[0]} is not installed): set "
                "MMSEARCH_OPENER to one, e.g. MMSEARCH_OPENER='mpv --start={t} {path}'"
            ) from None
        except OSError as e:
            raise MmsearchError(f"cannot run {command[0]}: {e.strerror or e}") from None
        try:
            status = process.wait(GRACE)
        except subprocess.TimeoutExpired:
            status = None
        output.seek(0)
        said = output.read().decode(errors="replace").strip()
    if said:
        sys.stderr.write(said + "\n")
    if status:
        last = said.splitlines()[-1] if said else "no message"
        raise MmsearchError(f"{command[0]} could not open it (exit status {status}): {last}")


def opener_command(hit: dict[str, Any]) -> list[str]:
    """$MMSEARCH_OPENER if set (`{path}`, `{t}` and `{page}` are filled in wherever they
    appear, each on its own; without `{path}` the path is appended); a video moment in mpv or
    VLC at its time; otherwise the desktop's opener."""
    path, t, page = hit["path"], hit.get("t"), hit.get("page")
    custom = os.environ.get("MMSEARCH_OPENER")
    if custom:
        try:
            import shlex

            words = shlex.split(custom)
        except ValueError as e:
            raise UsageError(f"MMSEARCH_OPENER cannot be read as a command: {e}") from None
        values = {
            "path": path,
            "t": str(t) if t is not None else "0",
            "page": str(page) if page is not None else "1",
        }
        command = [_PLACEHOLDER.sub(lambda m: _fill(m, values), w) for w in words]
        if not any("{path}" in w for w in words):
            command.append(path)
        return command
    if t is not None:
        import shutil

        if shutil.which("mpv"):
            return ["mpv", f"--start={t:.3f}", path]
        if shutil.which("vlc"):
            return ["vlc", f"--start-time={t:.3f}", path]
    if sys.platform == "darwin":
        return ["open", path]
    if sys.platform == "win32":
        return ["cmd", "/c", "start", "", path]
    return ["xdg-open", path]


def _fill(match: re.Match[str], values: dict[str, str]) -> str:
    name = match.group(1)
    if name not in values:
        valid = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise UsageError(f"MMSEARCH_OPENER has an unknown placeholder {{{name}}}: use {valid}")
    return values[name]
