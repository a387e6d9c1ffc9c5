"""`python -m trainables.data.prepare`: makes the offline datasets ready; idempotent (make install)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from trainables.data.images import DEBIAN_FASHION_MNIST
from trainables.data.text import prepare_rotten_tomatoes


def ensure_fashion_mnist() -> None:
    if (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', "
              "or pass --data-dir", file=sys.stderr)
        return
    print("installing Fashion-MNIST from Debian (dataset-fashion-mnist)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], check=True,
                   stdout=subprocess.DEVNULL)


def ensure_chromium() -> None:
    """Headless Chromium and its WebDriver from Debian, for the dashboard browser test."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("Chromium is missing (the dashboard browser test skips): run "
              "'sudo apt-get install chromium chromium-driver'", file=sys.stderr)
        return
    print("installing Chromium from Debian (chromium, chromium-driver)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ensure_fashion_mnist()
    ensure_chromium()
    prepare_rotten_tomatoes()


if __name__ == "__main__":
    main()
