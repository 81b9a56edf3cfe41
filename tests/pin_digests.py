"""Digests of what initwise produces, pinned before a refactor (issue 11: same seeds, same bits).

Run ``python -m tests.pin_digests`` to print the current digests as JSON; ``tests/data/
digests.json`` holds the pinned ones and ``test_digests.py`` compares. A deliberate change of
values (a new policy rule) updates the file in the same commit and says why in the CHANGELOG.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn

import initwise.numpy as inp
import initwise.torch as it
from tests import models


def _zoo() -> dict[str, tuple]:
    """name -> (factory, example input or None)."""
    return {
        "act_mlp": (models.ActMLP, None),
        "with_unknown": (models.WithUnknown, None),
        "tied": (models.Tied, None),
        "deep_mlp": (lambda: models.deep_mlp(4, 32), None),
        "deep_mlp_tanh": (lambda: models.deep_mlp(4, 32, nn.Tanh), None),
        "resnet": (models.resnet, None),
        "nonorm_resnet": (models.NoNormResNet, None),
        "vgg": (models.vgg, None),
        "transformer": (models.transformer, None),
        "lstm": (lambda: nn.LSTM(8, 16, 2), None),
        "gru_cell": (lambda: nn.GRUCell(8, 12), None),
        "mha": (lambda: nn.MultiheadAttention(16, 2, kdim=8, vdim=8, add_bias_kv=True), None),
        "convs": (
            lambda: nn.Sequential(
                nn.Conv2d(4, 8, 3, groups=2),
                nn.GELU(),
                nn.Conv2d(8, 8, 3, groups=8),
                nn.SiLU(),
                nn.ConvTranspose2d(8, 4, 3, stride=2),
                nn.PReLU(),
                nn.BatchNorm2d(4),
            ),
            None,
        ),
    }


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _strip_method(obj: object) -> object:
    """``obj`` (parsed plan JSON) without the orthogonal schemes' ``method`` field."""
    if isinstance(obj, dict):
        return {k: _strip_method(v) for k, v in obj.items() if k != "method"}
    if isinstance(obj, list):
        return [_strip_method(v) for v in obj]
    return obj


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _rounded(obj: object) -> object:
    """``obj`` (parsed plan JSON) with every float rounded to 10 significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def _plan_sha(plan: it.Plan) -> str:
    """A plan's digest from its JSON with floats at 10 significant digits: the stds and gains
    come out of NumPy quadratures whose transcendental functions differ in the last bit between
    CPUs (AVX-512 against AVX2 code paths), while the weights drawn from them do not (their
    digests are bit for bit)."""
    return _sha(json.dumps(_rounded(json.loads(plan.to_json())), sort_keys=True))


def compute() -> dict[str, str]:
    out: dict[str, str] = {}
    for mname, (factory, _) in _zoo().items():
        for policy in it.POLICIES:
            if policy in ("lsuv", "tat", "dks"):  # data-driven / kernel shaping: below
                continue
            torch.manual_seed(0)
            m = factory()
            try:
                p = it.plan(m, policy)
            except ValueError as exc:  # u-mup refuses tied weights, attention, recurrent layers
                if policy != "u-mup":
                    raise
                out[f"plan/{mname}/{policy}"] = f"refused: {str(exc)[:40]}"
                continue
            out[f"plan/{mname}/{policy}"] = _plan_sha(p)
            p.apply(m, seed=3)
            out[f"weights/{mname}/{policy}"] = _weights_digest(m)
    # plan files written before schemes had `method` keep their bits: the orthogonal plans with
    # the field removed must give the weights pinned before the reflector method (2026-12-01)
    for mname, (factory, _) in _zoo().items():
        torch.manual_seed(0)
        m = factory()
        legacy = it.Plan.from_json(
            json.dumps(_strip_method(json.loads(it.plan(m, "orthogonal").to_json())))
        )
        legacy.apply(m, seed=3)
        out[f"legacy-qr/weights/{mname}/orthogonal"] = _weights_digest(m)
    for policy, act in (("tat", nn.ReLU), ("tat", nn.Tanh), ("dks", nn.GELU)):
        torch.manual_seed(0)
        m = nn.Sequential(
            nn.Linear(16, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 32), act(),
            nn.Linear(32, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 32), act(),
            nn.Linear(32, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 32), act(),
            nn.Linear(32, 32), act(), nn.Linear(32, 4),
        )  # fmt: skip
        p = it.plan(m, policy)
        out[f"plan/shaped_mlp_{act.__name__.lower()}/{policy}"] = _plan_sha(p)
        p.apply(m, seed=3)
        out[f"weights/shaped_mlp_{act.__name__.lower()}/{policy}"] = _weights_digest(m)
    torch.manual_seed(0)
    m = models.deep_mlp(4, 32)
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    p = it.plan(m, "lsuv", example_input=x)
    out["plan/deep_mlp/lsuv"] = _plan_sha(p)
    # drop-ins: torch functions with a generator, NumPy functions with a seed. `orthogonal_` is
    # not pinned here: it is torch's QR (MKL's LAPACK), whose last bits follow the CPU's code
    # path (MKL_CBWR changes them); test_torch_init checks it bit for bit against torch instead
    g = torch.Generator().manual_seed(5)
    h = hashlib.sha256()
    for fn, kw in [
        (it.uniform_, {}),
        (it.normal_, {"std": 0.3}),
        (it.trunc_normal_, {"std": 0.5}),
        (it.xavier_uniform_, {}),
        (it.xavier_normal_, {}),
        (it.kaiming_uniform_, {"a": 0.1}),
        (it.kaiming_normal_, {"mode": "fan_out"}),
        (it.sparse_, {"sparsity": 0.3}),
    ]:
        t = torch.empty(24, 40)
        fn(t, generator=g, **kw)
        h.update(t.numpy().tobytes())
    out["dropins/torch"] = h.hexdigest()[:20]
    h = hashlib.sha256()
    for name in (
        "normal",
        "uniform",
        "trunc_normal",
        "xavier_uniform",
        "kaiming_normal",
        "lecun_normal",
        "orthogonal",
        "variance_scaling",
    ):
        h.update(np.ascontiguousarray(getattr(inp, name)((16, 24), rng=7)).tobytes())
    out["dropins/numpy"] = h.hexdigest()[:20]
    return out


if __name__ == "__main__":
    print(json.dumps(compute(), indent=1, sort_keys=True))
