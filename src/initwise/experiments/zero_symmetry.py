"""Symmetry: zero or constant initialization keeps the hidden units of a layer identical
through training (every unit gets the same gradient), so the layer acts like one unit.

2-hidden-layer tanh MLP (width 32) on scikit-learn's digits, trained with SGD. Measured: the
largest difference between any two hidden units' incoming weights, and how many distinct units
each layer has after training.
"""

from __future__ import annotations

from typing import Any

import torch

from .common import (
    claim_line,
    digits,
    figure,
    initialize,
    mlp,
    publish,
    save_figure,
    ticker,
    train,
)

SCHEMES = ("zeros", "constant", "auto")


def distinct_units(w: torch.Tensor, tol: float = 1e-6) -> int:
    rows = w.detach()
    keep: list[torch.Tensor] = []
    for r in rows:
        if all((r - k).abs().max() > tol for k in keep):
            keep.append(r)
    return len(keep)


def run(
    quick: bool = False, seed: int = 0, out: str = "initwise-report", progress: Any = None
) -> dict[str, Any]:
    data = digits(seed)
    steps = 60 if quick else 600
    task = progress.add_task("zero-symmetry", total=len(SCHEMES) * steps) if progress else None
    runs: dict[str, Any] = {}
    for how in SCHEMES:
        model = mlp(3, 32, data.n_features, data.n_classes, "tanh")
        initialize(model, how, seed)
        res = train(
            model,
            data,
            steps=steps,
            lr=0.05,
            seed=seed,
            on_step=ticker(progress, task),
        )
        hidden = [model[0].weight, model[2].weight]
        spread = [float((w - w[:1]).abs().max().detach()) for w in hidden]
        runs[how] = {
            "unit_spread": [float(f"{s:.6g}") for s in spread],
            "distinct_units": [distinct_units(w) for w in hidden],
            "train": res.to_dict(),
        }
    claim = (
        all(n == 1 for n in runs["constant"]["distinct_units"])
        and all(n == 1 for n in runs["zeros"]["distinct_units"])
        and all(n == 32 for n in runs["auto"]["distinct_units"])
    )
    results = {
        "experiment": "zero-symmetry",
        "quick": quick,
        "seed": seed,
        "steps": steps,
        "runs": runs,
        "claim_holds": bool(claim),
        "claim": "after training, zero/constant init leaves 1 distinct unit per hidden "
        "layer; initwise auto leaves all 32",
    }
    return publish(out, "zero-symmetry", results, _report, _plot, "symmetry.png")


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = range(len(SCHEMES))
    ax.bar(xs, [r["runs"][h]["train"]["test_acc"] or 0 for h in SCHEMES])
    for i, h in enumerate(SCHEMES):
        ax.text(i, 0.02, f"{r['runs'][h]['distinct_units']} distinct", ha="center", fontsize=8)
    ax.set_xticks(list(xs), SCHEMES)
    ax.set(ylabel="test accuracy", title="digits, 2×32 tanh MLP", ylim=(0, 1))
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {h} | {r['runs'][h]['distinct_units']} | {r['runs'][h]['unit_spread']} | "
        f"{r['runs'][h]['train']['test_acc']} |"
        for h in SCHEMES
    )
    return (
        "# Zero / constant init and symmetry\n\n![symmetry](symmetry.png)\n\n"
        "| init | distinct hidden units (layer 1, 2) | max difference between units | "
        "test accuracy |\n|---|---|---|---|\n"
        f"{rows}\n\n" + claim_line(r)
    )
