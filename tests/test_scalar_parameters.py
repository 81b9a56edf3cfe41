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


class XIELU(nn.Module):
    """xIELU (Fishman et al. 2024; Apertus's activation): learned α_p, α_n of one element and
    the constants β, ε held as buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha_p = nn.Parameter(torch.log(torch.expm1(torch.tensor(0.8))).unsqueeze(0))
        self.alpha_n = nn.Parameter(torch.log(torch.expm1(torch.tensor(0.3))).unsqueeze(0))
        self.register_buffer("beta", torch.tensor(0.5))
        self.register_buffer("eps", torch.tensor(-1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha_p = nn.functional.softplus(self.alpha_p)
        alpha_n = self.beta + nn.functional.softplus(self.alpha_n)
        return torch.where(
            x > 0,
            alpha_p * x * x + self.beta * x,
            (torch.expm1(torch.min(x, self.eps)) - x) * alpha_n + self.beta * x,
        )


class XIELUNet(nn.Module):
    def __init__(self, depth: int = 8, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.acts = nn.ModuleList(XIELU() for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, act in zip(self.layers, self.acts, strict=True):
            x = act(layer(x))
        return x


def test_an_activation_module_with_constant_buffers_is_probed() -> None:
    """xIELU holds β and ε as one-number buffers: a module with buffers was never probed as an
    activation (to keep a BatchNorm written by hand out), so every layer after one said "input
    moments unknown" (Apertus: each MLP's down_proj). Single numbers are no running statistics:
    it is probed now, and the layers after it are solved for what it gives."""
    from initwise.torch.modules import probed_activation

    assert probed_activation(XIELU()) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.AssumptionWarning)
        it.plan(XIELUNet(), "auto")
    rms = _output_rms(lambda: XIELUNet(depth=3))  # (quadratic for x > 0: no deep plain chain)
    assert 0.3 < statistics.geometric_mean(rms) < 3, rms

    class Counted(XIELU):  # (a step count is no constant: not probed)
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    assert probed_activation(Counted()) is None
