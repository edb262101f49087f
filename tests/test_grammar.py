"""The query grammar: parts, operators, weights, image detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_image

from mmsearch.core.errors import UsageError
from mmsearch.query.grammar import Part, parse, parse_date


def test_words_without_operators_are_one_text_part() -> None:
    assert parse(["red", "car", "at", "night"]) == [Part("text", "red car at night", 1.0)]


def test_plus_and_minus_tokens_split_parts() -> None:
    assert parse(["beach", "+", "at sunset", "-", "people"]) == [
        Part("text", "beach", 1.0),
        Part("text", "at sunset", 1.0),
        Part("text", "people", -1.0),
    ]


def test_operators_inside_one_argument_split_parts() -> None:
    assert parse(["cat + dog - grass"]) == [
        Part("text", "cat", 1.0),
        Part("text", "dog", 1.0),
        Part("text", "grass", -1.0),
    ]


def test_a_hyphenated_word_is_not_an_operator() -> None:
    assert parse(["t-shirt + well-known"]) == [
        Part("text", "t-shirt", 1.0),
        Part("text", "well-known", 1.0),
    ]


def test_weights_scale_parts_and_keep_their_sign() -> None:
    assert parse(['2:"golden retriever"', "-", "0.5:grass"]) == [
        Part("text", "golden retriever", 2.0, phrase=True),
        Part("text", "grass", -0.5),
    ]


def test_a_path_starting_with_dot_slash_is_an_image(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "beach photo.jpg", seed=1)
    (part,) = parse(["./beach photo.jpg"])
    assert part == Part("image", str(tmp_path / "beach photo.jpg"), 1.0)


def test_an_existing_file_is_an_image_even_without_a_prefix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "pool.png", seed=1)
    assert parse(["0.5:pool.png"])[0] == Part("image", str(tmp_path / "pool.png"), 0.5)


def test_an_absolute_image_path_with_spaces_inside_one_argument(tmp_path: Path) -> None:
    image = make_image(tmp_path / "my photos" / "a b.jpg", seed=1)
    assert parse([f"{image} + sunset"]) == [
        Part("image", str(image), 1.0),
        Part("text", "sunset", 1.0),
    ]


def test_a_missing_image_path_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no such image"):
        parse(["./nope.jpg"])


@pytest.mark.parametrize("tokens", [["cat", "+"], ["+", "cat"], ["cat", "+", "-", "dog"], []])
def test_a_dangling_operator_or_empty_query_is_a_usage_error(tokens: list[str]) -> None:
    with pytest.raises(UsageError):
        parse(tokens)


def test_a_leading_minus_subtracts_the_first_part() -> None:
    assert parse(["-", "people", "+", "beach"])[0] == Part("text", "people", -1.0)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024", "2024-01-01T00:00"),
        ("2024-06", "2024-06-01T00:00"),
        ("2024-06-15", "2024-06-15T00:00"),
        ("2024-06-15T13:45", "2024-06-15T13:45"),
    ],
)
def test_dates_are_read_in_local_time(text: str, iso: str) -> None:
    from datetime import datetime

    assert parse_date(text) == datetime.fromisoformat(iso).timestamp()


def test_a_bad_date_names_the_option() -> None:
    with pytest.raises(UsageError, match="--after"):
        parse_date("yesterday", "--after")


@pytest.mark.parametrize(("token", "weight"), [(".5:cat", 0.5), ("1.:cat", 1.0), ("2:cat", 2.0)])
def test_weights_are_read_as_rclip_reads_them(token: str, weight: float) -> None:
    assert parse([token]) == [Part("text", "cat", weight)]


def test_a_bare_word_naming_a_file_here_stays_text(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dog").write_bytes(b"not a picture")
    (tmp_path / "notes.txt").write_text("a document, not a picture")
    assert parse(["dog"]) == [Part("text", "dog", 1.0)]
    assert parse(["notes.txt"]) == [Part("text", "notes.txt", 1.0)]


def test_a_parent_relative_path_is_an_image(tmp_path: Path, monkeypatch) -> None:
    image = make_image(tmp_path / "up.jpg", seed=1)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert parse(["../up.jpg"]) == [Part("image", str(image), 1.0)]


def test_a_file_address_is_an_image(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a b.jpg", seed=1)
    assert parse([f"file://{tmp_path}/a%20b.jpg"]) == [Part("image", str(image), 1.0)]


@pytest.mark.parametrize("url", ["https://example.com/cat.jpg", "0.5:http://x/y.png"])
def test_a_web_address_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(UsageError, match="download it first") as caught:
        parse(["beach", "+", url])
    assert "\n" not in str(caught.value)
