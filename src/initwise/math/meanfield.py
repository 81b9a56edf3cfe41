r"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2016). NumPy only.

For a wide layer ``h_{l+1} = W φ(h_l) + b`` with ``Var[W_ij] = σ_w²/fan_in`` and
``Var[b] = σ_b²``, pre-activations are Gaussian with second moment ``q_l`` evolving by the
**variance map**::

    q_{l+1} = σ_w² · E[φ(√q_l · z)²] + σ_b²,          z ~ N(0, 1)

The derivative of the correlation map at c = 1 is

    χ = σ_w² · E[φ'(√q* · z)²]

(χ < 1: ordered phase, signals and gradients vanish with depth; χ > 1: chaotic phase, they
explode; χ = 1: the edge of chaos). Back-propagated gradient variance changes by χ per layer
(for fan_in = fan_out). Correlations between two inputs approach their fixed point with depth
scale ``ξ_c = −1 / ln χ``; Schoenholz et al. find networks deeper than about ``6·ξ_c`` untrainable.

He init for ReLU is σ_w² = 2, σ_b² = 0: the variance map is q_{l+1} = q_l and χ = 1 exactly; Xavier
(σ_w² = 1) gives q_{l+1} = q_l / 2, i.e. a ``2^−L`` decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import _validate as v
from .gains import (
    activation_fn,
    derivative,
    expectation_at,
    gaussian_expectation,
    gaussian_expectations,
    gaussian_nodes,
    kinks_of,
)
from .operating import shifted_moments

ActLike = str | Callable[..., Any]


def _act(activation: ActLike, param: float | None) -> Callable[[np.ndarray], np.ndarray]:
    return activation_fn(activation, param)


def variance_map(
    q: float, sigma_w2: float, sigma_b2: float, activation: ActLike, param: float | None = None
) -> float:
    """``σ_w² · E[φ(√q z)²] + σ_b²``."""
    f = _act(activation, param)
    return sigma_w2 * gaussian_expectation(lambda x: f(x) ** 2, q) + sigma_b2


def chi(q: float, sigma_w2: float, activation: ActLike, param: float | None = None) -> float:
    """``σ_w² · E[φ'(√q z)²]``: per-layer growth of gradient variance (and the slope of the
    correlation map at c = 1)."""
    df = derivative(_act(activation, param))
    return sigma_w2 * gaussian_expectation(lambda x: df(x) ** 2, q)


def chis(
    qs: Sequence[float] | np.ndarray,
    sigma_w2: float,
    activation: ActLike,
    param: float | None = None,
    *,
    panel: float = 0.25,
) -> np.ndarray:
    """:func:`chi` at every ``q`` of ``qs`` from one quadrature over all of them
    (:func:`~initwise.math.gains.gaussian_expectations`, whose ``panel`` this passes on)."""
    df = derivative(_act(activation, param))
    ks = kinks_of(activation)
    return sigma_w2 * gaussian_expectations(lambda x: df(x) ** 2, qs, panel=panel, kinks=ks)


def fixed_point(
    sigma_w2: float,
    sigma_b2: float,
    activation: ActLike,
    param: float | None = None,
    *,
    q0: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> float:
    """The fixed point ``q*`` of the variance map, by iteration from ``q0``.

    Raises ``ValueError`` if the map diverges (``σ_w²`` too large for an unbounded activation).
    """
    v.positive("sigma_w2", sigma_w2, where="fixed_point")
    v.positive("sigma_b2", sigma_b2, where="fixed_point", allow_zero=True)
    q = q0
    for _ in range(max_iter):
        nq = variance_map(max(q, 1e-300), sigma_w2, sigma_b2, activation, param)
        if not math.isfinite(nq) or nq > 1e12:
            raise ValueError(f"variance map diverges for sigma_w2={sigma_w2}: no fixed point")
        if abs(nq - q) <= tol * max(1.0, q):
            return nq
        q = nq
    return q


@lru_cache(maxsize=2)
def _grid2(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    out = z1.ravel(), z2.ravel(), np.outer(w, w).ravel()
    for a in out:
        a.flags.writeable = False  # cached: an in-place write must fail loudly
    return out


def correlation_map(
    c: float,
    q: float,
    sigma_w2: float,
    sigma_b2: float,
    activation: ActLike,
    param: float | None = None,
    *,
    nodes: int = 80,
) -> float:
    r"""``c_{l+1} = (σ_w² E[φ(u1) φ(u2)] + σ_b²) / q_{l+1}`` with ``u1 = √q z1``,
    ``u2 = √q (c z1 + √(1−c²) z2)`` (Poole et al. 2016, eq. 4), by 2-D Gauss–Hermite
    quadrature."""
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"correlation c must be in [-1, 1], got {c}")
    f = _act(activation, param)
    z1, z2, w = _grid2(nodes)
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(max(0.0, 1 - c * c)) * z2)
    num = sigma_w2 * float(np.dot(w, f(u1) * f(u2))) + sigma_b2
    # clamp: 2-D and 1-D quadrature round differently, which can put c a hair above 1
    return max(-1.0, min(1.0, num / variance_map(q, sigma_w2, sigma_b2, activation, param)))


def gaussian_cross(
    f: Callable[[np.ndarray], np.ndarray],
    a: tuple[float, float],
    b: tuple[float, float],
    cross: float,
) -> float:
    r"""``E[φ(u)·φ(v)]`` for jointly Gaussian ``u``, ``v`` with second moments and means
    ``a = (E[u²], E[u])``, ``b = (E[v²], E[v])`` and ``E[u·v] = cross``: the kernel of two inputs
    through one activation (Poole et al. 2016, eq. 4, with means). Over ``u`` and then ``v``
    given ``u`` — ``v | u ~ N(μ_v + ρ σ_v/σ_u·(u − μ_u), σ_v²(1 − ρ²))``,
    ``ρ = (cross − μ_u μ_v)/(σ_u σ_v)`` clipped to [−1, 1] — each by the composite
    Gauss–Legendre rule of :func:`initwise.math.gains.gaussian_nodes` with panels of 0.5:
    within 2e-6 of the arc-cosine kernel for ReLU (Cho & Saul 2009) at ρ from −0.9 to 0.95, in
    ~1 ms (a 2-D Gauss–Hermite rule of 80² nodes was 1 % off at ReLU's kink)."""
    (sa, ma), (sb, mb) = a, b
    va, vb = max(sa - ma * ma, 0.0), max(sb - mb * mb, 0.0)

    def at(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(f(x), dtype=np.float64)

    if va <= 1e-12 * max(sa, 1e-300) or vb <= 1e-12 * max(sb, 1e-300):
        # (one side deterministic: E[φ(u)]·E[φ(v)], each side's E[φ] as the walk takes it)
        return shifted_moments(at, sa, ma)[1] * shifted_moments(at, sb, mb)[1]
    su, sv = math.sqrt(va), math.sqrt(vb)
    rho = max(-1.0, min(1.0, (cross - ma * mb) / (su * sv)))
    x1, w1 = gaussian_nodes(va, 0.5)
    given = mb + rho * (sv / su) * x1  # E[v | u]
    rest = vb * (1.0 - rho * rho)
    if rest <= 1e-12 * vb:
        return float(np.dot(w1, at(ma + x1) * at(given)))
    x2, w2 = gaussian_nodes(rest, 0.5)
    inner = at(given[:, None] + x2[None, :]) @ w2
    return float(np.dot(w1, at(ma + x1) * inner))


@dataclass(frozen=True)
class DepthScales:
    """Fixed point, χ at it, and the depth scales of Schoenholz et al. 2016."""

    q_star: float
    chi: float
    xi_c: float  # correlation depth scale, inf at χ = 1
    trainable_depth: float  # 6·ξ_c, the empirical trainability limit

    @property
    def phase(self) -> str:
        if abs(self.chi - 1) < 1e-3:
            return "critical"
        return "ordered" if self.chi < 1 else "chaotic"


def depth_scales(
    sigma_w2: float, sigma_b2: float, activation: ActLike, param: float | None = None
) -> DepthScales:
    """``q*``, ``χ(q*)``, ``ξ_c = −1/ln χ`` and ``6·ξ_c`` for a deep network of identical layers.

    In the chaotic phase the relevant χ is that of the correlation map at its (non-trivial)
    fixed point c* < 1; ξ_c = −1/ln χ_{c*} (Schoenholz et al. 2016, eq. 9). Where that slope can
    not be estimated reliably (strongly saturated activations at large q*, where the 2-D
    quadrature of the correlation map is too coarse), χ₁ is used instead.
    """
    q = fixed_point(sigma_w2, sigma_b2, activation, param)
    x1 = chi(q, sigma_w2, activation, param)
    xc = x1
    if x1 > 1:  # chaotic: slope of the correlation map at its fixed point c* < 1
        c = 0.5
        for _ in range(500):
            c_new = correlation_map(c, q, sigma_w2, sigma_b2, activation, param)
            if abs(c_new - c) < 1e-10:
                break
            c = c_new
        h = 1e-5
        xc = (
            correlation_map(min(c + h, 1.0), q, sigma_w2, sigma_b2, activation, param)
            - correlation_map(c - h, q, sigma_w2, sigma_b2, activation, param)
        ) / (min(c + h, 1.0) - (c - h))
        if not (math.isfinite(xc) and 0 < xc < 1) or c > 1 - 1e-6:
            xc = x1  # degenerate estimate (saturated, step-like φ at large q*): use χ₁
    xi = math.inf if abs(math.log(xc)) < 1e-9 else 1.0 / abs(math.log(xc))
    return DepthScales(q, x1, xi, 6 * xi)


@dataclass(frozen=True)
class ChainLayer:
    """One layer of a plain chain for :func:`propagate`: ``σ_w² = fan_in·E[w²]``,
    ``σ_b² = E[b²]``, the activation after it, and ``fan_out/fan_in`` for the backward pass."""

    sigma_w2: float
    sigma_b2: float
    activation: ActLike
    param: float | None = None
    out_over_in: float = 1.0


def propagate(
    layers: Sequence[ChainLayer],
    input_second_moment: float,
    output_grad_var: float = 1.0,
    *,
    gradients: bool = True,
    panel: float | None = None,
) -> tuple[list[float], list[float]]:
    r"""Predicted pre-activation second moments ``q_l`` (forward) and gradient variances
    ``δ_l`` at each layer's output (backward) for a plain chain.

    Forward: ``q_1 = σ_w,1²·m_0 + σ_b,1²``, then ``q_{l+1} = σ_w,l+1²·E[φ_l(√q_l z)²] + σ_b²``.
    Backward: ``δ_L = output_grad_var``, ``δ_l = δ_{l+1}·σ_w,l+1²·(fan_out/fan_in)_{l+1}·
    E[φ_l'(√q_l z)²]``. ``gradients=False``: the forward half only (the list of ``δ_l`` empty;
    one quadrature per layer fewer). ``panel``: the quadrature's widest panel
    (:func:`~initwise.math.gains.gaussian_expectations`; None: :func:`gaussian_expectation`'s).
    """
    if panel is not None:
        v.positive("panel", panel, where="propagate")
    qs: list[float] = []
    m = input_second_moment
    squares: dict[tuple[Any, Any], tuple[Callable[[np.ndarray], np.ndarray], Any]] = {}
    for layer in layers:
        q = layer.sigma_w2 * m + layer.sigma_b2
        qs.append(q)
        a = layer.activation
        key = (a if isinstance(a, str) else id(a), layer.param)
        if key not in squares:  # φ² and its kinks once per activation, not once per layer
            f = _act(layer.activation, layer.param)
            squares[key] = (lambda x, f=f: f(x) ** 2), kinks_of(layer.activation)
        f2, ks = squares[key]
        q = max(q, 1e-300)
        if panel is None:
            m = gaussian_expectation(f2, q)
        else:
            m = expectation_at(f2, q, panel, tuple(float(k) for k in ks))
    if not gradients:
        return qs, []
    grads = [0.0] * len(layers)
    if layers:
        grads[-1] = output_grad_var
        for i in range(len(layers) - 2, -1, -1):
            nxt = layers[i + 1]
            q = max(qs[i], 1e-300)
            if panel is None:
                d = chi(q, 1.0, layers[i].activation, layers[i].param)
            else:
                d = float(chis([q], 1.0, layers[i].activation, layers[i].param, panel=panel)[0])
            grads[i] = grads[i + 1] * nxt.sigma_w2 * nxt.out_over_in * d
    return qs, grads


SIMULATED_ENTRIES = 1 << 16
"""Matrices up to this many entries get :func:`normalized_weight_variance` by simulation (the
Bai–Yin edge is 10–50 % off for small or very oblong ones); larger ones by the edge formula
(within ~2–4 %, measured against 5 draws at 256×128 … 512×4608)."""


@lru_cache(maxsize=512)
def normalized_weight_variance(rows: int, cols: int, how: str = "spectral") -> float:
    """Per-entry ``E[w²]`` of a ``rows × cols`` matrix of i.i.d. draws after the layer's own
    normalization, which fixes the scale whatever was drawn:

    * ``"spectral"`` — divided by its largest singular value (``spectral_norm``, Miyato et al.
      2018): ``E[‖G‖²_F / σ_max(G)²] / (rows·cols)``, exact for a single row or column
      (``1/(rows·cols)``), the mean of 4 seeded Gaussian draws up to :data:`SIMULATED_ENTRIES`
      entries, else the Bai–Yin edge ``σ_max ≈ √rows + √cols``: ``1/(√rows + √cols)²``;
    * ``"orthogonal"`` — (semi-)orthogonal: ``‖W‖²_F = min(rows, cols)``.

    A layer computing with such a weight has ``E[y²] = fan_in · E[w²] · E[x²]``.

    Examples:
        >>> round(normalized_weight_variance(1, 256), 8) == round(1 / 256, 8)
        True
        >>> round(normalized_weight_variance(1024, 1024) * 1024, 4)  # 1/(2·32)² · 1024
        0.25
    """
    v.positive_int("rows", rows)
    v.positive_int("cols", cols)
    n = rows * cols
    if how == "orthogonal":
        return min(rows, cols) / n
    if how != "spectral":
        raise ValueError(f"how must be 'spectral' or 'orthogonal', got {how!r}")
    if rows == 1 or cols == 1:
        return 1.0 / n
    if n > SIMULATED_ENTRIES:
        return 1.0 / (math.sqrt(rows) + math.sqrt(cols)) ** 2
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(4):
        g = rng.standard_normal((rows, cols))
        ratios.append(float((g * g).sum()) / float(np.linalg.norm(g, 2)) ** 2)
    return float(np.mean(ratios)) / n
