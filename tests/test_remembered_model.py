"""The store remembers the model and weights it was built with: later commands use them
unasked; a checkpoint that moved or changed is named in one line with the way to point at it;
every "nothing indexed" message names what would fix it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import TINY_MODEL_CFG, make_image, run, save_tiny_checkpoint, write_tiny_model


@pytest.fixture
def checkpoint_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A named architecture (registered like a bundled one) with weights in a checkpoint
    file: the `--model NAME --pretrained FILE` route of an offline user."""
    import open_clip

    config = tmp_path / "mmsearch-test-remembered.json"
    config.write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(config)
    (tmp_path / "weights").mkdir()
    return save_tiny_checkpoint(tmp_path / "weights" / "tiny.safetensors", seed=5)


def index_with_checkpoint(checkpoint: Path, folder: Path) -> None:
    args = ["--model", "mmsearch-test-remembered", "--pretrained", str(checkpoint)]
    assert run("index", "-q", str(folder), *args).exit_code == 0


def status() -> dict:
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_store_built_with_a_checkpoint_is_queried_with_it_unasked(
    photos: Path, checkpoint_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSEARCH_MODEL")
    index_with_checkpoint(checkpoint_model, photos)
    result = run("query", "red car at night", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 7
    s = status()
    assert (s["model"], s["pretrained"]) == ("mmsearch-test-remembered", str(checkpoint_model))


def test_a_plain_index_adds_to_the_remembered_model(
    photos: Path, tmp_path: Path, checkpoint_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSEARCH_MODEL")
    index_with_checkpoint(checkpoint_model, photos / "trips")
    assert run("index", "-q", str(photos)).exit_code == 0
    s = status()
    assert s["files_indexed"] == 7 and s["other_models"] == []


def test_with_several_models_the_most_recently_indexed_is_used_and_status_lists_the_rest(
    photos: Path, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "local-dir:" + str(write_tiny_model(tmp_path / "other-model", seed=1))
    assert run("index", "-q", str(photos)).exit_code == 0  # the tiny model, from the env
    assert run("index", "-q", "--model", other, str(photos / "trips")).exit_code == 0
    monkeypatch.delenv("MMSEARCH_MODEL")
    s = status()
    assert (s["model"], s["items"], s["other_models"]) == (other, 3, [tiny_model])
    assert "also" in run("status").stdout


def test_a_moved_checkpoint_is_named_with_the_flag_that_points_at_it(
    photos: Path, tmp_path: Path, checkpoint_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSEARCH_MODEL")
    index_with_checkpoint(checkpoint_model, photos)
    shutil.move(checkpoint_model, tmp_path / "elsewhere.safetensors")
    result = run("query", "x")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert str(checkpoint_model) in result.stderr and "no longer there" in result.stderr
    assert "--pretrained PATH (or MMSEARCH_PRETRAINED)" in result.stderr
    moved = run("query", "x", "--pretrained", str(tmp_path / "elsewhere.safetensors"))
    assert moved.exit_code == 0, moved.stderr


def test_a_changed_checkpoint_is_refused_in_one_line(
    photos: Path, checkpoint_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSEARCH_MODEL")
    index_with_checkpoint(checkpoint_model, photos)
    save_tiny_checkpoint(checkpoint_model, seed=6)
    result = run("query", "x")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"the checkpoint {checkpoint_model} changed" in result.stderr


def test_a_moved_local_dir_model_names_the_model_flag(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_tiny_model(tmp_path / "mine", seed=2)
    assert run("index", "-q", "--model", f"local-dir:{folder}", str(photos)).exit_code == 0
    monkeypatch.delenv("MMSEARCH_MODEL")
    folder.rename(tmp_path / "moved")
    result = run("query", "x")
    assert result.exit_code == 1
    assert "--model local-dir:PATH (or MMSEARCH_MODEL)" in result.stderr


def test_nothing_indexed_names_the_store_flag(tmp_path: Path) -> None:
    result = run("query", "x")
    assert result.exit_code == 1
    assert "run `mmsearch index FOLDER` first" in result.stderr
    assert "--db / MMSEARCH_DB" in result.stderr
    assert "MMSEARCH_DB" in run("status").stdout


def test_nothing_indexed_with_the_named_model_names_the_model_flags(
    photos: Path, tmp_path: Path
) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    run("index", "-q", str(tmp_path / "p"))
    other = "local-dir:" + str(write_tiny_model(tmp_path / "other-model", seed=1))
    result = run("query", "x", "--model", other)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "MMSEARCH_MODEL/MMSEARCH_PRETRAINED" in result.stderr
    assert "leave --model and --pretrained unset" in result.stderr
