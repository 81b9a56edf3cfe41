"""Mean-field theory against closed forms and Monte Carlo on random deep MLPs."""

import math

import numpy as np
import pytest

from initwise.math.gains import (
    KINKS,
    activation_fn,
    expectation_at,
    gaussian_expectation,
    gaussian_expectations,
    kinks_of,
)
from initwise.math.meanfield import (
    ChainLayer,
    chi,
    chis,
    correlation_map,
    depth_scales,
    fixed_point,
    propagate,
    variance_map,
)


def test_relu_closed_forms():
    # He: q -> q, chi = 1; Xavier: q -> q/2
    assert variance_map(3.0, 2.0, 0.0, "relu") == pytest.approx(3.0, rel=1e-12)
    assert variance_map(3.0, 1.0, 0.0, "relu") == pytest.approx(1.5, rel=1e-12)
    assert chi(1.0, 2.0, "relu") == pytest.approx(1.0, abs=1e-9)
    qs, gs = propagate([ChainLayer(1.0, 0.0, "relu")] * 6, 1.0)
    assert qs == pytest.approx([2.0**-k for k in range(6)], rel=1e-9)
    assert gs == pytest.approx([2.0 ** -(5 - k) for k in range(6)], rel=1e-6)
    assert propagate([ChainLayer(1.0, 0.0, "relu")] * 6, 1.0, gradients=False) == (qs, [])


def test_tanh_edge_of_chaos_matches_schoenholz():
    # Schoenholz et al. 2016: for sigma_b^2 = 0.05 the critical sigma_w^2 is about 1.76
    ordered, critical, chaotic = (depth_scales(w, 0.05, "tanh") for w in (1.3, 1.76, 2.5))
    assert ordered.phase == "ordered" and chaotic.phase == "chaotic"
    assert critical.chi == pytest.approx(1.0, abs=2e-3)
    assert critical.xi_c > 10 * max(ordered.xi_c, chaotic.xi_c)
    assert ordered.trainable_depth == pytest.approx(6 * ordered.xi_c)


def test_correlation_map_fixed_point_at_one_in_ordered_phase():
    q = fixed_point(1.2, 0.05, "tanh")
    c = 0.3
    for _ in range(200):
        c = correlation_map(c, q, 1.2, 0.05, "tanh")
    assert c == pytest.approx(1.0, abs=1e-4)
    assert correlation_map(1.0, q, 1.2, 0.05, "tanh") == pytest.approx(1.0, abs=1e-9)


def _mc_mlp(act, sigma_w2, sigma_b2, depth=8, width=1000, n=200, seed=0):
    rng = np.random.default_rng(seed)
    f = activation_fn(act)
    x = rng.standard_normal((n, width))
    qs = []
    h = x
    for _ in range(depth):
        w = rng.normal(0, math.sqrt(sigma_w2 / width), (width, width))
        b = rng.normal(0, math.sqrt(sigma_b2), width)
        h = h @ w + b
        qs.append(float(np.mean(h**2)))
        h = f(h)
    return qs


@pytest.mark.parametrize(
    ("act", "sw2", "sb2"),
    [
        ("relu", 2.0, 0.0),
        ("relu", 1.0, 0.1),
        ("tanh", 1.5, 0.05),
        ("tanh", 3.0, 0.05),
        ("gelu", 2.5, 0.0),
        ("gelu", 1.0, 0.1),
    ],
)
def test_variance_map_against_monte_carlo(act, sw2, sb2):
    # 8 random networks of width 1000: finite width makes q a multiplicative random walk, so the
    # prediction must lie within 4 standard errors of the mean over networks (+1% for O(1/width)
    # corrections); a 10% error in sigma_w^2 must be rejected by the same check.
    depth, seeds = 6, 8
    runs = np.array([_mc_mlp(act, sw2, sb2, depth, 1000, 256, seed=s) for s in range(seeds)])
    mean, sem = runs.mean(0), runs.std(0, ddof=1) / math.sqrt(seeds)

    def consistent(pred):
        return bool(np.all(np.abs(mean - pred) <= 4 * sem + 0.01 * np.abs(pred)))

    pred, _ = propagate([ChainLayer(sw2, sb2, act)] * depth, 1.0)
    assert consistent(np.array(pred))
    wrong, _ = propagate([ChainLayer(1.1 * sw2, sb2, act)] * depth, 1.0)
    assert not consistent(np.array(wrong))


def test_gradient_growth_is_chi_per_layer_monte_carlo():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    width, depth, sw2 = 800, 6, 1.5
    x = torch.randn(300, width, generator=gen, requires_grad=True)
    ws = [torch.randn(width, width, generator=gen) * math.sqrt(sw2 / width) for _ in range(depth)]
    hs = []
    h = x
    for w in ws:
        pre = h @ w
        pre.retain_grad()
        hs.append(pre)
        h = torch.tanh(pre)
    (h * torch.randn(h.shape, generator=gen)).sum().backward()
    measured = [float(p.grad.pow(2).mean()) for p in hs]
    qs = [float(p.detach().pow(2).mean()) for p in hs]
    for i in range(depth - 1):
        predicted = measured[i + 1] * chi(qs[i], sw2, "tanh")
        assert measured[i] == pytest.approx(predicted, rel=0.1)


def test_divergent_map_raises():
    with pytest.raises(ValueError, match="diverges"):
        fixed_point(3.0, 0.0, "relu")
    with pytest.raises(ValueError, match="correlation c"):
        correlation_map(1.5, 1.0, 1.0, 0.0, "tanh")


_MANY = ["tanh", "relu", "gelu", "silu", "hardtanh", "elu", "sigmoid", "softplus", "hardswish"]


@pytest.mark.parametrize("act", _MANY)
def test_many_q_at_once_equals_one_at_a_time(act):
    qs = np.array([1e-3, 0.05, 0.3, 1.0, 1.7, 2.9, 10.0, 100.0])
    f = activation_fn(act)
    one = np.array([gaussian_expectation(lambda x: f(x) ** 2, q) for q in qs])
    for panel, kinks in ((0.25, KINKS), (1.0, kinks_of(act))):
        many = gaussian_expectations(lambda x: f(x) ** 2, qs, panel=panel, kinks=kinks)
        np.testing.assert_allclose(many, one, rtol=1e-12)
    np.testing.assert_allclose(
        chis(qs, 1.5, act, panel=1.0), [chi(q, 1.5, act) for q in qs], rtol=1e-9
    )
    layers = [ChainLayer(1.2, 0.01, act), ChainLayer(0.9, 0.0, act), ChainLayer(1.1, 0.0, act)]
    a, b = propagate(layers, 0.8), propagate(layers, 0.8, panel=1.0)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9)


@pytest.mark.parametrize("act", _MANY)
def test_one_q_fast_path_gives_the_same_bits(act):
    # propagate walks a chain one layer at a time through expectation_at: the same nodes and
    # summation as gaussian_expectations with one q, so the same value to the last bit
    f = activation_fn(act)

    def f2(x):
        return f(x) ** 2

    for q in (1e-300, 1e-3, 0.05, 0.3, 1.0, 1.7, 2.9, 10.0, 100.0, 1e4):
        for panel, kinks in ((1.0, kinks_of(act)), (0.25, KINKS), (1.0, ()), (0.5, (0.0,))):
            want = float(gaussian_expectations(f2, [q], panel=panel, kinks=kinks)[0])
            assert expectation_at(f2, q, panel, tuple(kinks)) == want, (q, panel, kinks)
    with pytest.raises(ValueError, match="every q must be finite and > 0"):
        expectation_at(f2, float("nan"), 1.0, ())
    with pytest.raises(ValueError, match="every q must be finite and > 0"):
        expectation_at(f2, 0.0, 1.0, ())
    with pytest.raises(ValueError, match="panel must be > 0"):
        propagate([ChainLayer(1.0, 0.0, act)], 1.0, gradients=False, panel=0.0)


def test_kinks_from_the_registry_and_errors():
    assert (
        kinks_of("relu") == (0.0,)
        and kinks_of("tanh") == ()
        and kinks_of("hardtanh")
        == (
            -1.0,
            1.0,
        )
    )
    assert kinks_of(np.tanh) == KINKS  # a callable's kinks are unknown: every known one
    assert gaussian_expectations(np.square, []).shape == (0,)
    with pytest.raises(ValueError, match="every q must be finite and > 0"):
        gaussian_expectations(np.square, [1.0, 0.0])
    with pytest.raises(ValueError, match="every q must be finite and > 0"):
        gaussian_expectations(np.square, [np.nan])
    with pytest.raises(ValueError, match="panel must be > 0"):
        gaussian_expectations(np.square, [1.0], panel=0)
    with pytest.raises(ValueError, match="applied elementwise"):
        gaussian_expectations(lambda x: x[:3], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        gaussian_expectations(lambda x: np.exp(1e3 * x), [1.0])
