"""The report page in headless Chromium: its size, its load time, and a screenshot.

    .venv/bin/python bench/bench_page.py report/<experiment>/index.html [--screenshot docs/report_page.png
                                         [--width 1280] [--height 1000] [--at curves-section]]
    .venv/bin/python bench/bench_page.py --optuna 64

The second form first writes the page of a constructed 64-trial Optuna search
(bench/page_experiments.py: three continuous knobs, ASHA stops, six epochs) and measures that one. Loads
the page from disk (file://) `--loads` times in Debian's Chromium and prints its size and the median
time from navigation start to the load event's end. With plotly importable it also writes the same
learning curves as a plotly page (its JavaScript inlined, as an offline page must carry it) and loads
that the same way, printing both and the ratio: the measurement behind the choice of inline SVG
(docs/report.md). tests/test_page.py drives the same browser through `chromium()`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages (analysis, bench) importable

WIDTH = 1000
"""The width the issue reads the pictures at, in CSS pixels."""


def chromium(width: int = WIDTH, height: int = 1000):
    """Headless Debian Chromium through selenium, with the browser console and the network events
    (the performance log) recorded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    browser.set_page_load_timeout(60)
    return browser


def load_ms(browser, page: Path, loads: int) -> float:
    """Median milliseconds from navigation start to the end of the load event over `loads` loads."""
    times = []
    for _ in range(loads):
        browser.get("about:blank")
        browser.get(page.resolve().as_uri())
        times.append(browser.execute_script(
            "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;"))
    return statistics.median(times)


def screenshot(browser, page: Path, png: Path, width: int = 1280, height: int | None = None,
               at: str | None = None) -> Path:
    """The page in a window `width` px wide, as one PNG (256 colours): `height` px from its top, or from
    the element whose id is `at`, or the whole page when neither is given."""
    browser.set_window_size(width, height or 1000)
    browser.get(page.resolve().as_uri())
    if at:
        browser.execute_script("document.getElementById(arguments[0]).scrollIntoView()", at)
    elif height is None:
        browser.set_window_size(width, browser.execute_script("return document.documentElement.scrollHeight"))
    png.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(png))
    from PIL import Image

    # 256 colours hold a page of text and thin lines without a visible loss, at a third of the bytes.
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)
    return png


def plotly_page(page: Path, out: Path) -> Path | None:
    """The page's learning curves (its #curve-data, analysis/page_curves.py) as a plotly page with
    plotly.js inlined; None when plotly is not installed."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    import json
    import re

    data = json.loads(re.search(r'<script type="application/json" id="curve-data">(.*?)</script>',
                                page.read_text(), re.S)[1])
    figure = go.Figure()
    for trial in data["trials"]:
        figure.add_scatter(x=trial["x"], y=trial["v"][data["metric"]]["m"], name=trial["label"],
                           mode="lines+markers")
    figure.write_html(out, include_plotlyjs=True, full_html=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, nargs="?")
    parser.add_argument("--optuna", type=int, metavar="TRIALS",
                        help="measure the page of a constructed Optuna search of TRIALS trials instead")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--width", type=int, default=1280, help="the screenshot's window width, px")
    parser.add_argument("--height", type=int, help="the screenshot's height, px (default: the whole page)")
    parser.add_argument("--at", metavar="ID", help="the screenshot starts at the element with this id")
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.optuna:
            args.page = optuna_page(Path(folder), args.optuna)
        return measure(args)


def optuna_page(folder: Path, trials: int) -> Path:
    """The page of a constructed Optuna search of `trials` trials, written under `folder`."""
    from analysis.page import write_page
    from analysis.results import open_experiment
    from bench.page_experiments import optuna_search

    return write_page(open_experiment(optuna_search(folder / "optuna", trials=trials)), folder / "report")


def measure(args: argparse.Namespace) -> int:
    if args.page is None or not args.page.is_file():
        print(f"error: no page at {args.page}", file=sys.stderr)
        return 2
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    browser = chromium()
    try:
        ours = load_ms(browser, args.page, args.loads)
        print(f"inline SVG page: {args.page.stat().st_size / 1024:.0f} KiB, load {ours:.0f} ms "
              f"(median of {args.loads}, headless Chromium, {cpu})")
        with tempfile.TemporaryDirectory() as folder:
            other = plotly_page(args.page, Path(folder) / "plotly.html")
            if other is None:
                print("plotly page: plotly is not installed, no comparison")
            else:
                theirs = load_ms(browser, other, args.loads)
                print(f"plotly page of the curves alone: {other.stat().st_size / 1024:.0f} KiB, load "
                      f"{theirs:.0f} ms; ratio plotly/inline SVG: size "
                      f"{other.stat().st_size / args.page.stat().st_size:.1f}x, load {theirs / ours:.1f}x")
        if args.screenshot:
            png = screenshot(browser, args.page, args.screenshot, args.width, args.height, args.at)
            print(f"screenshot: {png}")
    finally:
        browser.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
