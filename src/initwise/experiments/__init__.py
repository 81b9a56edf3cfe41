"""Reproductions of the classic initialization claims on real data (MNIST-1D, digits), on CPU.

Each experiment is ``run(quick, seed, out, progress) -> results`` and writes ``results.json``,
PNG plots and ``report.md`` under ``out/<name>/``. Same seed, same machine → identical JSON.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

EXPERIMENTS = {
    "he2015": "he2015",
    "sigmoid-vanishing": "sigmoid_vanishing",
    "zero-symmetry": "zero_symmetry",
    "depth-sweep": "depth_sweep",
    "edge-of-chaos": "edge_of_chaos",
    "seed-formulas": "seed_formulas",
    "lr-transfer": "lr_transfer",
    "deep-vanilla": "deep_vanilla",
}
RESUMABLE = ("depth-sweep", "lr-transfer", "deep-vanilla")
"""The experiments whose cells are journaled (``initwise reproduce NAME --resume``)."""


def run(
    name: str,
    *,
    quick: bool = False,
    seed: int = 0,
    out: str = "initwise-report",
    progress: Any = None,
    threads: int | None = 1,
    resume: bool = False,
) -> dict[str, Any]:
    """Run experiment ``name`` (see :data:`EXPERIMENTS`) on ``threads`` intra-op threads (1 by
    default: the networks are small, see :mod:`initwise.torch.threads`; None keeps torch's).
    ``resume``: the long ones (:data:`RESUMABLE`) journal each finished cell in
    ``out/name/cells.jsonl`` and go on from it (:class:`~initwise.experiments.common.Journal`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; experiments: {', '.join(EXPERIMENTS)}")
    if resume and name not in RESUMABLE:
        raise ValueError(
            f"resume: {name} is short and keeps no journal; resumable: {', '.join(RESUMABLE)} "
            "(run it without resume)"
        )
    from ..torch.threads import intra_op_threads

    module = importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")
    extra = {"resume": resume} if name in RESUMABLE else {}
    with intra_op_threads(threads):
        return module.run(quick=quick, seed=seed, out=out, progress=progress, **extra)


def demo(
    out: str = "initwise-report", seed: int = 0, progress: Any = None, threads: int | None = 1
) -> str:
    """The ``make demo`` job: quick he2015 and depth-sweep, and a diagnose comparison of three
    inits on a 20-layer ReLU MLP with a real MNIST-1D batch. Returns the index report's path."""
    import torch

    from ..diagnostics import diagnose, write_report
    from ..torch.threads import intra_op_threads
    from .common import claim_line, initialize, mlp, mnist1d

    he = run("he2015", quick=True, seed=seed, out=out, progress=progress, threads=threads)
    sweep = run("depth-sweep", quick=True, seed=seed, out=out, progress=progress, threads=threads)
    data = mnist1d()
    reports = {}
    with intra_op_threads(threads):
        for how in ("auto", "xavier", "torch-default"):
            model = mlp(20, 128, data.n_features, data.n_classes, "relu")
            initialize(model, how, seed)
            reports[how] = diagnose(model, data.x_train[:512], label=how)
    write_report(reports, os.path.join(out, "diagnose"), "20-layer ReLU MLP on MNIST-1D")
    he30 = {k: v["final_loss"] for k, v in he["runs"].items() if k.startswith("30/")}
    deepest = max(sweep["config"]["depths"])
    accs = {
        k.split("/")[1]: v["test_acc"]
        for k, v in sweep["runs"].items()
        if k.endswith(f"/{deepest}")
    }
    lines = [
        "# initwise demo report\n",
        f"Quick versions (seed {seed}); full-size results and the commands to regenerate them are "
        "in docs/experiments.md.\n",
        "## He et al. 2015: 30-layer plain ReLU MLP\n",
        "![loss](he2015/loss.png)\n",
        "| init | final train loss |\n|---|---|",
        *[f"| {k.split('/')[1]} | {v} |" for k, v in he30.items()],
        "\n" + claim_line(he),
        f"## Trainability at depth {deepest}\n",
        "![depth sweep](depth-sweep/depth_sweep.png)\n",
        "| init | test accuracy |\n|---|---|",
        *[f"| {k} | {v} |" for k, v in accs.items()],
        "\n## Signal propagation at init (diagnose)\n",
        "![signal](diagnose/signal.png)\n",
        "| init | verdict | summary |\n|---|---|---|",
        *[f"| {k} | {r.verdict} | {r.summary} |" for k, r in reports.items()],
        f"\n(torch {torch.__version__}, {threads or torch.get_num_threads()} intra-op thread(s))\n",
    ]
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
