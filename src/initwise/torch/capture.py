"""Raw-parameter layers seen as they run: :class:`SiteCalls`, a ``TorchFunctionMode`` that
watches a model's forward for the products that
:func:`~initwise.torch.functional.raw_parameter_layers` read as layers (``x @ W + b``,
``F.linear(x, W)``, a two-operand ``einsum``, ``F.conv2d(x, W, b)``…) and hands each one —
the layer (its :class:`~initwise.torch.modules.FunctionalLinear` / ``FunctionalConv`` site),
its input, its output and how to compute that output again — to a callback, which may return
another output in its place.

No module runs such a layer, so no forward hook sees it: this is how ``diagnose`` measures
it and LSUV rescales it. The weight is recognized by identity — the parameter itself, a view
of it (``W.t()``, ``W.T``, ``W.view(…)``: their ``_base``) or a copy made from it in the same
forward (``W.to(x.dtype)``, ``W.t().contiguous()``) — so the mode works whatever ran the
forward (a plain call, an fx interpreter, hooks). A bias added right after the product
(``x @ W + b``) is part of the layer's output, as a module's bias is: the callback is called
at that addition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .functional import CASTS
from .modules import FunctionalLayer

OnCall = Callable[
    [str, FunctionalLayer, torch.Tensor, torch.Tensor, "Callable[[], Any] | None", torch.Tensor],
    Any,
]
"""``on_call(name, layer, x, out, again, weight_arg)`` → the output to use in ``out``'s place.
``again()`` computes the output again from the current weight (None where it cannot: a
product whose bias addition never came, flushed when the mode exits); ``weight_arg`` is the
tensor the product took as its weight (the parameter, a view, or a copy of it)."""

_PRODUCTS = frozenset({"matmul", "mm", "addmm", "linear", "einsum", "conv1d", "conv2d", "conv3d"})
_ADDS = frozenset({"add", "__add__", "__radd__"})
_X_FIRST = frozenset({"linear", "conv1d", "conv2d", "conv3d"})
"""Products whose signal is their first operand and weight their second."""


class SiteCalls(TorchFunctionMode):
    """Calls ``on_call`` for every product of the signal with one of ``sites``' weights that
    runs while the mode is active (see the module docstring)."""

    def __init__(self, sites: Mapping[str, FunctionalLayer], on_call: OnCall) -> None:
        super().__init__()
        self.on_call = on_call
        self.layers = dict(sites)
        self._weights = {id(m.weight): (m.weight, n) for n, m in sites.items()}
        self._biases = {id(m.bias): (m.bias, n) for n, m in sites.items() if m.bias is not None}
        self._copies: dict[int, tuple[torch.Tensor, str]] = {}
        self._pending: dict[int, tuple[Any, ...]] = {}

    def _find(self, t: Any, table: dict[int, tuple[torch.Tensor, str]]) -> str | None:
        """The site whose tensor ``t`` is (itself or a view of it) in ``table``."""
        if not isinstance(t, torch.Tensor):
            return None
        for c in (t, t._base):
            hit = table.get(id(c)) if c is not None else None
            if hit is not None and hit[0] is c:
                return hit[1]
        return None

    def _weight_site(self, t: Any) -> str | None:
        return self._find(t, self._weights) or self._find(t, self._copies)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _PRODUCTS:
            return self._product(func, name, args, kwargs, out)
        if name in _ADDS and self._pending:
            return self._added(func, args, kwargs, out)
        if name in CASTS and args and isinstance(out, torch.Tensor):
            site = self._weight_site(args[0])
            if site is not None:  # (kept alive with its entry: the id stays its own)
                self._copies[id(out)] = (out, site)
        return out

    def _product(self, func: Any, name: str, args: tuple, kwargs: dict, out: Any) -> Any:
        if not isinstance(out, torch.Tensor):
            return out
        if name == "einsum":
            ops = list(args[1:])
            if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
                ops = list(ops[0])
            rest: list[Any] = []
        elif name == "addmm":
            ops, rest = list(args[1:3]), [args[0], *kwargs.values()]
        else:  # matmul, mm: (a, b); linear, convNd: (x, W, [b, …])
            ops, rest = list(args[:2]), [*args[2:], *kwargs.values()]
        if len(ops) != 2:
            return out
        found = [(i, self._weight_site(t)) for i, t in enumerate(ops)]
        hits = [(i, s) for i, s in found if s is not None]
        if len(hits) != 1 or (name in _X_FIRST and hits[0][0] != 1):
            return out
        i, site = hits[0]
        x, w = ops[1 - i], ops[i]
        if not isinstance(x, torch.Tensor):
            return out
        layer = self.layers[site]
        again = lambda: func(*args, **kwargs)  # noqa: E731
        if layer.bias is None or any(self._find(a, self._biases) == site for a in rest):
            return self.on_call(site, layer, x, out, again, w)
        self._pending[id(out)] = (out, site, layer, x, again, w)  # its bias is added next
        return out

    def _added(self, func: Any, args: tuple, kwargs: dict, out: Any) -> Any:
        if len(args) != 2:
            return out
        for j in (0, 1):
            y, other = args[j], args[1 - j]
            p = self._pending.get(id(y)) if isinstance(y, torch.Tensor) else None
            if p is None or p[0] is not y or self._find(other, self._biases) != p[1]:
                continue
            del self._pending[id(y)]
            _, site, layer, x, product, w = p

            def again(j: int = j, other: Any = other, product: Any = product) -> Any:
                new = [None, None]
                new[j], new[1 - j] = product(), other
                return func(*new, **kwargs)

            return self.on_call(site, layer, x, out, again, w)
        return out

    def __exit__(self, *exc: Any) -> Any:
        result = super().__exit__(*exc)
        pending, self._pending = self._pending, {}
        self._copies.clear()
        if exc[0] is None:  # a product whose bias addition did not come: as it was
            for out, site, layer, x, _, w in pending.values():
                self.on_call(site, layer, x, out, None, w)
        return result


def run_sites(graph: Any) -> dict[str, Any]:
    """The layers of ``graph`` that run as no module: its raw-parameter sites (its
    :attr:`~initwise.torch.graph.Graph.extra`) and the modules whose call is a function of
    their own weight (:attr:`~initwise.torch.graph.Graph.weight_calls`: ``F.linear(x,
    self.fc.weight, self.fc.bias)`` — ``diagnose`` left such a layer out of its report without
    a word). Those inside a custom module the analysis traced into run as that module, which
    hooks see."""
    if graph is None:
        return {}
    found = {n: m for n, m in graph.extra.items() if isinstance(m, FunctionalLayer)}
    found.update(getattr(graph, "weight_calls", {}))
    return {n: m for n, m in found.items() if not any(n.startswith(f"{k}.") for k in graph.inlined)}
