"""Learning-rate transfer across width (Yang et al. 2022, Tensor Programs V, Fig. 1): the best
Adam learning rate of a 3-layer ReLU MLP on MNIST-1D at several widths, under the standard
parametrization (``auto`` init, one learning rate) and under μP (``MuP(base_width)`` init and
the plan's per-parameter learning rates through ``plan.param_groups``).

Per width and learning rate (octaves): the training loss averaged over the last 10 % of the
steps, mean over seeds; a diverged run counts as +inf. Reported: the best log2 LR per width,
how far it moves from the smallest to the largest width, and what using the smallest width's
best LR costs at the largest width (loss there / best loss there). Claim (pre-stated, from the
issue): under μP the best LR moves at most one octave and the transferred LR costs ≤ 10 %.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .common import (
    batches,
    claim_line,
    default_workers,
    figure,
    mlp,
    mnist1d,
    publish,
    run_cells,
    save_figure,
)

PARAMS = ("standard", "mup")


def _run_one(
    data: Any, width: int, param: str, base: int, lr: float, steps: int, seed: int
) -> float:
    import initwise.torch as it

    torch.manual_seed(seed)  # the module constructors; every weight is then drawn by the plan
    model = mlp(3, width, data.n_features, data.n_classes, "relu")
    policy = it.MuP(base_width=base) if param == "mup" else "auto"
    plan = it.init_model(model, policy, seed=seed)
    groups = plan.param_groups(model, lr=lr) if param == "mup" else model.parameters()
    opt = torch.optim.Adam(groups, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    tail: list[float] = []
    keep = max(1, steps // 10)
    for step, idx in enumerate(batches(len(data.y_train), 128, gen, steps)):
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        if not torch.isfinite(loss):
            return math.inf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= steps - keep:
            tail.append(float(loss.detach()))
    return sum(tail) / len(tail)


def _one(width: int, param: str, base: int, lr: float, steps: int, seed: int) -> float:
    """One run in a worker: the final loss (one intra-op thread)."""
    from ..torch.threads import intra_op_threads

    with intra_op_threads(1):
        return _run_one(mnist1d(), width, param, base, lr, steps, seed)


def run(
    quick: bool = False,
    seed: int = 0,
    out: str = "initwise-report",
    progress: Any = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Every (parametrization, width, LR, seed) run; runs are independent and seeded, so
    ``workers`` processes (default: 1 for ``quick``, else the CPU count, at most 4) give the
    same numbers as one."""
    import statistics

    widths = (32, 256) if quick else (64, 128, 256, 512, 1024)
    log2_lrs = list(range(-12, -3)) if quick else list(range(-14, -3))
    steps = 80 if quick else 300
    seeds = (seed,) if quick else (seed, seed + 1, seed + 2)
    base = widths[0]
    jobs = [
        (w, param, base, 2.0**k, steps, s)
        for param in PARAMS
        for w in widths
        for k in log2_lrs
        for s in seeds
    ]
    task = progress.add_task("lr-transfer", total=len(jobs)) if progress else None
    ordered = sorted(jobs, key=lambda j: -j[0])  # widest first
    results_by_job = run_cells(_one, ordered, workers or default_workers(quick), progress, task)
    loss: dict[str, dict[str, dict[str, float]]] = {}
    per_seed: dict[str, dict[str, dict[str, list[float]]]] = {}
    for param in PARAMS:
        loss[param], per_seed[param] = {}, {}
        for w in widths:
            row, rows = {}, {}
            for k in log2_lrs:
                vals = [results_by_job[(w, param, base, 2.0**k, steps, s)] for s in seeds]
                row[str(k)] = sum(vals) / len(vals)
                rows[str(k)] = vals
            loss[param][str(w)] = row
            per_seed[param][str(w)] = rows
    summary = {}
    for param in PARAMS:
        best = {w: min(loss[param][w], key=lambda k: loss[param][w][k]) for w in loss[param]}
        lo, hi = str(widths[0]), str(widths[-1])
        moved = abs(int(best[hi]) - int(best[lo]))
        cost = loss[param][hi][best[lo]] / loss[param][hi][best[hi]]
        # the spread: each seed's own best log2 LR per width, and the transfer cost per seed
        seed_best = {
            w: [
                int(min(log2_lrs, key=lambda k, i=i: per_seed[param][w][str(k)][i]))
                for i in range(len(seeds))
            ]
            for w in loss[param]
        }
        seed_cost = [
            per_seed[param][hi][str(seed_best[lo][i])][i]
            / per_seed[param][hi][str(seed_best[hi][i])][i]
            for i in range(len(seeds))
        ]
        summary[param] = {
            "best_log2_lr": {w: int(k) for w, k in best.items()},
            "best_log2_lr_per_seed": seed_best,
            "octaves_moved": moved,
            "transfer_cost": cost,
            "transfer_cost_per_seed": seed_cost,
            "transfer_cost_sd": statistics.stdev(seed_cost) if len(seed_cost) > 1 else 0.0,
        }
    m = summary["mup"]
    claim = m["octaves_moved"] <= 1 and m["transfer_cost"] <= 1.10
    results = {
        "experiment": "lr-transfer",
        "quick": quick,
        "seed": seed,
        "seeds": list(seeds),
        "widths": list(widths),
        "log2_lrs": log2_lrs,
        "steps": steps,
        "base_width": base,
        "loss": loss,
        "loss_per_seed": per_seed,
        "summary": summary,
        "claim_holds": bool(claim),
        "claim": "under μP the best log2 LR moves at most one octave from the smallest to the "
        "largest width, and the smallest width's best LR costs ≤ 10 % at the largest",
    }
    return publish(out, "lr-transfer", results, _report, _plot, "lr_transfer.png")


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, param in zip(axes, PARAMS, strict=True):
        for i, w in enumerate(r["loss"][param]):
            ks = [int(k) for k in r["loss"][param][w]]
            vs = [r["loss"][param][w][str(k)] for k in ks]
            vs = [v if math.isfinite(v) else float("nan") for v in vs]
            ax.plot(ks, vs, "-o", ms=3, color=f"C{i}", label=f"width {w}")
        ax.set(
            title=f"{'μP (base ' + str(r['base_width']) + ')' if param == 'mup' else 'standard'}",
            xlabel="log2 learning rate (Adam)",
            yscale="log",
        )
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"training loss, last 10 % of {r['steps']} steps")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    rows = []
    for param in PARAMS:
        s = r["summary"][param]
        best = ", ".join(f"{w}: {k}" for w, k in s["best_log2_lr"].items())
        spread = s.get("best_log2_lr_per_seed", {})
        per = "; ".join(f"{w}: {v}" for w, v in spread.items()) if len(r["seeds"]) > 1 else "—"
        sd = f" ± {s['transfer_cost_sd']:.3f}" if len(r["seeds"]) > 1 else ""
        rows.append(
            f"| {param} | {best} | {per} | {s['octaves_moved']} | {s['transfer_cost']:.3f}{sd} |"
        )
    return (
        "# Learning-rate transfer across width\n\n![lr transfer](lr_transfer.png)\n\n"
        f"3-layer ReLU MLP on MNIST-1D, Adam, {r['steps']} steps, widths {r['widths']}, "
        f"learning rates 2^{r['log2_lrs'][0]} … 2^{r['log2_lrs'][-1]}, seeds {r['seeds']} "
        f"(mean); μP against base width {r['base_width']}.\n\n"
        "| parametrization | best log2 LR per width (mean loss) | each seed's best | octaves "
        "moved | loss at the widest width with the narrowest's best LR / best there (± sd over "
        "seeds) |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + claim_line(r)
    )
