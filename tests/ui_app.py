"""A real `mmsearch ui` for the web UI's tests: a small indexed library (photos, one copied,
a video of known scenes, a PDF with a picture page), the UI in its own process as a user
starts it, and a plain HTTP client that can lie about the Host header."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from helpers import make_pdf, make_video

TOKEN = "test-token-0123456789"
OPENER = """import sys
with open(sys.argv[1], "a") as f:
    f.write("\\t".join(sys.argv[2:]) + "\\n")
"""


@dataclass
class RunningUI:
    url: str  # as printed on stdout's first line
    port: int
    db: str
    media: Path
    opened: Path  # what the desktop opener was asked to open, one line per request
    process: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        host: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()


def make_media(root: Path, photo_library: Path) -> Path:
    media = Path(shutil.copytree(photo_library, root / "media"))
    (media / "copies").mkdir()
    shutil.copy(media / "astronaut.png", media / "copies" / "astronaut-copy.png")
    make_video(media / "clips" / "patterns.mp4")  # scenes start at 0, 4, 8 and 12 s
    make_pdf(
        media / "docs" / "zoo.pdf",
        ["The zebra page has stripes.", "A giraffe and its long neck."],
        {2: next(media.rglob("coffee.*"))},
    )
    return media


@contextmanager
def running_ui(root: Path, photo_library: Path, model: str, cache: Path) -> Iterator[RunningUI]:
    """Index a fresh library with the tiny model, then start `mmsearch ui` on it."""
    media = make_media(root, photo_library)
    opener = root / "opener.py"
    opener.write_text(OPENER)
    opened = root / "opened.txt"
    env = {
        **os.environ,
        "MMSEARCH_DB": str(root / "store"),
        "MMSEARCH_MODEL": model,
        "MMSEARCH_CACHE": str(cache),
        "MMSEARCH_UI_TOKEN": TOKEN,
        "MMSEARCH_OPENER": f"{sys.executable} {opener} {opened} {{path}} {{t}}",
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(root / "xdg-cache"),
        "XDG_DATA_HOME": str(root / "xdg-data"),
        "XDG_RUNTIME_DIR": str(root / "run"),
    }
    (root / "run").mkdir(mode=0o700)
    for name in ("MMSEARCH_PRETRAINED", "MMSEARCH_TRACEBACK", "MMSEARCH_NO_SERVER"):
        env.pop(name, None)
    command = [sys.executable, "-m", "mmsearch"]
    subprocess.run(
        [*command, "index", "-q", str(media)], env=env, check=True, timeout=600, capture_output=True
    )
    process = subprocess.Popen(
        [*command, "ui", "--no-open", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, process.stderr.read())
        ui = RunningUI(url, urlsplit(url).port or 0, env["MMSEARCH_DB"], media, opened, process)
        drain = threading.Thread(target=lambda: ui.stderr.extend(process.stderr), daemon=True)
        drain.start()
        yield ui
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
