"""Security and privacy: no network, no code from checkpoints, no shell for file names."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pytest
from helpers import TINY_MODEL_CFG, make_image, make_pdf, make_video, query_json, run


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to reach another machine is recorded and refused."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_indexing_and_every_query_stay_off_the_network(tmp_path: Path, no_network) -> None:
    folder = tmp_path / "media"
    make_image(folder / "a.png", seed=1)
    make_video(folder / "b.mp4", seconds=1)
    make_pdf(folder / "c.pdf", ["some words"])
    (folder / "d.txt").write_text("more words")
    for args in (
        ["index", str(folder)],
        ["query", "words", "--json"],
        ["similar", str(folder / "a.png"), "--json"],
        ["query", str(folder / "a.png"), "+", "words"],
        ["dupes", "--json"],
        ["status", "--json"],
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.stderr)
    assert no_network == []


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, monkeypatch) -> None:
    import open_clip

    config = tmp_path / "mmsearch-evil-tiny.json"
    config.write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(config)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    make_image(tmp_path / "p" / "a.png", seed=1)
    monkeypatch.setenv("MMSEARCH_MODEL", "mmsearch-evil-tiny")
    result = run("index", str(tmp_path / "p"), "--pretrained", str(evil))
    assert result.exit_code == 1
    assert "cannot load model" in result.stderr
    assert not marker.exists()


def test_file_names_never_reach_a_shell(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "names"
    hostile = [
        "$(touch pwned1).png",
        "; touch pwned2 ;.png",
        "`touch pwned3`.mp4",
        "a' && touch pwned4 '.pdf",
    ]
    make_image(folder / hostile[0], seed=1)
    make_image(folder / hostile[1], seed=2)
    make_video(folder / hostile[2], seconds=1)
    make_pdf(folder / hostile[3], ["words"])
    monkeypatch.chdir(folder)
    assert run("index", str(folder)).exit_code == 0
    found = {Path(r["path"]).name for r in query_json("x", "-n", "10")}
    assert found == set(hostile)
    monkeypatch.setenv("MMSEARCH_OPENER", "true")
    for n in range(1, 5):
        assert run("open", str(n)).exit_code == 0
    assert not list(folder.glob("pwned*")) and not list(tmp_path.glob("pwned*"))


# The attacks of issue 32, replayed: another local user, a hostile page, a misbehaving client.


def test_a_password_in_the_endpoint_url_is_never_printed(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "Pa55-w0rd-in-the-url"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://someone:{password}@127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("MMSEARCH_DB", "s3://no-such-bucket/store")
    for args in (["query", "red"], ["index", "-q", str(photos)], ["status"]):
        result = run(*args)
        out = result.stdout + result.stderr
        assert result.exit_code == 1 and password[:6] not in out, (args, out)  # even cut short
        assert "someone:" not in out and "Traceback" not in out
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_redact_hides_a_urls_user_part_and_a_known_password_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmsearch.core.redact import redact

    monkeypatch.setenv("HTTPS_PROXY", "http://me:pr%40xy-pw@proxy.lan:3128")
    text = redact("GET http://u:p@ss@host/x via https://tok3n@h failed; pr@xy-pw rejected")
    assert text == "GET http://***@host/x via https://***@h failed; *** rejected"


def test_a_file_link_that_leaves_the_folder_is_not_indexed_and_its_text_never_shows(
    tmp_path: Path,
) -> None:
    from helpers import file_rows

    private = tmp_path / "private"
    private.mkdir()
    (private / "diary.txt").write_text("the zebra password is hunter2")
    folder = tmp_path / "media"
    make_image(folder / "a.png", seed=1)
    (folder / "readme.txt").write_text("a zebra of this folder")
    (folder / "notes.txt").symlink_to(private / "diary.txt")  # planted, or careless
    (folder / "same.png").symlink_to(folder / "a.png")  # a link within the folder
    result = run("index", str(folder))
    assert result.exit_code == 0 and "1 links leaving the folder skipped" in result.stderr
    assert sorted(Path(p).name for p in file_rows()) == ["a.png", "readme.txt", "same.png"]
    found = query_json("hunter2 zebra", "--mode", "text", "-n", "10")
    assert found and all("hunter2" not in (r["snippet"] or "") for r in found)


def test_follow_links_indexes_a_link_that_leaves_the_folder(tmp_path: Path) -> None:
    from helpers import file_rows

    (tmp_path / "elsewhere.txt").write_text("words from elsewhere")
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "notes.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert run("index", str(folder), "--follow-links").exit_code == 0
    assert list(file_rows()) == [str(folder / "notes.txt")]
