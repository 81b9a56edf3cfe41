r"""LSUV — layer-sequential unit-variance initialization (Mishkin & Matas 2015), in one pass.

Algorithm: orthonormal pre-init (Saxe et al. 2013), then for each weight layer in execution order
scale its weight by ``target/std(output)`` until ``|std − target| < tol`` (at most ``max_iter``
times), where the output is computed with all earlier layers already scaled.

The reference implementation (the ``lsuv`` package) runs one full forward pass per layer and per
attempt — O(L²) layer evaluations for L layers. Here an ``torch.fx`` interpreter runs the model
once; at each weight layer it keeps the layer's input, rescales, and recomputes that layer only,
then continues — one forward pass plus a few single-layer recomputations. Models fx cannot trace
fall back to forward hooks (one forward per layer and attempt, as the reference). No global
state: everything lives in the call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import _validate as v
from .. import schemes as S
from ..plan import AssumptionWarning, Plan, SignalWarning
from . import parametrized as PZ
from .apply import apply_plan
from .batch import ProbeError, check_batch, kept_modes, run_model, tensors
from .capture import SiteCalls
from .copying import module_copy
from .graph import dropout_rates, fx_module, trace_sequential
from .init import check_writable
from .modules import (
    FunctionalLayer,
    all_zero,
    check_materialized,
    few,
    frozen,
    is_identity,
    is_weight_layer,
    nested_unwrapped,
    not_a_module,
    standardized_gain,
    unwrap,
)
from .modules import kind as module_kind
from .planner import CALLER_RUNS_EXAMPLE
from .planner import plan as make_plan
from .policies import Policy, register_policy
from .threads import held_to_free


@dataclass(frozen=True)
class LSUVLayer:
    """What LSUV did to one layer: total ``scale`` applied, attempts, std before/after."""

    name: str
    scale: float
    iterations: int
    std_before: float
    std_after: float
    converged: bool


@dataclass(frozen=True)
class LSUVResult:
    """The scales applied, the cost, and (after orthogonal pre-init) a :class:`Plan` that
    reproduces the result with the same seed: ``orthogonal(gain=scale)`` per weight."""

    layers: tuple[LSUVLayer, ...]
    plan: Plan | None
    method: str  # "sequential" or "fx" (one pass), or "hooks" (a pass per layer and attempt)
    forward_passes: int  # full forward passes run
    layer_evals: int  # single-layer recomputations (fx) on top of them

    def __str__(self) -> str:
        ok = sum(x.converged for x in self.layers)
        return (
            f"LSUV ({self.method}): {len(self.layers)} layers, {ok} converged, "
            f"{self.forward_passes} forward pass(es) + {self.layer_evals} layer recomputations"
        )


_NOT_SCALED = (
    " — not rescaled: LSUV measured no output of this weight's own (a layer the batch did not "
    "reach; a raw parameter whose product ran in a form LSUV does not recognize, or that a "
    "tied embedding also uses; a custom layer whose weight is not named `weight` and not used "
    "in a product with the signal)"
)


def _relevant(m: nn.Module) -> bool:
    """A layer LSUV measures and rescales: a weight layer with a ``weight`` of its own (a
    custom layer holding ``self.w`` has nothing :func:`_scaling` could multiply: its weight is
    said to be not rescaled, as a raw parameter's)."""
    if not is_weight_layer(m) or isinstance(
        m, (nn.Embedding, nn.EmbeddingBag, nn.RNNBase, nn.RNNCellBase)
    ):
        return False
    return isinstance(_scalable(m).__dict__.get("_parameters", {}).get("weight"), torch.Tensor) or (
        PZ.site_of(_scalable(m)) is not None
    )


def _scalable(m: nn.Module) -> nn.Module:
    """The module whose ``weight`` LSUV scales (MultiheadAttention: ``out_proj``)."""
    return m.out_proj if isinstance(m, nn.MultiheadAttention) else m


def _scaling(m: nn.Module) -> tuple[str | None, Callable[[float], Any]]:
    """Why ``m``'s weight cannot be scaled (a parametrization normalizes it; else None), and
    the function that multiplies it by ``f`` (a computed weight through its reparametrization:
    weight_norm's ``g``, prune's ``weight_orig``)."""
    site = PZ.site_of(m)
    w = getattr(m, "weight", None)
    if site is None and isinstance(w, torch.Tensor) and frozen(w):
        return "frozen (requires_grad=False): its values are final, left as they are", w.mul_
    if site is None and isinstance(w, torch.Tensor) and (all_zero(w) or is_identity(w, m)):
        # (the plan keeps a deliberate start: LSUV would divide by a zero std, or undo it)
        return "started at zero or the identity on purpose: left as it is", w.mul_
    if site is None:
        if standardized_gain(m) is not None:  # (timm's StdConv2d, a hand-written WSConv2d)
            why = "its forward standardizes its weight (Qiao et al. 2019): left as it is"
            return why, m.weight.mul_
        return None, m.weight.mul_
    fixed = site.fixed_scale
    return (f"{fixed} fixes its weight's scale: left as it is" if fixed else None), site.scale


def _first(obj: Any) -> torch.Tensor:
    ts = tensors(obj)
    if not ts:
        raise ValueError("LSUV: a layer returned no tensor")
    return ts[0]


class _Scaler:
    def __init__(
        self, target: float, tol: float, max_iter: int, model: nn.Module | None = None
    ) -> None:
        self.target, self.tol, self.max_iter = target, tol, max_iter
        self.layers: list[LSUVLayer] = []
        self.evals = 0
        self.uses: dict[str, int] = {}
        self.tables = {  # embedding tables by their weight: a read-out tied to one is not scaled
            id(m.weight): n
            for n, m in (model.named_modules() if model is not None else ())
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
        }
        self.scaled: dict[int, str] = {}  # weights scaled so far, by the layer that scaled them

    def shared(self, name: str, m: nn.Module) -> str | None:
        """Why ``m``'s weight may not be rescaled for ``m``'s output: it is an embedding's
        table (a tied read-out: the lookup already ran, and the table scaled for the logits
        left every layer after the lookup off the scale it was given — a tied LM's hidden
        layer ended at std 0.088, reported as 1.0) or another layer's weight, scaled there."""
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor):
            return None
        table = self.tables.get(id(w))
        if table is not None:
            return (
                f"its weight is the table of embedding '{table}' (tied), whose lookup ran "
                "first: rescaled for this output it would move every layer after the lookup "
                "— left as it is"
            )
        other = self.scaled.get(id(w))
        if other is not None and other != name:
            return f"its weight is also '{other}''s, scaled there — left as it is"
        self.scaled[id(w)] = name
        return None

    def std(self, name: str, out: Any) -> float:
        return self.check(name, _raw_std(out))

    def check(self, name: str, s: float) -> float:
        """``s``, the std of ``name``'s output, or a clear error when LSUV cannot use it."""
        if not math.isfinite(s):
            raise ProbeError(
                f"LSUV: layer {name!r} produced non-finite outputs; check the batch "
                "and the pre-init"
            )
        if s == 0:
            raise ProbeError(
                f"LSUV: layer {name!r} output has std 0 (constant or all units "
                "dead on this batch); LSUV can not rescale it — use a larger batch or "
                "another init for it"
            )
        return s


def lsuv(
    model: nn.Module,
    batch: Any,
    *,
    tol: float = 0.1,
    max_iter: int = 10,
    target: float = 1.0,
    seed: int = 0,
    orthogonal: bool = True,
) -> LSUVResult:
    """Initialize ``model`` in place by LSUV on ``batch`` and return what was done. On any
    error the model is restored bit for bit (a copy of its state is kept meanwhile).

    Args:
        model: the model; eval mode is used during the procedure, its mode is restored.
        batch: a tensor, tuple of positional args or dict of kwargs.
        tol: stop when ``|std(output) − target| < tol``.
        max_iter: attempts per layer.
        target: the output std to reach.
        seed: seed of the orthogonal pre-init.
        orthogonal: orthonormal pre-init first (Mishkin & Matas); ``False`` rescales the current
            weights (then no reproducing plan is returned).
    """
    if not isinstance(model, nn.Module):
        raise not_a_module(model)
    if isinstance(max_iter, bool) or not hasattr(max_iter, "__index__"):
        raise TypeError(f"lsuv: max_iter must be a whole number >= 1, got {max_iter!r}")
    orthogonal = v.boolean("orthogonal", orthogonal, where="lsuv")
    seed = v.seed(seed, where="lsuv")
    tol = v.finite("tol", tol, where="lsuv")  # (NaN compared False: every layer ran max_iter)
    target = v.finite("target", target, where="lsuv")
    if tol <= 0 or max_iter < 1 or target <= 0:
        raise ValueError(
            f"LSUV needs tol > 0, max_iter >= 1, target > 0 (got {tol}, {max_iter}, {target})"
        )
    check_batch(batch)
    check_materialized(model, "lsuv")
    for name, q in model.named_parameters():  # (LSUV rescales in place: each must take it)
        check_writable(q, f"lsuv: parameter {name!r}")
        if q.is_complex():  # (its std was taken of the real part: the scale came out √2 off)
            raise TypeError(
                f"lsuv: parameter {name!r} is complex; LSUV measures and rescales real "
                "outputs — initialize a complex model with init_model (its weights are drawn "
                "with E|w|² = σ²) and leave LSUV out"
            )
    # (compiled models and blocks: LSUV runs the modules they compile, under their names)
    with held_to_free(), nested_unwrapped(unwrap(model)) as inner:  # (busy cores: see cpus)
        return _lsuv(inner, batch, tol, max_iter, target, seed, orthogonal)


def _lsuv(
    model: nn.Module,
    batch: Any,
    tol: float,
    max_iter: int,
    target: float,
    seed: int,
    orthogonal: bool,
) -> LSUVResult:
    """:func:`lsuv` on the unwrapped model, its arguments checked."""
    backup = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    base = None
    if orthogonal:
        token = CALLER_RUNS_EXAMPLE.set(True)  # (the batch runs next: a failure is the batch's)
        try:
            base = make_plan(model, "orthogonal", example_input=batch, overrides=None)
        finally:
            CALLER_RUNS_EXAMPLE.reset(token)
        base = dataclasses.replace(
            base,
            entries=tuple(
                e.with_scheme(  # (a view kept: an einsum weight's own matrices)
                    dataclasses.replace(e.scheme, gain=1.0),
                    "LSUV pre-init: orthonormal (Saxe 2013)",
                )
                if isinstance(e.scheme, S.Orthogonal)
                else e
                for e in base
            ),
            policy="lsuv",
        )
    scaler = _Scaler(target, tol, max_iter, model)
    acting = dropout_rates(model, training=True)
    try:
        sites = _sites(model, batch)
        if base is not None:
            apply_plan(base, model, seed)
        with kept_modes(model, False), torch.no_grad():  # each submodule's own mode given back
            method, passes = _run(model, batch, scaler, sites)
    except BaseException:
        with torch.no_grad():  # a failure leaves the model as it was
            for k, v in model.state_dict(keep_vars=True).items():
                v.copy_(backup[k])
        raise
    result_plan = None
    if base is not None:
        scales: dict[str, float] = {}
        fixed: dict[str, str] = {}  # layers whose forward fixes their weight's scale, and how
        for x in scaler.layers:
            name, _, how = x.name.partition(" (")
            if not how:
                scales[name] = x.scale
            elif not how.startswith("use "):  # (a module met again is reported at its first use)
                scales[name], fixed[name] = 1.0, how[:-1]
        entries = []
        unscaled = []
        for e in base:
            owner = _owner(e.name, scales)
            s = scales.get(owner)
            if owner in fixed and isinstance(e.scheme, S.Orthogonal):
                e = e.with_scheme(e.scheme, f"LSUV: orthonormal, not rescaled — {fixed[owner]}")
            elif s is not None and isinstance(e.scheme, S.Orthogonal):
                e = e.with_scheme(
                    dataclasses.replace(e.scheme, gain=s),
                    f"LSUV: orthonormal × {s:.4g} → output std {target:g} ± {tol:g}",
                )
            elif isinstance(e.scheme, S.Orthogonal):  # no module output of its own was measured
                unscaled.append(e.name)
                e = e.with_scheme(e.scheme, e.reason + _NOT_SCALED)
            entries.append(e)
        result_plan = dataclasses.replace(base, entries=tuple(entries))
        if unscaled:
            warnings.warn(
                AssumptionWarning(f"lsuv: {few(unscaled)}: orthonormal{_NOT_SCALED}"),
                stacklevel=3,
            )
    tied = [x for x in scaler.layers if "(tied), whose lookup ran first" in x.name]
    if tied:  # (not scaled, and its output off the target: said)
        warnings.warn(
            AssumptionWarning(
                "lsuv: "
                + "; ".join(
                    f"'{x.name.partition(' (')[0]}' not rescaled, its output std {x.std_after:.3g}"
                    for x in tied
                )
                + " — a read-out tied to an embedding's table: scaling the table for the "
                "logits moves every layer after the lookup, which LSUV scaled before it "
                "(plan(model, 'auto') solves a tied table for unit logits)"
            ),
            stacklevel=3,
        )
    single = [x.name.partition(" (")[0] for x in scaler.layers if _ONE_VALUE in x.name]
    if single:  # (not scaled: said, not only recorded)
        warnings.warn(
            AssumptionWarning(f"lsuv: {few([repr(n) for n in single])}: {_ONE_VALUE}"),
            stacklevel=3,
        )
    unmoved = [x.name for x in scaler.layers if " (its output std " in x.name]
    if unmoved:  # (not reached: a fallback, said as one)
        warnings.warn(
            AssumptionWarning(f"lsuv: not scaled to std {target:g}: {few(unmoved)}"),
            stacklevel=3,
        )
    if acting:
        said = _DROPOUT.format(n=len(acting), s="s" if len(acting) > 1 else "", p=max(acting))
        warnings.warn(SignalWarning(said), stacklevel=3)
        if result_plan is not None:
            result_plan = dataclasses.replace(result_plan, notes=(*result_plan.notes, said))
    return LSUVResult(tuple(scaler.layers), result_plan, method, passes, scaler.evals)


_DROPOUT = (
    "lsuv: measured in eval mode, dropout off (as the lsuv package does); in training the "
    "model's {n} dropout module{s} (p up to {p:g}) multiply E[x²] by 1/(1 − p) where they act, "
    "so the scales hold for evaluation, not for the network that trains — plan(model, 'auto') "
    "counts them (Pretorius et al. 2018)"
)


def _owner(param: str, scales: dict[str, float]) -> str:
    """The LSUV layer whose scaled weight ``param`` is (MultiheadAttention scales out_proj; a
    raw-parameter layer is named by its weight)."""
    if param in scales:
        return param
    for layer in scales:
        if param in (f"{layer}.weight", f"{layer}.out_proj.weight") or (
            layer == "" and param == "weight"
        ):
            return layer
    return ""


def _sites(model: nn.Module, batch: Any) -> dict[str, FunctionalLayer]:
    """The raw-parameter layers LSUV rescales through :class:`~initwise.torch.capture.SiteCalls`
    (``x @ W + b``, ``F.conv2d(x, W)``, a custom layer's ``x @ self.w``): every site the graph's
    analysis found, but a custom layer's that LSUV rescales as a module (its weight is named
    ``weight``) and a read-out tied to an embedding (scaling the table for the logits would
    change the embedding's output, already used). Traced only where the model holds a matrix
    parameter that no layer of its own owns."""
    loose = False
    for name, p in model.named_parameters():
        owner = name.rpartition(".")[0]
        if p.ndim >= 2 and module_kind(model.get_submodule(owner) if owner else model) == "unknown":
            loose = True
            break
    if not loose:
        return {}
    from .inspection import inspect_model  # (only here: the planner's own import is lazy too)

    g = inspect_model(model, batch).graph
    out: dict[str, FunctionalLayer] = {}
    for n, m in (g.extra if g is not None else {}).items():
        inlined = [k for k in g.inlined if n.startswith(f"{k}.")]  # type: ignore[union-attr]
        owner = n.rpartition(".")[0]
        owned = model.get_submodule(owner) if owner else model
        if not isinstance(m, FunctionalLayer) or isinstance(owned, (nn.Embedding, nn.EmbeddingBag)):
            continue
        if any(_relevant(model.get_submodule(k)) for k in inlined):
            continue
        out[n] = m
    return out


def _run(
    model: nn.Module, batch: Any, scaler: _Scaler, sites: dict[str, FunctionalLayer] | None = None
) -> tuple[str, int]:
    """One pass that scales every layer in execution order: a plain Sequential directly, else
    through an fx interpreter, else by hooks (one forward per layer and attempt). Raw-parameter
    layers (``sites``) are scaled in the same pass, where their product runs
    (:class:`~initwise.torch.capture.SiteCalls`)."""
    sites = sites or {}

    def watch(sites: dict[str, Any]) -> Any:
        return SiteCalls(sites, _site_scaler(scaler)) if sites else contextlib.nullcontext()

    chain = trace_sequential(model)
    if chain is not None and isinstance(batch, torch.Tensor):
        names = [n.target for n in chain.nodes if n.op == "module"]
        with watch(sites):
            run_model(lambda x: _by_chain(model, names, x, scaler), batch)
        return "sequential", 1
    try:
        gm = fx_module(model)
    except Exception:
        gm = None
    if gm is not None and not isinstance(batch, dict):
        with watch({**_weight_calls(model, gm), **sites}):
            run_model(_Interp(gm, scaler).run, batch)
        return "fx", 1

    def calls() -> dict[str, nn.Module]:  # (asked by the pass only where it may find some)
        return _weight_calls(model, gm) if gm is not None else _traced_weight_calls(model, batch)

    return "hooks", _by_hooks(model, batch, scaler, run_model, sites, calls)


def _weight_calls(model: nn.Module, gm: torch.fx.GraphModule) -> dict[str, nn.Module]:
    """Modules whose call is a function of their own weight in ``forward`` (``F.linear(x,
    self.fc.weight, self.fc.bias)``, ``self.dt_proj.weight @ x``), read from the fx graph the
    pass runs (no other trace): the interpreter runs no such module, so LSUV left its weight
    orthonormal and unscaled (said); watched by :class:`~initwise.torch.capture.SiteCalls`,
    it is scaled where its product runs."""
    if not any(n.op == "get_attr" for n in gm.graph.nodes):
        return {}  # (no parameter read in forward: every layer runs as a module)
    from .functional import module_weight_calls  # (the planner's reading of such calls)
    from .graph import from_fx

    try:
        graph = module_weight_calls(model, from_fx(model, gm.graph))
    except Exception:  # (a graph the reading does not take: the pass runs as before)
        return {}
    return dict(graph.weight_calls)


def _traced_weight_calls(model: nn.Module, batch: Any) -> dict[str, nn.Module]:
    """:func:`_weight_calls` where fx cannot trace the model: read from the planner's trace by
    running ``batch`` (its graph's :attr:`~initwise.torch.graph.Graph.weight_calls`), but those
    inside a custom module LSUV scales as a whole. The pass by hooks runs the model twice per
    layer and attempt, so the trace costs it about one more forward; LSUV used to leave such a
    layer orthonormal and unscaled there (said), where the fx pass scaled it."""
    from .inspection import inspect_model  # (only here: the planner's own import is lazy too)

    try:
        g = inspect_model(model, batch).graph
    except Exception:  # (a model the trace does not take: the pass runs as before)
        return {}
    if g is None:
        return {}
    whole = [k for k in g.inlined if _relevant(model.get_submodule(k))]
    return {
        n: m for n, m in g.weight_calls.items() if not any(n.startswith(f"{k}.") for k in whole)
    }


def _site_scaler(sc: _Scaler) -> Any:
    """The :class:`~initwise.torch.capture.SiteCalls` callback of the one-pass methods: a
    raw-parameter layer scaled where its product runs, as a module layer is where it runs. A
    copy of the weight the product took (``W.to(dtype)``) is scaled with it, so that the
    product computed again sees the new scale; a product whose bias addition never came is
    left as it is (said in the plan)."""

    def on_call(name: str, layer: nn.Module, x: Any, out: Any, again: Any, w: Any) -> Any:
        if again is None:
            return out
        weight = layer.weight
        copy = w is not weight and w._base is not weight

        def multiply(f: float) -> None:
            weight.mul_(f)
            if copy:
                w.mul_(f)

        return _scale(sc, name, layer, out, again, multiply)

    return on_call


def _scale(
    sc: _Scaler,
    name: str,
    m: nn.Module,
    out: Any,
    again: Any,
    multiply: Callable[[float], Any] | None = None,
) -> Any:
    """Scale ``m``'s weight until its output std is ``sc.target ± sc.tol`` (``again()``
    recomputes the output; ``multiply``, the scaling, where it is not ``m``'s own); record what
    was done; return the final output. A module met again (applied twice in ``forward``) is
    not rescaled: that use is reported as it is."""
    uses = sc.uses.get(name, 0) + 1
    sc.uses[name] = uses
    if uses > 1:
        s = sc.std(name, out)
        sc.layers.append(
            LSUVLayer(f"{name} (use {uses})", 1.0, 0, s, s, abs(s - sc.target) < sc.tol)
        )
        return out
    fixed, own = _scaling(_scalable(m))
    multiply = multiply or own
    fixed = fixed or sc.shared(name, _scalable(m))
    if fixed is None and _first(out).numel() < 2:  # (a graph-level read-out over one graph:
        # the std of one value is NaN, and LSUV raised "non-finite outputs; check the batch")
        one = float(_first(out).detach().float().abs().sum())
        sc.layers.append(LSUVLayer(f"{name} ({_ONE_VALUE})", 1.0, 0, one, one, False))
        return out
    if fixed is not None:  # it would loop to max_iter changing nothing and report the scale
        s = _raw_std(out)  # (unchecked: a layer started at zero has std 0 on purpose)
        sc.layers.append(LSUVLayer(f"{name} ({fixed})", 1.0, 0, s, s, abs(s - sc.target) < sc.tol))
        return out
    before = s = sc.std(name, out)
    total, it = 1.0, 0
    while abs(s - sc.target) >= sc.tol and it < sc.max_iter:
        f = sc.target / s
        multiply(f)
        total *= f
        out = again()
        sc.evals += 1
        it += 1
        last, s = s, sc.std(name, out)
        if _unmoved(last, s, f, sc):  # (its bias sets its std: put back as it was)
            multiply(1 / total)
            out = again()
            sc.evals += 1
            s = sc.std(name, out)
            why = _UNMOVED.format(s=s)
            sc.layers.append(LSUVLayer(f"{name} ({why})", 1.0, it, before, s, False))
            return out
    sc.layers.append(LSUVLayer(name, total, it, before, s, abs(s - sc.target) < sc.tol))
    return out


_UNMOVED = (
    "its output std {s:.3g} is its bias's, which scaling the weight does not move: left as it is"
)


def _unmoved(last: float, s: float, f: float, sc: _Scaler) -> bool:
    """Whether the output std cannot come down to the target by scaling the weight: with
    ``std² = a·f² + c`` (the weight's part scales with the square of its factor, the bias's
    part ``c`` does not), the two stds before and after scaling by ``f`` give
    ``c = (s² − last²·f²)/(1 − f²)``, and where ``c`` reaches ``(target − tol)²`` no weight
    scale gets the std within the tolerance but one near zero. That is a bias that sets the
    output's spread: HF Mamba's ``dt_proj``, whose bias holds ``softplus⁻¹`` of time steps
    spread over [0.001, 0.1] (std ≈ 1.5 at any weight scale) — LSUV went on scaling for
    ``max_iter`` rounds and left the weight at ×0.03, its input nearly cut off, unconverged."""
    if s <= sc.target or abs(1 - f * f) < 1e-3:
        return False
    c = (s * s - last * last * f * f) / (1 - f * f)
    return c >= (sc.target - sc.tol) ** 2


@contextlib.contextmanager
def _inner_layers(sc: _Scaler, m: nn.Module, prefix: str) -> Iterator[None]:
    """While a module the one-pass methods run whole (a leaf of the trace that is no layer
    itself: ``nn.TransformerEncoderLayer``, a block kept whole) runs, the layers inside it are
    scaled in their turn by forward hooks, each output computed again from the same inputs as
    the pass does for a layer it runs itself. Those layers used to be left orthonormal and
    unscaled (said): the fx pass of a 4-layer ``nn.TransformerEncoder`` ViT measured 2 of its 14
    layers, where the pass by hooks measured all."""
    inner = [(n, c) for n, c in m.named_modules() if n and _relevant(c)]
    if not inner:
        yield
        return
    running: set[nn.Module] = set()

    def scaling(name: str) -> Any:
        def hook(mod: nn.Module, args: Any, kwargs: Any, out: Any) -> Any:
            if mod in running:  # (its output computed again below)
                return None
            running.add(mod)
            try:
                return _scale(sc, name, mod, out, lambda: mod(*args, **kwargs))
            finally:
                running.discard(mod)

        return hook

    hs = [
        c.register_forward_hook(scaling(f"{prefix}.{n}" if prefix else n), with_kwargs=True)
        for n, c in inner
    ]
    try:
        yield
    finally:
        for h in hs:
            h.remove()


def _by_chain(model: nn.Module, names: list[str], x: torch.Tensor, sc: _Scaler) -> torch.Tensor:
    """A plain ``nn.Sequential``: the layers in order, no tracing (fx costs ~10 ms and its
    interpreter a Python call per node)."""
    for name in names:
        m = model.get_submodule(name)
        if _relevant(m):
            x = _scale(sc, name, m, m(x), lambda m=m, x=x: m(x))
        elif m._modules:  # (a block run whole: the layers inside it scaled in their turn)
            with _inner_layers(sc, m, name):
                x = m(x)
        else:  # (an activation, a norm: nothing inside)
            x = m(x)
    return x


class _Interp(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, scaler: _Scaler) -> None:
        super().__init__(gm)
        self.scaler = scaler

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        m = self.fetch_attr(target)
        if not _relevant(m):
            if not m._modules:  # (an activation, a norm: nothing inside)
                return super().call_module(target, args, kwargs)
            with _inner_layers(self.scaler, m, str(target)):  # (a block run whole)
                return super().call_module(target, args, kwargs)
        out = super().call_module(target, args, kwargs)
        return _scale(
            self.scaler,
            str(target),
            m,
            out,
            lambda: super(_Interp, self).call_module(target, args, kwargs),
        )


_ONE_VALUE = (
    "it gives one value on this batch, whose std is not defined — left as it is; a batch "
    "with more outputs (more graphs, more examples) measures it"
)
"""Why LSUV leaves a layer whose output is a single value (a graph-level read-out over one
graph) as it is; the result's entry and the warning say it."""


def _raw_std(out: Any) -> float:
    """The std of a layer's output (its first tensor)."""
    return float(_first(out).detach().float().std())


def _first_std_hook(box: dict[str, float]) -> Any:
    """A forward hook keeping the std of the module's first output of a run in ``box["s"]``
    (it returns None, so the output is left as it is)."""

    def hook(mod: nn.Module, a: Any, o: Any) -> None:
        if "s" not in box:
            box["s"] = _raw_std(o)

    return hook


def _by_hooks(
    model: nn.Module,
    batch: Any,
    sc: _Scaler,
    run: Any,
    sites: dict[str, FunctionalLayer] | None = None,
    weight_calls: Callable[[], dict[str, nn.Module]] | None = None,
) -> int:
    """LSUV through forward hooks (models fx cannot trace). The std is taken inside the hook:
    an in-place activation after the layer (``ReLU(inplace=True)``) overwrites the output once
    the hook returns, and a std read afterwards was the activation's (the layer was then
    scaled for the wrong quantity). Raw-parameter layers (``sites``, named by their weight)
    take their turn in execution order like modules, measured by
    :class:`~initwise.torch.capture.SiteCalls` — and so do modules called through their own
    weight (``F.linear(x, self.fc.weight, self.fc.bias)``): ``weight_calls()`` reads them
    (:func:`_traced_weight_calls`), asked only where a layer with a weight did not run as a
    module in the first pass (such a module never does), and that pass is run again with them
    watched to place them in order."""
    sites = sites or {}
    names = {m: n for n, m in model.named_modules()}
    order: list[nn.Module | str] = []

    def record(m: nn.Module, a: Any, o: Any) -> None:
        if m not in order:
            order.append(m)

    def record_site(name: str, layer: nn.Module, x: Any, out: Any, again: Any, w: Any) -> Any:
        if name not in order:
            order.append(name)
        return out

    def record_order() -> None:
        order.clear()
        hs = [m.register_forward_hook(record) for m in names if _relevant(m)]
        try:
            with SiteCalls(sites, record_site) if sites else contextlib.nullcontext():
                run(model, batch)
        finally:
            for h in hs:
                h.remove()

    record_order()
    passes = 1
    unrun = any(_relevant(m) and m not in order and names[m] not in sites for m in names)
    more = {} if weight_calls is None or not unrun else weight_calls()
    more = {n: m for n, m in more.items() if n not in sites}
    if more:
        sites = {**more, **sites}
        record_order()
        passes += 1
    outs: dict[nn.Module | str, list[float]] = {}
    for m in order:
        box: dict[str, Any] = {}
        if isinstance(m, str):
            label, watch = m, _site_std(sites, m, box)
            fixed, multiply = None, sites[m].weight.mul_  # (each run copies or views it anew)
            h = None
        else:
            label, watch = names[m], contextlib.nullcontext()
            fixed, multiply = _scaling(_scalable(m))
            h = m.register_forward_hook(_first_std_hook(box))
        try:
            with watch:
                run(model, batch)
            passes += 1
            before = s = sc.check(label, box["s"])
            total, it = 1.0, 0
            while fixed is None and abs(s - sc.target) >= sc.tol and it < sc.max_iter:
                f = sc.target / s
                multiply(f)
                total *= f
                box.clear()
                with watch:
                    run(model, batch)
                passes += 1
                it += 1
                last, s = s, sc.check(label, box["s"])
                if _unmoved(last, s, f, sc):  # (its bias sets its std: put back as it was)
                    multiply(1 / total)
                    box.clear()
                    with watch:
                        run(model, batch)
                    passes += 1
                    s, total = sc.check(label, box["s"]), 1.0
                    fixed = _UNMOVED.format(s=s)
        finally:
            if h is not None:
                h.remove()
        shown = label if fixed is None else f"{label} ({fixed})"
        sc.layers.append(LSUVLayer(shown, total, it, before, s, abs(s - sc.target) < sc.tol))
    # layers applied more than once: each further use is reported with the std it ends at
    hs = [
        m.register_forward_hook(lambda mod, a, o: outs.setdefault(mod, []).append(_raw_std(o)))
        for m in order  # (list.append returns None: the hook leaves the output as it is)
        if not isinstance(m, str)
    ]

    def every_use(name: str, layer: nn.Module, x: Any, out: Any, again: Any, w: Any) -> Any:
        outs.setdefault(name, []).append(_raw_std(out))
        return out

    try:
        with SiteCalls(sites, every_use) if sites else contextlib.nullcontext():
            run(model, batch)
        passes += 1
    finally:
        for h in hs:
            h.remove()
    for m in order:
        label = m if isinstance(m, str) else names[m]
        for k, o in enumerate(outs.get(m, [])[1:], start=2):
            s = sc.check(label, o)
            sc.layers.append(
                LSUVLayer(f"{label} (use {k})", 1.0, 0, s, s, abs(s - sc.target) < sc.tol)
            )
    return passes


def _site_std(sites: dict[str, FunctionalLayer], name: str, box: dict[str, Any]) -> SiteCalls:
    """A :class:`~initwise.torch.capture.SiteCalls` keeping the std of the first output of
    raw-parameter layer ``name`` of a run in ``box["s"]`` (outputs left as they are)."""

    def on_call(site: str, layer: nn.Module, x: Any, out: Any, again: Any, w: Any) -> Any:
        if site == name and "s" not in box:
            box["s"] = _raw_std(out)
        return out

    return SiteCalls(sites, on_call)


def lsuv_plan(model: nn.Module, batch: Any, **kwargs: Any) -> Plan:
    """The ``lsuv`` planner policy: LSUV on a copy of ``model`` (seed 0 unless given), returned
    as a plan — apply it with the same seed to reproduce LSUV's weights."""
    clone = module_copy(model)
    res = lsuv(clone, batch, **kwargs)
    assert res.plan is not None
    return res.plan


class LSUVPolicy(Policy):
    """The ``lsuv`` policy: plans by running LSUV on a copy of the model with the example input
    (:func:`lsuv_plan`); registered under the name ``"lsuv"``."""

    name = "lsuv"

    def plan_model(self, model: nn.Module, example_input: Any) -> Plan:  # type: ignore[override]
        if example_input is None:
            raise ValueError("policy 'lsuv' needs a batch of real data: pass example_input=batch")
        return lsuv_plan(model, example_input)


register_policy("lsuv", LSUVPolicy())
