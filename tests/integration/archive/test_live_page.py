"""The live page in a real headless Chromium (selenium): it plots the front and the
hypervolume history, refreshes itself, and we keep a screenshot."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.archive.conftest import HTTP_AUTH

pytestmark = pytest.mark.slow

SCREENSHOT_DIR = Path(os.environ.get("PARETOPO_SCREENSHOT_DIR", "runs/screenshots"))


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-dev-shm-usage",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="Debian chromium + chromium-driver not installed "
                           "(scripts/install.sh installs them)")
def test_page_plots_front_and_history_and_refreshes(archive):
    from selenium.webdriver.common.by import By

    base = archive.base_url
    httpx.post(f"{base}/api/v1/runs", json={"run_id": "live"}, headers=HTTP_AUTH)
    points = [[0.3, 0.9], [0.6, 0.7], [0.8, 0.3]]
    for step, y in enumerate(points):
        httpx.post(f"{base}/api/v1/runs/live/outcomes", json={"step": step, "outcome": y},
                   headers=HTTP_AUTH)
    driver = _browser()
    try:
        driver.get(f"{base}/?run=live")
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "circle.front-point")) == 3)
        assert driver.find_elements(By.CSS_SELECTOR, "polyline.hv-line")
        assert driver.find_element(By.ID, "stage").text.startswith("1")
        # a new non-dominated outcome appears without reloading the page
        httpx.post(f"{base}/api/v1/runs/live/outcomes", json={"step": 3, "outcome": [0.95, 0.1]},
                   headers=HTTP_AUTH)
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "circle.front-point")) == 4)
        assert driver.find_element(By.ID, "steps").text == "4"
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOT_DIR / "archive-page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="Debian chromium + chromium-driver not installed "
                           "(scripts/install.sh installs them)")
def test_page_projects_a_three_objective_front(archive):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = archive.base_url
    objectives = ["accuracy", "tool_efficiency", "length_efficiency"]
    httpx.post(f"{base}/api/v1/runs", json={"run_id": "live3", "objectives": objectives,
                                              "stage1": {"initial_weights": [0.5, 0.3, 0.2],
                                                         "reference_point": [0.0, 0.0, 0.0]}},
               headers=HTTP_AUTH).raise_for_status()
    for step, y in enumerate([[0.3, 0.9, 0.2], [0.6, 0.7, 0.1], [0.5, 0.2, 0.9]]):
        httpx.post(f"{base}/api/v1/runs/live3/outcomes", json={"step": step, "outcome": y},
                   headers=HTTP_AUTH).raise_for_status()
    driver = _browser()
    try:
        driver.get(f"{base}/?run=live3")
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "circle.front-point")) == 3)
        assert driver.find_element(By.ID, "axes").is_displayed()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#points th")) == 4  # step + 3
        # read in one script: the page redraws every 2 s, so element handles go stale
        heights = ("return [...document.querySelectorAll('circle.front-point')]"
                   ".map(c => +c.getAttribute('cy')).sort()")
        before = driver.execute_script(heights)
        Select(driver.find_element(By.ID, "yobj")).select_by_visible_text("length_efficiency")
        _wait(lambda: driver.execute_script(heights) != before)
        assert "length_efficiency" in driver.find_element(By.ID, "front").text
    finally:
        driver.quit()


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "page did not reach the expected state"
        time.sleep(0.2)
