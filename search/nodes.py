"""Every node of the cluster, checked before any trial: it sees the storage and runs the driver's code.

On a cluster of several nodes Ray Tune writes each trial's checkpoints from the node the trial runs on,
straight to the storage, and each node imports tunelab, torch and Ray from its own installation. A
storage only the head sees, or a node with other code, fails trial by trial and deep in Ray's logs.
So the driver writes a marker file into the storage and runs one small task pinned to each node that
must read it back and report the node's versions (docs/clusters.md). A path that merely exists on every
node does not pass: the marker's content must match.

Code is not shipped with `runtime_env` (working_dir / py_modules): a worker node needs tunelab's
packages (torch, transformers...) installed anyway, so it needs the checkout too, and a check that
names the node with other code is exact where a silently shipped copy would hide a stale install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import platform
import secrets
import socket
from pathlib import Path
from typing import Any

from store import Location, StorageError, locate

CODE_PACKAGES = ("search", "spaces", "trainables", "analysis", "store")
"""tunelab's packages: their .py files make the code fingerprint."""
VERSIONED = ("python", "ray", "torch", "tunelab")
"""What must be the same on every node; tunelab is the fingerprint of its code."""
CHECK_TIMEOUT_S = 120.0
"""A node whose task has not answered by then is named (a fresh worker process can take ~10 s here)."""
INSTALL_HINT = "install the same checkout on every node (`pip install -c constraints.txt -e .`)"


def code_fingerprint() -> str:
    """12 hex digits over the path and content of every .py file of tunelab's packages, as imported."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            digest.update(f"{package}: missing".encode())
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for file in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{file.relative_to(root).as_posix()}\n".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def versions() -> dict[str, str | None]:
    """This process's Python, Ray, torch and tunelab code (metadata only: nothing heavy is imported)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("ray", "torch"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    found["tunelab"] = code_fingerprint()
    return found


def probe(marker: str | None) -> dict[str, Any]:
    """Runs on one node: its versions, and what it reads at the marker's address (or why it cannot)."""
    seen: dict[str, Any] = {"hostname": socket.gethostname(), "versions": versions()}
    if marker is not None:
        try:
            seen["marker"] = locate(marker).read_text()
        except (OSError, StorageError) as err:
            seen["marker_error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return seen


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def describe(node: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    """What the plan records of a node: its address, host, resources and versions."""
    resources = node.get("Resources", {})
    kept = {k: v for k, v in resources.items()
            if k in ("CPU", "GPU") or k.startswith("accelerator_type:")}
    for key in ("memory", "object_store_memory"):
        if key in resources:
            kept[f"{key}_gb"] = round(resources[key] / 2**30, 1)
    return {"ip": node.get("NodeManagerAddress"), "hostname": seen.get("hostname") or
            node.get("NodeManagerHostname"), "resources": kept, "versions": seen.get("versions", {})}


def differences(mine: dict[str, str | None], theirs: dict[str, str | None]) -> list[str]:
    return [f"{key} {theirs.get(key) or 'missing'} (the driver: {mine.get(key)})"
            for key in VERSIONED if theirs.get(key) != mine.get(key)]


def check_nodes(storage: Location) -> list[dict[str, Any]]:
    """The cluster's live nodes as the plan records them. On more than one node, first checks that each
    reads a marker the driver wrote into `storage` and runs the driver's versions; UsageError (one line)
    naming the first node that does not."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from cli import UsageError  # here: the probe's module is imported on each node, keep it light

    nodes = alive_nodes()
    mine = versions()
    if len(nodes) <= 1:  # the driver runs on a node, so a one-node cluster is the driver's machine
        return [describe(node, {"hostname": socket.gethostname(), "versions": mine}) for node in nodes]
    token = secrets.token_hex(16)
    marker = storage / f".tunelab-node-check-{token[:12]}"
    try:
        marker.write_text(token)
    except OSError as err:
        raise UsageError(f"storage {storage} is not writable ({err})") from None
    try:
        task = ray.remote(probe)
        refs = [task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(marker.uri) for node in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
        seen = []
        for node, ref in zip(nodes, refs, strict=True):
            where = f"node {node.get('NodeManagerAddress')}"
            if ref not in ready:
                raise UsageError(f"{where} did not answer tunelab's check within {CHECK_TIMEOUT_S:.0f} s")
            try:
                seen.append(ray.get(ref))
            except Exception as err:  # the task's error names what the node lacks (e.g. tunelab)
                cause = getattr(err, "cause", None) or err
                text = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
                raise UsageError(f"{where} cannot run tunelab's check ({text}): {INSTALL_HINT}") from None
        for node, found in zip(nodes, seen, strict=True):
            where = f"node {node.get('NodeManagerAddress')}"
            if found.get("marker") != token:
                if storage.local:
                    raise UsageError(f"--storage {storage} is a folder {where} does not see; on a cluster "
                                     "use a path every node mounts (NFS) or a URI such as s3://bucket/prefix")
                raise UsageError(f"--storage {storage} cannot be read from {where} "
                                 f"({found.get('marker_error', 'other content')}); give every node the "
                                 "store's credentials (e.g. AWS_* in the environment of `ray start`)")
            wrong = differences(mine, found.get("versions", {}))
            if wrong:
                raise UsageError(f"{where} runs {', '.join(wrong)}: {INSTALL_HINT}")
    finally:
        try:
            marker.delete()
        except OSError:
            pass
    return [describe(node, found) for node, found in zip(nodes, seen, strict=True)]
