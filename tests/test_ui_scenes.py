"""The web UI shows the *right* thumbnails: with the trained scene model (tests/scene_model),
a typed description brings its picture first, and "more like this" brings a picture's
re-encoded copy first — in headless Chromium, as a person would see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from scene_model.scenes import Scene, Thing, caption, render
from ui_app import (
    RunningUI,
    artefact_folder,
    chromium,
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

SCENES = {
    "red-circle": Scene("white", things=(Thing("circle", "red"),), size="large"),
    "yellow-stars": Scene("black", things=(Thing("star", "yellow"),), count=3),
    "blue-square": Scene("yellow", things=(Thing("square", "blue"),), size="large"),
    "green-triangle": Scene("gray", things=(Thing("triangle", "green"),), size="large"),
    "orange-cross": Scene("blue", texture="striped", things=(Thing("cross", "orange"),)),
    "pizza": Scene("white", words="pizza"),
}


@pytest.fixture(scope="module")
def ui(
    tmp_path_factory: pytest.TempPathFactory, scene_model: str, model_cache: Path
) -> Iterator[RunningUI]:
    root = tmp_path_factory.mktemp("ui-scenes")
    media = root / "scenes"
    media.mkdir()
    for name, scene in SCENES.items():
        render(scene).save(media / f"{name}.png")
    # A copy as phones and chats make them: cropped a little, resized, JPEG re-encoded.
    original = Image.open(media / "red-circle.png")
    original.crop((6, 6, 122, 122)).resize((100, 100)).save(media / "circle-copy.jpg", quality=80)
    with running_ui(root, media, scene_model, model_cache) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.mark.parametrize("name", ["red-circle", "yellow-stars", "green-triangle", "pizza"])
def test_a_description_brings_its_picture_first(
    browser: WebDriver, ui: RunningUI, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    browser.get(ui.url)
    browser.find_element(By.ID, "q").send_keys(caption(SCENES[name]), Keys.ENTER)
    wait(browser, "return location.search.includes('q=')")
    first = shown(browser)[0]
    assert Path(first).stem in (name, "circle-copy" if name == "red-circle" else name)
    if name == "yellow-stars":
        browser.save_screenshot(str(artefact_folder(tmp_path_factory) / "ui-scenes.png"))


def test_more_like_this_brings_the_copy_first(browser: WebDriver, ui: RunningUI) -> None:
    browser.get(ui.url)
    browser.find_element(By.ID, "q").send_keys(caption(SCENES["red-circle"]), Keys.ENTER)
    wait(browser, "return location.search.includes('q=')")
    card = next(
        c
        for c in browser.find_elements(By.CSS_SELECTOR, ".card")
        if c.find_element(By.CSS_SELECTOR, "a.hit")
        .get_attribute("title")
        .endswith("red-circle.png")
    )
    browser.get(card.find_element(By.CSS_SELECTOR, "a.similar").get_attribute("href"))
    assert Path(shown(browser)[0]).name == "circle-copy.jpg"
