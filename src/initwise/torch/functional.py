"""Layers that ``forward`` computes through functions rather than modules, read into the graph
(:func:`functional_layers`, run by :func:`~initwise.torch.inspection.inspect_model` between tracing
and analysis):

* a module's own weight used through a function — ``F.linear(x, lin.weight)``,
  ``F.convNd(x, conv.weight, …)``, ``lin.weight @ x`` — where the module never runs as itself:
  a call of that module;
* a raw ``nn.Parameter`` in a product with the signal — ``x @ W``, ``matmul``/``mm``/``addmm``,
  ``F.linear``, a two-operand ``einsum``, ``F.convNd`` — a
  :class:`~initwise.torch.modules.FunctionalLinear` / ``FunctionalConv`` site named by the
  parameter, its bias the vector parameter added right after;
* a custom leaf module whose parameters are all such weights: traced into;

and, for the planner, raw parameters concatenated with or added to the signal (class tokens,
position tables: :func:`token_parameters`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterator
from typing import Any

import torch
from torch import nn

from .graph import (
    SHAPE_OPS,
    Graph,
    LeafTracer,
    Node,
    behind,
    constant_factor,
    downstream,
    from_fx,
)
from .modules import (
    FunctionalConv,
    FunctionalEinsum,
    FunctionalLayer,
    FunctionalLinear,
    einsum_roles,
    has_children,
    has_parametrizations,
    owns_parameters,
    probed_tokenizer,
)
from .modules import kind as module_kind

_FUNCTIONAL_LAYERS: dict[str, tuple[type, ...]] = {
    "linear": (nn.Linear,),
    "conv1d": (nn.Conv1d,),
    "conv2d": (nn.Conv2d,),
    "conv3d": (nn.Conv3d,),
    "matmul": (nn.Linear,),
    "mm": (nn.Linear,),
}
"""Functions that compute a layer with its module's own weight (``F.linear(x, self.qkv.weight,
bias)``, ``F.conv1d(x, self.conv1d.weight, …)``, ``self.dt_proj.weight @ x``), read as a call of
that module."""


def functional_layers(model: nn.Module, graph: Graph) -> Graph:
    """``graph`` with each ``linear(x, <module>.weight, …)`` call read as a call of that
    ``nn.Linear`` module (BEiT's and EVA's attention compute q/k/v with
    ``F.linear(x, self.qkv.weight, torch.cat((q_bias, k_bias, v_bias)))``, so the module never
    ran as one and the moments stopped at the function). Only where the module is not also
    called as itself, and only the first such call. Then raw parameters used as a layer's
    weight become :class:`~initwise.torch.modules.FunctionalLinear` sites
    (:func:`raw_parameter_layers`), and (fx graphs) a custom module whose parameters are all
    such weights is traced into (:func:`_inline_custom`)."""
    graph = module_weight_calls(model, graph)
    graph = raw_parameter_layers(model, graph)
    return _inline_custom(model, graph) if graph.method == "fx" else graph


def module_weight_calls(model: nn.Module, graph: Graph) -> Graph:
    """The module-weight half of :func:`functional_layers`: ``F.linear(x, lin.weight, …)``,
    ``F.convNd(x, conv.weight, …)`` and ``lin.weight @ x`` / ``x @ lin.weight.T`` (the weight
    read as is or through casts, transposes and squeeze/unsqueeze round trips), read as a call
    of that module where it never runs as itself (Hugging Face's Mamba without its CUDA
    kernels calls ``F.conv1d`` with ``conv1d.weight`` and computes ``dt_proj.weight @ x``)."""
    modules = dict(model.named_modules())
    called = {n.target for n in graph.nodes if n.op == "module"}
    users = graph.users()
    for n in graph.nodes:
        t = str(n.target)
        cls = _FUNCTIONAL_LAYERS.get(t) if n.op == "function" else None
        if cls is None or len(n.inputs) < 2:
            continue
        j = 0 if t in ("matmul", "mm") and len(n.inputs) == 2 else 1  # (W @ x: W first)
        for i in (j, 1) if j == 0 else (1,):
            read = weight_read(graph, users, n.inputs[i])
            if read is None:
                continue
            owner, flip = read
            m = modules.get(owner)
            # a Linear's (out, in) weight contracts its in-dimension in W @ x and x @ Wᵀ only
            wrong_way = t in ("matmul", "mm") and flip != (i == 1)
            if owner in called or not isinstance(m, cls) or wrong_way:
                continue
            if t not in ("matmul", "mm") and flip:
                continue
            _as_call(n, owner, n.inputs[1 - i] if t in ("matmul", "mm") else n.inputs[0])
            called.add(owner)
            graph.weight_calls[owner] = m
            break
    return graph


def weight_read(graph: Graph, users: list[list[int]], idx: int) -> tuple[str, bool] | None:
    """``(owner module, transposed)`` where node ``idx`` reads a module's ``weight`` — directly
    or through single-use casts, transposes and squeeze/unsqueeze — else None."""
    read = _read(graph, users, idx)
    if read is None:
        return None
    owner, _, attr = read[0].target.rpartition(".")
    return (owner, read[1]) if attr == "weight" else None


def _read(
    graph: Graph, users: list[list[int]], idx: int, scaled: bool = False
) -> tuple[Node, bool, float] | None:
    """``(param node, transposed, factor)`` that node ``idx`` reads through single-use casts,
    transposes and squeeze/unsqueeze (:func:`_flips`) — and, where ``scaled``, products with
    and divisions by a number (:func:`~initwise.torch.graph.constant_factor`: ``factor``, else
    1) — else None."""
    node, flip, factor = graph.nodes[idx], False, 1.0
    while node.op == "function":
        c = constant_factor(node) if scaled else None
        f = _flips(node) if c is None else False
        if f is None or len(users[node.idx]) != 1 or not node.inputs:
            return None
        flip ^= f
        factor *= 1.0 if c is None else c
        node = graph.nodes[node.inputs[0]]
    return (node, flip, factor) if node.op == "param" else None


CASTS = frozenset(
    {"to", "type", "float", "half", "bfloat16", "double", "type_as", "contiguous", "clone"}
)
"""Ops on a parameter on its way to a product that change neither its values' layout nor their
distribution (mixed-precision code casts its weights)."""


def _flips(node: Node) -> bool | None:
    """Whether a single-use op on a 2-D parameter transposes it (``W.t()``, ``W.T``,
    ``W.mT``, ``W.transpose(0, 1)``, ``W.permute(1, 0)``), keeps it (a cast), or None (any
    other op: not a weight read as is)."""
    t, a = str(node.target), node.args
    if t in CASTS or t in ("squeeze", "unsqueeze"):  # (a conv weight's (C, 1, k) round trip)
        return False
    if t == "t":  # (`W.T` is recorded as `t`, `W.mT` as `transpose(-2, -1)`)
        return True
    if t == "transpose" and len(a) == 2 and all(isinstance(d, int) for d in a):
        return {d % 2 for d in a} == {0, 1}
    if t == "permute":
        dims = a[0] if len(a) == 1 and isinstance(a[0], (tuple, list)) else a
        return tuple(dims) in ((1, 0), (-1, -2), (1, -2), (-1, 0)) or None
    return None


def _parameter_read(
    model: nn.Module,
    graph: Graph,
    users: list[list[int]],
    idx: int,
    ndim: int | None,
    scaled: bool = False,
) -> tuple[str, nn.Parameter, bool, float] | None:
    """``(name, parameter, transposed, factor)`` where node ``idx`` is a raw ``ndim``-D
    parameter (``None``: three or more dimensions) of the model — read directly or through
    single-use transposes and casts, and where ``scaled`` through a constant multiple
    (``factor``; else 1) — that no layer of its own owns (its module's kind is ``unknown``: a
    ``ParameterList``, the model itself, a custom module) or an embedding's table (a read-out
    tied to it), else None."""
    read = _read(graph, users, idx, scaled)
    if read is None:
        return None
    node, flip, factor = read
    found = _loose(model, node.target)
    leaf = node.target.rpartition(".")[2]
    extra = found is not None and found[1] in ("linear", "conv") and leaf not in ("weight", "bias")
    if found is None or (found[1] not in ("unknown", "embedding") and not extra):
        # (an embedding's table in a product: a head tied to it, F.linear(x, E); a Linear
        # subclass's own extra matrices — loralib's lora_A/lora_B — are layers of their own)
        return None
    if found[0].ndim != ndim if ndim is not None else found[0].ndim < 3:
        return None
    return node.target, found[0], flip, factor


def _loose(model: nn.Module, name: str) -> tuple[nn.Parameter, str] | None:
    """``(parameter, kind of the module that owns it)`` for a parameter name; None for a
    buffer (a fixed projection, never planned)."""
    try:
        p = model.get_parameter(name)
    except AttributeError:
        return None
    owner = name.rpartition(".")[0]
    return p, module_kind(model.get_submodule(owner) if owner else model)


def _free_params(
    model: nn.Module, graph: Graph, users: list[list[int]]
) -> Iterator[tuple[Node, nn.Parameter]]:
    """The graph's parameter nodes that ``forward`` uses and that no layer of their own owns
    (the module holding them is of no known kind), with their parameter: what the structural
    finders (tokens, score vectors, learned queries and inputs) look among."""
    for n in graph.nodes:
        if n.op != "param" or not users[n.idx]:
            continue
        found = _loose(model, n.target)
        if found is not None and found[1] == "unknown":
            yield n, found[0]


def _einsum_layout(eq: Any, w_first: bool) -> str | None:
    """The layout of the matrix operand of a two-operand ``einsum`` (``"in_out"`` or
    ``"out_in"``): one of its indices contracted with the other operand's (in), the other
    kept in the output (out); None for anything else (a batch index, an implicit output,
    an ellipsis on the matrix) — :func:`~initwise.torch.modules.einsum_roles` for a matrix."""
    roles = einsum_roles(eq, w_first, 2)
    if roles is None or roles[2]:
        return None
    return "in_out" if roles[0] == (0,) else "out_in"


def _site(
    model: nn.Module, graph: Graph, users: list[list[int]], n: Node
) -> tuple[int, str, nn.Parameter, str, str, int | None, float, Any] | None:
    """A product with a raw matrix parameter at graph node ``n``: ``(input node, weight name,
    weight, layout, how forward used it, bias node or None, the constant the weight is read
    through, the gain of a weight normalized in forward or None)`` (:func:`_weight_operand`)."""
    found = _site_read(model, graph, users, n)
    if found is None:
        return None
    x, w, layout, how, bias = found
    if w[3] != 1.0:
        how = how.replace(w[0], f"{w[0]}·{w[3]:.4g}", 1)
    return x, w[0], w[1], layout, how, bias, w[3], w[4] if len(w) > 4 else None


def _weight_operand(
    model: nn.Module, graph: Graph, users: list[list[int]], idx: int, ndim: int | None
) -> tuple[Any, ...] | None:
    """The weight operand of a product: a raw parameter (:func:`_parameter_read`, through a
    constant too: ``(name, parameter, transposed, factor)``), or the direction ``v`` of a weight
    normalized in ``forward`` (:func:`normalized_weight`: ``(v's name, v, False, 1, (g's name,
    g, whether the output units are v's columns))``)."""
    w = _parameter_read(model, graph, users, idx, ndim, True)
    if w is not None:
        return w
    found = normalized_weight(model, graph, users, idx)
    if found is None or (ndim is not None and found[1].ndim != ndim):
        return None
    v_name, v, g_name, g, cols, *t = found
    return v_name, v, bool(t and t[0]), 1.0, (g_name, g, cols)


def normalized_weight(
    model: nn.Module, graph: Graph, users: list[list[int]], idx: int
) -> tuple[Any, ...] | None:
    """``(v's name, v, g's name, g, columns)`` where node ``idx`` computes a weight
    normalized by hand in ``forward`` — ``g·v/‖v‖`` per output unit (weight normalization,
    Salimans & Kingma 2016), however written (``mul``/``div``/``norm``/``F.normalize``, a view
    of ``g``) — found by evaluating the operand's own graph on seeded values: only two raw
    parameters feed it (``v``, two or more dimensions, and ``g``, one number per output unit),
    scaling ``v`` changes nothing, scaling ``g`` scales it, and each output unit's weights have
    norm ``|g|`` (rows, or — a matrix — columns: ``columns``).

    Or ``(v's name, v, "", None, columns, transposed)`` where only ``v`` feeds it and each unit's
    weights have norm 1 — a cosine classifier's ``F.normalize(W)`` (NormFace, Wang et al. 2017;
    CosFace, ArcFace), used as it is or transposed (``F.normalize(W).t()``: ``transposed``;
    ``columns`` then says which of ``v``'s own axes are the units). Else None."""
    import torch

    seen: set[int] = set()
    stack, params = [idx], {}
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        n = graph.nodes[i]
        if n.op == "param":
            found = _loose(model, n.target)
            if found is None or found[1] != "unknown":
                return None
            params[i] = (n.target, found[0])
        elif n.op == "function" and n.call is not None and len(seen) <= 16:
            stack.extend(n.inputs)
        else:
            return None
    if len(params) not in (1, 2) or graph.nodes[idx].op == "param":
        return None
    if any(i != idx and graph.nodes[i].op != "param" and set(users[i]) - seen for i in seen):
        return None  # (an intermediate used elsewhere: not the weight's own computation)
    if len(params) == 1:
        return _unit_normalized(graph, idx, seen, *next(iter(params.items())))
    (ia, (na, a)), (ib, (nb, b)) = params.items()
    if a.ndim < b.ndim or (a.ndim == b.ndim and a.numel() < b.numel()):
        (ia, na, a), (ib, nb, b) = (ib, nb, b), (ia, na, a)
    if a.ndim < 2 or a.is_meta or b.is_meta:
        return None
    order = sorted(seen)

    def weight(v: Any, g: Any) -> Any:
        env = {ia: v, ib: g}
        for i in order:
            if i not in env:
                n = graph.nodes[i]
                env[i] = n.call([env[j] for j in n.inputs])  # type: ignore[misc]
        return env[idx]

    gen = torch.Generator().manual_seed(0)
    v0 = torch.randn(a.shape, generator=gen, dtype=torch.float64)
    g0 = torch.rand(b.shape, generator=gen, dtype=torch.float64) + 0.5
    try:
        with torch.no_grad():
            w0, w5, w2 = weight(v0, g0), weight(5 * v0, g0), weight(v0, 2 * g0)
    except Exception:
        return None
    if not all(isinstance(t, torch.Tensor) and t.shape == a.shape for t in (w0, w5, w2)):
        return None
    if not (torch.allclose(w5, w0, rtol=1e-6, atol=1e-9) and torch.allclose(w2, 2 * w0)):
        return None
    gains = g0.reshape(-1)
    for cols, norms in ((False, w0.flatten(1).norm(dim=1)), (True, w0.norm(dim=0).reshape(-1))):
        if a.ndim == 2 or not cols:
            if norms.numel() == gains.numel() and torch.allclose(norms, gains, rtol=1e-6):
                return na, a, nb, b, cols
    return None


def _unit_normalized(
    graph: Graph, idx: int, seen: set[int], ia: int, read: tuple[str, Any]
) -> tuple[Any, ...] | None:
    """:func:`normalized_weight`'s one-parameter form: ``(v's name, v, "", None, columns,
    transposed)`` where node ``idx`` computes, from ``v`` alone, a weight whose scale does not
    follow ``v``'s and whose output units (``v``'s rows, or its columns) each have norm 1."""
    import torch

    na, a = read
    if a.ndim != 2 or a.is_meta:
        return None
    order = sorted(seen)

    def weight(v: Any) -> Any:
        env = {ia: v}
        for i in order:
            if i not in env:
                n = graph.nodes[i]
                env[i] = n.call([env[j] for j in n.inputs])  # type: ignore[misc]
        return env[idx]

    v0 = torch.randn(a.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    try:
        with torch.no_grad():
            w0, w5 = weight(v0), weight(5 * v0)
    except Exception:
        return None
    if not all(isinstance(t, torch.Tensor) for t in (w0, w5)) or w0.shape != w5.shape:
        return None
    if not torch.allclose(w5, w0, rtol=1e-6, atol=1e-9):
        return None
    if w0.shape == a.shape and (a.shape[0] != a.shape[1] or not torch.allclose(w0.T, w0)):
        transposed = False
    elif w0.T.shape == a.shape:
        transposed, w0 = True, w0.T
    else:
        return None
    for cols, norms in ((False, w0.norm(dim=1)), (True, w0.norm(dim=0))):
        if torch.allclose(norms, torch.ones_like(norms), rtol=1e-6):
            return na, a, "", None, cols, transposed
    return None


def _site_read(
    model: nn.Module, graph: Graph, users: list[list[int]], n: Node
) -> tuple[int, tuple[Any, ...], str, str, int | None] | None:
    """:func:`_site`'s reading of node ``n``, with the weight's :func:`_parameter_read`."""
    t, ins = str(n.target), n.inputs
    if t == "linear" and len(ins) in (2, 3):
        w = _weight_operand(model, graph, users, ins[1], 2)
        if w is None:
            return None
        layout = "in_out" if w[2] else "out_in"
        how = f"F.linear(x, {w[0]}{'.T' if w[2] else ''}{', b' if len(ins) == 3 else ''})"
        return ins[0], w, layout, how, ins[2] if len(ins) == 3 else None
    if t in ("matmul", "mm") and len(ins) == 2 and ins[0] != ins[1]:
        w = _weight_operand(model, graph, users, ins[1], 2)
        if w is not None and _parameter_read(model, graph, users, ins[0], 2, True) is None:
            layout = "out_in" if w[2] else "in_out"
            return ins[0], w, layout, f"x @ {w[0]}{'.T' if w[2] else ''}", None
        w = _weight_operand(model, graph, users, ins[0], 2)
        if w is not None and _parameter_read(model, graph, users, ins[1], 2, True) is None:
            layout = "in_out" if w[2] else "out_in"
            return ins[1], w, layout, f"{w[0]}{'.T' if w[2] else ''} @ x", None
        return None
    if t == "addmm" and len(ins) == 3:
        w = _weight_operand(model, graph, users, ins[2], 2)
        if w is None:
            return None
        layout = "out_in" if w[2] else "in_out"
        return ins[1], w, layout, f"addmm(b, x, {w[0]}{'.T' if w[2] else ''})", ins[0]
    if t in _CONVS and len(ins) in (2, 3):
        w = _weight_operand(model, graph, users, ins[1], _CONVS[t])
        groups = _conv_groups(n, len(ins) == 3)
        if w is None or w[2] or groups is None:
            return None
        how = f"F.{t}(x, {w[0]}{', b' if len(ins) == 3 else ''}"
        how += f", groups={groups})" if groups != 1 else ")"
        return ins[0], w, f"conv:{groups}", how, ins[2] if len(ins) == 3 else None
    if t == "einsum" and len(ins) == 2 and n.args and ins[0] != ins[1]:
        for j in (1, 0):
            w = _parameter_read(model, graph, users, ins[j], 2, True)
            layout = _einsum_layout(n.args[0], w_first=j == 0) if w is not None else None
            if w is not None and layout is not None:
                if w[2]:
                    layout = "in_out" if layout == "out_in" else "out_in"
                return ins[1 - j], w, layout, f"einsum({n.args[0]!r}, …)", None
        for j in (1, 0):  # a weight of 3+ dimensions: per-head projections (FunctionalEinsum)
            w = _parameter_read(model, graph, users, ins[j], None, True)
            if w is not None and not w[2] and einsum_roles(n.args[0], j == 0, w[1].ndim):
                return ins[1 - j], w, f"einsum:{j}", f"einsum({n.args[0]!r}, …)", None
    return None


_CONVS = {"conv1d": 3, "conv2d": 4, "conv3d": 5}
"""Convolution functions and their weight's dimensions."""


_CONV_ARGS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))
"""``F.convNd``'s arguments after the input, weight and bias, in order, with their defaults."""


def _conv_arg(n: Node, bias_node: bool, name: str) -> Any:
    """Argument ``name`` of an ``F.convNd`` call node (:data:`_CONV_ARGS`): a keyword, or
    positional among the node's scalars (``[None,] stride, padding, dilation, groups``: a
    ``None`` first where the bias was passed as None), else its default."""
    if name in n.kwargs:
        return n.kwargs[name]
    pos = list(n.args)
    off = 0 if bias_node or not pos or pos[0] is not None else 1
    i, default = next((i, d) for i, (k, d) in enumerate(_CONV_ARGS) if k == name)
    return pos[off + i] if len(pos) > off + i else default


def _conv_geometry(n: Node, bias_node: bool) -> tuple[Any, Any, Any]:
    """``(stride, padding, dilation)`` of an ``F.convNd`` call node, each as given."""
    return (
        _conv_arg(n, bias_node, "stride"),
        _conv_arg(n, bias_node, "padding"),
        _conv_arg(n, bias_node, "dilation"),
    )


def _conv_groups(n: Node, bias_node: bool) -> int | None:
    """``groups`` of an ``F.convNd`` call node; None where it cannot be told (a non-integer)."""
    g = _conv_arg(n, bias_node, "groups")
    return g if isinstance(g, int) and not isinstance(g, bool) and g >= 1 else None


def _bias_of(
    model: nn.Module,
    graph: Graph,
    users: list[list[int]],
    n: Node,
    out_features: int,
    shape: tuple[int, ...] | None = None,
) -> tuple[int, str, nn.Parameter, float] | None:
    """A raw vector parameter of ``out_features`` entries — or, for an einsum whose output ends
    in its units' dimensions, a parameter of those dimensions' ``shape`` (a bias per head and
    unit) — added to the product at node ``n`` by its only user (``x @ W + b``, or ``x @ W +
    b·c``): ``(add node, name, parameter, c)``."""
    if len(users[n.idx]) != 1:
        return None
    a = graph.nodes[users[n.idx][0]]
    if a.op != "function" or a.target != "add" or len(a.inputs) != 2 or a.kwargs:
        return None
    other = a.inputs[1] if a.inputs[0] == n.idx else a.inputs[0]
    b = _parameter_read(model, graph, users, other, 1, True)
    if b is None and shape is not None and len(shape) > 1:
        b = _parameter_read(model, graph, users, other, len(shape), True)
        if b is not None and (b[2] or tuple(b[1].shape) != shape):
            return None
    if b is None or b[1].numel() != out_features:
        return None
    return a.idx, b[0], b[1], b[3]


def _einsum_bias_shape(
    equation: str, w_first: bool, weight: nn.Parameter
) -> tuple[int, ...] | None:
    """The shape a bias per unit has where the einsum's output ends in the weight's output and
    batch dimensions (``"...d,dhk->...hk"``: ``(H, K)``); None where other dimensions follow
    them (a bias of that shape would not line up)."""
    lhs, out = equation.split("->")
    w = lhs.split(",")[0 if w_first else 1]
    units = {c for c in w if c in out}
    tail = out[len(out) - len(units) :]
    if set(tail) != units:
        return None
    return tuple(int(weight.shape[w.index(c)]) for c in tail)


def raw_parameter_layers(model: nn.Module, graph: Graph) -> Graph:
    """``graph`` with each product of the signal with a raw matrix parameter — ``x @ W``,
    ``torch.matmul``/``mm``/``addmm``, ``F.linear(x, W, b)``, a two-operand ``einsum``
    contracting the signal's features with ``W`` (``W`` read as is, transposed or cast) — read
    as a call of a :class:`~initwise.torch.modules.FunctionalLinear` holding ``W`` (and the
    vector parameter added right after it, or passed as the call's bias), named by ``W``'s
    parameter name, kept in :attr:`Graph.extra`. Such a model (hand-written research code, a
    port from JAX) was planned with every weight "left as is". A parameter used in several
    products is one site (a shared weight, as a module called twice); a parameter that a layer
    of its own owns is that layer's, as before."""
    users = graph.users()
    products = {"linear", "matmul", "mm", "addmm", "einsum", *_CONVS}
    for n in graph.nodes:
        if n.op != "function" or str(n.target) not in products:
            continue
        found = _site(model, graph, users, n)
        if found is None:
            continue
        x, wname, w, layout, how, bias_node, factor, normed = found
        einsum = None
        if layout.startswith("einsum:"):
            einsum = (n.args[0].replace(" ", ""), layout == "einsum:0")
            roles = einsum_roles(einsum[0], einsum[1], w.ndim)
            out_features = math.prod(w.shape[d] for d in (*roles[1], *roles[2]))  # type: ignore[index]
        else:
            out_features = w.shape[1] if layout == "in_out" else w.shape[0]
        bias, bias_factor = None, 1.0
        if bias_node is not None:
            b = _parameter_read(model, graph, users, bias_node, 1, True)
            if b is None or b[1].numel() != out_features:
                continue  # (a bias computed from other tensors: not a layer's own)
            bias, bias_factor = b[1], b[3]
        else:
            shape = _einsum_bias_shape(*einsum, w) if einsum is not None else None
            added = _bias_of(model, graph, users, n, out_features, shape)
            if added is not None:
                bias, bias_factor = added[2], added[3]
                how += f" + {added[1]}" + (f"·{bias_factor:.4g}" if bias_factor != 1.0 else "")
        if wname not in graph.extra:
            if einsum is not None:
                site: FunctionalLayer = FunctionalEinsum(w, bias, *einsum, f"`{how}`")
            elif layout.startswith("conv:"):
                geometry = _conv_geometry(n, bias_node is not None)
                site = FunctionalConv(w, bias, int(layout[5:]), f"`{how}`", geometry)
            else:
                site = FunctionalLinear(w, bias, layout, f"`{how}`")
            site.factor, site.bias_factor = factor, bias_factor
            if normed is not None:  # (g·v/‖v‖: the units' norms where the layout has them)
                if normed[2] != (layout == "in_out") or einsum is not None:
                    continue
                if normed[1] is None:  # (unit norm, no gain: a cosine classifier's weight)
                    site.unit_norm = True
                else:
                    site.register_parameter("norm_gain", normed[1])
                    site.norm_gain_name = normed[0]
            graph.extra[wname] = site
        elif (
            not _same_site(graph.extra[wname], layout, einsum)
            or graph.extra[wname].factor != factor
            or (
                (normed is None) != ("norm_gain" not in graph.extra[wname]._parameters)
                and not graph.extra[wname].unit_norm
            )
        ):
            continue  # (one weight in two different products: the first one's layer)
        _as_call(n, wname, x)
    return graph


def _same_site(m: nn.Module, layout: str, einsum: tuple[str, bool] | None) -> bool:
    """Whether a weight's later product computes the same layer as its first site ``m``."""
    if einsum is not None:
        return isinstance(m, FunctionalEinsum) and (m.equation, m.w_first) == einsum
    if layout.startswith("conv:"):
        return isinstance(m, FunctionalConv)
    return isinstance(m, FunctionalLinear) and m.layout == layout


def _as_call(n: Node, target: str, x: int) -> None:
    """Make function node ``n`` a call of module ``target`` on node ``x`` (in place)."""
    n.op, n.target, n.inputs, n.call = "module", target, [x], None
    n.args, n.kwargs, n.broadcast = (), {}, frozenset()


def custom_leaf(m: nn.Module, model: nn.Module) -> bool:
    """Whether ``m`` is a custom leaf of ``model``: no children, parameters of its own, a kind
    the planner does not know, no parametrization — what :func:`_inline_custom` may trace into
    (``class MyLinear(nn.Module)`` computing ``F.linear(x, self.weight, self.bias)``)."""
    return (
        m is not model
        and not has_children(m)
        and owns_parameters(m)
        and module_kind(m) == "unknown"
        and not has_parametrizations(m)
    )


def _inline_custom(model: nn.Module, graph: Graph) -> Graph:
    """``graph`` with each call of a custom leaf module (no children, parameters of its own,
    a kind the planner does not know) replaced by that module's own traced graph, where every
    one of its parameters is the weight or bias of a :class:`FunctionalLinear` site inside
    (``class MyLinear(nn.Module)`` holding ``self.w`` and computing ``x @ self.w + self.b``).
    Any other custom module stays one node, as before."""
    modules = dict(model.named_modules())
    inline: dict[int, Graph] = {}
    subs: dict[str, Graph | None] = {}
    for n in graph.nodes:
        m = modules.get(n.target) if n.op == "module" else None
        if m is None or not custom_leaf(m, model) or n.args or n.kwargs:
            continue
        if n.target not in subs:
            subs[n.target] = _custom_graph(m)
        sub = subs[n.target]
        if sub is not None and sum(s.op == "input" for s in sub.nodes) == len(n.inputs):
            inline[n.idx] = sub
    if not inline:
        return graph
    nodes: list[Node] = []
    remap: dict[int, int] = {}
    extra = dict(graph.extra)
    inlined = dict(graph.inlined)
    for n in graph.nodes:
        sub = inline.get(n.idx)
        if sub is None:
            remap[n.idx] = _append(nodes, n, n.target, remap)
            continue
        here = dict(
            zip(
                [s.idx for s in sub.nodes if s.op == "input"],
                [remap[i] for i in n.inputs],
                strict=True,
            )
        )
        for s in sub.nodes:
            if s.op in ("input", "output"):
                continue
            target = f"{n.target}.{s.target}" if s.op in ("param", "module") else s.target
            here[s.idx] = _append(nodes, s, target, here)
        out = next(s for s in sub.nodes if s.op == "output")
        remap[n.idx] = here[out.inputs[0]]
        inlined.setdefault(n.target, remap[n.idx])
        for k, v in sub.extra.items():
            extra.setdefault(f"{n.target}.{k}", v)
    # (its other fields kept: the tensor constants fx lifted, the modules called through their
    # weight — a new Graph dropped them, and diagnose lost such a module again)
    return dataclasses.replace(graph, nodes=nodes, extra=extra, inlined=inlined)


def _append(nodes: list[Node], n: Node, target: str, index: dict[int, int]) -> int:
    """Append a copy of ``n`` to ``nodes`` under ``target``, its inputs renumbered by
    ``index``; returns its new index."""
    nodes.append(
        dataclasses.replace(
            n,
            idx=len(nodes),
            target=target,
            inputs=[index[i] for i in n.inputs],
            broadcast=frozenset(index[i] for i in n.broadcast),
        )
    )
    return len(nodes) - 1


def _custom_graph(m: nn.Module) -> Graph | None:
    """The traced graph of custom leaf module ``m`` with its raw-parameter products as
    :class:`FunctionalLinear` sites, when those account for every parameter it owns and it
    returns one tensor; else None."""
    try:
        fx_graph = LeafTracer().trace(m)
    except Exception:
        return None
    out = next(n for n in fx_graph.nodes if n.op == "output")
    if not isinstance(out.args[0], torch.fx.Node):  # a tuple or dict: not one layer's output
        return None
    sub = raw_parameter_layers(m, from_fx(m, fx_graph))
    covered = {id(p) for s in sub.extra.values() for p in s.parameters()}
    if not sub.extra or any(id(p) not in covered for p in m.parameters(recurse=False)):
        return None
    if any(s.op == "module" and s.target not in sub.extra for s in sub.nodes):
        return None
    return sub


_TOKEN_PATH = frozenset(
    {
        "expand",
        "expand_as",
        "repeat",
        "getitem",
        "view",
        "reshape",
        "to",
        "type_as",
        "type",
        "float",
        "half",
        "bfloat16",
        "unsqueeze",
        "squeeze",
        "flatten",
        "contiguous",
        "clone",
        "permute",
        "transpose",
        "interpolate",
    }
)
"""Ops a class token or position table passes on its way into the signal (broadcast over the
batch, sliced to the sequence, cast, resized)."""


def token_parameters(model: nn.Module, graph: Graph | None) -> dict[int, tuple[str, str]]:
    """Raw parameters (no layer of their own owns them, ≥ 2 dimensions) that ``forward``
    concatenates with the signal — a class or register token, ``torch.cat([cls.expand(B, -1,
    -1), x], 1)`` — or adds to it — a learned position table, ``x + pos[:, :T]`` — reached
    through broadcasts, slices, casts and resizes used by nothing else: ``{id(parameter):
    ("class token" | "position table", the op)}``. Found by structure, whatever the names
    (the planner's name rules — ``cls_token``, ``pos_embed`` … — come first)."""
    out: dict[int, tuple[str, str]] = {}
    if graph is None:
        return out
    users = graph.users()
    for n, p in _free_params(model, graph, users):
        if p.ndim < 2:
            continue
        # every use must reach the same kind of op (a position table added to the encoder's
        # and the decoder's tokens is read twice: `pos[:, :S]`, `pos[:, :T]`)
        kinds = {_token_use(graph, users, n.idx, u) for u in users[n.idx]}
        if len(kinds) != 1 or None in kinds:
            continue
        (t,) = kinds
        if t in ("cat", "concat", "concatenate"):
            out[id(p)] = ("class token", f"concatenated with the signal (`{t}`)")
        else:
            out[id(p)] = ("position table", "added to the signal")
    out.update(_tied_biases(model, graph, users))
    return out


def feature_tokenizers(model: nn.Module, graph: Graph | None) -> dict[int, tuple[str, str]]:
    """Raw parameters of two or more dimensions that scale the signal elementwise — each
    numeric feature its own embedding, ``x[..., None] * W[None]`` — and the raw parameter of the
    same shape added right after (``+ b[None]``): FT-Transformer's feature tokenizer (Gorishniy
    et al. 2021). ``{id(W): ("tokenizer weight", "with a bias" | ""), id(b): ("tokenizer bias",
    "")}``: each token ``x_j·W_j + b_j`` has ``E[t²] = E[x²]·σ_w² + σ_b²``, so for a standardized
    feature σ_w² = σ_b² = ½ gives unit tokens (the value and the feature's identity one half
    each), σ_w = 1 without a bias."""
    out: dict[int, tuple[str, str]] = {}
    if graph is None:
        return out
    users = graph.users()

    def raw(j: int) -> tuple[str, nn.Parameter] | None:
        i = j
        while graph.nodes[i].op == "function" and str(graph.nodes[i].target) in _TOKEN_PATH:
            if len(users[i]) != 1 or not graph.nodes[i].inputs:
                return None
            i = graph.nodes[i].inputs[0]
        n = graph.nodes[i]
        if n.op != "param" or len(users[i]) != 1:
            return None
        found = _loose(model, n.target)
        if found is None or found[0].ndim != 2 or found[1] != "unknown":
            return None
        return n.target, found[0]

    def expanded(j: int) -> bool:  # x[..., None], x.unsqueeze(-1): a trailing dim for d
        n = graph.nodes[j]
        if n.op != "function" or not n.inputs or graph.nodes[n.inputs[0]].op == "param":
            return False
        if n.target == "unsqueeze":
            return n.args[:1] in ((-1,), (2,)) or n.kwargs.get("dim") in (-1, 2)
        return n.target == "getitem" and any(
            isinstance(a, tuple) and a and a[-1] is None for a in n.args
        )

    for n in graph.nodes:
        if n.op != "function" or n.target != "mul" or len(n.inputs) != 2:
            continue
        ws = [(j, raw(j)) for j in n.inputs]
        hits = [(j, w) for j, w in ws if w is not None]
        if len(hits) != 1 or not expanded(next(j for j, _ in ws if j != hits[0][0])):
            continue
        w = hits[0][1]
        b = None
        if len(users[n.idx]) == 1:
            a = graph.nodes[users[n.idx][0]]
            if a.op == "function" and a.target == "add" and len(a.inputs) == 2:
                other = a.inputs[1] if a.inputs[0] == n.idx else a.inputs[0]
                b = raw(other)
                if b is not None and tuple(b[1].shape) != tuple(w[1].shape):
                    b = None
        out[id(w[1])] = ("tokenizer weight", "with a bias" if b is not None else "")
        if b is not None:
            out[id(b[1])] = ("tokenizer bias", "")
    return out


def score_vectors(model: nn.Module, graph: Graph | None) -> dict[int, tuple[str, str]]:
    """Raw vector parameters that the signal is projected on — every use (the vector itself or a
    slice of it, through casts) the second operand of a ``matmul`` with the signal: Bahdanau's
    ``tanh(W₁h + W₂s) @ v``, a hand-written GAT's ``h @ a[:d]`` and ``h @ a[d:]`` — a Linear to
    one output: ``{id(parameter): ("score vector", "<n>")}``, ``n`` the length each product
    contracts (the vector's, or over its number of uses where every use takes a slice)."""
    out: dict[int, tuple[str, str]] = {}
    if graph is None:
        return out
    users = graph.users()
    through = frozenset({"getitem", *CASTS})
    for n, p in _free_params(model, graph, users):
        if p.ndim != 1 or p.numel() < 2:
            continue
        ok, sliced = True, 0
        for u in users[n.idx]:
            chain = _use_chain(graph, users, n.idx, u, through)
            if chain is None:
                ok = False
                break
            path, m = chain[0], graph.nodes[chain[1]]
            if m.op != "function" or m.target not in ("matmul", "mv") or len(m.inputs) != 2:
                ok = False
                break
            if m.inputs[1] != path[-1] or graph.nodes[m.inputs[0]].op == "param":
                ok = False
                break
            sliced += sum(graph.nodes[i].target == "getitem" for i in path[1:])
        if ok:  # (a loop unrolled uses the whole vector each step; GAT's halves slice it)
            parts = len(users[n.idx]) if sliced == len(users[n.idx]) else 1
            out[id(p)] = ("score vector", str(p.numel() // parts))
    return out


def _use_chain(
    graph: Graph, users: list[list[int]], start: int, u: int, ops: Collection[str]
) -> tuple[list[int], int] | None:
    """One use ``u`` of node ``start`` followed through functions in ``ops`` (broadcasts,
    slices, casts) that take it as their first input and are used by nothing else: ``(the
    nodes passed, ``start`` first; the node it reaches)``, or None where a node on the way has
    another use or takes it elsewhere."""
    path = [start]
    while graph.nodes[u].op == "function" and str(graph.nodes[u].target) in ops:
        if len(users[u]) != 1 or graph.nodes[u].inputs[:1] != [path[-1]]:
            return None
        path.append(u)
        u = users[u][0]
    return path, u


def _token_use(graph: Graph, users: list[list[int]], start: int, u: int) -> str | None:
    """The op (``cat``/``add``) that one use ``u`` of parameter node ``start`` reaches through
    broadcasts, slices, casts and resizes used by nothing else, with the signal as its other
    operand(s); None for any other use."""
    chain = _use_chain(graph, users, start, u, _TOKEN_PATH)
    if chain is None or graph.nodes[chain[1]].op != "function":
        return None
    path, node = set(chain[0]), graph.nodes[chain[1]]
    others = [j for j in node.inputs if j not in path]
    if not others or any(graph.nodes[j].op == "param" for j in others):
        return None
    t = str(node.target)
    if t in ("cat", "concat", "concatenate") and len(node.inputs) >= 2:
        return t
    if t == "add" and len(node.inputs) == 2:
        return "add"
    return None


def structural_parameters(
    model: nn.Module, info: Any
) -> tuple[dict[int, tuple[str, str]], dict[int, tuple[str, str]]]:
    """``(rules, layer scales)``: the raw parameters whose use in ``forward`` says what they are —
    class tokens and position tables (:func:`token_parameters`), a tied decoder's bias, a norm's
    affine (:func:`norm_affines`), score vectors (:func:`score_vectors`), feature tokenizers
    written in code (:func:`feature_tokenizers`) or as a module of their own
    (:func:`~initwise.torch.modules.probed_tokenizer`) — ``{id(parameter): (what, how)}``, and
    the layer scales found by structure (:func:`branch_scales`), which are kept as built."""
    rules = token_parameters(model, info.graph)
    rules.update(norm_affines(model, info))
    rules.update(score_vectors(model, info.graph))
    rules.update(feature_tokenizers(model, info.graph))
    rules.update(learned_inputs(model, info.graph))
    rules.update(learned_queries(model, info.graph))
    for m in model.modules():
        roles = probed_tokenizer(m) if m._parameters and not m._modules else None
        for pname, role in (roles or {}).items():
            with_bias = role == "weight" and len(roles) == 2  # type: ignore[arg-type]
            rules[id(m._parameters[pname])] = (f"tokenizer {role}", "with a bias" * with_bias)
    return rules, branch_scales(model, info)


def learned_queries(model: nn.Module, graph: Graph | None) -> dict[int, tuple[str, str]]:
    """Raw parameters of two or more dimensions that ``forward`` uses, through broadcasts and
    slices, as the *query* of an ``nn.MultiheadAttention`` and otherwise only in additions (the
    residual ``q + attn(q, x, x)``): a learned query set — Perceiver's latent array (Jaegle et
    al. 2021), Set Transformer's inducing points and seeds (Lee et al. 2019), Q-Former-style
    query tokens. ``{id(parameter): ("learned queries", how many attention calls read it)}``."""
    out: dict[int, tuple[str, str]] = {}
    if graph is None:
        return out
    users = graph.users()
    modules = dict(model.named_modules())
    for n, p in _free_params(model, graph, users):
        if p.ndim < 2:
            continue
        path = {n.idx}

        def through(i: int, path: set[int] = path) -> bool:  # (expand, repeat, a slice …)
            node = graph.nodes[i]
            ok = (
                node.op == "function"
                and str(node.target) in _TOKEN_PATH
                and node.inputs[:1] != []
                and node.inputs[0] in path
            )
            if ok:
                path.add(i)
            return ok

        reached = list(downstream(users, n.idx, through))  # (path grows as it is walked)
        ends = [i for i in reached if i not in path]
        queries = sum(
            graph.nodes[i].op == "module"
            and isinstance(modules.get(graph.nodes[i].target), nn.MultiheadAttention)
            and graph.nodes[i].inputs[:1] != []
            and graph.nodes[i].inputs[0] in path
            for i in ends
        )
        adds = sum(
            graph.nodes[i].op == "function" and str(graph.nodes[i].target) in ("add", "iadd")
            for i in ends
        )
        if queries and queries + adds == len(ends):
            out[id(p)] = ("learned queries", str(queries))
    return out


def learned_inputs(model: nn.Module, graph: Graph | None) -> dict[int, tuple[str, str]]:
    """Raw parameters whose every use is the input of a Linear layer (through reshapes) — a
    hypernetwork's layer embedding ``z`` in ``gen(z)`` (Ha et al. 2016): ``{id(parameter):
    ("learned input", layer)}``, drawn N(0, 1), a unit input for the layer."""
    out: dict[int, tuple[str, str]] = {}
    if graph is None:
        return out
    users = graph.users()
    modules = dict(model.named_modules())
    for n, p in _free_params(model, graph, users):
        if p.numel() < 2:
            continue
        layers = []
        for u in users[n.idx]:
            chain = _use_chain(graph, users, n.idx, u, SHAPE_OPS)
            m = graph.nodes[chain[1]] if chain is not None else graph.nodes[n.idx]
            mod = modules.get(m.target) if m.op == "module" else None
            if chain is None or not isinstance(mod, nn.Linear) or m.inputs[:1] != chain[0][-1:]:
                layers = []
                break
            layers.append(str(m.target))
        if layers:
            out[id(p)] = ("learned input", layers[0])
    return out


def norm_affines(model: nn.Module, info: Any) -> dict[int, tuple[str, str]]:
    """Raw vector parameters that scale or shift the output of a norm written as a formula
    (:func:`~initwise.torch.graph.code_norm`; ``rms(x) * g``, ``ln(x) * g + b``, ``rms(x) *
    (1 + g)``): ``{id(parameter): ("norm scale" | "norm offset scale" | "norm shift", how)}`` —
    the norm's affine starts as the identity, as a module's does."""
    g = info.graph
    out: dict[int, tuple[str, str]] = {}
    if g is None or not info.code_norms:
        return out
    users = g.users()
    through = frozenset({"to", "type_as", "float", "contiguous"})
    for idx in info.code_norms:
        at = idx
        while len(users[at]) == 1 and g.nodes[users[at][0]].target in through:
            at = users[at][0]
        if len(users[at]) != 1:
            continue
        m = g.nodes[users[at][0]]
        if m.op != "function" or m.target != "mul" or len(m.inputs) != 2:
            continue
        other = m.inputs[1] if m.inputs[0] == at else m.inputs[0]
        w = _parameter_read(model, g, users, other, 1)
        what = "norm scale"
        o = g.nodes[other]
        if w is None and o.op == "function" and o.target == "add" and len(o.inputs) == 1:
            if o.args[:1] == (1,):  # (1 + g): Gemma's offset scale
                w, what = _parameter_read(model, g, users, o.inputs[0], 1), "norm offset scale"
        if w is None:
            continue
        out[id(w[1])] = (what, "multiplies a norm written in forward")
        if len(users[m.idx]) == 1:
            a = g.nodes[users[m.idx][0]]
            if a.op == "function" and a.target == "add" and len(a.inputs) == 2:
                j = a.inputs[1] if a.inputs[0] == m.idx else a.inputs[0]
                b = _parameter_read(model, g, users, j, 1)
                if b is not None:
                    out[id(b[1])] = ("norm shift", "is added to a norm written in forward")
    return out


def branch_scales(model: nn.Module, info: Any) -> dict[int, tuple[str, str]]:
    """Raw vector parameters that multiply a residual branch's output right before it is added
    to the stream — a layer scale written in code whatever its name (ConvNeXt's ``x + (f(x) *
    gamma[i])`` with ``gamma`` a ``ParameterList``): ``{id(parameter): ("layer scale", how)}``.
    Kept as built, as the named layer scales are (their value is the model's choice)."""
    g = info.graph
    out: dict[int, tuple[str, str]] = {}
    if g is None or not info.adds:
        return out
    users = g.users()
    adds = {r.add for r in info.adds}
    for n in g.nodes:
        if n.op != "function" or n.target != "mul" or len(n.inputs) != 2:
            continue
        at = n.idx
        while len(users[at]) == 1 and g.nodes[users[at][0]].target in SHAPE_OPS:
            at = users[at][0]
        if not (len(users[at]) == 1 and users[at][0] in adds):
            continue
        for j in n.inputs:
            w = _parameter_read(model, g, users, j, 1)
            i = behind(g.nodes, j, SHAPE_OPS)  # (broadcast: gamma[:, None, None], .view(…))
            if w is None and i != j and g.nodes[i].op == "param":
                found = _loose(model, g.nodes[i].target)
                if found is not None and found[0].ndim == 1 and found[1] == "unknown":
                    w = (g.nodes[i].target, found[0], False)
            if w is not None and w[1].numel() > 1:
                out[id(w[1])] = ("layer scale", "multiplies a residual branch's output in forward")
    return out


def _tied_biases(
    model: nn.Module, graph: Graph, users: list[list[int]]
) -> dict[int, tuple[str, str]]:
    """Raw vector parameters that are the bias of a product with a weight a layer of its own
    also uses — a tied autoencoder's decoder, ``F.linear(h, enc.weight.t(), b)`` or
    ``h @ enc.weight + b``: the product is no layer of its own (the weight is planned where
    its layer runs), but its bias is a bias: ``{id(parameter): ("bias", how)}``."""
    out: dict[int, tuple[str, str]] = {}
    for n in graph.nodes:
        t = str(n.target)
        if n.op != "function":
            continue
        if t in ("linear", *_CONVS) and len(n.inputs) == 3:
            w_idx, b_idx = n.inputs[1], n.inputs[2]
        elif t == "addmm" and len(n.inputs) == 3:
            w_idx, b_idx = n.inputs[2], n.inputs[0]
        elif t in ("matmul", "mm") and len(n.inputs) == 2 and len(users[n.idx]) == 1:
            a = graph.nodes[users[n.idx][0]]
            if a.op != "function" or a.target != "add" or len(a.inputs) != 2 or a.kwargs:
                continue
            w_idx = next((i for i in n.inputs if weight_read(graph, users, i)), None)
            b_idx = a.inputs[1] if a.inputs[0] == n.idx else a.inputs[0]
            if w_idx is None:
                continue
        else:
            continue
        read = weight_read(graph, users, w_idx)
        b = _parameter_read(model, graph, users, b_idx, 1)
        if read is None or b is None or id(b[1]) in out:
            continue
        owner = read[0]
        how = f"the bias of a product with '{owner}.weight' (`{t}`), a weight its layer also uses"
        out[id(b[1])] = ("bias", how + (", transposed" if read[1] else ""))
    return out
