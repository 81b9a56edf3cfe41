"""Where a compiled device kernel loses bits: each stage of the stream kernel
(:mod:`initwise.kernels._torch`) compiled alone, exactly as the whole kernel is compiled
(``torch.compile``, inductor with ``emulate_precision_casts``), and compared bit for bit with the
same stage in eager ops on the same device. Prints one line per stage: how many of 1 Mi values
differ, and the first few. Run by ``benchmarks/gpu_check.sh`` when the fused kernel fails its
check; ``python benchmarks/gpu_kernel_parts.py [cuda|cpu]``."""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch._inductor.config as icfg

from initwise.kernels import _torch as TK
from initwise.kernels import constants as K


def _stages(device: str) -> list[tuple[str, object, tuple]]:
    g = torch.Generator(device="cpu").manual_seed(0)
    n = 1 << 20
    w = [torch.randint(0, 2**32, (n,), generator=g, dtype=torch.int64).to(device) for _ in "abcd"]
    m32 = (1 + torch.rand(n, generator=g)).to(device)
    m64 = (1 + torch.rand(n, generator=g, dtype=torch.float64)).to(device)
    x64 = (torch.rand(n, generator=g, dtype=torch.float64) * 40).to(device)
    f32 = ((torch.rand(n, generator=g) - 0.5) / 4).to(device)
    q = torch.randint(0, 1 << 10, (n,), generator=g).to(device)
    e32 = torch.randint(-24, 1, (n,), generator=g, dtype=torch.int32).to(device)
    ctr = torch.arange(2**40, 2**40 + n, dtype=torch.int64, device=device)
    return [
        ("philox", lambda c: torch.stack(TK.philox(c, 7, 9, 0x9E3779B9, 0x12345678)), (ctr,)),
        ("div float32", lambda a: TK._div(a - 1.0, a + 1.0), (m32,)),
        ("sqrt float64", TK.sqrt, (x64,)),
        ("sqrt float32", TK.sqrt, (m32 * 7,)),
        (
            "radius float32",
            lambda e, m: TK._radius(e, m, -2.0, float(K.SQRT2_32), float(K.LN2_32), K.LOG32),
            (e32, m32),
        ),
        (
            "radius float64",
            lambda m: TK._radius(
                torch.zeros_like(m), m, -2.0, float(K.SQRT2_64), float(K.LN2_64), K.LOG64
            ),
            (m64,),
        ),
        ("sincos float32", lambda f, q: torch.stack(TK._sincos(f, q, K.SIN32, K.COS32)), (f32, q)),
        ("normal32", lambda a, b: torch.stack(TK.normal32(a, b, -2.0)), (w[0], w[1])),
        ("uniform64", TK.uniform64, (w[0], w[1])),
        ("normal64", lambda a, b, c, d: torch.stack(TK.normal64(a, b, c, d, -2.0)), tuple(w)),
    ]


def _bits(t: torch.Tensor) -> np.ndarray:
    a = t.detach().cpu().numpy()
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32) if a.dtype.kind == "f" else a


def main(device: str = "cuda") -> int:
    bad = 0
    for name, fn, args in _stages(device):
        want = fn(*args)
        try:
            with icfg.patch(emulate_precision_casts=True):
                got = torch.compile(fn, dynamic=False, fullgraph=True)(*args)
        except Exception as exc:  # report and go on to the next stage
            print(f"{name:16s} compile failed: {type(exc).__name__}: {str(exc)[:300]}")
            bad += 1
            continue
        diff = np.flatnonzero(_bits(got).reshape(-1) != _bits(want).reshape(-1))
        bad += bool(diff.size)
        first = ", ".join(
            f"[{i}] {got.reshape(-1)[i].item()!r} vs {want.reshape(-1)[i].item()!r}"
            for i in diff[:3]
        )
        tail = f": {first}" if first else ""
        print(f"{name:16s} {diff.size:8d} of {want.numel()} differ{tail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
