r"""Constants shared by both stream kernels (NumPy reference and Numba), so that both do the same
IEEE operations on the same numbers and give the same bits.

Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"): a round maps
counter words ``(c0, c1, c2, c3)`` and key ``(k0, k1)`` to

    (hi(M1·c2) ⊕ c1 ⊕ k0,  lo(M1·c2),  hi(M0·c0) ⊕ c3 ⊕ k1,  lo(M0·c0))

and the key is bumped by the Weyl constants ``(W0, W1)`` between rounds; ten rounds.

Box–Muller radius ``sqrt(-2 s² ln u)``: ``u = 2^e · m`` with ``m ∈ [√½, √2)`` and
``ln m = 2 atanh t = 2t (1 + t²/3 + t⁴/5 + …)``, ``t = (m − 1)/(m + 1)``, ``|t| ≤ 0.172``
(float32: to t⁹, float64: to t²³; the first dropped term is below half an ulp).

Angle ``θ = 2π u``: ``u = q/4 + f`` with ``q = round(4u)`` and ``|f| ≤ 1/8`` (exact), then
``sin(2πf) = Σ (−1)^k (2π)^{2k+1} f^{2k+1}/(2k+1)!`` and ``cos(2πf) = Σ (−1)^k (2π)^{2k}
f^{2k}/(2k)!`` (float32: to f⁹ / f¹⁰, float64: to f¹⁷ / f¹⁸), rotated by the quadrant ``q``.
"""

from __future__ import annotations

import math

import numpy as np

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
ROUNDS = 10
MASK32 = 0xFFFFFFFF

#: elements per Philox call (one counter = four 32-bit words)
GROUP = {np.dtype(np.float32): 4, np.dtype(np.float64): 2}


def _sin_coefs(n: int) -> list[float]:
    tp = 2 * math.pi
    return [(-1) ** k * tp ** (2 * k + 1) / math.factorial(2 * k + 1) for k in range(n)]


def _cos_coefs(n: int) -> list[float]:
    tp = 2 * math.pi
    return [(-1) ** k * tp ** (2 * k) / math.factorial(2 * k) for k in range(1, n + 1)]


def _atanh_coefs(n: int) -> list[float]:
    return [1.0 / (2 * k + 1) for k in range(1, n + 1)]


# float32: sin to f^9 (5 terms), cos to f^10 (1 + 5 terms), ln m to t^9 (1 + 4 terms)
SIN32 = tuple(np.float32(c) for c in _sin_coefs(5))
COS32 = tuple(np.float32(c) for c in _cos_coefs(5))
LOG32 = tuple(np.float32(c) for c in _atanh_coefs(4))
# float64: sin to f^17 (9 terms), cos to f^18 (1 + 9 terms), ln m to t^23 (1 + 11 terms)
SIN64 = tuple(np.float64(c) for c in _sin_coefs(9))
COS64 = tuple(np.float64(c) for c in _cos_coefs(9))
LOG64 = tuple(np.float64(c) for c in _atanh_coefs(11))

LN2_32 = np.float32(math.log(2.0))
LN2_64 = np.float64(math.log(2.0))
SQRT2_32 = np.float32(math.sqrt(2.0))
SQRT2_64 = np.float64(math.sqrt(2.0))

#: kind codes of the compiled kernels (Numba and Triton take the number)
KINDS = {"uniform": 0, "normal": 1, "trunc": 2}

#: how many redraws a truncated normal may need for one element before giving up
MAX_TRIES = 10_000
