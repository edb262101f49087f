"""Checks of a model choice that need no torch: an unknown model name, a missing checkpoint
or `local-dir:` folder, an unknown tag, weights that are not cached while offline. Each is
one line in well under a second, where loading open_clip first took up to a minute.

open_clip's own lists are read from its package folder without importing it: the model
configs are JSON files in `model_configs/`, and the pretrained tags are the literal table
in `pretrained.py` (read with `ast`, never run). A model or tag registered at run time
(`open_clip.add_model_config`) is known once open_clip is imported, so then open_clip is asked.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.core.config import Settings
from mmsearch.core.errors import ModelUnavailable

if TYPE_CHECKING:
    import ast

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
HF_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
FIX = (
    "connect to the internet once so they are cached, or pass --pretrained /path/to/checkpoint "
    "(or --model local-dir:/path/to/model)"
)


def check_given(settings: Settings) -> None:
    """What can be told from the names the caller gave alone, before the store is read for
    the rest: an unknown model, a missing `local-dir:` folder or checkpoint file."""
    if settings.model:
        check(replace(settings, pretrained=None), weights_needed=False)
    given = settings.pretrained
    if given and _looks_like_a_path(given) and not os.path.isfile(given):
        _missing_checkpoint(given)


def _missing_checkpoint(path: str) -> None:
    raise ModelUnavailable(
        f"checkpoint not found: {path} (pass --pretrained with an existing file, or a tag "
        "such as datacomp_s34b_b86k)"
    )


def check(settings: Settings, *, weights_needed: bool = True) -> None:
    """Raise ModelUnavailable now for a model choice that cannot load. `weights_needed`:
    False when the model's exported towers exist already (no weights are read then)."""
    model, pretrained = settings.model, settings.pretrained
    if model.split(":", 1)[0] in _registered_schemes():
        return
    if model.startswith("local-dir:"):
        folder = Path(model.removeprefix("local-dir:")).expanduser()
        if not folder.is_dir():
            raise ModelUnavailable(f"{model}: no such folder (a folder with open_clip_config.json)")
        if not (folder / "open_clip_config.json").is_file():
            raise ModelUnavailable(f"{model}: the folder has no open_clip_config.json")
        return
    if model.startswith("hf-hub:"):
        return
    known = None if _bundled(model) else known_models()
    if known is not None and model not in known:
        import difflib

        close = difflib.get_close_matches(model, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see open_clip's list_models()"
        raise ModelUnavailable(
            f"unknown model {model!r}: {hint} (or use hf-hub:ORG/REPO or local-dir:PATH)"
        )
    if not pretrained:
        if weights_needed:
            tags = ", ".join(pretrained_tags(model) or {}) or "none known"
            raise ModelUnavailable(
                f"model {model!r} needs weights: pass --pretrained TAG (tags: {tags}) or a "
                "checkpoint file"
            )
        return
    if os.path.isfile(pretrained):
        return
    if _looks_like_a_path(pretrained):
        _missing_checkpoint(pretrained)
    tags = pretrained_tags(model)
    if tags is None:
        return
    if pretrained not in tags:
        raise ModelUnavailable(
            f"{pretrained!r} is neither a checkpoint file nor a known tag of {model} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    if not weights_needed or _cached(tags[pretrained]):
        return
    if _offline():
        raise ModelUnavailable(
            f"weights for {model} ({pretrained}) are not in the Hugging Face cache and "
            f"HF_HUB_OFFLINE is set: {_fix(tags[pretrained])}"
        )
    if tags[pretrained] and (why := _unreachable(_endpoint())):
        raise ModelUnavailable(
            f"weights for {model} ({pretrained}) are not cached and {_endpoint()} cannot be "
            f"reached ({why}): {_fix(tags[pretrained])}"
        )


def _fix(hub: str) -> str:
    """What to do without the hub, naming the file to fetch on another machine (the repo
    and file of an `hf_hub` entry); the general advice for weights from elsewhere."""
    repo, filename = os.path.split(hub)
    if not repo:
        return FIX
    name = filename or HF_WEIGHT_NAMES[0]
    return (
        f"connect to the internet once so they are cached, or fetch {name} from "
        f"{_endpoint()}/{repo} and pass --pretrained /path/to/{name} "
        "(or --model local-dir:/path/to/model)"
    )


def _registered_schemes() -> set[str]:
    from mmsearch.model.embed import _factories

    return set(_factories)


def _looks_like_a_path(value: str) -> bool:
    return (
        os.sep in value
        or value.startswith(("~", "."))
        or value.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _unreachable(url: str) -> str | None:
    """Why the hub cannot be reached (one connection attempt, 3 s at most), or None. Behind
    a proxy a direct probe proves nothing: the download is left to try."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=3).close()
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


@functools.cache
def _package() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled(model: str) -> bool:
    """Whether open_clip ships a config for `model`: one file's presence, not a listing."""
    package = _package()
    if package is None or "/" in model or os.sep in model or "open_clip" in sys.modules:
        return False
    return (package / "model_configs" / f"{model}.json").is_file()


def known_models() -> list[str] | None:
    """open_clip's model names; None when they cannot be told (then open_clip decides)."""
    if "open_clip" in sys.modules:  # imported: it knows configs registered at run time
        return list(sys.modules["open_clip"].list_models())
    package = _package()
    if package is None or not (package / "model_configs").is_dir():
        return None
    return sorted(p.stem for p in (package / "model_configs").glob("*.json"))


def pretrained_tags(model: str) -> dict[str, str] | None:
    """Tag → Hugging Face repo ('' when the weights come from a URL) of `model`; None when
    they cannot be told without importing open_clip."""
    if "open_clip" in sys.modules:
        oc = sys.modules["open_clip"]
        tags = oc.list_pretrained_tags_by_model(model)
        return {t: (oc.get_pretrained_cfg(model, t) or {}).get("hf_hub", "") for t in tags}
    table = _pretrained_table()
    return None if table is None else table.get(model, {})


@functools.cache
def _pretrained_table() -> dict[str, dict[str, str]] | None:
    """open_clip's `_PRETRAINED` table, read from its source as data: each model's tags and
    their hf_hub repos, with the `-quickgelu` twins open_clip adds at import. None if its
    shape is not the one known here."""
    package = _package()
    try:
        import ast

        tree = ast.parse((package / "pretrained.py").read_text()) if package else None
    except (OSError, SyntaxError, ValueError):
        return None
    if tree is None:
        return None
    groups: dict[str, dict[str, ast.expr]] = {}
    calls: dict[str, dict[str, ast.expr]] | None = None  # model -> tag -> its `_pcfg(...)` call
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        value = node.value
        if (tags := _tags_of(value)) is not None:
            groups[target.id] = tags
        elif target.id == "_PRETRAINED" and isinstance(value, ast.Dict):
            calls = {}
            for k, v in zip(value.keys, value.values, strict=True):
                if not isinstance(k, ast.Constant):
                    continue
                if isinstance(v, ast.Name) and v.id in groups:  # `"RN50": _RN50,`
                    calls[str(k.value)] = groups[v.id]
                elif (tags := _tags_of(v)) is not None:  # `"ViT-B-16-SigLIP": dict(...),`
                    calls[str(k.value)] = tags
    if not calls:
        return None
    table = {
        m: {t: str(_keyword(c, "hf_hub") or "") for t, c in tags.items()}
        for m, tags in calls.items()
    }
    for model, tags in calls.items():  # open_clip's loop after the table, as data
        quick = {t: table[model][t] for t, c in tags.items() if _keyword(c, "quick_gelu") is True}
        if quick:
            table[f"{model}-quickgelu"] = quick
    return table


def _tags_of(value: ast.expr) -> dict[str, ast.expr] | None:
    """A `dict(tag=_pcfg(...), ...)` call's tags and their calls; None for anything else."""
    import ast

    if not (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "dict"):
        return None
    return {kw.arg: kw.value for kw in value.keywords if kw.arg is not None}


def _keyword(call: ast.expr, name: str) -> object:
    """The constant a `_pcfg(...)` call gives its keyword `name`, else None."""
    import ast

    if isinstance(call, ast.Call):
        for kw in call.keywords:
            if kw.arg == name and isinstance(kw.value, ast.Constant):
                return kw.value.value
    return None


def _cached(hub: str) -> bool:
    """Whether the weights of an hf_hub entry lie in the Hugging Face cache. Weights that
    come from a URL instead cannot be told here: assumed present (open_clip says)."""
    if not hub:
        return True
    from huggingface_hub import try_to_load_from_cache

    repo, filename = os.path.split(hub)
    names = (*HF_WEIGHT_NAMES, filename) if filename else HF_WEIGHT_NAMES
    return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)
