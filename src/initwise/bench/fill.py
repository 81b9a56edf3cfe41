"""Fill throughput: initwise's reproducible streams vs ``torch.nn.init`` at the same thread count,
with ``Tensor.fill_`` (pure memory writes) printed as the ceiling, and the NumPy reference kernel
(the fallback without Numba; same values) beside the compiled one."""

from __future__ import annotations

import os

import torch

from . import print_table, timeit


def run(
    numel: int = 1 << 26, repeat: int = 3, threads: int | None = None
) -> list[dict[str, float]]:
    from .. import kernels, sampling
    from .. import schemes as S

    backend = kernels.warm()

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

            def ours(scheme=scheme):
                sampling.sample(scheme, (numel,), seed=0, name="bench", threads=n_threads, out=out)

            tp = numel / timeit(peer, repeat) / 1e6
            fast = numel / timeit(ours, repeat) / 1e6
            ref = float("nan")
            if backend == "numba":
                old_env = os.environ.get("INITWISE_KERNEL")
                os.environ["INITWISE_KERNEL"] = "numpy"
                try:
                    ref = numel / timeit(ours, 1) / 1e6
                finally:
                    if old_env is None:
                        del os.environ["INITWISE_KERNEL"]
                    else:
                        os.environ["INITWISE_KERNEL"] = old_env
            rows.append(
                {
                    "dist": name,
                    "torch_melem_s": tp,
                    "initwise_melem_s": fast,
                    "numpy_ref_melem_s": ref,
                    "ratio": fast / tp,
                    "ceiling_melem_s": ceiling,
                    "kernel": backend,
                }
            )
    finally:
        torch.set_num_threads(old)
    print_table(
        f"fill {numel / 2**20:.0f} Mi float32 elements, {n_threads} threads, kernel {backend} "
        f"(fill_ ceiling {ceiling:.0f} Melem/s, torch {torch.__version__})",
        [
            "distribution",
            "torch.nn.init Melem/s",
            "initwise Melem/s",
            "initwise / torch",
            "NumPy reference Melem/s",
        ],
        [
            [
                r["dist"],
                f"{r['torch_melem_s']:.0f}",
                f"{r['initwise_melem_s']:.0f}",
                f"{r['ratio']:.2f}×",
                "—"
                if r["numpy_ref_melem_s"] != r["numpy_ref_melem_s"]
                else f"{r['numpy_ref_melem_s']:.0f}",
            ]
            for r in rows
        ],
    )
    return rows
