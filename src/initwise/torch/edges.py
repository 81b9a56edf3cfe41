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
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .graph import PRODUCT_FUNCS, SHAPE_OPS, behind
from .modules import FunctionalConv, weight_mask

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _conv(m: nn.Module) -> bool:
    """Whether ``m`` is a convolution module or a raw-parameter one whose call's geometry is
    known (:class:`~initwise.torch.modules.FunctionalConv`: ``F.conv2d(x, self.w, padding=1)``)."""
    return isinstance(m, _CONV) or (isinstance(m, FunctionalConv) and m.padding is not None)


def has_edges(m: nn.Module) -> bool:
    """Whether convolution ``m`` can lose taps at a map's edges: a zero-padded convolution with
    a kernel wider than one, or a transposed convolution whose kernel is wider than its stride
    (its edge outputs receive fewer taps) or that crops by ``padding``."""
    if _conv(m):
        if m.padding_mode != "zeros" or all(k == 1 for k in m.kernel_size):
            return False
        return m.padding == "same" or (m.padding != "valid" and any(p > 0 for p in m.padding))
    if isinstance(m, _TRANSPOSED):
        wide = any(k > s for k, s in zip(m.kernel_size, m.stride, strict=True))
        return wide or any(p > 0 for p in m.padding)
    return False


def measured_taps(m: nn.Module) -> bool:
    """Whether what reaches convolution ``m``'s taps is measured on an example input
    (:func:`edge_factor`): one that loses taps at its own edges (:func:`has_edges`), or one
    without padding and with a kernel wider than one — its outputs read the input map's border
    less often than its interior, and zeros padded in front of it (``F.pad``, ``nn.ZeroPad2d``:
    a "same" padding written before a ``padding=0`` convolution, as TensorFlow ports do) sit at
    that border. The input's measured ``E[x²]`` counts them over the whole padded map: a 3×3
    convolution after one pixel of zeros around an 8×8 map reads ×0.84 of the unpadded map's
    ``E[x²]``, where the padded map's mean is ×0.64 of it (solved for 0.64, eight such layers
    gave an output rms ×4.3)."""
    if has_edges(m):
        return True
    if not _conv(m) or all(k == 1 for k in m.kernel_size):
        return False
    return m.padding == "valid" or (m.padding != "same" and all(p == 0 for p in m.padding))


def edge_factor(m: nn.Module, x: Any) -> float | None:
    """The share of the fan's ``Σ E[x²]`` that reaches ``m``'s in-bounds taps for input ``x``
    (``(N, C, *spatial)``): ``mean(Σ_{taps in bounds} Σ_c x²) / (K · mean(Σ_c x²))`` over the
    output positions, ``K`` the kernel's taps (each weighted by the share of weights a fixed
    mask keeps there) — divided by the stride's product for a transposed convolution, whose
    interior outputs receive ``K/Π stride`` taps. None where it cannot be computed."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.is_meta:
        return None
    nd = x.ndim - 2
    if nd not in (1, 2, 3) or not measured_taps(m):
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


def _batch_size(g: Any, i: int) -> bool:
    """Whether graph node ``i`` is a tensor's batch size: ``x.shape[0]`` or ``x.size(0)``."""
    n = g.nodes[i]
    if n.op != "function" or tuple(n.args) != (0,):
        return False
    if n.target == "size":
        return True
    src = g.nodes[n.inputs[0]] if n.target == "getitem" and n.inputs else None
    return (
        src is not None
        and src.op == "function"
        and src.target == "getattr"
        and tuple(src.args) == ("shape",)
    )


def unit_map(g: Any, idx: int, nd: int) -> str | None:
    """How graph node ``idx`` (the input of an ``nd``-dimensional convolution) is known, from
    the graph alone, to be a map of size 1 along every spatial dimension — a latent vector made
    into a 1×1 map (DCGAN's generator, a VAE's decoder): ``z[:, :, None, None]``,
    ``z.view(z.shape[0], -1, 1, 1)``, ``z.reshape(-1, C, 1, 1)``, ``z.unsqueeze(-1)`` ``nd``
    times — else None. Each output of a convolution on such a map reads one tap of its
    kernel, not the fan's count (a 4×4 transposed convolution from 1×1: 1 of 16)."""
    n = g.nodes[idx]
    if n.op != "function":
        return None
    args = tuple(n.args)
    if n.target == "getitem" and len(args) == 1 and isinstance(args[0], tuple):
        index = args[0]
        if len(index) >= nd and all(a is None for a in index[-nd:]):
            return f"`[..., {', '.join(['None'] * nd)}]`"
        return None
    if n.target in ("view", "reshape"):
        others = n.inputs[1:]
        if len(others) > 1 or (others and not _batch_size(g, others[0])):
            return None
        if len(args) + len(others) == nd + 2 and args[-nd:] == (1,) * nd:
            return f"`.{n.target}(…, {', '.join(['1'] * nd)})`"
        return None
    ups, i = 0, idx
    while ups < nd:
        v = g.nodes[i]
        if v.op != "function" or v.target != "unsqueeze" or tuple(v.args) != (-1,):
            break
        ups, i = ups + 1, v.inputs[0]
    return f"`.unsqueeze(-1)` × {nd}" if ups == nd else None


def unit_factor(m: nn.Module) -> float | None:
    """:func:`edge_factor` of convolution ``m`` on a map of size 1 along each spatial dimension
    (:func:`unit_map`): ``1/taps`` for a kernel all of whose taps but one read padding or fall
    outside; None where ``m`` loses nothing (a 1×1 kernel) or cannot run on it."""
    nd = len(getattr(m, "kernel_size", ()))
    if not 1 <= nd <= 3 or not measured_taps(m):
        return None
    try:
        return edge_factor(m, torch.ones((1, 1, *([1] * nd)), dtype=torch.float64))
    except RuntimeError:  # (a configuration torch refuses on such a map)
        return None


REFERENCE_MAP = 8
"""The map size per spatial dimension at which :func:`unmeasured_chain` counts the edges' loss
of 2-D and 3-D convolutions without an example input: a small map (CIFAR's last stage, an 8³
volume), where a chain of zero-padded convolutions loses the most; the message gives 4× that
size as well."""
REFERENCE_SEQUENCE = 32
"""The same for 1-D convolutions: a short sequence (MNIST-1D's 40 samples; audio and text run
to thousands), where an 8-long one would make every dilated convolution lose most of its taps
(HiFi-GAN's residual stacks, in band at 0.79, were said at 8)."""
SAID_BELOW = 0.25
"""A run whose unmeasured losses may multiply E[x²] by less than this (×0.5 in rms: outside the
½–2 a plan aims for) is said: eight 3×3 convolutions on 8×8 maps (×0.84 each), six 3×3×3 ones
on 8³ (×0.77), five 2×2 average pools of ReLU features (×0.49 each for independent values)."""


def uniform_factor(m: nn.Module, size: int) -> float | None:
    """:func:`edge_factor` of ``m`` on a uniform map of ``size`` along each spatial dimension
    (a first layer's loss: deeper layers lose less, their input's variance having moved to the
    interior)."""
    nd = len(getattr(m, "kernel_size", ()))
    if not 1 <= nd <= 3 or not has_edges(m):
        return None
    # (a map at least as wide as the kernel reaches: a 15×15 kernel with padding 1 cannot run on
    # 8×8, and a map it cannot run on is no map the model sees)
    reach = [d * (k - 1) + 1 for k, d in zip(m.kernel_size, m.dilation, strict=True)]
    shape = [max(size, r) for r in reach]
    try:
        return edge_factor(m, torch.ones((1, 1, *shape), dtype=torch.float64))
    except RuntimeError:  # (a configuration torch refuses on this map: no factor, no warning)
        return None


def reference_size(m: nn.Module) -> int:
    """:data:`REFERENCE_SEQUENCE` for a 1-D convolution, else :data:`REFERENCE_MAP`."""
    return REFERENCE_SEQUENCE if len(getattr(m, "kernel_size", ())) == 1 else REFERENCE_MAP


@dataclass
class Chain:
    """What a run of layers with no norm between them may lose without an example input."""

    convs: tuple[str, ...] = ()
    """Zero-padded convolutions, in order."""
    small: float = 1.0
    """Their edges' loss of E[x²] on uniform :data:`REFERENCE_MAP`-wide maps, multiplied."""
    large: float = 1.0
    """The same on maps 4× as wide."""
    sequences: bool = True
    """Whether every convolution in it is 1-D (the sizes said are a sequence's)."""
    pools: tuple[str, ...] = ()
    """Average pools whose output's E[x²] the plan took as their input's."""
    floor: float = 1.0
    """The least share of E[x²] those pools may keep (independent values), multiplied."""
    maxes: int = 0
    """Unmeasured max pools in it: they raise E[x²] (×1.4–5 each on VGG and AlexNet), by as
    much as the input's spatial correlation allows — at worst (equal values) not at all."""

    @property
    def worst(self) -> float:
        return self.small * self.floor

    def said(self) -> str:
        """The assumption's text, for the planner."""
        convs = [f"'{c}'" for c in self.convs]
        names = [*convs, *self.pools]
        where = f"{names[0]} … {names[-1]}" if len(names) > 2 else ", ".join(names)
        what, why = [], []
        if self.convs:
            n = len(self.convs)
            what.append(f"{n} zero-padded convolution{'s' * (n > 1)}")
            size, what_ = (
                (REFERENCE_SEQUENCE, "-long sequences")
                if self.sequences
                else (REFERENCE_MAP, "-wide maps")
            )
            why.append(
                "the fans count every kernel tap, but at a map's edges some read the padding "
                f"(E[x²] ×{self.small:.2g} after them on uniform {size}{what_}, "
                f"×{self.large:.2g} on {4 * size}{what_})"
            )
        if self.pools:
            n = len(self.pools)
            what.append(f"{n} average pool{'s' * (n > 1)}" if n > 1 else "an average pool")
            why.append(
                "averaging keeps between the mean's share of E[x²] and all of it (the plan "
                f"takes all; ×{self.floor:.2g} for independent values)"
            )
        if self.maxes:
            n = self.maxes
            why.append(
                f"the {n} max pool{'s' * (n > 1)} among them raise{'s' * (n == 1)} it by as much "
                "as neighbouring values differ (×1.4–5 each on VGG and AlexNet; at worst ×1)"
            )
        return (
            f"{where}: {' and '.join(what)} with no norm between them, whose effect on E[x²] "
            f"is in the input: {'; '.join(why)}; give example_input= to measure it"
        )


_GATES = {"sigmoid", "hardsigmoid"}
"""Activations whose output gates another signal (squeeze-excite, a gated unit's σ): bounded and
centered away from zero (σ(0) = ½), so their input's loss barely reaches E[x²] of the product."""


def _combined(chains: list[Chain]) -> Chain:
    """The run through an elementwise product of signals: ``E[(u·v)²] = E[u²]·E[v²]``, so the
    factors' losses multiply (each factor's own run, concatenated)."""
    out = Chain()
    for c in chains:
        out = Chain(
            convs=(*out.convs, *c.convs),
            small=out.small * c.small,
            large=out.large * c.large,
            sequences=out.sequences and c.sequences,
            pools=(*out.pools, *c.pools),
            floor=out.floor * c.floor,
            maxes=out.maxes + c.maxes,
        )
    return out


def unmeasured_chain(
    info: Any,
    modules: dict[str, nn.Module],
    pool_floors: dict[int, tuple[float, str]],
    max_pools: set[int] | frozenset[int] = frozenset(),
) -> Chain | None:
    """The run of layers with no norm, stop or residual addition in between, ending where a
    weight layer or the model's output reads it, whose unmeasured losses may lower E[x²] the
    most — zero-padded convolutions' edges (:func:`has_edges`, each fan counting every tap) on
    uniform :data:`REFERENCE_MAP`-wide maps (1-D: :data:`REFERENCE_SEQUENCE`-long sequences)
    and average pools at their floor (``pool_floors``, from
    :func:`~initwise.torch.moments.propagate`) — if that is below :data:`SAID_BELOW`, else
    None. Without an example input both are in the input's shape and content, and the planner
    says such a run. Measured (``auto``, no example input, unit Gaussian inputs): eight 3×3
    convolutions of 64 channels with ReLU on 8×8 maps, output rms 0.64–0.77 over 4 draws (with
    the example input 0.99–1.18); six 3×3×3 ones of 16 channels on 8³ maps with LeakyReLU,
    0.38–0.81; a VGG-16 with average pools and no norms on 32×32, 0.044–0.07."""
    g = getattr(info, "graph", None)
    if g is None:
        return None
    resets = {r.add for r in info.adds}
    nodes = g.nodes

    def is_gate(i: int) -> bool:
        act = info.acts.get(i) if info.kinds[i] == "act" else None
        return act is not None and act.name in _GATES

    def gate(i: int) -> bool:  # (σ(·) through reshapes: a squeeze-excite's w[:, :, None, None])
        return is_gate(behind(nodes, i, SHAPE_OPS))

    users = g.users()
    gating = [False] * len(nodes)  # (what only a gate reads: a squeeze-excite's W₁, W₂, x̄)
    for n in reversed(nodes):
        gating[n.idx] = is_gate(n.idx) or (
            bool(users[n.idx]) and all(gating[u] for u in users[n.idx])
        )

    runs: list[Chain] = [Chain()] * len(g.nodes)
    worst = Chain()
    cache: dict[str, tuple[float, float, bool] | None] = {}  # (8-wide, 32-wide, 1-D)
    for n in g.nodes:
        k = info.kinds[n.idx]
        prev = min((runs[i] for i in n.inputs), default=Chain(), key=lambda c: c.worst)
        read = (k == "weight" and not gating[n.idx]) or n.op == "output"
        if read and prev.worst < worst.worst:
            worst = prev  # (what reaches a layer solved for its input, or the output; a layer
            # whose output only a gate reads is left out — σ keeps its product's scale)
        signals = [i for i in n.inputs if nodes[i].op != "param"]
        if k == "stop" and n.op == "function" and n.target in PRODUCT_FUNCS and len(signals) > 1:
            # a gated product (h·σ(·), squeeze-excite) carries h's run; a product of two
            # signals (u·v) the losses of both
            prev = _combined([runs[i] for i in signals if not gate(i)])
        elif k in ("norm", "stop") or n.idx in resets:
            prev = Chain()
        elif k == "weight" and n.op == "module":
            name = str(n.target)
            if name not in cache:
                m = modules.get(name)
                size = reference_size(m) if m is not None else 0
                a = uniform_factor(m, size) if m is not None else None
                b = uniform_factor(m, 4 * size) if a is not None else None
                one_d = size == REFERENCE_SEQUENCE
                cache[name] = (a, b, one_d) if a is not None and b is not None else None
            f = cache[name]
            if f is not None:
                prev = replace(
                    prev,
                    convs=(*prev.convs, name),
                    small=prev.small * f[0],
                    large=prev.large * f[1],
                    sequences=prev.sequences and f[2],
                )
        elif n.idx in pool_floors:
            floor, name = pool_floors[n.idx]
            prev = replace(prev, pools=(*prev.pools, name), floor=prev.floor * floor)
        elif n.idx in max_pools:
            prev = replace(prev, maxes=prev.maxes + 1)
        runs[n.idx] = prev
    return worst if worst.worst < SAID_BELOW else None
