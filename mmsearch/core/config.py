"""Where the store lives and which model embeds: resolved without importing torch or lancedb."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmsearch.core.errors import ModelUnavailable, UsageError
from mmsearch.core.private import cache_root, private_cache, write_private

DEFAULT_MODEL = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"


def default_min_score() -> float | None:
    """MMSEARCH_MIN_SCORE: the minimum score of a calibrated search when `--min-score` is not
    given (None: the calibrated scale's own, 0.5); 0 shows the closest results always."""
    value = os.environ.get("MMSEARCH_MIN_SCORE", "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise UsageError(f"MMSEARCH_MIN_SCORE must be a number, not {value!r}")
    return number


def default_db() -> str:
    from platformdirs import user_data_path

    return str(user_data_path("mmsearch") / "db")


UNSET = ""  # a model or weights not named: the store's own, else the default


@dataclass(frozen=True)
class Settings:
    """Everything a library call needs to find the store and the model.

    `model` and `pretrained` left empty mean "the model the store was built with" (the
    library fills them in from the store, `with_remembered`); used without a store they mean
    the default model and weights."""

    db: str = ""
    model: str = UNSET
    pretrained: str | None = UNSET
    runtime: str = field(default_factory=lambda: os.environ.get("MMSEARCH_RUNTIME", "auto"))
    precision: str = field(default_factory=lambda: os.environ.get("MMSEARCH_PRECISION", "auto"))

    def __post_init__(self) -> None:
        if not self.db:
            object.__setattr__(self, "db", default_db())
        elif is_local_uri(self.db):
            object.__setattr__(self, "db", str(Path(self.db).expanduser().absolute()))
        if self.model.startswith(("hf-hub:", "local-dir:")):
            # open_clip ignores `pretrained` for these: the weights come with the model.
            object.__setattr__(self, "pretrained", None)

    @property
    def chosen(self) -> bool:
        """Whether both the model and its weights are named (by the caller or the store)."""
        return self.model != UNSET and self.pretrained != UNSET

    def with_remembered(self, remembered: list[dict[str, Any]]) -> Settings:
        """The model and weights to use with a store that remembers `remembered` (its
        registry's rows): what the caller named, completed from the most recently indexed
        matching model, else from the defaults. Raises ModelUnavailable when the remembered
        weights are a checkpoint that moved or changed."""
        if self.chosen:
            return self
        rows = sorted(remembered, key=lambda r: r.get("updated") or 0, reverse=True)
        if self.model != UNSET:
            names = (self.model, self._model_id_of(self.model))
            rows = [r for r in rows if r["model"] in names or _row_model(r) in names]
        elif self.pretrained != UNSET:
            rows = [r for r in rows if _same_weights(r, self.pretrained)]
        if not rows:
            model = self.model or DEFAULT_MODEL
            pretrained = self.pretrained
            if pretrained == UNSET:
                pretrained = DEFAULT_PRETRAINED if model == DEFAULT_MODEL else None
            return replace(self, model=model, pretrained=pretrained)
        row = rows[0]
        if self.pretrained != UNSET:
            pretrained = self.pretrained
        elif row.get("checkpoint") and not row["model"].startswith("local-dir:"):
            pretrained = row["checkpoint"]
        else:
            pretrained = row.get("pretrained") or None
        chosen = replace(self, model=self.model or _row_model(row), pretrained=pretrained)
        if self.pretrained == UNSET:
            _check_remembered(chosen, row)
        return chosen

    def concrete(self) -> Settings:
        """These settings with anything unnamed taken from the defaults."""
        return self if self.chosen else self.with_remembered([])

    @staticmethod
    def _model_id_of(model: str) -> str:
        if model.startswith("local-dir:"):
            folder = Path(model.removeprefix("local-dir:")).expanduser().absolute()
            return f"local-dir:{folder}"
        return model

    @property
    def checkpoint(self) -> str | None:
        """The weights on disk (a `local-dir:` folder or a checkpoint file), absolute; None
        when the weights are named by a pretrained tag or come with an hf-hub model."""
        if not self.chosen:
            return self.concrete().checkpoint
        if self.model.startswith("local-dir:"):
            return str(Path(self.model.removeprefix("local-dir:")).expanduser().absolute())
        if self.pretrained and os.path.isfile(self.pretrained):
            return str(Path(self.pretrained).expanduser().absolute())
        return None

    @property
    def weights(self) -> str:
        """What the weights are: the hash of their whole content when they are on disk (so a
        checkpoint retrained in place is a different model), else the pretrained tag."""
        if not self.chosen:
            return self.concrete().weights
        checkpoint = self.checkpoint
        if checkpoint is not None:
            return "sha256:" + weights_digest(Path(checkpoint))
        return self.pretrained or ""

    @property
    def model_key(self) -> str:
        """Names this model's tables and derived caches (ONNX export, query vectors): vectors
        of different weights never share one. For a pretrained tag it equals the legacy key."""
        if not self.chosen:
            return self.concrete().model_key
        return _key(self.model, self._model_id(), self.weights)

    @property
    def legacy_model_key(self) -> str:
        """The key stores of schema 1 named tables by: a checkpoint's name, size and first
        MiB only. Kept so those tables are still found (and adopted), never to name new ones."""
        if not self.chosen:
            return self.concrete().legacy_model_key
        checkpoint = self.checkpoint
        weights = self.pretrained or ""
        if checkpoint is not None:
            weights = _legacy_fingerprint(Path(checkpoint))
        return _key(self.model, self._model_id(), weights)

    def _model_id(self) -> str:
        return self._model_id_of(self.model)

    def describe(self) -> str:
        """The model and its weights as a person reads them: `ViT-B-32-256 (datacomp_…)`."""
        s = self.concrete()
        return f"{s.model} ({s.pretrained})" if s.pretrained else s.model


def describe_row(row: dict[str, Any]) -> str:
    """A registry row as `model (tag or checkpoint)`."""
    weights = row.get("checkpoint") or row.get("pretrained")
    if row["model"].startswith("local-dir:"):
        weights = None
    return f"{row['model']} ({weights})" if weights else row["model"]


def _row_model(row: dict[str, Any]) -> str:
    """A registry row's model, with a `local-dir:` folder made absolute (from `checkpoint`)."""
    if row["model"].startswith("local-dir:") and row.get("checkpoint"):
        return f"local-dir:{row['checkpoint']}"
    return row["model"]


def _same_weights(row: dict[str, Any], pretrained: str | None) -> bool:
    if not pretrained:
        return not row.get("pretrained") and not row.get("checkpoint")
    if os.path.isfile(pretrained):
        path = Path(pretrained).expanduser().absolute()
        if row.get("checkpoint") == str(path):
            return True
        # The same weights moved: known by their content.
        return bool(row.get("checkpoint")) and row.get("weights") == "sha256:" + weights_digest(
            path
        )
    return row.get("pretrained") == pretrained and not row.get("checkpoint")


def _check_remembered(chosen: Settings, row: dict[str, Any]) -> None:
    """The checkpoint a store was built with must still be there, unchanged: else one line
    that names it and says how to point at it."""
    path = row.get("checkpoint")
    if not path or not row.get("weights"):
        return
    flag = (
        "--model local-dir:PATH (or MMSEARCH_MODEL)"
        if row["model"].startswith("local-dir:")
        else "--pretrained PATH (or MMSEARCH_PRETRAINED)"
    )
    if not os.path.exists(path):
        raise ModelUnavailable(
            f"the index was built with the checkpoint {path}, which is no longer there: "
            f"point {flag} at where it is now"
        )
    if chosen.weights != row["weights"]:
        raise ModelUnavailable(
            f"the checkpoint {path} changed since the index was built with it: point "
            f"{flag} at the original file, or index again with the new one"
        )


def _key(model: str, model_id: str, weights: str) -> str:
    digest = hashlib.sha1(f"{model_id}\0{weights}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", model.rsplit("/", 1)[-1]).strip("-")[:40]
    return f"{readable}-{digest}"


def is_local_uri(uri: str) -> bool:
    return "://" not in uri


def _legacy_fingerprint(path: Path) -> str:
    """Schema 1's identity of a checkpoint file (or folder): name, size and the first MiB.
    Two checkpoints that differ only later shared tables under it: see `weights_digest`."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha1()
    for f in files:
        try:
            with open(f, "rb") as fh:
                h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
                h.update(fh.read(1 << 20))
        except OSError:
            h.update(f.name.encode())
    return h.hexdigest()


# Whole-content hashes of checkpoint files by (absolute path, size, mtime_ns): hashing a
# 600 MB checkpoint takes about a second, and a one-shot query needs the key to find its
# snapshot, so each file is hashed once and remembered here and in `weights.json`. A file
# changed in the last seconds is not remembered: a rewrite within the file system's
# timestamp tick (2 s on FAT) would keep its size and mtime, and so the old hash.
RACY_NS = 3_000_000_000
_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()
DIGEST_CACHE = "weights.json"


def weights_digest(path: Path) -> str:
    """sha256 over a checkpoint file's whole content, or over every file directly inside a
    `local-dir:` folder (names and contents). A file that cannot be read counts by its name
    (as before): loading the model then says what is wrong."""
    if not path.is_dir():
        return _file_digest(path) or hashlib.sha256(path.name.encode()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f"{f.name}\0{_file_digest(f) or ''}\0".encode())
    return h.hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    name = str(path.absolute())
    key = (name, st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    cached = _read_digest_cache().get(name)
    if isinstance(cached, dict) and [cached.get("size"), cached.get("mtime_ns")] == list(key[1:]):
        digest = cached.get("sha256")
        if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest):
            with _digests_lock:
                _digests[key] = digest
            return digest
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None
    if time.time_ns() - st.st_mtime_ns < RACY_NS:
        return digest
    with _digests_lock:
        _digests[key] = digest
    _remember_digest(name, st.st_size, st.st_mtime_ns, digest)
    return digest


def _read_digest_cache() -> dict[str, object]:
    """The cache file's entries; a missing, unreadable or corrupt file is an empty cache."""
    try:
        data = json.loads((cache_root() / DIGEST_CACHE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_digest(name: str, size: int, mtime_ns: int, digest: str) -> None:
    """Add one entry to the cache file, atomically (readers never see half a file) and
    private (mode 0600); a cache that cannot be written only costs hashing again."""
    entries = _read_digest_cache()
    entries[name] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest}
    with contextlib.suppress(OSError):
        write_private(private_cache() / DIGEST_CACHE, json.dumps(entries))


@dataclass(frozen=True)
class VideoOptions:
    """How densely to sample a video."""

    max_frames: int = 200  # per file; long videos are sampled evenly instead
    min_gap: float = 2.0  # seconds between kept frames, at least
    max_interval: float = 30.0  # a frame at least this often, even in a static shot
    scene: float = 0.2  # scene-change score that makes a keyframe worth keeping
    timeout: float = 600.0  # seconds per ffmpeg pass: no single file can stall a run


@dataclass(frozen=True)
class DocumentOptions:
    """How much of a document to read."""

    max_pages: int = 1000  # per PDF; later pages are left out
    # Passages per document (120 words each: ~600,000 words, a few long books); the rest of a
    # larger text is left out. Identical passages of one document are kept once.
    max_passages: int = 5000
    render_pages: bool = True  # embed each PDF page's look, not just its words
