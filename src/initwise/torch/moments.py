r"""Moment propagation for the ``auto`` policy: walk the traced graph in execution order, carry
each tensor's second moment ``s = E[x²]`` and mean ``m = E[x]`` (mean field, biases zero), and
solve every weight layer's std for the moments that actually arrive.

Rules (``x`` the input, independent operands; sources in docs/policies.md):

================================ =========================================================
weight layer (Linear, Conv, …)   solved: output second moment = its target ``q``
                                 (``std² = q / (fan_in · s)``; ``s − m²`` when centered)
activation φ                     ``E[φ(x)²], E[φ(x)]`` for ``x ~ N(m, s − m²)``
norm                             ``s = 1, m = 0`` (RMSNorm keeps ``m/√s``)
``a + b``                        ``s_a + s_b + 2 m_a m_b``, ``m_a + m_b``
``a · b`` (gating)               ``s_a s_b``, ``m_a m_b``
``x · c``, ``x / c``, ``x + c``  exact
softmax(…) @ v, SDPA             the moments of ``v`` (an average of values)
cat / stack                      the mean of the operands' moments
pooling                          measured on the example input, carried over by scale
                                 (:mod:`~initwise.torch.pooling`); else unchanged — for max
                                 pooling reaching a solved layer, an assumption said so
shape ops; dropout in eval mode  unchanged
dropout, drop path in training   ``s·E[ε²]`` (``s/(1 − p)``), ``m`` (Pretorius et al. 2018)
================================ =========================================================

A weight layer's **target**: the operating point (:mod:`initwise.math.operating`) of the
activation that consumes it, for the depth of the chain it sits in; ``s_skip / R`` for the last
layer of one of ``R`` unnormalized residual branches (so the residual stream's second moment
grows by at most ``(1 + 1/R)^R < e`` over the whole network); 1 otherwise (a linear consumer,
the output).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import sampling
from ..math.gains import activation_fn
from ..math.meanfield import normalized_weight_variance
from ..math.operating import (
    DRIFT_LIMIT,
    OFF_SAID,
    SIMULATION_CAP,
    OperatingPoint,
    end_points,
    operating_point,
    q_for_second_moment,
    shifted_moments,
)
from .batch import seeded_rng, tensors
from .copying import module_copy
from .cross import SHARED_KINDS as _SHARED_KINDS
from .cross import Cross, again_product
from .edges import has_edges
from .functional import weight_read
from .graph import (
    PRODUCT_FUNCS,
    SOFTMAX_FUNCS,
    VECTOR_NORMS,
    Act,
    ModelInfo,
    behind,
    constant_factor,
    downstream,
    dropout_noise,
    feature_width,
    graph_modules,
    in_out,
    is_softmax,
    norm_args,
    part_width,
    shape_query,
)
from .graph import SHAPE_OPS as _SHAPE_OPS
from .modules import (
    NOISE_PROBE,
    FunctionalLinear,
    embedding_norm_cap,
    expert_layer,
    probe_copy,
    probed_norm,
    probed_tokenizer,
    seeded_pair,
    standardized_gain,
    weight_fans,
)
from .modules import kind as module_kind
from .parametrized import site_of
from .pooling import (
    DISTANCE_FUNCS,
    Stats,
    attention_matmuls,
    avg_count,
    carried,
    from_softmax,
    index_sum,
    interpolation,
    node_pool,
    pooled_input,
    signal_products,
    summed_dims,
    weighted_products,
    zero_pad,
    zero_pad_said,
)

_SHAPE_QUERIES = {"size", "dim", "numel", "getattr", "shape", "__len__"}
_ADD = {"add", "add_", "iadd", "radd"}
_SUB = {"sub", "sub_", "isub", "rsub"}
_MUL = PRODUCT_FUNCS
_DIV = {"div", "truediv", "div_"}
_CAT = {"cat", "concat", "concatenate", "stack", "hstack", "vstack"}
_PICKS = {
    "getitem",
    "index_select",
    "gather",
    "masked_select",
    "take",
    "take_along_dim",
    "diagonal",
    "diag",
    "triu",
    "tril",
}
"""Ops that pick (or zero) some entries of a tensor by position."""
_MEAN = {"mean", "sum", "avg_pool1d"}


@dataclass(frozen=True)
class Solved:
    """What ``auto`` solved for one weight layer: the moments that arrive (``s``, ``m``), the
    pre-activation second moment it aims at (``q``), centering, and why."""

    s: float
    m: float
    q: float
    centered: bool
    role: str
    op: OperatingPoint | None = None
    assumed_input: bool = False
    bias_var: float = 0.0
    """The part of ``q`` the layer's bias carries (an edge-of-chaos point); the weights the rest."""
    via: str = ""
    """How the input's moments came through a pool (measured or assumed), for the reason."""
    bias_mean: float = 0.0
    """A constant the layer's bias starts at (a highway carry gate's, :func:`carry_bias`)."""
    zero: bool = False
    """The layer starts at zero, weights and bias (an affine coupling's last layer,
    :func:`affine_couplings`)."""
    fixed: bool = False
    """The weight the layer computes with is normalized in ``forward`` (``spectral_norm``,
    ``orthogonal``: :func:`_fixed_scale`): no draw sets its output's scale."""
    also: str = ""
    """Where ``forward`` also uses the weight outside the layer, and what that use gives (a tied
    decoder: :func:`_tied_product`), for the reason."""
    blocks: tuple[float, float] | None = None
    """An ``nn.MultiheadAttention`` whose key and value inputs differ from its query in
    ``E[x²]``: theirs, ``(key, value)``; its key and value projections are solved for them (the
    query's for all three put a decoder's values ×5 in rms where its memory was ×5)."""

    @property
    def effective(self) -> float:
        """What the weights multiply: E[x²], or Var[x] when centered."""
        return max(self.s - self.m * self.m, 1e-12) if self.centered else self.s

    @property
    def gain(self) -> float:
        """``std = gain / √fan_in``: the weights' part of ``q`` (the bias carries ``bias_var``)."""
        return math.sqrt((self.q - self.bias_var) / self.effective)

    def describe(self) -> str:
        mean = f", mean {self.m:.3g}" if abs(self.m) > 1e-3 * math.sqrt(self.s) else ""
        src = " (assumed: its input was not traced)" if self.assumed_input else ""
        via = f" ({self.via})" if self.via else ""
        also = f"; {self.also}" if self.also else ""
        return f"input E[x²] {self.s:.3g}{mean}{src}{via} → {self.role}{also}"


@dataclass(frozen=True)
class Held:
    """A weight layer the plan does not solve — frozen (``requires_grad=False``), started at zero
    or the identity on purpose, or given an override — with what its weights will be after
    ``apply``: ``fan_in·E[w²]`` (for an
    embedding, its table's ``E[w²]``), its bias's (or table's) mean and variance, and why. The
    walk passes its input through these instead of the unit output it would have solved
    for, so the layers after it are solved for what it gives."""

    gain2: float
    bias_mean: float
    bias_var: float
    how: str
    keep: frozenset[str] = frozenset()
    """A recurrent layer's parameters kept as built (frozen, an identity start): its probe
    (:func:`rnn_moments`) runs with them, not with ``auto``'s recurrent rule."""
    draws: tuple[Any, ...] = ()
    """A recurrent layer's plan entries (:class:`~initwise.plan.ParamPlan`) where they are not
    ``auto``'s recurrent rule — an override, another forget-gate bias: its probe draws its
    copy by them, as ``apply`` will."""
    values: tuple[float, float, float] | None = None
    """An ``nn.MultiheadAttention``'s value projection as it will be where it is overridden or
    kept: ``(fan_in·E[w²], bias mean, bias variance)`` of its value block; the walk averages
    the values it gives instead of unit ones."""
    solved: bool = False
    """The layer's own weight is the walk's to solve (only :attr:`values` is held)."""
    param: bool = False
    """A raw parameter the graph reads (a layer scale ``γ·x``, a token, a latent array), not a
    layer: its values' ``(E[p²], E[p])`` are :attr:`gain2` and :attr:`bias_mean`
    (``propagate``'s ``drawn``)."""


@dataclass
class Moments:
    """Result of :func:`propagate`: per weight-layer module name, what was solved; per tied
    embedding, the std chosen; and the assumptions made."""

    layers: dict[str, Solved] = field(default_factory=dict)
    embedding_std: dict[str, tuple[float, str]] = field(default_factory=dict)
    conditional: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Embeddings that are a class-conditional norm's affine (:func:`conditional_affines`):
    ``{name: (role, norm)}``, role ``"gain"`` (ones), ``"gain-1"`` or ``"shift"`` (zeros)."""
    thetas: dict[str, int] = field(default_factory=dict)
    """Spatial transformers' localization heads (:func:`affine_thetas`): ``{name: rows}`` of the
    θ their output is, 2 (``2 × 3``) or 3 (``3 × 4``): weights zero, bias the identity."""
    assumed: list[str] = field(default_factory=list)
    drifts: list[str] = field(default_factory=list)
    """Chains no operating point holds (:data:`~initwise.math.operating.DRIFT_LIMIT`)."""
    cache: dict[Any, OperatingPoint] = field(default_factory=dict, repr=False)
    scattered: dict[str, float] = field(default_factory=dict, repr=False)
    """Weight layers whose output is scattered into another tensor (``masked_scatter``), with
    that tensor's E[x²] (:func:`_scatter_dest`)."""
    pool_floors: dict[int, tuple[float, str]] = field(default_factory=dict, repr=False)
    """Average pools left unmeasured (no example input), per graph node: the least share of
    E[x²] each may keep (independent values) and its name (:func:`edges.unmeasured_chain`)."""
    max_pools: set[int] = field(default_factory=set, repr=False)
    """Max pools left unmeasured, per graph node (they raise E[x²]; :func:`edges.unmeasured_chain`
    counts them in a run it says)."""
    output_unknown: str = ""
    """Where the model's output has no predicted moments because it passed a product of two
    signals (:func:`_unknown_output`): what and where, for the assumption without an example
    input and for :func:`~initwise.torch.verify.check_output` with one; else ``""``."""
    output: tuple[float, float] | None = None
    """The model output's ``(E[y²], E[y])`` as the walk predicts it, where the model returns one
    tensor whose moments the walk knows (:func:`~initwise.torch.verify.check_output` holds it
    against the example input's)."""


def input_moments(example_input: Any) -> tuple[float, float] | None:
    """``(E[x²], E[x])`` of the first floating-point tensor of an example input (None: no such
    tensor, or it is on the meta device)."""
    for t in tensors(example_input):
        if t.is_floating_point() and t.device.type != "meta" and t.numel():
            x = t.detach().double()
            return float((x * x).mean()), float(x.mean())
    return None


def _runs(info: ModelInfo) -> list[int]:
    """Per graph node: how many weight layers lead to it without a norm, a stop, a residual
    addition or an affine coupling's join in between (a weight layer counts itself). A flow's
    couplings chained their nets into one run: 8 RealNVP couplings of 3-layer ReLU nets were
    planned as a 23-layer chain, with its scatter warning."""
    g = info.graph
    assert g is not None
    run = [0] * len(g.nodes)
    # (a residual sum, and where an affine coupling applies its net to the stream,
    # y = x·exp(s) + t: the stream passes, the net is a side branch as a residual one is)
    resets = {r.add for r in info.adds} | {j for c in coupling_sites(info) for j in c.joins}
    for n in g.nodes:
        k = info.kinds[n.idx]
        # (a layer and its low-rank adapter: the chain goes through the layer, not A and B)
        pick = min if n.idx in info.adapters else max
        prev = pick((run[i] for i in n.inputs), default=0)
        if k == "weight":
            run[n.idx] = prev + 1
        elif k in ("norm", "stop") or n.idx in resets:
            run[n.idx] = 0
        else:
            run[n.idx] = prev
    return run


def chain_depths(info: ModelInfo) -> dict[str, int]:
    """Per activation (``Act.describe()``), the longest run of weight layers feeding it that is
    not interrupted by a norm or a residual addition (the depth its operating point serves)."""
    if info.graph is None:
        return {}
    run = _runs(info)
    out: dict[str, int] = {}
    for n in info.graph.nodes:
        if info.kinds[n.idx] == "act":
            key = info.acts[n.idx].describe()
            prev = max((run[i] for i in n.inputs), default=0)
            out[key] = max(out.get(key, 0), prev)
    return out


def weight_runs(info: ModelInfo) -> dict[int, int]:
    """Per weight-layer node: its position in its uninterrupted chain (1 = first)."""
    if info.graph is None:
        return {}
    run = _runs(info)
    return {n.idx: run[n.idx] for n in info.graph.nodes if info.kinds[n.idx] == "weight"}


def norm_follows(info: ModelInfo) -> set[int]:
    """Weight-layer nodes whose output reaches a norm, on every path, before any activation,
    weight layer, residual sum or the model's output. One path past the norm is enough to
    make the scale matter: a layer that writes the residual stream (LLaVA's image projector,
    a patch embedding) feeds the first block's norm *and* its skip, and was solved with the
    classic gain "since a norm follows" — LLaVA's image tokens entered the stream at E[x²] 0.34
    beside text embeddings at 1. (A norm after a residual sum normalizes the sum, not the
    branch: the branch's scale relative to the skip still matters.)"""
    g = info.graph
    if g is None:
        return set()
    users = g.users()
    sums = {r.add for r in info.adds}
    out = set()
    for n in g.nodes:
        if info.kinds[n.idx] != "weight":
            continue
        seen: set[int] = set()
        stack = [(u, n.idx) for u in users[n.idx]]
        found, escaped = False, False
        while stack and not escaped:
            i, came = stack.pop()
            node = g.nodes[i]
            if node.op == "function" and node.target in _AS_SHAPE and node.inputs[0] != came:
                continue  # (`y.reshape_as(x)`: x gives its shape only — LeViT's BatchNorm1d)
            if i in seen:
                continue
            seen.add(i)
            k = info.kinds[i]
            if k == "norm":
                found = True
            elif node.op == "function" and node.target in _SHAPE_QUERIES:
                continue  # (x.size(), x.shape: no path of values)
            elif k == "other" and i not in sums:
                stack.extend((u, i) for u in users[i])
            else:  # an activation, a weight layer, a residual sum, a product, the output
                escaped = True
        if found and not escaped:
            out.add(n.idx)
    return out


_AS_SHAPE = frozenset({"reshape_as", "view_as", "expand_as"})
"""Ops whose second tensor gives only a shape."""


_TABLES: dict[int, tuple[Any, Callable[[np.ndarray], np.ndarray]]] = {}
_SPAN, _STEP = 50.0, 1e-3


def _act_fn(act: Act) -> Callable[[np.ndarray], np.ndarray]:
    if act.module is None:
        return activation_fn(act.name, act.param)
    # a probed module or graph stretch: one torch call on a fine grid, then interpolation
    # (the quadratures of an operating point evaluate it ~10⁵ times)
    hit = _TABLES.get(id(act.module))
    if hit is not None and hit[0] is act.module:
        return hit[1]
    direct = activation_fn(act.module)
    grid = np.arange(-_SPAN, _SPAN + _STEP / 2, _STEP)
    table = np.asarray(direct(grid), dtype=np.float64)

    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.size and float(np.abs(x).max()) > _SPAN:
            return np.asarray(direct(x), dtype=np.float64)
        return np.interp(x, grid, table)

    if len(_TABLES) > 64:
        _TABLES.clear()
    _TABLES[id(act.module)] = (act.module, f)
    return f


def homogeneous(f: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether ``φ(c·x) = c·φ(x)`` for ``c > 0`` (checked at c = ½, 3 on [−4, 4]): a probed
    activation gets the scale-free rule of the ReLU family if it is one."""
    x = np.linspace(-4, 4, 81)
    y = np.asarray(f(x), dtype=np.float64)
    scale = max(float(np.abs(y).max()), 1e-12)
    return all(
        float(np.abs(np.asarray(f(c * x), dtype=np.float64) - c * y).max()) <= 1e-6 * c * scale
        for c in (0.5, 3.0)
    )


def conv_chain(m: nn.Module) -> tuple[int, int, int] | None:
    """``(channels, taps, dims)`` of an ungrouped convolution, for the simulation of its chain at
    its width (:func:`~initwise.math.operating.chain_drifts`): out channels, the kernel's size
    and its spatial dimensions (2 for a square 2-D kernel, simulated on a torus; else 1).
    Grouped and depthwise convolutions (a chain of them alternates with other layers) keep the
    mean-field point: ``None``."""
    out = getattr(m, "out_channels", None)
    kernel = getattr(m, "kernel_size", None)
    if getattr(m, "groups", 1) != 1 or not isinstance(out, int) or out < 1:
        return None
    if isinstance(kernel, int):
        kernel = (kernel,)
    if not isinstance(kernel, tuple) or not all(isinstance(k, int) and k > 0 for k in kernel):
        return None
    square = len(kernel) == 2 and kernel[0] == kernel[1]
    return out, math.prod(kernel), 2 if square else 1


def op_point(
    act: Act,
    depth: int,
    cache: dict[tuple[Act, int], OperatingPoint] | None = None,
    bias: bool = False,
    width: int | None = None,
    ends: bool = False,
    taps: int = 1,
    dims: int = 1,
) -> OperatingPoint:
    """The operating point of ``act`` for a chain of ``depth`` layers (named activations are
    cached process-wide; probed ones in ``cache``). ``bias``: the layer has a bias, so an
    edge-of-chaos point is allowed (:func:`operating_point` keeps kinked activations off it;
    a probed one's kink puts its curvature over budget). ``width``/``ends``: the chain's width,
    for the check of its forward drift at that width, and whether its last hidden layer may
    move for balance
    (:func:`~initwise.math.operating.at_width`); ``taps``: a chain of convolutions with kernels
    of that many taps and ``width`` channels (``dims`` 2: square 2-D kernels)."""
    key: Any = (act, depth, bias, width, ends, taps, dims)
    shared: Any = None
    if act.module is not None:  # equal stretches in every layer: key by the values
        probe = _act_fn(act)(np.linspace(-3.0, 3.0, 13))
        key = (
            act.describe(), depth, tuple(np.round(probe, 9).tolist()), bias, width, ends, taps,
            dims,
        )  # fmt: skip
        if width is not None:  # (simulated at its width: kept for the process, by its values
            # on a finer grid; the same stretch planned again costs nothing)
            fine = _act_fn(act)(np.linspace(-12.0, 12.0, 241))
            shared = (
                act.describe(), depth, np.round(fine, 9).tobytes(), bias, width, ends, taps,
                dims,
            )  # fmt: skip
            if shared in _POINTS:
                return _POINTS[shared]
    if cache is not None and key in cache:
        return cache[key]
    op = _op_point(act, depth, bias, width, ends, taps, dims)
    if cache is not None:
        cache[key] = op
    if shared is not None:
        if len(_POINTS) > 256:
            _POINTS.clear()
        _POINTS[shared] = op
    return op


_POINTS: dict[Any, OperatingPoint] = {}
"""Operating points of probed activations simulated at a width, for the process."""


def _op_point(
    act: Act,
    depth: int,
    bias: bool = False,
    width: int | None = None,
    ends: bool = False,
    taps: int = 1,
    dims: int = 1,
) -> OperatingPoint:
    spec = act.spec
    probed_homogeneous = act.module is not None and homogeneous(_act_fn(act))
    kw = {
        "depth": max(1, depth),
        "homogeneous": bool(spec and spec.homogeneous)
        or act.name == "linear"
        or probed_homogeneous,
        "saturating": bool(spec and spec.saturating),
        "width": width,
        "ends": ends,
        "taps": taps,
        "dims": dims,
    }
    if act.module is not None:  # (probed: an edge-of-chaos point where its curvature, taken
        # at operating.PROBED_STEP, is within budget — a kink's is not)
        return operating_point(_act_fn(act), bias=bias, **kw)
    return operating_point(act.name, act.param, name=act.name, bias=bias, **kw)


def propagate(
    model: nn.Module,
    info: ModelInfo,
    first: tuple[float, float] | None = None,
    *,
    n_res: int | None = None,
    pools: dict[int, Stats] | None = None,
    kept: dict[str, tuple[float, float]] | None = None,
    held: dict[str, Held] | None = None,
    inputs: dict[int, tuple[float, float]] | None = None,
) -> Moments:
    """Solve every weight layer reached by ``info.graph`` (see the module docstring).

    ``first`` is the input's ``(E[x²], E[x])`` (unit second moment, zero mean when None);
    ``pools`` the pooling nodes' moments measured on an example input
    (:func:`~initwise.torch.pooling.measure_pools`); ``kept`` the ``(E[p²], E[p])`` of raw
    parameters the plan leaves as they are (a Perceiver's latent array added to the signal),
    by name — otherwise a parameter node's moments are unknown; ``held`` the weight layers it
    does not solve (:class:`Held`), by module name, and the raw parameters overridden or
    frozen (``Held.param``), by parameter name; ``inputs`` the input moments of weight
    layer nodes measured on an example input where the walk had no rule for what computes them
    (:func:`~initwise.torch.pooling.measure_inputs`), by node.
    Tied embeddings (an Embedding sharing its weight with a Linear head) get the std that makes
    the head's output unit (solved by propagating twice: the head's input may or may not scale
    with the embedding). A layer whose output is scattered among other values — a
    vision–language model's image features put among the text embeddings — is solved for
    their E[x²], in one more pass when they come later in the graph (BLIP-2).
    """
    if info.graph is None:
        return Moments()
    # (raw parameters held — overridden or frozen — are values the graph reads, not layers)
    drawn = {k: (h.gain2, h.bias_mean) for k, h in (held or {}).items() if h.param}
    walk = _walk(model, info, pools or {}, drawn)
    heads = tied_heads(model, info.graph)
    walk.tied = {h: e for e, h in heads.items()}
    walk.held = {k: h for k, h in (held or {}).items() if not h.param}
    walk.inputs = dict(inputs or {})
    walk.feeds_held = _feeds_held(info, walk.users, walk.held)
    if kept:  # parameters the plan leaves as the model holds them: their values' moments
        for n in info.graph.nodes:
            if n.op == "param" and n.target in kept and n.idx not in walk.data:
                walk.data[n.idx] = kept[n.target]
    if drawn:  # raw parameters overridden or frozen: what they will be
        for n in info.graph.nodes:
            if n.op == "param" and n.target in drawn:
                walk.data[n.idx] = drawn[n.target]
    emb: dict[str, float] = dict.fromkeys(heads, 1.0)
    out = _pass(info, walk, first, n_res, emb)
    if heads:
        out = _untie(info, walk, first, n_res, emb, heads, out)

    def again(scatter: dict[str, float] | None = None) -> Moments:
        """One more pass, with what the last one solved (and the tied embeddings' stds)."""
        new = _pass(info, walk, first, n_res, emb, out.cache, scatter)
        new.embedding_std = out.embedding_std
        return new

    tables = _raw_lookups(info)
    if tables:  # raw tables read by index and used as a read-out: their rows' moments, again
        for idx, site in tables.items():
            solved = out.layers.get(site)
            if solved is not None and not solved.zero:
                m = info.graph.extra[site]
                fan = weight_fans(module_kind(m), m, tuple(m.weight.shape), site)[0].fan_in
                walk.data[idx] = (solved.gain**2 / fan, 0.0)
        out = again()
    if out.scattered:  # a layer scattered among the embeddings (known after a pass): again
        out = again(out.scattered)
    products = gated_products(info)
    if products >= GATED_PRODUCTS_LIMIT:
        out.drifts.append(
            f"{products} products of two unbounded layer outputs in a row (SwiGLU-style "
            "`silu(a)·b`) with no norm or residual addition between them: each is degree 2 in "
            "its input's scale, so every deviation from the planned moment doubles per product "
            "(4 such blocks at width 128: ×339 at init) — no initialization holds this chain: a "
            "norm before each block or a residual connection can"
        )
    for name, (k, act) in tied_chains(info, walk.modules).items():
        out.drifts.append(
            f"'{name}' is applied {k} times in a chain, each call to the last one's output"
            + (f" through {act}" if act else "")
            + " (one weight matrix, no norm or input between): the planned moments hold on "
            "average over draws, but one matrix's largest directions compound with every call, "
            "so one draw's output scale scatters (at width 128 with ReLU, 16 draws: ×1.7 "
            "geometric spread at 10 calls, 0.06–5.3× at 20) — lsuv on a batch of data brings each "
            "draw to unit scale (×1.03 over draws), or a norm in the loop holds it"
        )
    return out


INPUT_RANGE = (1e-20, 1e20)
"""A weight layer's input ``E[x²]`` beyond which the walk's moments are not used to solve it (taken
as 1 and said): a std solved for them (≤ 10⁻¹⁰ or ≥ 10¹⁰ per unit input) underflows or
overflows when drawn or used — before sweep 32's radial basis rule, a SchNet's filter layer was
solved for E[x²] 1.6·10³⁰¹ (std 4.8·10⁻¹⁵²) and applying the plan raised."""

UNSTABLE_KAPPA = 1.5
"""Forward elasticity ``κ = d ln E[φ²]/d ln q`` from which a chain's finite-width fluctuation is
weighed against its width: a positively homogeneous activation of degree ``p`` has ``κ = p`` at
every ``q`` (``relu(x)²``: 2), which no operating point lowers. Where ``κ^{2L} ≥ width/4``, the
mean over examples of the output's second moment grows well above the planned one (the variance
of each example's log-scale grows as ``κ^{2L}·2/width``): measured for ``relu(x)²`` at width
128, output rms ×1.11–1.16 / ×1.98–2.07 / ×13–25 at 2 / 3 / 4 layers (medians of 6 draws, three
runs), at width 512 ×1.18–1.26 / ×2.4–2.9 at 3 / 4.
The drift limit (:data:`~initwise.math.operating.DRIFT_LIMIT`) counts ``κ^{L/2}`` and said
nothing before 7 layers."""

TIED_CHAIN_SAID = 8
"""Calls of one weight layer in a chain (:func:`tied_chains`) from which the plan says that one
draw's output scale scatters: measured at width 128 with ReLU and 16 draws, the output rms's
geometric spread over draws is ×1.30 at 6 calls, ×1.68 at 10 (0.30–2.0) and ×3.6 at 20
(0.06–5.3), against ×1.18–1.24 for as many distinct layers."""


def tied_chains(info: ModelInfo, modules: dict[str, nn.Module]) -> dict[str, tuple[int, str]]:
    """``{layer: (calls, activation)}`` for weight layers applied again and again to their own
    output — ``for _ in range(T): x = relu(self.layer(x))``, a recurrence with no input — where
    the longest run of calls each reading the previous call's output through activations and
    shape ops only (no norm, no sum with other signals, no bounded activation: tanh, sigmoid)
    has :data:`TIED_CHAIN_SAID` calls or more.

    The moments the walk propagates are the mean-field ones, which hold over draws for one
    matrix applied T times as for T independent ones (the squared singular values of ``W^T``
    and of a product of T independent Gaussian matrices share the Fuss–Catalan law, Alexeev,
    Götze & Tikhomirov 2010); but one draw's largest directions compound with every call, so
    the scale of one draw's output scatters far more (:data:`TIED_CHAIN_SAID`). A norm in the
    loop, an input added at each step (an Elman RNN: ×1.07) or a contracting bounded
    activation (tanh: ×1.06 at 20 calls) keep it."""
    g = info.graph
    if g is None:
        return {}
    nodes = g.nodes
    calls: dict[str, list[int]] = {}
    for n in nodes:
        if n.op == "module" and info.kinds[n.idx] == "weight":
            calls.setdefault(n.target, []).append(n.idx)
    out: dict[str, tuple[int, str]] = {}
    for name, idxs in calls.items():
        m = modules.get(name)
        if len(idxs) < TIED_CHAIN_SAID or m is None or module_kind(m) not in _SHARED_KINDS:
            continue
        run, best, act = 1, 1, ""
        for a, b in itertools.pairwise(idxs):
            i, ok, seen = (nodes[b].inputs[0] if nodes[b].inputs else -1), False, ""
            while i >= 0:
                n = nodes[i]
                if i == a:
                    ok = True
                    break
                if info.kinds[i] == "act" and n.inputs:
                    spec = info.acts[i].spec
                    if spec is None or spec.bounds is not None:
                        break
                    seen = seen or info.acts[i].describe()
                elif not (n.op == "function" and n.target in _SHAPE_OPS and n.inputs):
                    break
                i = n.inputs[0]
            run = run + 1 if ok else 1
            if run > best:
                best, act = run, seen or act
        if best >= TIED_CHAIN_SAID:
            out[name] = (best, act)
    return out


GATED_PRODUCTS_LIMIT = 3
"""Consecutive unbounded products (:func:`gated_products`) from which the plan says it cannot
hold the chain (deviations ×2 each: ×8 by the third; four measured ×339)."""


def gated_products(info: ModelInfo) -> int:
    """The longest run of products ``u·v`` of two weight layers' outputs (through shape ops and
    activations only: :func:`_layer_output`), neither through a bounded activation (sigmoid,
    tanh, softmax — a gate in [0, 1] keeps the product degree 1 in scale), with no norm or
    residual addition between them. SwiGLU's ``silu(a)·b`` is one."""
    g = info.graph
    if g is None:
        return 0
    nodes = g.nodes
    resets = {r.add for r in info.adds}
    run = [0] * len(nodes)
    best = 0
    for n in nodes:
        k = info.kinds[n.idx]
        if k == "norm" or n.idx in resets:
            continue
        prev = max((run[i] for i in n.inputs), default=0)
        if n.op == "function" and n.target in _MUL and len(n.inputs) >= 2:
            factors = [i for i in n.inputs if _layer_output(nodes, info, i)]
            if len(factors) >= 2 and not any(_bounded(nodes, info, i) for i in factors):
                prev += 1
        run[n.idx] = prev
        best = max(best, prev)
    return best


def _layer_output(nodes: list[Any], info: ModelInfo, i: int) -> bool:
    """Whether node ``i`` is a weight layer's output, through shape ops (a ``chunk`` of it) and
    activations only (not a state-space scan's arithmetic on parameters)."""
    while True:
        n = nodes[i]
        if n.op == "module":
            return info.kinds[i] == "weight"
        if n.op == "function" and n.inputs and (info.kinds[i] == "act" or n.target in _SHAPE_OPS):
            i = n.inputs[0]
            continue
        return False


def _bounded(nodes: list[Any], info: ModelInfo, i: int) -> bool:
    """Whether node ``i`` (through shape ops) is the output of a bounded activation."""
    while True:
        n = nodes[i]
        if info.kinds[i] == "act":
            spec = info.acts[i].spec
            return bool(spec is not None and spec.bounds is not None)
        if n.op == "function" and n.target in ("softmax", "sigmoid", "tanh"):
            return True
        if n.op == "function" and n.target in _SHAPE_OPS and n.inputs:
            i = n.inputs[0]
            continue
        return False


@dataclass
class _Walk:
    """What a pass over the graph needs that depends on the model and its graph only: worked
    out once per :func:`propagate`, which runs up to four passes (tied embeddings, scattered
    image features)."""

    modules: dict[str, nn.Module]
    users: list[list[int]]
    depths: dict[str, int]
    runs: dict[int, int]
    normed: set[int]
    branch_end: dict[str, Any]
    lam: dict[int, tuple[float, float]]
    """Layer scales' ``(E[λ²], E[λ])`` (:func:`_layer_scales`)."""
    data: dict[int, tuple[float, float]]
    """Buffers' measured moments (:func:`_buffer_moments`)."""
    scale: dict[int, float]
    """Per branch-exit weight node: what the way to its sum multiplies E[y²] by."""
    dests: dict[str, int]
    """Per weight layer scattered into another tensor: its node (:func:`_scatter_dest`)."""
    pools: dict[int, Stats]
    """Pooling nodes' measured moments (:func:`~initwise.torch.pooling.measure_pools`)."""
    attn_mm: set[int] = field(default_factory=set)
    """Eager attention's ``softmax(…) @ v`` nodes
    (:func:`~initwise.torch.pooling.attention_matmuls`)."""
    carry: dict[str, int] = field(default_factory=dict)
    """Highway carry gates (:func:`carry_gates`): each gate layer with the number of them."""
    calls: dict[str, int] = field(default_factory=dict)
    """Weight layers called more than once (shared weights), with their number of calls."""
    coupling: dict[str, str] = field(default_factory=dict)
    """Layers that start at zero, each with the reason: the last layers of affine couplings'
    scale and shift nets (:func:`affine_couplings`) and low-rank adapters' up-projections
    (:func:`adapter_ups`)."""
    summed: dict[str, int] = field(default_factory=dict)
    """Weight layers whose outputs are summed with others' into one value that is no residual
    stream (:func:`summed_layers`), with the number of terms."""
    signals: set[int] = field(default_factory=set)
    """Products of two or more signals (:func:`~initwise.torch.pooling.signal_products`),
    measured on the example input where given."""
    pooled_out: dict[int, tuple[float, str, str]] = field(default_factory=dict)
    """Per weight node whose output reaches the model's output only through measured pools
    (:func:`pooled_to_output`): what they multiply ``E[y²]`` by, and which they are."""
    tied: dict[str, str] = field(default_factory=dict)
    """Per tied head: the embedding whose table it reads out with (:func:`tied_heads`)."""
    conditional: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Embeddings that are a class-conditional norm's affine (:func:`conditional_affines`)."""
    parts: dict[int, str] = field(default_factory=dict)
    """The parts of a conditional table read in parts, by ``getitem`` node: their roles
    (:func:`conditional_parts`)."""
    weighted: dict[int, int] = field(default_factory=dict)
    """Values times softmax weights (:func:`~initwise.torch.pooling.weighted_products`), with
    the values' input position: measured as a pool of the values where an example is given."""
    weighted_sums: dict[int, int] = field(default_factory=dict)
    """Values times softmax weights whose only reader is a sum (``(a[..., None]·h).sum(1)``:
    attention pooling), by the product's node, with the values' input position — walked
    without an example input as an average of the values (:func:`_weighted_sums`)."""
    thetas: dict[str, int] = field(default_factory=dict)
    """Spatial transformers' localization heads: :func:`affine_thetas`."""
    fixed_products: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    """Products of a signal with a fixed 2-D buffer: :func:`_fixed_products`."""
    held: dict[str, Held] = field(default_factory=dict)
    """Weight layers the plan does not solve (frozen, deliberate starts, overridden), by name:
    :class:`Held`."""
    inputs: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Weight layer nodes whose input moments were measured on the example input (the walk has
    no rule for what computes them): :func:`propagate`'s ``inputs``."""
    feeds_held: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Per weight layer read only by a held one with no activation after it (a tied head over
    a frozen table): that layer's ``fan_in·E[w²]`` and name (:func:`_feeds_held`)."""
    normalized_sums: dict[int, tuple[float, int | None]] = field(default_factory=dict)
    """Residual additions whose sum is a normalized one, by add node (:func:`_normalized_sums`):
    ``(c, None)`` for ``(x + f(x))·c``, ``(a, x's node)`` for ``a·x + f(x)``, with ``c², a² <
    1``."""
    unit_maps: dict[int, tuple[float, str]] = field(default_factory=dict)
    """Convolution nodes whose input is a 1×1 map by the graph alone (:func:`edges.unit_map`):
    the share of the fan's count that reaches their taps, and how the map was made."""


def _walk(
    model: nn.Module,
    info: ModelInfo,
    pools: dict[int, Stats],
    drawn: dict[str, tuple[float, float]] | None = None,
) -> _Walk:
    g = info.graph
    assert g is not None
    modules = graph_modules(model, g)
    users = g.users()
    branch_end = {e: r for r in info.adds for e in (r.exits or (r.last,))}
    lam = _layer_scales(model, modules, info, drawn or {})
    thetas = affine_thetas(info)
    scale: dict[int, float] = {}
    dests: dict[str, int] = {}
    called: dict[str, int] = {}
    for n in g.nodes:
        if n.op != "module" or info.kinds[n.idx] != "weight":
            continue
        called[n.target] = called.get(n.target, 0) + 1
        end = branch_end.get(n.target)
        if end is not None:
            scale[n.idx] = _factor_along(info, users, n.idx, end.branch, lam, modules)
        dest = _scatter_dest(g, users, n.idx)
        if dest is not None:
            dests[n.target] = dest
    return _Walk(
        modules,
        users,
        chain_depths(info),
        weight_runs(info),
        norm_follows(info),
        branch_end,
        lam,
        _buffer_moments(model, info),
        scale,
        dests,
        pools,
        attention_matmuls(model, info),
        dict.fromkeys(gates := carry_gates(model, info), len(gates)),
        {t: c for t, c in called.items() if c > 1},
        affine_couplings(info) | adapter_ups(info) | dict.fromkeys(thetas, THETA_START),
        summed_layers(info, users),
        signals := signal_products(model, info),
        pooled_to_output(info, users, pools, signals, modules),
        conditional=(cond := conditional_affines(info, users, modules)),
        parts=conditional_parts(info, users, cond),
        weighted=weighted_products(info) if pools else {},
        weighted_sums=_weighted_sums(g, users, info) if not pools else {},
        thetas=thetas,
        fixed_products=_fixed_products(model, info),
        unit_maps=_unit_maps(g, modules),
        normalized_sums=_normalized_sums(g, users, info),
    )


WEIGHTED_SUM = "a softmax-weighted sum of values"
"""How a reason starts that says a data-free attention pooling was walked as an average."""


def _weighted_sums(g: Any, users: list[list[int]], info: ModelInfo) -> dict[int, int]:
    """:attr:`_Walk.weighted_sums`: products of softmax weights and values
    (:func:`~initwise.torch.pooling.weighted_products`) whose only user is a ``sum``."""
    out: dict[int, int] = {}
    for i, j in weighted_products(info).items():
        after = users[i]
        nxt = g.nodes[after[0]] if len(after) == 1 else None
        if nxt is not None and nxt.op == "function" and nxt.target == "sum":
            out[i] = j
    return out


def _branch_sum(walk: _Walk, end: Any) -> tuple[float, int | None] | None:
    """The normalized sum (:func:`_normalized_sums`) that a branch-ending layer's branch is
    added by, if any."""
    return walk.normalized_sums.get(end.add) if end is not None else None


def _constant_factor(n: Any) -> float | None:
    """``c`` where graph node ``n`` is ``x·c``, ``c·x`` or ``x/c`` for a number ``c`` and one
    tensor ``x``; else None."""
    if n.op != "function" or len(n.inputs) != 1:
        return None
    c = _scalar(tuple(n.args))
    if c is None:
        return None
    if n.target in _MUL:
        return c
    return 1.0 / c if n.target in _DIV and c != 0 else None


def _normalized_sums(
    g: Any, users: list[list[int]], info: ModelInfo
) -> dict[int, tuple[float, int | None]]:
    """Residual additions the model itself normalizes by constants (:attr:`_Walk.normalized_sums`):
    the sum's only user scales it by ``c`` with ``c² < 1`` (``(x + f(x)) / √2``), or the skip
    operand is ``a·x`` with ``a² < 1`` (``√(1−w)·x + √w·f(x)``, DKS's and TAT's normalized
    sums). The branch is then solved to keep the stream's E[x²] (:func:`_normalized_target`)
    — the ``1/R`` share of an unnormalized sum made the stream shrink by ``c²(1 + 1/R)`` at
    every block: ×0.54 twelve times, a read-out at gain 40 and ``diagnose`` "vanishing"."""
    out: dict[int, tuple[float, int | None]] = {}
    for r in info.adds:
        after = users[r.add]
        c = _constant_factor(g.nodes[after[0]]) if len(after) == 1 else None
        if c is not None and 0 < c * c < 1 and _reads(g, r.branch, r.skip):
            out[r.add] = (c, None)
            continue
        skip = g.nodes[r.skip]
        a = _constant_factor(skip)
        if a is not None and 0 < a * a < 1 and _reads(g, r.branch, skip.inputs[0]):
            out[r.add] = (a, skip.inputs[0])
    return out


def _reads(g: Any, node: int, source: int) -> bool:
    """Whether graph node ``node`` is computed from ``source`` (an ancestor: the branch of a
    residual reads the stream its skip carries). A sum whose "skip" is another computation —
    DeepFM's ``0.5·((Σv)² − Σv²) + mlp(v)`` — is no normalized residual (taken for one, its
    MLP was solved for ¾ of that term's E[x²]: output E[y²] 232 where 52 came before)."""
    seen, todo = {node}, [node]
    while todo:
        i = todo.pop()
        if i == source:
            return True
        for j in g.nodes[i].inputs:
            if j >= source and j not in seen:  # (nodes are in order: an ancestor of `source`'s
                seen.add(j)  # is never `source`)
                todo.append(j)
    return False


def _normalized_target(
    norm: tuple[float, int | None], s_skip: float, mom: dict[int, tuple[float, float] | None]
) -> tuple[float, str] | None:
    """(target E[y²] before the branch's own factors, role) of a branch ending in a normalized
    sum (:func:`_normalized_sums`), solved so the sum keeps the stream's E[x²] ``s``:
    ``c²·(s + b) = s`` gives ``b = s·(1/c² − 1)``; ``a²·s + b = s`` gives ``b = s·(1 − a²)``."""
    c, src = norm
    if src is None:
        b = s_skip * (1 / (c * c) - 1)
        return b, (
            f"last layer of a residual branch whose sum the model scales by {c:.4g} "
            f"((x + f(x))·c, a normalized sum): output E[x²] = s_skip·(1/c² − 1) = {b:.3g}, "
            "which keeps the stream's E[x²]"
        )
    x = mom.get(src)
    if x is None or not x[0] > 0:
        return None
    b = x[0] * (1 - c * c)
    return b, (
        f"last layer of a residual branch added to {c:.4g}·x (a normalized sum): output E[x²] "
        f"= E[x²]·(1 − a²) = {b:.3g}, which keeps the stream's E[x²]"
    )


def _unit_maps(g: Any, modules: dict[str, nn.Module]) -> dict[int, tuple[float, str]]:
    """:attr:`_Walk.unit_maps`: each convolution module node whose input is a 1×1 map by the
    graph alone (:func:`edges.unit_map`) and whose kernel then loses taps."""
    from .edges import unit_factor, unit_map

    out: dict[int, tuple[float, str]] = {}
    for n in g.nodes:
        m = modules.get(n.target) if n.op == "module" else None
        if not isinstance(m, nn.modules.conv._ConvNd) or not n.inputs:
            continue
        nd = len(m.kernel_size)
        how = unit_map(g, n.inputs[0], nd)
        f = unit_factor(m) if how is not None else None
        if how is not None and f is not None and f < 1:
            out[n.idx] = (f, how)
    return out


def pooled_to_output(
    info: ModelInfo,
    users: list[list[int]],
    pools: dict[int, Stats],
    signals: set[int],
    modules: dict[str, nn.Module],
) -> dict[int, tuple[float, str, str]]:
    """``{weight node: (factor, measured, unmeasured)}`` for layers whose output reaches the
    model's output only through reshapes, stacks and pools (a graph convolution's last ``Â @
    h``, a network-in-network head's global average pool after its last convolution, an
    ensemble's ``torch.stack([...]).mean(0)``): the factor ``Π E[y²]/E[x²]`` of those measured
    on the example input, so that the layer is solved for a unit *model* output, ``1/factor``
    (:func:`~initwise.torch.pooling.carried` is linear in ``E[x²]``), and the pools on the way
    that were not measured (the plan says so: averaging a layer's mean-free output keeps
    between 1/N of its E[x²] and all of it)."""
    g = info.graph
    assert g is not None
    out: dict[int, tuple[float, str, str]] = {}
    for n in g.nodes:
        if n.op != "module" or info.kinds[n.idx] != "weight":
            continue
        f, at, which, unmeasured = 1.0, n.idx, [], []
        for _ in range(len(g.nodes)):
            if len(users[at]) != 1:
                break
            nxt = g.nodes[users[at][0]]
            if nxt.op == "output":
                if which or unmeasured:
                    out[n.idx] = (f, ", ".join(which), ", ".join(unmeasured))
                break
            measured = pools.get(nxt.idx) if nxt.idx not in signals else None
            kind = (
                "product with data"
                if nxt.idx in info.data_products
                else node_pool(nxt, modules) or ("sum" if summed_dims(nxt) is not None else None)
            )
            if measured is not None and measured[0] > 0 and _pools_from(info, nxt, at):
                f *= measured[2] / measured[0]
                which.append(f"'{nxt.target}' ×{measured[2] / measured[0]:.3g}")
            elif kind is not None and kind != "attention" and _pools_from(info, nxt, at):
                unmeasured.append(f"{kind} '{nxt.target}'")
            elif not (nxt.op == "function" and (nxt.target in _SHAPE_OPS or nxt.target in _CAT)):
                break
            at = nxt.idx
    return out


def _pooled_index(info: ModelInfo, n: Any) -> int | None:
    """The position among node ``n``'s inputs of the operand it pools: the layers' operand of a
    product with data (None: both are data), attention's values, else the first."""
    if n.idx in info.data_products:
        return info.data_products[n.idx]
    if index_sum(n):  # (the source it adds by index: its last input)
        return len(n.inputs) - 1
    return pooled_input(str(n.target)) if n.op == "function" else 0


def _pools_from(info: ModelInfo, n: Any, at: int) -> bool:
    """Whether node ``n`` pools its input ``at`` (the operand a pool, attention or a product
    with data scales), not another of its inputs."""
    j = _pooled_index(info, n)
    return j is not None and len(n.inputs) > j and n.inputs[j] == at


_SPLITS = frozenset({"chunk", "split", "unbind", "tensor_split"})


def summed_layers(info: ModelInfo, users: list[list[int]]) -> dict[str, int]:
    """``{weight layer: terms}`` for layer outputs added together into one value that is no
    residual stream — an RNN gate's ``W·x_t + U·h`` (each through its ``chunk``), a
    wide-and-deep sum ``wide(x) + deep(x)``: every term of the sum (a tree of additions) is a
    weight layer's output, through reshapes and splits. Each is solved for ``1/terms`` of the
    target, so the sum meets it (before: each for all of it — the sum at ×terms)."""
    g = info.graph
    assert g is not None
    sums = {r.add for r in info.adds}
    adds = {
        n.idx
        for n in g.nodes
        if n.op == "function" and n.target in _ADD and len(n.inputs) == 2 and not n.kwargs
    }

    out: dict[str, int] = {}
    for a in adds:
        if a in sums or any(u in adds for u in users[a]):
            continue  # (a residual sum; an inner addition of a larger tree)
        leaves, stack = [], [a]
        while stack:
            i = stack.pop()
            for j in g.nodes[i].inputs:
                if j in adds and j not in sums:
                    stack.append(j)
                else:
                    leaves.append(behind(g.nodes, j, _SHAPE_OPS | _SPLITS))
        names = [g.nodes[j].target for j in leaves if info.kinds[j] == "weight"]
        if len(names) == len(leaves) >= 2 and len(set(names)) == len(names):
            for t in names:
                out[t] = max(out.get(t, 1), len(names))
    return out


def _untie(
    info: ModelInfo,
    walk: _Walk,
    first: tuple[float, float] | None,
    n_res: int | None,
    emb: dict[str, float],
    heads: dict[str, str],
    out: Moments,
) -> Moments:
    """The std of each tied embedding that gives unit logits (two more passes, ``emb`` set).
    An untied embedding whose lookup is added to a tied one's (a learned position table,
    nanoGPT's ``wte(idx) + wpe(pos)``; BERT's segments) gets the same std, solved together:
    left at N(0, 1) beside a tied table at ~1/√d it held 99 % of the sum's E[x²] at width 128,
    the tokens ~1 %."""
    siblings = {e: _summed_embeddings(info, walk, e) for e in heads}
    probe = _pass(
        info,
        walk,
        first,
        n_res,
        {k: 0.5 for e in heads for k in (e, *siblings[e])},
        out.cache,
    )
    for e, head in heads.items():
        d = walk.modules[e].weight.shape[1]
        s1 = out.layers.get(head)
        s2 = probe.layers.get(head)
        if s1 is None or s2 is None:
            continue
        # the head's input moment scales as σ^k with the embedding's std σ
        k = math.log(s2.s / s1.s) / math.log(0.25) if s1.s > 0 and s2.s > 0 else 0.0
        k = min(max(round(k * 4) / 4, 0.0), 2.0)
        f = _scale_after(info, walk.users, head)  # (Cohere: logits × logit_scale after it)
        std = (f * d * s1.s) ** (-1.0 / (2.0 + k))
        call = getattr(walk.modules.get(head), "call", None)  # (a FunctionalLinear read-out)
        tie = f"the read-out {call} in forward" if call else f"'{head}'"
        why = (
            f"tied with {tie}: std {std:.4g} gives unit-variance logits (head input E[x²] "
            f"{s1.s:.3g}"
            + (f" ∝ std^{k:g}" if k else ", independent of the embedding's scale")
            + f", width {d}"
            + (f"; the head's output is then scaled by {math.sqrt(f):.4g}" if f != 1.0 else "")
            + ")"
        )
        emb[e] = std
        out.embedding_std[e] = (std, why)
        for sib in siblings[e]:
            emb[sib] = std
            out.embedding_std[sib] = (
                std,
                f"its lookup is added to the tied embedding '{e}': the same std {std:.4g}, so "
                "the sum carries both (at N(0, 1) this table would hold "
                f"{1 / (1 + std * std):.0%} of the sum's E[x²])",
            )
    final = _pass(info, walk, first, n_res, emb, out.cache)
    final.embedding_std = out.embedding_std
    return final


def _raw_lookups(info: ModelInfo) -> dict[int, str]:
    """``{param node: its read-out site}`` for a raw table that ``forward`` both reads by index
    (``E[idx]``, ``F.embedding(idx, E)``, ``E.index_select(0, idx)``) and uses as the read-out
    ``x @ E.T`` (a :class:`~initwise.torch.modules.FunctionalLinear` site, planned for unit
    logits): the looked-up rows carry that std (one more pass). Their moments were unknown, and
    the residual branches were solved for a larger stream than the 1/d its rows have (a
    3-block pre-norm LM of width 64: its stream grew ×18, now ×2.5)."""
    g = info.graph
    if g is None or not g.extra:
        return {}
    users = g.users()
    out: dict[int, str] = {}
    for n in g.nodes:
        if n.op != "param" or n.target not in g.extra or n.target in out.values():
            continue
        for u in users[n.idx]:
            t = g.nodes[u]
            lookup = (t.target in ("getitem", "index_select") and t.inputs[:1] == [n.idx]) or (
                t.target == "embedding" and len(t.inputs) >= 2 and t.inputs[1] == n.idx
            )
            if t.op == "function" and lookup:
                out[n.idx] = n.target
                break
    return out


def _summed_embeddings(info: ModelInfo, walk: _Walk, name: str) -> list[str]:
    """The untied embedding modules whose lookups are added, through reshapes, dropout and
    further additions, to the lookup of embedding ``name`` (a token table's position and
    segment tables)."""
    g = info.graph
    assert g is not None
    users = walk.users
    pas = frozenset({"dropout", "contiguous", "to", "float", "type_as"}) | _SHAPE_OPS

    starts = [n.idx for n in g.nodes if n.op == "module" and n.target == name]
    found: list[str] = []
    frontier, seen = list(starts), set(starts)
    while frontier:
        i = frontier.pop()
        for u in users[i]:
            n = g.nodes[u]
            if u in seen or n.op != "function":
                continue
            if n.target in pas:
                seen.add(u)
                frontier.append(u)
            elif n.target in _ADD and len(n.inputs) == 2 and not n.kwargs:
                j = n.inputs[1] if n.inputs[0] == i else n.inputs[0]
                m = g.nodes[behind(g.nodes, j, pas)]
                other = walk.modules.get(m.target) if m.op == "module" else None
                if other is None or m.target == name or module_kind(other) != "embedding":
                    continue  # (a residual addition: the stream goes on without the tables)
                if m.target not in found:
                    found.append(m.target)
                seen.add(u)
                frontier.append(u)
    return found


def _scale_after(info: ModelInfo, users: list[list[int]], head: str) -> float:
    """``c²`` for a head whose output reaches the model's output only through reshapes and
    multiplications or divisions by constants ``c`` (Cohere's ``logits * logit_scale``); 1
    otherwise (:func:`_factor_along`)."""
    g = info.graph
    assert g is not None
    at = next((n.idx for n in g.nodes if n.op == "module" and n.target == head), None)
    end = next((n.idx for n in g.nodes if n.op == "output"), None)
    if at is None or end is None:
        return 1.0
    return _factor_along(info, users, at, end)


def tied_heads(model: nn.Module, graph: Any = None) -> dict[str, str]:
    """``{embedding module: linear head module}`` for embeddings whose weight a Linear shares,
    or that ``forward`` uses as a read-out (``F.linear(x, emb.weight)``, ``x @ emb.weight.T``:
    a :class:`~initwise.torch.modules.FunctionalLinear` site of ``graph``)."""
    owner: dict[int, str] = {}
    heads: dict[str, str] = {}
    modules = graph_modules(model, graph)
    for name, m in modules.items():
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor):
            continue
        k = module_kind(m)
        if k == "embedding":
            owner.setdefault(id(w), name)
    for name, m in modules.items():
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and module_kind(m) in ("linear", "conv1d_hf"):
            e = owner.get(id(w))
            if e is not None:
                heads[e] = name
    return heads


def _pass(
    info: ModelInfo,
    walk: _Walk,
    first: tuple[float, float] | None,
    n_res: int | None,
    emb: dict[str, float],
    cache: dict[Any, OperatingPoint] | None = None,
    scatter: dict[str, float] | None = None,
) -> Moments:
    g = info.graph
    assert g is not None
    res = Moments(
        cache=cache if cache is not None else {},
        conditional=walk.conditional,
        thetas=walk.thetas,
    )
    modules, lam, branch_end = walk.modules, walk.lam, walk.branch_end
    weighted = walk.weighted
    R = n_res if n_res is not None else len(info.adds)
    mom: dict[int, tuple[float, float] | None] = {}
    cross = Cross(info, modules, res.layers, mom, _act_fn)
    first_input = True
    # how moments came through a pool on the way to the next weight layer: measured (a note for
    # its reason) or, for max pooling, assumed unchanged (an assumption if the layer is solved)
    via: dict[int, tuple[str, bool, str]] = {}
    for n in g.nodes:
        ins = [mom.get(i) for i in n.inputs]
        known = [x for x in ins if x is not None]
        k = info.kinds[n.idx]
        val: tuple[float, float] | None = None
        came = min((via[i] for i in n.inputs if i in via), key=lambda v: v[1], default=None)
        pool = node_pool(n, modules) if k != "weight" else None
        if pool is None and n.idx in walk.attn_mm:
            pool = "attention"
        if pool is None and n.idx in walk.pools and summed_dims(n) is not None:
            pool = "sum"  # (a sum over a set, measured; unmeasured it is said in _function)
        if pool is None and n.idx in walk.pools and zero_pad(n, modules):
            pool = "pad"  # (zero padding, measured; unmeasured it passes as a shape op)
        if pool is None and n.idx in walk.pools and n.idx in weighted:
            pool = "weights"  # (values times softmax weights, measured as a pool of the values)
        if n.idx in walk.signals and n.idx in walk.pools:  # a product of signals, measured:
            # what the example gives, with the draft's weights — not carried from the operands'
            # propagated moments, which a normalizer such as linear attention's 1/(q·Σk) has
            # no rule for (carried through it, one block's product came out at E[x²] 2·10¹²)
            measured = walk.pools[n.idx]
            if measured[2] > 0:
                what = f"the product of signals '{n.target}' (node {n.idx})"
                mom[n.idx] = _as_measured(n.idx, measured, via, what)
                continue
        if n.op == "function" and str(n.target) in DISTANCE_FUNCS and n.idx in walk.pools:
            measured = walk.pools[n.idx]  # (pairwise distances, measured on the example input)
            if measured[2] > 0:
                what = _DISTANCE_WHAT.get(str(n.target), "pairwise distances")
                what = f"{what} '{n.target}' (node {n.idx})"
                mom[n.idx] = _as_measured(n.idx, measured, via, what)
                continue
        j = walk.weighted_sums.get(n.idx)
        if j is not None and len(ins) > j and ins[j] is not None:  # attention pooling, data-free:
            # Σ_t w_t·h_t with Σ_t w_t = 1 is an average of the values — their moments, said (it
            # keeps between 1/N of E[x²], for independent values, and all of it, for equal
            # ones). The weights' moments have no rule (1/N is in the data), so the product and
            # the sum came out unknown and the read-out was solved for E[x²] 1: after an LSTM
            # (E[h²] 0.016) its output rms was 0.08
            via[n.idx] = (
                f"{WEIGHTED_SUM} ('{n.target}', node {n.idx}, then 'sum') taken to keep their "
                "E[x²]",
                False,
                " (a weighted average keeps between 1/N of E[x²], for independent values, and "
                "all of it, for equal ones); give example_input= to measure it",
            )
            mom[n.idx] = ins[j]
            continue
        fixed = walk.fixed_products.get(n.idx)
        if fixed is not None and n.idx not in walk.pools and ins[0] is not None:
            (s_in, mu), (sq, sums2, sums) = ins[0], fixed  # (unmeasured: from the buffer's own
            var = max(s_in - mu * mu, 0.0)  # values)
            mom[n.idx] = (var * sq + mu * mu * sums2, mu * sums)
            continue
        if pool is None and n.idx in info.data_products:
            if info.data_products[n.idx] is None:  # data times data (`A @ x` before the first
                # layer): no weight in it
                measured = walk.pools.get(n.idx)
                what = f"a product of data '{n.target}' (node {n.idx})"
                mom[n.idx] = (  # (unmeasured: unknown, said where an activation reads it)
                    _as_measured(n.idx, measured, via, what) if measured is not None else None
                )
                continue
            pool = "product"
        if pool is not None:
            measured = walk.pools.get(n.idx)
            j = weighted[n.idx] if pool == "weights" else _pooled_index(info, n) or 0
            base = ins[j] if len(ins) > j else None  # (attention pools its values)
            if measured is not None and base is None and pool == "sum":
                # attention as a weighted sum (its weights have no moments): what the example
                # input gave, with the draft's weights
                what = f"a weighted sum '{n.target}' (attention written as Σ a·v)"
                mom[n.idx] = _as_measured(n.idx, measured, via, what)
                continue
            mode = interpolation(n, modules) if pool == "avg" else None
            if measured is not None and base is not None:
                val = carried(measured, base[0])
                r = val[0] / base[0] if base[0] > 0 else float("nan")
                what = (
                    f"{mode} interpolation"
                    if mode
                    else {
                        "attention": "attention",
                        "sum": "a sum by index" if index_sum(n) else "a sum over a dimension",
                        "product": "the product with data",
                        "pad": "zero padding",
                        "weights": "the weighting by softmax weights",
                    }.get(pool, f"{pool} pooling")
                )
                how = f"{what} '{n.target}' ×{r:.3g} in E[x²], measured on the example input"
                via[n.idx] = (how, True, "")
            else:
                val = base
                if pool == "max":
                    res.max_pools.add(n.idx)
                    via[n.idx] = (
                        f"max pooling '{n.target}' assumed to leave E[x²] unchanged",
                        False,
                        " (how much max pooling grows it depends on the spatial correlation of "
                        "what it pools, ×1.4–5 per pool measured on VGG and AlexNet); give "
                        "example_input= to measure it",
                    )
                elif pool == "avg" and base is not None and base[1] ** 2 < AVG_SAID * base[0]:
                    what = f"{mode} interpolation" if mode else "average pooling"
                    via[n.idx] = (
                        f"{what} '{n.target}' of a mean-free input assumed to leave E[x²] "
                        "unchanged",
                        False,
                        " (averaging N values keeps between 1/N of E[x²], for independent "
                        "values, and all of it, for equal ones — only the mean always passes, "
                        f"here {base[1] ** 2 / base[0]:.2g} of it); give example_input= to "
                        "measure it",
                    )
                elif pool == "attention" and base is not None and base[1] ** 2 < AVG_SAID * base[0]:
                    via[n.idx] = (  # (said only where no residual branch ends at its reader)
                        f"attention '{n.target}' over mean-free values assumed to leave E[x²] "
                        "unchanged",
                        False,
                        " (at init its weights are near uniform: it averages the values over "
                        "the keys, which keeps between 1/N of E[x²], for independent values, "
                        "and all of it, for equal ones; a chain of them without norms "
                        "compounds it); give example_input= to measure it",
                    )
                elif pool == "product" and base is not None:
                    via[n.idx] = (
                        f"the product with data '{n.target}' (node {n.idx}) assumed to leave "
                        "E[x²] unchanged",
                        False,
                        " (a graph convolution's Â @ h averages over each node's neighbours — "
                        "about 1/degree of E[x²] for independent features, all of it for "
                        "equal ones — and an unnormalized A sums them: it is in the data); "
                        "give example_input= to measure it",
                    )
                elif len(n.inputs) > j and n.inputs[j] in via:  # (attention: from its values)
                    via[n.idx] = via[n.inputs[j]]
                if pool == "avg" and base is not None and base[0] > 0:
                    # the least of E[x²] it may keep (independent values: E[x]² and 1/N of the
                    # rest), for the chains the planner says (edges.unmeasured_chain); a
                    # mean-free input's pool is said on its own above
                    share = min(base[1] ** 2 / base[0], 1.0)
                    if share >= AVG_SAID:
                        count = avg_count(n, modules)
                        floor = share + (1.0 - share) / count if count else share
                        label = f"'{n.target}'" + (f" (node {n.idx})" if n.op != "module" else "")
                        res.pool_floors[n.idx] = (floor, label)
            mom[n.idx] = val
            continue
        if n.op == "function" and (n.target in _NO_DATA or n.target == "getitem"):
            # a comparison's boolean carries no moments; `x[mask]` carries x's, not the mask's
            # (Idefics 3 sums pixels to find padded images, then indexes the images with it)
            first = n.inputs[0] if n.inputs else None
            came = via.get(first) if n.target == "getitem" and first is not None else None
        if came is not None and k not in ("weight", "norm"):
            via[n.idx] = came
        if n.op == "input":
            val = (first or (1.0, 0.0)) if first_input else (1.0, 0.0)
            first_input = False
        elif n.op == "param":  # a layer scale λ (its E[λ²], E[λ]), a buffer's data; else unknown
            val = lam.get(n.idx) or walk.data.get(n.idx)
        elif (noise := dropout_noise(n, modules)) is not None:  # dropout in training
            val = _dropped(n, noise, known[0] if known else None, came, via, modules)
        elif n.op == "module":
            m = modules[n.target]
            again = res.layers.get(n.target) if k == "weight" else None
            if again is not None and module_kind(m) in _SHARED_KINDS:
                # a layer called again (shared weights: a block applied N times, an ALBERT
                # stack): its weights were solved at its first call; this call's output is
                # what they give for this call's input
                val = _again(again, known[0] if known else None)
            elif k == "weight" and n.target in walk.conditional:  # a conditional norm's gain
                # (ones: E[g²] = E[g] = 1) or shift (zeros), as planned; a table read in parts:
                # each part's, at its getitem
                val = affine_moments(walk.conditional[n.target][0])
            elif k == "weight":
                if n.idx in walk.inputs:  # (no rule for what computes its input: measured)
                    ins = [walk.inputs[n.idx], *ins[1:]]
                    came = (MEASURED_INPUT, True, "")
                val = _weight(
                    m,
                    n.target,
                    ins,
                    info,
                    walk.depths,
                    branch_end,
                    R,
                    mom,
                    res,
                    emb,
                    n.idx in walk.normed,
                    walk.runs.get(n.idx, 0),
                    walk.scale.get(n.idx, 1.0),
                    (scatter or {}).get(n.target),
                    walk.pools.get(n.idx),
                    walk.carry.get(n.target, 0),
                    walk.calls.get(n.target, 1),
                    walk.coupling.get(n.target, ""),
                    walk.summed.get(n.target, 1),
                    walk.pooled_out.get(n.idx),
                    walk.held.get(n.target),
                    walk.feeds_held.get(n.target),
                    walk.unit_maps.get(n.idx),
                    _branch_sum(walk, branch_end.get(n.target)),
                )
                solved = res.layers.get(n.target)
                tied = walk.tied.get(n.target)
                if tied in emb and known and n.target not in walk.held:
                    # a tied head's output is what the table's std gives, not the unit its
                    # solve aims at: Σ over the width of E[x²]·std² (Cohere's logits are then
                    # scaled by logit_scale — the std was solved for the scaled logits)
                    d = walk.modules[tied].weight.shape[1]
                    val = (known[0][0] * d * emb[tied] ** 2, 0.0)
                if came is not None and came[0].startswith("attention '") and not came[1]:
                    if n.target in branch_end:  # (a transformer's o_proj: the branch's share
                        came = None  # of a stream that norms bound, not a compounding chain)
                if came is not None and solved is not None and n.idx not in walk.normed:
                    res.layers[n.target] = replace(solved, via=came[0])
                    if not came[1]:
                        res.assumed.append(f"{n.target}: its input passed {came[0]}{came[2]}")
            elif k == "norm":
                rms = type(m).__name__.endswith("RMSNorm") or probed_norm(m) is False
                val = _normed(known, rms)
                h = walk.held.get(n.target)
                if h is not None:  # its affine as it will be, γ·x̂ + β (γ kept at zero: β)
                    val = (
                        h.gain2 * val[0] + h.bias_var + h.bias_mean * h.bias_mean,
                        h.bias_mean + math.sqrt(h.gain2) * val[1],
                    )
            elif k == "act":
                val = _activate(info.acts[n.idx], known[0] if known else _unknown(n, via))
            elif n.idx in lam and known:  # a layer-scale module: x · λ
                (s, mu), (l2, l1) = known[0], lam[n.idx]
                val = (s * l2, mu * l1)
            elif is_softmax(n, modules):  # attention weights (timm's Swin), a softmin's: no
                pass  # moments (pooling.attention_matmuls finds what they weight)
            elif isinstance(m, nn.GLU):
                val = _glu(known[0]) if known else None
            elif isinstance(m, (nn.LocalResponseNorm, nn.CrossMapLRN2d)):
                val = _lrn(known[0], m.alpha, m.beta, m.k) if known else None
            elif len(known) == 1 and (noisy := noise_moments(m, known[0])) is not None:
                val = noisy  # (a dropout or noise written by hand, in training: measured)
                r = noisy[0] / known[0][0] if known[0][0] > 0 else float("nan")
                how = (
                    f"{type(m).__name__} '{n.target}' draws noise in training: E[x²] ×{r:.3g}, "
                    "measured on a seeded Gaussian probe"
                )
                _noted(n.idx, how, came, via)
            else:
                if len(known) == 1 and zero_pad(n, modules):  # (unmeasured: said, as F.pad)
                    _pad_said(n, via, modules)
                    val = known[0]
                elif len(known) == 1 and len(n.inputs) == 1:  # (not a rotary table's call)
                    width = feature_width(g.nodes, modules, n.inputs[0])
                    val, seen = opaque_moments(m, known[0], width)
                    if val is not None:  # (a table it computes: measured)
                        _noted(n.idx, f"{type(m).__name__} '{n.target}': {seen}", came, via)
                    elif seen:
                        res.assumed.append(
                            f"{type(m).__name__} '{n.target}', a parameter-free module the "
                            f"trace does not go into, {seen}: taken to pass its input's "
                            "moments — write its ops in forward, where the plan reads them, "
                            "or rescale by measurement with lsuv(model, example)"
                        )
                    val = val or known[0]
                else:
                    val = known[0] if known else None
        elif (
            n.op == "function"
            and str(n.target) in _PICKS
            and n.inputs
            and n.inputs[0] in walk.signals
            and n.inputs[0] in walk.pools
        ):
            # entries picked from a measured product of signals: their moments need not be the
            # whole's (DLRM's pairwise dots `bmm(T, Tᵀ)[:, i, j]` below the diagonal: E[x²] ≈ d,
            # the measured matrix 56 with its diagonal |T_i|²) — unknown, so that the layer
            # that reads them is measured itself
            val = None
        elif n.op == "function" and n.idx in walk.parts:  # a conditional table's part
            val = affine_moments(walk.parts[n.idx])
        elif n.op == "function" and (tied := _tied_product(n, info, walk, res, mom)) is not None:
            val = tied  # (a product with a weight its layer also uses: a tied decoder)
        elif n.op == "function":
            val = _function(n, ins, known, k, info, mom, via, cross, modules)
        elif n.op == "output" and len(n.inputs) == 1:
            res.output = ins[0]
            if ins[0] is None:
                res.output_unknown = _unknown_output(g, mom, n.inputs[0])
            if came is not None and not came[1]:  # (an unmeasured pool right before the output)
                res.assumed.append(f"the model's output: it passed {came[0]}{came[2]}")
        mom[n.idx] = val
    for name, d in walk.dests.items():
        m = mom.get(d)
        if m is not None and m[0] > 0 and math.isfinite(m[0]):
            res.scattered[name] = m[0]
    return res


MEASURED_INPUT = (
    "its input's E[x²] measured on the example input, where the walk has no rule for what "
    "computes it"
)
"""How a layer's reason says that its input was measured (:func:`propagate`'s ``inputs``)."""


UNKNOWN_ACT_INPUT = "whose own input's moments are unknown"
"""How a layer's reason says that the activation before it read an input the walk could not
follow (:func:`_unknown`; :func:`unknown_inputs` finds those layers by it)."""


UNSIZED_PARTS = "parts whose sizes the graph does not have"
"""How a layer's reason says that a concatenation before it joined a learned part (a class
token) to the data's, of unlike second moments, along a dimension whose sizes are unknown (the
sequence a class token joins): averaged as equal there, measured with an example input
(:func:`unknown_inputs`)."""

WRITTEN = "the share it writes taken as small"
"""How a layer's reason says that its input passed a write by index (``ctx[idx] = v``) walked as
the tensor written into; with an example input the layer's input is measured instead
(:func:`unknown_inputs`: Informer's decoder writes its attention output over all of a cumulative
sum)."""

UNSIZED_SPREAD = 2.0
"""Parts of a concatenation whose ``E[x²]`` differ by more than this factor, sizes unknown: the
equal average is said (and measured with an example input)."""


def unknown_inputs(res: Moments) -> list[str]:
    """The weight layers ``res`` solved for an assumed input: its moments unknown (an op the
    walk has no rule for before it, or after the activation before it), or a concatenation of
    a learned part and the data's, of unknown sizes and unlike moments, averaged as equal."""
    return [
        name
        for name, v in res.layers.items()
        if v.assumed_input
        or UNKNOWN_ACT_INPUT in v.via
        or UNSIZED_PARTS in v.via
        or WRITTEN in v.via
    ]


def _tied_product(
    n: Any,
    info: ModelInfo,
    walk: _Walk,
    res: Moments,
    mom: dict[int, tuple[float, float] | None],
) -> tuple[float, float] | None:
    """The output moments of a product with the weight of a Linear the walk solved — a tied
    autoencoder's decoder, ``F.linear(z, enc.weight.t(), b)`` or ``z @ enc.weight`` — where the
    weight is planned at its layer and the product is no layer of its own:
    ``E[y²] = n·E[w²]·E[z²]`` (``n`` the width the product sums over, ``E[w²]`` what the layer's
    solve gives its weights), its bias (a zero start) adding nothing. None for any other node.
    Before, no rule: the decoder's output had no moments, and its scale (×0.08 in ``E[x²]``
    for a 256 → 64 sigmoid autoencoder) went unsaid."""
    t = str(n.target)
    if t not in ("linear", "matmul", "mm") or len(n.inputs) < 2 or info.graph is None:
        return None
    if t != "linear" and len(n.inputs) != 2:
        return None
    users, modules = walk.users, walk.modules
    x_at, w_at = n.inputs[0], n.inputs[1]
    read = weight_read(info.graph, users, w_at)
    if read is None and t != "linear":  # (W @ z: the weight first)
        x_at, w_at = w_at, x_at
        read = weight_read(info.graph, users, w_at)
    if read is None:
        return None
    owner, flipped = read
    m, solved, x = modules.get(owner), res.layers.get(owner), mom.get(x_at)
    if m is None or solved is None or x is None or module_kind(m) != "linear":
        return None
    out_f, in_f = m.weight.shape[0], m.weight.shape[1]
    # linear(z, V) sums over V's columns; z @ V over its rows (V = W, or Wᵀ where flipped)
    summed = (out_f if flipped else in_f) if t == "linear" else (in_f if flipped else out_f)
    w2 = (solved.q - solved.bias_var) / (solved.effective * in_f)
    y2 = summed * w2 * x[0]
    how = f"`{t}` (node {n.idx})" + (", transposed" if flipped else "")
    res.layers[owner] = replace(
        solved,
        also=f"its weight also used in {how}: E[y²] {y2:.3g} there (one std for both uses; this "
        "layer's is solved, that product's output is not)",
    )
    return (y2, 0.0)


def noise_moments(m: nn.Module, x: tuple[float, float]) -> tuple[float, float] | None:
    """``(E[y²], E[y])`` of a parameter-free module of the model's own (not torch's), in training
    mode, whose output is random — a dropout or a noise written by hand (AWD-LSTM's
    ``LockedDropout``: ``x·mask/(1 − p)``, ×``1/(1 − p)`` in ``E[x²]``; a ``GaussianNoise``
    layer's ``x + σ·ε``, ``+σ²``) — for an input with moments ``x``: measured on a seeded
    Gaussian probe of those moments (torch's random state put back). None where the module is
    deterministic (two seeds give the same output), in eval mode, not of this kind, or fails on
    the probe. Before, such a module was the identity to the walk: ten ``x + 0.5·ε`` layers
    between ReLU layers gave output rms 2.2, unsaid."""
    if not m.training or m._parameters or m._modules or type(m).__module__.startswith("torch."):
        return None
    s, mu = x
    if not (s > 0 and math.isfinite(s)):
        return None
    sd = math.sqrt(max(s - mu * mu, 0.0))
    probe = torch.randn(NOISE_PROBE, generator=torch.Generator().manual_seed(0)) * sd + mu
    copied = probe_copy(m)  # (a module that keeps what it saw, or counts its calls, untouched)
    pair = seeded_pair(copied, probe) if copied is not None else None
    if pair is None:  # (a module that wants other shapes or inputs: left as it was)
        return None
    a, b = pair
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return None
    if not a.is_floating_point() or torch.equal(a, b):
        return None
    y = torch.cat([a.flatten(), b.flatten()]).double()
    out = (float(y.pow(2).mean()), float(y.mean()))
    return out if math.isfinite(out[0]) else None


def opaque_moments(
    m: nn.Module, x: tuple[float, float], width: int | None
) -> tuple[tuple[float, float] | None, str]:
    """What a parameter-free module of the model's own (not torch's) that the trace does not go
    into does to the moments, which the walk passed through it unchanged — probed on a copy
    (:func:`~initwise.torch.modules.probe_copy`), in the module's mode, on seeded Gaussian
    probes of the incoming moments ``x`` shaped ``(64, w)``, ``(16, 6, w)``, ``(8, w, 6, 6)`` or
    ``(16, w, 12)`` (``w`` the width of the layer before it, else 32), the first that runs:

    * ``(None, "")``: passing them is right — the output's values are the input's (a reshape, a
      permutation, a selection), or its ``E[y²]`` and ``E[y]`` are the input's within 2 % and
      the probe's sampling spread; or nothing could be checked (a module that cannot be copied,
      or runs on none of the probes — it needs a particular shape, as LeViT's subsample: the
      example input's output check is what sees it);
    * ``(moments, how)``: the output does not depend on the input's values (a second probe
      gives the same): a table the module computes (a sinusoidal position table,
      ``zeros_like``) — its moments, measured;
    * ``(None, how)``: it changes them (a cumulative sum, a pool written as a module): the
      factor on ``E[x²]`` and the probe's shape, for an assumption.

    Before, such a module was the identity to the walk without a word: a ``cumsum`` module in a
    Sequential left the next layer at ×16 in ``E[x²]``."""
    if m._parameters or m._modules or type(m).__module__.startswith("torch."):
        return None, ""
    s, mu = x
    if not (s > 0 and math.isfinite(s)):
        return None, ""
    copied = probe_copy(m)
    if copied is None:
        return None, ""
    w = width or 32
    sd = math.sqrt(max(s - mu * mu, 0.0))
    g = torch.Generator().manual_seed(0)
    for shape in ((64, w), (16, 6, w), (8, w, 6, 6), (16, w, 12)):
        probe = torch.randn(shape, generator=g) * sd + mu
        try:
            with torch.no_grad(), seeded_rng(0):
                y = copied(probe.clone())
            if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.numel() == 0:
                continue
            with torch.no_grad(), seeded_rng(0):
                other = copied(torch.randn(shape, generator=g) * sd + mu)
        except Exception:
            continue
        y = y.detach()
        if y.dtype == probe.dtype and bool(torch.isin(y, probe).all()):
            return None, ""  # (its values are the input's: a reshape, a permutation, a selection)
        y, p = y.double(), probe.double()
        ys, ps = float(y.pow(2).mean()), float(p.pow(2).mean())
        ym, pm = float(y.mean()), float(p.mean())
        if not math.isfinite(ys):
            return None, f"gave non-finite values on a probe of shape {shape}"
        if isinstance(other, torch.Tensor) and torch.equal(other.detach().double(), y):
            return (ys, ym), (
                f"its output does not depend on its input's values (a table it computes): "
                f"E[y²] {ys:.3g}, measured"
            )
        tol = max(0.02, 3.0 * math.sqrt(2.0 / y.numel()))  # (and the probe's own spread)
        if abs(ys / ps - 1.0) <= tol and abs(ym - pm) <= tol * math.sqrt(ps):
            return None, ""
        return None, f"E[x²] ×{ys / ps:.3g} on a seeded Gaussian probe of shape {shape}"
    return None, ""


def _dropped(
    n: Any,
    noise: tuple[float, float],
    x: tuple[float, float] | None,
    came: tuple[str, bool, str] | None,
    via: dict[int, tuple[str, bool, str]],
    modules: dict[str, nn.Module],
) -> tuple[float, float] | None:
    """The moments after dropout (or drop path) with drop probability ``p`` in training:
    ``E[(εx)²] = E[ε²]·E[x²]`` (``1/(1 − p)`` for inverted dropout), ``E[εx] = E[x]``
    (:func:`~.graph.dropout_noise`). The layer it reaches says so in its reason, unless an
    assumption on the way is what it has to say."""
    if x is None:
        return None
    p, f = noise
    if came is None or came[1]:
        if n.op == "module":
            label = f"{type(modules[n.target]).__name__} '{n.target}'"
        else:
            label = f"{n.target} (node {n.idx})"
        _noted(n.idx, f"{label} p {p:g} in training: E[x²] ×{f:.3g}", came, via)
    return (x[0] * f, x[1])


def _noted(
    idx: int, how: str, came: tuple[str, bool, str] | None, via: dict[int, tuple[str, bool, str]]
) -> None:
    """Record at node ``idx`` what training's noise, or a module the walk measured, did
    (``how``, measured or exact), after how its input came, for the reason of the layer it
    reaches."""
    via[idx] = (how if came is None else f"{came[0]}; {how}", True, "")


def _normed(known: list[tuple[float, float]], rms: bool) -> tuple[float, float]:
    """A norm's output moments at init (γ = 1, β = 0): unit second moment, zero mean — an RMS
    norm divides without centering, so it keeps the mean's share ``m/√s``."""
    s, mu = known[0] if known else (1.0, 0.0)
    return (1.0, mu / math.sqrt(s) if rms and s > 0 else 0.0)


def _embed_scale(m: nn.Module) -> float:
    """The constant an embedding multiplies its rows by (Gemma's ``…ScaledWordEmbedding``:
    ``embed_scale = √hidden``), or 1."""
    c = getattr(m, "embed_scale", None)
    if isinstance(c, torch.Tensor) and c.numel() == 1 and not c.is_meta:
        c = float(c)
    if isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c > 0:
        return float(c)
    return 1.0


def _scatter_dest(g: Any, users: list[list[int]], start: int) -> int | None:
    """The tensor node ``start``'s output is scattered into — ``dest.masked_scatter(mask,
    out)``, reached through dtype casts, reshapes and a split-and-rejoin (LLaVA's per-image
    list, ``torch.cat(list(features))``); the model also returning it is no other use — or
    None."""
    at = start
    for _ in range(len(g.nodes)):
        nxt = [u for u in users[at] if g.nodes[u].op != "output"]
        if len(nxt) != 1:
            return None
        n = g.nodes[nxt[0]]
        if n.op != "function":
            return None
        if n.target in ("masked_scatter", "masked_scatter_"):
            return n.inputs[0] if n.inputs and n.inputs[0] != at else None
        rejoin = n.target in ("unbind", "cat", "stack") and set(n.inputs) == {at}
        if n.target not in _SHAPE_OPS and not rejoin:
            return None
        at = n.idx
    return None


def _weight(
    m: nn.Module,
    name: str,
    ins: list[tuple[float, float] | None],
    info: ModelInfo,
    depths: dict[str, int],
    branch_end: dict[str, Any],
    R: int,
    mom: dict[int, tuple[float, float] | None],
    res: Moments,
    emb: dict[str, float],
    normed: bool = False,
    run: int = 0,
    scale_after: float = 1.0,
    scatter: float | None = None,
    measured: Stats | None = None,
    carry: int = 0,
    calls: int = 1,
    coupling: str = "",
    terms: int = 1,
    pooled_out: tuple[float, str, str] | None = None,
    held: Held | None = None,
    feeds: tuple[float, str] | None = None,
    unit: tuple[float, str] | None = None,
    normalized: tuple[float, int | None] | None = None,
) -> tuple[float, float] | None:
    kind = module_kind(m)
    if held is not None and kind == "embedding":  # (its rows are what it outputs)
        return (held.gain2, held.bias_mean)
    if kind == "embedding":
        std = emb.get(name, 1.0)
        cap = embedding_norm_cap(m)  # (rows above max_norm are renormalized at lookup)
        std = (std if cap is None else min(std, cap)) * _embed_scale(m)
        if isinstance(m, nn.EmbeddingBag):  # the bag's size is in the input, not the module
            if measured is not None:  # measured on the example input's bags
                return carried(measured, std * std)
            res.assumed.append(
                f"{name}: EmbeddingBag(mode='{m.mode}') output E[x²] taken as one row's — a bag "
                "of B distinct rows has 1/B of it (mean), B× (sum) or more (max); give "
                "example_input= to measure it"
            )
        return (std * std, 0.0)
    if kind == "rnn":
        x = next((v for v in ins if v is not None), None)
        if held is None:
            return rnn_moments(m, x or (1.0, 0.0))
        return rnn_moments(m, x or (1.0, 0.0), held.keep, held.draws)
    if kind == "unknown":
        roles = probed_tokenizer(m)  # x[..., None]·W + b: the planner draws W, b for unit tokens
        if roles is None:
            return None
        x = next((v for v in ins if v is not None), None)
        w2 = 0.5 if len(roles) == 2 else 1.0
        return ((x[0] if x is not None else 1.0) * w2 + (1.0 - w2), 0.0)
    if kind == "grn":  # the identity at init (γ = β = 0)
        return next((v for v in ins if v is not None), None)
    if kind == "experts" and expert_layer(m) is None:
        return _experts(m, name, ins[0] if ins else None, branch_end, R, mom, res, info)
    # (a module holding one expert stack: one linear map per expert, solved as a Linear is)
    x = next((v for v in ins if v is not None), None)
    out_of_range = x is not None and x[0] > 0 and not INPUT_RANGE[0] < x[0] < INPUT_RANGE[1]
    if out_of_range:
        res.assumed.append(
            f"{name}: its input's E[x²] came out at {x[0]:.3g} in the moments walk, beyond any "
            "scale a layer can be solved for in floating point (a rule that does not fit what "
            "feeds it): taken as 1 — give example_input= to measure it, or an override"
        )
        x = None
    assumed = x is None
    s, mu = x if x is not None else (1.0, 0.0)
    if kind == "bilinear":  # E[(x1_i·x2_j)²] = E[x1²]·E[x2²] for independent inputs
        both = ins[:2] if len(ins) >= 2 else []
        assumed = len(both) < 2 or any(v is None for v in both)
        s, mu = (both[0][0] * both[1][0], 0.0) if not assumed else (1.0, 0.0)  # type: ignore[index]
    if coupling and kind in ("linear", "conv", "conv1d_hf"):  # an affine coupling's identity
        res.layers[name] = Solved(s, mu, 0.0, False, coupling, None, assumed, zero=True)
        return (0.0, 0.0)
    mixed = ""
    node = name  # (an MHA's out_proj ends the branch its module node ends)
    if kind == "mha":  # q/k/v solved to unit output; out_proj sees the average of the values
        # (its inputs: query, key, value in place — the graph lists them so — then any masks)
        km = ins[1] if len(ins) > 1 and ins[1] is not None else (s, mu)
        vm = ins[2] if len(ins) > 2 and ins[2] is not None else km
        blocks = (km[0], vm[0]) if max(_off(km[0], s), _off(vm[0], s)) > 0.01 else None
        vals = held.values if held is not None else None
        if vals is None:
            v2, v1 = 1.0, 0.0
            role = "q/k/v at unit second moment" + (
                f" (key E[x²] {km[0]:.3g}, value E[x²] {vm[0]:.3g}: their blocks solved for them)"
                if blocks is not None
                else ""
            )
        else:  # the value projection overridden or kept: the values it gives (q/k solved)
            v2, v1 = vals[0] * vm[0] + vals[2] + vals[1] ** 2, vals[1]
            role = (
                f"q/k at unit second moment; its values drawn as overridden or kept: E[v²] = "
                f"fan_in·E[w²] {vals[0]:.4g} × E[x²] {vm[0]:.3g} + the bias's "
                f"{vals[2] + vals[1] ** 2:.3g} = {v2:.3g}"
            )
        # (q 1: the projections are solved for unit output either way — the values' E[v²]
        # goes on to out_proj, not into their own gain, which a bias-only override had ×√2)
        res.layers[name] = Solved(s, mu, 1.0, False, role, None, assumed, blocks=blocks)
        name, s, mu, assumed = f"{name}.out_proj", v2, v1, False
        if measured is not None:  # (measured on the example input: pooling.measure_pools)
            s, mu = carried(measured, v2)
            mixed = (
                f" (attention ×{s / v2:.3g} of the values' E[x²], measured on the example input)"
            )
        elif node not in branch_end and _reaches_output(info, node):  # said as for SDPA (a
            # branch end's share is the stream's; an unused head's, PaliGemma's SigLIP pool, is
            # nobody's)
            mixed = f" (attention '{node}' over mean-free values assumed to leave E[x²] unchanged)"
            res.assumed.append(
                f"{name}: its input passed attention '{node}' over mean-free values assumed to "
                "leave E[x²] unchanged (at init its weights are near uniform: it averages the "
                "values over the keys, which keeps between 1/N of E[x²], for independent "
                "values, and all of it, for equal ones; a chain of them without norms compounds "
                "it); give example_input= to measure it"
            )
    if measured is None and unit is not None and kind in ("conv", "conv_transpose"):
        # a 1×1 map by the graph alone (a latent made into a map): each output reads one tap
        # (the fan's count had DCGAN's first 4×4 layer at 16× E[x²], output rms ×0.22, unsaid)
        f, how = unit
        s, mu = s * f, mu * math.sqrt(f)
        mixed = (
            f" (×{f:.3g} of its E[x²] reaches the kernel's taps: its input is a 1×1 map, "
            f"{how}, so each output reads one tap)"
        )
    if measured is not None and kind in ("conv", "conv_transpose") and measured[0] > 0:
        # zero padding: the share of E[x²] that reaches the kernel's taps at the map's edges,
        # measured on the example input (edges.edge_factor); the layer is solved for it
        f = measured[2] / measured[0]
        s, mu = s * f, mu * math.sqrt(f)
        border = "weaker (zeros padded in front of it)" if f > 1 else "stronger"
        why = (
            "zero padding at the map's edges"
            if has_edges(m)
            else "its outputs read the input map's border less often than its interior, and "
            f"the border is {border}"
        )
        mixed = (
            f" (×{f:.3g} of its E[x²] reaches the kernel's taps: {why}, measured on the "
            "example input)"
        )
    if held is not None and not held.solved and (kind in HELD_KINDS or kind == "mha"):  # (an
        # MHA: its out_proj)
        out = held.gain2 * s + held.bias_var
        role = (
            f"{held.how}: output E[y²] = fan_in·E[w²] {held.gain2:.4g} × E[x²] {s:.3g}"
            + (
                f" + the bias's {held.bias_var + held.bias_mean**2:.3g}"
                if held.bias_var or held.bias_mean
                else ""
            )
            + f" = {out + held.bias_mean**2:.3g}"
        )
        res.layers[name] = Solved(
            s,
            mu,
            out,
            False,
            role,
            None,
            assumed,
            held.bias_var,
            bias_mean=held.bias_mean,
            zero=held.gain2 == 0.0,  # (zeros: started at zero, or overridden with them)
        )
        return (out + held.bias_mean * held.bias_mean, held.bias_mean)
    silent = not assumed and s < 1e-10  # zero at init (a zero-initialized gain upstream)
    if silent:
        s, mu = 1.0, 0.0
    layer = info.layers.get(name)
    act = layer.activation if layer is not None else None
    end = branch_end.get(node)
    op: OperatingPoint | None = None
    centered = False
    bias_var = 0.0
    bias_mean = 0.0
    if normed and kind != "mha":
        g = 1.0 if act is None or act.name == "linear" else act.gain("forward")
        q = g * g * s
        role = f"a norm follows (it removes the scale): the classic gain {g:.4g}" + (
            f" of {act.describe()}" if act is not None and act.name != "linear" else ""
        )
    elif scatter is not None and (act is None or act.name == "linear"):
        q = scatter
        role = (
            f"its output is scattered among a tensor of E[x²] {scatter:.3g} (masked_scatter: "
            "image features put among the text embeddings) → output E[x²] the same"
        )
    elif end is not None and not (layer and layer.norm_after) and R > 0:
        skip = _skip_moment(end, mom, info)
        # (a "skip" of E[x²] 0 is an accumulator the branch is added into — a MoE written by
        # hand: `out = zeros_like(x); out[m] = out[m] + expert(h[m])` — not a stream to be a
        # share of: taken as an unknown skip is; it gave weights of std 0 and a ValueError)
        s_skip = skip[0] if skip is not None and skip[0] > 0 else s
        kept = _normalized_target(normalized, s_skip, mom) if normalized is not None else None
        if kept is not None:  # (a normalized sum: the branch keeps the stream's E[x²])
            target, role = kept
            if scale_after != 1.0:
                target /= scale_after
                role += f", after ×{scale_after:.3g} on the way: {target:.3g}"
        else:
            target, role = _branch_target(s_skip, R, end, scale_after)
        if calls > 1:  # one module ending `calls` of the branches: the same map applied again
            target /= calls  # and again to a similar input adds up coherently (×calls² in E)
            role += (
                f"; one module called {calls} times (shared weights): its {calls} increments "
                f"add coherently, so each gets 1/{calls} of that → {target:.3g}"
            )
        q = target
        if act is not None and act.name != "linear":
            fq = q_for_second_moment(_act_fn(act), target)
            if fq is not None:
                q = fq
                role += f" after {act.describe()} (q {q:.3g})"
    elif act is not None and act.name != "linear":
        depth = depths.get(act.describe(), 1)
        has_bias = isinstance(getattr(m, "bias", None), torch.Tensor)
        io = in_out(m)
        lin = kind in ("linear", "conv1d_hf") and io is not None
        conv = conv_chain(m) if kind == "conv" else None
        op = op_point(
            act,
            depth,
            res.cache,
            bias=has_bias and kind != "mha",
            width=io[1] if lin and io is not None else (conv[0] if conv else None),
            ends=lin,
            taps=conv[1] if conv else 1,
            dims=conv[2] if conv else 1,
        )
        q, centered = op.q, op.centered and kind in ("linear", "conv", "conv1d_hf")
        bias_var = op.bias_var
        if op.drift > DRIFT_LIMIT:
            at = f" at {op.simulated_at}" if op.width else ""
            fwd = (
                f"its forward signal simulated at that width ×{math.exp(op.forward):.3g}"
                if op.width
                else f"forward instability κ {op.kappa:.3g}"
            )
            capped = op.width and abs(op.forward) >= SIMULATION_CAP * (1 - 1e-9)
            how = f"×{math.exp(op.drift):.3g}" + (" or more" if capped else "")
            said = (
                f"{act.describe()} over {depth} layers{at}: its best operating point (q* "
                f"{op.q:.3g}) still drifts {how} (gradients χ {op.chi:.3g} per "
                f"layer, or {fwd}; Poole et al. 2016) — no "
                "initialization holds this chain: a norm between its layers, skip connections, "
                "or kernel shaping (policy 'tat'/'dks') can"
            )
            if said not in res.drifts:
                res.drifts.append(said)
        width = io[0] if io is not None else 0
        where = f"width {width}"
        if conv and isinstance(getattr(m, "in_channels", None), int):  # (its fan-in: measured,
            # relu(x)² ×4 of 3×3 convolutions at 32 channels 3 of 8 draws in band, at 128 8 of 8)
            width = m.in_channels * conv[1]
            where = f"fan-in {width} ({m.in_channels} channels × {conv[1]} taps)"
        if (
            op.drift <= DRIFT_LIMIT
            and op.kappa >= UNSTABLE_KAPPA
            and width > 0
            and op.kappa ** (2 * depth) >= width / 4 * 0.999
        ):
            said = (
                f"{act.describe()} over {depth} layers at {where}: every layer multiplies "
                f"any deviation of an example's scale by κ {op.kappa:.3g} (forward "
                f"instability), and a finite width gives each example one (about "
                f"√(2/{width}) relative): κ^{2 * depth} = {op.kappa ** (2 * depth):.3g} ≥ "
                f"width/4, so the mean over examples grows far above the planned moment "
                "(measured, relu(x)² at width 128: output rms ×1.98 at 3 layers, ×25 at 4; at "
                "width 512 ×2.4 at 4) — no initialization holds this chain: a norm between its "
                "layers or skip connections can"
            )
            if said not in res.drifts:
                res.drifts.append(said)
        elif op.drift <= DRIFT_LIMIT and op.width and op.off >= OFF_SAID:
            said = (
                f"{act.describe()} over {depth} layers at "
                + (f"{conv[0]} channels" if conv else f"width {io[1] if io else op.width}")
                + f": one draw's scale scatters — simulated at {op.simulated_at}, "
                f"{op.off:.0%} of the draws put E[x²] after the chain off by more than ×4 "
                f"(×2 in rms; root mean square over draws of its log ×{math.exp(op.scatter):.3g}, "
                f"mean ×{math.exp(op.forward):.3g}), up in one draw and down in another: at a "
                "finite width each layer moves an example's scale by about √(2/width), the moves "
                "add up over the chain (and a fixed point with κ > 1 amplifies them), and no "
                "choice of scale narrows that (the log of a product of random layers is Gaussian "
                "with a variance that grows with depth/width; Hanin & Nica 2020) — LSUV "
                "(`initwise.torch.lsuv`, which rescales "
                "the drawn weights on a batch) holds one draw's scale; a norm between the layers, "
                "skip connections or a wider chain hold any draw's"
            )
            if said not in res.drifts:
                res.drifts.append(said)
        role = f"{act.describe()} at {op.describe()}"
        # the formula assumes a chain of matrices; an edge-of-chaos chain keeps one q (measured:
        # moving an end layer off the edge of chaos trains worse)
        balance = kind in ("linear", "conv1d_hf") and bias_var == 0
        ends = not op.centered and op.kappa != 1.0 and op.chi > 0  # (a step has no slope)
        if balance and depth >= 3 and run in (1, depth) and ends:
            # the chain's first and last hidden layers get their own operating points so the
            # first and last weight gradients balance (the interior keeps the drift-free one)
            key = ("ends", act.describe(), depth)
            if key not in res.cache:
                spec = act.spec
                res.cache[key] = end_points(  # type: ignore[assignment]
                    _act_fn(act), op, saturating=bool(spec and spec.saturating)
                )
            q_f, q_e, bal = res.cache[key]  # type: ignore[misc]
            end = q_f if run == 1 else q_e
            if end != op.q:
                q = end
                which = "first" if run == 1 else "last hidden"
                role += (
                    f"; {which} layer of the chain at q {end:.3g}: first/last weight gradients "
                    f"balanced ({op.balance:.2f} → {bal:.2f} predicted)"
                )
        if op.centered and not centered:
            role += " (centering skipped for this layer kind)"
        if carry and isinstance(getattr(m, "bias", None), torch.Tensor):  # (centered or not:
            # the pre-activation is N(b, q) either way; skipped for centered gates, a highway
            # network behind an input layer lost half its stream per block, unsaid)
            bias_mean = carry_bias(_act_fn(act), q, carry)
            role += (
                f"; the carry gate of one of {carry} highway blocks (x·(1 − g) + f·g): bias "
                f"{bias_mean:.3g}, so that 1 − g keeps e^(−1/{carry}) of the stream's E[x²] in "
                "each (Srivastava et al. 2015 start these at −1 … −3; at 0 half the stream is "
                "lost per block)"
            )
    elif name in (gens := {g[0]: (i, g) for i, g in info.generated.items()}):
        at, (_, fan, x_idx) = gens[name]
        x = mom.get(x_idx)
        sx = x[0] if x is not None else 1.0
        graph = info.graph
        assert graph is not None  # (a generated weight is found in the graph)
        shaped = [str(n.target) in _SHAPE_OPS for n in graph.nodes]
        # (through reshapes: CondConv's convolution output goes back to (B, C, …))
        reads = downstream(graph.users(), at, shaped.__getitem__)
        after = next((info.acts[u] for u in reads if u in info.acts), None)
        g = 1.0 if after is None or after.name == "linear" else after.gain("forward")
        q = g * g / (fan * sx)
        role = (
            f"it generates the weight of a product with fan_in {fan} (a hypernetwork; "
            f"hyperfan-in, Chang et al. 2020): E[w²] = gain² {g * g:.3g}/(fan_in · E[x²] "
            f"{sx:.3g}) = {q:.3g}, so that product's output meets its activation's"
        )
    elif pooled_out is not None and pooled_out[1] and (act is None or act.name == "linear"):
        q = 1.0 / pooled_out[0]
        role = (
            f"linear consumer: unit model output — after it {pooled_out[1]} in E[x²] (measured "
            f"on the example input) → q {q:.3g}"
        )
    elif feeds is not None and (act is None or act.name == "linear"):
        q = 1.0 / feeds[0]
        role = (
            f"linear consumer: only '{feeds[1]}' reads it, whose weights are held (fan_in·E[w²] "
            f"{feeds[0]:.4g}) → q {q:.3g}, so that its output is unit"
        )
    else:
        q = 1.0
        role = "linear consumer: unit output"
    if pooled_out is not None and pooled_out[2] and (act is None or act.name == "linear"):
        role += f"; the model's output is its output after {pooled_out[2]}, not measured"
        res.assumed.append(
            f"{name}: its output reaches the model's output through {pooled_out[2]}, assumed to "
            "leave E[x²] unchanged (averaging a mean-free output keeps between 1/N of E[x²], for "
            "independent values, and all of it, for equal ones; a sum or max grows it); give "
            "example_input= to measure it"
        )
    if terms > 1 and (op is not None or role == "linear consumer: unit output"):
        q /= terms  # (an RNN gate's W·x + U·h, a wide-and-deep sum: the sum meets the target)
        bias_var /= terms
        role += f"; its output is one of {terms} layer outputs summed: 1/{terms} of it, q {q:.3g}"
    role += mixed
    out = q
    c2 = standardized_gain(m)
    is_fixed = c2 is not None and not silent
    if silent:
        out = bias_var
        role += (
            "; its input is 0 at init (a zero-initialized gain or scale upstream, a zero first "
            "state): drawn as for a unit input, output 0 until that scale grows"
        )
    elif c2 is not None:  # the layer's output does not depend on the draw
        var = max(s - mu * mu, 0.0)
        out = c2 * var
        role += (
            "; its weight is standardized in the forward, so the draw's scale cancels (Qiao et "
            f"al. 2019; Brock et al. 2021): output E[y²] = {c2:.4g}·Var[x] {var:.3g} = {out:.3g}"
        )
    else:
        fixed = _fixed_scale(m, kind, name)
        is_fixed = fixed is not None
        if fixed is not None:
            how, fv = fixed
            out = fv * s + bias_var
            role += (
                f"; its weight is {how}, so the draw's scale cancels: output E[y²] = "
                f"fan_in·E[w²] {fv:.4g} × E[x²] {s:.3g}"
                + (" + σ_b²" if bias_var else "")
                + f" = {out:.3g}"
            )
    solved = Solved(
        s, mu, q, centered, role, op, assumed, bias_var, bias_mean=bias_mean, fixed=is_fixed
    )
    res.layers[name] = solved
    if assumed and not out_of_range:  # (an input out of range is said as such above)
        res.assumed.append(f"{name}: input moments unknown, E[x²] = 1 assumed")
    return (out + bias_mean * bias_mean, bias_mean)


def _feeds_held(
    info: ModelInfo, users: list[list[int]], held: dict[str, Held]
) -> dict[str, tuple[float, str]]:
    """The weight layers whose output only a held layer (:class:`Held`) reads — through
    reshapes and dropout — where that layer has no activation after it: each with the held
    layer's ``fan_in·E[w²]`` and name. Such a layer is solved for ``1/(fan_in·E[w²])`` so that
    the held one's output is unit (a new body under a frozen tied head), not for its own."""
    g = info.graph
    found: dict[str, tuple[float, str]] = {}
    if g is None or not held:
        return found
    for n in g.nodes:
        if n.op != "module" or n.target not in held or info.kinds[n.idx] != "weight":
            continue
        layer = info.layers.get(n.target)
        act = layer.activation if layer is not None else None
        if (act is not None and act.name != "linear") or not n.inputs:
            continue
        i = n.inputs[0]
        while (
            g.nodes[i].op == "function"
            and (g.nodes[i].target in _SHAPE_OPS or g.nodes[i].target == "dropout")
            and g.nodes[i].inputs
            and len(users[i]) == 1
        ):
            i = g.nodes[i].inputs[0]
        prev = g.nodes[i]
        if (
            prev.op == "module"
            and info.kinds[i] == "weight"
            and len(users[i]) == 1
            and prev.target not in held
            and held[n.target].gain2 > 0
        ):
            found[str(prev.target)] = (held[n.target].gain2, str(n.target))
    return found


HELD_KINDS = ("linear", "conv", "conv1d_hf", "conv_transpose")
"""Weight layers whose output the walk takes from :class:`Held` weights: ``y = W·x + b``
(a transposed convolution's ``fan_in·E[w²]`` with its true fan-in, the taps that reach one
output: ``C_in·k/stride``; an override of a U-Net's up-sampling layer ×3 was taken as unit
output, and the model's output came out ×2.1–2.3)."""


def _fixed_scale(m: nn.Module, kind: str, name: str) -> tuple[str, float] | None:
    """For a layer whose weight a parametrization or hook normalizes (``spectral_norm``: the
    draw over its largest singular value, Miyato et al. 2018; ``orthogonal``): how, and
    ``fan_in·E[w²]`` of the weight it computes with, for an i.i.d. draw
    (:func:`~initwise.math.meanfield.normalized_weight_variance`); None for any other layer."""
    if getattr(m, "unit_norm", False) is True:  # (a FunctionalLayer: F.normalize(W), no gain)
        return "normalized to norm 1 per output unit in forward (a cosine classifier's)", 1.0
    site = site_of(m, "weight") if kind in ("linear", "conv", "conv_transpose") else None
    which = site.fixed_scale if site is not None else None
    if which is None:
        return None
    w = site.effective()
    shape = tuple(w.shape)
    numel = w.numel()
    fan_in = weight_fans(kind, m, shape, name)[0].fan_in
    if which == "orthogonal":  # torch makes each trailing (m, n) matrix (semi-)orthogonal
        if len(shape) >= 2:
            v = math.prod(shape[:-2]) * min(shape[-2], shape[-1]) / numel
        else:  # a vector: unit norm
            v = 1.0 / numel
        return "orthogonal (a parametrization)", fan_in * v
    dim = getattr(site.hook, "dim", None)
    if dim is None:  # the parametrization's own
        dim = getattr(m.parametrizations["weight"][0], "dim", 0)
    rows = shape[dim] if shape else 1
    v = normalized_weight_variance(rows, max(numel // max(rows, 1), 1), "spectral")
    return "divided by its largest singular value (spectral_norm, Miyato et al. 2018)", fan_in * v


def _skip_moment(
    end: Any, mom: dict[int, tuple[float, float] | None], info: ModelInfo
) -> tuple[float, float] | None:
    """The moments of a residual branch's skip operand. In a parallel block written
    ``x + attn(n(x)) + mlp(n(x))`` (Cohere) the MLP's skip is the sum ``x + attn``, computed
    after the MLP: then the stream it extends (``x``, through the earlier sums) stands in."""
    node = end.skip
    if mom.get(node) is None:  # (rare: look the earlier sums up only then)
        by_add = {r.add: r for r in info.adds}
        while mom.get(node) is None and node in by_add:
            node = by_add[node].skip
    return mom.get(node)


def _branch_target(s_skip: float, R: int, end: Any, f: float = 1.0) -> tuple[float, str]:
    """(target E[y²], role) of a layer that ends one of ``R`` residual branches: ``s_skip / R``,
    shared equally by the branch's ``k`` exits (layers whose outputs are summed into it).
    ``f``: what the branch multiplies the layer's ``E[y²]`` by before the sum — a layer scale's
    ``λ²``, a dropout's ``1/(1 − p)`` in training (:func:`_factor_along`) — so the layer is
    solved for ``s_skip / (R·k·f)``; but never
    above unit output (or ``s_skip/(R·k)`` where that is larger): a small layer scale (BEiT's
    0.1, ConvNeXt's 10⁻⁶) is the model's own choice to start the branch below its share, and
    undoing it would blow the layer up by ``1/λ``."""
    weighted = end.weighted
    k = max(len(end.exits) - len(weighted) + (1 if weighted else 0), 1)
    share = s_skip / (R * k)
    role = f"last layer of one of {R} residual branches: output E[x²] = s_skip/{R}"
    if k > 1:
        role += f", shared by its {k} summed outputs: s_skip/{R * k}"
    if weighted:
        role += (
            f" (its {len(weighted)} softmax-weighted outputs count as one: Σ w_e·y_e with "
            "Σ w_e = 1 has E[x²] ≤ each one's)"
        )
    if f == 1.0:
        return share, role + f" = {share:.3g}"
    cap = max(1.0, share)
    target = min(share / f, cap)
    role += (
        f", after ×{f:.3g} in E[x²] on the way (layer scales λ², constants c², dropout or "
        f"drop path in training): s_skip/{R * k}/{f:.3g} = {share / f:.3g}"
    )
    if target < share / f:
        role += f", kept at {target:.3g} (the layer scale keeps the branch below its share)"
    return target, role


def _layer_scales(
    model: nn.Module,
    modules: dict[str, nn.Module],
    info: ModelInfo,
    drawn: dict[str, tuple[float, float]] | None = None,
) -> dict[int, tuple[float, float]]:
    """``{node: (E[λ²], E[λ])}`` for the graph's layer scales (:data:`~.modules.LAYER_SCALES`):
    parameters multiplied in code (BEiT's ``lambda_1 * x``) and layer-scale modules (DINOv2's),
    at the value the plan gives them — an override's (``drawn``, by parameter name), the
    config's (:func:`~.modules.layer_scale_value`) — or, kept as built, their own."""
    from .modules import is_layer_scale, layer_scale_module, layer_scale_value

    g = info.graph
    out: dict[int, tuple[float, float]] = {}
    if g is None:
        return out
    value = layer_scale_value(model)
    for n in g.nodes:
        p = None
        if n.op == "param":
            owner, _, pname = n.target.rpartition(".")
            mod = modules.get(owner)
            p = getattr(mod, pname, None) if mod is not None else None
            if not (isinstance(p, torch.Tensor) and is_layer_scale(pname, p)):
                continue
        elif n.op == "module":
            pname = layer_scale_module(modules[n.target])
            if pname is None:
                continue
            p = getattr(modules[n.target], pname)
        else:
            continue
        full = n.target if n.op == "param" else f"{n.target}.{pname}"
        if drawn and full in drawn:  # (overridden: what its override draws)
            out[n.idx] = drawn[full]
        elif value is not None:
            out[n.idx] = (value * value, value)
        elif not p.is_meta:
            t = p.detach().double()
            out[n.idx] = (float(t.pow(2).mean()), float(t.mean()))
    for n in g.nodes:  # reshaped for broadcasting (PoolFormer's λ.unsqueeze(-1).unsqueeze(-1))
        if n.op == "function" and n.target in _SHAPE_OPS and n.inputs and n.inputs[0] in out:
            out[n.idx] = out[n.inputs[0]]
    return out


def _data_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point buffers that hold values (not on the meta device), by name."""
    return {k: b for k, b in model.named_buffers() if b.is_floating_point() and not b.is_meta}


def _buffer_moments(model: nn.Module, info: ModelInfo) -> dict[int, tuple[float, float]]:
    """``{node: (E[b²], E[b])}`` for the graph's floating-point buffers: data the model holds
    (Swin v2's log-spaced coordinate table, a fixed sinusoidal position table), measured as
    they are — the plan does not redraw them. Non-finite ones (a mask of −inf) and meta ones
    stay unknown."""
    out: dict[int, tuple[float, float]] = {}
    if info.graph is None:
        return out
    buffers = _data_buffers(model)
    for n in info.graph.nodes:
        b = buffers.get(n.target) if n.op == "param" else None
        if b is None or not b.numel():
            continue
        t = b.detach().double()
        s, mu = float(t.pow(2).mean()), float(t.mean())
        if math.isfinite(s) and math.isfinite(mu):
            out[n.idx] = (s, mu)
    return out


def _fixed_products(model: nn.Module, info: ModelInfo) -> dict[int, tuple[float, float, float]]:
    """``{node: (Σᵢw², (Σᵢw)², Σᵢw) averaged over outputs}`` for products of a signal's
    features (the first operand) with a fixed 2-D buffer — ``F.linear(x, P)``, ``x @ B``: a
    random projection or random Fourier features the model holds. For features with
    variance ``v`` and mean ``μ``, independent across the contracted dimension (the walk's
    assumption for every layer), ``E[y²] = v·Σw² + μ²·(Σw)²`` and ``E[y] = μ·Σw`` per output.
    (A fixed ×5 projection was "input moments unknown, E[x²] = 1 assumed": output rms 30.)"""
    g = info.graph
    out: dict[int, tuple[float, float, float]] = {}
    if g is None:
        return out
    buffers = _data_buffers(model)
    for n in g.nodes:
        t = str(n.target)
        if n.op != "function" or t not in ("linear", "matmul", "mm") or len(n.inputs) != 2:
            continue
        ops = [g.nodes[i] for i in n.inputs]
        if ops[0].op == "param" or ops[1].op != "param" or ops[1].target not in buffers:
            continue  # (B @ h mixes rows — nodes, tokens — whose features are not independent
            # once a layer has mixed them: a fixed graph's Â @ h, so solved, grew ×13 in rms
            # over four layers; it stays a product with data, measured or said)
        w = buffers[str(ops[1].target)].detach().double()
        if w.ndim != 2 or not w.numel():
            continue
        axis = 1 if t == "linear" else 0  # (F.linear(x, W) sums W's columns, x @ B B's rows)
        sq, sums = w.pow(2).sum(axis), w.sum(axis)
        coef = (float(sq.mean()), float(sums.pow(2).mean()), float(sums.mean()))
        if all(map(math.isfinite, coef)):
            out[n.idx] = coef  # (the signal is the first operand)
    return out


def _factor_along(
    info: ModelInfo,
    users: list[list[int]],
    start: int,
    stop: int,
    lam: dict[int, tuple[float, float]] | None = None,
    modules: dict[str, nn.Module] | None = None,
) -> float:
    """What the path from node ``start`` to node ``stop`` multiplies ``E[y²]`` by: constant
    factors ``c²`` (multiplications and divisions by a number), layer scales' ``λ²`` (``lam``)
    and, with the graph's ``modules``, modules that are no layer (dropout and drop path, which
    in training multiply ``E[y²]`` by ``1/(1 − p)``: :func:`~.graph.dropout_noise`), through
    reshapes. 1
    where the path forks or does anything else. A branch's exit to its sum's operand
    (:func:`_branch_target`); a tied head to the model's output (:func:`_scale_after`)."""
    g = info.graph
    assert g is not None
    lam = lam or {}
    f, at = 1.0, start
    for _ in range(len(g.nodes)):
        if at == stop:
            return f
        if len(users[at]) != 1:
            return 1.0
        n = g.nodes[users[at][0]]
        noise = dropout_noise(n, modules) if modules is not None else None
        if n.idx in lam:
            f *= lam[n.idx][0]
        elif noise is not None:  # (dropout, drop path in training: E[x²]·E[ε²])
            f *= noise[1]
        elif n.op == "function" and n.target in _MUL:
            other = [i for i in n.inputs if i != at]
            c = _scalar(n.args) if not other else None
            if len(other) == 1 and other[0] in lam:
                f *= lam[other[0]][0]
            elif c is not None:
                f *= c * c
            else:
                return 1.0
        elif n.op == "function" and n.target in _DIV and len(n.inputs) == 1:
            c = _scalar(n.args)
            if not c:
                return 1.0
            f /= c * c
        elif not (
            (n.op == "output" and n.idx == stop)
            or (modules is not None and n.op == "module" and info.kinds[n.idx] == "other")
            or (n.op == "function" and n.target in _SHAPE_OPS)
        ):
            return 1.0
        at = n.idx
    return 1.0


def _experts(
    m: nn.Module,
    name: str,
    x: tuple[float, float] | None,
    branch_end: dict[str, Any],
    R: int,
    mom: dict[int, tuple[float, float] | None],
    res: Moments,
    info: ModelInfo,
) -> tuple[float, float] | None:
    """A MoE experts module (``kind == "experts"``): every expert is the MLP ``down(φ(gate(x)) ·
    up(x))`` (or ``down(φ(up(x)))`` without a gate), solved like the dense one — the input side
    for φ's operating point (a fused gate/up stack draws both halves alike, so ``E[u²] = q`` too,
    which the output side then sees), the output side for the block's target (``s_skip / R``
    at the end of one of ``R`` residual branches, else 1). The block returns ``Σ_k w_k·y_k`` over
    the top-k experts with router weights ``Σ w_k ≤ 1``, so ``E[out²] = Σ w_k²·E[y²] ≤ E[y²]``:
    each expert is solved for the target itself (an upper bound the routing only lowers), divided
    by ``routed_scaling_factor²`` where the config has one (DeepSeek multiplies the weights by
    it). Entries
    are per stack, ``"{name}.{stack}"``; a module with another structure is not solved (None:
    the policy's scheme with the per-expert fans)."""
    from .graph import LINEAR, expert_activation
    from .modules import expert_stack, num_experts

    e = num_experts(m)
    stacks = {
        pname: expert_stack(m, pname, tuple(p.shape))
        for pname, p in m.named_parameters(recurse=False)
        if p.ndim == 3 and p.shape[0] == e
    }
    ins_ = [k for k, v in stacks.items() if v is not None and not v[0]]
    outs = [k for k, v in stacks.items() if v is not None and v[0]]
    if len(outs) != 1 or not 1 <= len(ins_) <= 2 or len(stacks) != len(ins_) + 1:
        return None
    found = expert_activation(m)
    act = found or LINEAR
    _, transposed, packed = stacks[ins_[0]]  # type: ignore[misc]
    gated = len(ins_) == 2 or packed
    measured = None
    if found is None and len(ins_) == 1 and packed:
        measured = _measured_gate(m, tuple(getattr(m, ins_[0]).shape), transposed)
    if found is None and measured is None:
        res.assumed.append(
            f"{name}: no act_fn module tells the experts' activation (assumed linear)"
        )
    assumed = x is None
    s, mu = x if x is not None else (1.0, 0.0)
    op: OperatingPoint | None = None
    if measured is not None:  # the module's own gate code, run on N(0, 1) halves (q = 1)
        q, h = 1.0, measured
        role = (
            f"gate and up at unit second moment; {type(m).__name__}._apply_gate gives E[h²] "
            f"{h:.3g} (measured)"
        )
    else:
        if act.name != "linear" or act.module is not None:
            op = op_point(act, 1, res.cache)
            q, role = op.q, f"{act.describe()} at {op.describe()}"
        else:
            q, role = 1.0, "linear consumer: unit output"
        if gated:
            role = f"gate: {role}; the up projection drawn alike (E[u²] = {q:.3g})"
        a2, _ = _activate(act, (q, 0.0))
        h = a2 * q if gated else a2  # E[(φ(g)·u)²] = E[φ(g)²]·E[u²] for independent g, u
    for k in ins_:
        res.layers[f"{name}.{k}"] = Solved(s, mu, q, False, role, op, assumed)
    end = branch_end.get(name)
    if end is not None and R > 0:
        skip = _skip_moment(end, mom, info)
        target, why = _branch_target(skip[0] if skip is not None else s, R, end)
    else:
        target, why = 1.0, "linear consumer: unit output"
    scale = getattr(getattr(m, "config", None), "routed_scaling_factor", None)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0 and scale != 1:
        target /= scale * scale  # DeepSeek: the routing weights are multiplied by it
        why += f" / routed_scaling_factor² ({scale:g}²) = {target:.3g}"
    why += " per expert (the top-k mixture of softmax weights, Σ w_k ≤ 1, only lowers it)"
    res.layers[f"{name}.{outs[0]}"] = Solved(h, 0.0, target, False, why, None, False)
    if assumed:
        res.assumed.append(f"{name}: input moments unknown, E[x²] = 1 assumed")
    return (target, 0.0)


GATE_SAMPLES = 1 << 18
"""Gaussian values a MoE experts module's own gate code is measured on (:func:`_measured_gate`)."""


def _measured_gate(m: nn.Module, shape: tuple[int, ...], transposed: bool) -> float | None:
    """``E[h²]`` of ``h = m._apply_gate(z)`` for a fused gate/up output ``z`` of i.i.d. N(0, 1)
    entries (what unit-variance gate and up halves give): experts whose gate is written in their
    own code instead of an ``act_fn`` module — gpt-oss's ``(clamp(u) + 1)·g·σ(1.702·g)`` on
    interleaved, clamped halves. Seeded (the same value every call); None if the module has no
    such method or it fails on the sample."""
    gate = getattr(m, "_apply_gate", None)
    if not callable(gate):
        return None
    width = shape[2] if transposed else shape[1]  # the fused output: gate and up halves
    rows = max(1, GATE_SAMPLES // max(width, 1))
    z = torch.randn(rows, width, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            h = gate(z)
    except Exception:  # (a gate that needs more than its input: the formula's assumption)
        return None
    if not isinstance(h, torch.Tensor) or not h.is_floating_point() or not h.numel():
        return None
    v = float(h.double().pow(2).mean())
    return v if math.isfinite(v) and v > 0 else None


RNN_PROBE_LIMIT = 4_000_000
"""Recurrent layers up to this many parameters are probed (:func:`rnn_moments`)."""


def rnn_moments(
    m: nn.Module,
    x: tuple[float, float],
    keep: frozenset[str] = frozenset(),
    draws: tuple[Any, ...] = (),
) -> tuple[float, float] | None:
    """``(E[h²], E[h])`` of a recurrent layer's output sequence, measured: a copy initialized by
    ``auto``'s recurrent rule (input weights Xavier per gate — LeCun's for a ReLU RNN —,
    recurrent weights orthogonal per
    gate, biases zero, LSTM forget-gate bias 1) runs a seeded Gaussian sequence with the incoming
    moments (64 sequences of 16 steps). A cell (``nn.LSTMCell``/``GRUCell``/``RNNCell``, called
    once per step in a loop) is run the same way, 16 steps from a zero state with its state fed
    back, its ``h`` averaged over the steps (before: None, and a decoder's head was solved for
    an assumed E[h²] = 1 against ~0.05). The state's recurrence has no closed-form mean field
    here, so it is probed; None for meta-device layers and layers over
    :data:`RNN_PROBE_LIMIT` parameters (then the next layer assumes unit input and says so).
    ``keep``: parameter names the plan leaves as built, which the copy keeps too (an IRNN's
    identity recurrent matrix, a frozen layer). ``draws``: the plan's entries for the layer's
    parameters where they are not that rule (an override, another forget-gate bias): the copy's
    parameters are drawn by them, as ``apply`` draws the layer (before, the probe kept ``auto``'s
    rule: a 2-layer LSTM with its ``bias_hh`` overridden to 1 had ×20 its predicted ``E[h²]``
    and its read-out came out at rms 2.9–4.4; ``forget_bias=0`` gave ×0.28, rms 0.50–0.56)."""

    cell = isinstance(m, nn.RNNCellBase)
    if not isinstance(m, (nn.RNNBase, nn.RNNCellBase)) or any(p.is_meta for p in m.parameters()):
        return None
    if sum(p.numel() for p in m.parameters()) > RNN_PROBE_LIMIT:
        return None
    c = module_copy(m).float().cpu()
    mode = {nn.LSTMCell: "LSTM", nn.GRUCell: "GRU"}.get(type(c), "RNN") if cell else c.mode
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    # (a ReLU RNN's input weights are the plan's, as in policies._rnn — LeCun's since
    # 2026-12-04, He's before: the probe drew Xavier's for every RNN, and an IRNN's state
    # came out 9× too small in E[h²])
    relu = "RELU" in mode or getattr(c, "nonlinearity", "tanh") == "relu"
    # a ReLU RNN's state scale moves with the draw of its orthogonal recurrent matrix (its
    # positive mean fed back: 12 draws of a 3-layer one gave E[h²] 0.36–5.9 around a median
    # of 1.0), so it is probed over 5 draws and the median taken; the others scatter little
    drawn = {e.name.rsplit(".", 1)[-1]: e for e in draws}
    runs = sorted(
        _rnn_probe(c, cell, mode, gates, relu, keep, x, k, drawn) for k in range(5 if relu else 1)
    )
    return runs[len(runs) // 2]


def _rnn_probe(
    c: nn.Module,
    cell: bool,
    mode: str,
    gates: int,
    relu: bool,
    keep: frozenset[str],
    x: tuple[float, float],
    seed: int,
    drawn: dict[str, Any] | None = None,
) -> tuple[float, float]:
    """One draw of :func:`rnn_moments`' probe: ``(E[h²], E[h])`` of copy ``c`` initialized
    with generator seed ``seed`` (0: the single draw the probe always made); the parameters in
    ``drawn`` by their plan entries (:func:`_entry_values`, seeded by ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in c.named_parameters():
            if name in keep:  # (kept as built: frozen, an identity start)
                continue
            e = (drawn or {}).get(name)
            if e is not None and e.scheme is not None and tuple(e.shape) == tuple(p.shape):
                p.copy_(_entry_values(e, seed))  # (its blocks, forget gate, override)
            elif name.startswith("weight_ih"):
                for block in p.chunk(gates, 0):
                    if relu:  # (LeCun's, as the plan's: see Policy.recurrent_input_scheme)
                        block.normal_(0.0, math.sqrt(1.0 / block.shape[1]), generator=g)
                        continue
                    bound = math.sqrt(6.0 / (block.shape[0] + block.shape[1]))
                    block.uniform_(-bound, bound, generator=g)
            elif name.startswith("weight_hh"):
                for block in p.chunk(gates, 0):
                    rows, cols = block.shape
                    if rows > cols:  # (an LSTM with proj_size: (H, P) blocks, orthonormal
                        # columns; the square case's draw below raised on them)
                        q, r = torch.linalg.qr(torch.randn(rows, cols, generator=g))
                        block.copy_(q * torch.sign(torch.diagonal(r)))
                        continue
                    q, r = torch.linalg.qr(torch.randn(block.shape[::-1], generator=g))
                    block.copy_((q * torch.sign(torch.diagonal(r))).T[: block.shape[0]])
            elif name.startswith("weight_hr"):
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.uniform_(-bound, bound, generator=g)
            else:
                p.zero_()
                if mode == "LSTM" and name.startswith("bias_ih"):
                    p.chunk(4, 0)[1].fill_(1.0)
        s, mu = x
        sd = math.sqrt(max(s - mu * mu, 0.0))
        if cell:
            state: Any = None
            hs = []
            for _ in range(16):
                step = torch.randn((64, c.input_size), generator=g) * sd + mu
                state = c(step, state)
                hs.append(state[0] if isinstance(state, tuple) else state)
            out = torch.stack(hs).double()
        else:
            shape = (64, 16, c.input_size) if c.batch_first else (16, 64, c.input_size)
            seq = torch.randn(shape, generator=g) * sd + mu
            out = c(seq)[0].double()
    return float(out.pow(2).mean()), float(out.mean())


def _off(a: float, b: float) -> float:
    """How far ``a`` is from ``b``, relatively (``|a/b − 1|``; ``inf`` for ``b`` 0)."""
    return abs(a / b - 1.0) if b > 0 else math.inf


def _entry_values(e: Any, seed: int) -> torch.Tensor:
    """The values plan entry ``e`` (:class:`~initwise.plan.ParamPlan`) draws with ``seed``:
    each block by its own scheme (an LSTM's forget-gate block), from :mod:`initwise.sampling`'s
    streams as ``apply`` draws them on the host (a recurrent layer's entries have no centering,
    row scales or zero rows)."""
    blocks = [
        sampling.sample(
            e.scheme_for_chunk(i),
            e.block_shape,
            seed=seed,
            name=e.chunk_stream(i),
            fans=e.fans,
            dtype=np.float32,
        )
        for i in range(e.chunks)
    ]
    full = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=e.chunk_dim)
    return torch.from_numpy(np.ascontiguousarray(full))


def carry_gates(model: nn.Module, info: ModelInfo) -> list[str]:
    """Weight layers that compute a highway block's carry gate: ``g = σ(layer(x))`` feeding
    both a product with the block's transform and, as ``1 − g``, a product with the stream
    ``x`` that is added to it (``x·(1 − g) + f(x)·g``; Srivastava et al. 2015) — the layer
    needs a bias of its own to be steered."""
    g = info.graph
    assert g is not None
    users = g.users()
    out: list[str] = []
    for a, act in info.acts.items():
        node = g.nodes[a]
        if act.name != "sigmoid" or len(node.inputs) != 1:
            continue
        gate = g.nodes[node.inputs[0]]
        if gate.op != "module" or info.kinds[gate.idx] != "weight" or gate.target in out:
            continue
        for c in users[a]:
            if not _complement(g.nodes[c]):
                continue
            for p in users[c]:
                pn = g.nodes[p]
                if pn.op == "function" and pn.target in _MUL and len(pn.inputs) == 2:
                    if any(g.nodes[u].target in _ADD for u in users[p]):
                        out.append(gate.target)
                        break
            if gate.target in out:
                break
    return out


_AFFINE_PASS = frozenset(
    "view reshape flatten permute transpose contiguous getitem unsqueeze squeeze expand expand_as "
    "to type float half bfloat16 clone".split()
)
"""Ops a conditional norm's gain or shift passes on its way to the product or sum
(:func:`conditional_affines`): reshapes to broadcast (``γ(y)[:, :, None, None]``,
``.view(-1, C, 1, 1)``) and casts. Not ``chunk``/``split``: parts of one table would have roles
of their own."""


def conditional_affines(
    info: ModelInfo, users: list[list[int]], modules: dict[str, nn.Module]
) -> dict[str, tuple[str, str]]:
    """Embeddings whose lookup is a normalization's affine, per class — conditional batch norm
    (de Vries et al. 2017), conditional instance norm (Dumoulin et al. 2017), the projection
    discriminator's and SN-GAN's categorical BN (Miyato & Koyama 2018): ``norm(x)·γ(y) + β(y)``
    or ``norm(x)·(1 + γ(y)) + β(y)`` — with their role and the norm: ``{name: ("gain", norm)}``
    where the lookup (through reshapes) multiplies a norm's output, ``"gain-1"`` where ``1 +``
    comes first, ``"shift"`` where it is added to such a product (not where it is added to a
    norm's output alone: a position table added after a norm is that too). A table used
    anywhere else is not one (every use must agree).

    Such a table is the norm's ``weight``/``bias`` with one row per class, and starts as they do
    (ones, zeros), so every class starts as the plain norm; drawn as an embedding, ``N(0, 1)``,
    each class's gain flipped the sign of about half the channels and scaled the rest anywhere
    between 0 and 3 (the moments agree — ``E[γ²] = 1`` either way — the function does not), and a
    user's own ``ones_``/``zeros_`` was replaced."""
    g = info.graph
    if g is None:
        return {}
    nodes, kinds = g.nodes, info.kinds

    def passing(i: int, came: int | None = None) -> bool:
        """A reshape or cast of its first input (``.view(-1, x.shape[1], 1, 1)``: the other
        inputs are shapes), reached from it."""
        n = nodes[i]
        return (
            n.op == "function"
            and n.target in _AFFINE_PASS
            and bool(n.inputs)
            and (came is None or n.inputs[0] == came)
        )

    def back(i: int) -> int:
        for _ in range(16):
            if not passing(i):
                return i
            i = nodes[i].inputs[0]
        return i

    def normed(i: int, depth: int = 0) -> str | None:
        """The norm whose output node ``i`` is (through reshapes) — or, once, a sum of it and a
        product of another norm's output with something (NCSN's conditional instance norm++:
        ``h + α·normalized_means``, then ``γ·(…) + β``)."""
        j = back(i)
        if kinds[j] == "norm":
            return str(nodes[j].target)
        n = nodes[j]
        if depth or n.op != "function" or n.target not in _ADD or len(n.inputs) != 2:
            return None
        first = next((m for m in map(normed, n.inputs) if m), None)
        other = next((k for k in n.inputs if normed(k) is None), None)
        o = nodes[back(other)] if other is not None else None
        if first is None or o is None or o.op != "function" or o.target not in _MUL:
            return None
        return first if any(normed(k, 1) for k in o.inputs) else None

    def plus_one(n: Any) -> bool:
        return (
            n.op == "function"
            and n.target in ("add", "radd")
            and len(n.inputs) == 1
            and _scalar(n.args) == 1.0
        )

    def role(start: int) -> tuple[str, str] | None:
        found: set[tuple[str, str]] = set()
        stack = [(u, start, False) for u in users[start]]
        while stack:
            u, came, offset = stack.pop()
            n = nodes[u]
            if passing(u, came):
                stack += [(v, u, offset) for v in users[u]]
                continue
            if plus_one(n) and not offset:
                stack += [(v, u, True) for v in users[u]]
                continue
            others = [i for i in n.inputs if i != came]
            if n.op != "function" or len(n.inputs) != 2 or len(others) != 1:
                return None
            if n.target in _MUL:
                norm = normed(others[0])
                if norm is None and not offset and _gates_branch(n.idx):
                    found.add(("gate", ""))  # (DiT's gate on a residual branch: parts only)
                    continue
                if norm is None:
                    return None
                found.add(("gain-1" if offset else "gain", norm))
            elif n.target in _ADD and not offset:
                # (added to a norm's output times a gain; not to a norm's output alone, which is
                # also how a position table is added after a norm)
                o = back(others[0])
                norm = None
                if nodes[o].op == "function" and nodes[o].target in _MUL:
                    norm = next((m for m in map(normed, nodes[o].inputs) if m), None)
                if norm is None:
                    return None
                found.add(("shift", norm))
            else:
                return None
        return found.pop() if len(found) == 1 else None

    def _gates_branch(i: int) -> bool:
        """Whether node ``i`` (a product) is added to the residual stream and nothing else:
        ``x + gate·branch(…)``."""
        return bool(users[i]) and all(
            nodes[u].op == "function" and nodes[u].target in _ADD for u in users[i]
        )

    def parts(start: int, table: nn.Module) -> tuple[str, str] | None:
        """One table read as K equal parts of its rows' features — ``gamma, beta =
        embed(y).chunk(2, 1)`` (pytorch/pytorch#8985's ``ConditionalBatchNorm2d``; NCSN's
        conditional norms): ``("parts:" + the roles in order, norm)`` when each part has a role
        (the first part's norm), else None."""
        while len(users[start]) == 1 and passing(users[start][0], start):
            start = users[start][0]  # (``gen(c)[:, :, None, None].chunk(2, 1)``)
        if len(users[start]) != 1:
            return None
        c = nodes[users[start][0]]
        width = _out_width(table)
        dim = c.kwargs.get("dim", c.args[1] if len(c.args) > 1 else 0)
        if c.op != "function" or c.target not in ("chunk", "split") or dim not in (1, -1):
            return None
        size = c.kwargs.get("split_size_or_sections", c.args[0] if c.args else None)
        if not isinstance(size, int) or size <= 0:
            return None
        k = size if c.target == "chunk" else width // size
        if k < 2 or width % k:
            return None
        found: dict[int, tuple[str, str]] = {}
        for u in users[c.idx]:
            n = nodes[u]
            i = n.args[0] if n.target == "getitem" and len(n.args) == 1 else None
            r = role(u) if isinstance(i, int) and n.op == "function" else None
            if r is None or i in found:
                return None
            found[i % k] = r
        if set(found) != set(range(k)):
            return None  # (each part in a role; NCSN's α scales the normalized channel means)
        norms = [r[1] for r in found.values() if r[1]]
        if not norms:  # (gates alone are no norm's affine)
            return None
        return "parts:" + ",".join(found[i][0] for i in range(k)), norms[0]

    roles: dict[str, set[tuple[str, str] | None]] = {}
    for n in nodes:  # (a table looked up more than once: every call in the same role)
        m = modules.get(n.target) if n.op == "module" else None
        if isinstance(m, nn.Embedding):
            roles.setdefault(n.target, set()).add(role(n.idx) or parts(n.idx, m))
        elif type(m) is nn.Linear and kinds[n.idx] == "weight":
            # a modulation generator: FiLM's, adaLN's (DiT) — the affine computed from a
            # condition as identity plus a change (`x·(1 + scale) + shift`, gates). Not a plain
            # gain (`x·s + b`: AdaIN, StyleGAN's styles), whose condition often has no other
            # way to the output: zero weights would make the output independent of it
            r = role(n.idx) or parts(n.idx, m)
            plain = r is not None and "gain" in affine_roles(r[0])
            roles.setdefault(n.target, set()).add(
                None if r is None or r[0] == "gate" or plain else r
            )
    return {k: r for k, v in roles.items() if len(v) == 1 and (r := next(iter(v))) is not None}


def affine_roles(role: str) -> list[str]:
    """The roles of a conditional affine (:func:`conditional_affines`), one per part: ``"parts:"``
    followed by them, comma-separated, for a table read in parts; else the one role."""
    return role[len("parts:") :].split(",") if role.startswith("parts:") else [role]


def affine_moments(role: str) -> tuple[float, float]:
    """``(E[a²], E[a])`` of a conditional affine at init: a gain starts at ones, any other role
    (a gain added to 1, a shift, a gate) at zeros."""
    return (1.0, 1.0) if role == "gain" else (0.0, 0.0)


def _out_width(m: nn.Module) -> int:
    """The features a table's lookup or a Linear's output has (what ``chunk`` splits)."""
    if isinstance(m, nn.Embedding):
        return m.embedding_dim
    return int(getattr(m, "out_features", 0))


def conditional_parts(
    info: ModelInfo, users: list[list[int]], conditional: dict[str, tuple[str, str]]
) -> dict[int, str]:
    """Per ``getitem`` node that takes one part of a conditional table read in parts
    (:func:`conditional_affines`' ``"parts:…"``): its role, for the walk's moments."""
    g = info.graph
    out: dict[int, str] = {}
    if g is None:
        return out
    for n in g.nodes:
        role = conditional.get(n.target, ("", ""))[0] if n.op == "module" else ""
        if not role.startswith("parts:") or len(users[n.idx]) != 1:
            continue
        roles = affine_roles(role)
        for u in users[users[n.idx][0]]:
            i = g.nodes[u].args[0]
            out[u] = roles[i % len(roles)]
    return out


def adapter_ups(info: ModelInfo) -> dict[str, str]:
    """The up-projection ``B`` of each low-rank adapter beside a layer
    (:func:`~initwise.torch.graph.low_rank_adapters`), with the reason it starts at zero: LoRA
    (Hu et al. 2021, §4.1) draws ``A`` at random and ``B`` at zero, "so ΔW = BA is zero at the
    beginning of training" — the layer starts as its base, which is solved as if alone."""
    return {
        b: (
            f"the up-projection of a rank-{_rank(info, a)} adapter beside '{base}' (LoRA, Hu et "
            f"al. 2021: ΔW = B·A starts at zero, so the layer starts as its base): zero"
        )
        for b, a, base in info.adapters.values()
    }


def _rank(info: ModelInfo, a: str) -> int | str:
    io = in_out(info.layers[a].module) if a in info.layers else None
    return io[1] if io is not None else "r"


THETA_START = (
    "the spatial transformer's localization head: its output is the affine θ of "
    "F.affine_grid, which starts at the identity transform — weights zero, bias the identity "
    "(Jaderberg et al. 2015; the PyTorch tutorial) — so the sampler passes its input unchanged "
    "until training moves θ (a drawn θ warps every input at random)"
)


def affine_thetas(info: ModelInfo) -> dict[str, int]:
    """The Linear layers whose output, through reshapes, is ``F.affine_grid``'s θ — a spatial
    transformer's localization head — with θ's rows: 2 for 6 outputs (``2 × 3``), 3 for 12
    (``3 × 4``). Only layers with a bias (the identity lives there). Drawn like any layer, θ
    warped every input at random: the PyTorch spatial-transformer tutorial's network came out
    at rms 24× its input with the example input, only the scatter warning said."""
    g = info.graph
    if g is None:
        return {}
    found: dict[str, int] = {}
    for n in g.nodes:
        if n.op != "function" or str(n.target) != "affine_grid" or not n.inputs:
            continue
        src = g.nodes[behind(g.nodes, n.inputs[0], _SHAPE_OPS)]  # (θ.view(-1, 2, 3))
        layer = info.layers.get(str(src.target)) if src.op == "module" else None
        m = layer.module if layer is not None else None
        if isinstance(m, nn.Linear) and m.bias is not None and m.out_features in (6, 12):
            found[str(src.target)] = 2 if m.out_features == 6 else 3
    return found


def affine_couplings(info: ModelInfo) -> dict[str, str]:
    """Last layers of the nets of affine coupling layers — ``y = x·exp(s(a)) + t(a)`` (RealNVP,
    Dinh et al. 2017; also ``(x + t)·exp(s)``, ``x·exp(tanh(s))``, ``s`` and ``t`` read from one
    net's output by ``chunk``/slicing as in Glow) — with the reason each starts at zero.

    ``exp`` makes the coupling's scale unbounded: any spread in ``s`` multiplies the stream by
    ``E[exp(2s)] = exp(2·Var[s])``, compounding over the couplings (6 RealNVP couplings drawn
    for unit-variance layers: output rms 2.5–2.7), and no variance rule for ``t`` keeps the sum
    at the stream's scale. Glow's answer (Kingma & Dhariwal 2018, §3.3): the last layer of each
    coupling's net starts at zero, so each coupling starts as the identity — ``exp(0) = 1``,
    ``t = 0`` — and the flow passes its input unchanged until training moves them; the
    gradients still reach those last layers (the inner layers' gradients flow once they have
    moved, as in zero-initialized residual branches).

    Found by structure: an ``exp`` reached from a weight layer through one-input operations
    (``tanh``, a scalar factor, ``chunk``/``getitem``), one factor of a product with another
    tensor (the stream), and — where the product is added to, or multiplies a sum with, a weight
    layer's output reached the same way — that layer as the shift."""
    g = info.graph
    out: dict[str, str] = {}
    why = (
        "the last layer of an affine coupling's {what} net (y = x·exp(s) + t, RealNVP): zero, "
        "so the coupling starts as the identity (Glow, Kingma & Dhariwal 2018 §3.3; exp makes "
        "any spread in s multiply the stream)"
    )
    for site in coupling_sites(info):
        out[g.nodes[site.scale].target] = why.format(what="scale")
        for t in site.shifts:
            what = "scale and shift" if t == site.scale else "shift"
            out[g.nodes[t].target] = why.format(what=what)
    return out


@dataclass(frozen=True)
class CouplingSite:
    """One affine coupling found in the graph (:func:`coupling_sites`): the weight-layer nodes
    of its scale and of its shifts (none found: empty) and the nodes that apply them to the
    stream — the product ``x·exp(s)`` and the sums with ``t``."""

    scale: int
    shifts: tuple[int, ...]
    joins: tuple[int, ...]


def coupling_sites(info: ModelInfo) -> list[CouplingSite]:
    """The affine couplings of :func:`affine_couplings`, as graph nodes."""
    g = info.graph
    if g is None:
        return []
    users = g.users()

    def behind(i: int) -> Any:
        """The node reached back from node ``i`` through one-input functions and activations:
        a weight layer, an op that draws noise (a VAE's ``ε = randn_like(mu)`` is no stream),
        or where the way back ends."""
        for _ in range(16):
            n = g.nodes[i]
            if (n.op == "module" and info.kinds[i] == "weight") or str(n.target) in _NOISE:
                break
            if len(n.inputs) != 1 or n.op not in ("function", "module"):
                break
            if n.op == "module" and info.kinds[i] != "act":
                break
            i = n.inputs[0]
        return g.nodes[i]

    def layer_behind(i: int) -> int | None:
        n = behind(i)
        return n.idx if n.op == "module" and info.kinds[n.idx] == "weight" else None

    def noise(i: int) -> bool:
        return str(behind(i).target) in _NOISE

    out: list[CouplingSite] = []
    for n in g.nodes:
        if n.op != "function" or str(n.target) != "exp" or len(n.inputs) != 1:
            continue
        s_layer = layer_behind(n.inputs[0])
        if s_layer is None:
            continue
        for u in users[n.idx]:
            prod = g.nodes[u]
            if prod.op != "function" or prod.target not in _MUL or len(prod.inputs) != 2:
                continue
            stream = prod.inputs[0] if prod.inputs[1] == n.idx else prod.inputs[1]
            if stream == n.idx or layer_behind(stream) == s_layer or noise(stream):
                continue  # (exp(s)·exp(s), a gate on its own layer's output, a VAE's σ·ε)
            shifts, joins = [], [prod.idx]
            sums = [g.nodes[a] for a in users[prod.idx]] + [g.nodes[stream]]
            for a in sums:
                if a.op != "function" or a.target not in _ADD | _SUB or len(a.inputs) != 2:
                    continue
                for j in a.inputs:
                    t_layer = layer_behind(j) if j not in (prod.idx, stream) else None
                    if t_layer is None:
                        continue
                    shifts.append(t_layer)
                    joins.append(a.idx)
            out.append(CouplingSite(s_layer, tuple(shifts), tuple(joins)))
    return out


_NOISE = frozenset(
    {"randn_like", "rand_like", "randn", "rand", "normal", "normal_", "bernoulli", "dropout"}
)
"""Operations that draw noise: a product with their output is not a stream being scaled."""


def _complement(n: Any) -> bool:
    """Whether function node ``n`` computes ``1 − g`` of its one tensor input (probed on a
    value: the graph's nodes keep their scalars but not which side of ``-`` they were on)."""
    if n.op != "function" or n.target not in _SUB or len(n.inputs) != 1 or n.call is None:
        return False
    try:
        y = n.call([torch.tensor([0.25])])
    except Exception:
        return False
    return isinstance(y, torch.Tensor) and y.numel() == 1 and abs(float(y) - 0.75) < 1e-6


def carry_bias(f: Callable[[np.ndarray], np.ndarray], q: float, blocks: int) -> float:
    """The bias ``b ≤ 0`` of a highway carry gate ``g = f(z)``, ``z ~ N(b, q)``, with
    ``E[(1 − g)²] = e^(−1/blocks)``: the stream keeps at least ``e^(−1)`` of its second moment
    through all the blocks (as the residual rule bounds its growth by ``e``). Bisection on
    ``b ∈ [−30, 0]``; 0 when ``b = 0`` already keeps that much."""
    target = math.exp(-1.0 / max(blocks, 1))

    def kept(b: float) -> float:
        e2, e1 = shifted_moments(f, q + b * b, b)
        return 1.0 - 2.0 * e1 + e2

    if kept(0.0) >= target:
        return 0.0
    lo, hi = -30.0, 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if kept(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo


_NO_DATA = frozenset(
    {"eq", "ne", "lt", "gt", "le", "ge", "logical_and", "logical_or", "logical_not", "logical_xor"}
    | {"isfinite", "isnan", "isinf", "any", "all", "argmax", "argmin", "nonzero", "size"}
)
"""Ops whose output carries no moments of its inputs (booleans, indices, shapes): the way an
unmeasured value came (``via``) stops there."""


AVG_SAID = 0.1
"""Average pooling left unmeasured is said where its input's squared mean is below this share of
its second moment (a residual stream, a conv's output): the worst case of the unchanged
assumption, independent values, keeps only ``E[x]²`` (ReLU features keep ``1/π`` of ``E[x²]``,
GELU's 0.19 at unit ``q``; a mean-free stream nothing — 1/N)."""


def _again(solved: Solved, x: tuple[float, float] | None) -> tuple[float, float] | None:
    """The output moments of a layer called again with input moments ``x``, its weights as its
    first call solved them: ``E[y²] = (q − σ_b²)·E[x²]/E[x²]₁ + σ_b² + b²`` (``Var`` for
    centered weights), mean ``b``."""
    if x is None:
        return None
    s, mu = x
    # (centered: what the weights multiply is Var[x] ≥ 10⁻¹²)
    product = max(s, mu * mu + 1e-12) if solved.centered else s
    return (again_product(solved, product, mu * mu), solved.bias_mean)


def _as_measured(
    idx: int, measured: Stats, via: dict[int, tuple[str, bool, str]], what: str
) -> tuple[float, float]:
    """A node's output moments as the example input gave them with the draft's weights (a
    weighted sum, a product of data or of signals: nothing to carry them from), noted on the
    way (``via``) for the reason of the layer that reads them."""
    val = (measured[2], measured[3])
    via[idx] = (f"{what}, its E[x²] {val[0]:.3g} measured on the example input", True, "")
    return val


def _width(info: ModelInfo, modules: dict[str, nn.Module], i: int, dim: Any) -> int | None:
    """The size along ``dim`` of graph node ``i``'s value where the graph tells it
    (:func:`~initwise.torch.graph.part_width`), else None — the width every rule that counts
    entries (a concatenation's parts, a norm's or a sum's terms, a transform's length) reads."""
    if info.graph is None:
        return None
    return part_width(info.graph.nodes, modules, info.kinds, i, dim)


def _cat_sizes(info: ModelInfo, n: Any, modules: dict[str, nn.Module]) -> list[int] | None:
    """The sizes of a ``cat``'s parts along the dimension it joins them on
    (:func:`~initwise.torch.graph.part_width`), or None where one is not known (then the parts
    count equally: a graph input's width, a slice's). A ``stack`` joins parts of one shape:
    equal. Before, every concatenation averaged its parts equally: EGNN's edge input
    ``cat([h_i, h_j, |h_i − h_j|²])`` of widths 32, 32 and 1 was solved for ~17× the E[x²] that
    arrives."""
    g = info.graph
    if g is None or str(n.target) not in ("cat", "concat", "concatenate"):
        return None
    dim = n.kwargs.get("dim", n.kwargs.get("axis", n.args[1] if len(n.args) > 1 else 0))
    sizes = [_width(info, modules, i, dim) for i in n.inputs]
    if any(w is None or w <= 0 for w in sizes):
        return None
    return sizes  # type: ignore[return-value]


def _lost_data(info: ModelInfo, n: Any, ins: list[tuple[float, float] | None]) -> bool:
    """Whether an operand of node ``n`` is computed from the data and has no moments (an op the
    walk has no rule for, a comparison's mask): then ``n``'s moments are not its other
    operands'. Before, an op with one operand known passed that operand's moments on — a
    `lerp(x, gelu(W x), ½)` whose `x` had none took `gelu`'s (ten blocks: planned 0.74 where
    0.25–0.33 arrived), `masked_fill` and `+` alike."""
    g = info.graph
    if g is None or all(x is not None for x in ins):
        return False
    return any(x is None and _from_data(g, i) for i, x in zip(n.inputs, ins, strict=True))


def _from_data(g: Any, idx: int) -> bool:
    """Whether node ``idx``'s values are computed from the model's input (an input node among
    its ancestors, not through a size: ViT's class token ``cls.expand(x.shape[0], -1, -1)`` is
    a learned token, not data)."""
    seen, todo = {idx}, [idx]
    while todo:
        node = g.nodes[todo.pop()]
        if node.op == "input":
            return True
        if shape_query(node):
            continue
        for i in node.inputs:
            if i not in seen:
                seen.add(i)
                todo.append(i)
    return False


def _unknown(n: Any, via: dict[int, tuple[str, bool, str]]) -> tuple[float, float]:
    """``(1, 0)`` for an activation whose input's moments are unknown (the product of two
    signals — a graph's adjacency times its features, ``A @ h`` — or an op the propagation
    has no rule for), marked on the way (``via``) so that a layer solved from it says so — not
    one behind a norm, nor attention logits that only reach a softmax (Gemma 2's soft-cap)."""
    via[n.idx] = (
        f"activation '{n.target}', {UNKNOWN_ACT_INPUT}",
        False,
        " (after an op with no rule: a product of two signals such as a graph's A @ h, a "
        "custom op), E[x²] = 1 assumed there",
    )
    return (1.0, 0.0)


def _activate(act: Act, x: tuple[float, float]) -> tuple[float, float]:
    s, mu = x
    if act.name == "linear" and act.module is None:
        return x
    return shifted_moments(_act_fn(act), max(s, 1e-12), mu)


def _lrn(x: tuple[float, float], alpha: float, beta: float, k: float) -> tuple[float, float]:
    """Local response normalization, ``b_c = a_c / (k + α/n·Σ_{c' near c} a_{c'}²)^β``
    (Krizhevsky et al. 2012, §3.3; ``nn.LocalResponseNorm``, ``nn.CrossMapLRN2d``): the sum
    over ``n`` channels concentrates at ``n·E[a²]``, so the divisor is ``d = (k + α·E[a²])^β``
    and ``E[b²] = E[a²]/d²``, ``E[b] = E[a]/d``. AlexNet's ``k = 2``, ``β = 0.75`` divide
    ``E[x²]`` by 2.8 per LRN (passed as the identity before: ×0.54 in rms, unsaid)."""
    s, mu = x
    d = (float(k) + float(alpha) * s) ** float(beta)
    if not d > 0 or not math.isfinite(d):
        return x
    return (s / (d * d), mu / d)


def _glu(x: tuple[float, float]) -> tuple[float, float]:
    """``glu(x) = a ⊙ σ(b)`` (Dauphin et al. 2017), ``a`` and ``b`` the two halves of one layer's
    output (the same moments, independent): ``E[y²] = E[a²]·E[σ(b)²]``, ``E[y] = E[a]·E[σ(b)]``.
    (Passed through as an unknown function, its ×0.29 at unit input was missed.)"""
    s, mu = x
    e2, m1 = shifted_moments(_act_fn(Act("sigmoid")), max(s, 1e-12), mu)
    return (s * e2, mu * m1)


def _l2_normalized(
    n: Any, x: tuple[float, float], info: ModelInfo, modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """``F.normalize(x, p=2, dim)``: each slice along ``dim`` has unit norm, so its entries have
    ``E[x²] = 1/n`` (``n`` the slice's length) and mean ``≈ μ/√(n·E[x²])``. ``n`` is read from
    the weight layer it feeds (a Linear's ``in_features`` for the last dim, a convolution's
    ``in_channels`` for dim 1); None (moments unknown: an assumption) when neither tells it or
    ``p ≠ 2``. (Passed through as an unknown function it gave a cosine classifier's head
    weights for an input 128× too large: logits rms 0.085.)"""
    p = n.kwargs.get("p", n.args[0] if n.args else 2.0)
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 1)
    if p != 2 or not isinstance(dim, int) or info.graph is None:
        return None
    return _unit_slices(n, x, info, modules, dim)


def _unit_slices(
    n: Any, x: tuple[float, float], info: ModelInfo, modules: dict[str, nn.Module], dim: int
) -> tuple[float, float] | None:
    """The moments of node ``n``'s value whose slices along ``dim`` have unit L2 norm
    (:func:`_l2_normalized`), the slices' length read from the layer that reads it or the one
    it comes from."""
    g = info.graph
    assert g is not None
    users = g.users()
    frontier, seen = list(users[n.idx]), set()
    size = None
    while frontier and size is None:
        i = frontier.pop(0)
        if i in seen:
            continue
        seen.add(i)
        u = g.nodes[i]
        if u.op == "function" and (
            u.target in ("dropout", "contiguous", "to", "float")
            or constant_factor(u)
            or u.target in _ADD | _SUB
        ):  # (ArcFace's `s * F.normalize(x) @ Ŵᵀ` scales before its product; a sum keeps
            # the shape)
            frontier.extend(users[i])
        elif u.op == "module" and info.kinds[i] == "weight":
            m = info.layers[u.target].module if u.target in info.layers else None
            if isinstance(m, nn.Linear) and dim == -1:
                size = m.in_features
            elif isinstance(m, FunctionalLinear) and dim == -1:  # (x̂ @ Ŵᵀ: a cosine head)
                size = m.weight.shape[0 if m.layout == "in_out" else 1]
            elif isinstance(m, nn.modules.conv._ConvNd) and dim == 1:
                size = m.in_channels
        # (any other reader: the next one may tell — nGPT's normalized stream is read by the
        # residual update first and by the next block's Linear after)
    if size is None and n.inputs:  # else the layer it comes from (a projection head's
        # output normalized for a similarity matrix, SimCLR's `F.normalize(z) @ F.normalize(z)ᵀ`)
        size = _width(info, modules, n.inputs[0], dim)
    if size is None:
        return None
    s, mu = x
    return (1.0 / size, mu / math.sqrt(size * s) if s > 0 else 0.0)


def _norm_dim(g: Any, i: int, src: int) -> int | None:
    """The dimension of the L2 norm of node ``src`` that node ``i`` is — ``x.norm(dim=d,
    keepdim=True)``, through ``+ ε`` and ``clamp(min=ε)`` — else None."""
    for _ in range(4):
        node = g.nodes[i]
        t = str(node.target)
        if node.op != "function" or not node.inputs:
            return None
        if t in VECTOR_NORMS:
            p, dim = norm_args(node)
            ok = p in (2, 2.0) and isinstance(dim, int) and node.kwargs.get("keepdim") is True
            return dim if ok and node.inputs[0] == src else None
        if len(node.inputs) != 1 or not (t in _ADD or t in ("clamp", "clamp_min")):
            return None
        i = node.inputs[0]
    return None


def _vector_norm(
    n: Any, x: tuple[float, float], info: ModelInfo, modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """``x.norm(dim=d)`` / ``torch.linalg.vector_norm(x, 2, d)`` as a value (a feature): over
    ``D`` entries, ``E[‖x‖²] = D·E[x²]`` and ``E[‖x‖] ≈ √(D·E[x²])`` (it concentrates as ``D``
    grows), ``D`` the width along ``d`` (:func:`~initwise.torch.graph.part_width`). None
    (unknown: said, or measured with an example input) where ``D`` is not known, the order is
    not 2 or the norm is over every entry. Before, it passed its input's moments on: a feature
    ``‖h‖`` of 64 ReLU units (E[x²] ≈ 64) was taken at 1."""
    p, dim = norm_args(n)
    if p not in (2, 2.0, "fro") or not isinstance(dim, int):
        return None
    d = _width(info, modules, n.inputs[0], dim)
    if d is None:
        return None
    s = d * x[0]
    return (s, math.sqrt(s))


def _feature_sum(
    info: ModelInfo, n: Any, x: tuple[float, float], modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """A sum over the feature dimension of values whose width is a layer's — the last dimension
    of a Linear's output, the channels of a convolution's, through elementwise steps: a
    dot-product score ``(u * q).sum(-1)`` — is ``D`` terms independent beyond their mean:
    ``E[y²] = D·Var[x] + D²·E[x]²``, ``E[y] = D·E[x]`` (the mean is the pair's cross moment
    where one encoder computed both factors). None where the summed dimension or its width is
    not known (a sum over a set: its count is in the data, said by the caller). Before, every
    such sum was taken to leave E[x²] unchanged and said: a score head solved for E[x²] 1
    where 64 arrives (output rms 8.1)."""
    dims = summed_dims(n)
    dims = (dims,) if isinstance(dims, int) else tuple(dims) if dims is not None else ()
    if dims not in ((-1,), (1,)):
        return None
    d = _width(info, modules, n.inputs[0], dims[0])
    if d is None:
        return None
    s, mu = x
    return (d * max(s - mu * mu, 0.0) + d * d * mu * mu, d * mu)


_TRANSPOSES = frozenset({"t", "transpose", "permute", "contiguous", "to", "float", "type"})


def _normalized_source(g: Any, i: int, mom: dict[int, tuple[float, float] | None]) -> int | None:
    """The ``F.normalize`` node that node ``i`` is, through transposes, casts and constant
    factors (a number, or an operand whose value does not vary: a learned scale); else None."""
    node = g.nodes[i]
    for _ in range(16):
        t = str(node.target)
        if node.op != "function" or not node.inputs:
            return None
        if t == "normalize":
            return node.idx
        if t in _TRANSPOSES or (t in _MUL | _DIV and len(node.inputs) == 1):
            node = g.nodes[node.inputs[0]]
            continue
        if t in _MUL and len(node.inputs) == 2:
            fixed = [k for k in node.inputs if _fixed_value(mom.get(k))]
            if len(fixed) != 1:
                return None
            node = g.nodes[next(k for k in node.inputs if k != fixed[0])]
            continue
        return None
    return None


def _fixed_value(x: tuple[float, float] | None) -> bool:
    """Whether moments ``x`` are those of a value that does not vary (``E[x²] = E[x]²``)."""
    return x is not None and x[0] > 0 and x[0] - x[1] * x[1] <= 1e-9 * x[0]


def _similarities(
    g: Any,
    n: Any,
    ins: list[tuple[float, float] | None],
    mom: dict[int, tuple[float, float] | None],
    cross: Cross | None,
) -> tuple[float, float] | None:
    """A matrix of similarities between two sets of L2-normalized vectors — CLIP's and SimCLR's
    logits, ``F.normalize(u) @ F.normalize(v)ᵀ`` — from the normalized operands' moments: each
    entry the dot product of two rows over ``D`` coordinates (``E[x²] = 1/D`` for a normalized
    vector: :func:`_l2_normalized`) with ``c = E[u_k·v_k]`` per coordinate — the operands' cross
    moment where one encoder computed both (two inputs through one set of weights are
    correlated: :class:`~initwise.torch.cross.Cross`), else their means' product —
    ``E[y] = D·c``, ``E[y²] = D·E[u²v²] + D(D−1)·c²`` (``E[u²v²]`` by Isserlis). None unless
    both operands are such vectors (through transposes and casts). Before, the product had no
    moments: the logits' scale unknown, unsaid."""
    if ins[0] is None or ins[1] is None:
        return None
    sources = [_normalized_source(g, i, mom) for i in n.inputs]
    if sources[0] is None or sources[1] is None:
        return None
    (sa, ma), (sb, mb) = ins[0], ins[1]
    u, v = mom.get(sources[0]), mom.get(sources[1])
    if sa <= 0 or sb <= 0 or u is None or v is None or u[0] <= 0 or v[0] <= 0:
        return None
    d = max(round(1.0 / u[0]), 1)  # (a normalized vector's E[x²] is 1/D)
    c = cross(sources[0], sources[1]) if cross is not None else None
    # (a constant factor on either side — CLIP's exp(logit_scale) — scales it as it scales E[x²])
    c = c * math.sqrt(sa * sb / (u[0] * v[0])) if c is not None else ma * mb
    cov = c - ma * mb
    each = sa * sb + 4 * ma * mb * cov + 2 * cov * cov
    return (d * each + d * (d - 1) * c * c, d * c)


def _centered(
    info: ModelInfo, n: Any, x: tuple[float, float], modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """``x − x.mean(d, keepdim=True)``: what is left of ``x`` about its mean along ``d`` —
    ``E[y²] = Var[x]·(1 − 1/N)`` for ``N`` independent values (``N`` the width along ``d``
    where the graph tells it, :func:`~initwise.torch.graph.part_width`; else ``Var[x]``), mean
    0. None for any other difference. Before, the mean was taken as an independent operand:
    tokens of 64 ReLU units centred over the sequence were planned at E[x²] 1.36 where 0.64
    arrives (values that vary together along ``d`` keep less than this)."""
    g = info.graph
    m = g.nodes[n.inputs[1]]
    if not (
        m.op == "function"
        and str(m.target) == "mean"
        and m.inputs[:1] == [n.inputs[0]]
        and m.kwargs.get("keepdim") is True
    ):
        return None
    d = m.kwargs.get("dim", m.args[0] if m.args else None)
    if not isinstance(d, int):
        return None
    s, mu = x
    width = _width(info, modules, n.inputs[0], d)
    keep = 1.0 - 1.0 / width if width else 1.0
    return (max(s - mu * mu, 0.0) * keep, 0.0)


def _logarithm(t: str, x: tuple[float, float]) -> tuple[float, float] | None:
    """``log`` and ``log1p`` of a positive input by the delta method around ``m = E[x]``
    (``1 + E[x]`` for ``log1p``): ``E[y] ≈ log m − σ²/(2m²)``, ``Var[y] ≈ σ²/m²``, for an input
    concentrated away from 0 (``σ²/m² ≤`` :data:`RECIPROCAL_SPREAD`: a count, a positive
    statistic). None (unknown: said, or measured with an example input) otherwise — the
    logarithm of a unit Gaussian has no moments. Before, no rule: they passed their input's
    moments on (the ``log1p`` of counts around 30, E[x²] ≈ 930, before a layer that gets 11.7:
    output rms 0.1)."""
    s, mu = x
    var = max(s - mu * mu, 0.0)
    m = mu + 1.0 if t == "log1p" else mu
    if m <= 0 or var / (m * m) > RECIPROCAL_SPREAD:
        return None
    mean = math.log(m) - var / (2 * m * m)
    return (mean * mean + var / (m * m), mean)


_UNRULED = frozenset({"cumprod", "diff"})
"""Ops along a dimension whose moments depend on how the values along it relate — a running
product (NeRF's transmittance ``cumprod(1 − α)``), differences of neighbours (``2·Var[x]`` for
independent ones, near 0 for a smooth signal) — unknown to the walk: said without an example
input, measured with one. Before (2026-12-04) they passed their input's moments on: a head
after ``cumprod(sigmoid(h))`` came out at rms 0.18, after ``torch.diff(h)`` at 1.4–1.6, unsaid."""


def _product_over(
    n: Any, x: tuple[float, float], info: ModelInfo, modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """``x.prod(d)`` of ``k`` values independent along ``d``: ``E[y²] = E[x²]^k``,
    ``E[y] = E[x]^k`` (``k`` the width along ``d`` where the graph tells it,
    :func:`~initwise.torch.graph.part_width`); None where it does not, or over every entry.
    Before, it passed its input's moments on: pairs of values at E[x²] 4 multiplied (16) were
    planned at 4, output rms ×2."""
    dim = n.kwargs.get("dim", n.args[0] if n.args else None)
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    k = _width(info, modules, n.inputs[0], dim)
    if not k or k > 64:  # (beyond that the power under- or overflows: unknown)
        return None
    return (x[0] ** k, x[1] ** k)


SPECTRA = frozenset(
    f"fft_{i}{h}fft{d}" for i in ("", "i") for h in ("", "r", "h") for d in ("", "2", "n")
) | {"stft", "istft"}
"""Fourier transforms (``torch.fft.rfft`` is traced as ``fft_rfft``) and short-time ones."""


def _spectrum(
    n: Any, x: tuple[float, float], info: ModelInfo, modules: dict[str, nn.Module]
) -> tuple[float, float] | None:
    """A discrete Fourier transform of values with ``E[x²] = s``: each bin sums ``N`` of them,
    so ``E[|X|²] = N·s`` for ``torch.fft.fft``/``rfft`` with the default ``norm="backward"``
    (``s/N`` with ``norm="forward"``); any transform with ``norm="ortho"`` keeps ``s``
    (Parseval); the mean (a complex value's) is taken as 0. ``N`` is the transformed length:
    the ``n`` argument, else the width along ``dim`` where the graph tells it
    (:func:`~initwise.torch.graph.part_width`). None (unknown: said, or measured with an example
    input) for the others — inverse, 2-D/n-D and short-time transforms — and where ``N`` is not
    known. Before, no rule: they passed their input's moments on — the magnitudes
    ``torch.fft.rfft(x).abs()`` of 128 samples (E[|X|²] = 128) were planned at 1, output ×10.6,
    nothing said."""
    t = str(n.target)
    norm = n.kwargs.get("norm", n.args[2] if len(n.args) > 2 else None) or "backward"
    if norm == "ortho" and t not in ("stft", "istft"):
        return (x[0], 0.0)
    if t not in ("fft_fft", "fft_rfft") or norm not in ("backward", "forward"):
        return None
    size = n.kwargs.get("n", n.args[0] if n.args else None)
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else -1)
    if not (isinstance(size, int) and not isinstance(size, bool)):
        size = _width(info, modules, n.inputs[0], dim)
    if not isinstance(size, int) or size < 1:
        return None
    return (x[0] * size if norm == "backward" else x[0] / size, 0.0)


def _spread(t: str, x: tuple[float, float]) -> tuple[float, float]:
    """``x.std(d)`` / ``x.var(d)`` as a value (a feature: an x-vector's statistics pooling
    ``cat([h.mean(-1), h.std(-1)])``, Snyder et al. 2018): for values independent along ``d``
    the sample variance ``v`` has ``E[v] = Var[x]`` (unbiased; ``1 − 1/N`` of it with
    ``correction=0``, taken as 1) and ``E[v²] ≈ Var[x]²``, the standard deviation
    ``E[s²] = Var[x]``, ``E[s] ≈ √Var[x]`` (values that vary together along ``d`` keep less).
    Before, no rule: they passed their input's moments on — the std over time of 128 ReLU
    channels (E[x²] 1, Var 0.68) was taken at 1 where 0.68 arrives."""
    s, mu = x
    var = max(s - mu * mu, 0.0)
    if t == "var":
        return (var * var, var)
    return (var, math.sqrt(var))


RECIPROCAL_SPREAD = 0.25
"""The largest ``Var[x]/E[x]²`` whose reciprocal :func:`_reciprocal` gives moments for."""


def _reciprocal(x: tuple[float, float], c: float | None) -> tuple[float, float] | None:
    """``c / x`` for ``x`` concentrated away from 0 (``Var[x]/E[x]² ≤`` :data:`RECIPROCAL_SPREAD`:
    a sum of positive terms, a norm — a normalizer), by the delta method: ``E[1/x] ≈ (1 +
    σ²/μ²)/μ``, ``E[1/x²] ≈ (1 + 3σ²/μ²)/μ²``. None (unknown) otherwise: near 0 the reciprocal
    has no useful moments. (`1 / z` was taken for `z / 1`: a linear attention's normalizer came
    out at z's E[x²] 1.2·10⁵, not its reciprocal's.)"""
    s, mu = x
    if c is None or mu == 0:
        return None
    r = max(s - mu * mu, 0.0) / (mu * mu)
    if r > RECIPROCAL_SPREAD:
        return None
    return (c * c * (1 + 3 * r) / (mu * mu), c * (1 + r) / mu)


ALLOCATED = (
    "taken as the values written (where the writes leave part of it, its zeros lower E[x²] by "
    "that share)"
)
"""How a layer's reason says that its input is a tensor allocated (``zeros_like``, ``empty``)
and filled by writes by index, walked as the written values (:func:`_allocated`)."""

_ALLOCATING = frozenset({"zeros", "zeros_like", "new_zeros", "empty", "empty_like", "new_empty"})


def _allocated(info: ModelInfo, n: Any) -> tuple[str, int] | None:
    """``(the allocating op, how many writes so far)`` where ``setitem`` node ``n`` writes into a
    tensor made by zeros/empty (through earlier writes by index: a loop over positions), else
    None."""
    g = info.graph
    if g is None or not n.inputs:
        return None
    i, writes = n.inputs[0], 1
    for _ in range(100_000):
        v = g.nodes[i]
        if v.op != "function" or v.target != "setitem" or not v.inputs:
            break
        i, writes = v.inputs[0], writes + 1
    v = g.nodes[i]
    return (str(v.target), writes) if v.op == "function" and v.target in _ALLOCATING else None


_FILLED = {
    "new_zeros": (0.0, 0.0),
    "zeros_like": (0.0, 0.0),
    "zeros": (0.0, 0.0),
    "new_ones": (1.0, 1.0),
    "ones_like": (1.0, 1.0),
    "ones": (1.0, 1.0),
}
"""Tensors made from another one's shape only: their own (constant) moments."""


def _from_softmax(info: ModelInfo, idx: int) -> bool:
    """Whether graph node ``idx`` is a softmax's output (through reshapes: ``a[..., None]``)."""
    return info.graph is not None and from_softmax(info.graph, idx)


def _from_shape(info: ModelInfo, idx: int) -> bool:
    """Whether node ``idx`` is a number computed from a tensor's shape (``math.sqrt(h.shape[-1])``,
    ``x.size(-1) ** -0.5``) through one-input functions."""
    g = info.graph
    assert g is not None
    for _ in range(16):
        v = g.nodes[idx]
        if v.op != "function":
            return False
        if shape_query(v):
            return True
        if len(v.inputs) != 1:
            return False
        idx = v.inputs[0]
    return False


def _straight_through(n: Any, info: ModelInfo) -> int | None:
    """The node whose value an addition of a straight-through estimator passes on, else None:
    ``x + (q − x).detach()`` (VQ-VAE's quantizer, van den Oord et al. 2017: the value is ``q``,
    the gradient goes to ``x``) and ``(h − x.detach()) + x`` (a straight-through hard sample:
    the value is ``h``). Added as independent terms, the walk gave VQ-VAE's decoder the input
    E[x²] 3 for the codes' 1 (its output came out at E[y²] 0.19 for a unit target)."""
    g = info.graph
    if n.target not in _ADD or len(n.inputs) != 2 or g is None:
        return None

    def fn(i: int, names: Collection[str], arity: int) -> Any:
        v = g.nodes[i]
        return v if v.op == "function" and v.target in names and len(v.inputs) == arity else None

    sub = _SUB - {"rsub"}
    for x, y in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
        d = fn(y, ("detach",), 1)  # x + (q − x).detach()
        s = fn(d.inputs[0], sub, 2) if d is not None else None
        if s is not None and s.inputs[1] == x:
            return s.inputs[0]
        s = fn(y, sub, 2)  # (h − x.detach()) + x
        d = fn(s.inputs[1], ("detach",), 1) if s is not None else None
        if d is not None and d.inputs == [x]:
            return s.inputs[0]
    return None


def _sinusoid(t: str, x: tuple[float, float]) -> tuple[float, float]:
    """``(E[y²], E[y])`` of ``y = sin(x)`` or ``cos(x)`` for a Gaussian ``x`` of mean ``μ`` and
    variance ``v`` (the characteristic function ``E[e^{ix}] = e^{iμ − v/2}``): ``E[sin x] =
    sin μ·e^{−v/2}``, ``E[sin² x] = (1 − cos 2μ·e^{−2v})/2``; ``E[cos x] = cos μ·e^{−v/2}``,
    ``E[cos² x] = (1 + cos 2μ·e^{−2v})/2``. Closed forms, since a quadrature cannot follow
    ``sin(√q z)`` at the ``q`` of a positional encoding's high frequencies (NeRF's
    ``sin(2⁹·π·p)``: ``q`` ≈ 10⁶). Passed through as an unknown function, a NeRF's encoding
    came out at E[x²] 3.3·10⁵ instead of ≈ 0.5, and its output at rms 0.001."""
    s, mu = x
    v = max(s - mu * mu, 0.0)
    damp, damp2 = math.exp(-v / 2), math.exp(-2 * v)
    if t == "sin":
        return ((1 - math.cos(2 * mu) * damp2) / 2, math.sin(mu) * damp)
    return ((1 + math.cos(2 * mu) * damp2) / 2, math.cos(mu) * damp)


def _squared(x: tuple[float, float]) -> tuple[float, float]:
    """``(E[y²], E[y])`` of ``y = z²`` for a Gaussian ``z`` of mean ``μ`` and variance ``v``:
    ``E[z⁴] = μ⁴ + 6μ²v + 3v²``, ``E[z²] = μ² + v``. Passed through as an unknown function
    before, a square kept its input's moments (its mean, for one, is ``E[z²] ≥ 0``, not ``μ``)."""
    s, mu = x
    v = max(s - mu * mu, 0.0)
    return (mu**4 + 6 * mu * mu * v + 3 * v * v, s)


def _folded(x: tuple[float, float]) -> tuple[float, float]:
    """``(E[y²], E[y])`` of ``y = |z|`` for a Gaussian ``z`` of mean ``μ`` and variance ``v``
    (the folded normal): ``E[y²] = E[z²]``, ``E[y] = √(2v/π)·e^{−μ²/2v} + μ·erf(μ/√(2v))``."""
    s, mu = x
    v = max(s - mu * mu, 0.0)
    if v <= 0:
        return (s, abs(mu))
    return (
        s,
        math.sqrt(2 * v / math.pi) * math.exp(-mu * mu / (2 * v))
        + mu * math.erf(mu / math.sqrt(2 * v)),
    )


def _square_of(g: Any, n: Any) -> int | None:
    """The node ``z`` when node ``n`` computes ``z²`` (``z ** 2``, ``torch.square(z)``,
    ``z * z``), else None."""
    if n.op != "function" or not n.inputs:
        return None
    t = str(n.target)
    if t in ("pow", "pow_") and len(n.inputs) == 1 and n.args[:1] in ((2,), (2.0,)):
        return n.inputs[0]
    if t == "square" and len(n.inputs) == 1:
        return n.inputs[0]
    if t in _MUL and len(n.inputs) == 2 and n.inputs[0] == n.inputs[1]:
        return n.inputs[0]
    return None


def _exp_quadratic(
    g: Any, n: Any, mom: dict[int, tuple[float, float] | None]
) -> tuple[float, float] | None:
    """``(E[y²], E[y])`` of ``y = exp(c·z²)`` — a Gaussian radial basis expansion (SchNet's,
    PyG's ``GaussianSmearing``: ``exp(−γ·(d − μ_k)²)``), written with ``neg``, scalar ``mul``
    or ``div`` around ``z ** 2`` — for a Gaussian ``z`` of mean ``m`` and variance ``v``:
    ``E[exp(t·z²)] = exp(t·m²/(1 − 2tv))/√(1 − 2tv)`` (``t < 1/(2v)``), with ``t = c`` for
    ``E[y]`` and ``t = 2c`` for ``E[y²]``. The lognormal rule, which takes the exponent to be
    Gaussian, put such an expansion at E[y²] ≈ 10³⁰¹ (every value is in (0, 1] for ``c < 0``)
    and the filter layer reading it at std 5·10⁻¹⁵², which no float can hold. None when ``n``'s
    input is not of that form or the expectation diverges."""
    i, c = (n.inputs[0] if len(n.inputs) == 1 else -1), 1.0
    while i >= 0:
        m = g.nodes[i]
        t = str(m.target) if m.op == "function" else ""
        k = _scalar(m.args) if len(m.inputs) == 1 else None
        if t == "neg" and len(m.inputs) == 1:
            c = -c
        elif t in _MUL and k is not None:
            c *= k
        elif t in _DIV and k is not None and k != 0:  # (z² / k; the graph keeps the
            c /= k  # scalar, not its side: as the walk's own rule for a division)
        else:
            break
        i = m.inputs[0]
    z = _square_of(g, g.nodes[i]) if i >= 0 else None
    x = mom.get(z) if z is not None else None
    if x is None:
        return None
    s, mu = x
    v = max(s - mu * mu, 0.0)
    a1, a2 = 1 - 2 * c * v, 1 - 4 * c * v
    if a1 <= 0 or a2 <= 0:
        return None
    e1 = c * mu * mu / a1
    e2 = 2 * c * mu * mu / a2
    if max(e1, e2) > 700:
        return None
    return (math.exp(e2) / math.sqrt(a2), math.exp(e1) / math.sqrt(a1))


_SIGNAL_PRODUCTS = frozenset({"matmul", "bmm", "mm", "einsum"})


def _unknown_output(g: Any, mom: dict[int, tuple[float, float] | None], i: int) -> str:
    """Where the model's output lost its moments, when it was a product of two signals the walk
    has no rule for — a biaffine scorer's ``(h_dep·U) @ h_headᵀ`` (Dozat & Manning 2017), a
    bilinear similarity, a two-tower score written as a matrix product — whose scale is in a
    contracted width the graph does not have: ``"the product of two signals 'matmul' (node
    9)"``; ``""`` where it lost them otherwise (a softmax's probabilities, indices, booleans:
    none by design). Follows the unknown input back to the op whose inputs were known."""
    stack, seen = [i], set()
    with_param = ""
    while stack:  # (back through sums, products and reshapes of unknown values)
        j = stack.pop()
        if j in seen:
            continue
        seen.add(j)
        n = g.nodes[j]
        known = [k for k in n.inputs if mom.get(k) is not None]
        if n.op != "function":
            continue
        if n.target in _SIGNAL_PRODUCTS and len(known) >= 2:
            return f"the product of two signals '{n.target}' (node {n.idx})"
        if (
            n.target in _SIGNAL_PRODUCTS
            and known
            and any(g.nodes[k].op == "param" for k in n.inputs)
        ):  # (the biaffine scorer's `h_head·u` added to its product: a vector the walk does
            # not follow; said where no product of two signals is found)
            with_param = with_param or (
                f"the product of a signal and a parameter '{n.target}' (node {n.idx})"
            )
        if n.target in _AFFINE_PASS or n.target in _ADD | _SUB | _MUL | _DIV:  # (`s / τ` too)
            stack += [k for k in n.inputs if mom.get(k) is None]
    return with_param


_DISTANCE_WHAT = {"cosine_similarity": "cosine similarities", "pairwise_distance": "distances"}


def _distances(
    n: Any,
    ins: list[tuple[float, float] | None],
    info: ModelInfo,
    cross: Cross | None,
) -> tuple[float, float] | None:
    """Euclidean distances between points — ``cdist(X, Y)``, ``pdist(X)``, and
    ``pairwise_distance(a, b)`` of paired rows — and cosine similarities of paired rows, whose
    dimension ``D`` is the width of the layer one side comes from
    (:func:`~initwise.torch.graph.feature_width`). Each coordinate's difference has
    ``v = E[x²] + E[y²] − 2·E[x·y]`` — ``E[x·y]`` the means' product for two different points
    (``cdist``, ``pdist``), the pair's cross moment for paired rows (one encoder's two outputs
    are correlated: :class:`~initwise.torch.cross.Cross`) — so ``E[d²] = D·v`` and
    ``E[d] = √(2v)·Γ((D+1)/2)/Γ(D/2)`` (the χ distribution's mean); a cosine has mean
    ``ρ = E[x·y]/√(E[x²]E[y²])`` and ``E[cos²] = ρ² + (1 − ρ²)²/D`` (Gaussian vectors). None
    where ``D`` is not known or the norm is not the Euclidean one (``p`` ≠ 2). Before, every
    distance was taken for points of one coordinate and said — a prototype network's head was
    solved for ``E[d²]`` 2 where 128 arrives (output rms 8.7) — and a cosine had no rule."""
    t = str(n.target)
    known = [x for x in ins if x is not None]
    p = n.kwargs.get("p", n.args[0] if n.args and isinstance(n.args[0], (int, float)) else 2.0)
    if (p != 2 and t != "cosine_similarity") or info.graph is None or not known:
        return None
    mods = {k: lay.module for k, lay in info.layers.items()}
    d = next((w for i in n.inputs if (w := feature_width(info.graph.nodes, mods, i))), None)
    if d is None:
        return None
    a, b = known[0], known[1] if len(known) > 1 else known[0]
    paired = t in ("pairwise_distance", "cosine_similarity")
    if paired and (len(ins) < 2 or ins[0] is None or ins[1] is None):
        return None
    ab = a[1] * b[1]
    if paired and cross is not None:
        tied = cross(n.inputs[0], n.inputs[1])
        ab = tied if tied is not None else ab
    if t == "cosine_similarity":
        rho = max(-1.0, min(1.0, ab / math.sqrt(a[0] * b[0]))) if a[0] * b[0] > 0 else 0.0
        return (rho * rho + (1 - rho * rho) ** 2 / d, rho)
    v = max(a[0] + b[0] - 2 * ab, 0.0)
    mean = math.sqrt(2 * v) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    return (d * v, mean)


def _scalar(args: tuple) -> float | None:
    for a in args:
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            return float(a)
    return None


def _pad_said(
    n: Any, via: dict[int, tuple[str, bool, str]], modules: dict[str, nn.Module] | None = None
) -> None:
    """Record, for the layers that read it, that zero-padding node ``n`` (``F.pad`` or a padding
    module: :func:`~initwise.torch.pooling.zero_pad`) was passed on unmeasured."""
    adds = zero_pad_said(n, modules)
    if adds is not None and str(n.target).startswith("masked_fill"):
        via[n.idx] = (
            f"a fill with zeros ('{n.target}', node {n.idx}: {adds})",
            False,
            ", taken to leave E[x²] unchanged — the zeros lower it by the share of entries "
            "the mask selects, which is in the data (a batch of sequences half padding "
            "halves it); give example_input= to measure it",
        )
    elif adds is not None:
        via[n.idx] = (
            f"zero padding ('{n.target}', node {n.idx}: {adds})",
            False,
            ", taken to leave E[x²] unchanged — the zeros lower it by the share of the "
            "padded tensor they take, which is in the input's shape (padding half the "
            "channels halves it); give example_input= to measure it",
        )


def _function(
    n: Any,
    ins: list[tuple[float, float] | None],
    known: list[tuple[float, float]],
    k: str,
    info: ModelInfo,
    mom: dict[int, tuple[float, float] | None],
    via: dict[int, tuple[str, bool, str]],
    cross: Cross | None,
    modules: dict[str, nn.Module],
) -> tuple[float, float] | None:
    t = n.target

    def tied() -> float | None:
        """E[a·b] of a sum's or product's two operands where one set of weights computed both
        (cross.py); None where they are independent (then the product of their means)."""
        if cross is None or len(ins) < 2 or ins[0] is None or ins[1] is None:
            return None
        return cross(n.inputs[0], n.inputs[1])

    if k == "norm" and n.idx in info.code_norms:  # a norm written as a formula
        src, rms = info.code_norms[n.idx]
        x = mom.get(src)
        return _normed([x] if x is not None else [], rms)
    if k == "norm":  # a normalization called as a function (graph.NORM_FUNCS)
        return _normed(known, t == "rms_norm")
    if k == "act":
        src = info.composite.get(n.idx)
        x = mom.get(src) if src is not None else (known[0] if known else None)
        return _activate(info.acts[n.idx], x if x is not None else _unknown(n, via))
    if t in _NO_DATA or (t == "getattr" and n.args[:1] in (("shape",), ("ndim",))):
        return None  # (booleans, indices, a tensor's shape: none of its moments)
    if t == "local_response_norm" and known:  # (input, size, alpha, beta, k)
        a = (*n.args[1:], *([None] * 4))
        kw = n.kwargs
        return _lrn(
            known[0],
            kw.get("alpha", a[0] if a[0] is not None else 1e-4),
            kw.get("beta", a[1] if a[1] is not None else 0.75),
            kw.get("k", a[2] if a[2] is not None else 1.0),
        )
    if t in SOFTMAX_FUNCS:  # attention weights: no moments (what they weight is
        return None  # a pool node: pooling.attention_matmuls, pooling.ATTENTION_FUNCS)
    if t in ("masked_scatter", "masked_scatter_"):  # the destination's moments (the source is
        return ins[0] if ins else None  # solved to match them: _scatter_dest)
    if n.idx in info.generated:  # a generated weight: E[y²] = fan_in·E[w²]·E[x²]
        if len(ins) < 2 or ins[0] is None or ins[1] is None:
            return None
        return (info.generated[n.idx][1] * ins[1][0] * ins[0][0], 0.0)
    if t in ("matmul", "mm") and info.graph is not None and len(ins) == 2:
        sim = _similarities(info.graph, n, ins, mom, cross)
        if sim is not None:
            return sim
    if t in ("matmul", "bmm", "einsum"):  # (attention's are pool nodes, not passed here)
        return None
    if (
        ins and ins[0] is not None and zero_pad(n)
    ):  # unmeasured (no example input): passed on and said.
        # Before, a shape op, unsaid: an option-A ResNet's channel padding halves E[x²] (output
        # 0.41 where the example input's measurement gives 1.19), a TCN's causal left padding of
        # (k−1)·d lowers it by the padded share of each sequence (0.85 against 1.02)
        _pad_said(n, via)
        return ins[0]
    if t in _SHAPE_OPS or (t.startswith("_") and t.lstrip("_") in _SHAPE_OPS):
        # (a private helper named as one, fx-wrapped: torchvision MViT's `_squeeze(x, …,
        # tensor_dim)`, whose other inputs are ints fx cannot tell from tensors)
        return ins[0] if ins else None
    if t in _FILLED:  # `h = x.new_zeros(B, H)`: an RNN's first state carries no moments of x
        return _FILLED[t]
    if not known:
        return None
    if t == "normalize":
        return _l2_normalized(n, known[0], info, modules)
    if t in VECTOR_NORMS and len(known) == 1:
        return _vector_norm(n, known[0], info, modules)
    if t in _DIV and len(n.inputs) == 2 and ins[0] is not None and info.graph is not None:
        dim = _norm_dim(info.graph, n.inputs[1], n.inputs[0])
        if dim is not None:  # `x / x.norm(dim=d, keepdim=True)`: F.normalize written out
            return _unit_slices(n, ins[0], info, modules, dim)
    if t == "glu":
        return _glu(known[0])
    if t in ("sin", "cos") and len(known) == 1:
        return _sinusoid(t, known[0])
    if t == "exp" and len(known) == 1 and info.graph is not None:  # exp(c·z²): a radial basis
        rbf = _exp_quadratic(info.graph, n, mom)
        if rbf is not None:
            return rbf
    if t in ("log", "log1p") and len(known) == 1 and len(n.inputs) == 1:
        return _logarithm(t, known[0])
    if t == "exp" and len(known) == 1:  # lognormal: E[eˣ] = e^{μ+v/2}, E[e²ˣ] = e^{2μ+2v}
        s, mu = known[0]
        v = max(s - mu * mu, 0.0)
        return (math.exp(min(2 * mu + 2 * v, 700.0)), math.exp(min(mu + v / 2, 700.0)))

    if info.graph is not None and len(known) == 1 and _square_of(info.graph, n) is not None:
        return _squared(known[0])
    if t in DISTANCE_FUNCS and len(known) >= 1:  # unmeasured (no example input)
        dist = _distances(n, ins, info, cross)
        if dist is not None:
            return dist
        if t == "cosine_similarity":
            return None  # (no width: unknown, said where it is read)
        via[n.idx] = (
            f"pairwise distances ('{t}', node {n.idx})",
            False,
            ", taken for points of one coordinate (E[d²] = 2·Var[x]) — E[d²] grows with the "
            "points' dimension, which the graph does not have; give example_input= to measure "
            "it",
        )
        v = max(known[0][0] - known[0][1] ** 2, 0.0)
        return (2 * v, 2 * math.sqrt(v / math.pi))
    if t == "neg" and len(known) == 1:
        return (known[0][0], -known[0][1])
    if t == "abs" and len(known) == 1:
        if info.graph is not None and str(info.graph.nodes[n.inputs[0]].target) in SPECTRA:
            return (known[0][0], math.sqrt(math.pi * known[0][0]) / 2)  # (|X| of a complex
        return _folded(known[0])  # spectrum: Rayleigh, E|X| = √(π·E|X|²)/2)
    if t in ("std", "var") and len(known) == 1 and len(n.inputs) == 1:
        return _spread(t, known[0])
    if t in _UNRULED:  # (their scale is in what they combine: unknown, said or measured)
        return None
    if t == "prod" and len(known) == 1 and len(n.inputs) == 1:
        return _product_over(n, known[0], info, modules)
    if t in SPECTRA:
        return _spectrum(n, known[0], info, modules) if len(known) == 1 else None
    if t == "sqrt" and len(known) == 1 and known[0][1] > 0:  # (of a non-negative value: a
        # distance written as ((a − b)²).sum(-1).sqrt(); E[(√x)²] = E[x], E[√x] ≤ √E[x])
        return (known[0][1], math.sqrt(known[0][1]))
    c = _scalar(n.args)
    through = _straight_through(n, info)
    if through is not None:  # x + (q − x).detach(): the value is q's
        return mom.get(through)
    if t == "lerp" and len(ins) == 2 and len(known) == 2:  # a + w·(b − a), w a number
        w = n.kwargs.get("weight", n.args[-1] if n.args else None)
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            (sa, ma), (sb, mb) = known
            ab = tied()
            ab = ab if ab is not None else ma * mb
            u = 1.0 - w
            return (max(u * u * sa + w * w * sb + 2 * u * w * ab, 0.0), u * ma + w * mb)
    if t in _SUB and len(n.inputs) == 2 and ins[0] is not None and info.graph is not None:
        centered = _centered(info, n, ins[0], modules)
        if centered is not None:
            return centered
    if t in _ADD | _SUB:
        if len(known) >= 2:
            (sa, ma), (sb, mb) = known[0], known[1]
            alpha = n.kwargs.get("alpha", 1.0)  # torch.add(x, y, alpha=a): x + a·y
            a = float(alpha) if isinstance(alpha, (int, float)) else 1.0
            sign = (-1.0 if t in _SUB else 1.0) * a
            ab = tied()
            ab = ab if ab is not None else ma * mb
            return (max(sa + sign * sign * sb + 2 * sign * ab, 0.0), ma + sign * mb)
        if c is not None:
            s, mu = known[0]
            if t == "rsub":  # c − x (`1 - z`: a GRU's or a highway's carry): E[(c − x)²]
                return (s - 2 * c * mu + c * c, c - mu)
            c = -c if t in _SUB and n.inputs else c
            return (s + 2 * c * mu + c * c, mu + c)
        return None if _lost_data(info, n, ins) else known[0]
    if t in _MUL and any(_from_softmax(info, i) for i in n.inputs):
        # attention written as a weighted sum, `(a[..., None] * H).sum(1)`: the weights'
        # moments are not the values' (×1/N² each); what the sum gives is measured as a pool
        return None
    if t in _MUL:
        if len(known) >= 2:
            (sa, ma), (sb, mb) = known[0], known[1]
            ab = tied()
            if ab is not None:  # Gaussian operands (Isserlis): E[a²b²] = E[a²]E[b²] +
                cov = ab - ma * mb  # 4·E[a]E[b]·Cov + 2·Cov², E[ab] = E[a]E[b] + Cov
                return (sa * sb + 4 * ma * mb * cov + 2 * cov * cov, ab)
            return (sa * sb, ma * mb)
        if c is not None:
            s, mu = known[0]
            return (s * c * c, mu * c)
        if any(mom.get(i) is None and _from_shape(info, i) for i in n.inputs):
            via[n.idx] = (  # nGPT's `logits · √d` with d = h.shape[-1]: no shapes in the graph
                f"a factor computed from a tensor's shape ('{t}', node {n.idx})",
                False,
                ", taken as 1 (the graph has no shapes); give example_input= to check it",
            )
        return None if _lost_data(info, n, ins) else known[0]
    if t in _DIV and c is not None and c != 0 and len(known) == 1:
        s, mu = known[0]
        return (s / (c * c), mu / c)
    if t in ("rtruediv", "reciprocal") and len(known) == 1:
        return _reciprocal(known[0], 1.0 if t == "reciprocal" else c)
    if t == "setitem" and len(ins) > 1:
        made = _allocated(info, n)
        if made is not None and ins[-1] is None:
            return None  # (what is written is unknown: so is the tensor, not its zeros)
        if made is not None:  # `out = zeros_like(h); out[:, t] = f(h[:, t])` in a loop: the
            # writes are its content, not a small share of zeros — their values' average (the
            # zeros had come out as the reader's input: E[x²] 0, drawn for a unit input)
            root, writes = made
            came = via.get(n.inputs[0])
            if came is None or ALLOCATED not in came[0]:
                via[n.idx] = (
                    f"a tensor made by '{root}' and written by index ('setitem', node {n.idx}): "
                    f"{ALLOCATED}",
                    False,
                    ", give example_input= to measure what reads it",
                )
            else:
                via[n.idx] = came
            prev, v = ins[0], ins[-1]
            if writes == 1 or prev is None:
                return v
            return tuple((a * (writes - 1) + b) / writes for a, b in zip(prev, v, strict=True))  # type: ignore[return-value]
    if t == "setitem" and ins and ins[0] is not None:  # `ctx[idx] = v`: the tensor written
        # into, its moments taken as they were (the write's share is the index's, unknown
        # without an example input; with one, what reads it is measured: :func:`unknown_inputs`)
        # — an assumption where a layer is solved from it when what is written is computed
        # from the data (it was said in the reason only: Informer's attention output written
        # over a cumulative sum); a parameter or constant written at masked positions
        # (wav2vec2/HuBERT's masked_spec_embed in train mode) stays a note
        write = f"a write by index into it ('setitem', node {n.idx}; {WRITTEN})"
        came = via.get(n.inputs[0])
        g = info.graph
        signal = g is not None and len(n.inputs) > 1 and _from_data(g, n.inputs[-1])
        tip = ", give example_input= to measure what reads it" if signal else ""
        if came is not None and WRITTEN in came[0] and (not came[1] or not signal):
            via[n.idx] = came  # (writes in a loop: said once)
        elif came is not None and not came[1]:  # (an assumption on the way stays said)
            via[n.idx] = (f"{came[0]}, then {write}", False, came[2] or tip)
        else:
            via[n.idx] = (write, not signal, tip)
        return ins[0]
    if t in _CAT:
        if _lost_data(info, n, ins):
            # a part computed from the data by an op the walk has no rule for (DLRM's pairwise
            # dot products `bmm(T, Tᵀ)`): the concatenation's moments are unknown, said (and
            # measured with an example input) where a layer reads them. Before, the known
            # parts' average was taken for all of it: the top MLP's first layer solved for
            # E[x²] 1 where ~9.5 arrives (output rms ×2.6), unsaid
            return None
        sizes = _cat_sizes(info, n, modules) if len(known) == len(ins) > 1 else None
        if sizes is not None:  # each part weighed by its size along the concatenated dimension
            total = sum(sizes)
            return (
                sum(w * x[0] for w, x in zip(sizes, known, strict=True)) / total,
                sum(w * x[1] for w, x in zip(sizes, known, strict=True)) / total,
            )
        lo, hi = min(x[0] for x in known), max(x[0] for x in known)
        g = info.graph
        from_data = [_from_data(g, i) for i in n.inputs] if g is not None else []
        if len(known) == len(ins) > 1 and hi > UNSIZED_SPREAD * lo and len(set(from_data)) > 1:
            # a learned part (a class token) joined to the data's (the patches, a sequence of a
            # length the graph does not have), unlike in scale: any sizes average alike parts
            # alike, not these — a class token overridden to 2 among 16 patches came at E[x²]
            # 1.18 where the equal average said 2.5
            via[n.idx] = (
                f"a concatenation '{t}' (node {n.idx}) of {UNSIZED_PARTS}",
                False,
                f" (E[x²] {lo:.3g} to {hi:.3g}), averaged as if equal in size; give "
                "example_input= to measure it",
            )
        return (
            sum(x[0] for x in known) / len(known),
            sum(x[1] for x in known) / len(known),
        )
    if k == "stop":
        return None
    if index_sum(n) and len(ins) >= 2 and ins[-1] is not None:  # a message-passing GNN's
        # aggregation, unmeasured (no example input): taken as one term and said. Before, no
        # rule: the zero base's moments were taken, and a concatenation beside it counted the
        # other side alone (a 4-layer network's output rms 150, unsaid)
        base, src = ins[0] if ins[0] is not None else (0.0, 0.0), ins[-1]
        via[n.idx] = (
            f"a sum by index ('{t}', node {n.idx}: each target sums the sources its index sends "
            "it)",
            False,
            ", taken to leave E[x²] unchanged — a sum of N independent terms multiplies it by "
            "N, and N is in the index; give example_input= to check it, divide by the count, "
            "or give an override",
        )
        return (base[0] + src[0] + 2 * base[1] * src[1], base[1] + src[1])
    if t == "sum" and len(known) == 1 and info.graph is not None:  # over the features
        over = _feature_sum(info, n, known[0], modules)
        if over is not None:
            return over
    came = via.get(n.inputs[0]) if t == "sum" and n.inputs else None
    if came is not None and came[0].startswith(WEIGHTED_SUM):  # (said at the product: an
        return known[0] if len(known) == 1 else None  # average of the values)
    if t in ("sum", "cumsum") and len(known) == 1 and summed_dims(n) is not None:  # Deep Sets'
        what = "a cumulative sum along" if t == "cumsum" else "a sum over"  # Σ over the set,
        via[n.idx] = (  # a GNN's sum aggregation, a prefix sum: how many terms is in the data
            f"{what} dimension {summed_dims(n)} ('{n.target}', node {n.idx})",
            False,
            ", taken to leave E[x²] unchanged — a sum of N independent terms multiplies it by "
            "N; give example_input= to measure it, write a mean, or give an override",
        )
    return known[0] if len(known) == 1 and not _lost_data(info, n, ins) else None


def _reaches_output(info: ModelInfo, name: str) -> bool:
    """Whether a path leads from module ``name``'s node to the model's output (a module whose
    output nothing reads — PaliGemma's SigLIP pooling head — has no say in it)."""
    g = info.graph
    starts = [n.idx for n in g.nodes if n.op == "module" and n.target == name] if g else []
    if g is None or not starts:  # (not in the graph: taken as used)
        return True
    users = g.users()
    return any(
        g.nodes[i].op == "output" for s in starts for i in downstream(users, s, lambda _: True)
    )
