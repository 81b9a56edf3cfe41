"""Fill throughput: initwise's reproducible streams vs ``torch.nn.init`` at the same thread count,
with ``Tensor.fill_`` (pure memory writes) printed as the ceiling."""

from __future__ import annotations

import numpy as np
import torch

from . import print_table, timeit


def run(
    numel: int = 1 << 26, repeat: int = 3, threads: int | None = None
) -> list[dict[str, float]]:
    from .. import sampling
    from .. import schemes as S

    n_threads = threads or torch.get_num_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        t = torch.empty(numel)
        out = t.numpy()
        g = torch.Generator().manual_seed(0)
        ceiling = numel / timeit(lambda: t.fill_(1.0), repeat) / 1e6
        cases = [
            ("uniform", lambda: torch.nn.init.uniform_(t, -1, 1, generator=g), S.uniform(-1, 1)),
            ("normal", lambda: torch.nn.init.normal_(t, 0, 0.02, generator=g), S.normal(0, 0.02)),
            (
                "trunc_normal ±2σ",
                lambda: torch.nn.init.trunc_normal_(t, 0, 0.02, -0.04, 0.04, generator=g),
                S.trunc_normal(0, 0.02, -0.04, 0.04),
            ),
        ]
        rows = []
        for name, peer, scheme in cases:
            tp = numel / timeit(peer, repeat) / 1e6
            ours = (
                numel
                / timeit(
                    lambda scheme=scheme: sampling.sample(
                        scheme, (numel,), seed=0, name="bench", threads=n_threads, out=out
                    ),
                    repeat,
                )
                / 1e6
            )
            rows.append(
                {
                    "dist": name,
                    "torch_melem_s": tp,
                    "initwise_melem_s": ours,
                    "ratio": ours / tp,
                    "ceiling_melem_s": ceiling,
                }
            )
    finally:
        torch.set_num_threads(old)
    print_table(
        f"fill {numel / 2**20:.0f} Mi float32 elements, {n_threads} threads "
        f"(fill_ ceiling {ceiling:.0f} Melem/s, numpy {np.__version__})",
        ["distribution", "torch.nn.init Melem/s", "initwise Melem/s", "initwise / torch"],
        [
            [
                r["dist"],
                f"{r['torch_melem_s']:.0f}",
                f"{r['initwise_melem_s']:.0f}",
                f"{r['ratio']:.2f}×",
            ]
            for r in rows
        ],
    )
    return rows
