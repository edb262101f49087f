"""The search page in a real headless Chromium, past the first 60 results: a count and more
results, capture dates on the cards and month headings in date order, filters that apply
at once, a query picture that can be removed, the query box on a result's page, sharper
thumbnails on dense screens, a loading state, and a layout a phone works by touch. The
library is the UI tests' media plus 70 small photos dated over three months.
Screenshots (1280 x 900 and 390 x 844) land in $MMSEARCH_TEST_ARTEFACTS."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ffmpeg
from PIL import Image
from ui_app import (
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
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

MANY = 70  # more than one page of results (60)


def dated(i: int) -> float:
    """Photo i's capture date (no EXIF: the file's mtime when indexed), over three months."""
    return datetime(2024, 4 + i % 3, 1 + i % 28, 12).timestamp()


@pytest.fixture(scope="module")
def ui(
    tmp_path_factory: pytest.TempPathFactory,
    photo_library: Path,
    tiny_model: str,
    model_cache: Path,
) -> Iterator[RunningUI]:
    root = tmp_path_factory.mktemp("ui-pages")
    media = make_media(root, photo_library)
    (media / "many").mkdir()
    for i in range(MANY):
        path = media / "many" / f"{i:03}.png"
        Image.new("RGB", (48, 32), (i * 3, 255 - i * 3, (i * 37) % 256)).save(path)
        os.utime(path, (dated(i), dated(i)))
    with running_ui(root, media, tiny_model, model_cache) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artefact_folder(tmp_path_factory)


def open_search(driver: WebDriver, ui: RunningUI, params: str) -> list[str]:
    driver.get(f"{ui.url}&{params}")
    return shown(driver)


def cards(driver: WebDriver) -> int:
    return int(driver.execute_script("return document.querySelectorAll('li.card').length"))


def test_the_count_says_how_many_and_more_results_come_below(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    open_search(browser, ui, "q=anything&kind=image")
    browser.save_screenshot(str(artefacts / "ui-desktop.png"))
    assert browser.find_element(By.ID, "count").text == "60 results+"
    assert cards(browser) == 60
    browser.execute_script("document.getElementById('more').scrollIntoView()")
    wait(browser, "return document.querySelectorAll('li.card').length > 60")
    assert cards(browser) > 60
    assert browser.find_element(By.ID, "count").text == f"{cards(browser)} results"
    assert "n=2" in browser.current_url and not browser.find_elements(By.ID, "more")


def test_cards_show_their_capture_date(browser: WebDriver, ui: RunningUI) -> None:
    open_search(browser, ui, "q=anything&kind=image&n=2")
    card = browser.find_element(By.CSS_SELECTOR, f"a.hit[title$='{os.sep}many{os.sep}005.png']")
    expected = time.strftime("%Y-%m-%d", time.localtime(dated(5)))
    assert card.find_element(By.TAG_NAME, "time").text == expected


def test_newest_first_is_by_capture_date_in_month_groups(
    browser: WebDriver, ui: RunningUI, artefacts: Path
) -> None:
    touched = ui.media / "many" / "000.png"  # touched after indexing: capture date unchanged
    os.utime(touched, (2e9, 2e9))
    open_search(browser, ui, "q=anything&kind=image&sort=newest")
    taken = browser.execute_script(
        "return [...document.querySelectorAll('#results time')].map(t => +t.dataset.taken)"
    )
    assert len(taken) == 60 and taken == sorted(taken, reverse=True)
    months = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "li.group h2")]
    assert months == sorted(set(months), reverse=True) and {"2024-06", "2024-05"} <= set(months)
    browser.save_screenshot(str(artefacts / "ui-desktop-by-date.png"))


def test_a_changed_filter_applies_without_pressing_search(
    browser: WebDriver, ui: RunningUI
) -> None:
    open_search(browser, ui, "q=anything")
    browser.find_element(By.CSS_SELECTOR, "summary").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=kind][value=video]").click()
    wait(browser, "return location.search.includes('kind=video')")
    assert shown(browser) == [str(ui.media / "clips" / "patterns.mp4")]


def test_a_search_says_it_is_loading_until_the_page_comes(
    browser: WebDriver, ui: RunningUI
) -> None:
    open_search(browser, ui, "q=anything")
    browser.execute_script(  # after the page's own handler: keep this page to look at it
        "document.getElementById('search').addEventListener('submit', e => e.preventDefault())"
    )
    browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    assert browser.find_element(By.ID, "busy").text == "searching…"
    assert "loading" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")


def test_the_query_picture_can_be_removed_keeping_the_words(
    browser: WebDriver, ui: RunningUI
) -> None:
    open_search(browser, ui, "q=anything&kind=image")
    like = browser.find_element(By.CSS_SELECTOR, "a.similar").get_attribute("href")
    browser.get(f"{like}&q={quote('+ red')}")
    shown(browser)
    browser.find_element(By.ID, "drop-picture").click()
    wait(browser, "return !location.search.includes('like=')")
    assert "q=red" in browser.current_url  # without the picture, "+ red" is "red"
    assert not browser.find_elements(By.CSS_SELECTOR, ".query-picture")


def test_a_result_page_has_the_query_box(browser: WebDriver, ui: RunningUI) -> None:
    open_search(browser, ui, "q=anything&kind=image")
    browser.find_element(By.CSS_SELECTOR, "a.hit").click()
    wait(browser, "return !!document.querySelector('main.item')")
    box = browser.find_element(By.ID, "q")
    box.send_keys("anything\n")
    wait(browser, "return !!document.getElementById('results')")
    assert shown(browser)


def test_dense_screens_get_the_sharper_thumbnail(ui: RunningUI) -> None:
    with chromium() as driver:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 2, "mobile": False},
        )
        open_search(driver, ui, "q=anything&kind=image")
        src = driver.execute_script("return document.querySelector('#results img').currentSrc")
    assert "size=l" in src


def test_a_phone_gets_a_header_that_scrolls_away_and_visible_buttons(
    ui: RunningUI, artefacts: Path
) -> None:
    with chromium() as driver:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
        open_search(driver, ui, "q=anything&kind=image")
        style = "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]"
        assert driver.execute_script(style, "header", "position") == "static"
        assert driver.execute_script(style, "a.similar", "opacity") == "1"
        columns = driver.execute_script(style, ".grid", "grid-template-columns").split()
        assert len(columns) == 2
        driver.save_screenshot(str(artefacts / "ui-phone.png"))


def test_the_folder_field_offers_the_indexed_folders(browser: WebDriver, ui: RunningUI) -> None:
    open_search(browser, ui, "q=anything")
    browser.find_element(By.CSS_SELECTOR, "summary").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=in]").click()
    offered = wait(
        browser, "return [...document.querySelectorAll('#roots option')].map(o => o.value)"
    )
    assert offered == [str(ui.media)]


def test_the_viewer_walks_to_the_next_and_previous_result(
    browser: WebDriver, ui: RunningUI
) -> None:
    paths = open_search(browser, ui, "q=anything&kind=image")
    browser.find_element(By.CSS_SELECTOR, "a.hit").click()
    wait(browser, "return !!document.querySelector('main.item')")
    browser.find_element(By.ID, "next").click()
    wait(browser, f"return document.querySelector('p.path')?.textContent === {paths[1]!r}")
    browser.find_element(By.TAG_NAME, "body").send_keys("\ue012")  # ArrowLeft
    wait(browser, f"return document.querySelector('p.path')?.textContent === {paths[0]!r}")


def test_the_viewer_zooms_a_picture_and_goes_full_screen(browser: WebDriver, ui: RunningUI) -> None:
    open_search(browser, ui, "q=anything&kind=image")
    browser.find_element(By.CSS_SELECTOR, "a.hit").click()
    picture = wait(browser, "return document.getElementById('picture-large')")
    picture.click()
    assert "zoomed" in picture.get_attribute("class")
    browser.find_element(By.ID, "fullscreen").click()
    wait(browser, "return document.fullscreenElement?.id === 'picture-large'", 10)
    browser.execute_script("document.exitFullscreen()")


@pytest.fixture(scope="module")
def video_moments(ui: RunningUI) -> str:
    """Search parameters that find the test video's moments: a still of it at 2 s, typed as
    a path (inside the library's folder, not indexed), every moment asked for."""
    frame = ui.media / "frame-at-2s.png"
    ffmpeg("-ss", "2", "-i", str(ui.media / "clips" / "patterns.mp4"), "-frames:v", "1", str(frame))
    return f"q={quote(str(frame))}&kind=video&moments=1"


def test_every_moment_of_a_video_is_a_card_when_asked(
    browser: WebDriver, ui: RunningUI, video_moments: str
) -> None:
    open_search(browser, ui, video_moments.replace("&moments=1", ""))
    assert len(browser.find_elements(By.CSS_SELECTOR, "a.hit")) == 1
    open_search(browser, ui, video_moments)
    moments = [w.text for w in browser.find_elements(By.CSS_SELECTOR, "a.hit .where")]
    assert len(moments) > 1 and len(set(moments)) == len(moments)


def test_a_moment_shows_its_span_on_the_video_timeline(
    browser: WebDriver, ui: RunningUI, video_moments: str
) -> None:
    open_search(browser, ui, video_moments)
    browser.execute_script(  # the latest moment: its span starts well inside the video
        "const t = a => +new URL(a.href).searchParams.get('t');"
        "[...document.querySelectorAll('a.hit')].sort((a, b) => t(b) - t(a))[0].click()"
    )
    span = wait(
        browser,
        "return document.getElementById('span').style.width && ["
        + ",".join(
            (
                "+document.getElementById('timeline').dataset.t",
                "+document.getElementById('timeline').dataset.end",
                "document.getElementById('player').duration",
                "parseFloat(document.getElementById('span').style.left)",
                "parseFloat(document.getElementById('span').style.width)",
            )
        )
        + "]",
    )
    start, end, duration, left, width = span
    assert start > 0 and end > start and left == pytest.approx(100 * start / duration, abs=0.1)
    assert width == pytest.approx(100 * (end - start) / duration, abs=0.1)
