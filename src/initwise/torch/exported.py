"""``torch.export``'s modules read as the layers they were exported from.

``torch.export.export(model, args).module()`` gives a ``GraphModule`` whose submodules are plain
``nn.Module`` holders of the original parameters (``fc1.weight``, ``bn.running_var``) and whose
``forward`` calls ATen operators on them: ``aten.linear.default(x, fc1_weight, fc1_bias)``,
``aten.batch_norm.default(h, bn_weight, …, True, 0.1, 1e-05, False)``. initwise saw no layer in
it — every weight was "left as is" (an exported 3-layer GELU MLP kept torch's defaults: output
std 0.08 where the eager model planned by ``auto`` gives 0.98) — and its ``train()``/``eval()``
raise ``NotImplementedError``, which ``diagnose`` and ``lsuv`` call.

:func:`eager_view` builds a stand-in that shares every parameter and buffer (the same tensor
objects, under the same names, in the same order) and whose holders are real layers again: a
holder used by ``linear``, ``convNd``, ``conv_transposeNd``, ``embedding``, ``layer_norm``,
``rms_norm``, ``group_norm`` or ``batch_norm`` becomes that ``nn`` module, built on the meta
device and given the holder's own tensors, and the call becomes a call of it (its arguments —
stride, padding, eps, momentum — become the module's). Everything else in the graph is kept
as it is. The view computes what the exported module computes (tested bit for bit), and
writing its parameters writes the exported module's (they are the same tensors), so
:func:`~initwise.torch.modules.unwrap` hands it to the planner, ``apply``, ``init_model``,
``diagnose`` and ``lsuv``: plans name and draw what the eager model's plan names and draws.
The exported module itself is never changed, except through those shared tensors.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .aten import is_aten, packet_name, torch_level


def is_exported(model: Any) -> bool:
    """Whether ``model`` is a ``GraphModule`` whose graph calls ATen operators (what
    ``torch.export``'s ``.module()`` gives; ``torch.fx.symbolic_trace`` records torch-level
    calls and modules, which the planner reads as they are)."""
    if not isinstance(model, torch.fx.GraphModule) or getattr(model, "exported_view", False):
        return False  # (a view is read as it is)
    return any(n.op == "call_function" and is_aten(n.target) for n in model.graph.nodes)


def _full_args(n: torch.fx.Node) -> list[Any] | None:
    """The call's arguments in schema order, defaults filled in; None where a keyword is not in
    the schema."""
    schema = n.target._schema  # type: ignore[union-attr]
    out: list[Any] = []
    for i, a in enumerate(schema.arguments):
        if i < len(n.args):
            out.append(n.args[i])
        elif a.name in n.kwargs:
            out.append(n.kwargs[a.name])
        elif a.has_default_value():
            out.append(a.default_value)
        else:
            return None
    if set(n.kwargs) - {a.name for a in schema.arguments}:
        return None
    return out


def _val(n: Any) -> Any:
    """The example value ``torch.export`` recorded for node ``n`` (a fake tensor), or None."""
    return n.meta.get("val") if isinstance(n, torch.fx.Node) else None


def _nd(v: Any, n: int) -> Any:
    """A size argument for an ``n``-D layer (ATen gives lists; modules take tuples)."""
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


_CONV = {"conv1d": 1, "conv2d": 2, "conv3d": 3}
_CONV_T = {"conv_transpose1d": 1, "conv_transpose2d": 2, "conv_transpose3d": 3}


def _conv_call(name: str, a: list[Any], p: Callable[[int], Any]) -> tuple | None:
    """``(spatial dims, weight, groups, module class)`` of a ``convNd``/``conv_transposeNd``
    call on a parameter of ``N + 2`` dimensions, else None."""
    d = _CONV.get(name) or _CONV_T.get(name)
    w = p(1) if d is not None else None
    if w is None or not isinstance(a[6], int) or w.ndim != d + 2:
        return None
    classes = (
        (nn.Conv1d, nn.Conv2d, nn.Conv3d)
        if name in _CONV
        else (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    )
    return d, w, a[6], classes[d - 1]


def _layer(name: str, a: list[Any], p: Callable[[int], Any]) -> tuple[nn.Module, int, dict] | None:
    """``(stand-in module on the meta device, index of the signal argument, {slot: argument
    index})`` for ATen call ``name`` with arguments ``a``; ``p(i)``: the tensor that argument
    ``i`` reads (a parameter or buffer), or None."""
    meta = {"device": "meta"}
    if name == "linear" and p(1) is not None and p(1).ndim == 2:
        w = p(1)
        m = nn.Linear(w.shape[1], w.shape[0], bias=a[2] is not None, **meta)
        return m, 0, {"weight": 1, "bias": 2}
    conv = _conv_call(name, a, p)
    if conv is not None and name in _CONV:
        d, w, g, cls = conv
        padding = a[4] if isinstance(a[4], str) else _nd(a[4], d)
        m = cls(
            w.shape[1] * g, w.shape[0], tuple(w.shape[2:]), _nd(a[3], d), padding,
            _nd(a[5], d), g, bias=a[2] is not None, **meta,
        )  # fmt: skip
        return m, 0, {"weight": 1, "bias": 2}
    if conv is not None:  # (a transposed one)
        d, w, g, cls = conv
        m = cls(
            w.shape[0], w.shape[1] * g, tuple(w.shape[2:]), _nd(a[3], d), _nd(a[4], d),
            _nd(a[5], d), g, bias=a[2] is not None, dilation=_nd(a[7], d), **meta,
        )  # fmt: skip
        return m, 0, {"weight": 1, "bias": 2}
    if name == "embedding" and p(0) is not None and p(0).ndim == 2:
        w, pad = p(0), a[2]
        m = nn.Embedding(
            w.shape[0], w.shape[1], None if pad == -1 else pad,
            scale_grad_by_freq=bool(a[3]), sparse=bool(a[4]), **meta,
        )  # fmt: skip
        return m, 1, {"weight": 0}
    if name == "layer_norm" and p(2) is not None and (a[3] is None or p(3) is not None):
        m = nn.LayerNorm(tuple(a[1]), a[4], bias=a[3] is not None, **meta)
        return m, 0, {"weight": 2, "bias": 3}
    if name == "rms_norm" and p(2) is not None:
        return nn.RMSNorm(tuple(a[1]), a[3], **meta), 0, {"weight": 2}
    if name == "group_norm" and p(2) is not None and p(3) is not None and isinstance(a[1], int):
        m = nn.GroupNorm(a[1], p(2).shape[0], a[4], **meta)
        return m, 0, {"weight": 2, "bias": 3}
    if name == "batch_norm" and p(1) is not None and p(2) is not None:
        x = _val(a[0])
        rank = x.ndim if isinstance(x, torch.Tensor) else None
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(
            rank or 0
        )
        stats = a[3] is not None and p(3) is not None and p(4) is not None
        if cls is None or (a[3] is not None and not stats) or not isinstance(a[5], bool):
            return None
        m = cls(
            p(1).shape[0], a[7], a[6], track_running_stats=stats, **meta
        )  # fmt: skip
        m.train(a[5])  # (the mode it was exported in)
        slots = {"weight": 1, "bias": 2}
        if stats:
            slots |= {"running_mean": 3, "running_var": 4}
        return m, 0, slots
    return None


_RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


def _recurrent(name: str, a: list[Any], p: Callable[[Any], Any]) -> nn.Module | None:
    """The stand-in (meta device) of a recurrent ATen call ``lstm``/``gru``/``rnn_tanh``/
    ``rnn_relu`` on ``(input, hx, params, has_biases, num_layers, dropout, train,
    bidirectional, batch_first)``, its weights' names checked against the module's; None where
    they do not match."""
    cls = _RECURRENT.get(name)
    if cls is None or len(a) < 9 or not isinstance(a[2], (list, tuple)) or not a[2]:
        return None
    params = [p(t) for t in a[2]]
    if any(t is None for t in params) or not all(isinstance(v, bool) for v in (a[3], a[7], a[8])):
        return None
    names = [t.target.rpartition(".")[2] for t in a[2]]
    got = dict(zip(names, params, strict=True))
    if "weight_ih_l0" not in got or "weight_hh_l0" not in got:
        return None  # (not the module's names: left as a function, not a KeyError)
    proj = got.get("weight_hr_l0")
    hidden = proj.shape[1] if proj is not None else got["weight_hh_l0"].shape[1]
    kw: dict[str, Any] = {"proj_size": proj.shape[0]} if proj is not None else {}
    if name.startswith("rnn_"):
        kw["nonlinearity"] = name[4:]
    m = cls(
        got["weight_ih_l0"].shape[1], hidden, a[4], bias=a[3], batch_first=a[8],
        dropout=float(a[5]), bidirectional=a[7], device="meta", **kw,
    )  # fmt: skip
    if list(m._flat_weights_names) != names:
        return None
    m.train(bool(a[6]))
    return m


def _lift_recurrent(graph: torch.fx.Graph, n: torch.fx.Node, holder: str, lstm: bool) -> None:
    """Make recurrent ATen call ``n`` a call of module ``holder`` with the same state: the
    module takes ``(input, (h0, c0))`` and gives ``(output, (h, c))`` where the ATen LSTM
    gives ``(output, h, c)`` (a GRU/RNN: ``(input, h0)`` and ``(output, h)`` both ways)."""
    # (a GRU's or RNN's h0 is one node: `hx`; an LSTM's a list of two)
    x, hx = n.args[0], n.args[1]
    with graph.inserting_before(n):
        state = tuple(hx) if lstm else hx
        call = graph.call_module(holder, (x, state))
        parts = {0: graph.call_function(operator.getitem, (call, 0))}
        if lstm:
            hc = graph.call_function(operator.getitem, (call, 1))
            parts[1] = graph.call_function(operator.getitem, (hc, 0))
            parts[2] = graph.call_function(operator.getitem, (hc, 1))
        else:
            parts[1] = graph.call_function(operator.getitem, (call, 1))
    call.meta = dict(n.meta)
    for u in list(n.users):  # (export reads the results by index)
        u.replace_all_uses_with(parts[u.args[1]])
        graph.erase_node(u)
    graph.erase_node(n)


def eager_view(gm: torch.fx.GraphModule) -> nn.Module:
    """The stand-in of exported module ``gm`` described in the module docstring."""
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    out = graph.graph_copy(gm.graph, env)  # (gm's own graph is never edited)
    graph.output(out)
    graph._codegen = gm.graph._codegen  # (the exported module's pytree calling convention)
    owners = dict(gm.named_modules())
    standins: dict[str, tuple[nn.Module, tuple]] = {}
    for n in list(graph.nodes):
        if n.op != "call_function" or not is_aten(n.target):
            continue
        a = _full_args(n)
        if a is None:
            continue

        def read(i: int, a: list[Any] = a) -> Any:
            v = a[i] if i < len(a) else None
            if not (isinstance(v, torch.fx.Node) and v.op == "get_attr"):
                return None
            t = _attr(gm, v.target)
            return t if isinstance(t, torch.Tensor) else None

        name = packet_name(n.target)
        if name in _RECURRENT:
            _lift_rnn(graph, gm, owners, standins, n, a, name)
            continue
        made = _layer(name, a, read)
        if made is None:
            continue
        layer, signal, slots = made
        targets = {s: a[i].target for s, i in slots.items() if a[i] is not None}
        holders = {t.rpartition(".")[0] for t in targets.values()}
        if len(holders) != 1:
            continue
        holder = holders.pop()
        h = owners.get(holder)
        if h is None or h._modules or any(t != f"{holder}.{s}" for s, t in targets.items()):
            continue  # (children, or tensors under other names: not one layer's holder)
        own = {k for k, v in h._parameters.items() if v is not None}
        own |= {k for k, v in h._buffers.items() if v is not None}
        if own - set(targets) - {"num_batches_tracked"}:
            continue  # (more tensors than the layer has: something else reads them)
        key = (type(layer), repr(layer), layer.training)
        if holder in standins and standins[holder][1] != key:
            continue  # (the same tensors as another kind of layer: left as a function)
        if holder not in standins:
            for s, t in targets.items():
                setattr(layer, s, _attr(gm, t))  # (the holder's own tensors)
            if "num_batches_tracked" in own:
                layer.num_batches_tracked = h._buffers["num_batches_tracked"]
            standins[holder] = (layer, key)
        with graph.inserting_before(n):
            call = graph.call_module(holder, (a[signal],))
        call.meta = dict(n.meta)
        n.replace_all_uses_with(call)
        graph.erase_node(n)
    for n in list(graph.nodes):  # a lifted BatchNorm counts its own batches
        if (
            n.op == "call_function"
            and is_aten(n.target)
            and packet_name(n.target) == "add_"
            and isinstance(n.args[0], torch.fx.Node)
            and n.args[0].op == "get_attr"
            and n.args[0].target.rpartition(".")[0] in standins
            and n.args[0].target.endswith(".num_batches_tracked")
            and not n.users
        ):
            graph.erase_node(n)
    for n in list(graph.nodes):
        if n.op == "get_attr" and not n.users:
            graph.erase_node(n)
        else:  # the rest called as the torch functions they lower: what runs the view under a
            torch_level(n)  # function mode (diagnose's and LSUV's raw-parameter layers) sees them
    root = _mirror(gm, {k: v[0] for k, v in standins.items()})
    view = torch.fx.GraphModule(root, graph, class_name=f"Exported{type(gm).__name__}")
    view._modules, view._parameters, view._buffers = root._modules, root._parameters, root._buffers
    view._non_persistent_buffers_set = root._non_persistent_buffers_set
    view.exported_view = True  # (its forward is not the one the user runs: see prepare_forward)
    for k in ("_in_spec", "_out_spec"):  # (read by the pytree calling convention's code)
        if k in vars(gm):
            setattr(view, k, vars(gm)[k])
    return view


def _lift_rnn(
    graph: torch.fx.Graph,
    gm: nn.Module,
    owners: dict[str, nn.Module],
    standins: dict[str, tuple[nn.Module, tuple]],
    n: torch.fx.Node,
    a: list[Any],
    name: str,
) -> None:
    """Lift recurrent call ``n`` (:func:`_recurrent`) where its weights are exactly one
    holder's, every result is read by index and its state is one tensor per part."""
    weights = a[2] if isinstance(a[2], (list, tuple)) else ()
    if not weights or not all(isinstance(t, torch.fx.Node) and t.op == "get_attr" for t in weights):
        return
    holders = {t.target.rpartition(".")[0] for t in weights}
    holder = holders.pop() if len(holders) == 1 else ""
    h = owners.get(holder) if holder else None
    if h is None or h._modules or holder in standins:
        return
    own = {k for k, v in h._parameters.items() if v is not None} | set(h._buffers)
    if own != {t.target.rpartition(".")[2] for t in weights}:
        return
    lstm = name == "lstm"
    hx = a[1]  # (an LSTM's (h0, c0) as a list; a GRU's or RNN's h0 as one tensor)
    if not (
        isinstance(hx, (list, tuple)) and len(hx) == 2 if lstm else isinstance(hx, torch.fx.Node)
    ):
        return
    if not all(u.target is operator.getitem and u.args[1] in (0, 1, 2) for u in n.users):
        return

    def read(t: Any) -> Any:
        v = _attr(gm, t.target)
        return v if isinstance(v, torch.Tensor) else None

    layer = _recurrent(name, a, read)
    if layer is None:
        return
    for t in weights:
        setattr(layer, t.target.rpartition(".")[2], _attr(gm, t.target))
    standins[holder] = (layer, (type(layer), repr(layer), layer.training))
    _lift_recurrent(graph, n, holder, lstm)


def _attr(m: nn.Module, target: str) -> Any:
    for part in target.split("."):
        m = getattr(m, part)
    return m


def _mirror(gm: nn.Module, standins: dict[str, nn.Module]) -> nn.Module:
    """A module tree with ``gm``'s names and order whose every parameter and buffer is
    ``gm``'s own tensor: the holders (plain ``nn.Module``) in ``standins`` replaced by their
    layers, the other holders by new plain modules holding the same tensors, any other module
    (export's ``_guards_fn``) kept as the object it is."""
    made: dict[str, nn.Module] = {}

    def copy_own(src: nn.Module, dst: nn.Module) -> None:
        for k, v in src._parameters.items():
            dst._parameters[k] = v
        for k, v in src._buffers.items():
            dst._buffers[k] = v
        dst._non_persistent_buffers_set = set(src._non_persistent_buffers_set)

    root = nn.Module()
    copy_own(gm, root)
    made[""] = root
    for name, m in gm.named_modules(remove_duplicate=False):
        parent, _, last = name.rpartition(".")
        if not name or parent not in made:
            continue  # (the root; or inside a module kept as it is or a layer)
        if name in standins:
            made[parent]._modules[last] = standins[name]  # (a holder has no children)
        elif type(m) is not nn.Module:  # (not a holder: export's _guards_fn, a layer of a
            made[parent]._modules[last] = m  # view's own) kept as it is
        else:
            new = nn.Module()
            copy_own(m, new)
            made[parent]._modules[last] = made[name] = new
    return root
