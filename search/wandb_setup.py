"""`--wandb [PROJECT]`: mirrors every trial to Weights & Biases; the results folder stays the truth.

Runs are grouped by experiment and written under `<experiment>/wandb`. Without an API key the runs
are recorded offline and can be uploaded later with `.venv/bin/wandb sync` (the command the driver
prints works pasted into a plain shell, no activated venv needed). The key is never passed to Ray or
written anywhere: W&B reads it from the environment or ~/.netrc itself.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

import ray

from raycompat import private, require
from search.console import venv_command

WANDB_HOST = "api.wandb.ai"


class WandbMirror(require("WandbLoggerCallback")):
    """Ray's W&B callback whose per-trial logging actors are plain actors. Ray's own are restartable and
    take a queue's actor handle as a constructor argument, which Ray's core reports as an error line on
    the console for every search; it also hands the API key to them through the runtime env. A mirror
    whose logging actor dies loses that trial's W&B run, never a result."""

    def setup(self, *args, **kwargs):
        super().setup(*args, **kwargs)
        on_this_node = private("force_on_current_node")()
        actor = waiting_for_the_service(self._logger_actor_cls)
        self._remote_logger_class = ray.remote(num_cpus=0, **on_this_node)(actor)


def waiting_for_the_service(actor_cls: type) -> type:
    """Ray's logging actor, whose run returns only once W&B's service has written the run and exited.

    `wandb.finish` only tells the service that the run is done; the service writes the run file after
    that (an offline run's records reach the file when the service closes it). Ray kills a logging
    actor, and its child processes with it, as soon as its run returns, so on a busy machine a trial's
    whole W&B run was lost: a 7-byte .wandb file. `wandb.teardown` waits for the service to exit."""

    class LoggingActor(actor_cls):
        def run(self):
            import wandb

            super().run()
            wandb.teardown()

    return LoggingActor


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_folder(experiment_dir: Path) -> Path:
    """Where W&B writes the runs: WANDB_DIR is the experiment, so they land in <experiment>/wandb."""
    return experiment_dir / "wandb"


def wandb_callback(experiment_dir: Path, group: str, project: str):
    """Ray's WandbLoggerCallback for one experiment; switches W&B offline when no key is configured.

    Ray's logging actors do not see later changes of the driver's environment, so the mode and the
    folder also travel as `wandb.init` arguments.
    """
    if not has_api_key() and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = str(experiment_dir)
    mode = {"mode": os.environ["WANDB_MODE"]} if os.environ.get("WANDB_MODE") else {}
    # Ray passes reinit=True, which wandb 0.31 prints a deprecation warning for; this is its successor.
    # quiet: no per-trial run summary in the console; the driver prints the one `wandb sync` line.
    return WandbMirror(project=project, group=group, dir=str(experiment_dir), reinit="finish_previous",
                       settings={"quiet": True}, **mode)


def print_wandb_help(experiment_dir: Path, project: str) -> None:
    folder = wandb_folder(experiment_dir)
    if os.environ.get("WANDB_MODE") == "offline":
        print(f"W&B: project '{project}' recorded offline; upload with "
              f"`{venv_command('wandb')} sync {folder}/offline-run-*`")
    else:
        print(f"W&B: project '{project}', runs grouped as '{experiment_dir.name}'")
