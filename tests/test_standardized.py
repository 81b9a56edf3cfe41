"""Convolutions that standardize their weight in the forward (timm's ``StdConv2d`` for BiT,
``ScaledStdConv2d`` for NFNets): the draw's scale cancels and only the input's variance
passes, ``E[y²] = E[gain²]·γ²·Var[x]``. Before, ``auto`` propagated them as ordinary
convolutions reaching their solved ``q``, and an NF-ResNet's head was solved for an input ~100×
too large (timm nf_resnet50 with an example input: logits 0.17 → 1.03)."""

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


class ScaledStdConv2d(nn.Conv2d):
    """timm.layers.ScaledStdConv2d as timm 1.0 writes it (named so, as the planner keys on it)."""

    def __init__(self, cin, cout, k, gamma=1.0, gain_init=1.0, eps=1e-6):
        super().__init__(cin, cout, k, padding=k // 2)
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps
        self.gain = nn.Parameter(torch.full((cout, 1, 1, 1), gain_init))

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


class StdConv2d(nn.Conv2d):
    def forward(self, x):
        w = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, eps=1e-6
        ).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def _net(gamma=3.0, last_gain=1.0):  # 1×1: no zero padding to break the mean's cancellation
    return nn.Sequential(
        ScaledStdConv2d(3, 16, 1, gamma=gamma),
        nn.ReLU(),
        ScaledStdConv2d(16, 16, 1, gamma=gamma),
        nn.ReLU(),
        ScaledStdConv2d(16, 16, 1, gamma=gamma, gain_init=last_gain),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


def test_the_standardized_gain_of_each_kind():
    from initwise.torch.modules import standardized_gain

    c = ScaledStdConv2d(8, 4, 3, gamma=1.7)
    assert standardized_gain(c) == pytest.approx(1.7**2)
    with torch.no_grad():
        c.gain.fill_(0.5)
    assert standardized_gain(c) == pytest.approx(0.25 * 1.7**2)
    assert standardized_gain(StdConv2d(8, 4, 3)) == 72.0  # fan_in
    assert standardized_gain(nn.Conv2d(8, 4, 3)) is None


def test_the_head_is_solved_for_what_standardized_convs_give():
    torch.manual_seed(0)
    m = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing assumed
        p = it.plan(m, strict=True)
    assert "standardized in the forward" in p["0.weight"].reason
    it.init_model(m, seed=0)
    x = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = m[:6](x)
        out = m(x)
    # E[y²] = γ²·Var[x] through each conv: the head's input as predicted (42.3: 9·Var[x] three
    # times with ReLUs between), its output at unit scale
    assert "input E[x²] 42.3," in p["7.weight"].reason
    assert float(h.pow(2).mean()) == pytest.approx(42.3, rel=0.1)
    assert 0.8 < float(out.pow(2).mean().sqrt()) < 1.25
    # the draw's scale cancels: twice the planned weights, the same output
    with torch.no_grad():
        for layer in (m[0], m[2], m[4]):
            layer.weight.mul_(2.0)
        assert torch.allclose(m(x), out, rtol=1e-3, atol=1e-3)  # (eps aside)


def test_a_zero_gain_upstream_is_no_division_by_zero():
    """NFNets zero the gain of each branch's last conv: what it feeds sees a zero input (the
    squeeze-excite's first Linear) and is drawn as for a unit input, said in its reason."""
    torch.manual_seed(0)
    m = nn.Sequential(
        ScaledStdConv2d(3, 8, 3, gain_init=0.0),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    p = it.plan(m)
    w = p["4.weight"]
    assert "input is 0 at init" in w.reason and math.isfinite(w.std) and w.std > 0


class WSConv2d(nn.Conv2d):
    """The NFNet paper's hand-written weight standardization (Brock et al. 2021), named as
    nothing the planner knows: ``(w − μ)·rsqrt(σ²·fan_in + ε)·gain`` in the forward."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))

    def forward(self, x):
        w = self.weight
        mean = w.mean((1, 2, 3), keepdim=True)
        var = w.var((1, 2, 3), keepdim=True)
        w = (w - mean) * torch.rsqrt(var * w[0].numel() + 1e-4) * self.gain
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class ScaledConv(nn.Conv2d):
    """A forward that scales its weight by a constant: not standardized (its scale passes)."""

    def forward(self, x):
        return F.conv2d(x, self.weight * 2.0, self.bias, self.stride, self.padding)


def _ws_net():
    return nn.Sequential(
        WSConv2d(3, 16, 1),
        nn.ReLU(),
        WSConv2d(16, 16, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


def test_weight_standardization_written_by_hand_is_found_by_probing():
    """Before: only class names with "StdConv" were known — a hand-written ``WSConv2d`` was
    propagated as an ordinary conv at its solved ``q`` (the NFNet of sweep 14: 0.55 of unit
    output with its example input), its ``gain`` was "no rule" (an assumption), and LSUV
    multiplied its weights by ~500 over ten iterations, changing nothing."""
    from initwise.torch.modules import standardized_gain

    c = WSConv2d(8, 4, 3, padding=1)
    unit = 71 / 72  # rows of unit norm, with the unbiased variance's (n − 1)/n (ε aside)
    assert standardized_gain(c) == pytest.approx(unit, rel=1e-3)
    with torch.no_grad():
        c.gain.fill_(0.5)
    assert standardized_gain(c) == pytest.approx(0.25 * unit, rel=1e-3)  # read again
    assert standardized_gain(ScaledConv(8, 4, 3)) is None
    torch.manual_seed(0)
    m = _ws_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing assumed: the gains are kept as built
        p = it.plan(m, strict=True)
    assert "standardized in the forward" in p["0.weight"].reason
    assert p["0.gain"].std is None and "standardized weight" in p["0.gain"].reason
    it.init_model(m, seed=0)
    x = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(x)
    assert 0.8 < float(out.pow(2).mean().sqrt()) < 1.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (it said "measured no output of this weight's own")
        res = it.lsuv(m, x, seed=0)
    for layer in res.layers[:2]:
        assert "standardizes its weight" in layer.name and layer.iterations == 0
    assert float(m[2].weight.detach().abs().max()) <= 1.0 + 1e-6  # orthonormal, not ×500
    assert "not rescaled — its forward standardizes" in res.plan["2.weight"].reason
