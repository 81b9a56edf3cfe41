"""Models that take data at its own scale: a statistic added back after a forecast (RevIN) is no
residual stream, and the logarithm of positive data has moments of its own."""

from __future__ import annotations

import statistics
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


class RevIN(nn.Module):
    """Reversible instance normalization (Kim et al. 2022): each series normalized, forecast,
    then put back at its own scale, ``f((x − μ)/σ)·σ + μ``."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(48, 128), nn.ReLU(), nn.Linear(128, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        sd = (x.var(-1, keepdim=True) + 1e-5).sqrt()
        return self.f((x - mu) / sd) * sd + mu


class Counts(nn.Module):
    """``log1p`` of counts, then an MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(torch.log1p(x))


def test_a_statistic_added_back_is_no_residual_stream() -> None:
    # before: `… · σ + μ` was a residual sum whose stream was μ (E[x²] ≈ 10⁴ on the example
    # input): the forecast's last layer was solved as a branch end for it, std 9.0 instead of
    # 0.088, and the output came out ×20 the data's scale (rms 2,020 for data at 102)
    x = 100 + 20 * torch.randn(32, 7, 48, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    m = RevIN()
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        plan = it.plan(m, example_input=x)
    assert "residual" not in plan["f.2.weight"].reason
    assert "linear consumer: unit output" in plan["f.2.weight"].reason
    plan.apply(m, seed=0)
    with torch.no_grad():
        rms = float(m(x).pow(2).mean().sqrt())
    assert 90 < rms < 115, rms


def test_the_logarithm_of_counts_has_its_own_moments() -> None:
    # before: log1p passed its input's moments on — the first layer solved for E[x²] ≈ 930
    # where ≈ 11.7 arrives (output rms 0.1, said by the output check)
    g = torch.Generator().manual_seed(5)
    x = torch.poisson(torch.full((256, 20), 30.0), generator=g)
    outs = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = Counts()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plan = it.plan(m, example_input=x)
        plan.apply(m, seed=seed)
        with torch.no_grad():
            outs.append(float(m(x).pow(2).mean().sqrt()))
    assert 0.6 <= statistics.median(outs) <= 1.5, outs
    # without an example input the input is unit Gaussian, whose logarithm has no moments: said
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="f.0: input moments unknown"):
        it.plan(Counts())
