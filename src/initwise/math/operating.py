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

**Activations with a mean** (softplus, sigmoid) have no such point with plain weights (the
mean would pass on and grow); with weights **centered** per output unit it does not pass, the
q-map is ``q = σ_w²·Var[φ] + σ_b²``, and ``σ_w² = 1/E[φ′²]``, ``σ_b² = q − Var[φ]/E[φ′²]``
is the edge of chaos again (:func:`edge_of_chaos` with ``centered``). It is taken where the
grid's best point misses the tolerance, its own cost (the end layers' balance: χ = 1 and a
contracting q-map) is lower, and the curvature budget does not pull ``q`` below 1 (softplus up
to depth ~30, sigmoid ~40). Measured (2026-12-05): softplus ×30 at width 256, output rms 1.34–1.97
→ 0.93–1.14 over ten draws, first/last gradients ×5.6 → ×0.83 median, ``diagnose`` "exploding"
→ healthy; MNIST-1D, width 64, SGD momentum 0.9, 600 steps, 3 seeds: depth 30 0.464 ± 0.007
at lr 0.01 where the grid point diverged on 2 seeds (1 at lr 0.003), depth 20 the same (0.490
vs 0.492); sigmoid ×30 0.462 ± 0.026 vs 0.432 ± 0.034 (lr 0.05), ×20 the same. GELU/SiLU keep
the grid's point: their curvature budget would force ``q`` 0.1–0.25 (balance ×7–20); at
softplus ×50, width 128, where it forces ``q`` 0.57, 5 of 10 draws stayed in band against 10 of
10 for the grid point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from .. import activations as A
from .gains import activation_fn, derivative, gaussian_expectation, gaussian_expectations

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
    width: int = 0
    """The chain's width where its forward drift was simulated at that width
    (:func:`at_width`; 0: not simulated, the mean-field estimate stands)."""
    forward: float = 0.0
    """Natural log of the simulated forward drift at :attr:`width`, the mean over draws
    (:func:`chain_drift`)."""
    scatter: float = 0.0
    """The root mean square over draws of that log: large where one draw's scale goes far up
    or down even if the mean over draws does not."""
    off: float = 0.0
    """The share of the draws off by more than ×4 (:data:`SCATTER_SAID`)."""
    taps: int = 1
    """Kernel taps of the simulated chain's layers: 1 for matrices, the kernel's size for a
    convolution, simulated with :attr:`width` channels (:func:`chain_drifts`)."""
    dims: int = 1
    """The simulated kernel's spatial dimensions: 2 for a square 2-D one (on a torus), else 1
    (on a ring)."""

    @property
    def drift(self) -> float:
        """Natural log of the predicted drift factor through the chain -- gradient drift
        ``(depth - 1)/2 * |ln chi|`` or forward instability ``depth/2 * ln+ kappa``, the end
        layers' balance left out -- for a point chosen by cost (0 for a fixed rule: He, SELU,
        the edge of chaos). Above :data:`DRIFT_LIMIT` no initialization holds the chain."""
        if not self.cost:
            return 0.0
        if self.width:  # the simulation (its mean over draws) replaces the mean-field term
            grad = (self.depth - 1) / 2 * abs(math.log(self.chi)) if self.chi > 0 else math.inf
            return max(grad, abs(self.forward))
        return _drift(self.chi, self.kappa, self.depth)

    @property
    def simulated_at(self) -> str:
        """What the chain was simulated at: ``width 256``, ``16 channels × 3 taps`` or ``16
        channels × 3×3 taps``."""
        if self.taps == 1:
            return f"width {self.width}"
        side = _torus_side(self.taps, self.dims)
        return f"{self.width} channels × {f'{side}×{side}' if side else self.taps} taps"

    @property
    def input_moment(self) -> float:
        """What the next layer's weights see: E[x²], or Var[x] when they are centered."""
        return self.second_moment - self.mean**2 if self.centered else self.second_moment

    def describe(self) -> str:
        c = ", centered weights" if self.centered else ""
        if self.bias_var > 0:
            c += f", bias variance {self.bias_var:.3g}"
        sim = (
            f"; simulated at {self.simulated_at}: E[x²] ×{math.exp(self.forward):.3g} after the "
            f"chain, ×{math.exp(self.scatter):.3g} rms over draws, {self.off:.0%} of draws off "
            "by more than ×4"
            if self.width
            else ""
        )
        return (
            f"q* {self.q:.3g}{c} ({self.rule}; χ {self.chi:.3f}, κ {self.kappa:.3f} "
            f"over depth {self.depth}{sim})"
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


def _grid_points(
    f: Callable[[np.ndarray], np.ndarray], qs: list[float], depth: int
) -> Iterator[tuple[float, bool, Any]]:
    """``(q, centered, _point(...))`` for each ``q`` of ``qs``, weights plain then centered —
    leaving out points with no variance and centered ones of a zero mean (centering changes
    nothing there)."""
    for q in qs:
        for centered in (False, True):
            p = _point(f, q, centered, depth)
            if p is None or (centered and abs(p[2]) < 1e-9 * math.sqrt(p[1])):
                continue
            yield q, centered, p


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
    width: int | None = None,
    ends: bool = False,
    taps: int = 1,
    dims: int = 1,
) -> OperatingPoint:
    """The operating point of ``activation`` in a chain of ``depth`` layers (module docstring).
    ``bias``: the layers have biases, so an edge-of-chaos point may be chosen where no bias-free
    point is good enough (smooth activations only: a registered name with kinks keeps the
    bias-free point). ``width``: the chain's width, where known — the point chosen by cost is
    then checked, and if need be chosen again, by simulating the chain at that width
    (:func:`at_width`); ``ends``: the chain's last hidden layer may be moved to balance the end
    layers' gradients (:func:`end_points`), which that choice counts on. ``taps``: the chain is
    of convolutions with kernels of that many taps and ``width`` channels (simulated as such,
    :func:`chain_drifts`); ``dims``: 2 where those kernels are square 2-D ones.

    Examples:
        >>> op = operating_point("relu", depth=30, homogeneous=True)
        >>> round(op.q, 6), op.centered, round(op.chi, 6)
        (2.0, False, 1.0)
    """
    if depth < 1:
        raise ValueError(f"operating_point: depth must be ≥ 1, got {depth}")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
        raise ValueError(f"operating_point: width must be a positive int or None, got {width!r}")
    if isinstance(taps, bool) or not isinstance(taps, int) or taps < 1:
        raise ValueError(f"operating_point: taps must be a positive int, got {taps!r}")
    if dims not in (1, 2, 3):
        raise ValueError(f"operating_point: dims must be 1, 2 or 3, got {dims!r}")
    key = (activation, param) if isinstance(activation, str) else None
    if bias and key is not None:  # kinked activations (hardtanh) have no C″: bias-free point
        canon = A.canonical(activation)
        bias = canon is not None and not A.lookup(canon).kinks
    if key is not None:
        sim = _sim_width(width, taps) if width is not None and _simulated(depth, width) else 0
        return _cached(
            key[0],
            key[1],
            int(depth),
            homogeneous,
            saturating,
            name or activation,
            bias,
            sim,
            ends,
            taps if sim else 1,
            dims if sim and taps > 1 else 1,
        )
    f = activation_fn(activation)
    op = _solve(f, int(depth), homogeneous, saturating, name or "", bias, True)
    if width is not None and _simulated(depth, width):
        sim = _sim_width(width, taps)
        return at_width(f, op, sim, ends=ends, saturating=saturating, taps=taps, dims=dims)
    return op


def _sim_width(width: int, taps: int) -> int:
    """The width a chain is simulated at: its own, at most :data:`SIMULATED_WIDTH` for
    matrices and ``SIMULATED_WIDTH/√taps`` channels for convolutions (the same multiply-adds per
    layer: ``channels² · taps``)."""
    return max(1, min(width, int(SIMULATED_WIDTH / math.sqrt(taps))))


def _simulated(depth: int, width: int) -> bool:
    return depth >= SIMULATED_DEPTH and width >= 2


SIMULATED_DEPTH = 6
"""Chains of at least this many layers have their forward drift simulated at their width
(:func:`at_width`); shorter ones keep the mean-field estimate."""
SIMULATED_WIDTH = 256
"""The widest chain simulated: a wider one is simulated at this width, which drifts at least as
much (the drift the simulation finds shrinks with width), so its check errs on the safe side."""
WIDTH_TOLERANCE = math.log(2.0)
"""A simulated forward drift within ×2 in E[x²] (×1.41 in rms) keeps the point chosen by cost."""
SCATTER_SAID = math.log(4.0)
"""A draw whose simulated E[x²] after the chain is off by more than ×4 (×2 in an output's rms,
outside the ½–2 a plan aims for) is off (:attr:`OperatingPoint.off`)."""
OFF_SAID = 0.25
"""A chain where at least this share of the draws is off (four of sixteen; of 24 for a point
chosen again) is said by the planner: one seed in four gives a network that does not hold its
signal. The per-draw spread is heavy-tailed (logsigmoid, depth 50, width 128, sixteen draws of
the planned network: fourteen within ×1.5, two off by ×5.5 and ×40), so a share of draws says
more than a mean or a root mean square, which one such draw dominates; four draws with one off
are simulated on twelve more (:func:`_confirmed`). Sixteen draws still leave the share ±0.1
(GELU, width 64, depth 20: 0.25 from the simulation, 7 of 16 seeds of the planned network), so
chains near it are said on some widths and depths and not on others."""
_SIM_BATCH = 128
_SIM_POSITIONS = 16
_SIM_TORUS = 8
"""A square 2-D kernel's chain is simulated on an 8×8 torus of positions (2 examples)."""


def _torus_side(taps: int, dims: int) -> int:
    """``k`` where a chain of ``k×k`` kernels is simulated on the torus (``dims`` 2, ``taps``
    a square of at most :data:`_SIM_TORUS`²), else 0 (a ring)."""
    if dims != 2 or taps < 2:
        return 0
    side = math.isqrt(taps)
    return side if side * side == taps and side <= _SIM_TORUS else 0


_SIM_SEED = 20261203
SIMULATION_CAP = 4.0
"""Each simulated draw's log drift is capped at ±4 (×55): a chain that far off is not held, and
stopping its simulation there keeps the search cheap."""


def chain_drift(
    f: Callable[[np.ndarray], np.ndarray],
    q: float,
    centered: bool,
    depth: int,
    width: int,
    draws: int = 4,
    q_end: float | None = None,
    first: int = 0,
    taps: int = 1,
    dims: int = 1,
) -> tuple[float, float, float]:
    r"""The forward drift of a chain run at ``q``, simulated at a finite width: the natural log
    of what the chain's read-out sees, ``E[φ(z)²]`` of its last hidden layer over the 128
    examples of a batch (what an output's rms sees), against the mean-field ``E[φ²]`` at that
    layer's ``q_end`` (``q`` unless the planner moves it to balance the end layers' gradients,
    :func:`end_points`) — its mean over ``draws`` draws (a drift every draw shares), its root
    mean square (which a scale that scatters between draws, up in one and down in another, makes
    large too) and the share of the draws off by more than ×4 (:data:`SCATTER_SAID`).

    The chain: unit Gaussian input, ``depth`` square layers of ``width`` with i.i.d. Gaussian
    weights of variance ``q/(width·s)`` (``s`` = E[φ²], or Var[φ] with weights centered per
    output unit; the first layer ``q/width``, the last ``q_end/(width·s)``), biases zero, φ
    after each — what the plan draws. The mean-field map (Poole et al. 2016) is this chain's
    infinite-width limit; at a finite width each example's scale moves by about ``√(2/width)``
    per layer, and a fixed point with κ > 1 amplifies that, so the mean over examples drifts
    (upward: a scale grown by ×k adds more than one shrunk by ×k removes) or, where the map
    below ``q*`` contracts (GELU, SiLU), the scale collapses; the log of a product of many
    random matrices is Gaussian with a variance that grows with depth/width (Hanin & Nica
    2020, arXiv 1812.05994). Measured with the mean-field choice: softplus(x) − log 2 at ``q*``
    0.90, depth 30, width 128: output rms 32–116 over ten draws where the mean-field estimate
    allowed ×3.5 in E[x²]. Deterministic (a fixed generator of its own; the global RNG is not
    touched); each draw's log capped at ±4 (×55: a chain that far off is not held, and stopping
    there keeps the simulation cheap); float32, as networks are."""
    point = (q, centered, q if q_end is None else q_end)
    return chain_drifts(f, [point], depth, width, draws, first=first, taps=taps, dims=dims)[0]


def chain_drifts(
    f: Callable[[np.ndarray], np.ndarray],
    points: list[tuple[float, bool, float]],
    depth: int,
    width: int,
    draws: int = 4,
    stop: float = SIMULATION_CAP,
    first: int = 0,
    taps: int = 1,
    dims: int = 1,
) -> list[tuple[float, float, float]]:
    """:func:`chain_drift` for several ``(q, centered, q_end)`` points, on the same draws
    (common random numbers: their differences are the points', not the draws'). A draw whose
    log passes ``stop`` at any layer counts as the cap (a search passes what the point it would
    replace costs, plus one: such a point is not chosen, and is not simulated further). Draw
    ``j`` is the same for every call (``first``: start at draw ``first``).

    ``taps > 1``: a chain of convolutions of ``width`` channels with ``taps``-tap kernels, on a
    ring of :data:`_SIM_POSITIONS` positions (the batch's rows are examples × positions; weights
    of variance ``q/(width·taps·s)``). Weight sharing makes the channels a convolution's width:
    each spatial frequency, the mean over positions included, passes through a ``width``-square
    matrix with a matrix layer's entry variance (measured, 3×3 convolutions with circular
    padding, 16 draws of the planned network: GELU ×20 at 64 channels 0.44 of draws off by ×2 in
    rms, simulated 0.62; shifted softplus ×30 at 16 channels 0.50, simulated 0.75; as a chain
    of 144-wide matrices it would scatter far less). Zero padding is not simulated.

    ``dims == 2`` with a square kernel of ``k×k`` taps (``k`` ≤ :data:`_SIM_TORUS`): the
    positions are an 8×8 torus and the batch 2 examples (the same 128 rows), each tap a shift
    along both axes. A 3×3 kernel on a ring of 16 covered 9 of its 16 positions, so the rows
    were few independent samples and the simulation overstated the scatter; on the torus it
    covers 9 of 64, as a 3×3 kernel on a real map covers few of its positions. Measured against
    16 planned draws of 3×3 chains with circular padding on 16×16 maps (share of draws off by
    ×2 in rms, planned vs simulated on the ring / on the torus): shifted softplus ×20 at 32
    channels 0.31 / 0.50 / 0.31, ×30 at 16 channels 0.50 / 0.75 / 0.69, GELU ×20 at 64 channels
    0.44 / 0.62 / 0.69, ×30 at 32 channels 1.00 / 0.69 / 0.75, ReLU ×20 at 32, 64, 128
    channels 0.50, 0.00, 0.06 / 0.62, 0.31, 0.12 / 0.62, 0.31, 0.12, softplus ×50 at 16 and 32
    channels 0.06, 0.00 / 0.38, 0.38 / 0.19, 0.00 (mean absolute error 0.24 on the ring, 0.15
    on the torus)."""
    n = int(width)
    side = _torus_side(taps, dims)
    if side:  # (rows: examples × an 8×8 torus; each tap a shift along both axes)
        positions, axes = (_SIM_TORUS, _SIM_TORUS), (2, 3)
        shifts = [(a - side // 2, b - side // 2) for a in range(side) for b in range(side)]
    else:  # (rows: examples × positions on a ring; each tap a shifted copy)
        positions, axes = (_SIM_POSITIONS,), (2,)
        shifts = [(t - taps // 2,) for t in range(taps)]
    table = _Table(f)
    k = len(points)
    q = np.empty(k)
    q_end = np.empty(k)
    s = np.ones(k)
    end2 = np.ones(k)
    live = np.zeros(k, dtype=bool)
    centered = np.array([c for _, c, _ in points], dtype=bool)
    for i, (qi, ci, qe) in enumerate(points):
        e2, m, _ = moments(f, qi)
        si = e2 - m * m if ci else e2
        ee = moments(f, qe)[0] if qe != qi else e2
        q[i], q_end[i] = qi, qe
        if si > 0 and ee > 0 and math.isfinite(si) and math.isfinite(ee):
            s[i], end2[i], live[i] = si, ee, True
    logs = np.zeros((draws, k))
    for j in range(draws):
        rng = np.random.default_rng(_SIM_SEED + first + j)
        x = _normal(rng, (_SIM_BATCH, n))
        r = np.where(live, 0.0, SIMULATION_CAP)
        going = np.flatnonzero(live)
        h = np.broadcast_to(x, (going.size, _SIM_BATCH, n))
        fan = n * taps
        for layer in range(depth):
            if going.size == 0:
                break
            w = _normal(rng, (n, fan))
            last = layer == depth - 1
            aim = q_end[going] if last else q[going]
            scale = np.sqrt(aim / (fan * (1.0 if layer == 0 else s[going]))).astype(np.float32)
            z = np.empty((going.size, _SIM_BATCH, n), dtype=np.float32)
            if taps > 1:  # (each tap a shifted copy of the positions, channels side by side)
                grid = h.reshape(h.shape[0], -1, *positions, n)
                hin = np.concatenate(
                    [np.roll(grid, shift, axis=axes) for shift in shifts], axis=-1
                ).reshape(h.shape[0], _SIM_BATCH, fan)
            else:
                hin = h
            for flag in (False, True):  # (one product per kind of weight: all points at once)
                sel = np.flatnonzero(centered[going] == flag)
                if sel.size == 0:
                    continue
                wk = w
                if flag and taps > 1 and n > 1:  # (per tap, as the plan centers convolutions)
                    per = w.reshape(n, taps, n)
                    per = (per - per.mean(axis=2, keepdims=True)) * np.float32(
                        math.sqrt(n / (n - 1))
                    )
                    wk = per.reshape(n, fan)
                elif flag:
                    wk = (w - w.mean(axis=1, keepdims=True)) * np.float32(
                        math.sqrt(fan / (fan - 1))
                    )
                z[sel] = (hin[sel].reshape(-1, fan) @ wk.T).reshape(sel.size, _SIM_BATCH, n)
            z *= scale[:, None, None]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                e = np.einsum("kbn,kbn->k", z, z, dtype=np.float64) / (_SIM_BATCH * n)
                now = np.log(e / aim)
            bad = ~np.isfinite(now)
            now[bad] = np.where(e[bad] == 0, -SIMULATION_CAP, SIMULATION_CAP)
            gone = bad | (np.abs(now) >= stop)
            now[gone & ~bad] = np.copysign(SIMULATION_CAP, now[gone & ~bad])
            r[going] = now
            h = table(z)
            finite = np.isfinite(h).all(axis=(1, 2))
            r[going[~finite]] = SIMULATION_CAP
            gone |= ~finite
            if last:  # what the read-out sees
                out = np.einsum("kbn,kbn->k", h, h, dtype=np.float64) / (_SIM_BATCH * n)
                with np.errstate(divide="ignore", invalid="ignore"):
                    seen = np.log(out / end2[going])
                seen[~np.isfinite(seen)] = -SIMULATION_CAP
                r[going[~gone]] = seen[~gone]
            keep = ~gone
            going, h = going[keep], h[keep]
        logs[j] = np.clip(r, -SIMULATION_CAP, SIMULATION_CAP)
    mean = logs.mean(axis=0)
    rms = np.sqrt(np.mean(logs * logs, axis=0))
    off = np.mean(np.abs(logs) > SCATTER_SAID, axis=0)
    return [(float(a), float(b), float(c)) for a, b, c in zip(mean, rms, off, strict=True)]


def _normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal float32 values by Box–Muller on the generator's uniforms (a third of the
    time of its ziggurat for float32 on the machines measured; the simulation draws ~10⁶ per
    layer of a wide chain)."""
    size = shape[0] * shape[1]
    half = (size + 1) // 2
    u = rng.random((2, half), dtype=np.float32)
    r = np.sqrt(np.float32(-2.0) * np.log1p(-u[0]))
    t = np.float32(2.0 * math.pi) * u[1]
    return np.concatenate([r * np.cos(t), r * np.sin(t)])[:size].reshape(shape)


class _Table:
    """φ by linear interpolation on a grid of step 0.01 over [−50, 50] (off by ~1e-5·|φ″| for
    smooth φ, far below the draws' own spread; one evaluation of φ on 10⁴ points instead of one
    per layer, an index computed, not searched, in a table that stays in cache), φ itself
    beyond."""

    _SPAN, _PER = 50.0, 100

    def __init__(self, f: Callable[[np.ndarray], np.ndarray]) -> None:
        self.f = f
        grid = np.linspace(-self._SPAN, self._SPAN, int(2 * self._SPAN * self._PER) + 1)
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.asarray(f(grid), dtype=np.float64)
        self.values = values.astype(np.float32)
        self.slopes = np.append(np.diff(values), 0.0).astype(np.float32)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        outside = ~(np.abs(z) <= self._SPAN)  # (NaN too)
        inside = np.where(outside, np.float32(0.0), z)
        t = (inside + np.float32(self._SPAN)) * np.float32(self._PER)
        i = np.minimum(t.astype(np.int32), self.values.size - 1)
        out = self.values[i] + (t - i) * self.slopes[i]
        if outside.any():
            with np.errstate(over="ignore", invalid="ignore"):
                far = np.asarray(self.f(z[outside].astype(np.float64)), dtype=np.float64)
            out[outside] = far.astype(np.float32)
        return out


def at_width(
    f: Callable[[np.ndarray], np.ndarray],
    op: OperatingPoint,
    width: int,
    *,
    ends: bool = False,
    saturating: bool = False,
    taps: int = 1,
    dims: int = 1,
) -> OperatingPoint:
    """``op`` checked against the chain's finite width: its forward drift simulated
    (:func:`chain_drift`). Where the mean over draws is within :data:`WIDTH_TOLERANCE` — plus
    the draws' standard deviation, about two standard errors of a mean of four: a scale that
    scatters makes a mean of four draws wander — it stands; otherwise the point is chosen again
    over the grid of ``q`` (weights centered or not) by the largest of the gradient drift
    ``(depth − 1)/2·|ln χ|``, the simulated drift (the mean over draws) and the end layers'
    balance — after the last hidden layer's move where ``ends`` and the weights are not
    centered (:func:`end_points`) — costs below :data:`TOLERANCE` counting as met and ties
    going to ``q`` near 1 as in :func:`operating_point`. The scatter between draws is not
    chosen on: measured, choosing on it (the root mean square) moved GELU/SiLU/hardswish chains
    at width 128 to ``q`` 16 and made them worse (output rms 1.95–3.56 at depth 30 against
    0.61–0.91), and so did a mean of four scattered draws taken at its word (SiLU, width 128,
    depth 30: 2.34 against 0.91); no ``q`` narrows it — it is reported
    (:attr:`OperatingPoint.off`) for the planner to say. Points with a fixed rule keep it: the
    edge of chaos (its fixed point is stable) is returned as it is; He's and SELU's are
    simulated for their scatter only — He's point is scale-free, yet a chain of ReLU layers
    scatters at a finite width as any other (Hanin & Nica 2020; 24 seeds of a planned ReLU
    MLP: 0.25 of them off by ×2 in rms at width 128 ×50, 0.46 at width 64 ×30, 0.04 at width
    256 ×30)."""
    if op.bias_var > 0 or op.depth < 2:
        return op
    depth = op.depth
    if not op.cost:  # He, SELU: a fixed rule, not moved — its scatter simulated and reported
        drift, scatter, off = chain_drift(f, op.q, op.centered, depth, width, taps=taps, dims=dims)
        held = replace(
            op, width=width, forward=drift, scatter=scatter, off=off, taps=taps, dims=dims
        )
        return _confirmed(f, held, lambda p: p.q)
    moves = ends and depth >= 3  # (the planner moves the last hidden layer of such a chain)

    def end_of(p: OperatingPoint) -> float:
        return end_points(f, p, saturating=saturating)[1] if moves and not p.centered else p.q

    drift, scatter, off = chain_drift(
        f, op.q, op.centered, depth, width, q_end=end_of(op), taps=taps, dims=dims
    )
    stood = replace(op, width=width, forward=drift, scatter=scatter, off=off, taps=taps, dims=dims)
    spread = math.sqrt(max(scatter * scatter - drift * drift, 0.0))  # (sd over the draws)
    if abs(drift) <= WIDTH_TOLERANCE + spread:  # (within ~2 standard errors of four draws)
        return _confirmed(f, stood, end_of)
    lo, hi = Q_RANGE
    if saturating:
        hi = min(hi, SATURATING_Q_MAX)
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), _GRID))
    ends_grid, tails = _end_table(f, saturating) if moves else ([], [])
    candidates = []
    for q, centered, p in _grid_points(f, sorted({op.q, 1.0, *grid[::6].tolist()}), depth):
        _, e2, m, chi, kappa, balance = p
        grad = (depth - 1) / 2 * abs(math.log(chi))
        bal, q_end = abs(math.log(balance)), q
        if moves and not centered:  # (end_points' choice; E[φ′²]/E[φ²] = χ/q uncentered)
            q_end, g = _end_choice(q, chi / q, chi ** (depth - 3), balance, ends_grid, tails)
            bal = abs(math.log(g))
        candidates.append((max(grad, bal), q, centered, q_end, e2, m, chi, kappa, balance))
    own = [c[0] for c in candidates if (c[1], c[2]) == (op.q, op.centered)]
    bound = max(TOLERANCE, abs(drift), *own)  # (what op's own point costs at this width)
    # (only points whose other costs could still win are simulated — all on the same draws)
    todo = [c for c in candidates if c[0] <= bound + 0.02]
    # (eight draws each, op's own point too: a mean of four scattered draws moved the choice
    # from one set of draws to another — logsigmoid ×50 at width 128 went 10/10 → 5/10 in band)
    points = [c[1:4] for c in todo]
    sims = chain_drifts(
        f,
        points,
        depth,
        width,
        draws=8,
        stop=min(SIMULATION_CAP, bound + 1.0),
        taps=taps,
        dims=dims,
    )
    sim = dict(zip([c[:2] for c in points], sims, strict=True))

    def ranked() -> list[tuple[Any, ...]]:
        out = []
        for known, q, centered, _, e2, m, chi, kappa, balance in todo:
            fwd, rms, share = sim[(q, centered)]
            cost = max(known, abs(fwd))
            key = (round(max(cost, TOLERANCE) / 0.02), abs(math.log(q)), centered)
            out.append((key, q, centered, e2, m, chi, kappa, balance, cost, fwd, rms, share))
        return sorted(out, key=lambda r: r[0])

    # the three best on eight draws, again on sixteen more: one set of eight draws picked
    # points with 2–8 of 10 seeds in band for the same chain (softplus ×50, width 256)
    top = {r[1:3] for r in ranked()[:3]}
    if len(top) > 1:
        chosen_pts = [c for c in todo if c[1:3] in top]
        again = chain_drifts(
            f, [c[1:4] for c in chosen_pts], depth, width, 16, first=8, taps=taps, dims=dims
        )
        for c, (a, b, o) in zip(chosen_pts, again, strict=True):
            f8, r8, o8 = sim[c[1:3]]
            sim[c[1:3]] = ((f8 + 2 * a) / 3, math.sqrt((r8**2 + 2 * b**2) / 3), (o8 + 2 * o) / 3)
        ranked_all = [r for r in ranked() if r[1:3] in top]
    else:
        ranked_all = ranked()
    best: tuple[Any, ...] | None = ranked_all[0] if ranked_all else None
    if best is None:
        return _confirmed(f, stood, end_of)
    _, q, centered, e2, m, chi, kappa, balance, cost, fwd, rms, share = best
    rule = (
        f"chosen for depth {depth} at width {width}: worst of gradient drift, simulated forward "
        f"drift, balance e^{cost:.2f} (the mean-field point q* {op.q:.3g}"
        f"{', centered' if op.centered else ''} drifts "
        f"×{math.exp(sim.get((op.q, op.centered), (drift,))[0]):.3g} at this width)"
    )
    have = 24 if len(top) > 1 else 8
    chosen = OperatingPoint(
        q,
        centered,
        e2,
        m,
        chi,
        kappa,
        balance,
        depth,
        rule,
        cost=cost,
        width=width,
        forward=fwd,
        scatter=rms,
        off=share,
        taps=taps,
        dims=dims,
    )
    return _confirmed(f, chosen, end_of, have=have)


def _confirmed(
    f: Callable[[np.ndarray], np.ndarray],
    op: OperatingPoint,
    end_of: Callable[[OperatingPoint], float],
    have: int = 4,
) -> OperatingPoint:
    """``op`` (simulated on its first ``have`` draws) simulated on more, sixteen in all, where
    one of them was off (the share of a few draws is coarse — GELU, width 64, depth 30: two of
    eight draws off, ten of sixteen others)."""
    if op.off == 0 or have >= _CONFIRM_DRAWS:
        return op
    k = _CONFIRM_DRAWS - have
    more, ms, off = chain_drift(
        f,
        op.q,
        op.centered,
        op.depth,
        op.width,
        draws=k,
        q_end=end_of(op),
        first=have,
        taps=op.taps,
        dims=op.dims,
    )
    w = have / _CONFIRM_DRAWS
    return replace(
        op,
        forward=w * op.forward + (1 - w) * more,
        scatter=math.sqrt(w * op.scatter**2 + (1 - w) * ms**2),
        off=w * op.off + (1 - w) * off,
    )


_CONFIRM_DRAWS = 16


@lru_cache(maxsize=256)
def _cached(
    act: str,
    param: float | None,
    depth: int,
    homogeneous: bool,
    saturating: bool,
    name: str,
    bias: bool = False,
    width: int = 0,
    ends: bool = False,
    taps: int = 1,
    dims: int = 1,
) -> OperatingPoint:
    if width:  # (the point without a width, checked at this one)
        op = _cached(act, param, depth, homogeneous, saturating, name, bias)
        f = activation_fn(act, param)
        return at_width(f, op, width, ends=ends, saturating=saturating, taps=taps, dims=dims)
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
    step = _step(f)
    if step is not None:
        return step
    lo, hi = Q_RANGE
    if saturating:
        hi = min(hi, SATURATING_Q_MAX)
    best: tuple[Any, ...] | None = None
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), _GRID)).tolist()
    below = np.exp(np.linspace(math.log(lo * PROBED_BELOW), math.log(lo), 3 * _GRID)).tolist()
    qs = [1.0, *grid, *(below[:-1] if probed else ())]  # 1 exactly: the classic gain
    for q, centered, p in _grid_points(f, qs, depth):
        if q < lo and best is not None and best[-1] <= TOLERANCE:
            break  # (below the range only where nothing in it is good enough)
        cost, e2, m, chi, kappa, balance = p
        # costs below TOLERANCE are all good enough, and ties (within 0.02 in log units) go
        # to q near 1 (the classic gain), then to uncentered weights
        key = (round(max(cost, TOLERANCE) / 0.02), abs(math.log(q)), centered)
        if best is None or key < best[0]:
            best = (key, q, centered, e2, m, chi, kappa, balance, cost)
    if best is None:  # pragma: no cover - an activation that is constant on every q
        raise ValueError("operating_point: the activation has no variance on Gaussian input")
    _, q, centered, e2, m, chi, kappa, balance, cost = best
    step = PROBED_STEP if probed else None
    if bias and cost > TOLERANCE and not centered:
        edge = edge_of_chaos(f, depth, min(hi, 1.0), step=step)
        if edge is not None:
            return edge
    if bias and cost > TOLERANCE:
        # an activation with a mean (softplus, sigmoid): the edge of chaos with centered
        # weights, where it does better than the grid — χ = 1 and a stable q-map leave only
        # the end layers' balance (softplus at depth 30: e^1.16 on the grid — output rms 2.5,
        # first/last gradients 9.6 measured — against e^0.04); GELU/SiLU keep the grid's
        # point (their curvature budget forces q ≈ 0.1–0.25, balance ×7–20)
        edge = edge_of_chaos(f, depth, min(hi, 1.0), centered=True, step=step)
        free = edge is not None and edge.q >= min(hi, 1.0) * (1 - 1e-9)  # (its curvature not
        # binding: softplus ×50 at width 128, where the budget pulls q to 0.57, put 5 of 10
        # draws in band against the grid point's 10, gradients first/last ×26)
        if free and abs(math.log(edge.balance)) < cost - 0.02:
            return replace(edge, cost=abs(math.log(edge.balance)))
    rule = f"chosen for depth {depth}: worst of gradient drift, forward drift, balance e^{cost:.2f}"
    return OperatingPoint(q, centered, e2, m, chi, kappa, balance, depth, rule, cost=cost)


STEP_SLOPE = 1e-6
"""``E[φ′²]·q/E[φ²]`` below which an activation is piecewise constant (:func:`_step`)."""


def _step(f: Callable[[np.ndarray], np.ndarray]) -> OperatingPoint | None:
    """A piecewise-constant activation — a step ``(x > 0).float()``, ``sign`` — has no
    derivative: χ = 0 and no operating point balances a gradient that does not flow (the
    grid's balance was ``log 0``: planning raised "math domain error"). Its output's moments
    are those at unit pre-activations (a step at 0 gives the same at every scale); gradients
    pass only where its backward says (a straight-through estimator, Bengio et al. 2013).
    None for any activation with a slope."""
    e2, m, d = moments(f, 1.0)
    if e2 <= 0 or d > STEP_SLOPE * e2:
        return None
    e2h, _, _ = moments(f, 1.0 + 1e-3)
    kappa = math.log(e2h / e2) / math.log1p(1e-3) if e2h > 0 else 0.0
    rule = (
        "piecewise constant (a step): no derivative — its output's scale does not follow its "
        "input's, and gradients pass only where its backward says (a straight-through "
        "estimator); unit pre-activations"
    )
    return OperatingPoint(1.0, False, e2, m, 0.0, kappa, 1.0, 1, rule)


PROBED_STEP = 5e-3
"""The finite-difference step of a probed activation's derivatives in :func:`edge_of_chaos`: a
probed function is a table interpolated every 10⁻³, whose slope jumps at every node — at
steps of 10⁻⁶ and 10⁻⁴ its second derivative was spikes that put every point over the
curvature budget (LogSigmoid, softplus written as a module of the model's own, never got one).
A kink still puts the curvature far over it."""


def edge_of_chaos(
    f: Callable[[np.ndarray], np.ndarray],
    depth: int,
    q_max: float = Q_RANGE[1],
    centered: bool = False,
    step: float | None = None,
) -> OperatingPoint | None:
    """The edge-of-chaos point with biases for a chain of ``depth`` layers (module docstring):
    the largest ``q`` on the grid with ``σ_b² ≥ 0``, a stable fixed point and network curvature
    ``(depth − 1)·C″(1) ≤`` :data:`CURVATURE_BUDGET`; None where no ``q`` qualifies or the
    activation's mean is not ~0 (a bias would then shift it).

    ``centered``: with weights centered per output unit, so an activation's mean (softplus',
    sigmoid's) does not reach the next pre-activation: the q-map is ``q = σ_w²·Var[φ] + σ_b²``,
    so ``σ_b² = q − Var[φ]/E[φ′²]`` and the mean no longer rules a point out; the end layers'
    balance is then ``G² = 1/(q·E[φ²])`` (the last layer's weight gradient still sees the
    mean), as on the grid (:func:`_point`).

    ``step``: the finite-difference step of the derivatives (:data:`PROBED_STEP` for a probed
    activation's table; analytic ones keep 10⁻⁶ and 10⁻⁴).

    Examples:
        >>> op = edge_of_chaos(np.tanh, 50)
        >>> round(op.q, 3), round(op.chi, 6), round(op.bias_var, 4)
        (0.238, 1.0, 0.0073)
    """
    d1 = derivative(f) if step is None else derivative(f, step)
    d2 = derivative(d1, 1e-4 if step is None else step)
    best = None
    grid = np.exp(np.linspace(math.log(Q_RANGE[0] / 10), math.log(q_max), _GRID * 2)).tolist()
    for q in grid:
        e2, m, d = moments(f, q)
        if d <= 0 or e2 <= 0 or (not centered and abs(m) > 1e-6 * math.sqrt(e2)):
            return None
        s = e2 - m * m if centered else e2  # (what the weights carry)
        if s <= 1e-12 * e2:
            continue
        sw2 = 1.0 / d
        b = q - s * sw2
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
    e2h, mh, _ = moments(f, q * (1 + h))
    s, sh = (e2 - m * m, e2h - mh * mh) if centered else (e2, e2h)
    kappa = math.log(sh / s) / math.log1p(h)
    slope = kappa * sw2 * s / q  # the q-map's slope at its fixed point: κ/χ₀
    if not slope < 1:  # (an unstable fixed point is no operating point: relu(x)², probed, has a
        return None  # slope ≥ 1 at every q — χ = 1 there amplified each example's deviations)
    # G² = E[φ′²]/E[φ²]² (plain); 1/(q·E[φ²]) centered
    balance = math.sqrt(1.0 / (q * e2)) if centered else math.sqrt(1.0 / sw2) / e2
    rule = (
        f"edge of chaos for depth {depth}: σ_w² {sw2:.4g} (χ = 1)"
        + (", weights centered (the activation's mean does not pass)" if centered else "")
        + f", q-map slope {slope:.3f}, network C''(1) {curvature:.3g} ≤ {CURVATURE_BUDGET:g}"
    )
    return OperatingPoint(q, centered, e2, m, 1.0, slope, balance, depth, rule, b)


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
    grid, tails = _end_table(activation, saturating)
    e2, _, d = moments(activation, op.q)
    q_e, g = _end_choice(op.q, d / e2, op.chi ** (op.depth - 3), op.balance, grid, tails)
    return op.q, q_e, g


def _end_table(
    f: Callable[[np.ndarray], np.ndarray], saturating: bool
) -> tuple[list[float], list[float]]:
    """The last hidden layer's candidate ``q_e`` over the grid (``q ≤ 4`` for saturating
    activations) and each one's factor ``q_e·E[φ′²](q_e)/E[φ²](q_e)²`` in :func:`end_points`'
    ``G²``."""
    lo, hi = Q_RANGE
    if saturating:
        hi = min(hi, SATURATING_Q_MAX)
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), _GRID))
    e2s = gaussian_expectations(lambda x: f(x) ** 2, grid)
    df = derivative(f)
    ds = gaussian_expectations(lambda x: df(x) ** 2, grid)
    ok = e2s > 0
    return grid[ok].tolist(), (grid[ok] * ds[ok] / (e2s[ok] * e2s[ok])).tolist()


def _end_choice(
    q: float,
    head: float,
    mid: float,
    balance: float,
    grid: list[float],
    tails: list[float],
) -> tuple[float, float]:
    """``(q_e, G)``: the ``q_e`` of :func:`_end_table` whose ``G = √(head·mid·tail)`` is nearest
    1 (ties: ``q_e`` nearest ``q``), or ``(q, balance)`` when none is closer than staying."""
    best = (abs(math.log(balance)), 0.0, q, balance)
    for q_e, tail in zip(grid, tails, strict=True):
        g2 = head * mid * tail
        if g2 <= 0:
            continue
        g = math.sqrt(g2)
        key = (abs(math.log(g)), abs(math.log(q_e / q)))
        if key < best[:2]:
            best = (*key, q_e, g)
    return best[2], best[3]
