"""The CLI reference page (docs/reference/cli.md), generated from the Typer app itself.

Like the completion table (`completion.py`), the page is read from the commands' declared
options, so it cannot drift from the parser; a test keeps the committed page equal to what
the app generates.

    python -m mmsearch.doors.docs_reference docs/reference/cli.md    # regenerate the page
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HEADER = """# CLI reference

Generated from the Typer app by `python -m mmsearch.doors.docs_reference
docs/reference/cli.md`: do not edit by hand (a test keeps this page equal to what the app
generates). `mmsearch COMMAND --help` shows the same on a terminal; the
[README's usage block](../../README.md#usage) is the short form.
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help_markdown(text: str) -> str:
    """A command's help as Markdown: its paragraphs as text, click's verbatim ones
    (after a `\\b` line, e.g. the examples) as code blocks."""
    out = []
    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() == "\b":
            lines = lines[1:]
            title = []
            if lines and lines[0].endswith(":") and not lines[0].startswith(" "):
                title = [lines.pop(0), ""]
            body = [line.removeprefix("  ") for line in lines]
            out.append("\n".join([*title, "```text", *body, "```"]))
        else:
            out.append(" ".join(paragraph.split()))
    return "\n\n".join(out)


def _default(p: Any) -> str:
    shown = getattr(p, "show_default", None)
    if isinstance(shown, str):
        return shown
    if getattr(p, "is_flag", False) or p.default in (None, "", ()) or not shown:
        return ""
    return str(p.default)


def _option_row(p: Any, ctx: Any) -> str:
    names = ", ".join(f"`{n}`" for n in sorted(p.opts + p.secondary_opts, key=len))
    value = "" if getattr(p, "is_flag", False) else f"`{p.make_metavar(ctx)}`"
    help_text = getattr(p, "help", "") or ""
    if p.envvar:
        help_text += f" (env `{p.envvar}`)"
    if getattr(p, "multiple", False):
        help_text += " Repeatable."
    default = _default(p)
    return f"| {names} | {_cell(value)} | {_cell(default)} | {_cell(help_text)} |"


def reference_from_cli() -> str:
    """The whole page, read from the Typer app."""
    import typer

    from mmsearch.doors.cli import app

    group: Any = typer.main.get_command(app)
    top = type(group).context_class(group, info_name="mmsearch")
    parts = [HEADER]
    parts.append("Options of `mmsearch` itself:\n")
    parts.append("| option | what it does |\n|---|---|")
    for p in group.params:
        if p.param_type_name == "option":
            parts[-1] += f"\n| {', '.join(f'`{n}`' for n in p.opts)} | {_cell(p.help or '')} |"
    parts[-1] += "\n"
    parts.append(
        "Commands: " + ", ".join(f"[`{n}`](#mmsearch-{n})" for n in group.commands) + ".\n"
    )
    for name, command in group.commands.items():
        ctx = type(command).context_class(command, info_name=name, parent=top)
        usage = " ".join(["mmsearch", name, *command.collect_usage_pieces(ctx)])
        section = [f"## mmsearch {name}", f"```text\n{usage}\n```", _help_markdown(command.help)]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        if arguments:
            names = [
                f"`{p.make_metavar(ctx)}`" + ("" if p.required else " (optional)")
                for p in arguments
            ]
            section.append(f"Arguments: {', '.join(names)}.")
        rows = [_option_row(p, ctx) for p in command.params if p.param_type_name == "option"]
        rows.append("| `--help` |  |  | Show this message and exit. |")
        section.append(
            "| option | value | default | what it does |\n|---|---|---|---|\n" + "\n".join(rows)
        )
        parts.append("\n\n".join(section) + "\n")
    return "\n".join(parts)


def write_reference(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reference_from_cli())
    return path


if __name__ == "__main__":
    print(write_reference(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference/cli.md")))
