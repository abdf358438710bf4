"""The live playground's page in a real headless Chromium (selenium), on a real server on 127.0.0.1.

    pytest tests/test_playground_page.py -q -s            # slow: about 20 s; part of `make test-all`
    SCREENSHOT_DIR=docs/pictures/serve pytest tests/test_playground_page.py   # the README's picture (make screenshot)

It follows a user: from the digit page's link to the playground; changes the dataset and the layers; presses play
and reads both sides' losses falling, within 1e-9 of each other in float64; hovers a connection for both weights;
pauses (the server's training stops), steps one epoch, resets (a new session, the old one deleted). It skips,
with the reason, where Chromium or chromedriver is missing (`apt-get install chromium chromium-driver`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
import web_helpers  # noqa: E402
from web_helpers import LocalServer  # noqa: E402

from compare.training.config import Config  # noqa: E402
from compare.training.learners import build_pair  # noqa: E402
from compare.web.app import create_app  # noqa: E402
from compare.web.predict import DigitReader  # noqa: E402
from compare.web.sessions import SessionPool  # noqa: E402


@pytest.fixture
def server():
    reader = DigitReader(build_pair(Config()), 0.1307, 0.3081, [str(i) for i in range(10)], "an untrained network",
                         "untrained", {"scratch": 0.0, "torch": 0.0})
    pool = SessionPool()
    local = LocalServer(create_app(reader, pool))
    local.pool = pool
    yield local
    local.stop()


def value(driver, css: str) -> float:
    from selenium.webdriver.common.by import By

    return float(driver.find_element(By.CSS_SELECTOR, css).get_attribute("data-value"))


SHOWN = """const v = (css) => Number(document.querySelector(css).dataset.value);
return {epoch: v('#epoch'), scratch: v('#scratch .train_loss'), torch: v('#torch .train_loss'),
        loss_difference: v('#max-loss-diff'), parameter_difference: v('#max-param-diff')};"""


def shown(driver) -> dict:
    """What the page shows, read in one go (between two frames: the page may draw the next one any moment)."""
    return driver.execute_script(SHOWN)


def wait(driver, condition, what: str, seconds: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(lambda d: condition(d), message=f"waited {seconds} s for {what}")


@pytest.mark.slow
def test_the_playground_page_in_a_real_browser(server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with web_helpers.browser() as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the projector's 1280x800, exactly
                               {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        driver.get(server.url)
        driver.find_element(By.ID, "to-playground").click()
        wait(driver, lambda d: d.current_url.endswith("/playground"), "the digit page's link to the playground")
        assert driver.find_element(By.ID, "to-digits").get_attribute("href") == server.url + "/"
        frame = "return window.playground.last"
        wait(driver, lambda d: d.execute_script(frame) is not None, "the first frame")

        def session():
            key = driver.execute_script("return window.playground.id")
            return key, server.pool.get(key)

        # the dataset and the layers: each change resets the network (a new session of those settings)
        driver.find_element(By.CSS_SELECTOR, "canvas[data-dataset=xor]").click()
        driver.find_element(By.ID, "add-layer").click()
        wait(driver, lambda d: d.find_elements(By.ID, "add-neuron-2"), "the third layer's + button")
        driver.find_element(By.ID, "add-neuron-2").click()
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".node.neuron")) == 4 + 2 + 3, "9 neurons")
        wait(driver, lambda d: (d.execute_script(frame) or {}).get("step") == 0 and
             session()[1].settings.hidden == (4, 2, 3), "the new network's first frame")
        key, playing = session()
        assert playing.settings.dataset == "xor" and playing.settings.dtype == "float64"
        start = shown(driver)

        driver.find_element(By.ID, "play").click()
        wait(driver, lambda d: int(d.find_element(By.ID, "epoch").get_attribute("data-value")) >= 40, "40 epochs")
        now = shown(driver)
        largest = now["loss_difference"]
        print(f"\nplayground page: xor, 4,2,3 tanh, float64; after epoch {now['epoch']}: training loss scratch "
              f"{start['scratch']:.4f} -> {now['scratch']:.4f}, torch {start['torch']:.4f} -> {now['torch']:.4f}; "
              f"largest |scratch - torch| loss {largest:.1e}, parameters {now['parameter_difference']:.1e}")
        assert now["scratch"] < 0.9 * start["scratch"] and now["torch"] < 0.9 * start["torch"], (start, now)
        assert abs(now["scratch"] - now["torch"]) <= 1e-9 and largest <= 1e-9
        assert float(driver.find_element(By.CSS_SELECTOR, "#torch .test_accuracy").get_attribute("data-value")) > 0.5

        link = driver.find_element(By.CSS_SELECTOR, "#links path[data-link='1-0-0']")  # neuron 1.1 -> neuron 2.1
        ActionChains(driver).move_to_element(link).perform()
        tip = driver.find_element(By.ID, "tooltip")
        wait(driver, lambda d: tip.is_displayed() and "scratch" in tip.text and "torch" in tip.text, "the tooltip")
        assert tip.text.startswith("weight neuron 1.1 \u2192 neuron 2.1"), tip.text

        driver.find_element(By.ID, "play").click()  # pause
        wait(driver, lambda d: d.execute_script("return window.playground.playing") is False, "the pause")
        time.sleep(0.6)  # the epoch under way ends; then the server trains no more
        paused = playing.epoch
        time.sleep(0.6)
        assert playing.epoch == paused
        on_page = int(driver.find_element(By.ID, "epoch").get_attribute("data-value"))
        folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(folder / "playground.png"))

        driver.find_element(By.ID, "step").click()
        wait(driver, lambda d: int(d.find_element(By.ID, "epoch").get_attribute("data-value")) == paused + 1,
             "one more epoch")
        assert playing.epoch == paused + 1 and on_page <= paused

        driver.find_element(By.ID, "reset").click()
        wait(driver, lambda d: d.execute_script("return window.playground.id") not in (None, key) and
             (d.execute_script(frame) or {}).get("step") == 0, "the reset network")
        wait(driver, lambda d: key not in server.pool, "the old session's deletion")
        assert session()[1].settings.hidden == (4, 2, 3)  # a reset keeps the settings
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        print(f"screenshot: {folder / 'playground.png'}")


FIREFOX_READ = """const v = (css) => document.querySelector(css).dataset.value;
return {epoch: Number(v('#epoch')), scratch: Number(v('#scratch .train_loss')), torch: Number(v('#torch .train_loss')),
        difference: Number(v('#max-loss-diff')), neurons: document.querySelectorAll('.node.neuron').length,
        links: document.querySelectorAll('#links path').length, playing: window.playground.playing,
        id: window.playground.id, status: document.getElementById('status').textContent};"""


@pytest.mark.slow
def test_the_playground_page_in_firefox(server):
    """The same page in headless Firefox ESR (over Marionette, tests/marionette.py): a dataset and a layer changed,
    play for a while, pause; the losses fall on both sides and agree to 1e-9, and the server trained that session."""
    from marionette import firefox

    with firefox() as page:
        page.call("WebDriver:Navigate", {"url": server.url + "/playground"})

        def until(condition: str, what: str, seconds: float = 30) -> dict:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                state = page.script(FIREFOX_READ) if page.script(f"return Boolean({condition})") else None
                if state is not None:
                    return state
                time.sleep(0.2)
            raise AssertionError(f"waited {seconds} s in Firefox for {what}")

        until("window.playground && window.playground.last", "the first frame")
        page.script("document.querySelector('canvas[data-dataset=gaussian]').click()")
        until("window.playground.last && window.playground.last.step === 0 && "
              "document.querySelector('canvas.selected').dataset.dataset === 'gaussian'", "the gaussian dataset")
        page.script("document.getElementById('add-layer').click()")
        start = until("window.playground.last && window.playground.last.step === 0 && "
                      "document.querySelectorAll('.node.neuron').length === 8", "the third layer")
        page.script("document.getElementById('play').click()")
        until("Number(document.getElementById('epoch').dataset.value) >= 20", "20 epochs")
        page.script("document.getElementById('play').click()")
        now = until("window.playground.playing === false", "the pause")
        print(f"\nplayground page in Firefox: epoch {now['epoch']}, training loss scratch {start['scratch']:.4f} -> "
              f"{now['scratch']:.4f}, torch {start['torch']:.4f} -> {now['torch']:.4f}, largest difference "
              f"{now['difference']:.1e}")
        assert now["scratch"] < start["scratch"] and now["torch"] < start["torch"], (start, now)
        assert abs(now["scratch"] - now["torch"]) <= 1e-9 and now["difference"] <= 1e-9 and not now["status"]
        assert now["links"] == 2 * 4 + 4 * 2 + 2 * 2 + 2 * 2  # features -> 4 -> 2 -> 2 -> the two outputs
        session = server.pool.get(now["id"])
        assert session.settings.dataset == "gaussian" and session.settings.hidden == (4, 2, 2)
        assert session.epoch >= now["epoch"]
