"""One-time export of an open_clip model to the ONNX folder `clip_onnx` runs, proven first.

Runs where torch is installed, the first time a model is used on the ONNX runtime. Nothing is
kept unless ONNX Runtime reproduces torch's vectors (cosine >= 0.9999) and our tokenizer and
preprocessing reproduce open_clip's exactly; otherwise the reason is kept and torch is used.
Then each tower gets the fastest int8 variant that ranks as fp32 ranks, if one does.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.core.config import Settings, cache_root
from mmsearch.core.errors import one_line
from mmsearch.core.private import private_cache, private_folder, private_umask
from mmsearch.model.clip_onnx import (
    TEXTUAL,
    VISUAL,
    VOCAB,
    OnnxEmbedder,
    int8_name,
    open_session,
    trimmed,
)
from mmsearch.model.onnx_meta import META, read_meta

UNSUPPORTED = "unsupported.txt"
MIN_COSINE = 0.9999  # fp32 ONNX against torch: the same computation
INT8_MIN_COSINE = 0.995  # an int8 tower's vectors against fp32's, on the probe corpus
INT8_MIN_RECALL = 0.95  # recall@10 of its rankings against fp32's, on the probe corpus
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
    """Export the model's towers to `folder` (in the cache: private, as all of it is)."""
    if folder.is_relative_to(cache_root()):
        private_cache()
    with private_umask():
        _export(settings, folder)


def _export(settings: Settings, folder: Path) -> None:
    marker = folder / UNSUPPORTED
    if marker.exists():
        raise Unsupported(marker.read_text().strip())
    from mmsearch.model.clip_torch import load_torch

    torch_model = load_torch(settings.model, settings.pretrained, device="cpu")
    print(f"preparing {settings.model} for ONNX Runtime (once)…", file=sys.stderr)
    private_folder(folder.parent)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".export-") as tmp:
        work = Path(tmp)
        try:
            _write(torch_model, work)
            _settle_trim(work)
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
        work.rename(folder)  # whole or absent: a killed export leaves only a temp folder
    exported = OnnxEmbedder.open(folder, int8=True)
    for name in (VISUAL, TEXTUAL):  # optimised once now, not on the first query
        open_session(folder / exported.tower_file(name))


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

    class Attention(torch.nn.Module):
        """A text block's self-attention as nn.MultiheadAttention computes it, with the
        token count left to the graph: the exporter's trace of nn.MultiheadAttention fixes
        it at the context length."""

        def __init__(self, mha: torch.nn.MultiheadAttention):
            super().__init__()
            self.mha = mha

        def forward(self, q: Any, k: Any, v: Any, need_weights: bool, attn_mask: Any) -> Any:
            mha, batch = self.mha, q.shape[0]
            heads, width = mha.num_heads, mha.embed_dim
            qkv = torch.nn.functional.linear(q, mha.in_proj_weight, mha.in_proj_bias)
            qkv = qkv.reshape(batch, -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            scores = (qkv[0] * (width // heads) ** -0.5) @ qkv[1].transpose(-2, -1)
            attended = (scores + attn_mask).softmax(-1) @ qkv[2]
            return mha.out_proj(attended.transpose(1, 2).reshape(batch, -1, width)), None

    class EncodeText(torch.nn.Module):
        """CLIP's text tower for any number of tokens up to the context, where the model is
        causal: the positional embedding and the mask are cut to the tokens given, so a
        query runs its own few tokens instead of all 77 (`_settle_trim` proves the outputs
        equal). Other text towers run as open_clip runs them, on the whole context."""

        def __init__(self, model: Any):
            super().__init__()
            self.model = model
            blocks = getattr(getattr(model, "transformer", None), "resblocks", [])
            self.trims = (
                isinstance(model, open_clip.CLIP)
                and model.attn_mask is not None
                and all(
                    type(b) is open_clip.transformer.ResidualAttentionBlock
                    and type(b.attn) is torch.nn.MultiheadAttention
                    and b.attn.batch_first
                    and b.attn._qkv_same_embed_dim
                    and b.attn.bias_k is None
                    and not b.attn.add_zero_attn
                    for b in blocks
                )
            )

        @contextlib.contextmanager
        def exporting(self) -> Iterator[None]:
            """The blocks' attention swapped for `Attention` while the graph is traced."""
            blocks = self.model.transformer.resblocks if self.trims else []
            originals = [b.attn for b in blocks]
            try:
                for block in blocks:
                    block.attn = Attention(block.attn)
                yield
            finally:
                for block, attn in zip(blocks, originals, strict=True):
                    block.attn = attn

        def forward(self, tokens: Any) -> Any:
            m = self.model
            if not self.trims:
                return m.encode_text(tokens)
            n = tokens.shape[1]
            x = m.token_embedding(tokens) + m.positional_embedding[:n]
            x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
            eos = getattr(m, "text_eos_id", None)
            x = open_clip.transformer.text_global_pool(x, tokens, m.text_pool_type, eos)
            projection = m.text_projection
            if projection is None:
                return x
            return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    size, context = embedder.image_size, tokenizer.context_length
    text = EncodeText(embedder.model)
    towers = [
        (embedder.model.visual, torch.randn(2, 3, size, size), VISUAL, {0: "batch"}),
        (text, torch.randint(1, 49407, (2, context)), TEXTUAL, {0: "batch", 1: "tokens"}),
    ]
    torch.backends.mha.set_fastpath_enabled(False)  # export plain attention math
    try:
        for module, example, name, axes in towers:
            swapped = text.exporting() if module is text else contextlib.nullcontext()
            with torch.no_grad(), warnings.catch_warnings(), swapped:
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module.eval(), (example,), str(out / name),
                    input_names=["input"], output_names=["output"],
                    dynamic_axes={"input": axes, "output": {0: "batch"}},
                    opset_version=18, dynamo=False,
                )  # fmt: skip
            _weights_apart(out / name)
    except Exception as e:
        raise Unsupported(f"export failed: {type(e).__name__}: {e}") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    shutil.copyfile(Path(open_clip.__file__).parent / VOCAB, out / VOCAB)
    meta = {
        "dim": embedder.dim,
        "image_size": size,
        "mean": list(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": list(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "resize_mode": cfg.get("resize_mode", "shortest"),
        "context_length": tokenizer.context_length,
        "trim_tokens": text.trims,
        "clean": clean,
        "exported_with": {"torch": torch.__version__, "open_clip": open_clip.__version__},
    }
    (out / META).write_text(json.dumps(meta, indent=1))


def _quantize(folder: Path) -> None:
    """For each tower, the fastest int8 variant whose vectors and rankings stay with fp32's on
    the probe corpus (cosine >= INT8_MIN_COSINE, recall@10 >= INT8_MIN_RECALL), written as the
    tower's int8 file; none if no variant passes. meta.json records every variant's figures."""
    full = OnnxEmbedder.open(folder, 1)
    inputs, calibration = probe_inputs(full)
    meta = read_meta(folder)
    trim = {VISUAL: False, TEXTUAL: bool(meta.get("trim_tokens"))}  # as queries will run
    reference = {
        VISUAL: _normalised_rows(_run(folder / VISUAL, inputs[VISUAL])),
        TEXTUAL: _normalised_rows(_run(folder / TEXTUAL, inputs[TEXTUAL], trim[TEXTUAL])),
    }
    meta["int8"], meta["int8_variant"], meta["int8_variants"] = {}, {}, {}
    meta["int8_min_cosine"] = {}
    for name in (VISUAL, TEXTUAL):
        figures: dict[str, dict[str, float]] = {
            "fp32": {"seconds": _seconds(folder / name, inputs[name], trim[name])}
        }
        for variant in INT8_VARIANTS:
            target = folder / name.replace(".onnx", f".{variant}.onnx")
            try:
                _write_variant(variant, folder / name, target, calibration[name])
            except Exception as e:  # an operator this variant cannot handle: not a candidate
                figures[variant] = {"error": one_line(e)}  # type: ignore[dict-item]
                continue
            vectors = _normalised_rows(_run(target, inputs[name], trim[name]))
            figures[variant] = {
                "cosine": round(_worst(reference[name], vectors), 6),
                "recall_at_10": round(_tower_recall(name, vectors, reference), 4),
                "seconds": _seconds(target, inputs[name], trim[name]),
            }
        passing = [
            v for v in INT8_VARIANTS
            if figures[v].get("cosine", 0) >= INT8_MIN_COSINE
            and figures[v].get("recall_at_10", 0) >= INT8_MIN_RECALL
        ]  # fmt: skip
        chosen = min(passing, key=lambda v: figures[v]["seconds"], default=None)
        for variant in INT8_VARIANTS:
            for path in list(folder.glob(name.replace(".onnx", f".{variant}.onnx*"))):
                if variant == chosen:
                    path.rename(folder / path.name.replace(f".{variant}.onnx", ".int8.onnx"))
                else:
                    path.unlink()
        if chosen is not None:
            _weights_apart(folder / int8_name(name))  # the text tower then loads in 0.13 s
        meta["int8"][name] = chosen is not None
        meta["int8_variant"][name] = chosen
        best = figures[chosen] if chosen else max(
            (figures[v] for v in INT8_VARIANTS if "cosine" in figures[v]),
            key=lambda f: f["cosine"], default={"cosine": 0.0},
        )  # fmt: skip
        meta["int8_min_cosine"][name] = best["cosine"]
        meta["int8_variants"][name] = figures
    (folder / META).write_text(json.dumps(meta, indent=1))


INT8_VARIANTS = ("dynamic", "weight-only", "static")


def _write_variant(variant: str, source: Path, target: Path, calibration: np.ndarray) -> None:
    """dynamic: int8 weights, activations quantized per batch (VNNI / dot-product kernels);
    weight-only: int8 weights in blocks of 32, dequantized to fp32 for the product;
    static: int8 weights and activations, activation ranges calibrated on the probe corpus
    (QDQ format, per-channel weights)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if variant == "dynamic":
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )  # fmt: skip
    elif variant == "weight-only":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=8)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    else:

        class Batches(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 8)))

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self.batches, None)
                return None if batch is None else {"input": batch}

        quantize_static(
            str(source), str(target), Batches(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip


def probe_corpus(embedder: OnnxEmbedder) -> tuple[list[np.ndarray], list[str]]:
    """What the int8 gate ranks: the probe pictures, then sentences. Static quantization is
    calibrated on the photos and sentences only, so the drawn pictures and odd texts show
    whether its activation ranges hold beyond what it saw. Small on purpose: the gate runs
    on every user's first use."""
    return [embedder.preprocess(p) for p in probe_pictures()], [*PROBE_TEXTS, *SENTENCES]


def probe_pictures() -> list[Image.Image]:
    """The shipped photos, whole and as five crops each, then GRAPHICS drawn pictures (pages
    of text, flat shapes, a gradient, bars, stripes): pictures unlike each other, the same
    everywhere (a query's calibration pads a small library with them too)."""
    pictures = []
    for path in sorted(PROBES.glob("*.jpg")):
        photo = Image.open(path).convert("RGB")
        w, h = photo.size
        pictures.append(photo)
        for box in ((0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h),
                    (w // 2, h // 2, w, h), (w // 4, h // 4, 3 * w // 4, 3 * h // 4)):  # fmt: skip
            pictures.append(photo.crop(box))
    return pictures + _graphics()


def probe_inputs(embedder: OnnxEmbedder) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each tower's input batch for the probe corpus, and the part static quantization is
    calibrated on (the photos; the sentences)."""
    images, texts = probe_corpus(embedder)
    inputs = {VISUAL: np.stack(images), TEXTUAL: embedder._tokenizer()(texts)}
    calibration = {VISUAL: inputs[VISUAL][:-GRAPHICS], TEXTUAL: inputs[TEXTUAL][-len(SENTENCES) :]}
    return inputs, calibration


GRAPHICS = 8  # drawn pictures at the end of the probe corpus


def _graphics() -> list[Image.Image]:
    """Pictures unlike photos, drawn the same way everywhere: documents, screenshots, flat
    colour."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    drawn = []
    for ink, paper in (("black", "white"), ((200, 255, 200), (20, 20, 30))):
        page = Image.new("RGB", (256, 320), paper)
        draw = ImageDraw.Draw(page)
        for line, text in enumerate(SENTENCES[:12]):
            draw.text((12, 12 + 24 * line), text, fill=ink, font=font)
        drawn.append(page)
    for shape, colour, paper in ((0, "red", "white"), (4, "blue", "yellow"), (3, "green", "gray")):
        picture = Image.new("RGB", (256, 256), paper)
        draw = ImageDraw.Draw(picture)
        if shape:
            draw.regular_polygon((128, 128, 90), shape, fill=colour)
        else:
            draw.ellipse((40, 40, 216, 216), fill=colour)
        drawn.append(picture)
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    drawn.append(Image.fromarray(np.stack([np.tile(ramp, (256, 1))] * 3, axis=-1)))
    bars = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192)]
    drawn.append(Image.fromarray(np.repeat(np.array([bars], np.uint8), 256, axis=0).repeat(51, 1)))
    cells = (np.indices((256, 256)).sum(axis=0) // 32 % 2 * 255).astype(np.uint8)
    drawn.append(Image.fromarray(cells).convert("RGB"))
    return drawn


def recall_at(k: int, reference: np.ndarray, candidate: np.ndarray, same: bool = False) -> float:
    """Mean share of each query's top k under the reference scores that the candidate's
    scores also put in its top k (rows: queries; `same`: a query is never its own answer)."""
    if same:
        reference, candidate = reference.copy(), candidate.copy()
        np.fill_diagonal(reference, -np.inf)
        np.fill_diagonal(candidate, -np.inf)
    k = min(k, reference.shape[1] - (1 if same else 0))
    want = np.argsort(-reference, axis=1)[:, :k]
    got = np.argsort(-candidate, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(want, got, strict=True)]))


def _tower_recall(name: str, vectors: np.ndarray, reference: dict[str, np.ndarray]) -> float:
    """Ranking agreement with this tower in int8 and the other in fp32: text → image for
    either tower, and image → image for the image tower; the worse counts."""
    texts, images = reference[TEXTUAL], reference[VISUAL]
    if name == TEXTUAL:
        return recall_at(10, texts @ images.T, vectors @ images.T)
    return min(
        recall_at(10, texts @ images.T, texts @ vectors.T),
        recall_at(10, images @ images.T, vectors @ vectors.T, same=True),
    )


def _session(path: Path, threads: int | None = 1) -> Any:
    import onnxruntime as ort

    from mmsearch.model.clip_onnx import session_options

    options = session_options(threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, batch: np.ndarray, trim: bool = False) -> np.ndarray:
    """The tower's outputs on every core; `trim`: token rows one at a time, each cut to its
    own tokens, as queries run (int8 activation ranges are taken per run)."""
    session = _session(path, threads=None)
    return np.concatenate([session.run(None, {"input": x})[0] for x in _inputs(batch, trim)])


def _seconds(path: Path, batch: np.ndarray, trim: bool = False) -> float:
    """The best of three runs over 8 inputs on one thread: enough to rank the variants."""
    import time

    session, best = _session(path), float("inf")
    runs = _inputs(batch[:8], trim)
    for _ in range(3):
        start = time.perf_counter()
        for inputs in runs:
            session.run(None, {"input": inputs})
        best = min(best, time.perf_counter() - start)
    return round(best, 5)


def _inputs(batch: np.ndarray, trim: bool) -> list[np.ndarray]:
    """The batch whole, or (`trim`) its rows one by one, each cut to its own tokens."""
    return [trimmed(row[None]) for row in batch] if trim else [batch]


def _settle_trim(folder: Path) -> None:
    """Keep `trim_tokens` only if the text tower gives each probe text the same vector from
    its own tokens as from the whole context; otherwise queries run the whole context."""
    meta = read_meta(folder)
    if not meta["trim_tokens"]:
        return
    tokens = OnnxEmbedder.open(folder)._tokenizer()([*PROBE_TEXTS, *SENTENCES])
    try:
        whole = _normalised_rows(_run(folder / TEXTUAL, tokens))
        same = _worst(_normalised_rows(_run(folder / TEXTUAL, tokens, trim=True)), whole)
    except Exception:  # a graph that cannot take fewer tokens
        same = 0.0
    if same < MIN_COSINE:
        meta["trim_tokens"] = False
        (folder / META).write_text(json.dumps(meta, indent=1))


def _normalised_rows(features: np.ndarray) -> np.ndarray:
    features = features.astype(np.float32, copy=False)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


SENTENCES = [
    "a dog running on the beach at sunset",
    "screenshot of a spreadsheet with quarterly numbers",
    "two children building a snowman in the garden",
    "the invoice is due at the end of the month",
    "an astronaut in a white space suit",
    "a cup of coffee on a saucer",
    "a ginger cat lying on a sofa",
    "a rocket on the launch pad",
    "stars and galaxies in deep space",
    "cells under a microscope, stained brown and blue",
    "a red car parked at night",
    "a mountain lake in autumn",
    "a birthday cake with candles",
    "a crowded train station",
    "a hand-written note on yellow paper",
    "a black and white portrait",
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
