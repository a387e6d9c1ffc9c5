"""What the browser tests of the report page share (tests/test_page_kinds.py, tests/test_page_controls.py),
beside their `pages` and `browser` fixtures in tests/conftest.py: the window's width, and the helpers
that drive the page as a reader would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

needs_chromium = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                    reason="Chromium and chromedriver are not installed")


WIDTH = 1280
def opened(browser, page: Path):
    browser.get(page.resolve().as_uri())
    return browser


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


def on_top(browser, element) -> bool:
    """Whether the element, scrolled into view, is what the mouse reaches around its centre (the
    pointer lands on a whole pixel, and points of two trials may nearly coincide)."""
    return browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center'}); const b = arguments[0].getBoundingClientRect();"
        "const x = b.x + b.width / 2, y = b.y + b.height / 2;"
        "return [[Math.floor(x), Math.floor(y)], [Math.ceil(x), Math.ceil(y)], [Math.floor(x), Math.ceil(y)],"
        "        [Math.ceil(x), Math.floor(y)]]"
        "  .every(([u, v]) => document.elementFromPoint(u, v) === arguments[0]);", element)


def x_ticks(browser) -> list[float]:
    """The curves' x tick labels (the texts under the plot area)."""
    return [float(t.text) for t in browser.find_elements("css selector", "#curves > text[text-anchor=middle]")
            if t.text and t.text.replace(".", "", 1).isdigit()]


def trace_colours(browser) -> dict[str, str]:
    return {g.get_attribute("data-trial"): g.find_element("css selector", "path.line").get_attribute("stroke")
            for g in browser.find_elements("css selector", "#curves g.trace")}
