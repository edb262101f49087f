#!/usr/bin/env python3
"""int8 judged by ranking: each int8 variant of the scene model against fp32, on a held-out
scene corpus with its captions as queries, and the export gate's own choice and cost.

    python bench/bench_int8.py                 # scene model, 1000 scenes (~2 min on 2 cores)
    python bench/bench_int8.py --arch ViT-B-32-256   # + speed of a random-weight default model

For each variant (dynamic, weight-only, static QDQ) with both towers in it: recall@10 of its
caption → scene and scene → scene rankings against fp32's, the worst cosine to fp32 per tower,
and forward speed on one thread. Prints a table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from mmsearch.model.clip_onnx import TEXTUAL, VISUAL, OnnxEmbedder  # noqa: E402
from mmsearch.model.onnx_export import (  # noqa: E402
    INT8_VARIANTS,
    _normalised_rows,
    _session,
    _write_variant,
    probe_corpus,
    probe_inputs,
    recall_at,
)

SCENE_MODEL = HERE.parent / "tests" / "scene_model" / "scene-clip"
CORPUS_SEED = 11  # neither the training nor the training script's held-out seed


def export(model: str, cache: Path) -> tuple[Path, float, dict[str, Any]]:
    """The real export (gate included) into a fresh cache: its folder, the gate's seconds."""
    os.environ["MMSEARCH_CACHE"] = str(cache)
    from mmsearch.core.config import Settings
    from mmsearch.model import onnx_export
    from mmsearch.model.embed import onnx_folder

    spent: dict[str, float] = {}
    quantize = onnx_export._quantize

    def timed(folder: Path) -> None:
        start = time.perf_counter()
        quantize(folder)
        spent["gate"] = time.perf_counter() - start

    onnx_export._quantize = timed
    started = time.perf_counter()
    settings = Settings(db="/unused", model=model)
    onnx_export.export(settings, onnx_folder(settings))
    onnx_export._quantize = quantize
    folder = onnx_folder(settings)
    spent["export"] = time.perf_counter() - started
    return folder, spent, json.loads((folder / "meta.json").read_text())


def speed(path: Path, batch: np.ndarray, seconds: float = 3.0) -> float:
    """Inputs per second on one thread, batches of len(batch), after one warm-up run."""
    session = _session(path)
    session.run(None, {"input": batch})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {"input": batch})
        done += len(batch)
    return done / (time.perf_counter() - started)


def variants(folder: Path, out: Path) -> dict[str, dict[str, Path]]:
    """Every variant of both towers, calibrated (static) on the gate's probe corpus."""
    _, calibration = probe_inputs(OnnxEmbedder.open(folder, 1))
    made: dict[str, dict[str, Path]] = {"fp32": {n: folder / n for n in (VISUAL, TEXTUAL)}}
    for variant in INT8_VARIANTS:
        made[variant] = {}
        for name in (VISUAL, TEXTUAL):
            target = out / name.replace(".onnx", f".{variant}.onnx")
            _write_variant(variant, folder / name, target, calibration[name])
            made[variant][name] = target
    return made


def scene_corpus(n: int, size: int) -> tuple[list[Any], list[str]]:
    from scene_model.scenes import caption, render, scenes

    corpus = scenes(CORPUS_SEED, n)
    captions = sorted({caption(s) for s in corpus})
    return [render(s, size) for s in corpus], captions


def ranking_table(folder: Path, made: dict[str, dict[str, Path]], n: int) -> dict[str, Any]:
    full = OnnxEmbedder.open(folder, 1)
    pictures, captions = scene_corpus(n, 128)
    pixels = np.stack([full.preprocess(p) for p in pictures])
    tokens = full._tokenizer()(captions)
    vectors = {
        variant: (
            _normalised_rows(_session(towers[VISUAL]).run(None, {"input": pixels})[0]),
            _normalised_rows(_session(towers[TEXTUAL]).run(None, {"input": tokens})[0]),
        )
        for variant, towers in made.items()
    }
    images, texts = vectors["fp32"]
    rows: dict[str, Any] = {}
    for variant, (vi, vt) in vectors.items():
        rows[variant] = {
            "caption_to_scene_recall_at_10": round(recall_at(10, texts @ images.T, vt @ vi.T), 4),
            "scene_to_scene_recall_at_10": round(
                recall_at(10, images @ images.T, vi @ vi.T, same=True), 4
            ),
            "cosine_min_image": round(float((vi * images).sum(axis=1).min()), 5),
            "cosine_min_text": round(float((vt * texts).sum(axis=1).min()), 5),
            "images_per_s": round(speed(made[variant][VISUAL], pixels[:32]), 1),
            "texts_per_s": round(speed(made[variant][TEXTUAL], tokens[:32]), 1),
        }
    rows["corpus"] = {"scenes": n, "captions": len(captions)}
    return rows


def speed_only(model_dir: Path, made: dict[str, dict[str, Path]]) -> dict[str, Any]:
    full = OnnxEmbedder.open(model_dir, 1)
    images, texts = probe_corpus(full)
    pixels, tokens = np.stack(images[:16]), full._tokenizer()(texts[:16])
    return {
        v: {
            "images_per_s": round(speed(t[VISUAL], pixels), 2),
            "texts_per_s": round(speed(t[TEXTUAL], tokens), 1),
        }
        for v, t in made.items()
    }


def random_checkpoint(arch: str, folder: Path) -> str:
    """A `local-dir:` folder of `arch` with random weights (speed needs no real values)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = open_clip.get_model_config(arch)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": config, "preprocess_cfg": {}})
    )
    torch.manual_seed(0)
    model = open_clip.create_model(arch)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder}"


def print_table(result: dict[str, Any]) -> None:
    scene = result["scene_model"]
    print(f"\nscene model, {scene['corpus']['scenes']} held-out scenes, "
          f"{scene['corpus']['captions']} captions as queries; one thread")  # fmt: skip
    header = "| variant | caption→scene R@10 vs fp32 | scene→scene R@10 | cos min image / text "
    print(header + "| images/s | texts/s |")
    print("|---|---|---|---|---|---|")
    for variant in ("fp32", *INT8_VARIANTS):
        r = scene[variant]
        print(
            f"| {variant} | {r['caption_to_scene_recall_at_10']} | "
            f"{r['scene_to_scene_recall_at_10']} | {r['cosine_min_image']} / "
            f"{r['cosine_min_text']} | {r['images_per_s']} | {r['texts_per_s']} |"
        )
    for label, gate in result["gates"].items():
        print(f"\n{label}: export {gate['export_s']:.1f} s, of which the int8 gate "
              f"{gate['gate_s']:.1f} s; chosen {gate['chosen']}")  # fmt: skip
        for name, figures in gate["variants"].items():
            print(f"  {name}: {json.dumps(figures)}")
    if "default_arch" in result:
        print(f"\n{result['default_arch']['arch']} (random weights), one thread:")
        for variant, r in result["default_arch"]["speed"].items():
            print(f"  {variant}: {r['images_per_s']} images/s, {r['texts_per_s']} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--arch", help="also time a random-weight open_clip architecture")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result: dict[str, Any] = {"gates": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder, spent, meta = export(f"local-dir:{SCENE_MODEL}", work / "cache")
        result["gates"]["scene model"] = gate_summary(spent, meta)
        made = variants(folder, work)
        result["scene_model"] = ranking_table(folder, made, args.scenes)
        if args.arch:
            model = random_checkpoint(args.arch, work / "arch")
            folder, spent, meta = export(model, work / "cache-arch")
            result["gates"][f"{args.arch} (random weights)"] = gate_summary(spent, meta)
            (work / "arch-variants").mkdir()
            made = variants(folder, work / "arch-variants")
            result["default_arch"] = {"arch": args.arch, "speed": speed_only(folder, made)}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def gate_summary(spent: dict[str, float], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "export_s": round(spent["export"], 1),
        "gate_s": round(spent["gate"], 1),
        "chosen": meta["int8_variant"],
        "variants": meta["int8_variants"],
    }


if __name__ == "__main__":
    main()
