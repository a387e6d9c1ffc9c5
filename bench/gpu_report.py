"""bench/gpu_check.py's projections and its Markdown table (kept apart from the measuring)."""

from __future__ import annotations

# The targets of issue 21 on one H200.
DEGRADATION_TARGET_S = 300
PACKING_TARGET = 2.5


def projections(result: dict, manifest: dict) -> dict:
    """Search times on one such GPU from the measured epochs and the spaces' budgets. Every trial is
    counted for its whole budget (FIFO: ASHA can only stop some earlier), Ray's own start-up (~5 s) and
    trial starts (~3 s each, docs/machines.md) are left out."""
    deg = manifest["spaces"]["degradation"]
    full_images = manifest["images"]["train"]
    epochs = deg["paper"].get("epochs", 20)
    # A dry run's epochs are toy-sized: scale each by images so the arithmetic is exercised.
    epoch_s = [row["epoch_s"] * full_images / row["images"] for row in result["cnn"]]
    serial = epochs * sum(epoch_s)
    k = round(1 / deg["gpu"])
    ratio = next((row["ratio"] for row in result["packing"] if row["k"] == k), None)
    lora = manifest["spaces"]["lora"]
    rows = {row["setting"]: row for row in result["text"]}
    sentences = manifest.get("text", {}).get("train_sentences", 8250)
    lora_epochs = lora["paper"].get("epochs", 3)
    per_epoch = {s: sentences / rows["full" if s == "full" else "qv8"]["sentences_per_s"]
                 + rows["full" if s == "full" else "qv8"]["eval_s"] for s in lora["grid"]["setting"]}
    lora_serial = lora_epochs * sum(per_epoch.values())
    return {
        "degradation_paper": {
            "trials": len(epoch_s), "epochs": epochs, "train_images": full_images,
            "serial_s": serial, "trials_per_gpu": k, "packing_ratio": ratio,
            "packed_s": serial / ratio if ratio else None, "target_s": DEGRADATION_TARGET_S,
        },
        "lora_paper": {
            "settings": list(per_epoch), "epochs": lora_epochs, "backbone_measured": "minilm",
            "backbone_of_profile": lora["paper"].get("backbone"), "serial_s": lora_serial,
            "trials_per_gpu": round(1 / lora["gpu"]),
            "note": "LoRA settings other than qv8 timed as qv8; text packing not measured",
        },
        "packing_k4_target": PACKING_TARGET,
    }


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:,.0f} s ({seconds / 60:.1f} min)"


def markdown(result: dict) -> str:
    """The check's tables, ready for BENCHMARKS.md."""
    peak = result["bf16_matmul"]
    lines = [
        f"GPU check {result['when']}{' (DRY RUN: CPU, toy sizes)' if result['dry_run'] else ''}: "
        f"{result['device']}, torch {result['torch']}, Python {result['python']}, precision "
        f"{result['precision']}; host CPU {result['host_cpu']}, {result['cpus']} CPUs. "
        f"bf16 {peak['size']}³ matmul: {peak['tflops']:,.3f} TFLOP/s.",
        "",
        "| CNN | images | train images/s | epoch s (train+eval+ckpt) | GFLOP/image | TFLOP/s "
        "| of bf16 matmul | val_acc after 1 epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["cnn"]:
        lines.append(f"| n={r['num_blocks']} {'skip' if r['skip'] else 'plain'} | {r['images']:,} "
                     f"| {r['train_img_s']:,.0f} | {r['epoch_s']:.2f} | {r['gflop_per_image']:.3f} "
                     f"| {r['tflops']:.3f} | {r['of_bf16_peak']:.1%} | {r['val_acc']:.4f} |")
    lines += ["", "| trials on the GPU (CNN n=1) | via | images/s in all | per trial | × k=1 |",
              "|---|---|---|---|---|"]
    for r in result["packing"]:
        lines.append(f"| {r['k']} | {r['via']} | {r['img_s']:,.0f} | {r['per_trial_img_s']:,.0f} "
                     f"| {r['ratio']:.2f} |")
    lines += ["", "| MiniLM, 1 epoch | sentences | sentences/s | TFLOP/s | of bf16 matmul | val_acc |",
              "|---|---|---|---|---|---|"]
    for r in result["text"]:
        lines.append(f"| {r['setting']} | {r['sentences']:,} | {r['sentences_per_s']:,.1f} "
                     f"| {r['tflops']:.3f} | {r['of_bf16_peak']:.1%} | {r['val_acc']:.4f} "
                     f"({r['val_sentences']:,} sentences) |")
    deg, lora = result["projections"]["degradation_paper"], result["projections"]["lora_paper"]
    k4 = next((r["ratio"] for r in result["packing"] if r["k"] == 4), None)
    deg_met = deg["packed_s"] is not None and deg["packed_s"] <= deg["target_s"]
    lines += [
        "",
        "| projection (one GPU, every trial its whole budget) | serial | packed | target |",
        "|---|---|---|---|",
        f"| degradation paper: {deg['trials']} trials × {deg['epochs']} epochs × {deg['train_images']:,} "
        f"images | {_s(deg['serial_s'])} | {_s(deg['packed_s'])} ({deg['trials_per_gpu']} per GPU) "
        f"| ≤ {_s(deg['target_s'])}: {'met' if deg_met else 'not met'} |",
        f"| lora paper on MiniLM ({lora['backbone_of_profile']} in the profile): {len(lora['settings'])} "
        f"settings × {lora['epochs']} epochs | {_s(lora['serial_s'])} | not measured ({lora['note']}) | — |",
        f"| packing 4 small-CNN trials | — | {k4 if k4 is None else f'{k4:.2f}'}× k=1 | ≥ "
        f"{result['projections']['packing_k4_target']}×: "
        f"{'met' if k4 and k4 >= result['projections']['packing_k4_target'] else 'not met'} |",
        "",
        f"Accounting ({result['accounting']['via']}): a trial granted no GPU initialised CUDA: "
        f"{result['accounting']['cuda_initialized_in_cpu_trial']}; listed by nvidia-smi: "
        f"{result['accounting']['cpu_trial_listed_by_nvidia_smi']} (control, this process: "
        f"{result['accounting']['control_listed_by_nvidia_smi']}; None: no nvidia-smi).",
    ]
    return "\n".join(lines) + "\n"
