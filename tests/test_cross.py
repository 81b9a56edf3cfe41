"""Two outputs of one set of weights are not independent (cross.py): a Siamese network's
``enc(a) − enc(b)``, a triplet's, Sentence-BERT's ``(u, v, |u − v|, u·v)``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.math.meanfield import gaussian_cross  # noqa: E402


def _relu_kernel(q: float, rho: float) -> float:
    """The arc-cosine kernel of order 1 (Cho & Saul 2009): E[relu(u)relu(v)] for unit-correlated
    ``u``, ``v`` of variance ``q`` and correlation ``rho``."""
    return q / (2 * math.pi) * (math.sqrt(1 - rho * rho) + (math.pi - math.acos(rho)) * rho)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.0, 0.4, 0.95])
def test_gaussian_cross_is_the_arc_cosine_kernel_for_relu(rho: float) -> None:
    got = gaussian_cross(lambda x: np.maximum(x, 0.0), (2.0, 0.0), (2.0, 0.0), 2.0 * rho)
    assert got == pytest.approx(_relu_kernel(2.0, rho), rel=2e-3, abs=1e-4)


def test_gaussian_cross_with_means_matches_sampling() -> None:
    rng = np.random.default_rng(0)
    ma, mb, va, vb, cov = 0.5, -0.3, 1.5, 0.8, 0.6
    z = rng.multivariate_normal([ma, mb], [[va, cov], [cov, vb]], size=2_000_000)
    want = float(np.mean(np.tanh(z[:, 0]) * np.tanh(z[:, 1])))
    got = gaussian_cross(np.tanh, (va + ma * ma, ma), (vb + mb * mb, mb), cov + ma * mb)
    assert got == pytest.approx(want, abs=2e-3)


def _mlp(depth: int, width: int, d_in: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(depth - 1):
        layers += [nn.Linear(d_in if k == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, width))


class Siamese(nn.Module):
    """Koch et al. 2015's one-shot network: one encoder for both images, |enc(a) − enc(b)|."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.enc = _mlp(4, width)
        self.head = nn.Linear(width, 64)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head((self.enc(a) - self.enc(b)).abs())


class SiameseChunk(Siamese):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a, b = x.chunk(2, 0)
        return super().forward(a, b)


class SentencePair(nn.Module):
    """Sentence-BERT's classifier on (u, v, |u − v|, u·v) of one encoder."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.enc = _mlp(4, width)
        self.head = nn.Linear(4 * width, 64)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        u, v = self.enc(a), self.enc(b)
        return self.head(torch.cat([u, v, (u - v).abs(), u * v], -1))


class TwoEncoders(Siamese):
    """The same sum with *two* encoders: independent over the draw, as before."""

    def __init__(self, width: int = 256) -> None:
        super().__init__(width)
        self.enc2 = _mlp(4, width)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head((self.enc(a) - self.enc2(b)).abs())


def _head_input(model: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    h = model.head.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        model(*xs)
    h.remove()
    return seen[0]


def _planned_input(plan: object, name: str = "head") -> float:
    reason = plan[f"{name}.weight"].reason  # type: ignore[index]
    return float(reason.split("input E[x²] ")[1].split(",")[0].split(" ")[0])


def _three_seeds(make: Any, chunked: bool = False) -> tuple[float, float, float]:
    """Over seeds 0–2, the mean of: the head's planned input E[x²], the measured one (two
    independent unit inputs, or their concatenation where ``chunked``), the output rms."""
    planned, measured, outs = [], [], []
    for seed in range(3):
        torch.manual_seed(seed)
        m = make()
        plan = it.plan(m)
        plan.apply(m, seed=seed)
        g = torch.Generator().manual_seed(10 + seed)
        a, b = torch.randn(512, 64, generator=g), torch.randn(512, 64, generator=g)
        xs = (torch.cat([a, b]),) if chunked else (a, b)
        planned.append(_planned_input(plan))
        measured.append(float(_head_input(m, *xs).pow(2).mean()))
        with torch.no_grad():
            outs.append(float(m(*xs).pow(2).mean().sqrt()))
    return float(np.mean(planned)), float(np.mean(measured)), float(np.mean(outs))


@pytest.mark.parametrize("cls", [Siamese, SiameseChunk])
def test_siamese_head_is_solved_for_the_difference_that_arrives(cls: type[nn.Module]) -> None:
    # Before: E[(enc(a) − enc(b))²] was taken as 2 (independent); it is ~1.0 (the encoder's
    # ReLU features share their mean through the one set of weights), and the head started at
    # output rms ~0.7 of the unit it aims at.
    planned, measured, out = _three_seeds(cls, chunked=cls is SiameseChunk)
    assert planned == pytest.approx(measured, rel=0.15)
    assert 0.8 <= out <= 1.25


def test_sentence_pair_features_and_product() -> None:
    # (u, v, |u − v|, u·v): the difference's E[x²] is ~1, not 2, and the product's is
    # E[u²]E[v²] + 2·Cov² (Isserlis), not 1; before, the head was solved for 1.25 where 1.14
    # arrives
    planned, measured, out = _three_seeds(SentencePair)
    assert planned == pytest.approx(measured, rel=0.05)
    assert 0.9 <= out <= 1.15


def test_two_encoders_stay_independent() -> None:
    torch.manual_seed(0)
    plan = it.plan(TwoEncoders())
    assert _planned_input(plan) == pytest.approx(2.0, rel=1e-3)


def test_a_gated_unit_halves_stay_independent() -> None:
    """A slice of one tensor at two indices (a GLU's value and gate) is not tied."""

    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.Linear(64, 512)
            self.down = nn.Linear(256, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v, g = self.up(x).chunk(2, -1)
            return self.down(v + g)

    torch.manual_seed(0)
    plan = it.plan(Gated())
    up = _planned_input(plan, "up")
    assert up == pytest.approx(1.0)
    assert _planned_input(plan, "down") == pytest.approx(2.0)


def test_one_layer_called_twice_on_one_input_is_one_value_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(64, 64)
            self.out = nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.lin(x)) + torch.relu(self.lin(x)))

    torch.manual_seed(0)
    plan = it.plan(Twice())
    # the layer aims its ReLU's output at E[relu(y)²] 1: twice one value has E[(2·relu(y))²] 4,
    # not the 2 + 2·E[relu(y)]² = 2.64 of two independent values
    assert "input E[x²] 4," in plan["out.weight"].reason


def test_a_flatten_module_passes_the_tie() -> None:
    """An ``nn.Flatten`` module after two shared layers: the two inputs' flattened values are
    still one computation's (before: no rule for the module, and the tie was lost there)."""

    class FlatSiamese(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(_mlp(3, 256), nn.ReLU(), nn.Flatten(), nn.Linear(256, 256))
            self.head = nn.Linear(256, 64)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.head((self.enc(a) - self.enc(b)).abs())

    planned, measured, _ = _three_seeds(FlatSiamese)
    # (before: 1.36 planned where ~0.9 arrives)
    assert planned == pytest.approx(measured, rel=0.2)


def test_a_deep_shared_encoder_plans() -> None:
    """Following two operands back through 400 residual blocks went past the interpreter's
    recursion limit (RecursionError from ``plan``); deeper than ``cross._DEPTH`` the pair is
    tied through its means only."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.f(x)

    class DeepSiamese(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(*[Block() for _ in range(400)])
            self.head = nn.Linear(8, 8)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.head((self.enc(a) - self.enc(b)).abs())

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a deep narrow chain: its scatter is said)
        plan = it.plan(DeepSiamese())
    assert math.isfinite(_planned_input(plan))
