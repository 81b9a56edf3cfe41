"""initwise LSUV (one fx pass) vs the ``lsuv`` package (0.3.x, one forward per layer and
attempt) on plain MLPs and CNNs of depth 10, 50, 100."""

from __future__ import annotations

import contextlib
import copy
import io

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


def run(depths: tuple[int, ...] = (10, 50, 100), repeat: int = 3) -> list[dict[str, float]]:
    """Time both on each model; return rows (and print the table)."""
    try:
        import lsuv as peer
    except ImportError as exc:
        raise ImportError(
            "the LSUV benchmark needs the peer package: pip install lsuv==0.3.0"
        ) from exc
    from ..torch.lsuv import lsuv

    torch.manual_seed(0)
    out = []
    for kind, build, batch in (
        ("MLP w256", mlp, torch.randn(128, 256)),
        ("CNN w16 32×32", cnn, torch.randn(32, 3, 32, 32)),
    ):
        for depth in depths:
            base = build(depth)
            ours = timeit(lambda base=base, batch=batch: lsuv(copy.deepcopy(base), batch), repeat)

            def theirs(base=base, batch=batch) -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    peer.lsuv_with_singlebatch(copy.deepcopy(base), batch, verbose=False)

            ref = timeit(theirs, repeat)
            copy_t = timeit(lambda base=base: copy.deepcopy(base), repeat)
            res = lsuv(copy.deepcopy(base), batch)
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
