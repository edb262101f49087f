"""Shell completion: real bash, zsh and fish complete from the scripts in completions/, with
one `mmsearch` process per completion that imports no CLI framework; zsh completes on the
first Tab with the completion guide's lines after an existing compinit;
`--install-completion` picks the shell the user runs; the scripts and the options table are
generated from the CLI."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmsearch.doors import completion, completion_gen

REPO = Path(__file__).parent.parent
BUDGET_S = 2.0  # the aim is 0.1 s; generous for a busy CI machine


def test_the_scripts_and_the_options_table_are_generated_from_the_cli() -> None:
    for shell, name in completion.SHELLS.items():
        assert (REPO / "completions" / name).read_text() == completion.script(shell), (
            f"completions/{name} is stale: run python -m mmsearch.doors.completion_gen completions"
        )
    assert (
        REPO / "mmsearch" / "doors" / "completion_spec.py"
    ).read_text() == completion_gen.spec_source(), (
        "mmsearch/doors/completion_spec.py is stale: "
        "run python -m mmsearch.doors.completion_gen completions"
    )


@pytest.mark.parametrize(
    ("words", "cword", "want"),
    [
        ("mmsearch in", 1, ["index"]),
        ("mmsearch query --type ", 3, ["image", "video", "document"]),
        ("mmsearch index --ex", 2, ["--exclude"]),
        ("mmsearch index ", 2, [completion.FILES]),
        ("mmsearch query red --mo", 3, ["--moments", "--mode", "--model"]),
    ],
)
def test_a_request_is_answered_without_the_cli_framework(
    words: str, cword: int, want: list[str]
) -> None:
    code = (
        "import runpy, sys\n"
        "try:\n    runpy.run_module('mmsearch', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'typer', 'click', 'rich', 'torch', 'lancedb', 'numpy'} & set(sys.modules)\n"
        "print('imported:', sorted(heavy), file=sys.stderr)\n"
    )
    env = {**os.environ, "_MMSEARCH_COMPLETE": "bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(cword)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert time.monotonic() - started < BUDGET_S
    assert sorted(done.stdout.split()) == sorted(want)
    assert done.stderr.strip() == "imported: []"


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A home folder, and `mmsearch` on PATH as a wrapper that counts its runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mmsearch"
    wrapper.write_text(
        f'#!/bin/sh\necho run >> "{tmp_path / "calls"}"\nexec {sys.executable} -m mmsearch "$@"\n'
    )
    wrapper.chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "TERM": "xterm",
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_DATA_HOME": str(tmp_path / "home" / ".local" / "share"),
    }


def calls(env: dict[str, str]) -> int:
    path = Path(env["HOME"]).parent / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_bash_completes_a_command_with_one_process(shell_env: dict[str, str]) -> None:
    script = REPO / "completions" / "mmsearch.bash"
    line = (
        f"source {script}; COMP_WORDS=(mmsearch query --type); COMP_WORDS+=(''); COMP_CWORD=3; "
        '_mmsearch_complete; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", line], env=shell_env, capture_output=True, text=True)
    assert done.stdout.split() == ["image", "video", "document"]
    assert calls(shell_env) == 1


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_with_one_process(shell_env: dict[str, str]) -> None:
    script = REPO / "completions" / "mmsearch.fish"
    line = f"source {script}; complete -C 'mmsearch ind'"
    done = subprocess.run(
        ["fish", "--no-config", "-c", line], env=shell_env, capture_output=True, text=True
    )
    assert done.stdout.split("\t")[0].strip() == "index", done.stdout + done.stderr
    assert calls(shell_env) == 1


def in_a_terminal(argv: list[str], env: dict[str, str], keys: bytes, want: bytes) -> bytes:
    """Run an interactive program on a pseudo-terminal, type `keys` once it shows its
    prompt, and return what it printed until `want` appears (or 30 s pass)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen, typed = b"", False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and want not in seen.split(b"READY>", 1)[-1]:
            if not typed and b"READY>" in seen:
                os.write(master, keys)
                typed = True
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return seen


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_on_the_first_tab_with_the_readme_lines_after_compinit(
    shell_env: dict[str, str],
) -> None:
    home = Path(shell_env["HOME"])
    (home / ".zfunc").mkdir(parents=True)
    shutil.copy(REPO / "completions" / "_mmsearch", home / ".zfunc" / "_mmsearch")
    # The usual .zshrc: compinit first, then what the completion guide says to add.
    (home / ".zshrc").write_text(
        f"autoload -Uz compinit && compinit -u\n{completion.ZSHRC_LINE}\nPROMPT='READY> '\n"
    )
    seen = in_a_terminal(
        ["zsh", "-i"], {**shell_env, "ZDOTDIR": str(home)}, b"mmsearch ind\t", b"index"
    )
    assert b"index" in seen.split(b"READY>", 1)[-1], seen
    assert calls(shell_env) == 1


@pytest.mark.parametrize(("parent", "shell", "want"), [("zsh", "/bin/bash", "zsh")])
def test_install_completion_picks_the_shell_the_user_runs(
    parent: str, shell: str, want: str, shell_env: dict[str, str], tmp_path: Path
) -> None:
    """A zsh user whose login shell is bash: the parent process decides."""
    if shutil.which(parent) is None:
        pytest.skip(f"{parent} is not installed")
    env = {**shell_env, "SHELL": shell}
    done = subprocess.run(
        [parent, "-f", "-c", "mmsearch --install-completion; true"],
        env=env,
        capture_output=True,
        text=True,
    )
    home = Path(env["HOME"])
    assert (home / ".zfunc" / "_mmsearch").read_text() == completion.script(want), done.stderr
    assert completion.ZSHRC_LINE in (home / ".zshrc").read_text()
    assert not (home / ".local" / "share" / "bash-completion").exists()


def test_install_completion_falls_back_to_shell(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHELL", "/usr/bin/fish")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert completion.user_shell() in ("fish", "bash", "zsh")  # pytest's parent may be a shell
    done = completion.install("fish", home=tmp_path)
    assert (tmp_path / "config" / "fish" / "completions" / "mmsearch.fish").exists()
    assert done[-1] == "open a new fish to use it"


def test_install_completion_for_bash_without_its_package_sources_from_bashrc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(completion, "BASH_COMPLETION_FILES", (str(tmp_path / "none"),))
    target = tmp_path / "data" / "bash-completion" / "completions" / "mmsearch"
    done = completion.install("bash", home=tmp_path)
    completion.install("bash", home=tmp_path)
    assert done[0] == f"wrote {target}" and "no bash-completion package found" in done[1]
    assert (tmp_path / ".bashrc").read_text() == f"source {target}\n"  # once, however often


def test_install_completion_for_bash_with_its_package_leaves_bashrc_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "bash_completion").write_text("")
    monkeypatch.setattr(completion, "BASH_COMPLETION_FILES", (str(tmp_path / "bash_completion"),))
    done = completion.install("bash", home=tmp_path)
    assert done[1] == "the bash-completion package loads it from there"
    assert not (tmp_path / ".bashrc").exists()


def test_the_completion_guide_gives_the_zsh_line_the_tests_drive() -> None:
    assert completion.ZSHRC_LINE in (REPO / "docs" / "guides" / "completion.md").read_text()
