"""`mmsearch ui` over plain HTTP: what it refuses (no token, a foreign Host, a path, bad
input) and how (a one-line message, the right status, no traceback), and the headers and
byte ranges a browser relies on. The browser itself drives it in test_ui_browser.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from helpers import env_settings, run
from PIL import Image
from ui_app import TOKEN, RunningUI, make_media, running_ui

from mmsearch.doors.serve import serving
from mmsearch.library import Library

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def ui(
    tmp_path_factory: pytest.TempPathFactory,
    photo_library: Path,
    tiny_model: str,
    model_cache: Path,
) -> Iterator[RunningUI]:
    root = tmp_path_factory.mktemp("ui")
    media = make_media(root, photo_library)
    with running_ui(root, media, tiny_model, model_cache) as app:
        yield app
        assert app.process.poll() is None, "the UI died"


def get(ui: RunningUI, path: str, **kwargs: object) -> tuple[int, dict[str, str], str]:
    status, headers, body = ui.request(path, **kwargs)  # type: ignore[arg-type]
    return status, headers, body.decode("utf-8", "replace")


def alert(page: str) -> str:
    found = re.search(r'role="alert">(.*?)</p>', page, re.S)
    assert found, page
    return unescape(found[1])


def ids_of(page: str) -> dict[str, str]:
    """Result ids by file name, in the order shown."""
    return {unescape(m[2]): m[1] for m in re.finditer(r'data-id="(\w+)".*?title="([^"]+)"', page)}


def search(ui: RunningUI, query: str, extra: str = "") -> str:
    status, _, page = get(ui, f"/?token={TOKEN}&q={quote(query)}{extra}")
    assert status == 200, page
    return page


def multipart(field: str, name: str, data: bytes) -> tuple[dict[str, str], bytes]:
    boundary = "mmsearch-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body


def test_the_address_is_stdouts_first_line_on_loopback_with_the_token(ui: RunningUI) -> None:
    assert ui.url == f"http://127.0.0.1:{ui.port}/?token={TOKEN}"
    assert get(ui, f"/?token={TOKEN}")[0] == 200


def test_a_request_without_the_token_is_refused(ui: RunningUI) -> None:
    status, _, page = get(ui, "/?q=astronaut")
    assert status == 403 and "token" in alert(page)


def test_a_stale_token_is_refused_with_a_clear_message(ui: RunningUI) -> None:
    status, _, page = get(ui, "/?token=an-old-token&q=astronaut")
    assert status == 403 and "use the address" in alert(page)


def test_static_assets_need_the_token_too(ui: RunningUI) -> None:
    assert get(ui, "/static/ui.js")[0] == 403
    assert get(ui, f"/static/ui.js?token={TOKEN}")[0] == 200


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{0}", "127.0.0.2", ""])
def test_a_foreign_host_header_is_refused(ui: RunningUI, host: str) -> None:
    host = host.replace(":0", f":{ui.port}")
    status, _, page = get(ui, f"/?token={TOKEN}", host=host or " ")
    assert status in (400, 403), page  # an empty Host never reaches the app
    if status == 403:
        assert "Host" in alert(page)


def test_localhost_by_name_is_accepted(ui: RunningUI) -> None:
    assert get(ui, f"/?token={TOKEN}", host=f"localhost:{ui.port}")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/file?path=/etc/passwd",
        "/file/../../../etc/passwd",
        "/thumb/%2Fetc%2Fpasswd",
        "/file/0123456789abcdef",
        "/static/../app.py",
    ],
)
def test_files_are_reached_by_result_id_only(ui: RunningUI, path: str) -> None:
    sep = "&" if "?" in path else "?"
    status, _, page = get(ui, f"{path}{sep}token={TOKEN}")
    assert status == 404 and "root:" not in page


def test_every_response_forbids_inline_script(ui: RunningUI) -> None:
    for path in (f"/?token={TOKEN}", "/", f"/nowhere?token={TOKEN}"):
        csp = get(ui, path)[1]["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp


def test_pages_hold_no_inline_script(ui: RunningUI) -> None:
    page = search(ui, "astronaut")
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))
    assert not re.search(r"<[^>]+\son\w+=", page)  # no event handler attributes
    assert "style=" not in page


def test_a_malformed_query_says_why_with_status_400(ui: RunningUI) -> None:
    status, _, page = get(ui, f"/?token={TOKEN}&q={quote(str(ui.media / 'no-such.jpg'))}")
    assert status == 400 and "no such image" in alert(page)


def test_a_path_outside_the_library_gets_one_answer_whether_anything_is_there(
    ui: RunningUI, tmp_path: Path
) -> None:
    (tmp_path / "real.png").write_bytes((ui.media / "astronaut.png").read_bytes())
    (ui.media / "leak.png").symlink_to(tmp_path / "real.png")  # inside, pointing out
    said = set()
    for path in ("/etc/shadow", "/etc/passwd", "/etc/no-such-file", "/nowhere/x.png"):
        status, _, page = get(ui, f"/?token={TOKEN}&q={quote(path)}")
        assert status == 400, (path, page)
        said.add(alert(page).replace(path, "PATH"))
    for path in (tmp_path / "real.png", tmp_path / "absent.png", ui.media / "leak.png"):
        status, _, page = get(ui, f"/?token={TOKEN}&q={quote(str(path))}")
        assert status == 400, (path, page)
        said.add(alert(page).replace(str(path), "PATH"))
    assert said == {
        "PATH: not a picture of the library (only files inside the indexed "
        "folders can be searched by here)"
    }


@pytest.mark.parametrize(
    "name, data, status",
    [
        ("notes-named.jpg", b"just some words, not pixels", 415),
        ("docs/zoo.pdf", None, 415),
        ("clips", None, 400),  # a folder
    ],
)
def test_a_library_file_that_is_no_picture_is_a_4xx_never_a_500(
    ui: RunningUI, name: str, data: bytes | None, status: int
) -> None:
    path = ui.media / name
    if data is not None:
        path.write_bytes(data)
    got, _, page = get(ui, f"/?token={TOKEN}&q={quote(str(path))}")
    assert got == status and str(path) in alert(page), page


@pytest.mark.parametrize(
    "query, said",
    [
        (f"q={'x' * 5000}", "q is too long (5000 characters; at most 4096)"),
        (f"q=x&in={'/p' * 2100}", "in is too long"),
        ("q=" + quote(" + ".join(["x"] * 65)), "a query has at most 64 parts, not 65"),
        ("q=x" + "&kind=image" * 300, "kind: at most 256 kinds, not 300"),
    ],
)
def test_an_argument_over_its_bound_is_a_400_that_names_it(
    ui: RunningUI, query: str, said: str
) -> None:
    status, _, page = get(ui, f"/?token={TOKEN}&{query}")
    assert status == 400 and said in alert(page)


def test_a_bad_date_is_a_400_that_names_it(ui: RunningUI) -> None:
    status, _, page = get(ui, f"/?token={TOKEN}&q=x&after=yesterday")
    assert status == 400 and "yesterday" in alert(page)


def test_an_unknown_item_is_a_404_with_a_message(ui: RunningUI) -> None:
    status, _, page = get(ui, f"/item/ffffffffffffffff?token={TOKEN}")
    assert status == 404 and "unknown item" in alert(page)


def test_a_typed_picture_path_finds_its_copy_first(ui: RunningUI) -> None:
    page = search(ui, str(ui.media / "astronaut.png"))
    names = list(ids_of(page))
    assert names[0] == str(ui.media / "copies" / "astronaut-copy.png")
    assert str(ui.media / "astronaut.png") not in names  # the query picture never answers


def test_filters_narrow_the_results(ui: RunningUI) -> None:
    page = search(ui, "anything", "&kind=video")
    assert list(ids_of(page)) == [str(ui.media / "clips" / "patterns.mp4")]
    page = search(ui, "anything", f"&in={quote(str(ui.media / 'trips'))}&ext=jpg")
    assert ids_of(page) and all(
        p.startswith(str(ui.media / "trips")) and p.endswith(".jpg") for p in ids_of(page)
    )


def test_sort_orders_the_best_results_by_capture_date_not_file_mtime(ui: RunningUI) -> None:
    best = list(ids_of(search(ui, "anything", "&kind=image")))
    os.utime(best[-1], (2e9, 2e9))  # touched after indexing: its capture date is unchanged
    for order, newest_first in (("newest", True), ("oldest", False)):
        page = search(ui, "anything", f"&kind=image&sort={order}")
        taken = [float(t) for t in re.findall(r'data-taken="([0-9.]+)"', page)]
        assert sorted(ids_of(page)) == sorted(best) and len(taken) == len(best)
        assert taken == sorted(taken, reverse=newest_first)


def test_a_bad_page_number_is_a_400_saying_so(ui: RunningUI) -> None:
    status, _, page = get(ui, f"/?token={TOKEN}&q=x&n=0")
    assert status == 400 and alert(page) == "n must be a whole number from 1 to 20, not '0'"


def test_an_unknown_sort_is_a_400_naming_the_valid_ones(ui: RunningUI) -> None:
    status, _, page = get(ui, f"/?token={TOKEN}&q=x&sort=random")
    assert status == 400 and "relevance, newest, oldest" in alert(page)


def test_a_video_is_served_in_byte_ranges(ui: RunningUI) -> None:
    video = ui.media / "clips" / "patterns.mp4"
    item = ids_of(search(ui, "x", "&kind=video"))[str(video)]
    status, headers, _ = ui.request(f"/file/{item}?token={TOKEN}", headers={"Range": "bytes=10-99"})
    assert status == 206 and headers["content-range"] == f"bytes 10-99/{video.stat().st_size}"
    assert headers["content-type"] == "video/mp4"


@contextlib.contextmanager
def swapped(path: Path, link_to: Path | None = None, data: bytes | None = None) -> Iterator[None]:
    """`path` swapped meanwhile: `mv path aside; ln -s link_to path`, or rewritten with
    `data` (size and mtime kept when it is as long), then put back."""
    aside = path.with_name(path.name + ".aside")
    st = path.stat()
    os.rename(path, aside)
    try:
        if link_to is not None:
            path.symlink_to(link_to)
        else:
            assert data is not None
            path.write_bytes(data)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        yield
    finally:
        path.unlink()
        os.rename(aside, path)


def test_a_photo_swapped_for_a_link_out_of_the_library_is_not_served(ui: RunningUI) -> None:
    photo = ui.media / "chelsea.jpg"
    item = ids_of(search(ui, "anything", "&kind=image"))[str(photo)]
    opened_before = ui.opened.read_text() if ui.opened.exists() else ""
    with swapped(photo, link_to=Path("/etc/passwd")):
        for path, method in ((f"/file/{item}", "GET"), (f"/thumb/{item}", "GET")):
            status, _, page = get(ui, f"{path}?token={TOKEN}", method=method)
            assert status == 404 and "root:" not in page, (path, status)
            assert str(photo) in alert(page) and "\n" not in alert(page)
        assert get(ui, f"/open/{item}?token={TOKEN}", method="POST")[0] == 404
    time.sleep(0.5)
    assert (ui.opened.read_text() if ui.opened.exists() else "") == opened_before


def test_a_photo_changed_since_it_was_indexed_is_not_served(ui: RunningUI) -> None:
    photo = ui.media / "chelsea.jpg"
    item = ids_of(search(ui, "anything", "&kind=image"))[str(photo)]
    other = (ui.media / "hubble_deep_field.jpg").read_bytes()
    with swapped(photo, data=other):
        os.utime(photo, (1e9, 1e9))
        status, _, page = get(ui, f"/file/{item}?token={TOKEN}")
        assert status == 409 and "index it again" in alert(page)
    assert get(ui, f"/file/{item}?token={TOKEN}")[0] == 200


def test_a_served_file_must_be_what_its_bytes_say_not_what_its_name_says(ui: RunningUI) -> None:
    photo = ui.media / "chelsea.jpg"
    item = ids_of(search(ui, "anything", "&kind=image"))[str(photo)]
    text = b"root:x:0:0:root:/root:/bin/bash\n" * (photo.stat().st_size // 32 + 1)
    with swapped(photo, data=text[: photo.stat().st_size]):  # same size, same mtime
        status, _, page = get(ui, f"/file/{item}?token={TOKEN}")
        assert status == 415 and "root:" not in page and "not a photo" in alert(page)


def test_documents_are_shown_as_pictures_not_served(ui: RunningUI) -> None:
    page = search(ui, "zebra", "&mode=text")
    item = ids_of(page)[str(ui.media / "docs" / "zoo.pdf")]
    assert get(ui, f"/file/{item}?token={TOKEN}")[0] == 404
    status, headers, data = ui.request(f"/thumb/{item}?token={TOKEN}&page=1&size=l")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(data)).size) == 1024


def test_thumbnails_are_made_once_and_cached(ui: RunningUI) -> None:
    item = ids_of(search(ui, "x", "&kind=video"))[str(ui.media / "clips" / "patterns.mp4")]
    path = f"/thumb/{item}?token={TOKEN}&t=9.0"
    first = time.perf_counter()
    status, _, data = ui.request(path)
    made = time.perf_counter() - first
    second = time.perf_counter()
    assert ui.request(path)[2] == data and status == 200
    assert time.perf_counter() - second < made  # no ffmpeg run the second time


def test_a_bad_moment_or_page_is_a_400(ui: RunningUI) -> None:
    item = ids_of(search(ui, "x", "&kind=video"))[str(ui.media / "clips" / "patterns.mp4")]
    assert get(ui, f"/thumb/{item}?token={TOKEN}&t=soon")[0] == 400
    assert get(ui, f"/item/{item}?token={TOKEN}&page=-1")[0] == 400
    assert get(ui, f"/item/{item}?token={TOKEN}&page=0")[0] == 400


def test_a_page_past_the_end_is_a_404_not_a_crash(ui: RunningUI) -> None:
    item = ids_of(search(ui, "zebra", "&mode=text"))[str(ui.media / "docs" / "zoo.pdf")]
    status, _, page = get(ui, f"/thumb/{item}?token={TOKEN}&page=99")
    assert status == 404 and "no picture" in alert(page)


def test_an_upload_that_is_not_a_picture_is_a_415(ui: RunningUI) -> None:
    headers, body = multipart("image", "notes.txt", b"just some words, not pixels")
    status, _, page = get(ui, f"/upload?token={TOKEN}", method="POST", headers=headers, body=body)
    assert status == 415 and "not a picture" in alert(page)


def test_a_huge_upload_is_a_413_before_it_is_read(ui: RunningUI) -> None:
    headers, body = multipart("image", "huge.jpg", b"\0" * (21 << 20))
    status, _, page = get(ui, f"/upload?token={TOKEN}", method="POST", headers=headers, body=body)
    assert status == 413 and "MB" in alert(page)


def test_an_uploaded_picture_finds_its_indexed_copy_first(ui: RunningUI) -> None:
    data = (ui.media / "hubble_deep_field.jpg").read_bytes()
    headers, body = multipart("image", "mine.png", data)
    status, answer, _ = get(ui, f"/upload?token={TOKEN}", method="POST", headers=headers, body=body)
    assert status == 303 and "token" not in answer["location"]  # the session cookie goes on
    session = answer["set-cookie"].split(";")[0]
    page = get(ui, answer["location"], headers={"Cookie": session})[2]
    assert next(iter(ids_of(page))) == str(ui.media / "hubble_deep_field.jpg")


def test_thumbnails_and_uploads_are_kept_for_their_owner_only(
    ui: RunningUI, model_cache: Path
) -> None:
    item = ids_of(search(ui, "x", "&kind=video"))[str(ui.media / "clips" / "patterns.mp4")]
    assert ui.request(f"/thumb/{item}?token={TOKEN}&t=3.0")[0] == 200
    headers, body = multipart("image", "mine.png", (ui.media / "astronaut.png").read_bytes())
    assert get(ui, f"/upload?token={TOKEN}", method="POST", headers=headers, body=body)[0] == 303
    for name in ("pictures", "uploads"):
        folder = model_cache / name
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, name
        kept = list(folder.iterdir())
        assert kept and {stat.S_IMODE(p.stat().st_mode) for p in kept} == {0o600}, name


def test_open_runs_the_desktop_opener_at_the_moment(ui: RunningUI) -> None:
    video = ui.media / "clips" / "patterns.mp4"
    item = ids_of(search(ui, "x", "&kind=video"))[str(video)]
    status, headers, _ = get(ui, f"/open/{item}?token={TOKEN}&t=8.0", method="POST")
    assert status == 303 and "opened=1" in headers["location"]
    for _ in range(100):
        if ui.opened.exists() and ui.opened.read_text():
            break
        time.sleep(0.1)
    assert ui.opened.read_text().splitlines()[-1] == f"{video}\t8.0"


def test_open_is_refused_without_the_token(ui: RunningUI) -> None:
    item = hashlib.blake2b(str(ui.media / "astronaut.png").encode(), digest_size=8).hexdigest()
    assert get(ui, f"/open/{item}", method="POST")[0] == 403


def test_it_answers_query_and_similar_for_its_store_meanwhile(
    ui: RunningUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.doors.client import ask

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(Path(ui.db).parent / "run"))  # its socket's
    assert ask(ui.db, {"ping": True}) == {"v": 1, "pid": ui.process.pid}


def test_it_uses_a_running_server_instead(photos: Path) -> None:
    assert run("index", "-q", str(photos)).exit_code == 0
    with serving(Library(env_settings())):
        process = subprocess.Popen(
            [sys.executable, "-m", "mmsearch", "ui", "--no-open"],
            env={**os.environ, "MMSEARCH_UI_TOKEN": TOKEN},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            url = process.stdout.readline().strip()
            assert "using the running server" in process.stderr.readline()
            with urllib.request.urlopen(url + "&q=" + quote(str(photos / "astronaut.png"))) as r:
                assert r.status == 200 and "data-id=" in r.read().decode()
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_no_traceback_reaches_the_log(ui: RunningUI) -> None:
    get(ui, f"/?token={TOKEN}&q={quote('./missing.png')}")
    get(ui, f"/thumb/zzz?token={TOKEN}")
    time.sleep(0.5)
    assert not any("Traceback" in line for line in ui.stderr), ui.stderr


FAKE_BROWSER = """import json, os, re, sys, time, http.client
from urllib.parse import urlsplit
out, url = sys.argv[1], sys.argv[2]
path = urlsplit(url).path
st, folder = os.stat(path), os.stat(os.path.dirname(path))
launch = re.search(r'url=([^"]+)"', open(path).read())[1]
where = urlsplit(launch)
conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
conn.request("GET", where.path)
answer = conn.getresponse()
answer.read()
cookie = answer.getheader("set-cookie") or ""
conn.request("GET", "/", headers={"Cookie": cookie.split(";")[0]})
home = conn.getresponse()
home.read()
record = dict(argv=sys.argv[2:], launch=launch, launch_status=answer.status,
              cookie=cookie, home_status=home.status, file_mode=st.st_mode & 0o777,
              folder_mode=folder.st_mode & 0o777, owner=st.st_uid)
with open(out + ".tmp", "w") as f:
    json.dump(record, f)
os.rename(out + ".tmp", out)
time.sleep(5)  # still running while the stranger looks at every command line
"""


def test_the_browser_is_opened_on_a_private_launch_file_never_on_the_token(
    tmp_path: Path, photo_library: Path, tiny_model: str, model_cache: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(photo_library / "astronaut.png", media)
    (tmp_path / "browser.py").write_text(FAKE_BROWSER)
    out = tmp_path / "browser.json"
    browser = f"{sys.executable} {tmp_path / 'browser.py'} {out} %s"
    with running_ui(tmp_path, media, tiny_model, model_cache, browser=browser):
        for _ in range(600):
            if out.exists():
                break
            time.sleep(0.1)
        seen = json.loads(out.read_text())
        command_lines = subprocess.run(  # what any user sees: ps -eo args
            ["ps", "-ww", "-eo", "args"],
            capture_output=True,
            text=True,
            user=65534 if os.geteuid() == 0 else None,
            check=True,
        ).stdout
    code = urlsplit(seen["launch"]).path.removeprefix("/launch/")
    [opened] = seen["argv"]
    assert opened.startswith("file://") and opened in command_lines  # the browser's own
    assert TOKEN not in command_lines and code not in command_lines
    assert seen["file_mode"] == 0o600 and seen["folder_mode"] == 0o700
    assert seen["owner"] == os.getuid() and not Path(urlsplit(opened).path).exists()
    assert seen["launch_status"] == 200 and seen["home_status"] == 200
    assert "HttpOnly" in seen["cookie"] and "SameSite=Strict" in seen["cookie"]


def test_the_launch_link_dies_at_first_use_and_a_second_use_closes_its_session(
    tmp_path: Path, photo_library: Path, tiny_model: str, model_cache: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(photo_library / "astronaut.png", media)
    (tmp_path / "browser.py").write_text(FAKE_BROWSER)
    out = tmp_path / "browser.json"
    browser = f"{sys.executable} {tmp_path / 'browser.py'} {out} %s"
    with running_ui(tmp_path, media, tiny_model, model_cache, browser=browser) as app:
        for _ in range(600):
            if out.exists():
                break
            time.sleep(0.1)
        seen = json.loads(out.read_text())
        session = {"Cookie": seen["cookie"].split(";")[0]}
        assert app.request("/", headers=session)[0] == 200
        status, _, page = get(app, urlsplit(seen["launch"]).path)
        assert status == 403 and "works once" in alert(page)
        assert app.request("/", headers=session)[0] == 403  # whoever used it first is out
        assert get(app, f"/?token={TOKEN}")[0] == 200  # the printed address still works
        time.sleep(0.5)
        assert any("used twice" in line for line in app.stderr)
