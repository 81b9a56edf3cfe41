r"""Pooling in the ``auto`` policy's moment propagation.

How pooling changes a tensor's second moment depends on how correlated the values it pools
are, which no data-free rule knows. Average pooling shrinks ``E[x²]`` towards ``E[x]²`` (by a
bounded factor: ≥ 1/π of it survives for ReLU features, whose ``E[x]² = E[x²]/π``); **max
pooling grows it**: for ``k`` independent values the maximum of ``k = 9`` standard normals has
``E[max²] ≈ 2.6`` (the 3×3 pools of AlexNet), of ``k = 4`` ``≈ 1.55`` against 0.5 for ``ReLU(z)``,
and spatially correlated inputs grow less. Measured (``init_model(…, seed=0)``, eval mode,
batch 8 at 224²): AlexNet's three 3×3 pools ×5.1, ×2.2, ×1.9 on white-noise images (×2.4–2.6 on
blurred ones), VGG-11's five 2×2 pools ×3.1, ×2.1, ×1.6, ×1.4, ×1.4 — so AlexNet's logits came
out with std 4.7 (9.2 in train mode, its two dropouts doubling E[x²] each) and VGG-11's 3.3.

So: with an example input, each pool's (and each ``mean`` reduction's: SegFormer's and
PoolFormer's heads average over positions with ``x.mean(…)``; and each sum over a dimension:
Deep Sets' sum over the set, whose number of terms is in the data) input and output moments are
**measured** on one forward pass of it, with the weights the plan gives (:func:`measure_pools`:
a draft plan drawn on a copy), and carried over scale-equivariantly — pooling is positively
homogeneous of degree 1, so an input ``c`` times larger gives ``c²·E[y²]`` and ``c·E[y]`` — as
``s_out = s·E[y²]/E[x²]``, ``m_out = √(s/E[x²])·E[y]``; without one the pool is assumed to leave
the moments unchanged, and for max pooling that reaches a solved layer the plan says so (an
``AssumptionWarning``; ``strict=True`` raises)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from .batch import (
    kept_modes,
    kept_state,
    noted_run,
    seeded_rng,
    split,
    tensors,
)
from .copying import module_copy
from .edges import edge_factor, has_edges, measured_taps
from .graph import (
    DATA_PRODUCTS,
    SHAPE_OPS,
    SOFTMAX_WEIGHTS,
    ModelInfo,
    behind,
    downstream,
    fn_name,
    is_leaf,
    is_softmax,
    keeps_dim,
    traced_into,
)

MAX_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
AVG_POOLS: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
)
MAX_POOL_FUNCS = frozenset(
    f"{a}max_pool{d}d{w}"
    for a in ("", "adaptive_")
    for d in (1, 2, 3)
    for w in ("", "_with_indices")
)
AVG_POOL_FUNCS = frozenset(
    {f"{a}avg_pool{d}d" for a in ("", "adaptive_") for d in (1, 2, 3)}
    | {"lp_pool1d", "lp_pool2d", "lp_pool3d"}
    | {"mean"}  # (a mean over positions: SegFormer's and PoolFormer's heads, `x.mean(dim=1)`)
    | {"grid_sample"}  # (a spatial transformer's bilinear sampling: a weighted average of pixels)
)

SMOOTH_MODES = frozenset({"linear", "bilinear", "bicubic", "trilinear"})
"""Interpolation modes that weight neighbouring values (``nn.Upsample``, ``F.interpolate``): each
output is a weighted average of inputs, so ``E[x²]`` falls by between ``Σw²`` (independent
values: 0.39 for a 2× bilinear upsampling of a map, measured ×0.34 after a random conv) and 1
(equal ones), the mean passes — an average pool as far as moments go. Nearest upsampling
copies values: the moments pass unchanged. Area mode is an adaptive average pool where it shrinks
a map (it copies values where it grows one): read as a pool unless its ``scale_factor`` is ≥ 1
(:func:`_weighting`)."""

_INTERPOLATIONS = frozenset({"interpolate", "upsample"})
"""``F.interpolate`` and its old name: ``(input, size, scale_factor, mode, …)``."""


def interpolation(n: Any, modules: dict[str, nn.Module]) -> str | None:
    """The mode of a graph node that interpolates with weights (:data:`SMOOTH_MODES`) — an
    ``nn.Upsample``/``UpsamplingBilinear2d`` module, ``F.interpolate(…, mode=…)`` or
    ``F.upsample_bilinear`` — else None."""
    if n.op == "module":
        m = modules.get(n.target)
        if not isinstance(m, nn.Upsample):
            return None
        mode, scale = m.mode, m.scale_factor
    elif n.op == "function" and str(n.target) == "upsample_bilinear":
        mode, scale = "bilinear", None
    elif n.op == "function" and str(n.target) in _INTERPOLATIONS:
        mode = n.kwargs.get("mode", n.args[2] if len(n.args) > 2 else "nearest")
        scale = n.kwargs.get("scale_factor", n.args[1] if len(n.args) > 1 else None)
    else:
        return None
    return mode if _weighting(mode, scale) else None


def _weighting(mode: Any, scale: Any) -> bool:
    """Whether an interpolation of ``mode`` with ``scale_factor`` ``scale`` averages values: a
    smooth mode always; area mode unless every scale factor is ≥ 1 (then it copies values, as
    nearest does; with a ``size`` the graph has no shapes to tell, and it is taken as a pool)."""
    if mode in SMOOTH_MODES:
        return True
    if mode != "area":
        return False
    scales = scale if isinstance(scale, (tuple, list)) else (scale,)
    return not all(isinstance(f, (int, float)) and f >= 1 for f in scales)


def _interpolate_call(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether an ``interpolate`` call (the tensor first) weights neighbours, as
    :func:`interpolation` reads its graph node."""
    mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
    return _weighting(mode, kwargs.get("scale_factor", args[2] if len(args) > 2 else None))


COPY_LIMIT = 1 << 29
"""Parameters above which no copy is made to measure pools (a copy doubles the memory; 2 GiB in
float32): the pools are then assumed, and the plan says why."""

Stats = tuple[float, float, float, float]
"""A pool's measured ``(E[x²], E[x], E[y²], E[y])``: input, output."""


ATTENTION_FUNCS = frozenset({"scaled_dot_product_attention"})
"""Attention that averages its values over the keys (``softmax(q·kᵀ/√d)·v``): at init the
weights are near uniform, so its output has the values' mean but a fraction of their variance
that depends on how alike the tokens are — measured like a pool, with the values as its input."""


def function_pool(target: str) -> str | None:
    """``"max"`` or ``"avg"`` for a pooling function's name (``max_pool2d``, ``_max_pool2d``,
    ``adaptive_avg_pool2d`` …), ``"attention"`` for ``scaled_dot_product_attention``, else
    None."""
    name = target.lstrip("_")
    if name in MAX_POOL_FUNCS:
        return "max"
    if name in AVG_POOL_FUNCS:
        return "avg"
    if name in ATTENTION_FUNCS:
        return "attention"
    return None


def _reduced(args: tuple, kwargs: dict, pooled: bool = False) -> Any:
    """The dimension(s) a reduction's non-tensor arguments (``dim`` first) name, where it does
    not keep them (``keepdim=True`` is a statistic) or where it is a pool all the same
    (``pooled``: :attr:`~initwise.torch.graph.Node.keepdim_pool`), else None."""
    if keeps_dim(args, kwargs) and not pooled:
        return None
    return kwargs.get("dim", args[0] if args else None)


def _named(dim: Any) -> bool:
    """Whether ``dim`` names dimensions: an int or a non-empty tuple/list."""
    return isinstance(dim, int) or (isinstance(dim, (tuple, list)) and bool(dim))


INDEX_SUMS = frozenset(
    {"index_add", "scatter_add", "scatter_reduce", "index_put"}
    | {"index_add_", "scatter_add_", "scatter_reduce_", "index_put_"}
)
"""Ops that add a source into a tensor by an index (a message-passing network's aggregation)
— sums when :func:`index_sum` says so."""


def index_sum(n: Any) -> bool:
    """Whether graph node ``n`` adds a source into a tensor by an index — ``index_add``,
    ``scatter_add``, ``scatter_reduce(…, "sum")``, ``index_put(…, accumulate=True)``: a graph
    network's aggregation over incoming edges written without a library. Its source is its last
    input (:func:`pooled_input`)."""
    if n.op != "function" or str(n.target) not in INDEX_SUMS:
        return False
    return _index_sum_call(n.args, n.kwargs)


def _index_sum_call(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether an index op's non-tensor arguments make it a sum (``reduce="sum"``,
    ``accumulate=True``; ``index_add``/``scatter_add`` always)."""
    scalars = [a for a in args if not isinstance(a, torch.Tensor)]
    if "reduce" in kwargs or any(isinstance(a, str) for a in scalars):
        how = kwargs.get("reduce", next((a for a in scalars if isinstance(a, str)), None))
        return how == "sum"
    if "accumulate" in kwargs or (scalars and isinstance(scalars[-1], bool)):
        return bool(kwargs.get("accumulate", scalars[-1] if scalars else False))
    return True


_CONSTANT_PADS = (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)
"""Constant-padding modules (``nn.ZeroPad2d`` is a ``ConstantPad2d`` of value 0)."""


def zero_pad_module(m: Any) -> bool:
    """Whether module ``m`` pads with zeros: ``nn.ZeroPad1d/2d/3d`` or a ``ConstantPadNd`` of
    value 0 (a "same" padding written as a module in front of a ``padding=0`` convolution, as
    TensorFlow ports and pix2pix-style generators do), or an ``nn.Unfold`` with padding (the
    patches of a convolution written as unfold and a Linear)."""
    if isinstance(m, nn.Unfold):
        return _padded(m.padding)
    return isinstance(m, _CONSTANT_PADS) and m.value == 0


def _padded(p: Any) -> bool:
    """Whether an unfold's ``padding`` (an int or a pair) adds any zeros."""
    vals = p if isinstance(p, (tuple, list)) else (p,)
    return any(isinstance(v, int) and v > 0 for v in vals)


def _unfold_padding(args: tuple, kwargs: dict) -> Any:
    """``F.unfold(x, kernel_size, dilation, padding, stride)``'s padding from a call's scalar
    arguments (the tensor left out), or None: ``Tensor.unfold(dimension, size, step)`` has the
    same name and three ints, so only ``padding=`` or the fourth positional form is read."""
    if "padding" in kwargs:
        return kwargs["padding"]
    return args[2] if len(args) == 4 else None


def _zero_padded_unfold(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether an ``unfold`` call (the tensor first) is ``F.unfold`` with zero padding."""
    p = _unfold_padding(args[1:], kwargs)
    return p is not None and _padded(p)


def zero_pad(n: Any, modules: dict[str, nn.Module] | None = None) -> bool:
    """Whether graph node ``n`` pads with zeros (``F.pad`` in its constant mode, value 0, or a
    zero-padding module, :func:`zero_pad_module`, looked up in ``modules``): the CIFAR ResNets'
    "option A" shortcut pads the channels a stride-2 stage adds
    (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, c/4, c/4))``), which halves ``E[x²]`` where a
    shape op keeps it. A ``masked_fill`` with 0 (a sequence's padding positions zeroed before
    a layer) too: the zeros' share is in the mask. Measured like a pool where an example input
    is given."""
    if n.op == "module":
        return modules is not None and zero_pad_module(modules.get(n.target))
    if n.op == "function" and str(n.target) == "unfold":  # (F.unfold's patches, padded)
        return _zero_padded_unfold((None, *n.args), n.kwargs)
    if n.op == "function" and str(n.target) in _FILLS:  # (entries a mask selects set to 0:
        return _zero(n.kwargs.get("value", n.args[-1] if n.args else None))  # padding positions;
        # the node's args hold no tensor)
    if n.op != "function" or str(n.target) != "pad":
        return False
    return _zero_pad_call((None, *n.args), n.kwargs)


def zero_pad_said(n: Any, modules: dict[str, nn.Module] | None = None) -> str | None:
    """What a zero-padding node (:func:`zero_pad`) adds, in words, for the assumption said where
    no example input measures it — ``"2 before along the last dimension"``, ``"8 before and 8
    after along dimension -3"`` — or None when it adds nothing (every amount a literal 0). Amounts
    computed in ``forward`` (from shapes: Swin's padding to a window multiple) are unknown in the
    graph: ``"amounts computed in forward"``. A padding module's amounts are its ``padding``
    (in ``F.pad``'s order)."""
    m = (modules or {}).get(n.target) if n.op == "module" else None
    unfold = isinstance(m, nn.Unfold) or (n.op == "function" and str(n.target) == "unfold")
    if unfold:  # (patches: the padding around the map they are taken from)
        p = m.padding if m is not None else _unfold_padding(n.args, n.kwargs)
        return f"patches taken with padding {p}" if p is not None else None
    if n.op == "function" and str(n.target) in _FILLS:
        return "the entries its mask selects set to 0"
    if n.op == "module":
        pad = getattr(m, "padding", None)
    else:
        pad = n.kwargs.get("pad", n.args[0] if n.args else None)  # (the node's args: no tensor)
    if not isinstance(pad, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in pad
    ):
        return "amounts computed in forward"
    if not any(v > 0 for v in pad):  # (negative amounts crop: no zeros added)
        return None
    parts = []
    for i in range(0, len(pad) - 1, 2):  # (F.pad: the last dimension's pair first)
        before, after = pad[i], pad[i + 1]
        if before == 0 and after == 0:
            continue
        where = "the last dimension" if i == 0 else f"dimension {-(i // 2) - 1}"
        amounts = " and ".join(  # (RWKV's time shift: 1 before and 1 cropped after)
            f"{v} {side}" if v > 0 else f"{-v} cropped {side}"
            for v, side in ((before, "before"), (after, "after"))
            if v
        )
        parts.append(f"{amounts} along {where}")
    return "; ".join(parts)


def _zero_pad_call(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether an ``F.pad`` call (the tensor first) pads with zeros."""
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    value = kwargs.get("value", args[3] if len(args) > 3 else None)
    return mode == "constant" and value in (None, 0, 0.0)


_FILLS = ("masked_fill", "masked_fill_")


def _zero(value: Any) -> bool:
    """Whether a fill value is the number 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _zero_fill_call(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether a ``masked_fill`` call (the tensor first, then the mask) fills with zeros."""
    return _zero(kwargs.get("value", args[2] if len(args) > 2 else None))


def summed_dims(n: Any) -> Any:
    """The dimension(s) a ``sum`` graph node reduces without keeping them — Deep Sets' sum
    over a set, a graph network's sum aggregation, a pool written as a sum — or a ``cumsum``
    runs along (a prefix sum: position ``t`` holds ``t`` terms), else None (a ``keepdim=True``
    sum is a statistic: a norm written in code; a full sum is a scalar)."""
    if n.op == "function" and str(n.target) == "cumsum":
        dim = n.kwargs.get("dim", n.args[0] if n.args else None)
        return dim if isinstance(dim, int) else None
    if index_sum(n):  # (a sum by index: the dimension it adds along)
        dim = n.args[0] if n.args and isinstance(n.args[0], int) else 0
        return dim
    if n.op != "function" or str(n.target) != "sum":
        return None
    return _reduced(n.args, n.kwargs, n.keepdim_pool)


def max_dims(n: Any) -> Any:
    """The dimension(s) a ``max``/``amax`` graph node reduces without keeping them — a global
    max pool written in code (PointNet's ``x.max(dim=2).values``, ``torch.amax(x, (2, 3))``) —
    else None (``keepdim=True`` is a statistic, as softmax's stabilizer; ``torch.max(a, b)`` is
    elementwise; a full ``max`` is a scalar). ``logsumexp`` over named dimensions is a smooth
    max pool (``log Σ eˣ ≥ max + 0``, up to ``max + log N``): passed through as an unknown op, a
    head behind it was solved for its input's E[x²] (×34 in E[y²] over 256 ReLU positions,
    nothing said without an example input)."""
    if n.op == "function" and n.values_only:  # (k-max pooling: topk's values, dim default -1)
        return n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else -1)
    if n.op != "function" or str(n.target) not in MAX_REDUCTIONS or len(n.inputs) != 1:
        return None
    dim = _reduced(n.args, n.kwargs, n.keepdim_pool)
    return dim if _named(dim) else None


MAX_REDUCTIONS = ("max", "amax", "logsumexp")
"""Reductions that pool like a max where they drop named dimensions (:func:`max_dims`)."""


def _max_call(args: tuple, kwargs: dict, pooled: bool = False) -> bool:
    """Whether a ``max``/``amax`` call (the tensor first) is a reduction as :func:`max_dims`
    reads its graph node."""
    if len(args) > 1 and isinstance(args[1], torch.Tensor):
        return False
    return _named(_reduced(args[1:], kwargs, pooled))


_CALL_FILTERS = {
    **{name: _index_sum_call for name in INDEX_SUMS},
    "pad": _zero_pad_call,
    **{name: _zero_fill_call for name in _FILLS},
    "unfold": _zero_padded_unfold,
    "sum": lambda a, k, p=False: _reduced(a[1:], k, p) is not None,  # (as summed_dims reads it)
    "cumsum": lambda a, k, p=False: isinstance(k.get("dim", a[1] if len(a) > 1 else None), int),
    "mean": lambda a, k, p=False: _named(_reduced(a[1:], k, p)),  # (as node_pool reads its node)
    "max": _max_call,
    "amax": _max_call,
    "logsumexp": _max_call,
    "topk": lambda a, k, p=False: True,  # (the graph's topk pools: read values only)
    "interpolate": _interpolate_call,
    "upsample": _interpolate_call,
}
"""Function names whose calls are pools only in some forms (the tensor first): the form the
graph's node has; with ``True`` last, ``keepdim=True`` calls too (the graph has a
``keepdim_pool`` of that name: every reduction of it is matched, the pools kept)."""


def _as_reduction(n: Any) -> bool:
    """Whether graph node ``n`` is a reduction of a form the call filters match when
    ``keepdim=True`` calls are counted too (statistics among them)."""
    if n.op != "function" or not n.inputs:
        return False
    name = str(n.target).lstrip("_")
    dim = _reduced(n.args, n.kwargs, True)
    if name == "sum":
        return dim is not None
    if name in MAX_REDUCTIONS and len(n.inputs) != 1:
        return False
    return (name == "mean" or name in MAX_REDUCTIONS) and _named(dim)


DISTANCE_FUNCS = frozenset({"cdist", "pdist", "pairwise_distance", "cosine_similarity"})
"""Distances between points (``cdist``, ``pdist``; ``pairwise_distance`` of paired rows) and
cosine similarities: their scale is in the points' dimension (``E[d²] = D·E[(x − y)²]``; a
cosine's spread ``(1 − ρ²)²/D``) — measured on an example input; without one, from the width
of the layer the points come from where it is known (``moments._distances``), else assumed and
said."""


def pooled_input(op: str) -> int:
    """Which input of a pooling node (by its function's name; a module's is its first) is the
    one it pools: the values — third of ``scaled_dot_product_attention``, second of an
    attention product (:data:`ATTENTION_PRODUCTS`) — else the first."""
    name = op.lstrip("_")
    if name in ATTENTION_FUNCS:
        return 2
    return 1 if name in ATTENTION_PRODUCTS else 0


def module_pool(m: nn.Module | None) -> str | None:
    """``"max"`` or ``"avg"`` for a pooling module — torch's, or a parameter-free one named as a
    pool (timm's ``FastAdaptiveAvgPool``: ``x.mean((1, 2))`` in a leaf module;
    ``AdaptiveAvgMaxPool2d``, averages too) — else None."""
    if isinstance(m, MAX_POOLS):
        return "max"
    if isinstance(m, AVG_POOLS) or (
        isinstance(m, nn.Upsample) and _weighting(m.mode, m.scale_factor)
    ):
        return "avg"
    if m is None or m._parameters or m._modules:
        return None
    name = type(m).__name__.replace("PoolFormer", "")  # (HF's PoolFormerDropPath: no pool)
    if "Pool" not in name:
        return None
    return "max" if "Max" in name and "Avg" not in name else "avg"


def node_pool(n: Any, modules: dict[str, nn.Module]) -> str | None:
    """The pooling kind of a graph node (a pooling module or function), else None."""
    if n.op == "module":
        return module_pool(modules.get(n.target))
    if n.op == "function":
        if str(n.target) == "mean" and not _named(_reduced(n.args, n.kwargs, n.keepdim_pool)):
            return None  # (x.pow(2).mean(-1, keepdim=True): a norm's statistic; x.mean(): a scalar)
        if interpolation(n, {}) is not None:
            return "avg"  # (bilinear and kin: weighted averages of neighbours)
        return function_pool(str(n.target)) or ("max" if max_dims(n) is not None else None)
    return None


_AVG_POOL_ND = (
    (nn.AvgPool1d, "avg_pool1d", 1),
    (nn.AvgPool2d, "avg_pool2d", 2),
    (nn.AvgPool3d, "avg_pool3d", 3),
)
"""Fixed-kernel average pools: the module, the function, their spatial dimensions."""


def avg_count(n: Any, modules: dict[str, nn.Module]) -> int | None:
    """How many values an average pool node averages, where its arguments say (``AvgPool2d(2)``:
    4; ``F.avg_pool1d(x, 3)``: 3); None where it is in the input's shape (adaptive pools, a mean
    over dimensions)."""
    m = modules.get(n.target) if n.op == "module" else None
    fn = str(n.target).lstrip("_") if n.op == "function" else None
    # (isinstance: a subclass of nn.AvgPool2d is one; looked up by its type, it raised KeyError)
    nd = next((d for cls, name, d in _AVG_POOL_ND if isinstance(m, cls) or fn == name), 0)
    if not nd:
        return None
    if m is not None:
        k = m.kernel_size
    else:
        k = n.kwargs.get("kernel_size", n.args[0] if n.args else None)  # (args: the scalars)
    ks = (k,) * nd if isinstance(k, int) else tuple(k) if isinstance(k, (tuple, list)) else ()
    if len(ks) != nd or not all(isinstance(v, int) and v > 0 for v in ks):
        return None
    return math.prod(ks)


def _stats(t: Any) -> tuple[float, float] | None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or not t.numel():
        return None
    if t.layout != torch.strided:  # (a sparse adjacency: only its product's moments matter)
        return None
    x = t.detach().double()
    return float((x * x).mean()), float(x.mean())


def has_pools(model: nn.Module, info: ModelInfo) -> bool:
    """Whether ``info.graph`` has a pooling node (attention included)."""
    if info.graph is None:
        return False
    modules = dict(model.named_modules())
    return (
        any(
            node_pool(n, modules) is not None
            or summed_dims(n) is not None
            or zero_pad(n, modules)
            or (n.op == "function" and str(n.target) in DISTANCE_FUNCS)
            for n in info.graph.nodes
        )
        or bool(measured_attention(model, info))
        or bool(info.data_products)
        or bool(signal_products(model, info))
        or bool(_mha_nodes(model, info))
        or bool(_bag_nodes(model, info))
        or bool(_edge_nodes(model, info))
        or bool(_site_edge_nodes(model, info))
        or bool(weighted_products(info))
    )


ATTENTION_PRODUCTS = ("matmul", "bmm", "einsum")
"""Products that, fed attention weights first, average the values (:func:`attention_matmuls`)."""


def attention_matmuls(model: nn.Module, info: ModelInfo) -> set[int]:
    """Eager attention's ``softmax(q·kᵀ) @ v`` nodes: a ``matmul``/``bmm``/``einsum`` of two
    tensors whose first is attention weights — a ``softmax``/``log_softmax`` (function or
    module) through shape ops (:data:`~initwise.torch.graph.SHAPE_OPS`: a sink column dropped by
    indexing, a cast) and dropout modules. Without a measurement such a node passes the values'
    moments (the second input); ``matmul``/``bmm`` ones are measured like a pool
    (:func:`measured_attention`)."""
    g = info.graph
    if g is None:
        return set()
    modules = dict(model.named_modules())
    weights: set[int] = set()
    out: set[int] = set()
    for n in g.nodes:
        t = str(n.target)
        m = modules.get(n.target) if n.op == "module" else None
        if is_softmax(n, modules):
            weights.add(n.idx)
        elif not n.inputs or n.inputs[0] not in weights:
            continue
        elif (n.op == "function" and t in SHAPE_OPS) or isinstance(
            m, nn.modules.dropout._DropoutNd
        ):
            weights.add(n.idx)  # (still the weights: `.to`, dropout, `[..., :-1]`)
        elif n.op == "function" and t in ATTENTION_PRODUCTS and len(n.inputs) == 2:
            out.add(n.idx)
    return out


def measured_attention(model: nn.Module, info: ModelInfo) -> set[int]:
    """The :func:`attention_matmuls` nodes :func:`measure_pools` can measure: ``matmul``,
    ``bmm`` and ``einsum`` of two operands (its operands after the equation, the weights first:
    ``einsum("bhij,bjhd->bihd", a, v)``; left out until 2026-12-05, so a hand-written einsum
    attention's branch ends were solved for values at unit where 0.22 came, with the example
    input given, nothing said)."""
    g = info.graph
    found = attention_matmuls(model, info)
    return {
        i
        for i in found
        if g is not None and (g.nodes[i].target != "einsum" or len(g.nodes[i].inputs) == 2)
    }


PRODUCT_NAMES = frozenset(DATA_PRODUCTS | {"einsum"})
"""Multilinear products whose calls :func:`measure_pools` records with every operand."""


def from_softmax(g: Any, idx: int) -> bool:
    """Whether graph node ``idx`` is a softmax's output (through reshapes: ``a[..., None]``)."""
    n = g.nodes[behind(g.nodes, idx, SHAPE_OPS)]
    return n.op == "function" and n.target in SOFTMAX_WEIGHTS


def weighted_products(info: ModelInfo) -> dict[int, int]:
    """Elementwise products of values with softmax weights — attention or a soft mixture of
    experts written as a weighted sum, ``(a[..., None] * v).sum(1)``, ``(y * g[:, None]).sum(-1)``
    — by node, with the position of the values among its inputs. With an example input each is
    measured as a pool of its values (scale-equivariant: the weights are scale-free), so the
    sum after it is carried from the values' moments; measured as an absolute weighted sum, a
    chain of six soft-MoE blocks was solved for what the first draft's stale scales gave (its
    output ×3.5·10⁸ in rms)."""
    g = info.graph
    if g is None:
        return {}
    out: dict[int, int] = {}
    for n in g.nodes:
        if n.op != "function" or str(n.target) != "mul" or len(n.inputs) != 2:
            continue
        a, b = (from_softmax(g, i) for i in n.inputs)
        if a != b and n.inputs[0] != n.inputs[1]:
            out[n.idx] = 1 if a else 0
    return out


def signal_products(model: nn.Module, info: ModelInfo) -> set[int]:
    """Products of two or more signals computed by the model (``matmul``/``bmm``/``mm``/
    ``einsum`` nodes with ≥ 2 distinct tensor inputs) that are not attention's averaging
    (:func:`attention_matmuls`), not a product with data
    (:func:`~initwise.torch.graph.data_products`) and not a hypernetwork's generated weight:
    linear attention's ``φ(q)·(φ(k)ᵀ·v)``, a DLRM's feature interactions ``T·Tᵀ``, a graph
    built from the features ``(h·hᵀ)·h``. No rule knows their moments (their operands are
    correlated by construction, and a normalizer among them has no rule either): with an
    example input the output's moments are measured, with the weights the draft plan gives."""
    g = info.graph
    if g is None:
        return set()
    attention = attention_matmuls(model, info)
    modules = dict(model.named_modules())
    users = g.users()
    buffers = {name for name, _ in model.named_buffers()}

    def parameter(i: int) -> bool:  # (a score vector's `h @ a`: the parameter has a rule)
        src = g.nodes[behind(g.nodes, i, SHAPE_OPS)]
        return src.op == "param" and str(src.target) not in buffers

    out: set[int] = set()
    for n in g.nodes:
        if (
            n.op == "function"
            and str(n.target).lstrip("_") in PRODUCT_NAMES
            and len(set(n.inputs)) >= 2
            and n.idx not in attention
            and n.idx not in info.data_products
            and n.idx not in info.generated
            and not any(parameter(i) for i in n.inputs)
            and not _logits(g.nodes, users, info.kinds, modules, n.idx)
        ):
            out.add(n.idx)
    return out


def _logits(
    nodes: list[Any], users: list[list[int]], kinds: list[str], modules: dict, idx: int
) -> bool:
    """Whether product ``idx`` reaches a softmax before any weight layer (attention's logits
    ``q·kᵀ``: what the softmax makes of them is measured where it averages the values)."""
    for i in downstream(users, idx, lambda i: kinds[i] != "weight"):
        if is_softmax(nodes[i], modules):
            return True
    return False


def _site_weight(t: Any, sites: set[int]) -> bool:
    """Whether ``t`` is the weight of a raw-parameter layer (``sites``: their ids) or a view of
    it: that product is a module node in the graph, not a function node, so its calls are not
    matched to the graph's."""
    return id(t) in sites or id(getattr(t, "_base", None)) in sites


def has_attention(model: nn.Module, info: ModelInfo) -> bool:
    """Whether ``info.graph`` has attention measured like a pool (:data:`ATTENTION_FUNCS`,
    :func:`attention_matmuls`) or products of signals (:func:`signal_products`: linear
    attention) or values weighted by a softmax (:func:`weighted_products`: how sharp the weights
    are depends on the scale of the logits' input) — what they give depends on how alike the
    tokens are by then, which the plan's own scales upstream change (the planner drafts again
    until the measurements settle)."""
    g = info.graph
    return g is not None and (
        any(n.op == "function" and function_pool(str(n.target)) == "attention" for n in g.nodes)
        or bool(measured_attention(model, info))
        or bool(_mha_nodes(model, info))
        or bool(signal_products(model, info))
        or bool(weighted_products(info))
    )


def _bag_nodes(model: nn.Module, info: ModelInfo) -> dict[str, int]:
    """``nn.EmbeddingBag`` module nodes by name: a bag's mean (sum) of rows is a pool of the
    table's rows, measured with the example input's bags."""
    g = info.graph
    if g is None:
        return {}
    modules = dict(model.named_modules())
    return {
        n.target: n.idx
        for n in g.nodes
        if n.op == "module" and isinstance(modules.get(n.target), nn.EmbeddingBag)
    }


def _mha_nodes(model: nn.Module, info: ModelInfo) -> dict[str, int]:
    """``nn.MultiheadAttention`` module nodes by name (called once each)."""
    return _once(model, info, lambda m: isinstance(m, nn.MultiheadAttention))


def _edge_nodes(model: nn.Module, info: ModelInfo) -> dict[str, int]:
    """Convolution module nodes whose taps may read a map's edges (:func:`~initwise.torch.edges.
    measured_taps`), by name (called once each): what reaches their taps is measured."""
    return _once(model, info, measured_taps)


_CONV_FUNCS = frozenset({"conv1d", "conv2d", "conv3d"})


def _site_edge_nodes(model: nn.Module, info: ModelInfo) -> dict[str, int]:
    """Raw-parameter convolution sites (:class:`~initwise.torch.modules.FunctionalConv`, in
    ``info.graph.extra``) whose taps may read a map's edges (:func:`~initwise.torch.edges.
    measured_taps`), by name, for those called once: their graph node."""
    extra = info.graph.extra if info.graph is not None else {}
    return _once(model, info, measured_taps, extra)


def _once(
    model: nn.Module, info: ModelInfo, test: Any, modules: dict[str, nn.Module] | None = None
) -> dict[str, int]:
    """Module nodes whose module (the model's, or from ``modules``) passes ``test``, by name,
    for modules called once."""
    g = info.graph
    if g is None:
        return {}
    modules = dict(model.named_modules()) if modules is None else modules
    out: dict[str, int] = {}
    seen: set[str] = set()
    for n in g.nodes:
        m = modules.get(n.target) if n.op == "module" else None
        if m is not None and test(m):
            if n.target in seen:
                out.pop(n.target, None)  # (called twice: not measured)
            else:
                seen.add(n.target)
                out[n.target] = n.idx
    return out


def _mha_values_and_mix(m: nn.MultiheadAttention, args: Any, kwargs: dict) -> Stats | None:
    """An ``nn.MultiheadAttention`` call's projected values and its output *before* ``out_proj``
    (the call repeated with ``out_proj`` the identity), as pool statistics."""
    value = args[2] if len(args) > 2 else kwargs.get("value")
    if not isinstance(value, torch.Tensor):
        return None
    e = m.embed_dim
    w = m.in_proj_weight[2 * e :] if m._qkv_same_embed_dim else m.v_proj_weight
    b = m.in_proj_bias[2 * e :] if m.in_proj_bias is not None else None
    v = _stats(torch.nn.functional.linear(value, w, b))
    o = m.out_proj
    saved = o.weight.detach().clone(), (o.bias.detach().clone() if o.bias is not None else None)
    try:
        with torch.no_grad():
            o.weight.copy_(torch.eye(e, dtype=o.weight.dtype, device=o.weight.device))
            if o.bias is not None:
                o.bias.zero_()
            mixed = m(*args, **{**kwargs, "need_weights": False})
    finally:
        with torch.no_grad():
            o.weight.copy_(saved[0])
            if o.bias is not None and saved[1] is not None:
                o.bias.copy_(saved[1])
    a = _stats(mixed[0] if isinstance(mixed, tuple) else mixed)
    return (v[0], v[1], a[0], a[1]) if v is not None and a is not None else None


def drafted_copy(model: nn.Module, draft: Any) -> tuple[nn.Module | None, str | None]:
    """A copy of ``model`` with ``draft`` applied (seed 0) — the weights the plan will give, on
    which the example input is measured — or ``(None, why)``: a model of more than
    :data:`COPY_LIMIT` parameters is not copied, and a copy the draft cannot be applied to is
    said by its error's type."""
    n = sum(p.numel() for p in model.parameters())
    if n > COPY_LIMIT:
        return None, f"the model ({n:,} parameters) is too large to copy for measuring"
    try:
        twin = module_copy(model)
        draft.apply(twin, seed=0)
    except Exception as exc:
        return None, f"a copy with the plan drawn could not be made ({type(exc).__name__})"
    return twin, None


def measure_inputs(
    model: nn.Module, names: list[str], example_input: Any, draft: Any
) -> dict[str, list[tuple[float, float] | None]]:
    """Per module of ``names``, each call's first input ``(E[x²], E[x])`` on one forward pass of
    ``example_input``, on a copy of the model with ``draft`` applied (seed 0), in the model's
    own modes, without gradients, torch's random state put back: the input of a weight layer
    the walk could not follow (:func:`~initwise.torch.moments.unknown_inputs`). ``{}`` where
    it cannot run (the meta device, a model too large to copy, a failure)."""
    if not names or example_input is None or draft is None:
        return {}
    if any(p.is_meta for p in model.parameters()) or any(t.is_meta for t in tensors(example_input)):
        return {}
    twin, _ = drafted_copy(model, draft)
    if twin is None:  # (then the layers stay as assumed, and say so)
        return {}
    modules = dict(twin.named_modules())
    out: dict[str, list[tuple[float, float] | None]] = {k: [] for k in names if k in modules}
    handles = []
    for k in out:

        def pre(mod: nn.Module, args: Any, k: str = k) -> None:
            x = next(iter(tensors(args)), None)
            if x is None or not x.is_floating_point() or x.numel() == 0:
                out[k].append(None)
                return
            xd = x.detach().double()
            out[k].append((float(xd.pow(2).mean()), float(xd.mean())))

        handles.append(modules[k].register_forward_pre_hook(pre))
    args, kwargs = split(example_input)
    try:
        with torch.no_grad(), seeded_rng(0):
            twin(*args, **kwargs)
    except Exception:
        return {}
    finally:
        for h in handles:
            h.remove()
    return out


def measure_pools(
    model: nn.Module,
    info: ModelInfo,
    example_input: Any,
    draft: Any = None,
    keep: dict[str, Any] | None = None,
) -> tuple[dict[int, Stats], str | None]:
    """Per pooling node of ``info.graph``: its input's and output's ``(E[x²], E[x])`` measured on
    one forward pass of ``example_input`` in the model's own train/eval modes (a fresh BatchNorm
    network in eval mode normalizes nothing yet; no gradients; torch's random state and the
    model's buffers and modes put back). With ``draft`` (a plan), on a copy of the model with
    the draft applied (seed 0) — the weights the plan will give — else on the model as it is.
    A pooling module called N times is measured at each call (its N nodes, in order); pooling
    modules or functions whose calls do not match the graph's one to one are left out (then
    assumed). Per convolution node whose taps may read a map's edges
    (:func:`~initwise.torch.edges.measured_taps`): its input's moments and the part that
    reaches its taps (:func:`~initwise.torch.edges.edge_factor`) as the "output". Returns
    the measurements and, where the pass could not run, why (else None). ``keep``: a dict that
    receives the drafted copy under ``"copy"`` once it has run (the output check draws the
    final plan on it: :func:`~initwise.torch.verify.check_output`)."""
    g = info.graph
    if g is None or example_input is None:
        return {}, None
    modules = dict(model.named_modules())
    by_module: dict[str, list[int]] = {}  # (a module called N times: its N nodes, in order)
    by_function: dict[str, list[int]] = {}
    attn_mm = measured_attention(model, info)
    for n in g.nodes:
        kind = node_pool(n, modules)
        if kind is None and n.op == "function" and str(n.target) in DISTANCE_FUNCS:
            by_function.setdefault(str(n.target), []).append(n.idx)  # (distances: measured)
        if kind is None and n.op == "module" and zero_pad(n, modules):  # (a padding module)
            kind = "pad"
        elif kind is None and (summed_dims(n) is not None or zero_pad(n)):  # (a sum over a
            by_function.setdefault(str(n.target), []).append(n.idx)  # set, zero padding: too)
        if kind is None:
            continue
        if n.op == "module":
            by_module.setdefault(n.target, []).append(n.idx)
        else:
            by_function.setdefault(str(n.target).lstrip("_"), []).append(n.idx)
    # a keepdim=True pool (x.sum(0, keepdim=True) before a read-out) is matched among every
    # reduction of its name, keepdim statistics included (their calls cannot be told apart)
    loose = {str(n.target).lstrip("_") for n in g.nodes if n.keepdim_pool}
    statistics: set[int] = set()
    for name in loose:
        found = [n.idx for n in g.nodes if str(n.target).lstrip("_") == name and _as_reduction(n)]
        statistics |= set(found) - set(by_function.get(name, []))
        by_function[name] = found
    products = info.data_products
    signals = signal_products(model, info)
    # (raw-parameter sites, and modules called as a function of their own weight — Mamba's
    # `self.dt_proj.weight @ x`: a module node, not a product; counted among the products, a
    # Jamba's matmul calls outnumbered the graph's 30 to 28 and none was measured, its eager
    # attention's o_proj solved for input E[x²] 1 where it gets 0.33)
    site_weights = {
        id(m.weight) for m in (*g.extra.values(), *g.weight_calls.values()) if hasattr(m, "weight")
    }
    if attn_mm or products or signals:  # every product call is recorded (q·kᵀ too) and matched
        for n in g.nodes:  # to the graph's in order; attention's, data products (Â @ h) and
            name = str(n.target).lstrip("_")  # products of signals are kept
            if n.op == "function" and name in PRODUCT_NAMES:
                by_function.setdefault(name, []).append(n.idx)
    by_mha = _mha_nodes(model, info)
    by_bag = _bag_nodes(model, info)
    by_edge = _edge_nodes(model, info)
    site_edges = _site_edge_nodes(model, info)  # (raw-parameter convs: F.conv2d(x, self.w, …))
    if not (by_module or by_function or by_mha or by_bag or by_edge or site_edges):
        return {}, None
    if any(p.is_meta for p in model.parameters()) or any(t.is_meta for t in tensors(example_input)):
        return {}, "the model or the example input is on the meta device"
    copied = draft is not None
    if copied:  # (the same module names in the copy)
        site_names = {k for k, p in model.named_parameters() if id(p) in site_weights}
        site_names |= set(site_edges)
        twin, why = drafted_copy(model, draft)
        if twin is None:  # (then the plan assumes, and says why it could not measure)
            return {}, why
        model = twin
        modules = dict(model.named_modules())
        # the copy's own raw-parameter weights, by name: with the original's ids no product
        # with a site weight was told from a product of signals, the calls outnumbered the
        # graph's nodes, and attention over raw projections went unmeasured
        site_weights = {id(p) for k, p in model.named_parameters() if k in site_names}
    seen: dict[int, list[Stats]] = {}
    calls: dict[str, list[Stats]] = {}
    module_calls: dict[str, list[Stats | None]] = {}
    edge_weights = {id(p): k for k, p in model.named_parameters() if k in site_edges}
    weighted = weighted_products(info)  # (every `mul` call recorded, matched to the graph's)
    mul_nodes = [n.idx for n in g.nodes if n.op == "function" and str(n.target) == "mul"]
    mul_calls: list[tuple[Any, ...]] = []  # (the values' and the product's statistics)

    def taps(m: Any, x: Any, idx: int) -> None:
        """What reaches convolution ``m``'s taps for its input ``x``, as node ``idx``'s
        "output" (a convolution without padding of its own: only a share that moves the solve
        by more than 1% — on a uniform map it is 1 up to the example's noise)."""
        f, st = edge_factor(m, x), _stats(x)
        least = 1e-3 if has_edges(m) else 1e-2
        if f is not None and st is not None and abs(f - 1.0) > least:
            seen.setdefault(idx, []).append((st[0], st[1], st[0] * f, st[1] * math.sqrt(f)))

    depth = [0]

    def record(inp: Any, out: Any) -> Stats | None:
        a, b = _stats(next(iter(tensors(inp)), None)), _stats(next(iter(tensors(out)), None))
        return (a[0], a[1], b[0], b[1]) if a is not None and b is not None else None

    class Recorder(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            out = func(*args, **(kwargs or {}))
            if depth[0] == 0:
                name = fn_name(func).lstrip("_")
                keep = _CALL_FILTERS.get(name)
                if name == "mul" and weighted:  # (the values and the product, where the
                    k = len(mul_calls)  # graph's node at this call's place is weighted)
                    at = mul_nodes[k] if k < len(mul_nodes) else None
                    j = weighted.get(at, len(args))  # type: ignore[arg-type]
                    mul_calls.append((_stats(args[j]), _stats(out)) if j < len(args) else ())
                w = args[1] if name in _CONV_FUNCS and len(args) > 1 else None
                site = edge_weights.get(id(w), edge_weights.get(id(getattr(w, "_base", None))))
                if site is not None:  # (a raw-parameter convolution's taps)
                    taps(g.extra[site], args[0], site_edges[site])
                if name in PRODUCT_NAMES and name in by_function:  # (every operand: which is
                    ops = args[1:] if name == "einsum" else args[:2]  # pooled is the node's)
                    if name == "einsum" and len(ops) == 1 and isinstance(ops[0], (list, tuple)):
                        ops = tuple(ops[0])
                    if not any(_site_weight(a, site_weights) for a in ops):
                        y = _stats(next(iter(tensors(out)), None))
                        calls.setdefault(name, []).append(  # type: ignore[arg-type]
                            (tuple(_stats(a) for a in ops), y)
                        )
                elif name in by_function and (
                    keep is None or keep(args, kwargs or {}, name in loose)
                ):
                    i = pooled_input(name)
                    pooled = args[i : i + 1] if len(args) > i else (kwargs or {}).get("value")
                    if name in INDEX_SUMS:  # (the source added by index: the last tensor)
                        pooled = tensors((args, kwargs or {}))[-1:]
                    st = record(pooled, out)
                    calls.setdefault(name, []).append(st)  # type: ignore[arg-type]
            return out

    names = {m: n for n, m in modules.items()}

    def pre(m: nn.Module, args: Any) -> None:
        depth[0] += 1

    def post(m: nn.Module, args: Any, out: Any) -> None:
        name = names[m]
        if depth[0] == 1 and name in by_module:  # (still inside: the statistics' own means are
            module_calls.setdefault(name, []).append(record(args, out))  # not calls of the
            # model's); one per call, matched to the module's nodes in order
        edge = by_edge.get(names[m])
        if edge is not None and depth[0] == 1:  # what reaches the taps of a zero-padded conv
            taps(m, next(iter(tensors(args)), None), edge)
        bag = by_bag.get(names[m])
        if bag is not None:  # the table's rows against the bags they made
            st = record(m.weight, out)  # type: ignore[arg-type]
            if st is not None:
                seen.setdefault(bag, []).append(st)
        depth[0] -= 1

    mixing = [False]  # (the repeated call inside mha_post is not measured again)

    def mha_post(m: nn.Module, args: Any, kwargs: dict, out: Any) -> None:
        idx = by_mha.get(names[m])  # (a graph node even inside an expanded container, such as
        if idx is None or mixing[0]:  # TransformerEncoderLayer: no depth test)
            return
        mixing[0] = True
        depth[0] += 1  # (its own means and products are not calls of the model's)
        try:
            st = _mha_values_and_mix(m, args, kwargs)  # type: ignore[arg-type]
        finally:
            mixing[0] = False
            depth[0] -= 1
        if st is not None:
            seen.setdefault(idx, []).append(st)

    handles = []
    for m in names:
        if m is not model and is_leaf(m) and not traced_into(m):
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        if isinstance(m, nn.MultiheadAttention) and names[m] in by_mha:
            handles.append(m.register_forward_hook(mha_post, with_kwargs=True))
    # (a copy is thrown away: only the model itself gets its buffers back)
    kept = contextlib.nullcontext() if copied else kept_state(model)
    args, kwargs = split(example_input)
    try:
        with torch.no_grad(), seeded_rng(0), kept_modes(model), kept, Recorder():
            model(*args, **kwargs)
    except Exception as exc:  # (the plan then assumes, and says why it could not measure)
        noted_run(exc)
        return {}, f"running the example input failed ({type(exc).__name__})"
    else:
        noted_run()
        if copied and keep is not None:
            keep["copy"] = model
    finally:
        for h in handles:
            h.remove()
    out: dict[int, Stats] = {idx: v[0] for idx, v in seen.items() if len(v) == 1}
    if weighted and len(mul_calls) == len(mul_nodes):  # values → their weighted product
        for idx, call in zip(mul_nodes, mul_calls, strict=True):
            if idx not in weighted or not call:
                continue
            v, y = call
            if v is not None and y is not None:
                out[idx] = (v[0], v[1], y[0], y[1])
    for name, idxs in by_module.items():  # (the tutorial CNN's one `self.pool`, called twice:
        got = module_calls.get(name, [])  # each call measured; left out before)
        if len(got) == len(idxs) and all(st is not None for st in got):
            out.update(zip(idxs, got, strict=True))  # type: ignore[arg-type]
    for name, idxs in by_function.items():
        got = calls.get(name, [])
        if name in PRODUCT_NAMES:  # (q·kᵀ's calls were matched too: attention's, data
            if len(got) == len(idxs):  # products' and signal products' kept)
                for i, (ops, y) in zip(idxs, got, strict=True):  # type: ignore[misc]
                    if y is None:
                        continue
                    if i in signals:  # (the output as measured; the input unused)
                        out[i] = (1.0, 0.0, y[0], y[1])
                        continue
                    j = 1 if i in attn_mm else products.get(i, -1)
                    x = y if j is None else ops[j] if j in (0, 1) and len(ops) > j else None
                    if x is not None:
                        out[i] = (x[0], x[1], y[0], y[1])
            continue
        if name in ("sum", "cumsum"):  # (sums of integer masks are matched, measure nothing)
            if len(got) == len(idxs):
                out.update((i, st) for i, st in zip(idxs, got, strict=True) if st)
            continue
        if len(got) == len(idxs) and all(st is not None for st in got):
            out.update(zip(idxs, got, strict=True))
    return {
        k: v
        for k, v in out.items()
        if k not in statistics and v[0] > 0 and all(map(math.isfinite, v))
    }, None


def carried(measured: Stats, s: float) -> tuple[float, float]:
    """The pool's output moments for an input of second moment ``s``, scale-equivariantly from
    the measured ones: ``(s·E[y²]/E[x²], √(s/E[x²])·E[y])`` (the measured input's shape — its
    mean relative to its scale, its correlations — taken as is)."""
    c2 = s / measured[0]
    return measured[2] * c2, measured[3] * math.sqrt(c2)
