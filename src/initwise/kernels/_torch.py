r"""The stream kernel in torch tensor operations, on any device: the same bits as the NumPy
reference (:mod:`initwise.kernels._numpy`) and the Numba kernel, drawn where the tensor lives.

Every function here does the same IEEE operations, in the same order, as its twins; formulas in
:mod:`initwise.kernels.constants`. How the bits are kept on every device:

* **Integers**: Philox needs 32×32→64-bit unsigned products, which torch does not have for
  every device and dtype. Each product is assembled from 16-bit limbs in int64, where every
  partial product is below 2^49 — exact, with no reliance on overflow behaviour.
* **Floats**: only ``+ − × ÷`` and ``sqrt`` (correctly rounded in IEEE 754 on CPUs and, by
  default, on CUDA; float32's ÷ and √ are done in float64 and rounded once, which gives the same
  bits and survives compilers whose float32 ÷ is approximate), and conversions of integers
  below 2^24 (float32) / 2^53 (float64), which are exact. Each operation is its own eager
  kernel (and the fused, compiled kernel is built with contraction off), so nothing can be
  contracted into a fused multiply-add (which rounds once instead of twice and would change
  bits): the polynomials are evaluated as separate multiplies and adds, as in NumPy.
* **Signed zeros**: a normal adds its shift (or +0.0) after Box–Muller, as the compiled kernel
  does, so −0.0 becomes +0.0 in all three.

Work is done in chunks of groups so the intermediates (a few dozen int64/float tensors of the
chunk's size) stay bounded on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import constants as K
from ._segments import chunks

CHUNK = 1 << 20  # groups per step (float32: 4 Mi elements; ~40 intermediates of 8 MiB each)

_M32 = K.MASK32
_F24 = 2.0**-24
_F53 = 2.0**-53


def _mulhilo(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hi, lo)`` 32-bit words of ``m · x`` for a 32-bit constant ``m`` and int64 ``x`` holding
    32-bit values, from 16-bit limbs (every partial product < 2^49: exact in int64)."""
    ml, mh = m & 0xFFFF, m >> 16
    xl, xh = x & 0xFFFF, x >> 16
    t0 = xl * ml
    mid = xh * ml + xl * mh + (t0 >> 16)
    lo = ((mid & 0xFFFF) << 16) | (t0 & 0xFFFF)
    hi = xh * mh + (mid >> 16)
    return hi, lo


def philox(
    ctr: torch.Tensor, c2: int, c3: int, k0: int, k1: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of counters ``(ctr mod 2^32, ctr >> 32, c2, c3)`` under key ``(k0, k1)``
    for an int64 tensor ``ctr`` ≥ 0: four int64 tensors holding the 32-bit output words."""
    x0 = ctr & _M32
    x1 = ctr >> 32
    zero = torch.zeros_like(ctr)
    x2 = zero + c2  # c2, c3, k0, k1: ints or 0-d int64 tensors (one compiled graph for all keys)
    x3 = zero + c3
    a0, a1 = k0, k1
    for _ in range(K.ROUNDS):
        hi0, lo0 = _mulhilo(K.M0, x0)
        hi1, lo1 = _mulhilo(K.M1, x2)
        n0 = hi1 ^ x1 ^ a0
        n2 = hi0 ^ x3 ^ a1
        x1, x3 = lo1, lo0
        x0, x2 = n0, n2
        a0 = (a0 + K.W0) & _M32
        a1 = (a1 + K.W1) & _M32
    return x0, x1, x2, x3


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitter for float64


def _two_product(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, e)`` with ``p + e == a·b`` exactly (Dekker 1971), from plain float64 ``+ − ×``."""
    p = a * b
    ca, cb = a * _SPLIT, b * _SPLIT
    ah = ca - (ca - a)
    al = a - ah
    bh = cb - (cb - b)
    bl = b - bh
    e = ah * bh - p
    e = e + ah * bl
    e = e + al * bh
    e = e + al * bl
    return p, e


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root on any device, for float32 and float64.

    torch's CPU ``sqrt`` is a vectorized approximation within one ulp, not IEEE's correctly
    rounded one (measured: 15.6 % of float32 and 1.25 % of float64 results differ from NumPy's
    by an ulp), so it is corrected: among ``y = torch.sqrt(x)`` and its neighbours ``y⁻, y⁺``,
    ``y⁺`` is right iff ``x > y·y⁺`` and ``y⁻`` iff ``x ≤ y·y⁻`` (the midpoints' squares are never
    doubles, so these exact comparisons decide), with ``y·y±`` exact as ``p + e`` by
    :func:`_two_product` and ``x − p`` exact by Sterbenz's lemma. float32 is rooted in float64
    and rounded once (harmless for √, as 53 ≥ 2·24 + 2). On devices whose sqrt is already
    correctly rounded (CUDA by default) the correction changes nothing."""
    if x.dtype == torch.float32:
        return sqrt(x.to(torch.float64)).to(torch.float32)
    y = torch.sqrt(x)
    inf = torch.full_like(y, float("inf"))
    yu = torch.nextafter(y, inf)
    yd = torch.nextafter(y, torch.zeros_like(y))
    p, e = _two_product(y, yu)
    up = (x - p) > e
    p, e = _two_product(y, yd)
    down = (x - p) <= e
    out = torch.where(up, yu, torch.where(down, yd, y))
    return torch.where(x == 0, y, out)  # sqrt(±0) = ±0, sign kept


def _horner(x: torch.Tensor, coefs: tuple) -> torch.Tensor:
    acc = torch.full_like(x, float(coefs[-1]))
    for c in reversed(coefs[:-1]):
        acc = x * acc  # two operations, never a fused multiply-add
        acc = acc + float(c)
    return acc


def _sincos(
    f: torch.Tensor, q: torch.Tensor, sin_c: tuple, cos_c: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of ``2π(q/4 + f)``, ``|f| ≤ 1/8``."""
    f2 = f * f
    sn = f * _horner(f2, sin_c)
    cs = f2 * _horner(f2, cos_c)
    cs = cs + 1.0
    qi = q & 3
    odd = (qi & 1) == 1
    bc = torch.where(odd, sn, cs)
    bs = torch.where(odd, cs, sn)
    return (
        torch.where(((qi + 1) >> 1) & 1 == 1, -bc, bc),
        torch.where((qi >> 1) & 1 == 1, -bs, bs),
    )


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Correctly rounded ``a / b`` on every device. float32 operands are divided in float64 and
    rounded once: with 53 ≥ 2·24 + 2 bits the double rounding is innocuous for ÷ (Figueroa 1995,
    "When is double rounding innocuous?", SIGNUM Newsletter 30(3)), so the bits equal a float32
    IEEE division's — also where a compiler's own float32 ``/`` is approximate (Triton lowers it
    to ``div.full.f32``, within 2 ulp; inductor emits ``div_rn`` only when told). float64 ``/``
    is ``div.rn.f64`` everywhere."""
    if a.dtype == torch.float32:
        return (a.to(torch.float64) / b.to(torch.float64)).to(torch.float32)
    return a / b


def _radius(
    e: torch.Tensor, m: torch.Tensor, s2: float, sqrt2: float, ln2: float, coefs: tuple
) -> torch.Tensor:
    """``sqrt(s2 · ln u)`` for ``u = 2^e · m`` (see the NumPy reference)."""
    big = m > sqrt2
    m = torch.where(big, m * 0.5, m)
    e = torch.where(big, e + 1, e)
    t = _div(m - 1.0, m + 1.0)
    z = t * t
    p = z * _horner(z, coefs)
    p = p + 1.0
    lnm = (t + t) * p
    el = e.to(m.dtype) * ln2
    return sqrt((el + lnm) * s2)


def normal32(a: torch.Tensor, b: torch.Tensor, s2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 Box–Muller pair from words ``a`` (radius) and ``b`` (angle)."""
    u1 = ((a >> 8) + 1).to(torch.float32) * _F24
    bits = u1.view(torch.int32)
    e = (bits >> 23) - 127
    m = ((bits & 0x7FFFFF) | 0x3F800000).view(torch.float32)
    r = _radius(e, m, s2, float(K.SQRT2_32), float(K.LN2_32), K.LOG32)
    k = b >> 8
    q = (k + (1 << 21)) >> 22
    f = (k - (q << 22)).to(torch.float32) * _F24
    c, s = _sincos(f, q, K.SIN32, K.COS32)
    return r * c, r * s


def _u53(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a >> 5) << 26) | (b >> 6)


def uniform64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """53-bit uniform on [0, 1) from two words."""
    return _u53(a, b).to(torch.float64) * _F53


def normal64(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, s2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 Box–Muller pair: radius from 53 bits of ``(a, b)``, angle from ``(c, d)``."""
    u1 = (_u53(a, b) + 1).to(torch.float64) * _F53
    bits = u1.view(torch.int64)
    e = (bits >> 52) - 1023
    m = ((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).view(torch.float64)
    r = _radius(e, m, s2, float(K.SQRT2_64), float(K.LN2_64), K.LOG64)
    k = _u53(c, d)
    q = (k + (1 << 50)) >> 51
    f = (k - (q << 51)).to(torch.float64) * _F53
    cs, sn = _sincos(f, q, K.SIN64, K.COS64)
    return r * cs, r * sn


def _redraw(
    z: torch.Tensor, idx: torch.Tensor, key: tuple[int, int, int, int], lo: float, hi: float
) -> bool:
    """Replace ``z[j]`` outside ``[lo, hi]`` by redraws from the element's own counter
    ``(idx, k2 ^ t, k3)`` (cosine half). False if an element ran out of tries."""
    k0, k1, k2, k3 = key
    zd = z.to(torch.float64)
    bad = torch.nonzero((zd < lo) | (zd > hi)).reshape(-1)
    t = 0
    while bad.numel():
        t += 1
        if t > K.MAX_TRIES:
            return False
        w0, w1, w2, w3 = philox(idx[bad], k2 ^ t, k3, k0, k1)
        if z.dtype == torch.float32:
            v, _ = normal32(w0, w1, -2.0)
        else:
            v, _ = normal64(w0, w1, w2, w3, -2.0)
        z[bad] = v
        vd = v.to(torch.float64)
        bad = bad[(vd < lo) | (vd > hi)]
    return True


def core(
    ctr: torch.Tensor,
    key: torch.Tensor,
    s2: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    kind: str,
    fp64: bool,
) -> torch.Tensor:
    """Philox + transform for the groups ``ctr``, in element order: ``uniform`` values (scaled
    and shifted) or ``normal`` values (radius scaled by ``s2``, then ``+ shift``). ``key`` holds
    the 4 key words and the other numbers are 0-d tensors, so one compiled graph serves every
    parameter."""
    w0, w1, w2, w3 = philox(ctr, key[2], key[3], key[0], key[1])
    if not fp64:
        if kind == "uniform":
            cols = [(w >> 8).to(torch.float32) * _F24 for w in (w0, w1, w2, w3)]
            return torch.stack(cols, 1).reshape(-1) * scale + shift
        a, b = normal32(w0, w1, s2)
        c, d = normal32(w2, w3, s2)
        out = torch.stack((a, b, c, d), 1)
    else:
        if kind == "uniform":
            out = torch.stack((uniform64(w0, w1), uniform64(w2, w3)), 1)
            return out.reshape(-1) * scale + shift
        out = torch.stack(normal64(w0, w1, w2, w3, s2), 1)
    return out.reshape(-1) + shift


_compiled: dict[tuple[str, str, bool], Any] = {}
_VERIFY_GROUPS = 1 << 12


def _compiled_core(device: torch.device, kind: str, fp64: bool) -> Any:
    """``torch.compile``'d :func:`core` for ``device`` (Triton on CUDA) with floating-point
    contraction off (inductor's ``emulate_precision_casts``: Triton ``enable_fp_fusion=False``;
    its C++ back end compiles with ``-ffp-contract=off``), or None. On first use it is checked bit
    for bit against the eager kernel on 16 Ki values (and never used if they differ or compiling
    fails: a :class:`DeviceKernelWarning` says why)."""
    k = (device.type, kind, fp64)
    if k in _compiled:
        return _compiled[k]
    fn = None
    try:
        import torch._inductor.config as icfg

        with icfg.patch(emulate_precision_casts=True):
            compiled = torch.compile(core, dynamic=False, fullgraph=True)
            fn = _checked(compiled, device, kind, fp64)
    except Exception as exc:  # no Triton, no compiler, an unsupported op: the eager kernel
        _warn(f"compiling the device kernel failed ({type(exc).__name__}: {exc}); eager ops")
        fn = None
    _compiled[k] = fn
    return fn


def _checked(compiled: Any, device: torch.device, kind: str, fp64: bool) -> Any:
    import torch._inductor.config as icfg

    dt = torch.float64 if fp64 else torch.float32
    args = (
        torch.arange(2**40, 2**40 + CHUNK, dtype=torch.int64, device=device),
        torch.tensor([0x9E3779B9, 0x12345678, 0xDEADBEEF, 0x0BADF00D], device=device),
        torch.tensor(-2.0 * 0.37 * 0.37, dtype=dt, device=device),
        torch.tensor(0.37, dtype=dt, device=device),
        torch.tensor(-0.0 if kind == "normal" else 0.25, dtype=dt, device=device),
    )
    with icfg.patch(emulate_precision_casts=True):
        got = compiled(*args, kind, fp64)
    n = _VERIFY_GROUPS
    want = core(args[0][:n], *args[1:], kind, fp64)
    u = torch.int64 if fp64 else torch.int32
    if not torch.equal(got[: want.numel()].view(u), want.view(u)):
        _warn(f"the compiled device kernel ({kind}, {dt}) does not match the eager one bit for bit")
        return None

    def run(*a: Any) -> torch.Tensor:
        with icfg.patch(emulate_precision_casts=True):
            return compiled(*a)

    return run


class DeviceKernelWarning(RuntimeWarning):
    """The fused (compiled) device kernel is not used; the eager torch kernel (same bits) is."""


def _warn(msg: str) -> None:
    import warnings

    warnings.warn(msg, DeviceKernelWarning, stacklevel=3)


def _env() -> str:
    import os

    env = os.environ.get("INITWISE_DEVICE_KERNEL", "").strip().lower()
    if env not in ("", "eager", "compiled", "triton"):
        raise ValueError(
            f"INITWISE_DEVICE_KERNEL must be 'eager', 'compiled' or 'triton', got {env!r}"
        )
    return env


def use_compiled(device: torch.device) -> bool:
    """Whether fills on ``device`` that do not use the Triton kernel use the compiled torch-ops
    kernel: on accelerators unless ``INITWISE_DEVICE_KERNEL=eager``; on the CPU only with
    ``INITWISE_DEVICE_KERNEL=compiled`` (the Numba kernel is faster there and compiling takes a
    minute)."""
    env = _env()
    if env in ("eager", "compiled"):
        return env == "compiled"
    return device.type != "cpu"


_triton_ok: dict[tuple[str, str, bool], bool] = {}


def use_triton(device: torch.device, kind: str, fp64: bool) -> bool:
    """Whether fills of ``kind`` on ``device`` use the Triton kernel
    (:mod:`initwise.kernels._triton`): on accelerators by default, on the CPU only with
    ``INITWISE_DEVICE_KERNEL=triton`` (Triton's interpreter, for tests); never with ``eager`` or
    ``compiled``. At first use per (device type, kind, precision) it is checked bit for bit
    against the torch-ops kernel on the CPU (odd offsets, partial groups, a counter above 2^32,
    redraws) and not used if Triton is missing, fails to build or differs (a
    :class:`DeviceKernelWarning` says which)."""
    if not _triton_wanted(device):
        return False
    k = (device.type, kind, fp64)
    if k not in _triton_ok:
        _triton_ok[k] = _check_triton(device, kind, fp64)
    return _triton_ok[k]


def _triton_wanted(device: torch.device) -> bool:
    """The Triton kernel is tried on accelerators by default and anywhere with
    ``INITWISE_DEVICE_KERNEL=triton``; never with ``eager`` or ``compiled``."""
    env = _env()
    return env == "triton" or (env == "" and device.type != "cpu")


def _check_triton(device: torch.device, kind: str, fp64: bool) -> bool:
    dt = torch.float64 if fp64 else torch.float32
    starts = np.array([3, 2**34 + 1, 17], np.int64)
    lens = np.array([5_003, 4_001, 0], np.int64)
    p = (0.375, 0.25, -0.28125, -0.5, 1.0)  # values exact in float32: trunc window [-0.5, 1]
    key = (0x9E3779B9, 0x12345678, 0xDEADBEEF, 0x0BADF00D)
    try:
        from . import _triton

        got = torch.empty(int(lens.sum()), dtype=dt, device=device)
        ok = _triton.fill(kind, key, starts, lens, got, p)
    except Exception as exc:  # no Triton, no compiler for this device, a launch failure
        _warn(
            f"the Triton device kernel is not available ({type(exc).__name__}: {exc}); "
            "the torch-ops kernel is used"
        )
        return False
    want = torch.empty(int(lens.sum()), dtype=dt)
    _fill_ops(kind, key, starts, lens, want, p, compiled=False)
    u = torch.int64 if fp64 else torch.int32
    if not ok or not torch.equal(got.cpu().view(u), want.view(u)):
        _warn(
            f"the Triton device kernel ({kind}, {dt}) does not match the torch-ops one bit for "
            "bit; the torch-ops kernel is used"
        )
        return False
    return True


def kernel_in_use(device: torch.device, kind: str, fp64: bool = False) -> str:
    """Which kernel fills of ``kind`` (``"uniform"``, ``"normal"``, ``"trunc"``) on ``device``
    use: ``"triton"`` (the Triton kernel, passed its check), ``"fused"`` (torch ops compiled by
    inductor, passed its check), ``"eager ops"``, ``"eager ops (check failed)"`` (a compiled
    kernel failed to build or to match: a :class:`DeviceKernelWarning` said why) or ``"not used
    yet"``."""
    if _triton_wanted(device):
        t = (device.type, kind, fp64)
        if t not in _triton_ok:
            return "not used yet"
        if _triton_ok[t]:
            return "triton"
    if not use_compiled(device):
        return "eager ops"
    k = (device.type, "uniform" if kind == "uniform" else "normal", fp64)
    if k not in _compiled:
        return "not used yet"
    return "fused" if _compiled[k] is not None else "eager ops (check failed)"


def groups(
    kind: str,
    dtype: torch.dtype,
    key: tuple[int, int, int, int],
    g0: int,
    n: int,
    p: tuple,
    device: Any,
    compiled: bool = True,
) -> torch.Tensor | None:
    """The ``n · GROUP`` values of groups ``g0 … g0 + n − 1`` in element order on ``device``
    (None if a truncated draw ran out of tries). ``p = (scale, shift, s2, lo, hi)`` as Python
    floats holding values of the stream's precision (``lo``/``hi`` float64)."""
    device = torch.device(device)
    scale, shift, s2, lo, hi = p
    fp64 = dtype == torch.float64
    base = "uniform" if kind == "uniform" else "normal"
    # trunc draws standard normals through the normal path with shift +0.0 (as the compiled
    # host kernel does: it turns -0.0 into +0.0, so all must agree)
    s = s2 if kind != "trunc" else -2.0
    add = shift if kind != "trunc" else 0.0
    mul = scale if kind == "uniform" else 1.0
    use = compiled and use_compiled(device) and n > 1024
    fn = _compiled_core(device, base, fp64) if use else None
    t = lambda v: torch.tensor(v, dtype=dtype, device=device)  # noqa: E731
    keyt = torch.tensor(key, dtype=torch.int64, device=device)
    if fn is not None:
        ctr = torch.arange(g0, g0 + max(n, CHUNK), dtype=torch.int64, device=device)
        flat = fn(ctr[: max(n, CHUNK)], keyt, t(s), t(mul), t(add), base, fp64)
        G = 2 if fp64 else 4
        flat = flat[: n * G]
    else:
        ctr = torch.arange(g0, g0 + n, dtype=torch.int64, device=device)
        flat = core(ctr, keyt, t(s), t(mul), t(add), base, fp64)
    if kind != "trunc":
        return flat
    G = 2 if fp64 else 4
    idx = torch.arange(g0 * G, (g0 + n) * G, dtype=torch.int64, device=device)
    if not _redraw(flat, idx, key, lo, hi):
        return None
    return flat * scale + shift


def fill(
    kind: str,
    key: tuple[int, int, int, int],
    starts: np.ndarray,
    lens: np.ndarray,
    out: torch.Tensor,
    p: tuple,
) -> bool:
    """Values of flat elements ``[starts[i], starts[i] + lens[i])``, concatenated, into the
    contiguous 1-D float32/float64 tensor ``out`` (any device): by the Triton kernel where
    :func:`use_triton` says so, else by torch ops. False if a truncated draw ran out of tries."""
    if use_triton(out.device, kind, out.dtype == torch.float64):
        from . import _triton

        return _triton.fill(kind, key, starts, lens, out, p)
    return _fill_ops(kind, key, starts, lens, out, p)


def _fill_ops(
    kind: str,
    key: tuple[int, int, int, int],
    starts: np.ndarray,
    lens: np.ndarray,
    out: torch.Tensor,
    p: tuple,
    compiled: bool = True,
) -> bool:
    G = 4 if out.dtype == torch.float32 else 2
    for g, m, lo, hi, pos in chunks(starts, lens, G, CHUNK):
        vals = groups(kind, out.dtype, key, g, m, p, out.device, compiled)
        if vals is None:
            return False
        out[pos : pos + hi - lo] = vals[lo:hi]
    return True
