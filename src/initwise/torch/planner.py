r"""The planner: a whole model → a :class:`~initwise.plan.Plan`, one entry per parameter.

``plan(model, policy)`` inspects the model (:mod:`initwise.torch.graph`) to learn each layer's
true fans, the activation after it and its place in residual branches, then asks the policy for
a scheme. Policies (sources in docs/policies.md):

=================== ==========================================================================
auto                He-family ``N(0, gain²/fan_in)`` with the detected activation's forward gain
                    (√2 ReLU, 1.5335 GELU, 1 for linear consumers = LeCun), LeCun for SELU,
                    Xavier for saturating tanh/sigmoid, orthogonal recurrent weights
he / xavier / lecun that scheme for every weight matrix (true fans)
orthogonal          orthogonal × the activation's gain (Saxe et al. 2013)
torch-default       what each module's own ``reset_parameters`` does
gpt2                ``N(0, 0.02²)``; the last projection of each of the L residual branches
                    ``N(0, (0.02/√L)²)`` (GPT-2: L = 2·n_layer)
zero-init-residual  auto, with the last norm (or, without one, the last weight) of every residual
                    branch set to zero (Goyal et al. 2017)
fixup               He inside residual branches scaled by ``L^(-1/(2m-2))``, last layer of each
                    branch and the classifier zero (Zhang et al. 2019)
lsuv                orthonormal, then each layer scaled to unit output std on a batch
                    (Mishkin & Matas 2015); needs ``example_input``
=================== ==========================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from .. import schemes as S
from ..math.fans import Fans, fans
from ..plan import ParamPlan, Plan, scheme_std
from .graph import LINEAR, Act, LayerInfo, inspect_model, is_norm, is_weight_layer

POLICIES = (
    "auto",
    "he",
    "xavier",
    "lecun",
    "orthogonal",
    "torch-default",
    "gpt2",
    "zero-init-residual",
    "fixup",
    "lsuv",
)
SATURATING = {"tanh", "sigmoid", "hardtanh", "softsign", "hardsigmoid"}
_PACKED_NAMES = ("qkv", "c_attn", "query_key_value", "in_proj", "wqkv", "qkv_proj")


def plan(
    model: nn.Module,
    policy: str = "auto",
    example_input: Any = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    forget_bias: float = 1.0,
    std: float = 0.02,
) -> Plan:
    """Plan the initialization of every parameter of ``model``.

    Args:
        model: any ``nn.Module`` (also on the meta device).
        policy: one of :data:`POLICIES`.
        example_input: used to trace by running when ``torch.fx`` cannot trace the model
            (a tensor, a tuple of positional args or a dict of kwargs). Hugging Face models'
            ``dummy_inputs`` are used when this is not given.
        overrides: ``{glob pattern: scheme}`` applied last (see :meth:`Plan.override`).
        forget_bias: LSTM forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015).
        std: base std of the ``gpt2`` policy.

    Returns:
        a :class:`~initwise.plan.Plan`; ``print(plan)`` shows the table, ``plan.apply(model,
        seed=0)`` writes it.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; policies: {', '.join(POLICIES)}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if policy == "lsuv":
        if example_input is None:
            raise ValueError("policy 'lsuv' needs a batch of real data: pass example_input=batch")
        from .lsuv import lsuv_plan

        out = lsuv_plan(model, example_input)
        return out.override(overrides) if overrides else out
    info = inspect_model(model, example_input)
    ctx = _Context(policy, info.layers, info.n_residual, forget_bias, std)
    names = {id(p): n for n, p in model.named_parameters()}
    done: dict[int, int] = {}  # param id -> entry index
    entries: list[ParamPlan] = []
    for mod_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        layer = info.layers.get(mod_name) or _inherited(mod_name, module, info.layers)
        planned = _plan_module(ctx, mod_name, module, layer, dict(own))
        for pname, p in own:
            if id(p) in done:  # tied: planned under its first name; say so there
                i = done[id(p)]
                tie = f"{mod_name}.{pname}" if mod_name else pname
                entries[i] = dataclasses.replace(
                    entries[i], reason=entries[i].reason + f"; tied with {tie}"
                )
                continue
            full = names[id(p)]
            done[id(p)] = len(entries)
            e = planned.get(pname)
            if e is None:
                e = _left(
                    full,
                    p,
                    mod_name,
                    f"no rule for {type(module).__name__}.{pname}; add an override for it",
                )
            entries.append(_rename(e, full, mod_name, tuple(p.shape)))
    if policy == "fixup":
        entries = _fixup_classifier(entries, info.layers, model)
    notes = [
        f"traced with {info.method}"
        + (f"; {info.n_residual} residual branches" if info.n_residual else "")
    ]
    if info.note:
        notes.append(info.note + "; activations were not detected (assumed linear)")
    out = Plan(tuple(entries), policy, type(model).__name__, tuple(notes))
    return out.override(overrides) if overrides else out


def _inherited(name: str, module: nn.Module, layers: dict[str, LayerInfo]) -> LayerInfo:
    """Info for a module tracing did not see on its own: a child of a leaf (MultiheadAttention's
    ``out_proj``) takes its parent's place in residual branches and feeds no activation."""
    parent = name.rsplit(".", 1)[0] if "." in name else ""
    while parent:
        if parent in layers:
            p = layers[parent]
            return LayerInfo(
                name,
                module,
                LINEAR,
                branches=list(p.branches),
                last_in_branch=p.last_in_branch,
                norm_after=p.norm_after,
                branch_size=p.branch_size,
            )
        parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    return LayerInfo(name, module)


class _Context:
    def __init__(
        self, policy: str, layers: dict[str, LayerInfo], n_res: int, forget_bias: float, std: float
    ) -> None:
        self.policy = policy
        self.layers = layers
        self.n_res = n_res
        self.forget_bias = forget_bias
        self.std = std


def _rename(e: ParamPlan, name: str, layer: str, shape: tuple[int, ...]) -> ParamPlan:
    return dataclasses.replace(e, name=name, layer=layer, shape=shape)


def _left(name: str, p: Any, layer: str, why: str) -> ParamPlan:
    return ParamPlan(name, tuple(p.shape), None, f"left as is: {why}", layer)


def _entry(
    name: str,
    shape: tuple[int, ...],
    scheme: S.Scheme,
    reason: str,
    f: Fans | None,
    gain: float | None = None,
    **kw: Any,
) -> ParamPlan:
    e = ParamPlan(
        name,
        shape,
        scheme,
        reason,
        fan_in=None if f is None else f.fan_in,
        fan_out=None if f is None else f.fan_out,
        gain=gain,
        **kw,
    )
    # fill the std into the reason's placeholder
    return _with_std(e, scheme_std(scheme, e.block_shape, f))


def _with_std(e: ParamPlan, std: float | None) -> ParamPlan:
    text = e.reason.replace("{std}", "—" if std is None else f"{std:.4g}")
    return dataclasses.replace(e, std=std, reason=text)


# ----------------------------------------------------------------------------- per module


def _kind(name: str, module: nn.Module) -> str:
    cls = type(module).__name__
    if isinstance(module, nn.MultiheadAttention):
        return "mha"
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return "rnn"
    if isinstance(module, nn.PReLU):
        return "prelu"
    if is_norm(module):
        return "norm"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if cls == "Conv1D" and getattr(module, "weight", None) is not None and module.weight.ndim == 2:
        return "conv1d_hf"  # Hugging Face GPT-2's Linear with a (in, out) weight
    return "unknown"


def _plan_module(
    ctx: _Context, name: str, module: nn.Module, layer: LayerInfo, params: dict[str, Any]
) -> dict[str, ParamPlan]:
    kind = _kind(name, module)
    if kind == "norm":
        return _plan_norm(ctx, name, module, layer, params)
    if kind == "prelu":
        w = params["weight"]
        return {
            "weight": _entry(
                "weight", tuple(w.shape), S.constant(0.25), "PReLU slope: torch's 0.25", None
            )
        }
    if kind == "rnn":
        return _plan_rnn(ctx, name, module, params)
    if kind == "mha":
        return _plan_mha(ctx, name, module, layer, params)
    if kind == "unknown":
        return {}
    return _plan_weight_layer(ctx, name, module, layer, kind, params)


def _plan_norm(
    ctx: _Context, name: str, module: nn.Module, layer: LayerInfo, params: dict[str, Any]
) -> dict[str, ParamPlan]:
    cls = type(module).__name__
    out = {}
    for pname, p in params.items():
        shape = tuple(p.shape)
        if pname == "bias":
            out[pname] = _entry(pname, shape, S.zeros(), f"{cls} shift: zeros", None)
        elif pname == "weight":
            if ctx.policy == "zero-init-residual" and layer.last_norm_in_branch:
                out[pname] = _entry(
                    pname,
                    shape,
                    S.zeros(),
                    f"{cls} '{name}' ends residual branch {layer.branches[-1]}: "
                    "scale zeros, the block starts as identity (Goyal et al. "
                    "2017)",
                    None,
                )
            else:
                out[pname] = _entry(pname, shape, S.ones(), f"{cls} scale: ones", None)
    return out


def _weight_fans(
    kind: str, module: nn.Module, shape: tuple[int, ...], name: str
) -> tuple[Fans, int, int, str]:
    """(fans per block, chunks, chunk_dim, description) for a weight."""
    groups = getattr(module, "groups", 1)
    if kind == "conv":
        return fans(shape, "conv", groups=groups), 1, 0, _g(groups)
    if kind == "conv_transpose":
        f = fans(shape, "conv_transpose", groups=groups, stride=module.stride)
        return (
            f,
            1,
            0,
            _g(groups)
            + (f", stride {tuple(module.stride)}" if math.prod(module.stride) > 1 else ""),
        )
    if kind == "embedding":
        return fans(shape, "embedding"), 1, 0, ""
    leaf = name.rsplit(".", 1)[-1].lower()
    if kind == "conv1d_hf":
        rows, cols = shape[1], shape[0]  # (in, out) layout
        if leaf in _PACKED_NAMES and rows == 3 * cols:
            return fans((rows, cols), "qkv"), 3, 1, ", packed q/k/v: per-block fans"
        return fans((rows, cols)), 1, 0, ""
    if leaf in _PACKED_NAMES and shape[0] == 3 * shape[1]:
        return fans(shape, "qkv"), 3, 0, ", packed q/k/v: per-block fans"
    return fans(shape), 1, 0, ""


def _g(groups: int) -> str:
    return f", groups {groups}" if groups > 1 else ""


def _auto_scheme(act: Act) -> tuple[S.Scheme, float, str]:
    """(scheme, gain, why) for a weight followed by ``act`` under the auto policy."""
    if act.name in SATURATING:
        return S.xavier_uniform(), 1.0, f"followed by {act.describe()} (saturating) → Xavier"
    if act.name == "selu":
        return S.lecun_normal(), 1.0, "followed by SELU → LeCun normal (self-normalizing)"
    g = act.gain("forward")
    if act is LINEAR or act.name == "linear":
        return (
            S.VarianceScaling(1.0, "fan_in", "normal", 1.0, "lecun_normal"),
            1.0,
            "no activation after it → gain 1 (LeCun)",
        )
    how = "√2" if act.name == "relu" else f"numeric gain {g:.4g}"
    return (
        S.VarianceScaling(1.0, "fan_in", "normal", g, "kaiming_normal"),
        g,
        f"followed by {act.describe()} → {how}",
    )


def _policy_scheme(ctx: _Context, act: Act) -> tuple[S.Scheme, float, str]:
    p = ctx.policy
    if p == "he":
        return S.he_normal(), math.sqrt(2), "He normal (policy he)"
    if p == "xavier":
        return S.xavier_uniform(), 1.0, "Xavier uniform (policy xavier)"
    if p == "lecun":
        return S.lecun_normal(), 1.0, "LeCun normal (policy lecun)"
    if p == "orthogonal":
        g = 1.0 if act.name in ("linear", "selu") else act.gain("forward")
        return S.orthogonal(g), g, f"orthogonal × gain {g:.4g} for {act.describe()} (Saxe 2013)"
    if p == "gpt2":
        return S.normal(0.0, ctx.std), None, f"GPT-2: N(0, {ctx.std:g}²)"  # type: ignore[return-value]
    return _auto_scheme(act)


def _plan_weight_layer(
    ctx: _Context, name: str, module: nn.Module, layer: LayerInfo, kind: str, params: dict[str, Any]
) -> dict[str, ParamPlan]:
    cls = type(module).__name__
    out: dict[str, ParamPlan] = {}
    w = params.get("weight")
    if w is None or w.ndim < 2:
        return out
    shape = tuple(w.shape)
    f, chunks, chunk_dim, extra = _weight_fans(kind, module, shape, name)
    act = layer.activation or LINEAR
    traced = layer.activation is not None
    head = f"{cls} '{name}': fan_in {f.fan_in:g}{extra}"
    if not traced and ctx.policy not in ("torch-default",):
        head += " (not reached by tracing: assumed linear)"
    if layer.activation_note:
        head += f" ({layer.activation_note})"
    zero_rows = ()
    if kind == "embedding" and getattr(module, "padding_idx", None) is not None:
        zero_rows = (int(module.padding_idx),)
    kw = {"chunks": chunks, "chunk_dim": chunk_dim, "zero_rows": zero_rows}
    bias_fan_in = f.fan_in

    if ctx.policy == "torch-default":
        out["weight"], bias_fan_in = _torch_default_weight(kind, module, shape)
    elif kind == "embedding":
        std = ctx.std if ctx.policy == "gpt2" else 1.0
        why = (
            f"GPT-2: N(0, {std:g}²)"
            if ctx.policy == "gpt2"
            else "one-hot lookup (fan_in 1) → N(0, 1) keeps unit variance"
        )
        out["weight"] = _entry(
            "weight",
            shape,
            S.normal(0.0, std),
            f"{cls} '{name}': {why}" + (", padding row zero" if zero_rows else "") + " → std {std}",
            f,
            **kw,
        )
    elif ctx.policy == "gpt2" and layer.last_in_branch and ctx.n_res:
        std = ctx.std / math.sqrt(ctx.n_res)
        out["weight"] = _entry(
            "weight",
            shape,
            S.normal(0.0, std),
            f"{cls} '{name}': last projection of residual branch {layer.branches[-1]} of "
            f"{ctx.n_res} → GPT-2 std {ctx.std:g}/√{ctx.n_res} = {{std}}",
            f,
            **kw,
        )
    elif ctx.policy == "zero-init-residual" and layer.last_in_branch and not layer.norm_after:
        out["weight"] = _entry(
            "weight",
            shape,
            S.zeros(),
            f"{head}; last layer of residual branch {layer.branches[-1]} with no norm after it "
            "→ zeros, the block starts as identity (Goyal et al. 2017)",
            f,
            **kw,
        )
    elif ctx.policy == "fixup" and layer.branches:
        out["weight"] = _fixup_weight(ctx, head, layer, act, shape, f, kw)
    else:
        scheme, g, why = _policy_scheme(ctx, act)
        out["weight"] = _entry("weight", shape, scheme, f"{head}, {why} → std {{std}}", f, g, **kw)
    b = params.get("bias")
    if b is not None:
        out["bias"] = _bias(ctx, cls, b, bias_fan_in)
    return out


def _bias(ctx: _Context, cls: str, b: Any, fan_in: float) -> ParamPlan:
    shape = tuple(b.shape)
    if ctx.policy == "torch-default":
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return _entry(
            "bias",
            shape,
            S.uniform(-bound, bound),
            f"{cls} bias: torch default U(±1/√fan_in) = U(±{bound:.4g})",
            None,
        )
    return _entry("bias", shape, S.zeros(), f"{cls} bias: zeros", None)


def _torch_default_weight(
    kind: str, module: nn.Module, shape: tuple[int, ...]
) -> tuple[ParamPlan, float]:
    cls = type(module).__name__
    f = fans(shape, "torch") if kind != "conv1d_hf" else fans((shape[1], shape[0]))
    if kind == "embedding":
        pad = getattr(module, "padding_idx", None)
        e = _entry(
            "weight",
            shape,
            S.normal(0.0, 1.0),
            f"{cls}: torch default N(0, 1)",
            f,
            zero_rows=() if pad is None else (int(pad),),
        )
        return e, f.fan_in
    if kind == "conv1d_hf":
        return _entry(
            "weight", shape, S.normal(0.0, 0.02), f"{cls}: its own default N(0, 0.02²)", f
        ), f.fan_in
    scheme = S.kaiming_uniform(math.sqrt(5))
    return _entry(
        "weight",
        shape,
        scheme,
        f"{cls}: torch default kaiming_uniform(a=√5) = U(±1/√fan_in), torch fans "
        f"({f.fan_in:g}, {f.fan_out:g}) → std {{std}}",
        f,
        scheme.gain,
    ), f.fan_in


def _fixup_weight(
    ctx: _Context,
    head: str,
    layer: LayerInfo,
    act: Act,
    shape: tuple[int, ...],
    f: Fans,
    kw: dict[str, Any],
) -> ParamPlan:
    if layer.last_in_branch:
        return _entry(
            "weight",
            shape,
            S.zeros(),
            f"{head}; last layer of residual branch {layer.branches[-1]} → zeros (Fixup)",
            f,
            **kw,
        )
    m = max(layer.branch_size, 1)
    scale = ctx.n_res ** (-1.0 / (2 * m - 2)) if m > 1 else 1.0
    g = act.gain("forward") if act.name not in ("linear",) else 1.0
    scheme = S.VarianceScaling(scale**2, "fan_in", "normal", g, "fixup_he")
    return _entry(
        "weight",
        shape,
        scheme,
        f"{head}; He × L^(-1/(2m-2)) = {ctx.n_res}^(-1/{2 * m - 2}) = {scale:.4g} "
        f"(Fixup, m={m}) → std {{std}}",
        f,
        g,
        **kw,
    )


def _fixup_classifier(
    entries: list[ParamPlan], layers: dict[str, LayerInfo], model: nn.Module
) -> list[ParamPlan]:
    """Fixup also zeroes the classification layer: the last weight layer that is not in a
    residual branch, when it is the model's last weight layer."""
    modules = dict(model.named_modules())
    weight_layers = [
        n
        for n in layers
        if is_weight_layer(layers[n].module)
        and not isinstance(modules[n], (nn.Embedding, nn.EmbeddingBag))
    ]
    if not weight_layers:
        return entries
    last = weight_layers[-1]
    if layers[last].branches:
        return entries
    out = []
    for e in entries:
        if e.layer == last and e.name.endswith("weight") and e.scheme is not None:
            e = e.with_scheme(S.zeros(), f"classifier '{last}' → zeros (Fixup)")
        out.append(e)
    return out


def _plan_mha(
    ctx: _Context,
    name: str,
    module: nn.MultiheadAttention,
    layer: LayerInfo,
    params: dict[str, Any],
) -> dict[str, ParamPlan]:
    out: dict[str, ParamPlan] = {}
    e = module.embed_dim
    for pname, p in params.items():
        shape = tuple(p.shape)
        if pname in ("bias_k", "bias_v"):  # torch: xavier_normal_ over (1, 1, E) → std 1/√E
            out[pname] = _entry(
                pname,
                shape,
                S.normal(0.0, 1 / math.sqrt(e)),
                "MultiheadAttention extra key/value bias: N(0, 1/E)",
                None,
            )
        elif not pname.endswith("_weight"):
            out[pname] = _entry(pname, shape, S.zeros(), "MultiheadAttention bias: zeros", None)
        elif ctx.policy == "torch-default":
            f = fans(shape, "torch")
            out[pname] = _entry(
                pname,
                shape,
                S.xavier_uniform(),
                f"MultiheadAttention: torch default xavier_uniform over the "
                f"packed tensor (fan_out {f.fan_out:g}) → std {{std}}",
                f,
            )
        elif pname == "in_proj_weight":
            f = fans(shape, "qkv")
            scheme, g, why = _policy_scheme(ctx, LINEAR)
            out[pname] = _entry(
                pname,
                shape,
                scheme,
                f"MultiheadAttention '{name}' q/k/v: 3 blocks of {e}×{e}, fans "
                f"per block ({f.fan_in:g}, {f.fan_out:g}) (torch: fan_out "
                f"{3 * e}); {why} → std {{std}}",
                f,
                g,
                chunks=3,
            )
        else:  # q_proj_weight, k_proj_weight, v_proj_weight (kdim/vdim != embed_dim)
            f = fans(shape)
            scheme, g, why = _policy_scheme(ctx, LINEAR)
            out[pname] = _entry(
                pname,
                shape,
                scheme,
                f"MultiheadAttention '{name}' {pname[0]}: {why} → std {{std}}",
                f,
                g,
            )
    return out


def _plan_rnn(
    ctx: _Context, name: str, module: nn.Module, params: dict[str, Any]
) -> dict[str, ParamPlan]:
    cls = type(module).__name__
    label = f"{cls} '{name}'" if name else cls
    mode = getattr(module, "mode", None) or cls.replace("Cell", "").upper()
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    relu = "RELU" in mode or getattr(module, "nonlinearity", "tanh") == "relu"
    h = module.hidden_size
    gate_names = {4: "i, f, g, o", 3: "r, z, n", 1: "h"}[gates]
    out: dict[str, ParamPlan] = {}
    for pname, p in params.items():
        shape = tuple(p.shape)
        if ctx.policy == "torch-default":
            bound = 1 / math.sqrt(h)
            out[pname] = _entry(
                pname,
                shape,
                S.uniform(-bound, bound),
                f"{cls}: torch default U(±1/√hidden) = U(±{bound:.4g})",
                None,
            )
        elif pname.startswith("weight_ih"):
            f = fans(shape, "packed", chunks=gates)
            act = Act("relu") if relu else Act("tanh")
            scheme, g, why = (
                _policy_scheme(ctx, act)
                if ctx.policy in ("he", "xavier", "lecun")
                else _auto_scheme(act)
            )
            out[pname] = _entry(
                pname,
                shape,
                scheme,
                f"{label} input weights, {gates} gate block(s) ({gate_names}) "
                f"of {h}×{shape[1]}: {why} → std {{std}}",
                f,
                g,
                chunks=gates,
            )
        elif pname.startswith("weight_hh"):
            f = fans(shape, "packed", chunks=gates)
            out[pname] = _entry(
                pname,
                shape,
                S.orthogonal(),
                f"{label} recurrent weights: orthogonal per gate block "
                f"({gates}× {h}×{shape[1]}) keeps the state's norm (Saxe 2013)",
                f,
                1.0,
                chunks=gates,
            )
        elif pname.startswith("weight_hr"):
            f = fans(shape)
            out[pname] = _entry(
                pname,
                shape,
                S.xavier_uniform(),
                f"{label} projection: Xavier → std {{std}}",
                f,
                1.0,
            )
        elif pname.startswith("bias_ih") and mode == "LSTM" and ctx.forget_bias != 0:
            out[pname] = _entry(
                pname,
                shape,
                S.zeros(),
                f"{cls} bias: zeros, forget gate {ctx.forget_bias:g} (Gers 2000, Jozefowicz 2015)",
                None,
                chunks=4,
                chunk_schemes=((1, S.constant(ctx.forget_bias)),),
            )
        else:
            out[pname] = _entry(pname, shape, S.zeros(), f"{cls} bias: zeros", None)
    return out
