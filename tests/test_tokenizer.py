"""The torch-free tokenizer (mmsearch.model.tokenizer) gives open_clip's tokens, reading only the
part of the vocabulary file CLIP uses and skipping ftfy where ftfy changes nothing."""

from __future__ import annotations

import random
import string
from pathlib import Path

import ftfy
import pytest
from open_clip.tokenizer import SimpleTokenizer, default_bpe

from mmsearch.model.tokenizer import ClipTokenizer, _fix_text

TRICKY = [
    "red car at night",
    "a photo of a dog",
    "Café  au lait &amp; crème brûlée, 1984!",
    "&amp;amp;amp; &lt;b&gt; &#x41;",
    "line\r\nbreak\rand\ttab",
    "\x1b[31mred\x1b[0m and \x07 bell",
    "\ufb01sh \ufb02owers \uff21\uff22\uff23 \u201cquoted\u201d \u2018single\u2019",
    "mojibake: Ã©tÃ© cafÃ©",
    "東京 🙂 don't STOP <end_of_text>",
    "x " * 100,
    "",
]


def printable_ascii(rng: random.Random, n: int) -> list[str]:
    alphabet = string.printable  # letters, digits, punctuation (with &), whitespace, controls
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def both() -> tuple[ClipTokenizer, SimpleTokenizer]:
    return ClipTokenizer(Path(default_bpe())), SimpleTokenizer()


@pytest.mark.parametrize("text", TRICKY)
def test_the_tokens_are_open_clips(both, text: str) -> None:
    ours, theirs = both
    assert ours([text]).tolist() == theirs([text]).tolist()


def test_random_ascii_gives_open_clips_tokens(both) -> None:
    ours, theirs = both
    texts = printable_ascii(random.Random(7), 300)
    assert ours(texts).tolist() == theirs(texts).tolist()


def test_skipping_ftfy_changes_nothing() -> None:
    """Where the tokenizer skips ftfy, ftfy would have returned the text unchanged."""
    for text in [*printable_ascii(random.Random(11), 5000), *TRICKY]:
        assert _fix_text(text) == ftfy.fix_text(text), repr(text)


def test_trimmed_tokens_end_at_the_longest_texts_end_of_text() -> None:
    from mmsearch.model.clip_onnx import trimmed

    tokens = ClipTokenizer(Path(default_bpe()), 77, "lower")(["a dog !~", "a"])
    cut = trimmed(tokens)
    assert cut.shape == (2, 6) and cut[0, 3] == 0  # <start> a dog ! ~ <end>: "!" is id 0
    assert (cut == tokens[:, :6]).all() and not tokens[:, 6:].any()
    assert trimmed(tokens[:0]).shape == (0, 77)
