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

from .. import _validate as v
from .. import activations as A

Activation = Callable[[np.ndarray], np.ndarray]

KNOWN_ACTIVATIONS: tuple[str, ...] = A.known_names()
"""Every built-in activation name :func:`gain` and :func:`calculate_gain` accept; names added
with :func:`initwise.register_activation` are accepted too (:func:`initwise.activations.known_names`
lists them all)."""


def canonical_name(name: str) -> str:
    """Normalize an activation name (case, ``-``, aliases); raise listing the known names."""
    return A.lookup(name).name


def activation_fn(activation: str | Callable[..., Any], param: float | None = None) -> Activation:
    """Return ``activation`` as a NumPy float64 → float64 function.

    Names come from the activation registry (:mod:`initwise.activations`; ``param`` is the
    slope/alpha/beta where the activation has one). A callable may take NumPy arrays or torch
    tensors (``nn.Module`` instances, ``torch.nn.functional`` functions and plain functions of
    tensors such as ``lambda z: z * torch.sigmoid(z)`` are called on a float64 tensor).
    """
    if isinstance(activation, str):
        spec = A.lookup(activation)
        name = spec.name
        if spec.default_param is None and param is not None:
            raise ValueError(f"activation {name!r} takes no param, got param={param!r}")
        p = (
            spec.default_param
            if param is None
            else v.finite("param", param, where=f"activation {name!r}")
        )
        if name in ("elu", "celu", "softplus") and p is not None and p <= 0:
            raise ValueError(f"activation {name!r}: param must be > 0, got {p}")
        return spec.numpy(p)
    if not callable(activation):
        raise TypeError(f"activation must be a name or a callable, got {type(activation).__name__}")
    if param is not None:
        raise ValueError("param only applies to named activations; bind it into the callable")
    return A.numpy_callable(activation)


KINKS = (-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0)
"""Points where a named activation (or its derivative) is not smooth; always panel edges."""


@lru_cache(maxsize=8)
def _leggauss(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [−1, 1] (NumPy's ``leggauss`` costs ~0.2 ms a call,
    more than the rest of :func:`_nodes`; computed once per order)."""
    t, w = np.polynomial.legendre.leggauss(order)
    t.flags.writeable = False
    w.flags.writeable = False
    return t, w


@lru_cache(maxsize=64)
def _nodes(q: float, panel: float = 0.25, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Abscissas ``x`` and weights ``w`` with ``Σ w·g(x) ≈ E[g(x)]`` for ``x ~ N(0, q)``."""
    span = 12.0 * math.sqrt(q)  # tail mass beyond 12σ is ~4e-33
    n = min(max(16, math.ceil(span / panel)), 512)  # panels ≤ 0.25 wide, or span/512 for big q
    edges = np.linspace(-span, span, 2 * n + 1)
    inner = [k for k in KINKS if -span < k < span]
    edges = np.unique(np.concatenate([edges, inner]))
    t, wt = _leggauss(order)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = (0.5 * (hi - lo) * t + 0.5 * (hi + lo)).ravel()
    w = (0.5 * (hi - lo) * wt).ravel() * np.exp(-0.5 * x * x / q) / math.sqrt(2 * math.pi * q)
    w = w / w.sum()
    x.flags.writeable = w.flags.writeable = False  # cached: an in-place write must fail loudly
    return x, w


def gaussian_nodes(q: float, panel: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The composite Gauss–Legendre rule of :func:`gaussian_expectation` for ``x ~ N(0, q)``:
    abscissas ``x`` and weights ``w`` (read-only, cached) with ``Σ w·g(x) ≈ E[g(x)]``; panels at
    most ``panel`` wide with an edge at every point of :data:`KINKS`."""
    return _nodes(q, panel)


def gaussian_expectation(f: Activation, q: float = 1.0) -> float:
    r"""``E[f(x)]`` for ``x ~ N(0, q)`` by composite Gauss–Legendre quadrature.

    Panels of width ≤ 0.25 (8 nodes each) span ±12√q, with an edge at every point of
    :data:`KINKS`, so piecewise-smooth activations (relu, hardtanh, hardswish, elu…) integrate
    to ~1e-12. Plain Gauss–Hermite, exact for smooth functions, is off by up to 1e-2 at kinks
    away from zero (hardtanh, elu′), which is why it is not used.
    """
    q = v.positive("q", q, where="gaussian_expectation")
    x, w = _nodes(q)
    return float(np.dot(w, _evaluate(f, x)))


def _evaluate(f: Activation, x: np.ndarray) -> np.ndarray:
    """``f`` at the 1-d nodes ``x`` as float64, or a clear error when ``f`` is not elementwise or
    not finite there."""
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.asarray(f(x), dtype=np.float64)
    if vals.shape != x.shape:
        raise ValueError(
            f"the activation returned shape {vals.shape} for input shape {x.shape}; "
            "it must be applied elementwise"
        )
    if not np.all(np.isfinite(vals)):
        raise ValueError("the activation returned non-finite values on Gaussian input")
    return vals


@lru_cache(maxsize=64)
def _z_nodes(n: int, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z`` and weights for ``E[g(z)]``, ``z ~ N(0, 1)``, on ``2n`` equal panels over
    ±12: the nodes of :func:`_nodes` in units of ``√q`` when no kink but 0 (always an edge) is
    to be placed, so the same for every ``q`` of that panel count."""
    edges = np.linspace(-12.0, 12.0, 2 * n + 1)
    t, wt = _leggauss(order)
    half, mid = 0.5 * np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
    z = (half[:, None] * t + mid[:, None]).ravel()
    w = (half[:, None] * wt).ravel() * np.exp(-0.5 * z * z)
    w /= w.sum()
    z.flags.writeable = w.flags.writeable = False  # cached: an in-place write must fail loudly
    return z, w


def _nodes_many(
    qs: np.ndarray, panel: float = 0.25, order: int = 8, kinks: tuple[float, ...] = KINKS
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nodes` for many ``q`` at once, one row each: every row has the panel count of the
    widest (so each row's panels are at most as wide as its own :func:`_nodes` would make them)
    and an edge at every point of ``kinks`` (those outside a row's span are clipped to its ends,
    giving empty panels of weight zero). Without kinks other than 0 the weights are one row
    shared by all (:func:`_z_nodes`)."""
    span = 12.0 * np.sqrt(qs)
    n = int(np.clip(np.ceil(span / panel), 16, 512).max())
    if all(k == 0 for k in kinks):
        z, wz = _z_nodes(n, order)
        return np.sqrt(qs)[:, None] * z, wz
    ks = np.clip(np.asarray(kinks, dtype=np.float64)[None, :], -span[:, None], span[:, None])
    edges = np.concatenate([span[:, None] * np.linspace(-1.0, 1.0, 2 * n + 1), ks], axis=1)
    edges.sort(axis=1)
    t, wt = _leggauss(order)
    half, mid = 0.5 * np.diff(edges, axis=1), 0.5 * (edges[:, 1:] + edges[:, :-1])
    x = (half[:, :, None] * t + mid[:, :, None]).reshape(len(qs), -1)
    q = qs[:, None]
    w = (half[:, :, None] * wt).reshape(len(qs), -1) * np.exp(-0.5 * x * x / q)
    return x, w / w.sum(axis=1, keepdims=True)


def gaussian_expectations(
    f: Activation, qs: Any, *, panel: float = 0.25, kinks: Any = KINKS
) -> np.ndarray:
    r"""``E[f(x)]`` for ``x ~ N(0, q)`` at every ``q`` of ``qs`` (a 1-d array out), from one call
    of ``f`` on all their nodes: the quadrature of :func:`gaussian_expectation` (rows as fine or
    finer, the same edges at :data:`KINKS`; agrees with it to ~1e-12), for callers that need
    many — :func:`initwise.diagnostics.diagnose` wants χ at every layer, where one call each
    cost ~0.2 ms of NumPy overhead.

    ``panel``: the widest panel (8 Gauss–Legendre nodes each; at least 32 panels over ±12√q).
    Measured against 0.25 for 11 activations (tanh, relu, gelu, silu, hardtanh, elu, sigmoid,
    softplus, hardswish, selu, mish) at q from 1e-3 to 100: ``E[φ²]`` agrees to 9e-13 with
    panels of 1 and 2, ``E[φ′²]`` (central differences) to 2e-10 — the differences' own error.
    ``kinks``: the points that must be panel edges, where ``f`` is known (the activation's own,
    :func:`kinks_of`); by default every point of :data:`KINKS`. With the activation's own kinks
    and panels of 1 the results agree with :func:`gaussian_expectation` to 2.4e-10 for those 11
    and leaky_relu and relu6 at q ≤ 100, and to 2e-8 at q = 1e4 (panels 2.3 wide there: the
    panel count is capped at 1,024)."""
    q = np.asarray(qs, dtype=np.float64).reshape(-1)
    if not q.size:
        return np.zeros(0)
    if not np.all(np.isfinite(q)) or not np.all(q > 0):
        raise ValueError(f"gaussian_expectations: every q must be finite and > 0, got {qs!r}")
    width = v.positive("panel", panel, where="gaussian_expectations")
    x, w = _nodes_many(q, width, 8, tuple(float(k) for k in kinks))
    vals = _evaluate(f, x.reshape(-1)).reshape(x.shape)
    return vals @ w if w.ndim == 1 else np.einsum("ij,ij->i", w, vals)


def expectation_at(f: Activation, q: float, panel: float, kinks: tuple[float, ...]) -> float:
    r"""``gaussian_expectations(f, [q], panel=panel, kinks=kinks)[0]`` for one ``q`` — the same
    nodes, the same summation, the same bits — without its per-call array work: for callers that
    walk a chain one layer at a time (:func:`initwise.math.meanfield.propagate`, where each layer
    depends on the previous one's result, so the layers can not be one call). ~65 µs of a call's
    ~100 µs was argument checks and node arrays; with no kink but 0 (tanh, GELU, SiLU…) the
    nodes are the cached :func:`_z_nodes` scaled by ``√q``. ``q`` must be finite and > 0,
    ``panel`` > 0 (a ValueError otherwise, as from :func:`gaussian_expectations`)."""
    if not (math.isfinite(q) and q > 0):
        raise ValueError(f"gaussian_expectations: every q must be finite and > 0, got {[q]!r}")
    if not all(k == 0 for k in kinks):
        return float(gaussian_expectations(f, [q], panel=panel, kinks=kinks)[0])
    root = math.sqrt(q)  # (np.sqrt and math.sqrt are both correctly rounded: the same value)
    n = int(min(max(math.ceil(12.0 * root / panel), 16), 512))
    z, wz = _z_nodes(n, 8)
    x = root * z
    vals = _evaluate(f, x).reshape(1, -1)  # a row, as in gaussian_expectations: the same matmul
    return float((vals @ wz)[0])


def kinks_of(activation: str | Callable[..., Any]) -> tuple[float, ...]:
    """The points where a named activation (or its first two derivatives) is not smooth, from
    the registry; :data:`KINKS` (every built-in one) for a callable, whose kinks are unknown."""
    if isinstance(activation, str):
        return A.lookup(activation).kinks
    return KINKS


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

    ``nonlinearity`` may also be the activation itself: a torch module (``nn.Tanh()``,
    ``nn.LeakyReLU(0.2)``) or functional (``F.silu``) that the activation registry knows gets
    the gain of its name (with the module's parameter); any other elementwise callable gets its
    numeric forward gain.
    """
    if not isinstance(nonlinearity, str) and callable(nonlinearity):
        named = _registered_name(nonlinearity)
        if named is None:  # an activation initwise does not know: its numeric forward gain
            if param is not None:
                raise ValueError(
                    "param only applies to named activations; bind it into the callable"
                )
            return gain(nonlinearity, method="forward")
        nonlinearity, own = named
        param = own if param is None else param
    spec = A.lookup(nonlinearity)  # like torch, param is ignored unless leaky_relu
    if spec.torch_gain is not None:  # torch's closed form for its names (the registry holds it)
        if spec.default_param is not None and param is not None:
            if isinstance(param, bool) or not isinstance(param, (int, float)):
                # torch's exact error for a non-number slope (True, a list, a dict)
                raise ValueError(f"negative_slope {param} not a valid number")
            param = v.finite("param", param, where="calculate_gain")
        return spec.torch_gain(param)
    return gain(spec.name, param, method="forward")


def _registered_name(fn: Callable[..., Any]) -> tuple[str, float | None] | None:
    """(name, param) of a torch module or function the activation registry knows, else None."""
    found = A.for_module(fn) if A.wants_torch(fn) and not _is_function(fn) else None
    if found is None and _is_function(fn):
        found = A.for_function(getattr(fn, "__name__", ""), (), {})
    if found is None:
        return None
    spec, param = found
    return spec.name, (None if param == spec.default_param else param)


def _is_function(fn: Any) -> bool:
    return not hasattr(fn, "forward") and hasattr(fn, "__name__")
