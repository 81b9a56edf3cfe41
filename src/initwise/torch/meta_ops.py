"""Shapes of common operations on meta tensors without running torch's meta kernels.

A model on the meta device is planned by running an example input through it on meta tensors
(:func:`~initwise.torch.graph.trace_run`): only shapes, dtypes and strides flow. Many of torch's
meta kernels are Python reference implementations (``torch._refs``/``torch._prims``): measured
on the 2-core VM (torch 2.13), a broadcast ``add`` ~100 µs, ``layer_norm`` ~0.9 ms,
``scaled_dot_product_attention`` ~2 ms per call, against 2.4 µs for the same ``add`` on the CPU —
~90 % of a meta-device GPT-2's trace. :func:`fast_meta` gives the result of the operations that
dominate it (elementwise arithmetic and activations, ``layer_norm``, ``addmm``,
``scaled_dot_product_attention``, ``dropout``, ``cat``, ``mean``) as a new meta tensor of the
shape, dtype and strides torch's meta kernel gives, where that is certain — every tensor operand
a plain meta tensor laid out contiguously, no ``out=``, arguments of the forms handled here — and
``NotImplemented`` otherwise, so that the caller runs the operation itself (which also raises
torch's own error for operands that do not fit). Tested against torch's meta kernels case by case
(``tests/test_meta_ops.py``) and by planning Hugging Face models with and without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .batch import plain_strided

_T = torch.Tensor


def _meta(t: Any) -> bool:
    """A plain (not a subclass), strided meta tensor."""
    return plain_strided(t) and t.is_meta


def _plain(t: Any) -> bool:
    """A plain, strided, contiguous meta tensor."""
    return _meta(t) and t.is_contiguous()


def _new(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _number(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _int(a: Any) -> bool:
    return isinstance(a, int) and not isinstance(a, bool)


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The call's arguments by name (``names`` in the function's order), or None where more are
    given than it takes, one twice, or one it does not know (``out=``: torch runs it)."""
    bound = dict(zip(names, args, strict=False))
    if len(args) > len(names) or any(k in bound or k not in names for k in kwargs):
        return None
    bound.update(kwargs)
    return bound


def _binary(
    a: Any, b: Any, kwargs: dict[str, Any], *, true_div: bool = False, alpha: bool = False
) -> torch.Tensor | Any:
    """``a ∘ b`` for tensors and Python numbers: the broadcast shape and the promoted dtype
    (floating results only; true division of integers gives the default float dtype).
    ``alpha``: the operation takes an ``alpha=`` number (``add``, ``sub``)."""
    if any(k != "alpha" or not alpha or not _number(v) for k, v in kwargs.items()):
        return NotImplemented
    ts = [x for x in (a, b) if isinstance(x, _T)]
    if (
        not ts
        or not all(_plain(t) for t in ts)
        or not all(isinstance(x, _T) or _number(x) for x in (a, b))
    ):
        return NotImplemented
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in ts))
        dtype = torch.result_type(a, b)
    except (RuntimeError, TypeError, ValueError):
        return NotImplemented
    if true_div and not (dtype.is_floating_point or dtype.is_complex):
        dtype = torch.get_default_dtype()
    if not dtype.is_floating_point:
        return NotImplemented
    return _new(shape, dtype)


def _unary(x: Any, kwargs: dict[str, Any], allowed: dict[str, Any]) -> torch.Tensor | Any:
    """An elementwise function of one floating-point tensor: its shape and dtype."""
    if not (_plain(x) and x.dtype.is_floating_point):
        return NotImplemented
    for k, v in kwargs.items():
        if k not in allowed or not allowed[k](v):
            return NotImplemented
    return _new(x.shape, x.dtype)


def _false(v: Any) -> bool:
    return v is False


def _approximate(v: Any) -> bool:
    return v in ("none", "tanh")


_UNARY_KW: dict[Any, dict[str, Callable[[Any], bool]]] = {
    F.gelu: {"approximate": _approximate},
    F.silu: {"inplace": _false},
    F.relu: {"inplace": _false},
}


def _layer_norm(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    bound = _bind(("input", "normalized_shape", "weight", "bias", "eps"), args, kwargs)
    if bound is None:
        return NotImplemented
    x, shape = bound.get("input"), bound.get("normalized_shape")
    if not (_plain(x) and x.dtype.is_floating_point):
        return NotImplemented
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, torch.Size)) or not shape:
        return NotImplemented
    shape = tuple(shape)
    if len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        return NotImplemented
    for name in ("weight", "bias"):
        p = bound.get(name)
        if p is not None and not (_plain(p) and tuple(p.shape) == shape and p.dtype == x.dtype):
            return NotImplemented
    eps = bound.get("eps", 1e-5)
    if not _number(eps):
        return NotImplemented
    return _new(x.shape, x.dtype)


def _addmm(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    if len(args) != 3 or any(
        k not in ("beta", "alpha") or not _number(v) for k, v in kwargs.items()
    ):
        return NotImplemented
    bias, m1, m2 = args
    if not all(_plain(t) for t in (bias, m1, m2)):
        return NotImplemented
    if m1.dim() != 2 or m2.dim() != 2 or m1.shape[1] != m2.shape[0]:
        return NotImplemented
    if not (m1.dtype == m2.dtype == bias.dtype and m1.dtype.is_floating_point):
        return NotImplemented
    out = (m1.shape[0], m2.shape[1])
    try:
        if torch.broadcast_shapes(bias.shape, out) != out:
            return NotImplemented
    except RuntimeError:
        return NotImplemented
    return _new(out, m1.dtype)


def _sdpa(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    bound = _bind(
        ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
        args,
        kwargs,
    )
    if bound is None:
        return NotImplemented
    q, k, v = bound.get("query"), bound.get("key"), bound.get("value")
    # (any strides: torch's meta kernel gives a contiguous output; q, k and v are usually
    # transposed views of a projection's output)
    if not all(_meta(t) and t.dim() == 4 for t in (q, k, v)):
        return NotImplemented
    if not (q.dtype == k.dtype == v.dtype and q.dtype.is_floating_point):
        return NotImplemented
    if bound.get("enable_gqa", False) is not False:
        return NotImplemented
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        return NotImplemented  # (batch and heads as given: broadcasting and GQA left to torch)
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        return NotImplemented
    mask = bound.get("attn_mask")
    if mask is not None:
        if not _meta(mask) or not (mask.dtype == torch.bool or mask.dtype == q.dtype):
            return NotImplemented
        try:
            torch.broadcast_shapes(mask.shape, (*q.shape[:-1], k.shape[-2]))
        except RuntimeError:
            return NotImplemented
        if bound.get("is_causal", False):
            return NotImplemented  # (torch refuses a mask with is_causal)
    p = bound.get("dropout_p", 0.0)
    if not (_number(p) and 0.0 <= p <= 1.0) or not isinstance(bound.get("is_causal", False), bool):
        return NotImplemented
    scale = bound.get("scale")
    if scale is not None and not _number(scale):
        return NotImplemented
    return _new((*q.shape[:-1], v.shape[-1]), q.dtype)


def _dropout(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    bound = _bind(("input", "p", "training", "inplace"), args, kwargs)
    if bound is None:
        return NotImplemented
    x, p = bound.get("input"), bound.get("p", 0.5)
    training, inplace = bound.get("training", True), bound.get("inplace", False)
    if not (_plain(x) and x.dtype.is_floating_point) or inplace is not False:
        return NotImplemented
    if not _number(p) or not 0.0 <= p <= 1.0 or not isinstance(training, bool):
        return NotImplemented
    if not training or p == 0.0:
        return x  # (torch gives the input itself)
    return _new(x.shape, x.dtype)


def _cat(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    bound = _bind(("tensors", "dim"), args, kwargs)
    if bound is None:
        return NotImplemented
    ts, dim = bound.get("tensors"), bound.get("dim", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not _int(dim):
        return NotImplemented
    if not all(_plain(t) and t.dim() > 0 and t.dim() not in (4, 5) for t in ts):
        return NotImplemented  # (4-d and 5-d: torch may pick a channels-last output)
    first = ts[0]
    if not (first.dtype.is_floating_point and all(t.dtype == first.dtype for t in ts)):
        return NotImplemented
    n = first.dim()
    if not -n <= dim < n or any(t.dim() != n for t in ts):
        return NotImplemented
    d = dim % n
    if any(t.shape[:d] != first.shape[:d] or t.shape[d + 1 :] != first.shape[d + 1 :] for t in ts):
        return NotImplemented
    shape = list(first.shape)
    shape[d] = sum(t.shape[d] for t in ts)
    return _new(tuple(shape), first.dtype)


def _mean(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | Any:
    bound = _bind(("input", "dim", "keepdim"), args, kwargs)
    if bound is None:
        return NotImplemented
    x, dim, keep = bound.get("input"), bound.get("dim"), bound.get("keepdim", False)
    if not (_plain(x) and x.dtype.is_floating_point and x.dim() > 0) or not isinstance(keep, bool):
        return NotImplemented
    dims = (dim,) if _int(dim) else dim
    if not isinstance(dims, (tuple, list)) or not dims:
        return NotImplemented
    if not all(_int(d) and -x.dim() <= d < x.dim() for d in dims):
        return NotImplemented
    reduced = {d % x.dim() for d in dims}
    if len(reduced) != len(dims):
        return NotImplemented
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape) if keep or i not in reduced]
    return _new(tuple(shape), x.dtype)


_BINARY = {
    torch.add, _T.add, _T.__add__, _T.__radd__,
    torch.sub, _T.sub, _T.__sub__, _T.__rsub__,
    torch.mul, _T.mul, _T.__mul__, _T.__rmul__,
    torch.pow, _T.pow, _T.__pow__, _T.__rpow__,
}  # fmt: skip
_ALPHA = {torch.add, _T.add, torch.sub, _T.sub}
_TRUE_DIV = {torch.div, _T.div, torch.true_divide, _T.__truediv__, _T.__rtruediv__}
_UNARY = {
    torch.tanh, _T.tanh, torch.neg, _T.neg, _T.__neg__, torch.rsqrt, _T.rsqrt,
    torch.exp, _T.exp, torch.sigmoid, _T.sigmoid, torch.sin, _T.sin, torch.cos, _T.cos,
    torch.sqrt, _T.sqrt, F.silu, F.gelu, F.relu, torch.relu, _T.relu,
}  # fmt: skip
_OTHER: dict[Any, Callable[[tuple, dict[str, Any]], Any]] = {
    F.layer_norm: _layer_norm,
    torch.layer_norm: _layer_norm,
    torch.addmm: _addmm,
    F.scaled_dot_product_attention: _sdpa,
    F.dropout: _dropout,
    torch.cat: _cat,
    torch.mean: _mean,
    _T.mean: _mean,
}


def fast_meta(func: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    """The result of ``func(*args, **kwargs)`` on meta tensors without running it, for the
    operations and argument forms described in the module docstring; ``NotImplemented`` for
    anything else (the caller runs ``func``). Only without gradients (the trace runs under
    ``torch.no_grad``): the results never require grad."""
    if torch.is_grad_enabled():
        return NotImplemented
    try:
        if func in _BINARY or func in _TRUE_DIV:
            if len(args) != 2:
                return NotImplemented
            # (`x.__rsub__(y)` is `y - x`: the shape and the dtype do not depend on the order)
            return _binary(*args, kwargs, true_div=func in _TRUE_DIV, alpha=func in _ALPHA)
        if func in _UNARY:
            if len(args) != 1:
                return NotImplemented
            return _unary(args[0], kwargs, _UNARY_KW.get(func, {}))
        handler = _OTHER.get(func)
        if handler is not None:
            return handler(args, kwargs)
    except TypeError:  # (an unhashable callable: not one of these)
        return NotImplemented
    return NotImplemented
