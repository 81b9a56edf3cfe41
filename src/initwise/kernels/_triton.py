r"""The stream kernel as one Triton kernel: the same bits as the NumPy reference, drawn at device
speed on a GPU.

Why a hand-written kernel: the torch-ops kernel (:mod:`initwise.kernels._torch`) builds Philox's
32×32→64-bit products from 16-bit limbs in int64, since torch has no unsigned 32-bit multiply on
every device — exact, but about ten int64 operations per product, and compiled by inductor it
reached 1–2 % of ``fill_``'s bandwidth on an H200. Here Philox runs on native ``uint32`` words
(``umulhi`` and a wrapping multiply), one lane per Philox group, and each value is written
straight to its place in the output; a truncated normal's redraws happen in the same lane.

How the bits are kept (see :mod:`initwise.kernels.constants` for the formulas):

* integers: ``uint32`` Philox (Salmon et al. 2011) with the same counters and key schedule;
* floats: only ``+ − ×``, division and square root correctly rounded (float32's quotient is
  taken in float64 and rounded once — innocuous double rounding, Figueroa 1995 — since Triton's
  float32 ``/`` is approximate; ``sqrt_rn``), and the kernel is compiled with
  ``enable_fp_fusion=False`` so no multiply-add is contracted;
* constants are loaded from a small tensor of the stream's precision, not written as literals.

It is checked bit for bit against the torch-ops kernel at first use on each device (all three
kinds, both precisions, odd offsets and partial groups) and never used if it differs. With
``TRITON_INTERPRET=1`` (set before the first import) it runs on CPU tensors in Triton's
interpreter, which the tests use to check its logic where there is no GPU.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import triton
import triton.language as tl

from . import constants as K

_M0 = tl.constexpr(K.M0)
_M1 = tl.constexpr(K.M1)
_W0 = tl.constexpr(K.W0)
_W1 = tl.constexpr(K.W1)
_MAX_TRIES = tl.constexpr(K.MAX_TRIES)
_F24 = tl.constexpr(2.0**-24)
_F53 = tl.constexpr(2.0**-53)

# constant table layout (one tensor per precision): sqrt2, ln2, atanh coefficients, sin, cos
_N32 = (len(K.LOG32), len(K.SIN32), len(K.COS32))
_N64 = (len(K.LOG64), len(K.SIN64), len(K.COS64))


def _table(fp64: bool) -> np.ndarray:
    if fp64:
        vals = (K.SQRT2_64, K.LN2_64, *K.LOG64, *K.SIN64, *K.COS64)
        return np.array(vals, np.float64)
    return np.array((K.SQRT2_32, K.LN2_32, *K.LOG32, *K.SIN32, *K.COS32), np.float32)


@triton.jit
def _philox(c0, c1, c2, c3, k0, k1):
    m0 = tl.full(c0.shape, _M0, tl.uint32)
    m1 = tl.full(c0.shape, _M1, tl.uint32)
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(m0, c0)
        lo0 = m0 * c0
        hi1 = tl.umulhi(m1, c2)
        lo1 = m1 * c2
        n0 = hi1 ^ c1 ^ k0
        n2 = hi0 ^ c3 ^ k1
        c1 = lo1
        c3 = lo0
        c0 = n0
        c2 = n2
        k0 = k0 + _W0
        k1 = k1 + _W1
    return c0, c1, c2, c3


@triton.jit
def _horner(x, tab, off: tl.constexpr, n: tl.constexpr):
    acc = tl.zeros_like(x) + tl.load(tab + off + n - 1)
    for i in tl.static_range(n - 1):
        acc = x * acc  # two roundings per step, never fused (enable_fp_fusion=False)
        acc = acc + tl.load(tab + off + n - 2 - i)
    return acc


@triton.jit
def _log_radius(e, m, s2, tab, NL: tl.constexpr, FP64: tl.constexpr):
    """``sqrt(s2 · ln u)`` for ``u = 2^e · m``; ``e`` integer, ``m`` in [1, 2)."""
    big = m > tl.load(tab)
    m = tl.where(big, m * 0.5, m)
    e = tl.where(big, e + 1, e)
    if FP64:
        t = (m - 1.0) / (m + 1.0)
    else:
        t = ((m - 1.0).to(tl.float64) / (m + 1.0).to(tl.float64)).to(tl.float32)
    z = t * t
    p = z * _horner(z, tab, 2, NL)
    p = p + 1.0
    lnm = (t + t) * p
    el = e.to(m.dtype) * tl.load(tab + 1)
    if FP64:
        r = tl.sqrt((el + lnm) * s2)  # float64 sqrt is sqrt.rn.f64 (no approximate one)
    else:
        r = tl.sqrt_rn((el + lnm) * s2)  # float32 tl.sqrt is sqrt.approx.f32: not this one
    return r


@triton.jit
def _sincos(f, q, tab, NL: tl.constexpr, NS: tl.constexpr, NC: tl.constexpr):
    """cos and sin of ``2π(q/4 + f)``."""
    f2 = f * f
    sn = f * _horner(f2, tab, 2 + NL, NS)
    cs = f2 * _horner(f2, tab, 2 + NL + NS, NC)
    cs = cs + 1.0
    qi = q & 3
    odd = (qi & 1) == 1
    bc = tl.where(odd, sn, cs)
    bs = tl.where(odd, cs, sn)
    c = tl.where(((qi + 1) >> 1) & 1 == 1, -bc, bc)
    s = tl.where((qi >> 1) & 1 == 1, -bs, bs)
    return c, s


@triton.jit
def _normal32(a, b, s2, tab, NL: tl.constexpr, NS: tl.constexpr, NC: tl.constexpr):
    u1 = ((a >> 8) + 1).to(tl.float32) * _F24
    bits = u1.to(tl.int32, bitcast=True)
    e = (bits >> 23) - 127
    m = ((bits & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
    r = _log_radius(e, m, s2, tab, NL, False)
    k = (b >> 8).to(tl.int32)
    q = (k + (1 << 21)) >> 22
    f = (k - (q << 22)).to(tl.float32) * _F24
    c, s = _sincos(f, q, tab, NL, NS, NC)
    return r * c, r * s


@triton.jit
def _u53(a, b):
    return ((a >> 5).to(tl.int64) << 26) | (b >> 6).to(tl.int64)


@triton.jit
def _normal64(a, b, c, d, s2, tab, NL: tl.constexpr, NS: tl.constexpr, NC: tl.constexpr):
    u1 = (_u53(a, b) + 1).to(tl.float64) * _F53
    bits = u1.to(tl.int64, bitcast=True)
    e = (bits >> 52) - 1023
    m = ((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).to(tl.float64, bitcast=True)
    r = _log_radius(e, m, s2, tab, NL, True)
    k = _u53(c, d)
    q = (k + (1 << 50)) >> 51
    f = (k - (q << 51)).to(tl.float64) * _F53
    cs, sn = _sincos(f, q, tab, NL, NS, NC)
    return r * cs, r * sn


@triton.jit
def _redraw(
    v,
    idx,
    live,
    k0,
    k1,
    k2,
    k3,
    lo,
    hi,
    tab,
    fail,
    NL: tl.constexpr,
    NS: tl.constexpr,
    NC: tl.constexpr,
    FP64: tl.constexpr,
):
    """Values outside ``[lo, hi]`` redrawn from the element's own counter ``(idx, k2 ^ t, k3)``
    (the cosine half), ``t = 1, 2, …``; ``fail`` set if one is still outside after MAX_TRIES."""
    vd = v.to(tl.float64)
    bad = live & ((vd < lo) | (vd > hi))
    t = tl.full([], 0, tl.int32)
    while (tl.max(bad.to(tl.int32), axis=0) > 0) & (t < _MAX_TRIES):
        t += 1
        c0 = (idx & 0xFFFFFFFF).to(tl.uint32)
        c1 = (idx >> 32).to(tl.uint32)
        w0, w1, w2, w3 = _philox(c0, c1, k2 ^ t.to(tl.uint32), k3 + tl.zeros_like(c0), k0, k1)
        if FP64:
            nv, _ = _normal64(w0, w1, w2, w3, -2.0, tab, NL, NS, NC)
        else:
            nv, _ = _normal32(w0, w1, -2.0, tab, NL, NS, NC)
        v = tl.where(bad, nv, v)
        nd = nv.to(tl.float64)
        bad = bad & ((nd < lo) | (nd > hi))
    tl.atomic_max(fail, tl.max(bad.to(tl.int64), axis=0))
    return v


@triton.jit
def _affine(v, scale, shift):
    v = v * scale  # two roundings, as the host kernels do
    return v + shift


@triton.jit
def _arg(args, i: tl.constexpr, FP64: tl.constexpr):
    """Float argument ``i`` of the packed words (:data:`ARGS`): a float64 bit pattern, rounded
    once to float32 for a float32 stream (as ``torch.tensor(x, dtype=float32)`` rounds it)."""
    v = tl.load(args + i).to(tl.float64, bitcast=True)
    if not FP64:
        v = v.to(tl.float32)
    return v


@triton.jit
def _store(out, v, s, a, n, pos, tail, args, KIND: tl.constexpr, FP64: tl.constexpr):
    if KIND == 2:  # the truncated normal's scale and shift, after the redraws
        v = _affine(v, _arg(args, 9, FP64), _arg(args, 10, FP64))
    tl.store(out + pos + (s - a), v, mask=(s >= a) & (s < a + n) & tail)


@triton.jit(do_not_specialize=["a", "n", "pos", "g_end"])
def _fill_kernel(
    out,
    args,
    tab,
    a,
    n,
    pos,
    g_end,
    KIND: tl.constexpr,  # 0 uniform, 1 normal, 2 truncated normal
    FP64: tl.constexpr,
    NL: tl.constexpr,
    NS: tl.constexpr,
    NC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    G: tl.constexpr = 2 if FP64 else 4
    g0 = a.to(tl.int64) // G
    g = g0 + tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    tail = g < g_end
    # the key words come in a tensor: as scalar arguments each would be typed i32 or i64 by
    # its value, and every parameter's key a new signature to compile
    k0 = tl.load(args).to(tl.uint32)
    k1 = tl.load(args + 1).to(tl.uint32)
    k2 = tl.load(args + 2).to(tl.uint32)
    k3 = tl.load(args + 3).to(tl.uint32)
    fail = args + 11
    c0 = (g & 0xFFFFFFFF).to(tl.uint32)
    c1 = (g >> 32).to(tl.uint32)
    w0, w1, w2, w3 = _philox(c0, c1, k2 + tl.zeros_like(c0), k3 + tl.zeros_like(c0), k0, k1)
    scale = _arg(args, 6, FP64)
    shift = _arg(args, 7, FP64)
    s2 = _arg(args, 8, FP64)
    # float64: the window is compared in float64, as the host kernels do
    lo = tl.load(args + 4).to(tl.float64, bitcast=True)
    hi = tl.load(args + 5).to(tl.float64, bitcast=True)
    a = a.to(tl.int64)
    n = n.to(tl.int64)
    pos = pos.to(tl.int64)
    if FP64:
        if KIND == 0:
            v0 = _affine(_u53(w0, w1).to(tl.float64) * _F53, scale, shift)
            v1 = _affine(_u53(w2, w3).to(tl.float64) * _F53, scale, shift)
        else:
            v0, v1 = _normal64(w0, w1, w2, w3, s2, tab, NL, NS, NC)
            v0 = v0 + shift
            v1 = v1 + shift
        if KIND == 2:
            live = tail & (2 * g + 1 >= a) & (2 * g < a + n)
            v0 = _redraw(v0, 2 * g, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, True)
            v1 = _redraw(v1, 2 * g + 1, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, True)
        _store(out, v0, 2 * g, a, n, pos, tail, args, KIND, FP64)
        _store(out, v1, 2 * g + 1, a, n, pos, tail, args, KIND, FP64)
    else:
        if KIND == 0:
            v0 = _affine((w0 >> 8).to(tl.float32) * _F24, scale, shift)
            v1 = _affine((w1 >> 8).to(tl.float32) * _F24, scale, shift)
            v2 = _affine((w2 >> 8).to(tl.float32) * _F24, scale, shift)
            v3 = _affine((w3 >> 8).to(tl.float32) * _F24, scale, shift)
        else:
            v0, v1 = _normal32(w0, w1, s2, tab, NL, NS, NC)
            v2, v3 = _normal32(w2, w3, s2, tab, NL, NS, NC)
            v0 = v0 + shift
            v1 = v1 + shift
            v2 = v2 + shift
            v3 = v3 + shift
        if KIND == 2:
            e = 4 * g
            live = tail & (e + 3 >= a) & (e < a + n)
            v0 = _redraw(v0, e, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, False)
            v1 = _redraw(v1, e + 1, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, False)
            v2 = _redraw(v2, e + 2, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, False)
            v3 = _redraw(v3, e + 3, live, k0, k1, k2, k3, lo, hi, tab, fail, NL, NS, NC, False)
        _store(out, v0, 4 * g, a, n, pos, tail, args, KIND, FP64)
        _store(out, v1, 4 * g + 1, a, n, pos, tail, args, KIND, FP64)
        _store(out, v2, 4 * g + 2, a, n, pos, tail, args, KIND, FP64)
        _store(out, v3, 4 * g + 3, a, n, pos, tail, args, KIND, FP64)


BLOCK = 256
#: the kernel's packed arguments, one int64 tensor: the four key words, the truncation window
#: (lo, hi) and the five stream parameters as float64 bit patterns, and the redraw-failure flag
ARGS = 12
#: compile options of every launch: no contraction of ``x * y + z`` into a fused multiply-add
OPTIONS = {"num_warps": 4, "enable_fp_fusion": False}
_tables: dict[tuple[str, bool], torch.Tensor] = {}


def fill(
    kind: str,
    key: tuple[int, int, int, int],
    starts: np.ndarray,
    lens: np.ndarray,
    out: torch.Tensor,
    p: tuple,
) -> bool:
    """As :func:`initwise.kernels._torch.fill`: the values of flat elements ``[starts[i],
    starts[i] + lens[i])``, concatenated, into the contiguous 1-D ``out``; one launch per
    segment. False if a truncated draw ran out of tries. ``p = (scale, shift, s2, lo, hi)``."""
    fp64 = out.dtype == torch.float64
    scale, shift, s2, lo, hi = p
    dev = out.device
    tk = (str(dev), fp64)
    if tk not in _tables:
        _tables[tk] = torch.from_numpy(_table(fp64)).to(dev)
    if kind == "uniform":
        par = [scale, shift, 0.0, 1.0, 0.0]
    elif kind == "normal":
        par = [1.0, shift, s2, 1.0, 0.0]
    else:  # standard normals (+0.0 added, as the host kernels do), redrawn, then scaled
        par = [1.0, 0.0, -2.0, scale, shift]
    words = np.zeros(ARGS, np.int64)  # one host→device copy a call (was three, and a zeros)
    words[:4] = key
    words[4:11] = np.array([lo, hi, *par], np.float64).view(np.int64)
    args = torch.from_numpy(words).to(dev)
    G = 2 if fp64 else 4
    nl, ns, nc = _N64 if fp64 else _N32
    pos = 0
    # Triton launches on the current device: make it the tensor's (cuda:1 while cuda:0 is current)
    on = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    with on:
        for a, n in zip(starts.tolist(), lens.tolist(), strict=True):
            if n <= 0:
                continue
            g_end = (a + n - 1) // G + 1
            grid = (triton.cdiv(g_end - a // G, BLOCK),)
            _fill_kernel[grid](
                out,
                args,
                _tables[tk],
                a,
                n,
                pos,
                g_end,
                KIND=K.KINDS[kind],
                FP64=fp64,
                NL=nl,
                NS=ns,
                NC=nc,
                BLOCK=BLOCK,
                **OPTIONS,
            )
            pos += n
    return kind != "trunc" or int(args[11].item()) == 0
