r"""Policies as values: what to do with each weight, bias, norm, recurrent cell and attention
block of a model, and a last pass over the whole plan.

A :class:`Policy` is a small immutable object with one method per decision; the planner
(:mod:`initwise.torch.planner`) walks the model and asks it. A :class:`Modifier` changes what a
policy decided (zero the last layer of residual branches, scale them with depth, Fixup) and
composes with any policy the way ``optax.chain`` composes gradient transformations::

    from initwise.torch import policies as P
    policy = P.chain(P.Auto(), P.ZeroInitResidual())        # = the built-in "zero-init-residual"
    policy = P.chain(P.Preset("he"), P.DepthScaledResidual()) # He, branch ends scaled by 1/√L
    P.register_policy("he-depth", policy)
    initwise.torch.plan(model, "he-depth")                    # or plan(model, policy)

The built-ins (sources in docs/policies.md):

=================== ==========================================================================
auto                He-family ``N(0, gain²/fan_in)`` with the detected activation's forward gain
                    (√2 ReLU, 1.5335 GELU, 1 for linear consumers = LeCun), LeCun for SELU,
                    Xavier for saturating activations, orthogonal recurrent weights
he / xavier / lecun that scheme for every weight matrix (true fans)
orthogonal          orthogonal × the activation's gain (Saxe et al. 2013)
torch-default       what each module's own ``reset_parameters`` does
gpt2                ``N(0, 0.02²)``; the last projection of each of the L residual branches
                    ``N(0, (0.02/√L)²)`` (GPT-2: L = 2·n_layer)
zero-init-residual  auto + :class:`ZeroInitResidual` (Goyal et al. 2017)
fixup               auto + :class:`Fixup` (Zhang et al. 2019)
lsuv                orthonormal, then each layer scaled to unit output std on a batch
                    (Mishkin & Matas 2015; registered by :mod:`initwise.torch.lsuv`)
tat / dks           kernel shaping: scaled-uniform orthogonal weights and rewritten activations
                    (Zhang et al. 2022; Martens et al. 2021; :mod:`initwise.torch.shaping`)
=================== ==========================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .. import schemes as S
from ..math.fans import Fans, fans
from ..plan import ParamPlan
from .graph import LINEAR, Act, LayerInfo, graph_modules, in_out, live_nodes
from .modules import FunctionalEinsum, embedding_norm_cap, few, is_weight_layer, norm_offset
from .moments import Moments, Solved, affine_roles, tied_heads
from .multipliers import hook_kind

entry = ParamPlan.build


@dataclass
class Context:
    """What the planner knows about the whole model, passed to every decision."""

    layers: dict[str, LayerInfo]
    n_res: int
    forget_bias: float = 1.0
    std: float = 0.02
    model: nn.Module | None = None
    moments: Moments | None = None
    """Propagated moments (:mod:`initwise.torch.moments`), for policies with ``propagates``."""
    info: Any = None
    """The traced :class:`~initwise.torch.graph.ModelInfo` (graph, kinds) when there is one."""
    memo: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per-plan scratch for a policy that derives several answers from one analysis (kernel
    shaping solves once for its rewrites, notes and assumptions): policies stay immutable."""


@dataclass(frozen=True)
class WeightSite:
    """A weight matrix (Linear, Conv, transposed Conv, Embedding, HF Conv1D) and what is known
    about it: its true fans per block, the activation after it, its place in residual
    branches, and ``head``, the start of its reason."""

    module_name: str
    module: nn.Module
    kind: str
    layer: LayerInfo
    act: Act
    shape: tuple[int, ...]
    fans: Fans
    chunks: int
    chunk_dim: int
    head: str
    zero_rows: tuple[int, ...] = ()
    row_scales: tuple[float, ...] = ()
    """Per-row factors of a masked layer (:attr:`~initwise.plan.ParamPlan.row_scales`)."""

    @property
    def cls(self) -> str:
        return type(self.module).__name__

    @property
    def kw(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks,
            "chunk_dim": self.chunk_dim,
            "zero_rows": self.zero_rows,
            "row_scales": self.row_scales,
        }


Planned = dict[str, ParamPlan]


class Policy:
    """Base policy: the ``auto`` decisions for everything except the weight-matrix rule
    (:meth:`scheme`), which subclasses give. Override any method to change one decision."""

    name: str = "custom"
    propagates: bool = False
    """Whether the planner propagates moments through the graph for this policy
    (``ctx.moments``; the ``auto`` policy solves each layer from them)."""
    describes_tracing: bool = True
    """Whether reasons mention activations that tracing did not find (False for policies that
    ignore activations, like torch-default)."""
    plans_functional: bool = True
    """Whether raw parameters that ``forward`` uses as a layer's weight (``x @ W``, see
    :class:`~initwise.torch.modules.FunctionalLinear`) are planned as that layer (False for
    torch-default: torch has no default for a raw ``nn.Parameter``, which keeps what the model
    drew)."""

    # --- the one rule most policies change
    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float | None, str]:
        """(scheme, gain, why) for a weight matrix followed by ``act``."""
        raise NotImplementedError(f"policy {self.name!r} does not say how to draw weights")

    # --- per parameter kind
    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        if site.kind == "embedding":
            return self.embedding(ctx, site)
        scheme, g, why = self.scheme(ctx, site.act)
        return entry(
            "weight",
            site.shape,
            scheme,
            f"{site.head}, {why} → std {{std}}",
            site.fans,
            g,
            **site.kw,
        )

    def embedding(self, ctx: Context, site: WeightSite) -> ParamPlan:
        pad = ", padding row zero" if site.zero_rows else ""
        cap = embedding_norm_cap(site.module)
        if cap is not None and cap < 1.0:  # the forward would renormalize N(0, 1) rows
            return entry(
                "weight",
                site.shape,
                S.normal(0.0, cap),
                f"{site.cls} '{site.module_name}': one-hot lookup (fan_in 1); its forward "
                f"renormalizes rows to norm ≤ max_norm {site.module.max_norm:g}, so N(0, 1) "
                f"would become std {cap:.4g} at first use: drawn at max_norm/√dim{pad} → std "
                "{std}",
                site.fans,
                **site.kw,
            )
        return entry(
            "weight",
            site.shape,
            S.normal(0.0, 1.0),
            f"{site.cls} '{site.module_name}': one-hot lookup (fan_in 1) → N(0, 1) keeps unit "
            f"variance{pad} → std {{std}}",
            site.fans,
            **site.kw,
        )

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        return entry("bias", shape, S.zeros(), f"{site.cls} bias: zeros", None)

    def norm(
        self,
        ctx: Context,
        name: str,
        module: nn.Module,
        layer: LayerInfo,
        pname: str,
        shape: tuple[int, ...],
    ) -> ParamPlan | None:
        cls = type(module).__name__
        if pname == "bias":
            return entry(pname, shape, S.zeros(), f"{cls} shift: zeros", None)
        if pname == "weight":
            if norm_offset(module) == 1.0:
                return entry(
                    pname,
                    shape,
                    S.zeros(),
                    f"{cls} scale: zeros — it multiplies by (1 + weight) (measured), so zeros "
                    "is a scale of 1",
                    None,
                )
            return entry(pname, shape, S.ones(), f"{cls} scale: ones", None)
        return None

    def recurrent(
        self, ctx: Context, name: str, module: nn.Module, params: Mapping[str, Any]
    ) -> Planned:
        return _rnn(self, ctx, name, module, params)

    def recurrent_input_scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float, str]:
        """The rule for an RNN's input-to-hidden weights (the auto rule unless a preset says).
        A ReLU RNN's state adds the recurrent term's second moment to the input's:
        ``h = relu(W_hh·h + W_ih·x)`` with ``W_hh`` orthogonal has the steady state
        ``E[h²] = ½(E[h²] + g²·E[x²])``, i.e. ``E[h²] = g²·E[x²]`` — He's ``g = √2`` doubled
        ``E[h²]`` in each layer of a stacked ``nn.RNN`` (measured, 12 draws, 16 steps: median
        1.76 / 3.39 / 7.99 at 1 / 2 / 3 layers), ``g = 1`` holds it (0.88 / 0.85 / 1.00)."""
        if act.name == "relu" and act.module is None:
            return (
                S.lecun_normal(),
                1.0,
                "followed by relu in a recurrence: the orthogonal recurrent term carries E[h²] "
                "again, so E[h²] = ½(E[h²] + g²·E[x²]) holds E[x²] at gain 1 (LeCun)",
            )
        return auto_scheme(act)

    def attention(
        self,
        ctx: Context,
        name: str,
        module: nn.MultiheadAttention,
        layer: LayerInfo,
        params: Mapping[str, Any],
    ) -> Planned:
        return _mha(self, ctx, name, module, params)

    def attention_weight(
        self,
        ctx: Context,
        name: str,
        module: nn.MultiheadAttention,
        pname: str,
        shape: tuple[int, ...],
    ) -> ParamPlan:
        """A MultiheadAttention projection weight: packed q/k/v as 3 blocks with their own fans,
        or a separate q/k/v weight (kdim/vdim ≠ embed_dim); the policy's linear rule."""
        e = module.embed_dim
        if pname == "in_proj_weight":
            f = fans(shape, "qkv")
            scheme, g, why = self.scheme(ctx, LINEAR)
            return entry(
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
        f = fans(shape)
        scheme, g, why = self.scheme(ctx, LINEAR)
        return entry(
            pname,
            shape,
            scheme,
            f"MultiheadAttention '{name}' {pname[0]}: {why} → std {{std}}",
            f,
            g,
        )

    # --- whole model
    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        """A last pass over all entries (Fixup zeroes the classifier here)."""
        return entries

    plan_model: Callable[..., Any] | None = None
    """Set by data-driven policies (LSUV): ``plan_model(model, example_input) -> Plan`` replaces
    the per-parameter walk."""

    def notes(self, ctx: Context) -> list[str]:
        """Lines for the plan's notes (what the policy needs beyond the weights)."""
        return []

    def rewrites(self, ctx: Context) -> list[Any]:
        """Activations the plan replaces (:class:`~initwise.plan.ActivationRewrite`; kernel
        shaping policies), installed by ``apply``."""
        return []

    def assumptions(self, ctx: Context) -> list[str]:
        """What the policy had to assume or could not cover (raised by ``strict=True``,
        warned otherwise)."""
        return []

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class Modifier:
    """Changes what a policy decided; every hook gets the policy's entry and returns one."""

    name: str = "modifier"
    handles_residual: bool = False
    """True for modifiers that decide residual branch ends themselves (then ``auto``'s own
    branch scaling is off, so the two do not multiply)."""

    def weight(self, ctx: Context, site: WeightSite, planned: ParamPlan) -> ParamPlan:
        return planned

    def norm(
        self, ctx: Context, name: str, module: nn.Module, layer: LayerInfo, planned: ParamPlan
    ) -> ParamPlan:
        return planned

    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        return entries


RESIDUAL_SET = "residual-set"
"""Key of :attr:`Context.memo`: the weight layers and norms whose weight a modifier that
handles residual branches set (:attr:`Modifier.handles_residual`: zero-init-residual's zeros,
Fixup's scaled branches and zero head). The walk ran before them, with branch ends at unit
output; the planner plans again with them held as they are set
(:func:`~initwise.torch.planner.held_layers`), so the layers after them are solved for what
they give."""


class Chain(Policy):
    """A policy followed by modifiers, applied in order (see :func:`chain`)."""

    def __init__(self, base: Policy, *modifiers: Modifier, name: str | None = None) -> None:
        if not isinstance(base, Policy):
            raise TypeError(f"chain: the first element must be a Policy, got {base!r}")
        for m in modifiers:
            if not isinstance(m, Modifier):
                raise TypeError(f"chain: after the policy come Modifiers, got {m!r}")
        self.base = base
        self.modifiers = modifiers
        self.name = name or "+".join([base.name, *(m.name for m in modifiers)])
        self.describes_tracing = base.describes_tracing
        self.plans_functional = base.plans_functional
        self.propagates = base.propagates
        self.plan_model = base.plan_model

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float | None, str]:
        return self.base.scheme(ctx, act)

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        e = self.base.weight(ctx, site)
        for m in self.modifiers:
            before, e = e, m.weight(ctx, site, e)
            if m.handles_residual and e is not before:
                ctx.memo.setdefault(RESIDUAL_SET, set()).add(site.module_name)
        return e

    def embedding(self, ctx: Context, site: WeightSite) -> ParamPlan:
        return self.base.embedding(ctx, site)

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        return self.base.bias(ctx, site, shape)

    def norm(self, ctx, name, module, layer, pname, shape):  # type: ignore[no-untyped-def]
        e = self.base.norm(ctx, name, module, layer, pname, shape)
        if e is None or pname != "weight":
            return e
        for m in self.modifiers:
            before, e = e, m.norm(ctx, name, module, layer, e)
            if m.handles_residual and e is not before:
                ctx.memo.setdefault(RESIDUAL_SET, set()).add(name)
        return e

    def recurrent(self, ctx, name, module, params):  # type: ignore[no-untyped-def]
        return self.base.recurrent(ctx, name, module, params)

    def recurrent_input_scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float, str]:
        return self.base.recurrent_input_scheme(ctx, act)

    def attention(self, ctx, name, module, layer, params):  # type: ignore[no-untyped-def]
        return self.base.attention(ctx, name, module, layer, params)

    def attention_weight(self, ctx, name, module, pname, shape):  # type: ignore[no-untyped-def]
        return self.base.attention_weight(ctx, name, module, pname, shape)

    def notes(self, ctx: Context) -> list[str]:
        return self.base.notes(ctx)

    def rewrites(self, ctx: Context) -> list[Any]:
        return self.base.rewrites(ctx)

    def assumptions(self, ctx: Context) -> list[str]:
        return self.base.assumptions(ctx)

    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        entries = self.base.finalize(ctx, entries)
        for m in self.modifiers:
            entries = m.finalize(ctx, entries)
        return entries


def chain(base: Policy, *modifiers: Modifier, name: str | None = None) -> Chain:
    """``base`` followed by ``modifiers`` (each sees what the previous decided)."""
    if isinstance(base, Chain):  # flatten: chain(chain(a, m1), m2) == chain(a, m1, m2)
        return Chain(base.base, *base.modifiers, *modifiers, name=name)
    return Chain(base, *modifiers, name=name)


# ----------------------------------------------------------------------------- built-in bases


def auto_scheme(act: Act) -> tuple[S.Scheme, float, str]:
    """(scheme, gain, why) for a weight followed by ``act`` under the auto policy: Xavier before
    a saturating activation, LeCun before SELU, He-family with the activation's numeric forward
    gain otherwise (properties from the activation registry)."""
    spec = act.spec
    if spec is not None and spec.saturating:
        return S.xavier_uniform(), 1.0, f"followed by {act.describe()} (saturating) → Xavier"
    if act.name == "selu" and act.module is None:
        return S.lecun_normal(), 1.0, "followed by SELU → LeCun normal (self-normalizing)"
    g = act.gain("forward")
    if act is LINEAR or (act.name == "linear" and act.module is None):
        return (
            S.VarianceScaling(1.0, "fan_in", "normal", 1.0, "lecun_normal"),
            1.0,
            "no activation after it → gain 1 (LeCun)",
        )
    how = "√2" if act.name == "relu" and act.module is None else f"numeric gain {g:.4g}"
    return (
        S.VarianceScaling(1.0, "fan_in", "normal", g, "kaiming_normal"),
        g,
        f"followed by {act.describe()} → {how}",
    )


class Auto(Policy):
    """Each weight solved from the moments that reach it (:mod:`initwise.torch.moments`): the
    pre-activation second moment is the consuming activation's operating point for the chain's
    depth (:mod:`initwise.math.operating`), branch ends of unnormalized residual blocks add
    ``1/R`` of the stream's variance, tied embeddings give unit logits. Where the graph was not
    traced, He-family with the activation's gain (:func:`auto_scheme`)."""

    name = "auto"
    propagates = True

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float, str]:
        return auto_scheme(act)

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        cond = ctx.moments.conditional.get(site.module_name) if ctx.moments else None
        if cond is not None and site.kind != "embedding":  # a modulation generator
            return modulation_weight(site, *cond)
        solved = solved_layer(ctx, site.module_name)
        if solved is None or site.kind == "embedding":
            e = super().weight(ctx, site)
        else:
            e = _solved_entry("weight", site.shape, site, solved)
        unscaled = None if site.kind == "embedding" else _unscaled_logits(ctx, site.module_name)
        if unscaled is not None:
            e = rescaled(e, *unscaled)
        return e

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        cond = ctx.moments.conditional.get(site.module_name) if ctx.moments else None
        if cond is not None and site.kind != "embedding":  # a modulation generator's affine
            return modulation_bias(site, shape, *cond)
        rows = ctx.moments.thetas.get(site.module_name) if ctx.moments else None
        if rows and len(shape) == 1 and shape[0] % rows == 0:  # a spatial transformer's θ
            return entry(
                "bias",
                shape,
                S.eye(rows=rows),
                f"{site.cls} bias: the identity θ ({rows} × {shape[0] // rows}, flattened), so "
                "the spatial transformer starts as the identity (Jaderberg et al. 2015)",
                None,
            )
        solved = solved_layer(ctx, site.module_name)
        if solved is not None and solved.bias_mean != 0:  # a highway carry gate
            return entry(
                "bias",
                shape,
                S.constant(solved.bias_mean),
                f"{site.cls} bias: constant {solved.bias_mean:.4g} — the carry gate's, so that "
                "the stream passes the highway blocks (moments.carry_bias)",
                None,
            )
        if solved is None or solved.bias_var <= 0:
            return super().bias(ctx, site, shape)
        std = math.sqrt(solved.bias_var)
        return entry(
            "bias",
            shape,
            S.normal(0.0, std),
            f"{site.cls} bias: N(0, σ_b² {solved.bias_var:.4g}), with the weights the edge of "
            f"chaos at q* {solved.q:.3g} (χ = 1; Poole et al. 2016, Schoenholz et al. 2017) "
            "→ std {std}",
            None,
        )

    def embedding(self, ctx: Context, site: WeightSite) -> ParamPlan:
        cond = ctx.moments.conditional.get(site.module_name) if ctx.moments else None
        if cond is not None:
            return conditional_affine(site, *cond)
        rel = _unscaled_logits(ctx, site.module_name)
        if rel is not None:
            return normal_embedding(site, rel[0], rel[1])
        tied = ctx.moments.embedding_std.get(site.module_name) if ctx.moments else None
        if tied is None:
            return super().embedding(ctx, site)
        std, why = tied
        return normal_embedding(site, std, why)

    def attention_weight(self, ctx, name, module, pname, shape):  # type: ignore[no-untyped-def]
        e = super().attention_weight(ctx, name, module, pname, shape)
        solved = solved_layer(ctx, name)
        if solved is None or (pname != "in_proj_weight" and not pname.endswith("_proj_weight")):
            return e
        g = solved.gain
        key = value = g
        if solved.blocks is not None:  # (cross-attention: keys and values of another scale)
            key, value = (math.sqrt(solved.q / max(b, 1e-12)) for b in solved.blocks)
        if pname.startswith("k_"):
            g = key
        elif pname.startswith("v_"):
            g = value
        scheme = S.VarianceScaling(1.0, "fan_in", "normal", g, "kaiming_normal")
        head = e.reason.rsplit("; ", 1)[0]
        out = dataclasses.replace(e, gain=g).with_scheme(scheme, "")
        why = f"gain {g:.4g} → std {out.std:.4g}"
        if pname == "in_proj_weight" and solved.blocks is not None:
            gains = ((1, key), (2, value))
            out = dataclasses.replace(
                out,
                chunk_schemes=tuple(
                    (i, S.VarianceScaling(1.0, "fan_in", "normal", b, "kaiming_normal"))
                    for i, b in gains
                ),
            )
            why = f"gains q {g:.4g}, k {key:.4g}, v {value:.4g} (q's std {out.std:.4g})"
        return dataclasses.replace(out, reason=f"{head}; {solved.describe()} → {why}")


_ROLE_TEXT = {
    "gain": "gain (ones)",
    "gain-1": "gain added to 1 (zeros)",
    "shift": "shift (zeros)",
    "gate": "gate on a residual branch (zeros)",
}
"""How a reason names each role of a conditional affine, with its value at init."""


def conditional_affine(site: WeightSite, role: str, norm: str) -> ParamPlan:
    """A class-conditional norm's gain or shift held in an embedding
    (:func:`~initwise.torch.moments.conditional_affines`): the norm's own affine, one row per
    class — ones for a gain, zeros for a gain added to 1 and for a shift — so every class starts
    as the plain norm."""
    if role.startswith("parts:"):
        return _conditional_parts(site, affine_roles(role), norm)
    what = {
        "gain": "gain: its lookup multiplies the output of",
        "gain-1": "gain, added to 1: its lookup plus 1 multiplies the output of",
        "shift": "shift: its lookup is added to the output of",
    }[role]
    value = "ones" if role == "gain" else "zeros"
    return entry(
        "weight",
        site.shape,
        S.ones() if role == "gain" else S.zeros(),
        f"{site.cls} '{site.module_name}': a class-conditional norm's {what} '{norm}' "
        "(conditional batch norm, de Vries et al. 2017; Miyato & Koyama 2018): the norm's affine "
        f"per class, {value}, so every class starts as the plain norm",
        site.fans,
        **site.kw,
    )


def _conditional_parts(site: WeightSite, roles: list[str], norm: str) -> ParamPlan:
    """A class-conditional norm's gain and shift held in one embedding and read in parts along
    its features (``gamma, beta = embed(y).chunk(2, 1)``): each part as
    :func:`conditional_affine` would plan it alone — ones for a gain, zeros otherwise."""
    base, per_part = _part_schemes(roles)
    kw = {**site.kw, "chunks": len(roles), "chunk_dim": 1}
    return entry(
        "weight",
        site.shape,
        base,
        f"{site.cls} '{site.module_name}': a class-conditional norm's affine for '{norm}' in "
        f"{len(roles)} parts along its features, read by chunk/split: "
        + ", ".join(_ROLE_TEXT[r] for r in roles)
        + " (conditional batch norm, de Vries et al. 2017; Miyato & Koyama 2018): every class "
        "starts as the plain norm",
        site.fans,
        chunk_schemes=per_part,
        **kw,
    )


def _part_schemes(roles: list[str]) -> tuple[S.Scheme, tuple[tuple[int, S.Scheme], ...]]:
    """``(scheme, chunk_schemes)`` for an affine in parts, one role each: ones for a gain, zeros
    for any other role — the scheme most parts take, the others per part."""
    gains = any(r == "gain" for r in roles)
    base, other = (S.ones(), S.zeros()) if gains else (S.zeros(), S.ones())
    return base, tuple((i, other) for i, r in enumerate(roles) if (r == "gain") != gains)


def modulation_weight(site: WeightSite, role: str, norm: str) -> ParamPlan:
    """The weight of a Linear that computes a norm's affine from a condition — FiLM (Perez et al.
    2018), a diffusion U-Net's time-embedding ``scale, shift``, DiT's adaLN (Peebles & Xie 2023)
    — found as :func:`~initwise.torch.moments.conditional_affines` finds a conditional norm's
    tables: zero, so that the affine is its bias for every condition (:func:`modulation_bias`)
    and each block starts as the plain norm — DiT's adaLN-Zero, which trained best of the
    conditionings it compared (§3.2, Fig. 5), gates included."""
    parts = ", ".join(_ROLE_TEXT[r] for r in affine_roles(role))
    return entry(
        "weight",
        site.shape,
        S.zeros(),
        f"{site.cls} '{site.module_name}': computes the affine of '{norm}' from a condition "
        f"({parts}; FiLM, adaLN): zero, so every condition starts as the plain norm "
        "(adaLN-Zero, Peebles & Xie 2023)",
        site.fans,
        **site.kw,
    )


def modulation_bias(site: WeightSite, shape: tuple[int, ...], role: str, norm: str) -> ParamPlan:
    """The bias of a modulation generator (:func:`modulation_weight`): the affine itself — ones
    for a gain, zeros for a gain added to 1, a shift and a gate — per part along its features."""
    roles = affine_roles(role)
    base, per_part = _part_schemes(roles)
    return entry(
        "bias",
        shape,
        base,
        f"{site.cls} bias: the affine of '{norm}' at init — "
        + ", ".join(_ROLE_TEXT[r] for r in roles),
        None,
        chunks=len(roles),
        chunk_dim=0,
        chunk_schemes=per_part,
    )


def solved_layer(ctx: Context, module_name: str) -> Solved | None:
    """What ``auto``'s moment propagation solved for ``module_name`` (None: not reached)."""
    return ctx.moments.layers.get(module_name) if ctx.moments else None


def _unscaled_logits(ctx: Context, module_name: str) -> tuple[float, str] | None:
    """Attention families that do not divide their logits by √d (T5, mT5, UMT5, LongT5: HF
    ``T5Attention``): ``(factor, why)`` for the query projection — its std carries the 1/√d_kv
    — and ``(std, why)`` for the ``relative_attention_bias`` table added to the logits. None
    elsewhere."""
    if ctx.model is None or "." not in module_name:
        return None
    parent_name, leaf = module_name.rsplit(".", 1)
    try:
        parent = ctx.model.get_submodule(parent_name)
    except AttributeError:
        return None
    if not type(parent).__name__.endswith("T5Attention"):
        return None
    d_kv = int(getattr(parent, "key_value_proj_dim", 0) or 0)
    d_model = int(getattr(parent, "d_model", 0) or 0)
    if leaf == "q" and d_kv > 0:
        return (
            1 / math.sqrt(d_kv),
            f"{type(parent).__name__} does not divide its logits by √d_kv: q carries "
            f"1/√{d_kv} so the logits have unit variance (HF T5 _init_weights)",
        )
    if leaf == "relative_attention_bias" and d_model > 0:
        return (
            1 / math.sqrt(d_model),
            f"added to {type(parent).__name__}'s logits: N(0, 1/d_model) as HF T5's "
            "_init_weights, small beside the unit-variance logits",
        )
    return None


def normal_embedding(site: WeightSite, std: float, why: str) -> ParamPlan:
    """An embedding table drawn from ``N(0, std²)`` (its padding row zeroed), with ``why``."""
    pad = ", padding row zero" if site.zero_rows else ""
    return entry(
        "weight",
        site.shape,
        S.normal(0.0, std),
        f"{site.cls} '{site.module_name}': {why}{pad} → std {{std}}",
        site.fans,
        **site.kw,
    )


def _center_dims(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The dims a weight is centered over so that its input's mean does not pass: the input
    features of a matrix; a convolution's input channels **per kernel tap** where it has 2+
    input channels per group and 2+ taps. Centered over its whole fan-in (channels × taps), a
    convolution cancels the mean only where every tap reads the map: at the edges of a
    zero-padded map the missing taps' share of the mean leaks in, and a deep chain amplifies
    it — measured, softplus ×50 of 3×3 convolutions on a 16×16 map at 16–64 channels: output
    rms 10.7–11.9 (median of six draws, none in band ½–2) against 0.86–0.91 (17 of 18 in band)
    centered per tap, which cancels the mean for every subset of taps."""
    if kind == "linear":
        return tuple(range(1, len(shape)))
    if kind == "conv":
        taps = math.prod(shape[2:])
        if len(shape) > 2 and shape[1] >= 2 and taps > 1:
            return (1,)
        return tuple(range(1, len(shape)))
    if kind == "conv1d_hf":
        return (0,)
    return ()


def _solved_entry(
    pname: str, shape: tuple[int, ...], site: WeightSite, solved: Solved
) -> ParamPlan:
    if solved.zero:
        return entry(pname, shape, S.zeros(), f"{site.head}, {solved.describe()}", site.fans)
    g = solved.gain
    center = _center_dims(site.kind, tuple(shape)) if solved.centered else ()
    if center and isinstance(site.module, FunctionalEinsum):  # per unit: its contracted dims
        center = site.module.in_dims
    why = f"{solved.describe()} → gain {g:.4g}"
    if center == (1,) and site.kind == "conv":
        why += (
            "; weights centered per output channel and kernel tap (the input's mean does not "
            "pass, at a zero-padded map's edges either)"
        )
    elif center:
        why += "; weights centered per output unit (the input's mean does not pass)"
    e = entry(
        pname,
        shape,
        S.VarianceScaling(1.0, "fan_in", "normal", g, "kaiming_normal"),
        f"{site.head}, {why} → std {{std}}",
        site.fans,
        g,
        **site.kw,
    )
    return dataclasses.replace(e, center_dims=center)


_PRESETS: dict[str, tuple[Callable[[], S.Scheme], float, str]] = {
    "he": (S.he_normal, math.sqrt(2), "He normal (policy he)"),
    "xavier": (S.xavier_uniform, 1.0, "Xavier uniform (policy xavier)"),
    "lecun": (S.lecun_normal, 1.0, "LeCun normal (policy lecun)"),
}


class Preset(Policy):
    """One fixed scheme for every weight matrix (true fans): ``he``, ``xavier`` or ``lecun``, or
    any scheme given with its gain and reason. RNN input weights use it too."""

    def __init__(
        self,
        name: str,
        scheme: S.Scheme | None = None,
        gain: float | None = None,
        why: str | None = None,
    ) -> None:
        if scheme is None:
            if name not in _PRESETS:
                raise ValueError(
                    f"Preset: no built-in scheme {name!r} ({', '.join(_PRESETS)}); pass scheme="
                )
            make, gain, why = _PRESETS[name]
            scheme = make()
        self.name = name
        self._rule = (scheme, gain, why or f"{scheme.label} (policy {name})")

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float | None, str]:
        return self._rule

    def recurrent_input_scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float, str]:
        return self._rule  # type: ignore[return-value]


class Orthogonal(Policy):
    """Orthogonal × the activation's forward gain (Saxe et al. 2013)."""

    name = "orthogonal"

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float, str]:
        g = 1.0 if act.name in ("linear", "selu") and act.module is None else act.gain("forward")
        return S.orthogonal(g), g, f"orthogonal × gain {g:.4g} for {act.describe()} (Saxe 2013)"


class GPT2(Policy):
    """``N(0, std²)`` for every weight matrix and embedding (GPT-2; ``std`` defaults to the
    planner's ``std=`` argument, 0.02). Combine with :class:`GPT2Residual` for the depth rule."""

    name = "gpt2"

    def __init__(self, std: float | None = None) -> None:
        self.std = std

    def _std(self, ctx: Context) -> float:
        return ctx.std if self.std is None else self.std

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float | None, str]:
        std = self._std(ctx)
        return S.normal(0.0, std), None, f"GPT-2: N(0, {std:g}²)"

    def embedding(self, ctx: Context, site: WeightSite) -> ParamPlan:
        std = self._std(ctx)
        return normal_embedding(site, std, f"GPT-2: N(0, {std:g}²)")


class TorchDefault(Policy):
    """What each module's own ``reset_parameters`` does (torch's fans, ``kaiming_uniform(a=√5)``
    = ``U(±1/√fan_in)`` weights and biases, N(0, 1) embeddings, ``U(±1/√hidden)`` RNNs)."""

    name = "torch-default"
    describes_tracing = False
    plans_functional = False

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        return _torch_default_weight(site)[0]

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        fan_in = _torch_default_weight(site)[1]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return entry(
            "bias",
            shape,
            S.uniform(-bound, bound),
            f"{site.cls} bias: torch default U(±1/√fan_in) = U(±{bound:.4g})",
            None,
        )

    def recurrent(self, ctx, name, module, params):  # type: ignore[no-untyped-def]
        cls = type(module).__name__
        bound = 1 / math.sqrt(module.hidden_size)
        return {
            pname: entry(
                pname,
                tuple(p.shape),
                S.uniform(-bound, bound),
                f"{cls}: torch default U(±1/√hidden) = U(±{bound:.4g})",
                None,
            )
            for pname, p in params.items()
        }

    def attention_weight(self, ctx, name, module, pname, shape):  # type: ignore[no-untyped-def]
        f = fans(shape, "torch")
        return entry(
            pname,
            shape,
            S.xavier_uniform(),
            f"MultiheadAttention: torch default xavier_uniform over the "
            f"packed tensor (fan_out {f.fan_out:g}) → std {{std}}",
            f,
        )


def _torch_default_weight(site: WeightSite) -> tuple[ParamPlan, float]:
    cls, shape, kind = site.cls, site.shape, site.kind
    f = fans(shape, "torch") if kind != "conv1d_hf" else fans((shape[1], shape[0]))
    if kind == "embedding":
        e = entry(
            "weight",
            shape,
            S.normal(0.0, 1.0),
            f"{cls}: torch default N(0, 1)",
            f,
            zero_rows=site.zero_rows,
        )
        return e, f.fan_in
    if kind == "conv1d_hf":
        e = entry("weight", shape, S.normal(0.0, 0.02), f"{cls}: its own default N(0, 0.02²)", f)
        return e, f.fan_in
    if kind == "bilinear":  # nn.Bilinear.reset_parameters: U(±1/√in1), weight and bias
        bound = 1 / math.sqrt(shape[1])
        e = entry(
            "weight",
            shape,
            S.uniform(-bound, bound),
            f"{cls}: torch default U(±1/√in1) = U(±{bound:.4g})",
            None,
        )
        return e, float(shape[1])
    scheme = S.kaiming_uniform(math.sqrt(5))
    return entry(
        "weight",
        shape,
        scheme,
        f"{cls}: torch default kaiming_uniform(a=√5) = U(±1/√fan_in), torch fans "
        f"({f.fan_in:g}, {f.fan_out:g}) → std {{std}}",
        f,
        scheme.gain,
    ), f.fan_in


# ----------------------------------------------------------------------------- modifiers


class ZeroInitResidual(Modifier):
    """The last norm of every residual branch gets scale zero, or, with no norm after it, the
    branch's last weight is zero: each block starts as the identity (Goyal et al. 2017)."""

    handles_residual = True

    name = "zero-init-residual"

    def weight(self, ctx: Context, site: WeightSite, planned: ParamPlan) -> ParamPlan:
        lay = site.layer
        if site.kind == "embedding" or not lay.last_in_branch or lay.norm_after:
            return planned
        return entry(
            "weight",
            site.shape,
            S.zeros(),
            f"{site.head}; last layer of residual branch {lay.branches[-1]} with no norm after "
            "it → zeros, the block starts as identity (Goyal et al. 2017)",
            site.fans,
            **site.kw,
        )

    def norm(self, ctx, name, module, layer, planned):  # type: ignore[no-untyped-def]
        if not layer.last_norm_in_branch:
            return planned
        offset = norm_offset(module)  # (1 + weight)·x̂ (Gemma): a zero scale is weight −1
        return entry(
            "weight",
            planned.shape,
            S.constant(-offset) if offset else S.zeros(),
            f"{type(module).__name__} '{name}' ends residual branch {layer.branches[-1]}: "
            + ("weight −1 (it multiplies by 1 + weight): scale zero" if offset else "scale zeros")
            + ", the block starts as identity (Goyal et al. 2017)",
            None,
        )


class GPT2Residual(Modifier):
    """The last projection of each of the L residual branches: ``N(0, (std/√L)²)`` (GPT-2,
    Radford et al. 2019: L = 2·n_layer)."""

    handles_residual = True

    name = "gpt2-residual"

    def __init__(self, std: float | None = None) -> None:
        self.std = std

    def weight(self, ctx: Context, site: WeightSite, planned: ParamPlan) -> ParamPlan:
        lay = site.layer
        if site.kind == "embedding" or not lay.last_in_branch or not ctx.n_res:
            return planned
        base = ctx.std if self.std is None else self.std
        std = base / math.sqrt(ctx.n_res)
        return entry(
            "weight",
            site.shape,
            S.normal(0.0, std),
            f"{site.cls} '{site.module_name}': last projection of residual branch "
            f"{lay.branches[-1]} of {ctx.n_res} → GPT-2 std {base:g}/√{ctx.n_res} = {{std}}",
            site.fans,
            **site.kw,
        )


class DepthScaledResidual(Modifier):
    """Whatever the policy chose for the last weight of each residual branch, scaled by
    ``1/√L`` (L residual branches), so the sum's variance grows by at most a factor 2 over the
    whole network at initialization (the rule of GPT-2 and of T-Fixup-style depth scaling,
    applied to any base scheme)."""

    handles_residual = True

    name = "depth-scaled-residual"

    def weight(self, ctx: Context, site: WeightSite, planned: ParamPlan) -> ParamPlan:
        lay = site.layer
        if (
            site.kind == "embedding"
            or not lay.last_in_branch
            or not ctx.n_res
            or planned.scheme is None
        ):
            return planned
        f = 1 / math.sqrt(ctx.n_res)
        scaled = planned.with_scheme(
            planned.scheme.scaled(f),
            f"{planned.reason}; last layer of residual branch {lay.branches[-1]} of "
            f"{ctx.n_res}, scaled by 1/√{ctx.n_res} = {f:.4g}",
        )
        return dataclasses.replace(scaled, center_dims=planned.center_dims)


class Fixup(Modifier):
    """Fixup (Zhang et al. 2019): inside residual branches He × ``L^(-1/(2m-2))`` (m weight
    layers per branch), the last layer of each branch and the classifier zero."""

    handles_residual = True

    name = "fixup"

    def weight(self, ctx: Context, site: WeightSite, planned: ParamPlan) -> ParamPlan:
        lay = site.layer
        if site.kind == "embedding" or not lay.branches:
            return planned
        if lay.last_in_branch:
            return entry(
                "weight",
                site.shape,
                S.zeros(),
                f"{site.head}; last layer of residual branch {lay.branches[-1]} → zeros (Fixup)",
                site.fans,
                **site.kw,
            )
        m = max(lay.branch_size, 1)
        scale = ctx.n_res ** (-1.0 / (2 * m - 2)) if m > 1 else 1.0
        act = site.act
        g = act.gain("forward") if not (act.name == "linear" and act.module is None) else 1.0
        scheme = S.VarianceScaling(scale**2, "fan_in", "normal", g, "fixup_he")
        return entry(
            "weight",
            site.shape,
            scheme,
            f"{site.head}; He × L^(-1/(2m-2)) = {ctx.n_res}^(-1/{2 * m - 2}) = {scale:.4g} "
            f"(Fixup, m={m}) → std {{std}}",
            site.fans,
            g,
            **site.kw,
        )

    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        """Zero the classification layer: the last weight layer that is not in a residual
        branch, when it is the model's last weight layer."""
        modules = dict(ctx.model.named_modules()) if ctx.model is not None else {}
        weight_layers = [
            n
            for n in ctx.layers
            if is_weight_layer(ctx.layers[n].module)
            and not isinstance(modules.get(n), (nn.Embedding, nn.EmbeddingBag))
        ]
        if not weight_layers:
            return entries
        last = weight_layers[-1]
        if ctx.layers[last].branches:
            return entries
        out = []
        for e in entries:
            if e.layer == last and e.name.endswith("weight") and e.scheme is not None:
                e = e.with_scheme(S.zeros(), f"classifier '{last}' → zeros (Fixup)")
            out.append(e)
        return out


# ----------------------------------------------------------------------------- shared rules


def _mha(
    policy: Policy,
    ctx: Context,
    name: str,
    module: nn.MultiheadAttention,
    params: Mapping[str, Any],
) -> Planned:
    out: Planned = {}
    e = module.embed_dim
    for pname, p in params.items():
        shape = tuple(p.shape)
        if pname in ("bias_k", "bias_v"):  # torch: xavier_normal_ over (1, 1, E) → std 1/√E
            out[pname] = entry(
                pname,
                shape,
                S.normal(0.0, 1 / math.sqrt(e)),
                "MultiheadAttention extra key/value bias: N(0, 1/E)",
                None,
            )
        elif not pname.endswith("_weight"):
            out[pname] = entry(pname, shape, S.zeros(), "MultiheadAttention bias: zeros", None)
        else:  # in_proj_weight, or q/k/v_proj_weight (kdim/vdim != embed_dim)
            out[pname] = policy.attention_weight(ctx, name, module, pname, shape)
    return out


def _rnn(
    policy: Policy, ctx: Context, name: str, module: nn.Module, params: Mapping[str, Any]
) -> Planned:
    cls = type(module).__name__
    label = f"{cls} '{name}'" if name else cls
    mode = getattr(module, "mode", None) or cls.replace("Cell", "").upper()
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    relu = "RELU" in mode or getattr(module, "nonlinearity", "tanh") == "relu"
    h = module.hidden_size
    gate_names = {4: "i, f, g, o", 3: "r, z, n", 1: "h"}[gates]
    out: Planned = {}
    for pname, p in params.items():
        shape = tuple(p.shape)
        if pname.startswith("weight_ih"):
            f = fans(shape, "packed", chunks=gates)
            act = Act("relu") if relu else Act("tanh")
            scheme, g, why = policy.recurrent_input_scheme(ctx, act)
            out[pname] = entry(
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
            out[pname] = entry(
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
            out[pname] = entry(
                pname,
                shape,
                S.xavier_uniform(),
                f"{label} projection: Xavier → std {{std}}",
                fans(shape),
                1.0,
            )
        elif pname.startswith("bias_ih") and mode == "LSTM" and ctx.forget_bias != 0:
            out[pname] = entry(
                pname,
                shape,
                S.zeros(),
                f"{cls} bias: zeros, forget gate {ctx.forget_bias:g} (Gers 2000, Jozefowicz 2015)",
                None,
                chunks=4,
                chunk_schemes=((1, S.constant(ctx.forget_bias)),),
            )
        else:
            out[pname] = entry(pname, shape, S.zeros(), f"{cls} bias: zeros", None)
    return out


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Policy] = {}


def register_policy(name: str, policy: Policy, *, replace: bool = False) -> Policy:
    """Make ``policy`` available by ``name`` to :func:`initwise.torch.plan`, ``init_model``
    and ``materialize``. Returns the policy (named ``name``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_policy: name must be a non-empty string, got {name!r}")
    if not isinstance(policy, Policy):
        raise TypeError(
            f"register_policy: policy must be an initwise Policy (or chain(...)), got "
            f"{type(policy).__name__}; subclass initwise.torch.Policy"
        )
    if name in _REGISTRY and not replace:
        raise ValueError(f"register_policy: {name!r} is already registered; pass replace=True")
    policy = _renamed(policy, name)
    _REGISTRY[name] = policy
    return policy


def _renamed(policy: Policy, name: str) -> Policy:
    if policy.name == name:
        return policy
    if isinstance(policy, Chain):
        return Chain(policy.base, *policy.modifiers, name=name)
    clone = object.__new__(type(policy))
    clone.__dict__.update(policy.__dict__)
    clone.name = name
    return clone


_LAZY: dict[str, str] = {
    "lsuv": "initwise.torch.lsuv",
    "tat": "initwise.torch.shaping",
    "dks": "initwise.torch.shaping",
}
"""Policies whose module registers them when imported (loaded at first use, so that ``import
initwise.torch`` stays light)."""


def policy_names() -> tuple[str, ...]:
    """Every registered policy name, built-ins first."""
    return tuple(dict.fromkeys([*_REGISTRY, *_LAZY]))


def get_policy(policy: str | Policy | Sequence[Any]) -> Policy:
    """A Policy from a registered name, a Policy, or a sequence ``[policy, *modifiers]``
    (names or values) composed with :func:`chain`."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        if policy not in _REGISTRY and policy in _LAZY:
            import importlib

            importlib.import_module(_LAZY[policy])
        if policy == "mup":
            raise ValueError(
                "policy 'mup' needs its base width (the width the hyperparameters were tuned "
                "at): pass initwise.torch.MuP(base_width=...) — on the command line, "
                "--policy mup --base-width N"
            )
        if policy not in _REGISTRY:
            raise ValueError(
                f"unknown policy {policy!r}; policies: {', '.join(policy_names())} (or pass a "
                "Policy, "
                "or register one with initwise.torch.register_policy)"
            )
        return _REGISTRY[policy]
    if isinstance(policy, (list, tuple)) and policy:
        base = get_policy(policy[0])
        mods = [
            _MODIFIERS[m]() if isinstance(m, str) and m in _MODIFIERS else m for m in policy[1:]
        ]
        for m in mods:
            if not isinstance(m, Modifier):
                raise ValueError(
                    f"policy composition: {m!r} is not a Modifier (known by name: "
                    f"{', '.join(_MODIFIERS)})"
                )
        return chain(base, *mods)
    raise TypeError(
        f"policy must be a name, a Policy, or [policy, *modifiers]; got {type(policy).__name__}"
    )


_MODIFIERS: dict[str, Callable[[], Modifier]] = {
    "zero-init-residual": ZeroInitResidual,
    "depth-scaled-residual": DepthScaledResidual,
    "fixup": Fixup,
    "gpt2-residual": GPT2Residual,
}

for _name, _policy in (
    ("auto", Auto()),
    ("he", Preset("he")),
    ("xavier", Preset("xavier")),
    ("lecun", Preset("lecun")),
    ("orthogonal", Orthogonal()),
    ("torch-default", TorchDefault()),
    ("gpt2", chain(GPT2(), GPT2Residual(), name="gpt2")),
    ("zero-init-residual", chain(Auto(), ZeroInitResidual(), name="zero-init-residual")),
    ("fixup", chain(Auto(), Fixup(), name="fixup")),
):
    register_policy(_name, _policy)


# ----------------------------------------------------------------------------- μP


def weight_roles(info: Any) -> dict[str, str]:
    """``{module name: "input" | "hidden" | "output" | "input+output"}`` for the weight layers of
    a traced graph: *input* layers have no weight layer upstream (they read the data or an
    embedding's lookup is themselves), *output* layers none downstream (the readout)."""
    g = getattr(info, "graph", None)
    if g is None:
        return {}
    weights = [n.idx for n in g.nodes if info.kinds[n.idx] == "weight" and n.op == "module"]
    up = [False] * len(g.nodes)  # a weight layer strictly upstream
    for n in g.nodes:
        up[n.idx] = any(up[i] or info.kinds[i] == "weight" for i in n.inputs)
    users = g.users()
    down = [False] * len(g.nodes)
    for n in reversed(g.nodes):
        down[n.idx] = any(down[u] or info.kinds[u] == "weight" for u in users[n.idx])
    roles: dict[str, str] = {}
    for i in weights:
        name = g.nodes[i].target
        first, last = not up[i], not down[i]
        role = (
            "input+output"
            if first and last
            else "input"
            if first
            else "output"
            if last
            else "hidden"
        )
        if roles.get(name, role) != role:  # a module used in several places: the widest role
            role = "hidden"
        roles[name] = role
    return roles


def plan_roles(ctx: Context) -> dict[str, str]:
    """:func:`weight_roles` of the plan's graph, computed once per plan (``ctx.memo``)."""
    if "weight_roles" not in ctx.memo:
        ctx.memo["weight_roles"] = weight_roles(ctx.info)
    return ctx.memo["weight_roles"]


def lr_tagged(e: ParamPlan, adam: float, sgd: float, why: str, source: str) -> ParamPlan:
    """``e`` with learning-rate multipliers for Adam-family and SGD optimizers and the rule that
    gave them appended to its reason."""
    return dataclasses.replace(
        e,
        lr_mult=(("adam", adam), ("sgd", sgd)),
        reason=f"{e.reason}; {why}: LR × {adam:.4g} (Adam), × {sgd:.4g} (SGD) ({source})",
    )


def rescaled(e: ParamPlan, factor: float, why: str) -> ParamPlan:
    """``e`` drawn ``factor`` times as wide (its centering kept), its reason ending with
    ``why`` and the new std in place of the old ``→ std …``; ``e`` itself where it draws
    nothing or ``factor`` is 1."""
    if e.scheme is None or factor == 1:
        return e
    scaled = e.with_scheme(e.scheme.scaled(factor), "")
    return dataclasses.replace(
        scaled,
        center_dims=e.center_dims,
        reason=e.reason.rsplit(" → std", 1)[0] + f"; {why} → std {scaled.std:.4g}",
    )


def one_width_dimension(site: WeightSite) -> bool:
    """Whether a weight has one dimension that grows with the width, as a bias: a depthwise
    convolution (one channel per group: mup's "vector-like" weight; with the fans as widths
    its Adam LR was ×7.1 at every width). A convolution's kernel taps never grow; groups are
    taken as fixed in number otherwise (a ResNeXt's 32), as mup's base shapes would show."""
    if site.kind not in ("conv", "conv_transpose"):
        return False
    g = int(getattr(site.module, "groups", 1) or 1)
    return g > 1 and int(site.shape[1]) == 1  # ((out, in/g, *k) or (in, out/g, *k))


def _sizes(m: nn.Module) -> tuple[int, int] | None:
    """A weight layer's (input, output) width-like sizes: features, a convolution's channels,
    an attention's embedding width, a recurrent layer's hidden size; None for other modules."""
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return m.embedding_dim, m.embedding_dim
    if isinstance(m, nn.Linear):
        return in_out(m)
    if isinstance(m, nn.modules.conv._ConvNd):
        return m.in_channels, m.out_channels
    if type(m).__name__ == "Conv1D" and getattr(m, "weight", None) is not None:
        return int(m.weight.shape[0]), int(m.weight.shape[1])
    if isinstance(m, nn.MultiheadAttention):
        return m.embed_dim, m.embed_dim
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        return m.hidden_size, m.hidden_size
    return None


def model_width(
    model: nn.Module | None,
    roles: Mapping[str, str],
    layers: Mapping[str, LayerInfo] | None = None,
) -> tuple[int, str | None]:
    """The model's width for μP, and a sentence saying how it was found — the first of:

    * its residual stream's width: the output size most of the layers that end its residual
      branches have (a transformer's ``d_model``, a Mamba's ``d`` — not its inner 2·d, the
      most common size —, a wav2vec2's hidden size — not its feature encoder's channels);
    * the output size of its input layers where they all have one (an MLP's width, a plain
      CNN's stem);
    * the size most of its width dimensions have (input layers' outputs, read-outs' inputs,
      both sizes of hidden layers).

    Ties go to the smaller size. ``(1, None)`` for a model without weight layers."""
    from collections import Counter

    dims: Counter[int] = Counter()
    inputs: Counter[int] = Counter()
    stream: Counter[int] = Counter()
    for name, m in model.named_modules() if model is not None else ():
        sizes = _sizes(m)
        if sizes is None:
            continue
        i, o = sizes
        role = "input" if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) else roles.get(name)
        role = role or "hidden"
        if role == "input":
            dims[o] += 1
            inputs[o] += 1
        elif role == "output":
            dims[i] += 1
        elif role == "hidden":
            dims[i] += 1
            dims[o] += 1
        info = layers.get(name) if layers else None
        if info is not None and info.last_in_branch:
            stream[o] += 1

    def most(c: Counter[int]) -> tuple[int, int]:
        return min(c.items(), key=lambda kv: (-kv[1], kv[0]))

    total = sum(dims.values())
    if stream:
        width, count = most(stream)
        return width, (
            f"width {width} (its residual stream's: the output size of {count} of the "
            f"{sum(stream.values())} layers that end its residual branches)"
        )
    if len(inputs) == 1:
        width, count = next(iter(inputs.items()))
        return width, (
            f"width {width} (the output size of its input layer{'s' if count > 1 else ''}; "
            f"{dims[width]} of its {total} width dimensions have it)"
        )
    if not dims:
        return 1, None
    width, count = most(dims)
    return width, f"width {width} (the size of {count} of the {total} width dimensions){GUESSED}"


GUESSED = (
    " — a guess: no residual stream and no one input width says it; give MuP(base_width, width=...)"
)
""":func:`model_width`'s last rule, the most common size, is a guess; :meth:`MuP.assumptions`
says it as an assumption (a warning; ``strict=True`` raises), the other rules as a note."""


INPUT_LIKE = frozenset(
    {
        "class token",
        "position table",
        "learned queries",
        "learned input",
        "tokenizer weight",
        "tokenizer bias",
    }
)
"""Kinds of raw parameters (:func:`loose_kind`) that enter the signal as data does — added to
or concatenated with the stream, or read as its input — whose last dimension is the width."""


def loose_kind(ctx: Context, name: str) -> str | None:
    """What the raw parameter ``name`` is by its use in forward, as the planner found it
    (:func:`~initwise.torch.functional.structural_parameters`): ``"class token"``, ``"position
    table"``, ``"learned queries"``, ``"learned input"``, ``"tokenizer weight"``/``"bias"``,
    ``"score vector"``, ``"bias"`` (a tied decoder's), ``"norm scale"``/``"norm shift"``/``"norm
    offset scale"``, ``"layer scale"``; None where the graph does not say (untraced models, and
    parameters read in other ways)."""
    found = ctx.memo.get("loose_kinds", {}).get(name)
    return found[0] if found is not None else None


def _contracted(ctx: Context, name: str) -> int | None:
    """How many inputs a score vector contracts (its fan-in), as the planner found it."""
    found = ctx.memo.get("loose_kinds", {}).get(name)
    try:
        return int(found[1]) if found is not None and found[0] == "score vector" else None
    except ValueError:
        return None


def _grows(d: int, width: int) -> bool:
    """Whether a dimension of size ``d`` grows with the model's ``width`` (a multiple of it)."""
    return d >= width and d % width == 0


def _drawn(e: ParamPlan) -> bool:
    """Whether the plan draws ``e`` at random (a weight, in u-μP's terms: the unit-scaling
    library's ``mup_type="weight"``), not as a constant or kept as it is (a bias, a norm's
    gain)."""
    return e.scheme is not None and not isinstance(e.scheme, (S.Constant, S.Eye, S.Dirac))


class MuP(Auto):
    """Maximal Update Parametrization (Yang et al. 2022, Tensor Programs V, Table 3, the form
    without output multipliers) on top of ``auto``'s init, against ``base_width``.

    ``m = width / base_width``, one ratio for every dimension that grows with the width (as mup's
    base shapes give it: ``4·d`` against ``4·d_base`` is ``m`` too). ``width`` is the model's
    width — given, or inferred (:func:`model_width`: its residual stream's width, a
    transformer's ``d_model``; the plan's notes say). Which dimensions grow comes from the
    graph: an input layer's input (the data) and a read-out's output do not; a convolution's
    kernel taps do not; a depthwise convolution has one channel per group (vector-like).

    ============ ==================== ================ =================
    parameter    init std             Adam LR ×        SGD LR ×
    ============ ==================== ================ =================
    input        auto's               1                m
    hidden       auto's (∝ 1/√n)      1/m              1
    output       auto's × 1/√m        1/m              1/m
    bias / norm  auto's               1                m (output: 1)
    ============ ==================== ================ =================

    At ``m = 1`` this is ``auto`` with multipliers 1, so a base model tuned with ``auto`` keeps
    its hyperparameters. (Before 2026-12-05 ``m`` was each layer's own fan over
    ``base_width``: a transformer's 4·d feed-forward layer got ``m = 4`` at the base width, its
    Adam LR ×¼, and a 3×3 convolution ``m = 9``.) The multipliers live in the plan (``lr_mult``;
    JSON) and reach the optimizer through :meth:`~initwise.plan.Plan.param_groups`. Attention
    logits: μP divides them by ``d`` instead of ``√d``; that is a forward change the plan's
    notes state and does not make.
    """

    name = "mup"

    def __init__(self, base_width: int, width: int | None = None) -> None:
        if isinstance(base_width, bool) or not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"MuP: base_width must be a positive integer, got {base_width!r}")
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width < 1
        ):
            raise ValueError(
                f"MuP: width must be a positive integer (the model's width, as base_width is "
                f"the base model's) or None to infer it, got {width!r}"
            )
        self.base_width = base_width
        self.width = width

    def _role(self, ctx: Context, name: str) -> str:
        return plan_roles(ctx).get(name, "hidden")

    def _m(self, ctx: Context) -> float:
        """``width / base_width`` for this model (its width inferred once per plan)."""
        if "mup_width" not in ctx.memo:
            if self.width is not None:
                ctx.memo["mup_width"] = (self.width, f"width {self.width} (given)")
            else:
                width, how = model_width(ctx.model, plan_roles(ctx), ctx.layers)
                ctx.memo["mup_width"] = (
                    (width, how)
                    if how is not None
                    else (self.base_width, "width: no weight layer has one (m = 1)")
                )
        return ctx.memo["mup_width"][0] / self.base_width

    def _why(self, ctx: Context) -> str:
        m = self._m(ctx)
        return f"m = {ctx.memo['mup_width'][0]}/{self.base_width} = {m:.3g}"

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        e = super().weight(ctx, site)
        role = self._role(ctx, site.module_name)
        m, why = self._m(ctx), self._why(ctx)
        if site.kind == "embedding" or role in ("input", "input+output"):
            if role == "input+output":
                return self._tag(e, 1.0, 1.0, "μP input and readout at once (one layer): as SP")
            tied = self._tied_table(ctx, site, e, m)
            return tied if tied is not None else self._matrix(ctx, e, "input")
        if one_width_dimension(site):  # (depthwise: as a bias)
            return self._tag(
                e,
                1.0,
                m,
                "μP vector-like (a depthwise convolution: one channel in per group, so one "
                f"width dimension; {why})",
            )
        if role == "output":
            tied = self._tied_table(ctx, site, e, m)
            if tied is not None:
                return tied
            e = rescaled(e, 1 / math.sqrt(m), "μP readout: × 1/√m")
            return self._tag(e, 1 / m, 1 / m, f"μP output ({why})")
        return self._matrix(ctx, e, "hidden")

    def _matrix(self, ctx: Context, e: ParamPlan, role: str) -> ParamPlan:
        """μP's learning rates for a weight matrix planned by a module's own rule (attention's
        q/k/v, a recurrent layer's gates): input-like where it reads the data, else hidden."""
        m, why = self._m(ctx), self._why(ctx)
        if role in ("input", "input+output"):
            return self._tag(e, 1.0, m, f"μP input-like ({why})")
        return self._tag(e, 1 / m, 1.0, f"μP hidden ({why})")

    def _vector(self, ctx: Context, e: ParamPlan, what: str) -> ParamPlan:
        return self._tag(e, 1.0, self._m(ctx), f"μP {what} ({self._why(ctx)})")

    def _input_std(self, ctx: Context, e: ParamPlan) -> ParamPlan:
        """An input weight drawn by a rule that averages the fans (Xavier, the recurrent
        layers' tanh/sigmoid gates): its std falls with the width through ``fan_out``, where
        μP's input weight keeps it (its pre-activations constant in width) — set to its std at
        the base width, ``× √((fan_in + fan_out)/(fan_in + fan_out/m))``. (A 2-layer LSTM
        reading 16 features: its state's rms fell 0.127 → 0.055 from width 64 to 1024, and the
        read-out's change after 4 Adam steps ×0.10.)"""
        m = self._m(ctx)
        vs = e.scheme
        if (
            m == 1
            or not isinstance(vs, S.VarianceScaling)
            or vs.mode != "fan_avg"
            or not e.fan_in
            or not e.fan_out
        ):
            return e
        r = math.sqrt((e.fan_in + e.fan_out) / (e.fan_in + e.fan_out / m))
        return rescaled(
            e,
            r,
            f"μP input weight: its std at the base width (× {r:.4g}, the fans' average at "
            "fan_out/m)",
        )

    def attention(self, ctx, name, module, layer, params):  # type: ignore[no-untyped-def]
        """``nn.MultiheadAttention``: its q/k/v weights are hidden matrices (input-like where
        the attention reads the data), its biases vector-like; before 2026-12-05 they had no
        multipliers (LR × 1 at every width)."""
        out = super().attention(ctx, name, module, layer, params)
        role = self._role(ctx, name)
        for pname, e in list(out.items()):
            if e is not None:
                weight = pname.endswith("_weight")
                out[pname] = (
                    self._matrix(ctx, e, role) if weight else self._vector(ctx, e, "attention bias")
                )
        return out

    def recurrent(self, ctx, name, module, params):  # type: ignore[no-untyped-def]
        """Recurrent layers and cells: the first layer's input-to-hidden weights are
        input-like where the layer reads the data (their std held at the base width's:
        :meth:`_input_std`), every other gate weight a hidden matrix, biases vector-like.
        Before 2026-12-05 they had no multipliers (LR × 1 at every width)."""
        out = super().recurrent(ctx, name, module, params)
        role = self._role(ctx, name)
        for pname, e in list(out.items()):
            if e is None or e.lr_mult:
                continue
            if len(e.shape) == 2:
                first = pname in ("weight_ih", "weight_ih_l0", "weight_ih_l0_reverse")
                reads = first and role in ("input", "input+output")  # (the data: input-like)
                out[pname] = (
                    self._matrix(ctx, self._input_std(ctx, e), role)
                    if reads
                    else self._matrix(ctx, e, "hidden")
                )
            else:
                out[pname] = self._vector(ctx, e, "recurrent bias")
        return out

    def _tied_table(
        self, ctx: Context, site: WeightSite, e: ParamPlan, m: float
    ) -> ParamPlan | None:
        """μP for an embedding table that is also the read-out (``head.weight = emb.weight``),
        or whose lookup is summed with such a table (GPT-2's ``wpe``): one tensor can not be
        both μP's input weight (init and Adam update constant in width) and its read-out (both
        ∝ 1/m) by its init and learning rate alone. As mup's ``MuSharedReadout``: the table is
        the input weight — ``auto``'s unit-logit std at this width × √m (its std at the base
        width: constant in width), LR × 1 (Adam), × m (SGD) — and the read-out's call gets
        μP's output multiplier ``1/m`` on its input (``forward_mult_at``: a forward change,
        installed by ``apply``), so the read-out's effective weight starts at auto's × 1/√m
        and moves ∝ 1/m. Left as ``auto`` gives it (the std ∝ 1/√width and no multiplier), a
        tied 2-layer LM's read-out change after 4 Adam steps grew ×4.1 from width 64 to 1024
        (×0.78 untied) and GPT-2's ×5.5. ``site`` is the table's module or, where the model
        declares it first, the read-out's (the tensor is planned under its first name). None
        where the table is not tied (or ``m`` is 1)."""
        if m == 1 or ctx.moments is None or not ctx.moments.embedding_std or ctx.model is None:
            return None
        if "mup_heads" not in ctx.memo:
            ctx.memo["mup_heads"] = tied_heads(ctx.model, ctx.info.graph)
        heads: dict[str, str] = ctx.memo["mup_heads"]
        if site.kind == "embedding":
            name, head = site.module_name, heads.get(site.module_name)
        else:  # (the read-out declared before its table)
            name = next((t for t, h in heads.items() if h == site.module_name), None)
            head = site.module_name
        tied = ctx.moments.embedding_std.get(name) if name is not None else None
        if tied is None:
            return None
        std, why0 = tied
        if site.kind == "embedding":
            if e.scheme is None or e.std is None or not math.isclose(e.std, std, rel_tol=1e-9):
                return None  # (another rule gave this table: a family's, a conditional affine)
        else:
            e = entry(
                "weight",
                site.shape,
                S.normal(0.0, std),
                f"{site.cls} '{site.module_name}' (the table of '{name}'): {why0} → std {{std}}",
                site.fans,
                **site.kw,
            )
        r = math.sqrt(m)
        scaled = e.with_scheme(S.normal(0.0, std * r), "")
        base = e.reason.rsplit(" → std", 1)[0]
        ctx.memo.setdefault(RESIDUAL_SET, set()).add(name)  # (the walk: the table as drawn)
        if head is None:  # (summed with a tied table's lookup)
            why = f"μP input-like, beside a tied table (× √m = {r:.4g}: constant in width)"
            out = dataclasses.replace(scaled, reason=f"{base}; {why} → std {scaled.std:.4g}")
            return self._matrix(ctx, out, "input")
        # (a read-out in forward, F.linear(x, emb.weight), is a graph site with no hook kind)
        module = graph_modules(ctx.model, ctx.info.graph).get(head)
        if module is None or hook_kind(module) != "input":
            call = getattr(module, "call", None)
            what = (
                f"{call} in forward, outside any module"
                if call
                else f"'{head}', a {type(module).__name__}, whose input a multiplier can not scale"
            )
            raise ValueError(
                f"MuP: '{name}.weight' is also the model's read-out ({what}), and μP needs a "
                "1/m multiplier on the read-out's call alone, which only a Linear-like module "
                f"can carry: read out with an nn.Linear that shares the table (head.weight = "
                f"{name}.weight), untie them, or plan at the base width ({self.base_width})"
            )
        a = 1.0 / m
        # (both uses of the table are planned, its own module's and the read-out's: once each)
        ctx.memo.setdefault("mup_readouts", {})[head] = None
        solved = ctx.moments.layers.get(head)
        d = float(site.shape[-1])
        if solved is not None and solved.s < 0.1 and 0.5 < solved.s * d < 2:
            ctx.memo.setdefault("mup_scaled_readouts", {})[head] = solved.s
        why = (
            f"μP tied table: input-like (× √m = {r:.4g}: its std at the base width), its "
            f"read-out '{head}' gets μP's output multiplier 1/m = {a:.4g} on its input (a "
            "forward change apply installs, as mup's MuSharedReadout)"
        )
        out = dataclasses.replace(
            scaled,
            reason=f"{base}; {why} → std {scaled.std:.4g}",
            forward_mult=a,
            forward_mult_at=head,
        )
        return self._matrix(ctx, out, "input")

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        e = super().bias(ctx, site, shape)
        if self._role(ctx, site.module_name) in ("output", "input+output"):
            return self._tag(e, 1.0, 1.0, "μP readout bias")
        return self._tag(e, 1.0, self._m(ctx), f"μP bias ({self._why(ctx)})")

    def norm(self, ctx, name, module, layer, pname, shape):  # type: ignore[no-untyped-def]
        e = super().norm(ctx, name, module, layer, pname, shape)
        if e is None:
            return e
        return self._tag(e, 1.0, self._m(ctx), f"μP norm parameter ({self._why(ctx)})")

    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        """Parameters no layer rule planned, by what their use in forward makes them
        (:func:`loose_kind`), else by their shape — a dimension grows with the width where it
        is a multiple of it:

        * a class token, position table, learned query set or input, a feature tokenizer's
          table: input-like, its width its last dimension (the positions, queries and features
          do not grow): Adam × 1, SGD × m;
        * a score vector (``x @ v``: the width contracted to one output, Bahdanau's ``v``,
          GAT's ``a``): a read-out (Table 3's output weight) — std × 1/√m, Adam and SGD × 1/m;
        * a tied decoder's bias: a read-out bias, × 1;
        * anything else (a layer scale, a norm's affine written in code, a state-space layer's
          ``A_log``/``D``, relative-position tables) by its shape: no dimension that grows
          → × 1; one → vector-like (as a bias); two or more → a hidden matrix.

        Before 2026-12-05 they had none at all (LR × 1 at every width); later that day a
        score vector was vector-like by its shape (its updates then move its output by ×m) and
        a 1,024-position table at width 256 a hidden matrix (its Adam LR × 1/m)."""
        return [e if e.lr_mult else self._loose(ctx, e) for e in entries]

    def _loose(self, ctx: Context, e: ParamPlan) -> ParamPlan:
        """:meth:`finalize`'s rule for one parameter no layer rule planned."""
        m, why = self._m(ctx), self._why(ctx)
        width = ctx.memo["mup_width"][0]
        kind = loose_kind(ctx, e.name)
        grow = [d for d in e.shape if _grows(d, width)]
        if kind in INPUT_LIKE:
            if e.shape and _grows(e.shape[-1], width):
                return self._tag(e, 1.0, m, f"μP input-like (a {kind}, its features' width; {why})")
            return self._tag(e, 1.0, 1.0, f"μP: a {kind} whose features do not grow with the width")
        if kind == "score vector" and grow:
            e = rescaled(e, 1 / math.sqrt(m), "μP readout: × 1/√m")
            return self._tag(
                e, 1 / m, 1 / m, f"μP output (a score vector: the width to one output; {why})"
            )
        if kind == "bias":
            return self._tag(e, 1.0, 1.0, "μP readout bias (a tied decoder's)")
        if not grow:
            return self._tag(e, 1.0, 1.0, "μP by its shape: no dimension grows with the width")
        if len(grow) == 1:
            return self._tag(e, 1.0, m, f"μP by its shape: vector-like ({why})")
        return self._tag(e, 1 / m, 1.0, f"μP by its shape: a hidden matrix ({why})")

    def assumptions(self, ctx: Context) -> list[str]:
        """The model's width where it was guessed (:data:`GUESSED`: EfficientNet, VideoMAE,
        TimeSformer and CLAP's audio model traced without an example input fall back to the
        most common size); a tied read-out whose input has ``E[x²] ≈ 1/d``, as a factor
        ``d^-0.5`` before it gives (T5 scales its decoder's output so): μP's ``1/m`` assumes
        the read-out's own scale is the same at every width; with such a factor the read-out's
        updates shrink as ``1/√width`` (as with mup's ``MuSharedReadout``)."""
        self._m(ctx)
        how = ctx.memo["mup_width"][1]
        guessed = [f"μP: this model's {how}"] if how.endswith(GUESSED) else []
        return guessed + [
            f"μP: the tied read-out '{head}' takes an input at E[x²] {s:.3g} ≈ 1/width, as a "
            "factor width^-0.5 before it gives (T5's d_model^-0.5): its 1/m multiplier assumes "
            "the read-out's own scale does not change with the width — with that factor its "
            "updates shrink as 1/√width; untie the read-out, or remove the factor (the plan "
            "puts μP's scale on the read-out)"
            for head, s in ctx.memo.get("mup_scaled_readouts", {}).items()
        ]

    def notes(self, ctx: Context) -> list[str]:
        m = self._m(ctx)
        said = f"this model's {ctx.memo['mup_width'][1]}"
        out = [
            f"μP against base width {self.base_width}: {said}, so m = {m:.4g} for every "
            "dimension that grows with the width (MuP(base_width, width=...) sets it); "
            "learning-rate multipliers are in each entry (lr_mult); build the optimizer with "
            "plan.param_groups(model, lr, optimizer)"
        ]
        heads = ctx.memo.get("mup_readouts")
        if heads:
            out.append(
                f"μP's tied read-out{'s' if len(heads) > 1 else ''} {', '.join(heads)} "
                + (
                    "carry a forward multiplier 1/m on their input (the tables they read out "
                    "with are μP's input weights)"
                    if len(heads) > 1
                    else "carries a forward multiplier 1/m on its input (the table it reads "
                    "out with is μP's input weight)"
                )
                + ": apply installs it; a model rebuilt from saved weights needs "
                "initwise.torch.install_rewrites(plan, model)"
            )
        attn = ctx.model is not None and any(
            isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention")
            for m in ctx.model.modules()
        )
        if attn:
            out.append(
                "μP divides attention logits by d, not √d: a forward change the plan can not "
                "make — call initwise.torch.mup_attention(model) (Hugging Face attention "
                "modules; torch's MultiheadAttention has no switch), else hyperparameters "
                "transfer for the MLP parts only"
            )
        return out

    @staticmethod
    def _tag(e: ParamPlan, adam: float, sgd: float, why: str) -> ParamPlan:
        return lr_tagged(e, adam, sgd, why, "Yang et al. 2022, Table 3")


def mup_attention(model: nn.Module) -> list[str]:
    """Switch attention modules to μP's logit scale ``1/d`` (from ``1/√d``): every module with a
    float ``scaling`` used by its forward and a ``head_dim`` (Hugging Face's attention classes:
    GPT-2, Llama, BERT, …) gets ``scaling / √head_dim`` — any other factor it had (GPT-2's
    ``scale_attn_by_inverse_layer_idx``) is kept. Idempotent (a module already switched is left
    alone). The scale is not part of a ``state_dict``: call it again on a rebuilt model. Returns
    the switched modules' names.

    Raises:
        ValueError: the model has ``nn.MultiheadAttention`` (its scale is fixed at ``1/√d``:
            use ``F.scaled_dot_product_attention(..., scale=1/d)`` in your own module) or no
            attention module with a ``scaling`` at all.
    """
    mha = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if mha:
        raise ValueError(
            f"mup_attention: {', '.join(mha[:3])} are nn.MultiheadAttention, whose logit scale is "
            "fixed at 1/√d; write the attention with F.scaled_dot_product_attention(q, k, v, "
            "scale=1/d) to use μP"
        )
    done = []
    for name, m in model.named_modules():
        scaling, head_dim = getattr(m, "scaling", None), getattr(m, "head_dim", None)
        if not isinstance(scaling, float) or not isinstance(head_dim, int) or head_dim < 1:
            continue
        if getattr(m, "_initwise_mup_attention", False):
            done.append(name)
            continue
        m.scaling = scaling / math.sqrt(head_dim)
        m._initwise_mup_attention = True  # the module, not a tensor: survives wrappers
        done.append(name)
    if not done:
        raise ValueError(
            "mup_attention: no attention module with a `scaling` attribute was found; this "
            "model's attention needs its own 1/d change"
        )
    return done


# ----------------------------------------------------------------------------- u-μP


_METADATA = frozenset({"getattr", "size", "dim", "numel"})
"""Calls that read a tensor's shape or type, not its values."""


class UMuP(Auto):
    """u-μP, the Unit-Scaled Maximal Update Parametrization (Blake et al. 2024, arXiv
    2407.17465, Table 3; the rules of graphcore-research/unit-scaling's ``optim``): every weight
    is drawn at unit scale and a per-weight forward multiplier ``A`` carries the width
    dependence, so no base width is needed.

    With ``n = fan_in`` of the weight (true fans: ``in_channels × kernel`` for convs) and ``d``
    an embedding's width:

    ============== ======== ================== =============== ===========================
    parameter      init     forward ``A``      Adam LR ×       SGD LR × (true gradients)
    ============== ======== ================== =============== ===========================
    embedding      N(0, 1)  1                  1/√d            d
    input / hidden N(0, 1)  g/√n               1/√n            1/A² (input: fan_out/A²)
    readout        N(0, 1)  ``output_mult``/n  1               n
    bias           0        —                  1               fan_out (readout: 1)
    norm scale     1        —                  1               size
    ============== ======== ================== =============== ===========================

    ``g`` is the gain ``auto`` solves for the activation after the layer (so ``A`` is auto's
    std): u-μP multiplies by ``1/√n`` and keeps the signal at unit scale with unit-scaled
    activation functions, which this plan does not install; the gain does that job here. The
    effective weight ``A·W`` starts with std ``A`` and moves by ``A × LR`` per Adam step: μP's
    Table 3 (Yang et al. 2022) in absolute form — hidden std ∝ 1/√n and update ∝ 1/n, readout
    std 1/n and update 1/n — except the embedding's Adam rule 1/√d, u-μP's own choice.
    The SGD column is μP's SGD rule with the multiplier folded in (``LR_w = LR_W / A²``, as
    the gradient of ``w`` is ``A`` times that of ``W``); the unit-scaling library's SGD rules
    differ because its ops scale the backward pass separately.

    ``apply`` installs the multipliers (:mod:`initwise.torch.multipliers`: an input pre-hook on
    each Linear/Conv; the model's state_dict is unchanged). Not done: u-μP's unit-scaled ops
    (scaled GELU/softmax, residual τ-splits) and its depth rule — the plan's notes say so;
    attention logits need 1/d (:func:`mup_attention`). Weights used by two modules (tied
    embedding/readout), attention's packed projections and recurrent cells are refused: their
    forward has no single place for the multiplier.
    """

    name = "u-mup"

    def __init__(self, output_mult: float = 1.0) -> None:
        ok = isinstance(output_mult, (int, float)) and not isinstance(output_mult, bool)
        if not ok or not (math.isfinite(output_mult) and output_mult > 0):
            raise ValueError(f"UMuP: output_mult must be a finite number > 0, got {output_mult!r}")
        self.output_mult = float(output_mult)

    @staticmethod
    def _tied(ctx: Context) -> dict[str, list[str]]:
        """``{module name: the modules sharing its weight}`` for weights used by several
        modules, computed once per plan."""
        if "umup_tied" not in ctx.memo:
            shared: dict[int, list[str]] = {}
            if ctx.model is not None:
                for n, m in ctx.model.named_modules():
                    w = getattr(m, "weight", None)
                    if isinstance(w, nn.Parameter):
                        shared.setdefault(id(w), []).append(n)
            ctx.memo["umup_tied"] = {n: v for v in shared.values() if len(v) > 1 for n in v}
        return ctx.memo["umup_tied"]

    def _untied(self, ctx: Context, site: WeightSite) -> None:
        tied = self._tied(ctx).get(site.module_name)
        if tied:
            raise ValueError(
                f"u-mup: '{site.module_name}.weight' is shared by "
                f"{', '.join(repr(t) for t in tied)} (tied weights); u-μP's forward multiplier "
                "differs per use. Untie them, or use MuP(base_width) (which puts μP's 1/m on the "
                "read-out's call alone, as mup's MuSharedReadout)"
            )

    def _not_read_outside(self, ctx: Context, site: WeightSite) -> None:
        """Refuse a weight that gets a forward multiplier and that ``forward`` also uses as a
        plain tensor, where the multiplier does not reach."""
        read = self._read_outside(ctx).get(f"{site.module_name}.weight")
        if read:
            raise ValueError(
                f"u-mup: '{site.module_name}.weight' is also used in forward outside its module "
                f"({', '.join(f'`{c}`' for c in read)}: a tied decoder's "
                "F.conv_transpose2d(h, enc.weight), x @ layer.weight.T); u-μP's forward "
                "multiplier lives on the module's call and would not reach that use (the weight "
                "is drawn at unit scale). Untie the use, or use MuP(base_width)"
            )

    @staticmethod
    def _read_outside(ctx: Context) -> dict[str, list[str]]:
        """``{module weight name: the calls that read it}`` for module weights the traced graph
        reads as plain tensors, outside their module's call, computed once per plan. (A tied
        autoencoder's decoder, ``F.conv_transpose2d(h, self.enc.weight)``, ran at unit scale
        while the encoder got the multiplier; nothing said.)"""
        if "umup_read" not in ctx.memo:
            found: dict[str, list[str]] = {}
            g = ctx.info.graph if ctx.info is not None else None
            if g is not None:
                users = g.users()
                live = live_nodes(g)  # (a use whose result nothing reads is no use:
                # HF Mamba's mixer computes `conv1d.weight.squeeze(1)` for a cache it does not
                # have)
                for n in g.nodes:
                    if n.op == "param":
                        calls = [
                            str(g.nodes[u].target)
                            for u in users[n.idx]
                            if u in live and str(g.nodes[u].target) not in _METADATA
                        ]
                        if calls:
                            found.setdefault(str(n.target), []).extend(calls)
            ctx.memo["umup_read"] = found
        return ctx.memo["umup_read"]

    def _role(self, ctx: Context, site: WeightSite) -> str:
        self._untied(ctx, site)
        self._not_read_outside(ctx, site)
        roles = plan_roles(ctx)
        role = roles.get(site.module_name)
        if role is None:
            why = (
                "the model could not be traced (give example_input)"
                if not roles
                else "it is not called as a module in the traced forward"
            )
            raise ValueError(
                f"u-mup: no role (input/hidden/readout) for '{site.module_name}': {why}; u-μP "
                "installs its multiplier on the module's call"
            )
        return role

    @staticmethod
    def _tag(e: ParamPlan, adam: float, sgd: float, why: str) -> ParamPlan:
        return lr_tagged(e, adam, sgd, why, "Blake et al. 2024, u-μP Table 3")

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        if site.kind == "embedding":
            return self.embedding(ctx, site)
        role = self._role(ctx, site)
        n, fan_out = float(site.fans.fan_in), float(site.fans.fan_out)
        unit = entry(
            "weight",
            site.shape,
            S.normal(0.0, 1.0),
            f"{site.head}, u-μP unit init N(0, 1)",
            site.fans,
            **site.kw,
        )
        if role in ("output", "input+output"):
            a = self.output_mult / n
            e = dataclasses.replace(
                unit,
                forward_mult=a,
                reason=f"{unit.reason}; readout: forward × {self.output_mult:g}/fan_in = {a:.4g}",
            )
            return self._tag(e, 1.0, n, "u-μP readout")
        # the forward multiplier is auto's std: u-μP's 1/√fan_in times the activation's gain
        # (which u-μP puts into its unit-scaled activation functions instead)
        auto = super().weight(ctx, site)
        a = auto.std if auto.std is not None else 1.0 / math.sqrt(n)
        src = "auto's std"
        solved = solved_layer(ctx, site.module_name)
        if solved is not None and solved.bias_var > 0:  # u-μP's biases start at zero: the
            a = math.sqrt(solved.q / solved.effective / n)  # weights carry auto's whole q
            src = "auto's std with its edge-of-chaos bias variance folded in: biases start at 0"
        gain = a * math.sqrt(n)
        centered = ""
        if auto.center_dims:  # (auto's point centers the weights — an activation with a mean,
            # softplus', sigmoid's — and its std is for Var[x]: the unit draw is centered too;
            # uncentered, the mean passed and a softplus ×20 chain's output came out ×340)
            unit = dataclasses.replace(unit, center_dims=auto.center_dims)
            centered = ", centered as auto's (the input's mean does not pass)"
        e = dataclasses.replace(
            unit,
            forward_mult=a,
            reason=f"{unit.reason}{centered}; forward × gain/√fan_in = {gain:.4g}/√{n:g} = "
            f"{a:.4g} ({src})",
        )
        if role == "input":
            return self._tag(e, 1 / math.sqrt(n), fan_out / a**2, "u-μP input weight")
        if one_width_dimension(site):  # (a depthwise convolution: one width dimension, its
            # channels — μP's SGD rule for it is an input weight's; it was a hidden one's,
            # constant in width where mup's MuSGD scales it with the width)
            c = float(getattr(site.module, "out_channels", site.shape[0]))
            return self._tag(
                e, 1 / math.sqrt(n), c / a**2, "u-μP depthwise weight (one width dimension)"
            )
        return self._tag(e, 1 / math.sqrt(n), 1 / a**2, "u-μP hidden weight")

    def embedding(self, ctx: Context, site: WeightSite) -> ParamPlan:
        self._untied(ctx, site)
        e = super().embedding(ctx, site)
        d = float(site.shape[-1])
        return self._tag(
            dataclasses.replace(e, reason=f"{e.reason}; u-μP: no multiplier"),
            1.0 / math.sqrt(d),
            d,
            "u-μP embedding (LR rule 1/√fan_out)",
        )

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        e = entry("bias", shape, S.zeros(), f"{site.cls} bias: zeros (u-μP)", None)
        if plan_roles(ctx).get(site.module_name) in ("output", "input+output"):
            return self._tag(e, 1.0, 1.0, "u-μP readout bias")
        size = float(shape[0]) if shape else 1.0
        return self._tag(e, 1.0, size, "u-μP bias")

    def norm(self, ctx, name, module, layer, pname, shape):  # type: ignore[no-untyped-def]
        e = Policy.norm(self, ctx, name, module, layer, pname, shape)
        if e is None:
            return e
        size = float(shape[0]) if shape else 1.0
        return self._tag(e, 1.0, size, "u-μP norm parameter")

    def attention(self, ctx, name, module, layer, params):  # type: ignore[no-untyped-def]
        where = f"'{name}'" if name else "the model"
        raise ValueError(
            f"u-mup: {where} is an nn.MultiheadAttention, whose projections run inside its own "
            "forward (no place for u-μP's multipliers); write the attention with nn.Linear "
            "projections and F.scaled_dot_product_attention, or use MuP(base_width)"
        )

    def recurrent(self, ctx, name, module, params):  # type: ignore[no-untyped-def]
        where = f"'{name}'" if name else "the model"
        raise ValueError(
            f"u-mup: {where} is a recurrent layer ({type(module).__name__}); u-μP's multipliers "
            "are defined for Linear/Conv/Embedding weights — use MuP(base_width)"
        )

    def finalize(self, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
        """Parameters no layer rule planned, by what their use in forward makes them
        (:func:`loose_kind`), in u-μP's absolute form (no forward multiplier: the parameter is
        the effective weight):

        * a class token, position table, learned query set or input, a feature tokenizer's
          table — or a parameter drawn at random with one dimension that grows with the
          model's width (:func:`model_width`; CLIP's ``class_embedding``, HuBERT's
          ``masked_spec_embed``: the unit-scaling library's "weight") —: u-μP's embedding
          rule, ``d`` that dimension — Adam × 1/√d, SGD × d (its init stays ``auto``'s: u-μP's
          unit-scaled adds are not installed); a table whose last dimension does not grow
          (LeViT's attention biases, positions × heads) × 1;
        * a score vector (``x @ v``, contracting ``n``): u-μP's read-out, ``A = output_mult/n``
          folded into the parameter — std ``output_mult/n``, Adam × ``A``, SGD × ``A²·n``;
        * a tied decoder's bias: a read-out bias, × 1;
        * a layer scale, a norm's affine written in code: a norm parameter — Adam × 1, SGD ×
          its size;
        * anything else by its shape against the model's width: no dimension that grows → ×
          1; one (constant or kept: a state-space layer's ``A_log``/``D``) → as a bias (Adam ×
          1, SGD × that size); two or more → × 1 and an assumption (u-μP's forward
          multiplier has no module to live on; the unit-scaling library refuses such a
          parameter unless told ``allow_non_unit_scaling_params``).

        Before 2026-12-05 none of them had multipliers (LR × 1: a ViT's class token and
        position table at u-μP's large global rate)."""
        ctx.memo["umup_unruled"] = []
        return [e if e.lr_mult else self._loose(ctx, e) for e in entries]

    def _loose(self, ctx: Context, e: ParamPlan) -> ParamPlan:
        """:meth:`finalize`'s rule for one parameter no layer rule planned."""
        if "umup_width" not in ctx.memo:  # (with how it was found: a guess is said)
            ctx.memo["umup_width"] = model_width(ctx.model, plan_roles(ctx), ctx.layers)
        width = ctx.memo["umup_width"][0]
        kind = loose_kind(ctx, e.name)
        grow = [d for d in e.shape if _grows(d, width)]
        if kind in INPUT_LIKE or (kind is None and len(grow) == 1 and _drawn(e)):
            if e.shape and _grows(e.shape[-1], width):
                d = float(e.shape[-1])
                what = f"a {kind}" if kind else "drawn at random, one width dimension"
                return self._tag(e, 1 / math.sqrt(d), d, f"u-μP embedding rule ({what}, d = {d:g})")
            if kind is not None:
                return self._tag(e, 1.0, 1.0, f"u-μP: a {kind} whose features do not grow")
            d = float(grow[0])
            return self._tag(
                e, 1 / math.sqrt(d), d, f"u-μP embedding rule (drawn at random, d = {d:g})"
            )
        n = _contracted(ctx, e.name) if kind == "score vector" else None
        if n:
            a = self.output_mult / n
            if e.std:
                e = rescaled(
                    e,
                    a / e.std,
                    f"u-μP readout with its multiplier folded in: std {self.output_mult:g}/fan_in",
                )
            return self._tag(e, a, a * a * n, "u-μP readout (a score vector, no multiplier)")
        if kind == "bias":
            return self._tag(e, 1.0, 1.0, "u-μP readout bias (a tied decoder's)")
        if kind is not None and (kind == "layer scale" or kind.startswith("norm ")):
            size = float(math.prod(e.shape)) if e.shape else 1.0
            return self._tag(e, 1.0, size, f"u-μP norm parameter (a {kind})")
        if not grow:
            return self._tag(e, 1.0, 1.0, "u-μP by its shape: no dimension grows with the width")
        if len(grow) == 1:
            return self._tag(
                e, 1.0, float(grow[0]), f"u-μP by its shape: as a bias (width {width})"
            )
        ctx.memo["umup_unruled"].append(f"{e.name} {tuple(e.shape)}")
        return self._tag(e, 1.0, 1.0, f"u-μP: no rule (two dimensions grow with width {width})")

    def assumptions(self, ctx: Context) -> list[str]:
        out = super().assumptions(ctx)
        how = ctx.memo.get("umup_width", (0, None))[1]
        if how is not None and how.endswith(GUESSED):  # (the raw parameters' rules used it)
            out.append(
                f"u-μP: this model's {how.removesuffix(GUESSED)} — a guess (no residual stream "
                "and no one input width says it): the rules of its raw parameters (class "
                "tokens, position tables, vectors by their shape) compare their dimensions with "
                "it; check their lr_mult in the plan"
            )
        unruled = ctx.memo.get("umup_unruled", [])
        if unruled:
            out.append(
                f"u-μP: {few(unruled)} — raw parameter(s) with two dimensions that grow with the "
                "width, used outside any Linear/Conv: u-μP's forward multiplier has no module "
                "to live on, so their learning rate is left × 1 (the unit-scaling library "
                "refuses them unless told allow_non_unit_scaling_params); compute them with an "
                "nn.Linear, or use MuP(base_width) (a hidden matrix there)"
            )
        return out

    def notes(self, ctx: Context) -> list[str]:
        out = [
            "u-μP: weights are drawn at unit scale and apply installs each weight's forward "
            "multiplier (an input pre-hook on its module; not in the state_dict: after loading "
            "saved weights call initwise.torch.install_rewrites(plan, model)); learning-rate "
            "multipliers are in each entry: build the optimizer with plan.param_groups(model, "
            "lr, optimizer)",
            "u-μP's unit-scaled ops (scaled GELU/softmax, residual τ-splits) and depth rule are "
            "not installed: this is its abc-parametrization (init, multipliers, learning rates)",
        ]
        attn = ctx.model is not None and any(
            type(m).__name__.endswith("Attention") for m in ctx.model.modules()
        )
        if attn:
            out.append(
                "u-μP divides attention logits by d, not √d: call "
                "initwise.torch.mup_attention(model) (a forward change the plan does not make)"
            )
        return out


register_policy("u-mup", UMuP())
