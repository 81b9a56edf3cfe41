r"""Kernel shaping: the activation transforms of Deep Kernel Shaping and Tailored Activation
Transformation, solved from the network's structure.

Sources: Martens, Ballard, Desjardins, Swirszcz, Dalibard, Sohl-Dickstein, Schoenholz (2021),
"Rapid training of deep neural networks without skip connections or normalization layers using
Deep Kernel Shaping", arXiv 2110.01765 (DKS); Zhang, Botev, Martens (2022), "Deep Learning
without Shortcuts: Shaping the Kernel with Tailored Rectifiers", arXiv 2203.08120 (TAT);
reference code google-deepmind/dks (``dks.base.activation_transform``), whose search this module
follows so that it finds the same constants.

An activation φ is replaced by

.. math::  \hat\phi(x) = \gamma\,\bigl(\phi(\alpha x + \beta) + \delta\bigr)

(``input_scale`` α, ``input_shift`` β, ``output_shift`` δ, ``output_scale`` γ). With
scaled-uniform-orthogonal weights, zero biases and inputs of unit q per location, each layer's
kernel is given by the *local* maps of φ̂ for x ~ N(0, 1):

* ``Q(1)   = E[φ̂(x)²]``  (made 1 by γ),
* ``Q'(1)  = ½·E[φ̂(x)²(x² − 1)]``  (= E[φ̂ φ̂' x] by Gaussian integration by parts),
* ``C(0)   = E[φ̂(x)]²``,  ``C'(1) = E[φ̂'(x)²]``,  ``C''(1) = E[φ̂''(x)²]``  (given Q(1) = 1).

The conditions on the whole network f are stated through its *subnetwork maximizing function*
``M(x, r)`` (TAT App. B): the network's C-map value at ``x`` when every nonlinear layer's local
map is ``r``, maximized over the network and its residual branches (:class:`Topology`).

* **DKS**: Q(1) = 1, Q'(1) = 1, C(0) = 0 and max_f C'_f(1) = ζ (default 1.5): the local slope
  ``s`` solves ``M(1, y ↦ s·y) = ζ`` (a chain of L layers: s = ζ^{1/L}).
* **TAT, smooth φ**: Q(1) = 1, Q'(1) = 1, C'(1) = 1 and max_f C''_f(1) = τ (default 0.3): the
  local curvature ``k`` solves ``M(0, y ↦ k + y) = τ`` (a chain: k = τ/L).
* **TAT, Leaky ReLU**: φ̂ = √(2/(1+s²))·LReLU_s with the slope s solving max_f C_f(0) = η
  (default 0.9), the Leaky ReLU C map being
  ``C_s(c) = [(1−s)²(√(1−c²) + (π − arccos c)·c)/π + 2sc] / (1 + s²)``.

The Gaussian means use Gauss–Legendre quadrature on [−10, 10] split at the activation's kinks
(a few hundred nodes instead of dks's 100,000), and φ', φ'' come from 5-point finite differences
whose stencils do not straddle a kink. NumPy/SciPy only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import activations as A

DEFAULTS = {"zeta": 1.5, "tau": 0.3, "eta": 0.9, "q_slope": 1.0}
"""The papers' defaults: DKS ζ = 1.5 (C'_f(1) target), TAT τ = 0.3 (C''_f(1)) and η = 0.9
(C_f(0) for Leaky ReLU); the local Q slope 1."""

METHODS = ("dks", "tat")
_LIMIT = 10.0  # the integration interval [-10, 10] (dks's)
_NODES = 160  # Gauss–Legendre nodes per segment
_H = 1e-3  # finite-difference step in the activation's own input


# ----------------------------------------------------------------------------- the transform


@dataclass(frozen=True)
class Transform:
    """A transformed activation ``γ·(φ(α·x + β) + δ)`` (``param``: φ's own parameter, e.g. the
    Leaky ReLU slope TAT chooses), with what it was solved for."""

    activation: str
    param: float | None = None
    input_scale: float = 1.0
    input_shift: float = 0.0
    output_shift: float = 0.0
    output_scale: float = 1.0
    method: str = "dks"
    target: str = ""
    """The condition solved for, in words (``"C'_f(1) = 1.5: local C'(1) = 1.0083"``)."""

    def as_dks(self) -> dict[str, float]:
        """The constants under the ``dks`` package's names (``negative_slope`` for the Leaky
        ReLU slope; NaN where there is none), for comparing with it."""
        return {
            "input_scale": self.input_scale,
            "input_shift": self.input_shift,
            "output_shift": self.output_shift,
            "output_scale": self.output_scale,
            "negative_slope": self.param if self.param is not None else math.nan,
        }

    def formula(self) -> str:
        name = self.activation if self.param is None else f"{self.activation}({self.param:.6g})"
        inner = "x"
        if self.input_scale != 1.0:
            inner = f"{self.input_scale:.6g}·x"
        if self.input_shift:
            inner += f" {'+' if self.input_shift > 0 else '−'} {abs(self.input_shift):.6g}"
        body = f"{name}({inner})"
        if self.output_shift:
            sign = "+" if self.output_shift > 0 else "−"
            body = f"({body} {sign} {abs(self.output_shift):.6g})"
        return f"{self.output_scale:.6g}·{body}" if self.output_scale != 1.0 else body

    def to_dict(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "param": self.param,
            "input_scale": self.input_scale,
            "input_shift": self.input_shift,
            "output_shift": self.output_shift,
            "output_scale": self.output_scale,
            "method": self.method,
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Transform:
        if not isinstance(d, dict):
            raise ValueError(f"an activation transform must be an object, got {d!r}")
        known = {f for f in cls.__dataclass_fields__}
        extra = set(d) - known
        if extra:
            raise ValueError(f"activation transform: unknown keys {sorted(extra)}")
        if not isinstance(d.get("activation"), str):
            raise ValueError("activation transform: 'activation' must be a name")
        if A.canonical(d["activation"]) is None:
            raise ValueError(
                f"activation transform: unknown activation {d['activation']!r}; register it "
                "with initwise.register_activation before loading the plan"
            )
        out: dict[str, Any] = {"activation": A.canonical(d["activation"])}
        for k in ("param", "input_scale", "input_shift", "output_shift", "output_scale"):
            v = d.get(k, None if k == "param" else cls.__dataclass_fields__[k].default)
            if v is None and k == "param":
                out[k] = None
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"activation transform: {k!r} must be a finite number, got {v!r}")
            out[k] = float(v)
        if out["output_scale"] == 0 or out["input_scale"] == 0:
            raise ValueError("activation transform: input_scale and output_scale must be non-zero")
        method = d.get("method", "dks")
        if method not in METHODS:
            raise ValueError(f"activation transform: method must be one of {METHODS}")
        return cls(**out, method=method, target=str(d.get("target", "")))


# ----------------------------------------------------------------------------- quadrature


@lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(n)
    t.flags.writeable = w.flags.writeable = False  # cached: an in-place write must fail loudly
    return t, w


def _gauss_nodes(breaks: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(x)], x ~ N(0, 1): Gauss–Legendre on [−10, 10] split at
    ``breaks`` (weights include the Gaussian density)."""
    cuts = sorted({float(b) for b in breaks if -_LIMIT < b < _LIMIT})
    edges = [-_LIMIT, *cuts, _LIMIT]
    t, w = _legendre(_NODES)
    xs, ws = [], []
    for lo, hi in itertools.pairwise(edges):
        if hi - lo < 1e-12:
            continue
        half = 0.5 * (hi - lo)
        x = lo + half * (t + 1.0)
        xs.append(x)
        ws.append(w * half * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    return np.concatenate(xs), np.concatenate(ws)


_STENCILS = {
    # offsets, first-derivative weights (× 1/h), second-derivative weights (× 1/h²)
    "central": ((-2, -1, 0, 1, 2), (1, -8, 0, 8, -1), (-1, 16, -30, 16, -1)),
    "forward": ((0, 1, 2, 3, 4), (-25, 48, -36, 16, -3), (35, -104, 114, -56, 11)),
    "backward": ((0, -1, -2, -3, -4), (25, -48, 36, -16, 3), (35, -104, 114, -56, 11)),
}


def _derivatives(
    phi: Callable[[np.ndarray], np.ndarray], u: np.ndarray, kinks: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """φ'(u), φ''(u) by 5-point finite differences (step 1e-3); within two steps of a kink the
    stencil is one-sided, on u's side."""
    kind = np.zeros(u.shape, dtype=np.int8)  # 0 central, 1 forward, 2 backward
    for k in kinks:
        near = np.abs(u - k) < 2.5 * _H
        kind[near & (u > k)] = 1
        kind[near & (u <= k)] = 2
    d1 = np.empty_like(u)
    d2 = np.empty_like(u)
    for code, name in enumerate(("central", "forward", "backward")):
        sel = kind == code
        if not sel.any():
            continue
        offs, w1, w2 = _STENCILS[name]
        us = u[sel]
        vals = [phi(us + o * _H) for o in offs]
        d1[sel] = sum(c * v for c, v in zip(w1, vals, strict=True)) / (12 * _H)
        d2[sel] = sum(c * v for c, v in zip(w2, vals, strict=True)) / (12 * _H * _H)
    return d1, d2


def _evaluate(
    phi: Callable[[np.ndarray, float | None], np.ndarray],
    kinks: Sequence[float],
    scale: float,
    shift: float,
    param: float | None,
) -> tuple[np.ndarray, ...]:
    """Quadrature nodes x and weights w for x ~ N(0, 1), and φ, φ', φ'' at ``scale·x + shift``
    (the interval split where φ's kinks land)."""
    breaks = [(k - shift) / scale for k in kinks] if scale != 0 else []
    x, w = _gauss_nodes(breaks)
    u = scale * x + shift
    f = phi(u, param)
    d1, d2 = _derivatives(lambda v: phi(v, param), u, kinks)
    return x, w, f, d1, d2


def _dot(w: np.ndarray, v: np.ndarray) -> float:
    """``Σ wᵢ·vᵢ`` in NumPy's pairwise order, which is fixed in its source (the same bits on
    every CPU). A BLAS dot's summation order depends on the CPU's kernel (OpenBLAS's AVX-512
    one sums in another order than its AVX2 one), and those last-bit differences sent the root
    finder from dks's first start to another root of the same equations (TAT ELU, depth 10:
    α 0.185 on an AVX-512 machine, dks's 0.202 on an AVX2 one)."""
    return float(np.add.reduce(w * v))


def _solved_maps(
    phi: Callable[[np.ndarray, float | None], np.ndarray],
    kinks: Sequence[float],
    scale: float,
    shift: float,
    param: float | None,
    c0: float | None,
    out_shift: float = 0.0,
) -> dict[str, float]:
    """Local maps of ``γ(φ(scale·x + shift) + δ)`` where δ makes C(0) = ``c0`` (or is
    ``out_shift`` when ``c0`` is None) and γ makes Q(1) = 1 (both returned)."""
    x, w, f, d1, d2 = _evaluate(phi, kinks, scale, shift, param)
    mean = _dot(w, f)
    delta = math.sqrt(c0) - mean if c0 is not None else out_shift
    g2 = f + delta
    s2 = _dot(w, g2 * g2)
    return {
        "delta": delta,
        "gamma": 1.0 / math.sqrt(s2) if s2 > 0 else math.inf,
        "q_slope": 0.5 * _dot(w, g2 * g2 * (x * x - 1.0)) / s2,
        "c_slope": scale * scale * _dot(w, d1 * d1) / s2,
        "c_curv": scale**4 * _dot(w, d2 * d2) / s2,
    }


def local_maps(t: Transform) -> dict[str, float]:
    """The local maps of a transformed activation for x ~ N(0, 1): ``q`` = Q(1), ``q_slope`` =
    Q'(1), ``c0`` = C(0), ``c_slope`` = C'(1), ``c_curv`` = C''(1) (the C values divided by Q(1),
    as the papers define them)."""
    spec = A.lookup(t.activation)
    p = spec.default_param if t.param is None else t.param
    x, w, raw, d1, d2 = _evaluate(spec.fn, spec.kinks, t.input_scale, t.input_shift, p)
    f = t.output_scale * (raw + t.output_shift)
    q = _dot(w, f * f)
    k1 = t.output_scale * t.input_scale
    return {
        "q": q,
        "q_slope": 0.5 * _dot(w, f * f * (x * x - 1.0)),
        "c0": _dot(w, f) ** 2 / q,
        "c_slope": k1 * k1 * _dot(w, d1 * d1) / q,
        "c_curv": k1 * k1 * t.input_scale**2 * _dot(w, d2 * d2) / q,
    }


def leaky_relu_cmap(c: float, slope: float) -> float:
    """The local C map of ``√(2/(1+s²))·LReLU_s`` (TAT eq. for Leaky ReLU, Q(1) = 1)."""
    c = min(max(c, -1.0), 1.0)
    return (
        (1 - slope) ** 2 * (math.sqrt(max(1 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / math.pi
        + 2 * slope * c
    ) / (1 + slope * slope)


# ----------------------------------------------------------------------------- network structure


@dataclass(frozen=True)
class Topology:
    """A network as kernel shaping sees it: values computed in order from value 0 (the input).

    ``ops[i]`` computes value ``i + 1``: ``("act", src)`` a nonlinear layer (its local map r),
    ``("sum", ((w, src), …))`` a weighted combination of C values (a normalized sum of branches
    whose squared weights are ``w``, or a concatenation weighted by channel share), ``("id",
    src)`` anything that leaves C unchanged (orthogonal weight layers, reshapes). ``branches``
    are the residual branches alone, also maximized over (TAT App. B)."""

    ops: tuple[tuple[Any, ...], ...]
    output: int
    branches: tuple[Topology, ...] = ()

    @classmethod
    def chain(cls, layers: int) -> Topology:
        """``layers`` nonlinear layers in a row (an MLP or CNN of depth layers + 1)."""
        return cls(tuple(("act", i) for i in range(layers)), layers)

    @property
    def nonlinear(self) -> int:
        """The largest number of nonlinear layers on one path from the input to the output."""
        depth = [0]
        for op in self.ops:
            if op[0] == "act":
                depth.append(depth[op[1]] + 1)
            elif op[0] == "id":
                depth.append(depth[op[1]])
            else:
                depth.append(max(depth[s] for _, s in op[1]))
        return depth[self.output]

    def evaluate(self, x: float, r: Callable[[float], float]) -> float:
        vals = [x]
        for op in self.ops:
            if op[0] == "act":
                vals.append(r(vals[op[1]]))
            elif op[0] == "id":
                vals.append(vals[op[1]])
            else:
                vals.append(sum(w * vals[s] for w, s in op[1]))
        return vals[self.output]

    def subnet_max(self, x: float, r: Callable[[float], float]) -> float:
        """``M(x, r)``: the largest C value over the network and its residual branches
        (the signature ``dks`` takes as ``subnet_max_func``)."""
        return max([self.evaluate(x, r), *(b.subnet_max(x, r) for b in self.branches)])


# ----------------------------------------------------------------------------- targets


def _solve_increasing(
    fn: Callable[[float], float], target: float, lo: float, hi: float | None
) -> float:
    """x in [lo, hi] (hi None: unbounded) with increasing ``fn(x) = target`` (Brent's method
    on a bracket found by doubling)."""
    from scipy.optimize import brentq

    f = lambda x: fn(x) - target  # noqa: E731
    if f(lo) > 0:
        raise ValueError("target below the reachable range")
    if hi is None:
        hi = lo + 1.0
        while f(hi) < 0:
            hi = lo + 2 * (hi - lo)
            if hi > 1e12:
                raise ValueError("target out of reach")
    elif f(hi) < 0:
        raise ValueError("target above the reachable range")
    return float(brentq(f, lo, hi, xtol=1e-15, rtol=1e-13, maxiter=500))


def slope_target(topology: Topology, zeta: float) -> float:
    """DKS: the local C'(1) whose network maximum ``M(1, y ↦ s·y)`` is ζ."""
    if not zeta > 1.0:
        raise ValueError(f"zeta (DKS's C'_f(1) target) must be > 1, got {zeta!r}")
    return _solve_increasing(lambda s: topology.subnet_max(1.0, lambda y: s * y), zeta, 1.0, None)


def curvature_target(topology: Topology, tau: float) -> float:
    """TAT: the local C''(1) whose network maximum ``M(0, y ↦ k + y)`` is τ."""
    if not tau > 0.0:
        raise ValueError(f"tau (TAT's C''_f(1) target) must be > 0, got {tau!r}")
    return _solve_increasing(lambda k: topology.subnet_max(0.0, lambda y: k + y), tau, 0.0, None)


def leaky_slope(topology: Topology, eta: float) -> float:
    """TAT: the Leaky ReLU negative slope whose network maximum C_f(0) is η."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta (TAT's C_f(0) target) must be in [0, 1], got {eta!r}")
    c0 = lambda s: topology.subnet_max(0.0, lambda c: leaky_relu_cmap(c, s))  # noqa: E731
    if c0(0.0) < eta:
        raise ValueError(
            f"TAT: a network with {topology.nonlinear} nonlinear layers can not reach C_f(0) = "
            f"η = {eta:g} with Leaky ReLUs (slope 0, a ReLU, gives {c0(0.0):.4g}): too shallow "
            "to be that nonlinear; pass a smaller eta "
            '(initwise.torch.KernelShaping("tat", eta=0.3)) or a deeper network'
        )
    return _solve_increasing(lambda s: 1.0 - c0(s), 1.0 - eta, 0.0, 1.0)


# ----------------------------------------------------------------------------- the solver

_ALWAYS_TRY = {
    "input_scale": (1.0, 0.1),
    "input_shift": (0.0, 1.0, -1.0),
    "output_shift": (0.0, 1.0, -1.0),
    "negative_slope": (0.0, 0.5),
}
_LOW = {"input_scale": 0.0, "input_shift": -3.0, "output_shift": -3.0, "negative_slope": 0.0}
_HIGH = {"input_scale": 2.0, "input_shift": 3.0, "output_shift": 3.0, "negative_slope": 1.0}
_RELU_MAX_SLOPE = 1.466942206924260361  # the largest C'(1) ReLU reaches with a positive shift (dks)


def solve(
    activation: str,
    method: str,
    topology: Topology,
    *,
    zeta: float = DEFAULTS["zeta"],
    tau: float = DEFAULTS["tau"],
    eta: float = DEFAULTS["eta"],
    q_slope: float = DEFAULTS["q_slope"],
    param: float | None = None,
    tries: int = 50,
) -> Transform:
    """The DKS or TAT transform of ``activation`` for a network of this ``topology``.

    Follows dks's search (the same starting points in the same order, then seeded random ones,
    Powell's hybrid method from each; TAT rejects solutions with α·γ ≥ 2), so the same root is
    found; each evaluation is a few hundred quadrature nodes. ``activation`` is a registered
    name (:func:`initwise.register_activation` adds one)."""
    from scipy.optimize import root

    method = method.lower()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    spec = A.lookup(activation)
    name = spec.name
    base_param = spec.default_param if param is None else param
    L = topology.nonlinear
    if L < 1:
        raise ValueError("the network has no nonlinear layer to shape")

    if method == "tat" and name in ("relu", "leaky_relu"):
        s = leaky_slope(topology, eta)
        return Transform(
            "leaky_relu",
            s,
            output_scale=math.sqrt(2.0 / (1.0 + s * s)),
            method="tat",
            target=f"max C_f(0) = η = {eta:g} over {L} nonlinear layers: negative slope {s:.6g}",
        )

    reject: Callable[[dict[str, float]], bool] | None = None
    c0: float | None
    if method == "dks":
        local = slope_target(topology, zeta)
        target = f"max C'_f(1) = ζ = {zeta:g} over {L} nonlinear layers: local C'(1) = {local:.6g}"
        c0 = 0.0
        if name == "relu":  # one degree of freedom less (dks's special case)
            constant = {"input_shift": 1.0 if local < _RELU_MAX_SLOPE else -1.0}
            opt: tuple[str, ...] = ("input_scale",)
        elif name == "leaky_relu":
            constant, opt = {}, ("negative_slope", "input_shift")
        else:
            constant, opt = {}, ("input_scale", "input_shift")
    else:
        local = curvature_target(topology, tau)
        target = f"max C''_f(1) = τ = {tau:g} over {L} nonlinear layers: local C''(1) = {local:.6g}"
        c0 = None
        constant, opt = {}, ("input_scale", "input_shift", "output_shift")

        def reject(p: dict[str, float]) -> bool:
            return p["input_scale"] * p["gamma"] >= 2.0

    def params(v: np.ndarray) -> dict[str, float]:
        p = dict(constant)
        p.update({k: float(x) for k, x in zip(opt, v, strict=True)})
        return p

    def evaluate(v: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        p = params(v)
        m = _solved_maps(
            spec.fn,
            spec.kinks,
            p.get("input_scale", 1.0),
            p.get("input_shift", 0.0),
            p.get("negative_slope", base_param),
            c0,
            p.get("output_shift", 0.0),
        )
        return p, m

    def residual(v: np.ndarray) -> np.ndarray:
        _, m = evaluate(v)
        r = []
        if name != "relu" or method != "dks":
            r.append(m["q_slope"] - q_slope)
        r.append(m["c_slope"] - (local if method == "dks" else 1.0))
        if method == "tat":
            r.append(m["c_curv"] - local)
        return np.asarray(r)

    starts = list(itertools.product(*(_ALWAYS_TRY[k] for k in opt)))
    rng = np.random.RandomState(123)  # dks's seed, on a private generator (no global RNG use)
    for _ in range(tries - len(starts)):
        starts.append(tuple(rng.uniform(low=_LOW[k], high=_HIGH[k]) for k in opt))
    found = None
    with np.errstate(all="ignore"):
        for start in starts:
            sol = root(residual, np.asarray(start, dtype=np.float64), method="hybr")
            if not sol.success or not np.all(np.isfinite(sol.x)):
                continue
            p, m = evaluate(sol.x)
            if not math.isfinite(m["gamma"]):
                continue
            p["gamma"] = m["gamma"]
            if reject is not None and reject(p):
                continue
            found = (p, m)
            break
    if found is None:
        raise ValueError(
            f"kernel shaping ({method}) found no transform of {name!r} meeting {target}; try "
            "another activation or a smaller depth"
        )
    p, m = found
    # α and −α give the same local maps (x ~ N(0, 1) is symmetric): report the positive one
    return Transform(
        name,
        p.get("negative_slope", param),
        input_scale=abs(p.get("input_scale", 1.0)),
        input_shift=p.get("input_shift", 0.0),
        output_shift=m["delta"],
        output_scale=m["gamma"],
        method=method,
        target=target,
    )
