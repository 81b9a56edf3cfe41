"""Entry points that plan and apply in one call: :func:`init_model` and :func:`materialize`.
They sit above the planner and :mod:`initwise.torch.apply`, which do not import each other."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .. import _validate as v
from ..plan import Plan
from .apply import apply_plan
from .init import check_writable
from .modules import frozen, nested_unwrapped, not_a_module, unwrap
from .planner import plan as make_plan


def init_model(
    model: nn.Module,
    policy: Any = "auto",
    *,
    seed: int = 0,
    example_input: Any = None,
    overrides: Any = None,
    **kwargs: Any,
) -> Plan:
    """``plan(model, policy, ...)`` then ``apply`` it with ``seed``; returns the plan.

    Norm layers' running statistics (BatchNorm's mean/var and batch count) are reset once the
    weights are written: statistics of the old weights do not describe the new ones — except a
    norm whose own affine parameters are frozen (``requires_grad=False``: a pretrained backbone's,
    kept as the plan keeps its weights). Nothing is reset if planning or applying fails."""
    if not isinstance(model, nn.Module):
        raise not_a_module(model)
    seed = v.seed(seed, where="init_model")  # (checked before planning, which may take a while)
    # (unwrapped once for the plan, the norms and the apply: an exported model's or block's
    # view of its layers is built once, not once for each)
    with nested_unwrapped(unwrap(model)) as inner:
        p = make_plan(inner, policy, example_input, overrides, **kwargs)
        stale = _stale_norms(inner)
        apply_plan(p, inner, seed)
    for m in stale:
        m.reset_running_stats()
    return p


def _stale_norms(model: nn.Module) -> list[nn.Module]:
    """The norms whose running statistics :func:`init_model` resets, their buffers checked
    writable before anything is written."""
    stale = []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            own = list(m.parameters(recurse=False))
            if own and all(frozen(q) for q in own):
                continue
            if any(is_lazy(t) for t in m.buffers(recurse=False)):
                continue  # (a lazy norm that has not run: no statistics yet, nothing to reset)
            for b, t in m.named_buffers(recurse=False):  # (checked before anything is written)
                check_writable(t, f"buffer {(name + '.' if name else '') + b!r}")
            stale.append(m)
    return stale


def materialize(
    model: nn.Module,
    plan: Plan | None = None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    policy: Any = "auto",
    threads: int | None = None,
    draw_on: str = "auto",
    **plan_kw: Any,
) -> nn.Module:
    """Allocate a meta-device ``model`` on ``device`` (default ``"cpu"``) and fill it by
    ``plan`` (made with ``policy`` when not given): one allocation per parameter, no default
    init to throw away. On an accelerator the values are generated there (``draw_on``, see
    :func:`~initwise.torch.apply_plan`). A model already on a device is filled where it is
    (``device``, if given, must be that one)."""
    if plan is None:
        plan = make_plan(model, policy, **plan_kw)
    return apply_plan(plan, model, seed, device=device, threads=threads, draw_on=draw_on)
