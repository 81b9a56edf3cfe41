"""Bilinear (and linear, bicubic, trilinear) interpolation averages neighbouring values: its
effect on ``E[x²]`` is in the data, as an average pool's — measured with an example input,
said without one; nearest upsampling copies values and passes them."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from initwise.plan import AssumptionWarning  # noqa: E402
from initwise.torch import plan  # noqa: E402


class _Up(nn.Module):
    """Two convolutions with an upsampling between them and no norm (a decoder's step)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.how = how
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear" if how == "module" else "nearest")
        self.b = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.how == "function":
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        else:  # (the module: bilinear, or nearest)
            h = self.up(h)
        return self.b(h)


def _x() -> torch.Tensor:
    return torch.randn(16, 16, 16, 16, generator=torch.Generator().manual_seed(1))


def _rms(m: nn.Module) -> float:
    with torch.no_grad():
        return float(m(_x()).pow(2).mean().sqrt())


def _measured_with_an_example_and_said_without(make, said: str, mode: str) -> None:
    """Without an example input the plan says ``said``; with one the layer after the
    interpolation is solved for what it measures, and the output is near unit."""
    with pytest.warns(AssumptionWarning, match=said):
        plan(make(), "auto")
    m = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(m, "auto", example_input=_x())
    assert f"{mode} interpolation" in p["b.weight"].reason
    assert "measured on the example input" in p["b.weight"].reason
    p.apply(m, seed=0)
    assert 0.8 < _rms(m) < 1.25


@pytest.mark.parametrize("how", ["module", "function"])
def test_bilinear_upsampling_is_measured_with_an_example_and_said_without(how):
    # taken as the identity before, unsaid: the layer after it at rms 0.585
    _measured_with_an_example_and_said_without(
        lambda: _Up(how), "bilinear interpolation .* assumed to leave", "bilinear"
    )


class _Area(nn.Module):
    """A conv, ReLU, area-mode interpolation, conv: ``how`` is ``size`` (a shrink to 8×8),
    ``scale`` (a factor ½), ``module`` (``nn.Upsample(scale_factor=0.5, mode="area")``) or
    ``grow`` (a factor 2: area mode copies values)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.how = how
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.up = nn.Upsample(scale_factor=0.5, mode="area")
        self.b = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if self.how == "size":
            h = F.interpolate(h, size=(8, 8), mode="area")
        elif self.how == "scale":
            h = F.interpolate(h, scale_factor=0.5, mode="area")
        elif self.how == "grow":
            h = F.interpolate(h, scale_factor=2, mode="area")
        else:
            h = self.up(h)
        return self.b(h)


@pytest.mark.parametrize("how", ["size", "scale", "module"])
def test_area_interpolation_that_shrinks_is_an_average_pool(how):
    # a shape op before, unsaid: the layer after it solved for the E[x²] before it, and the
    # model's output at rms ~0.63 with an example input
    _measured_with_an_example_and_said_without(
        lambda: _Area(how), "area interpolation|average pool", "area"
    )


@pytest.mark.parametrize("what", ["nearest", "area grow"])
def test_interpolation_that_copies_values_passes_the_moments_unsaid(what):
    # nearest upsampling, and area mode where it grows a map, copy values
    model = _Up("nearest") if what == "nearest" else _Area("grow")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(model, "auto")
    assert "interpolation" not in p["b.weight"].reason
