"""A layer whose forward multiplies its weight by a fixed 0/1 mask keeps a different number of
inputs in each row (MADE: 1 to D − 1). With one std per layer the units with few inputs start
near zero and the units reading them fade further each layer; each row is drawn at
``√(mean kept fan / its own)`` of the layer's std now (``ParamPlan.row_scales``)."""

from __future__ import annotations

import json
import statistics
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.plan import ParamPlan, Plan  # noqa: E402


class MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.mask * self.weight, self.bias)


class MADE(nn.Module):
    """Germain et al. 2015: masks from random degrees, so that output d sees inputs < d."""

    def __init__(self, d: int = 32, h: int = 256, layers: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        deg = [torch.arange(d)]
        for _ in range(layers):
            deg.append(torch.randint(int(deg[-1].min()), d - 1, (h,), generator=g))
        masks = [(deg[k + 1][:, None] >= deg[k][None, :]).float() for k in range(layers)]
        masks.append((torch.arange(d)[:, None] > deg[-1][None, :]).float())
        dims = [d] + [h] * layers + [d]
        self.layers = nn.ModuleList(
            MaskedLinear(dims[k], dims[k + 1], masks[k]) for k in range(layers + 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


def test_made_holds_its_signal() -> None:
    # before: output rms 0.076 at 6 layers (0.40 at 3), fading layer by layer
    x = torch.randn(1024, 32, generator=torch.Generator().manual_seed(3))
    outs = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = MADE()
        it.init_model(m, seed=seed)
        with torch.no_grad():
            outs.append(float(m(x).pow(2).mean().sqrt()))
    assert 0.7 <= statistics.median(outs) <= 1.5, outs


def test_rows_are_drawn_by_their_kept_fan() -> None:
    torch.manual_seed(0)
    m = MADE(layers=2)
    plan = it.plan(m)
    e = plan["layers.0.weight"]
    kept = m.layers[0].mask.sum(1)
    assert len(e.row_scales) == 256
    mean = float(kept[kept > 0].mean())
    for j in (0, 7, 100):
        assert e.row_scales[j] == pytest.approx((mean / float(kept[j])) ** 0.5)
    assert "rows keep" in e.reason and "rows by kept fan" in e.describe()
    for engine in ("stream", "torch"):
        plan.apply(m, seed=0, engine=engine)
        w = m.layers[0].weight.detach()
        # each row's variance times its kept fan is the same (the layer's std² · mean fan)
        few, many = kept.argsort()[:64], kept.argsort()[-64:]
        v_few = float((w[few].pow(2).mean(1) * kept[few]).mean())
        v_many = float((w[many].pow(2).mean(1) * kept[many]).mean())
        assert v_few == pytest.approx(v_many, rel=0.25)


def test_a_mask_that_keeps_the_same_taps_in_every_row_has_no_row_scales() -> None:
    class MaskedConv(nn.Conv2d):
        def __init__(self) -> None:
            super().__init__(16, 16, 3, padding=1)
            mask = torch.ones_like(self.weight)
            mask[:, :, 1, 2:] = 0
            mask[:, :, 2:] = 0
            self.register_buffer("mask", mask)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight * self.mask, self.bias, padding=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = it.plan(nn.Sequential(MaskedConv(), nn.ReLU(), nn.Conv2d(16, 4, 1)))
    assert plan["0.weight"].row_scales == ()


def test_row_scales_round_trip_and_are_checked() -> None:
    torch.manual_seed(0)
    plan = it.plan(MADE(layers=1))
    again = Plan.from_json(plan.to_json())
    assert again["layers.0.weight"].row_scales == plan["layers.0.weight"].row_scales
    d = json.loads(plan.to_json())
    entry = next(e for e in d["entries"] if e["name"] == "layers.0.weight")
    for bad, what in (([1.0] * 3, "one factor per row"), ([0.0] * 256, "finite numbers > 0")):
        with pytest.raises(ValueError, match=what):
            ParamPlan.from_dict({**entry, "row_scales": bad})


def test_an_override_draws_as_given() -> None:
    torch.manual_seed(0)
    plan = it.plan(MADE(layers=1), overrides={"layers.0.weight": "he_normal"})
    assert plan["layers.0.weight"].row_scales == ()
