"""What the store and the ranking both take for a word: the scripts written without spaces
(searched as character bigrams) and the stop words. Here, below both, so the store that
indexes text and the ranking that reads it agree without the store importing the query layer."""

from __future__ import annotations

import re

# Scripts written without spaces between words (Hangul, kana, CJK ideographs): their runs are
# indexed and searched as character bigrams (the store's `grams` column).
CJK_RANGES = (
    (0x1100, 0x11FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
)
CJK = "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in CJK_RANGES) + "]"
_STOP = "a an and are as at be by for from has in is it its of on or that the this to was were with"
STOP_WORDS = frozenset(_STOP.split(" "))


def cjk_runs(text: str | None) -> str | None:
    """The CJK runs of a text, space-separated (what the bigram index holds and is asked);
    None when it has none."""
    runs = " ".join(re.findall(f"{CJK}+", text)) if text else ""
    return runs or None
