"""One-time export of an open_clip model to the ONNX folder `clip_onnx` runs, proven first.

Runs where torch is installed, the first time a model is used on the ONNX runtime. Nothing is
kept unless ONNX Runtime reproduces torch's vectors (cosine >= 0.9999) and our tokenizer and
preprocessing reproduce open_clip's exactly; otherwise the reason is kept and torch is used.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.clip_onnx import META, TEXTUAL, VISUAL, VOCAB, OnnxEmbedder, int8_name
from mmsearch.config import Settings
from mmsearch.errors import one_line

UNSUPPORTED = "unsupported.txt"
MIN_COSINE = 0.9999  # fp32 ONNX against torch: the same computation
INT8_MIN_COSINE = 0.995  # int8 weights against fp32, on real photos and sentences
PROBES = Path(__file__).parent / "probes"  # scikit-image's sample photos (CC0/public domain)
PROBE_TEXTS = [
    "a photo of a dog",
    "Café  au lait &amp; crème brûlée, 1984!",
    "don't STOP: the <end_of_text> 東京 🙂",
    "x " * 100,  # longer than the context: cut, EOT kept
]


class Unsupported(ValueError):
    """This model cannot run on the ONNX path (the reason says why)."""


def export(settings: Settings, folder: Path) -> None:
    marker = folder / UNSUPPORTED
    if marker.exists():
        raise Unsupported(marker.read_text().strip())
    from mmsearch.clip_torch import load_torch

    torch_model = load_torch(settings.model, settings.pretrained, device="cpu")
    print(f"preparing {settings.model} for ONNX Runtime (once)…", file=sys.stderr)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".export-") as tmp:
        work = Path(tmp)
        try:
            _write(torch_model, work)
            _prove(torch_model, OnnxEmbedder.open(work, threads=1))
            _quantize(work)
        except OSError:
            raise  # the cache's trouble, not the model's: try again next time
        except Exception as e:
            reason = e if isinstance(e, Unsupported) else Unsupported(one_line(e))
            folder.mkdir(exist_ok=True)
            marker.write_text(f"{reason}\n")
            raise reason from None
        shutil.rmtree(folder, ignore_errors=True)
        work.chmod(0o755)  # as any cache folder: mkdtemp's 0700 is not the point here
        work.rename(folder)  # whole or absent: a killed export leaves only a temp folder


def _write(embedder: Any, out: Path) -> None:
    import open_clip
    import torch

    tokenizer = embedder.tokenizer
    clean = {
        open_clip.tokenizer._clean_lower: "lower",
        open_clip.tokenizer._clean_whitespace: "whitespace",
        open_clip.tokenizer._clean_canonicalize: "canonicalize",
    }.get(getattr(tokenizer, "clean_fn", None))
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer) or clean is None:
        raise Unsupported(f"its tokenizer ({type(tokenizer).__name__}) is not CLIP's BPE")
    if tokenizer.reduction_fn is not None:
        raise Unsupported("its tokenizer reduces long texts by sampling")
    cfg = dict(embedder.model.visual.preprocess_cfg)
    if cfg.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise Unsupported(f"resize mode {cfg['resize_mode']!r}")
    if cfg.get("interpolation", "bicubic") not in ("bicubic", "bilinear"):
        raise Unsupported(f"interpolation {cfg['interpolation']!r}")

    class EncodeText(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, tokens: Any) -> Any:
            return self.model.encode_text(tokens)

    size, context = embedder.image_size, tokenizer.context_length
    towers = [
        (embedder.model.visual, torch.randn(2, 3, size, size), VISUAL),
        (EncodeText(embedder.model), torch.randint(1, 49407, (2, context)), TEXTUAL),
    ]
    torch.backends.mha.set_fastpath_enabled(False)  # export plain attention math
    try:
        for module, example, name in towers:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module.eval(), (example,), str(out / name),
                    input_names=["input"], output_names=["output"],
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                    opset_version=18, dynamo=False,
                )  # fmt: skip
            _weights_apart(out / name)
    except Exception as e:
        raise Unsupported(f"export failed: {type(e).__name__}: {e}") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    shutil.copy(Path(open_clip.__file__).parent / VOCAB, out / VOCAB)
    meta = {
        "dim": embedder.dim,
        "image_size": size,
        "mean": list(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": list(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "resize_mode": cfg.get("resize_mode", "shortest"),
        "context_length": tokenizer.context_length,
        "clean": clean,
        "exported_with": {"torch": torch.__version__, "open_clip": open_clip.__version__},
    }
    (out / META).write_text(json.dumps(meta, indent=1))


def _quantize(folder: Path) -> None:
    """int8 copies of both towers (weights int8, activations quantized per batch: VNNI on
    x86, dot-product instructions on ARM), each kept only if its vectors stay within
    INT8_MIN_COSINE of fp32's on real photos and sentences; meta.json records the worst."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in (VISUAL, TEXTUAL):
        quantize_dynamic(
            str(folder / name),
            str(folder / int8_name(name)),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        _weights_apart(folder / int8_name(name))  # the text tower then loads in 0.13 s
    meta = json.loads((folder / META).read_text())
    meta["int8"] = {VISUAL: True, TEXTUAL: True}
    (folder / META).write_text(json.dumps(meta, indent=1))
    full, small = OnnxEmbedder.open(folder, 1), OnnxEmbedder.open(folder, 1, int8=True)
    photos = [Image.open(p).convert("RGB") for p in sorted(PROBES.glob("*.jpg"))]
    pixels = [full.preprocess(p) for p in photos]
    texts = [*PROBE_TEXTS, *SENTENCES]
    worst = {
        VISUAL: _worst(full.embed_images(pixels), small.embed_images(pixels)),
        TEXTUAL: _worst(full.embed_texts(texts), small.embed_texts(texts)),
    }
    meta["int8"] = {name: cosine >= INT8_MIN_COSINE for name, cosine in worst.items()}
    meta["int8_min_cosine"] = {name: round(cosine, 6) for name, cosine in worst.items()}
    (folder / META).write_text(json.dumps(meta, indent=1))
    for name, kept in meta["int8"].items():
        if not kept:
            for path in folder.glob(int8_name(name) + "*"):
                path.unlink()


SENTENCES = [
    "a dog running on the beach at sunset",
    "screenshot of a spreadsheet with quarterly numbers",
    "two children building a snowman in the garden",
    "the invoice is due at the end of the month",
]


def _worst(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def _weights_apart(path: Path) -> None:
    """Move the weights to a side file: ONNX Runtime then reads them straight into place
    instead of parsing them out of the graph first, halving peak memory while it loads
    (measured for the default image tower: 620 -> 406 MiB) and loading faster."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def _prove(reference: Any, candidate: OnnxEmbedder) -> None:
    """Same tokens, same pixels, same vectors, or no ONNX path for this model."""
    ours = candidate._tokenizer()(PROBE_TEXTS)
    theirs = reference.tokenizer(PROBE_TEXTS).numpy()
    if not np.array_equal(ours, theirs):
        raise Unsupported("tokenizer output differs from open_clip's")
    rng = np.random.default_rng(0)
    pictures = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for w, h in ((640, 480), (300, 500), (reference.image_size,) * 2, (97, 61))
    ]
    for picture in pictures:
        diff = np.abs(candidate.preprocess(picture) - reference.preprocess(picture).numpy()).max()
        if diff > 1e-4:
            raise Unsupported(f"preprocessing differs from open_clip's by {diff:.2g}")
    pixels = [reference.preprocess(p) for p in pictures]
    pairs = [
        (candidate.embed_texts(PROBE_TEXTS), reference.embed_texts(PROBE_TEXTS)),
        (candidate.embed_images([p.numpy() for p in pixels]), reference.embed_images(pixels)),
    ]
    for got, want in pairs:
        worst = _worst(got, want)
        if worst < MIN_COSINE:
            raise Unsupported(f"ONNX Runtime disagrees with torch (cosine {worst:.5f})")
