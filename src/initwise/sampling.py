r"""Reproducible random streams: a parameter's values are a pure function of
``(seed, parameter name, element index)``.

Element ``i`` of parameter ``name`` under ``seed`` comes from a counter-based generator,
Philox4x32-10, keyed by ``key = blake2b(f"{seed}/{name}")`` (128 bits) with the element's group
``i // G`` as the counter (formulas in :mod:`initwise.kernels`). Nothing is sequential, so any
element — and so any slice, shard or row of a tensor — is produced alone, in any order, on any
thread or process: the same bits for 1, 2 or N threads, for any shard layout, for any order of
initialization, and whatever other parameters the model has. A truncated normal redraws an
element from the element's own counter (``k2 ⊕ try``), so it keeps the guarantee.

Values are made in the parameter's precision (float32 for float32/bf16/fp16, float64 for
float64). ``log``/``sin``/``cos`` of Box–Muller are polynomials written in plain IEEE operations,
so the compiled kernel (Numba, ``initwise[fast]``) and the NumPy fallback give the same bits on
any CPU; the compiled kernel runs on threads with the GIL released.

Why Philox + Numba (the dependency is optional): a counter-based generator is what makes the
guarantee cheap — per element, not per block — and Philox4x32-10 is the generator of
Random123/cuRAND/JAX/TensorFlow, with published known-answer vectors (tested). NumPy alone cannot
vectorize it and Box–Muller in one pass: the previous SFC64-per-block streams reached about 2×
torch.nn.init, the fused Numba loop reaches 3.7–5.9× (``initwise bench fill``). Numba compiles for
the host's SIMD width with no compiler on the user's machine; where it is missing (a Python it
does not support yet), the NumPy reference gives the same values, slower.

Limits: values are generated on the host (the torch back end copies them to the device), so CPU
and CUDA get identical values. Elementwise schemes (normal, uniform, truncated normal, variance
scaling, constant) produce only the requested indices; matrix schemes (orthogonal, sparse, eye,
dirac, delta-orthogonal) need the whole matrix and are generated whole (NumPy's SFC64 keyed by
the same hash), then sliced.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _validate as v
from . import cpus, kernels
from . import distributions as D
from . import schemes as S
from ._backend import NumpyBackend
from .distributions import Dist
from .math.fans import Fans
from .math.fans import fans as compute_fans

Ranges = Sequence[tuple[int, int]]


def _ndtr() -> Any:
    from scipy import special  # imported at first use: import initwise stays light

    return special.ndtr


def stream_key(seed: int, name: str) -> int:
    """128-bit key of parameter ``name`` under ``seed``."""
    seed = v.seed(seed)
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def default_threads() -> int:
    """Threads used when not given: ``INITWISE_THREADS``, else the CPUs free now
    (:func:`initwise.cpus.free`: those this process may use, less those other processes keep
    busy — a fill split over threads that cannot run waits for them)."""
    env = os.environ.get("INITWISE_THREADS")
    if not env:
        return cpus.free()
    try:
        n = int(env)
    except ValueError:
        raise ValueError(
            f"INITWISE_THREADS must be a positive integer, got {env!r}; unset it or set e.g. 4"
        ) from None
    if n < 1:
        raise ValueError(f"INITWISE_THREADS must be a positive integer, got {n}")
    return n


class Stream:
    """The random stream of one parameter: ``numel`` elements in ``dtype`` precision."""

    def __init__(
        self, key: int, numel: int, dtype: Any = np.float32, threads: int | None = None
    ) -> None:
        self.key = key
        self.numel = numel
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"stream dtype must be float32 or float64, got {self.dtype}")
        self.threads = threads or default_threads()

    def matrix_rng(self) -> np.random.Generator:
        """A NumPy generator keyed by the stream key, for matrix schemes (drawn whole):
        ``SFC64(SeedSequence([k0, k1, k2, k3, 2^31, 0]))``."""
        return np.random.Generator(
            np.random.SFC64(np.random.SeedSequence([*kernels.key_words(self.key), 1 << 31, 0]))
        )

    def _segments(self, ranges: Ranges | None) -> tuple[np.ndarray, np.ndarray]:
        if ranges is None:
            return np.array([0], dtype=np.int64), np.array([self.numel], dtype=np.int64)
        pairs = [(int(a), int(b)) for a, b in ranges]
        for a, b in pairs:
            if not 0 <= a <= b <= self.numel:
                raise ValueError(f"range ({a}, {b}) outside 0..{self.numel}")
        starts = np.array([a for a, _ in pairs], dtype=np.int64)
        lens = np.array([b - a for a, b in pairs], dtype=np.int64)
        return starts, lens

    def fill(
        self, dist: Dist, ranges: Ranges | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Values of ``dist`` at the flat indices in ``ranges`` (default: all), concatenated in
        range order, into ``out`` (allocated when not given)."""
        starts, lens = self._segments(ranges)
        total = int(lens.sum())
        if out is None:
            out = np.empty(total, dtype=self.dtype)
        if out.size != total or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous array of {total} {self.dtype} values")
        flat = out.reshape(-1)
        kind, scale, shift, a, b = dist.stream_args()
        if kind == "constant":
            flat[:] = shift
            return out
        if kind == "trunc" and D.narrow(a, b, _ndtr()):
            self._narrow_trunc(scale, shift, a, b, starts, lens, flat)
            return out
        kernels.fill(
            kind,
            self.key,
            starts,
            lens,
            flat,
            scale=scale,
            shift=shift,
            a=a,
            b=b,
            threads=self.threads,
        )
        return out

    def fill_tensor(self, dist: Dist, ranges: Ranges | None, out: Any) -> Any:
        """:meth:`fill` into a contiguous 1-D torch tensor ``out`` on its own device (same bits).
        A narrow truncation window (inverse CDF, rare) is computed on the host and copied."""
        starts, lens = self._segments(ranges)
        kind, scale, shift, a, b = dist.stream_args()
        if kind == "constant":
            return out.fill_(shift)
        if kind == "trunc" and D.narrow(a, b, _ndtr()):
            host = np.empty(out.numel(), dtype=self.dtype)
            self._narrow_trunc(scale, shift, a, b, starts, lens, host)
            return out.copy_(_torch_from_numpy(host))
        return kernels.fill_tensor(
            kind, self.key, starts, lens, out, scale=scale, shift=shift, a=a, b=b
        )

    def _narrow_trunc(
        self,
        scale: float,
        shift: float,
        a: float,
        b: float,
        starts: np.ndarray,
        lens: np.ndarray,
        out: np.ndarray,
    ) -> None:
        """Standard normal on a narrow window [a, b] (:func:`initwise.distributions.narrow`,
        where rejection would waste draws): the inverse CDF of the element's 53-bit uniform, in
        float64, on the :func:`~initwise.distributions.mirrored_window`."""
        u = kernels.fill(
            "uniform", self.key, starts, lens, np.empty(out.size), threads=self.threads
        )
        flip, lo, hi = D.mirrored_window(a, b)
        from scipy import special

        if special.ndtr(hi) < 1e-290:  # beyond float64's normal range: log space
            z = D.far_tail(u, lo, hi)
        else:
            z = special.ndtri(special.ndtr(lo) + (special.ndtr(hi) - special.ndtr(lo)) * u)
        np.clip(z, lo, hi, out=z)
        out[:] = -z if flip else z
        if scale != 1.0:
            out *= self.dtype.type(scale)
        if shift != 0.0:
            out += self.dtype.type(shift)


def sample(
    scheme: S.Scheme,
    shape: Sequence[int],
    *,
    seed: int,
    name: str,
    fans: Fans | None = None,
    ranges: Ranges | None = None,
    dtype: Any = np.float32,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Values of ``scheme`` for parameter ``name`` of ``shape`` under ``seed``.

    Without ``ranges``: an array of ``shape``. With ``ranges`` (flat row-major index ranges):
    a 1-D array of those elements, bit-identical to the same elements of the whole array.
    ``out``: a contiguous array to fill in place (of ``shape``, or of the ranges' length).
    """
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    scheme.check_shape(shape)
    if scheme.needs_fans and fans is None:
        fans = compute_fans(shape)
    stream = Stream(stream_key(seed, name), numel, dtype, threads)
    dist = scheme.dist(shape, fans)
    if dist is not None:
        vals = stream.fill(dist, ranges, None if out is None else out.reshape(-1))
        if out is not None:
            return out
        return vals if ranges is not None else vals.reshape(shape)
    # matrix schemes: the whole matrix from one generator keyed by the stream key, then slice
    rng = stream.matrix_rng()
    full = np.asarray(scheme.sample(shape, NumpyBackend(rng), fans), dtype=np.float64)
    full = cast_row_major(full, stream.dtype)
    sel = (
        full
        if ranges is None
        else (np.concatenate([full[a:b] for a, b in ranges]) if ranges else full[:0])
    )
    if out is not None:
        out.reshape(-1)[:] = sel
        return out
    return sel.reshape(shape) if ranges is None else sel


def cast_row_major(a: np.ndarray, dtype: Any, tile: int = 128) -> np.ndarray:
    """``a`` cast to ``dtype`` as a flat row-major array — the values of
    ``a.astype(dtype).reshape(-1)``. A column-major 2-D ``a`` (what LAPACK-style matrix
    schemes return) is cast tile by tile: 0.10 s at 4096² instead of 0.38 s for the cast and
    the transposing copy one after the other."""
    if a.flags.c_contiguous or a.ndim != 2:
        return a.astype(dtype).reshape(-1)
    out = np.empty(a.shape, dtype)
    rows, cols = a.shape
    for i in range(0, rows, tile):
        for j in range(0, cols, tile):
            out[i : i + tile, j : j + tile] = a[i : i + tile, j : j + tile]
    return out.reshape(-1)


def sample_tensor(
    scheme: S.Scheme,
    shape: Sequence[int],
    *,
    seed: int,
    name: str,
    device: Any,
    dtype: Any = None,
    fans: Fans | None = None,
    ranges: Ranges | None = None,
    out: Any = None,
) -> Any:
    """:func:`sample` as a torch tensor drawn on ``device`` (float32, or float64 for
    ``dtype=torch.float64``): elementwise schemes are generated there by the torch kernel — the
    same bits as :func:`sample` — so a GPU parameter (or shard) never passes through host memory.
    Matrix schemes (orthogonal, sparse, eye, dirac, delta-orthogonal) are made on the host and
    copied. ``out``: a contiguous tensor of the result's size on ``device`` to fill in place."""
    import torch

    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    scheme.check_shape(shape)
    if scheme.needs_fans and fans is None:
        fans = compute_fans(shape)
    tdt = torch.float64 if dtype == torch.float64 else torch.float32
    np_dtype = np.float64 if tdt == torch.float64 else np.float32
    dist = scheme.dist(shape, fans)
    size = numel if ranges is None else sum(int(b) - int(a) for a, b in ranges)
    target = out if out is not None else torch.empty(size, dtype=tdt, device=device)
    if target.numel() != size or target.dtype != tdt or not target.is_contiguous():
        raise ValueError(f"out must be a contiguous tensor of {size} {tdt} values")
    flat = target.view(-1)
    if dist is not None:
        Stream(stream_key(seed, name), numel, np_dtype, 1).fill_tensor(dist, ranges, flat)
    else:
        host = sample(scheme, shape, seed=seed, name=name, fans=fans, ranges=ranges, dtype=np_dtype)
        flat.copy_(torch.from_numpy(np.ascontiguousarray(host).reshape(-1)))
    if out is not None:
        return out
    return target if ranges is not None else target.view(shape)


def _torch_from_numpy(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(a)


def box_ranges(
    shape: Sequence[int], offset: Sequence[int], local: Sequence[int]
) -> list[tuple[int, int]]:
    """Flat index ranges of the box ``offset + [0, local)`` in a row-major ``shape``; adjacent
    runs are merged (a row shard is one range)."""
    shape, offset, local = tuple(shape), tuple(offset), tuple(local)
    if not shape:
        return [(0, 1)]
    if any(n == 0 for n in local):
        return []
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    run = local[-1]
    out: list[tuple[int, int]] = []
    for idx in np.ndindex(*local[:-1]):
        start = sum((o + i) * st for o, i, st in zip(offset[:-1], idx, strides[:-1], strict=True))
        start += offset[-1]
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + run)
        else:
            out.append((start, start + run))
    return out
