"""CLIP's byte-pair tokenizer without torch: a text query must not pay seconds of imports.

The same algorithm and vocabulary as open_clip's SimpleTokenizer (OpenAI CLIP, MIT); the
ONNX export checks that both give the same tokens before this one is ever used.
"""

from __future__ import annotations

import gzip
import html
import itertools
import string
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
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    if mode == "canonicalize":
        text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation))
        return " ".join(text.lower().split())
    text = " ".join(text.split())
    return text.lower() if mode == "lower" else text


class ClipTokenizer:
    def __init__(self, vocab: Path, context_length: int = 77, clean: str = "lower"):
        import regex

        with gzip.open(vocab) as f:
            lines = f.read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
        symbols = list(_byte_symbols().values())
        words = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges), *SPECIAL]
        self.ids = {w: i for i, w in enumerate(words)}
        self.ranks = {m: i for i, m in enumerate(merges)}
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
            pairs = set(itertools.pairwise(word))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
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
