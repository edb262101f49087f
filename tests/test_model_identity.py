"""A model on disk is known by the whole content of its weights: two checkpoints that differ
anywhere get separate tables and separate ONNX exports; the hash is computed once per file
version (path, size, mtime) and remembered across processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import make_image, run

from mmsearch.core import config
from mmsearch.core.config import Settings, weights_digest

WEIGHTS = "open_clip_model.safetensors"


def late_twin(model: Path, twin: Path) -> Path:
    """A copy of a `local-dir:` model whose weights differ from the original's in one byte,
    near the end: same names, same sizes, same first MiB."""
    shutil.copytree(model, twin)
    weights = twin / WEIGHTS
    data = bytearray(weights.read_bytes())
    assert len(data) > 2 << 20
    data[-5] ^= 0x01  # inside the last tensor's data: still a valid checkpoint
    weights.write_bytes(bytes(data))
    return twin


@pytest.fixture
def twins(tiny_model: str, tmp_path: Path) -> tuple[str, str]:
    original = Path(tiny_model.removeprefix("local-dir:"))
    return tiny_model, "local-dir:" + str(late_twin(original, tmp_path / "twin"))


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of our own, and no hash remembered in this process."""
    cache = tmp_path / "private-cache"
    monkeypatch.setenv("MMSEARCH_CACHE", str(cache))
    monkeypatch.setattr(config, "_digests", {})
    return cache


def test_checkpoints_differing_after_the_first_mib_get_different_keys(
    twins: tuple[str, str],
) -> None:
    a, b = (Settings(db="/unused", model=m) for m in twins)
    assert config._legacy_fingerprint(Path(a.checkpoint)) == config._legacy_fingerprint(
        Path(b.checkpoint)
    )  # what schema 1 could not tell apart
    assert a.model_key != b.model_key and a.weights != b.weights


def test_weights_retrained_in_place_change_the_key_but_not_the_legacy_one(
    tiny_model: str, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model.removeprefix("local-dir:"), folder)
    before = Settings(db="/unused", model=f"local-dir:{folder}")
    keys = before.model_key, before.legacy_model_key
    shutil.rmtree(folder)
    late_twin(Path(tiny_model.removeprefix("local-dir:")), folder)
    after = Settings(db="/unused", model=f"local-dir:{folder}")
    assert after.legacy_model_key == keys[1] and after.model_key != keys[0]


def test_a_checkpoint_file_is_known_by_its_whole_content(tmp_path: Path) -> None:
    first, second = tmp_path / "one.bin", tmp_path / "two" / "one.bin"
    second.parent.mkdir()
    data = os.urandom(3 << 20)
    first.write_bytes(data)
    second.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    a = Settings(db="/unused", model="ViT-B-32", pretrained=str(first))
    b = Settings(db="/unused", model="ViT-B-32", pretrained=str(second))
    assert a.weights == "sha256:" + hashlib.sha256(data).hexdigest()
    assert a.legacy_model_key == b.legacy_model_key and a.model_key != b.model_key


def test_a_pretrained_tag_keeps_its_key() -> None:
    settings = Settings(db="/unused", model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert settings.model_key == settings.legacy_model_key
    assert settings.weights == "laion2b_s34b_b79k" and settings.checkpoint is None


def test_twins_get_separate_tables_and_separate_onnx_exports(
    twins: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lancedb

    from mmsearch.model.embed import onnx_folder

    photo = make_image(tmp_path / "pics" / "a.png", seed=1)
    for model in twins:
        monkeypatch.setenv("MMSEARCH_MODEL", model)
        result = run("index", "-q", str(photo.parent))
        assert result.exit_code == 0, result.stderr
        assert json.loads(run("status", "--json").stdout)["files_indexed"] == 1
    db = lancedb.connect(os.environ["MMSEARCH_DB"])
    tables = sorted(t for t in db.list_tables().tables if t.startswith("files_"))
    a, b = (Settings(db=os.environ["MMSEARCH_DB"], model=m) for m in twins)
    assert tables == sorted([f"files_{a.model_key}", f"files_{b.model_key}"])
    assert onnx_folder(a) != onnx_folder(b)
    assert (onnx_folder(a) / "meta.json").exists() and (onnx_folder(b) / "meta.json").exists()
    models = {m["key"]: m for m in db.open_table("models").to_arrow().to_pylist()}
    assert models[b.model_key]["weights"] == b.weights
    assert models[b.model_key]["checkpoint"] == b.checkpoint
    assert str(photo) in file_rows_of(db, b.model_key)


def file_rows_of(db, key: str) -> set[str]:
    return set(db.open_table(f"files_{key}").to_arrow()["path"].to_pylist())


def old_checkpoint(path: Path, size: int = 1 << 21) -> Path:
    """Random weights last changed a minute ago (a file changed just now is never
    remembered: see the next test)."""
    path.write_bytes(os.urandom(size))
    minute_ago = time.time_ns() - 60_000_000_000
    os.utime(path, ns=(minute_ago, minute_ago))
    return path


def test_a_file_changed_just_now_is_hashed_again(private_cache: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 21))
    first = weights_digest(weights)
    assert not (private_cache / config.DIGEST_CACHE).exists()
    same_size_same_mtime_rewrite(weights)  # as a rewrite within one timestamp tick
    assert weights_digest(weights) != first


def same_size_same_mtime_rewrite(path: Path) -> bytes:
    """Change a file's content without changing its size or mtime: only rereading it shows."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def test_the_hash_is_computed_once_per_process(private_cache: Path, tmp_path: Path) -> None:
    weights = old_checkpoint(tmp_path / "w.bin")
    first = weights_digest(weights)
    (private_cache / config.DIGEST_CACHE).unlink()
    same_size_same_mtime_rewrite(weights)
    assert weights_digest(weights) == first  # remembered in this process: not reread
    config._digests.clear()
    assert weights_digest(weights) != first  # nothing remembered: read again


def test_the_hash_is_kept_in_a_private_cache_file(private_cache: Path, tmp_path: Path) -> None:
    weights = old_checkpoint(tmp_path / "w.bin")
    first = weights_digest(weights)
    cache_file = private_cache / config.DIGEST_CACHE
    assert cache_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(cache_file.read_text())[str(weights)]["sha256"] == first
    same_size_same_mtime_rewrite(weights)
    config._digests.clear()  # as a new process
    assert weights_digest(weights) == first  # remembered in the cache file: not reread


def test_touching_the_checkpoint_recomputes_its_hash(private_cache: Path, tmp_path: Path) -> None:
    weights = old_checkpoint(tmp_path / "w.bin")
    first = weights_digest(weights)
    data = same_size_same_mtime_rewrite(weights)
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert weights_digest(weights) == hashlib.sha256(data).hexdigest() != first


def test_a_corrupt_or_unwritable_cache_only_costs_hashing_again(
    private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = old_checkpoint(tmp_path / "w.bin", 7000)
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    private_cache.mkdir()
    for garbage in ("{not json", "[1, 2]", json.dumps({str(weights): "nonsense"})):
        (private_cache / config.DIGEST_CACHE).write_text(garbage)
        config._digests.clear()
        assert weights_digest(weights) == expected
    assert json.loads((private_cache / config.DIGEST_CACHE).read_text())[str(weights)]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MMSEARCH_CACHE", str(blocker / "cache"))  # cannot be created
    config._digests.clear()
    assert weights_digest(weights) == expected


def test_a_folder_model_is_known_by_every_file_in_it(twins: tuple[str, str]) -> None:
    folder = Path(twins[0].removeprefix("local-dir:"))
    before = weights_digest(folder)
    config_file = folder / "open_clip_config.json"
    original = config_file.read_text()
    try:
        config_file.write_text(original.replace('"preprocess_cfg": {}', '"preprocess_cfg":{} '))
        assert weights_digest(folder) != before
    finally:
        config_file.write_text(original)
