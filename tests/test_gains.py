import math

import numpy as np
import pytest
from scipy import integrate, stats

from initwise.activations import REGISTRY
from initwise.math import KNOWN_ACTIVATIONS, calculate_gain, gain, second_moment
from initwise.math.gains import _nodes, activation_fn, derivative, gaussian_expectation


def test_closed_forms_match_torch_values():
    assert calculate_gain("linear") == 1.0
    assert calculate_gain("conv2d") == 1.0
    assert calculate_gain("sigmoid") == 1.0
    assert calculate_gain("tanh") == 5.0 / 3
    assert calculate_gain("relu") == math.sqrt(2.0)
    assert calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    assert calculate_gain("selu") == 0.75


def test_closed_forms_agree_with_torch():
    torch = pytest.importorskip("torch")
    for name in ["linear", "conv1d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert calculate_gain(name) == torch.nn.init.calculate_gain(name)
    # Names torch rejects get the numeric forward gain instead of an error.
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain("gelu")
    assert calculate_gain("gelu") == pytest.approx(gain("gelu"))


def test_numeric_relu_gain_is_sqrt2():
    assert abs(gain("relu") - math.sqrt(2)) < 1e-6
    assert abs(gain("relu", method="backward") - math.sqrt(2)) < 1e-6
    assert gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04), abs=1e-6)
    assert gain("linear") == pytest.approx(1.0, abs=1e-12)


def test_selu_is_self_normalizing():
    # Klambauer et al. 2017: E[selu(z)^2] = 1 for z ~ N(0, 1), so its forward gain is 1.
    assert gain("selu") == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("q", [0.25, 1.0, 4.0])
def test_quadrature_matches_adaptive_integration(name, q):
    f = activation_fn(name)
    df = derivative(f)
    sd = math.sqrt(q)
    for g in (lambda x: f(x) ** 2, lambda x: df(x) ** 2):
        ref, _ = integrate.quad(
            lambda x, g=g: g(np.array([x]))[0] * stats.norm.pdf(x, scale=sd),
            -40 * sd,
            40 * sd,
            points=[-6, -3, -1, 0, 1, 3, 6],
            limit=500,
        )
        assert gaussian_expectation(g, q) == pytest.approx(ref, abs=1e-8)


def test_forward_gain_matches_monte_carlo():
    z = np.random.default_rng(0).standard_normal(2_000_000)
    for name in ["tanh", "gelu", "silu", "elu"]:
        mc = 1 / math.sqrt(np.mean(activation_fn(name)(z) ** 2))
        assert gain(name) == pytest.approx(mc, rel=3e-3)


def test_callables_numpy_and_torch():
    torch = pytest.importorskip("torch")
    assert gain(lambda x: np.maximum(x, 0)) == pytest.approx(math.sqrt(2), abs=1e-9)
    assert gain(torch.nn.GELU()) == pytest.approx(gain("gelu"), abs=1e-9)
    assert gain(torch.nn.functional.silu) == pytest.approx(gain("swish"), abs=1e-9)
    assert gain(torch.nn.LeakyReLU(0.2)) == pytest.approx(gain("leaky_relu", 0.2), abs=1e-9)
    assert gain(torch.nn.GELU(approximate="tanh")) == pytest.approx(gain("gelu_new"), abs=1e-9)


def test_in_place_activations_do_not_corrupt_the_cached_nodes():
    """An activation that writes into its input used to write into the cached quadrature nodes:
    after gain(nn.ReLU(inplace=True)), gain("tanh") was 2.25 for the rest of the process."""
    torch = pytest.importorskip("torch")
    tanh, silu = gain("tanh"), gain("silu")
    assert gain(torch.nn.ReLU(inplace=True)) == pytest.approx(math.sqrt(2), abs=1e-9)
    assert gain(lambda z: z.mul_(torch.sigmoid(z))) == pytest.approx(silu, abs=1e-9)
    assert gain(lambda x: np.maximum(x, 0, out=x)) == pytest.approx(math.sqrt(2), abs=1e-9)
    assert gain("tanh") == tanh and gain("silu") == silu
    x, _ = _nodes(1.0)
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 0.0


def test_second_moment_is_the_mean_field_variance_map():
    # relu: E[relu(sqrt(q) z)^2] = q/2 for any q
    for q in (0.1, 1.0, 7.0):
        assert second_moment("relu", q) == pytest.approx(q / 2, rel=1e-12)


def test_names_are_normalized():
    assert gain("GELU") == gain("gelu")
    assert gain("Leaky-ReLU", 0.1) == gain("leaky_relu", 0.1)
    assert "gelu" in KNOWN_ACTIVATIONS and "swish" in KNOWN_ACTIVATIONS


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: gain("gleu"), ValueError, "unknown activation 'gleu'; known names: .*gelu"),
        (lambda: gain("relu", method="sideways"), ValueError, "method must be one of"),
        (lambda: gain("relu", 0.1), ValueError, "takes no param"),
        (lambda: gain("leaky_relu", float("nan")), ValueError, "param must be finite"),
        (lambda: gain("elu", -1.0), ValueError, "param must be > 0"),
        (lambda: gain(3), TypeError, "name or a callable"),
        (lambda: gain(lambda x: np.zeros_like(x)), ValueError, "zero on Gaussian input"),
        (lambda: gain(lambda x: x[:3]), ValueError, "elementwise"),
        (lambda: gain(lambda x: np.where(x > 5, np.inf, x)), ValueError, "non-finite"),
        (lambda: gain(np.tanh, 2.0), ValueError, "bind it into the callable"),
        (lambda: gain(np.tanh, method="torch"), TypeError, "needs an activation name"),
        (lambda: calculate_gain("leaky_relu", "a"), ValueError, "not a valid number"),  # as torch
        (lambda: gain("relu", q=-1), ValueError, "q must be > 0"),
    ],
)
def test_gain_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
