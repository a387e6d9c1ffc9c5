"""The report page of a real smoke search in headless Debian Chromium: one table row per
configuration, one curve per trial, hover names the configuration, the legend hides a trace, no
console error, no request leaves the file, and no two texts of any picture overlap or leave it.

The search is tests/live_search.py's (shared with tests/test_live.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.bench_page import chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="Chromium and chromedriver are not installed (make install apt-gets them "
                       "when root)"),
]


def trial_params(experiment: Path) -> dict[str, dict]:
    """Ray's trial id (the folder name's `<exp>_<n>` part) -> the trial's params.json."""
    found = {}
    for params in experiment.glob("*/params.json"):
        row = json.loads((params.parent / "result.json").read_text().splitlines()[0])
        found[row["trial_id"]] = json.loads(params.read_text())
    return found


@pytest.fixture(scope="module")
def page(live_search):
    assert live_search.returncode == 0, live_search.output[-3000:]
    browser = chromium()
    browser.get(live_search.page.resolve().as_uri())
    yield browser, live_search
    browser.quit()


def test_the_table_has_one_row_per_configuration(page):
    browser, search = page
    configurations = {(p["num_blocks"], p["skip"]) for p in trial_params(search.experiment).values()}
    for table in ("table-best", "table-final"):
        rows = browser.find_elements("css selector", f"#{table} tbody tr")
        assert len(rows) == len(configurations) == 4


def on_top(browser, element) -> bool:
    """Whether the element, scrolled into view, is what the mouse reaches at its centre."""
    return browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center'});"
        "const b = arguments[0].getBoundingClientRect();"
        "return document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2) === arguments[0];", element)


def test_the_curves_hold_one_trace_per_trial_and_a_hover_names_its_configuration(page):
    from selenium.webdriver import ActionChains

    browser, search = page
    params = trial_params(search.experiment)
    traces = browser.find_elements("css selector", "#curves g.trace")
    assert sorted(t.get_attribute("data-trial") for t in traces) == sorted(params)
    tip = browser.find_element("id", "tip")
    for trace in traces:
        config = params[trace.get_attribute("data-trial")]
        # A point no other trace's mark covers (two trials can report nearly the same value).
        point = next(c for c in trace.find_elements("css selector", "circle[data-tip]") if on_top(browser, c))
        ActionChains(browser).move_to_element(point).perform()
        assert tip.is_displayed()
        assert f"num_blocks={config['num_blocks']}, skip={config['skip']}" in tip.text
        assert "seeds 0, 1 (mean)" in tip.text and "val_acc" in tip.text


def test_a_legend_entry_hides_and_shows_its_trace(page):
    browser, _ = page
    button = browser.find_elements("css selector", ".legend button[data-trial]")[0]
    trial = button.get_attribute("data-trial")
    marks = browser.find_elements("css selector", f'svg [data-trial="{trial}"]')
    others = browser.find_elements("css selector", f'#curves g.trace:not([data-trial="{trial}"])')
    assert len(marks) == 2 and all(m.is_displayed() for m in marks)  # its curve and its coordinates
    button.click()
    assert button.get_attribute("aria-pressed") == "false"
    assert not any(m.is_displayed() for m in marks) and all(o.is_displayed() for o in others)
    button.click()
    assert all(m.is_displayed() for m in marks)


def test_a_click_on_a_header_sorts_the_table(page):
    browser, _ = page
    header = next(h for h in browser.find_elements("css selector", "#table-best th") if h.text == "val_acc")
    column = browser.find_elements("css selector", "#table-best th").index(header)

    def values() -> list[float]:
        return [float(r.find_elements("css selector", "td")[column].get_attribute("data-sort"))
                for r in browser.find_elements("css selector", "#table-best tbody tr")]

    header.click()
    assert values() == sorted(values())
    header.click()
    assert values() == sorted(values(), reverse=True)


def test_no_console_error_and_no_request_leaves_the_file(page):
    browser, search = page
    browser.get(search.page.resolve().as_uri())  # a fresh load, its events logged from the start
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    events = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    requests = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    assert requests == {search.page.resolve().as_uri()}
    policy = browser.find_element("css selector", 'meta[http-equiv="Content-Security-Policy"]')
    assert "default-src 'none'" in policy.get_attribute("content")


def overlaps(browser, selector: str) -> list[str]:
    """Pairs of non-empty text elements inside each `selector` SVG whose boxes intersect by more than
    a pixel each way, and texts that stick out of their SVG, as the browser lays them out."""
    return browser.execute_script("""
        const found = [];
        for (const svg of document.querySelectorAll(arguments[0])) {
          const frame = svg.getBoundingClientRect();
          const boxes = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim())
            .map(t => [t.textContent.trim(), t.getBoundingClientRect()]).filter(([, b]) => b.width > 0);
          const name = svg.closest('[id]') ? svg.closest('[id]').id : '?';
          for (const [text, b] of boxes) {
            if (b.left < frame.left - 1 || b.right > frame.right + 1 || b.top < frame.top - 1
                || b.bottom > frame.bottom + 1) found.push(`${name}: '${text}' leaves the picture`);
          }
          for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const [s, a] = boxes[i], [t, b] = boxes[j];
            const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
            const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
            if (x > 1 && y > 1) found.push(`${name}: '${s}' overlaps '${t}'`);
          }
        }
        return found;""", selector)


def test_no_text_of_any_picture_overlaps_another_or_leaves_it(page):
    browser, _ = page
    pictures = browser.find_elements("css selector", ".picture svg")
    assert {p.find_element("xpath", "..").get_attribute("id") for p in pictures} == {
        "picture-deg_prob", "picture-asha"}
    assert overlaps(browser, ".picture svg, svg.chart") == []


def test_the_overlap_check_catches_overlapping_text(page):
    browser, _ = page
    browser.execute_script("""
        const svg = document.querySelector('#curves');
        const t = svg.querySelector('text').cloneNode(true);
        t.setAttribute('x', Number(t.getAttribute('x')) + 3);
        svg.appendChild(t);""")
    assert any("overlaps" in line for line in overlaps(browser, "#curves"))
