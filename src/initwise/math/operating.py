r"""Operating points: at which pre-activation scale a chain of ``depth`` layers with activation φ
keeps its signal, forward and backward. NumPy only.

For a wide layer ``h = W x`` with ``Var[W_ij] = σ²/fan_in`` and inputs of second moment
``s = E[x²]``, the pre-activation second moment is ``q = σ² · s`` (Poole et al. 2016). The
classic gain rule picks ``σ² = 1/E[φ(z)²]`` assuming every layer starts at ``q = 1``; for
activations that are not positively homogeneous that fixed point is not where the network stays:

* GELU/SiLU/Mish: the variance map's slope at ``q = 1`` is 1.14–1.17 (unstable) and a first layer
  fed unit inputs lands at ``q = σ²`` ≠ 1, so the scale drifts by that factor per layer;
* tanh/sigmoid with Xavier: the map contracts towards 0 (tanh) or is dominated by the mean
  (sigmoid's E[φ] = ½ makes ``χ = σ²·E[φ′²]`` ≈ 0.15: gradients vanish).

:func:`operating_point` chooses, for a chain of ``depth`` such layers, the pre-activation second
moment ``q*`` and whether to **center** the weights (each output unit's weights sum to zero, so a
constant mean in the input — sigmoid's ½, softplus' — does not reach the pre-activation) so that

1. gradients neither grow nor vanish through the chain: ``(depth − 1)/2 · |ln χ| `` small, with
   ``χ = q·E[φ′(√q z)²] / s_next`` (``s_next`` = E[φ²], or Var[φ] when centered);
2. the forward fixed point is stable: ``depth · ln⁺ κ`` small, with ``κ = d ln s_next / d ln q``
   the elasticity of the variance map (κ > 1 amplifies any deviation from ``q*`` per layer);
3. the first and last layers' weight gradients are balanced:
   ``G² = χ^{depth−1} / (q · E[φ²])`` (unit input, unit output) near 1.

It minimises the largest of the three (natural logs; the forward term weighted ½ since only
finite-width fluctuations, ~1/√width, start it), taking any cost below :data:`TOLERANCE` as met
and then the ``q`` nearest 1, over
``q ∈ [0.1, 16]`` (pre-activation std 0.32 … 4; saturating activations ``q ≤ 4`` so units do not
saturate; a probed activation also below, :data:`PROBED_BELOW`). Positively homogeneous
activations (ReLU family, linear) are scale-free — χ and κ do
not depend on ``q`` — and keep He's ``q* = 1/E[φ(z)²]`` (unit post-activation second moment).
SELU keeps ``q* = 1``, its self-normalizing fixed point (Klambauer et al. 2017).

**With biases: the edge of chaos.** Where no bias-free point meets the tolerance (tanh beyond
~10 layers: it is critical only as ``q → 0``) and the layers have biases, a small bias variance
makes criticality reachable at a finite ``q`` (Poole et al. 2016; Schoenholz et al. 2017):
``σ_w² = 1/E[φ′(√q z)²]`` (χ = 1 exactly) and ``σ_b² = q − E[φ²]/E[φ′²] ≥ 0`` (the q-map's
fixed point, stable: its slope is ``κ/χ₀ < 1``). Along that curve larger ``q`` balances the end
layers' gradients better (``G² = E[φ′²]/E[φ²]²``) but bends the network's correlation map more:
its curvature ``C″_f(1) = (L − 1)·σ_w²·q·E[φ″(√q z)²]`` (the per-layer ``C″(1)`` adds up when
``C′(1) = 1``; Zhang et al. 2022 keep it bounded, TAT). :func:`operating_point` takes the largest
``q ≤ 1`` (no deeper into saturation than the classic gain's unit pre-activation; shallow
chains would otherwise get σ_b ≈ 1) whose curvature stays within :data:`CURVATURE_BUDGET`.
Measured (MNIST-1D, width 64, tanh, 600 SGD steps, lr 0.01, 3–5 seeds): depth 50 trains to
0.48 ± 0.02 at ``q`` 0.25 against 0.13 for the bias-free point and 0.42 for Xavier; ``q`` 1
(curvature 32) stays at chance; moving the last hidden layer for balance as below put one seed
of three at chance, so edge-of-chaos chains keep one ``q`` throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import activations as A
from .gains import activation_fn, derivative, gaussian_expectation

Q_RANGE = (0.1, 16.0)
TOLERANCE = 0.5
"""Costs (natural log of the worst predicted drift factor) below this (×1.65) count as met; among
those the ``q`` nearest 1 is taken, so shallow chains keep the classic gain ``1/√E[φ(z)²]``."""
SATURATING_Q_MAX = 4.0
PROBED_BELOW = 1e-5
"""A probed activation (an elementwise stretch written in ``forward``) may scale its input
itself — SIREN's ``sin(30·x)`` is ``sin`` at 900× the pre-activation's second moment — so where
nothing in :data:`Q_RANGE` meets the tolerance its ``q`` is searched down to ``Q_RANGE[0] ×
PROBED_BELOW`` too (SIREN, depth 4: q* ≈ 1.2e-3, ``(30·h)²`` ≈ 1.1 — the paper's unit-scale
arguments of ``sin``; Sitzmann et al. 2020)."""
DRIFT_LIMIT = math.log(10.0)
"""A chain whose best operating point still drifts by more than ×10 (``diagnose``'s own
tolerance; :attr:`OperatingPoint.drift`: gradients or the forward signal, not the end
layers' balance, which a chain that holds its signal can still miss -- SIREN's ``sin(30x)``
multiplies every hidden layer's gradient by 30) cannot be held by an initialization: the
planner says so (``SignalWarning``)."""
CURVATURE_BUDGET = 5.0
"""Largest network C-map curvature ``C″_f(1)`` an edge-of-chaos chain may have (module docstring;
5 is where depth-50 tanh trained best among q ∈ {0.15, 0.25, 0.5, 1} in the measurement there)."""
_GRID = 61


@dataclass(frozen=True)
class OperatingPoint:
    """Where a chain of ``depth`` layers with one activation is run (see the module docstring).

    ``q``: pre-activation second moment; ``centered``: weights centered per output unit;
    ``second_moment``/``mean``: of the activation's output at ``q``; ``chi``: per-layer gradient
    factor; ``kappa``: forward elasticity; ``balance``: predicted first/last weight-gradient ratio;
    ``rule``: how ``q`` was chosen."""

    q: float
    centered: bool
    second_moment: float
    mean: float
    chi: float
    kappa: float
    balance: float
    depth: int
    rule: str
    bias_var: float = 0.0
    """σ_b²: the bias variance of an edge-of-chaos point (0: biases zero)."""
    cost: float = 0.0
    """Natural log of the worst predicted drift factor over the chain (gradient drift, forward
    instability, end-layer balance) that the chosen point still leaves (0: none computed)."""

    @property
    def drift(self) -> float:
        """Natural log of the predicted drift factor through the chain -- gradient drift
        ``(depth - 1)/2 * |ln chi|`` or forward instability ``depth/2 * ln+ kappa``, the end
        layers' balance left out -- for a point chosen by cost (0 for a fixed rule: He, SELU,
        the edge of chaos). Above :data:`DRIFT_LIMIT` no initialization holds the chain."""
        return _drift(self.chi, self.kappa, self.depth) if self.cost else 0.0

    @property
    def input_moment(self) -> float:
        """What the next layer's weights see: E[x²], or Var[x] when they are centered."""
        return self.second_moment - self.mean**2 if self.centered else self.second_moment

    def describe(self) -> str:
        c = ", centered weights" if self.centered else ""
        if self.bias_var > 0:
            c += f", bias variance {self.bias_var:.3g}"
        return (
            f"q* {self.q:.3g}{c} ({self.rule}; χ {self.chi:.3f}, κ {self.kappa:.3f} "
            f"over depth {self.depth})"
        )


def moments(f: Callable[[np.ndarray], np.ndarray], q: float) -> tuple[float, float, float]:
    """``(E[φ(√q z)²], E[φ(√q z)], E[φ′(√q z)²])``."""
    df = derivative(f)
    return (
        gaussian_expectation(lambda x: f(x) ** 2, q),
        gaussian_expectation(f, q),
        gaussian_expectation(lambda x: df(x) ** 2, q),
    )


def _point(f: Callable[[np.ndarray], np.ndarray], q: float, centered: bool, depth: int) -> Any:
    e2, m, d = moments(f, q)
    h = 1e-3
    e2h, mh, _ = moments(f, q * (1 + h))
    s, sh = (e2 - m * m, e2h - mh * mh) if centered else (e2, e2h)
    if s <= 1e-12 * max(e2, 1e-300) or sh <= 0:
        return None
    chi = q * d / s
    kappa = math.log(sh / s) / math.log1p(h)
    balance = math.sqrt(chi ** (depth - 1) / (q * e2))
    cost = max(_drift(chi, kappa, depth), abs(math.log(balance)))
    return cost, e2, m, chi, kappa, balance


def _drift(chi: float, kappa: float, depth: int) -> float:
    """The larger of the chain's gradient drift ``(depth − 1)/2·|ln χ|`` and forward
    instability ``depth/2·ln⁺ κ`` (natural logs; module docstring)."""
    grad = (depth - 1) / 2 * abs(math.log(chi)) if chi > 0 else math.inf
    return max(grad, 0.5 * depth * max(0.0, math.log(kappa)) if kappa > 0 else 0.0)


def operating_point(
    activation: str | Callable[..., Any],
    param: float | None = None,
    *,
    depth: int = 1,
    homogeneous: bool = False,
    saturating: bool = False,
    name: str | None = None,
    bias: bool = False,
) -> OperatingPoint:
    """The operating point of ``activation`` in a chain of ``depth`` layers (module docstring).
    ``bias``: the layers have biases, so an edge-of-chaos point may be chosen where no bias-free
    point is good enough (smooth activations only: a registered name with kinks keeps the
    bias-free point).

    Examples:
        >>> op = operating_point("relu", depth=30, homogeneous=True)
        >>> round(op.q, 6), op.centered, round(op.chi, 6)
        (2.0, False, 1.0)
    """
    if depth < 1:
        raise ValueError(f"operating_point: depth must be ≥ 1, got {depth}")
    key = (activation, param) if isinstance(activation, str) else None
    if bias and key is not None:  # kinked activations (hardtanh) have no C″: bias-free point
        canon = A.canonical(activation)
        bias = canon is not None and not A.lookup(canon).kinks
    if key is not None:
        return _cached(
            key[0], key[1], int(depth), homogeneous, saturating, name or activation, bias
        )
    return _solve(
        activation_fn(activation), int(depth), homogeneous, saturating, name or "", bias, True
    )


@lru_cache(maxsize=256)
def _cached(
    act: str,
    param: float | None,
    depth: int,
    homogeneous: bool,
    saturating: bool,
    name: str,
    bias: bool = False,
) -> OperatingPoint:
    return _solve(activation_fn(act, param), depth, homogeneous, saturating, name, bias)


def _solve(
    f: Callable[[np.ndarray], np.ndarray],
    depth: int,
    homogeneous: bool,
    saturating: bool,
    name: str,
    bias: bool = False,
    probed: bool = False,
) -> OperatingPoint:
    if homogeneous or name == "selu":
        e2, m, d = moments(f, 1.0)
        q = 1.0 if name == "selu" else 1.0 / e2
        e2, m, d = moments(f, q)
        chi = q * d / e2
        rule = (
            "SELU's self-normalizing fixed point"
            if name == "selu"
            else "positively homogeneous: scale-free, unit activations (He)"
        )
        bal = math.sqrt(chi ** (depth - 1) / (q * e2))
        return OperatingPoint(q, False, e2, m, chi, 1.0, bal, depth, rule)
    lo, hi = Q_RANGE
    if saturating:
        hi = min(hi, SATURATING_Q_MAX)
    best: tuple[Any, ...] | None = None
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), _GRID)).tolist()
    below = np.exp(np.linspace(math.log(lo * PROBED_BELOW), math.log(lo), 3 * _GRID)).tolist()
    for q in [1.0, *grid, *(below[:-1] if probed else ())]:  # 1 exactly: the classic gain
        if q < lo and best is not None and best[-1] <= TOLERANCE:
            break  # (below the range only where nothing in it is good enough)
        for centered in (False, True):
            p = _point(f, q, centered, depth)
            if p is None:
                continue
            cost, e2, m, chi, kappa, balance = p
            if centered and abs(m) < 1e-9 * math.sqrt(e2):
                continue  # a zero mean: centering changes nothing
            # costs below TOLERANCE are all good enough, and ties (within 0.02 in log units) go
            # to q near 1 (the classic gain), then to uncentered weights
            key = (round(max(cost, TOLERANCE) / 0.02), abs(math.log(q)), centered)
            if best is None or key < best[0]:
                best = (key, q, centered, e2, m, chi, kappa, balance, cost)
    if best is None:  # pragma: no cover - an activation that is constant on every q
        raise ValueError("operating_point: the activation has no variance on Gaussian input")
    _, q, centered, e2, m, chi, kappa, balance, cost = best
    if bias and cost > TOLERANCE and not centered:
        edge = edge_of_chaos(f, depth, min(hi, 1.0))
        if edge is not None:
            return edge
    rule = f"chosen for depth {depth}: worst of gradient drift, forward drift, balance e^{cost:.2f}"
    return OperatingPoint(q, centered, e2, m, chi, kappa, balance, depth, rule, cost=cost)


def edge_of_chaos(
    f: Callable[[np.ndarray], np.ndarray], depth: int, q_max: float = Q_RANGE[1]
) -> OperatingPoint | None:
    """The edge-of-chaos point with biases for a chain of ``depth`` layers (module docstring):
    the largest ``q`` on the grid with ``σ_b² ≥ 0``, a stable fixed point and network curvature
    ``(depth − 1)·C″(1) ≤`` :data:`CURVATURE_BUDGET`; None where no ``q`` qualifies or the
    activation's mean is not ~0 (a bias would then shift it).

    Examples:
        >>> op = edge_of_chaos(np.tanh, 50)
        >>> round(op.q, 3), round(op.chi, 6), round(op.bias_var, 4)
        (0.238, 1.0, 0.0073)
    """
    d1 = derivative(f)
    d2 = derivative(d1, 1e-4)
    best = None
    grid = np.exp(np.linspace(math.log(Q_RANGE[0] / 10), math.log(q_max), _GRID * 2)).tolist()
    for q in grid:
        e2, m, d = moments(f, q)
        if d <= 0 or e2 <= 0 or abs(m) > 1e-6 * math.sqrt(e2):
            return None
        sw2 = 1.0 / d
        b = q - e2 * sw2
        if b < 0:
            continue
        curvature = (depth - 1) * sw2 * q * gaussian_expectation(lambda x: d2(x) ** 2, q)
        if curvature > CURVATURE_BUDGET:
            break
        best = (q, e2, m, sw2, b, curvature)
    if best is None:
        return None
    q, e2, m, sw2, b, curvature = best
    h = 1e-3
    kappa = math.log(moments(f, q * (1 + h))[0] / e2) / math.log1p(h)
    slope = kappa * sw2 * e2 / q  # the q-map's slope at its fixed point: κ/χ₀
    balance = math.sqrt(1.0 / sw2) / e2  # G² = E[φ′²]/E[φ²]²
    rule = (
        f"edge of chaos for depth {depth}: σ_w² {sw2:.4g} (χ = 1), q-map slope {slope:.3f}, "
        f"network C''(1) {curvature:.3g} ≤ {CURVATURE_BUDGET:g}"
    )
    return OperatingPoint(q, False, e2, m, 1.0, slope, balance, depth, rule, b)


def shifted_moments(
    f: Callable[[np.ndarray], np.ndarray], second: float, mean: float
) -> tuple[float, float]:
    """``(E[φ(x)²], E[φ(x)])`` for ``x ~ N(mean, second − mean²)`` (a deterministic ``x`` when
    the variance is ~0)."""
    var = second - mean * mean
    if var <= 1e-12 * max(second, 1e-300):
        y = float(np.asarray(f(np.array([mean])), dtype=np.float64)[0])
        return y * y, y
    return (
        gaussian_expectation(lambda x: f(x + mean) ** 2, var),
        gaussian_expectation(lambda x: f(x + mean), var),
    )


def q_for_second_moment(
    f: Callable[[np.ndarray], np.ndarray], target: float, *, lo: float = 1e-6, hi: float = 1e6
) -> float | None:
    """The ``q`` with ``E[φ(√q z)²] = target`` (bisection in log q; None if out of reach). An
    activation that overflows at some ``q`` (``exp`` written in ``forward``: a VAE's
    ``exp(0.5·logvar)``) has a second moment above any target there."""

    def g(q: float) -> float:
        try:
            return gaussian_expectation(lambda x: f(x) ** 2, q) - target
        except (ValueError, FloatingPointError, OverflowError):  # (non-finite values)
            return math.inf

    a, b = math.log(lo), math.log(hi)
    ga, gb = g(lo), g(hi)
    if ga > 0 or gb < 0:
        return None
    for _ in range(60):
        mid = 0.5 * (a + b)
        if g(math.exp(mid)) < 0:
            a = mid
        else:
            b = mid
    return math.exp(0.5 * (a + b))


def end_points(
    activation: Callable[[np.ndarray], np.ndarray], op: OperatingPoint, *, saturating: bool = False
) -> tuple[float, float, float]:
    """The operating point of the last hidden layer (``q_e``) of a chain run at ``op`` (unit
    input, unit output) that balances the first and last weight gradients:

    ``G² = E[φ′²](q_f)/E[φ²](q_f) · χ(q*)^{L−3} · q_e·E[φ′²](q_e) / E[φ²](q_e)²``

    with ``q_f = q*`` (the telescoped backward product, χ per layer as in Poole et al. 2016).
    Moving the first layer too would balance tanh chains further but puts the first layer at a
    scale ×10 from the rest, which reads as vanishing to any per-layer check, so only ``q_e``
    moves. Returns ``(q*, q_e, G)``; ``(q*, q*, op.balance)`` when nothing is closer to 1."""
    lo, hi = Q_RANGE
    if saturating:
        hi = min(hi, SATURATING_Q_MAX)
    grid = [op.q, *np.exp(np.linspace(math.log(lo), math.log(hi), _GRID)).tolist()]
    table = []
    for q in grid:
        e2, _, d = moments(activation, q)
        if e2 > 0:
            table.append((q, d / e2, q * d / (e2 * e2)))
    head = table[0][1]  # q_f = q*
    mid = op.chi ** (op.depth - 3)
    best = (abs(math.log(op.balance)), 0.0, op.q, op.q, op.balance)
    for q_e, _, tail in table:
        g = math.sqrt(head * mid * tail)
        key = (abs(math.log(g)), abs(math.log(q_e / op.q)))
        if key < best[:2]:
            best = (*key, op.q, q_e, g)
    return best[2], best[3], best[4]
