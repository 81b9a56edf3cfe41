"""Complex parameters drawn as the pair of real tensors they are.

A complex weight ``w = a + ib`` (a Fourier neural operator's spectral weights, a complex-valued
network's layers; Trabelsi et al. 2018, *Deep Complex Networks*) is drawn with the scheme's
variance as ``E|w|² = σ²``: the real and imaginary parts independent, each with ``σ/√2`` —
torch's convention for ``normal_`` on a complex tensor, and Trabelsi et al.'s for the complex
He/Glorot criteria (``Var(W) = E|W|²``). The values are those of the real view
``torch.view_as_real(w)`` (shape ``(*shape, 2)``, the parts interleaved) drawn from the scheme
scaled by ``1/√2`` with the complex tensor's own fans — the same bits on every engine, thread
count and device, as for a real tensor.

Only schemes centered at zero and symmetric have such a pair (a normal of mean 0, a uniform
``U(−a, a)``, a truncated normal with ``a = −b``, variance scaling); the drop-in
``constant_`` writes ``c + 0i`` (a plan's non-zero constant is refused). Matrix schemes
(orthogonal, eye, dirac, delta-orthogonal, sparse) are refused: a unitary draw is another
distribution, not two real ones.
"""

from __future__ import annotations

import dataclasses
import math

from .. import schemes as S
from ..math.fans import Fans
from ..plan import ParamPlan

_HALF = 1.0 / math.sqrt(2.0)


def part_scheme(
    scheme: S.Scheme, shape: tuple[int, ...], fans: Fans | None, where: str
) -> S.Scheme:
    """The scheme of each real part of a complex tensor of ``shape`` drawn from ``scheme``.

    Raises:
        ValueError: ``scheme`` is a matrix scheme, or not centered and symmetric.
    """
    d = scheme.dist(shape, fans)
    label = scheme.label
    if d is None:
        raise ValueError(
            f"{where}: {label} can not fill a complex tensor (a unitary or sparse draw is not "
            "a pair of real ones); give it a normal, uniform or variance-scaling scheme"
        )
    if d.kind == "constant":
        if d.mean != 0:
            raise ValueError(
                f"{where}: a plan's constant {d.mean:g} on a complex tensor is not two equal "
                "parts (it is c + 0i): leave the parameter out of the plan (override 'keep') "
                "and fill it with initwise.torch.constant_, which writes c + 0i"
            )
        return scheme
    symmetric = d.mean == 0 and (d.kind == "normal" or -d.low == d.high)
    if not symmetric:
        raise ValueError(
            f"{where}: {scheme.formula()} is not centered at 0 and symmetric, so a complex "
            "tensor's two parts can not share it; give a zero-mean symmetric scheme"
        )
    return scheme.scaled(_HALF)


def real_entry(e: ParamPlan, where: str) -> ParamPlan:
    """``e`` for the real view of its complex parameter: shape ``(*shape, 2)``, every chunk's
    scheme the part scheme, the complex tensor's fans kept."""
    if e.center_dims or e.row_scales:
        raise ValueError(
            f"{where}: centered or row-scaled draws of a complex tensor are not supported"
        )
    shape = e.block_shape
    assert e.scheme is not None
    f = e.fans if e.fans is not None else e.scheme.resolve_fans(shape, None)  # (the complex
    # tensor's own: the real view's trailing 2 is no dimension of the layer)
    scheme = part_scheme(e.scheme, shape, f, where)
    chunks = tuple((i, part_scheme(s, shape, f, where)) for i, s in e.chunk_schemes)
    return dataclasses.replace(
        e,
        shape=(*e.shape, 2),
        scheme=scheme,
        chunk_schemes=chunks,
        fan_in=f.fan_in if f is not None else None,
        fan_out=f.fan_out if f is not None else None,
    )
