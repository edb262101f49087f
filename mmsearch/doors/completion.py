"""Shell completion for bash, zsh and fish: one small process per Tab, answered from a table.

The shell scripts (in `completions/`) run `mmsearch` once per completion with
`_MMSEARCH_COMPLETE=<shell>`, `COMP_WORDS` (the command line up to the cursor) and
`COMP_CWORD` (the index of the word being completed). `answer` replies from `SPEC`, the
commands and options as data (`completion_spec.py`, generated from the CLI itself), so a
completion imports neither typer nor click, torch nor the store: a bare Python start.

    python -m mmsearch.doors.completion_gen completions/     # regenerate scripts and table
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

SHELLS = {"bash": "mmsearch.bash", "zsh": "_mmsearch", "fish": "mmsearch.fish"}
FILES = "__files__"  # "let the shell complete a path here"
ENV = "_MMSEARCH_COMPLETE"

BASH = r"""# bash completion for mmsearch: one `mmsearch` process per Tab.
_mmsearch_complete() {
    local words="${COMP_WORDS[*]:0:COMP_CWORD+1}" line  # joined by spaces (the usual IFS)
    local IFS=$'\n'
    local -a found
    found=($(COMP_WORDS="$words" COMP_CWORD=$COMP_CWORD _MMSEARCH_COMPLETE=bash mmsearch \
        2>/dev/null))
    COMPREPLY=()
    for line in "${found[@]}"; do
        [[ $line == __files__ ]] && continue  # empty: readline completes the path
        COMPREPLY+=("$line")
    done
}
complete -o default -F _mmsearch_complete mmsearch
"""

ZSH = r"""#compdef mmsearch
# zsh completion for mmsearch: one `mmsearch` process per Tab. Works autoloaded from fpath
# (completes on the first Tab) and sourced after compinit.
_mmsearch() {
    local -a found candidates
    local line
    found=("${(@f)$(COMP_WORDS="${words[1,CURRENT]}" COMP_CWORD=$((CURRENT - 1)) \
        _MMSEARCH_COMPLETE=zsh mmsearch 2>/dev/null)}")
    for line in $found; do
        [[ $line == __files__ ]] && { _files; return }
        [[ -n $line ]] && candidates+=("$line")
    done
    (( ${#candidates} )) && _describe -t values mmsearch candidates
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _mmsearch "$@"
else
    compdef _mmsearch mmsearch
fi
"""

FISH = r"""# fish completion for mmsearch: one `mmsearch` process per Tab.
function __mmsearch_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l current (commandline -ct)
    for line in (env COMP_WORDS="$words" COMP_CWORD=(math (count $words) - 1) \
            _MMSEARCH_COMPLETE=fish mmsearch 2>/dev/null)
        if test "$line" = __files__
            __fish_complete_path $current
        else
            echo $line
        end
    end
end
complete -c mmsearch -f -a '(__mmsearch_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def script(shell: str) -> str:
    return SCRIPTS[shell]


# Answering ---------------------------------------------------------------------------


def answer(shell: str, words: list[str], cword: int) -> list[str]:
    """The candidates for word `cword` of `words` (word 0 is `mmsearch`), as `shell` reads
    them: bash a value a line, zsh `value:help`, fish `value<TAB>help`; FILES asks the
    shell for a path."""
    from mmsearch.doors.completion_spec import SPEC

    before = words[1:cword]
    current = words[cword] if cword < len(words) else ""
    command = next((w for w in before if not w.startswith("-")), None)
    if command is None or command not in SPEC["commands"]:
        if current.startswith("-"):
            return _shown(shell, _matching(SPEC["options"], current))
        names = {n: c["help"] for n, c in SPEC["commands"].items()}
        return _shown(shell, [(n, h) for n, h in names.items() if n.startswith(current)])
    spec = SPEC["commands"][command]
    options = {name: o for o in spec["options"] for name in o["names"]}
    previous = options.get(before[-1]) if before and before[-1] != command else None
    if previous is not None and previous["value"]:
        if previous["value"] == "path":
            return [FILES]
        choices = [(c, "") for c in previous["choices"] if c.startswith(current)]
        return _shown(shell, choices)
    if current.startswith("-"):
        return _shown(shell, _matching(spec["options"], current))
    if spec["argument"] == "path" or current.startswith(("./", "../", "/", "~")):
        return [FILES]  # a file argument, or a query part that names a picture
    return []


def _matching(options: list[dict[str, Any]], prefix: str) -> list[tuple[str, str]]:
    return [(n, o["help"]) for o in options for n in o["names"] if n.startswith(prefix)]


def _shown(shell: str, candidates: list[tuple[str, str]]) -> list[str]:
    if shell == "zsh":
        return [f"{v.replace(':', chr(92) + ':')}:{h}" if h else v for v, h in candidates]
    if shell == "fish":
        return [f"{v}\t{h}" if h else v for v, h in candidates]
    return [v for v, _ in candidates]


def respond() -> None:
    """Answer the completion request in the environment and exit."""
    shell = os.environ.get(ENV, "")
    words = os.environ.get("COMP_WORDS", "").split(" ")
    try:
        cword = int(os.environ.get("COMP_CWORD", ""))
    except ValueError:
        cword = len(words) - 1
    if shell in SCRIPTS:
        sys.stdout.write("".join(line + "\n" for line in answer(shell, words, cword)))
    sys.exit(0)


# Installing ---------------------------------------------------------------------------


def user_shell() -> str | None:
    """The shell the user runs: the parent process when it is one we know, else $SHELL."""
    try:
        with open(f"/proc/{os.getppid()}/comm") as f:
            parent = f.read().strip().lstrip("-")
    except OSError:
        parent = ""
    for name in (parent, Path(os.environ.get("SHELL", "")).name):
        if name in SCRIPTS:
            return name
    return None


def install(shell: str, home: Path | None = None) -> list[str]:
    """Install the script where `shell` finds it; returns what was done, a line each. Bash
    reads its completions folder only through the bash-completion package: without it, the
    script is sourced from ~/.bashrc instead, and the user is told which."""
    home = home or Path.home()
    if shell == "bash":
        data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
        target = data / "bash-completion" / "completions" / "mmsearch"
    elif shell == "zsh":
        target = home / ".zfunc" / "_mmsearch"
    else:
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        target = config / "fish" / "completions" / "mmsearch.fish"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(script(shell))
    done = [f"wrote {target}"]
    if shell == "zsh" and _append_once(home / ".zshrc", ZSHRC_LINE):
        done.append(f"added to {home / '.zshrc'}: {ZSHRC_LINE}")
    if shell == "bash":
        if any(os.path.exists(f) for f in BASH_COMPLETION_FILES):
            done.append("the bash-completion package loads it from there")
        else:
            line = f"source {shlex.quote(str(target))}"
            _append_once(home / ".bashrc", line)
            done.append(f"no bash-completion package found: added to {home / '.bashrc'}: {line}")
    done.append(f"open a new {shell} to use it")
    return done


# Where the bash-completion package installs its loader (Linux distributions, Homebrew).
BASH_COMPLETION_FILES = (
    "/usr/share/bash-completion/bash_completion",
    "/etc/bash_completion",
    "/opt/homebrew/etc/profile.d/bash_completion.sh",
    "/usr/local/etc/profile.d/bash_completion.sh",
)


def _append_once(rc: Path, line: str) -> bool:
    """Add `line` to a shell's start-up file unless it holds it already; whether it did."""
    text = rc.read_text() if rc.exists() else ""
    if line in text:
        return False
    with open(rc, "a") as f:
        f.write(("" if text.endswith("\n") or not text else "\n") + line + "\n")
    return True


# Works whether or not .zshrc ran compinit before it (runs it only if it did not).
ZSHRC_LINE = (
    "fpath=(~/.zfunc $fpath); autoload -Uz compinit; (( $+functions[compdef] )) || compinit; "
    "autoload -Uz _mmsearch && compdef _mmsearch mmsearch"
)
