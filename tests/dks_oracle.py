"""The ``dks`` package's activation constants, the oracle for :mod:`initwise.math.shaping`.

``python -m tests.dks_oracle > tests/data/dks_constants.json`` runs dks (PyPI ``dks`` 0.1.2,
``dks.base.activation_transform``, 100,000-point quadrature) for ReLU/Leaky ReLU (TAT) and tanh,
softplus, GELU (tanh form and exact), SiLU, ELU (DKS and TAT) on plain chains of depth 10, 50, 100
and 200 (depth − 1 nonlinear layers), and prints the constants with dks's solve time. The file is
committed so the comparison runs without dks; ``test_shaping.py`` also re-runs a few cases live
when dks is installed (it is in requirements-dev.txt).
"""

from __future__ import annotations

import json
import time
import warnings

DEPTHS = (10, 50, 100, 200)
# dks name -> initwise registry name
NAMES = {
    "tanh": "tanh",
    "softplus": "softplus",
    "gelu": "gelu_tanh",
    "gelu_exact": "gelu",
    "swish": "silu",
    "elu": "elu",
}


def chain(layers: int):  # the subnet maximizing function of a plain chain
    def subnet_max(x, r):
        for _ in range(layers):
            x = r(x)
        return x

    return subnet_max


def cases() -> list[tuple[str, str, str, int]]:
    out = []
    for depth in DEPTHS:
        out.append(("TAT", "leaky_relu", "leaky_relu", depth))
        for method in ("DKS", "TAT"):
            for dks_name, name in NAMES.items():
                out.append((method, dks_name, name, depth))
    return out


def solve(method: str, dks_name: str, depth: int) -> tuple[dict[str, float] | None, str, float]:
    from dks.base import activation_transform as at

    t = time.perf_counter()
    try:
        p = at._get_activations_params([dks_name], method=method, subnet_max_func=chain(depth - 1))
        return {k: float(v) for k, v in p[dks_name].items()}, "", time.perf_counter() - t
    except ValueError as exc:
        return None, str(exc).split(".")[0], time.perf_counter() - t


def main() -> None:
    warnings.filterwarnings("ignore")
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    rows = []
    for method, dks_name, name, depth in cases():
        params, error, seconds = solve(method, dks_name, depth)
        rows.append(
            {
                "method": method.lower(),
                "dks_name": dks_name,
                "name": name,
                "depth": depth,
                "params": params,
                "error": error,
                "dks_seconds": round(seconds, 4),
            }
        )
    print(json.dumps({"dks": "0.1.2", "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
