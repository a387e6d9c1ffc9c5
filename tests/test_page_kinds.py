"""The report page of each kind of experiment in headless Chromium at 1,280 px, built from small
constructed experiment folders (bench/page_experiments.py), no search run: a degradation grid with
lockstep seeds, kd with its baseline, an Optuna search over continuous knobs, a PBT population with
its exploits, a comparison of two experiments (analysis/compare.py), the mnist warm-up, the kd
teachers, lora (two reports an epoch), a two-objective lora_front search (its whole report, front
picture included), extract (one report a trial, its backbones not all installed here) and a search a
Ctrl-C interrupted. Each page loads without a console error or a request leaving the file, and nothing
on it is wider than the window; the curves' controls redraw what they say, and hover names the
configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import page_experiments as made
from bench.bench_page import chromium

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                reason="Chromium and chromedriver are not installed")
WIDTH = 1280
KINDS = ("degradation", "kd", "optuna", "pbt", "comparison", "mnist", "teachers", "lora", "lora_front",
         "extract", "interrupted", "seeds as trials")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    from analysis.compare import run
    from analysis.page import write_page
    from analysis.report import write_report
    from analysis.results import open_experiment

    root = tmp_path_factory.mktemp("kinds")
    folders = {"degradation": made.degradation(root / "degradation"), "kd": made.kd(root / "kd"),
               "optuna": made.optuna_search(root / "optuna", trials=16),
               "pbt": made.pbt(root / "pbt"), "mnist": made.mnist(root / "mnist"),
               "teachers": made.teachers(root / "teachers"), "lora": made.lora(root / "lora"),
               "extract": made.extract(root / "extract"),
               "interrupted": made.interrupted(root / "interrupted"),
               "seeds as trials": made.seeds_as_trials(root / "seeds_as_trials")}
    other = made.degradation(root / "degradation_again", seeds=2)
    found = {kind: write_page(open_experiment(folder), root / "report" / kind)
             for kind, folder in folders.items()}
    found["comparison"] = run([str(folders["degradation"]), str(other)], root / "report") / "index.html"
    # a front is a picture the report draws (analysis/report.py), so this page is the whole report's
    found["lora_front"] = write_report(open_experiment(made.lora_front(root / "lora_front")),
                                       root / "report") / "index.html"
    return found


@pytest.fixture(scope="module")
def browser():
    browser = chromium(WIDTH, 900)
    yield browser
    browser.quit()


def opened(browser, page: Path):
    browser.get(page.resolve().as_uri())
    return browser


@pytest.mark.parametrize("kind", KINDS)
def test_the_page_loads_clean_and_fits_the_window(pages, browser, kind):
    page = pages[kind]
    opened(browser, page)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    events = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    requests = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    assert requests == {page.resolve().as_uri()}
    # Nothing wider than the window: a table may be, but only inside its own scrolling box.
    wide = browser.execute_script("""
        const width = document.documentElement.clientWidth;
        return [document.documentElement.scrollWidth - width,
                [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll > *'))
                  .filter(e => e.getBoundingClientRect().right > width + 0.5)
                  .map(e => e.tagName + '#' + e.id)];""")
    assert wide == [0, []]
    assert browser.execute_script("return document.documentElement.clientWidth") == WIDTH


def drawn_metric(browser) -> set[str]:
    """The metric named in each point's hover text."""
    points = browser.find_elements("css selector", "#curves circle[data-tip]")
    tips = [c.get_attribute("data-tip") for c in points]
    return {tip.split(": ")[1].split(" ")[0] for tip in tips}


def pick(browser, ident: str, value) -> None:
    """Sets a control as a reader would and lets the page hear of it."""
    browser.execute_script("const c = document.getElementById(arguments[0]);"
                           "if (c.type === 'checkbox') c.checked = arguments[1]; else c.value = arguments[1];"
                           "c.dispatchEvent(new Event('input'));", ident, value)


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


def on_top(browser, element) -> bool:
    """Whether the element, scrolled into view, is what the mouse reaches around its centre (the
    pointer lands on a whole pixel, and points of two trials may nearly coincide)."""
    return browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center'}); const b = arguments[0].getBoundingClientRect();"
        "const x = b.x + b.width / 2, y = b.y + b.height / 2;"
        "return [[Math.floor(x), Math.floor(y)], [Math.ceil(x), Math.ceil(y)], [Math.floor(x), Math.ceil(y)],"
        "        [Math.ceil(x), Math.floor(y)]]"
        "  .every(([u, v]) => document.elementFromPoint(u, v) === arguments[0]);", element)


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


def test_a_comparison_draws_each_experiment_in_its_own_line_and_a_configuration_in_one_colour(pages, browser):
    opened(browser, pages["comparison"])
    lines = {t.get_attribute("data-trial"): t.find_element("css selector", "path.line")
             for t in browser.find_elements("css selector", "#curves g.trace")}
    assert {trial[0] for trial in lines} == {"A", "B"}
    for trial, line in lines.items():
        assert (line.get_attribute("stroke-dasharray") or "") == ("" if trial[0] == "A" else "7 4"), trial
    colours = {}
    for button in browser.find_elements("css selector", ".legend button[data-trial]"):
        configuration = button.text.split(": ", 1)[1].split(";")[0]
        colours.setdefault(configuration, set()).add(
            button.find_element("css selector", ".swatch").value_of_css_property("background-color"))
    assert len(colours) >= 2 and all(len(found) == 1 for found in colours.values()), colours


SHOWN = {
    "mnist": ("cnn1 > mlp", "cnn2 > mlp"),
    "teachers": ("resnet32", "wrn14_2"),
    "lora": ("q8 ~ full", "qkvo16 ~ full", "trainable_params"),
    "extract": ("distilbert > minilm", "test_acc"),
    "interrupted": ("Interrupted (Ctrl-C at 2026-12-06T10:00:00+0000): partial results", "no winner"),
}


@pytest.mark.parametrize("kind", sorted(SHOWN))
def test_each_kind_shows_its_own_study(pages, browser, kind):
    """What only this kind's page holds: its questions or arms, its own metrics, or the interruption."""
    opened(browser, pages[kind])
    text = browser.find_element("tag name", "body").text
    for shown in SHOWN[kind]:
        assert shown in text, (kind, shown)
    tips = [c.get_attribute("data-tip")
            for c in browser.find_elements("css selector", "#curves circle[data-tip]")]
    assert tips, f"{kind}: no curve drawn"
    if kind == "lora":  # two reports an epoch: points at half epochs
        assert any("epoch 0.5:" in tip for tip in tips) and any("epoch 1:" in tip for tip in tips)
    if kind == "interrupted":  # no winner, and the unfinished trial's curve ends as incomplete
        assert "no winner: the search was interrupted" in text and text.count("winner:") == 1
        assert any("▷ incomplete" in (tip or "") or "incomplete" in (tip or "")
                   for tip in (g.get_attribute("data-tip")
                               for g in browser.find_elements("css selector", "#curves g[data-tip]")))


def test_seeds_run_as_trials_are_drawn_as_one_configuration_with_its_band(pages, browser):
    """Three seeds of each setting, one trial each: one trace per setting, the mean over its seeds
    with the band of their range and each seed's line on demand, as a lockstep trial is drawn."""
    opened(browser, pages["seeds as trials"])
    labels = [b.text for b in browser.find_elements("css selector", ".legend button[data-trial]")]
    assert len(labels) == 2
    assert all(label.endswith("seeds 0, 1, 2 (mean, one trial each)") for label in labels), labels
    traces = browser.find_elements("css selector", "#curves g.trace")
    assert len(traces) == 2 and all(t.find_elements("css selector", "path.band") for t in traces)
    assert len(browser.find_elements("css selector", "#curves path.seed")) == 6


def test_more_than_ten_trials_get_distinct_colours(pages, browser):
    opened(browser, pages["optuna"])
    colours = [b.find_element("css selector", ".swatch").value_of_css_property("background-color")
               for b in browser.find_elements("css selector", ".legend button[data-trial]")]
    assert len(colours) == 16 == len(set(colours))


def x_ticks(browser) -> list[float]:
    """The curves' x tick labels (the texts under the plot area)."""
    return [float(t.text) for t in browser.find_elements("css selector", "#curves > text[text-anchor=middle]")
            if t.text and t.text.replace(".", "", 1).isdigit()]


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


def trace_colours(browser) -> dict[str, str]:
    return {g.get_attribute("data-trial"): g.find_element("css selector", "path.line").get_attribute("stroke")
            for g in browser.find_elements("css selector", "#curves g.trace")}


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


def test_an_optuna_search_shows_importance_slices_and_history(pages, browser):
    opened(browser, pages["optuna"])
    section = browser.find_element("id", "mattered").find_element("xpath", "..").text
    assert "fANOVA (optuna.importance.FanovaImportanceEvaluator" in section
    bars = browser.find_elements("css selector", "#importance rect.bar")
    shares = [float(b.get_attribute("data-tip").split("importance ")[1]) for b in bars]
    assert len(shares) == 3 and sum(shares) == pytest.approx(1, abs=0.01)
    assert {s.get_attribute("id") for s in browser.find_elements("css selector", ".slices svg")} == {
        "slice-lr", "slice-weight_decay", "slice-num_blocks"}
    x_labels = [t.text for t in browser.find_elements("css selector", "#slice-lr text.label")]
    assert "lr (log)" in x_labels
    assert browser.find_elements("css selector", "#history path.best")
    assert browser.find_elements("css selector", "#curves line.rung")


def test_a_pbt_page_has_no_rungs_and_no_trial_id_axis(pages, browser):
    opened(browser, pages["pbt"])
    assert browser.find_elements("css selector", "#curves g.trace")
    assert not browser.find_elements("css selector", "#curves line.rung")
    axes = [t.text for t in browser.find_elements("css selector", "#parallel text.label")]
    assert axes and "trial_id" not in axes
    assert not browser.find_elements("id", "mattered")


def test_a_pbt_page_draws_each_members_schedule_with_its_exploits(pages, browser):
    opened(browser, pages["pbt"])
    rows = browser.find_elements("css selector", "#timeline g[data-trial]")
    assert len(rows) == 4
    exploits = browser.find_elements("css selector", "#timeline .exploit")
    notes = [e.get_attribute("data-tip") for e in exploits]
    assert sorted(notes) == ["exploit: went on from abcde_00002's checkpoint of epoch 2",
                             "exploit: went on from abcde_00003's checkpoint of epoch 2"]
    # a member that exploited: its first two epochs in its parent's colour, the rest in its own
    spans = {g.get_attribute("data-trial"): g.find_elements("css selector", "rect.span") for g in rows}
    fills = [r.get_attribute("fill") for r in spans["abcde_00000"]]
    data = json.loads(browser.find_element("id", "curve-data").get_attribute("textContent"))
    colour = {t["id"]: t["colour"] for t in data["trials"]}  # the legend's and the curves' colours
    assert fills == [colour["abcde_00003"], colour["abcde_00000"]]
    tip = spans["abcde_00000"][0].get_attribute("data-tip")
    assert "epochs 0–2: trained by abcde_00003's run with temperature=7, w_st=1, lr=0.04" in tip
    assert len(spans["abcde_00003"]) == 1  # the best member trained on unchanged
    assert "pbt: 4 members, 2 exploits" in browser.find_element("css selector", "pre.schedule").text


def test_a_two_objective_page_draws_its_front_and_only_it_does(pages, browser):
    opened(browser, pages["lora_front"])
    picture = browser.find_element("id", "pictures").find_element("xpath", "..").text
    assert "front" in picture
    text = browser.find_element("tag name", "body").text
    assert "winner on the front" in text
    for kind in ("degradation", "optuna", "pbt"):
        opened(browser, pages[kind])
        assert "Front of" not in browser.page_source


def test_parallel_tick_labels_sit_above_the_lines(pages, browser):
    opened(browser, pages["optuna"])
    order = browser.execute_script("""
        const kids = [...document.querySelectorAll('#parallel > *')];
        return [Math.max(...kids.map((e, i) => e.classList.contains('pc') ? i : -1)),
                Math.min(...kids.map((e, i) => e.classList.contains('tick') ? i : Infinity))];""")
    assert order[0] < order[1]


def test_the_held_out_evaluation_appears_when_it_exists(tmp_path):
    from analysis.page import write_page
    from analysis.results import open_experiment

    exp = open_experiment(made.degradation(tmp_path / "exp", seeds=2, epochs=2))
    folder = tmp_path / "report"
    assert "id='evaluation'" not in write_page(exp, folder).read_text()
    (folder / "evaluation_test.json").write_text(json.dumps({
        "trial_id": "abcde_00005", "checkpoint": "checkpoint_000001", "epoch": 2, "split": "test",
        "images": 100, "accuracy": 0.61, "loss": 1.2, "confusion": [[30, 20], [19, 31]],
        "classes": ["a", "b"], "stored_val_acc": 0.6}))
    html = write_page(exp, folder).read_text()
    assert "id='evaluation'" in html and "accuracy <b>0.6100</b>" in html and "On the test split" in html


def test_a_front_only_for_two_objectives():
    from analysis.report import two_objectives
    from analysis.results import Experiment

    def exp(objectives) -> Experiment:
        return Experiment(None, None, None, [], [], plan={"objectives": objectives})

    assert two_objectives(exp([["val_acc", "max"], ["params", "min"]]))
    assert not two_objectives(exp([["val_acc", "max"]])) and not two_objectives(exp([]))


def test_an_optuna_search_whose_trials_all_score_the_same_gets_no_importance_and_still_a_page(tmp_path):
    """fANOVA refuses a study without variance ("zero total variance in all trees"): the page says why
    there is no importance instead of the report failing (a smoke optuna search at chance accuracy
    scores every trial alike)."""
    from analysis.page import write_page
    from analysis.page_search import importances
    from analysis.results import open_experiment

    folder = tmp_path / "flat"
    made.write_plan(folder, "degradation", "fifo", "optuna", 2, num_samples=4)
    for n in range(4):
        params = {"lr": 0.001 * (n + 1), "weight_decay": 1e-4, "num_blocks": 1 + n, "num_filters": 16,
                  "skip": False, "model": "cnn", "epochs": 2}
        made.write_trial(folder, n, params, [0.1, 0.1])
    exp = open_experiment(folder)
    assert importances(exp) == {}
    page = write_page(exp, tmp_path / "report").read_text()
    assert "No importance" in page and "scores that differ" in page
