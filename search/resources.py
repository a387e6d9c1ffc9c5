"""What each trial requests, decided against the cluster Ray runs on rather than the driver's hardware.

The command line is checked before Ray starts (search/options.py: the form of the numbers, and on a
local run what this machine has). Once Ray is up, the cluster's nodes decide the rest: the default GPU
fraction (the space's when some node has a GPU, else none, whatever the driver's own CUDA says) and
whether any node can hold one trial at all. A request no node can satisfy would leave Ray waiting
forever, e.g. a GPU search resumed on a CPU-only machine, so it is refused in one line instead.
"""

from __future__ import annotations

from cli import UsageError
from search.plan import SearchPlan

Node = dict[str, float]
"""A live node's total resources, as Ray reports them: {"CPU": 16.0, "GPU": 1.0, ...}."""


def cluster_nodes() -> list[Node]:
    """Total resources of each live node of the running Ray cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def trials_per_node(node: Node, cpus: int, gpus: float) -> int:
    """How many trials of `cpus` CPUs and `gpus` GPUs this node runs at once."""
    fit = node.get("CPU", 0.0) // cpus
    if gpus > 0:
        fit = min(fit, node.get("GPU", 0.0) // gpus)
    return int(fit)


def concurrent_trials(nodes: list[Node], cpus: int, gpus: float) -> int:
    """Trials the cluster runs at once: CPUs and GPUs both count, node by node."""
    return sum(trials_per_node(node, cpus, gpus) for node in nodes)


def _describe(nodes: list[Node]) -> str:
    return ", ".join(f"{node.get('CPU', 0):g} CPUs {node.get('GPU', 0):g} GPUs" for node in nodes) or "none"


def settle_resources(plan: SearchPlan, nodes: list[Node], cpus: int | None = None,
                     gpus: float | None = None) -> None:
    """Fixes plan.cpus and plan.gpus for this cluster: `cpus`/`gpus` when given (the command line),
    else the plan's; a plan without a GPU fraction yet gets the space's when some node has a GPU.
    UsageError when no node can hold one trial."""
    if cpus is not None and cpus < 1:  # a resume's flags reach here unchecked
        raise UsageError(f"--cpus-per-trial must be >= 1, got {cpus}")
    if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
        raise UsageError(f"--gpus-per-trial must be a fraction of one GPU or a whole number, got {gpus:g}")
    cpus = plan.cpus if cpus is None else cpus
    if gpus is None:
        gpus = plan.gpus
    if gpus is None:
        gpus = plan.space.gpu if any(node.get("GPU", 0) > 0 for node in nodes) else 0.0
    if not any(trials_per_node(node, cpus, gpus) for node in nodes):
        hint = " (pass --gpus-per-trial 0 to run on CPUs)" if gpus > 0 else ""
        raise UsageError(f"no node of the Ray cluster can run a trial of {cpus} CPUs and {gpus:g} GPUs "
                         f"(nodes: {_describe(nodes)}){hint}")
    plan.cpus, plan.gpus = cpus, float(gpus)
    plan.max_concurrent = concurrent_trials(nodes, cpus, float(gpus))
    if plan.scheduler == "wilcoxon" and not plan.wave:  # a resume keeps the wave the search started with
        plan.wave = plan.max_concurrent
    plan.config["cpus"] = cpus
