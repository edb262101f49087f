"""Shell completion scripts for bash, zsh and fish, generated from the CLI itself.

    python -m mmsearch.completion completions/     # regenerate the files in the repo

The scripts call back into `mmsearch` with _MMSEARCH_COMPLETE set; that path imports only the
CLI (no torch, no store), so completing stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "mmsearch.bash", "zsh": "_mmsearch", "fish": "mmsearch.fish"}


def script(shell: str) -> str:
    from typer.completion import get_completion_script

    return (
        get_completion_script(
            prog_name="mmsearch", complete_var="_MMSEARCH_COMPLETE", shell=shell
        ).rstrip("\n")
        + "\n"
    )


def write_scripts(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in SHELLS.items():
        path = folder / name
        path.write_text(script(shell))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_scripts(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(path)
