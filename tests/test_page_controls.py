"""The report page's curve controls in headless Chromium at 1,280 px, on the constructed pages of
tests/page_browser.py: the metric, x axis (epoch, the search's trial-epochs, wall time), smoothing,
seed lines, zoom, colour by a knob, hover, and the links from a question to its evidence. Each redraws
what it says."""

from __future__ import annotations

import json

import pytest

from tests.page_browser import (
    drawn_metric,
    needs_chromium,
    on_top,
    opened,
    pick,
    trace_colours,
    x_ticks,
)

pytestmark = needs_chromium


def test_a_questions_evidence_links_show_just_its_arms_curves_and_rows(pages, browser):
    opened(browser, pages["degradation"])
    row = browser.find_element("css selector", "#table-questions tbody tr")
    claim = row.find_elements("css selector", "td")[1].text  # "num_blocks=1, skip=False > ..."
    curves, trials = row.find_elements("css selector", "a.evidence")
    arms = set(curves.get_attribute("data-show").split())
    assert arms == set(trials.get_attribute("data-rows").split()) and len(arms) == 2
    labels = {b.get_attribute("data-trial"): b.text
              for b in browser.find_elements("css selector", ".legend button[data-trial]")}
    sides = [side.split(" on ")[0] for side in claim.replace(" < ", "|").replace(" > ", "|").split("|")]
    assert all(any(labels[t].startswith(side) for t in arms) for side in sides), (claim, arms)
    curves.click()
    shown = {g.get_attribute("data-trial") for g in browser.find_elements("css selector", "#curves g.trace")
             if g.is_displayed()}
    assert shown == arms
    trials.click()
    picked = {tr.get_attribute("data-trial")
              for tr in browser.find_elements("css selector", "#trial-table tr.picked")}
    assert picked == arms
    browser.find_element("css selector", '.legend button[data-all="show"]').click()


def test_the_metric_selector_switches_the_drawn_metric(pages, browser):
    opened(browser, pages["degradation"])
    options = [o.get_attribute("value")
               for o in browser.find_elements("css selector", "#curve-metric option")]
    assert options[0] == "val_acc" and {"val_loss", "train_loss"} <= set(options)
    assert drawn_metric(browser) == {"val_acc"}
    pick(browser, "curve-metric", "val_loss")
    assert drawn_metric(browser) == {"val_loss"}
    labels = [t.text for t in browser.find_elements("css selector", "#curves text.label")]
    assert "val_loss (mean over seeds)" in labels
    assert browser.find_element("id", "curve-caption").text.startswith("val_loss per epoch")
    pick(browser, "curve-metric", "val_acc")


def test_the_seed_toggle_shows_each_seeds_line_and_the_band_is_the_seeds_range(pages, browser):
    opened(browser, pages["degradation"])
    seeds = browser.find_elements("css selector", "#curves g.trace path.seed")
    assert len(seeds) == 6 * 3 and not any(s.is_displayed() for s in seeds)
    assert len(browser.find_elements("css selector", "#curves g.trace path.band")) == 6
    assert "band: their min–max" in browser.find_element("id", "curve-caption").text
    pick(browser, "curve-seeds", True)
    assert all(s.is_displayed() for s in browser.find_elements("css selector", "#curves g.trace path.seed"))
    pick(browser, "curve-seeds", False)


def test_wall_time_and_smoothing_redraw_with_their_names(pages, browser):
    opened(browser, pages["kd"])
    before = browser.find_element("css selector", "#curves g.trace path.line").get_attribute("d")
    pick(browser, "curve-ema", "0.6")
    assert browser.find_element("id", "curve-ema-value").text == "0.60"
    assert "EMA of factor 0.60" in browser.find_element("id", "curve-caption").text
    assert browser.find_element("css selector", "#curves g.trace path.line").get_attribute("d") != before
    pick(browser, "curve-x", "time")
    labels = [t.text for t in browser.find_elements("css selector", "#curves text.label")]
    assert "wall time (s, the trial's own)" in labels
    pick(browser, "curve-ema", "0")
    pick(browser, "curve-x", "epoch")


@pytest.mark.parametrize("kind", ["degradation", "optuna", "comparison"])
def test_hover_names_the_configuration(pages, browser, kind):
    from selenium.webdriver import ActionChains

    opened(browser, pages[kind])
    tip = browser.find_element("id", "tip")
    labels = {b.get_attribute("data-trial"): b.text
              for b in browser.find_elements("css selector", ".legend button[data-trial]")}
    hovered = 0
    for trace in browser.find_elements("css selector", "#curves g.trace"):
        points = trace.find_elements("css selector", "circle[data-tip]")
        point = next((c for c in points if on_top(browser, c)), None)
        if point is None:  # every point of this trial lies under another trial's
            continue
        ActionChains(browser).move_to_element(point).perform()
        assert tip.is_displayed() and tip.text.startswith(labels[trace.get_attribute("data-trial")])
        hovered += 1
    assert hovered >= 4


def test_more_than_ten_trials_get_distinct_colours(pages, browser):
    opened(browser, pages["optuna"])
    colours = [b.find_element("css selector", ".swatch").value_of_css_property("background-color")
               for b in browser.find_elements("css selector", ".legend button[data-trial]")]
    assert len(colours) == 16 == len(set(colours))


def test_a_dragged_box_zooms_into_the_curves_and_reset_shows_them_all(pages, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    opened(browser, pages["optuna"])
    svg = browser.find_element("id", "curves")
    browser.execute_script("arguments[0].scrollIntoView()", svg)
    everything, reset = x_ticks(browser), browser.find_element("id", "curve-zoom-reset")
    assert reset.get_attribute("disabled") and min(everything) == 1 and max(everything) == 6
    # from a third of the way across to two thirds, over the middle half of the height
    width, height = svg.size["width"], svg.size["height"]
    ActionChains(browser).move_to_element_with_offset(svg, -width // 6, -height // 4).click_and_hold() \
        .move_by_offset(width // 3, height // 2).release().perform()
    caption = browser.find_element("id", "curve-caption").text
    assert "zoomed to x" in caption and not reset.get_attribute("disabled")
    zoomed = x_ticks(browser)
    assert zoomed and min(zoomed) > 1 and max(zoomed) < 6, zoomed
    clipped = browser.find_elements("css selector", "#curves g.trace[clip-path]")
    assert len(clipped) == len(browser.find_elements("css selector", "#curves g.trace"))
    reset.click()
    assert x_ticks(browser) == everything and "zoomed" not in browser.find_element("id", "curve-caption").text
    ActionChains(browser).move_to_element(svg).click().perform()  # a click is not a box: no zoom
    assert "zoomed" not in browser.find_element("id", "curve-caption").text


def test_the_search_budget_axis_counts_every_trials_epochs_in_report_order(pages, browser):
    opened(browser, pages["degradation"])
    pick(browser, "curve-x", "budget")
    data = json.loads(browser.find_element("id", "curve-data").get_attribute("textContent"))
    reports = sum(len(t["x"]) for t in data["trials"])
    spent = sorted(n for t in data["trials"] for n in t["n"])
    assert spent == list(range(1, reports + 1))  # each report one trial-epoch further into the search
    assert all(t["n"] == sorted(t["n"]) for t in data["trials"])
    assert max(max(t["x"]) for t in data["trials"]) < max(x_ticks(browser)) <= reports
    assert "trial-epoch of the search" in browser.find_element("id", "curve-caption").text
    tips = [c.get_attribute("data-tip")
            for c in browser.find_elements("css selector", "#curves circle[data-tip]")]
    assert any("trial-epochs into the search (epoch 1)" in tip for tip in tips)
    pick(browser, "curve-x", "epoch")


def test_colour_by_a_categorical_knob_gives_each_value_one_colour_and_a_key(pages, browser):
    opened(browser, pages["degradation"])
    by_configuration = trace_colours(browser)
    assert len(set(by_configuration.values())) == len(by_configuration)
    pick(browser, "curve-colour", "skip")
    by_skip = trace_colours(browser)
    labels = {b.get_attribute("data-trial"): b.text
              for b in browser.find_elements("css selector", ".legend button[data-trial]")}
    groups: dict[str, set[str]] = {}
    for trial, stroke in by_skip.items():
        groups.setdefault(stroke, set()).add("skip=True" in labels[trial])
    assert len(groups) == 2 and all(len(sides) == 1 for sides in groups.values()), groups
    mismatched = browser.execute_script("""
        return [...document.querySelectorAll('.legend button[data-trial]')].filter((b) => {
          const line = document.querySelector(`#curves g.trace[data-trial="${b.dataset.trial}"] path.line`);
          const swatch = getComputedStyle(b.querySelector('.swatch')).backgroundColor;
          return swatch !== getComputedStyle(line).stroke;
        }).length;""")
    assert mismatched == 0  # the legend's swatches follow the colouring
    key = browser.find_element("id", "curve-key").text
    assert key.startswith("colour: skip") and "False" in key and "True" in key
    pick(browser, "curve-colour", "")
    assert trace_colours(browser) == by_configuration
    assert browser.find_element("id", "curve-key").text == ""


def test_colour_by_a_continuous_knob_is_a_log_ramp_from_its_lowest_to_its_highest_value(pages, browser):
    opened(browser, pages["optuna"])
    pick(browser, "curve-colour", "lr")
    key = browser.find_element("id", "curve-key")
    assert key.text.startswith("colour: lr (log scale)")
    assert "linear-gradient" in key.find_element("css selector", ".ramp").get_attribute("style")
    data = json.loads(browser.find_element("id", "curve-data").get_attribute("textContent"))
    lrs = {t["id"]: float(t["label"].split("lr=")[1].split(",")[0].split(";")[0]) for t in data["trials"]}
    strokes = trace_colours(browser)
    lowest, highest = min(lrs, key=lrs.get), max(lrs, key=lrs.get)
    ramp = data["knobs"]["lr"]["ramp"]
    assert strokes[lowest] == ramp[0] and strokes[highest] == ramp[-1]
    assert len(set(strokes.values())) > 8  # a ramp, not a handful of bins
