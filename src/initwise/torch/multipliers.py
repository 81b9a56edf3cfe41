"""Forward multipliers from a plan (u-μP's ``A_W``), installed on the weights' modules.

A plan entry with ``forward_mult = A`` asks that its weight ``W`` act as ``A·W`` in the forward
pass (Blake et al. 2024, u-μP, the "a" of the abc-parametrization: weights are stored and
updated at unit scale, the multiplier carries the width dependence). For the layers this
supports the multiplier is applied to the layer's *input*, which gives the same result with the
bias untouched:

- ``nn.Linear``, every ``nn.Conv*`` / ``nn.ConvTranspose*`` and Hugging Face's ``Conv1D``
  (linear in their input): ``W·(A·x) + b = (A·W)·x + b`` — a forward pre-hook;
- ``nn.Embedding`` / ``nn.EmbeddingBag`` (their input is indices): the output is scaled — a
  forward hook.

The hooks read the module attribute ``_initwise_forward_mult``, so applying a new plan changes
the value instead of stacking hooks, and a plan without multipliers removes them: after
``apply`` a model carries exactly its plan's multipliers. They are module state, not tensors:
``deepcopy`` and pickling keep them, a ``state_dict`` does not (call
:func:`~initwise.torch.install_rewrites` on a model rebuilt from saved weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..plan import Plan

ATTR = "_initwise_forward_mult"
HOOK = "_initwise_forward_mult_hook"


def _scale_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    a = getattr(module, ATTR, None)
    if a is None or not args or not isinstance(args[0], torch.Tensor):
        return None
    return (args[0] * a, *args[1:])


def _scale_output(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
    a = getattr(module, ATTR, None)
    if a is None or not isinstance(out, torch.Tensor):
        return None
    return out * a


def hook_kind(module: nn.Module) -> str | None:
    """``"input"`` for modules linear in their input, ``"output"`` for embedding lookups,
    ``None`` where a multiplier can not be installed by a hook."""
    if (
        isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear))
        or type(module).__name__ == "Conv1D"
    ):  # (Bilinear: x1ᵀ(a·W)x2 = (a·x1)ᵀW x2, so scaling the first input is enough)
        return "input"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "output"
    return None


def installed(model: nn.Module) -> dict[str, float]:
    """``{module name: multiplier}`` of the forward multipliers installed on ``model``."""
    return {
        n: float(getattr(m, ATTR))
        for n, m in model.named_modules()
        if getattr(m, ATTR, None) is not None
    }


def _remove(module: nn.Module) -> None:
    hid = module.__dict__.pop(HOOK, None)
    if hid is not None:
        module._forward_pre_hooks.pop(hid, None)
        module._forward_hooks.pop(hid, None)
    module.__dict__.pop(ATTR, None)


def prepare_multipliers(plan: Plan, model: nn.Module) -> Callable[[], None]:
    """Check every multiplier of ``plan`` against ``model`` (the module exists and is one a hook
    can scale) and return the function that installs them — and removes multipliers of an
    earlier plan that this one does not have. Nothing is changed before it is called.

    Raises:
        ValueError: a weight with a multiplier belongs to a module that is not linear in its
            input (attention's packed projections, recurrent cells, custom modules).
    """
    modules = dict(model.named_modules())
    params: dict[str, Any] = {}  # (by name, read only for a multiplier on a shared weight)
    want: dict[str, float] = {}
    for e in plan:
        if e.forward_mult is None:
            continue
        owner, _, pname = e.name.rpartition(".")
        if e.forward_mult_at:  # (a shared weight: the multiplier on one of its uses)
            owner = e.forward_mult_at
            m = modules.get(owner)
            params = params or dict(model.named_parameters())
            p = params.get(e.name)
            if m is None or p is None or getattr(m, "weight", None) is not p:
                what = (
                    "no such module"
                    if m is None
                    else "no such parameter"
                    if p is None
                    else f"a {type(m).__name__} whose weight is not {e.name!r}"
                )
                raise ValueError(
                    f"plan entry {e.name!r} puts its forward multiplier "
                    f"({e.forward_mult:g}) on the call of '{owner}', which is {what}: the "
                    "module named by forward_mult_at must use this weight as its own (a tied "
                    "read-out, head.weight = emb.weight). Plan this model again"
                )
            pname = "weight"
        else:
            m = modules.get(owner)
        if m is None or pname != "weight" or hook_kind(m) is None:
            what = "no such module" if m is None else f"a {type(m).__name__}"
            raise ValueError(
                f"plan entry {e.name!r} has a forward multiplier ({e.forward_mult:g}), but "
                f"'{owner}' is {what}: multipliers are installed on the weight of a Linear, "
                "Conv, ConvTranspose, HF Conv1D or Embedding module. Use MuP for this model "
                "(same learning-rate transfer, no forward change), or remove forward_mult"
            )
        want[owner] = e.forward_mult

    def install() -> None:
        for name, m in modules.items():
            if name not in want:
                _remove(m)
                continue
            if HOOK not in m.__dict__:
                if hook_kind(m) == "input":
                    h = m.register_forward_pre_hook(_scale_input)
                else:
                    h = m.register_forward_hook(_scale_output)
                m.__dict__[HOOK] = h.id
            m.__dict__[ATTR] = want[name]

    return install
