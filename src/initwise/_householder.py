"""Forming ``Q = H₁⋯Hₙ`` from Householder reflectors in float64, blocked for speed.

LAPACK's ``dorgqr`` does this with the block size its ``ilaenv`` gives (32 in the reference
LAPACK that OpenBLAS ships), so most of its flops are rank-32 updates and it runs at about 40 %
of this machine's ``dgemm`` rate. Here the same backward accumulation (Golub & Van Loan, *Matrix
Computations* 4th ed., §5.1.6–5.1.7; the compact WY form of Schreiber & Van Loan 1989) uses
blocks of :func:`block_size` reflectors: for each block, from the last to the first,

    T⁻¹ = striu(VᵀV) + diag(1/τ)     (H_k⋯H_{k+b−1} = I − V·T·Vᵀ; Puglisi 1992,
                                      Joffrain et al. 2006), never inverted: solved against,
    C  ← C − V·(T·(Vᵀ·C))            for the columns already formed (two large GEMMs),
    Q_b = E − V·(T·V₁ᵀ)              for the block's own columns (V₁ its top b×b part).

Every BLAS call goes to one library — SciPy's ``cython_blas`` function pointers, called with
ctypes (which releases the GIL) — so the trailing update is done in place with a leading
dimension and no temporary, and no second BLAS pool spins beside it. The result equals
``dorgqr``'s to ~2e-16 (tested); the sums run in another order, so float32 casts of the two
differ in a few values in ten million (none of the pinned digests). Like ``dorgqr``'s, the
float64 values can differ in the last bit between BLAS thread counts at some shapes (OpenBLAS's
``dgemm`` splits some shapes differently), which the cast to float32 absorbs (tested; at 1024²,
2048×8192 and 4096² even the float64 values were identical with 1 and 2 threads).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np


def block_size(n: int) -> int:
    """Reflectors per block for ``n`` columns: 64 below 384, 128 below 1536, 256 below 3072,
    else 512 — the fastest of 64/128/256/512 measured at n = 256…4096 on a 2-core AVX2 host
    (``dorgqr``'s 32: 1.0× at 256², 1.6× slower at 1024² and 2048², 1.6–2.1× at 4096×1024 and
    4096²). The values depend on it only in the last bits of float64 (a deterministic function
    of the shape)."""
    for limit, b in ((384, 64), (1536, 128), (3072, 256)):
        if n < limit:
            return b
    return 512


@functools.cache
def _blas(name: str) -> Any:
    """A BLAS routine from ``scipy.linalg.cython_blas`` as a ctypes function (Fortran calling
    convention: every argument a pointer; ctypes releases the GIL during the call)."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    pointer = get_pointer(capsule, get_name(capsule))
    c, i, d = ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p
    args = {
        "dgemm": [c, c, i, i, i, d, d, i, d, i, d, d, i],  # ta tb m n k α a lda b ldb β c ldc
        "dtrsm": [c, c, c, c, i, i, d, d, i, d, i],  # side uplo ta diag m n α a lda b ldb
    }[name]
    return ctypes.CFUNCTYPE(None, *args)(pointer)


def _i(x: int) -> Any:
    return ctypes.byref(ctypes.c_int(int(x)))


def _d(x: float) -> Any:
    return ctypes.byref(ctypes.c_double(float(x)))


def _ptr(x: np.ndarray) -> tuple[Any, Any]:
    """Data pointer and leading dimension of a column-major float64 view (unit row stride)."""
    rows, cols = x.shape
    ld = x.strides[1] // 8 if cols > 1 else max(1, rows)  # a lone column's stride is arbitrary
    if x.dtype != np.float64 or (rows > 1 and x.strides[0] != 8) or ld < max(1, rows):
        raise ValueError("BLAS operand must be a column-major float64 view")  # pragma: no cover
    return ctypes.c_void_p(x.ctypes.data), _i(ld)


def gemm(
    alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray, trans_a: bool = False
) -> None:
    """``c ← α·op(a)·b + β·c`` in place (``op(a) = aᵀ`` if ``trans_a``): BLAS ``dgemm`` on
    column-major float64 views with any leading dimension."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m and n:
        fn = _blas("dgemm")
        fn(
            b"T" if trans_a else b"N",
            b"N",
            _i(m),
            _i(n),
            _i(k),
            _d(alpha),
            *_ptr(a),
            *_ptr(b),
            _d(beta),
            *_ptr(c),
        )


def trsm_upper(a: np.ndarray, b: np.ndarray) -> None:
    """``b ← a⁻¹·b`` in place, ``a`` upper triangular (BLAS ``dtrsm``, column-major views)."""
    m, n = b.shape
    if m and n:
        _blas("dtrsm")(b"L", b"U", b"N", b"N", _i(m), _i(n), _d(1.0), *_ptr(a), *_ptr(b))


def reflectors(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn the columns of ``f`` (column-major ``m × n``, ``m ≥ n``) into Householder vectors in
    place, LAPACK's ``dlarfg`` convention (``H = I − τ·v·vᵀ``, ``v₀ = 1`` implied, stored
    below the diagonal): reflector ``k`` maps ``f[k:, k]`` to ``β_k·e₁``, ``τ ∈ [1, 2]``.
    Returns ``τ`` and ``sign(β)`` (the diagonal signs a QR's ``R`` would have had). A zero
    column (probability 0) is read as ``e₁`` (τ 2, sign −1): once signed, the same ``Q`` as the
    identity reflector, and every ``τ`` stays invertible."""
    m, n = f.shape
    tau = np.empty(n)
    sign = np.empty(n)
    for k in range(0, n, 256):  # 256 columns at a time, vectorized (norms summed by einsum)
        b = min(256, n - k)
        top = f[k : k + b, k : k + b]
        below = np.tril(np.ones((b, b), dtype=bool), -1)
        lower = np.where(below, top, 0.0)
        x0 = np.diagonal(top).copy()
        ss = np.einsum("ij,ij->j", lower, lower) + x0 * x0
        rest = f[k + b :, k : k + b]
        if m > k + b:
            ss += np.einsum("ij,ij->j", rest, rest)
        norm = np.sqrt(ss)
        zero = norm == 0.0
        x0[zero] = norm[zero] = 1.0
        beta = -np.copysign(norm, x0)
        tau[k : k + b] = (beta - x0) / beta
        d = x0 - beta
        rest /= d
        top[below] = (top / d)[below]
        sign[k : k + b] = np.where(beta > 0, 1.0, -1.0)
    return tau, sign


def form_q(f: np.ndarray, tau: np.ndarray, block: int | None = None) -> np.ndarray:
    """``Q = H₁⋯Hₙ`` (its first ``n`` columns) written over ``f`` and returned: ``f`` holds the
    Householder vectors below its diagonal (column-major ``m × n``, ``m ≥ n``; what is on and
    above the diagonal is ignored), ``tau`` their ``τ``s (none 0) — what LAPACK's ``dorgqr``
    computes. Per block, ``T⁻¹ = striu(VᵀV) + diag(1/τ)`` (Puglisi 1992; Joffrain et al. 2006)
    is applied by a triangular solve. Workspace: ``(m + n)·b`` float64 for ``b``
    (:func:`block_size`) reflectors per block — ~120 MB beside the 822 MB draw at 25088×4096."""
    m, n = f.shape
    if not (f.dtype == np.float64 and f.flags.f_contiguous and m >= n and len(tau) == n):
        raise ValueError("form_q: f must be a column-major float64 m×n array with m ≥ n")
    block = max(1, min(block_size(n) if block is None else int(block), n))
    vbuf = np.empty(m * block)
    wbuf = np.empty(block * max(block, n - block))
    tbuf = np.empty(block * block)
    for k in reversed(range(0, n, block)):
        b = min(block, n - k)
        h = m - k
        d = np.arange(b)
        v = vbuf[: h * b].reshape(b, h).T  # column-major h×b
        v[...] = f[k:, k : k + b]
        top = v[:b]
        top[np.triu_indices(b, 1)] = 0.0
        top[d, d] = 1.0
        tinv = tbuf[: b * b].reshape(b, b).T
        gemm(1.0, v, v, 0.0, tinv, trans_a=True)  # VᵀV; its upper triangle is used
        tinv[d, d] = 1.0 / tau[k : k + b]
        r = n - k - b
        if r:
            f[k : k + b, k + b :] = 0.0  # rows the later reflectors never touched: Q's zeros
            w = wbuf[: b * r].reshape(r, b).T  # column-major b×r
            gemm(1.0, v[b:], f[k + b :, k + b :], 0.0, w, trans_a=True)  # Vᵀ·C
            trsm_upper(tinv, w)  # T·Vᵀ·C
            gemm(-1.0, v, w, 1.0, f[k:, k + b :])  # C ← C − V·T·Vᵀ·C
        x = wbuf[: b * b].reshape(b, b).T
        x[...] = top.T
        trsm_upper(tinv, x)  # T·V₁ᵀ
        own = f[k:, k : k + b]
        gemm(-1.0, v, x, 0.0, own)  # −V·T·V₁ᵀ
        own[d, d] += 1.0
        f[:k, k : k + b] = 0.0
    return f
