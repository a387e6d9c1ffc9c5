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


def test_the_page_opens_with_the_study_questions_answered_and_every_arm_ran_to_the_budget(page):
    browser, search = page
    headings = [h.text for h in browser.find_elements("css selector", "h2")]
    assert headings[0] == "The study's questions", headings
    rows = browser.find_elements("css selector", "#table-questions tbody tr")
    # num_blocks 1 and 5, plain and skip: "deeper plain 22 < 6" (val_acc and train loss), "skip fixes
    # 22 layers" and "skip at 6 layers"
    assert len(rows) == 4
    for row in rows:
        assert row.find_elements("css selector", "td")[2].text in ("holds", "contradicted", "undecided")
    ran = [len((p.parent / "result.json").read_text().splitlines())
           for p in search.experiment.glob("*/params.json")]
    assert ran == [2] * 4  # no arm of a question is stopped early


def test_the_table_has_one_row_per_configuration(page):
    browser, search = page
    configurations = {(p["num_blocks"], p["skip"]) for p in trial_params(search.experiment).values()}
    for table in ("table-best", "table-final"):
        rows = browser.find_elements("css selector", f"#{table} tbody tr")
        assert len(rows) == len(configurations) == 4


def test_incomplete_and_errored_trials_are_listed_as_such(live_search, tmp_path):
    """A copy of the search in which Ray's state says one trial ended in ERROR and has lost another
    (killed after one report, its second cut short), plus a trial that never reported."""
    from analysis.page import write_page
    from analysis.results import open_experiment

    copy = tmp_path / "broken"
    shutil.copytree(live_search.experiment, copy)
    state = max(copy.glob("experiment_state-*.json"))
    record = json.loads(state.read_text())
    entries = [(json.loads(t) if isinstance(t, str) else t, m) for t, m in record["trial_data"]]

    def reports(trial: dict) -> list[str]:
        return (copy / trial["relative_logdir"] / "result.json").read_text().splitlines()

    errored, killed = [t for t, _ in entries if len(reports(t)) == 2][:2]
    errored["status"] = "ERROR"
    record["trial_data"] = [[json.dumps(t), m] for t, m in entries if t is not killed]
    state.write_text(json.dumps(record))
    first, second = reports(killed)
    (copy / killed["relative_logdir"] / "result.json").write_text(first + "\n" + second[:40])
    never = copy / "train_cnn_never_reported"
    never.mkdir()
    shutil.copy(copy / killed["relative_logdir"] / "params.json", never / "params.json")

    html = write_page(open_experiment(copy), tmp_path / "page").read_text()
    section = html[html.index("<h2 id='trials'>"):html.index('<h2 id="provenance">')]
    summary = section[:section.index("</p>")]
    for listed in (f"{errored['trial_id']} (errored)", f"{killed['trial_id']} (incomplete)",
                   "train_cnn_never_reported (incomplete)"):
        assert listed in summary
    assert section.count('<tr class="errored"') == 1 and section.count('<tr class="incomplete"') == 2


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
    """Pairs of non-empty text elements inside each `selector` SVG that overlap by more than a pixel,
    and texts that stick out of their SVG, as the browser lays them out. Each text is the quadrilateral
    its box (getBBox) covers on screen (getScreenCTM: slanted labels stay slanted), and two of them
    overlap when no edge direction of either separates them."""
    return browser.execute_script("""
        const quad = (t) => {
          const b = t.getBBox(), m = t.getScreenCTM();
          return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
            .map(([x, y]) => new DOMPoint(x, y).matrixTransform(m));
        };
        const separated = (p, q) => {
          for (const poly of [p, q]) for (let i = 0; i < 4; i++) {
            const a = poly[i], b = poly[(i + 1) % 4];
            const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
            const nx = (a.y - b.y) / len, ny = (b.x - a.x) / len;
            const span = (poly2) => poly2.map(c => c.x * nx + c.y * ny);
            const s = span(p), t = span(q);
            if (Math.min(Math.max(...s), Math.max(...t)) - Math.max(Math.min(...s), Math.min(...t)) <= 1)
              return true;
          }
          return false;
        };
        const found = [];
        for (const svg of document.querySelectorAll(arguments[0])) {
          svg.scrollIntoView();
          const frame = svg.getBoundingClientRect();
          const texts = [...svg.querySelectorAll('text')]
            .filter(t => t.textContent.trim() && t.getBBox().width > 0)
            .map(t => [t.textContent.trim(), quad(t)]);
          const name = svg.closest('[id]') ? svg.closest('[id]').id : '?';
          for (const [text, q] of texts) {
            if (q.some(c => c.x < frame.left - 1 || c.x > frame.right + 1 || c.y < frame.top - 1
                       || c.y > frame.bottom + 1)) found.push(`${name}: '${text}' leaves the picture`);
          }
          for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
            if (!separated(texts[i][1], texts[j][1]))
              found.push(`${name}: '${texts[i][0]}' overlaps '${texts[j][0]}'`);
          }
        }
        return found;""", selector)


def test_no_text_of_any_picture_overlaps_another_or_leaves_it_or_is_tiny(page):
    browser, _ = page
    pictures = browser.find_elements("css selector", ".picture svg")
    assert {p.find_element("xpath", "..").get_attribute("id") for p in pictures} == {
        "picture-deg_prob", "picture-stops"}
    assert overlaps(browser, ".picture svg, svg.chart") == []
    # Each text's line height on screen in CSS px (about 1.16 times its font size): 10 or more is a font
    # of over 8.5 px (asha's legend beside a demo's plot was a font of about 7 px).
    heights = browser.execute_script("""
        return [...document.querySelectorAll('.picture svg text')].filter(t => t.textContent.trim())
          .map(t => [t.textContent.trim(),
                     t.getBBox().height * Math.hypot(t.getScreenCTM().c, t.getScreenCTM().d)]);""")
    assert min(h for _, h in heights) >= 10, sorted(heights, key=lambda th: th[1])[:3]


def test_the_overlap_check_catches_overlapping_text(page):
    browser, _ = page
    browser.execute_script("""
        const svg = document.querySelector('#curves');
        const t = svg.querySelector('text').cloneNode(true);
        t.setAttribute('x', Number(t.getAttribute('x')) + 3);
        svg.appendChild(t);""")
    assert any("overlaps" in line for line in overlaps(browser, "#curves"))
