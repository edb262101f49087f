"""The ONNX Runtime path: exported once, proven equal to torch, used without importing torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image, run
from PIL import Image

from mmsearch.core.config import Settings
from mmsearch.model import embed
from mmsearch.model.embed import load_embedder, onnx_folder


def both(tiny_model: str) -> tuple:
    fp32 = {"runtime": "onnx", "precision": "fp32"}
    onnx = load_embedder(Settings(db="/unused", model=tiny_model, **fp32))
    torch = load_embedder(Settings(db="/unused", model=tiny_model, runtime="torch"))
    return onnx, torch


def test_auto_runtime_on_a_cpu_is_onnx_with_the_proven_int8_towers(tiny_model: str) -> None:
    embedder = load_embedder(Settings(db="/unused", model=tiny_model))
    assert type(embedder).__name__ == "OnnxEmbedder"
    assert embedder.tower_file("visual.onnx") == "visual.int8.onnx"


def test_precision_fp32_forces_the_fp32_towers(tiny_model: str) -> None:
    embedder = load_embedder(Settings(db="/unused", model=tiny_model, precision="fp32"))
    assert embedder.tower_file("visual.onnx") == "visual.onnx"


def test_int8_vectors_stay_within_the_checked_cosine_of_fp32(
    tiny_model: str, photo_library: Path
) -> None:
    int8 = load_embedder(Settings(db="/unused", model=tiny_model, precision="int8"))
    fp32, _ = both(tiny_model)
    pictures = [Image.open(p).convert("RGB") for p in sorted(photo_library.rglob("*.jpg"))]
    pixels = [fp32.preprocess(p) for p in pictures]
    texts = ["a dog on a beach", "quarterly report", "東京の夜"]
    assert (fp32.embed_images(pixels) * int8.embed_images(pixels)).sum(axis=1).min() >= 0.995
    assert (fp32.embed_texts(texts) * int8.embed_texts(texts)).sum(axis=1).min() >= 0.995


def test_an_int8_tower_that_fails_its_check_is_not_kept(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.model import onnx_export

    monkeypatch.setattr(onnx_export, "INT8_MIN_COSINE", 1.01)  # nothing can pass
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    settings = Settings(db="/unused", model=tiny_model)
    onnx_export.export(settings, onnx_folder(settings))
    meta = json.loads((onnx_folder(settings) / "meta.json").read_text())
    assert meta["int8"] == {"visual.onnx": False, "textual.onnx": False}
    assert not list(onnx_folder(settings).glob("*.int8.onnx"))


def test_a_query_runs_only_its_own_tokens_and_gets_the_whole_contexts_vector(
    tiny_model: str,
) -> None:
    onnx, torch = both(tiny_model)
    onnx.embed_texts(["warm"])
    run, shapes = onnx._sessions["textual.onnx"].run, []
    onnx._sessions["textual.onnx"].run = lambda out, feed: (
        shapes.append(feed["input"].shape) or run(out, feed)
    )
    for text in ["a dog", "don't STOP ! <end_of_text> more", "x " * 200]:
        cosine = float(onnx.embed_texts([text])[0] @ torch.embed_texts([text])[0])
        assert cosine > 0.9999
    assert shapes == [(1, 4), (1, 8), (1, 77)]


def test_a_text_tower_that_cannot_take_fewer_tokens_is_given_the_whole_context(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.model import onnx_export

    monkeypatch.setattr(onnx_export, "trimmed", lambda tokens: tokens[:, :2])  # cuts wrongly
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    settings = Settings(db="/unused", model=tiny_model)
    onnx_export.export(settings, onnx_folder(settings))
    assert json.loads((onnx_folder(settings) / "meta.json").read_text())["trim_tokens"] is False
    onnx, torch = both(tiny_model)
    assert float(onnx.embed_texts(["a dog"])[0] @ torch.embed_texts(["a dog"])[0]) > 0.9999


def test_onnx_and_torch_give_the_same_text_vectors(tiny_model: str) -> None:
    onnx, torch = both(tiny_model)
    texts = ["a dog", "Ünïcödé & <b>html</b> 東京", "x " * 200]
    cosine = (onnx.embed_texts(texts) * torch.embed_texts(texts)).sum(axis=1)
    assert cosine.min() > 0.9999


def test_onnx_and_torch_give_the_same_image_vectors(tiny_model: str, photo_library: Path) -> None:
    onnx, torch = both(tiny_model)
    pictures = [Image.open(p).convert("RGB") for p in sorted(photo_library.rglob("*.jpg"))]
    mine = onnx.embed_images([onnx.preprocess(p) for p in pictures])
    theirs = torch.embed_images([torch.preprocess(p) for p in pictures])
    assert ((mine * theirs).sum(axis=1)).min() > 0.9999


@pytest.mark.parametrize(
    "text",
    ["", "a", "don't   stop", "&amp;amp; 'll", "Ça va? 🙂🙂", "<start_of_text> x", "9" * 300],
)
def test_tokenizer_matches_open_clip(text: str, tiny_model: str) -> None:
    onnx, torch = both(tiny_model)
    assert np.array_equal(onnx._tokenizer()([text]), torch.tokenizer([text]).numpy())


@pytest.mark.parametrize("size", [(640, 480), (33, 900), (64, 64), (1, 1)])
def test_preprocessing_matches_open_clip(size: tuple[int, int], tiny_model: str) -> None:
    onnx, torch = both(tiny_model)
    rng = np.random.default_rng(sum(size))
    picture = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    diff = np.abs(onnx.preprocess(picture) - torch.preprocess(picture).numpy()).max()
    assert diff < 1e-5


def test_index_and_query_never_import_torch_once_exported(photos: Path) -> None:
    code = (
        "import sys; from mmsearch.doors.cli import app\n"
        "for args in (['index', '-q', sys.argv[1]], ['query', 'x', '--json']):\n"
        "    app(args, standalone_mode=False)\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules),"
        " file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(photos)],
        capture_output=True,
        text=True,
        env=os.environ,
        check=True,
    )
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_a_model_onnx_cannot_run_falls_back_to_torch(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(embed, "_cache", {})  # models this process already loaded
    folder = onnx_folder(Settings(db="/unused", model=tiny_model))
    folder.mkdir(parents=True)
    (folder / "unsupported.txt").write_text("its tokenizer is not CLIP's BPE\n")
    assert type(load_embedder(Settings(db="/u", model=tiny_model))).__name__ == "ClipEmbedder"


def test_forcing_onnx_for_a_model_it_cannot_run_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMSEARCH_RUNTIME", "onnx")
    monkeypatch.setattr(embed, "_cache", {})  # models this process already loaded
    settings = Settings(db="/unused", model=os.environ["MMSEARCH_MODEL"])
    onnx_folder(settings).mkdir(parents=True)
    (onnx_folder(settings) / "unsupported.txt").write_text("its tokenizer is not CLIP's BPE\n")
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    result = run("index", str(tmp_path / "p"))
    assert result.exit_code == 1
    assert "cannot run" in result.stderr and "tokenizer is not CLIP's BPE" in result.stderr


def test_reduced_precision_on_onnx_is_a_usage_error(tmp_path: Path) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    result = run("index", str(tmp_path / "p"), "--runtime", "onnx", "--precision", "bf16")
    assert result.exit_code == 2 and "--runtime torch" in result.stderr


def test_bf16_vectors_agree_with_fp32(tiny_model: str, photo_library: Path) -> None:
    fp32 = load_embedder(Settings(db="/u", model=tiny_model, runtime="torch", precision="fp32"))
    bf16 = load_embedder(Settings(db="/u", model=tiny_model, runtime="torch", precision="bf16"))
    pictures = [Image.open(p).convert("RGB") for p in sorted(photo_library.rglob("*.jpg"))]
    pixels = [fp32.preprocess(p) for p in pictures]
    cosine = (fp32.embed_images(pixels) * bf16.embed_images(pixels)).sum(axis=1)
    assert cosine.min() > 0.99


def test_a_towers_optimised_graph_is_saved_at_export_and_answers_the_same(
    tiny_model: str, tmp_path: Path
) -> None:
    import onnxruntime as ort

    from mmsearch.model.clip_onnx import open_session, session_options

    settings = Settings(db="/unused", model=tiny_model)
    load_embedder(settings)
    assert len(list(onnx_folder(settings).glob("textual.int8.opt-*.onnx"))) == 1
    folder = tmp_path / "onnx"
    shutil.copytree(onnx_folder(settings), folder)
    tokens = load_embedder(settings)._tokenizer()(["a red car", "a dog"])
    plain = ort.InferenceSession(str(folder / "textual.int8.onnx"), session_options())
    expected = plain.run(None, {"input": tokens})[0]
    [saved] = folder.glob("textual.int8.opt-*.onnx")
    saved.write_bytes(b"not a graph")  # damaged: optimised afresh and saved again
    assert np.array_equal(
        open_session(folder / "textual.int8.onnx").run(None, {"input": tokens})[0], expected
    )
    assert saved.read_bytes() != b"not a graph"
    reloaded = open_session(folder / "textual.int8.onnx")  # from the saved graph
    assert np.array_equal(reloaded.run(None, {"input": tokens})[0], expected)


def test_sessions_take_buffers_as_needed_rather_than_one_planned_block() -> None:
    """The planned block (ONNX Runtime's memory pattern) raised indexing's peak RSS by ~40
    MiB for an image batch of 16, at no gain in speed (bench/bench.py, memory rows)."""
    from mmsearch.model.clip_onnx import session_options

    assert session_options().enable_mem_pattern is False
