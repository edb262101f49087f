"""`scan`: which files are media, which are skipped, and how paths are keyed."""

from __future__ import annotations

from pathlib import Path

from mmsearch.core.paths import is_within, normalize
from mmsearch.indexing.reading import content_hash
from mmsearch.indexing.scan import scan


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_finds_media_by_extension_case_insensitively(tmp_path: Path) -> None:
    for name in ("a.JPG", "b.jpeg", "c.Png", "d.heic", "e.avif", "f.tiff", "g.xyz"):
        touch(tmp_path / name)
    found = scan([str(tmp_path)])
    assert sorted(Path(f.path).name for f in found.files) == [
        "a.JPG",
        "b.jpeg",
        "c.Png",
        "d.heic",
        "e.avif",
        "f.tiff",
    ]
    assert found.unsupported == 1


def test_scan_records_size_and_mtime(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.jpg", b"12345")
    (entry,) = scan([str(tmp_path)]).files
    assert (entry.size, entry.mtime_ns) == (5, path.stat().st_mtime_ns)


def test_scan_lists_a_folders_files_then_its_subfolders_by_name(tmp_path: Path) -> None:
    for name in ("b/2.jpg", "a/1.jpg", "c.jpg", "a/z/0.jpg"):
        touch(tmp_path / name)
    paths = [Path(f.path).relative_to(tmp_path).as_posix() for f in scan([str(tmp_path)]).files]
    assert paths == ["c.jpg", "a/1.jpg", "a/z/0.jpg", "b/2.jpg"]


def test_ignore_file_patterns_are_relative_to_their_folder(tmp_path: Path) -> None:
    touch(tmp_path / "keep" / "raw" / "a.jpg")
    touch(tmp_path / "sub" / "raw" / "b.jpg")
    touch(tmp_path / "sub" / ".mmsearchignore", b"/raw/\n")
    names = [Path(f.path).name for f in scan([str(tmp_path)]).files]
    assert names == ["a.jpg"]


def test_ignore_file_negation_keeps_an_exception(tmp_path: Path) -> None:
    touch(tmp_path / "x.png")
    touch(tmp_path / "y.png")
    touch(tmp_path / ".mmsearchignore", b"*.png\n!y.png\n")
    assert [Path(f.path).name for f in scan([str(tmp_path)]).files] == ["y.png"]


def test_excludes_apply_below_every_root(tmp_path: Path) -> None:
    touch(tmp_path / "one" / "tmp" / "a.jpg")
    touch(tmp_path / "two" / "b.jpg")
    found = scan([str(tmp_path / "one"), str(tmp_path / "two")], excludes=["tmp/"])
    assert [Path(f.path).name for f in found.files] == ["b.jpg"]


def test_skip_folders_are_never_entered(tmp_path: Path) -> None:
    touch(tmp_path / "store" / "a.jpg")
    touch(tmp_path / "b.jpg")
    found = scan([str(tmp_path)], skip=[str(tmp_path / "store")])
    assert [Path(f.path).name for f in found.files] == ["b.jpg"]


def test_a_missing_path_holds_nothing(tmp_path: Path) -> None:
    found = scan([str(tmp_path / "gone")])
    assert (found.files, found.problems) == ([], [])


def test_a_path_inside_a_root_obeys_the_ignore_files_above_it(tmp_path: Path) -> None:
    touch(tmp_path / ".mmsearchignore", b"private/\n")
    inside = touch(tmp_path / "private" / "a.jpg")
    kept = touch(tmp_path / "public" / "b.jpg")
    found = scan([str(inside), str(kept)], roots=[str(tmp_path)])
    assert [f.path for f in found.files] == [str(kept)]


def test_a_path_inside_a_hidden_folder_of_a_root_is_skipped(tmp_path: Path) -> None:
    inside = touch(tmp_path / ".cache" / "a.jpg")
    assert scan([str(inside)], roots=[str(tmp_path)]).files == []


def test_partial_downloads_and_editor_files_are_skipped(tmp_path: Path) -> None:
    for name in ("a.jpg.part", "~$b.jpg", "c.jpg~", "d.jpg.crdownload", "e.jpg.swp", "f.jpg"):
        touch(tmp_path / name)
    assert [Path(f.path).name for f in scan([str(tmp_path)]).files] == ["f.jpg"]


def test_normalize_makes_paths_absolute_without_resolving_symlinks(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert normalize("link/../link/./x.jpg") == str(tmp_path / "link" / "x.jpg")


def test_is_within_does_not_match_a_sibling_sharing_a_prefix() -> None:
    assert is_within("/p/trips/a.jpg", "/p/trips")
    assert is_within("/p/trips", "/p/trips")
    assert not is_within("/p/trips2/a.jpg", "/p/trips")
    assert is_within("/a.jpg", "/")


def test_content_hash_depends_only_on_bytes() -> None:
    assert content_hash(b"abc") == content_hash(b"abc") != content_hash(b"abd")


def test_sampled_hash_reads_at_most_three_mebibytes_and_sees_the_middle(tmp_path: Path) -> None:
    import io

    from mmsearch.indexing.reading import sampled_hash

    size = 10 << 20
    data = bytearray(size)
    base = sampled_hash(io.BytesIO(bytes(data)), size)
    data[size // 2] = 1
    assert sampled_hash(io.BytesIO(bytes(data)), size) != base
    data[size // 2] = 0
    data[size // 4] = 1  # between the samples: not seen, by design
    assert sampled_hash(io.BytesIO(bytes(data)), size) == base
