r"""Schemes: every classic initializer as a small immutable object.

A Scheme is a *distribution* times a *variance rule*. The general rule is
:class:`VarianceScaling`::

    Var[w] = scale · gain² / fan(mode),   mode ∈ {fan_in, fan_out, fan_avg}

and Xavier/Glorot, He/Kaiming and LeCun are presets of it (one line each, as in
``jax.nn.initializers``). The other distributions (constant, normal, uniform, truncated normal,
orthogonal, eye, dirac, delta-orthogonal, sparse) are their own small classes. Every scheme:

* validates its arguments when built (errors name the parameter and the fix);
* ``sample(shape, backend, fans)`` draws values through a :class:`~initwise._backend.Backend`,
  so NumPy and torch share one implementation;
* ``std(shape, fans)`` gives the standard deviation of the entries it produces;
* ``to_dict()`` / :func:`from_dict` round-trip through plain JSON-able dicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import _validate as v
from . import distributions as D
from ._backend import Array, Backend
from .distributions import TRUNC_STD_CORRECTION, Dist, truncated_normal
from .math.fans import Fans, fans
from .math.gains import calculate_gain

__all__ = ["TRUNC_STD_CORRECTION", "Dist", "truncated_normal"]  # extended below

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


@dataclass(frozen=True)
class Scheme:
    """Base class: a distribution the weights are drawn from."""

    type: ClassVar[str] = "scheme"
    needs_fans: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 0
    max_ndim: ClassVar[int | None] = None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` if this scheme cannot fill a tensor of ``shape``."""
        nd = len(shape)
        if self.needs_fans and nd < 2:
            fans(shape)  # raises the fan error, which says what to do with biases
        if nd < self.min_ndim or (self.max_ndim is not None and nd > self.max_ndim):
            want = (
                f"{self.min_ndim}"
                if self.max_ndim == self.min_ndim
                else f"{self.min_ndim} to {self.max_ndim}"
                if self.max_ndim
                else f">= {self.min_ndim}"
            )
            label = getattr(self, "name", self.type)
            raise ValueError(f"{label}: needs a tensor with {want} dimensions, got shape {shape}")

    def resolve_fans(self, shape: tuple[int, ...], given: Fans | None) -> Fans | None:
        if not self.needs_fans:
            return None
        return given if given is not None else fans(shape)

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        """Standard deviation of the entries this scheme produces for ``shape``."""
        raise NotImplementedError

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist | None:
        """The elementwise distribution of the entries for ``shape``, or None for schemes that
        need the whole matrix (orthogonal, sparse, eye, dirac, delta-orthogonal). Sampling,
        streams and formulas of elementwise schemes all derive from it."""
        return None

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        """Draw an array of ``shape`` through ``backend``."""
        d = self.dist(shape, fans)
        if d is None:
            raise NotImplementedError(f"{type(self).__name__} must implement sample or dist")
        return d.sample(backend, shape)

    def formula(self) -> str:
        """The rule in one line, for plans and tables."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Scheme:
        """The same scheme with every entry multiplied by ``factor`` > 0 (its std scales too)."""
        raise NotImplementedError(f"{type(self).__name__} can not be scaled")

    @property
    def label(self) -> str:
        """Short name for tables: the preset's name where there is one."""
        return getattr(self, "name", self.type)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a ``"type"`` key; :func:`from_dict` inverts it."""
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class VarianceScaling(Scheme):
    r"""``Var[w] = scale · gain² / fan(mode)`` drawn from ``distribution``.

    * ``normal``: ``N(0, std²)`` with ``std = gain·√(scale/fan)``;
    * ``uniform``: ``U(−√3·std, √3·std)`` (same variance);
    * ``truncated_normal``: ``N(0, 1)`` truncated to [−2, 2], times
      ``std / TRUNC_STD_CORRECTION`` so the *truncated* variance is ``std²`` (JAX/TF semantics).

    ``fan_avg = (fan_in + fan_out)/2``, so ``mode="fan_avg", gain=1`` is Glorot's
    ``2/(fan_in + fan_out)``.
    """

    type: ClassVar[str] = "variance_scaling"
    needs_fans: ClassVar[bool] = True
    min_ndim: ClassVar[int] = 2

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"
    gain: float = 1.0
    name: str = "variance_scaling"

    def __post_init__(self) -> None:
        where = self.name
        object.__setattr__(self, "scale", v.positive("scale", self.scale, where=where))
        object.__setattr__(self, "gain", v.positive("gain", self.gain, where=where))
        v.one_of("mode", self.mode, MODES, where=where)
        v.one_of("distribution", self.distribution, DISTRIBUTIONS, where=where)

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        f = self.resolve_fans(shape, fans)
        assert f is not None
        if self.mode == "fan_avg":  # written as torch writes Xavier, so bits agree
            return self.gain * math.sqrt(2.0 * self.scale / float(f.fan_in + f.fan_out))
        return self.gain * math.sqrt(self.scale) / math.sqrt(f.of(self.mode))

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist:
        return D.variance_scaling(self.distribution, self.std(shape, fans))

    def formula(self) -> str:
        core = f"√({_num(self.scale)}/{self.mode})" if self.scale != 1 else f"1/√{self.mode}"
        g = "" if self.gain == 1 else f"{self.gain:.4g}·"
        return f"{D.VARIANCE_SCALING_TEXT[self.distribution]}, std = {g}{core}"

    def scaled(self, factor: float) -> VarianceScaling:
        return dataclasses.replace(self, scale=self.scale * factor * factor)


@dataclass(frozen=True)
class Constant(Scheme):
    """Every entry equal to ``value`` (zeros, ones)."""

    type: ClassVar[str] = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", v.finite("value", self.value, where="constant"))

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return 0.0

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist:
        return Dist.constant(self.value)

    def formula(self) -> str:
        return f"constant {_num(self.value)}"

    def scaled(self, factor: float) -> Constant:
        return Constant(self.value * factor)

    @property
    def label(self) -> str:
        return {0.0: "zeros", 1.0: "ones"}.get(self.value, f"constant({_num(self.value)})")


@dataclass(frozen=True)
class Normal(Scheme):
    """``N(mean, std²)``."""

    type: ClassVar[str] = "normal"
    mean: float = 0.0
    std_: float = field(default=1.0, metadata={"key": "std"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", v.finite("mean", self.mean, where="normal"))
        object.__setattr__(
            self, "std_", v.positive("std", self.std_, where="normal", allow_zero=True)
        )

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return self.std_

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist:
        return Dist.normal(self.mean, self.std_)

    def formula(self) -> str:
        return f"N({_num(self.mean)}, {_num(self.std_)}²)"

    def scaled(self, factor: float) -> Normal:
        return Normal(self.mean * factor, self.std_ * factor)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "mean": self.mean, "std": self.std_}


@dataclass(frozen=True)
class Uniform(Scheme):
    """``U(low, high)``; std ``(high − low)/√12``."""

    type: ClassVar[str] = "uniform"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        lo = v.finite("a (low)", self.low, where="uniform")
        hi = v.finite("b (high)", self.high, where="uniform")
        if lo > hi:
            raise ValueError(f"uniform: a (low) = {lo} must be <= b (high) = {hi}; swap them")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return (self.high - self.low) / math.sqrt(12.0)

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist:
        return Dist.uniform(self.low, self.high)

    def formula(self) -> str:
        return f"U({_num(self.low)}, {_num(self.high)})"

    def scaled(self, factor: float) -> Uniform:
        return Uniform(self.low * factor, self.high * factor)


@dataclass(frozen=True)
class TruncNormal(Scheme):
    r"""``N(mean, std²)`` conditioned on ``a ≤ w ≤ b``.

    ``std`` is the std of the *parent* normal (torch's ``trunc_normal_`` semantics; the result's
    std is smaller). With ``relative=False`` (torch) ``a``/``b`` are absolute values — the
    common trap is ``trunc_normal_(w, std=0.02)`` whose default bounds ±2 are ±100σ, i.e. no
    truncation at all. With ``relative=True`` they are in units of ``std`` around ``mean``
    (timm's ``trunc_normal_tf_``).
    """

    type: ClassVar[str] = "trunc_normal"
    mean: float = 0.0
    std_: float = field(default=1.0, metadata={"key": "std"})
    a: float = -2.0
    b: float = 2.0
    relative: bool = False

    def __post_init__(self) -> None:
        w = "trunc_normal"
        object.__setattr__(self, "mean", v.finite("mean", self.mean, where=w))
        object.__setattr__(self, "std_", v.positive("std", self.std_, where=w))
        a, b = _bound("a", self.a, w), _bound("b", self.b, w)
        if a >= b:
            raise ValueError(f"{w}: lower bound a = {a} must be < upper bound b = {b}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        if not isinstance(self.relative, bool):
            raise TypeError(f"{w}: relative must be True or False, got {self.relative!r}")

    def bounds(self) -> tuple[float, float]:
        """Absolute bounds ``(lo, hi)``."""
        if self.relative:
            return self.mean + self.a * self.std_, self.mean + self.b * self.std_
        return self.a, self.b

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        from scipy import stats

        lo, hi = self.bounds()
        al, be = (lo - self.mean) / self.std_, (hi - self.mean) / self.std_
        return float(stats.truncnorm.std(al, be, loc=self.mean, scale=self.std_))

    def dist(self, shape: tuple[int, ...], fans: Fans | None = None) -> Dist:
        lo, hi = self.bounds()
        return Dist.trunc(self.mean, self.std_, lo, hi)

    def scaled(self, factor: float) -> TruncNormal:
        if self.relative:
            return TruncNormal(self.mean * factor, self.std_ * factor, self.a, self.b, True)
        return TruncNormal(
            self.mean * factor, self.std_ * factor, self.a * factor, self.b * factor, False
        )

    def formula(self) -> str:
        lo, hi = self.bounds()
        return f"N({_num(self.mean)}, {_num(self.std_)}²) truncated to [{_num(lo)}, {_num(hi)}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "mean": self.mean,
            "std": self.std_,
            "a": self.a,
            "b": self.b,
            "relative": self.relative,
        }


def _bound(name: str, x: Any, where: str) -> float:
    """A truncation bound: a real number or ±inf (one-sided windows), never NaN."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a number, got {type(x).__name__}")
    x = float(x)
    if math.isnan(x):
        raise ValueError(f"{where}: {name} is NaN; pass a number (or ±inf for a one-sided window)")
    return x


@dataclass(frozen=True)
class Orthogonal(Scheme):
    r"""A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013).

    The tensor is viewed as ``rows × cols`` (``cols = ∏ shape[1:]``) and drawn Haar-distributed
    (Mezzadri 2007) by ``method``: ``"reflectors"`` (default) — ``Q`` formed from random
    Householder reflectors, the Gaussian columns themselves (Stewart 1980), half the flops of
    a QR; ``"qr"`` — a Gaussian matrix QR-factored and ``Q`` multiplied by ``sign(diag R)``
    (torch's algorithm; plans written before ``method`` existed read as ``"qr"`` and keep their
    bits). Always computed in float ≥ 32 and cast last, so bf16/fp16 work. Entry std:
    ``gain·√(min(rows, cols)/(rows·cols))``.

    ``view = (batch, rows, cols)`` (dimension indices that together are all of the tensor's)
    draws another matrix than ``shape[0] × ∏ shape[1:]``: the tensor permuted to ``batch + rows
    + cols`` is ``∏ batch`` independent ``∏ rows × ∏ cols`` matrices, drawn one after another
    from the same generator — a weight that ``einsum`` contracts on dimensions that are not its
    last ones (``(H, K, D)`` in ``"bhk,hkd->bd"``: rows ``(2,)``, cols ``(0, 1)``), or per-head
    matrices (``(H, in, out)`` in ``"bhi,hio->bho"``: batch ``(0,)``).
    """

    type: ClassVar[str] = "orthogonal"
    min_ndim: ClassVar[int] = 2
    gain: float = 1.0
    method: str = "reflectors"
    view: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", v.positive("gain", self.gain, where="orthogonal"))
        _check_method(self.method, "orthogonal")
        if self.view is not None:
            object.__setattr__(self, "view", _check_view(self.view))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        super().check_shape(shape)
        if self.view is not None and sorted(d for g in self.view for d in g) != list(
            range(len(shape))
        ):
            raise ValueError(
                f"orthogonal: view {[list(g) for g in self.view]} must name each of the "
                f"{len(shape)} dimensions of shape {shape} once (batch, rows, cols)"
            )

    def _grid(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(matrices, rows, cols)`` of the view."""
        if self.view is None:
            return 1, shape[0], math.prod(shape[1:])
        batch, rows, cols = self.view
        size = lambda dims: math.prod(shape[d] for d in dims)  # noqa: E731
        return size(batch), size(rows), size(cols)

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        _, rows, cols = self._grid(shape)
        return self.gain * math.sqrt(min(rows, cols) / (rows * cols))

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        n, rows, cols = self._grid(shape)
        if self.view is None:
            q = orthogonal_matrix(backend, rows, cols, self.method)
            q *= self.gain  # a fresh array: in place (one pass less at 4096², same values)
            return q.reshape(shape)
        mats = [
            backend.to_numpy(orthogonal_matrix(backend, rows, cols, self.method)) for _ in range(n)
        ]
        perm = [d for g in self.view for d in g]
        w = np.stack(mats).reshape([shape[d] for d in perm]).transpose(np.argsort(perm))
        return backend.asarray(np.ascontiguousarray(w) * self.gain)

    def formula(self) -> str:
        how = "QR, sign-fixed" if self.method == "qr" else "Householder reflectors, Haar"
        per = ""
        if self.view is not None:
            batch, rows, cols = self.view
            per = f", rows dims {list(rows)} × cols dims {list(cols)}"
            per += f", one per index of dims {list(batch)}" if batch else ""
        return f"orthogonal ({how}{per}) × {_num(self.gain)}"

    def scaled(self, factor: float) -> Orthogonal:
        return dataclasses.replace(self, gain=self.gain * factor)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.view is None:
            del d["view"]  # (plans without a view keep their JSON)
        else:
            d["view"] = [list(g) for g in self.view]
        return d


def _check_view(view: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``view`` as three tuples of distinct non-negative dimension indices, rows and cols not
    empty; a clear error otherwise."""
    ok = isinstance(view, (list, tuple)) and len(view) == 3
    groups = []
    if ok:
        for g in view:
            if not isinstance(g, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in g
            ):
                ok = False
                break
            groups.append(tuple(int(d) for d in g))
    flat = [d for g in groups for d in g]
    if not ok or len(set(flat)) != len(flat) or not groups[1] or not groups[2]:
        raise ValueError(
            "orthogonal: view must be (batch, rows, cols), three lists of distinct dimension "
            f"indices with rows and cols not empty (e.g. ((0,), (2,), (1,))), got {view!r}"
        )
    return groups[0], groups[1], groups[2]


@dataclass(frozen=True)
class Eye(Scheme):
    """The identity matrix (as many inputs preserved as possible) times ``gain``; 2-D, or with
    ``rows`` a 1-D vector holding a ``rows × (n/rows)`` identity flattened row by row — a
    spatial transformer's θ bias, ``[1, 0, 0, 0, 1, 0]`` for ``rows=2`` (Jaderberg et al.
    2015)."""

    type: ClassVar[str] = "eye"
    min_ndim: ClassVar[int] = 2
    max_ndim: ClassVar[int | None] = 2
    gain: float = 1.0
    rows: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", v.finite("gain", self.gain, where="eye"))
        if isinstance(self.rows, bool) or not isinstance(self.rows, int) or self.rows < 0:
            raise ValueError(f"eye: rows must be an int ≥ 0 (0: a matrix), got {self.rows!r}")

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if not self.rows:
            return super().check_shape(shape)
        if len(shape) != 1 or shape[0] % self.rows:
            raise ValueError(
                f"eye: rows={self.rows} fills a vector whose length is a multiple of "
                f"{self.rows}, got shape {shape}"
            )
        return None

    def _matrix(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.rows:
            return np.eye(self.rows, shape[0] // self.rows).ravel() * self.gain
        return np.eye(*shape) * self.gain

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return float(np.std(self._matrix(shape)))

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        return backend.asarray(self._matrix(shape))

    def formula(self) -> str:
        flat = f" ({self.rows} rows, flattened)" if self.rows else ""
        return "identity" + flat + ("" if self.gain == 1 else f" × {_num(self.gain)}")

    def scaled(self, factor: float) -> Eye:
        return Eye(self.gain * factor, self.rows)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.rows:  # (a matrix: as written before rows existed)
            out.pop("rows")
        return out


@dataclass(frozen=True)
class Dirac(Scheme):
    """Dirac delta for conv weights ``(out, in/g, k…)``: each group preserves its input channels
    (identity through a conv); 3-, 4- or 5-D."""

    type: ClassVar[str] = "dirac"
    min_ndim: ClassVar[int] = 3
    max_ndim: ClassVar[int | None] = 5
    groups: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", v.positive_int("groups", self.groups, where="dirac"))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        super().check_shape(shape)
        if shape[0] % self.groups:
            raise ValueError(
                f"dirac: dim 0 ({shape[0]}) of shape {shape} must be divisible by groups="
                f"{self.groups}"
            )

    def _array(self, shape: tuple[int, ...]) -> np.ndarray:
        w = np.zeros(shape)
        per = shape[0] // self.groups
        center = tuple(s // 2 for s in shape[2:])
        for g in range(self.groups):
            for d in range(min(per, shape[1])):
                w[(g * per + d, d, *center)] = 1.0
        return w

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return float(np.std(self._array(shape)))

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        return backend.asarray(self._array(shape))

    def formula(self) -> str:
        return f"dirac (groups={self.groups})"


@dataclass(frozen=True)
class DeltaOrthogonal(Scheme):
    r"""Delta-orthogonal conv kernel (Xiao et al. 2018): zero everywhere except the spatial
    centre, which holds an ``out × in`` orthogonal matrix times ``gain``. Needs
    ``out ≥ in`` so the map is norm-preserving; 3-, 4- or 5-D."""

    type: ClassVar[str] = "delta_orthogonal"
    min_ndim: ClassVar[int] = 3
    max_ndim: ClassVar[int | None] = 5
    gain: float = 1.0
    method: str = "reflectors"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", v.positive("gain", self.gain, where="delta_orthogonal"))
        _check_method(self.method, "delta_orthogonal")

    def check_shape(self, shape: tuple[int, ...]) -> None:
        super().check_shape(shape)
        if shape[0] < shape[1]:
            raise ValueError(
                f"delta_orthogonal: out_channels ({shape[0]}) must be >= in_channels "
                f"({shape[1]}) for shape {shape}; use orthogonal for a contracting layer"
            )

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        return self.gain * math.sqrt(shape[1] / math.prod(shape))

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        q = orthogonal_matrix(backend, shape[0], shape[1], self.method) * self.gain
        w = backend.zeros(shape)
        w[(slice(None), slice(None), *(s // 2 for s in shape[2:]))] = q
        return w

    def formula(self) -> str:
        return f"delta-orthogonal × {_num(self.gain)}"

    def scaled(self, factor: float) -> DeltaOrthogonal:
        return DeltaOrthogonal(self.gain * factor, self.method)


@dataclass(frozen=True)
class Sparse(Scheme):
    r"""Sparse init (Martens 2010): in every column a fraction ``sparsity`` of the rows
    (``⌈sparsity·rows⌉``) is zero, the rest ``N(0, std²)``. 2-D only. Unlike
    ``torch.nn.init.sparse_`` (whose row permutations ignore ``generator``), fully reproducible."""

    type: ClassVar[str] = "sparse"
    min_ndim: ClassVar[int] = 2
    max_ndim: ClassVar[int | None] = 2
    sparsity: float = 0.1
    std_: float = field(default=0.01, metadata={"key": "std"})

    def __post_init__(self) -> None:
        s = v.finite("sparsity", self.sparsity, where="sparse")
        if not 0.0 <= s < 1.0:
            raise ValueError(
                f"sparse: sparsity is the zero fraction per column, in [0, 1); got {s}"
            )
        object.__setattr__(self, "sparsity", s)
        object.__setattr__(self, "std_", v.positive("std", self.std_, where="sparse"))

    def std(self, shape: tuple[int, ...], fans: Fans | None = None) -> float:
        rows = shape[0]
        return self.std_ * math.sqrt((rows - math.ceil(self.sparsity * rows)) / rows)

    def sample(self, shape: tuple[int, ...], backend: Backend, fans: Fans | None = None) -> Array:
        rows, cols = shape
        w = backend.normal(shape, 0.0, self.std_)
        zero = backend.rank_mask(rows, cols, math.ceil(self.sparsity * rows))
        return backend.where(zero, backend.zeros(shape), w)

    def formula(self) -> str:
        return f"sparse: {self.sparsity:.0%} zeros per column, rest N(0, {_num(self.std_)}²)"

    def scaled(self, factor: float) -> Sparse:
        return Sparse(self.sparsity, self.std_ * factor)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "sparsity": self.sparsity, "std": self.std_}


# ----------------------------------------------------------------------------- algorithms


ORTHOGONAL_METHODS = ("reflectors", "qr")


def _check_method(method: Any, where: str) -> None:
    if method not in ORTHOGONAL_METHODS:
        raise ValueError(
            f"{where}: method must be one of {', '.join(map(repr, ORTHOGONAL_METHODS))} "
            f"(reflectors: the default, half the flops; qr: torch's algorithm), got {method!r}"
        )


def orthogonal_matrix(backend: Backend, rows: int, cols: int, method: str = "reflectors") -> Array:
    """A ``rows × cols`` Haar matrix with orthonormal rows (or columns, whichever is fewer),
    from one ``rows × cols`` Gaussian draw (:class:`Orthogonal` for ``method``)."""
    flat = backend.normal((rows, cols), 0.0, 1.0)
    make = backend.qr_signed if method == "qr" else backend.reflectors_signed
    if rows < cols:
        return make(flat.T).T
    return make(flat)


def _num(x: float) -> str:
    return f"{x:.6g}"


# ----------------------------------------------------------------------------- presets


def zeros() -> Constant:
    """All zeros."""
    return Constant(0.0)


def ones() -> Constant:
    """All ones."""
    return Constant(1.0)


def constant(value: float) -> Constant:
    """All ``value``."""
    return Constant(value)


def normal(mean: float = 0.0, std: float = 1.0) -> Normal:
    """``N(mean, std²)``."""
    return Normal(mean, std)


def uniform(a: float = 0.0, b: float = 1.0) -> Uniform:
    """``U(a, b)``."""
    return Uniform(a, b)


def trunc_normal(
    mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *, relative: bool = False
) -> TruncNormal:
    """Truncated normal; ``relative=True`` puts the bounds at ``mean + a·std``, ``mean + b·std``."""
    return TruncNormal(mean, std, a, b, relative)


def variance_scaling(
    scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"
) -> VarianceScaling:
    """JAX/Keras ``variance_scaling``: ``Var = scale/fan(mode)`` (truncated normal by default)."""
    return VarianceScaling(scale, mode, distribution)


def xavier_uniform(gain: float = 1.0) -> VarianceScaling:
    """Glorot & Bengio 2010 eq. 16: ``U(±gain·√(6/(fan_in+fan_out)))``."""
    return VarianceScaling(1.0, "fan_avg", "uniform", gain, "xavier_uniform")


def xavier_normal(gain: float = 1.0) -> VarianceScaling:
    """Glorot & Bengio 2010: ``N(0, gain²·2/(fan_in+fan_out))``."""
    return VarianceScaling(1.0, "fan_avg", "normal", gain, "xavier_normal")


def kaiming_uniform(
    a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> VarianceScaling:
    """He et al. 2015: ``U(±gain·√(3/fan))``, ``gain = calculate_gain(nonlinearity, a)``
    (√2 for ReLU: bound √(6/fan_in))."""
    return VarianceScaling(1.0, mode, "uniform", _kaiming_gain(a, nonlinearity), "kaiming_uniform")


def kaiming_normal(
    a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> VarianceScaling:
    """He et al. 2015 eq. 10: ``N(0, gain²/fan)``; ``2/fan_in`` for ReLU."""
    return VarianceScaling(1.0, mode, "normal", _kaiming_gain(a, nonlinearity), "kaiming_normal")


def _kaiming_gain(a: float, nonlinearity: str) -> float:
    a = v.finite("a", a, where="kaiming")
    return calculate_gain(nonlinearity, a if nonlinearity in ("leaky_relu", "leakyrelu") else None)


def he_uniform(mode: str = "fan_in") -> VarianceScaling:
    """He uniform for ReLU: ``U(±√(6/fan_in))``."""
    return VarianceScaling(1.0, mode, "uniform", math.sqrt(2.0), "he_uniform")


def he_normal(mode: str = "fan_in") -> VarianceScaling:
    """He normal for ReLU: ``N(0, 2/fan_in)``."""
    return VarianceScaling(1.0, mode, "normal", math.sqrt(2.0), "he_normal")


def lecun_uniform() -> VarianceScaling:
    """LeCun et al. 1998: ``U(±√(3/fan_in))``."""
    return VarianceScaling(1.0, "fan_in", "uniform", 1.0, "lecun_uniform")


def lecun_normal() -> VarianceScaling:
    """LeCun et al. 1998 / Klambauer et al. 2017 (SELU): ``N(0, 1/fan_in)``. (Keras' lecun_normal
    is truncated: use ``variance_scaling(1, "fan_in", "truncated_normal")``.)"""
    return VarianceScaling(1.0, "fan_in", "normal", 1.0, "lecun_normal")


def orthogonal(gain: float = 1.0, method: str = "reflectors") -> Orthogonal:
    """Saxe et al. 2013 (``method``: see :class:`Orthogonal`)."""
    return Orthogonal(gain, method)


def eye(gain: float = 1.0, rows: int = 0) -> Eye:
    """Identity matrix (``rows``: a vector holding one, flattened)."""
    return Eye(gain, rows)


def dirac(groups: int = 1) -> Dirac:
    """Dirac delta conv kernel."""
    return Dirac(groups)


def delta_orthogonal(gain: float = 1.0, method: str = "reflectors") -> DeltaOrthogonal:
    """Xiao et al. 2018 (``method``: see :class:`Orthogonal`)."""
    return DeltaOrthogonal(gain, method)


def sparse(sparsity: float, std: float = 0.01) -> Sparse:
    """Martens 2010."""
    return Sparse(sparsity, std)


SCHEMES: Mapping[str, type[Scheme]] = {
    c.type: c
    for c in (
        VarianceScaling,
        Constant,
        Normal,
        Uniform,
        TruncNormal,
        Orthogonal,
        Eye,
        Dirac,
        DeltaOrthogonal,
        Sparse,
    )
}
"""Scheme classes by their ``type`` key (read-only)."""


def from_dict(data: Mapping[str, Any]) -> Scheme:
    """Rebuild a Scheme from :meth:`Scheme.to_dict` output; unknown types/keys raise."""
    if not isinstance(data, Mapping):
        raise TypeError(f"scheme must be a dict with a 'type' key, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in SCHEMES:
        raise ValueError(f"unknown scheme type {kind!r}; known: {', '.join(sorted(SCHEMES))}")
    cls = SCHEMES[kind]
    keys = {f.metadata.get("key", f.name): f.name for f in dataclasses.fields(cls)}
    args: dict[str, Any] = {}
    if cls in (Orthogonal, DeltaOrthogonal):
        args["method"] = "qr"  # written before `method` existed: those plans keep their bits
    for k, val in data.items():
        if k == "type":
            continue
        if k not in keys:
            raise ValueError(
                f"scheme {kind!r} has no field {k!r}; fields: {', '.join(sorted(keys))}"
            )
        args[keys[k]] = val
    return cls(**args)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


PRESETS: Mapping[str, Any] = {
    f.__name__: f
    for f in (
        zeros,
        ones,
        constant,
        normal,
        uniform,
        trunc_normal,
        variance_scaling,
        xavier_uniform,
        xavier_normal,
        kaiming_uniform,
        kaiming_normal,
        he_uniform,
        he_normal,
        lecun_uniform,
        lecun_normal,
        orthogonal,
        eye,
        dirac,
        delta_orthogonal,
        sparse,
    )
} | {"glorot_uniform": xavier_uniform, "glorot_normal": xavier_normal}
"""Preset constructors by name (what plan overrides accept as ``"name"`` or
``{"scheme": "name", **kwargs}``)."""


def resolve(spec: Any) -> Scheme:
    """A Scheme from a Scheme, a preset name, ``{"scheme": name, **kwargs}`` or a
    :meth:`Scheme.to_dict` dict."""
    if isinstance(spec, Scheme):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown scheme {spec!r}; presets: {', '.join(sorted(PRESETS))}")
        return PRESETS[spec]()
    if isinstance(spec, Mapping) and "type" in spec:
        return from_dict(spec)
    if isinstance(spec, Mapping) and "scheme" in spec:
        name = spec["scheme"]
        if name not in PRESETS:
            raise ValueError(f"unknown scheme {name!r}; presets: {', '.join(sorted(PRESETS))}")
        kwargs = {k: val for k, val in spec.items() if k != "scheme"}
        try:
            return PRESETS[name](**kwargs)
        except TypeError as exc:
            raise TypeError(f"scheme {name!r}: {exc}") from None
    raise TypeError(
        f"can not make a scheme from {spec!r}: pass a preset name ('xavier_uniform'), "
        "{'scheme': 'normal', 'std': 0.02}, a scheme dict with 'type', or a Scheme"
    )
