"""Model choices that cannot load fail at once, in one line, before torch or open_clip is
imported: an unknown model name, a missing checkpoint or `local-dir:` folder, an unknown tag,
weights not cached while offline (the suite runs with HF_HUB_OFFLINE=1 and an empty cache)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_image

BUDGET_S = 10.0  # the aim is 1 s; generous for a busy CI machine, far below torch import

# Runs the CLI in a fresh process, then says whether torch or open_clip got imported.
PROBE = """
import sys
from mmsearch.doors.cli import main
sys.argv = ["mmsearch", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "open_clip", "lancedb") if m in sys.modules)
print("imported:", ",".join(heavy) or "-", file=sys.stderr)
sys.exit(code)
"""


CPU_BUDGET_S = 2.0  # importing torch and open_clip alone costs more CPU than this


def run_probe(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI in a fresh process; its wall time, after checking its CPU time (which a
    busy machine does not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    assert cpu < CPU_BUDGET_S, f"{cpu:.2f} s of CPU"
    return done, wall


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--model", "ViT-B-23"], "unknown model 'ViT-B-23': did you mean ViT-B-32"),
        (["--model", "ViT-B-32", "--pretrained", "missing/vitb32.pt"], "checkpoint not found"),
        (["--model", "local-dir:/no/such/folder"], "no such folder"),
        (["--model", "ViT-B-32-256", "--pretrained", "no-such-tag"], "datacomp_s34b_b86k"),
        (["--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k"], "HF_HUB_OFFLINE is set"),
        # tags open_clip writes inline in its table, and the -quickgelu twins it adds
        (["--model", "ViT-B-16-SigLIP", "--pretrained", "webli"], "HF_HUB_OFFLINE is set"),
        (["--model", "ViT-B-32-quickgelu", "--pretrained", "openai"], "HF_HUB_OFFLINE is set"),
        (["--model", "ViT-B-32"], "needs weights: pass --pretrained TAG (tags: openai"),
    ],
    ids=[
        "unknown-model",
        "missing-checkpoint",
        "missing-local-dir",
        "unknown-tag",
        "offline",
        "offline-inline-tag",
        "offline-quickgelu-tag",
        "no-weights",
    ],
)
@pytest.mark.parametrize("command", ["index", "query"])
def test_a_model_that_cannot_load_fails_at_once_without_torch(
    args: list[str], says: str, command: str, tmp_path: Path
) -> None:
    folder = tmp_path / "p"
    make_image(folder / "a.jpg", seed=1)
    target = [str(folder)] if command == "index" else ["red car"]
    if command == "query" and ("weights" in says or "HF_HUB_OFFLINE" in says):
        says = "nothing indexed"  # weights matter only for a model with vectors to search
    done, seconds = run_probe(command, *target, *args)
    error, imported = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert error.startswith("mmsearch: error: ") and says in error
    assert imported == "imported: -" or "torch" not in imported, imported
    assert "open_clip" not in imported
    assert seconds < BUDGET_S, f"{seconds:.1f} s"


def test_offline_the_default_models_error_names_the_file_to_fetch(tmp_path: Path) -> None:
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    done, _ = run_probe("index", str(tmp_path / "p"), "--model", "ViT-B-32-256")
    assert (
        done.returncode == 1
        and (
            "fetch open_clip_model.safetensors from "
            "https://huggingface.co/laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K and pass "
            "--pretrained /path/to/open_clip_model.safetensors"
        )
        in done.stderr
    )


def test_a_named_model_is_checked_before_the_store_is_read(tmp_path: Path, monkeypatch) -> None:
    """A store older than the registry file would need LanceDB to tell its model: a model
    named on the command line is checked first, so the error stays instant."""
    import lancedb

    from mmsearch.storage.store import MODELS_SCHEMA

    db = tmp_path / "old-store"
    lancedb.connect(str(db)).create_table("models", schema=MODELS_SCHEMA)
    monkeypatch.setenv("MMSEARCH_DB", str(db))
    done, seconds = run_probe("query", "red car", "--model", "ViT-B-23")
    error, imported = done.stderr.strip().splitlines()
    assert done.returncode == 1 and "unknown model 'ViT-B-23'" in error
    assert imported == "imported: -", imported
    assert seconds < BUDGET_S, f"{seconds:.1f} s"


def test_weights_that_cannot_be_downloaded_fail_at_once_online_too(
    tmp_path: Path, monkeypatch
) -> None:
    """Not offline, but the hub cannot be reached (here: a closed local port as the
    endpoint): one connection attempt before any heavy import, not a minute of retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    make_image(tmp_path / "p" / "a.jpg", seed=1)
    args = ["--model", "ViT-B-32", "--pretrained", "openai"]
    done, seconds = run_probe("index", str(tmp_path / "p"), *args)
    error, imported = done.stderr.strip().splitlines()
    assert done.returncode == 1 and "http://127.0.0.1:9 cannot be reached" in error, error
    assert "torch" not in imported and "open_clip" not in imported
    assert seconds < BUDGET_S


def test_an_empty_store_folder_is_nothing_indexed_without_lancedb(
    tmp_path: Path, monkeypatch
) -> None:
    db = tmp_path / "empty-store"
    db.mkdir()
    monkeypatch.setenv("MMSEARCH_DB", str(db))
    done, _ = run_probe("query", "red car")
    error, imported = done.stderr.strip().splitlines()
    assert done.returncode == 1 and "nothing indexed" in error
    assert imported == "imported: -", imported


def test_the_tags_read_from_open_clips_source_are_the_ones_it_lists() -> None:
    """Every model's tags and Hugging Face repos, read without importing open_clip, are
    what open_clip itself lists once imported (inline tables and -quickgelu twins too)."""
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from mmsearch.model.preflight import _pretrained_table; "
            "print(json.dumps(_pretrained_table())); assert 'open_clip' not in sys.modules",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import open_clip

    listed = {
        model: {t: open_clip.get_pretrained_cfg(model, t).get("hf_hub", "") for t in tags}
        for model in {m for m, _ in open_clip.list_pretrained()}
        if (tags := open_clip.list_pretrained_tags_by_model(model))
    }
    assert json.loads(read.stdout) == listed
