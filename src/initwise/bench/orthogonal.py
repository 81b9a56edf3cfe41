"""Orthogonal init: initwise's reproducible draw (the plan path: a float64 Gaussian keyed by
(seed, name), Householder QR through SciPy's LAPACK, signs fixed by diag R, cast last) against
``torch.nn.init.orthogonal_`` (float32 QR through torch's LAPACK) at the same thread count."""

from __future__ import annotations

from typing import Any

import torch

from . import print_table, timeit

SHAPES = ((1024, 1024), (2048, 8192), (4096, 4096))


def run(shapes: tuple[tuple[int, int], ...] = SHAPES, repeat: int = 3) -> list[dict[str, Any]]:
    """Time both on each shape; return rows (and print the table)."""
    from .. import schemes as S
    from ..plan import ParamPlan, Plan
    from ..torch.apply import apply_plan

    rows = []
    for shape in shapes:
        w = torch.empty(shape)
        g = torch.Generator().manual_seed(0)
        model = torch.nn.Linear(shape[1], shape[0], bias=False)
        plan = Plan((ParamPlan.build("weight", shape, S.orthogonal(1.0), "bench", None),))
        ours = timeit(lambda model=model, plan=plan: apply_plan(plan, model, seed=0), repeat)
        theirs = timeit(lambda w=w, g=g: torch.nn.init.orthogonal_(w, generator=g), repeat)
        rows.append({"shape": shape, "initwise_s": ours, "torch_s": theirs, "ratio": ours / theirs})
    print_table(
        f"orthogonal init, {torch.get_num_threads()} thread(s): initwise (reproducible bits, "
        "float64 QR) vs torch.nn.init.orthogonal_ (float32 QR)",
        ["shape", "initwise", "torch", "initwise / torch"],
        [
            [
                f"{r['shape'][0]}×{r['shape'][1]}",
                f"{r['initwise_s']:.3f} s",
                f"{r['torch_s']:.3f} s",
                f"{r['ratio']:.2f}×",
            ]
            for r in rows
        ],
    )
    return rows
