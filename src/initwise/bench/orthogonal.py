"""Orthogonal init: initwise's reproducible draw (the plan path: a float64 Gaussian keyed by
(seed, name), its columns taken as Householder reflectors and Q formed in blocks of up to 512
(initwise._householder; Stewart 1980, half a QR's flops), signed for Haar, cast last) and the
drop-in ``initwise.torch.orthogonal_`` (torch's algorithm: float32 QR, torch's bits) against
``torch.nn.init.orthogonal_`` at the same thread count, timed in turns with a pause before each
(``timeit_side_by_side``: a BLAS pool's spinning workers would otherwise slow the next one).
The plan path computes in float64 on purpose: a float32 QR's values change with the BLAS
thread count and kernel (docs/scale.md)."""

from __future__ import annotations

from typing import Any

import torch

from . import print_table, timeit_side_by_side

SHAPES = ((1024, 1024), (2048, 8192), (4096, 4096))
XL_SHAPES = ((4096, 25088),)  # VGG-11's first classifier weight


def run(
    shapes: tuple[tuple[int, int], ...] = SHAPES, repeat: int = 5, xl: bool = False
) -> list[dict[str, Any]]:
    """Time the three on each shape (``xl`` adds :data:`XL_SHAPES`), in turns; return rows (and
    print the table)."""
    if xl:
        shapes = tuple(shapes) + XL_SHAPES
    from .. import schemes as S
    from ..plan import ParamPlan, Plan
    from ..torch.apply import apply_plan
    from ..torch.init import orthogonal_ as dropin_orthogonal

    rows = []
    for shape in shapes:
        w = torch.empty(shape)
        g = torch.Generator().manual_seed(0)
        model = torch.nn.Linear(shape[1], shape[0], bias=False)
        plan = Plan((ParamPlan.build("weight", shape, S.orthogonal(1.0), "bench", None),))
        ours, drop, theirs = timeit_side_by_side(
            [
                lambda model=model, plan=plan: apply_plan(plan, model, seed=0),
                lambda w=w, g=g: dropin_orthogonal(w, generator=g),
                lambda w=w, g=g: torch.nn.init.orthogonal_(w, generator=g),
            ],
            repeat,
        )
        rows.append(
            {
                "shape": shape,
                "initwise_s": ours,
                "dropin_s": drop,
                "torch_s": theirs,
                "ratio": ours / theirs,
                "dropin_ratio": drop / theirs,
            }
        )
    print_table(
        f"orthogonal init, {torch.get_num_threads()} thread(s): the plan (seed-keyed bits, "
        "float64 reflectors) and the drop-in (torch's float32 QR) vs torch.nn.init.orthogonal_",
        ["shape", "plan", "drop-in", "torch", "plan / torch", "drop-in / torch"],
        [
            [
                f"{r['shape'][0]}×{r['shape'][1]}",
                f"{r['initwise_s']:.3f} s",
                f"{r['dropin_s']:.3f} s",
                f"{r['torch_s']:.3f} s",
                f"{r['ratio']:.2f}×",
                f"{r['dropin_ratio']:.2f}×",
            ]
            for r in rows
        ],
    )
    return rows
