"""`--dashboard` in a real browser: headless Debian Chromium loads Ray's dashboard during a smoke
search, authenticated with the token cookie, and the rendered page shows the cluster and the trial."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.killing import kill_session
from search.cluster import token_location
from tests.conftest import OFFLINE_ENV, ROOT

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Chromium and chromedriver are not "
                       "installed and could not be (make install apt-gets them when root)"),
]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    return browser


def test_dashboard_shows_the_cluster_and_the_running_trial(tmp_path: Path):
    log = tmp_path / "driver.log"
    # A trial long enough (a few thousand images per epoch) to still be running while the page loads.
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "search" / "run.py"), "--space", "degradation", "--profile", "smoke",
         "--set", "num_blocks=1", "--set", "skip=false", "--set", "train_subset=8192", "--max-epochs", "20",
         "--scheduler", "fifo", "--dashboard", "--storage", str(tmp_path / "results"), "--name", "dash"],
        cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, start_new_session=True,
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    browser = None
    try:
        found = wait_for(lambda: re.search(r"dashboard: (http://\S+)", log.read_text()), 180, "the URL")
        url = found.group(1)
        assert url.startswith("http://127.0.0.1:"), "the dashboard must listen on loopback"
        token = Path(token_location()).read_text().strip()

        # Token auth is on: the API refuses a request without the token.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/nodes?view=summary", timeout=30)
        assert refused.value.code in (401, 403)

        wait_for(lambda: list((tmp_path / "results" / "dash").glob("*/params.json")), 180, "the trial")
        browser = chromium()
        browser.get(f"{url}/favicon.ico")  # a cookie can only be set on the page's own origin
        browser.add_cookie({"name": "ray-authentication-token", "value": token, "path": "/"})

        def page_text(fragment: str, *needles: str) -> str:
            """The rendered text of a dashboard page once it shows every needle."""
            browser.get(f"{url}/{fragment}")

            def rendered() -> str | None:
                text = browser.find_element("tag name", "body").text
                return text if all(n in text for n in needles) else None

            return wait_for(rendered, 90, f"{needles} on {fragment}")

        overview = page_text("#/overview", "Node Status", "search/run.py")
        assert "Active:" in overview and "Recent jobs" in overview
        browser.save_screenshot(str(tmp_path / "overview.png"))
        actors = page_text("#/actors", "train_cnn", "ALIVE")
        assert "ImplicitFunc" in actors
        assert browser.save_screenshot(str(tmp_path / "actors.png"))
        assert (tmp_path / "actors.png").stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        driver.kill()
        driver.wait()
        kill_session(driver.pid)
    assert token not in log.read_text(), "the driver printed the token"
    leaks = [p for p in (tmp_path / "results").rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == []
