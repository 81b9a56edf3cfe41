"""Issue 12: a chain's operating point checked against its finite width
(``initwise.math.operating.chain_drift``/``at_width``) — what the mean-field map, the chain's
infinite-width limit, misses."""

import math
import re
import warnings

import numpy as np
import pytest

from initwise.math.operating import (
    OFF_SAID,
    WIDTH_TOLERANCE,
    chain_drift,
    operating_point,
)

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


def _ssp(x: np.ndarray) -> np.ndarray:
    """Shifted softplus, softplus(x) − log 2 (SchNet's activation), in NumPy."""
    return np.logaddexp(0.0, x) - math.log(2.0)


class Chain(nn.Module):
    """``depth`` Linear layers of ``width``, ``act`` (a function in ``forward``) after each, and a
    Linear read-out."""

    def __init__(self, act, depth: int, width: int) -> None:
        super().__init__()
        self.act = act
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.act(layer(x))
        return self.out(x)


def _out_rms(model: nn.Module, plan, width: int, seeds=(0, 1, 2)) -> list[float]:
    x = torch.randn(512, width, generator=torch.Generator().manual_seed(1))
    out = []
    for s in seeds:
        plan.apply(model, seed=s)
        with torch.no_grad():
            out.append(float(model(x).double().pow(2).mean().sqrt()))
    return out


def _shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) - math.log(2.0)


def test_chain_drift_is_deterministic_and_leaves_global_rng_alone():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    torch_before = torch.random.get_rng_state().clone()
    a = chain_drift(_ssp, 0.9, False, 12, 64)
    b = chain_drift(_ssp, 0.9, False, 12, 64)
    assert a == b
    assert np.array_equal(np.random.get_state()[1], before)
    assert torch.equal(torch.random.get_rng_state(), torch_before)


def test_the_mean_field_point_of_shifted_softplus_drifts_at_a_finite_width():
    """Chosen without a width (mean field: forward drift e^1.2 allowed), softplus(x) − log 2 at
    depth 30 grows E[x²] by ×10³ at width 128 — the simulation sees what the map does not."""
    op = operating_point(_ssp, depth=30)
    drift, scatter, off = chain_drift(_ssp, op.q, op.centered, 30, 128)
    assert drift > 3.0 and scatter >= abs(drift) and off == 1.0
    moved = operating_point(_ssp, depth=30, width=128, ends=True)
    assert moved.width == 128 and moved.q != op.q
    assert abs(moved.forward) <= WIDTH_TOLERANCE
    assert "at width 128" in moved.rule and "drifts ×" in moved.rule


def test_a_point_that_holds_at_its_width_stands():
    """GELU at depth 30, width 256: the zoo's row; the mean-field point holds there."""
    plain = operating_point("gelu", depth=30)
    checked = operating_point("gelu", depth=30, width=256, ends=True)
    assert (checked.q, checked.centered) == (plain.q, plain.centered)
    assert checked.width == 256 and abs(checked.forward) <= WIDTH_TOLERANCE + checked.scatter
    assert "simulated at width 256" in checked.describe()
    wider = operating_point("gelu", depth=30, width=4096, ends=True)
    assert wider.width == 256  # (simulated at 256 — it drifts at least as much there)
    short = operating_point("gelu", depth=5, width=64)
    assert short.width == 0  # (chains shorter than six keep the mean-field point)


def test_width_is_checked_by_name():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="width"):
            operating_point("gelu", depth=30, width=bad)


def test_shifted_softplus_chain_holds_its_signal():
    """Measured before the check: output rms 32–58 over three draws (E[x²] ×10³), nothing said.
    After: within ½–2 for every draw, and nothing to say. Since 2026-12-05 the probed function
    (softplus − log 2, a table) gets the centered edge of chaos, as softplus does (10 of 10
    draws in band, 0.82–1.68; the width-checked grid point before it 0.97–1.80)."""
    torch.manual_seed(0)
    model = Chain(_shifted_softplus, depth=30, width=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        plan = it.plan(model)
    reason = next(e.reason for e in plan if e.name == "layers.3.weight")
    assert "edge of chaos" in reason and "centered" in reason
    assert all(0.5 <= r <= 2.0 for r in _out_rms(model, plan, 128))


def test_softplus_chain_at_depth_50_holds_its_signal_and_logsigmoid_is_said():
    """Registered and probed activations with a mean. Before: softplus ×50 at width 128 gave
    output rms 2.9–17 over ten draws, logsigmoid 2.2–22, nothing said. Now softplus holds (ten
    of ten draws in band); logsigmoid's best point keeps half of them in band, and is said."""
    torch.manual_seed(0)
    model = Chain(F.softplus, depth=50, width=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        plan = it.plan(model)
    assert all(0.5 <= r <= 2.0 for r in _out_rms(model, plan, 128))
    torch.manual_seed(0)
    with pytest.warns(it.SignalWarning, match=r"log_sigmoid over 50 layers at width 128"):
        it.plan(Chain(F.logsigmoid, depth=50, width=128))


def test_a_chain_whose_scale_scatters_between_draws_is_said():
    """GELU at depth 30, width 64: one draw 0.06, another 0.29 (no q narrows it); said with the
    share of draws off, and LSUV as the remedy for a draw. A chain of 10 holds: nothing said."""
    torch.manual_seed(0)
    with pytest.warns(it.SignalWarning, match=r"at width 64: one draw's scale scatters") as rec:
        it.plan(Chain(F.gelu, depth=30, width=64))
    text = " ".join(str(w.message) for w in rec)
    assert "LSUV" in text and "Hanin & Nica" in text
    m = re.search(r"([0-9]+)% of the draws put E\[x²\] after the chain off by more than ×4", text)
    assert m is not None and int(m.group(1)) >= 100 * OFF_SAID
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        it.plan(Chain(F.gelu, depth=10, width=256))


def test_the_share_said_is_the_share_measured():
    """GELU ×30 at width 256 (the zoo's row): the simulation says about a quarter to a third of
    the draws are off; 24 seeds of the planned network measured 8 off (output rms outside ½–2)
    on 2026-12-03. Here: the said share and the measured share over 12 seeds agree within
    the spread of so few draws."""
    torch.manual_seed(0)
    model = Chain(F.gelu, depth=30, width=256)
    with pytest.warns(it.SignalWarning, match=r"at width 256: one draw's scale scatters") as rec:
        plan = it.plan(model)
    text = " ".join(str(w.message) for w in rec)
    said = int(re.search(r"([0-9]+)% of the draws", text).group(1)) / 100
    rms = np.array(_out_rms(model, plan, 256, seeds=range(12)))
    measured = float(((rms < 0.5) | (rms > 2.0)).mean())
    assert 0.25 <= said <= 0.5 and 0.05 <= measured <= 0.6


def test_a_plan_again_does_not_simulate_again(monkeypatch):
    """The simulation runs once per activation, depth and width in a process (named
    activations by name, probed ones by their values): planning the same model again, or a
    second model with the same chain, costs no simulation."""
    import initwise.math.operating as operating

    calls = []
    real = operating.chain_drifts

    def counting(*args, **kwargs):
        calls.append(args[2:4])
        return real(*args, **kwargs)

    monkeypatch.setattr(operating, "chain_drifts", counting)
    for act in (F.silu, _shifted_softplus):
        for _ in range(2):
            torch.manual_seed(0)
            it.plan(Chain(act, depth=12, width=48))
    assert len(calls) >= 2  # (each chain simulated once, at its depth and width)
    first = list(calls)
    for act in (F.silu, _shifted_softplus):
        torch.manual_seed(1)
        it.plan(Chain(act, depth=12, width=48))
    assert calls == first


def test_a_relu_chain_keeps_he_and_its_scatter_is_said():
    """He's point is scale-free and is not moved; a deep narrow ReLU chain still scatters between
    draws (24 seeds of the planned network at width 64 ×30: 0.46 of them off by ×2 in rms), which
    is said; at width 256 (the zoo's row: 0.04 off) nothing is."""

    def relu_mlp(depth: int, width: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(width, width))

    torch.manual_seed(0)
    with pytest.warns(it.SignalWarning, match=r"relu over 29 layers at width 64: one draw's"):
        plan = it.plan(relu_mlp(30, 64))
    assert "q* 2 (positively homogeneous" in plan["2.weight"].reason
    assert "simulated at width 64" in plan["2.weight"].reason
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        it.plan(relu_mlp(30, 256))


class ConvChain(nn.Module):
    """``depth`` 3×3 convolutions of ``channels`` (circular padding), ``act`` after each, and a
    1×1 read-out."""

    def __init__(
        self, act, depth: int, channels: int, groups: int = 1, padding: str = "circular"
    ) -> None:
        super().__init__()
        self.act = act
        self.layers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, groups=groups)
            for _ in range(depth)
        )
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.act(layer(x))
        return self.out(x)


def test_conv_taps_are_checked_and_taps_one_is_the_matrix_chain():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="taps"):
            operating_point("gelu", depth=30, width=16, taps=bad)
    from initwise.math.operating import chain_drifts

    point = [(1.3, False, 1.3)]
    assert chain_drifts(_ssp, point, 12, 32, draws=3) == chain_drifts(
        _ssp, point, 12, 32, draws=3, taps=1
    )
    assert chain_drifts(_ssp, point, 12, 32, draws=3, taps=9) != chain_drifts(
        _ssp, point, 12, 32, draws=3
    )


def test_square_kernels_are_simulated_on_a_torus():
    """A 3×3 kernel on the ring of 16 positions covered 9 of them: the rows were few independent
    samples and the scatter came out too large — softplus ×50 at 32 channels (16 of 16 planned
    draws in band) was said with 38% of the simulated draws off. On an 8×8 torus (2 examples,
    the same 128 rows) it covers 9 of 64: none off, nothing said. 1-D kernels keep the ring."""
    from initwise.math.operating import chain_drifts

    soft = lambda x: np.logaddexp(0.0, x)  # noqa: E731
    point = [(0.356, True, 0.356)]
    ring = chain_drifts(soft, point, 50, 32, draws=16, taps=9)[0]
    torus = chain_drifts(soft, point, 50, 32, draws=16, taps=9, dims=2)[0]
    assert ring[2] >= OFF_SAID and torus[2] == 0.0
    assert chain_drifts(soft, point, 12, 32, draws=3, taps=3, dims=2) == chain_drifts(
        soft, point, 12, 32, draws=3, taps=3
    )  # (3 taps: not a square kernel, the ring)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        plan = it.plan(ConvChain(F.softplus, depth=50, channels=32))
    assert "simulated at 32 channels × 3×3 taps" in plan["layers.3.weight"].reason
    with pytest.raises(ValueError, match="dims"):
        operating_point("gelu", depth=30, width=16, taps=9, dims=4)


def test_a_conv_chain_whose_scale_scatters_is_said():
    """Before, a convolution chain kept its mean-field point unchecked: GELU ×20 with 16
    channels of 3×3 gave output rms 0.005–0.6 over six draws (median 0.06) and nothing was said.
    Its channels are its width: it is now simulated as a chain of convolutions (16 channels ×
    3×3 taps, on a torus), and its scatter is said with the share of draws off; that share
    tracks the planned network's over 12 seeds."""
    torch.manual_seed(0)
    model = ConvChain(F.gelu, depth=20, channels=16)
    with pytest.warns(it.SignalWarning, match=r"gelu over 20 layers at 16 channels") as rec:
        plan = it.plan(model)
    text = " ".join(str(w.message) for w in rec)
    assert "simulated at 16 channels × 3×3 taps" in text
    said = int(re.search(r"([0-9]+)% of the draws", text).group(1)) / 100
    x = torch.randn(4, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    rms = []
    for s in range(12):
        plan.apply(model, seed=s)
        with torch.no_grad():
            rms.append(float(model(x).double().pow(2).mean().sqrt()))
    measured = float(((np.array(rms) < 0.5) | (np.array(rms) > 2.0)).mean())
    assert said >= OFF_SAID and measured >= OFF_SAID
    reason = next(e.reason for e in plan if e.name == "layers.3.weight")
    assert "16 channels × 3×3 taps" in reason


def test_conv_chains_that_hold_say_nothing_and_grouped_ones_are_not_simulated():
    """A softplus chain of convolutions ×20 at 32 channels holds (16 of 16 draws of the planned
    network in band, measured) and nothing is said — at the centered edge of chaos since
    2026-12-05 (its grid point, simulated at 32 channels, had the same 16 of 16 with first/last
    gradients ×4.0 median, 0 of 16 within ½–2; now ×1.8, 11 of 16); a ReLU one keeps He's
    point and says nothing at 128 channels (simulated at 85: the cost of a 256-wide matrix
    chain; measured 1 of 16 draws off) but is said at 32 (measured 5 of 16 draws off, output
    rms 0.10–2.2). Grouped convolutions keep the mean-field point (no simulation in their
    reason)."""
    for act, channels, at in (
        (F.softplus, 32, None),
        (F.relu, 128, "85 channels × 3×3"),
    ):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", it.SignalWarning)
            plan = it.plan(ConvChain(act, depth=20, channels=channels))
        reason = next(e.reason for e in plan if e.name == "layers.3.weight")
        assert f"simulated at {at} taps" in reason if at else "edge of chaos" in reason
    torch.manual_seed(0)
    with pytest.warns(it.SignalWarning, match=r"relu over 20 layers at 32 channels: one draw"):
        it.plan(ConvChain(F.relu, depth=20, channels=32))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = it.plan(ConvChain(F.gelu, depth=20, channels=32, groups=4))
    reason = next(e.reason for e in plan if e.name == "layers.3.weight")
    assert "simulated" not in reason


def test_conv_weights_are_centered_per_tap_so_zero_padding_leaks_no_mean():
    """softplus's point centers the weights (its output's mean is large). Centered over the
    whole fan-in, a convolution cancels the mean only where every tap reads the map; at a
    zero-padded map's edges the missing taps' share leaked in and the chain amplified it: ×50 of
    3×3 convolutions at 32 channels on 16×16 gave output rms 8.6–21.8 over six draws (none in
    band). Centered per output channel and tap: 0.67–1.01. Each tap's weights sum to zero; a
    1×1 convolution and a matrix keep centering over their fan-in."""
    torch.manual_seed(0)
    model = ConvChain(F.softplus, depth=50, channels=32, padding="zeros")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", it.SignalWarning)
        plan = it.plan(model)
    entry = next(e for e in plan if e.name == "layers.3.weight")
    assert entry.center_dims == (1,) and "kernel tap" in entry.reason
    assert next(e for e in plan if e.name == "out.weight").center_dims in ((), (1, 2, 3))
    x = torch.randn(4, 32, 16, 16, generator=torch.Generator().manual_seed(1))
    rms = []
    for s in range(3):
        plan.apply(model, seed=s)
        w = model.layers[3].weight.detach().double()
        assert float(w.sum(dim=1).abs().max()) < 1e-5  # every tap's weights sum to zero
        with torch.no_grad():
            rms.append(float(model(x).double().pow(2).mean().sqrt()))
    assert all(0.5 <= r <= 2.0 for r in rms), rms


def test_a_conv_chain_that_amplifies_each_examples_scale_is_said_at_its_fan_in():
    """``relu(x)²`` (κ = 2) over 4 convolutions of 3×3 at 32 channels: 3 of 8 draws of the
    planned network in band (median 2.28), and nothing was said — the check of
    ``κ^{2L} ≥ width/4`` knew matrices only. A convolution's fan-in (channels × taps) is its
    width there: said at 32 channels; at 3 layers (8 of 8 in band) and at 128 channels (8 of 8)
    nothing is."""

    def squared(h: torch.Tensor) -> torch.Tensor:
        return F.relu(h) ** 2

    torch.manual_seed(0)
    with pytest.warns(it.SignalWarning, match=r"at fan-in 288 \(32 channels × 9 taps\)"):
        it.plan(ConvChain(squared, depth=4, channels=32))
    for depth, channels in ((3, 32), (4, 128)):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", it.SignalWarning)
            it.plan(ConvChain(squared, depth=depth, channels=channels))


def _held_and_balanced(model: nn.Module, plan, seeds) -> None:
    """Each seed's draw: output rms and first/last weight-gradient ratio within ½–2 on a unit
    batch, and ``diagnose`` healthy."""
    from initwise.diagnostics import diagnose

    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(3))
    for seed in seeds:
        plan.apply(model, seed=seed)
        model.zero_grad()
        y = model(x)
        (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))).sum().backward()
        rms = float(y.detach().pow(2).mean().sqrt())
        ratio = float(model.layers[0].weight.grad.norm() / model.out.weight.grad.norm())
        assert 0.5 < rms < 2 and 0.5 < ratio < 2, (seed, rms, ratio)
        assert diagnose(model, x).verdict == "healthy"


def test_softplus_at_depth_30_runs_at_the_centered_edge_of_chaos():
    """softplus ×30 (a mean of 0.81 at unit pre-activation, so no plain edge of chaos): its best
    grid point left the chain drifting (χ 1.08) — output rms 1.34–1.97 over ten draws at width
    256, first/last weight gradients ×4.4–6.5, `diagnose` "exploding" on every draw, and on
    MNIST-1D (width 64, SGD momentum 0.9, 600 steps) 2 of 3 seeds diverged at lr 0.01. With
    weights centered and a bias variance, χ = 1 and the q-map contracts (slope 0.98): output
    rms 0.93–1.14, gradients within ½–2 on ten of ten draws, healthy, and 0.464 ± 0.007 test
    accuracy on MNIST-1D with no seed diverging. At depth 50 the curvature budget would pull
    q to 0.57, where it measured worse: the grid point stays (the test above)."""
    torch.manual_seed(0)
    model = Chain(F.softplus, depth=30, width=256)
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.SignalWarning)
        plan = it.plan(model)
    e = plan["layers.5.weight"]
    assert "edge of chaos" in e.reason and "centered" in e.reason
    assert plan["layers.5.bias"].std == pytest.approx(math.sqrt(0.0745), rel=0.02)
    _held_and_balanced(model, plan, (0, 1, 2))


def test_a_probed_activation_with_a_mean_gets_the_centered_edge_of_chaos():
    """LogSigmoid (probed: an interpolated table) ×30 at width 256 kept its grid point — its
    table's second derivative, taken at steps of 10⁻⁴, was spikes over budget — and drifted:
    output rms 1.26–2.07, first/last gradients ×3.5–9, `diagnose` "exploding", nothing said.
    Its curvature is taken at `operating.PROBED_STEP` now: the centered edge of chaos, as for
    softplus. A kinked probed function (relu(x)², Softshrink) still gets none."""
    torch.manual_seed(0)
    model = Chain(F.logsigmoid, depth=30, width=256)
    plan = it.plan(model)
    assert "edge of chaos" in plan["layers.5.weight"].reason
    _held_and_balanced(model, plan, (0, 1))
    shrink = it.plan(Chain(F.softshrink, depth=30, width=256))
    assert "edge of chaos" not in shrink["layers.5.weight"].reason
