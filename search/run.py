"""tunelab driver: `python search/run.py --space degradation [--profile demo] [--set key=value ...]`.

Parses and validates everything before Ray starts, so bad input costs one line and exit status 2
and never touches results already on disk.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `python search/run.py` from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from trainables.venv import use_project_python

    use_project_python(__file__, needs=("ray", "torch", "pandas"))  # else the .venv

from search.console import quiet_worker_chatter, venv_command  # noqa: E402

quiet_worker_chatter()  # before Ray is imported (once the command line is checked): Ray reads the filter then

from cli import UsageError, one_line  # noqa: E402
from cli.exits import INTERRUPTED, NO_METRIC, SUCCESS, TRIALS_ERRORED  # noqa: E402
from search.cluster import start_ray  # noqa: E402
from search.nodes import check_nodes  # noqa: E402
from search.options import build_plan, parse_args  # noqa: E402
from search.outage import StorageOutage  # noqa: E402
from search.provenance import provenance  # noqa: E402
from search.resources import cluster_nodes, settle_resources  # noqa: E402
from search.resume import restore_tuner, resume_plan, start_search, unfinished_search  # noqa: E402
from spaces import SPACES  # noqa: E402
from store import StorageError  # noqa: E402
from store.experiment import ExperimentFolder  # noqa: E402
from store.lease import Lease  # noqa: E402


def list_spaces() -> None:
    for space in SPACES.values():
        axes = " × ".join(f"{k} {v}" for k, v in space.grid.items())
        objectives = f"; --objective also {', '.join(space.objectives)}" if space.objectives else ""
        print(f"{space.name:12} {space.doc}\n{'':12} grid: {axes}; metric {space.metric} ({space.mode})"
              f"{objectives}; profiles {', '.join(space.profiles)}")


def view(plan) -> None:
    """Prints each model of the grid with its parameter and layer counts; trains nothing."""
    space = plan.space
    if space.describe is None:
        raise UsageError(f"space '{space.name}' has no model view")
    axes = {k: v for k, v in plan.grid.items() if k != "seed"}
    print(f"{'config':48} {'params':>12} {'layers':>7}")
    for values in itertools.product(*axes.values()):
        config = {**plan.config, **dict(zip(axes, values, strict=True))}
        described = space.describe(config)
        label = ", ".join(f"{k}={v}" for k, v in zip(axes, values, strict=True))
        print(f"{label:48} {described['params']:>12,} {described['layers']:>7}")


class CtrlC:
    """The driver's SIGINT handler outside Tune's run (Tune puts its own in place while it runs and this
    one back after its first Ctrl-C): raises KeyboardInterrupt, and remembers that it came. Python runs
    a handler between any two bytecodes of the main thread, a finalizer's too, where the exception is
    printed with its traceback and dropped ("Exception ignored in ..."): a Ctrl-C that came just as the
    trials' data was shipped was lost so, and the search ran on. Inside a finalizer the handler raises
    nothing and the signal comes again a moment later; `check` raises again at the steps that start
    something."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self, signum, frame) -> None:
        self.pressed = True
        if in_finalizer(frame):
            again = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            again.daemon = True
            again.start()
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


def in_finalizer(frame) -> bool:
    """Whether `frame` runs inside an object's __del__ (Ray's handles run them as they are collected)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    started: list = []
    ctrl_c = CtrlC()
    previous = signal.signal(signal.SIGINT, ctrl_c)  # main() also runs inside other programs (tests)
    try:
        return run(argv, started, ctrl_c)
    except KeyboardInterrupt:
        # A Ctrl-C before Tune runs, or a second one while the first stops it or the report is written:
        # the driver ends at once and says how to go on.
        plan, lease = started or (None, None)
        if lease is not None:
            lease.release()
        return interrupted_now(plan)
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted_now(plan) -> int:
    """INTERRUPTED, with one line: the `--resume` command when the search's plan was written (the
    search can go on; store/lifecycle.py), else that nothing was."""
    if plan is None or not ExperimentFolder(plan.experiment_dir).has_plan():
        print("interrupted: stopped before the search started; nothing was written", file=sys.stderr,
              flush=True)
        return INTERRUPTED
    resume = unfinished_search(plan)
    if resume is None:  # every trial had finished: only the report is missing
        print(f"interrupted while writing the report: the search finished; write it with "
              f"`python analysis/report.py {plan.experiment_dir.uri}`", file=sys.stderr, flush=True)
    else:
        print(f"interrupted: the search stopped before it finished, its checkpoints and results kept; "
              f"continue it with `{resume}`", file=sys.stderr, flush=True)
    return INTERRUPTED


def run(argv: list[str] | None, started: list, ctrl_c: CtrlC | None = None) -> int:
    """The command; `started` receives (plan, lease) once both exist, for main's Ctrl-C."""
    ctrl_c = ctrl_c or CtrlC()
    try:
        args = parse_args(argv)
        if args.list:
            list_spaces()
            return SUCCESS
        plan = resume_plan(args) if args.resume else build_plan(args)
        if args.view:
            view(plan)
            return SUCCESS
        if args.wandb and not plan.experiment_dir.local:
            raise UsageError("--wandb writes its offline runs beside the results: it needs a local --storage")
        outage = StorageOutage()
        lease = Lease(plan.experiment_dir, on_outage=outage)
        started += [plan, lease]
        # A live driver is refused before Ray starts; a killed one's lease names the Ray workers it left
        killed = (lease.check() or {}) if args.resume else {}
        from analysis.page import LIVE_RELOAD_S
        from analysis.report import report_root
        from search.live import LivePage, ReportServer, parse_port

        # Bound now, before Ray starts: a taken port is bad input like any other.
        server = (ReportServer(report_root(), parse_port(args.report_serve))
                  if args.report_serve is not None else None)
        start_ray(args.address, args.dashboard, args.ray_temp_dir, tag=lease.token,
                  reap=[killed["token"]] if killed.get("token") else [])
        nodes = check_nodes(plan.experiment_dir.parent)  # each node sees the storage and runs our code
        asked = (plan.cpus, plan.gpus)
        settle_resources(plan, cluster_nodes(), args.cpus_per_trial, args.gpus_per_trial)
        if args.resume and asked != (plan.cpus, plan.gpus):  # Tuner.restore applies them to every trial
            print(f"resume: trials now request {plan.cpus} CPUs and {plan.gpus:g} GPUs "
                  f"(the experiment started with {asked[0]} and {asked[1]:g})", flush=True)
        from analysis.report import report_after_search
        from search.summary import print_summary
        from search.tuner import build_tuner, ship_data

        if args.wandb and not args.resume:  # a restored search keeps the callbacks it started with
            from search.wandb_setup import print_wandb_help, wandb_callback

            local_dir = Path(plan.experiment_dir.path)
            plan.callbacks.append(wandb_callback(local_dir, plan.name, args.wandb))
        started = time.time()
        shipment = ship_data(plan)  # loaded once here; trials get it through Ray's object store
        ctrl_c.check()
        # Last, after every check that can refuse: nothing written before. A new search's plan first:
        # --resume reads and checks the search from there, and runs it after a kill at any moment.
        took_over = lease.acquire() if args.resume else start_search(plan, provenance(nodes), lease)
        if took_over:
            print(f"resume: {took_over}", flush=True)
        live = LivePage(plan.experiment_dir, report_root())
        try:
            with live:  # the page exists from here on (a "starting" page until the first report)
                print(f"live report: {live.folder / 'index.html'}", flush=True)
                if server is not None:
                    print(f"live report served at {server.start().url(live.folder)} (127.0.0.1 only; from "
                          f"another machine: ssh -L {server.port}:127.0.0.1:{server.port} <this host>)",
                          flush=True)
                tuner = restore_tuner(plan, shipment) if args.resume else build_tuner(plan, shipment)
                ctrl_c.check()
                grid = tuner.fit()
        except KeyboardInterrupt:
            if outage.reason is None:
                raise
        except OSError as err:  # Tune reads the experiment back from the storage as it ends
            outage.reason = outage.reason or str(err).splitlines()[0]
        finally:
            lease.release()
        if outage.reason is not None:
            return outage.end(plan.experiment_dir.uri)
        try:
            resume = unfinished_search(plan)  # a Ctrl-C: marked, so the summary and the report say so
            if not print_summary(plan, time.time() - started):
                return NO_METRIC
            report_after_search(plan.experiment_dir)  # every search ends in report/<experiment>/
        except (OSError, StorageError) as err:  # the storage went away after the last renewal
            outage.reason = str(err).splitlines()[0]
            return outage.end(plan.experiment_dir.uri)
        if server is not None:  # an open tab reloads once more and stays on the final page
            time.sleep(2 * LIVE_RELOAD_S)
            server.stop()
        if plan.experiment_dir.local:  # Tune's TensorBoard logger wrote event files into every trial folder
            print(f"tensorboard: {venv_command('tensorboard')} --logdir {plan.experiment_dir.path}")
        if args.wandb and not args.resume:  # at the end, where it is seen: how to upload offline runs
            print_wandb_help(local_dir, args.wandb)
        if resume is not None:
            print(f"interrupted: the search stopped before it finished, its checkpoints and results kept; "
                  f"continue it with `{resume}`", file=sys.stderr, flush=True)
            return INTERRUPTED
        return errored_status(grid)
    except (UsageError, StorageError) as err:
        return one_line(err)


def errored_status(grid) -> int:
    """SUCCESS, or TRIALS_ERRORED with one line naming every trial that ended in ERROR: a search that lost a
    trial must not look like one that succeeded."""
    errored = sorted(Path(result.path).name for result in grid if result.error is not None)
    if not errored:
        return SUCCESS
    print(f"error: {len(errored)} trial(s) ended in ERROR (their error.txt says why; `--resume` retries them "
          f"from their last checkpoint): {', '.join(errored)}", file=sys.stderr, flush=True)
    return TRIALS_ERRORED


if __name__ == "__main__":
    sys.exit(main())
