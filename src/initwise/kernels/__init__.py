r"""Counter-based stream kernels: the value of element ``i`` of a parameter is a pure function of
the parameter's 128-bit key ``(k0, k1, k2, k3)`` and ``i``.

Element ``i`` belongs to group ``g = i // G`` (``G = 4`` for float32, ``2`` for float64), and
group ``g`` is one Philox4x32-10 call: counter ``(g mod 2^32, g >> 32, k2, k3)``, key
``(k0, k1)``, four 32-bit words ``w0…w3``.

* float32 uniform: element ``4g + j`` is ``(w_j >> 8)·2^-24`` (24 bits, on [0, 1)), then
  ``· scale + shift``.
* float32 normal: words ``(w0, w1)`` give elements ``4g, 4g+1`` and ``(w2, w3)`` give
  ``4g+2, 4g+3`` by Box–Muller, ``(r cos θ, r sin θ)`` with ``r = sqrt(−2 scale² ln u)``,
  ``u = ((w_a >> 8) + 1)·2^-24 ∈ (0, 1]`` and ``θ = 2π (w_b >> 8)·2^-24`` (so ``|z| ≤ 5.77σ``,
  as for torch's and NumPy's float32 normals), then ``+ shift``.
* float64: the same with 53-bit uniforms from word pairs, ``u = ((w_a >> 5)·2^26 + (w_b >> 6))
  ·2^-53``; a normal pair takes a whole group (radius from ``w0, w1``, angle from ``w2, w3``;
  ``|z| ≤ 8.57σ``).
* truncated normal on ``[a, b]``: the standard normal of element ``i``; while it falls outside,
  try ``t = 1, 2, …`` is the cosine half of the pair of counter ``(i mod 2^32, i >> 32, k2 ⊕ t,
  k3)``; then ``· scale + shift``.

``log``, ``sin`` and ``cos`` are polynomials written out in IEEE operations (formulas in
:mod:`.constants`), not a math library's, so the values do not depend on the library or CPU.

Three implementations give the same bits: a Numba kernel (``pip install initwise[fast]``),
compiled for the host CPU and run on threads with the GIL released; a NumPy reference used when
Numba is missing (or ``INITWISE_KERNEL=numpy``); and a torch kernel (:func:`fill_tensor`) that
draws straight into a tensor on any device (a GPU's memory, without a host round trip).
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np

from . import _numpy
from . import constants as K

KINDS = {"uniform": 0, "normal": 1, "trunc": 2}
Key = tuple[int, int, int, int]
_PARALLEL_MIN = 1 << 16  # elements below which one thread is faster than a pool
_SLOW_WARN_MIN = 1 << 24  # elements from which the NumPy fallback warns (once per process)
_warned_slow = False
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """One pool for the process, grown when more workers are asked for (starting threads per
    fill cost 0.3 s over GPT-2-medium's 146 large parameters)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="initwise-fill")
        return _pool


@lru_cache(maxsize=1)
def _numba_module():
    try:
        from . import _numba
    except ImportError:
        return None
    return _numba


def _kernel_env() -> str:
    """``INITWISE_KERNEL``, normalized (``""`` when unset)."""
    return os.environ.get("INITWISE_KERNEL", "").strip().lower()


def backend() -> str:
    """``"numba"`` when the compiled kernel is used, else ``"numpy"``. ``INITWISE_KERNEL=numpy``
    forces the reference (values are identical either way)."""
    want = _kernel_env()
    if want not in ("", "numba", "numpy"):
        raise ValueError(f"INITWISE_KERNEL must be 'numba' or 'numpy', got {want!r}")
    if want == "numpy":
        return "numpy"
    if _numba_module() is None:
        if want == "numba":
            raise ImportError(
                "INITWISE_KERNEL=numba but numba is not installed: pip install 'initwise[fast]'"
            )
        return "numpy"
    return "numba"


def warm() -> str:
    """Load (or, the first time on a machine, compile — 5–7 s — and cache) the compiled
    kernels for both precisions now rather than at the first fill; returns :func:`backend`.
    A fixed per-process cost (the JIT's memory), independent of model size."""
    for dtype in (np.float32, np.float64):
        for kind in KINDS:
            fill(kind, 0, np.zeros(1, np.int64), np.ones(1, np.int64), np.empty(1, dtype))
    return backend()


class SlowKernelWarning(RuntimeWarning):
    """A large fill is running on the NumPy reference kernel because Numba is missing."""


def _warn_slow(n: int) -> None:
    global _warned_slow
    if n < _SLOW_WARN_MIN or _kernel_env() == "numpy" or _warned_slow:
        return
    _warned_slow = True
    warnings.warn(
        f"initwise is filling {n:,} values with its NumPy reference kernel because numba is not "
        "installed: the values are the same, but about 25x slower. pip install 'initwise[fast]' "
        "(or set INITWISE_KERNEL=numpy to silence this).",
        SlowKernelWarning,
        stacklevel=4,
    )


def key_words(key: int) -> Key:
    """The four 32-bit words of a 128-bit stream key, low word first."""
    return tuple((key >> (32 * i)) & K.MASK32 for i in range(4))  # type: ignore[return-value]


def _params(dtype: np.dtype, scale: float, shift: float) -> tuple:
    t = dtype.type
    return t(scale), t(shift), t(-2.0 * scale * scale)


def _split(starts: np.ndarray, lens: np.ndarray, parts: int):
    """Cut the segments into ``parts`` runs of about equal element count:
    ``(starts, lens, out offset, count)`` per run."""
    total = int(lens.sum())
    bounds = [total * p // parts for p in range(parts + 1)]
    ends = np.cumsum(lens) - lens  # output offset of each segment
    runs = []
    for p in range(parts):
        lo, hi = bounds[p], bounds[p + 1]
        if hi <= lo:
            continue
        first = int(np.searchsorted(ends, lo, side="right") - 1)
        last = int(np.searchsorted(ends, hi, side="left"))
        st = starts[first:last].copy()
        ln = lens[first:last].copy()
        cut = lo - int(ends[first])
        st[0] += cut
        ln[0] -= cut
        ln[-1] -= int(ends[last - 1] + lens[last - 1]) - hi
        runs.append((st, ln, lo, hi - lo))
    return runs


def fill(
    kind: str,
    key: int,
    starts: np.ndarray,
    lens: np.ndarray,
    out: np.ndarray,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    a: float = -2.0,
    b: float = 2.0,
    threads: int = 1,
) -> np.ndarray:
    """Write the stream values of flat elements ``[starts[i], starts[i] + lens[i])``,
    concatenated in order, into the contiguous 1-D float32/float64 ``out``.

    ``kind``: ``uniform`` (``u · scale + shift``), ``normal`` (std ``scale``, mean ``shift``) or
    ``trunc`` (standard normal on ``[a, b]``, then ``· scale + shift``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    dtype = out.dtype
    if dtype not in K.GROUP:
        raise TypeError(f"out must be float32 or float64, got {dtype}")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    if lens.size and int(lens.min()) < 0:
        raise ValueError("segment lengths must be >= 0")
    if int(lens.sum()) != out.size:
        raise ValueError(f"out has {out.size} elements, the segments {int(lens.sum())}")
    keep = lens > 0
    starts, lens = starts[keep], lens[keep]
    words = key_words(key)
    sc, sh, s2 = _params(dtype, scale, shift)
    mod = _numba_module() if backend() == "numba" else None
    if mod is None:
        _warn_slow(out.size)

    def run(st: np.ndarray, ln: np.ndarray, dst: np.ndarray) -> None:
        if mod is None:
            ok = _numpy.fill(kind, words, st, ln, dst, (sc, sh, s2, float(a), float(b)))
        else:
            fn = mod.fill32 if dtype == np.float32 else mod.fill64
            w = tuple(np.uint32(x) for x in words)
            ok = fn(KINDS[kind], *w, st, ln, dst, sc, sh, s2, float(a), float(b))
        if not ok:
            raise RuntimeError(f"truncated normal: no draw in [{a}, {b}] after {K.MAX_TRIES} tries")

    parts = max(1, min(int(threads), out.size // _PARALLEL_MIN))
    if parts == 1:
        run(starts, lens, out)
        return out
    runs = _split(starts, lens, parts)
    ex = _executor(len(runs))
    futures = [ex.submit(run, st, ln, out[o : o + n]) for st, ln, o, n in runs]
    for f in futures:
        f.result()
    return out


def fill_tensor(
    kind: str,
    key: int,
    starts: np.ndarray,
    lens: np.ndarray,
    out: Any,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    a: float = -2.0,
    b: float = 2.0,
) -> Any:
    """:func:`fill` into a contiguous 1-D float32/float64 torch tensor on any device, with
    torch operations on that device (:mod:`initwise.kernels._torch`): the same bits as the host
    kernels."""
    import torch

    from . import _torch

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if out.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"out must be float32 or float64, got {out.dtype}")
    if out.dim() != 1 or not out.is_contiguous():
        raise ValueError("out must be a contiguous 1-D tensor")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    if lens.size and int(lens.min()) < 0:
        raise ValueError("segment lengths must be >= 0")
    if int(lens.sum()) != out.numel():
        raise ValueError(f"out has {out.numel()} elements, the segments {int(lens.sum())}")
    np_dtype = np.dtype(np.float32 if out.dtype == torch.float32 else np.float64)
    sc, sh, s2 = _params(np_dtype, scale, shift)
    p = (float(sc), float(sh), float(s2), float(a), float(b))
    if not _torch.fill(kind, key_words(key), starts, lens, out, p):
        raise RuntimeError(f"truncated normal: no draw in [{a}, {b}] after {K.MAX_TRIES} tries")
    return out
