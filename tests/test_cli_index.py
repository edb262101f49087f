"""`mmsearch index`: incremental, rename-aware, ignore rules, output contract."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from helpers import file_rows, item_paths, make_image, run


def index(*args: str) -> str:
    result = run("index", *args)
    assert result.exit_code == 0, result.stderr
    return result.stderr


def test_index_records_every_photo(photos: Path) -> None:
    index(str(photos))
    on_disk = sorted(str(p) for p in photos.rglob("*") if p.is_file())
    assert sorted(file_rows()) == on_disk
    assert item_paths() == on_disk


def test_index_summary_goes_to_stderr_and_stdout_stays_empty(photos: Path) -> None:
    result = run("index", str(photos))
    assert result.stdout == ""
    assert "7 new, 0 updated, 0 reused, 0 unchanged, 0 removed, 0 failed" in result.stderr


def test_index_quiet_prints_nothing(photos: Path) -> None:
    result = run("index", "-q", str(photos))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_index_second_run_leaves_unchanged_files_alone(photos: Path) -> None:
    index(str(photos))
    before = {p: r["indexed_at"] for p, r in file_rows().items()}
    assert "0 new, 0 updated, 0 reused, 7 unchanged" in index(str(photos))
    assert {p: r["indexed_at"] for p, r in file_rows().items()} == before


def test_index_reembeds_a_modified_file(photos: Path) -> None:
    index(str(photos))
    target = photos / "chelsea.jpg"
    make_image(target, seed=1)
    os.utime(target, ns=(1, 1))
    assert "0 new, 1 updated, 0 reused, 6 unchanged" in index(str(photos))
    assert item_paths().count(str(target)) == 1


def test_index_reuses_vectors_of_a_renamed_file(photos: Path) -> None:
    index(str(photos))
    old, new = photos / "chelsea.jpg", photos / "renamed" / "my chelsea.jpg"
    new.parent.mkdir()
    old.rename(new)
    assert "0 new, 0 updated, 1 reused, 6 unchanged, 1 removed" in index(str(photos))
    assert str(new) in item_paths() and str(old) not in item_paths()


def test_index_reuses_vectors_of_a_copied_file(photos: Path) -> None:
    index(str(photos))
    shutil.copy(photos / "chelsea.jpg", photos / "copy.jpg")
    assert "0 new, 0 updated, 1 reused, 7 unchanged, 0 removed" in index(str(photos))
    assert len(item_paths()) == 8


def test_index_removes_files_that_vanished(photos: Path) -> None:
    index(str(photos))
    shutil.rmtree(photos / "trips")
    stderr = index(str(photos))
    assert "3 removed" in stderr
    assert not any("trips" in p for p in [*item_paths(), *file_rows()])


def test_index_of_a_subfolder_does_not_remove_files_elsewhere(photos: Path) -> None:
    index(str(photos))
    index(str(photos / "trips"))
    assert len(file_rows()) == 7


def test_index_skips_hidden_files_and_junk_folders(photos: Path) -> None:
    for junk in (
        ".hidden.jpg",
        ".git/a.jpg",
        "@eaDir/b.jpg",
        "node_modules/c.jpg",
        "._d.jpg",
        ".thumbnails/e.jpg",
        "Thumbs.db/f.jpg",
    ):
        make_image(photos / junk, seed=3)
    index(str(photos))
    assert len(file_rows()) == 7


def test_index_exclude_takes_gitignore_globs(photos: Path) -> None:
    index("--exclude", "*.png", "--exclude", "trips/", str(photos))
    assert all(p.endswith(".jpg") and "trips" not in p for p in file_rows())
    assert file_rows()


def test_index_honours_mmsearchignore_in_a_subfolder(photos: Path) -> None:
    (photos / "trips" / ".mmsearchignore").write_text("# private\n2024/*.jpg\n")
    index(str(photos))
    assert not any(
        p.startswith(str(photos / "trips" / "2024")) and p.endswith(".jpg") for p in file_rows()
    )
    assert any(p.startswith(str(photos / "trips" / "2024")) for p in file_rows())


def test_index_counts_unsupported_files_without_failing_them(photos: Path) -> None:
    (photos / "data.bin").write_bytes(b"not media")
    (photos / "song.mp3").write_bytes(b"ID3")
    stderr = index(str(photos))
    assert "0 failed, 2 unsupported" in stderr
    assert str(photos / "data.bin") not in file_rows()


def test_index_reads_heic_and_avif_photos(tmp_path: Path) -> None:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    folder = tmp_path / "phone"
    folder.mkdir()
    picture = Image.open(make_image(tmp_path / "src.png", seed=5)).convert("RGB")
    picture.save(folder / "IMG_0001.HEIC", format="HEIF")
    picture.save(folder / "IMG_0002.avif", format="AVIF")
    assert "2 new" in index(str(folder))
    assert all(r["status"] == "ok" for r in file_rows().values())


def test_index_of_a_single_file(photos: Path) -> None:
    index(str(photos / "chelsea.jpg"))
    assert list(file_rows()) == [str(photos / "chelsea.jpg")]


def test_index_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run("index", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_index_of_a_parent_after_a_child_keeps_one_root(photos: Path) -> None:
    import json

    index(str(photos / "trips"))
    index(str(photos))
    status = json.loads(run("status", "--json").stdout)
    assert status["roots"] == [str(photos)]


def test_index_never_enters_the_store_folder(photos: Path, monkeypatch) -> None:
    store = photos / "store"
    monkeypatch.setenv("MMSEARCH_DB", str(store))
    index(str(photos))
    make_image(store / "inside.jpg", seed=9)
    index(str(photos))
    assert not any(p.startswith(str(store)) for p in file_rows())


def test_content_indexed_at_two_paths_is_reused_once(photos: Path) -> None:
    shutil.copy(photos / "chelsea.jpg", photos / "copy one.jpg")
    index(str(photos))
    shutil.copy(photos / "chelsea.jpg", photos / "copy two.jpg")
    assert "1 reused" in index(str(photos))
    assert item_paths().count(str(photos / "copy two.jpg")) == 1
