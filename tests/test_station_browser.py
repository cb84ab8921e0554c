"""The station page in a real headless browser (Debian's chromium + chromium-driver, via selenium).

Skips, saying why, when chromium, its driver or selenium is missing. Set EDGE_SCREENSHOT_DIR to
keep the screenshots (CI and people looking at the page).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .runtime_helpers import station_dict
from .test_station import Station, state, wait_until

selenium = pytest.importorskip("selenium", reason="selenium is not installed (the test extra)")
import selenium.common.exceptions  # noqa: E402
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver "
                                       "(apt-get install -y chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,800",
              f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    # exactly the line panel the page is laid out for (a window's own bars would take some of 800)
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    yield drv
    drv.quit()


def _shot(drv, tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    assert drv.save_screenshot(str(p)) and p.stat().st_size > 10_000
    keep = os.environ.get("EDGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, Path(keep) / name)
    return p


def test_page_counts_shows_ng_gallery_and_feedback_acts(browser, tiny_inspector, tmp_path):
    from selenium.webdriver.common.by import By

    d = station_dict(tiny_inspector, tmp_path / "out", source={"synthetic": {"fps": 15, "defect_rate": 0.35}},
                     station_page={"refresh_ms": 300})
    with Station(d) as st:
        browser.get(st.base)
        total = lambda: int(browser.find_element(By.ID, "nStamp").text or 0)  # noqa: E731
        first = wait_until(lambda: total() or None, 30, "the page to show parts")
        wait_until(lambda: total() > first + 5, 30, "the counters to move in the page")
        shown = sum(int(browser.find_element(By.ID, f"n{k}").text) for k in ("OK", "NG", "ERROR"))
        assert shown >= first
        kept = "#gallery a[data-kept='1']"  # storage kept its image (a busy machine may shed some)
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, kept), 30, "an NG part in the gallery")
        assert browser.find_element(By.ID, "ready").text == "READY"
        assert browser.find_element(By.ID, "decision").text in ("OK", "NG", "ERROR")
        assert browser.execute_script("return document.getElementById('liveimg').naturalWidth") > 0
        time.sleep(0.5)
        _shot(browser, tmp_path, "station-page.png")

        # click an NG part → its full record, then "This part is good" with a note
        def click_first():
            try:
                browser.find_element(By.CSS_SELECTOR, kept).click()
                return True
            except selenium.common.exceptions.StaleElementReferenceException:  # a new NG part came in
                return False

        wait_until(click_first, 10, "a click on the gallery")
        wait_until(lambda: "part " in browser.title, 10, "the part page")
        assert "raw_score" in browser.page_source and "decision" in browser.page_source
        _shot(browser, tmp_path, "station-part.png")
        form = browser.find_element(By.CSS_SELECTOR, "form[action*='/good']")
        form.find_element(By.NAME, "operator").send_keys("dana")
        form.find_element(By.NAME, "note").send_keys("reflection, not a dent")
        form.find_element(By.TAG_NAME, "button").click()
        wait_until(lambda: "Done" in browser.page_source, 10, "the feedback to be saved")
        assert state(st.base)["feedback"]["pending_good"] == 1

        # back on the page, the refit button is live; press it and watch the job finish in the page
        browser.get(st.base)
        wait_until(lambda: browser.find_element(By.ID, "refit").is_enabled(), 10, "the refit button")
        browser.find_element(By.ID, "operator").send_keys("dana")
        browser.find_element(By.ID, "refit").click()
        wait_until(lambda: "refit: done" in browser.find_element(By.ID, "job").text, 90, "the refit in the page")
        wait_until(lambda: browser.find_element(By.ID, "undo").is_enabled(), 10, "the undo button")
        assert "refit done" in browser.find_element(By.ID, "events").text
        _shot(browser, tmp_path, "station-after-refit.png")
    acts = (tmp_path / "out" / "feedback" / "actions.jsonl").read_text()
    assert "reflection, not a dent" in acts and "refit done" in acts
