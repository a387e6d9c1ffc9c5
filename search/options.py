"""Command line -> SearchPlan, with every value checked against the Space before Ray starts."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from analysis.rungs import check_alpha, trial_count
from analysis.wilcoxon import P_THRESHOLD
from cli import OneLineParser, UsageError
from search.checks import check_objectives, check_pbt, parse_objectives
from search.plan import SearchPlan
from spaces import PROFILES, SPACES, Space, get_space
from store import Location, StorageError, locate
from trainables.config import ConfigError, parse_value


def make_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="search/run.py", description="Run a tunelab study on Ray Tune.")
    p.add_argument("--space", help=f"study to search: {', '.join(SPACES)}")
    p.add_argument("--profile", default="demo", help=f"budget: {', '.join(PROFILES)} (default demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; a comma list on a grid axis searches those values")
    p.add_argument("--dataset", help="image dataset: fashion_mnist (offline default), mnist, cifar10")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--teacher", metavar="PATH", help="kd: teacher checkpoint, folder or URI (default: "
                   "best trial of the latest teachers experiment in --storage)")
    p.add_argument("--seeds", type=int, default=1, help="repeat every configuration with N seeds "
                   "(image spaces: trained in lockstep within one trial)")
    p.add_argument("--scheduler",
                   choices=("significance", "halving", "asha", "fifo", "moasha", "pbt", "wilcoxon"),
                   help="significance: synchronous halving that stops a configuration only when it is "
                   "significantly behind (ties go on; see --alpha); halving: synchronous successive "
                   "halving (the top 1/reduction_factor at each rung); asha: Ray's asynchronous ASHA; "
                   "fifo: no early stopping; moasha: two-objective ASHA, by non-dominated fronts; "
                   "pbt: population-based training of the space's rates (docs/pbt.md); wilcoxon: stops a "
                   "trial that a paired Wilcoxon test finds worse than the best one completed in the "
                   "waves of trials before its own (Optuna's WilcoxonPruner; the image spaces' default) "
                   "(default: moasha with --objective, else the space's)")
    p.add_argument("--objective", dest="objectives", metavar="NAME:max|min,NAME:max|min",
                   help="search a trade-off of two reported metrics, e.g. val_acc:max,trainable_params:min "
                   "(docs/tradeoffs.md)")
    p.add_argument("--question", dest="questions", action="append", default=[], metavar="QUESTION",
                   help="add a question the search answers, e.g. 'deep: num_blocks=7,skip=false < "
                   "num_blocks=5,skip=false; metric=train_loss' (relations <, >, ~ with margin=X; "
                   "docs/questions.md); its arms run to the budget")
    p.add_argument("--no-questions", dest="space_questions", action="store_false",
                   help="ask none of the space's own questions: the scheduler may stop any configuration "
                   "on the winner rule alone (fastest; the study's questions then go unanswered)")
    p.add_argument("--alpha", type=float, metavar="A",
                   help="--scheduler significance: level of the one-sided t-test behind a stop, in "
                   "(0, 0.5); smaller keeps more configurations (default 0.2); --scheduler "
                   "wilcoxon: the p below which its paired test stops a trial (default 0.2)")
    p.add_argument("--smoothing", type=float, metavar="BETA",
                   help="the scheduler decides on an exponential moving average of the metric, "
                   "s = (1-BETA)·value + BETA·s_prev, in [0, 1) (default: the space's; 0 is the raw value)")
    p.add_argument("--search", choices=("grid", "optuna"), default="grid")
    p.add_argument("--num-samples", type=int, default=1,
                   help="grid: repeats of the grid; optuna: trials to sample")
    p.add_argument("--max-epochs", type=int, help="override the profile's epochs (ASHA max_t)")
    p.add_argument("--cpus-per-trial", type=int, help="CPUs per trial (default: the space's)")
    p.add_argument("--gpus-per-trial", type=float, help="GPU fraction per trial (default: the space's "
                   "when the Ray cluster has GPUs, else 0)")
    p.add_argument("--storage", default="results", help="results folder, NFS path or URI such as "
                   "s3://bucket/prefix (default ./results; see docs/storage.md)")
    p.add_argument("--name", help="experiment name (default space__profile__time)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--list", action="store_true", help="list the spaces and their grids")
    p.add_argument("--view", action="store_true", help="print each model's size without training")
    ops = p.add_argument_group("operations")
    ops.add_argument("--resume", metavar="EXPERIMENT",
                     help="continue a killed search (its folder or URI); finished trials are kept")
    ops.add_argument("--dashboard", action="store_true",
                     help="serve Ray's dashboard on http://127.0.0.1:8265 (token auth on)")
    ops.add_argument("--wandb", nargs="?", const="tunelab", metavar="PROJECT",
                     help="mirror every trial to Weights & Biases (offline when no API key)")
    ops.add_argument("--report-serve", nargs="?", const="8000", metavar="PORT",
                     help="serve the report folder (its live page) on http://127.0.0.1:PORT while the search "
                     "runs (default port 8000; another machine: an SSH tunnel, see docs/report.md)")
    ops.add_argument("--ray-temp-dir", metavar="DIR",
                     help="Ray's session folders (logs, sockets) here instead of /tmp/ray")
    return p


class _GivenOnly(argparse.Namespace):
    """A namespace that answers every attribute it lacks: argparse fills in an option's default only
    where the namespace has none, so only the options the command line gives are stored in it."""

    def __getattr__(self, name: str) -> None:
        if name.startswith("_"):  # argparse's own bookkeeping attributes
            raise AttributeError(name)
        return None


def given_flags(argv: list[str] | None) -> list[str]:
    """The options the command line names (argparse fills the others with their defaults), e.g. so
    that `--resume` compares only what the user asked for with the stored search."""
    return sorted(vars(make_parser().parse_args(argv, namespace=_GivenOnly())))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = make_parser().parse_args(argv)
    args.given = given_flags(argv)
    if not args.list and not args.space and not args.resume:
        raise UsageError("--space is required (see --list)")
    return args


def parse_overrides(space: Space, items: list[str]) -> dict[str, list]:
    """`key=value` -> {key: [typed values]}; commas give several values (a grid axis)."""
    parsed: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            parts = text.split(",") if "," in text else [text]
            parsed[key] = [parse_value(space.config_cls, key, part) for part in parts]
        except ConfigError as err:
            raise UsageError(str(err)) from None
    return parsed


def open_storage(text: str) -> Location:
    """--storage -> Location: a local or NFS folder, or a URI pyarrow knows (no network yet)."""
    try:
        return locate(text)
    except StorageError as err:
        raise UsageError(str(err)) from None


def check_storage(storage: Location, name: str) -> None:
    """The storage must answer and be writable, and the experiment new: nothing is ever overwritten."""
    try:
        storage.check_reachable()  # a missing bucket or a dead endpoint is named as such
        if (storage / name).exists():
            raise UsageError(f"experiment {storage / name} already exists; pick another --name")
        storage.check_writable()
    except StorageError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"storage {storage} is not usable ({err})") from None


def resources(space: Space, args: argparse.Namespace) -> tuple[int, float | None]:
    """(CPUs, GPU fraction) per trial as far as they can be checked before Ray starts; the GPU fraction
    is None when not asked for: the cluster decides it (search/resources.py)."""
    cpus = args.cpus_per_trial if args.cpus_per_trial is not None else space.cpus
    if cpus < 1:
        raise UsageError(f"--cpus-per-trial must be >= 1, got {cpus}")
    if not args.address and cpus > (os.cpu_count() or 1):  # Ray would wait forever for the CPUs
        raise UsageError(f"--cpus-per-trial {cpus} exceeds this machine's {os.cpu_count()} CPUs")
    if args.gpus_per_trial is None:
        return cpus, None
    gpus = args.gpus_per_trial
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UsageError(f"--gpus-per-trial must be a fraction of one GPU or a whole number, got {gpus}")
    if gpus > 0 and not args.address:
        import torch  # only here: asking CUDA is the one check of the command line that needs it

        if not torch.cuda.is_available():
            raise UsageError("--gpus-per-trial > 0 but this machine has no CUDA GPU")
        if gpus > torch.cuda.device_count():
            raise UsageError(f"--gpus-per-trial {gpus:g} exceeds this machine's "
                             f"{torch.cuda.device_count()} GPUs")
    return cpus, gpus


def build_plan(args: argparse.Namespace) -> SearchPlan:
    """The search the command line asks for, as a value: `args` is only read, never changed."""
    space = get_space(args.space)
    config = space.base_config(args.profile)
    grid = {k: list(v) for k, v in space.grid.items()}
    overrides = parse_overrides(space, args.overrides)
    if args.dataset:
        overrides["dataset"] = parse_overrides(space, [f"dataset={args.dataset}"])["dataset"]
    if args.data_dir:
        data_dir = Path(args.data_dir).resolve()
        if not data_dir.is_dir():
            raise UsageError(f"--data-dir {args.data_dir} does not exist")
        overrides["data_dir"] = [str(data_dir)]
    if args.teacher:
        overrides["teacher"] = [open_storage(args.teacher).uri]
    if args.max_epochs is not None:
        overrides["epochs"] = [args.max_epochs]
    for key, values in overrides.items():
        if key in grid or len(values) > 1:
            grid[key] = values
            config.pop(key, None)
        else:
            config[key] = values[0]
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    lockstep = "seeds" in space.config_cls.__dataclass_fields__
    if lockstep and (args.seeds > 1 or "seeds" in getattr(args, "given", ())):
        # One trial trains the configuration's seeds in lockstep: the scheduler judges them together.
        # A given --seeds 1 overrides a profile's seeds too.
        config["seeds"] = args.seeds
    elif args.seeds > 1:
        base_seed = config.pop("seed", 0)
        grid["seed"] = [base_seed + i for i in range(args.seeds)]
    smoothing = space.smoothing if args.smoothing is None else args.smoothing
    if not 0.0 <= smoothing < 1.0:
        raise UsageError(f"--smoothing must be in [0, 1), got {smoothing:g}")
    objectives = parse_objectives(args.objectives, space)
    scheduler = args.scheduler or ("moasha" if objectives else space.scheduler)
    alpha = (P_THRESHOLD if scheduler == "wilcoxon" else space.alpha) if args.alpha is None else args.alpha
    try:
        check_alpha(alpha)  # NaN fails it too
    except ValueError as err:
        raise UsageError(f"--{err}") from None
    if args.alpha is not None and scheduler not in ("significance", "wilcoxon"):
        raise UsageError(f"--alpha sets the test of --scheduler significance or wilcoxon; this search uses "
                         f"{scheduler}")
    if args.smoothing is not None and scheduler == "wilcoxon":
        raise UsageError("--smoothing: --scheduler wilcoxon compares every seed's raw value, pair by pair")
    # The population replaces the perturbable grid axes (search/pbt.py).
    num_samples = check_pbt(space, args, grid, sorted(overrides)) if scheduler == "pbt" else args.num_samples
    if num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {num_samples}")
    cpus, gpus = resources(space, args)
    config["cpus"] = cpus
    for key, value in config.items():
        space.check(key, value)
    for key, values in grid.items():
        for value in values:
            space.check(key, value)
    if "epochs" in grid:
        raise UsageError("epochs cannot be a grid axis: it is the ASHA budget (use --max-epochs)")
    if args.search == "optuna" and not space.continuous:
        raise UsageError(f"space '{space.name}' declares no continuous search space for optuna")
    check_objectives(objectives, scheduler, args.smoothing is not None, args.search,
                     trial_count(grid, space.baselines, num_samples))

    if args.questions and (args.search != "grid" or scheduler == "pbt"):
        raise UsageError("--question compares grid configurations: it needs --search grid and a scheduler "
                         "other than pbt")
    storage = open_storage(args.storage)
    name = args.name or f"{space.name}__{args.profile}__{time.strftime('%Y%m%d-%H%M%S')}"
    if os.sep in name or name in ("", ".", ".."):
        raise UsageError(f"--name must be a plain folder name, got '{name}'")
    plan = SearchPlan(space=space, profile=args.profile, config=config, grid=grid, storage=storage,
                      name=name, scheduler=scheduler, smoothing=smoothing, alpha=alpha, search=args.search,
                      num_samples=num_samples, cpus=cpus, gpus=gpus, pinned=sorted(overrides),
                      objectives=objectives, questions=list(args.questions),
                      space_questions=args.space_questions)
    plan.study_questions()  # a bad --question is refused here, before any data or storage is touched
    if not args.view:
        if not args.resume:  # a resume continues its own folder (search/resume.py)
            check_storage(storage, name)
        if space.prepare is not None:
            plan.config = space.prepare(config, storage)
    return plan
