"""Composed queries through the CLI: maths, exclusion of query images, --explain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import env_settings, query_json, run

from mmsearch.query.grammar import Part
from mmsearch.storage.store import open_collection


@pytest.fixture
def indexed(photos: Path) -> Path:
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


def test_a_composed_vector_has_unit_length(indexed: Path) -> None:
    from mmsearch.query.compose import compose

    parts = [
        Part("image", str(indexed / "chelsea.jpg"), 1.0),
        Part("text", "sunset", 2.0),
        Part("text", "people", -0.5),
    ]
    vector = compose(env_settings(), open_collection(env_settings()), parts)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_composition_is_the_normalised_weighted_sum(indexed: Path) -> None:
    from mmsearch.model.embed import load_embedder
    from mmsearch.query.compose import compose

    coll = open_collection(env_settings())
    a, b = load_embedder(env_settings()).embed_texts(["sunset", "people"])
    got = compose(env_settings(), coll, [Part("text", "sunset", 2.0), Part("text", "people", -1.0)])
    want = 2 * a - b
    assert np.allclose(got, want / np.linalg.norm(want), atol=1e-5)


def test_a_pure_image_query_equals_similar(indexed: Path, tmp_path: Path) -> None:
    outside = shutil.copy(indexed / "chelsea.jpg", tmp_path / "q.jpg")
    via_query = query_json(str(outside), "-n", "5")
    via_similar = json.loads(run("similar", str(outside), "-n", "5", "--json").stdout)
    assert via_query == via_similar


def test_similar_plus_minus_equals_the_same_query_string(indexed: Path) -> None:
    image = str(indexed / "chelsea.jpg")
    a = json.loads(
        run("similar", image, "--plus", "at sunset", "--minus", "people", "--json").stdout
    )
    b = query_json(image, "+", "at sunset", "-", "people")
    assert a == b


def test_query_images_never_appear_in_the_results(indexed: Path) -> None:
    one, two = str(indexed / "chelsea.jpg"), str(indexed / "astronaut.png")
    paths = [r["path"] for r in query_json(one, "+", two, "-n", "100")]
    assert one not in paths and two not in paths
    assert len(paths) == 5


def test_explain_shows_each_part_with_kind_and_weight(indexed: Path) -> None:
    image = str(indexed / "chelsea.jpg")
    result = run("query", image, "+", '2:"at sunset"', "-", "people", "--explain", "--paths")
    assert result.exit_code == 0
    assert f"+ 1 x image {image!r}" in result.stderr
    assert "+ 2 x text 'at sunset'" in result.stderr
    assert "- 1 x text 'people'" in result.stderr


def test_parts_that_cancel_out_are_a_usage_error(indexed: Path) -> None:
    result = run("query", "sunset", "-", "sunset")
    assert result.exit_code == 2
    assert "cancel" in result.stderr
