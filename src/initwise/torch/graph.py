"""Model inspection: a small dataflow graph of a torch model, and what it tells the planner.

Two builders produce the same :class:`Graph`:

* :func:`trace_fx` — ``torch.fx`` symbolic tracing, no input needed. The tracer goes *through*
  containers (``Sequential``, ``TransformerEncoderLayer``, user blocks) and keeps as leaves the
  modules that own parameters directly (Linear, Conv, MultiheadAttention, norms, …) and
  parameter-free modules without children (activations, dropout, pooling).
* :func:`trace_run` — runs an example input under a ``TorchFunctionMode`` plus forward hooks on
  the same leaf modules, recording every torch call between them. It works for models fx cannot
  trace (data-dependent control flow, Hugging Face models).

:func:`analyze` then finds, for every leaf module, the activation that consumes its output
(through norms, dropout, pooling, reshapes and residual additions), and the residual branches:
additions ``a + b`` where one operand's computation starts from the other's (``x + f(x)``) or
both start from a common split point, the branch being the side with more layers.
"""

from __future__ import annotations

import contextlib
import math
import operator
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import activations as A
from ..math.gains import gain
from .aten import is_aten, is_check, packet_name, torch_level
from .batch import (
    MODULE_INTERNALS,
    kept_attributes,
    kept_modes,
    kept_state,
    meta_tensors,
    plain_strided,
    seeded_rng,
    split,
    tensors,
    to_meta,
)
from .meta_ops import fast_meta
from .modules import (
    NOISE_PROBE,
    NORMS,
    has_children,
    has_parametrizations,
    is_norm,
    is_weight_layer,
    owns_parameters,
    probe_copy,
    probed_activation,
    probed_norm,
    seeded_pair,
)
from .modules import kind as module_kind

# ----------------------------------------------------------------------------- graph


@dataclass
class Node:
    """One operation: ``op`` is ``input``, ``param``, ``module``, ``function`` or ``output``."""

    idx: int
    op: str
    target: str
    inputs: list[int] = field(default_factory=list)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    call: Callable[[list[torch.Tensor]], Any] | None = field(default=None, repr=False)
    """For function nodes: the call itself, as a function of the values of ``inputs`` (so an
    elementwise stretch of the graph can be evaluated on its own, see :func:`composites`)."""
    broadcast: frozenset[int] = frozenset()
    """Inputs with fewer elements than the output (broadcast into it: a bias, a per-channel
    statistic), where the run-traced graph saw the tensors; empty from fx."""
    keepdim_pool: bool = False
    """A ``keepdim=True`` reduction (``sum``/``mean``/``max``/``amax`` over named dimensions)
    whose result only feeds weight layers or the model's output, through reshapes: a pool — a
    graph network's ``x.sum(0, keepdim=True)`` read-out, a squeeze-excite's ``x.mean((2, 3),
    keepdim=True)`` — not a statistic a tensor is normalized by (set by :func:`analyze`)."""
    values_only: bool = False
    """A ``topk`` whose indices nothing reads (only ``.values`` or ``[0]``): k-max pooling, as
    a text CNN's ``h.topk(k, dim=-1).values`` — a pool that grows ``E[x²]`` as a max does. A
    mixture-of-experts router reads the indices (which experts): not a pool (set by
    :func:`analyze`)."""


@dataclass
class Graph:
    """Nodes in execution (topological) order; ``method`` says how it was built."""

    nodes: list[Node]
    method: str
    extra: dict[str, nn.Module] = field(default_factory=dict)
    """Module nodes that are not the model's modules: raw parameters used as a layer's weight
    in ``forward``, read as :class:`~initwise.torch.modules.FunctionalLinear` sites by their
    parameter's name (:func:`~initwise.torch.functional.functional_layers`)."""
    inlined: dict[str, int] = field(default_factory=dict)
    """Custom modules traced into (:mod:`~initwise.torch.functional`): the node whose value is
    each one's output (what ``diagnose`` sees when the module runs)."""
    constants: dict[str, Any] = field(default_factory=dict)
    """Tensors fx lifted out of ``forward`` (``_tensor_constant0``), by name: not attributes of
    the model (:class:`LeafTracer`)."""
    weight_calls: dict[str, nn.Module] = field(default_factory=dict)
    """The model's modules whose one call is a function of their own weight in ``forward``
    (``F.linear(x, self.fc.weight, self.fc.bias)``, Mamba's ``self.dt_proj.weight @ x``), read
    as module nodes (:func:`~initwise.torch.functional.functional_layers`): no module hook sees
    them run, so ``diagnose`` watches their products as it watches :attr:`extra`'s."""

    def users(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for n in self.nodes:
            for i in dict.fromkeys(n.inputs):
                out[i].append(n.idx)
        return out


KNOWN = (
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.Transformer,
)
"""Containers read from their attributes (:func:`expand_known`) instead of traced: their
``forward`` has fast paths and mask checks that ``torch.fx`` can not trace, and their structure
(norm placement, activation, residuals) is all in their fields."""


_TORCH_LAYERS = ("torch.nn", "torch.ao.nn")
"""Packages whose parameter-owning modules are layers to keep whole, children and all."""


def is_leaf(module: nn.Module) -> bool:
    """Leaf for tracing: owns parameters directly, or has no children, or is a :data:`KNOWN`
    container (expanded from its attributes)."""
    if isinstance(module, KNOWN) or module_kind(module) == "experts":
        return True  # (a MoE expert stack: planned from its attributes, one node)
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return False
    if has_parametrizations(module):  # the layer; its parametrizations compute its weight inside
        return True
    own = owns_parameters(module)
    if own and (type(module).__module__.startswith(_TORCH_LAYERS) or not has_children(module)):
        return True  # (torch's layers, and their quantization-aware twins: a qat.Linear owns
        # its weight's fake-quantizer — traced into, its weight reached no layer node)
    return not has_children(module)


LIBRARIES = ("torch.", "transformers.", "timm.", "torchvision.", "torchaudio.", "diffusers.")
"""Where a module's class comes from a library whose parameter-free modules the planner reads
as they are (leaves): its activations, drop paths, rotary tables, pools."""

_OPENED: weakref.WeakKeyDictionary[nn.Module, tuple[bool, bool]] = weakref.WeakKeyDictionary()


def traced_into(m: nn.Module) -> bool:
    """Whether the trace goes into ``m`` instead of keeping it a leaf: a parameter-free module
    without children, of the model's own (not a library's, :data:`LIBRARIES`), that is neither
    an activation (:func:`module_activation`: elementwise, probed on a copy) nor a drop path by
    its name nor a noise (in training, two seeded calls of a copy on a ``(8, 16, 32)`` probe
    differ: a ``LockedDropout``, measured as one module). Its ops — a pool, a sum, a reshape, a
    table written as a module — are then read as the same ops written in ``forward`` are: a
    global average pool module had no rule of its own (the next layer was solved for ``E[x²]``
    as it came) where ``x.mean((2, 3))`` in ``forward`` is measured on the example input or
    said. One that fx cannot trace on its own (control flow on the data) stays a leaf; where
    the model's trace still fails with the others opened, :func:`trace_fx` keeps them all
    leaves. Decided once per module and mode."""
    if m._parameters or m._modules or type(m).__module__.startswith(LIBRARIES):
        return False
    hit = _OPENED.get(m)
    if hit is not None and hit[0] is m.training:
        return hit[1]
    # (a module with no state of its own — no buffers, no attributes beyond torch's — computes
    # what its class computes: decided once per class and mode; 50 `Add` blocks probed 50 times
    # took 65 ms of a fresh plan)
    stateless = not m._buffers and not (set(vars(m)) - MODULE_INTERNALS)
    key = (type(m), m.training)
    if stateless and key in _OPENED_CLASSES:
        _OPENED[m] = (m.training, _OPENED_CLASSES[key])
        return _OPENED_CLASSES[key]
    name = type(m).__name__
    out = (
        module_activation(m) is None
        and not name.endswith("DropPath")
        and name != "StochasticDepth"
        and not _draws_noise(m)
        and _traceable(m)
    )
    _OPENED[m] = (m.training, out)
    if stateless:
        if len(_OPENED_CLASSES) > 256:
            _OPENED_CLASSES.clear()
        _OPENED_CLASSES[key] = out
    return out


_OPENED_CLASSES: dict[tuple[type, bool], bool] = {}


def _traceable(m: nn.Module) -> bool:
    """Whether fx can trace ``m`` on its own (its ``forward`` has no control flow on the data):
    one that can not stays a leaf, and the others are still traced into (the whole model's
    trace would otherwise fail on it, and :func:`trace_fx` keep every one of them a leaf)."""
    tracer = LeafTracer()
    tracer.opening = False
    try:
        tracer.trace(m)
    except Exception:
        return False
    return True


def _draws_noise(m: nn.Module) -> bool:
    """Whether ``m`` (in training mode) gives two outputs for one probe under two seeds."""
    if not m.training:
        return False
    copied = probe_copy(m)
    if copied is None:
        return True  # (not called: kept a leaf, as before)
    x = torch.randn(NOISE_PROBE, generator=torch.Generator().manual_seed(0))
    pair = seeded_pair(copied, x)
    if pair is None:
        return False
    a, b = pair
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and not torch.equal(a, b)


def expand_known(module: nn.Module, name: str, inputs: list[int], nodes: list[Node]) -> int:
    """Append the dataflow of a :data:`KNOWN` container (named ``name``, fed by the nodes
    ``inputs``: src, or tgt and memory) to ``nodes``; return its output node. A dropout module
    that is active (training mode, ``0 < p < 1``: :func:`dropout_noise`) is a node; one that is
    the identity (eval mode, ``p = 0``) is left out; masks do not change the structure."""

    def add(op: str, target: str, ins: list[int]) -> int:
        nodes.append(Node(len(nodes), op, target, ins))
        return len(nodes) - 1

    def at(prefix: str, child: str) -> str:
        return f"{prefix}.{child}" if prefix else child

    def drop(layer: nn.Module, prefix: str, child: str, x: int) -> int:
        m = getattr(layer, child, None)
        active = dropout_rate(m) is not None and m.training
        return add("module", at(prefix, child), [x]) if active else x

    def sublayer(layer: nn.Module, norm: str, x: int, body: Callable[[int], int]) -> int:
        """``x + body(norm(x))`` (norm_first) or ``norm(x + body(x))``."""
        if layer.norm_first:
            return add("function", "add", [x, body(add("module", norm, [x]))])
        return add("module", norm, [add("function", "add", [x, body(x)])])

    def ff(layer: nn.Module, prefix: str, x: int, out_drop: str) -> int:
        h = add("module", at(prefix, "linear1"), [x])
        a = layer.activation
        if isinstance(a, nn.Module):
            h = add("module", at(prefix, "activation"), [h])
        else:
            h = add("function", _fn_name(a), [h])
        h = add("module", at(prefix, "linear2"), [drop(layer, prefix, "dropout", h)])
        return drop(layer, prefix, out_drop, h)

    def self_attn(layer: nn.Module, prefix: str) -> Callable[[int], int]:
        return lambda y: drop(
            layer, prefix, "dropout1", add("module", at(prefix, "self_attn"), [y])
        )

    def encoder_layer(layer: nn.Module, prefix: str, x: int) -> int:
        x = sublayer(layer, at(prefix, "norm1"), x, self_attn(layer, prefix))
        return sublayer(layer, at(prefix, "norm2"), x, lambda y: ff(layer, prefix, y, "dropout2"))

    def decoder_layer(layer: nn.Module, prefix: str, x: int, mem: int) -> int:
        x = sublayer(layer, at(prefix, "norm1"), x, self_attn(layer, prefix))

        def cross(y: int) -> int:
            h = add("module", at(prefix, "multihead_attn"), [y, mem])
            return drop(layer, prefix, "dropout2", h)

        x = sublayer(layer, at(prefix, "norm2"), x, cross)
        return sublayer(layer, at(prefix, "norm3"), x, lambda y: ff(layer, prefix, y, "dropout3"))

    def stack(container: nn.Module, prefix: str, x: int, mem: int | None) -> int:
        for i, layer in enumerate(container.layers):
            sub_prefix = at(prefix, f"layers.{i}")
            if mem is None:
                x = encoder_layer(layer, sub_prefix, x)
            else:
                x = decoder_layer(layer, sub_prefix, x, mem)
        return add("module", at(prefix, "norm"), [x]) if container.norm is not None else x

    x = inputs[0]
    mem = inputs[1] if len(inputs) > 1 else x
    if isinstance(module, nn.TransformerEncoderLayer):
        return encoder_layer(module, name, x)
    if isinstance(module, nn.TransformerDecoderLayer):
        return decoder_layer(module, name, x, mem)
    if isinstance(module, nn.TransformerEncoder):
        return stack(module, name, x, None)
    if isinstance(module, nn.TransformerDecoder):
        return stack(module, name, x, mem)
    assert isinstance(module, nn.Transformer)
    memory = stack(module.encoder, at(name, "encoder"), x, None)
    return stack(module.decoder, at(name, "decoder"), mem, memory)


def known_graph(model: nn.Module) -> Graph | None:
    """The graph of a model that *is* a :data:`KNOWN` container (no tracing, no input)."""
    if not isinstance(model, KNOWN):
        return None
    two = isinstance(model, (nn.TransformerDecoderLayer, nn.TransformerDecoder, nn.Transformer))
    nodes = [Node(0, "input", "input")]
    if two:
        nodes.append(Node(1, "input", "input"))
    out = expand_known(model, "", [n.idx for n in nodes], nodes)
    nodes.append(Node(len(nodes), "output", "output", [out]))
    return Graph(nodes, "attributes")


def fn_name(fn: Any) -> str:
    """The name a function node gets in the graph (``torch.tanh`` → ``"tanh"``)."""
    return _fn_name(fn)


def _fn_name(fn: Any) -> str:
    if fn in (operator.add, operator.iadd):
        return "add"
    if fn in (operator.mul, operator.imul):
        return "mul"
    if fn in (operator.truediv, operator.itruediv):
        return "div"
    if fn is operator.getitem:
        return "getitem"
    if fn is operator.matmul:
        return "matmul"
    if is_aten(fn):
        return packet_name(fn)  # (aten.add.Tensor → "add")
    name = getattr(fn, "__name__", None) or str(fn)
    return name.strip("_") if name.startswith("__") else name


class LeafTracer(torch.fx.Tracer):
    """fx tracer that keeps :func:`is_leaf` modules as leaves. fx hands ``forward`` the real
    buffers (``proxy_buffer_attributes`` is off), so an in-place write to one in ``forward`` —
    a BatchNorm written by hand updating its running statistics, a step counter — runs while
    tracing: every buffer is put back as it was afterwards (a plan changed a hand-written
    norm's running variance 1 → 0.9)."""

    opening = True
    """Whether parameter-free modules of the model's own are traced into (:func:`traced_into`)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m) and id(m) not in self._opened

    _opened: frozenset[int] = frozenset()

    constants: dict[str, Any]
    """The tensors fx lifted out of ``forward`` as attributes (``torch.tensor(0.)`` written in
    ``forward`` becomes ``_tensor_constant0``), by name. fx sets them on the model it traces;
    :meth:`trace` takes them off again and keeps them here — a plan left 20 such attributes on
    a model whose forward wrote ``torch.fmax(h, torch.tensor(0.))`` in a loop."""

    def trace(self, root: Any, concrete_args: Any = None) -> torch.fx.Graph:
        self.constants = {}
        if not isinstance(root, nn.Module):
            return super().trace(root, concrete_args)
        # (decided before tracing: while fx traces, a module called outside the root — the
        # probes' copies — fails)
        self._opened = frozenset(
            id(m) for m in root.modules() if self.opening and m is not root and traced_into(m)
        )
        saved = [(b, b.detach().clone()) for b in root.buffers() if not b.is_meta]
        before = set(vars(root))
        try:  # (what forward writes on the modules while traced — proxies — is put back)
            with kept_attributes(root, keep_new_on_root=True):
                return super().trace(root, concrete_args)
        finally:
            with torch.no_grad():
                for b, v in saved:
                    if not torch.equal(b, v):
                        b.copy_(v)
            for name in set(vars(root)) - before:
                self.constants[name] = vars(root).pop(name)


@contextlib.contextmanager
def constants_set(model: nn.Module, constants: dict[str, Any]) -> Iterator[None]:
    """``model`` with the tensor constants of a trace (:attr:`LeafTracer.constants`) set as
    its attributes for the duration (``torch.fx.GraphModule(model, graph)`` copies them into
    the module it builds), and taken off again."""
    added = [k for k in constants if k not in vars(model)]
    for k in added:
        setattr(model, k, constants[k])
    try:
        yield
    finally:
        for k in added:
            vars(model).pop(k, None)


def fx_module(model: nn.Module) -> torch.fx.GraphModule:
    """``torch.fx.GraphModule`` of ``model`` traced by :class:`LeafTracer`; the model keeps no
    attribute of the trace."""
    tracer = LeafTracer()
    graph = tracer.trace(model)
    with constants_set(model, tracer.constants):
        return torch.fx.GraphModule(model, graph)


def trace_fx(model: nn.Module) -> Graph:
    """Build the graph with ``torch.fx`` (raises whatever fx raises when it cannot trace)."""
    tracer = LeafTracer()
    try:
        fx_graph = tracer.trace(model)
    except Exception:  # (a module of its own fx cannot go into: all of them leaves, as before)
        if not any(traced_into(m) for m in model.modules() if m is not model):
            raise
        tracer = LeafTracer()
        tracer.opening = False
        fx_graph = tracer.trace(model)
    graph = without_dead_ends(from_fx(model, fx_graph))
    graph.constants = tracer.constants
    return graph


_WRITES = frozenset({"setitem", "index_put", "scatter", "copy", "fill", "zero"})
"""Function nodes that write into a tensor (besides the ``name_`` methods): never dead ends."""


def live_nodes(graph: Graph) -> set[int]:
    """The nodes the model's output or a write into a tensor (an ``add_``, a ``setitem``, a
    ``copy_``) is computed from: what ``forward`` computes for an effect."""

    def writes(n: Node) -> bool:
        t = str(n.target)
        return n.op == "function" and (
            (t.endswith("_") and not t.endswith("__")) or t.rstrip("_") in _WRITES
        )

    live: set[int] = set()
    stack = [n.idx for n in graph.nodes if n.op == "output" or writes(n)]
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(graph.nodes[i].inputs)
    return live


def without_dead_ends(graph: Graph) -> Graph:
    """``graph`` without the function nodes that only observe it: computed from values of the
    graph, reaching neither the output nor a write — a statistic ``forward`` computes to log or
    keep (``self.pre_mean = z.detach().mean()``), a shape read for a check. Kept, such a node
    was a second use of the value it reads, and single-use patterns failed: a plain-function
    activation after that value was read as the ``sigmoid`` inside it, and the layers after it
    were 1.6× off, with nothing said. What a module computes stays, used or not (SigLIP's
    pooling head, which PaliGemma does not read, is still a residual block), and so do
    operations that write into a tensor (``add_``, ``setitem``, ``copy_``) and what they
    read."""

    live = live_nodes(graph)
    users = graph.users()
    dead = {n.idx for n in graph.nodes if n.op == "function" and n.idx not in live}
    while True:  # observers only: read from live values or other observers, read by observers
        keep = {
            i
            for i in dead
            if any(j not in live and j not in dead for j in graph.nodes[i].inputs)
            or any(u not in dead for u in users[i])
        }
        if not keep:
            break
        dead -= keep
    if not dead:
        return graph
    new: dict[int, int] = {}
    nodes: list[Node] = []
    for n in graph.nodes:
        if n.idx in dead:
            continue
        new[n.idx] = len(nodes)
        n.idx = len(nodes)
        n.inputs = [new[i] for i in n.inputs]
        n.broadcast = frozenset(new[i] for i in n.broadcast if i in new)
        nodes.append(n)
    graph.nodes = nodes
    graph.inlined = {k: new[v] for k, v in graph.inlined.items() if v in new}
    return graph


def graph_modules(model: nn.Module, graph: Graph | None) -> dict[str, nn.Module]:
    """``dict(model.named_modules())`` and the graph's :attr:`Graph.extra` sites: every module
    node's target names one of them."""
    modules = dict(model.named_modules())
    if graph is not None and graph.extra:
        modules.update(graph.extra)
    return modules


@dataclass(frozen=True)
class TensorArg:
    """Stands for a tensor inside a list argument of a run-traced call — the tensor itself is
    among the node's inputs — by the node that produced it (-1: none), so two calls' arguments
    compare as fx's do, equal where they read the same nodes."""

    node: int

    def __repr__(self) -> str:
        return f"<tensor of node {self.node}>"


def _mha_roles(fn: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The query, key and value nodes of an ``nn.MultiheadAttention`` call, by position or
    keyword: fx's ``all_input_nodes`` lists each node once, so ``att(q, kv, kv)`` and
    ``att(x, x, v)`` both came as two inputs, and a mask after them took a role's place. None
    where one is not a node."""
    names = ("query", "key", "value")
    roles = [fn.args[i] if len(fn.args) > i else fn.kwargs.get(k) for i, k in enumerate(names)]
    if not all(isinstance(a, torch.fx.Node) for a in roles):
        return None
    return roles  # type: ignore[return-value]


def from_fx(model: nn.Module, fx_graph: torch.fx.Graph) -> Graph:
    index: dict[torch.fx.Node, int] = {}
    nodes: list[Node] = []
    # fx records `h.add_(y)` (or `h.relu_()`) as a node no one uses: later uses of `h` read the
    # node from before the write. They are pointed at the in-place node — the value they see
    # (a residual `x.add_(branch)` fed the next layer the pre-sum x: 8 blocks grew ×2.8)
    latest: dict[int, int] = {}
    for fn in fx_graph.nodes:
        torch_level(fn)  # (an exported module's ATen operators: the torch functions they lower)
        if is_check(fn):
            continue  # (export's metadata asserts: a second use of a value that computes nothing)
        if fn.op == "call_method" and fn.target in _KEEPS_VALUE and fn.args:
            first = fn.args[0]
            if isinstance(first, torch.fx.Node) and first in index:
                index[fn] = index[first]  # (`h.requires_grad_()`: h itself)
                continue
        inputs = [latest.get(index[a], index[a]) for a in fn.all_input_nodes]
        scalars = tuple(a for a in fn.args if not isinstance(a, torch.fx.Node))
        kwargs = {k: a for k, a in fn.kwargs.items() if not isinstance(a, torch.fx.Node)}
        op = {
            "placeholder": "input",
            "get_attr": "param",
            "call_module": "module",
            "call_function": "function",
            "call_method": "function",
            "output": "output",
        }[fn.op]
        target = _fn_name(fn.target) if fn.op == "call_function" else str(fn.target)
        if target == "sub" and len(fn.args) == 2 and not isinstance(fn.args[0], torch.fx.Node):
            target = "rsub"  # `1 - z`: the scalar first (a run trace records it as rsub too)
        if target == "div" and len(fn.args) == 2 and not isinstance(fn.args[0], torch.fx.Node):
            target = "rtruediv"  # `1 / z`: the scalar first (as a run trace records it); it
            # was taken for `z / 1` (a linear attention's normalizer came out ×10⁹ too large)
        permuted = rearrangement(target, scalars, len(inputs))
        if permuted is not None:
            target, scalars = permuted
        call = _fx_call(fn) if op == "function" else None
        if op == "module" and isinstance(model.get_submodule(target), nn.MultiheadAttention):
            roles = _mha_roles(fn)  # (query, key, value in place, as a run trace records them)
            if roles is not None:
                qkv = [latest.get(index[a], index[a]) for a in roles]
                inputs = qkv + [i for i in inputs if i not in qkv]
        if op == "module" and isinstance(model.get_submodule(target), KNOWN):
            index[fn] = expand_known(model.get_submodule(target), target, inputs, nodes)
            continue
        node = Node(len(nodes), op, target, inputs, scalars, kwargs, call)
        index[fn] = node.idx
        nodes.append(node)
        if fn.op == "call_method" and _in_place_method(target) and inputs:
            latest[inputs[0]] = node.idx
    return Graph(nodes, "fx")


_KEEPS_VALUE = frozenset({"requires_grad_", "retain_grad"})
"""Tensor methods that change no value: recorded, they were a second use of the tensor (HF's
gradient checkpointing calls ``inputs_embeds.requires_grad_(True)``: GPT-2's position table was
then planned N(0, 1) instead of the token table's std, and the residual branch ends ×5.7)."""


def _value_kept(func: Any, args: tuple, out: Any) -> bool:
    """Whether a call recorded by a run trace returns its own first argument unchanged in value
    (:data:`_KEEPS_VALUE`): not a node, its tensor keeps its producer."""
    return _fn_name(func) in _KEEPS_VALUE and bool(args) and out is args[0]


def einsum_permutation(target: str, args: tuple, n_inputs: int) -> tuple[str, tuple] | None:
    """``("permute", (dims,))`` where ``target``/``args`` are an ``einsum`` of one operand that
    only reorders its dimensions (``einsum("bnhd->bhnd", q)``, the identity ``"bi->bi"``): a
    permutation, which moves values as ``permute`` does. As a product it stopped the walk from
    a layer to its activation — ``einsum("bi->bi", fc(x))`` before a tanh made ``fc`` a linear
    layer and the next two layers' scales ×0.63 and ×1.66 off. ``dims`` is empty where an
    ellipsis hides the leading dimensions. None for anything else (a product of several
    operands, a sum over a letter, a diagonal)."""
    if target != "einsum" or n_inputs != 1 or not args or not isinstance(args[0], str):
        return None
    eq = args[0].replace(" ", "")
    if eq.count("->") != 1 or "," in eq:
        return None
    lhs, rhs = eq.split("->")
    if lhs.count("...") > 1 or lhs.count("...") != rhs.count("..."):
        return None
    left, right = lhs.replace("...", ""), rhs.replace("...", "")
    if not (left + right).isalpha() or len(set(left)) != len(left):
        return None
    if sorted(left) != sorted(right):
        return None  # (a sum over a letter, or a letter repeated on the right)
    if "..." not in lhs:
        return "permute", (tuple(lhs.index(c) for c in rhs),)
    if lhs.startswith("...") and rhs.startswith("..."):  # the trailing letters, counted back
        return "permute", (tuple(left.index(c) - len(left) for c in right),)
    return "permute", ()


_TRANSPOSED_VIEWS = {"T": ("t", ()), "mT": ("transpose", (-2, -1))}
"""The tensor properties that are transposes: ``h.T`` (all dimensions reversed; a matrix's
``t()``) and ``h.mT`` (the last two swapped)."""


def rearrangement(target: str, args: tuple, n_inputs: int) -> tuple[str, tuple] | None:
    """The rearrangement a graph node is, where its call spells one otherwise:
    :func:`einsum_permutation`'s reordering ``einsum``, or a transposing property (``h.T`` →
    ``t``, ``h.mT`` → ``transpose(-2, -1)``, :data:`_TRANSPOSED_VIEWS`). Read as an attribute,
    ``tanh(fc(x).T).T`` was no rearrangement: it stopped the walk from ``fc`` to its activation
    and was probed as a stretch — the chain's depth was taken as 1 and ``fc`` got std 0.262
    for the plain network's 0.275. None for anything else."""
    if target == "getattr" and n_inputs == 1 and len(args) == 1:
        return _TRANSPOSED_VIEWS.get(args[0])  # type: ignore[arg-type]
    return einsum_permutation(target, args, n_inputs)


def property_read(fn: Any) -> str | None:
    """The property's name where ``fn`` is the getter a function mode sees for a tensor
    property (``h.T`` calls ``Tensor.T.__get__``), else None: a run trace records it as fx
    does, ``getattr`` with that name (it recorded ``get``, which nothing read — the weight of a
    ``x @ fc.weight.T`` was no call of ``fc``)."""
    if getattr(fn, "__name__", None) != "__get__":
        return None
    name = getattr(getattr(fn, "__self__", None), "__name__", None)
    return name if isinstance(name, str) else None


def _in_place_method(name: str) -> bool:
    """A tensor method that writes its result into ``self``: ``add_``, ``relu_``, ``mul_``,
    ``copy_``… (not a dunder such as ``__add__``; not ``requires_grad_``, which writes no
    value)."""
    return name.endswith("_") and not name.endswith("__") and name != "requires_grad_"


def _fx_call(fn: torch.fx.Node) -> Callable[[list[torch.Tensor]], Any]:
    order = list(fn.all_input_nodes)
    if fn.op == "call_method":
        name = str(fn.target)
        f: Callable[..., Any] = lambda self, *a, **k: getattr(self, name)(*a, **k)  # noqa: E731
    else:
        f = fn.target  # type: ignore[assignment]

    def call(values: list[torch.Tensor]) -> Any:
        env = dict(zip(order, values, strict=True))
        args = torch.fx.node.map_arg(fn.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(fn.kwargs, lambda n: env[n])
        return f(*args, **kwargs)

    return call


def trace_sequential(model: nn.Module) -> Graph | None:
    """The graph of an ``nn.Sequential`` (exactly that class, nested only in Sequentials) whose
    children are leaves: a chain, read from the structure without tracing (fx takes 10–15 ms for
    a 40-module MLP). None for anything else."""
    if type(model) is not nn.Sequential:
        return None
    names: list[str] = []
    first: dict[int, str] = {}  # a module listed twice runs twice, under its first name

    def walk(m: nn.Module, prefix: str) -> bool:
        # (`_modules`, not `named_children()`, which lists a module object once: one
        # `nn.ReLU()` reused between the layers of a Sequential ran after every layer but was
        # seen after the first only — the others were solved as linear, ×½ per ReLU layer)
        for name, child in m._modules.items():
            if child is None:
                continue
            full = first.setdefault(id(child), f"{prefix}.{name}" if prefix else name)
            if type(child) is nn.Sequential:
                if not walk(child, full):
                    return False
            elif isinstance(child, KNOWN) or module_kind(child) == "experts":
                # (expanded from their attributes by trace_fx: as one opaque node here the
                # layers inside got no moments — a TransformerEncoder in a Sequential had
                # every layer at LeCun's "no activation after it", nothing said)
                return False
            elif is_leaf(child) and not traced_into(child):
                names.append(full)
            else:
                return False
        return True

    if not walk(model, ""):
        return None
    nodes = [Node(0, "input", "input")]
    for name in names:
        nodes.append(Node(len(nodes), "module", name, [len(nodes) - 1]))
    nodes.append(Node(len(nodes), "output", "output", [len(nodes) - 1]))
    return Graph(nodes, "sequential")


META_SHORTCUTS = True
"""Whether :func:`trace_run` on a meta-device model takes the common operations' results from
:func:`~initwise.torch.meta_ops.fast_meta` (False: every operation runs torch's meta kernel;
the tests compare the two)."""

META_STAND_INS = True
"""Whether :func:`trace_run` on a CPU model first runs it on meta stand-ins of its parameters
and buffers (:func:`meta_stand_ins`; False: always on the model's own tensors)."""

STAND_INS_FROM = 1 << 23
"""Elements (parameters and buffers) from which a CPU model is traced on meta stand-ins: below,
its own forward on the example input is as fast or faster (measured, plan of Llama-style models:
1.0 M parameters 22 ms on its tensors / 29 ms on stand-ins, 7.3 M 31 / 31 ms, 58 M 72 / 52 ms,
167 M 130 / 52 ms; GPT-2-small 124 M 220 / 58 ms)."""


def trace_run(model: nn.Module, example_input: Any) -> Graph:
    """Build the graph by running ``example_input`` (a tensor, tuple of args or dict of kwargs)
    under ``torch.no_grad`` in the model's current mode, seeded (random layers draw the same on
    every call: a LayerDrop's choice of layers) and torch's global random state put back.
    Weights are not changed. A meta-device model runs on meta copies of the inputs (shapes
    only, no data).

    A large model on the CPU is first run the same way on meta stand-ins of its parameters and
    buffers (:func:`meta_stand_ins`): the graph records operations and shapes, which the
    values do not change unless the forward branches on them — and then the meta run fails
    (a meta tensor has no value to read) and the model runs on its own tensors, as before.
    Only from :data:`STAND_INS_FROM` elements: GPT-2-small's plan 220 → 58 ms (its forward on
    the example input and the copy of the parameters a forward might write,
    :func:`~initwise.torch.batch.kept_parameters`, are not needed)."""
    if META_STAND_INS and _stand_ins_apply(model):
        drew: list[bool] = []
        try:
            with meta_stand_ins(model):
                graph = _trace_run(model, example_input, torch.device("cpu"), drew)
            if not drew[0]:
                return graph
            # (it drew random numbers on the CPU — LayerDrop's `torch.rand([]) < p` — which
            # steer the forward; on stand-ins dropout draws none, so the draws would differ
            # from its own run's: run it for real)
        except Exception:
            pass  # (a forward that reads values, or mixes in tensors of its own: run it for real)
    return _trace_run(model, example_input)


def _stand_ins_apply(model: nn.Module) -> bool:
    """Whether every parameter and buffer of ``model`` is a plain strided CPU tensor (a tensor
    subclass, a sparse or quantized tensor, or one on another device runs on itself) and they
    hold at least :data:`STAND_INS_FROM` elements."""
    total = 0
    for m in model.modules():
        for d in (m._parameters, m._buffers):
            for t in d.values():
                if t is None:
                    continue
                if not plain_strided(t) or t.device.type != "cpu" or t.is_quantized:
                    return False
                total += t.numel()
    return total >= STAND_INS_FROM and total > 0


@contextlib.contextmanager
def meta_stand_ins(model: nn.Module) -> Iterator[None]:
    """Within: every parameter and buffer of ``model`` replaced in its module by a meta tensor
    of the same shape, strides, dtype and ``requires_grad`` (one stand-in per tensor: a tie
    stays a tie). On the way out each module's parameters, buffers and children are exactly
    what they were — what the block added (a buffer registered in ``forward``) is removed."""
    saved = [(m, dict(m._parameters), dict(m._buffers), dict(m._modules)) for m in model.modules()]
    made = meta_tensors(model)
    try:
        for m, params, buffers, _ in saved:
            for d, own in ((m._parameters, params), (m._buffers, buffers)):
                for k, t in own.items():
                    if t is not None:
                        d[k] = made[id(t)]
        yield
    finally:
        for m, params, buffers, children in saved:
            for d, own in ((m._parameters, params), (m._buffers, buffers), (m._modules, children)):
                if d.keys() != own.keys() or any(d[k] is not v for k, v in own.items()):
                    d.clear()
                    d.update(own)


def _trace_run(
    model: nn.Module,
    example_input: Any,
    recorded_device: torch.device | None = None,
    drew: list[bool] | None = None,
) -> Graph:
    """:func:`trace_run` on the model's tensors as they are; ``recorded_device``: the device the
    graph records where an operation's argument is the meta device (a forward that moves a
    tensor to ``x.device``), so that a run on stand-ins records what the model's own run would;
    ``drew``: gets whether the forward drew from torch's CPU generator. The run is seeded
    (``seeded_rng(0)``: dropout, LayerDrop) and the caller's random state put back."""

    def device_as(a: Any) -> Any:
        if recorded_device is not None and isinstance(a, torch.device) and a.type == "meta":
            return recorded_device
        if isinstance(a, (list, tuple)) and any(isinstance(t, torch.Tensor) for t in a):
            # (`torch.cat((cls, x), 1)`: the tensors in a list argument are the node's inputs;
            # kept as tensors, comparing two such nodes' arguments raised "Boolean value of
            # Tensor with more than one value is ambiguous" — TimeSformer's plan with an
            # example input)
            return type(a)(
                TensorArg(producer.get(id(t), -1)) if isinstance(t, torch.Tensor) else t for t in a
            )
        return a

    nodes: list[Node] = []
    producer: dict[int, int] = {}
    keep: list[Any] = []  # keep traced tensors alive so their ids stay unique
    param_names = {id(p): n for n, p in model.named_parameters()}
    buffer_names = {id(b): n for n, b in model.named_buffers() if b.is_floating_point()}
    depth = [0]

    def add(
        op: str,
        target: str,
        inputs_obj: Any,
        outputs_obj: Any,
        args: tuple = (),
        kwargs: dict | None = None,
        func: Callable[..., Any] | None = None,
    ) -> None:
        inputs = []
        for t in tensors(inputs_obj):
            if id(t) not in producer and id(t) in param_names:
                nodes.append(Node(len(nodes), "param", param_names[id(t)]))
                producer[id(t)] = nodes[-1].idx
            elif id(t) not in producer and id(t) in buffer_names:
                # a buffer a module or a function reads (Swin v2's coordinate table into its
                # position-bias MLP; a graph's adjacency in `self.adj @ h`): known data, whose
                # moments the planner measures (as fx's get_attr). Read by a function it was no
                # node: `self.adj @ h` had one operand and stopped the walk to the layer's ReLU
                nodes.append(Node(len(nodes), "param", buffer_names[id(t)]))
                producer[id(t)] = nodes[-1].idx
            if id(t) in producer:
                inputs.append(producer[id(t)])
        call = _run_call(func, inputs_obj, producer) if func is not None else None
        outs = tensors(outputs_obj)
        size = outs[0].numel() if outs else 0
        small = frozenset(
            producer[id(t)]
            for t in tensors(inputs_obj)
            if id(t) in producer and op == "function" and t.numel() < size
        )
        permuted = rearrangement(target, args, len(inputs))
        if permuted is not None:
            target, args = permuted
        node = Node(len(nodes), op, target, inputs, args, kwargs or {}, call, small)
        nodes.append(node)
        for t in outs:
            producer[id(t)] = node.idx
            keep.append(t)

    on_meta = any(p.is_meta for p in model.parameters())

    class Recorder(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            kwargs = kwargs or {}
            # (on meta tensors, the shapes of the common operations without torch's meta
            # kernels, many of them Python: ~90 % of a meta GPT-2's trace)
            out = fast_meta(func, args, kwargs) if on_meta and META_SHORTCUTS else NotImplemented
            if out is NotImplemented:
                out = func(*args, **kwargs)
            if depth[0] == 0 and tensors(out) and not _value_kept(func, args, out):
                scalars = tuple(device_as(a) for a in args if not isinstance(a, torch.Tensor))
                kw = {k: device_as(a) for k, a in kwargs.items() if not isinstance(a, torch.Tensor)}
                name, attr = _fn_name(func), property_read(func)
                if attr is not None:  # (`h.T`: recorded as fx records it, getattr(h, "T"))
                    name, scalars = "getattr", (attr,)
                add("function", name, (args, kwargs), out, scalars, kw, func)
            elif (
                depth[0] == 0
                and _fn_name(func) == "setitem"
                and args
                and isinstance(args[0], torch.Tensor)
            ):
                # `ctx[idx] = v` writes into ctx and returns nothing: recorded as a node whose
                # output is ctx, so what reads ctx afterwards reads the write (Informer's
                # decoder overwrites a cumulative sum with the attention output: the out
                # projection was solved for the sum's E[x²] 8.4 where 0.43 came)
                scalars = tuple(device_as(a) for a in args if not isinstance(a, torch.Tensor))
                add("function", "setitem", (args, kwargs), args[0], scalars, {}, func)
            return out

    names = {m: n for n, m in model.named_modules()}
    handles = []

    def pre(m: nn.Module, args: Any, kwargs: Any) -> None:
        depth[0] += 1

    def post(m: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        depth[0] -= 1
        if depth[0] == 0 and isinstance(m, KNOWN):
            ins = [producer[id(t)] for t in tensors((args, kwargs)) if id(t) in producer]
            last = expand_known(m, names[m], ins, nodes)
            for t in tensors(out):
                producer[id(t)] = last
                keep.append(t)
        elif depth[0] == 0:
            add("module", names[m], (args, kwargs), out)

    for m in names:
        if is_leaf(m) and m is not model and not traced_into(m):
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            # (first: a forward hook of the user's that returns a new output then runs at
            # depth 0, recorded as the ops it computes on the module's output; after it, its
            # output was taken for the module's own)
            handles.append(m.register_forward_hook(post, with_kwargs=True, prepend=True))
    if on_meta:  # shape-only run: inputs on meta too
        example_input = to_meta(example_input)
    args, kwargs = split(example_input)
    for t in tensors((args, kwargs)):
        nodes.append(Node(len(nodes), "input", "input"))
        producer[id(t)] = nodes[-1].idx
        keep.append(t)
    try:  # (running it may update norm statistics: put back)
        with torch.no_grad(), seeded_rng(0), kept_state(model), Recorder():
            start = torch.random.default_generator.get_state() if drew is not None else None
            out = model(*args, **kwargs)
            if start is not None:
                drew.append(not torch.equal(torch.random.default_generator.get_state(), start))
    finally:
        for h in handles:
            h.remove()
    add("output", "output", out, None)
    return without_dead_ends(Graph(nodes, "run"))


_HOOK_LIBRARIES = (*LIBRARIES, "accelerate.", "peft.", "initwise.")
"""Where a hook's code comes from a library whose hooks keep a layer's values (weight_norm's,
spectral_norm's and pruning's pre-hooks recompute a weight; FSDP's gather it; a quantization
observer records ranges; transformers' output recorders read them)."""


def value_hooks(m: nn.Module) -> list[str]:
    """The forward pre-hooks and forward hooks on ``m`` that are not a library's
    (:data:`_HOOK_LIBRARIES`): hooks of the user's, which may change the values the module gets
    (a pre-hook returns new inputs) or gives (a hook returns a new output)."""
    out = []
    for what, hooks in (
        ("forward pre-hook", m._forward_pre_hooks),
        ("forward hook", m._forward_hooks),
    ):
        out += [f"{what} {_hook_name(fn)}" for fn in hooks.values() if not _library_hook(fn)]
    return out


def _hook_fn(fn: Any) -> Any:
    while hasattr(fn, "func") and callable(fn.func):  # functools.partial
        fn = fn.func
    return getattr(fn, "__func__", fn)  # (a bound method: its function)


def _library_hook(fn: Any) -> bool:
    f = _hook_fn(fn)
    owner = getattr(f, "__module__", None) or type(f).__module__ or ""
    return f"{owner}.".startswith(_HOOK_LIBRARIES)


def _hook_name(fn: Any) -> str:
    f = _hook_fn(fn)
    return str(getattr(f, "__qualname__", None) or type(f).__qualname__)


def unrun_hooks(model: nn.Module, graph: Graph | None) -> list[str]:
    """The modules whose own forward (pre-)hooks (:func:`value_hooks`) the trace that built
    ``graph`` did not run, each with its hooks: torch.fx calls a leaf layer without its hooks
    (it runs those of the modules it goes into, recording their ops) and never calls the root
    module; the chain read from an ``nn.Sequential`` runs nothing; a run trace runs them all
    (:func:`trace_run`). Global module hooks (``register_module_forward_hook``) likewise."""
    if graph is None or graph.method == "run":
        return []
    called = {n.target for n in graph.nodes if n.op == "module"}
    out = []
    for name, m in model.named_modules():
        hooks = value_hooks(m)
        if hooks and (
            graph.method == "sequential" or m is model or name in called or isinstance(m, KNOWN)
        ):
            out.append(f"'{name or type(model).__name__}' ({', '.join(hooks)})")
    g = torch.nn.modules.module
    for what, hooks in (
        ("global forward pre-hook", getattr(g, "_global_forward_pre_hooks", {})),
        ("global forward hook", getattr(g, "_global_forward_hooks", {})),
    ):
        out += [
            f"every module ({what} {_hook_name(fn)})"
            for fn in hooks.values()
            if not _library_hook(fn)
        ]
    return out


def hooked(model: nn.Module) -> bool:
    """Whether a module of ``model`` has a forward (pre-)hook of the user's (:func:`value_hooks`),
    which a run trace records and fx may not."""
    return any(
        (m._forward_pre_hooks or m._forward_hooks) and value_hooks(m) for m in model.modules()
    )


def _run_call(
    func: Callable[..., Any], inputs_obj: Any, producer: dict[int, int]
) -> Callable[[list[torch.Tensor]], Any]:
    ids = [id(t) for t in tensors(inputs_obj) if id(t) in producer]
    structure = inputs_obj

    def call(values: list[torch.Tensor]) -> Any:
        sub = dict(zip(ids, values, strict=True))
        a, k = torch.utils._pytree.tree_map(
            lambda t: sub.get(id(t), t) if isinstance(t, torch.Tensor) else t, structure
        )
        return func(*a, **k)

    return call


# ----------------------------------------------------------------------------- activations

NORM_FUNCS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"})
"""Normalizations called as functions: a norm module fx traced into calls one (timm's
``BatchNormAct2d`` — a BatchNorm with its activation inside — calls ``F.batch_norm``)."""

_STOP_FUNCS = {
    "matmul",
    "bmm",
    "mm",
    "addmm",
    "baddbmm",
    "einsum",
    "softmax",
    "log_softmax",
    "softmin",
    "scaled_dot_product_attention",
    "linear",
    "bilinear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_tbc",
    # the rest of the products with a weight: a new pre-activation starts there (MoE experts
    # run through grouped GEMMs — transformers' `_grouped_mm`, its fallback op — not `linear`)
    "_grouped_mm",
    "grouped_mm",
    "grouped_mm_fallback",
    "_scaled_mm",
    "_scaled_grouped_mm",
    "scaled_grouped_mm",
    "addbmm",
    "addmv",
    "addr",
    "mv",
    "dot",
    "inner",
    "outer",
    "tensordot",
    "chain_matmul",
    "multi_dot",
    "embedding",
    "embedding_bag",
    "multi_head_attention_forward",
    "cross_entropy",
    "mse_loss",
    "nll_loss",
}
_REDUCE = {"sum", "mean", "norm", "amax", "var", "std", "var_mean", "std_mean", "logsumexp"}
_ADD = {"add", "add_", "iadd", "radd"}
PRODUCT_FUNCS = frozenset({"mul", "mul_", "imul", "rmul"})
"""Function names of elementwise products."""
_MUL = {*PRODUCT_FUNCS, "div", "truediv"}
ADD_FUNCS = frozenset(_ADD)
"""Function names of additions (residual sums)."""
MUL_FUNCS = frozenset(_MUL)
"""Function names of products and quotients."""


@dataclass(frozen=True)
class Act:
    """An activation: a registered ``name`` (+ ``param``), or a probed elementwise ``module``
    (an activation initwise does not know, measured numerically)."""

    name: str
    param: float | None = None
    module: nn.Module | None = None
    label: str = ""

    @property
    def spec(self) -> A.ActivationSpec | None:
        """Its record in the activation registry (None for a probed module)."""
        return None if self.module is not None else A.REGISTRY.get(self.name)

    def gain(self, method: str = "forward") -> float:
        if self.module is not None:
            return gain(self.module, method=method)
        return gain(self.name, self.param, method=method)

    def torch_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The activation as a function of tensors (diagnostics apply it to pre-activations;
        a probed module gets a copy, since it may work in place)."""
        if self.module is not None:
            module = self.module
            return lambda x: module(x.clone())
        spec = self.spec
        if spec is None or spec.torch_fn is None:
            raise ValueError(
                f"activation {self.name!r} is not in the registry (was it unregistered?); "
                "register it with initwise.register_activation"
            )
        fn, p = spec.torch_fn, self.param
        return lambda x: fn(F, x, p)

    def describe(self) -> str:
        if self.label:
            return self.label
        return self.name if self.param is None else f"{self.name}({self.param:g})"


LINEAR = Act("linear")


def module_activation(module: nn.Module) -> Act | None:
    """The activation a parameter-free module computes (from the activation registry, else
    probed numerically), or None if it is not one."""
    found = A.for_module(module)
    if found is not None:
        spec, param = found
        return Act(spec.name, param)
    if next(module.parameters(), None) is None and not any(module.children()):
        probe = probe_copy(module)  # (probed, and later tabulated, on a copy: the model's own
        return None if probe is None else _probe(probe)  # module is not called by the plan)
    stand_in = probed_activation(module)  # (learned parameters: BigVGAN's Snake)
    if stand_in is not None:
        name = type(module).__name__
        return Act(name.lower(), None, stand_in, f"{name} (learned parameters as built)")
    return None


def expert_activation(module: nn.Module) -> Act | None:
    """The activation of a MoE experts module: its ``act_fn`` module's, or None (no such module:
    the gate is written in its code)."""
    fn = getattr(module, "act_fn", None)
    return module_activation(fn) if isinstance(fn, nn.Module) else None


def _probe(module: nn.Module) -> Act | None:
    """Treat an unknown parameter-free module as an activation if it acts elementwise and is not
    the identity: then its gain is computed numerically from the module itself."""
    if isinstance(module, (nn.Dropout, nn.Identity, nn.Flatten, nn.Unflatten)) or isinstance(
        module, NORMS
    ):
        return None
    x = torch.linspace(-3, 3, 24).reshape(2, 12)
    try:
        # eval mode, each submodule's own mode given back; each call on its own copy: an
        # in-place module returns its input
        with kept_modes(module, False), torch.no_grad():
            y = module(x.clone())
            if not isinstance(y, torch.Tensor) or y.shape != x.shape or torch.allclose(y, x):
                return None
            if not torch.allclose(module(x.flip(-1).clone()), y.flip(-1)):
                return None
            # one input moved must move its own output only — at both ends (a ReLU in front
            # of F.normalize hid the row's coupling at -3 alone) and in the middle
            for pos in ((0, 0), (1, 11), (1, 5)):
                x2 = x.clone()
                x2[pos] += 0.5
                d = (module(x2) - y).abs()
                d[pos] = 0
                if d.max() > 0:
                    return None
    except Exception:
        return None
    label = module.label if isinstance(module, Composite) else type(module).__name__
    same = identify(module)
    if same is not None:  # (a registered activation written another way: planned as it is)
        return Act(same, None, None, f"{label} (= {same})")
    return Act(type(module).__name__.lower(), None, module, label)


IDENTIFY_GRID = (-12.0, 12.0, 481)
"""Where a probed activation is compared with the registered ones (:func:`identify`)."""
IDENTIFY_TOL = 1e-5
"""Largest difference, absolute and relative to ``1 + |φ(x)|``, of "the same function"
(float32 rounding of a rewritten formula is ~1e-7; GELU and its tanh form differ by 2e-4)."""
_IDENTIFIED: dict[bytes, str | None] = {}


def identify(module: nn.Module) -> str | None:
    """The registered activation (at its default parameter) that an elementwise module or
    stretch of a forward computes, or None: its float32 values on :data:`IDENTIFY_GRID` equal
    the registry function's to :data:`IDENTIFY_TOL`. ``2 * torch.sigmoid(2 * x) - 1`` is
    tanh and ``x / (1 + x.abs())`` softsign; probed, they were planned by the generic smooth
    rule (tanh: no bias, q* 1.93 and χ 1.33 per layer over depth 5) where tanh itself gets its
    edge-of-chaos point. Memoized by the values and the registry's state."""
    lo, hi, n = IDENTIFY_GRID
    x = torch.linspace(lo, hi, n).reshape(1, n)
    try:
        with kept_modes(module, False), torch.no_grad():
            y = module(x.clone())
        if not isinstance(y, torch.Tensor) or y.shape != x.shape or not y.is_floating_point():
            return None
        values = y.detach().to("cpu", torch.float64).reshape(-1).numpy()
    except Exception:
        return None
    # (the registry's state in the key: an activation registered or unregistered since is seen)
    key = values.tobytes() + repr([(k, id(v)) for k, v in A.REGISTRY.items()]).encode()
    if key in _IDENTIFIED:
        return _IDENTIFIED[key]
    grid = x.to(torch.float64).reshape(-1)
    found, best = None, IDENTIFY_TOL
    for name, spec in A.REGISTRY.items():
        if name == "linear":
            continue
        try:  # (torch's own functions where registered: NumPy's GELU would load SciPy, 0.1 s)
            if spec.torch_fn is not None:
                ref = spec.torch_fn(F, grid, None).numpy()
            else:
                ref = spec.numpy()(grid.numpy())
        except Exception:  # (a user's registered function that does not take arrays)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            err = float((abs(values - ref) / (1.0 + abs(ref))).max())
        if err == err and err <= best:
            found, best = name, err
    if len(_IDENTIFIED) > 1024:
        _IDENTIFIED.clear()
    _IDENTIFIED[key] = found
    return found


def function_activation(name: str, args: tuple, kwargs: dict) -> Act | None:
    """The activation a torch function/method call computes (from the activation registry),
    if any."""
    found = A.for_function(name, args, kwargs)
    if found is None:
        return None
    spec, param = found
    return Act(spec.name, param)


# ----------------------------------------------------------------------------- analysis


@dataclass
class LayerInfo:
    """What the planner needs to know about one leaf module."""

    name: str
    module: nn.Module
    activation: Act | None = None  # None: not found in the graph
    activation_note: str = ""
    branches: list[int] = field(default_factory=list)  # residual branch indices it sits on
    last_in_branch: bool = False  # last weight layer of a residual branch
    last_norm_in_branch: bool = False  # last norm of a residual branch
    norm_after: bool = False  # last weight layer of a branch that ends in a norm
    branch_size: int = 0  # weight layers in its (innermost) branch


@dataclass
class ModelInfo:
    """Result of :func:`inspect_model`."""

    layers: dict[str, LayerInfo]
    n_residual: int
    method: str
    note: str = ""
    graph: Graph | None = None
    kinds: list[str] = field(default_factory=list)  # per graph node: weight/norm/act/stop/other
    acts: dict[int, Act] = field(default_factory=dict)  # graph node -> the activation it computes
    adds: list[Residual] = field(default_factory=list)  # residual additions, one per branch
    composite: dict[int, int] = field(default_factory=dict)  # probed activation node -> its source
    code_norms: dict[int, tuple[int, bool]] = field(default_factory=dict)
    """Norms written as formulas in ``forward`` (:func:`code_norm`): node -> (the tensor it
    normalizes, whether it keeps the mean: an RMS norm)."""
    generated: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    """Products whose weight a layer generates (:func:`generated_weight`): node -> (the
    generating layer, the product's fan-in, its signal operand)."""
    data_products: dict[int, int | None] = field(default_factory=dict)
    """Products of a layer's output with data (:func:`data_products`: a graph convolution's
    ``Â @ h``): node -> the position of the operand computed by layers (None: both are data)."""
    adapters: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    """Low-rank adapters (:func:`low_rank_adapters`): the sum ``base(x) + B(A(x))·s`` -> (B, A,
    base) by layer name."""


@dataclass(frozen=True)
class Residual:
    """A residual addition: graph node ``add`` sums the ``branch`` operand (the side with the
    weight layers) and the ``skip`` operand; ``last`` is the branch's last weight layer."""

    add: int
    branch: int
    skip: int
    last: str
    exits: tuple[str, ...] = ()
    """The branch's weight layers whose output reaches the sum with no weight layer between
    (``(last,)`` for a chain; a MoE block's routed experts and its shared expert both)."""
    weighted: tuple[str, ...] = ()
    """The exits whose outputs reach the sum weighted by a softmax (a router's ``Σ_e w_e·y_e``,
    ``Σ w_e = 1``): one summed output together, not one each."""


def analyze(model: nn.Module, graph: Graph) -> ModelInfo:
    """Activation after each leaf module, and residual branches, from ``graph``."""
    modules = graph_modules(model, graph)
    nodes = graph.nodes
    users = graph.users()
    kinds: list[str] = []
    acts: dict[int, Act] = {}
    for n in nodes:
        kind = "other"
        if n.op == "module":
            m = modules[n.target]
            if is_norm(m) or probed_norm(m) is not None:
                kind = "norm"  # (a norm written by hand under another name: found by probing)
            elif is_weight_layer(m):
                kind = "weight"
            else:
                a = module_activation(m)
                if a is not None:
                    acts[n.idx] = a
                    kind = "act"
        elif n.op == "function":
            a = function_activation(n.target, n.args, n.kwargs)
            if a is not None:
                acts[n.idx] = a
                kind = "act"
            elif n.target in NORM_FUNCS:
                kind = "norm"  # (a norm module fx traced into: timm's BatchNormAct2d)
            elif n.target in _STOP_FUNCS:
                kind = "stop"
            elif n.target in _MUL and sum(nodes[i].op != "param" for i in n.inputs) > 1:
                kind = "stop"  # gating x * g(x): a product, not an activation
        elif n.op == "output":
            kind = "stop"
        kinds.append(kind)

    # an elementwise op that feeds only reductions is part of a statistic — the x² of a norm
    # written in code (CLIP's `x / x.pow(2).sum(-1).sqrt()`), a variance — not an activation
    for i in [i for i in acts if _statistic(nodes, users, i, kinds)]:
        del acts[i]
        kinds[i] = "other"
    code_norms: dict[int, tuple[int, bool]] = {}
    for n in nodes:  # `x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)`: a norm
        found_norm = code_norm(nodes, n)
        if found_norm is not None:
            kinds[n.idx] = "norm"
            code_norms[n.idx] = found_norm
    generated = {}
    for n in nodes:
        found_gen = generated_weight(nodes, kinds, n, modules)
        if found_gen is not None:
            generated[n.idx] = found_gen
    products = data_products(model, nodes, kinds, generated)
    for i in products:  # linear in the layers' operand: passed through, as a pool is
        kinds[i] = "other"
    for n in nodes:
        n.keepdim_pool = _keepdim_pool(nodes, users, kinds, n)
        n.values_only = _values_only(nodes, users, n)
    composite = composites(
        graph, kinds, acts, scalar_constants(graph), scalar_parameters(model, graph)
    )
    layers: dict[str, LayerInfo] = {}
    for n in nodes:
        if n.op == "module" and n.target not in layers:
            layers[n.target] = LayerInfo(n.target, modules[n.target])
    for n in nodes:
        if n.op != "module" or kinds[n.idx] != "weight":
            continue
        info = layers[n.target]
        found = _find_activation(n.idx, users, kinds, acts)
        if info.activation is None:
            info.activation = found[0] if found else LINEAR
            if len({a.describe() for a in found}) > 1:
                info.activation_note = (
                    "consumers disagree ("
                    + ", ".join(sorted({a.describe() for a in found}))
                    + f"); using the nearest, {found[0].describe()}"
                )

    for name, out in graph.inlined.items():  # a custom layer traced into: as it was called
        if name not in layers:
            found = _find_activation(out, users, kinds, acts)
            layers[name] = LayerInfo(name, modules[name], found[0] if found else LINEAR)
    adapters = low_rank_adapters(nodes, kinds, layers, modules)
    adds = _residuals(nodes, kinds, layers, set(adapters))
    return ModelInfo(
        layers,
        len(adds),
        graph.method,
        "",
        graph,
        kinds,
        acts,
        adds,
        composite,
        code_norms,
        generated,
        products,
        adapters,
    )


REDUCTIONS = frozenset({"sum", "mean", "max", "amax"})
"""Reductions that are pools where they reduce named dimensions for what comes next."""


def _keepdim_pool(nodes: list[Node], users: list[list[int]], kinds: list[str], n: Node) -> bool:
    """Whether ``n`` is a ``keepdim=True`` reduction over named dimensions whose every use
    reaches a weight layer or the model's output through reshapes only (see
    :attr:`Node.keepdim_pool`): ``x.mean(-1, keepdim=True)`` that a norm divides by, or a
    softmax's ``max`` that is subtracted, is a statistic."""
    if n.op != "function" or n.target not in REDUCTIONS or not keeps_dim(n.args, n.kwargs):
        return False
    dim = n.kwargs.get("dim", n.args[0] if n.args else None)
    if not (isinstance(dim, int) or (isinstance(dim, (tuple, list)) and dim)):
        return False
    if n.target in ("max", "amax") and len(n.inputs) != 1:
        return False  # (torch.max(a, b): elementwise)
    return _feeds_layers(nodes, users, kinds, n.idx)


def _values_only(nodes: list[Node], users: list[list[int]], n: Node) -> bool:
    """Whether ``n`` is a ``topk`` of one input that is used, and only through its values
    (``.values``, ``[0]``; see :attr:`Node.values_only`)."""
    if n.op != "function" or n.target != "topk" or len(n.inputs) != 1 or not users[n.idx]:
        return False
    return all(
        nodes[u].op == "function"
        and (nodes[u].target, nodes[u].args) in (("getattr", ("values",)), ("getitem", (0,)))
        for u in users[n.idx]
    )


def downstream(users: list[list[int]], start: int, go: Callable[[int], bool]) -> Iterator[int]:
    """The nodes reached from node ``start`` through its users, each once: a node's own users
    are followed where ``go(node)`` says so."""
    frontier, seen = list(users[start]), set()
    while frontier:
        i = frontier.pop()
        if i in seen:
            continue
        seen.add(i)
        yield i
        if go(i):
            frontier.extend(users[i])


def _feeds_layers(nodes: list[Node], users: list[list[int]], kinds: list[str], idx: int) -> bool:
    """Whether every use of node ``idx`` reaches a weight layer or the model's output through
    reshapes (``.values`` of a ``max`` included), concatenations (CBAM's spatial attention
    reads ``cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)])``) and additions of a
    parameter (DeepONet's ``Σ_k b_k·t_k + b₀``) only: what a pool's result does, and what a
    statistic's (divided by, subtracted) does not."""

    def reshape(i: int) -> bool:
        v = nodes[i]
        if v.op != "function":
            return False
        if v.target in (*SHAPE_OPS, "getattr", "cat", "concat", "stack"):
            return True
        return v.target in _ADD and sum(nodes[j].op != "param" for j in v.inputs) == 1

    ends = 0
    for i in downstream(users, idx, reshape):
        if nodes[i].op == "output" or (nodes[i].op == "module" and kinds[i] == "weight"):
            ends += 1
        elif not reshape(i):
            return False
    return ends > 0


DATA_PRODUCTS = frozenset({"matmul", "bmm", "mm", "spmm", "sparse_mm"})
"""Products that :func:`data_products` reads as a pool of one operand by the other."""


def data_products(
    model: nn.Module, nodes: list[Node], kinds: list[str], generated: Collection[int] = ()
) -> dict[int, int | None]:
    """Products of two tensors (:data:`DATA_PRODUCTS`: ``A @ h``, ``torch.sparse.mm(A, h)``)
    where one operand is **data** — computed from the model's inputs and buffers only, no
    parameter on the way — and the other is computed by weight layers (or is data too): a
    graph convolution's ``Â·H·W`` (Kipf & Welling 2017) written ``A @ self.lin(h)``, a fixed
    mixing or smoothing matrix. Such a product is linear in the layers' operand, as a pool is
    in its input: its effect on ``E[x²]`` (``Â`` averages over neighbours) is in the data and is
    measured like a pool on the example input (:func:`~initwise.torch.pooling.measure_pools`).
    Node -> the position of the layers' operand among its inputs (None: both are data).
    Attention's products (both operands from layers), raw-parameter products (``x @ W``) and
    hypernetworks' generated weights (``generated``) are not these."""
    products = [
        n for n in nodes if n.op == "function" and str(n.target).lstrip("_") in DATA_PRODUCTS
    ]
    if not products:
        return {}  # (no product of two tensors: a chain of layers)
    # (a parameter, not a buffer nor a tensor constant fx made of one: `x @ self.B.t()` with a
    # buffer B — random Fourier features — traces B.t() as `_tensor_constant0`, data)
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    layered = [False] * len(nodes)  # computed by a weight layer on the way
    param = [False] * len(nodes)  # a parameter (not a buffer) on the way
    for n in nodes:
        layered[n.idx] = kinds[n.idx] == "weight" or any(layered[i] for i in n.inputs)
        param[n.idx] = (n.op == "param" and str(n.target) in params) or any(
            param[i] for i in n.inputs
        )
    out: dict[int, int | None] = {}
    for n in products:
        if len(n.inputs) != 2 or n.inputs[0] == n.inputs[1] or n.idx in generated:
            continue
        data = [not layered[i] and not param[i] for i in n.inputs]
        if all(data):
            out[n.idx] = None
        elif sum(data) == 1 and layered[n.inputs[data.index(False)]]:
            out[n.idx] = data.index(False)
    return out


def keeps_dim(args: tuple, kwargs: dict) -> bool:
    """Whether a reduction's non-tensor arguments (``dim`` first, then ``keepdim``) keep the
    reduced dimensions."""
    return kwargs.get("keepdim", args[1] if len(args) > 1 else False) is True


def constant_factor(node: Node) -> float | None:
    """``c`` where ``node`` multiplies its one tensor input by a finite nonzero number ``c``
    (``W * c``, ``c * W``) or divides it by one (``W / c``: ``1/c``), else None — a weight
    read through a constant, as an equalized learning rate keeps it (Karras et al. 2018,
    ProGAN §4.1; StyleGAN2: ``F.linear(x, self.weight * self.scale)`` with ``weight ~ N(0,
    1)/lr_mul`` and ``scale = lr_mul/√fan_in``)."""
    t = str(node.target)
    if t not in ("mul", "truediv", "div") or len(node.inputs) != 1 or node.kwargs:
        return None
    if len(node.args) != 1:
        return None
    c = node.args[0]
    if isinstance(c, bool) or not isinstance(c, (int, float)) or c == 0 or not math.isfinite(c):
        return None
    return float(c) if t == "mul" else 1.0 / float(c)


SOFTMAX_WEIGHTS = frozenset({"softmax", "_softmax", "softmin"})
"""Functions whose output is weights that sum to one (what a weighted sum of values uses)."""
SOFTMAX_FUNCS = SOFTMAX_WEIGHTS | {"log_softmax", "_log_softmax"}
SOFTMAX_MODULES: tuple[type[nn.Module], ...] = (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d)
"""Softmax and its kin as functions and as modules: weights over a dimension (attention's, a
gate's), which carry no moments of their own — what they weight is the pool."""


def is_softmax(node: Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` computes a softmax, log-softmax or softmin (:data:`SOFTMAX_FUNCS`,
    :data:`SOFTMAX_MODULES`)."""
    if node.op == "function":
        return str(node.target) in SOFTMAX_FUNCS
    return node.op == "module" and isinstance(modules.get(node.target), SOFTMAX_MODULES)


DROPOUT_FUNCS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "feature_dropout"})
"""Inverted dropout as a function (``F.dropout``, ``torch.dropout``, the channel variants):
``(input, p, training)``. ``alpha_dropout`` is not one: SELU's dropout keeps the moments."""


def dropout_rate(m: nn.Module | None) -> float | None:
    """``p`` of an inverted-dropout module (``nn.Dropout``, ``Dropout1d/2d/3d``; not
    ``AlphaDropout``, which keeps the moments) with ``0 < p < 1``, in either mode; else None."""
    if not isinstance(m, nn.modules.dropout._DropoutNd) or isinstance(
        m, (nn.AlphaDropout, nn.FeatureAlphaDropout)
    ):
        return None
    return float(m.p) if 0.0 < m.p < 1.0 else None


def dropout_rates(model: nn.Module, training: bool) -> list[float]:
    """``p`` of each of ``model``'s inverted-dropout modules (:func:`dropout_rate`) whose mode is
    ``training``."""
    return [p for m in model.modules() if m.training is training and (p := dropout_rate(m))]


def dropout_noise(node: Node, modules: dict[str, nn.Module]) -> tuple[float, float] | None:
    """``(p, E[ε²])`` of a dropout that is active — an ``nn.Dropout``/``Dropout1d``/``2d``/``3d``
    module in training mode, ``F.dropout(x, p, training)`` traced with ``training`` true, or a
    drop-path (stochastic depth) module in training (timm's and Hugging Face's ``…DropPath``
    with ``drop_prob``, torchvision's ``StochasticDepth`` with ``p``) — where ``0 < p < 1``,
    else None.

    Inverted dropout multiplies each value by ``ε ∈ {0, 1/(1 − p)}`` with ``E[ε] = 1`` and
    ``E[ε²] = 1/(1 − p)``: the mean passes, ``E[x²]`` grows by ``1/(1 − p)`` in training, and a
    gradient through it the same (Pretorius et al. 2018, "Critical initialisation for deep
    signal propagation in noisy rectifier neural networks": the critical ReLU variance with
    such noise is ``σ_w² = 2/(fan_in·E[ε²])``). Drop path draws one ``ε`` per example for a
    whole residual branch (Huang et al. 2016): the same ``E[ε²]``, or ``1 − p`` where timm's
    ``scale_by_keep`` is off. ``AlphaDropout`` keeps mean and variance by construction
    (Klambauer et al. 2017) and is not counted; nor is any of them in eval mode, where it is
    the identity."""
    scaled = True
    if node.op == "module":
        m = modules.get(node.target)
        name = type(m).__name__
        if isinstance(m, nn.modules.dropout._DropoutNd):
            p = dropout_rate(m)
        elif m is not None and name.endswith("DropPath"):
            p, scaled = getattr(m, "drop_prob", None), getattr(m, "scale_by_keep", True)
        elif m is not None and name == "StochasticDepth":
            p = getattr(m, "p", None)
        else:
            return None
        active = m.training
    elif node.op == "function" and node.target in DROPOUT_FUNCS:
        args, kw = node.args, node.kwargs
        p = kw.get("p", args[0] if args else 0.5)
        active = kw.get("training", kw.get("train", args[1] if len(args) > 1 else True))
    else:
        return None
    if active is not True or isinstance(p, bool) or not isinstance(p, (int, float)):
        return None
    if not 0.0 < p < 1.0:
        return None
    return float(p), (1.0 / (1.0 - p) if scaled is not False else 1.0 - p)


def behind(nodes: list[Node], idx: int, ops: Collection[str]) -> int:
    """The node that node ``idx`` is computed from through functions in ``ops``, each applied
    to its first input (reshapes, casts, splits): ``idx`` itself where it is no such function."""
    n = nodes[idx]
    while n.op == "function" and n.target in ops and n.inputs:
        n = nodes[n.inputs[0]]
    return n.idx


_GENERATED_CONVS = {"conv1d": 3, "conv2d": 4, "conv3d": 5}
"""Convolution functions a generated kernel may be passed to, and the kernel's dimensions."""


def _einsum_kernel_fan(m: Any) -> int | None:
    """The fan-in of the convolution kernel an einsum site generates (CondConv's
    ``einsum("be,eoikl->boikl", a, experts)``): its weight's output dimensions in the output's
    order, all but the first (the kernel's output channels) — where the graph has no sizes for
    the reshape (fx: they are computed from the input's shape)."""
    eq = getattr(m, "equation", None)
    if not isinstance(eq, str) or "->" not in eq or "..." in eq:
        return None
    lhs, out = eq.split("->")
    w = lhs.split(",")[0 if m.w_first else 1]
    dims = [w.index(c) for c in out if c in w and w.index(c) in m.out_dims]
    return math.prod(int(m.weight.shape[d]) for d in dims[1:]) if len(dims) > 1 else None


def generated_weight(
    nodes: list[Node],
    kinds: list[str],
    n: Node,
    modules: dict[str, nn.Module] | None = None,
) -> tuple[str, int, int] | None:
    """``(generating layer, fan_in, signal node)`` where node ``n`` is a product whose weight a
    layer computes — a hypernetwork's ``F.linear(x, gen(z).view(out, in))`` or ``x @
    gen(z).view(in, out)``, or a convolution with a generated kernel (CondConv's and dynamic
    convolution's per-example mix of expert kernels, ``F.conv2d(x, mix(a).reshape(B·out,
    in/g, k, k), groups=…)``): the fan-in is read from the ``view``/``reshape``'s sizes (a
    kernel's: all but the first); None for anything else."""
    conv = _GENERATED_CONVS.get(str(n.target))
    if n.op != "function" or (n.target not in ("linear", "matmul") and conv is None):
        return None
    if len(n.inputs) < 2:
        return None
    x, w = n.inputs[0], n.inputs[1]
    v = nodes[w]
    if v.op != "function" or v.target not in ("view", "reshape") or not v.inputs:
        return None
    # (under fx, sizes computed from the input's shape are inputs of the reshape, not args)
    sizes = v.args[0] if len(v.args) == 1 and isinstance(v.args[0], (tuple, list)) else v.args
    known = len(v.inputs) == 1 and len(sizes) == (conv or 2)
    known = known and all(isinstance(d, int) and d > 0 for d in sizes)
    src = nodes[v.inputs[0]]
    if src.op != "module" or kinds[src.idx] != "weight" or nodes[x].op == "param":
        return None
    if conv is not None:
        fan = math.prod(int(d) for d in sizes[1:]) if known else None
        if fan is None and modules is not None:  # (sizes computed from shapes, under fx)
            fan = _einsum_kernel_fan(modules.get(str(src.target)))
        return (str(src.target), fan, x) if fan else None
    if not known:
        return None
    return str(src.target), int(sizes[1] if n.target == "linear" else sizes[0]), x


_STAT_UNARY = frozenset(
    {"add", "sub", "rsub", "rsqrt", "sqrt", "reciprocal", "rtruediv", "pow", "square", "clamp"}
    | {"clamp_min"}
    | {"float", "to", "type_as", "mul", "truediv", "div", "abs", "detach"}
)
"""Ops on the way from a statistic's reduction to the scale a norm written in code divides by
(``+ eps``, ``sqrt``, ``rsqrt``…), each with one tensor input."""


def code_norm(nodes: list[Node], n: Node) -> tuple[int, bool] | None:
    """``(the tensor normalized, whether the mean is kept)`` where node ``n`` is a norm written
    as a formula — ``x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)`` (RMSNorm, Zhang &
    Sennrich 2019, as JAX ports and minimal GPTs write it inline), ``x / (x.pow(2).mean(-1,
    keepdim=True) + eps).sqrt()``, ``(x − μ) / torch.sqrt(x.var(-1, keepdim=True) + eps)``
    (LayerNorm, centered: the mean is removed) — a product or quotient of the signal with a
    scale computed from it alone through one ``mean``/``var``/``std`` over kept dimensions. Its
    output has unit second moment whatever comes in. A ``sum``- or ``norm``-based scale
    (``x / x.norm(-1, keepdim=True)``: E[y²] = 1/n) is not one; else None."""
    if n.op != "function" or n.target not in ("mul", "truediv", "div") or len(n.inputs) != 2:
        return None
    a, b = n.inputs
    orders = ((a, b), (b, a)) if n.target == "mul" else ((a, b),)
    for x, scale in orders:
        src = _stat_source(nodes, scale, inverse=n.target == "mul")
        if src is None:
            continue
        base, centered = _centered_source(nodes, x)
        if src in (x, base):
            return base, not centered
    return None


def _stat_source(nodes: list[Node], idx: int, inverse: bool) -> int | None:
    """The tensor a norm's scale at node ``idx`` is computed from (one keepdim ``mean``,
    ``var`` or ``std`` on the way, then ``eps``, ``sqrt``…: ``inverse`` — an ``rsqrt`` or
    ``reciprocal`` — for a scale that multiplies), else None."""
    node, reduced, inverted = nodes[idx], None, False
    for _ in range(16):
        if node.op != "function" or len(node.inputs) != 1:
            return None
        t = node.target
        if t in ("mean", "var", "std"):
            if not keeps_dim(node.args, node.kwargs) or reduced is not None:
                return None
            reduced = t
        elif t in ("rsqrt", "reciprocal", "rtruediv"):
            inverted = not inverted
        elif t not in _STAT_UNARY:
            return None
        src = node.inputs[0]
        if reduced is not None and t == reduced:
            inner = nodes[src]  # (mean of x², or var/std of x itself)
            if t == "mean":
                if not (
                    inner.op == "function"
                    and (
                        (inner.target == "pow" and inner.args[:1] == (2,))
                        or inner.target == "square"
                    )
                    and len(inner.inputs) == 1
                ):
                    return None
                src = inner.inputs[0]
            return src if inverted == inverse else None
        node = nodes[src]
    return None


def _centered_source(nodes: list[Node], idx: int) -> tuple[int, bool]:
    """``(x, True)`` where node ``idx`` is ``x − x.mean(dim, keepdim=True)``, else ``(idx,
    False)``."""
    n = nodes[idx]
    if n.op == "function" and n.target == "sub" and len(n.inputs) == 2:
        x, m = n.inputs
        mn = nodes[m]
        if mn.op == "function" and mn.target == "detach" and len(mn.inputs) == 1:
            mn = nodes[mn.inputs[0]]  # (RevIN's statistics carry no gradient: the same mean)
        if mn.op == "function" and mn.target == "mean" and mn.inputs == [x]:
            if keeps_dim(mn.args, mn.kwargs):
                return x, True
    return idx, False


SHAPE_OPS = frozenset(
    {
        "view",
        "reshape",
        "flatten",
        "permute",
        "transpose",
        "contiguous",
        "getitem",
        "unsqueeze",
        "squeeze",
        "expand",
        "repeat",
        "split",
        "chunk",
        "to",
        "type",
        "float",
        "half",
        "bfloat16",
        "clone",
        "dropout",
        "narrow",
        "select",
        "t",
        "roll",
        "flip",
        "pad",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "interpolate",
        "pixel_shuffle",
        "unfold",
        "tile",
        "masked_fill",
        "contiguous_format",
        "fused_moving_avg_obs_fake_quant",  # (quantization-aware training's fake quantizers:
        "fake_quantize_per_tensor_affine",  # quantize then dequantize, the values as they were
        "fake_quantize_per_channel_affine",  # to within a step)
        "reshape_as",  # (the second operand gives only the shape or dtype: LeViT's BatchNorm1d
        "view_as",  # over flattened tokens, `bn(x.flatten(0, 1)).reshape_as(x)`)
        "expand_as",
        "type_as",
    }
)
"""Ops that move, copy, cast or select values without changing their distribution (moments
pass through them; attention weights stay attention weights through them)."""


_NOT_ELEMENTWISE = _STOP_FUNCS | {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "getitem",
    "cat",
    "stack",
    "sum",
    "mean",
    "max",
    "min",
    "norm",
    "split",
    "chunk",
    "expand",
    "repeat",
    "size",
    "dropout",
    "unsqueeze",
    "squeeze",
    "contiguous",
    "to",
    "type",
    "t",
    "roll",
    "flip",
    "cumsum",
}


class Composite(nn.Module):
    """An elementwise stretch of a model's graph (``x * torch.sigmoid(1.5 * x)`` written in
    ``forward``, a custom ``autograd.Function``) evaluated on its own, as an activation."""

    def __init__(
        self,
        nodes: list[Node],
        source: int,
        sink: int,
        constants: dict[int, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self._nodes, self._source, self._sink = nodes, source, sink
        used = {j for n in nodes for j in n.inputs}
        self._constants = {j: v for j, v in (constants or {}).items() if j in used}
        # (`mul_` labelled as `mul`: written in place or not, the same function. A member that
        # works in place writes into x — every caller passes a copy: _probe, Act.torch_fn and
        # numpy_callable)
        self.label = "probed " + "·".join(n.target.rstrip("_") for n in nodes if not _metadata(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, Any] = {self._source: x}
        for j, v in self._constants.items():
            values[j] = v.to(dtype=x.dtype, device=x.device)
        for n in self._nodes:
            assert n.call is not None
            values[n.idx] = n.call([values[i] for i in n.inputs])
        return values[self._sink]


def _statistic(nodes: list[Node], users: list[list[int]], i: int, kinds: list[str]) -> bool:
    """Whether node ``i`` feeds reductions only (``x.pow(2)`` then ``.sum(-1)``): a statistic's
    part, not an activation — unless a reduction is a pool whose result goes on to layers
    (Deep Sets' ``rho(relu(phi(x)).sum(1))``, a read-out ``head(F.gelu(h).mean(1))``: the
    activation is the layer's)."""
    return bool(users[i]) and all(
        nodes[u].op == "function"
        and nodes[u].target in _REDUCE
        and not _feeds_layers(nodes, users, kinds, u)
        for u in users[i]
    )


def scalar_constants(graph: Graph) -> dict[int, torch.Tensor]:
    """One-element tensor constants fx lifted out of ``forward`` (``torch.fmax(h,
    torch.tensor(0.))`` reads ``_tensor_constant0``), by node: a stretch may use them as it
    uses a Python number."""
    out: dict[int, torch.Tensor] = {}
    for n in graph.nodes:
        v = graph.constants.get(str(n.target)) if n.op == "param" else None
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_meta:
            out[n.idx] = v.detach().clone()
    return out


def scalar_parameters(model: nn.Module, graph: Graph) -> dict[int, torch.Tensor]:
    """One-element parameters and buffers read in ``forward`` — a learnable Swish-β
    (``h * torch.sigmoid(self.beta * h)``), a hand-written PReLU's slope — and single elements
    of a parameter vector read with a constant index (``self.beta[i]``, one per layer), by node,
    at their value now (what the activation is at initialization; a meta tensor has none)."""
    out: dict[int, torch.Tensor] = {}
    if not any(n.op == "param" for n in graph.nodes):
        return out  # (no parameter read in forward: a chain of layers)
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    for n in graph.nodes:
        v = None
        if n.op == "param":
            v = tensors.get(str(n.target))
        elif (
            n.op == "function"
            and n.target == "getitem"
            and len(n.inputs) == 1
            and graph.nodes[n.inputs[0]].op == "param"
            and len(n.args) == 1
            and _constant_index(n.args[0])
        ):
            t = tensors.get(str(graph.nodes[n.inputs[0]].target))
            if isinstance(t, torch.Tensor) and not t.is_meta:
                try:
                    v = t.detach()[n.args[0]]
                except (IndexError, TypeError):
                    v = None
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
            if not v.is_meta:
                out[n.idx] = v.detach().clone()
    return out


def _constant_index(a: Any) -> bool:
    """An index of ints only (``[3]``, ``[0, 2]``): one element of a tensor, known now."""
    if isinstance(a, tuple):
        return bool(a) and all(isinstance(i, int) and not isinstance(i, bool) for i in a)
    return isinstance(a, int) and not isinstance(a, bool)


def composites(
    graph: Graph,
    kinds: list[str],
    acts: dict[int, Act],
    constants: dict[int, torch.Tensor] | None = None,
    scalars: dict[int, torch.Tensor] | None = None,
) -> dict[int, int]:
    """Find elementwise stretches that follow a weight layer and are not one registered
    activation; probe each numerically (:func:`_probe`) and, if it is an elementwise
    nonlinearity, make its last node an activation computed by the stretch (``kinds`` and
    ``acts`` are updated; inner nodes become pass-through). A one-element tensor constant
    (``constants``) may be a threshold's operand (:data:`_WITH_CONSTANT`), as a number would
    be; a one-element parameter (``scalars``, :func:`scalar_parameters`) may be any member's
    operand, at its value now: ``h * torch.sigmoid(self.beta * h)`` (Swish-β, β = 1 at
    initialization) is probed as the SiLU it is — read as a sigmoid between two products, its
    layers were solved for a unit output and a 20-layer chain grew to output rms 51, with only
    "no rule for beta" said. A stretch that is one registered activation and products or sums
    with such scalars (a ReZero gate ``α·relu(h)``, ``relu(γ·h)``) is not probed: the
    activation stays the registered one and the scale is carried by the moments, as before.
    Returns ``{last node: source}``."""
    nodes = graph.nodes
    users = graph.users()
    constants = constants or {}
    scalars = scalars or {}
    both = {**constants, **scalars}  # (a threshold's operand may be either)
    found: dict[int, int] = {}
    for layer in range(len(nodes)):
        if kinds[layer] != "weight":
            continue
        src = _reshaped(nodes, users, layer)
        region: set[int] = set()
        frontier = sorted(users[src])
        while frontier:
            i = frontier.pop(0)
            n = nodes[i]
            if i in region or n.op != "function" or n.call is None:
                continue
            if _metadata(n) and n.inputs and all(j == src or j in region for j in n.inputs):
                region.add(i)  # (`h.dtype` for a cast inside the stretch: never its output)
                continue
            cast = n.target in _CASTS and bool(n.inputs) and n.inputs[0] in region
            if (
                n.target in _NOT_ELEMENTWISE and not _binary_extreme(n) and not cast
            ) or not n.inputs:
                continue
            held = both if n.target in _WITH_CONSTANT else scalars
            if any(j != src and j not in region and j not in held for j in n.inputs):
                continue
            if all(j in held for j in n.inputs):
                continue
            region.add(i)
            frontier.extend(users[i])
            frontier.sort()
        if not region:
            continue
        sinks = [
            i
            for i in region
            if not _metadata(nodes[i]) and (not users[i] or any(u not in region for u in users[i]))
        ]
        if len(sinks) != 1:
            continue
        core = [
            i
            for i in region
            if nodes[i].target not in _CAST_LIKE
            and not _metadata(nodes[i])
            and not _scalar_scale(nodes[i], scalars)
        ]
        if len(core) == 1 and core[0] in acts:
            continue  # one registered activation (cast or scale before or after it): not probed
        if _statistic(nodes, users, sinks[0], kinds):
            continue
        members = [nodes[i] for i in sorted(region)]
        stretch = Composite(members, src, sinks[0], both)
        if _affine(stretch):  # `y / n`, `y * c + d`: a scale (the moments' scalar rules are
            continue  # exact, and a layer-scale factor keeps the user's meaning), not φ
        act = _probe(stretch)
        if act is None:
            continue
        sink = sinks[0]
        for i in region:
            acts.pop(i, None)
            kinds[i] = "other"
        kinds[sink] = "act"
        acts[sink] = act  # (labelled by _probe with the stretch's own label)
        found[sink] = src
    return found


_RESHAPES = frozenset(
    {"view", "reshape", "flatten", "unflatten", "permute", "transpose", "contiguous", "t"}
    | {"squeeze", "unsqueeze"}
)
"""Operations that only rearrange a tensor's elements: an elementwise function commutes with
them."""


def _reshaped(nodes: list[Node], users: list[list[int]], i: int) -> int:
    """The last of the single-use rearrangements (:data:`_RESHAPES`) that follow node ``i``
    (``i`` where there are none): an elementwise stretch after a reshape is the layer's
    activation all the same — a Conv1D's ``addmm(b, x.view(-1, d), W).view(B, T, 4d)`` then
    GPT-2's tanh-GELU written out (a ``torch.export``'ed GPT-2; any ``fc(x).view(…)`` then a
    formula), whose ``tanh`` alone was taken for the activation (the next layer's input E[x²]
    0.329 for the 0.425 the stretch gives: its std ×1.14 off, nothing said)."""
    for _ in range(len(nodes)):
        if len(users[i]) != 1:
            return i
        n = nodes[users[i][0]]
        if n.op != "function" or n.target not in _RESHAPES or n.inputs[:1] != [i]:
            return i
        if not all(j == i or _size(nodes, j) for j in n.inputs):
            return i  # (a size computed from data)
        i = n.idx
    return i


def _size(nodes: list[Node], j: int, depth: int = 0) -> bool:
    """Whether node ``j`` is a size read from a tensor (``x.shape[0]``, ``x.size(-1)``, under
    fx a node) or arithmetic on such sizes and numbers (``B * T``, ``d // h``)."""
    n = nodes[j]
    if depth > 8 or n.op != "function":
        return False
    if n.target == "size" or (n.target == "getattr" and n.args[:1] == ("shape",)):
        return True
    arithmetic = n.target in ("getitem", "mul", "add", "sub", "floordiv", "truediv")
    return arithmetic and all(_size(nodes, k, depth + 1) for k in n.inputs)


def _scalar_scale(n: Node, scalars: dict[int, torch.Tensor]) -> bool:
    """A product, quotient, sum or difference with a one-element parameter (``α·h``,
    ``h + b``): a scale or shift of a stretch, not its nonlinearity."""
    return (
        n.target in (_ADD | _MUL | {"sub", "rsub"})
        and len(n.inputs) == 2
        and any(j in scalars for j in n.inputs)
    )


_CASTS = frozenset({"to", "type"})
"""Casts: part of a stretch where they cast a value computed in it (``h * (h > 0).to(h.dtype)``,
a ReLU written by hand: the mask's cast kept it from being probed, and the chain after it was
solved as linear — output rms 0.001 after 20 layers, nothing said), not where they cast the
layer's output itself (a cast is no activation)."""


_CAST_LIKE = _CASTS | {"float", "double", "half", "bfloat16", "type_as"}


def _metadata(n: Node) -> bool:
    """``h.dtype``/``h.device``: read by a cast inside a stretch; computed again from the probe."""
    return n.target == "getattr" and len(n.args) == 1 and n.args[0] in ("dtype", "device")


_WITH_CONSTANT = frozenset(
    {"max", "min", "maximum", "minimum", "fmax", "fmin", "clamp", "clip", "where"}
)
"""Elementwise functions whose tensor-constant operand (a threshold: ``torch.fmax(h,
torch.tensor(0.))``) belongs to the activation they compute. A product or sum with a constant
tensor stays out of the stretch: it is a scale the moments carry exactly, and kernel shaping
shapes the activation before it."""


def _binary_extreme(n: Node) -> bool:
    """``torch.max(a, b)``/``torch.min(a, b)`` of two tensors: elementwise (``maximum``), not
    the reduction over a dimension that ``max``/``min`` otherwise are — ``torch.max(h,
    torch.zeros_like(h))``, a ReLU written by hand, was left out of the activation search, and
    the layers after it solved as linear ones (output rms 0.0008 after 20 layers)."""
    return (
        n.target in ("max", "min")
        and len(n.inputs) == 2
        and "dim" not in n.kwargs
        and not any(isinstance(a, int) and not isinstance(a, bool) for a in n.args)
    )


def _affine(stretch: nn.Module) -> bool:
    """Whether an elementwise stretch computes ``a·x + b`` (a scale or shift written in
    ``forward``: a neural ODE's Euler step ``x + f(x) / n``), checked on a probe over
    [−12, 12]: on [−3, 3] a hard sigmoid written out (``F.relu6(h + 3) / 6``,
    ``torch.clamp(h / 6 + 0.5, 0, 1)``) is a line, and its layers were solved as if it were
    one (or as the ``relu6`` inside it) — output rms 0.58 and 0.67 over five layers where
    ``F.hardsigmoid``'s plan gives 1.02."""
    x = torch.linspace(-12.0, 12.0, 97, dtype=torch.float64)
    try:
        with torch.no_grad():
            y = stretch(x.clone().float()).double()
    except Exception:
        return False
    if not isinstance(y, torch.Tensor) or y.shape != x.shape or not bool(torch.isfinite(y).all()):
        return False
    a = (y[-1] - y[0]) / (x[-1] - x[0])
    return bool(
        torch.allclose(y, y[0] + a * (x - x[0]), rtol=1e-5, atol=1e-6 * float(y.abs().max()))
    )


def _find_activation(
    start: int, users: list[list[int]], kinds: list[str], acts: dict[int, Act]
) -> list[Act]:
    found: list[Act] = []
    seen = {start}
    queue = deque(users[start])
    while queue:
        i = queue.popleft()
        if i in seen:
            continue
        seen.add(i)
        k = kinds[i]
        if k == "act":
            found.append(acts[i])
        elif k in ("weight", "stop"):
            continue
        else:
            queue.extend(users[i])
    return found


def shape_query(n: Node) -> bool:
    """Whether graph node ``n`` reads a tensor's size, not its values (``x.shape``, ``x.ndim``,
    ``x.size(1)``, ``x.dim()``, ``x.numel()``)."""
    if n.op != "function":
        return False
    if n.target == "getattr":
        return n.args[:1] in (("shape",), ("ndim",))
    return n.target in ("size", "numel", "dim")


def feature_width(nodes: list[Any], modules: dict[str, nn.Module], i: int) -> int | None:
    """The feature width of graph node ``i``'s value: the out_features/out_channels of the
    weight layer it comes from through single-input, shape-keeping steps (None if unknown)."""
    seen = 0
    while seen < 64:
        n = nodes[i]
        m = modules.get(n.target) if n.op == "module" else None
        if m is not None and next(m.parameters(recurse=False), None) is not None:
            w = getattr(m, "out_features", None) or getattr(m, "out_channels", None)
            return int(w) if w else None
        if len(n.inputs) != 1:
            return None
        i, seen = n.inputs[0], seen + 1
    return None


_KEEP_WIDTH = frozenset(
    {
        "dropout",
        "neg",
        "abs",
        "contiguous",
        "clone",
        "float",
        "half",
        "bfloat16",
        "to",
        "type",
        "type_as",
        "detach",
        "pow",
    }
)
"""Single-tensor functions that keep every dimension (and scalar powers)."""
_BINARY = frozenset({*_ADD, *_MUL, "sub", "rsub", "isub", "where"})
VECTOR_NORMS = frozenset({"norm", "vector_norm", "linalg_vector_norm"})
"""Function names of vector norms (``x.norm(p, dim)``, ``torch.linalg.vector_norm``)."""
_KEEPDIM_REDUCTIONS = frozenset({"sum", "mean", "amax", "amin", *VECTOR_NORMS})


def norm_args(n: Any) -> tuple[Any, Any]:
    """``(order, dim)`` of a vector-norm node (its args hold no tensor: ``x.norm(p, dim)``,
    ``vector_norm(x, ord, dim)``); order 2 where not given, dim None."""
    p = n.kwargs.get("p", n.kwargs.get("ord", n.args[0] if n.args else 2))
    return p, n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)


def part_width(
    nodes: list[Any], modules: dict[str, nn.Module], kinds: list[str], i: int, dim: Any
) -> int | None:
    """The size along ``dim`` of graph node ``i``'s value, read from the weight layer it comes
    from — for ``dim == -1`` a Linear's ``out_features`` or an Embedding's ``embedding_dim``,
    for ``dim == 1`` a convolution's ``out_channels`` — through steps that keep that dimension:
    activations, norms, dropout and identities, elementwise unary and binary ops (a broadcast
    sum takes its widest known operand where that is wider than 1: the others are as wide or
    broadcast), ``unsqueeze`` at a non-negative position, ``expand`` whose last size is ``-1``,
    and a ``keepdim=True`` sum, mean, norm or extreme over the last dimension (size 1). None
    where any step is not one of these (the graph has no shapes)."""
    if dim not in (-1, 1):
        return None
    for _ in range(64):
        n = nodes[i]
        if n.op == "module":
            m = modules.get(n.target)
            if isinstance(m, nn.modules.conv._ConvNd):
                return int(m.out_channels) if dim == 1 else None
            if isinstance(m, (nn.Linear, nn.Bilinear)):
                return int(m.out_features) if dim == -1 else None
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                return int(m.embedding_dim) if dim == -1 else None
            if not (kinds[i] in ("act", "norm") or isinstance(m, (nn.Dropout, nn.Identity))):
                return None
        elif n.op in ("function", "method"):
            t = str(n.target)
            if t in _BINARY:
                found = [part_width(nodes, modules, kinds, j, dim) for j in n.inputs]
                widest = max((w for w in found if w is not None), default=None)
                if widest is None or (widest == 1 and None in found):
                    return None
                return widest
            if t in _KEEPDIM_REDUCTIONS and dim == -1 and n.kwargs.get("keepdim") is True:
                over = (
                    norm_args(n)[1]
                    if t in VECTOR_NORMS
                    else n.kwargs.get("dim", n.args[0] if n.args else None)
                )
                return 1 if over in (-1, (-1,), [-1]) else None
            if t == "unsqueeze" and dim == -1:
                at = n.kwargs.get("dim", n.args[0] if n.args else None)
                if not (isinstance(at, int) and at >= 0):
                    return None
            elif t == "expand" and dim == -1:
                if not (n.args and n.args[-1] == -1):
                    return None
            elif not (
                kinds[i] == "act"
                or t in _KEEP_WIDTH
                or function_activation(t, n.args, n.kwargs) is not None
            ):
                return None
        else:
            return None
        if not n.inputs:
            return None
        i = n.inputs[0]
    return None


def in_out(m: nn.Module) -> tuple[int, int] | None:
    """``(in, out)`` features of a linear map (``nn.Linear`` or a raw matrix used as one)."""
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    layout = getattr(m, "layout", None)
    w = getattr(m, "weight", None)
    if layout in ("out_in", "in_out") and isinstance(w, torch.Tensor) and w.ndim == 2:
        out, inp = w.shape if layout == "out_in" else w.shape[::-1]
        return int(inp), int(out)
    return None


def low_rank_adapters(
    nodes: list[Node], kinds: list[str], layers: dict[str, LayerInfo], modules: dict[str, Any]
) -> dict[int, tuple[str, str, str]]:
    """Sums ``base(x) + B(A(x))·s`` of a linear layer and a low-rank product of two linear maps
    of the same input — a LoRA adapter (Hu et al. 2021; loralib's and lit-gpt's
    ``x @ lora_A.T @ lora_B.T * scaling``, written by hand as ``x @ A.t() @ B.t()``), with
    dropout, reshapes or a constant factor on the way — whose inner width ``r`` is at most half
    of the base's smaller side: add node -> (B, A, base) layer names. Such a sum is the layer
    with its adapter, not a residual stream and its branch."""
    ones = frozenset({"mul", "truediv", "div", "dropout", "clone", "contiguous", "to", "float"})

    def back(i: int) -> int:
        for _ in range(16):
            n = nodes[i]
            if len(n.inputs) != 1:
                return i
            passing = (n.op == "function" and (n.target in SHAPE_OPS or n.target in ones)) or (
                n.op == "module"
                and kinds[i] == "other"
                and isinstance(modules.get(n.target), (nn.Dropout, nn.Identity))
            )
            if not passing:
                return i
            i = n.inputs[0]
        return i

    def layer(i: int) -> tuple[str, tuple[int, int], int] | None:
        n = nodes[i]
        if n.op != "module" or kinds[i] != "weight" or len(n.inputs) != 1:
            return None
        lay = layers.get(n.target)
        io = in_out(lay.module) if lay is not None else None
        return (n.target, io, back(n.inputs[0])) if io is not None else None

    out: dict[int, tuple[str, str, str]] = {}
    for n in nodes:
        if n.op != "function" or n.target not in _ADD or len(n.inputs) != 2:
            continue
        for u, v in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
            base, b = layer(back(u)), layer(back(v))
            a = layer(b[2]) if b is not None else None
            if base is None or a is None or b is None or a[2] != base[2]:
                continue
            (d_in, d_out), (a_in, r), (r_b, b_out) = base[1], a[1], b[1]
            if a_in == d_in and b_out == d_out and r == r_b and 2 * r <= min(d_in, d_out):
                out[n.idx] = (b[0], a[0], base[0])
                break
    return out


def _kept_statistic(n: Node) -> bool:
    """Whether ``n`` is a reduction that keeps its dimensions (``x.mean(-1, keepdim=True)``)."""
    return n.op == "function" and n.target in _REDUCE and n.kwargs.get("keepdim") is True


def _residuals(
    nodes: list[Node],
    kinds: list[str],
    layers: dict[str, LayerInfo],
    skip: Collection[int] = (),
) -> list[Residual]:
    anc = [0] * len(nodes)  # ancestor sets as bitmasks
    for n in nodes:
        a = 0
        for i in n.inputs:
            a |= anc[i] | (1 << i)
        anc[n.idx] = a
    weight_bits = 0
    embedding: dict[int, bool] = {}
    for n in nodes:
        if kinds[n.idx] == "weight":
            weight_bits |= 1 << n.idx
            embedding[n.idx] = module_kind(layers[n.target].module) == "embedding"
    branches: list[int] = []  # bitmask of nodes per branch
    ends: list[tuple[int, int, int]] = []  # (add node, branch operand, skip operand)
    split: list[bool] = []  # found as two sides of a common split point
    sums: set[int] = set()  # residual sums found so far (stream values)
    added = [0] * len(nodes)  # how many sums take each node as an operand
    for n in nodes:
        if n.op == "function" and n.target in _ADD:
            ins = set(n.inputs)
            for i in ins:
                # (x + a learned bias or scalar — Fixup's `x + b₁` before the branch's first
                # convolution — is no second use of x as a term: it hid every Fixup residual)
                if len(ins) > 1 and all(nodes[j].op == "param" for j in ins - {i}):
                    continue
                added[i] += 1
    for n in nodes:
        if n.op != "function" or n.target not in _ADD or len(set(n.inputs)) < 2:
            continue
        if n.idx in skip:  # a layer and its low-rank adapter: no stream
            continue
        a, b = n.inputs[0], n.inputs[1]
        full_a, full_b = anc[a] | (1 << a), anc[b] | (1 << b)
        # a term added in several places (an attention mask, a position embedding added in
        # every layer) is broadcast, not a stream: what later layers compute descends from it
        # through the first layer, which made `scores + mask` look like `x + f(x)`
        is_split = False
        if n.broadcast and (a in n.broadcast or b in n.broadcast):
            continue  # a term broadcast into the sum (PatchTST's `y·scale + loc`) is no stream
        if _kept_statistic(nodes[a]) or _kept_statistic(nodes[b]):
            continue  # (nor a statistic added back — RevIN's `y·σ + μ`, μ = x.mean(-1,
            # keepdim=True): broadcast along what it reduced, with or without shapes)
        if anc[b] >> a & 1 and added[a] < 2:
            branch, side = full_b & ~full_a, (b, a)
        elif anc[a] >> b & 1 and added[b] < 2:
            branch, side = full_a & ~full_b, (a, b)
        elif anc[b] >> a & 1 or anc[a] >> b & 1:
            continue
        else:
            is_split = True
            common = anc[a] & anc[b]
            # a residual extends a stream that earlier layers computed: two sides that share
            # no weight layer (an RNN gate's `W·x_t + U·h` unrolled, where h comes from the
            # same input by another path; a wide-and-deep sum) are one sum of layers, not a
            # stream and its branch
            if not common & weight_bits:
                continue
            ea, eb = full_a & ~common, full_b & ~common
            # a real split: every layer on both sides computes from the common ancestors
            # (word + position embeddings share only an index tensor, and are no residual)
            if any(anc[i] & common == 0 for i in _bits((ea | eb) & weight_bits)):
                continue
            # nor are lookups of one index tensor summed (MusicGen's codebooks, a tabular
            # model's columns `Σ emb_i(x[:, i])`): they make the stream, they do not extend it
            if all(embedding[i] for i in _bits((ea | eb) & weight_bits)):
                continue
            ca, cb = (ea & weight_bits).bit_count(), (eb & weight_bits).bit_count()
            if a in sums and b not in sums:  # `(x + attn) + mlp` (Cohere): the sum is the stream
                branch, side = eb, (b, a)
            elif b in sums and a not in sums:
                branch, side = ea, (a, b)
            elif ca == cb:
                continue
            else:
                branch, side = (ea, (a, b)) if ca > cb else (eb, (b, a))
        if branch & weight_bits:
            branches.append(branch)
            ends.append((n.idx, *side))
            sums.add(n.idx)
            split.append(is_split)
    # a sum of two sides of a split point inside another branch is part of that branch, not a
    # residual of its own: a parallel block's attention + MLP (GPT-J, Cohere, Falcon), a MoE
    # block's routed + shared experts; a ResNet shortcut's sum is inside no other branch
    keep = [
        i
        for i in range(len(branches))
        if not (
            split[i] and any(branches[j] >> ends[i][0] & 1 for j in range(len(branches)) if j != i)
        )
    ]
    branches = [branches[i] for i in keep]
    ends = [ends[i] for i in keep]
    out: list[Residual] = []
    for bi, branch in enumerate(branches):
        members = [n for n in nodes if branch >> n.idx & 1 and n.op == "module"]
        weights = [n for n in members if kinds[n.idx] == "weight"]
        for n in members:
            layers[n.target].branches.append(bi)
            if kinds[n.idx] == "weight":
                layers[n.target].branch_size = len(weights)
        last_w = weights[-1]
        exits, weighted = _exits(nodes, kinds, ends[bi][1], branch)
        exits = exits or [last_w.target]
        for e in exits:
            layers[e].last_in_branch = True
        norms_after = [n for n in members if kinds[n.idx] == "norm" and n.idx > last_w.idx]
        if norms_after:
            layers[norms_after[-1].target].last_norm_in_branch = True
            for e in exits:
                layers[e].norm_after = True
        out.append(Residual(*ends[bi], last_w.target, tuple(exits), tuple(weighted)))
    return out


def _exits(
    nodes: list[Node], kinds: list[str], operand: int, branch: int
) -> tuple[list[str], list[str]]:
    """The weight layers of a branch (node bitmask) whose output reaches ``operand`` (the sum's
    branch side) with no other weight layer between — walking back through the branch, where a
    gating product ``φ(g) · v`` is followed on its value side only (an operand that is an
    activation, or a softmax's weights, is the gate) — and those of them reached through a
    softmax's weights (:attr:`Residual.weighted`)."""
    found: list[str] = []
    weighted: list[str] = []
    seen: set[int] = set()
    stack = [(operand, False)]
    while stack:
        i, soft = stack.pop()
        if i in seen or not branch >> i & 1:
            continue
        seen.add(i)
        n = nodes[i]
        if kinds[i] == "weight":
            if n.target not in found:
                found.append(n.target)
                if soft:
                    weighted.append(n.target)
            continue
        ins = n.inputs
        if n.op == "function" and n.target in _MUL:
            gates = {j: _gate(nodes, kinds, j) for j in ins}
            # (an activation is a gate: _gate gives "act")
            values = [j for j in ins if not gates[j] and nodes[j].op != "param"]
            if values:
                soft = soft or any(g == "softmax" for g in gates.values())
                ins = values
        elif n.op == "function" and n.target in _INDEXED and len(ins) > 1:
            ins = [j for k, j in enumerate(ins) if k != _INDEXED[n.target]]  # (not the index)
        stack.extend((j, soft) for j in ins)
    return found, weighted


_INDEXED = {"getitem": 1, "index_add": 1, "index_add_": 1, "scatter_add": 1, "index_copy": 1}
"""Functions whose tensor inputs include an index (its position among them): ``x[idx]``,
``zeros.index_add(0, idx, y)`` — a router's choice of rows, which carries no signal to the sum
(:func:`_exits` does not walk into it)."""


def _gate(nodes: list[Node], kinds: list[str], j: int) -> str | None:
    """Whether operand ``j`` of a product is a gate: ``"act"`` for an activation, ``"softmax"``
    for a softmax's weights reached through shape and index steps only (a router's
    ``softmax(topk(logits))`` picked per row and broadcast: JetMoE's and a hand-written soft
    MoE's ``Σ_e w_e·y_e``) — its layer is not the branch's exit; the values it weights are.
    None otherwise."""
    seen: set[int] = set()
    while j not in seen:
        seen.add(j)
        n = nodes[j]
        if kinds[j] == "act":
            return "act"
        if n.op == "function" and str(n.target) in SOFTMAX_WEIGHTS:
            return "softmax"
        if n.op != "function" or n.target not in SHAPE_OPS or not n.inputs:
            return None
        j = n.inputs[0]
    return None


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out
