"""Trainability vs depth: test accuracy after a fixed budget for each init × activation.

Plain MLPs of width 64 on MNIST-1D, depths 5…200, SGD (momentum 0.9, lr 0.01, batch 128) for a
fixed number of steps; inits: initwise auto, He, Xavier, PyTorch's default, orthogonal and LSUV.
"""

from __future__ import annotations

from typing import Any

from .common import (
    claim_line,
    figure,
    initialize,
    mlp,
    mnist1d,
    publish,
    save_figure,
    train,
)

FULL = {
    "depths": (5, 10, 20, 50, 100, 200),
    "acts": ("relu", "tanh", "gelu"),
    "inits": ("auto", "he", "xavier", "torch-default", "orthogonal", "lsuv"),
    "steps": 600,
}
QUICK = {
    "depths": (5, 30),
    "acts": ("relu",),
    "inits": ("auto", "xavier", "torch-default"),
    "steps": 150,
}


def run(
    quick: bool = False, seed: int = 0, out: str = "initwise-report", progress: Any = None
) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    data = mnist1d()
    total = len(cfg["depths"]) * len(cfg["acts"]) * len(cfg["inits"])
    task = progress.add_task("depth-sweep", total=total) if progress else None
    runs: dict[str, Any] = {}
    for act in cfg["acts"]:
        for how in cfg["inits"]:
            for depth in cfg["depths"]:
                model = mlp(depth, 64, data.n_features, data.n_classes, act)
                initialize(model, how, seed, batch=data.x_train[:256])
                res = train(model, data, steps=cfg["steps"], lr=0.01, seed=seed)
                d = res.to_dict()
                d.pop("losses")
                runs[f"{act}/{how}/{depth}"] = d
                if progress:
                    progress.advance(task)
    deepest = max(cfg["depths"])
    acc = {how: runs[f"relu/{how}/{deepest}"]["test_acc"] or 0.0 for how in cfg["inits"]}
    claim = acc["auto"] > acc["xavier"] + 0.05 and acc["auto"] > acc["torch-default"] + 0.05
    results = {
        "experiment": "depth-sweep",
        "quick": quick,
        "seed": seed,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "runs": runs,
        "claim": f"at depth {deepest} with ReLU, auto beats Xavier and torch-default by > 5 "
        "points of test accuracy",
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
        f"Test accuracy on MNIST-1D after {cfg['steps']} SGD steps, width 64, seed "
        f"{r['seed']} (published MLP baseline after full training: 68 %).\n",
    ]
    for act in cfg["acts"]:
        lines.append(
            f"\n**{act}**\n\n| init | "
            + " | ".join(map(str, cfg["depths"]))
            + " |\n|---|"
            + "---|" * len(cfg["depths"])
        )
        for how in cfg["inits"]:
            accs = [r["runs"][f"{act}/{how}/{d}"]["test_acc"] for d in cfg["depths"]]
            lines.append(
                f"| {how} | " + " | ".join("div." if a is None else f"{a:.2f}" for a in accs) + " |"
            )
    lines.append("\n" + claim_line(r))
    return "\n".join(lines)
