"""Learnable scalars inside an activation written in ``forward``: Swish-β, a hand-written PReLU
— probed as the activation they are at initialization."""

from __future__ import annotations

import statistics
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch.graph import scalar_parameters  # noqa: E402
from initwise.torch.inspection import inspect_model  # noqa: E402


class SwishBeta(nn.Module):
    """``h · σ(β_i·h)`` with one learnable β per layer (Ramachandran et al. 2017), β = 1 at
    initialization: a SiLU network."""

    def __init__(self, depth: int = 20, width: int = 128, form: str = "vector") -> None:
        super().__init__()
        self.form = form
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        if form == "vector":
            self.beta = nn.Parameter(torch.ones(depth))
        else:
            self.betas = nn.ParameterList(nn.Parameter(torch.ones(())) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(x)
            b = self.beta[i] if self.form == "vector" else self.betas[i]
            x = h * torch.sigmoid(b * h)
        return x


class HandPReLU(nn.Module):
    """``where(h > 0, h, a·h)`` with a learnable slope a = 0.25 (PReLU written out)."""

    def __init__(self, depth: int = 12, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.a = nn.Parameter(torch.tensor(0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(x)
            x = torch.where(h > 0, h, self.a * h)
        return x


class Gated(nn.Module):
    """A ReZero-style scalar gate on a registered activation: ``x + α·relu(W x)``."""

    def __init__(self, depth: int = 6, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.alpha = nn.Parameter(torch.full((depth,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = x + self.alpha[i] * torch.relu(layer(x))
        return x


def _output_rms(make, seeds=range(3)) -> list[float]:
    out = []
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(7))
    for seed in seeds:
        torch.manual_seed(seed)
        m = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            it.init_model(m, seed=seed)
        with torch.no_grad():
            out.append(float(m(x).pow(2).mean().sqrt()))
    return out


@pytest.mark.parametrize("form", ["vector", "scalars"])
def test_swish_with_a_learnable_beta_is_probed_as_the_activation_it_is(form: str) -> None:
    """Read as a sigmoid between two products, the layers of a 20-layer Swish-β network were
    solved for a unit output as if linear, and the signal grew to output rms 32–53 (with and
    without an example input), with only "no rule for beta" said. β's value now (1) goes into
    the probed activation: it holds as a SiLU network does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ("no rule for beta (left as is)": it is left)
        plan = it.plan(SwishBeta(form=form), "auto")
    assert "probed" in (plan["layers.1.weight"].reason or "")
    rms = _output_rms(lambda: SwishBeta(form=form))
    assert 0.3 < statistics.geometric_mean(rms) < 3, rms


def test_a_hand_written_prelu_uses_its_slope_now() -> None:
    """``where(h > 0, h, a·h)``: the slope's value (0.25) is the activation's."""
    rms = _output_rms(HandPReLU)
    assert 0.3 < statistics.geometric_mean(rms) < 3, rms
    plan = it.plan(HandPReLU(), "auto")
    assert "probed" in (plan["layers.1.weight"].reason or "")


def test_a_scalar_gate_on_a_registered_activation_keeps_it() -> None:
    """``α·relu(h)``: the activation stays ReLU (the scale is carried by the moments), not a
    probed stretch."""
    info = inspect_model(Gated(), None)
    assert {info.layers[f"layers.{i}"].activation.name for i in range(6)} == {"relu"}
    plan = it.plan(Gated(), "auto")
    why = plan["layers.1.weight"].reason or ""
    assert "relu" in why and "probed" not in why


def test_scalar_parameters_reads_single_elements_at_their_value_now() -> None:
    m = SwishBeta(depth=3, form="vector")
    with torch.no_grad():
        m.beta.copy_(torch.tensor([0.5, 1.0, 2.0]))
    info = inspect_model(m, None)
    values = sorted(float(v) for v in scalar_parameters(m, info.graph).values())
    assert values == [0.5, 1.0, 2.0]
    meta = SwishBeta(depth=3).to("meta")
    assert scalar_parameters(meta, inspect_model(meta, None).graph) == {}
