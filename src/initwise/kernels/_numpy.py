"""The stream kernel in plain NumPy: the reference that the Numba kernel must match bit for bit,
and the fallback where Numba is not installed (about 10× slower, same values).

Every function here does the same IEEE operations, in the same order, as its twin in
:mod:`initwise.kernels._numba`; see :mod:`initwise.kernels.constants` for the formulas.
"""

from __future__ import annotations

import numpy as np

from . import constants as K
from ._segments import chunks

CHUNK = 1 << 14  # groups per vectorized step

_U64 = np.uint64
_F24 = np.float32(2.0**-24)
_F53 = np.float64(2.0**-53)


def philox(
    ctr: np.ndarray, c2: int, c3: int, k0: int, k1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-10 of counters ``(ctr mod 2^32, ctr >> 32, c2, c3)`` under key ``(k0, k1)``:
    four uint64 arrays holding the 32-bit output words."""
    ctr = np.asarray(ctr, dtype=_U64)
    m32 = _U64(K.MASK32)
    x0 = ctr & m32
    x1 = ctr >> _U64(32)
    x2 = np.full(ctr.shape, c2, dtype=_U64)
    x3 = np.full(ctr.shape, c3, dtype=_U64)
    a0, a1 = k0, k1
    for _ in range(K.ROUNDS):
        p0 = _U64(K.M0) * x0
        p1 = _U64(K.M1) * x2
        n0 = (p1 >> _U64(32)) ^ x1 ^ _U64(a0)
        n2 = (p0 >> _U64(32)) ^ x3 ^ _U64(a1)
        x1 = p1 & m32
        x3 = p0 & m32
        x0, x2 = n0, n2
        a0 = (a0 + K.W0) & K.MASK32
        a1 = (a1 + K.W1) & K.MASK32
    return x0, x1, x2, x3


def _horner(x: np.ndarray, coefs: tuple) -> np.ndarray:
    acc = coefs[-1] * np.ones_like(x)
    for c in reversed(coefs[:-1]):
        acc = c + x * acc
    return acc


def _sincos(f: np.ndarray, q: np.ndarray, one: np.floating, sin_c: tuple, cos_c: tuple):
    """cos and sin of ``2π(q/4 + f)``, ``|f| ≤ 1/8``."""
    f2 = f * f
    sn = f * _horner(f2, sin_c)
    cs = one + f2 * _horner(f2, cos_c)
    qi = q & 3
    odd = (qi & 1) == 1
    bc = np.where(odd, sn, cs)
    bs = np.where(odd, cs, sn)
    return np.where(((qi + 1) >> 1) & 1 == 1, -bc, bc), np.where((qi >> 1) & 1 == 1, -bs, bs)


def _radius(e: np.ndarray, m: np.ndarray, s2, sqrt2, ln2, coefs: tuple) -> np.ndarray:
    """``sqrt(s2 · ln u)`` for ``u = 2^e · m``, ``m ∈ [1, 2)``: moved to ``[√½, √2)``, then
    ``ln u = e ln 2 + 2t(1 + t² P(t²))``, ``t = (m − 1)/(m + 1)``."""
    dt = m.dtype.type
    one = dt(1)
    big = m > sqrt2
    m = np.where(big, m * dt(0.5), m)
    e = np.where(big, e + 1, e)
    t = (m - one) / (m + one)
    z = t * t
    lnm = (t + t) * (one + z * _horner(z, coefs))
    return np.sqrt((e.astype(m.dtype) * ln2 + lnm) * s2)


def normal32(a: np.ndarray, b: np.ndarray, s2: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Box–Muller pair from words ``a`` (radius) and ``b`` (angle): ``r cos θ, r sin θ`` with
    ``r = sqrt(s2 · ln u)``, ``u = ((a >> 8) + 1)·2^-24``, ``θ = 2π (b >> 8)·2^-24``."""
    f32 = np.float32
    u1 = ((a >> _U64(8)).astype(np.int32) + 1).astype(f32) * _F24
    bits = u1.view(np.uint32)
    e = (bits >> 23).astype(np.int32) - 127
    m = ((bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(f32)
    r = _radius(e, m, s2, K.SQRT2_32, K.LN2_32, K.LOG32)
    k = (b >> _U64(8)).astype(np.int32)
    q = (k + (1 << 21)) >> 22
    f = (k - (q << 22)).astype(f32) * _F24
    c, s = _sincos(f, q, f32(1), K.SIN32, K.COS32)
    return r * c, r * s


def _u53(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a >> _U64(5)) << _U64(26)) | (b >> _U64(6))


def uniform64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """53-bit uniform on [0, 1) from two words."""
    return _u53(a, b).astype(np.int64).astype(np.float64) * _F53


def normal64(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, s2: np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """float64 Box–Muller pair: radius from 53 bits of ``(a, b)``, angle from ``(c, d)``."""
    f64 = np.float64
    u1 = (_u53(a, b).astype(np.int64) + 1).astype(f64) * _F53
    bits = u1.view(np.uint64)
    e = (bits >> _U64(52)).astype(np.int64) - 1023
    m = ((bits & _U64(0xFFFFFFFFFFFFF)) | _U64(0x3FF0000000000000)).view(f64)
    r = _radius(e, m, s2, K.SQRT2_64, K.LN2_64, K.LOG64)
    k = _u53(c, d).astype(np.int64)
    q = (k + (1 << 50)) >> 51
    f = (k - (q << 51)).astype(f64) * _F53
    cs, sn = _sincos(f, q, f64(1), K.SIN64, K.COS64)
    return r * cs, r * sn


def _redraw(
    z: np.ndarray, idx: np.ndarray, key: tuple[int, int, int, int], lo: float, hi: float
) -> bool:
    """Replace ``z[j]`` outside ``[lo, hi]`` by redraws: try ``t`` of element ``idx[j]`` is the
    cosine half of the Box–Muller pair of counter ``(idx, k2 ^ t, k3)``. False if an element ran
    out of tries (as the compiled kernel reports it)."""
    k0, k1, k2, k3 = key
    bad = np.flatnonzero((z.astype(np.float64) < lo) | (z.astype(np.float64) > hi))
    t = 0
    while bad.size:
        t += 1
        if t > K.MAX_TRIES:
            return False
        w0, w1, w2, w3 = philox(idx[bad], k2 ^ t, k3, k0, k1)
        if z.dtype == np.float32:
            v, _ = normal32(w0, w1, np.float32(-2.0))
        else:
            v, _ = normal64(w0, w1, w2, w3, np.float64(-2.0))
        z[bad] = v
        bad = bad[(v.astype(np.float64) < lo) | (v.astype(np.float64) > hi)]
    return True


def groups(
    kind: str, dtype: np.dtype, key: tuple[int, int, int, int], g0: int, n: int, p: tuple
) -> np.ndarray | None:
    """The ``n · GROUP`` values of groups ``g0 … g0 + n − 1`` in element order (None if a
    truncated draw ran out of tries).

    ``p = (scale, shift, s2, lo, hi)`` in the stream's precision (``lo``/``hi`` float64)."""
    k0, k1, k2, k3 = key
    scale, shift, s2, lo, hi = p
    w0, w1, w2, w3 = philox(np.arange(g0, g0 + n, dtype=_U64), k2, k3, k0, k1)
    if dtype == np.float32:
        out = np.empty((n, 4), dtype=np.float32)
        if kind == "uniform":
            for j, w in enumerate((w0, w1, w2, w3)):
                out[:, j] = (w >> _U64(8)).astype(np.int32).astype(np.float32) * _F24
            return (out * scale + shift).reshape(-1)
        s = s2 if kind == "normal" else np.float32(-2.0)
        out[:, 0], out[:, 1] = normal32(w0, w1, s)
        out[:, 2], out[:, 3] = normal32(w2, w3, s)
    else:
        out = np.empty((n, 2), dtype=np.float64)
        if kind == "uniform":
            out[:, 0] = uniform64(w0, w1)
            out[:, 1] = uniform64(w2, w3)
            return (out * scale + shift).reshape(-1)
        s = s2 if kind == "normal" else np.float64(-2.0)
        out[:, 0], out[:, 1] = normal64(w0, w1, w2, w3, s)
    # trunc draws standard normals through the same path with shift +0.0 (as the compiled
    # kernel does: it turns -0.0 into +0.0, so the two must agree)
    flat = out.reshape(-1) + (shift if kind == "normal" else out.dtype.type(0.0))
    if kind == "normal":
        return flat
    G = K.GROUP[np.dtype(dtype)]
    if not _redraw(flat, np.arange(g0 * G, (g0 + n) * G, dtype=_U64), key, lo, hi):
        return None
    return flat * scale + shift


def fill(
    kind: str,
    key: tuple[int, int, int, int],
    starts: np.ndarray,
    lens: np.ndarray,
    out: np.ndarray,
    p: tuple,
) -> bool:
    """Values of flat elements ``[starts[i], starts[i] + lens[i])``, concatenated, into ``out``.
    False if a truncated draw ran out of tries (as the compiled kernel's ``fill32``)."""
    for g, m, lo, hi, pos in chunks(starts, lens, K.GROUP[out.dtype], CHUNK):
        vals = groups(kind, out.dtype, key, g, m, p)
        if vals is None:
            return False
        out[pos : pos + hi - lo] = vals[lo:hi]
    return True
