"""What bench/bench_asha_fidelity.py --analyse prints: the FIFO curves' own ranking and how early
reports mislead, the table of every rule and setting scored on held-out seed sets, and the
cross-validated choice."""

from __future__ import annotations

import numpy as np
from scipy import stats

from bench.fidelity_curves import Arm, ArmKey, full_budget, mean_curve, rank_change_risk
from bench.fidelity_truth import MAX_SLACK, MEAN_SLACK, label


def describe(arms: dict[ArmKey, Arm], knobs: dict[str, dict]) -> dict[str, list[dict]]:
    """Print each sampled space's configurations, each seed set's FIFO ranking, the Spearman ρ of each
    report's ranking with the full-budget one, and the rank-change risk; return the risk per arm."""
    risks = {}
    for key, arm in arms.items():
        configs = len(next(iter(arm.values())))
        print(f"{key[0]}, {key[1]}: {configs} configurations, seed sets {list(arm)}")
        for config, values in knobs.get(key[0], {}).items():
            print(f"  {config}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        for s, cells in arm.items():
            full = {c: full_budget(v) for c, v in cells.items()}
            print(f"  seeds from {s}: " + ", ".join(f"{c} {v:.4f}" for c, v in sorted(full.items(),
                                                                                     key=lambda kv: -kv[1])))
        epochs = len(next(iter(next(iter(arm.values())).values()))[0])
        rho = [np.nanmean([stats.spearmanr([mean_curve(v)[r] for v in cells.values()],
                                           [full_budget(v) for v in cells.values()]).statistic
                           for cells in arm.values()]) for r in range(epochs)]
        print(f"  Spearman ρ of the mean at report 1..{epochs} with the full-budget accuracy: "
              + ", ".join(f"{x:.2f}" for x in rho))
        risk = rank_change_risk(arm)
        print("  rank-change risk, behind at report r but ahead at the budget (share of such pairs): "
              + ", ".join(f"r={r} {x:.2f} ({n})" for r, (x, n) in enumerate(risk, 1)))
        risks[label(key)] = [{"report": r, "risk": x, "pairs": n} for r, (x, n) in enumerate(risk, 1)]
    return risks


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in settings.items()) or "–"


def table(rows: list[dict]) -> None:
    """One line per rule and setting, the arms side by side."""
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    print("\nheld-out scoring: each cell is epochs (of FIFO's) · true regret mean / max (FIFO's own "
          "mean / max) · regret against FIFO's pick mean / max · same winner · tied; * the default")
    print("rule | settings | " + " | ".join(arms))
    settings = list(dict.fromkeys((r["rule"], settings_text(r["settings"])) for r in rows))
    cell = {(r["rule"], settings_text(r["settings"]), r["arm"]): r for r in rows}
    for rule, text in settings:
        mine = [cell[rule, text, a] for a in arms]
        print(f"{'*' if mine[0]['default'] else ''}{rule} | {text} | " + " | ".join(
            f"{r['epochs_fraction']:.2f} · {r['true_regret_mean']:.4f} / {r['true_regret_max']:.4f} "
            f"({r['fifo_true_regret_mean']:.4f} / {r['fifo_true_regret_max']:.4f}) · "
            f"{r['regret_mean']:.4f} / {r['regret_max']:.4f} · {r['same_winner']}/{r['repeats']} · "
            f"{r['tied_with_fifo_winner']}/{r['repeats']}" for r in mine))


def choice(default: dict, cv: dict | None, per_rule: dict[str, dict]) -> None:
    """The setting chosen on all seed sets, and the cross-validated choices with their held-out
    figures, overall and within each rule."""
    print(f"\nchoice on all seed sets (the default): {default['rule']} "
          f"({settings_text(default['settings'])})")
    if cv is None:
        print("cross-validation needs 3 seed sets common to every arm: not run")
        return
    targets = ", ".join(f"{arm} {h['target_fraction']}" for arm, h in cv["held_out"].items())
    print(f"targets: epochs ≤ a share of FIFO's ({targets}), true regret mean ≤ FIFO's + {MEAN_SLACK}, "
          f"max ≤ FIFO's + {MAX_SLACK}, in every arm")
    print("leave-one-seed-set-out, held-out figures | chosen per held-out set | " + " | ".join(
        f"{a}: epochs · true regret mean / max (FIFO's)" for a in cv["held_out"]) + " | meets targets")
    for name, result in {"every rule": cv, **per_rule}.items():
        chosen = ", ".join(f"fold {n}: {f['rule']} ({settings_text(f['settings'])})"
                           for n, f in enumerate(result["folds"]))
        print(f"{name} | {chosen} | " + " | ".join(
            f"{h['epochs_fraction']:.2f} · {h['true_regret_mean']:.4f} / {h['true_regret_max']:.4f} "
            f"({h['fifo_true_regret_mean']:.4f} / {h['fifo_true_regret_max']:.4f})"
            for h in result["held_out"].values()) + f" | {'yes' if result['meets_targets'] else 'no'}")
