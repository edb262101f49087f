"""Text from data made safe for a terminal: every character a terminal would act on instead
of showing (C0 and C1 controls, DEL, bidirectional overrides, line separators) is shown
as a visible escape, never emitted.

File names, snippets, failure reasons and error messages all come from data a stranger may
have written: a name holding `ESC[2J` must not clear the screen, a text file's OSC sequence
must not set the terminal's title, a right-to-left override must not make `gpj.exe` read as
`exe.jpg`. Everything shown to a person passes through `terminal` (or `snippet`); machine
formats (`--json`, `--paths`, `-0`) do not: they are exact.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; Arabic letter mark, LRM/RLM, line and paragraph separators,
# bidi embeddings/overrides and isolates; lone surrogates (bytes a name held that were not
# UTF-8, kept by Python's surrogateescape).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SPACE = re.compile(r"\s+")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte the name really holds
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """`text` with every unsafe character shown as an escape (`\\x1b`, `\\n`, `\\u202e`)."""
    return _UNSAFE.sub(_escape, text)


def snippet(text: str) -> str:
    """A passage of a document for one display line: runs of white space (newlines, tabs)
    become one space, whatever else is unsafe is escaped."""
    return terminal(_SPACE.sub(" ", text).strip())
