"""Vanishing gradients in a deep sigmoid net: N(0, 1) weights vs Xavier vs initwise auto.

Per-layer weight-gradient norms at initialization on one batch of MNIST-1D (10-layer MLP, width
128), the fraction of saturated sigmoid units, and the mean-field χ per layer
(:func:`initwise.math.meanfield.depth_scales`), then a short training run.

The popular argument says N(0, 1) weights saturate the sigmoids and so kill the gradient, and
that Xavier fixes it. Measured here: N(0, 1) does saturate most units, but its χ is ≈ 1 (the
huge weights make up for the small derivatives), so the gradient does *not* vanish; Xavier
(gain 1) has χ ≈ 0.06 because sigmoid'(0) = 1/4, and the gradient at the first layer is ~10⁻⁶
of the last. The claim checked is the measurable one: the init with the smaller χ has the
smaller first/last gradient ratio, and N(0, 1) saturates over half of the units.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..diagnostics import diagnose
from ..math.meanfield import depth_scales
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

SCHEMES = ("normal1", "xavier", "auto")


def grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    out = [float(m.weight.grad.norm()) for m in model if isinstance(m, torch.nn.Linear)]
    model.zero_grad(set_to_none=True)
    return out


def run(
    quick: bool = False, seed: int = 0, out: str = "initwise-report", progress: Any = None
) -> dict[str, Any]:
    data = mnist1d()
    depth, width = 10, 128
    steps = 40 if quick else 400
    task = progress.add_task("sigmoid-vanishing", total=len(SCHEMES) * steps) if progress else None
    x, y = data.x_train[:512], data.y_train[:512]
    runs: dict[str, Any] = {}
    for how in SCHEMES:
        model = mlp(depth, width, data.n_features, data.n_classes, "sigmoid")
        initialize(model, how, seed)
        g0 = grad_norms(model, x, y)
        rep = diagnose(model, x)
        sat = sum(s.saturated for s in rep.layers[:-1]) / (len(rep.layers) - 1)
        mid = model[2 * (depth // 2)]
        sigma_w2 = float(mid.weight.shape[1] * mid.weight.detach().pow(2).mean())
        chi = depth_scales(sigma_w2, 0.0, "sigmoid").chi
        res = train(
            model,
            data,
            steps=steps,
            lr=0.05,
            seed=seed,
            on_step=ticker(progress, task),
        )
        g1 = grad_norms(model, x, y)
        runs[how] = {
            "grad_norm_init": [float(f"{g:.6g}") for g in g0],
            "grad_norm_trained": [float(f"{g:.6g}") for g in g1],
            "first_over_last_init": float(f"{g0[0] / g0[-1]:.6g}"),
            "saturated_fraction": float(f"{sat:.6g}"),
            "sigma_w2": float(f"{sigma_w2:.6g}"),
            "chi": float(f"{chi:.6g}"),
            "train": res.to_dict(),
        }
    n, x = runs["normal1"], runs["xavier"]
    claim = (n["chi"] > x["chi"]) == (n["first_over_last_init"] > x["first_over_last_init"]) and n[
        "saturated_fraction"
    ] > 0.5
    results = {
        "experiment": "sigmoid-vanishing",
        "quick": quick,
        "seed": seed,
        "depth": depth,
        "width": width,
        "steps": steps,
        "runs": runs,
        "claim_holds": bool(claim),
        "claim": "the init with the larger mean-field chi (N(0,1) vs Xavier) has the larger "
        "measured first/last gradient ratio, and N(0,1) saturates over half of "
        "the units",
    }
    return publish(out, "sigmoid-vanishing", results, _report, _plot, "grad_norms.png")


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for how in SCHEMES:
        ax.plot(range(1, r["depth"] + 1), r["runs"][how]["grad_norm_init"], "-o", ms=3, label=how)
    ax.set(
        yscale="log",
        xlabel="layer",
        ylabel="‖∂L/∂W‖ at init",
        title=f"{r['depth']}-layer sigmoid MLP",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {h} | {r['runs'][h]['sigma_w2']:.3g} | {r['runs'][h]['chi']:.3g} | "
        f"{r['runs'][h]['saturated_fraction']:.0%} | {r['runs'][h]['first_over_last_init']:.3g} | "
        f"{r['runs'][h]['train']['final_loss']} | {r['runs'][h]['train']['test_acc']} |"
        for h in SCHEMES
    )
    exps = {h: math.log10(max(r["runs"][h]["first_over_last_init"], 1e-300)) for h in SCHEMES}
    return (
        f"# Vanishing gradients in a deep sigmoid net\n\n![gradients](grad_norms.png)\n\n"
        f"{r['depth']}-layer sigmoid MLP, width {r['width']}, MNIST-1D; {r['steps']} SGD "
        "steps (lr 0.05) for the last two columns.\n\n"
        "| init | σ_w² | χ (theory) | saturated units | ‖g₁‖/‖g_L‖ at init | final loss | "
        "test accuracy |\n|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nThe first layer's gradient is 10^{exps['normal1']:.1f} of the last's with "
        f"N(0, 1) and 10^{exps['xavier']:.1f} with Xavier: the popular claim that N(0, 1) "
        "vanishes and Xavier cures it is not what happens in a sigmoid net — sigmoid'(0) = 1/4 "
        "puts Xavier (gain 1) deep in the ordered phase, while the saturating N(0, 1) weights "
        "sit near χ = 1. " + claim_line(r)
    )
