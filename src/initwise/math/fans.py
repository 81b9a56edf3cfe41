r"""Fans: how many inputs feed one output unit (fan_in) and how many outputs one input feeds
(fan_out), for every layer kind.

The variance rules of Glorot & Bengio (2010) and He et al. (2015) divide by these numbers, so a
wrong fan is a wrong init. ``torch.nn.init`` reads fans off the raw tensor shape
(``fan_in = size(1)·k``, ``fan_out = size(0)·k``), which is right for Linear and ungrouped
Conv but wrong for:

* grouped / depthwise conv, weight ``(out, in/g, k…)``: each input reaches only ``out/g``
  channels, so ``fan_out = (out/g)·k`` — torch says ``out·k`` (pytorch#23854);
* transposed conv, weight ``(in, out/g, k…)``: the axes are swapped, so
  ``fan_in = (in/g)·k/∏stride`` and ``fan_out = (out/g)·k`` — torch swaps them;
* packed projections (MultiheadAttention's ``in_proj_weight`` of shape ``(3E, E)``) and RNN
  gate stacks (``(G·H, in)``): each block is its own ``(E, E)`` or ``(H, in)`` map, so
  ``fan_out`` is ``rows/chunks`` — torch uses all rows (pytorch#166378).

``kind="torch"`` reproduces torch's convention exactly, for drop-in compatibility.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from .. import _validate as v

KINDS = (
    "linear",
    "conv",
    "conv_transpose",
    "embedding",
    "packed",
    "qkv",
    "rnn",
    "lstm",
    "gru",
    "torch",
)
"""Layer kinds :func:`fans` understands."""

_GATES = {"rnn": 1, "gru": 3, "lstm": 4, "qkv": 3}


class Fans(NamedTuple):
    """``(fan_in, fan_out)`` of one weight (per block for packed weights)."""

    fan_in: float
    fan_out: float

    def of(self, mode: str) -> float:
        r"""The fan a variance rule divides by: ``fan_in``, ``fan_out`` or
        ``fan_avg = (fan_in + fan_out) / 2``."""
        v.one_of("mode", mode, ("fan_in", "fan_out", "fan_avg"))
        if mode == "fan_in":
            return self.fan_in
        if mode == "fan_out":
            return self.fan_out
        return (self.fan_in + self.fan_out) / 2.0


def fans(
    shape: Sequence[int],
    kind: str = "linear",
    *,
    groups: int = 1,
    chunks: int | None = None,
    stride: int | Sequence[int] = 1,
) -> Fans:
    r"""Return the true ``(fan_in, fan_out)`` of a weight of ``shape`` in a layer of ``kind``.

    Let ``k = ∏ shape[2:]`` (1 for a matrix).

    ============== ======================== ================================ ====================
    kind           weight layout            fan_in                           fan_out
    ============== ======================== ================================ ====================
    linear         (out, in)                in                               out
    conv           (out, in/g, k…)          (in/g)·k                         (out/g)·k
    conv_transpose (in, out/g, k…)          (in/g)·k / ∏stride               (out/g)·k
    embedding      (num, dim)               1 (one-hot row lookup)           dim
    packed         (c·out, in)              in                               out  (per chunk)
    qkv            (3E, E)                  E                                E    (c = 3)
    rnn/gru/lstm   (G·H, in)                in                               H    (G = 1/3/4)
    torch          any ≥ 2-D                size(1)·k                        size(0)·k
    ============== ======================== ================================ ====================

    Args:
        shape: the weight's shape.
        kind: one of :data:`KINDS`.
        groups: conv groups (``conv``, ``conv_transpose``); ``in_channels`` for depthwise.
        chunks: number of stacked blocks for ``packed`` (``qkv``/``rnn``/``gru``/``lstm``
            imply 3/1/3/4).
        stride: ``conv_transpose`` only — each output position sees ``k_i/s_i`` taps per
            spatial axis on average, so ``fan_in`` is divided by ``∏ stride``.

    Raises:
        ValueError: fewer than 2 dimensions (a bias or norm scale has no fan: the planner
            initializes it from its layer's weight, or use a scheme that needs none), zero-sized
            dimensions, rows not divisible by ``groups``/``chunks``, or an unknown ``kind``.
    """
    where = "fans"
    shape = v.shape(shape, where=where)
    v.one_of("kind", kind, KINDS, where=where)
    groups = v.positive_int("groups", groups, where=where)
    if len(shape) < 2:
        raise ValueError(
            f"{where}: fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions (shape {shape}); biases and norm scales have no fan — initialize them "
            "with zeros/ones/constant/normal, or let the planner derive them from their layer"
        )
    if 0 in shape:
        raise ValueError(f"{where}: shape {shape} has a zero-sized dimension; fans would be 0")
    k = math.prod(shape[2:])
    rows, cols = shape[0], shape[1]
    if kind == "torch":
        return Fans(float(cols * k), float(rows * k))
    if kind == "linear":
        return Fans(float(cols * k), float(rows * k))
    if kind == "embedding":
        return Fans(1.0, float(cols * k))
    if kind == "conv":
        if rows % groups:
            raise ValueError(
                f"{where}: out_channels {rows} (shape[0]) is not divisible by groups={groups}"
            )
        return Fans(float(cols * k), float(rows // groups * k))
    if kind == "conv_transpose":
        if rows % groups:
            raise ValueError(
                f"{where}: in_channels {rows} (shape[0] of a transposed-conv weight) is not "
                f"divisible by groups={groups}"
            )
        strides = _strides(stride, len(shape) - 2)
        return Fans(float(rows // groups * k / math.prod(strides)), float(cols * k))
    # packed kinds
    n = _GATES.get(kind, chunks)
    if kind != "packed" and chunks is not None and chunks != n:
        raise ValueError(f"{where}: kind={kind!r} implies chunks={n}, got chunks={chunks}")
    if n is None:
        raise ValueError(f"{where}: kind='packed' needs chunks=<number of stacked blocks>")
    n = v.positive_int("chunks", n, where=where)
    if rows % n:
        raise ValueError(
            f"{where}: {rows} rows (shape[0]) can not be split into {n} equal blocks for "
            f"kind={kind!r}; check the layer's hidden size"
        )
    return Fans(float(cols * k), float(rows // n * k))


def _strides(stride: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(stride, int) and not isinstance(stride, bool):
        stride = (stride,) * max(ndim, 1)
    out = tuple(v.positive_int("stride", s, where="fans") for s in stride)
    if ndim and len(out) != ndim:
        raise ValueError(f"fans: stride {out} has {len(out)} entries for {ndim} spatial dims")
    return out
