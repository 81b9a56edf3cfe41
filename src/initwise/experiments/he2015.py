"""He et al. 2015 (Fig. 3): plain ReLU nets of depth 22 and 30 — He init trains, Xavier stalls.

Plain MLPs (no norm, no skip) of width 128 on MNIST-1D, SGD with momentum 0.9, lr 0.01, batch
128, the same data order for every init. The paper used 22/30-layer conv nets on ImageNet.
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
    ticker,
    train,
)

SCHEMES = ("he", "xavier", "torch-default")


def run(
    quick: bool = False, seed: int = 0, out: str = "initwise-report", progress: Any = None
) -> dict[str, Any]:
    data = mnist1d()
    depths = (22, 30)
    steps = 250 if quick else 1500
    width = 128
    task = (
        progress.add_task("he2015", total=len(depths) * len(SCHEMES) * steps) if progress else None
    )
    runs: dict[str, Any] = {}
    for depth in depths:
        for how in SCHEMES:
            model = mlp(depth, width, data.n_features, data.n_classes, "relu")
            initialize(model, how, seed)
            res = train(
                model,
                data,
                steps=steps,
                lr=0.01,
                seed=seed,
                on_step=ticker(progress, task),
            )
            runs[f"{depth}/{how}"] = res.to_dict()
    r30 = {h: runs[f"30/{h}"]["final_loss"] for h in SCHEMES}
    claim = r30["he"] is not None and r30["xavier"] is not None and r30["he"] < r30["xavier"]
    results = {
        "experiment": "he2015",
        "quick": quick,
        "seed": seed,
        "steps": steps,
        "width": width,
        "depths": list(depths),
        "runs": runs,
        "claim": "at 30 layers He's final loss is below Xavier's",
        "claim_holds": claim,
    }
    return publish(out, "he2015", results, _report, _plot, "loss.png")


def _plot(results: dict[str, Any], path: str) -> None:
    plt = figure(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, depth in zip(axes, results["depths"], strict=True):
        for how in SCHEMES:
            losses = [x for x in results["runs"][f"{depth}/{how}"]["losses"] if x is not None]
            k = max(1, len(losses) // 50)
            smooth = [
                sum(losses[i : i + k]) / len(losses[i : i + k]) for i in range(0, len(losses), k)
            ]
            ax.plot([i * k for i in range(len(smooth))], smooth, label=how)
        ax.set(title=f"{depth}-layer plain ReLU MLP", xlabel="step", ylabel="train loss")
        ax.axhline(2.302585, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {d} | {h} | {r['runs'][f'{d}/{h}']['final_loss']} | "
        f"{r['runs'][f'{d}/{h}']['test_acc']} |"
        for d in r["depths"]
        for h in SCHEMES
    )
    return (
        f"# He et al. 2015: deep plain ReLU nets\n\n![loss](loss.png)\n\n"
        f"{r['steps']} SGD steps (momentum 0.9, lr 0.01, batch 128) on MNIST-1D, width "
        f"{r['width']}, seed {r['seed']}. Dotted line: chance loss ln 10.\n\n"
        "| depth | init | final train loss | test accuracy |\n|---|---|---|---|\n"
        f"{rows}\n\n" + claim_line(r)
    )
