"""open_clip through torch: the reference path, the GPU path, and what the ONNX export reads.

Loading is offline-aware: cached weights load with no network, missing ones fail in a second."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from mmsearch.core.errors import ModelUnavailable, one_line

_HF_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def pick_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class ClipEmbedder:
    """One loaded open_clip model; thread-safe for `preprocess`, single caller for the rest."""

    model: Any
    transform: Any
    tokenizer: Any
    device: str
    dim: int
    image_size: int
    precision: str = "fp32"  # or "bf16" / "fp16": autocast, checked against fp32 by the bench

    def preprocess(self, image: Any) -> torch.Tensor:
        return self.transform(image)

    @torch.inference_mode()
    def embed_images(self, pixels: list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack(pixels)
        if self.device == "cuda":  # page-locked memory lets the copy overlap the last batch
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with self._autocast():
            return _normalised(self.model.encode_image(batch.to(self.device)))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with self._autocast():
            return _normalised(self.model.encode_text(tokens))

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device, dtype=dtype)


def _normalised(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)


def load_torch(
    model_name: str, pretrained: str | None, device: str | None = None, precision: str = "fp32"
) -> ClipEmbedder:
    device = device or pick_device()
    kwargs: dict[str, Any] = {}
    if model_name.startswith("hf-hub:"):
        _require_download(model_name, model_name.removeprefix("hf-hub:"), "open_clip_config.json")
    elif not model_name.startswith("local-dir:"):
        if model_name not in open_clip.list_models():
            raise ModelUnavailable(
                f"unknown model {model_name!r}: see `python -c 'import open_clip; "
                "print(open_clip.list_models())'`, or use hf-hub:ORG/REPO or local-dir:PATH"
            )
        if not pretrained:
            raise ModelUnavailable(
                f"model {model_name!r} needs weights: pass --pretrained TAG or a checkpoint file"
            )
        pretrained, kwargs = _resolve_pretrained(model_name, pretrained)
    try:
        model, _, transform = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device, **kwargs
        )
        tokenizer = open_clip.get_tokenizer(model_name)
    except ModelUnavailable:
        raise
    except Exception as e:
        raise ModelUnavailable(_missing_weights_hint(model_name, pretrained, e)) from None
    model.eval()
    size = model.visual.image_size
    image_size = size[0] if isinstance(size, tuple | list) else int(size)
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["probe"]).to(device)).shape[-1])
    return ClipEmbedder(model, transform, tokenizer, device, dim, image_size, precision)


def _resolve_pretrained(model_name: str, pretrained: str) -> tuple[str, dict[str, Any]]:
    """Turn a tag whose weights are already in the Hugging Face cache into that file, so a
    cached model loads with no network round trip; pass files and uncached tags through."""
    if os.path.isfile(pretrained):
        return pretrained, {}
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise ModelUnavailable(
            f"{pretrained!r} is neither a checkpoint file nor a known tag of {model_name} "
            f"(tags: {tags})"
        )
    hub = cfg.get("hf_hub", "")
    what = f"{model_name} ({pretrained})"
    if not hub:
        _require_reachable(what, cfg.get("url", ""))
        return pretrained, {}
    from huggingface_hub import try_to_load_from_cache

    repo, filename = os.path.split(hub)
    for name in (*_HF_WEIGHT_NAMES, filename) if filename else _HF_WEIGHT_NAMES:
        cached = try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            preprocess = {
                "image_mean": cfg.get("mean"),
                "image_std": cfg.get("std"),
                "image_interpolation": cfg.get("interpolation"),
                "image_resize_mode": cfg.get("resize_mode"),
            }
            return cached, {k: v for k, v in preprocess.items() if v is not None}
    _require_download(what, repo, None)
    return pretrained, {}


def _require_download(what: str, repo: str, filename: str | None) -> None:
    """Fail in a second, not after a minute of retries, when weights must be downloaded
    and cannot be: the hub is switched off or unreachable."""
    from huggingface_hub import constants, try_to_load_from_cache

    if filename and isinstance(try_to_load_from_cache(repo, filename), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailable(
            f"weights for {what} are not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"{_FIX}"
        )
    _require_reachable(what, constants.ENDPOINT)


def _require_reachable(what: str, url: str) -> None:
    if not url or any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return  # behind a proxy a direct probe proves nothing: let the download try
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        raise ModelUnavailable(
            f"weights for {what} are not cached and {host} cannot be reached "
            f"({e.strerror or e}): {_FIX}"
        ) from None


_FIX = (
    "connect to the internet once so they are cached, or pass --pretrained /path/to/checkpoint "
    "(or --model local-dir:/path/to/model)"
)


def _missing_weights_hint(model_name: str, pretrained: str | None, error: Exception) -> str:
    what = f"{model_name} ({pretrained})" if pretrained else model_name
    return f"cannot load model {what}: {one_line(error)[:160]}; {_FIX}"
