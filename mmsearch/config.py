"""Where the store lives and which model embeds: resolved without importing torch or lancedb."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"


def cache_root() -> Path:
    """Derived files (exported models, recent query vectors): safe to delete at any time."""
    if os.environ.get("MMSEARCH_CACHE"):
        return Path(os.environ["MMSEARCH_CACHE"]).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("mmsearch")


def default_db() -> str:
    from platformdirs import user_data_path

    return str(user_data_path("mmsearch") / "db")


@dataclass(frozen=True)
class Settings:
    """Everything a library call needs to find the store and the model."""

    db: str = ""
    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
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
    def model_key(self) -> str:
        """Names this model's tables: vectors of different models never share one."""
        model = self.model
        if model.startswith("local-dir:"):
            folder = Path(model.removeprefix("local-dir:")).expanduser().absolute()
            model = f"local-dir:{folder}"
            weights = _weights_fingerprint(folder)
        elif self.pretrained and os.path.isfile(self.pretrained):
            weights = _weights_fingerprint(Path(self.pretrained))
        else:
            weights = self.pretrained or ""
        digest = hashlib.sha1(f"{model}\0{weights}".encode()).hexdigest()[:10]
        readable = re.sub(r"[^A-Za-z0-9]+", "-", self.model.rsplit("/", 1)[-1]).strip("-")[:40]
        return f"{readable}-{digest}"


def is_local_uri(uri: str) -> bool:
    return "://" not in uri


def _weights_fingerprint(path: Path) -> str:
    """Cheap identity of a checkpoint file (or folder): name, size and the first MiB."""
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
    render_pages: bool = True  # embed each PDF page's look, not just its words
