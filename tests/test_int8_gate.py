"""The export's int8 gate: each tower gets the fastest int8 variant that ranks as fp32 ranks
(recall@10 and cosine on the probe corpus), or stays fp32; meta.json says why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmsearch.core.config import Settings
from mmsearch.model.embed import onnx_folder
from mmsearch.model.onnx_export import INT8_MIN_COSINE, INT8_MIN_RECALL, INT8_VARIANTS, recall_at

TOWERS = ("visual.onnx", "textual.onnx")


def meta(model: str) -> dict:
    return json.loads((onnx_folder(Settings(db="/unused", model=model)) / "meta.json").read_text())


def passes(figures: dict) -> bool:
    return (
        figures.get("cosine", 0) >= INT8_MIN_COSINE
        and figures.get("recall_at_10", 0) >= INT8_MIN_RECALL
    )


def test_meta_records_every_variant_with_cosine_recall_and_speed(tiny_model: str) -> None:
    for tower in TOWERS:
        figures = meta(tiny_model)["int8_variants"][tower]
        assert set(figures) == {"fp32", *INT8_VARIANTS}
        for variant in INT8_VARIANTS:
            assert set(figures[variant]) == {"cosine", "recall_at_10", "seconds"}


def test_each_tower_keeps_the_fastest_variant_that_passes(tiny_model: str) -> None:
    recorded = meta(tiny_model)
    for tower in TOWERS:
        figures = recorded["int8_variants"][tower]
        passing = [v for v in INT8_VARIANTS if passes(figures[v])]
        assert passing, figures  # the tiny model's towers quantize well
        fastest = min(passing, key=lambda v: figures[v]["seconds"])
        assert recorded["int8_variant"][tower] == fastest
        assert recorded["int8"][tower] is True


def test_no_variant_is_kept_when_none_ranks_as_fp32_ranks(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.model import onnx_export

    monkeypatch.setattr(onnx_export, "INT8_MIN_RECALL", 1.01)  # cosine alone would pass
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    settings = Settings(db="/unused", model=tiny_model)
    onnx_export.export(settings, onnx_folder(settings))
    recorded = meta(tiny_model)
    assert recorded["int8"] == {"visual.onnx": False, "textual.onnx": False}
    assert recorded["int8_variant"] == {"visual.onnx": None, "textual.onnx": None}
    towers = [p.name for p in onnx_folder(settings).glob("*.onnx") if ".opt-" not in p.name]
    assert sorted(towers) == sorted(TOWERS)  # the fp32 towers alone, and their optimised graphs


def test_recall_at_k_counts_the_shared_share_of_each_top_k() -> None:
    reference = np.array([[0.9, 0.8, 0.1, 0.0], [0.0, 0.1, 0.8, 0.9]])
    candidate = np.array([[0.9, 0.0, 0.8, 0.1], [0.0, 0.1, 0.8, 0.9]])
    assert recall_at(2, reference, reference) == 1.0
    assert recall_at(2, reference, candidate) == pytest.approx((1 / 2 + 2 / 2) / 2)


def test_recall_between_items_never_counts_an_item_as_its_own_neighbour() -> None:
    reference = np.array([[1.0, 0.5, 0.4], [0.5, 1.0, 0.4], [0.5, 0.4, 1.0]])
    candidate = np.array([[1.0, 0.5, 0.4], [0.5, 1.0, 0.4], [0.4, 0.5, 1.0]])
    assert recall_at(1, reference, reference, same=True) == 1.0
    assert recall_at(1, reference, candidate, same=True) == pytest.approx(2 / 3)
