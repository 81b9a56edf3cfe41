"""NumPy back end: every scheme as a function returning a new array.

Randomness is explicit: each function takes ``rng`` (an ``np.random.Generator`` or an int
seed) and never touches NumPy's global state. Values are drawn in float64 and cast to ``dtype``
last. Fans default to the tensor-shape convention (Linear/Conv); pass ``kind=``/``groups=``/
``chunks=`` (see :func:`initwise.math.fans`) or ``fans=`` for the true fans of grouped,
transposed or packed weights.

>>> import initwise.numpy as iw
>>> w = iw.kaiming_normal((256, 128), rng=0)              # N(0, 2/128)
>>> round(float(w.std()), 3)
0.125
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _validate as v
from . import schemes as S
from ._backend import NumpyBackend
from .math.fans import Fans
from .math.fans import fans as compute_fans

Shape = int | Sequence[int]


def _rng(rng: Any, where: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{where}: rng must be an int seed or an np.random.Generator, got {rng!r}; initwise "
        "never draws from global random state (pass rng=0 or rng=np.random.default_rng(0))"
    )


def init(
    scheme: S.Scheme | str | Any,
    shape: Shape,
    *,
    rng: np.random.Generator | int,
    dtype: Any = np.float32,
    fans: Fans | None = None,
    kind: str = "linear",
    groups: int = 1,
    chunks: int | None = None,
    stride: int | Sequence[int] = 1,
) -> np.ndarray:
    """Draw a new array of ``shape`` from ``scheme`` (the general entry point).

    ``scheme`` is a Scheme, a preset name (``"xavier_uniform"``) or a dict (``{"scheme":
    "normal", "std": 0.02}``, see :func:`initwise.schemes.resolve`). ``init(shape, scheme)`` is
    read the same way: a shape can not be a scheme, so the order is unambiguous."""
    if _is_shape(scheme) and not _is_shape(shape):
        scheme, shape = shape, scheme
    if isinstance(scheme, (str, Mapping)):
        scheme = S.resolve(scheme)
    if not isinstance(scheme, S.Scheme):
        raise TypeError(
            f"scheme must be an initwise Scheme or a preset name such as 'xavier_uniform', got "
            f"{type(scheme).__name__}"
        )
    where = f"initwise.numpy.{getattr(scheme, 'name', scheme.type)}"
    shape = v.shape(shape, where=where)
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"{where}: dtype must be a floating dtype, got {dt}; use np.float32")
    scheme.check_shape(shape)
    generator = _rng(rng, where)
    if 0 in shape:
        return np.zeros(shape, dtype=dt)
    if scheme.needs_fans and fans is None:
        fans = compute_fans(shape, kind, groups=groups, chunks=chunks, stride=stride)
    out = scheme.sample(shape, NumpyBackend(generator), fans)
    return np.asarray(out).astype(dt, copy=False)


def _is_shape(x: Any) -> bool:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return True
    return isinstance(x, (tuple, list)) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in x
    )


def zeros(shape: Shape, *, dtype: Any = np.float32) -> np.ndarray:
    """All zeros (no randomness)."""
    return init(S.zeros(), shape, rng=0, dtype=dtype)


def ones(shape: Shape, *, dtype: Any = np.float32) -> np.ndarray:
    """All ones (no randomness)."""
    return init(S.ones(), shape, rng=0, dtype=dtype)


def constant(shape: Shape, value: float, *, dtype: Any = np.float32) -> np.ndarray:
    """All ``value``."""
    return init(S.constant(value), shape, rng=0, dtype=dtype)


def normal(shape: Shape, mean: float = 0.0, std: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """``N(mean, std²)``."""
    return init(S.normal(mean, std), shape, rng=rng, **kw)


def uniform(shape: Shape, a: float = 0.0, b: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """``U(a, b)``."""
    return init(S.uniform(a, b), shape, rng=rng, **kw)


def trunc_normal(
    shape: Shape,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    relative: bool = False,
    rng: Any,
    **kw: Any,
) -> np.ndarray:
    """Truncated normal (absolute bounds, or ``relative=True`` for bounds in units of std)."""
    return init(S.trunc_normal(mean, std, a, b, relative=relative), shape, rng=rng, **kw)


def variance_scaling(
    shape: Shape,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    *,
    rng: Any,
    **kw: Any,
) -> np.ndarray:
    """``Var = scale/fan(mode)`` (JAX/Keras semantics)."""
    return init(S.variance_scaling(scale, mode, distribution), shape, rng=rng, **kw)


def xavier_uniform(shape: Shape, gain: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """``U(±gain·√(6/(fan_in+fan_out)))``."""
    return init(S.xavier_uniform(gain), shape, rng=rng, **kw)


def xavier_normal(shape: Shape, gain: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """``N(0, gain²·2/(fan_in+fan_out))``."""
    return init(S.xavier_normal(gain), shape, rng=rng, **kw)


def kaiming_uniform(
    shape: Shape,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: Any,
    **kw: Any,
) -> np.ndarray:
    """``U(±gain·√(3/fan))``."""
    return init(S.kaiming_uniform(a, mode, nonlinearity), shape, rng=rng, **kw)


def kaiming_normal(
    shape: Shape,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: Any,
    **kw: Any,
) -> np.ndarray:
    """``N(0, gain²/fan)``."""
    return init(S.kaiming_normal(a, mode, nonlinearity), shape, rng=rng, **kw)


def lecun_uniform(shape: Shape, *, rng: Any, **kw: Any) -> np.ndarray:
    """``U(±√(3/fan_in))``."""
    return init(S.lecun_uniform(), shape, rng=rng, **kw)


def lecun_normal(shape: Shape, *, rng: Any, **kw: Any) -> np.ndarray:
    """``N(0, 1/fan_in)``."""
    return init(S.lecun_normal(), shape, rng=rng, **kw)


def orthogonal(shape: Shape, gain: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """(Semi-)orthogonal ``rows × ∏shape[1:]`` matrix times ``gain``."""
    return init(S.orthogonal(gain), shape, rng=rng, **kw)


def eye(shape: Shape, gain: float = 1.0, *, dtype: Any = np.float32) -> np.ndarray:
    """Identity matrix (2-D)."""
    return init(S.eye(gain), shape, rng=0, dtype=dtype)


def dirac(shape: Shape, groups: int = 1, *, dtype: Any = np.float32) -> np.ndarray:
    """Dirac delta conv kernel."""
    return init(S.dirac(groups), shape, rng=0, dtype=dtype)


def delta_orthogonal(shape: Shape, gain: float = 1.0, *, rng: Any, **kw: Any) -> np.ndarray:
    """Delta-orthogonal conv kernel."""
    return init(S.delta_orthogonal(gain), shape, rng=rng, **kw)


def sparse(shape: Shape, sparsity: float, std: float = 0.01, *, rng: Any, **kw: Any) -> np.ndarray:
    """Sparse (Martens 2010)."""
    return init(S.sparse(sparsity, std), shape, rng=rng, **kw)
