"""ATen operators read as the torch functions they lower (``torch.export``'s graphs).

``torch.export.export(model, args).module()`` gives a ``GraphModule`` whose ``forward`` calls
ATen operators on raw parameters — ``aten.linear.default(x, fc1_weight, fc1_bias)``,
``aten.gelu.default(h)``, ``aten.embedding.default(weight, ids)`` — and whose submodules are plain
``nn.Module`` holders of those parameters. Read as they are, the planner saw no layer: every
weight was "left as is" (an exported 3-layer GELU MLP kept torch's defaults, output std 0.08
where the eager model planned by ``auto`` gave 0.98).

:func:`torch_level` rewrites one node of initwise's **own** fx trace (never the user's graph) to
the torch function with the same semantics, arguments reordered where ATen's order differs
(``embedding``: weight first; ``batch_norm``: the affine parameters before the statistics;
``layer_norm``/``group_norm``: a trailing ``cudnn_enable``). The rewritten node computes the same
values (tested against the exported module's own output). Operators not in :data:`_SAME` or
:data:`_REORDERED` keep their ATen callable and are named by their packet (``aten.add.Tensor`` →
``add``, ``aten.transpose.int`` → ``transpose``), the name of the torch function or method they
come from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

_OVERLOAD = (torch._ops.OpOverload, torch._ops.OpOverloadPacket)


def is_aten(fn: Any) -> bool:
    """Whether ``fn`` is an ATen operator (an overload such as ``aten.linear.default`` or its
    packet ``aten.linear``)."""
    return isinstance(fn, _OVERLOAD) and getattr(fn, "namespace", None) == "aten"


def packet_name(fn: Any) -> str:
    """``aten.linear.default`` → ``"linear"``; ``aten.add_.Tensor`` → ``"add_"``."""
    packet = getattr(fn, "_overloadpacket", fn)
    return str(getattr(packet, "__name__", fn)).split(".")[0]


_SAME: dict[str, Callable[..., Any]] = {
    # (ATen's argument order is the torch function's)
    "linear": F.linear,
    "conv1d": F.conv1d,
    "conv2d": F.conv2d,
    "conv3d": F.conv3d,
    "conv_transpose1d": F.conv_transpose1d,
    "conv_transpose2d": F.conv_transpose2d,
    "conv_transpose3d": F.conv_transpose3d,
    "gelu": F.gelu,
    "relu": F.relu,
    "relu6": F.relu6,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "mish": F.mish,
    "hardtanh": F.hardtanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "leaky_relu": F.leaky_relu,
    "selu": F.selu,
    "celu": F.celu,
    "softplus": F.softplus,
    "log_sigmoid": F.logsigmoid,
    "rms_norm": F.rms_norm,
    "dropout": F.dropout,
    "scaled_dot_product_attention": F.scaled_dot_product_attention,
    "matmul": torch.matmul,
    "mm": torch.mm,
    "bmm": torch.bmm,
    "addmm": torch.addmm,
}


def _embedding(weight: Any, indices: Any, padding_idx: int = -1, *rest: Any) -> tuple:
    # aten::embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False)
    return (indices, weight, None if padding_idx == -1 else padding_idx, None, 2.0, *rest)


def _batch_norm(x: Any, w: Any, b: Any, mean: Any, var: Any, *rest: Any) -> tuple:
    # aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
    # cudnn_enabled) → F.batch_norm(input, running_mean, running_var, weight, bias, training,
    # momentum, eps)
    return (x, mean, var, w, b, *rest[:3])


def _drop_cudnn(x: Any, *rest: Any) -> tuple:
    # aten::layer_norm / group_norm(input, …, eps, cudnn_enable): the flag is not F's
    return (x, *rest[:4])


_REORDERED: dict[str, tuple[Callable[..., Any], Callable[..., tuple]]] = {
    "embedding": (F.embedding, _embedding),
    "batch_norm": (F.batch_norm, _batch_norm),
    "layer_norm": (F.layer_norm, _drop_cudnn),
    "group_norm": (F.group_norm, _drop_cudnn),
}


_CHECKS = frozenset(
    {"_assert_tensor_metadata", "_assert_async", "_assert_scalar", "sym_constrain_range_for_size"}
)


def is_check(node: torch.fx.Node) -> bool:
    """Whether ``node`` is one of export's checks (``aten._assert_tensor_metadata`` of a value's
    dtype and device) that nothing reads: no computation, but a second use of the value it
    checks — a hand-written RMSNorm's normalized value "used twice" was not read as one (Llama's
    norm weights "left as is")."""
    return (
        node.op == "call_function"
        and is_aten(node.target)
        and packet_name(node.target) in _CHECKS
        and not node.users
    )


def torch_level(node: torch.fx.Node) -> None:
    """Rewrite ``node`` (a ``call_function`` of an ATen operator) in place to the torch function
    it lowers, where one is known (see the module docstring); otherwise leave it."""
    fn = node.target
    if node.op != "call_function" or not is_aten(fn):
        return
    name = packet_name(fn)
    if name in _SAME:
        node.target = _SAME[name]
    elif name in _REORDERED and not node.kwargs:
        target, order = _REORDERED[name]
        node.args = order(*node.args)
        node.target = target
