"""The operator page in a real headless browser (Debian's chromium via Selenium) against a live node.

The tracker node (the packaged model) tracks a ../shared/sot sequence played frame by frame; the
operator server is its own process, started as a user would. A person's actions are scripted with
pointer events: drag the first ground-truth box, watch the node track it, click it to stop it.
Set GRM_OPERATOR_SCREENSHOT=docs/operator.png to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_operator import spinning

from grm_ros.datasets import load_frame, read_uniform
from grm_ros.ros.messages import ns_to_stamp

from node_harness import image_msg, make_harness

SEQUENCE = "bag"  # the packaged model follows this one well (AUC 0.71), so the page shows real tracking
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class Player:
    """A camera replaying the sequence at 10 Hz with fresh stamps; ``advance`` off repeats the frame."""

    def __init__(self, publisher, frames: list) -> None:
        self.publisher, self.frames = publisher, frames
        self.index = 0
        self.advance = False
        self._running = True
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()

    def _play(self) -> None:
        while self._running:
            if self.advance:
                self.index = (self.index + 1) % len(self.frames)
            self.publisher.publish(image_msg(self.frames[self.index], ns_to_stamp(time.time_ns())))
            time.sleep(0.1)

    def stop(self) -> None:
        self._running = False
        self._thread.join()


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # nothing leaves loopback
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live_node(ros_context, executor):
    """The tracker node with the packaged model, spun on a thread while the browser is driven."""
    h = make_harness(ros_context, executor, variant="small_cpu", allow_random=False, frame_buffer_size=100,
                     reliable_image=True)  # 480x360 frames: best-effort loses fragments
    try:
        with spinning(executor):
            yield h
    finally:
        h.close()


@pytest.fixture
def operator_url(live_node):
    """``grm-operator`` as its own process, on a free loopback port, watching the live node."""
    proc = subprocess.Popen([sys.executable, "-m", "grm_ros.ros.operator.server", "--node",
                             live_node.node.get_fully_qualified_name(), "--port", "0"], env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        yield match.group(1)
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0, proc.stdout.read()


def _canvas_point(driver, canvas, x: float, y: float) -> tuple[int, int]:
    """Offsets from the canvas centre (what Selenium's pointer actions take) of image pixel (x, y)."""
    width, height, image_w, image_h = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height, arguments[0].width, "
        "arguments[0].height];", canvas)
    return round(x * width / image_w - width / 2), round(y * height / image_h - height / 2)


def _drag(driver, canvas, box) -> str:
    """Drag ``box`` (image pixels) on the canvas; returns the stamp of the frame shown while drawing."""
    x, y, w, h = box
    start, end = _canvas_point(driver, canvas, x, y), _canvas_point(driver, canvas, x + w, y + h)
    ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold().perform()
    shown = canvas.get_attribute("data-stamp")
    chain = ActionChains(driver)
    for step in (0.5, 1.0):
        chain.move_to_element_with_offset(canvas, round(start[0] + (end[0] - start[0]) * step),
                                          round(start[1] + (end[1] - start[1]) * step))
    chain.release().perform()
    return shown


def _log(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#log li')].map((l) => l.textContent)")


def _cell(driver, selector: str) -> str | None:
    """Text of the first element matching ``selector`` now (the page rebuilds its table on every message)."""
    return driver.execute_script("return document.querySelector(arguments[0])?.textContent ?? null", selector)


def test_a_person_points_at_the_target_and_stops_it(shared_data, live_node, operator_url, browser, tmp_path):
    sequence = read_uniform(shared_data("sot", SEQUENCE))
    frames = [load_frame(p) for p in sequence.frames[:60]]
    tracker = live_node.node.get_fully_qualified_name()
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    player = Player(live_node.image_pub, frames)
    try:
        browser.get(operator_url)
        canvas = browser.find_element(By.ID, "view")
        wait.until(lambda d: int(canvas.get_attribute("data-frames")) >= 1)
        first = canvas.get_attribute("data-stamp")
        wait.until(lambda d: canvas.get_attribute("data-stamp") != first)  # the image updates
        assert browser.find_element(By.ID, "tracker-name").text == tracker

        shown = _drag(browser, canvas, sequence.gt[0])
        wait.until(lambda d: any("set_target: tracking target" in line for line in _log(d)))
        reply = next(line for line in _log(browser) if "set_target:" in line)
        target = int(re.search(r"tracking target (\d+) from the \d+x\d+ frame stamped ([\d.]+) s", reply)[1])
        assert re.search(r"stamped ([\d.]+) s", reply)[1] == f"{float(shown):.3f}"  # the frame the person saw
        player.advance = True
        row = f'#targets tr[data-id="{target}"]'
        wait.until(lambda d: _cell(d, f'{row}[data-state="tracking"] td.state') == "tracking")
        wait.until(lambda d: int(_cell(d, f"{row} td:nth-child(5)") or 0) >= 10)  # age: frames since the set
        assert "tracking" in _cell(browser, "#node-message")  # /diagnostics, verbatim
        shot = Path(os.environ.get("GRM_OPERATOR_SCREENSHOT") or tmp_path / "operator.png")
        assert browser.save_screenshot(str(shot))

        player.advance = False  # hold the picture still while clicking on the track's box
        x, y, w, h = browser.execute_script(f"return operator.tracks.find((t) => t.id === {target}).box")
        centre = _canvas_point(browser, canvas, x + w / 2, y + h / 2)
        ActionChains(browser).move_to_element_with_offset(canvas, *centre).click().perform()
        wait.until(lambda d: any(f"stop_target: stopped target {target}" in line for line in _log(d)))
        wait.until(lambda d: _cell(d, row) is None)  # gone from the page

        browser.find_element(By.CSS_SELECTOR, 'button[data-transition="deactivate"]').click()
        wait.until(lambda d: _cell(d, "#node-state") == "inactive")
        _drag(browser, canvas, sequence.gt[0])
        wait.until(lambda d: any("set_target: the tracker node is inactive, not active" in line
                                 for line in _log(d)))  # the node's own words
    finally:
        player.stop()
