"""Copies of a user's model (or one of its modules) to probe, measure and draft on, so that
nothing initwise runs touches the model itself.

``copy.deepcopy`` refuses a module that holds a tensor computed with gradients as a plain
attribute — what a ``forward`` that keeps something for later leaves behind after one call
outside ``torch.no_grad()`` (``self.attn = softmax(...)`` for plotting, a cached state) — with
"Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol".
Such a model was planned without its example input's measurements (the draft copy failed, and
only "E[x²] = 1 assumed" was said) and ``plan(model, "lsuv", ...)`` raised torch's error. The
copies here carry a detached clone of each such tensor instead: the same values, no graph."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

_DEPTH = 4
"""How deep lists, tuples and dicts held as attributes are searched for such tensors."""


def stale_tensors(module: nn.Module) -> dict[int, torch.Tensor]:
    """``{id(t): t.detach().clone()}`` for every tensor with an autograd history (``grad_fn``)
    that ``module`` or a submodule holds as an attribute or a buffer, or in a list, tuple or
    dict so held (to :data:`_DEPTH` levels): a ``deepcopy`` memo that copies them without
    their graph. Parameters are leaves and are not among them."""
    memo: dict[int, torch.Tensor] = {}

    def visit(v: Any, depth: int) -> None:
        if isinstance(v, torch.Tensor):
            if v.grad_fn is not None and id(v) not in memo:
                memo[id(v)] = v.detach().clone()
        elif depth < _DEPTH and isinstance(v, (list, tuple)):
            for x in v:
                visit(x, depth + 1)
        elif depth < _DEPTH and isinstance(v, dict):
            for x in v.values():
                visit(x, depth + 1)

    for m in module.modules():
        for k, v in vars(m).items():
            if k not in ("_parameters", "_modules"):
                visit(v, 0)
    return memo


def module_copy(module: nn.Module, memo: dict[int, Any] | None = None) -> nn.Module:
    """``copy.deepcopy(module, memo)`` that also copies a module holding tensors with an
    autograd history (:func:`stale_tensors`: detached clones). ``memo`` as for ``deepcopy``
    (``{id(p): p}`` shares ``p`` with the copy); it is not changed."""
    found = stale_tensors(module)
    if memo:
        found.update(memo)
    return copy.deepcopy(module, found)
