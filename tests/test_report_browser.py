"""The report in a real browser: headless Chromium from Debian's packages (`.ci/run` installs
chromium and chromium-driver) opens results/<name>/report/index.html from disk, and the page
logs no console error, shows no broken image, runs none of a prompt's markup, sorts its table,
zooms a grid, and leaves a screenshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import EVIL_PROMPT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, chromedriver); "
           "`.ci/run` installs them: apt-get install chromium chromium-driver")


def chromium(profile: Path):
    """Headless Chromium driven by Debian's chromedriver, logging the page's console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")       # Chromium refuses to run as root with its sandbox
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)      # generous: a busy 2-core machine starts Chromium slowly
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


def errors_in(log: list[dict]) -> list[dict]:
    return [entry for entry in log if entry["level"] == "SEVERE"]


def test_report_in_headless_chromium(report_sweep, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    index = Path(report_sweep["report"]).resolve()
    browser.get(index.as_uri())
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))

    # no broken image: every <img> loaded with a real size
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 5                               # grid, 2 cell thumbnails, 2 plots
    broken = [src for src, w, h in images if not (w > 0 and h > 0)]
    assert not broken, broken

    # the prompt holding HTML is text: no element, no script from it ran
    assert browser.execute_script("return document.querySelectorAll('b').length") == 0
    scripts = browser.execute_script("return Array.from(document.scripts).map(s => s.getAttribute('src'))")
    assert scripts == ["assets/report.js", "data/cells.js"]
    body = browser.find_element(By.TAG_NAME, "body").text
    assert EVIL_PROMPT in body

    # the table sorts by a metric column, both ways
    header = browser.find_element(By.XPATH, "//table[contains(@class,'cells')]//th[starts-with(normalize-space(.), 'CLIP score')]")
    column = browser.execute_script("return arguments[0].cellIndex", header)

    def column_values():
        return [float(v) for v in browser.execute_script(
            "return Array.from(document.querySelectorAll('table.cells tbody tr'))"
            ".map(r => r.cells[arguments[0]].getAttribute('data-sort'))", column)]

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert column_values() == sorted(column_values())
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert column_values() == sorted(column_values(), reverse=True)

    # the filters: a cell id prefix, then a value of a swept axis
    import sdexp

    rows = sdexp.load_rows(report_sweep["folder"])
    cell7 = rows.loc[rows.cfg == 7, "cell_id"].iloc[0]

    def shown_ids():
        return browser.execute_script("return Array.from(document.querySelectorAll('table.cells tbody tr'))"
                                      ".map(r => r.cells[1].textContent.trim())")

    assert len(shown_ids()) == rows.cell_id.nunique() == 2
    search = browser.find_element(By.ID, "cells-filter")
    search.send_keys(cell7[:6])
    assert [cell7.startswith(i.rstrip("\u2026")) for i in shown_ids()] == [True]
    for _ in cell7[:6]:
        search.send_keys(Keys.BACKSPACE)
    assert len(shown_ids()) == 2
    browser.execute_script("const s = document.querySelector('#cells-axis-filters select'); s.value = '7';"
                           "s.dispatchEvent(new Event('change'))")
    assert [cell7.startswith(i.rstrip("\u2026")) for i in shown_ids()] == [True]

    # a click on a grid opens the full-size PNG in the lightbox; Escape closes it
    browser.find_element(By.CSS_SELECTOR, "a.zoom").click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const i = document.querySelector('#lightbox img'); return i && i.complete && i.naturalWidth > 0"))
    assert browser.execute_script("return document.getElementById('lightbox').hidden") is False
    original = browser.execute_script("return document.querySelector('#lightbox img').getAttribute('src')")
    assert original.startswith("../grids/") and original.endswith(".png")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert browser.execute_script("return document.getElementById('lightbox').hidden") is True

    errors = errors_in(browser.get_log("browser"))
    assert not errors, errors

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_console_errors_are_caught(browser, tmp_path):
    """The check above can fail: a page with a broken image and a script error is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img src="missing.png"><script>undefinedFunction()</script></body></html>')
    browser.get(bad.as_uri())
    widths = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert widths == [0]
    assert errors_in(browser.get_log("browser"))
