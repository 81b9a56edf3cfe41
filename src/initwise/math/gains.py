r"""Gains: the factor by which a weight's std must grow to make up for what the activation
after it does to the signal.

Two definitions, both for a unit-variance Gaussian pre-activation ``z ~ N(0, q)`` (``q = 1`` by
default), evaluated by Gaussian quadrature (composite Gauss–Legendre against the
normal density, panel edges at the kinks) so any activation works:

* **forward** (preserves the second moment of the signal, He et al. 2015 eq. 10; the mean-field
  variance map of Poole et al. 2016 at its fixed point ``q* = q``)::

      gain_fwd = sqrt(q / E[φ(√q·z)²])        relu → √2, tanh → 1.5925, gelu → 1.5335

* **backward** (preserves the variance of the back-propagated gradient, He et al. 2015
  eq. 14)::

      gain_bwd = 1 / sqrt(E[φ'(√q·z)²])        relu → √2, tanh → 1.4674

``calculate_gain`` keeps torch's closed forms (``tanh`` 5/3, ``selu`` 3/4, ``leaky_relu``
default slope 0.01) for drop-in compatibility, and falls back to the forward numeric gain for
names torch does not know (it raises for GELU, SiLU, …). Presets that need a gain for a detected
activation use the forward gain with ``mode="fan_in"`` and the backward gain with
``mode="fan_out"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from .. import _validate as v

Activation = Callable[[np.ndarray], np.ndarray]


def _softplus(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    return np.logaddexp(0.0, beta * x) / beta


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

# name -> (function(x, param), default param or None). NumPy float64 in, float64 out.
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], float | None]] = {
    "linear": (lambda x, p: x, None),
    "sigmoid": (lambda x, p: special.expit(x), None),
    "tanh": (lambda x, p: np.tanh(x), None),
    "relu": (lambda x, p: np.maximum(x, 0.0), None),
    "leaky_relu": (lambda x, p: np.where(x > 0, x, p * x), 0.01),
    "elu": (lambda x, p: _elu(x, p), 1.0),
    "celu": (
        lambda x, p: np.maximum(x, 0) + np.minimum(0, p * np.expm1(np.minimum(x, 0) / p)),
        1.0,
    ),
    "selu": (lambda x, p: _SELU_SCALE * _elu(x, _SELU_ALPHA), None),
    "gelu": (lambda x, p: x * special.ndtr(x), None),
    "gelu_tanh": (
        lambda x, p: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        None,
    ),
    "silu": (lambda x, p: x * special.expit(x), None),
    "mish": (lambda x, p: x * np.tanh(_softplus(x)), None),
    "softplus": (lambda x, p: _softplus(x, p), 1.0),
    "softsign": (lambda x, p: x / (1 + np.abs(x)), None),
    "hardtanh": (lambda x, p: np.clip(x, -1.0, 1.0), None),
    "relu6": (lambda x, p: _relu6(x), None),
    "hardsigmoid": (lambda x, p: _relu6(x + 3.0) / 6.0, None),
    "hardswish": (lambda x, p: x * _relu6(x + 3.0) / 6.0, None),
}

_ALIASES = {
    "identity": "linear",
    "none": "linear",
    "swish": "silu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "quick_gelu": "gelu_tanh",
    "leakyrelu": "leaky_relu",
    "hard_swish": "hardswish",
    "hard_sigmoid": "hardsigmoid",
    "hard_tanh": "hardtanh",
}
_LINEAR_LIKE = tuple(
    f"{op}{d}d" for op in ("conv", "conv_transpose") for d in (1, 2, 3)
)  # torch names with gain 1

KNOWN_ACTIVATIONS: tuple[str, ...] = tuple(sorted([*_ACTIVATIONS, *_ALIASES, *_LINEAR_LIKE]))
"""Every activation name :func:`gain` and :func:`calculate_gain` accept."""


def canonical_name(name: str) -> str:
    """Normalize an activation name (case, ``-``, aliases); raise listing the known names."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name or a callable, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _LINEAR_LIKE:
        return "linear"
    if key not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; known names: {', '.join(KNOWN_ACTIVATIONS)} "
            "(or pass the activation itself as a callable)"
        )
    return key


def activation_fn(activation: str | Callable[..., Any], param: float | None = None) -> Activation:
    """Return ``activation`` as a NumPy float64 → float64 function.

    Names come from :data:`KNOWN_ACTIVATIONS` (``param`` is the slope/alpha/beta where the
    activation has one). A callable may take NumPy arrays, or torch tensors (``nn.Module``
    instances and ``torch.nn.functional`` functions are called on a float64 tensor).
    """
    if isinstance(activation, str):
        name = canonical_name(activation)
        fn, default = _ACTIVATIONS[name]
        if default is None and param is not None:
            raise ValueError(f"activation {name!r} takes no param, got param={param!r}")
        p = default if param is None else v.finite("param", param, where=f"activation {name!r}")
        if name in ("elu", "celu", "softplus") and p is not None and p <= 0:
            raise ValueError(f"activation {name!r}: param must be > 0, got {p}")
        return lambda x: fn(x, p)
    if not callable(activation):
        raise TypeError(f"activation must be a name or a callable, got {type(activation).__name__}")
    if param is not None:
        raise ValueError("param only applies to named activations; bind it into the callable")
    return _wrap_callable(activation)


def _wrap_callable(fn: Callable[..., Any]) -> Activation:
    def call(x: np.ndarray) -> np.ndarray:
        if _wants_torch(fn):
            import torch

            with torch.no_grad():
                out = fn(torch.from_numpy(np.asarray(x, dtype=np.float64)))
            return out.detach().cpu().double().numpy()
        return np.asarray(fn(x), dtype=np.float64)

    return call


def _wants_torch(fn: Callable[..., Any]) -> bool:
    """torch functions, and instances of any ``torch.nn.Module`` subclass (also user-defined)."""
    fmod = getattr(fn, "__module__", "") or ""
    return fmod.startswith("torch") or any(
        (getattr(c, "__module__", "") or "").startswith("torch") for c in type(fn).__mro__[:-1]
    )


KINKS = (-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0)
"""Points where a named activation (or its derivative) is not smooth; always panel edges."""


@lru_cache(maxsize=64)
def _nodes(q: float, panel: float = 0.25, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Abscissas ``x`` and weights ``w`` with ``Σ w·g(x) ≈ E[g(x)]`` for ``x ~ N(0, q)``."""
    span = 12.0 * math.sqrt(q)  # tail mass beyond 12σ is ~4e-33
    n = min(max(16, math.ceil(span / panel)), 512)  # panels ≤ 0.25 wide, or span/512 for big q
    edges = np.linspace(-span, span, 2 * n + 1)
    inner = [k for k in KINKS if -span < k < span]
    edges = np.unique(np.concatenate([edges, inner]))
    t, wt = np.polynomial.legendre.leggauss(order)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = (0.5 * (hi - lo) * t + 0.5 * (hi + lo)).ravel()
    w = (0.5 * (hi - lo) * wt).ravel() * np.exp(-0.5 * x * x / q) / math.sqrt(2 * math.pi * q)
    return x, w / w.sum()


def gaussian_expectation(f: Activation, q: float = 1.0) -> float:
    r"""``E[f(x)]`` for ``x ~ N(0, q)`` by composite Gauss–Legendre quadrature.

    Panels of width ≤ 0.25 (8 nodes each) span ±12√q, with an edge at every point of
    :data:`KINKS`, so piecewise-smooth activations (relu, hardtanh, hardswish, elu…) integrate
    to ~1e-12. Plain Gauss–Hermite, exact for smooth functions, is off by up to 1e-2 at kinks
    away from zero (hardtanh, elu′), which is why it is not used.
    """
    q = v.positive("q", q, where="gaussian_expectation")
    x, w = _nodes(q)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.asarray(f(x), dtype=np.float64)
    if vals.shape != x.shape:
        raise ValueError(
            f"the activation returned shape {vals.shape} for input shape {x.shape}; "
            "it must be applied elementwise"
        )
    if not np.all(np.isfinite(vals)):
        raise ValueError("the activation returned non-finite values on Gaussian input")
    return float(np.dot(w, vals))


def derivative(f: Activation, h: float = 1e-6) -> Activation:
    """Central-difference derivative ``(f(x+h) − f(x−h)) / 2h`` (error O(h²) where smooth)."""
    return lambda x: (f(x + h) - f(x - h)) / (2 * h)


def second_moment(
    activation: str | Callable[..., Any], q: float = 1.0, param: float | None = None
) -> float:
    r"""``E[φ(√q·z)²]``, the quantity in the mean-field variance map
    ``q_{l+1} = σ_w²·E[φ(√q_l·z)²] + σ_b²`` (Poole et al. 2016)."""
    f = activation_fn(activation, param)
    return gaussian_expectation(lambda x: f(x) ** 2, q)


def gain(
    activation: str | Callable[..., Any],
    param: float | None = None,
    *,
    method: str = "forward",
    q: float = 1.0,
) -> float:
    r"""Gain of ``activation`` so that a layer initialized with ``std = gain/√fan`` keeps the
    signal's scale.

    Args:
        activation: a name from :data:`KNOWN_ACTIVATIONS` or any elementwise callable (NumPy or
            torch, including ``nn.Module`` instances such as ``nn.GELU()``).
        param: negative slope / alpha / beta for named activations that have one.
        method: ``"forward"`` → ``sqrt(q / E[φ(√q z)²])``; ``"backward"`` →
            ``1 / sqrt(E[φ'(√q z)²])``; ``"torch"`` → :func:`calculate_gain`.
        q: variance of the pre-activation the gain is evaluated at (1 by default).

    Examples:
        >>> round(gain("relu"), 6), round(gain("tanh", method="backward"), 4)
        (1.414214, 1.4674)
    """
    v.one_of("method", method, ("forward", "backward", "torch"), where="gain")
    if method == "torch":
        if not isinstance(activation, str):
            raise TypeError("method='torch' needs an activation name, got a callable")
        return calculate_gain(activation, param)
    f = activation_fn(activation, param)
    if method == "forward":
        m = gaussian_expectation(lambda x: f(x) ** 2, q)
        if m <= 0:
            raise ValueError(f"activation {activation!r} is zero on Gaussian input; no gain")
        return math.sqrt(q / m)
    df = derivative(f)
    m = gaussian_expectation(lambda x: df(x) ** 2, q)
    if m <= 0:
        raise ValueError(f"activation {activation!r} has zero derivative on Gaussian input")
    return 1.0 / math.sqrt(m)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""torch-compatible ``calculate_gain``.

    ================= ==========================
    nonlinearity      gain
    ================= ==========================
    linear / conv*    1
    sigmoid           1
    tanh              5/3
    relu              √2
    leaky_relu        √(2 / (1 + slope²)), slope 0.01 unless given
    selu              3/4
    anything else     :func:`gain` (forward, numeric) — torch raises here
    ================= ==========================
    """
    name = canonical_name(nonlinearity)  # like torch, param is ignored unless leaky_relu
    if name in ("linear", "sigmoid"):
        return 1.0
    if name == "tanh":
        return 5.0 / 3
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        slope = 0.01 if param is None else v.finite("param", param, where="calculate_gain")
        return math.sqrt(2.0 / (1 + slope**2))
    if name == "selu":
        return 3.0 / 4
    return gain(name, param, method="forward")
