"""PyTorch integration.

* drop-in ``torch.nn.init`` replacements (:mod:`initwise.torch.init`);
* :func:`plan` / :func:`init_model`: whole-model initialization with an explainable plan;
* :func:`apply_plan` / :func:`materialize`: write a plan (also onto meta-device models).
"""

from typing import Any

try:
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "initwise.torch needs PyTorch, which is not installed: pip install 'initwise[torch]' "
        "(on CPU-only machines: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    ) from exc

from ..plan import ParamPlan, Plan
from .apply import apply_plan, materialize, param_seed
from .init import *  # noqa: F403
from .init import __all__ as _init_all
from .lsuv import LSUVLayer, LSUVResult, lsuv
from .planner import POLICIES, plan


def init_model(
    model: nn.Module,
    policy: str = "auto",
    *,
    seed: int = 0,
    example_input: Any = None,
    overrides: Any = None,
    **kwargs: Any,
) -> Plan:
    """``plan(model, policy, ...)`` then ``apply`` it with ``seed``; returns the plan."""
    p = plan(model, policy, example_input, overrides, **kwargs)
    p.apply(model, seed)
    return p


__all__ = [
    *_init_all,
    "POLICIES",
    "LSUVLayer",
    "LSUVResult",
    "lsuv",
    "ParamPlan",
    "Plan",
    "apply_plan",
    "init_model",
    "materialize",
    "param_seed",
    "plan",
]
