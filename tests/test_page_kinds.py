"""The report page of each kind of experiment in headless Chromium at 1,280 px, built from small
constructed experiment folders (bench/page_experiments.py), no search run: a degradation grid with
lockstep seeds, kd with its baseline, an Optuna search over continuous knobs, a PBT population with
its exploits, a comparison of two experiments (analysis/compare.py), the mnist warm-up, the kd
teachers, lora (two reports an epoch), a two-objective lora_front search (its whole report, front
picture included), extract (one report a trial, its backbones not all installed here) and a search a
Ctrl-C interrupted. Each page loads without a console error or a request leaving the file, and nothing
on it is wider than the window, and each shows what only its kind holds (the curves' controls are
tests/test_page_controls.py)."""

from __future__ import annotations

import json

import pytest

from bench import page_experiments as made
from tests.page_browser import WIDTH, needs_chromium, opened

pytestmark = needs_chromium


KINDS = ("degradation", "kd", "optuna", "pbt", "comparison", "mnist", "teachers", "lora", "lora_front",
         "extract", "interrupted", "seeds as trials")


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
    # asha's stops, as it recorded them: each curve ends in its mark, each row says the evidence
    stopped = [row for row in browser.find_elements("css selector", "#trial-table tbody tr")
               if "below the rung's cutoff" in row.text]
    assert stopped and all("epoch 2: " in row.text and "below the cutoff" in row.text for row in stopped)
    assert len(browser.find_elements("css selector", "#curves path.end.cutoff")) == len(stopped)


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
