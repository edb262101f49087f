"""Which runtime embeds: ONNX Runtime on CPUs (exported once per model), torch on GPUs or
when asked; both give unit-length vectors in the model's one shared space."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mmsearch.core.config import Settings, cache_root
from mmsearch.core.errors import ModelUnavailable, UsageError, one_line
from mmsearch.model.onnx_meta import META

if TYPE_CHECKING:
    import numpy as np

RUNTIMES = ("auto", "onnx", "torch")
PRECISIONS = ("auto", "fp32", "int8", "bf16", "fp16")


class Embedder(Protocol):
    """What indexing and queries need of a model: unit-length vectors in one shared space."""

    dim: int
    image_size: int  # pictures are handed to `preprocess` at least this large

    def preprocess(self, image: Any) -> Any: ...
    def embed_images(self, pixels: list[Any]) -> np.ndarray: ...
    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


_cache: dict[tuple[str, str | None, str, str], Embedder] = {}
_cache_lock = threading.Lock()
_factories: dict[str, Callable[[str], Embedder]] = {}


def register_embedder(scheme: str, factory: Callable[[str], Embedder]) -> None:
    """Make `--model SCHEME:...` load `factory(model_name)` instead of an open_clip model:
    for plugins, and for tests that need embeddings whose geometry they control."""
    _factories[scheme] = factory


def load_embedder(settings: Settings) -> Embedder:
    """Load (once per process) the model named by `settings`, or say plainly how to get it."""
    settings = settings.concrete()
    key = (settings.model, settings.pretrained, settings.runtime, settings.precision)
    with _cache_lock:
        if key not in _cache:
            scheme = settings.model.split(":", 1)[0]
            if scheme in _factories:
                _cache[key] = _factories[scheme](settings.model)
            else:
                _cache[key] = _load(settings)
        return _cache[key]


def has_gpu() -> bool:
    """A CUDA device, judged without importing torch (which costs seconds)."""
    return sys.platform == "linux" and Path("/dev/nvidiactl").exists()


def choose_runtime(settings: Settings) -> tuple[str, str]:
    """(runtime, precision) for this machine. On CPUs: ONNX Runtime with the int8 towers
    the export proved (cosine >= 0.995 to fp32), ~3x faster than fp32 here; bf16 autocast
    only when asked, since it was slower than fp32 on the AVX512-BF16 CPU measured."""
    runtime, precision = settings.runtime, settings.precision
    if runtime not in RUNTIMES or precision not in PRECISIONS:
        raise UsageError(
            f"runtime must be one of {', '.join(RUNTIMES)} and precision one of "
            f"{', '.join(PRECISIONS)}"
        )
    if runtime == "auto":
        wants_torch = has_gpu() or precision in ("bf16", "fp16")
        onnx_ok = importlib.util.find_spec("onnxruntime") is not None
        runtime = "torch" if wants_torch or not onnx_ok else "onnx"
    if runtime == "onnx" and precision not in ("auto", "fp32", "int8"):
        raise UsageError(f"--precision {precision} needs --runtime torch")
    if runtime == "torch" and precision == "int8":
        raise UsageError("--precision int8 needs --runtime onnx")
    if precision == "auto":
        precision = "int8" if runtime == "onnx" else "fp16" if has_gpu() else "fp32"
    return runtime, precision


def onnx_folder(settings: Settings) -> Path:
    return cache_root() / "onnx" / settings.model_key


def needs_export(settings: Settings) -> bool:
    """Whether loading the model will first make its one-time ONNX export."""
    settings = settings.concrete()
    if settings.model.split(":", 1)[0] in _factories:
        return False
    return choose_runtime(settings)[0] == "onnx" and not exported(settings)


def exported(settings: Settings) -> bool:
    """Whether the model will run from its ONNX export already made: no weights are read."""
    if settings.runtime == "torch" or has_gpu():
        return False
    return (onnx_folder(settings) / META).exists()


def _load(settings: Settings) -> Embedder:
    runtime, precision = choose_runtime(settings)
    if runtime == "onnx":
        from mmsearch.model.clip_onnx import OnnxEmbedder

        folder = onnx_folder(settings)
        try:
            if not (folder / META).exists():
                from mmsearch.model.onnx_export import export

                export(settings, folder)
            return OnnxEmbedder.open(folder, _threads(), int8=precision == "int8")
        except (OSError, ValueError) as e:  # Unsupported, or a cache we cannot use
            if settings.runtime == "onnx":
                raise ModelUnavailable(
                    f"cannot run {settings.model} on ONNX Runtime: {one_line(e)}"
                ) from None
            return _load_torch(settings, "fp32")
    return _load_torch(settings, precision)


def _load_torch(settings: Settings, precision: str) -> Embedder:
    from mmsearch.model.clip_torch import load_torch

    return load_torch(settings.model, settings.pretrained, precision=precision)


def _threads() -> int | None:
    value = os.environ.get("MMSEARCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
