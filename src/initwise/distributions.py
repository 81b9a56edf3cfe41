r"""Elementwise distributions: the one switch from a distribution to a draw.

An elementwise scheme (normal, uniform, truncated normal, constant, and variance scaling, which
is one of the first three with a std from the fans) states its distribution once, as a
:class:`Dist` value: ``kind`` plus its parameters. Everything else derives from it:

* :meth:`Dist.sample` draws through a :class:`~initwise._backend.Backend` (the NumPy
  ``initwise.numpy`` functions and the torch ``torch.nn.init``-style functions);
* :meth:`Dist.stream_args` gives the counter-based streams of :mod:`initwise.sampling` /
  :mod:`initwise.kernels` their form ``scale · standard draw + shift`` (with standardized
  truncation bounds);
* :meth:`Dist.formula` is the text of plans and tables.

The truncated normal is here once, with its constants: the correction of JAX/TF/Keras'
``truncated_normal`` variance scaling, the window mass under which rejection gives way to the
inverse CDF, and the mirrored window that keeps Φ's relative precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import Array, Backend

TRUNC_STD_CORRECTION = 0.87962566103423978
"""Std of a standard normal truncated to [-2, 2]; dividing by it restores unit variance
(the constant of JAX/TF/Keras ``variance_scaling(distribution="truncated_normal")``)."""

NARROW_MASS = 0.3
"""A truncation window holding at most this much probability is drawn by the inverse CDF;
wider ones by redrawing out-of-range values (which then succeeds with probability > 0.3)."""

REJECTION_TRIES = 1000
"""Redraw rounds before the backend path gives up (probability < 0.7^1000 ≈ 1e-155)."""

KINDS = ("constant", "normal", "uniform", "trunc")


@dataclass(frozen=True)
class Dist:
    """An elementwise distribution.

    ============ =========================================================================
    kind         meaning
    ============ =========================================================================
    constant     ``mean`` everywhere
    normal       ``N(mean, std²)``
    uniform      ``U(low, high)``
    trunc        ``N(mean, std²)`` conditioned on ``low ≤ x ≤ high`` (absolute bounds)
    ============ =========================================================================
    """

    kind: str
    mean: float = 0.0
    std: float = 1.0
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Dist: kind must be one of {KINDS}, got {self.kind!r}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def constant(cls, value: float) -> Dist:
        return cls("constant", mean=value, std=0.0)

    @classmethod
    def normal(cls, mean: float, std: float) -> Dist:
        return cls("normal", mean=mean, std=std)

    @classmethod
    def uniform(cls, low: float, high: float) -> Dist:
        return cls("uniform", low=low, high=high)

    @classmethod
    def trunc(cls, mean: float, std: float, low: float, high: float) -> Dist:
        return cls("trunc", mean=mean, std=std, low=low, high=high)

    # ------------------------------------------------------------------ derived forms
    def standard_bounds(self) -> tuple[float, float]:
        """Truncation bounds in units of ``std`` around ``mean``."""
        return (self.low - self.mean) / self.std, (self.high - self.mean) / self.std

    def stream_args(self) -> tuple[str, float, float, float, float]:
        """``(kind, scale, shift, a, b)`` for :mod:`initwise.kernels`: values are ``scale ·
        draw + shift`` where draw is U[0, 1) (uniform), N(0, 1) (normal) or N(0, 1) restricted to
        [a, b] (trunc)."""
        if self.kind == "constant":
            return "constant", 0.0, self.mean, -2.0, 2.0
        if self.kind == "normal":
            return "normal", self.std, self.mean, -2.0, 2.0
        if self.kind == "uniform":
            return "uniform", self.high - self.low, self.low, -2.0, 2.0
        a, b = self.standard_bounds()
        return "trunc", self.std, self.mean, a, b

    def sample(self, backend: Backend, shape: tuple[int, ...]) -> Array:
        """Draw an array of ``shape`` through ``backend`` — the one switch."""
        if self.kind == "constant":
            return backend.zeros(shape) + self.mean
        if self.kind == "normal":
            return backend.normal(shape, self.mean, self.std)
        if self.kind == "uniform":
            return backend.uniform(shape, self.low, self.high)
        return truncated_normal(backend, shape, self.mean, self.std, self.low, self.high)


# ----------------------------------------------------------------------------- truncation


def narrow(a: float, b: float, ndtr: Any) -> bool:
    """Whether the standard window [a, b] is drawn by the inverse CDF (mass ≤ NARROW_MASS)."""
    return ndtr(b) - ndtr(a) <= NARROW_MASS


def mirrored_window(a: float, b: float) -> tuple[bool, float, float]:
    """``(flip, lo, hi)``: a window right of 0 is mirrored into the lower tail, where Φ keeps
    relative precision (so far-tail windows neither give ±inf nor pile up at the bounds,
    pytorch#145498); values are then ``−z`` when ``flip``."""
    if a > 0:
        return True, -b, -a
    return False, a, b


FAR_TAIL = 1e-30
"""A mirrored window whose upper CDF value Φ(hi) is below this is drawn in log space
(:func:`far_tail`): float32 uniforms can not resolve Φ there (Φ(−14) = 7.8e−45 is subnormal) and
float64 ones fail from Φ(−38) = 2.9e−316."""


def far_tail(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    r"""Inverse CDF on the lower-tail window ``[lo, hi]`` (``hi ≤ 0``, ``lo`` may be ``−∞``) in
    log space, exact to float64 rounding however far out: with ``ℓ(x) = log Φ(x)``
    (``scipy.special.log_ndtr``) and ``u ∈ [0, 1)``,

    ``z = ℓ⁻¹( ℓ(hi) + log((1 − u) + u·e^{ℓ(lo) − ℓ(hi)}) )``

    (``ndtri_exp``), i.e. ``Φ(z) = Φ(hi) − u·(Φ(hi) − Φ(lo))`` without forming Φ. ``u = 0`` maps
    to ``hi``, so a one-sided window never yields ``−∞``."""
    from scipy import special

    u = np.asarray(u, dtype=np.float64)
    la, lb = float(special.log_ndtr(lo)), float(special.log_ndtr(hi))
    ratio = math.exp(la - lb) if la > -math.inf else 0.0
    z = special.ndtri_exp(lb + np.log((1.0 - u) + u * ratio))
    return np.clip(z, lo, hi)


def truncated_normal(
    backend: Backend, shape: tuple[int, ...], mean: float, std: float, lo: float, hi: float
) -> Array:
    r"""Exact ``N(mean, std²)`` restricted to ``[lo, hi]`` through a backend.

    Wide windows (mass > :data:`NARROW_MASS`) redraw the out-of-range entries of a normal
    sample; narrow ones use the inverse CDF on the :func:`mirrored_window`.
    """
    alpha, beta = (lo - mean) / std, (hi - mean) / std
    if not narrow(alpha, beta, backend.ndtr):
        out = backend.normal(shape, mean, std)
        for _ in range(REJECTION_TRIES):
            bad = (out < lo) | (out > hi)
            if not bad.any():
                return out
            out = backend.where(bad, backend.normal(shape, mean, std), out)
        raise RuntimeError("truncated_normal: rejection sampling did not converge")
    flip, alpha, beta = mirrored_window(alpha, beta)
    if backend.ndtr(beta) < FAR_TAIL:
        z = backend.asarray(
            far_tail(backend.to_numpy(backend.uniform(shape, 0.0, 1.0)), alpha, beta)
        )
    else:
        u = backend.uniform(shape, backend.ndtr(alpha), backend.ndtr(beta))
        z = backend.ndtri(u).clip(alpha, beta)
    return mean + std * (-z if flip else z)


def variance_scaling(distribution: str, std: float) -> Dist:
    """The :class:`Dist` of ``VarianceScaling`` with entry std ``std``: ``N(0, std²)``,
    ``U(±√3·std)``, or a standard normal truncated at ±2 scaled by ``std / 0.8796…`` so the
    truncated variance is ``std²`` (JAX/TF semantics)."""
    if distribution == "normal":
        return Dist.normal(0.0, std)
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return Dist.uniform(-bound, bound)
    if distribution == "truncated_normal":
        sigma = std / TRUNC_STD_CORRECTION
        return Dist.trunc(0.0, sigma, -2.0 * sigma, 2.0 * sigma)
    raise ValueError(f"variance_scaling: unknown distribution {distribution!r}")


VARIANCE_SCALING_TEXT = {
    "normal": "N(0, std²)",
    "uniform": "U(±√3·std)",
    "truncated_normal": "TruncN(±2σ, std²)",
}
"""How each ``VarianceScaling`` distribution reads in a formula."""
