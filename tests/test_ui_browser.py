"""`mmsearch ui` in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with no driver download): what a person does — type a query, ask for more like a
result, play a video from its moment, read a PDF page, search by a picture — and what they
see. Screenshots land in $MMSEARCH_TEST_ARTEFACTS (default: a temporary folder).

Skipped only where chromium is absent and CI is not set; in CI they must run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ffmpeg
from ui_app import (
    CHROMIUM,
    TOKEN,
    RunningUI,
    artefact_folder,
    chromium,
    make_media,
    running_ui,
    shown,
    skip_without_chromium,
    wait,
)

pytest.importorskip("starlette")
skip_without_chromium()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


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


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artefact_folder(tmp_path_factory)


def search(driver: WebDriver, ui: RunningUI, words: str) -> list[str]:
    driver.get(ui.url)
    box = driver.find_element(By.ID, "q")
    box.send_keys(words, Keys.ENTER)
    wait(driver, "return location.search.includes('q=')")
    return shown(driver)


def test_a_typed_query_shows_its_thumbnails(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    paths = search(browser, ui, str(ui.media / "astronaut.png"))
    assert paths[0] == str(ui.media / "copies" / "astronaut-copy.png")
    assert browser.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.loading === 'lazy')"
    )
    browser.save_screenshot(str(artefacts / "ui-results.png"))


def test_more_like_this_from_the_keyboard(browser: WebDriver, ui: RunningUI) -> None:
    search(browser, ui, str(ui.media / "astronaut.png"))
    browser.find_element(By.ID, "q").send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("title") == str(ui.media / "copies" / "astronaut-copy.png")
    focused.send_keys("m")
    wait(browser, "return location.search.includes('like=')")
    paths = shown(browser)
    assert paths[0] == str(ui.media / "astronaut.png")  # the copy's original
    assert str(ui.media / "copies" / "astronaut-copy.png") not in paths
    assert browser.find_element(By.CSS_SELECTOR, "img.query-picture").is_displayed()


def test_arrow_keys_walk_the_grid_and_enter_opens_a_result(
    browser: WebDriver, ui: RunningUI
) -> None:
    paths = search(browser, ui, str(ui.media / "astronaut.png"))
    browser.find_element(By.ID, "q").send_keys(Keys.ARROW_DOWN)
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    second = browser.switch_to.active_element
    assert second.get_attribute("title") == paths[1]
    second.send_keys(Keys.ENTER)
    wait(browser, "return location.pathname.startsWith('/item/')")
    assert browser.find_element(By.CSS_SELECTOR, ".path").text == paths[1]


def test_a_video_result_plays_from_its_moment(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    video = ui.media / "clips" / "patterns.mp4"
    frame = ui.media / "frame-at-8s.png"  # the zoneplate scene, which starts at 8 s
    ffmpeg("-ss", "8", "-i", str(video), "-frames:v", "1", str(frame))  # a typed picture
    try:  # path must lie in the library (not indexed: its folder is what counts)
        browser.get(f"{ui.url}&q={quote(str(frame))}&kind=video")
        assert shown(browser) == [str(video)]
    finally:
        frame.unlink()
    browser.find_element(By.CSS_SELECTOR, "a.hit").click()
    wait(browser, "return location.pathname.startsWith('/item/')")
    t = float(browser.find_element(By.ID, "player").get_attribute("data-t"))
    assert t == pytest.approx(8.0, abs=0.6)
    current = wait(
        browser,
        "const v = document.getElementById('player');"
        "return v.readyState >= 1 && v.currentTime > 0 ? v.currentTime : null;",
    )
    assert current == pytest.approx(t, abs=0.5)
    browser.execute_script("document.getElementById('player').play()")
    wait(browser, "return document.getElementById('player').currentTime > " + str(t + 0.2))
    browser.save_screenshot(str(artefacts / "ui-video.png"))


def test_a_pdf_result_shows_its_page_and_passage(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    browser.get(f"{ui.url}&q=giraffe&mode=text")
    assert shown(browser)[0] == str(ui.media / "docs" / "zoo.pdf")
    assert browser.find_element(By.CSS_SELECTOR, ".card .where").text == "p. 2"
    browser.find_element(By.CSS_SELECTOR, "a.hit").click()
    wait(
        browser,
        "const i = document.getElementById('picture-large'); return i && i.naturalWidth > 0",
    )
    assert "giraffe" in browser.find_element(By.ID, "snippet").text
    browser.save_screenshot(str(artefacts / "ui-pdf-page.png"))


def test_an_uploaded_picture_finds_its_copy(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    browser.get(ui.url)
    picture = ui.media / "hubble_deep_field.jpg"
    browser.find_element(By.ID, "picture").send_keys(str(picture))
    wait(browser, "return location.search.includes('img=')")
    assert shown(browser)[0] == str(picture)
    assert browser.find_element(By.CSS_SELECTOR, "img.query-picture").is_displayed()
    browser.save_screenshot(str(artefacts / "ui-upload.png"))


def test_a_dropped_picture_is_searched_with_the_typed_words(
    browser: WebDriver, ui: RunningUI
) -> None:
    browser.get(ui.url)
    browser.find_element(By.ID, "q").send_keys("- 0.05:stripes")
    data = (ui.media / "astronaut.png").read_bytes()
    browser.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const dt = new DataTransfer();"
        "dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
        "document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));",
        __import__("base64").b64encode(data).decode(),
    )
    wait(browser, "return location.search.includes('img=')")
    # random weights: which result comes first is the upload test's business, not this one's
    assert browser.find_element(By.ID, "q").get_attribute("value") == "- 0.05:stripes"
    assert browser.find_element(By.CSS_SELECTOR, "img.query-picture").is_displayed()
    assert shown(browser)


def test_a_non_picture_upload_says_so_in_the_page(browser: WebDriver, ui: RunningUI) -> None:
    browser.get(ui.url)
    browser.find_element(By.ID, "picture").send_keys(str(ui.opened.parent / "opener.py"))
    message = wait(
        browser, "const m = document.getElementById('upload-message'); return m && m.textContent"
    )
    assert "not a picture" in str(message)


def test_a_bad_query_shows_a_message_not_a_traceback(browser: WebDriver, ui: RunningUI) -> None:
    browser.get(f"{ui.url}&q={quote(str(ui.media / 'no-such.jpg'))}")
    message = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "no such image" in message and "Traceback" not in browser.page_source


RECORDER = """import sys
with open(sys.argv[1], "w") as f:
    f.write(sys.argv[2])
"""


def test_the_launch_file_signs_the_browser_in_with_a_cookie_and_no_token_in_sight(
    browser: WebDriver, tmp_path: Path, photo_library: Path, tiny_model: str, model_cache: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(photo_library / "astronaut.png", media)
    (tmp_path / "recorder.py").write_text(RECORDER)
    given = tmp_path / "given.txt"  # what `mmsearch ui` asked the desktop to open
    opener = f"{sys.executable} {tmp_path / 'recorder.py'} {given} %s"
    with running_ui(tmp_path, media, tiny_model, model_cache, browser=opener) as ui:
        for _ in range(600):
            if given.exists() and given.read_text():
                break
            time.sleep(0.1)
        launch = given.read_text()
        assert launch.startswith("file://") and TOKEN not in launch
        browser.delete_all_cookies()
        browser.get(launch)
        wait(browser, "return document.getElementById('q') !== null")
        assert browser.current_url == f"http://127.0.0.1:{ui.port}/"
        [cookie] = browser.get_cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert browser.execute_script("return document.cookie") == ""  # no script reads it
        box = browser.find_element(By.ID, "q")
        box.send_keys("anything", Keys.ENTER)
        wait(browser, "return location.search.includes('q=')")
        assert TOKEN not in browser.current_url and "no valid session" not in browser.page_source
        assert shown(browser)  # thumbnails load by the cookie too
        assert not Path(launch.removeprefix("file://")).exists()  # gone once used


def test_chromium_is_the_system_one() -> None:
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout
    assert "Chromium" in version
