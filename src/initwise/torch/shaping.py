r"""Kernel shaping for torch models: the ``tat`` and ``dks`` policies, the network structure they
need read from the planner's graph, and the activation rewrites ``apply`` installs.

``plan(model, "tat")`` (Zhang, Botev & Martens 2022) or ``plan(model, "dks")`` (Martens et al.
2021) gives every weight matrix a scaled-uniform-orthogonal draw (orthogonal × max(√(fan_out /
fan_in), 1); delta-orthogonal for convolutions), every bias zero, and every activation site a
transformed activation ``γ·(φ(α·x + β) + δ)`` solved by :mod:`initwise.math.shaping` for the
network's *subnetwork maximizing function*, which is derived here from the traced graph
(:func:`topology`): nonlinear layers, orthogonal weight layers (identity on the kernel),
normalized sums and concatenations, and residual branches (maximized over on their own). Layers
the theory does not cover — normalization, attention, max-pooling, products of signals,
activations probed from code — are reported (an :class:`~initwise.plan.AssumptionWarning`, or an
error with ``strict=True``), not guessed.

The rewrites are part of the plan (JSON ``rewrites``); ``apply`` installs them: an activation
module is replaced by a :class:`ShapedActivation` (every use of that module), a functional call
(``torch.tanh(x)`` in ``forward``) through a ``torch.fx`` rewrite of the model's ``forward``.
Inputs must have q = 1 per location (DKS "PLN"): :class:`NormalizeInput` does it, explicitly.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import activations as A
from .. import schemes as S
from ..math import shaping as K
from ..plan import ActivationRewrite, ParamPlan, Plan
from .graph import (
    ADD_FUNCS,
    MUL_FUNCS,
    Act,
    LeafTracer,
    dropout_noise,
    feature_width,
    fn_name,
    module_activation,
    shape_query,
)
from .modules import few
from .multipliers import prepare_multipliers
from .policies import Context, Policy, WeightSite, register_policy

entry = ParamPlan.build

# ----------------------------------------------------------------------------- modules


class ShapedActivation(nn.Module):
    """``γ·(φ(α·x + β) + δ)``: a kernel-shaped activation (DKS/TAT), installed by ``apply``.

    ``original`` is the module it replaced (kept so a plan can be applied again); it has no
    parameters, so the model's ``state_dict`` keys are unchanged."""

    def __init__(self, transform: K.Transform, original: nn.Module | None = None) -> None:
        super().__init__()
        spec = A.lookup(transform.activation)
        if spec.torch_fn is None:
            raise ValueError(f"activation {transform.activation!r} has no torch function")
        self.transform = transform
        # not a child module (no parameters either way): the shaped module stays a leaf that
        # graph analysis probes as an elementwise activation
        object.__setattr__(self, "original", original)
        self._param = spec.default_param if transform.param is None else transform.param

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transform
        phi = A.REGISTRY[t.activation].torch_fn  # looked up per call: the module pickles
        assert phi is not None
        y = phi(
            F,
            x * t.input_scale + t.input_shift if t.input_scale != 1.0 or t.input_shift else x,
            self._param,
        )
        if t.output_shift:
            y = y + t.output_shift
        return y * t.output_scale if t.output_scale != 1.0 else y

    def extra_repr(self) -> str:
        return f"{self.transform.formula()} ({self.transform.method.upper()})"


class NormalizeInput(nn.Module):
    """Per-location normalization of a model's input (DKS §"Uniform q values via Per-Location
    Normalization"): each location's feature vector is scaled so its mean square is 1, which
    kernel shaping assumes (q = 1 at the input). ``dim``: the feature dimension (``-1`` for
    ``(batch, features)`` inputs, ``1`` for ``(batch, channels, …)`` convolution inputs).
    Explicit by design: wrap the model, ``nn.Sequential(NormalizeInput(), model)``."""

    def __init__(self, dim: int = -1, eps: float = 1e-12) -> None:
        super().__init__()
        # (NumPy's integers and floats pass, as int() and float() took them before)
        if isinstance(dim, bool) or not hasattr(dim, "__index__"):
            raise TypeError(f"NormalizeInput: dim must be an int (the feature axis), got {dim!r}")
        if isinstance(eps, bool) or not hasattr(eps, "__float__") or not 0 <= float(eps) < math.inf:
            raise ValueError(f"NormalizeInput: eps must be a finite number >= 0, got {eps!r}")
        self.dim, self.eps = int(dim), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.square().mean(dim=self.dim, keepdim=True)
        return x * torch.rsqrt(q + self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------- structure

_UNCOVERED_FUNCS = {
    "max",
    "amax",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "softmax",
    "log_softmax",
    "matmul",
    "bmm",
    "einsum",
    "scaled_dot_product_attention",
}


def topology(
    info: Any, start: int | None = None, stop: int | None = None
) -> tuple[K.Topology, list[str]]:
    """The network's structure for kernel shaping, read from a traced graph, and what it could
    not cover (one sentence per site). ``start``/``stop``: the subnetwork from graph node
    ``start`` (value 0) to node ``stop`` (a residual branch alone)."""
    g = info.graph
    nodes, kinds = g.nodes, info.kinds
    modules = {n: lay.module for n, lay in info.layers.items()}
    val: dict[int, int] = {}
    q: dict[int, float] = {0: 1.0}
    ops: list[tuple[Any, ...]] = []
    gaps: list[str] = []

    def new(op: tuple[Any, ...], qv: float) -> int:
        ops.append(op)
        q[len(ops)] = qv
        return len(ops)

    out = 0
    for n in nodes:
        if (start is None and n.op == "input") or n.idx == start:
            val[n.idx] = 0
            continue
        if stop is not None and n.idx > stop:
            break
        if shape_query(n):  # (x.shape, x.size(1): sizes, no signal — a channel shuffle's
            continue  # `x.view(b, g, c // g, h, w)` read as a product of two signals)
        sig = [val[i] for i in n.inputs if i in val]
        if not sig:
            continue
        k = kinds[n.idx]
        first = sig[0]
        where = n.target if n.op == "module" else f"{n.target} (call in forward)"
        if n.op == "output":
            out = first
            continue
        scalar = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if n.op == "function" and n.target in MUL_FUNCS and len(sig) == 1:
            if len(scalar) == 1 and scalar[0] != 0:  # a scaling: C unchanged, q × c²
                f = scalar[0] if n.target not in ("div", "truediv") else 1.0 / scalar[0]
                val[n.idx] = new(("id", first), q[first] * f * f)
            else:
                gaps.append(f"{where}: a product with a tensor is not covered by kernel shaping")
                val[n.idx] = first
        elif k == "act":
            act = info.acts[n.idx]
            if abs(q[first] - 1.0) > 1e-3:
                gaps.append(
                    f"{where}: the activation receives q = {q[first]:.3g}, not 1 (an unnormalized "
                    "sum or scaling upstream); kernel shaping assumes q = 1"
                )
            if n.idx in info.composite:
                gaps.append(
                    f"{where}: {act.describe()} is probed from code and can not be rewritten"
                )
            val[n.idx] = new(("act", first), 1.0)
        elif n.op == "module" and k == "weight":
            m = modules.get(n.target)
            if isinstance(m, nn.MultiheadAttention):
                gaps.append(f"{where}: attention is not covered by kernel shaping")
            val[n.idx] = first
        elif dropout_noise(n, modules) is not None:
            gaps.append(
                f"{where}: dropout in training is not covered by kernel shaping (it multiplies "
                "q by 1/(1 − p) and pulls the correlation between inputs towards 0 at every "
                "layer; DKS/TAT networks train without it)"
            )
            val[n.idx] = first
        elif k == "norm":  # graph.analyze marks every norm module (modules.is_norm)
            gaps.append(
                f"{where}: normalization layers are not covered by kernel shaping (DKS/TAT "
                "networks have none)"
            )
            val[n.idx] = first
        elif n.op == "function" and n.target in ADD_FUNCS and len(sig) >= 2:
            total = sum(q[s] for s in sig)
            val[n.idx] = new(("sum", tuple((q[s] / total, s) for s in sig)), total)
        elif n.op == "function" and n.target in ("cat", "concat") and len(sig) >= 2:
            srcs = [i for i in n.inputs if i in val]
            widths = [feature_width(nodes, modules, i) for i in srcs]
            if any(w is None for w in widths):
                gaps.append(
                    f"{where}: concatenation weighted equally (the width of an operand is not "
                    "known from its layer)"
                )
                widths = [1] * len(srcs)
            tot = float(sum(widths))  # type: ignore[arg-type]
            qs = [w * q[val[i]] / tot for w, i in zip(widths, srcs, strict=True)]  # type: ignore[operator]
            qt = sum(qs)
            val[n.idx] = new(
                ("sum", tuple((qi / qt, val[i]) for qi, i in zip(qs, srcs, strict=True))), qt
            )
        elif n.op == "function" and (len(sig) >= 2 or n.target in _UNCOVERED_FUNCS):
            gaps.append(f"{where}: {n.target} is not covered by kernel shaping")
            val[n.idx] = first
        elif n.op == "module" and type(modules.get(n.target)).__name__.startswith(
            ("MaxPool", "AdaptiveMaxPool")
        ):
            gaps.append(f"{where}: max-pooling is not covered by kernel shaping")
            val[n.idx] = first
        else:
            val[n.idx] = first
    if stop is not None:
        out = val.get(stop, 0)
    return K.Topology(tuple(ops), out), gaps


def network(info: Any) -> tuple[K.Topology, list[str]]:
    """:func:`topology` of the whole model with its residual branches, each also maximized
    over alone (TAT App. B)."""
    whole, gaps = topology(info)
    nodes = info.graph.nodes
    anc: list[set[int]] = []
    for n in nodes:
        s: set[int] = set()
        for i in n.inputs:
            s |= anc[i] | {i}
        anc.append(s)
    branches = []
    for r in info.adds:
        entry_node = (
            r.skip if r.skip in anc[r.branch] else max(anc[r.branch] & anc[r.skip], default=None)
        )
        if entry_node is None:
            continue
        sub, _ = topology(info, start=entry_node, stop=r.branch)
        if sub.nonlinear:
            branches.append(sub)
    return dataclasses.replace(whole, branches=tuple(branches)), gaps


def sites(info: Any) -> list[tuple[str, Act]]:
    """Every activation site of the traced model: ``(site, activation)`` with a module path or
    ``forward:<fn>#<k>`` (the k-th call of ``fn``, counted over the graph's calls of ``fn``)."""
    out: list[tuple[str, Act]] = []
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for n in info.graph.nodes:
        if n.op == "function":
            k = counts.get(n.target, 0)
            counts[n.target] = k + 1
        if info.kinds[n.idx] != "act" or n.idx in info.composite:
            continue
        site = n.target if n.op == "module" else f"forward:{n.target}#{k}"
        act = info.acts[n.idx]
        if isinstance(act.module, ShapedActivation):  # shaped before: shape what it replaced
            orig = act.module.original
            found = module_activation(orig) if orig is not None else None
            t = act.module.transform
            act = found or Act(t.activation, t.param if t.activation != "leaky_relu" else None)
        if site not in seen:
            seen.add(site)
            out.append((site, act))
    return out


# ----------------------------------------------------------------------------- the policy


class KernelShaping(Policy):
    """Deep Kernel Shaping (``method="dks"``, Martens et al. 2021) or Tailored Activation
    Transformation (``method="tat"``, Zhang et al. 2022).

    Weights: scaled-uniform orthogonal (``orthogonal × max(√(fan_out/fan_in), 1)``; convolutions
    with odd kernels: delta-orthogonal, so each location is an orthogonal map); biases zero;
    embeddings as ``auto``. Activations: rewritten (see the module docstring). ``zeta`` (DKS,
    max C'_f(1), default 1.5), ``tau`` (TAT smooth, max C''_f(1), default 0.3), ``eta`` (TAT
    Leaky ReLU, max C_f(0), default 0.9) are the papers' targets. Under TAT, ReLU and Leaky ReLU
    become a Leaky ReLU with the solved slope; a network too shallow to reach η gets slope 0
    (a ReLU, the most nonlinear it can be), said in the reason."""

    def __init__(
        self,
        method: str = "tat",
        *,
        zeta: float = K.DEFAULTS["zeta"],
        tau: float = K.DEFAULTS["tau"],
        eta: float = K.DEFAULTS["eta"],
    ) -> None:
        if method not in K.METHODS:
            raise ValueError(f"KernelShaping: method must be one of {K.METHODS}, got {method!r}")
        if not zeta > 1:
            raise ValueError(
                f"KernelShaping: zeta must be > 1 (DKS's C'_f(1) target), got {zeta!r}"
            )
        if not tau > 0:
            raise ValueError(f"KernelShaping: tau must be > 0 (TAT's C''_f(1) target), got {tau!r}")
        if not 0 <= eta <= 1:
            raise ValueError(f"KernelShaping: eta must be in [0, 1] (TAT's C_f(0)), got {eta!r}")
        self.method, self.zeta, self.tau, self.eta = method, float(zeta), float(tau), float(eta)
        self.name = method

    def scheme(self, ctx: Context, act: Act) -> tuple[S.Scheme, float | None, str]:
        return S.orthogonal(1.0), 1.0, "orthogonal (kernel shaping)"

    def weight(self, ctx: Context, site: WeightSite) -> ParamPlan:
        if site.kind == "embedding":
            return self.embedding(ctx, site)
        shape = site.shape
        block = list(shape)
        block[site.chunk_dim] //= max(site.chunks, 1)
        out_f, in_f = block[0], math.prod(block[1:])
        paper = "DKS" if self.method == "dks" else "TAT"
        if (
            len(shape) >= 3
            and site.kind == "conv"
            and site.chunks == 1
            and all(k % 2 for k in shape[2:])
        ):
            cin = shape[1]
            g = max(math.sqrt(out_f / cin), 1.0)
            if out_f >= cin:
                return entry(
                    "weight",
                    shape,
                    S.delta_orthogonal(g),
                    f"{site.head}; {paper}: delta-orthogonal × max(√(out/in), 1) = {g:.4g}, so "
                    "each location is a q-preserving orthogonal map → std {std}",
                    site.fans,
                    g,
                    **site.kw,
                )
        g = max(math.sqrt(out_f / in_f), 1.0)
        return entry(
            "weight",
            shape,
            S.orthogonal(g),
            f"{site.head}; {paper}: scaled-uniform orthogonal, orthogonal × max(√(fan_out/fan_in), "
            f"1) = {g:.4g} (q-preserving, Martens et al. 2021) → std {{std}}",
            site.fans,
            g,
            **site.kw,
        )

    def bias(self, ctx: Context, site: WeightSite, shape: tuple[int, ...]) -> ParamPlan:
        return entry("bias", shape, S.zeros(), f"{site.cls} bias: zeros (kernel shaping)", None)

    def _solved(self, ctx: Context) -> tuple[list[ActivationRewrite], list[str], list[str]]:
        """(rewrites, notes, gaps), solved once per plan (kept in ``ctx.memo``)."""
        key = f"kernel-shaping:{self.method}:{self.zeta}:{self.tau}:{self.eta}"
        if key not in ctx.memo:
            ctx.memo[key] = self._solve(ctx)
        return ctx.memo[key]

    def _solve(self, ctx: Context) -> tuple[list[ActivationRewrite], list[str], list[str]]:
        info = ctx.info
        if info is None or info.graph is None:
            return [], [], ["the model could not be traced, so no activation was shaped"]
        topo, gaps = network(info)
        found = sites(info)
        rewrites: list[ActivationRewrite] = []
        notes: list[str] = []
        groups: dict[tuple[str, float | None], list[str]] = {}
        labels: dict[tuple[str, float | None], Act] = {}
        for site, act in found:
            if act.module is not None or act.spec is None:
                gaps.append(f"{site}: {act.describe()} is not a registered activation; not shaped")
                continue
            if act.name == "linear":
                continue
            k = (act.name, act.param)
            groups.setdefault(k, []).append(site)
            labels[k] = act
        rectifiers = {k for k in groups if k[0] in ("relu", "leaky_relu")}
        if self.method == "tat" and rectifiers and len(rectifiers) != len(groups):
            raise ValueError(
                "TAT: this network mixes ReLU-family activations with smooth ones ("
                + ", ".join(sorted(labels[k].describe() for k in groups))
                + "); TAT shapes Leaky ReLU networks and smooth ones by different conditions. "
                "Use one kind, or the 'dks' policy"
            )
        L = topo.nonlinear
        for k, where in groups.items():
            act = labels[k]
            try:
                t = K.solve(
                    k[0], self.method, topo, zeta=self.zeta, tau=self.tau, eta=self.eta, param=k[1]
                )
                why = f"{self.method.upper()}: {t.target}"
            except ValueError as exc:
                if (
                    self.method == "tat"
                    and k[0] in ("relu", "leaky_relu")
                    and "can not reach" in str(exc)
                ):
                    t = K.Transform(
                        "leaky_relu",
                        0.0,
                        output_scale=math.sqrt(2.0),
                        method="tat",
                        target=f"η = {self.eta:g} out of reach at {L} nonlinear layers",
                    )
                    why = (
                        f"TAT: {L} nonlinear layers can not reach C_f(0) = η = {self.eta:g}; "
                        "slope 0 (√2·ReLU, the most nonlinear Leaky ReLU) is the closest"
                    )
                    notes.append(why)
                    gaps += [f"{site}: {why}" for site in where]  # a fallback: warned
                else:
                    raise
            for site in where:
                rewrites.append(ActivationRewrite(site, act.describe(), t, why))
        if groups:
            notes.append(
                f"{self.method.upper()} shaped {sum(len(v) for v in groups.values())} activation "
                f"sites over {L} nonlinear layers on the longest path"
                + (f" and {len(topo.branches)} residual branches" if topo.branches else "")
                + "; inputs must have q = 1 per location (wrap the model: "
                "nn.Sequential(initwise.torch.NormalizeInput(), model))"
            )
        else:
            gaps.append("no activation found to shape")
        return rewrites, notes, gaps

    def rewrites(self, ctx: Context) -> list[Any]:
        return self._solved(ctx)[0]

    def notes(self, ctx: Context) -> list[str]:
        return self._solved(ctx)[1]

    def assumptions(self, ctx: Context) -> list[str]:
        return grouped(self._solved(ctx)[2])


def grouped(gaps: list[str]) -> list[str]:
    """``"site: what"`` lines grouped by what: ``"what (site1, site2, site3 and 4 more)"``."""
    by: dict[str, list[str]] = {}
    for g in gaps:
        where, sep, what = g.partition(": ")
        if sep:
            by.setdefault(what, []).append(where)
        else:
            by.setdefault(g, [])
    out = []
    for what, wheres in by.items():
        wheres = list(dict.fromkeys(wheres))
        if not wheres:
            out.append(what)
            continue
        out.append(f"{what} ({few(wheres, 3)})")
    return out


# ----------------------------------------------------------------------------- install


def prepare(plan: Plan, model: nn.Module) -> Any:
    """Check that every rewrite of ``plan`` has its site in ``model`` (raising ``ValueError``
    naming the site otherwise, before anything is written) and return a function that installs
    them all; None when the plan rewrites nothing."""
    if not plan.rewrites:
        return None
    modules = dict(model.named_modules())
    mod_sites: list[tuple[str, ActivationRewrite]] = []
    fn_sites: dict[tuple[str, int], ActivationRewrite] = {}
    for r in plan.rewrites:
        if r.site.startswith("forward:"):
            fn, _, k = r.site[len("forward:") :].rpartition("#")
            fn_sites[(fn, int(k))] = r
            continue
        m = modules.get(r.site)
        if m is None or not r.site:
            raise ValueError(
                f"plan rewrites the activation at {r.site!r}, but the model has no such module; "
                "make the plan for this model"
            )
        if next(m.parameters(), None) is not None and not isinstance(m, ShapedActivation):
            raise ValueError(
                f"plan rewrites the activation at {r.site!r}, but that module "
                f"({type(m).__name__}) has parameters; make the plan for this model"
            )
        mod_sites.append((r.site, r))
    # everything that can fail happens here, before anything is written: the new modules, the
    # rewritten graph and the forward generated from it
    shaped = []
    for site, r in mod_sites:
        old = modules[site]
        original = old.original if isinstance(old, ShapedActivation) else old
        shaped.append((site, ShapedActivation(r.transform, original)))
    forward_fn = None
    added: dict[str, ShapedActivation] = {}
    constants: dict[str, Any] = {}
    if fn_sites:
        tracer = LeafTracer()
        try:
            graph = tracer.trace(model)
        except Exception as exc:
            first = next(iter(fn_sites.values())).site
            raise ValueError(
                f"the plan rewrites a function call in forward ({first}), but torch.fx can not "
                f"trace {type(model).__name__}.forward to rewrite it ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]}); use activation modules (nn.Tanh()) there"
            ) from None
        replace: dict[Any, ActivationRewrite] = {}
        counts: dict[str, int] = {}
        for node in graph.nodes:
            if node.op not in ("call_function", "call_method"):
                continue
            name = fn_name(node.target) if node.op == "call_function" else str(node.target)
            k = counts.get(name, 0)
            counts[name] = k + 1
            if (name, k) in fn_sites:
                replace[node] = fn_sites.pop((name, k))
        if fn_sites:
            missing = ", ".join(r.site for r in fn_sites.values())
            raise ValueError(
                f"plan rewrites {missing}, but {type(model).__name__}.forward has no such call; "
                "make the plan for this model"
            )
        for i, (node, r) in enumerate(replace.items()):
            attr = f"initwise_shaped_{i}"
            added[attr] = ShapedActivation(r.transform)
            with graph.inserting_after(node):
                new = graph.call_module(attr, (node.args[0],))
            node.replace_all_uses_with(new)
            graph.erase_node(node)
        graph.lint()
        # the rewritten forward as code on ``self`` (torch.fx's code generation): attributes
        # are looked up on the model at each call, so .to(), deepcopy and buffer updates behave
        code = graph.python_code(root_module="self")
        namespace: dict[str, Any] = dict(code.globals)
        exec(
            compile(code.src, f"<initwise: shaped {type(model).__name__}.forward>", "exec"),
            namespace,
        )
        forward_fn = namespace["forward"]
        constants = tracer.constants  # (the rewritten forward reads them on self)

    def install() -> None:  # assignments only
        for site, new_module in shaped:
            parent, _, child = site.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, new_module)
        for attr, m in added.items():
            model.add_module(attr, m)
        if forward_fn is not None:
            for attr, value in constants.items():
                setattr(model, attr, value)
            model.forward = types.MethodType(forward_fn, model)

    return install


def prepare_forward(plan: Plan, model: nn.Module) -> Callable[[], None]:
    """Check what ``plan`` changes in ``model``'s forward pass — activation rewrites (kernel
    shaping) and forward multipliers (u-μP; an earlier plan's are removed) — raising
    ``ValueError`` on a mismatch before anything is changed, and return the function that
    installs them (assignments only)."""
    changes = bool(plan.rewrites) or any(e.forward_mult is not None for e in plan)
    if changes and getattr(model, "exported_view", False):
        raise ValueError(
            "the plan changes the forward pass (activation rewrites of kernel shaping, or "
            "u-μP's forward multipliers), and a torch.export'ed module's forward is fixed: "
            "apply the plan to the eager model, then export it"
        )
    rewrites = prepare(plan, model)
    multipliers = prepare_multipliers(plan, model)

    def install() -> None:
        if rewrites is not None:
            rewrites()
        multipliers()

    return install


def install_rewrites(plan: Plan, model: nn.Module) -> nn.Module:
    """Install what ``plan`` changes in the forward pass — its activation rewrites (kernel
    shaping) and its forward multipliers (u-μP) — on ``model`` without touching its weights
    (for weights loaded from a file written by ``initwise apply``, or a model rebuilt from a
    ``state_dict``); every site is checked first, so a mismatch changes nothing."""
    from .modules import unwrap

    prepare_forward(plan, unwrap(model))()
    return model


# ----------------------------------------------------------------------------- registry

register_policy("tat", KernelShaping("tat"), replace=True)
register_policy("dks", KernelShaping("dks"), replace=True)
