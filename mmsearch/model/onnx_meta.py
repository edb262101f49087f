"""An ONNX export's record (`meta.json`): written last by the exporter, so its presence means
the export is complete; read by the runtime and by the check that a model needs no export.
Here, below all three, so none of them imports another to learn the file's name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META = "meta.json"


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / META).read_text())
