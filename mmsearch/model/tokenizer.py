"""CLIP's byte-pair tokenizer without torch: a text query must not pay seconds of imports.

The same algorithm and vocabulary as open_clip's SimpleTokenizer (OpenAI CLIP, MIT); the
ONNX export checks that both give the same tokens before this one is ever used.
"""

from __future__ import annotations

import html
import itertools
import re
import string
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

SPECIAL = ("<start_of_text>", "<end_of_text>")


@lru_cache
def _byte_symbols() -> dict[int, str]:
    """Printable stand-ins for all 256 bytes, so BPE never sees whitespace or control codes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    symbols = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in symbols)
    symbols.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return symbols  # insertion order is the vocabulary's order


def _clean(text: str, mode: str) -> str:
    text = html.unescape(html.unescape(_fix_text(text))).strip()
    if mode == "canonicalize":
        text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation))
        return " ".join(text.lower().split())
    text = " ".join(text.split())
    return text.lower() if mode == "lower" else text


_PLAIN = re.compile(r"[ -%'-~]*")  # printable ASCII without "&"


def _fix_text(text: str) -> str:
    """ftfy.fix_text, which leaves printable ASCII without "&" as it is (nothing there is
    mojibake, an entity, a control or terminal code, a ligature, a wide or curly character,
    or a line break; tests/test_tokenizer.py holds it to that): most queries then skip
    importing ftfy, a sixth of a cold query's time."""
    if _PLAIN.fullmatch(text):
        return text
    import ftfy

    return ftfy.fix_text(text)


MERGES = 49152 - 256 - 2  # the merges CLIP's vocabulary uses, of the file's ~262k


def merge_lines(vocab: Path) -> str:
    """The used merges, "a b" per line, decompressing only as much of the file as holds them
    (a sixth of it). One string: the dictionaries are built from it in C (0.03 s, not 0.1)."""
    stream, pieces, lines = zlib.decompressobj(wbits=31), [], 0  # 31: gzip framing
    with open(vocab, "rb") as f:
        while lines <= MERGES and (chunk := f.read(1 << 16)):
            pieces.append(stream.decompress(chunk))
            lines += pieces[-1].count(b"\n")
    return b"\n".join(b"".join(pieces).split(b"\n", MERGES + 1)[1 : MERGES + 1]).decode()


class ClipTokenizer:
    def __init__(self, vocab: Path, context_length: int = 77, clean: str = "lower"):
        import regex

        merges = merge_lines(vocab)
        symbols = list(_byte_symbols().values())
        words = [*symbols, *(s + "</w>" for s in symbols)]
        self.ids = {w: i for i, w in enumerate(words)}
        merged = merges.replace(" ", "").split("\n")  # "ab": what each merge makes
        self.ids.update(zip(merged, range(len(words), len(words) + MERGES), strict=True))
        self.ids.update({w: i for i, w in enumerate(SPECIAL, len(words) + MERGES)})
        self.ranks = dict(zip(merges.split("\n"), range(MERGES), strict=True))  # by "a b"
        self.sot, self.eot = self.ids[SPECIAL[0]], self.ids[SPECIAL[1]]
        self.context_length, self.clean = context_length, clean
        self.cache: dict[str, list[str]] = {}
        self.pattern = regex.compile(
            "|".join(SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[str]:
        if token in self.cache:
            return self.cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {f"{a} {b}" for a, b in itertools.pairwise(word)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and f"{word[i]} {word[i + 1]}" == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        symbols = _byte_symbols()
        ids: list[int] = []
        for token in self.pattern.findall(_clean(text, self.clean)):
            if token in SPECIAL:
                ids.append(self.ids[token])
                continue
            mapped = "".join(symbols[b] for b in token.encode("utf-8"))
            ids.extend(self.ids[piece] for piece in self._bpe(mapped))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Token ids, one padded row of `context_length` per text (long ones cut, EOT kept)."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in zip(out, texts, strict=True):
            ids = [self.sot, *self.encode(text), self.eot][: self.context_length]
            ids[-1] = self.eot
            row[: len(ids)] = ids
        return out
