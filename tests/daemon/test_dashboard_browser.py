"""The dashboard in a real headless browser (Debian's chromium + chromium-driver, through selenium),
against a live agent: the numbers on the page are the agent's own counters.

Skips when chromium, chromedriver or selenium is missing. To run it: `apt-get install -y chromium
chromium-driver`. The screenshot is saved under the test's tmp dir, or in $EDGE_AGENT_SCREENSHOTS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from tests.daemon.helpers import anomalous_image, code_of, normal_image
from tests.daemon.observing import listening_url, scrape, value

pytestmark = pytest.mark.timeout(300)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

COUNTERS = {
    "processed_image_count": "lookoutvision_processed_image_count_total",
    "detected_anomaly_count": "lookoutvision_detected_anomaly_count_total",
    "invalid_image_count": "lookoutvision_invalid_image_count_total",
    "successful_request_count": "lookoutvision_successful_request_count_total",
    "error_count": "lookoutvision_error_count_total",
    "throttled_count": "lookoutvision_throttled_count_total",
}


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="ea-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1700",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, timeout_s: float = 30.0) -> WebDriverWait:
    """The page re-renders every 5 s: an element found just before may be replaced; look again."""
    return WebDriverWait(driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,))


def choose_window(driver, name: str) -> None:
    """Click the window's button (as a person would) until the page shows it selected."""
    selector = f'[data-window="{name}"]'
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True)
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, selector).get_attribute("class") == "active")


def page_fields(driver) -> dict[str, dict[str, str]]:
    """Every model card's fields as shown, read in one script run (the page re-renders every 5 s)."""
    return driver.execute_script(
        """const out = {};
        for (const card of document.querySelectorAll('[data-model]')) {
          const fields = out[card.dataset.model] = {};
          for (const f of card.querySelectorAll('[data-field]')) fields[f.dataset.field] = f.textContent;
        }
        return out;"""
    )


def test_dashboard_shows_the_agents_counters(start_agent, packages, browser, tmp_path):
    agent = start_agent(
        "--metrics-address", "127.0.0.1:0", "--dashboard-frames", "6", "--stats-db", str(tmp_path / "s.db")
    )
    url = listening_url(agent, "metrics")
    agent.add_model("line-3-seg", packages.segmentation)
    agent.add_model("line-4-cls", packages.classification)
    agent.client.start_model("line-3-seg", wait=True)
    agent.client.start_model("line-4-cls", wait=True)
    for _ in range(7):
        agent.client.detect("line-3-seg", normal_image())
    agent.client.detect("line-3-seg", anomalous_image())
    for _ in range(4):
        agent.client.detect("line-4-cls", normal_image())
    agent.client.detect("line-4-cls", anomalous_image(dark=False))
    code, _ = code_of(lambda: agent.client.detect("line-3-seg", normal_image(64, 64)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    metrics = scrape(url)

    browser.get(url)
    wait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-model="line-4-cls"] [data-field="chart"] canvas')
    )
    shown = page_fields(browser)
    for model in ("line-3-seg", "line-4-cls"):
        for key, sample in COUNTERS.items():
            expected = int(value(metrics, sample, model_component=model))
            assert shown[model][key] == f"{expected:,}", (model, key)
        processed = value(metrics, "lookoutvision_processed_image_count_total", model_component=model)
        anomalous = value(metrics, "lookoutvision_detected_anomaly_count_total", model_component=model)
        assert shown[model]["window_processed"] == f"{int(processed):,}"
        assert shown[model]["anomaly_ratio"] == f"{100 * anomalous / processed:.2f}%"
        assert shown[model]["state"] == "RUNNING"
        assert shown[model]["latency_p50"].endswith(" ms")
    assert shown["line-3-seg"]["processed_image_count"] == "8"
    assert shown["line-3-seg"]["invalid_image_count"] == "1"
    assert browser.find_element(By.ID, "overview-processed").text == "13"
    assert browser.find_element(By.ID, "agent-state").text == "SERVING"

    # The anomalous frames, masks overlaid, are shown and load.
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-frame] img")) == 2)
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('[data-frame] img')].map(i => i.complete && i.naturalWidth)"
    )
    assert all(width and width > 0 for width in loaded), loaded

    # Another window is one click away and reads the store.
    choose_window(browser, "6m")
    wait(browser).until(lambda d: page_fields(d)["line-4-cls"]["window_processed"] == "5")
    choose_window(browser, "1d")
    time.sleep(0.5)  # let the charts finish drawing before the picture (not an assertion)
    shots = Path(os.environ.get("EDGE_AGENT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "dashboard.png"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script errors, no CSP violations
