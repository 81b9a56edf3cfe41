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

from . import constants as K

KINDS = K.KINDS
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


_JIT_MIN = 1 << 22
"""Elements (in one fill, or in all fills of the process so far) from which the Numba kernel is
loaded — and, the first time in an environment, compiled. Before that the NumPy reference (same
bits) draws, so initializing a small model never waits for the JIT (a cold compile is 5–11 s, a
cached load 0.3–0.8 s), while a process that keeps drawing switches to the fast kernel."""
_numba_ready = False
_drawn = 0


def cache_dir() -> str | None:
    """Where the compiled kernel is cached: ``INITWISE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/initwise``, else ``~/.cache/initwise`` — never the package's own folder.
    None when the user set ``NUMBA_CACHE_DIR`` (numba's own choice is then respected)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    env = os.environ.get("INITWISE_CACHE_DIR")
    if env:
        return os.path.abspath(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "initwise")


def _install_cache_locator(path: str) -> None:
    """Make numba cache initwise's kernel file (and nothing else) under ``path``: a locator class
    in front of numba's, matching only ``kernels/_numba.py``. The user's own numba code and
    settings are untouched. If numba's internals differ, its default places are used."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba missing: nothing to cache
        return
    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None
    )
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if base is None or not isinstance(classes, list):
        return
    kernel_file = os.path.abspath(os.path.join(os.path.dirname(__file__), "_numba.py"))

    class InitwiseCacheLocator(base):  # type: ignore[misc, valid-type]
        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(path, "numba", self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.abspath(py_file) != kernel_file:
                return None
            return super(base, cls).from_function(py_func, py_file)

    if not any(c.__name__ == "InitwiseCacheLocator" for c in classes):
        classes.insert(0, InitwiseCacheLocator)


@lru_cache(maxsize=1)
def _numba_available() -> bool:
    """Whether numba is installed (without importing it: that alone takes about 0.3 s)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


@lru_cache(maxsize=1)
def _numba_module():
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    path = cache_dir()
    if path is not None:
        _install_cache_locator(path)
    from . import _numba

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
    if not _numba_available():
        if want == "numba":
            raise ImportError(
                "INITWISE_KERNEL=numba but numba is not installed: pip install 'initwise[fast]'"
            )
        return "numpy"
    return "numba"


def warm() -> str:
    """Load (or, the first time in an environment, compile — 5–7 s — and cache in
    :func:`cache_dir`) the compiled kernels for both precisions now rather than at the first
    large fill; returns :func:`backend`. ``initwise warm`` does this ahead of time."""
    global _numba_ready
    mod = _numba_module() if backend() == "numba" else None
    for dtype in (np.float32, np.float64):
        for kind in KINDS:
            out = np.empty(1, dtype)
            if mod is not None:
                fn = mod.fill32 if dtype == np.float32 else mod.fill64
                sc, sh, s2 = _params(np.dtype(dtype), 1.0, 0.0)
                w = tuple(np.uint32(x) for x in key_words(0))
                fn(
                    KINDS[kind],
                    *w,
                    np.zeros(1, np.int64),
                    np.ones(1, np.int64),
                    out,
                    sc,
                    sh,
                    s2,
                    -2.0,
                    2.0,
                )
            else:
                fill(kind, 0, np.zeros(1, np.int64), np.ones(1, np.int64), out)
    if mod is not None:
        _numba_ready = True
    return backend()


def _kernel_for(n: int) -> Any:
    """The Numba module for a fill of ``n`` elements, or None for the NumPy reference: forced by
    ``INITWISE_KERNEL``; otherwise Numba once loaded, or once this fill or all fills so far
    reach :data:`_JIT_MIN` elements (which loads or compiles it)."""
    global _numba_ready, _drawn
    if backend() != "numba":
        return None
    _drawn += n
    if not (_numba_ready or n >= _JIT_MIN or _drawn >= _JIT_MIN or _kernel_env() == "numba"):
        return None
    mod = _numba_module()
    _numba_ready = mod is not None
    return mod


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


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")


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
    _check_kind(kind)
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
    mod = _kernel_for(out.size)
    if mod is None and backend() == "numpy":
        _warn_slow(out.size)

    def run(st: np.ndarray, ln: np.ndarray, dst: np.ndarray) -> None:
        if mod is None:
            from . import _numpy

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

    _check_kind(kind)
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


def device_kernel(device: Any, kind: str, fp64: bool = False) -> str:
    """Which torch-side kernel :func:`fill_tensor` uses for ``kind`` (``"uniform"``,
    ``"normal"``, ``"trunc"``) on ``device``: ``"triton"`` (the Triton kernel, which passed its
    bit-for-bit check at first use), ``"fused"`` (torch ops compiled by inductor, likewise),
    ``"eager ops"``, ``"eager ops (check failed)"`` (a
    :class:`~initwise.kernels._torch.DeviceKernelWarning` said why) or ``"not used yet"``."""
    import torch

    from . import _torch

    _check_kind(kind)
    return _torch.kernel_in_use(torch.device(device), kind, fp64)
