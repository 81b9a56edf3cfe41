"""Schoenholz et al. 2016: deep tanh MLPs train only within ~6·ξ_c of the edge of chaos.

Train accuracy after a fixed budget over depth × σ_w² (σ_b² = 0.05), weights
N(0, σ_w²/fan_in), biases N(0, σ_b²), with the theory's trainable-depth line L = 6·ξ_c(σ_w²)
computed by :func:`initwise.math.meanfield.depth_scales`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import schemes as S
from ..math.meanfield import depth_scales
from .common import (
    claim_line,
    figure,
    initialize,
    json_config,
    mlp,
    mnist1d,
    publish,
    save_figure,
    train,
)

SIGMA_B2 = 0.05
FULL = {
    "depths": (10, 20, 40, 80, 160, 300),
    "sigma_w2": tuple(round(1.0 + 0.25 * i, 2) for i in range(13)),
    "steps": 300,
}
QUICK = {"depths": (10, 60), "sigma_w2": (1.0, 1.75, 4.0), "steps": 40}


def run(
    quick: bool = False, seed: int = 0, out: str = "initwise-report", progress: Any = None
) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    data = mnist1d()
    task = (
        progress.add_task("edge-of-chaos", total=len(cfg["depths"]) * len(cfg["sigma_w2"]))
        if progress
        else None
    )
    grid: dict[str, Any] = {}
    theory: dict[str, Any] = {}
    for sw2 in cfg["sigma_w2"]:
        ds = depth_scales(sw2, SIGMA_B2, "tanh")
        theory[str(sw2)] = {
            "chi": float(f"{ds.chi:.6g}"),
            "xi_c": None if math.isinf(ds.xi_c) else float(f"{ds.xi_c:.6g}"),
            "trainable_depth": None
            if math.isinf(ds.trainable_depth)
            else float(f"{ds.trainable_depth:.6g}"),
        }
        for depth in cfg["depths"]:
            model = mlp(depth, 64, data.n_features, data.n_classes, "tanh")
            initialize(
                model,
                "auto",
                seed,
                overrides={
                    "*.weight": S.VarianceScaling(sw2, "fan_in", "normal", 1.0, "sigma_w"),
                    "*.bias": S.normal(0.0, math.sqrt(SIGMA_B2)),
                },
            )
            res = train(model, data, steps=cfg["steps"], lr=1e-3, seed=seed)
            grid[f"{sw2}/{depth}"] = res.train_acc if not res.diverged else None
            if progress:
                progress.advance(task)
    agreement = _agreement(cfg, grid, theory)
    results = {
        "experiment": "edge-of-chaos",
        "quick": quick,
        "seed": seed,
        "sigma_b2": SIGMA_B2,
        "config": json_config(cfg),
        "train_acc": {k: None if v is None else float(f"{v:.6g}") for k, v in grid.items()},
        "theory": theory,
        "agreement": agreement,
        "claim": "cells inside L < 6·ξ_c train better on average than cells outside",
        "claim_holds": agreement["inside_mean"] > agreement["outside_mean"],
    }
    return publish(out, "edge-of-chaos", results, _report, _plot, "heatmap.png")


def _agreement(cfg: dict[str, Any], grid: dict[str, Any], theory: dict[str, Any]) -> dict:
    inside, outside = [], []
    for sw2 in cfg["sigma_w2"]:
        limit = theory[str(sw2)]["trainable_depth"] or math.inf
        for depth in cfg["depths"]:
            acc = grid[f"{sw2}/{depth}"] or 0.0
            (inside if depth < limit else outside).append(acc)
    return {
        "inside_mean": float(f"{np.mean(inside) if inside else 0.0:.6g}"),
        "outside_mean": float(f"{np.mean(outside) if outside else 0.0:.6g}"),
        "inside_cells": len(inside),
        "outside_cells": len(outside),
    }


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    cfg = r["config"]
    ws, ds = cfg["sigma_w2"], cfg["depths"]
    img = np.array([[r["train_acc"][f"{w}/{d}"] or 0.0 for w in ws] for d in ds])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    mesh = ax.pcolormesh(
        range(len(ws) + 1), range(len(ds) + 1), img, cmap="viridis", vmin=0.1, shading="flat"
    )
    fig.colorbar(mesh, label=f"train accuracy after {cfg['steps']} steps")
    dense = np.linspace(min(ws), max(ws), 200)
    line = [depth_scales(w, r["sigma_b2"], "tanh").trainable_depth for w in dense]
    # map to grid coordinates: x by linear interpolation of sigma_w2, y by log-depth index
    xs = np.interp(dense, ws, np.arange(len(ws))) + 0.5
    ys = (
        np.interp(
            np.log(np.clip(line, min(ds), max(ds) * 10)),
            np.log(ds),
            np.arange(len(ds)),
            right=len(ds),
        )
        + 0.5
    )
    ax.plot(xs, ys, "w--", lw=1.5, label="theory: L = 6·ξ_c")
    ax.set_xticks(np.arange(len(ws)) + 0.5, [f"{w:g}" for w in ws], fontsize=7)
    ax.set_yticks(np.arange(len(ds)) + 0.5, [str(d) for d in ds])
    ax.set(
        xlabel="σ_w²", ylabel="depth", ylim=(0, len(ds)), title=f"tanh MLP, σ_b² = {r['sigma_b2']}"
    )
    ax.legend(loc="upper right", fontsize=8)
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    cfg = r["config"]
    head = "| depth \\ σ_w² | " + " | ".join(f"{w:g}" for w in cfg["sigma_w2"]) + " |"
    sep = "|---|" + "---|" * len(cfg["sigma_w2"])
    rows = [
        f"| {d} | "
        + " | ".join(
            "div." if r["train_acc"][f"{w}/{d}"] is None else f"{r['train_acc'][f'{w}/{d}']:.2f}"
            for w in cfg["sigma_w2"]
        )
        + " |"
        for d in cfg["depths"]
    ]
    lim = (
        "| 6·ξ_c | "
        + " | ".join(
            "∞"
            if r["theory"][str(w)]["trainable_depth"] is None
            else f"{r['theory'][str(w)]['trainable_depth']:.0f}"
            for w in cfg["sigma_w2"]
        )
        + " |"
    )
    a = r["agreement"]
    return (
        "# Edge of chaos (Schoenholz et al. 2016)\n\n![heatmap](heatmap.png)\n\n"
        f"Train accuracy on MNIST-1D after {cfg['steps']} SGD steps (lr 1e-3, momentum 0.9), "
        "width 64.\n\n"
        + "\n".join([head, sep, *rows, lim])
        + f"\n\nMean train accuracy inside the predicted trainable region: "
        f"{a['inside_mean']:.3f} ({a['inside_cells']} cells); outside: {a['outside_mean']:.3f}"
        f" ({a['outside_cells']} cells). " + claim_line(r)
    )
