"""The viewer in a real browser (Debian's chromium and chromium-driver, as the report's browser
test): report/viewer.html opened from disk, on a sweep rendered by the real engine (CFG 3 and 7 x
seeds 0 and 1 x two prompts, one holding HTML and script). One Chromium serves the module; every
test ends with no console error."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

import sdexp
from conftest import EVIL_PROMPT
from test_report_browser import chromium, errors_in, pytestmark  # noqa: F401  (the driver set-up and skip rule)

POLL = 0.05         # seconds between checks of a WebDriverWait


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=POLL).until(condition)


def open_viewer(driver, folder: Path, hash_: str = ""):
    driver.get_log("browser")                        # what an earlier test left in the log
    driver.get("about:blank")                        # a new page even when only the hash differs
    driver.get((Path(folder) / "report" / "viewer.html").resolve().as_uri() + hash_)
    # document.body is null while the new page is still being parsed
    wait(driver, lambda d: js(d, "return !!document.body && document.body.getAttribute('data-ready') === '1'"))


def shown(driver) -> int:
    return js(driver, "return document.querySelectorAll('#grid figure.img').length")


def texts(driver, selector: str) -> list[str]:
    return js(driver, "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)", selector)


def choose(driver, name: str, value: str):
    js(driver, "const s = document.querySelector(`select[name='${arguments[0]}']`); s.value = arguments[1];"
               "s.dispatchEvent(new Event('change'))", name, value)


def state(driver) -> dict:
    return js(driver, "return sdexpViewer.state()")


def loaded(driver, image_id: str):
    """The full-size view shows this image, its parameters and row fields loaded."""
    wait(driver, lambda d: js(d, "return document.getElementById('detail').getAttribute('data-loaded')") == image_id)
    wait(driver, lambda d: js(d, "const i = document.querySelector('#detail img'); return i.complete && i.naturalWidth > 0"))


def no_console_errors(driver):
    errors = errors_in(driver.get_log("browser"))
    assert not errors, errors


@pytest.fixture
def folder(report_sweep) -> Path:
    return Path(report_sweep["folder"])


@pytest.fixture
def rows(folder):
    return sdexp.load_rows(folder)


def test_choose_axes_and_seeds_labels_and_image_count(browser, folder):
    open_viewer(browser, folder)
    # the sweep's own layout: X CFG scale, Y prompt, first seed of each cell
    assert texts(browser, "#grid th.x-label") == ["CFG scale: 3", "CFG scale: 7"]
    assert texts(browser, "#grid th.y-label") == ["Prompt: a red apple on a table", f"Prompt: {EVIL_PROMPT}"]
    assert shown(browser) == 4
    choose(browser, "Seeds", "all")
    assert shown(browser) == 8
    assert sorted(set(texts(browser, "#grid figcaption")))[0].startswith("Seed: 0")
    # seed on X, CFG on Y: the prompt becomes a row of value tabs
    choose(browser, "X", "seed")
    choose(browser, "Y", "cfg")
    assert texts(browser, "#grid th.x-label") == ["Seed: 0", "Seed: 1"]
    assert texts(browser, "#grid th.y-label") == ["CFG scale: 3", "CFG scale: 7"]
    assert texts(browser, "#tabs .tab") == ["a red apple on a table", EVIL_PROMPT]
    assert shown(browser) == 4
    browser.find_elements("css selector", "#tabs .tab")[1].click()
    assert js(browser, "return document.querySelectorAll('#tabs .tab')[1].getAttribute('aria-selected')") == "true"
    assert shown(browser) == 4
    # CFG as Y super-axis, prompt on Y: blocks with sticky labels of both
    choose(browser, "Y super", "cfg")
    choose(browser, "Y", "prompt")
    assert texts(browser, "#grid th.ys-label") == ["CFG scale: 3", "CFG scale: 7"]
    assert len(texts(browser, "#grid th.y-label")) == 4 and shown(browser) == 8
    assert js(browser, "return getComputedStyle(document.querySelector('#grid th.y-label')).position") == "sticky"
    no_console_errors(browser)


def test_toggle_a_value_hides_its_column(browser, folder):
    open_viewer(browser, folder)
    box = browser.find_element("css selector", ".toggles[data-axis='cfg'] input[name='7']")
    box.click()
    assert texts(browser, "#grid th.x-label") == ["CFG scale: 3"] and shown(browser) == 2
    assert "h.cfg=1" in browser.current_url
    box.click()
    assert shown(browser) == 4
    no_console_errors(browser)


def test_full_size_with_parameters_and_arrow_keys(browser, folder, rows):
    from selenium.webdriver.common.keys import Keys

    open_viewer(browser, folder)
    first = rows[(rows.cfg == 3) & (rows.prompt == rows.prompt.iloc[0])].sort_values("seed").iloc[0]
    browser.find_element("css selector", "#grid figure.img img").click()
    loaded(browser, first.image_id)
    assert js(browser, "return document.getElementById('detail').hidden") is False
    assert js(browser, "return document.querySelector('#detail img').naturalWidth") == 64
    # a 64 px image is shown at 4x, its pixels kept sharp
    assert js(browser, "return document.querySelector('#detail img').getBoundingClientRect().width") == 256
    with Image.open(folder / first.image_path) as im:
        params = im.text["parameters"]
    assert js(browser, "return document.querySelector('#detail .params').value") == params
    fields = dict(zip(texts(browser, "#detail .fields th"), texts(browser, "#detail .fields td")))
    assert fields["image_id"] == first.image_id and fields["cfg"] == "3" and fields["sweep"] == "rep"
    body = browser.find_element("css selector", "body")
    body.send_keys(Keys.ARROW_RIGHT)                      # along X: CFG 7, same prompt and seed
    right = rows[(rows.cfg == 7) & (rows.prompt == first.prompt) & (rows.seed == first.seed)].iloc[0]
    loaded(browser, right.image_id)
    body.send_keys(Keys.ARROW_RIGHT)                      # the last column: stays
    assert state(browser)["open"] == rows.index[rows.image_id == right.image_id][0]
    body.send_keys(Keys.ARROW_DOWN)                       # along Y: the next prompt
    down = rows[(rows.cfg == 7) & (rows.prompt == EVIL_PROMPT) & (rows.seed == first.seed)].iloc[0]
    loaded(browser, down.image_id)
    assert f"open={down.image_id}" in browser.current_url
    body.send_keys(Keys.ESCAPE)
    assert js(browser, "return document.getElementById('detail').hidden") is True
    no_console_errors(browser)


def test_compare_two_cells_seed_by_seed_with_paired_difference(browser, folder, rows):
    open_viewer(browser, folder)
    browser.find_element("id", "compare-mode").click()
    cells = browser.find_elements("css selector", "#grid td.cell")
    cells[0].click()                                      # CFG 3, first prompt
    cells[1].click()                                      # CFG 7, first prompt
    assert js(browser, "return document.getElementById('compare').hidden") is False
    prompt = rows.prompt.iloc[0]
    a = rows[(rows.cfg == 3) & (rows.prompt == prompt)].sort_values("seed")
    b = rows[(rows.cfg == 7) & (rows.prompt == prompt)].sort_values("seed")
    diffs = b.clip_score.round(4).to_numpy() - a.clip_score.round(4).to_numpy()
    row = "#compare tr[data-metric='clip_score']"
    assert texts(browser, row + " td.n") == ["2"]
    value = float(js(browser, f"return document.querySelector(\"{row} td.diff\").getAttribute('data-value')"))
    assert value == pytest.approx(diffs.mean(), abs=1e-9)
    low = float(js(browser, f"return document.querySelector(\"{row} td.ci\").getAttribute('data-low')"))
    high = float(js(browser, f"return document.querySelector(\"{row} td.ci\").getAttribute('data-high')"))
    # two pairs: every bootstrap resample mean is d1, d2 or their mean, so the 95% interval is [min, max]
    assert (low, high) == pytest.approx((diffs.min(), diffs.max()), abs=1e-9)
    assert len(browser.find_elements("css selector", "#compare tr.pair")) == 2
    assert len(browser.find_elements("css selector", "#compare tr.pair figure.img")) == 4
    assert "cmp=" in browser.current_url
    no_console_errors(browser)


def test_flagged_images_are_marked_and_left_out_of_the_estimates(browser, folder, rows, tmp_path):
    from sdexp.report import build_report

    copy = tmp_path / "rep"
    shutil.copytree(folder, copy)
    first = rows[(rows.cfg == 3) & (rows.prompt == rows.prompt.iloc[0])].sort_values("seed")
    bad, good = first.iloc[0], first.iloc[1]
    build_report(copy, rows=rows.assign(image_flags=["constant" if i == bad.image_id else "" for i in rows.image_id]),
                 groups=None, log=lambda *a: None)
    open_viewer(browser, copy, "#x=cfg&y=prompt&xs=&ys=&seed=all&m=clip_score")
    marked = js(browser, "return Array.from(document.querySelectorAll('#grid figure.flagged'))"
                         ".map(f => [f.getAttribute('data-image'), f.querySelector('.flag').textContent])")
    assert marked == [[str(rows.index[rows.image_id == bad.image_id][0]), "\u2691 constant"]]
    title = js(browser, "return document.querySelector('#grid figure.flagged').closest('td').title")
    assert title.endswith("N=1") and f"CLIP score {good.clip_score:.3g}" in title       # the other seed alone
    no_console_errors(browser)


def test_thumbnails_load_as_their_cells_near_the_view(browser, folder):
    open_viewer(browser, folder, "#x=seed&y=prompt&xs=&ys=cfg&seed=first&auto=0&size=1024&under=0")
    assert shown(browser) == 8
    with_src = "return Array.from(document.querySelectorAll('#grid figure.img img')).map(i => i.hasAttribute('src'))"
    first = js(browser, with_src)
    assert first[:2] == [True, True] and not any(first[-4:])   # the first row of 1 kB images; not the far ones
    js(browser, "const w = document.getElementById('grid-wrap'); w.scrollTop = w.scrollHeight")
    wait(browser, lambda d: all(js(d, with_src)))
    wait(browser, lambda d: js(d, "return Array.from(document.querySelectorAll('#grid img')).every(i => i.complete && i.naturalWidth > 0)"))
    no_console_errors(browser)


def test_the_bootstrap_in_the_page_matches_the_reports(browser, folder):
    import numpy as np

    from sdexp.stats import bootstrap_mean_ci

    open_viewer(browser, folder)
    values = list(np.random.default_rng(3).normal(0.4, 1.0, 40))
    got = js(browser, "return sdexpViewer.bootstrap(arguments[0])", values)
    mean, low, high = bootstrap_mean_ci(values)
    assert got["mean"] == pytest.approx(mean) and got["n"] == 40
    assert (got["lo"], got["hi"]) == pytest.approx((low, high), abs=0.05)   # another generator, same method


def test_a_view_is_restored_from_the_url_hash(browser, folder, rows):
    target = rows[(rows.prompt == EVIL_PROMPT) & (rows.cfg == 7) & (rows.seed == 1)].iloc[0]
    open_viewer(browser, folder, f"#x=seed&y=cfg&xs=&ys=&seed=first&t.prompt=1&m=clip_score&heat=1&open={target.image_id}")
    assert texts(browser, "#grid th.x-label") == ["Seed: 0", "Seed: 1"]
    assert js(browser, "return document.querySelectorAll('#tabs .tab')[1].getAttribute('aria-selected')") == "true"
    assert all(js(browser, "return Array.from(document.querySelectorAll('#grid td.cell')).map(td => td.style.background !== '')"))
    titles = js(browser, "return Array.from(document.querySelectorAll('#grid td.cell')).map(td => td.title)")
    assert all(t.startswith("CLIP score ") and t.endswith("N=1") for t in titles)
    loaded(browser, target.image_id)
    assert js(browser, "return document.getElementById('detail').hidden") is False
    assert js(browser, "return document.querySelector('select[name=X]').value") == "seed"
    no_console_errors(browser)


def test_prompt_with_markup_is_text_everywhere(browser, folder, rows):
    evil = rows[rows.prompt == EVIL_PROMPT].iloc[0]
    open_viewer(browser, folder, f"#x=cfg&y=seed&xs=&ys=&t.prompt=1&open={evil.image_id}")
    loaded(browser, evil.image_id)
    assert EVIL_PROMPT in texts(browser, "#tabs .tab")
    assert EVIL_PROMPT in [t.strip() for t in texts(browser, ".toggles[data-axis='prompt'] label")]
    assert EVIL_PROMPT in js(browser, "return document.querySelector('#detail .params').value")
    assert EVIL_PROMPT in texts(browser, "#detail .fields td")
    assert EVIL_PROMPT in " ".join(texts(browser, "#detail .detail-title"))
    browser.find_element("css selector", "body").send_keys("\ue00c")      # Escape
    choose(browser, "Y", "prompt")
    assert f"Prompt: {EVIL_PROMPT}" in texts(browser, "#grid th.y-label")
    other = rows[(rows.prompt != EVIL_PROMPT) & (rows.cfg == evil.cfg)].iloc[0]
    js(browser, "location.hash = arguments[0]", f"#x=cfg&y=prompt&cmp={other.image_id},{evil.image_id}")
    wait(browser, lambda d: js(d, "return !document.getElementById('compare').hidden"))
    assert texts(browser, "#compare .cell-b")[0].endswith(f"Prompt: {EVIL_PROMPT}")
    assert js(browser, "return document.querySelectorAll('b').length") == 0
    assert js(browser, "return Array.from(document.scripts).map(s => s.getAttribute('src'))")[:2] == [
        "assets/viewer.js", "data/viewer.js"]
    assert not js(browser, "return Array.from(document.querySelectorAll('*')).flatMap(e => "
                           "Array.from(e.attributes).map(a => a.name)).filter(n => n.startsWith('on'))")
    no_console_errors(browser)


def test_save_view_draws_a_canvas_that_can_be_exported(browser, folder, tmp_path):
    import base64

    open_viewer(browser, folder)
    url = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "sdexpViewer.renderCanvas().then(c => done(c.toDataURL('image/png')), e => done('error: ' + e));")
    assert url.startswith("data:image/png;base64,"), url[:200]
    shot = tmp_path / "view.png"
    shot.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    with Image.open(shot) as im:
        width, height = im.size
        assert width > 128 and height > 128
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 50          # the thumbnails were drawn, not blank
    no_console_errors(browser)


@pytest.mark.slow
def test_screenshots_for_the_readme(browser, folder, tmp_path):
    """Leaves screenshots of the viewer: SDEXP_DOCS=<folder> writes them there (e.g. docs/), of the
    demo's sweep when SDEXP_DOCS_SWEEP=results/demo (after `make demo`), else of the test's sweep."""
    out = Path(os.environ.get("SDEXP_DOCS", tmp_path))
    demo = os.environ.get("SDEXP_DOCS_SWEEP")
    if demo:      # CFG on X, steps on Y, sampler as Y super-axis, every seed of the first prompt
        open_viewer(browser, Path(demo), "#x=cfg&y=steps&xs=&ys=sampler&seed=all&t.prompt=0&m=clip_score&heat=1")
        pair = (3, 5)          # Euler a, 8 steps: CFG 1 and CFG 7
    else:
        open_viewer(browser, folder, "#x=cfg&y=prompt&xs=&ys=&seed=all&m=clip_score&heat=1&auto=0&size=112")
        pair = (0, 1)
    wait(browser, lambda d: js(d, "return Array.from(document.querySelectorAll('#grid img[src]'))"
                                  ".every(i => i.complete)"))
    assert browser.save_screenshot(str(out / "viewer.png"))
    browser.find_element("id", "compare-mode").click()
    cells = browser.find_elements("css selector", "#grid td.cell")
    cells[pair[0]].click()
    cells[pair[1]].click()
    wait(browser, lambda d: js(d, "return Array.from(document.querySelectorAll('#compare img')).every(i => i.complete)"))
    assert browser.save_screenshot(str(out / "viewer-compare.png"))
    assert (out / "viewer.png").stat().st_size > 10_000
    no_console_errors(browser)
