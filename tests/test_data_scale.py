"""Models that take data at its own scale: a statistic added back after a forecast (RevIN) is no
residual stream, and the logarithm of positive data has moments of its own."""

from __future__ import annotations

import math
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


class StatsPool(nn.Module):
    """An x-vector's statistics pooling (Snyder et al. 2018): frame-level convolutions, then the
    mean and the standard deviation over time of each channel, concatenated, into a head."""

    def __init__(self, stat: str = "std") -> None:
        super().__init__()
        self.stat = stat
        self.f = nn.Conv1d(24, 128, 5, padding=2)
        self.seg, self.out = nn.Linear(128, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.f(x))
        s = h.std(-1) if self.stat == "std" else h.var(-1)
        return self.out(torch.relu(self.seg(s)))


@pytest.mark.parametrize("stat", ["std", "var"])
def test_a_spread_over_time_as_a_feature_has_its_own_moments(stat: str) -> None:
    """``h.std(-1)`` of ReLU features (E[x²] 1, Var 0.68) passed its input's moments on: the
    head was solved for E[x²] 1 where 0.68 arrives (0.49 for the variance). Now the standard
    deviation carries ``E[s²] = Var[x]``, the variance ``E[v] = Var[x]``, ``E[v²] ≈ Var[x]²``."""
    x = torch.randn(64, 24, 100, generator=torch.Generator().manual_seed(1))
    planned, arriving = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        m = StatsPool(stat)
        p = it.init_model(m, seed=seed)
        why = p["seg.weight"].reason or ""
        planned.append(float(why.split("input E[x²] ")[1].split(",")[0].split(" ")[0]))
        with torch.no_grad():
            h = torch.relu(m.f(x))
            s = h.std(-1) if stat == "std" else h.var(-1)
            arriving.append(float(s.pow(2).mean()))
    var = 1 - 1 / math.pi  # Var[x] of ReLU units with E[x²] 1, E[x] = 1/√π
    assert statistics.mean(planned) == pytest.approx(var if stat == "std" else var * var, 0.02)
    assert statistics.mean(planned) == pytest.approx(statistics.mean(arriving), rel=0.15)
