"""What a trial pays for its data: read from the node's disk, or received from Ray's object store.

Each measurement runs in a fresh Ray worker process (no per-process cache helps), `--repeats` times,
interleaved so that load on the machine hits both ways alike:

- disk: the trial loads the dataset itself, as before shipping (Fashion-MNIST: the Debian IDX files,
  decompressed and split; rotten_tomatoes: the tokenizer plus the token cache);
- object store: the trial receives what the driver shipped (`ray.get` of the Shipment a search puts in
  the store once, with the same content the trial then trains on).

Prints the median seconds of each way and their ratio, plus the driver's one-off cost (loading and
`ray.put`) and the shipment's size, for the smoke profile's subsets and for the whole training split
(the paper profile).

    python bench/bench_shipping.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

from spaces.images import ship_images  # noqa: E402
from spaces.text import ship_finetune  # noqa: E402
from trainables.data.images import load_images  # noqa: E402
from trainables.data.shipped import shipped_images, shipped_tokens, token_key  # noqa: E402
from trainables.data.text import load_tokens  # noqa: E402
from trainables.knobs import ImageConfig, image_config  # noqa: E402
from trainables.models.text import load_tokenizer, resolve_source  # noqa: E402

CASES = {
    # name: (config, how a trial reads it from disk, how it finds it in the shipment)
    "fashion_mnist, smoke subsets (512/256)": (
        {"train_subset": 512, "val_subset": 256},
        lambda c: load_images(c["dataset"]),
        lambda s, c: shipped_images(s, image_config(c)),
    ),
    "fashion_mnist, whole split (paper)": (
        {},
        lambda c: load_images(c["dataset"]),
        lambda s, c: shipped_images(s, image_config(c)),
    ),
    "rotten_tomatoes tokens (minilm, 128)": (
        {"backbone": "minilm"},
        lambda c: load_tokens(load_tokenizer("minilm", resolve_source("minilm")), 128),
        lambda s, c: shipped_tokens(s, token_key("rotten_tomatoes", "minilm", "", 128)),
    ),
}


@ray.remote(max_calls=1)  # a fresh process per call: no lru_cache of an earlier call helps
def from_disk(name: str) -> float:
    config, read, _ = CASES[name]
    start = time.perf_counter()
    read({**ImageConfig().__dict__, **config})
    return time.perf_counter() - start


@ray.remote(max_calls=1)
def from_store(name: str, refs: list) -> float:
    config, _, find = CASES[name]
    start = time.perf_counter()
    assert find(ray.get(refs[0]), {**ImageConfig().__dict__, **config}) is not None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    print(f"{'data':40} {'shipped MB':>10} {'driver s':>9} {'disk s':>7} {'store s':>8} {'disk/store':>10}")
    for name, (config, _, _) in CASES.items():
        start = time.perf_counter()
        if "backbone" in config:
            shipment = ship_finetune([config])
        else:
            shipment = ship_images([{**ImageConfig().__dict__, **config}])
        ref = ray.put(shipment)
        driver = time.perf_counter() - start
        disk, store = [], []
        for _ in range(args.repeats):
            disk.append(ray.get(from_disk.remote(name)))
            store.append(ray.get(from_store.remote(name, [ref])))
        d, s = statistics.median(disk), statistics.median(store)
        size = shipment.nbytes() / 1e6
        print(f"{name:40} {size:>10.1f} {driver:>9.2f} {d:>7.3f} {s:>8.3f} {d / s:>10.1f}x", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
