"""Kernel-shaping solve time: initwise (:func:`initwise.math.shaping.solve`: split Gauss–Legendre,
a few hundred nodes) against the ``dks`` package (0.1.x: 100,000-point quadrature, autograd
derivatives), both on the same plain chains, the same conditions and the same search; the largest
relative difference of the constants is printed beside the times."""

from __future__ import annotations

import contextlib
import io
import warnings

from . import print_table, timeit

CASES = (
    ("DKS", "tanh", "tanh", 50),
    ("DKS", "gelu", "gelu_tanh", 100),
    ("DKS", "softplus", "softplus", 200),
    ("TAT", "tanh", "tanh", 100),
    ("TAT", "swish", "silu", 50),
    ("TAT", "leaky_relu", "leaky_relu", 200),
)


def run(repeat: int = 3, cases: tuple[tuple[str, str, str, int], ...] = CASES) -> list[dict]:
    """Time both solvers on each case (method, dks name, initwise name, depth); return rows
    (and print the table)."""
    try:
        from absl import logging
        from dks.base import activation_transform as at
    except ImportError as exc:
        raise ImportError(
            "the kernel-shaping benchmark needs the peer package: pip install dks==0.1.2 "
            "autograd absl-py"
        ) from exc
    from ..math import shaping as K

    logging.set_verbosity(logging.ERROR)
    out = []
    for method, dks_name, name, depth in cases:
        topo = K.Topology.chain(depth - 1)

        def theirs(dks_name=dks_name, method=method, topo=topo) -> dict:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                return at._get_activations_params(
                    [dks_name], method=method, subnet_max_func=topo.subnet_max
                )[dks_name]

        def ours(name=name, method=method, topo=topo) -> K.Transform:
            return K.solve(name, method, topo)

        ref_t = timeit(theirs, repeat)
        our_t = timeit(ours, repeat)
        ref, mine = theirs(), ours().as_dks()
        diff = max(
            abs(mine[k] - (abs(float(v)) if k == "input_scale" else float(v)))
            / max(abs(float(v)), 1e-12)
            for k, v in ref.items()
        )
        out.append(
            {
                "case": f"{method} {dks_name} depth {depth}",
                "initwise_s": our_t,
                "dks_s": ref_t,
                "speedup": ref_t / our_t,
                "max_rel_diff": diff,
            }
        )
    print_table(
        "kernel shaping: solve time, initwise vs dks (same conditions, same starting points)",
        ["case", "initwise", "dks", "dks / initwise", "max rel. diff"],
        [
            [
                r["case"],
                f"{r['initwise_s'] * 1e3:.1f} ms",
                f"{r['dks_s'] * 1e3:.0f} ms",
                f"{r['speedup']:.0f}×",
                f"{r['max_rel_diff']:.1e}",
            ]
            for r in out
        ],
    )
    return out
