r"""The planner: a whole model → a :class:`~initwise.plan.Plan`, one entry per parameter.

``plan(model, policy)`` inspects the model (:mod:`initwise.torch.graph`) to learn each layer's
true fans (:mod:`initwise.torch.modules`), the activation after it and its place in residual
branches, then asks the policy (:mod:`initwise.torch.policies`, a value) for each decision.
This module only walks the model, builds what each decision needs, and records ties.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import re
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .. import _validate as v
from .. import schemes as S
from ..math.fans import Fans
from ..plan import AssumptionError, AssumptionWarning, ParamPlan, Plan, SignalWarning
from ..policy_names import BUILTIN
from . import parametrized as PZ
from .batch import EXAMPLE_RUNS, meta_tensors
from .copying import module_copy
from .edges import unmeasured_chain
from .family import family_owner, family_rules
from .graph import (
    LINEAR,
    LayerInfo,
    dropout_rates,
    expert_activation,
    graph_modules,
    unrun_hooks,
)
from .modules import (
    AFFINES,
    NORMS,
    FunctionalEinsum,
    check_materialized,
    expert_fans,
    expert_layer,
    expert_stack,
    few,
    frozen,
    is_affine,
    is_layer_scale,
    is_norm,
    is_ssm_mixer,
    is_weight_layer,
    kept_fractions,
    layer_scale_module,
    layer_scale_value,
    nested_unwrapped,
    norm_offset,
    norm_roles,
    not_a_module,
    num_experts,
    probed_activation,
    probed_norm,
    row_fans,
    standardized_gain,
    structured_starts,
    unwrap,
    weight_fans,
    weight_mask,
    zero_starts,
)
from .modules import kind as module_kind
from .moments import HELD_KINDS, Held, input_moments, propagate, unknown_inputs
from .policies import RESIDUAL_SET, Context, Policy, WeightSite, get_policy
from .pooling import has_attention, has_pools, measure_inputs, measure_pools
from .threads import held_to_free

POLICIES = BUILTIN
"""The built-in policy names (:func:`initwise.torch.policies.policy_names` lists registered
ones too)."""


def plan(
    model: nn.Module,
    policy: str | Policy | Any = "auto",
    example_input: Any = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    forget_bias: float = 1.0,
    std: float = 0.02,
    strict: bool = False,
) -> Plan:
    """Plan the initialization of every parameter of ``model``.

    Args:
        model: any ``nn.Module`` (also on the meta device).
        policy: a registered name (:data:`POLICIES` and those added with
            :func:`~initwise.torch.policies.register_policy`), a
            :class:`~initwise.torch.policies.Policy` value, or ``[policy, *modifiers]``
            (e.g. ``["he", "zero-init-residual"]``) composed with ``chain``.
        example_input: used to trace by running when ``torch.fx`` cannot trace the model
            (a tensor, a tuple of positional args, or a mapping of keyword arguments: a dict,
            a tokenizer's ``BatchEncoding``), and by ``auto`` to
            measure what the walk cannot tell (pools, sums, products of signals, zero padding
            at the maps' edges; the first floating-point tensor's moments are the input's).
            The model must run on it: a ``ValueError`` naming it says when it cannot (seen by
            the plan's own passes on it, or by one run on copies of its tensors where none ran
            it, buffers and modes put back), when its first floating-point tensor is not
            finite, or when its floating-point tensors are empty. Hugging Face models'
            ``dummy_inputs`` are used when this is not given.
        overrides: ``{glob pattern: scheme}`` applied last (see :meth:`Plan.override`); under
            ``auto`` the layers after an overridden weight layer are solved for what it gives
            (:func:`held_layers`). Frozen parameters (``requires_grad=False``) are kept as
            they are unless an override names them.
        forget_bias: LSTM forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015).
        std: base std of the ``gpt2`` policy.
        strict: raise :class:`~initwise.plan.AssumptionError` when anything had to be assumed
            (the model could not be traced, a layer's activation or input moments are unknown,
            a parameter has no rule, a run of zero-padded convolutions and average pools with no
            norm between them may take the output out of band without an example input).
            Otherwise an :class:`~initwise.plan.AssumptionWarning` says what was assumed (the
            plan's notes list it too).

    Returns:
        a :class:`~initwise.plan.Plan`; ``print(plan)`` shows the table, ``plan.apply(model,
        seed=0)`` writes it.
    """
    pol = get_policy(policy)
    if not isinstance(model, nn.Module):
        raise not_a_module(model)
    strict = v.boolean("strict", strict)
    for name, value in (("forget_bias", forget_bias), ("std", std)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or (name == "std" and value < 0):
            what = "a finite number" if name == "forget_bias" else "a finite number ≥ 0"
            raise ValueError(f"{name} must be {what}, got {value!r}")
    model = unwrap(model)
    check_materialized(model, "plan")
    out = _plan_unwrapped(model, pol, example_input, overrides, forget_bias, std, strict)
    if getattr(model, "exported_view", False):
        said = (
            "a torch.export'ed module: read as the layers it was exported from (its holders "
            "of parameters as the Linear, Conv, Embedding and norm layers its ATen calls "
            "compute; the same tensors under the same names)"
        )
        out = dataclasses.replace(out, notes=(*out.notes, said))
    return out


def _plan_unwrapped(
    model: nn.Module,
    pol: Policy,
    example_input: Any,
    overrides: Any,
    forget_bias: float,
    std: float,
    strict: bool,
) -> Plan:
    """:func:`plan` on the unwrapped model, its arguments checked."""
    # (reading a spectral_norm weight in train mode moves its vectors; compiled blocks planned
    # as the modules they compile)
    with held_to_free(), PZ.quiet(model), nested_unwrapped(model):  # (busy cores: see cpus)
        caller = CALLER_RUNS_EXAMPLE.get()
        check = example_input is not None and pol.plan_model is None and not caller
        if not check:
            return _plan(model, pol, example_input, overrides, forget_bias, std, strict)
        finite_example(example_input)
        given = example_input
        example_input = copied(example_input)  # (a forward that writes its input in place
        # runs on the plan's copy in every pass: the caller's batch is left as it was)
        seen: dict[str, Any] = {}
        token = EXAMPLE_RUNS.set(seen)
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                out = _plan(model, pol, example_input, overrides, forget_bias, std, strict)
        finally:
            EXAMPLE_RUNS.reset(token)
        if "error" in seen and not seen.get("ok"):  # (every pass that ran it failed)
            raise _cannot_run(given, seen["error"])
        if not seen.get("ok"):  # (no pass ran it: this policy, no pools, a large model)
            check_example(model, given)
        for w in said:  # (the plan's own warnings, once it stands)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out


CALLER_RUNS_EXAMPLE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "caller_runs_example", default=False
)
"""Set by a caller that runs the example input through the model itself right after planning
and reports a failure in its own words (LSUV's ``batch``): :func:`check_example` is skipped."""


def copied(obj: Any) -> Any:
    """``obj`` with every tensor in it (in dicts, tuples and lists) cloned."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, Mapping):  # (a BatchEncoding too: read as keyword arguments)
        return {k: copied(v) for k, v in obj.items()}
    if type(obj) in (tuple, list):
        return type(obj)(copied(v) for v in obj)
    return obj


class ExampleInputError(ValueError):
    """``example_input: <detail>; <fix>`` — an example input :func:`plan` cannot use.
    ``detail`` says what is wrong, without the advice (the CLI says it as its flag's)."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(f"example_input: {detail}; {fix}")
        self.detail = detail


def finite_example(example_input: Any) -> None:
    """Raise ``ValueError`` naming ``example_input`` when its first floating-point tensor, whose
    moments the walk takes for the input's, is not finite (a NaN batch failed deep inside with
    "kaiming_normal: gain must be finite")."""
    import torch

    from .batch import tensors

    found = tensors(example_input)
    floats = [t for t in found if t.is_floating_point()]
    if floats and not any(t.numel() for t in floats):  # (moments of nothing: none measured)
        raise ExampleInputError(
            f"its floating-point tensors have no elements (shape {tuple(floats[0].shape)}): "
            "nothing to measure the input's moments, pools or edges on",
            "pass at least one example",
        )
    first = next((t for t in floats if t.numel()), None)
    if first is not None and first.device.type != "meta" and not bool(torch.isfinite(first).all()):
        raise ExampleInputError(
            f"its first floating-point tensor (shape {tuple(first.shape)}) has non-finite "
            "values (NaN or Inf), whose moments the plan would take for the input's",
            "pass a finite batch",
        )


def _cannot_run(example_input: Any, exc: BaseException) -> ExampleInputError:
    from .batch import shapes

    first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
    found = shapes(example_input)
    held = f"shapes {found}" if found else f"no tensor in the {type(example_input).__name__}"
    return ExampleInputError(
        f"the model could not run on it ({held}): {type(exc).__name__}: {first_line}",
        "pass an input its forward accepts — a tensor, a tuple of positional arguments or a "
        "mapping of keyword arguments",
    )


def check_example(model: nn.Module, example_input: Any) -> None:
    """Raise ``ValueError`` naming ``example_input`` when the model cannot run on it. Before,
    such an input was used as far as it went and nothing was said: a batch of the wrong width
    gave a plan with its first layer "solved for the example input's moments", a long tensor
    where floats were expected the same. :func:`plan` calls this only where none of its own
    passes ran the model on the input (they note it: :func:`~initwise.torch.batch.noted_run`).
    The model runs once, on copies of the input's tensors, without gradients (with them if it
    needs them: ``torch.autograd.grad`` in ``forward``), its modes, buffers, modules' own
    attributes and torch's random state put back; on the meta device it does not run."""
    import torch

    from .batch import (
        kept_modes,
        kept_state,
        seeded_rng,
        split,
        tensors,
    )

    state = [*model.parameters(), *model.buffers()]
    if any(t.is_meta for t in state) or any(t.is_meta for t in tensors(example_input)):
        return
    failed: Exception | None = None
    with kept_state(model):
        for grad in (False, True):
            args, kwargs = split(copied(example_input))
            try:
                with torch.set_grad_enabled(grad), seeded_rng(0), kept_modes(model):
                    model(*args, **kwargs)
                failed = None
                break
            except Exception as exc:  # (tried again with gradients, then said)
                failed = failed or exc
    if failed is not None:
        raise _cannot_run(example_input, failed) from failed


def _plan(
    model: nn.Module,
    pol: Policy,
    example_input: Any,
    overrides: Mapping[str, Any] | None,
    forget_bias: float,
    std: float,
    strict: bool,
    measure: bool = True,
    given: dict[int, Any] | None = None,
    static: tuple[Any, Any, Any, Any] | None = None,
    held: dict[str, Held] | None = None,
    inputs: dict[int, tuple[float, float]] | None = None,
) -> Plan:
    if pol.plan_model is not None:  # data-driven (LSUV): the policy plans the whole model
        out = pol.plan_model(model, example_input)
        return out.override(overrides) if overrides else out
    # (loaded on the first plan, not on import: `import initwise.torch` stays ≤ 0.1 s beyond torch)
    from .functional import structural_parameters
    from .inspection import inspect_model

    if static is None:  # (a draft round reuses the call's trace: the model has not changed)
        info = inspect_model(model, example_input)
        # raw parameters whose use in forward gives their rule (class tokens, position tables,
        # a norm's affine, score vectors, feature tokenizers) and layer scales kept as built
        # (and the weights its author started at zero or the identity on purpose)
        starts = (*zero_starts(model), structured_starts(model))
        static = (info, *structural_parameters(model, info), starts)
    info, tokens, scales, (zeros, unwritten, identities) = static

    def replan(
        strict: bool,
        measure: bool,
        given: Any,
        held: dict[str, Held] | None,
        inputs: dict[int, tuple[float, float]] | None = None,
    ) -> Plan:
        """This plan once more, for the same model, policy, input and overrides (a draft on a
        copy; the plan solved for the layers it holds; ``inputs``: layers' inputs measured)."""
        return _plan(
            model, pol, example_input, overrides, forget_bias, std, strict, measure, given,
            static, held, inputs,
        )  # fmt: skip

    moments = None
    drafted: dict[str, Any] = {}  # the last draft and the copy it was measured on
    if pol.propagates and info.graph is not None:
        own = not any(m.handles_residual for m in getattr(pol, "modifiers", ()))
        pools, why = dict(given or {}), None
        if measure and example_input is not None and has_pools(model, info):
            # measured with the weights the plan gives, not the model's current ones (a pool's
            # ratio depends on how correlated its inputs are, which the init changes: Swin's
            # 0.02-std start pools tokens that are far more alike): a draft with the pools
            # taken as unchanged, drawn on a copy, measured there. Attention's averaging
            # depends on the plan's own branch scales (how much attention has mixed the tokens
            # by then): drafted again with what was measured until the ratios settle
            rounds = MEASURE_ROUNDS if has_attention(model, info) else 1
            for _ in range(rounds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    draft = replan(False, False, pools, held)
                drafted.clear()
                again, why = measure_pools(model, info, example_input, draft, drafted)
                drafted["plan"] = draft
                settled = _settled(pools, again, _ratio)
                pools = again
                if why is not None or settled or not again:  # (nothing measured: a redraw
                    break  # would be the same draft)
        loose = _kept_loose(model, info, tokens)
        arriving = input_moments(example_input)

        def walked(inputs: dict[int, tuple[float, float]] | None = None) -> Any:
            return propagate(
                model,
                info,
                arriving,
                n_res=None if own else 0,
                pools=pools,
                kept=loose,
                held=held,
                inputs=inputs,
            )

        moments = walked(inputs)
        unknown = unknown_inputs(moments) if measure and example_input is not None else []
        if unknown:  # an op the walk has no rule for before a layer (a capsule's squash, a
            # custom normalizer): its input measured on a copy with the draft drawn, and the
            # walk run again with it — before, assumed at E[x²] 1 even with an example input.
            # Drafted again with what was measured until it settles: where such layers follow
            # one another, each one's input depends on the scales solved before it (ten
            # `lerp(x, gelu(W x), ½)` blocks measured once came out at ×244 in rms)
            calls_of: dict[str, list[int]] = {name: [] for name in unknown}
            for n in info.graph.nodes:  # (each layer's calls, in order)
                if n.op == "module" and n.target in calls_of:
                    calls_of[n.target].append(n.idx)
            found: dict[int, tuple[float, float]] = {}
            for _ in range(min(len(unknown) + 1, INPUT_ROUNDS)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    draft = replan(False, False, pools, held, found)
                seen = measure_inputs(model, unknown, example_input, draft)
                again: dict[int, tuple[float, float]] = {}
                for name, calls in seen.items():
                    nodes = calls_of.get(name, [])
                    if len(nodes) == len(calls):  # (calls matched to the graph's nodes in order)
                        again.update({i: c for i, c in zip(nodes, calls, strict=True) if c})
                settled = _settled(found, again, lambda v: v[0])
                found = again
                if settled or not again:
                    break
            if found:
                moments = walked(found)
        if moments.output_unknown and example_input is None:  # (with one: check_output)
            moments.assumed.append(
                f"the model's output: its moments are unknown past {moments.output_unknown}, "
                "which has no rule (its scale is in the width it contracts, which the graph "
                "does not have), and no layer after it is solved for a unit output; give "
                "example_input= to measure it"
            )
        if example_input is None:  # (raw-parameter layers too: F.conv2d(x, self.w, padding=1))
            modules = graph_modules(model, info.graph)
            chain = unmeasured_chain(info, modules, moments.pool_floors, moments.max_pools)
            if chain is not None:  # (first: the warning shows three assumptions; this one
                moments.assumed.insert(0, chain.said())  # sums up a whole run of layers)
        else:  # an example input was given: say why it did not serve
            tip = "give example_input= to measure it"
            said = (
                f"it could not be measured: {why}"
                if why is not None
                else "the example input's pass did not measure it (its calls there did not "
                "match the traced graph's one to one: control flow that changes between "
                "calls, or a shared convolution, attention module or bag, measured only where "
                "called once)"
            )
            moments.assumed[:] = [
                a if why is None and "beyond any scale" in a else a.replace(tip, said)
                for a in moments.assumed  # (a walk out of range: no pass measures that)
            ]
    ctx = Context(info.layers, info.n_residual, forget_bias, std, model, moments, info)
    names = {id(p): n for n, p in model.named_parameters()}
    # what a raw parameter is by its use in forward (a class token, a position table, a score
    # vector, a layer scale …), by name: μP's and u-μP's learning rates for parameters no
    # layer rule plans follow it (their shape alone took a 1,024-position table for a matrix)
    ctx.memo["loose_kinds"] = {
        names[i]: found for i, found in (*scales.items(), *tokens.items()) if i in names
    }
    done: dict[int, int] = {}  # param id -> entry index
    entries: list[ParamPlan] = []
    found = PZ.sites(model)
    orig = PZ.originals(model, found)  # weight_norm's g, v…: planned as the weight they compute
    functional = _functional_sites(pol, ctx, info)  # raw parameters used as a layer's weight
    by_module: dict[int, dict[str, PZ.Site]] = {}
    for site in found.values():
        by_module.setdefault(id(site.module), {})[site.attr] = site
    alive: list[Any] = []
    families: dict[Any, Any] = {}  # the family's model, and each module's rules (family_parameter)
    fallback: set[int] = set()  # entries from a family's rule: a tie's own rule comes first
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if prefix + n not in orig]
        # computed weights (weight_norm, spectral_norm, prune…): written through their
        # reparametrization; first, as the weight is without one
        through = by_module.get(id(module), {})
        computed = [(a, s.effective()) for a, s in through.items()]
        alive.extend(t for _, t in computed)  # ties are found by id(): no id may be reused
        own = computed + own
        if not own:
            continue
        layer = info.layers.get(mod_name) or _inherited(mod_name, module, info.layers)
        planned = _plan_module(pol, ctx, mod_name, module, layer, dict(own))
        for pname, p in own:
            if id(p) in done:  # tied: planned under its first name; say so there
                i = done[id(p)]
                tie = f"{mod_name}.{pname}" if mod_name else pname
                other = planned.get(pname)
                unruled = entries[i].scheme is None or i in fallback
                if unruled and other is not None and not keep_frozen(p):
                    # the first name has no rule (BERT's cls.predictions.bias), this one has
                    # (cls.predictions.decoder.bias): plan the shared tensor by this module
                    entries[i] = dataclasses.replace(
                        other,
                        name=entries[i].name,
                        layer=mod_name,
                        shape=tuple(p.shape),
                        reason=other.reason + f"; tied with {tie} (planned by that module)",
                    )
                    continue
                entries[i] = dataclasses.replace(
                    entries[i], reason=entries[i].reason + f"; tied with {tie}"
                )
                continue
            full = names.get(id(p)) or (f"{mod_name}.{pname}" if mod_name else pname)
            done[id(p)] = len(entries)
            e = (
                ssm_parameter(model, mod_name, module, pname, p)
                or (
                    position_bias_output(model, mod_name, module, pname, p)
                    if moments is not None
                    else None
                )
                or planned.get(pname)
                or loose_parameter(model, mod_name, pname, p)  # (a family's own rule first)
                or functional.get(id(p))
                or _token_rule(tokens.get(id(p)), pname, p)
                or (
                    kept(pname, p, f"a layer scale: it {scales[id(p)][1]}, as built", mod_name)
                    if id(p) in scales
                    else None
                )
            )
            drawn = e is None or e.scheme is not None  # (what a rule leaves as is stays so)
            if drawn and keep_frozen(p):
                e = kept(pname, p, FROZEN, mod_name)
            elif drawn and id(p) in zeros and (mod_name in (held or {}) or not _zeros(e)):
                e = kept(pname, p, ZERO_START, mod_name)  # (a rule's own zeros — LoRA's B, a
                # coupling's last layer — keep its reason)
            elif drawn and id(p) in identities:
                e = kept(pname, p, f"{IDENTITY_START} ({identities[id(p)]})", mod_name)
            if pname in through and not through[pname].writable:
                e = ParamPlan(
                    full,
                    tuple(p.shape),
                    None,
                    f"left as is: {through[pname].describe()}, but one of them has no "
                    "right_inverse, so nothing can be written through it; initialize its "
                    "original yourself",
                    mod_name,
                )
            elif e is not None and pname in through:
                e = dataclasses.replace(e, reason=f"{e.reason}; {through[pname].describe()}")
            if e is None and p.numel() == 1 and p.is_floating_point():
                e = kept(  # (a temperature, ReZero's α = 0, a logit scale: a modelling choice)
                    pname,
                    p,
                    f"a single learned number ({type(module).__name__}.{pname}: a temperature, "
                    "a gate such as ReZero's α, a logit scale) is the model's own choice, not a "
                    "draw with fans: as the model built it",
                    mod_name,
                )
            if e is None or (e.scheme is None and UNREAD_LAYOUT in e.reason):
                why = f": {UNREAD_LAYOUT}" if e is not None else ""
                fam = family_parameter(model, module, pname, p, families, why)
                if fam is not None:
                    e = fam
                    fallback.add(len(entries))
            if e is None:
                e = ParamPlan(
                    full,
                    tuple(p.shape),
                    None,
                    f"left as is: no rule for {type(module).__name__}.{pname}; add an override "
                    "for it",
                    mod_name,
                )
            entries.append(dataclasses.replace(e, name=full, layer=mod_name, shape=tuple(p.shape)))
    entries = pol.finalize(ctx, entries)
    if moments is not None:
        entries = calibrate_ssm(model, ctx, entries)
    notes = [
        f"traced with {info.method}"
        + (f"; {info.n_residual} residual branches" if info.n_residual else "")
    ]
    if info.note:
        notes.append(info.note + "; activations were not detected (assumed linear)")
    elif pol.describes_tracing and info.method != "single layer":
        drawn = {e.layer for e in entries if e.scheme is not None and e.name.endswith("weight")}
        uncalled = _off_trace(info, model, drawn)[1]
        if uncalled:
            notes.append(
                f"{few([repr(n) for n in uncalled])} not called in forward on this trace (no "
                "effect on it: a decoder's cross-attention without an encoder, an auxiliary "
                "head): planned as linear, for unit input"
            )
    notes += pol.notes(ctx)
    resting = _resting_dropout(model) if moments is not None else None
    if resting:
        notes.append(
            f"planned for eval mode, where dropout is the identity ({resting}); in training it "
            "multiplies E[x²] by 1/(1 − p) where it acts — call model.train() before plan to "
            "plan for training (a pretrained model is loaded in eval mode)"
        )
    started = [e.name for e in entries if e.reason.startswith(STARTS)]
    if started:
        notes.append(
            f"kept {len(started)} parameter{'s' if len(started) > 1 else ''} of layers started at "
            f"zero or the identity on purpose as built: {few(started)} (give an override to "
            "draw them)"
        )
    if unwritten:
        notes.append(
            "every Linear/convolution weight held only zeros — memory never written (skip_init, "
            "an empty allocation), not a choice: all drawn"
        )
    still = [e.name for e in entries if e.reason.startswith(f"kept: {FROZEN}")]
    if still:
        every = " (every parameter: nothing is drawn)" if len(still) == len(entries) else ""
        notes.append(
            f"kept {len(still)} frozen parameter{'s' if len(still) > 1 else ''} as "
            f"{'they are' if len(still) > 1 else 'it is'}{every}: {few(still)} "
            "(requires_grad=False; set it before planning, or give an override, to draw them)"
        )
    drifts = list(moments.drifts) if moments is not None else []
    notes += [f"cannot hold: {d}" for d in drifts]
    rewrites = tuple(pol.rewrites(ctx))
    out = Plan(tuple(entries), pol.name, type(model).__name__, tuple(notes), rewrites)
    out = out.override(overrides) if overrides else out
    if held is None and moments is not None:
        modified = ctx.memo.get(RESIDUAL_SET, set())
        found_held = held_layers(model, info, out, modified)
        if found_held:  # planned again, the layers after them solved for what they give
            again = replan(strict, measure, given, found_held)
            # weights held for what was set around them — a residual modifier's layers, a
            # layer held for its overridden or frozen bias — keep what this plan gave them:
            # planned again, the base solves them as held (to the same values, with a reason
            # that says only that) and a modifier would act twice (depth-scaled-residual: the
            # branch ends ×1/√L twice, the output at rms 0.72)
            own = {n for n in found_held if n in modified or found_held[n].how == _BIAS_HELD}
            mha = {n for n in own if module_kind(info.layers[n].module) == "mha"}
            names = {f"{n}.out_proj.weight" if n in mha else f"{n}.weight" for n in own if n}
            first = {e.name: e for e in out.entries if e.name in names}
            if not first:
                return again
            return dataclasses.replace(
                again, entries=tuple(first.get(e.name, e) for e in again.entries)
            )
    if measure and moments is not None and not getattr(pol, "modifiers", ()) and not rewrites:
        # the walk's predicted output: far from unit, or off what the example input gives (a
        # finding, said). Not after modifiers (zero-init-residual, fixup change the weights
        # after the walk: its prediction is the base policy's) or activation rewrites
        from .verify import check_output, off_unit

        fixed = [n for n, v in moments.layers.items() if v.fixed]
        found = [off_unit(moments.output, input_moments(example_input), fixed, list(held or {}))]
        if example_input is not None:
            twin = (drafted["copy"], drafted["plan"]) if "copy" in drafted else None
            found.append(
                check_output(
                    model,
                    out,
                    example_input,
                    moments.output,
                    twin,
                    moments.output_unknown,
                    input_moments(example_input),
                )
            )
        for off in (f for f in found if f is not None):
            drifts.append(off)
            out = dataclasses.replace(out, notes=(*out.notes, f"cannot hold: {off}"))
    _report_assumptions(out, info, moments, pol, strict, pol.assumptions(ctx), model)
    if drifts:  # a finding, not an assumption: strict does not raise for it
        warnings.warn(
            SignalWarning(f"plan({out.model}, {out.policy!r}): " + "; ".join(drifts)),
            stacklevel=3,
        )
    return out


SSM_PROBE_TOKENS = 16
"""Tokens (×2 sequences) of the seeded Gaussian input :func:`calibrate_ssm` runs."""


def calibrate_ssm(model: nn.Module, ctx: Context, entries: list[ParamPlan]) -> list[ParamPlan]:
    """``auto``'s output projection of every Mamba mixer (a module owning ``A_log`` and ``D``),
    solved for the input moment *measured* on a copy of the mixer drawn from this plan: the
    selective scan is not traced into, and the propagated moment was ~6× too small in Jamba
    (its stream grew 2.9× over 4 layers). The copy (CPU, float32, the plan applied with seed 0)
    runs ``N(0, 1)`` input — a mixer follows a norm — of 2 × :data:`SSM_PROBE_TOKENS` tokens;
    ``out_proj``'s std is scaled by ``√(propagated / measured)`` and the reason says both.
    Meta-device mixers and ones whose copy fails to run keep the propagated value, and the
    plan's assumptions say so (an ``AssumptionWarning``; ``strict=True`` raises)."""

    import torch

    index = {e.name: i for i, e in enumerate(entries)}
    solved = ctx.moments.layers if ctx.moments is not None else {}
    for name, mixer in model.named_modules():
        if not is_ssm_mixer(mixer) or not isinstance(getattr(mixer, "out_proj", None), nn.Linear):
            continue
        prefix = f"{name}." if name else ""
        key = f"{prefix}out_proj.weight"
        target = solved.get(f"{prefix}out_proj")
        if key not in index or target is None or entries[index[key]].scheme is None:
            continue
        unmeasured = (
            f"{prefix}out_proj: the mixer's copy could not run, so it is solved for the "
            f"propagated E[x²] {target.effective:.3g} (the scan is not traced into)"
        )
        if any(p.is_meta for p in mixer.parameters()):
            ctx.moments.assumed.append(unmeasured)  # type: ignore[union-attr]
            continue
        sub = Plan(
            tuple(
                dataclasses.replace(e, name=e.name[len(prefix) :])
                for e in entries
                if e.name.startswith(prefix)
            )
        )
        seen: list[float] = []
        try:
            probe = module_copy(mixer).float().cpu()
            sub.apply(probe, 0)
            hook = probe.out_proj.register_forward_pre_hook(
                lambda m, a, seen=seen: seen.append(float(a[0].detach().double().pow(2).mean()))
            )
            x = torch.randn(
                2,
                SSM_PROBE_TOKENS,
                probe.out_proj.out_features,
                generator=torch.Generator().manual_seed(0),
            )
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe(x)
            hook.remove()
        except Exception:  # (a mixer that needs more than hidden states: the propagated value)
            seen.clear()
        if not seen or not seen[0] > 0 or not math.isfinite(seen[0]):
            ctx.moments.assumed.append(unmeasured)  # type: ignore[union-attr]
            continue
        said = f"{prefix}out_proj: "  # (the walk's own word on its input: measured now)
        ctx.moments.assumed[:] = [a for a in ctx.moments.assumed if not a.startswith(said)]  # type: ignore[union-attr]
        e = entries[index[key]]
        factor = math.sqrt(target.effective / seen[0])
        scaled = e.with_scheme(e.scheme.scaled(factor), "")  # type: ignore[union-attr]
        entries[index[key]] = dataclasses.replace(
            scaled,
            reason=e.reason.rsplit(" → std", 1)[0]
            + f"; its input measured on a seeded copy of the mixer drawn from this plan: E[x²] "
            f"{seen[0]:.3g} (propagated {target.effective:.3g}: the scan is not traced into) → "
            f"std {scaled.std:.4g}",
        )
    return entries


INPUT_ROUNDS = 12
"""Most drafts measured for the inputs of layers after ops the walk has no rule for (one more
than there are such layers, at most this: each round settles at least one more layer of a
chain of them; the rounds stop once the measurements move by less than 5 %)."""

MEASURE_ROUNDS = 4
"""Drafts at most (:func:`_plan`) when the graph has attention whose averaging is measured."""


def _settled(before: dict[int, Any], after: dict[int, Any], value: Callable[[Any], float]) -> bool:
    """Whether a measuring round moved no measurement (``value`` of each, where positive) by 5 %
    or more from the round before; False after the first round (``before`` empty)."""
    if not before:
        return False
    for k, got in after.items():
        a = value(got)
        if a <= 0:
            continue
        b = value(before[k]) if k in before else 0.0
        if b <= 0 or abs(math.log(a / b)) >= 0.05:
            return False
    return True


def _ratio(st: Any) -> float:
    """A measured pool's output/input ``E[x²]`` ratio."""
    return max(st[2], 1e-300) / max(st[0], 1e-300)


def _resting_dropout(model: nn.Module) -> str:
    """The dropout modules with ``p > 0`` that are in eval mode (their count and largest ``p``),
    "" where there are none: the moments walk takes them as the identity
    (:func:`~.graph.dropout_noise`), and the network trains with them on."""
    ps = dropout_rates(model, training=False)
    if not ps:
        return ""
    return f"{len(ps)} dropout module{'s' if len(ps) > 1 else ''}, p up to {max(ps):g}"


_UNREACHED_KINDS = frozenset({"linear", "conv", "conv_transpose", "conv1d_hf"})


def _off_trace(
    info: Any, model: nn.Module | None, weights: set[str]
) -> tuple[list[str], list[str]]:
    """Linear and convolution layers in ``weights`` (those the plan draws) that the trace never
    saw as a module call, alone or as a leaf's child, planned as linear for unit input: (those
    whose weight it saw as a tensor — used in code, ``F.multi_head_attention_forward(…,
    q_proj_weight=self.q_proj.weight)``, or inside a layer the tracer went into, as a
    quantization-aware ``Linear`` was before ``torch.ao.nn`` was a leaf; those never called at
    all — a decoder's cross-attention without an encoder, an auxiliary head switched off: no
    effect on this forward pass, but the input they will get is assumed). Both are assumptions,
    warned (strict raises); the second is also said in the plan's notes."""
    if model is None or info.graph is None:
        return [], []
    mods = dict(model.named_modules())
    seen = {n.target for n in info.graph.nodes if n.op == "param"}
    off = [
        n
        for n in sorted(weights)
        if n not in info.layers
        and n in mods
        and module_kind(mods[n]) in _UNREACHED_KINDS
        and probed_norm(mods[n]) is None
        and _inherited(n, mods[n], info.layers).activation is None
    ]
    return [n for n in off if f"{n}.weight" in seen], [n for n in off if f"{n}.weight" not in seen]


def _report_assumptions(
    out: Plan,
    info: Any,
    moments: Any,
    pol: Policy,
    strict: bool,
    extra: Sequence[str] = (),
    model: nn.Module | None = None,
) -> None:
    said: list[str] = list(extra)
    if info.note:
        said.append(info.note)
    if pol.describes_tracing and info.method != "single layer":
        blind = [  # (a norm written by hand has a weight, and no activation to find)
            n
            for n, lay in info.layers.items()
            if lay.activation is None
            and n
            and is_weight_layer(lay.module)
            and probed_norm(lay.module) is None
        ]
        weights = {  # (a weight the user gave an override for is their choice: not assumed)
            e.layer
            for e in out
            if e.scheme is not None
            and e.name.endswith("weight")
            and not e.reason.startswith("override ")
        }
        blind = [n for n in blind if n in weights]
        if blind and not info.note:
            said.append(f"no activation found for {few(blind)} (assumed linear)")
        unreached, uncalled = _off_trace(info, model, weights) if not info.note else ([], [])
        if unreached:
            said.append(
                f"{few([repr(n) for n in unreached])}: the weight is used in code the trace does "
                "not attribute to the layer (not as a module call): planned as linear, for unit "
                "input"
            )
        unrun = unrun_hooks(model, info.graph) if model is not None else []
        if unrun:
            said.append(
                f"{few(unrun)}: hooks the trace does not run (torch.fx calls a layer without "
                "its hooks), taken to leave the values unchanged — give example_input= to trace "
                "them by running, or register them after init"
            )
        if uncalled:
            said.append(
                f"{few([repr(n) for n in uncalled])} not called in forward on this trace (a "
                "decoder's cross-attention without an encoder, an auxiliary head): planned as "
                "linear, for unit input — give an example input that calls it to solve it for "
                "what it gets"
            )
    planned = {e.name for e in out if e.scheme is not None}
    unmeasured = [  # norms whose scale rule assumed weight·x̂ (modules.norm_offset)
        n
        for n, m in (model.named_modules() if model is not None else ())
        if (f"{n}.weight" if n else "weight") in planned and is_norm(m) and norm_offset(m) is None
    ]
    if unmeasured:
        said.append(
            f"{few([repr(n) for n in unmeasured])}: the norm's scale assumed weight·x̂ (ones); "
            "a copy could not run on a (4, d) input, or gave neither weight·x̂ nor "
            "(1 + weight)·x̂, to measure it"
        )
    if moments is not None and moments.assumed:
        said.append("; ".join(moments.assumed[:3]) + ("; …" if len(moments.assumed) > 3 else ""))
    left = [e.name for e in out if e.scheme is None and not e.reason.startswith(KEPT)]
    if left:
        said.append(f"no rule for {few(left)} (left as is)")
    borrowed = [e.name for e in out if e.scheme is not None and FAMILY_RULE in e.reason]
    if borrowed:
        said.append(
            f"no rule of initwise's for {few(borrowed)}: the family's own rule, as its "
            "_init_weights writes it (reproducible from the seed, not solved for the signal)"
        )
    if not said:
        return
    text = f"plan({out.model}, {out.policy!r}) assumed: " + "; ".join(said)
    if strict:
        raise AssumptionError(
            text + ". Give example_input=, an override for each parameter without a rule, or "
            "plan with strict=False to accept the assumptions"
        )
    warnings.warn(AssumptionWarning(text), stacklevel=4)


_HF_TOKENS = (
    "cls_token",
    "position_embeddings",
    "mask_token",
    "distillation_token",
    "position_embedding",  # BLIP / BLIP-2's vision embeddings (parameters, not nn.Embedding)
    "class_embedding",  # (BLIP's is (1, 1, D); CLIP's 1-d one has its own rule above)
    "query_tokens",  # BLIP-2 / InstructBLIP's Q-Former queries: zeros
    "register_tokens",  # DINOv2 with registers (Darcet et al. 2024)
)


KEPT = ("override ", "kept: ")
"""Reasons of entries left as is on purpose — a user's ``keep`` override, a rule that keeps what
the model built (:func:`kept`) — which are not reported as assumptions."""


FROZEN = (
    "frozen (requires_grad=False): not trained, so its values are final, not a start — a "
    "pretrained or fixed layer; the layers after it are solved for what it gives. Set "
    "requires_grad before planning (or give an override) to draw it"
)
"""The reason of a frozen parameter's entry (after ``kept: ``)."""


ZERO_START = (
    "all zeros as built — a layer started at zero on purpose (zero_module: ControlNet's zero "
    "convolutions, a diffusion U-Net's output layers; zero_init_residual's last norm of each "
    "residual block; gMLP's spatial gate, its bias ones), which torch's own init never gives; "
    "its bias is part of that start. Give an override to draw it"
)
"""The reason of a parameter kept as a deliberate zero start (after ``kept: ``;
:func:`~initwise.torch.modules.zero_starts`)."""


IDENTITY_START = (
    "an exact identity as built — a layer started at the identity on purpose (nn.init.eye_ or "
    "dirac_; an IRNN's recurrent matrix, Le et al. 2015), which torch's own init never gives; "
    "its bias is part of that start. Give an override to draw it"
)
"""The reason of a weight kept as an identity start (after ``kept: ``;
:func:`~initwise.torch.modules.structured_starts`)."""

STARTS = (f"kept: {ZERO_START}", f"kept: {IDENTITY_START}")
"""Reasons of entries kept as a deliberate start."""


def _zeros(e: ParamPlan | None) -> bool:
    """Whether entry ``e`` draws all zeros (a rule's own zero start: LoRA's B, a coupling's
    last layer)."""
    return e is not None and isinstance(e.scheme, S.Constant) and e.scheme.value == 0.0


def keep_frozen(p: Any) -> bool:
    """Whether the plan keeps parameter ``p`` for being frozen (:data:`FROZEN`): on the meta
    device there are no values to keep, and it is drawn as before."""
    return frozen(p) and not p.is_meta


HOLDS = ("override ", f"kept: {FROZEN}", *STARTS)
"""Reasons of entries whose layer the walk takes as it will be (:func:`held_layers`)."""


def held_layers(
    model: nn.Module, info: Any, out: Plan, modified: set[str] | frozenset[str] = frozenset()
) -> dict[str, Held]:
    """The weight layers of ``out`` that are not drawn as the walk solved them — frozen
    (:data:`FROZEN`), started at zero or the identity on purpose (:data:`STARTS`), given an
    override, or set by a modifier that handles residual branches (``modified``, by module
    name: zero-init-residual's zero branch ends and norms, Fixup's branches and head; the walk
    took those branches at unit output, so the stream grew ×17 over 16 zero-initialized blocks
    where it keeps its size, and the read-out came out at rms 0.24) — with what their weights
    will be after ``apply``
    (:class:`~initwise.torch.moments.Held`): a kept tensor's own values, an overriding scheme's
    std (``fan_in·std²``) and mean; a layer whose bias alone is overridden or frozen, with the
    weight the walk solved (:data:`_BIAS_HELD`). ``nn.Linear``/convolution/transposed
    convolution/``Conv1D``/embedding layers the graph reaches, torch norms whose gain is kept
    at zero (they give their bias) or whose affine is overridden or frozen, and recurrent
    layers (the parameters kept as built, which their probe keeps); a scheme without a std
    (orthogonal of an odd shape…) and u-μP's stored weights (a forward multiplier) are
    skipped."""
    entries = {e.name: e for e in out.entries}
    names = {id(p): n for n, p in model.named_parameters()}  # (a tied weight: its first name)
    found: dict[str, Held] = {}
    for name, layer in info.layers.items():
        m = layer.module
        kind = module_kind(m)
        prefix = f"{name}." if name else ""
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):  # (its probe runs with what is kept
            # as built, and draws what the plan draws otherwise than auto's recurrent rule)
            params = dict(m.named_parameters(recurse=False))
            mine = {pname: entries.get(prefix + pname) for pname in params}
            keep = frozenset(
                pname
                for pname, x in mine.items()
                if x is not None and x.scheme is None and x.reason.startswith(HOLDS)
            )
            draws = _recurrent_draws(name, m, params, mine)
            if keep or draws:
                how = "kept as built" if not draws else "drawn as planned"
                found[name] = Held(0.0, 0.0, 0.0, how, keep, draws)
            continue
        if isinstance(m, NORMS) or kind == "norm":  # (a norm whose gain is kept at zero gives
            # its bias; Hugging Face's RMSNorms too: Mixtral's input norms overridden to 3 grew
            # the stream ×5 over 4 layers where the plan holds it at ×1.5)
            e = entries.get(prefix + "weight")
            eb = entries.get(prefix + "bias")
            zeroed = (  # (zero-init-residual's scale zero: weight −1 where it is 1 + weight)
                name in modified
                and e is not None
                and isinstance(e.scheme, S.Constant)
                and e.scheme.value == -(norm_offset(m) or 0.0)
            )
            if e is not None and (e.reason.startswith(f"kept: {ZERO_START}") or zeroed):
                b_mean, b_var = _bias_moments(m, eb)
                found[name] = Held(0.0, b_mean, b_var, "its gain kept at zero")
            elif any(x is not None and x.reason.startswith(HOLDS) for x in (e, eb)):
                gain2 = _gain_moment(m, e)
                if gain2 is not None:  # (an overridden or frozen affine: what it will be)
                    b_mean, b_var = _bias_moments(m, eb)
                    found[name] = Held(gain2, b_mean, b_var, "its affine as it will be")
            continue
        values = None
        if kind == "mha":  # its out_proj, held as a Linear: the walk passes the averaged
            # values through it (an override ×3 of its weight, or a bias of 1.5, was applied
            # after the walk, and the layer after the attention was solved for unit input);
            # and its value projection where that is overridden or kept (std 0.3 for 0.125:
            # values ×5.8 in E[x²], the layer after the attention solved for unit input)
            values = _held_values(m, prefix, entries)
            m, kind, prefix = m.out_proj, "linear", f"{prefix}out_proj."
        if kind not in (*HELD_KINDS, "embedding") or not isinstance(
            getattr(m, "weight", None), torch.Tensor
        ):
            continue
        e = entries.get(names.get(id(m.weight), prefix + "weight"))
        eb = entries.get(prefix + "bias")
        biased = eb is not None and eb.reason.startswith(HOLDS)  # (its bias overridden, kept)
        if e is None or not (e.reason.startswith(HOLDS) or name in modified or biased):
            if values is not None:  # (its out_proj the walk's to solve, for those values)
                found[name] = Held(0.0, 0.0, 0.0, "its values", values=values, solved=True)
            continue
        if e.forward_mult is not None and not e.forward_mult_at:  # (u-μP: a stored weight and
            continue  # its multiplier, not solved by the walk's moments; μP's tied table is
            # stored as its lookup gives it, the multiplier on the read-out's call)
        w = m.weight.detach()
        if w.is_meta or w.numel() == 0:
            continue
        table = kind == "embedding"  # (its rows are its output: E[w²] and its mean)
        if e.scheme is None:
            w = w.double()
            rows = w.shape[1] if kind == "conv1d_hf" else w.shape[0]
            how = next((v for k, v in _HELD_HOW.items() if e.reason.startswith(k)), "left as is")
            gain2 = float(w.pow(2).mean()) if table else float(w.pow(2).sum()) / max(rows, 1)
            if kind == "conv_transpose":  # (its weight is (C_in, C_out/g, k…): the true fan-in)
                fan = weight_fans(kind, m, tuple(w.shape), name)[0].fan_in
                gain2 = float(w.pow(2).mean()) * fan
            mean = float(w.mean()) if table else 0.0
            how = f"{how}, its own weights"
        elif e.std is not None and (table or e.fan_in):
            mean = _scheme_mean(e.scheme)
            gain2 = (e.std * e.std + mean * mean) * (1.0 if table else e.fan_in)
            if e.reason.startswith(HOLDS):
                how = f"drawn by its override ({e.scheme.label})"
            elif name in modified:
                how = f"set by the policy's residual rule ({e.scheme.label})"
            else:  # (solved by the walk; held for its bias, which is not the plan's)
                how = _BIAS_HELD
        else:
            continue
        b_mean, b_var = (mean, 0.0) if table else _bias_moments(m, eb)
        found[name] = Held(gain2, b_mean, b_var, how, values=values)
    found.update(_held_parameters(model, info, entries))
    return found


def _held_parameters(model: nn.Module, info: Any, entries: dict[str, ParamPlan]) -> dict[str, Held]:
    """Raw parameters the graph reads as values (no layer owns them: a layer scale ``γ·x``, a
    token, a latent array) whose entry is an override or frozen: ``Held(E[p²], E[p], param=
    True)`` by parameter name, what they will be after ``apply``. The walk read a layer scale
    at its built (or config) value and other such parameters as the model held them: ConvNeXt-
    style branches ``x + γ·f(x)`` with ``γ`` overridden from 10⁻² to 1 put the read-out's input
    at E[x²] ~75 where 1 was solved for (output rms 7.1–8.6)."""
    g = info.graph
    if g is None:
        return {}
    targets = {n.target for n in g.nodes if n.op == "param"}
    sites = {id(t) for m in g.extra.values() for t in m.parameters()}
    found: dict[str, Held] = {}
    for name, p in model.named_parameters():
        e = entries.get(name)
        if name not in targets or id(p) in sites or e is None or not e.reason.startswith(HOLDS):
            continue
        mod_name = name.rpartition(".")[0]
        if module_kind(model.get_submodule(mod_name) if mod_name else model) != "unknown":
            continue
        if p.is_meta or not p.is_floating_point() or not p.numel():
            continue
        if e.scheme is None:  # (kept: its own values)
            t = p.detach().double()
            s2, mu = float(t.pow(2).mean()), float(t.mean())
        elif e.std is not None:
            mu = _scheme_mean(e.scheme)
            s2 = e.std * e.std + mu * mu
        else:  # (a scheme without a std)
            continue
        if math.isfinite(s2) and math.isfinite(mu):
            how = f"drawn by its override ({e.scheme.label})" if e.scheme else "kept as it is"
            found[name] = Held(s2, mu, 0.0, how, param=True)
    return found


def _held_values(
    m: nn.MultiheadAttention, prefix: str, entries: dict[str, ParamPlan]
) -> tuple[float, float, float] | None:
    """``(fan_in·E[w²], bias mean, bias variance)`` of ``m``'s value projection after
    ``apply`` where its weight (the packed ``in_proj_weight``'s third block, or
    ``v_proj_weight``) or its bias (``in_proj_bias``'s third block) is overridden or kept;
    else None. A kept tensor by its own values; an override by its std and mean."""
    packed = m.in_proj_weight is not None
    wname = "in_proj_weight" if packed else "v_proj_weight"
    w = getattr(m, wname, None)
    e, eb = entries.get(prefix + wname), entries.get(prefix + "in_proj_bias")
    held_w = e is not None and e.reason.startswith(HOLDS)
    held_b = eb is not None and eb.reason.startswith(HOLDS)
    if not (held_w or held_b) or not isinstance(w, torch.Tensor) or w.is_meta:
        return None
    d = m.embed_dim
    wv = w.detach()[2 * d : 3 * d] if packed else w.detach()
    if e is None or e.scheme is None:  # (kept: its own values, per output unit)
        gain2 = float(wv.double().pow(2).sum()) / max(wv.shape[0], 1)
    elif e.std is not None:
        mean = _scheme_mean(e.scheme)
        gain2 = (e.std * e.std + mean * mean) * wv.shape[1]
    else:  # (a scheme without a std: not held)
        return None
    b = m.in_proj_bias
    if not isinstance(b, torch.Tensor) or b.is_meta:
        b_mean, b_var = 0.0, 0.0
    elif eb is None or eb.scheme is None:
        bv = b.detach().double()[2 * d : 3 * d]
        b_mean, b_var = float(bv.mean()), float(bv.var(unbiased=False))
    else:
        b_mean, b_var = _scheme_mean(eb.scheme), (eb.std or 0.0) ** 2
    return (gain2, b_mean, b_var)


def _recurrent_draws(
    name: str, m: nn.Module, params: dict[str, Any], mine: dict[str, ParamPlan | None]
) -> tuple[ParamPlan, ...]:
    """The plan entries of recurrent layer ``m`` when they are not what its probe draws by
    default (``auto``'s recurrent rule, forget-gate bias 1: :func:`~initwise.torch.moments.
    rnn_moments`) — an override, ``forget_bias`` other than 1, a policy's own rule —, else
    ``()``. Compared by what they draw (scheme, blocks, std), not by their reasons."""
    if not params or any(p.is_meta for p in params.values()):
        return ()
    rule = get_policy("auto").recurrent(_PROBE_CTX, name, m, params)  # type: ignore[arg-type]
    drawn = [e for e in mine.values() if e is not None and e.scheme is not None]
    if all(_same_draw(e, rule.get(e.name.rsplit(".", 1)[-1])) for e in drawn):
        return ()
    return tuple(drawn)


_PROBE_CTX = types.SimpleNamespace(forget_bias=1.0)
"""What ``auto``'s :meth:`~initwise.torch.policies.Policy.recurrent` reads of its context for
the probe's default rule: the forget-gate bias the probe draws."""


def _same_draw(a: ParamPlan, b: ParamPlan | None) -> bool:
    """Whether entries ``a`` and ``b`` draw the same distribution (scheme, blocks, std)."""
    if b is None:
        return False
    fields = ("scheme", "chunks", "chunk_dim", "chunk_schemes", "center_dims", "row_scales")
    if any(getattr(a, f) != getattr(b, f) for f in fields):
        return False
    return (a.std is None) == (b.std is None) and (
        a.std is None or math.isclose(a.std, b.std or 0.0, rel_tol=1e-9)  # type: ignore[arg-type]
    )


_BIAS_HELD = "its bias overridden or kept"
"""How :func:`held_layers` names a layer held for its bias alone: an override ``"*.bias":
2`` (or a frozen bias) was applied after the walk, which took the bias the plan draws, and
the layer after it was solved for unit input (×5 of that in E[x²]: output rms 0.66)."""


_HELD_HOW = {
    f"kept: {FROZEN}": "kept as it is (frozen)",
    f"kept: {ZERO_START}": "kept at zero (started at zero on purpose)",
    f"kept: {IDENTITY_START}": "kept at the identity (started at the identity on purpose)",
}
"""How :func:`held_layers` names a kept layer, by its entry's reason."""


def _scheme_mean(scheme: S.Scheme) -> float:
    """The mean of a scheme's entries: a constant's value, a normal's mean, else 0."""
    return float(getattr(scheme, "value", getattr(scheme, "mean", 0.0)))


def _gain_moment(m: nn.Module, e: ParamPlan | None) -> float | None:
    """``E[γ²]`` of norm ``m``'s gain after ``apply`` under entry ``e`` (``(1 + w)`` where the
    norm multiplies by it, :func:`~initwise.torch.modules.norm_offset`): its own values where
    kept, else the scheme's mean and std; 1 with no gain; None where unknown (a scheme with no
    std, an offset the norm does not say)."""
    w = getattr(m, "weight", None)
    if not isinstance(w, torch.Tensor) or w.numel() == 0:
        return 1.0
    offset = norm_offset(m)
    if offset is None or w.is_meta:
        return None
    if e is None or e.scheme is None:  # (kept: its own values)
        return float((w.detach().double() + offset).pow(2).mean())
    if e.std is None:
        return None
    mean = _scheme_mean(e.scheme) + offset
    return e.std * e.std + mean * mean


def _bias_moments(m: nn.Module, e: ParamPlan | None) -> tuple[float, float]:
    """(mean, variance) of layer ``m``'s bias after ``apply`` under entry ``e``."""
    b = getattr(m, "bias", None)
    if not isinstance(b, torch.Tensor) or b.numel() == 0 or b.is_meta:
        return (0.0, 0.0)
    if e is None or e.scheme is None:  # (kept: its own values)
        b = b.detach().double()
        return (float(b.mean()), float(b.var(unbiased=False)))
    return (_scheme_mean(e.scheme), (e.std or 0.0) ** 2)


def kept(pname: str, p: Any, why: str, mod_name: str) -> ParamPlan:
    """An entry left as the model built it on purpose: its reason starts with ``kept: `` (one of
    :data:`KEPT`), so it is no assumption."""
    return ParamPlan(pname, tuple(p.shape), None, f"kept: {why}", mod_name)


_SSM_KEPT = {
    "A_log": "the state matrix A = −exp(A_log), S4D-real log(1…N) per channel",
    "D": "the skip D (ones)",
    "dt_bias": "the Δ bias softplus⁻¹(Δ), Δ log-uniform in [dt_min, dt_max]",
    "bias": "the Δ bias softplus⁻¹(Δ), Δ log-uniform in [dt_min, dt_max]",
    "weight": "the Δ projection, U(±dt_scale/√dt_rank)",
}


def ssm_parameter(
    model: nn.Module, mod_name: str, module: nn.Module, pname: str, p: Any
) -> ParamPlan | None:
    """Mamba's structured parameters, kept as the model built them (Gu & Dao 2023; Dao & Gu
    2024): a mixer — a module owning ``A_log`` and ``D`` — keeps ``A_log``, ``D`` and (Mamba 2)
    ``dt_bias``, and its ``dt_proj`` Linear (Mamba 1) keeps its weight and bias. They set the
    state's time scales, not a signal's variance: a zero Δ bias (a plain Linear bias rule) gives
    Δ = softplus(·) ≈ 0.7 where Mamba draws 0.001–0.1, and the state forgets at once. Kept
    entries are not assumptions (:data:`KEPT`). None for anything else."""
    owner, key = module, pname
    if mod_name.rsplit(".", 1)[-1] == "dt_proj" and pname in ("weight", "bias"):
        parent = model.get_submodule(mod_name.rsplit(".", 1)[0]) if "." in mod_name else model
        owner = parent
    elif pname not in ("A_log", "D", "dt_bias"):
        return None
    if not is_ssm_mixer(owner):
        return None
    return kept(
        pname,
        p,
        f"{_SSM_KEPT[key]} of {type(owner).__name__}, as the model built it — Mamba's "
        "structured state-space init (Gu & Dao 2023), which sets the state's time scales",
        mod_name,
    )


def position_bias_output(
    model: nn.Module, mod_name: str, module: nn.Module, pname: str, p: Any
) -> ParamPlan | None:
    """Zeros for the weight of the last Linear of a ``continuous_position_bias_mlp`` (Swin v2,
    Liu et al. 2022: the attention's relative position bias is ``16·σ(MLP(coordinates))``), under
    a propagating policy (``auto``): a flat bias at init (``16·σ(0) = 8`` everywhere, which the
    softmax ignores), as Swin's zero bias table and HF's ``N(0, 0.02²)``. Solved like any layer,
    for the sigmoid's operating point, it gave each relative position a random bias (std 4.2,
    0.65 to 14.1) on cosine-attention logits of ±10. None for anything else."""
    if pname != "weight" or not isinstance(module, nn.Linear) or "." not in mod_name:
        return None
    parent = mod_name.rpartition(".")[0]
    if not parent.endswith(("continuous_position_bias_mlp", "cpb_mlp")):  # HF, torchvision
        return None
    linears = [c for c in model.get_submodule(parent).children() if isinstance(c, nn.Linear)]
    if not linears or linears[-1] is not module:
        return None
    return ParamPlan.build(
        pname,
        tuple(p.shape),
        S.zeros(),
        "zeros: the output layer of Swin v2's position-bias MLP, a flat relative position bias "
        "at init (16·σ(0) = 8 everywhere, as Swin's zero table); drawn for the sigmoid it gives "
        "each position a random bias",
        None,
    )


def _functional_sites(pol: Policy, ctx: Context, info: Any) -> dict[int, ParamPlan]:
    """Plans of the raw parameters ``forward`` uses as a layer's weight (and bias), by
    parameter id: each :class:`~initwise.torch.modules.FunctionalLinear` site of the graph
    planned as the layer it computes, under its weight's name."""
    g = info.graph
    out: dict[int, ParamPlan] = {}
    if g is None:
        return out
    for name, m in g.extra.items():
        layer = info.layers.get(name) or LayerInfo(name, m)
        params = {"weight": m.weight}
        if m.bias is not None:
            params["bias"] = m.bias
        gain = m._parameters.get("norm_gain")
        if gain is not None:  # (a weight normalized in forward: its gain, planned below)
            params["norm_gain"] = gain
        if not pol.plans_functional:
            why = (
                f"torch has no default for a raw nn.Parameter; {name} is used in forward as "
                f"{m.call}, and keeps what the model drew"
            )
            for role, p in params.items():
                out.setdefault(id(p), kept(role, p, why, ""))
            continue
        planned = _plan_module(pol, ctx, name, m, layer, params)
        for role, p in params.items():
            e = planned.get(role)
            if e is not None and e.forward_mult is not None:  # (u-μP's unit-scale weights)
                e = ParamPlan(
                    role,
                    tuple(p.shape),
                    None,
                    f"left as is: {pol.name} draws this weight at unit scale with a forward "
                    f"multiplier ×{e.forward_mult:.4g}, which a module carries (an input "
                    f"pre-hook); {name} is used in forward as {m.call}, outside any module: "
                    "write it as an nn.Linear, or add an override",
                )
            c = getattr(m, "factor" if role == "weight" else "bias_factor", 1.0)
            if e is not None and e.scheme is not None and c != 1.0 and e.std != 0:
                e = _read_through(e, c)
            if e is not None and id(p) not in out:  # (a bias shared by several: the first)
                out[id(p)] = e
        w = out.get(id(m.weight))
        if m.unit_norm and w is not None and w.scheme is not None and "norm 1" not in w.reason:
            out[id(m.weight)] = dataclasses.replace(
                w,
                reason=f"{w.reason}; its direction only: forward normalizes each output unit's "
                "weights to norm 1 with no gain (a cosine classifier: NormFace, Wang et al. "
                "2017; CosFace, ArcFace), so any scale gives the same layer",
            )
        if gain is not None and w is not None and w.scheme is not None and w.fan_in:
            norm = (w.std or 0.0) * math.sqrt(w.fan_in)
            out[id(m.weight)] = dataclasses.replace(
                w,
                reason=f"{w.reason}; its direction only: forward normalizes each output unit's "
                f"weights (weight normalization by hand, g·v/‖v‖), so {m.norm_gain_name} sets "
                "the scale",
            )
            out.setdefault(
                id(gain),
                ParamPlan.build(
                    "norm_gain",
                    tuple(gain.shape),
                    S.constant(norm),
                    f"the gain of {name}'s weight, normalized by hand in forward (g·v/‖v‖, "
                    f"Salimans & Kingma 2016): each output unit's weights get norm {norm:.4g} = "
                    "the solved std × √fan_in",
                    None,
                ),
            )
    return out


def _read_through(e: ParamPlan, c: float) -> ParamPlan:
    """``e`` for a parameter ``forward`` multiplies by the number ``c`` before use (an
    equalized learning rate: ``F.linear(x, W·c)``, Karras et al. 2018): the scheme solved for
    the product ``W·c``, drawn at ``1/|c|`` of its scale so that the product gets it."""
    scaled = e.with_scheme(e.scheme.scaled(1.0 / abs(c)), "")  # type: ignore[union-attr]
    return dataclasses.replace(
        scaled,
        reason=f"{e.reason}; forward reads it ×{c:.4g} (an equalized learning rate), so it is "
        f"drawn at 1/{abs(c):.4g} of that: std {scaled.std:.4g}",
        chunks=e.chunks,
        chunk_dim=e.chunk_dim,
        zero_rows=e.zero_rows,
    )


def _kept_loose(
    model: nn.Module, info: Any, tokens: dict[int, tuple[str, str]]
) -> dict[str, tuple[float, float]]:
    """``{name: (E[p²], E[p])}`` of the raw parameters the graph reads (no layer of their own
    owns them) that the plan will leave as the model holds them — no family, state-space,
    token or layer-site rule redraws them — measured as they are: a Perceiver's latent array
    ``q = latents.expand(B, -1, -1)`` added to the cross-attention's output was an unknown
    operand, and the sum took the attention's small output alone (its head, measured on the
    example input's pool, came out at rms 10)."""
    g = info.graph
    if g is None:
        return {}
    names = {n.target for n in g.nodes if n.op == "param"}
    sites = {id(t) for m in g.extra.values() for t in m.parameters()}
    out: dict[str, tuple[float, float]] = {}
    for name, p in model.named_parameters():
        if tokens.get(id(p), ("",))[0] == "learned input" and name in names:
            out[name] = (1.0, 0.0)  # (drawn N(0, 1) by its rule)
            continue
        if name not in names or id(p) in sites or id(p) in tokens:
            continue
        if p.is_meta or not p.is_floating_point() or not p.numel():
            continue
        mod_name, _, pname = name.rpartition(".")
        module = model.get_submodule(mod_name) if mod_name else model
        if module_kind(module) != "unknown":
            continue
        rule = ssm_parameter(model, mod_name, module, pname, p) or loose_parameter(
            model, mod_name, pname, p
        )
        if rule is not None and rule.scheme is not None:
            continue  # (redrawn by its rule)
        t = p.detach().double()
        s2, mu = float(t.pow(2).mean()), float(t.mean())
        if math.isfinite(s2) and math.isfinite(mu):
            out[name] = (s2, mu)
    return out


FAMILY_RULE = "the family's own rule as"
"""Marks the reason of an entry drawn by a family's own rule (:func:`family_parameter`): not
solved for the signal, so the plan's assumptions name it (``strict=True`` raises)."""


def family_parameter(
    model: nn.Module, module: nn.Module, pname: str, p: Any, cache: dict[Any, Any], why: str = ""
) -> ParamPlan | None:
    """A parameter no rule of initwise's covers, in a Hugging Face model: the family's own rule
    read from its ``_init_weights`` (:func:`~initwise.torch.family.family_rules`; DiffLlama's λ
    vectors ``N(0, 0.1²)``, Doge's ``A`` zeros), drawn from initwise's stream. None where the
    family's method sets no whole-parameter rule for it (then: left as is, said). ``cache``
    holds the family's model, its tensors' meta stand-ins and each module's rules for one
    plan."""
    if "owner" not in cache:
        cache["owner"] = family_owner(model)
    owner = cache["owner"]
    if owner is None:
        return None
    if id(module) not in cache:
        if "meta" not in cache:
            cache["meta"] = meta_tensors(owner)
        cache[id(module)] = family_rules(owner, module, cache["meta"])
    found = cache[id(module)].get(pname)
    if found is None:
        return None
    scheme, call = found
    family = type(owner).__name__
    return ParamPlan.build(
        pname,
        tuple(p.shape),
        scheme,
        f"{type(module).__name__}.{pname}: {call}, {FAMILY_RULE} "
        f"{family}._init_weights writes it (no variance rule of initwise's applies{why}) "
        "→ std {std}",
        None,
    )


def loose_parameter(model: nn.Module, mod_name: str, pname: str, p: Any) -> ParamPlan | None:
    """A rule for a parameter that is not a layer's weight but whose family says how it is
    initialized: Hugging Face vision transformers' ``cls_token``, ``position_embeddings``,
    ``mask_token`` and ``distillation_token``, BLIP's ``position_embedding`` and
    ``class_embedding`` parameters — ``trunc_normal_(std=initializer_range)`` as their
    ``_init_weights`` does (ViT, DeiT, BLIP-2), zeros for ``mask_token`` and BLIP-2's
    ``query_tokens``; gpt-oss's attention
    ``sinks`` — ``N(0, initializer_range²)``, as its ``_init_weights``; CLIP's ``class_embedding``
    (``N(0, 1/width)``) and SigLIP's pooling ``probe`` (xavier_uniform) as theirs; CLIP/SigLIP's
    scalar ``logit_scale``/``logit_bias`` kept as built. None otherwise."""
    cfg = getattr(model, "config", None)
    family = type(model).__name__
    if cfg is None:  # torchvision, timm, hand-written: the rules that need no config
        owner = model.get_submodule(mod_name) if mod_name else model
        return _configless_parameter(family, owner, mod_name, pname, p)
    std = float(getattr(cfg, "initializer_range", 0.02))
    if pname in ("logit_scale", "logit_bias") and getattr(p, "ndim", 1) <= 1 and p.numel() == 1:
        return kept(  # CLIP, SigLIP: a learned temperature (and bias) of the similarity
            pname,
            p,
            f"{family}'s learned {pname.replace('_', ' ')} of the similarity logits, as "
            "the model built it (CLIP: log(1/0.07), Radford et al. 2021)",
            mod_name,
        )
    if pname == "position_enc" and getattr(p, "ndim", 0) == 2:  # PatchTST's position table
        if not p.requires_grad:
            why = f"{family}'s fixed sinusoidal position table (not trained), as built"
            return kept(pname, p, why, mod_name)
        return ParamPlan.build(
            pname,
            tuple(p.shape),
            S.normal(0.0, 1.0),
            f"{family} {pname}: N(0, 1), a learned position table as HF's _init_pe draws it",
            None,
        )
    if pname == "gru_rel_pos_const" and getattr(p, "ndim", 0) == 4:
        return kept(  # WavLM's gated relative position bias: a per-head constant
            pname,
            p,
            f"{family}'s per-head constant of the gated relative position bias, as the "
            "model built it (ones; WavLM, Chen et al. 2022)",
            mod_name,
        )
    if pname == "logit_scale" and getattr(p, "ndim", 0) == 3 and tuple(p.shape[1:]) == (1, 1):
        return _cosine_temperature(family, pname, p, mod_name)
    if pname == "class_embedding" and getattr(p, "ndim", 0) == 1:  # CLIP's vision [CLS]
        factor = float(getattr(cfg, "initializer_factor", 1.0))
        std = p.shape[0] ** -0.5 * factor
        return ParamPlan.build(
            pname,
            tuple(p.shape),
            S.normal(0.0, std),
            f"{family} {pname}: N(0, (embed_dim^-½ · initializer_factor)²) as HF CLIP's "
            "_init_weights (a per-token norm follows, so only its direction matters) → std {std}",
            None,
        )
    if is_layer_scale(pname, p):  # CaiT-style layer scale
        value = layer_scale_value(model)
        if value is None:
            return _layer_scale_kept(family, pname, p, mod_name)
        return ParamPlan.build(
            pname,
            tuple(p.shape),
            S.constant(value),
            f"{family} {pname}: the layer scale's config value {value:g} (Touvron et al. 2021): "
            "each branch starts that small",
            None,
        )
    if pname == "masked_spec_embed" and getattr(p, "ndim", 0) == 1:  # Wav2Vec2, HuBERT, WavLM
        return ParamPlan.build(
            pname,
            tuple(p.shape),
            S.uniform(0.0, 1.0),
            f"{family} {pname}: the learned vector masked time steps are replaced with "
            "(SpecAugment in training), U(0, 1) as HF's _init_weights → std {std}",
            None,
        )
    if pname in ("relative_position_bias_table", "attention_biases"):
        return ParamPlan.build(  # Swin, BEiT; LeViT, EfficientFormer: built as zeros
            pname,
            tuple(p.shape),
            S.zeros(),
            f"{family} {pname}: zeros, no relative position bias at init (HF's _init_weights)",
            None,
        )
    if pname == "probe" and getattr(p, "ndim", 0) == 3 and tuple(p.shape[:2]) == (1, 1):
        return ParamPlan.build(  # SigLIP's attention-pooling query
            pname,
            tuple(p.shape),
            S.xavier_uniform(),
            f"{family} {pname}: the attention-pooling query, xavier_uniform over (1, 1, width) "
            "as HF SigLIP's _init_weights → std {std}",
            None,
        )
    if pname == "sinks" and getattr(p, "ndim", 0) == 1:  # gpt-oss: one extra logit per head
        return ParamPlan.build(
            pname,
            tuple(p.shape),
            S.normal(0.0, std),
            f"{family} {pname}: attention-sink logits (one per head, a key every query sees), "
            f"N(0, {std:g}²) (config.initializer_range) as HF's _init_weights → std {{std}}",
            None,
        )
    if pname not in _HF_TOKENS or getattr(p, "ndim", 0) < 2:
        return None
    if pname in ("mask_token", "query_tokens"):
        return ParamPlan.build(
            pname, tuple(p.shape), S.zeros(), f"{family} {pname}: zeros (HF _init_weights)", None
        )
    return ParamPlan.build(
        pname,
        tuple(p.shape),
        S.trunc_normal(0.0, std, -2.0, 2.0),
        f"{family} {pname}: truncated normal std {std:g} (config.initializer_range), bounds "
        "±2 absolute, as HF ViT's _init_weights → std {std}",
        None,
    )


_CLASS_TOKEN = re.compile(r"(cls|class|reg|dist)_token(_?\d+)?")
"""Class tokens: ViT's ``class_token``, timm's ``cls_token`` (and its register and distillation
tokens ``reg_token``, ``dist_token``), CoaT's ``cls_token1``…, CrossViT's ``cls_token_0``…"""
_POSITION_TABLE = re.compile(r"(pos_embed(ding)?|absolute_pos_embed|patch_pos|pixel_pos)(_?\d+)?")
"""Learned position tables: ``pos_embed`` (timm; PiT's and NesT's 4-d ones too),
``pos_embedding`` (torchvision), Swin's ``absolute_pos_embed``, TNT's ``patch_pos``/
``pixel_pos``, CrossViT's ``pos_embed_0``…"""


def _rule(pname: str, p: Any, scheme: Any, why: str) -> ParamPlan:
    """An entry for a loose parameter (no module rule): ``scheme`` with the reason ``why``."""
    return ParamPlan.build(pname, tuple(p.shape), scheme, why, None)


def _layer_scale_kept(family: str, pname: str, p: Any, mod_name: str) -> ParamPlan:
    return kept(pname, p, f"{family}'s layer scale, as built", mod_name)


def _cosine_temperature(family: str, pname: str, p: Any, mod_name: str) -> ParamPlan:
    """Swin v2's learned per-head temperature of its cosine attention, kept as built."""
    why = f"{family}'s learned temperature of the cosine attention logits, one per head, as "
    return kept(pname, p, why + "the model built it (Swin v2: log 10, Liu et al. 2022)", mod_name)


def _noisy_net(owner: nn.Module, pname: str) -> bool:
    """Whether ``pname`` is a mean or noise-scale parameter of a NoisyNet layer (Fortunato et
    al. 2018) as Rainbow implementations write it: ``weight_mu``/``weight_sigma`` (and
    ``bias_…``) beside a ``weight_epsilon`` buffer of the weight's shape."""
    stem, _, part = pname.rpartition("_")
    if part not in ("mu", "sigma") or stem not in ("weight", "bias"):
        return False
    eps, mu = owner._buffers.get(f"{stem}_epsilon"), owner._parameters.get(f"{stem}_mu")
    return eps is not None and mu is not None and tuple(eps.shape) == tuple(mu.shape)


def _configless_parameter(
    family: str, owner: nn.Module, mod_name: str, pname: str, p: Any
) -> ParamPlan | None:
    """:func:`loose_parameter` for a model without a Hugging Face config (torchvision, timm;
    ``owner``: the module holding ``p``): layer scales (named parameters, and modules such as
    timm's MetaFormer ``Scale``), NFNets' ``gain`` of a standardized weight, Swin v2's per-head
    temperature and XCiT's kept as built; relative position
    bias tables (Swin's, MViT v2's decomposed ``rel_pos_h/w/t``, LeViT's ``attention_biases``)
    zeros — no bias at init, as HF's (torchvision draws ``N(0, 0.02²)``); BEiT/EVA's
    ``q_bias``/``v_bias`` zeros; class tokens truncated normal std 0.02 (timm's, HF's) and
    learned position tables ``N(0, 0.02²)`` (torchvision's ViT; timm: truncated normal 0.02).
    None otherwise."""
    ndim = getattr(p, "ndim", 0)
    if is_layer_scale(pname, p) or layer_scale_module(owner) == pname:
        return _layer_scale_kept(family, pname, p, mod_name)
    if pname not in ("weight", "bias") and standardized_gain(owner) is not None:  # NFNets'
        # gain (timm's ScaledStdConv2d, a hand-written WSConv2d: found by probing)
        why = (
            f"the gain of {type(owner).__name__}'s standardized weight (Brock et al. 2021), "
            "as built: the weight is standardized in the forward, its draw's scale cancels"
        )
        return kept(pname, p, why, mod_name)
    if _noisy_net(owner, pname):  # (Rainbow's NoisyLinear: its own init is the paper's)
        why = (
            f"{type(owner).__name__}.{pname}: a NoisyNet layer's mean or noise scale "
            "(Fortunato et al. 2018: μ ~ U(±1/√p), σ = σ₀/√p, the weight μ + σ·ε with ε a "
            "buffer), as built"
        )
        return kept(pname, p, why, mod_name)
    per_head = ndim >= 1 and sum(d > 1 for d in p.shape) <= 1  # (H,), (H, 1, 1), (1, H, 1, 1)
    if pname == "gating_param" and per_head:  # ConViT's GPSA: a per-head gate, as built
        return kept(
            pname, p, f"{family}'s per-head gate of positional attention, as built", mod_name
        )
    if pname in ("height_rel", "width_rel") and ndim == 2:  # BoTNet, HaloNet (timm)
        why = (
            f"{family}'s relative position embedding (q·rel logits), as built (timm: std d_head^-½)"
        )
        return kept(pname, p, why, mod_name)
    if pname == "logit_scale" and per_head:
        return _cosine_temperature(family, pname, p, mod_name)
    tables = ("relative_position_bias_table", "rel_pos_h", "rel_pos_w", "rel_pos_t")
    if (pname in tables or pname == "attention_biases") and ndim == 2:  # (LeViT's last)
        return _rule(
            pname,
            p,
            S.zeros(),
            f"{family} {pname}: zeros, no relative position bias at init (as Hugging Face's "
            "Swin; torchvision draws N(0, 0.02²))",
        )
    if pname == "temperature" and ndim == 3 and tuple(p.shape[1:]) == (1, 1):
        return kept(  # XCiT's cross-covariance attention: a learned temperature per head
            pname, p, f"{family}'s learned attention temperature per head, as built", mod_name
        )
    if pname in ("q_bias", "v_bias") and ndim == 1:  # BEiT, EVA: q and v biases, k has none
        return _rule(pname, p, S.zeros(), f"{family} {pname}: zeros, as a Linear bias")
    if _CLASS_TOKEN.fullmatch(pname) and 1 <= ndim <= 3:
        return _rule(
            pname,
            p,
            S.trunc_normal(0.0, 0.02, -2.0, 2.0),
            f"{family} {pname}: truncated normal std 0.02 (timm's and HF's; not zeros: a zero "
            "token whose attention output scales with its own query — CoaT's factorized "
            "attention — stays zero to the head) → std {std}",
        )
    if _POSITION_TABLE.fullmatch(pname) and ndim >= 2:
        return _rule(
            pname,
            p,
            S.normal(0.0, 0.02),
            f"{family} {pname}: a learned position table, N(0, 0.02²) as torchvision's ViT "
            "(timm: truncated normal 0.02), small beside the unit patch embedding → std {std}",
        )
    return None


def _token_rule(found: tuple[str, str] | None, pname: str, p: Any) -> ParamPlan | None:
    """The rule for a raw parameter :func:`~initwise.torch.functional.structural_parameters`
    found by its use: a class token or position table (:func:`_configless_parameter`'s rules),
    a tied decoder's bias, a feature tokenizer, a score vector, a norm's affine."""
    if found is None:
        return None
    what, how = found
    if what == "bias":  # (a tied decoder's: functional._tied_biases)
        return _rule(pname, p, S.zeros(), f"{how} (tied): zeros, as a layer's bias")
    if what in ("tokenizer weight", "tokenizer bias"):
        half = what == "tokenizer bias" or how == "with a bias"
        std = math.sqrt(0.5) if half else 1.0
        part = "the feature's identity" if what == "tokenizer bias" else "the value"
        return _rule(
            pname,
            p,
            S.normal(0.0, std),
            f"a feature tokenizer's {what.split()[1]} (`x[..., None] * W + b` in forward, each "
            "numeric feature its own embedding; FT-Transformer, Gorishniy et al. 2021): "
            + (
                f"N(0, ½) — {part}, one half of a unit token for a standardized feature"
                if half
                else "N(0, 1), a unit token for a standardized feature"
            )
            + " → std {std}",
        )
    if what == "learned input":
        return _rule(
            pname,
            p,
            S.normal(0.0, 1.0),
            f"a learned input of Linear '{how}' (used only as its input in forward: a "
            "hypernetwork's layer embedding): N(0, 1), a unit input → std {std}",
        )
    if what == "score vector":
        return _rule(
            pname,
            p,
            S.normal(0.0, 1.0 / math.sqrt(int(how))),
            f"a vector the signal is projected on in forward (`x @ v`: a Linear to one output "
            f"— attention scores, Bahdanau's v, GAT's a), contracting {how}: N(0, 1/{how}), "
            "unit scores for a unit input → std {std}",
        )
    if what in ("norm scale", "norm offset scale", "norm shift"):
        ones = what == "norm scale"
        return _rule(
            pname,
            p,
            S.ones() if ones else S.zeros(),
            f"{what.replace('norm ', 'a norm’s ')}: {'ones' if ones else 'zeros'} — it {how}, "
            "which starts as the identity (as a norm module's affine)",
        )
    if what == "learned queries":
        return _rule(
            pname,
            p,
            S.trunc_normal(0.0, 0.02, -2.0, 2.0),
            f"a learned query set (the query of {how} attention call(s) in forward: Perceiver's "
            "latents, Set Transformer's inducing points and seeds): truncated normal std 0.02, "
            "as Hugging Face's Perceiver latents and BLIP-2's query tokens → std {std}",
        )
    if what == "class token":
        return _rule(
            pname,
            p,
            S.trunc_normal(0.0, 0.02, -2.0, 2.0),
            f"a learned token {how} in forward: truncated normal std 0.02, as timm's and HF's "
            "class tokens → std {std}",
        )
    return _rule(
        pname,
        p,
        S.normal(0.0, 0.02),
        f"a learned position table ({how} in forward): N(0, 0.02²) as torchvision's ViT "
        "(timm: truncated normal 0.02), small beside the unit signal → std {std}",
    )


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


def _probed_norm_params(module: nn.Module, params: dict[str, Any]) -> dict[str, ParamPlan]:
    """The parameters of a norm written by hand (:func:`~initwise.torch.modules.probed_norm`):
    a scale ones (zeros where it multiplies by ``1 + w``), a shift zeros — each role measured
    (:func:`~initwise.torch.modules.norm_roles`); a parameter of no measured role is left."""
    cls = type(module).__name__
    centers = "centers and scales" if probed_norm(module) else "scales"
    out = {}
    for pname, role in norm_roles(module).items():
        p = params.get(pname)
        if p is None:
            continue
        scheme, what = {
            "scale": (S.ones(), "scale: ones"),
            "scale+1": (S.zeros(), "scale (1 + w, measured): zeros, a scale of 1"),
            "shift": (S.zeros(), "shift: zeros"),
        }[role]
        why = (
            f"{cls} {what} — a norm written by hand, found by what it does (its output ignores "
            f"the input's scale: it {centers} its input)"
        )
        out[pname] = ParamPlan.build(pname, tuple(p.shape), scheme, why, None)
    return out


def _plan_module(
    pol: Policy,
    ctx: Context,
    name: str,
    module: nn.Module,
    layer: LayerInfo,
    params: dict[str, Any],
) -> dict[str, ParamPlan]:
    kind = module_kind(module)
    if probed_norm(module) is not None:  # a norm written by hand
        return _probed_norm_params(module, params)
    if probed_activation(module) is not None:  # an activation with learned parameters
        cls = type(module).__name__
        return {
            pname: kept(
                pname,
                p,
                f"a parameter of the activation {cls} (found by what it does: it acts "
                "elementwise, every channel alike), the model's choice: as built",
                name,
            )
            for pname, p in params.items()
        }
    if kind == "norm":
        out = {}
        for pname, p in params.items():
            e = pol.norm(ctx, name, module, layer, pname, tuple(p.shape))
            if e is not None:
                out[pname] = e
        return out
    if kind == "prelu":
        w = params["weight"]
        return {
            "weight": ParamPlan.build(
                "weight", tuple(w.shape), S.constant(0.25), "PReLU slope: torch's 0.25", None
            )
        }
    if kind == "rnn":
        return pol.recurrent(ctx, name, module, params)
    if kind == "mha":
        return pol.attention(ctx, name, module, layer, params)
    if kind == "experts":
        return _plan_experts(pol, ctx, name, module, layer, params)
    if kind == "grn" and is_affine(module):  # x·α + β: α = 1, β = 0, the identity
        scale = AFFINES[type(module).__name__][0]
        return {
            pname: ParamPlan.build(
                pname,
                tuple(p.shape),
                S.ones() if pname == scale else S.zeros(),
                f"{type(module).__name__} {pname}: {'ones' if pname == scale else 'zeros'} — an "
                "elementwise affine (ResMLP's x·α + β, HGNetV2's learnable affine block) starts "
                "as the identity",
                None,
            )
            for pname, p in params.items()
        }
    if kind == "grn":  # γ = β = 0: the layer starts as the identity (ConvNeXt-V2's own init)
        return {
            pname: ParamPlan.build(
                pname,
                tuple(p.shape),
                S.zeros(),
                f"{type(module).__name__} {'γ' if pname == 'weight' else 'β'}: zeros — global "
                "response normalization x + γ·(x·N(x)) + β starts as the identity (Woo et al. "
                "2023)",
                None,
            )
            for pname, p in params.items()
        }
    if kind == "unknown":
        return {}
    w = params.get("weight")
    if w is None or w.ndim < 2:
        return {}
    if not w.numel():
        return _empty_layer(module, params)
    site = weight_site(pol, name, module, kind, layer, tuple(w.shape))
    out = {"weight": _einsum_matrix(module, pol.weight(ctx, site))}
    b = params.get("bias")
    if b is not None:
        out["bias"] = pol.bias(ctx, site, tuple(b.shape))
    return out


def _empty_layer(module: nn.Module, params: dict[str, Any]) -> dict[str, ParamPlan]:
    """A layer whose weight has no elements (``nn.Linear(0, n)``, or ``nn.Linear(8, 0)`` — an
    adaptive softmax's tail projection of ``in_features // div_value**k`` rows, 0 at a small
    width): nothing to draw for the weight; a bias of a layer with no inputs is the layer's
    whole output and starts at zero (torch's own bound ``1/√fan_in`` is 0 there)."""
    cls = type(module).__name__
    out = {}
    for pname, p in params.items():
        if not p.numel():
            out[pname] = ParamPlan(
                pname, tuple(p.shape), None, f"{cls}.{pname} has no elements: nothing to draw", None
            )
        elif pname == "bias":
            out[pname] = ParamPlan.build(
                pname,
                tuple(p.shape),
                S.zeros(),
                f"{cls} has no inputs (a weight of shape {tuple(params['weight'].shape)}): its "
                "output is this bias alone, zeros (torch's bound 1/√fan_in is 0 at fan_in 0)",
                None,
            )
    return out


def _einsum_matrix(module: nn.Module, planned: ParamPlan) -> ParamPlan:
    """``planned`` for a :class:`~initwise.torch.modules.FunctionalEinsum` weight with a scheme
    that needs the whole matrix: orthogonal is drawn on the layer's own matrices — the view
    ``(heads, output dims, contracted dims)``, one ``(out, in)`` matrix per head, as
    ``nn.Linear``'s — since its default view ``shape[0] × ∏ shape[1:]`` is the layer's matrix
    only by chance; any other such scheme (eye, sparse…) is left as is, with the reason."""
    if not isinstance(module, FunctionalEinsum) or planned.scheme is None:
        return planned
    if planned.scheme.dist(planned.block_shape) is not None:
        return planned
    if isinstance(planned.scheme, S.Orthogonal):
        view = (module.batch_dims, module.out_dims, module.in_dims)
        scheme = dataclasses.replace(planned.scheme, view=view)
        std = scheme.std(planned.shape)
        reason = planned.reason
        if planned.std is not None:
            reason = reason.replace(f"→ std {planned.std:.4g}", f"→ std {std:.4g}")
        heads = " per head" if module.batch_dims else ""
        reason += f" (drawn{heads} as the layer's (out, in) matrix: {scheme.formula()})"
        return dataclasses.replace(planned.with_scheme(scheme, reason), gain=planned.gain)
    shape = tuple(module.weight.shape)
    return ParamPlan(
        planned.name,
        shape,
        None,
        f"left as is: {planned.scheme.label} needs the layer's whole matrix, and the "
        f"{len(shape)}-D weight of {module.call} is not one; add an override with an "
        "elementwise or orthogonal scheme",
        planned.layer,
    )


UNREAD_LAYOUT = (
    "neither an is_transposed flag nor the model width (hidden_dim/hidden_size) tells which side "
    "is its input"
)
"""Why an expert stack's fans are unknown (:func:`_plan_experts`): the family's own rule is then
used where it has one (:func:`family_parameter`; JetMoE's ``N(0, initializer_range²)``)."""


def _plan_experts(
    pol: Policy,
    ctx: Context,
    name: str,
    module: nn.Module,
    layer: LayerInfo,
    params: dict[str, Any],
) -> dict[str, ParamPlan]:
    """A MoE experts module's ``(E, ·, ·)`` stacks: each expert's matrix planned as a Linear with
    its per-expert fans (:func:`~initwise.torch.modules.expert_fans`) — the input-side stacks
    followed by the experts' activation (``act_fn``), the output side by what follows the
    block — and their ``(E, ·)`` biases by the policy's bias rule. Schemes that need the whole
    matrix (orthogonal…) would mix the experts: those stacks are left as is, with the reason."""
    e = num_experts(module)
    inner = expert_activation(module) or LINEAR
    single = expert_layer(module) is not None  # (one stack: solved under the module's name)
    out: dict[str, ParamPlan] = {}
    sites: dict[str, WeightSite] = {}
    for pname, p in params.items():
        if p.ndim != 3 or p.shape[0] != e:
            continue
        shape = tuple(p.shape)
        how = expert_stack(module, pname, shape)
        if how is None:
            out[pname] = ParamPlan(
                pname,
                shape,
                None,
                f"left as is: {type(module).__name__}.{pname} is a stack of {e} expert "
                f"matrices {shape[1]}×{shape[2]}, and {UNREAD_LAYOUT}; add an override for it",
                name,
            )
            continue
        f, chunks, chunk_dim, extra = expert_fans(shape, how)
        out_side = how[0]
        label = name if single else f"{name}.{pname}"
        sub = dataclasses.replace(
            layer,
            name=label,
            activation=layer.activation if out_side else inner,
            last_in_branch=layer.last_in_branch and out_side,
            norm_after=layer.norm_after and out_side,
        )
        head = f"{type(module).__name__} '{label}': fan_in {f.fan_in:g}{extra}"
        site = WeightSite(
            label,
            module,
            "experts",
            sub,
            sub.activation or LINEAR,
            shape,
            f,
            chunks,
            chunk_dim,
            head,
        )
        planned = pol.weight(ctx, site)
        if planned.scheme is not None and planned.scheme.dist(planned.block_shape) is None:
            planned = ParamPlan(
                pname,
                shape,
                None,
                f"left as is: {planned.scheme.label} needs the whole matrix, and drawn over "
                f"the ({e}, {shape[1]}, {shape[2]}) stack it would mix the {e} experts; add "
                "an override for it",
                name,
            )
        out[pname] = planned
        sites[pname] = site
    for pname, p in params.items():  # (E, out) biases: gate_up_proj_bias, down_proj_bias…
        owner = pname[: -len("_bias")] if pname.endswith("_bias") else None
        if owner in sites and p.ndim == 2 and p.shape[0] == e:
            out[pname] = pol.bias(ctx, sites[owner], tuple(p.shape))
    return out


def weight_site(
    pol: Policy, name: str, module: nn.Module, kind: str, layer: LayerInfo, shape: tuple[int, ...]
) -> WeightSite:
    """What a policy needs to decide one weight matrix (fans, activation, reason head)."""
    f, chunks, chunk_dim, extra = weight_fans(kind, module, shape, name)
    site = PZ.site_of(module, "weight")
    kept = site.kept_fractions() if site is not None and chunks == 1 else None  # pruned
    masked = weight_mask(module) if kept is None and chunks == 1 else None
    if masked is not None:  # a fixed mask the layer's own forward applies (PixelCNN, MADE)
        kept = kept_fractions(masked[1])
    if kept is not None:
        # a unit of a pruned layer sums only its kept inputs: Var[y] = kept·Var[w]·E[x²], so a
        # fan-based rule divides by the kept fan (sparsity-aware init; Evci et al. 2022)
        k_in, k_out = kept if kind not in ("conv_transpose", "conv1d_hf") else kept[::-1]
        dense = f
        f = Fans(f.fan_in * k_in, f.fan_out * k_out)
        how = f"masked by its buffer '{masked[0]}'" if masked is not None else "pruned"
        extra += (
            f" ({how}: the kept fans, {k_in:.3g} of fan_in {dense.fan_in:g} and {k_out:.3g} "
            f"of fan_out {dense.fan_out:g} on average)"
        )
    head = f"{type(module).__name__} '{name}': fan_in {f.fan_in:g}{extra}"
    if layer.activation is None and pol.describes_tracing:
        head += " (not reached by tracing: assumed linear)"
    if layer.activation_note:
        head += f" ({layer.activation_note})"
    zero_rows: tuple[int, ...] = ()
    if kind == "embedding" and getattr(module, "padding_idx", None) is not None:
        zero_rows = (int(module.padding_idx),)
    rows = row_fans(masked[1]) if masked is not None and kind in ("linear", "conv") else ()
    if rows:
        lo, hi = min(r for r in rows if r > 0), max(rows)
        head += (
            f"; its rows keep {lo:g} to {hi:g} inputs, each drawn at √(mean/own) of the "
            "mean row's std (every unit at the same variance)"
        )
    return WeightSite(
        name,
        module,
        kind,
        layer,
        layer.activation or LINEAR,
        shape,
        f,
        chunks,
        chunk_dim,
        head,
        zero_rows,
        _row_scales(rows),
    )


def _row_scales(rows: tuple[float, ...]) -> tuple[float, ...]:
    """``√(mean kept fan / the row's kept fan)`` per row (1 for a row that keeps nothing)."""
    kept = [r for r in rows if r > 0]
    if not kept:
        return ()
    mean = sum(kept) / len(kept)
    return tuple(math.sqrt(mean / r) if r > 0 else 1.0 for r in rows)
