"""A real `mmsearch ui` for the web UI's tests: a small indexed library (photos, one copied,
a video of known scenes, a PDF with a picture page, or whatever a test brings), the UI in its
own process as a user starts it, and a plain HTTP client that can lie about the Host header."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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
def running_ui(
    root: Path,
    media: Path,
    model: str,
    cache: Path,
    browser: str | None = None,
    min_score: str | None = "0",
) -> Iterator[RunningUI]:
    """Index `media` into a fresh store with `model`, then start `mmsearch ui` on it; with
    `browser` (a command, as $BROWSER takes it), on a desktop that opens it; its default
    minimum score `min_score` (0 for random weights: mechanics only; None: the calibrated
    default)."""
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
    env.pop("MMSEARCH_MIN_SCORE", None)
    if min_score is not None:
        env["MMSEARCH_MIN_SCORE"] = min_score
    command = [sys.executable, "-m", "mmsearch"]
    subprocess.run(
        [*command, "index", "-q", str(media)], env=env, check=True, timeout=600, capture_output=True
    )
    if browser is not None:
        env.update(BROWSER=browser, DISPLAY=":0")
    process = subprocess.Popen(
        [*command, "ui", *([] if browser else ["--no-open"]), "--port", "0"],
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


# The browser: Debian's chromium and chromium-driver, driven by Selenium with no download.

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--window-size=1280,860",
)


def skip_without_chromium() -> None:
    """Skip the calling test module where chromium is absent, unless in CI (there it must
    run: `.ci/run` installs it)."""
    import pytest

    present = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
    if not present and not os.environ.get("CI"):
        pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium session with a new empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="mmsearch-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, script: str, timeout: float = 60) -> object:
    """Until the script returns something truthy; that value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(script)
    )


def shown(driver: Any) -> list[str]:
    """The results' paths, in the order shown, once their visible thumbnails have loaded."""
    from selenium.webdriver.common.by import By

    wait(
        driver,
        "const imgs = [...document.querySelectorAll('#results img')].slice(0, 12);"
        "return document.readyState === 'complete' && imgs.length > 0 &&"
        " imgs.every(i => i.complete && i.naturalWidth > 0);",
    )
    return [a.get_attribute("title") for a in driver.find_elements(By.CSS_SELECTOR, "a.hit")]


def artefact_folder(factory: Any) -> Path:
    """Where screenshots go: $MMSEARCH_TEST_ARTEFACTS, else a temporary folder."""
    folder = os.environ.get("MMSEARCH_TEST_ARTEFACTS")
    path = Path(folder) if folder else factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
