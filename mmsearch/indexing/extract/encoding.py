"""Text in a legacy code page, decoded by what the text is.

Every single-byte code page "fits" any bytes, so fitting decides nothing: Turkish cp1254
decoded as Windows-1252 turns dotless i, s-cedilla and g-breve into ý þ ð, and its words
can no longer be found. Each candidate is decoded and scored by how many of its non-ASCII
characters are letters that its languages really use, less a penalty for what text never
holds: a capital inside a lower-case word (KOI8-R read as Windows-1251), Latin and another
script in one word, a Latin word made only of accented letters (Hebrew read as cp1252). The
best score wins; ties go to the more common code page. Multi-byte East Asian encodings must
decode strictly and give their own scripts.
"""

from __future__ import annotations

import itertools
import re

from mmsearch.core.errors import ExtractError

_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў"
_LATIN1 = "àáâãäåæçèéêëìíîïñòóôõöøùúûüÿßœšžœ"
_CENTRAL = "ąćęłńóśźżčďěňřšťůžáéíóúýöüőűăâîșțşţľĺŕôä"
_TURKISH = "çğıöşüâîû"
_GREEK = "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς"
_HEBREW = "".join(chr(c) for c in range(0x05D0, 0x05EB))
_PUNCTUATION = "€…\u2018\u2019“”\u2013—«»°·•„\u201a\u00d7÷§©®™"

# In order of preference when two score the same; each with the letters its languages use.
_SINGLE_BYTE = (
    ("cp1252", _LATIN1),
    ("cp1254", _TURKISH),
    ("cp1250", _CENTRAL),
    ("cp1255", _HEBREW),
    ("cp1251", _CYRILLIC),
    ("koi8_r", _CYRILLIC),
    ("cp1253", _GREEK),
)
_EAST_ASIAN = (
    ("cp932", r"[\u3040-\u30ff\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e々]"),  # Shift-JIS
    ("gb18030", r"[\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e]"),  # GBK, GB2312
    ("big5", r"[\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e]"),
    ("euc_kr", r"[\uac00-\ud7a3\u3000-\u303f\u4e00-\u9fff]"),
)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else the legacy code page the text
    reads best in; never fails on bytes, refuses binary data."""
    if b"\0" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError("binary data, not text")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    return data.decode(guess_code_page(data[: 1 << 20]), errors="replace")


def guess_code_page(data: bytes) -> str:
    """The legacy code page `data` reads best in."""
    best, best_score = "cp1252", -1.0
    for encoding, letters in _SINGLE_BYTE:
        text = data.decode(encoding, errors="replace")
        score = _score(text, letters)
        if score > best_score + 1e-9:
            best, best_score = encoding, score
    for encoding, pattern in _EAST_ASIAN:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        wide = [c for c in text if ord(c) > 127]
        if wide:
            score = sum(1 for c in wide if re.match(pattern, c)) / len(wide)
            if score > best_score + 1e-9:
                best, best_score = encoding, score
    return best


def _score(text: str, letters: str) -> float:
    wide = [c for c in text if ord(c) > 127]
    if not wide:
        return 0.0
    usual = set(letters) | set(letters.upper()) | set(_PUNCTUATION)
    good = sum(1 for c in wide if c in usual)
    odd = sum(1 for a, b in itertools.pairwise(text) if _odd_pair(a, b))
    if letters[0] < "\u0370":  # a Latin code page: its words are never all accents
        odd += sum(
            len(w)
            for w in re.findall(r"[^\W\d_]{2,}", text)
            if not w.isascii() and not re.search(r"[A-Za-z]", w)
        )
    return (good - 2 * odd) / len(wide)


def _odd_pair(a: str, b: str) -> bool:
    """A capital after a small letter, or Latin and another script in one word."""
    if not (a.isalpha() and b.isalpha()):
        return False
    if a.islower() and b.isupper():
        return True
    return (a.isascii() and b >= "\u0370") or (b.isascii() and a >= "\u0370")
