"""Model choice: real open_clip loading, offline failures, one table per model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import make_image, run, save_tiny_checkpoint, write_tiny_model


def test_missing_weights_fail_fast_with_a_hint(tmp_path: Path, monkeypatch) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    monkeypatch.setenv("MMSEARCH_MODEL", "ViT-B-32")
    started = time.monotonic()
    result = run("index", str(tmp_path / "p"), "--pretrained", "laion2b_s34b_b79k")
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "--pretrained /path/to/open_clip_model.safetensors" in result.stderr
    assert "huggingface.co/" in result.stderr  # the file to fetch, named
    assert "Traceback" not in result.stderr


def test_unknown_tag_names_the_known_ones(tmp_path: Path, monkeypatch) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    monkeypatch.setenv("MMSEARCH_MODEL", "ViT-B-32-256")
    result = run("index", str(tmp_path / "p"), "--pretrained", "no-such-tag")
    assert result.exit_code == 1
    assert "datacomp_s34b_b86k" in result.stderr


def test_unknown_model_name_fails_in_one_line(tmp_path: Path, monkeypatch) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    monkeypatch.setenv("MMSEARCH_MODEL", "ViT-Nonexistent")
    result = run("index", str(tmp_path / "p"))
    assert result.exit_code == 1 and "unknown model 'ViT-Nonexistent'" in result.stderr


def test_a_registered_config_loads_a_checkpoint_file(tmp_path: Path, monkeypatch) -> None:
    import open_clip
    from helpers import TINY_MODEL_CFG

    config = tmp_path / "mmsearch-test-tiny.json"
    config.write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(config)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors", seed=3)
    monkeypatch.setenv("MMSEARCH_MODEL", "mmsearch-test-tiny")
    monkeypatch.setenv("MMSEARCH_PRETRAINED", str(checkpoint))
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    assert run("index", str(tmp_path / "p")).exit_code == 0
    status = json.loads(run("status", "--json").stdout)
    assert (status["model"], status["pretrained"], status["items"]) == (
        "mmsearch-test-tiny",
        str(checkpoint),
        1,
    )


def test_each_model_gets_its_own_vectors(photos: Path, tmp_path: Path, monkeypatch) -> None:
    other = "local-dir:" + str(write_tiny_model(tmp_path / "other-model", seed=1))
    assert run("index", "-q", str(photos)).exit_code == 0
    assert run("index", "-q", "--model", other, str(photos / "trips")).exit_code == 0
    first = json.loads(run("status", "--json").stdout)
    second = json.loads(run("status", "--json", "--model", other).stdout)
    assert (first["items"], second["items"]) == (7, 3)
    assert second["other_models"] == [first["model"]]


def test_query_with_a_model_that_indexed_nothing_names_the_indexed_ones(
    photos: Path, tmp_path: Path
) -> None:
    other = "local-dir:" + str(write_tiny_model(tmp_path / "other-model", seed=1))
    run("index", "-q", str(photos))
    result = run("query", "x", "--model", other)
    assert result.exit_code == 1
    assert "pass --model" in result.stderr


@pytest.mark.parametrize("texts", [["a"], ["a photo of a dog", "🐕 " * 200]])
def test_text_embeddings_are_unit_length(texts: list[str], tiny_model: str) -> None:
    import numpy as np

    from mmsearch.core.config import Settings
    from mmsearch.model.embed import load_embedder

    vectors = load_embedder(Settings(db="/unused", model=tiny_model)).embed_texts(texts)
    assert vectors.shape == (len(texts), 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
