"""PyTorch integration.

* drop-in ``torch.nn.init`` replacements (:mod:`initwise.torch.init`);
* :func:`plan` / :func:`init_model`: whole-model initialization with an explainable plan, under a
  policy (a name, a :class:`Policy` value, or a composition; :mod:`initwise.torch.policies`);
* :func:`apply_plan` / :func:`materialize`: write a plan (also onto meta-device models);
* :func:`lsuv`: layer-sequential unit-variance initialization on a batch.

Every name is loaded at its first use (PEP 562): ``import initwise.torch`` costs torch and this
file, not the planner, NumPy or the kernels, which load with the first call that needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "initwise.torch needs PyTorch, which is not installed: pip install 'initwise[torch]' "
        "(on CPU-only machines: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    ) from exc

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        ("AssumptionError", "AssumptionWarning", "ParamPlan", "Plan", "SignalWarning"),
        "initwise.plan",
    ),
    "init_model": ".api",
    "materialize": ".api",
    "apply_plan": ".apply",
    "param_seed": ".apply",
    "LSUVLayer": ".lsuv",
    "LSUVResult": ".lsuv",
    "lsuv": ".lsuv",
    "POLICIES": ".planner",
    "plan": ".planner",
    **dict.fromkeys(
        (
            "Modifier",
            "MuP",
            "Policy",
            "UMuP",
            "chain",
            "get_policy",
            "mup_attention",
            "policy_names",
            "register_policy",
        ),
        ".policies",
    ),
    **dict.fromkeys(
        ("KernelShaping", "NormalizeInput", "ShapedActivation", "install_rewrites"), ".shaping"
    ),
}
"""Where each public name lives, loaded at its first use (the drop-ins of
:mod:`initwise.torch.init`, its ``__all__``, are looked up there)."""


def __getattr__(name: str) -> Any:
    if name == "__all__":  # (`from initwise.torch import *`: every name, the drop-ins' too)
        names = sorted({*_WHERE, *_drop_ins().__all__})
        globals()["__all__"] = names
        return names
    where = _WHERE.get(name)
    if where is None:
        if not name.startswith("_"):
            if importlib.util.find_spec(f"{__name__}.{name}"):
                return importlib.import_module(f".{name}", __name__)  # (a submodule, as before)
            drop_ins = _drop_ins()
            if name in drop_ins.__all__:
                value = getattr(drop_ins, name)
                globals()[name] = value
                return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # (the next lookup is an ordinary attribute)
    return value


def _drop_ins() -> types.ModuleType:
    return importlib.import_module(".init", __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE, *_drop_ins().__all__})


class _Package(types.ModuleType):
    """This package's module type: a submodule imported after a public name of the same spelling
    (``initwise.torch.lsuv``, the module, beside :func:`lsuv`, the function) does not replace
    that name — the import system sets ``package.<submodule>`` on import, which would."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE:
            return  # (the submodule stays in sys.modules under its full name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


_registered = False


def _register() -> None:
    """Register :func:`apply_plan` with :meth:`initwise.plan.Plan.apply` (called by
    :func:`initwise.plan.applier_for` when a torch model first needs it)."""
    global _registered
    if _registered:
        return
    from ..plan import register_applier
    from .apply import apply_plan
    from .modules import unwrap_wrappers
    from .parametrized import named_parameters

    _registered = True
    register_applier(
        lambda m: isinstance(m, torch.nn.Module),
        apply_plan,
        # the originals of a computed weight (weight_norm's g and v) take that weight's entry
        lambda m: named_parameters(unwrap_wrappers(m)),
    )
