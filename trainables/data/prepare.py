"""`python -m trainables.data.prepare`: makes the offline datasets ready; idempotent (make install).
`--mpnet` also installs the optional mpnet backbone (make mpnet; trainables/data/mpnet.py)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from trainables.data.images import DEBIAN_FASHION_MNIST
from trainables.data.mpnet import fetch_mpnet
from trainables.data.root import data_root
from trainables.data.text import prepare_rotten_tomatoes


def apt_install(packages: list[str], what: str, manual_hint: str) -> None:
    """Installs Debian packages when we are root; otherwise says what to run (and does not fail)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"{what} is missing: run 'sudo apt-get install {' '.join(packages)}'{manual_hint}",
              file=sys.stderr)
        return
    print(f"installing {what} from Debian ({', '.join(packages)})")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, stdout=subprocess.DEVNULL)


def ensure_fashion_mnist() -> None:
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        apt_install(["dataset-fashion-mnist"], "Fashion-MNIST", ", or pass --data-dir")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mpnet", action="store_true", help="also install the mpnet backbone (438 MB)")
    args = parser.parse_args()
    ensure_fashion_mnist()
    prepare_rotten_tomatoes()
    if args.mpnet:
        try:
            fetch_mpnet(data_root() / "models" / "mpnet")
        except (ValueError, subprocess.CalledProcessError) as err:
            sys.exit(f"mpnet not installed: {err}")


if __name__ == "__main__":
    main()
