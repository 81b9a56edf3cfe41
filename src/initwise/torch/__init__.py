"""PyTorch integration.

* drop-in ``torch.nn.init`` replacements (:mod:`initwise.torch.init`);
* :func:`plan` / :func:`init_model`: whole-model initialization with an explainable plan, under a
  policy (a name, a :class:`Policy` value, or a composition; :mod:`initwise.torch.policies`);
* :func:`apply_plan` / :func:`materialize`: write a plan (also onto meta-device models);
* :func:`lsuv`: layer-sequential unit-variance initialization on a batch.
"""

try:
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "initwise.torch needs PyTorch, which is not installed: pip install 'initwise[torch]' "
        "(on CPU-only machines: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    ) from exc

from ..plan import (
    AssumptionError,
    AssumptionWarning,
    ParamPlan,
    Plan,
    SignalWarning,
    register_applier,
)
from .api import init_model, materialize
from .apply import apply_plan, param_seed
from .init import *  # noqa: F403
from .init import __all__ as _init_all
from .lsuv import LSUVLayer, LSUVResult, lsuv
from .modules import unwrap_wrappers
from .parametrized import named_parameters as parametrized_names
from .planner import POLICIES, plan
from .policies import (
    Modifier,
    MuP,
    Policy,
    UMuP,
    chain,
    get_policy,
    mup_attention,
    policy_names,
    register_policy,
)
from .shaping import KernelShaping, NormalizeInput, ShapedActivation, install_rewrites

register_applier(
    lambda m: isinstance(m, nn.Module),
    apply_plan,
    # the originals of a computed weight (weight_norm's g and v) take that weight's entry
    lambda m: parametrized_names(unwrap_wrappers(m)),
)

__all__ = [
    *_init_all,
    "POLICIES",
    "AssumptionError",
    "AssumptionWarning",
    "SignalWarning",
    "LSUVLayer",
    "LSUVResult",
    "KernelShaping",
    "Modifier",
    "NormalizeInput",
    "MuP",
    "ParamPlan",
    "Plan",
    "Policy",
    "ShapedActivation",
    "UMuP",
    "apply_plan",
    "chain",
    "get_policy",
    "init_model",
    "install_rewrites",
    "lsuv",
    "materialize",
    "mup_attention",
    "param_seed",
    "plan",
    "policy_names",
    "register_policy",
]
