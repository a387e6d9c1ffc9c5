"""`python tests/install_browser.py` (make install): headless Chromium and its WebDriver from Debian,
for the browser tests (the report page, the dashboard, the notebooks). As root it installs them when
missing; otherwise it says what to run, and those tests skip."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.data.prepare import apt_install  # noqa: E402

if __name__ == "__main__":
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        apt_install(["chromium", "chromium-driver"], "Chromium", " (the browser tests skip)")
