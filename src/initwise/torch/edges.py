"""Zero padding at the edges of feature maps: what a convolution's fan does not count.

A convolution's fan-in ``c_in·k`` counts every tap of its kernel, but at the edges of a
zero-padded map some taps read padding: the unit's pre-activation sums fewer inputs, and

    E[y²] = σ_w² · Σ_{taps in bounds} E[x²]  <  σ_w² · fan_in · E[x²].

He et al. (2015) and every fan-based rule take the interior's count; on small maps the
difference compounds over layers without a norm (a 3×3 "same" convolution keeps 0.92 of a
uniform 16×16 map's E[x²], a 7×7 PixelCNN mask on it ~0.78; a transposed convolution's
edge outputs also receive fewer taps). The share that reaches the taps depends on how the
input's variance is spread over the map — after a few layers it concentrates in the interior
(the leading eigenvector of the tap-count operator), so the loss per layer shrinks — which is
why it is *measured* on the example input with the plan's draft drawn, not computed for a
uniform map: :func:`edge_factor` is the ratio of the in-bounds taps' Σ E[x²] to the fan's
count, from the layer's actual input, with a fixed weight mask's taps weighted by how many
weights each keeps. ``auto`` then solves the layer for the moments that reach its taps
(:func:`~initwise.torch.moments.propagate`). Without an example input the spatial size is
unknown and the fan's count is used, as in every fan-based rule.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .modules import weight_mask

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def has_edges(m: nn.Module) -> bool:
    """Whether convolution ``m`` can lose taps at a map's edges: a zero-padded convolution with
    a kernel wider than one, or a transposed convolution whose kernel is wider than its stride
    (its edge outputs receive fewer taps) or that crops by ``padding``."""
    if isinstance(m, _CONV):
        if m.padding_mode != "zeros" or all(k == 1 for k in m.kernel_size):
            return False
        return m.padding == "same" or (m.padding != "valid" and any(p > 0 for p in m.padding))
    if isinstance(m, _TRANSPOSED):
        wide = any(k > s for k, s in zip(m.kernel_size, m.stride, strict=True))
        return wide or any(p > 0 for p in m.padding)
    return False


def edge_factor(m: nn.Module, x: Any) -> float | None:
    """The share of the fan's ``Σ E[x²]`` that reaches ``m``'s in-bounds taps for input ``x``
    (``(N, C, *spatial)``): ``mean(Σ_{taps in bounds} Σ_c x²) / (K · mean(Σ_c x²))`` over the
    output positions, ``K`` the kernel's taps (each weighted by the share of weights a fixed
    mask keeps there) — divided by the stride's product for a transposed convolution, whose
    interior outputs receive ``K/Π stride`` taps. None where it cannot be computed."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.is_meta:
        return None
    nd = x.ndim - 2
    if nd not in (1, 2, 3) or not has_edges(m):
        return None
    masked = weight_mask(m)
    with torch.no_grad():
        taps = (
            (masked[1] != 0).double().sum((0, 1)).to(x.device)
            if masked is not None
            else torch.ones(tuple(m.kernel_size), dtype=torch.float64, device=x.device)
        )
        x2 = x.detach().double().pow(2).sum(1, keepdim=True)
        w = taps[None, None]
        if isinstance(m, _TRANSPOSED):
            conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
            y = conv(
                x2,
                w,
                stride=m.stride,
                padding=m.padding,
                output_padding=m.output_padding,
                dilation=m.dilation,
            )
            full = float(taps.sum()) / math.prod(m.stride)
        else:
            conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
            y = conv(x2, w, stride=m.stride, padding=m.padding, dilation=m.dilation)
            full = float(taps.sum())
        mean = float(x2.mean())
    if not mean > 0 or not full > 0 or not y.numel():
        return None
    f = float(y.mean()) / (full * mean)
    return f if math.isfinite(f) and 0 < f else None
