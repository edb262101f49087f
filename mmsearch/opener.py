"""Remember the last results, and open one of them with the system's opener."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import MmsearchError, UsageError

if TYPE_CHECKING:
    from mmsearch.ranking import Hit


def _last_results() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("mmsearch") / "last-results.json"


def remember(hits: Sequence[Hit]) -> None:
    """Keep the results for `mmsearch open N`; a cache, so failing to write is harmless."""
    path = _last_results()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([asdict(h) for h in hits], ensure_ascii=False))
        os.replace(tmp, path)
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
    try:
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        raise MmsearchError(f"cannot run {command[0]}: {e.strerror or e}") from None
    return command


def opener_command(hit: dict[str, Any]) -> list[str]:
    """$MMSEARCH_OPENER if set ({path} and {t} are filled in, else the path is appended);
    a video moment in mpv or VLC at its time; otherwise the desktop's opener."""
    path, t = hit["path"], hit.get("t")
    custom = os.environ.get("MMSEARCH_OPENER")
    if custom:
        words = shlex.split(custom)
        if any("{path}" in w for w in words):
            return [w.format(path=path, t=t or 0) for w in words]
        return [*words, path]
    if t is not None:
        if shutil.which("mpv"):
            return ["mpv", f"--start={t:.3f}", path]
        if shutil.which("vlc"):
            return ["vlc", f"--start-time={t:.3f}", path]
    if sys.platform == "darwin":
        return ["open", path]
    if sys.platform == "win32":
        return ["cmd", "/c", "start", "", path]
    return ["xdg-open", path]
