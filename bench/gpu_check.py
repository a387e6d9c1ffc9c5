"""The GPU check: what tunelab's trainables do on one CUDA device, in one prepared run.

Budget: under 8 minutes on one H200 (estimate: ~1 min start-up and data, ~1 min for the six CNN epochs,
~2 min packing, ~1 min for the two MiniLM epochs, ~0.5 min accounting). Size: the working tree
(~0.7 MB) plus the carry folder `data/gpu_carry` (~57 MB; bench/gpu_carry.py says what is in it),
under 64 MiB in all. It imports only what a bare GPU machine is assumed to have (torch,
numpy, transformers, peft, safetensors, pyarrow; Ray only where installed) and reads its data from the
carry folder alone. Writes `gpu_check.json` and `gpu_check.md` to $OUT (or --out):

1. cnn: the CNN trainable's epoch (trainables.loop.train_epoch over trainables.data.augment batches,
   then its evaluation and its checkpoint state, serialised) on the full 54k/6k Fashion-MNIST split,
   num_blocks 1, 5, 7 × skip, plain: data on the device, bf16 autocast, channels_last, the paper
   profile's settings (batch 128, lr 0.01), after a short warm-up of a twin model (cuDNN autotuning).
   Images/s, training FLOPs (torch's flop counter) and TFLOP/s against a bf16 matmul peak measured
   in the same run, and val_acc after that one epoch.
2. packing: k = 1, 2, 4, 8 concurrent small-CNN trials on the one GPU (bench/bench_gpu_packing.py): through
   Ray when it is installed, else k processes; the table says which.
3. text: MiniLM full fine-tuning and LoRA qv8 (the lora demo's rates) for one epoch over the 8,250
   training sentences (trainables.finetune.train_steps): sentences/s and val_acc.
4. projections: the paper degradation grid's and the lora paper profile's search time on one such
   GPU, from the figures above and the spaces' budgets.
5. accounting: a trial granted no GPU creates no CUDA context (nvidia-smi and torch both asked).

    python bench/gpu_check.py --prepare                  # here, once: writes data/gpu_carry
    python3 bench/gpu_check.py --out DIR                 # on the GPU machine (docs/operations.md)
    python bench/gpu_check.py --dry-run --out DIR        # CPU, toy sizes: what CI runs

Without CUDA and without --dry-run: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.gpu_carry import carry_dir, prepare, read_manifest  # noqa: E402
from bench.gpu_report import markdown, projections  # noqa: E402
from bench.machine import cnn_step_flops, cpu_line, matmul_rate, text_token_flops  # noqa: E402

# Sizes: the check on the GPU, and the dry run that keeps the script from rotting (CI, CPU).
FULL = {"images": 0, "val": 0, "warmup": 20, "packing": [1, 2, 4, 8], "pack_epochs": 2, "sentences": 0,
        "val_sentences": 0, "peak_size": 8192, "peak_products": 20, "cpu_trial_images": 4096}
DRY = {"images": 256, "val": 128, "warmup": 2, "packing": [1, 2], "pack_epochs": 1, "sentences": 64,
       "val_sentences": 32, "peak_size": 1024, "peak_products": 3, "cpu_trial_images": 128}
TOY_CARRY_IMAGES = 512


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnn_epoch(data, num_blocks: int, skip: bool, sizes: dict, rt, peak_tflops: float) -> dict:
    """One epoch of one degradation configuration, as its trial runs it (paper profile settings)."""
    from trainables.cnn import ImageConfig, seed_run
    from trainables.data.augment import train_batches
    from trainables.loop import Normalize, evaluate, train_epoch, training_state

    cfg = ImageConfig(model="cnn", num_blocks=num_blocks, skip=skip, epochs=1)
    train, val = data.train.head(sizes["images"]).to(rt.device), data.val.head(sizes["val"]).to(rt.device)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    # A twin trains first on every batch shape the epoch will see (full batches, then the epoch's last,
    # shorter one) and evaluates once: cuDNN's autotuning (benchmark mode) of each shape happens there.
    twin = seed_run(cfg, None, rt, normalize)
    warm = train.head(sizes["warmup"] * cfg.batch_size + len(train) % cfg.batch_size)
    train_epoch(twin.model, twin.optimizer, train_batches(warm, cfg.batch_size, 1, 0, True, data.info.flip),
                normalize, rt)
    evaluate(twin.model, val, normalize, rt)

    run = seed_run(cfg, None, rt, normalize)
    sync(rt.device)
    start = time.perf_counter()
    stats = train_epoch(run.model, run.optimizer, train_batches(train, cfg.batch_size, cfg.seed, 0, True,
                                                                data.info.flip), normalize, rt)
    run.scheduler.step()
    val_loss, val_acc = evaluate(run.model, val, normalize, rt)
    torch.save(training_state(0, run.model, run.optimizer, run.scheduler, dataclasses.asdict(cfg)),
               io.BytesIO())
    sync(rt.device)
    epoch_s = time.perf_counter() - start
    step_flops = cnn_step_flops(run.model, cfg.batch_size, tuple(train.x.shape[1:]))
    tflops = step_flops / cfg.batch_size * stats["samples"] / stats["seconds"] / 1e12
    return {"num_blocks": num_blocks, "skip": skip, "images": stats["samples"],
            "train_img_s": stats["samples_per_s"], "train_s": stats["seconds"], "epoch_s": epoch_s,
            "gflop_per_image": step_flops / cfg.batch_size / 1e9, "tflops": tflops,
            "of_bf16_peak": tflops / peak_tflops, "val_acc": val_acc, "val_loss": val_loss}


def text_epoch(carry: Path, setting: str, sizes: dict, rt, lora_demo: dict, peak_tflops: float) -> dict:
    """One epoch of the lora demo's settings for `setting` over the carried sentences."""
    from bench.gpu_carry import load_carried_tokens, load_classifier
    from trainables.data.text import train_batches
    from trainables.finetune import TextConfig, evaluate_text, make_optimizer, train_steps, warmup_linear
    from trainables.loop import seed_everything

    known = {f.name for f in dataclasses.fields(TextConfig)}
    cfg = TextConfig(**{k: v for k, v in lora_demo.items() if k in known}, setting=setting)
    tokens = load_carried_tokens(carry)
    train, val = tokens["train"].head(sizes["sentences"]), tokens["validation"].head(sizes["val_sentences"])
    seed_everything(cfg.seed)
    model = load_classifier(carry, setting, cfg.lora_alpha, cfg.lora_dropout).to(rt.device)
    optimizer = make_optimizer(model, cfg)
    batches = train_batches(train, cfg.batch_size, cfg.seed, 0, cfg.bucket)
    scheduler = warmup_linear(optimizer, len(batches), cfg.warmup)
    token_flops = text_token_flops(model, train)
    sync(rt.device)
    stats = train_steps(model, optimizer, scheduler, train, batches, rt)
    start = time.perf_counter()
    val_loss, val_acc = evaluate_text(model, val, rt)
    eval_s = time.perf_counter() - start
    padded = sum(len(rows) * int(train.lengths[rows].max()) for rows in batches)
    train_s = len(train) / stats["sentences_per_s"]
    tflops = token_flops * padded / train_s / 1e12
    return {"setting": setting, "sentences": len(train), "sentences_per_s": stats["sentences_per_s"],
            "train_s": train_s, "eval_s": eval_s, "tflops": tflops, "of_bf16_peak": tflops / peak_tflops,
            "val_acc": val_acc, "val_loss": val_loss, "val_sentences": len(val)}


def run_check(args: argparse.Namespace, carry: Path) -> dict:
    from bench.bench_gpu_packing import cpu_trial_touches_cuda, packing, ray_available
    from bench.gpu_carry import load_carried_images
    from trainables.loop import setup_runtime

    sizes = DRY if args.dry_run else FULL
    rt = setup_runtime(1 if args.dry_run else 4, () if args.dry_run else [0])
    manifest = read_manifest(carry)
    peak = matmul_rate(torch.bfloat16, rt.device, sizes["peak_size"], sizes["peak_products"])
    peak_tflops = peak["gflops_wall"] / 1e3
    result: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
        "host_cpu": cpu_line(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "precision": rt.precision, "sizes": sizes,
        "bf16_matmul": {"size": sizes["peak_size"], "tflops": peak_tflops},
    }
    print(f"{result['device']}, torch {torch.__version__}, bf16 {sizes['peak_size']}³ matmul "
          f"{peak_tflops:.3f} TFLOP/s", flush=True)
    data = load_carried_images(carry)
    result["cnn"] = []
    for num_blocks, skip in itertools.product((1, 5, 7), (False, True)):
        row = cnn_epoch(data, num_blocks, skip, sizes, rt, peak_tflops)
        result["cnn"].append(row)
        print(f"cnn n={num_blocks} skip={skip}: {row['train_img_s']:,.0f} images/s, "
              f"{row['tflops']:.3f} TFLOP/s, val_acc {row['val_acc']:.4f}", flush=True)
    via = "ray" if ray_available() and not args.dry_run else "processes"
    spec = {"carry": str(carry), "cuda": rt.device.type == "cuda", "epochs": sizes["pack_epochs"],
            "images": sizes["images"], "train_images": len(data.train.head(sizes["images"])),
            "num_blocks": 1, "threads": 1, "timeout": 240, "cpu_trial_images": sizes["cpu_trial_images"]}
    result["packing"] = packing(sizes["packing"], spec, via)
    for row in result["packing"]:
        print(f"packing k={row['k']} via {row['via']}: {row['img_s']:,.0f} images/s, {row['ratio']:.2f}×",
              flush=True)
    demo = manifest["spaces"]["lora"]["demo"]
    result["text"] = []
    for setting in ("full", "qv8"):
        row = text_epoch(carry, setting, sizes, rt, demo, peak_tflops)
        result["text"].append(row)
        print(f"text {setting}: {row['sentences_per_s']:,.1f} sentences/s, val_acc {row['val_acc']:.4f}",
              flush=True)
    result["accounting"] = cpu_trial_touches_cuda(spec)
    print(f"accounting: {result['accounting']}", flush=True)
    result["projections"] = projections(result, manifest)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for gpu_check.json/.md "
                   "(default: $OUT)")
    p.add_argument("--carry", default="", help=f"the carried data (default: {carry_dir()})")
    p.add_argument("--prepare", action="store_true", help="write the carry folder from this install")
    p.add_argument("--dry-run", action="store_true", help="every part on the CPU at toy sizes")
    args = p.parse_args(argv)
    carry = Path(args.carry) if args.carry else carry_dir()
    if args.prepare:
        manifest = prepare(carry)
        print(f"{carry}: {manifest['bytes'] / 2**20:.1f} MiB; bring it with the checkout to the GPU machine")
        return 0
    if not torch.cuda.is_available() and not args.dry_run:
        print("error: bench/gpu_check.py needs CUDA (on a machine without a GPU, --dry-run runs it on "
              "the CPU at toy sizes)", file=sys.stderr)
        return 2
    if not args.out:
        print("error: no output folder: pass --out DIR or set $OUT", file=sys.stderr)
        return 2
    if args.dry_run and not args.carry:
        # CI's dry run makes its own toy carry, so the carrying code runs too, not only the check.
        with tempfile.TemporaryDirectory() as tmp:
            prepare(Path(tmp), limit=TOY_CARRY_IMAGES)
            result = run_check(args, Path(tmp))
    elif not (carry / "manifest.json").is_file():
        print(f"error: no carried data in {carry}: run `python bench/gpu_check.py --prepare` on a "
              "machine with the venv, then carry data/gpu_carry", file=sys.stderr)
        return 2
    else:
        result = run_check(args, carry)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
