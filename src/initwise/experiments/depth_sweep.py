"""Trainability vs depth: test accuracy after a fixed budget for each init × activation.

Plain MLPs of width 64 on MNIST-1D, depths 5…200, SGD (momentum 0.9, lr 0.01, batch 128) for a
fixed number of steps; inits: initwise auto, He, Xavier, PyTorch's default, orthogonal and LSUV.
"""

from __future__ import annotations

from typing import Any

from .common import (
    Journal,
    claim_line,
    default_workers,
    figure,
    initialize,
    json_config,
    mean_sd,
    mlp,
    mnist1d,
    publish,
    run_cells,
    save_figure,
    train,
)

FULL = {
    "depths": (5, 10, 20, 50, 100, 200),
    "acts": ("relu", "tanh", "gelu"),
    "inits": ("auto", "he", "xavier", "torch-default", "orthogonal", "lsuv"),
    "steps": 600,
    "seeds": 3,
}
QUICK = {
    "depths": (5, 30),
    "acts": ("relu",),
    "inits": ("auto", "xavier", "torch-default"),
    "steps": 150,
    "seeds": 1,
}


def _cell(act: str, how: str, depth: int, steps: int, seeds: tuple[int, ...]) -> dict[str, Any]:
    """One (activation, init, depth) cell over ``seeds``: test accuracy per seed (None:
    diverged), mean and sd over the seeds that did not diverge, final losses."""
    from ..torch.threads import intra_op_threads

    data = mnist1d()
    accs: list[float | None] = []
    losses: list[float | None] = []
    with intra_op_threads(1):
        for s in seeds:
            model = mlp(depth, 64, data.n_features, data.n_classes, act)
            initialize(model, how, s, batch=data.x_train[:256])
            d = train(model, data, steps=steps, lr=0.01, seed=s).to_dict()
            accs.append(d["test_acc"])
            losses.append(d["final_loss"])
    mean, sd, diverged = mean_sd(accs)
    return {
        "test_acc": mean,
        "sd": sd,
        "test_accs": accs,
        "final_losses": losses,
        "diverged": diverged,
    }


def run(
    quick: bool = False,
    seed: int = 0,
    out: str = "initwise-report",
    progress: Any = None,
    workers: int | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Every (activation, init, depth) cell over the seeds ``seed, seed+1, …``; cells are
    independent and seeded, so ``workers`` processes (default: 1 for ``quick``, else the CPU
    count, at most 4) give the same numbers as one. Finished cells go to a
    :class:`~initwise.experiments.common.Journal`; ``resume`` skips those it holds."""
    cfg = QUICK if quick else FULL
    seeds = tuple(seed + i for i in range(cfg["seeds"]))
    cells = [(a, h, d) for a in cfg["acts"] for h in cfg["inits"] for d in cfg["depths"]]
    task = progress.add_task("depth-sweep", total=len(cells)) if progress else None
    jobs = [(*c, cfg["steps"], seeds) for c in sorted(cells, key=lambda c: -c[2])]
    journal = Journal(out, "depth-sweep", {"quick": quick, "seed": seed, "config": cfg}, resume)
    out_ = run_cells(_cell, jobs, workers or default_workers(quick), progress, task, journal)
    done = {job[:3]: res for job, res in out_.items()}
    runs = {f"{a}/{h}/{d}": done[(a, h, d)] for a, h, d in cells}
    deepest = max(cfg["depths"])
    acc = {how: runs[f"relu/{how}/{deepest}"]["test_acc"] or 0.0 for how in cfg["inits"]}
    claim = acc["auto"] > acc["xavier"] + 0.05 and acc["auto"] > acc["torch-default"] + 0.05
    results = {
        "experiment": "depth-sweep",
        "quick": quick,
        "seed": seed,
        "seeds": list(seeds),
        "config": json_config(cfg),
        "runs": runs,
        "claim": f"at depth {deepest} with ReLU, auto beats Xavier and torch-default by > 5 "
        "points of test accuracy (mean over seeds)",
        "claim_holds": bool(claim),
    }
    return publish(out, "depth-sweep", results, _report, _plot, "depth_sweep.png")


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    cfg = r["config"]
    fig, axes = plt.subplots(
        1, len(cfg["acts"]), figsize=(4.2 * len(cfg["acts"]), 3.6), sharey=True, squeeze=False
    )
    for ax, act in zip(axes[0], cfg["acts"], strict=True):
        for how in cfg["inits"]:
            ys = [r["runs"][f"{act}/{how}/{d}"]["test_acc"] or 0.0 for d in cfg["depths"]]
            ax.plot(cfg["depths"], ys, "-o", ms=3, label=how)
        ax.set(xscale="log", xlabel="depth (weight layers)", title=act, ylim=(0, 0.8))
        ax.axhline(0.1, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test accuracy after {cfg['steps']} steps")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("MNIST-1D, plain MLP width 64 (dotted: chance)")
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    cfg = r["config"]
    lines = [
        "# Trainability vs depth\n",
        "![depth sweep](depth_sweep.png)\n",
        f"Test accuracy on MNIST-1D after {cfg['steps']} SGD steps, width 64, mean ± sd over "
        f"seeds {r['seeds']} (published MLP baseline after full training: 68 %; div.: every "
        "seed diverged).\n",
    ]
    for act in cfg["acts"]:
        lines.append(
            f"\n**{act}**\n\n| init | "
            + " | ".join(map(str, cfg["depths"]))
            + " |\n|---|"
            + "---|" * len(cfg["depths"])
        )
        for how in cfg["inits"]:
            cells = []
            for d in cfg["depths"]:
                c = r["runs"][f"{act}/{how}/{d}"]
                if c["test_acc"] is None:
                    cells.append("div.")
                    continue
                txt = f"{c['test_acc']:.2f}"
                if len(r["seeds"]) > 1:
                    txt += f" ± {c['sd']:.2f}"
                if c["diverged"]:
                    txt += f" ({c['diverged']} div.)"
                cells.append(txt)
            lines.append(f"| {how} | " + " | ".join(cells) + " |")
    lines.append("\n" + claim_line(r))
    return "\n".join(lines)
