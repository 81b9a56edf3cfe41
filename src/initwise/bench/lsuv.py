"""initwise LSUV (one fx pass) vs the ``lsuv`` package (0.3.x, one forward per layer and
attempt) on plain MLPs and CNNs of depth 10, 50, 100; ``xl`` adds VGG-11 at 224² (the case
where the orthogonal pre-init is most of the time: its 4096×25088 classifier weight)."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import torch
from torch import nn

from . import print_table, timeit


def mlp(depth: int, width: int = 256) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers)


def cnn(depth: int, width: int = 16) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def vgg11(classes: int = 1000) -> nn.Sequential:
    """VGG-11 (Simonyan & Zisserman 2015, configuration A) for 224×224 inputs, no batch norm."""
    layers: list[nn.Module] = []
    channels = 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU()]
            channels = int(v)
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, classes),
    )


def run(
    depths: tuple[int, ...] = (10, 50, 100), repeat: int = 3, xl: bool = False
) -> list[dict[str, float]]:
    """Time both on each model (``xl``: and on VGG-11 with a batch of 8 at 224², one run
    each); return rows (and print the table)."""
    try:
        import lsuv as peer
    except ImportError as exc:
        raise ImportError(
            "the LSUV benchmark needs the peer package: pip install lsuv==0.3.0"
        ) from exc
    from ..torch.lsuv import lsuv

    torch.manual_seed(0)
    out = []
    cases: list[tuple[str, Any, torch.Tensor, tuple[int, ...], int]] = [
        ("MLP w256", mlp, torch.randn(128, 256), depths, repeat),
        ("CNN w16 32×32", cnn, torch.randn(32, 3, 32, 32), depths, repeat),
    ]
    if xl:
        cases.append(("VGG-11 224×224", lambda _: vgg11(), torch.randn(8, 3, 224, 224), (11,), 1))
    for kind, build, batch, model_depths, reps in cases:
        for depth in model_depths:
            base = build(depth)
            runs: list[Any] = []  # the last timed run's result gives the convergence columns
            ours = timeit(
                lambda base=base, batch=batch, runs=runs: runs.append(
                    lsuv(copy.deepcopy(base), batch)
                ),
                reps,
            )

            def theirs(base=base, batch=batch) -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    peer.lsuv_with_singlebatch(copy.deepcopy(base), batch, verbose=False)

            ref = timeit(theirs, reps)
            copy_t = timeit(lambda base=base: copy.deepcopy(base), reps)
            res = runs[-1]
            out.append(
                {
                    "model": kind,
                    "depth": depth,
                    "initwise_s": ours,
                    "lsuv_s": ref,
                    "copy_s": copy_t,
                    "speedup": ref / ours,
                    "converged": sum(x.converged for x in res.layers),
                    "layers": len(res.layers),
                    "passes": res.forward_passes,
                }
            )
    print_table(
        f"LSUV: initwise vs lsuv 0.3 (median of {repeat}, {torch.get_num_threads()} threads)",
        [
            "model",
            "depth",
            "initwise s",
            "lsuv s",
            "lsuv / initwise",
            "initwise passes",
            "converged",
        ],
        [
            [
                r["model"],
                str(r["depth"]),
                f"{r['initwise_s']:.3f}",
                f"{r['lsuv_s']:.3f}",
                f"{r['speedup']:.1f}×",
                str(r["passes"]),
                f"{r['converged']}/{r['layers']}",
            ]
            for r in out
        ],
    )
    return out
