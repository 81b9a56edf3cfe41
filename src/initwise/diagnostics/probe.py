r"""``diagnose``: one forward and one backward pass with hooks, per-layer statistics, the
mean-field prediction next to each measurement, and a verdict.

For every weight layer (in execution order) the report holds the second moment of its input
``E[x²]``, the mean/std/second moment ``q`` of its output (the pre-activation), the fraction of
dead units (zero after the activation for the whole batch) and of saturated outputs
(``|tanh| > 0.99``, sigmoid outside [0.01, 0.99]), the std of the gradient at its output and of
its weight gradient, and its weight std. Theory (:mod:`initwise.math.meanfield`):

* local: ``q̂ = fan_in·E[w²]·E[x²] + E[b²]`` — what the layer itself should do;
* chain (plain feed-forward nets without norms or residual branches): the variance map iterated
  from the first layer's input, ``q̂_{l+1} = σ_w²·E[φ(√q̂_l z)²] + σ_b²``, and the gradient
  variance back-propagated from the last layer, ``δ̂_l = δ̂_{l+1}·fan_out·E[w²]·E[φ'(√q_l z)²]``;
* ``χ_l = fan_out_{l+1}·E[w_{l+1}²]·E[φ_l'(√q_l z)²]``, the per-layer gradient gain.

The model's weights, gradients, buffers (BatchNorm running statistics) and train/eval mode are
restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import inf
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import _validate as v
from ..math.meanfield import ChainLayer, chis, propagate
from ..plan import AssumptionWarning
from ..torch.batch import (
    NonFiniteError,
    ProbeError,
    check_batch,
    first_tensor,
    kept_modes,
    run_model,
    seeded_rng,
    tensors,
)
from ..torch.capture import SiteCalls, run_sites
from ..torch.graph import LINEAR, Act, ModelInfo, downstream
from ..torch.inspection import inspect_model
from ..torch.modules import (
    FunctionalConv,
    FunctionalEinsum,
    FunctionalLinear,
    check_materialized,
    few,
    has_parametrizations,
    is_norm,
    is_weight_layer,
    nested_unwrapped,
    not_a_module,
    probed_norm,
    unwrap,
    weight_fans,
)
from ..torch.modules import kind as module_kind
from ..torch.moments import norm_follows
from ..torch.threads import held_to_free, intra_op_threads
from .render import render_text, report_table

VERDICTS = ("healthy", "vanishing", "exploding", "saturated", "dead", "zero-init")


__all__ = [
    "VERDICTS",
    "JacobianSpectrum",
    "LayerStats",
    "NonFiniteError",
    "ProbeError",
    "Report",
    "diagnose",
    "run_model",
    "torch_activation",
]


def torch_activation(act: Act) -> Callable[[torch.Tensor], torch.Tensor]:
    """``act`` as a torch function (for post-activation statistics), from the activation
    registry; an activation that is not registered raises (never silently the identity)."""
    return act.torch_fn()


@dataclass
class LayerStats:
    """Measurements, predictions and verdict for one weight layer."""

    name: str
    kind: str
    activation: str
    fan_in: float | None
    fan_out: float | None
    weight_std: float
    weight_m2: float
    bias_m2: float
    in_m2: float
    out_mean: float
    out_std: float
    out_m2: float
    post_m2: float
    dead: float
    saturated: float
    grad_std: float | None = None
    weight_grad_std: float | None = None
    pred_local: float | None = None
    pred_chain: float | None = None
    pred_grad_chain: float | None = None
    chi: float | None = None
    verdict: str = "healthy"
    suggestion: str = ""
    zero_weight: bool = False
    """Its weight is all zero (a residual branch end, read-out or table zero-initialized)."""

    @property
    def deviation(self) -> float | None:
        """``|log2(q / q̂_local)|``: how far the layer is from its own theory (in doublings)."""
        if not self.pred_local or self.out_m2 <= 0:
            return None
        r = self.out_m2 / self.pred_local
        return abs(math.log2(r)) if math.isfinite(r) and r > 0 else math.inf


@dataclass
class JacobianSpectrum:
    """Singular values of the input–output Jacobian at one example (Saxe 2013; Pennington 2017).
    Dynamical isometry: all singular values near 1."""

    singular_values: list[float]

    @property
    def mean_sq(self) -> float:
        s = self.singular_values
        return sum(x * x for x in s) / len(s)

    @property
    def condition(self) -> float:
        s = [x for x in self.singular_values if x > 0]
        return max(s) / min(s) if s else math.inf


@dataclass
class Report:
    """Result of :func:`diagnose`."""

    model: str
    layers: list[LayerStats]
    verdict: str
    summary: str
    chain_theory: bool
    method: str
    loss: float
    jacobian: JacobianSpectrum | None = None
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [dict(asdict(s), deviation=s.deviation) for s in self.layers]
        return d

    def table(self) -> Any:
        return report_table(self)

    def render(self, width: int = 180) -> str:
        return render_text(self, width)

    def __str__(self) -> str:
        return self.render()


def _m2(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).mean())


def _units_dim(out: torch.Tensor, module: nn.Module) -> int:
    if isinstance(module, (nn.modules.conv._ConvNd, FunctionalConv)) and out.ndim > 2:
        return 1
    return out.ndim - 1


def diagnose(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    *,
    train: bool | None = None,
    jacobian: bool = False,
    tol: float = 10.0,
    seed: int = 0,
    label: str = "",
) -> Report:
    """Probe signal propagation through ``model`` on ``batch``.

    Args:
        model: any module the planner supports (CPU or CUDA).
        batch: the input (tensor, tuple of positional args, or dict of kwargs).
        loss_fn: maps the model output to a scalar; default ``⟨output, r⟩`` with ``r ~ N(0, 1)``
            (seeded), which sends unit-variance gradients back from the output.
        train: run in train (True) or eval (False) mode; default the model's current mode.
        jacobian: also compute the input–output Jacobian's singular values at the first example
            (small models only: it costs one backward pass per output element).
        tol: a layer whose forward second moment (or gradient std) differs from the first
            layer's (last layer's) by more than this factor is vanishing/exploding.
        seed: seed of the default loss's random projection and of random layers run in train
            mode (dropout draws the same masks on every call); torch's global random state is
            left as it was.
        label: name of this run in plots and reports (e.g. the init policy).

    Returns:
        a :class:`Report`; ``print(report)`` shows the table.
    """
    if not isinstance(model, nn.Module):
        raise not_a_module(model)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 1 or tol == inf:
        raise ValueError(
            f"diagnose: tol must be a finite number > 1 (a factor, e.g. 10), got {tol!r}"
        )
    jacobian = v.boolean("jacobian", jacobian, where="diagnose")
    seed = v.seed(seed, where="diagnose", torch_range=True)
    train = None if train is None else v.boolean("train", train, where="diagnose")
    check_batch(batch)
    made = [
        n
        for n, q in model.named_parameters()
        if not isinstance(q, nn.parameter.UninitializedParameter) and q.is_inference()
    ]  # (a lazy module's are refused, with their own message, once the model is unwrapped)
    if made:
        raise ValueError(
            f"diagnose: parameter {made[0]!r}"
            + (
                f" and {len(made) - 1} more are inference tensors"
                if len(made) > 1
                else " is an inference tensor"
            )
            + " (made under torch.inference_mode()), which autograd cannot use, and diagnose "
            "measures gradients — build the model outside inference mode, or clone its "
            "parameters (p.data = p.clone() outside inference mode)"
        )
    # (compiled models and blocks: the modules they compile are run and hooked, under their
    # names; dynamo refuses a forward under a function mode)
    with held_to_free(), nested_unwrapped(unwrap(model)) as inner:  # (busy cores: see cpus)
        return _diagnose(inner, batch, loss_fn, train, jacobian, tol, seed, label)


def _diagnose(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[[Any], torch.Tensor] | None,
    train: bool | None,
    jacobian: bool,
    tol: float,
    seed: int,
    label: str,
) -> Report:
    """:func:`diagnose` on the unwrapped model, its arguments checked."""
    named = list(model.named_parameters())
    check_materialized(model, "diagnose", named)  # running it would create them: a change
    first = tensors(batch)[0]
    if first.dim() and first.shape[0] < 2:
        warnings.warn(
            f"diagnose: a batch of {first.shape[0]} example: statistics over one example are "
            "noisy and BatchNorm in train mode normalizes it to zero; use ≥ 32 examples",
            stacklevel=3,
        )
    # dropout in train mode: seeded, the global state restored; each submodule's mode given back
    with seeded_rng(seed), kept_modes(model):
        info = inspect_model(model, batch)  # tracing by running restores norm statistics itself
        buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
        params = [p for _, p in named]
        grads = [p.grad for p in params]
        names = {m: n for n, m in model.named_modules()}
        in_place = _changed_in_place(model, info)
        records: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        handles = []

        feeds, last = _feeds(info)
        mixed = _mixed_by_data(info)  # (Â @ h before the activation: φ(y) is not what runs)
        fed_by = {v: k for k, v in feeds.items()}

        def hook(module: nn.Module, args: tuple, out: Any) -> None:
            # The output's sums are taken now, as the layer gave it (an in-place activation or
            # `h += x` may change it later), and the output is kept only as long as its
            # post-activation may still be needed: until the next layer takes it as its input
            # (a chain Linear → act → Linear), never where the activation is linear. Keeping
            # every layer's output to the end took memory the allocator gave back after each
            # call and took again on the next, page by page (~2.6 µs a page fault on the 2-core
            # VM: ~1,000 more faults a call on a 20×256 MLP than one forward+backward). The
            # gradient at the output comes from a tensor hook registered now: it sees the
            # gradient at this value (not at an overwritten one) and reduces it as backward
            # produces it.
            name = names[module]
            y = out if type(out) is torch.Tensor else first_tensor(out)  # (the common case)
            x = args[0] if args and type(args[0]) is torch.Tensor else first_tensor(args)
            if y is None or not y.is_floating_point() or name in records:
                return
            act = (info.layers.get(name).activation if name in info.layers else None) or LINEAR
            if name in mixed:
                act = LINEAR
            yd = y.detach()
            rec: dict[str, Any] = {"module": module, "act": act, "y_shape": yd.shape}
            rec["y_sums"] = _sums_now(yd)
            if act.module is not None or act.name != "linear":  # φ(y) may be needed later
                rec["y"], rec["y_version"] = yd, yd._version
            rec["x"] = x.detach() if x is not None and x.is_floating_point() else None
            rec["x_version"] = rec["x"]._version if rec["x"] is not None else None
            fed = fed_by.get(name)  # (no "" default: "" names a root layer)
            prev = records.get(fed) if fed is not None else None
            if prev is not None and rec["x"] is not None and rec["x"].shape == prev["y_shape"]:
                prev.pop("y", None)  # its post-activation is this layer's input
            if has_parametrizations(module) and "weight" in module.parametrizations:
                rec["weight"] = module.weight  # cached: the tensor this forward computed with
            if name in in_place:
                rec["act_in_place"] = in_place[name]
            if y.requires_grad:  # the gradient at this value, reduced as backward produces it
                handles.append(y.register_hook(lambda g, rec=rec: _grad_sums(rec, g)))
                rec["hooked"] = True
            records[name] = rec
            order.append(name)

        # raw parameters used as a layer's weight (x @ W + b) run in no module: a function
        # mode sees their products and gives them to the same hook, as a module's output (a
        # module whose own parameters are all such layers' is not a layer itself)
        sites = run_sites(info.graph)
        covered = {id(p) for m in sites.values() for p in m.parameters()}
        for m in names:
            if is_weight_layer(m) and not isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                if probed_norm(m) is not None:
                    continue  # (a norm written by hand under another name: no layer)
                own = [id(p) for p in m._parameters.values() if p is not None]
                if not (own and covered.issuperset(own)):
                    handles.append(m.register_forward_hook(hook))
        names.update({m: n for n, m in sites.items()})

        def site_hook(name: str, layer: nn.Module, x: Any, out: Any, again: Any, w: Any) -> Any:
            hook(layer, (x,), out)
            rec = records.get(name)
            if rec is not None and isinstance(layer, FunctionalLinear) and out.dim() >= 2:
                n_out = layer.weight.shape[0 if layer.layout == "out_in" else 1]
                if out.shape[-1] != n_out and out.shape[-2] == n_out:
                    rec["units_dim"] = out.dim() - 2  # (`W @ x`: the units are the rows)
            elif rec is not None and isinstance(layer, FunctionalEinsum):
                rec["units_dim"] = layer.unit_dims(out.dim())  # (heads × outputs)
            return out

        watch = SiteCalls(sites, site_hook) if sites else contextlib.nullcontext()
        try:
            if train is not None:
                model.train(train)
            with torch.enable_grad():
                with parametrize.cached(), watch:  # a parametrized weight computed once
                    out = run_model(model, batch)
                changed = [
                    n
                    for n in order
                    if n not in in_place
                    and "y" in records[n]
                    and records[n]["y"]._version != records[n]["y_version"]
                ]
                for n in changed:  # fx reads `h += x` as `h + x`: recompute what the layer gave
                    _recompute_output(records[n])
                # the forward half of every layer's statistics now, then its output released (the
                # gradient comes from a tensor hook): kept until after backward, every layer's
                # output and gradient raised the peak memory, which the allocator gave back at the
                # end and took again (page faults) on every call
                if last in records and isinstance(out, torch.Tensor):  # (a raw product that
                    records[last]["post"] = out.detach()  # ran unseen: not recorded)
                threads = _reduction_threads(records, order)
                known_sq: dict[str, torch.Tensor] = {}  # Σx² of inputs that are a post-activation
                scratch: dict[Any, torch.Tensor] = {}  # temporaries' buffers, one per shape
                with intra_op_threads(threads):
                    for name in order:
                        fed_name = feeds.get(name)  # (not a "" default: "" names a root layer)
                        nxt = records.get(fed_name) if fed_name is not None else None
                        x_next = (
                            nxt.get("x") if nxt is not None else records[name].pop("post", None)
                        )
                        fwd = _forward_reductions(
                            records[name], x_next, known_sq.pop(name, None), scratch
                        )
                        if fwd and fed_name is not None:
                            known_sq[fed_name] = records[name]["vals"][4]
                _check_finite(records, order)
                y = first_tensor(out)
                if y is None:
                    raise ValueError(
                        "the model returned no tensor; pass loss_fn to say what to use"
                    )
                if loss_fn is None:
                    r = torch.randn(
                        y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32
                    ).to(device=y.device, dtype=y.dtype)
                    loss = (y * r).sum()
                else:
                    loss = loss_fn(out)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ValueError("loss_fn must return a scalar tensor")
                if not torch.isfinite(loss.detach()).all():
                    raise NonFiniteError(
                        f"the loss is {float(loss.detach())} on this batch: gradients would be "
                        "non-finite and every verdict meaningless; check loss_fn and the batch"
                    )
                if loss.requires_grad:
                    _gradients(loss, records, order, model, batch)
            scale_free = _scale_free(model, info)  # (in the modes it ran in)
            pending = []
            with intra_op_threads(threads):
                for name in order:
                    pending.append(_backward_reductions(records[name]))
                if pending:  # every statistic of every layer read back in one conversion
                    values = torch.stack([t for p in pending for t in p[0]]).double().tolist()
            for i, (_, finish) in enumerate(pending):
                finish(values[i * _N_STATS : (i + 1) * _N_STATS])
            jac = _jacobian(model, batch) if jacobian else None
        finally:
            for h in handles:
                h.remove()
            for p, g in zip(params, grads, strict=True):  # (autograd.grad leaves them; a
                if p.grad is not g:  # forward or loss_fn that wrote one is undone)
                    p.grad = g
            with torch.no_grad():
                for k, b in model.named_buffers():
                    if k in buffers:
                        b.copy_(buffers[k])
    layers = _stats(records, order, info)
    for st in layers:
        st._scale_free = st.name in scale_free  # type: ignore[attr-defined]
    skipped = _chain_skipped(info, layers)
    chain = skipped is None
    if chain:
        _chain_theory(layers)
    zeros = _zero_weights(model) if any(s.grad_std == 0 for s in layers) else []
    verdict, summary = _verdicts(layers, tol, zeros)
    notes = (
        [] if chain else [f"chain theory skipped: {skipped} (the local prediction still applies)"]
    )
    raw = {n: m for n, m in sites.items() if n not in records}
    if raw:  # (a product of a form the function mode does not know, or not reached)
        how = [f"{n} ({getattr(m, 'call', type(m).__name__)})" for n, m in raw.items()]
        notes.append(
            f"not measured: {few(how)} — layers computed in forward from their weight (a raw "
            "parameter, or a module's own weight used through a function) whose product did "
            "not run on this batch in a form diagnose recognizes (the weight, a view or a copy "
            "of it in matmul/mm/addmm/F.linear/einsum/F.convNd): call them as modules to see "
            "them"
        )
        warnings.warn(f"diagnose: {notes[-1]}", UserWarning, stacklevel=3)
    unreached = [
        s.name
        for s in layers
        if s.weight_grad_std is None and getattr(_weight(records[s.name]), "requires_grad", False)
    ]
    if not loss.requires_grad:  # (no weight is trainable, or none reaches the loss)
        notes.append(
            "the loss does not depend on anything that requires grad (every parameter frozen, "
            "or the output computed under torch.no_grad()): no gradients were measured, and the "
            "verdict is the forward pass's only"
        )
    if unreached and loss.requires_grad:
        notes.append(
            f"no gradient from the loss reaches the weight of {', '.join(map(repr, unreached))}, "
            "which is trainable: in training it would not change (a detach or torch.no_grad() "
            "on the way, or reentrant checkpointing with no input that requires grad)"
        )
        warnings.warn(f"diagnose: {notes[-1]}", UserWarning, stacklevel=3)  # a finding
    if changed:
        lost = [n for n in changed if not records[n].get("recomputed")]
        notes.append(
            f"the output of {', '.join(repr(n) for n in changed)} was changed in place after the "
            "layer by an operation not recognized as in-place (e.g. `h += x`, which fx reads "
            "as `h + x`): its output statistics are those the layer gave (taken as it ran), "
            "its activation's were recomputed from the layer's input (its gradient is the one "
            "at the layer's own output, as for any layer)"
            + (
                f"; for {', '.join(repr(n) for n in lost)} the input had changed too, so the "
                "activation's statistics are those of the changed tensor"
                if lost
                else ""
            )
        )
        warnings.warn(f"diagnose: {notes[-1]}", AssumptionWarning, stacklevel=3)  # not only a note
    return Report(
        type(model).__name__,
        layers,
        verdict,
        summary,
        chain,
        info.method,
        float(loss.detach()),
        jac,
        label,
        notes,
    )


SMALL_REDUCTION = 1 << 17
"""Elements below which the statistics' reductions run on one intra-op thread
(:func:`_reduction_threads`)."""


def _reduction_threads(records: dict[str, dict[str, Any]], order: list[str]) -> int | None:
    """1 where every recorded CPU tensor is below :data:`SMALL_REDUCTION` elements, else None
    (torch's setting). The ~13 reductions per layer are each too small to repay splitting over
    threads: measured on the 2-core VM with both cores busy (two experiment workers), `diagnose`
    of a 20×256 MLP took 2.8× one forward+backward with the default threads and 1.0× with one;
    idle the same (1.8×); a CNN's 512 Ki-element layers were slower on one thread idle (1.5× →
    1.8×), hence the threshold."""
    for n in order:
        rec = records[n]
        x, s1 = rec.get("x"), rec["y_sums"][0]
        if s1.device.type != "cpu" or rec["y_shape"].numel() >= SMALL_REDUCTION:
            return None
        if isinstance(x, torch.Tensor) and (x.device.type != "cpu" or x.numel() >= SMALL_REDUCTION):
            return None
    return 1


_IN_PLACE_OPERATORS = ("iadd", "isub", "imul", "itruediv", "ipow", "setitem")
"""In-place operators a graph records under their own name (``h += x``; ``h[i] = v``, a
``setitem`` node in run traces since 2026-12-05)."""


def _scale_free(model: nn.Module, info: ModelInfo) -> set[str]:
    """Weight layers whose output reaches only normalizations that remove its scale as the
    model runs now (:func:`~initwise.torch.moments.norm_follows`; a BatchNorm in eval mode with
    running statistics is an affine map, not one): their weight's scale cancels, so a
    gradient that grows or shrinks on its way to them is no matter of their init."""
    g = info.graph
    if g is None:
        return set()
    users = g.users()
    modules = dict(model.named_modules())
    out: set[str] = set()
    for idx in norm_follows(info):
        stack, seen, norms = list(users[idx]), set(), []
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if info.kinds[i] == "norm":
                norms.append(modules.get(str(g.nodes[i].target)))
            elif info.kinds[i] == "other":
                stack.extend(users[i])
        running = [
            m
            for m in norms
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not m.training
            and m.track_running_stats
        ]
        if norms and not running:
            out.add(str(g.nodes[idx].target))
    return out


def _changed_in_place(model: nn.Module, info: ModelInfo) -> dict[str, bool]:
    """Weight layers whose output the next operation changes in place — a module with
    ``inplace=True`` (``nn.ReLU(inplace=True)``, torchvision's default), a function called with
    ``inplace=True``, a trailing-underscore method (``relu_``) or an in-place operator
    (``+=``) — each with whether that operation is the layer's activation."""
    g = info.graph
    if g is None:
        return {}
    users = g.users()
    out: dict[str, bool] = {}
    for n in g.nodes:
        if n.op != "module" or info.kinds[n.idx] != "weight":
            continue
        for u in users[n.idx]:
            node = g.nodes[u]
            if node.op == "module":
                try:
                    hit = getattr(model.get_submodule(node.target), "inplace", False) is True
                except AttributeError:
                    hit = False
            else:
                name = str(node.target)
                hit = (
                    node.kwargs.get("inplace") is True
                    or (name.endswith("_") and not name.endswith("__"))
                    or name in _IN_PLACE_OPERATORS
                )
            if hit:
                out[n.target] = out.get(n.target, False) or info.kinds[u] == "act"
    return out


def _recompute_output(rec: dict[str, Any]) -> None:
    """The layer's own output again, from its kept input (unchanged since the hook), for a
    kept output something changed in place later, so that the activation's statistics are
    computed from what the layer gave (its own ``Σy``, ``Σy²`` were taken in the hook).
    ``module.forward`` skips the hooks; a weight layer is deterministic."""
    x = rec["x"]
    if x is None or x._version != rec["x_version"]:
        return
    with torch.no_grad():
        y = first_tensor(rec["module"].forward(x))
    if isinstance(y, torch.Tensor) and y.shape == rec["y"].shape:
        rec["y"], rec["y_version"] = y, y._version
        rec["recomputed"] = True


def _sums_now(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σt, Σt²)`` as 0-d float32 tensors, taken inside the forward or backward pass (in a
    hook, while the tensor is in cache), on torch's own threads. (Same-process A/B on the
    2-core VM, 20×256 MLP: scoping each hook's reductions to one intra-op thread was 2–8 %
    slower than this, idle and beside a busy process — every switch makes the next layer's
    product re-form the thread team; NumPy's one-thread float32 sum was slower still.)"""
    s, sq = _sums(t.detach().float())
    return s, sq


def _check_finite(records: dict[str, dict[str, Any]], order: list[str]) -> None:
    """Raise :class:`NonFiniteError` naming the first layer whose output has Inf/NaN, from the
    output sums :func:`_forward_reductions` took (Inf/NaN propagate into a sum; one
    read-back for all layers)."""
    if not order:
        return
    sums = [records[n]["vals"][2] for n in order]
    device = sums[0].device
    bad = (~torch.isfinite(torch.stack([t.to(device) for t in sums]))).tolist()
    for name, b in zip(order, bad, strict=True):
        if b:
            raise NonFiniteError(
                f"layer {name!r} produced non-finite values (Inf/NaN) on this batch: the "
                "initialization explodes — re-initialize (e.g. initwise.torch.init_model)"
            )


def _weight(rec: dict[str, Any]) -> Any:
    """The layer's weight as its forward used it: a parametrized one (``weight_norm``…) was
    captured in the hook while ``parametrize.cached()`` held it (reading ``module.weight`` later
    computes a new tensor that no gradient reaches)."""
    return rec["weight"] if "weight" in rec else getattr(rec["module"], "weight", None)


def _sums(t: torch.Tensor) -> list[torch.Tensor]:
    """``[Σx, Σx²]`` of a float tensor as two 0-d tensors: a sum and a dot product (several
    times faster than ``var_mean``/``std``, which use Welford's algorithm)."""
    flat = t.reshape(-1)
    return [flat.sum(), torch.dot(flat, flat)]


def _sq(t: torch.Tensor) -> torch.Tensor:
    """``Σx²`` of a float tensor as a 0-d tensor (one dot product)."""
    flat = t.reshape(-1)
    return torch.dot(flat, flat)


def _gradients(
    loss: torch.Tensor,
    records: dict[str, dict[str, Any]],
    order: list[str],
    model: nn.Module,
    batch: Any,
) -> None:
    """Every weight gradient's ``Σ``, ``Σ²`` from one backward pass (``torch.autograd.grad``:
    the parameters' ``.grad`` are not touched, and hooks on gradient accumulation — DDP's,
    FSDP's — do not run). Each weight gradient is reduced by a hook on the weight as backward
    produces it, and the hook hands autograd a zero-stride stand-in instead, so the gradient's
    memory goes back to the allocator at once and the next layer's gradient reuses it:
    returned whole and freed together at the end, the 20×256 MLP's 5 MB of gradients were
    given back to the system and taken again page by page on every call (~1,100 page faults
    a call, ~2.6 µs each on the 2-core VM; 7 with the stand-ins). The gradients at the layers'
    outputs are reduced by the tensor hooks registered in the forward pass (:func:`_grad_sums`).
    A layer whose output needs a gradient but whose weight does not (a frozen weight, a
    trainable bias) may lie on no path to a trainable weight: then backward runs to every leaf
    that needs a gradient (all trainable parameters and inputs), so its hook is reached too."""
    by_weight: dict[int, tuple[torch.Tensor, list[dict[str, Any]]]] = {}
    frozen = False
    for n in order:
        w = _weight(records[n])
        if isinstance(w, torch.Tensor) and w.requires_grad:
            by_weight.setdefault(id(w), (w, []))[1].append(records[n])  # (a tied weight: once)
        elif records[n].get("hooked"):
            frozen = True
    inputs = [w for w, _ in by_weight.values()]
    if frozen:
        seen = set(by_weight)
        for t in [*model.parameters(), *tensors(batch)]:
            if t.requires_grad and id(t) not in seen:
                seen.add(id(t))
                inputs.append(t)
    if not inputs:
        return
    handles = [
        w.register_hook(lambda g, recs=recs: _weight_grad_sums(recs, g))
        for w, recs in by_weight.values()
    ]
    try:
        if _reentrant(loss):  # (it refuses autograd.grad: see _backward_reentrant)
            _backward_reentrant(loss, batch)
        else:
            torch.autograd.grad(loss, inputs, allow_unused=True)
    except RuntimeError as e:
        if "modified by an inplace operation" not in str(e):
            raise
        raise ValueError(
            "diagnose: the model's backward pass failed — its forward writes in place into a "
            "tensor its gradient needs, so it cannot be differentiated as it ran (a plain "
            "loss.backward() fails the same way; Hugging Face's RWKV writes its recurrent "
            "state so in eval mode). Run it as it trains: diagnose(..., train=True), or pass "
            "use_cache=False in the batch where the model takes it. torch said: "
            f"{str(e).splitlines()[0]}"
        ) from e
    finally:
        for h in handles:
            h.remove()


def _reentrant(loss: torch.Tensor) -> bool:
    """Whether ``loss``'s graph holds a reentrant checkpoint (its ``CheckpointFunctionBackward``
    node). A walk of the graph: 0.06 ms for a 20-layer MLP's 102 nodes — keeping the graph
    through a first try of ``autograd.grad`` instead cost the 10-layer CNN of ``bench
    diagnose`` 1.16–1.32× → 1.60–1.72× one forward+backward (its activations freed at the end,
    not as backward went)."""
    seen: set[Any] = set()
    stack = [loss.grad_fn]
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        if type(f).__name__ == "CheckpointFunctionBackward":
            return True
        stack.extend(g for g, _ in f.next_functions)
    return False


def _backward_reentrant(loss: torch.Tensor, batch: Any) -> None:
    """The backward pass of a model with reentrant checkpointing
    (``torch.utils.checkpoint(..., use_reentrant=True)``), which supports neither
    ``autograd.grad`` nor ``backward(inputs=…)`` — diagnose raised torch's error: a plain
    ``backward()``, the same hooks reducing what it produces. The parameters'
    ``.grad`` are put back by the caller; a batch tensor's here."""
    kept = [(t, t.grad) for t in tensors(batch) if t.requires_grad]
    try:
        loss.backward()
    finally:
        for t, g in kept:
            t.grad = g


def _weight_grad_sums(recs: list[dict[str, Any]], g: torch.Tensor) -> torch.Tensor:
    """Tensor hook on a weight: its gradient's ``Σ``, ``Σ²`` and element count into the records
    of every layer that uses it; returns a zero-stride stand-in of the gradient's shape (what
    :func:`_gradients` asks autograd for is only that the hook ran)."""
    sums = _sums_now(g)
    for rec in recs:
        rec["wg_sums"] = sums
        rec["wg_n"] = g.numel()
    return g.new_zeros(()).expand_as(g)


def _grad_sums(rec: dict[str, Any], g: torch.Tensor) -> None:
    """Tensor hook: ``Σg``, ``Σg²`` of the gradient at a layer's output as backward produces it
    (two reductions of a tensor in cache, no read-back); the gradient itself is not kept."""
    rec["g_sums"] = _sums_now(g)


def _feeds(info: ModelInfo) -> tuple[dict[str, str], str | None]:
    """``{layer: next layer}`` where the activation of ``layer`` feeds ``next layer`` directly
    (a chain ``Linear → act → Linear``): the next layer's recorded input *is* the post-activation,
    so it is not computed again; and the layer whose activation's output is the model's whole
    output (a chain's last ``Linear → act``), whose post-activation is the output itself (or
    None)."""
    g = info.graph
    if g is None:
        return {}, None
    users = g.users()
    out: dict[str, str] = {}
    last = None
    for n in g.nodes:
        if n.op != "module" or info.kinds[n.idx] != "weight" or len(users[n.idx]) != 1:
            continue
        a = users[n.idx][0]
        if info.kinds[a] != "act" or a in info.composite or len(users[a]) != 1:
            continue
        nxt = g.nodes[users[a][0]]
        if nxt.op == "module" and info.kinds[nxt.idx] == "weight":
            out[n.target] = nxt.target
        elif nxt.op == "output" and nxt.inputs == [a]:
            last = n.target
    return out, last


def _mixed_by_data(info: ModelInfo) -> set[str]:
    """Weight layers whose output a product with data (a graph convolution's ``Â @ h``,
    :func:`~initwise.torch.graph.data_products`) takes before their activation: the activation
    runs on ``Â·y``, not on the layer's output ``y``, so its statistics are not computed from
    ``y`` (the layer is measured as a linear one, its output as it is)."""
    g = info.graph
    if g is None or not info.data_products:
        return set()
    users = g.users()

    def on(i: int) -> bool:  # (up to the activation, the next layer or norm)
        return info.kinds[i] not in ("act", "weight", "norm", "stop")

    return {
        str(n.target)
        for n in g.nodes
        if n.op == "module"
        and info.kinds[n.idx] == "weight"
        and any(i in info.data_products for i in downstream(users, n.idx, on))
    }


_N_STATS = 14


def _scratch(scratch: dict[Any, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """A buffer shaped like ``like``, one per shape, dtype and device for the whole call: a
    temporary allocated and freed per layer was given back to the system and taken again page
    by page (page faults) on each."""
    key = (like.shape, like.dtype, like.device)
    buf = scratch.get(key)
    if buf is None:
        buf = scratch[key] = torch.empty_like(like, memory_format=torch.contiguous_format)
    return buf


def _forward_reductions(
    rec: dict[str, Any],
    post: torch.Tensor | None = None,
    x_sq: torch.Tensor | None = None,
    scratch: dict[Any, torch.Tensor] | None = None,
) -> bool:
    """Statistics 0–6 of :data:`_N_STATS` for one layer, from its input and output, as 0-d
    tensors in ``rec["vals"]`` (sums and dot products: each ``float(tensor)`` costs a dispatch
    and a copy, and ``var_mean``/``std`` are slow Welford passes); the kept input and output are
    released. ``post``: the activation's output when it was recorded elsewhere (the next layer's
    input), else computed from the output; ``x_sq``: this layer's ``Σx²`` when it is already
    known (its input is the previous layer's ``post``: the same tensor, the same dot). Returns
    whether ``post`` was used as given (then ``vals[4]`` is the next layer's ``Σx²``)."""
    scratch = {} if scratch is None else scratch
    module, act = rec["module"], rec["act"]
    y_kept = rec.pop("y", None)  # (kept only where φ(y) was still needed, see the hook)
    x = rec.pop("x")
    y_sums = rec.pop("y_sums")  # taken in the hook, as the layer gave its output
    shape = rec.pop("y_shape")
    spec = act.spec  # properties from the activation registry (None: probed module)
    given = post is not None and post.shape == shape
    if given:
        post = post.float()  # type: ignore[union-attr]
    elif y_kept is not None:
        # overwritten by the layer's own activation in place: the kept output *is* φ(y)
        overwritten = y_kept._version != rec["y_version"] and rec.get("act_in_place", False)
        y = y_kept.float()
        post = y if overwritten else act.torch_fn()(y)
    else:  # a linear activation (the hook kept y for every other): φ(y) = y
        post = None
    zero = scratch.get(y_sums[0].device)  # (one zero per device for the whole call)
    if zero is None:
        zero = scratch[y_sums[0].device] = y_sums[0].new_zeros(())
    vals: list[torch.Tensor] = []
    if x_sq is None:
        x_sq = _sq(x.float()) if x is not None else zero
    vals += [zero, x_sq]  # 0 (Σx: unused), 1 (Σx²)
    vals += list(y_sums)  # 2, 3
    vals.append(_sq(post) if post is not None else y_sums[1])  # 4
    if post is not None and spec is not None and spec.can_die:  # 5: units zero on the whole batch
        dim = rec.get("units_dim", _units_dim(post, module))
        units = dim if isinstance(dim, tuple) else (dim,)
        others = tuple(d for d in range(post.dim()) if d not in units)
        # ReLUs: already ≥ 0
        mag = (
            post if spec.name in ("relu", "relu6") else torch.abs(post, out=_scratch(scratch, post))
        )
        per_unit = mag.amax(dim=others) if others else mag  # no copy
        vals.append((per_unit == 0).float().mean())
    else:
        vals.append(zero)
    if post is not None and spec is not None and spec.saturating and spec.bounds is not None:  # 6
        # within 0.01 of either bound: |post − mid| > half − 0.01, one float pass and an
        # in-place compare (three boolean tensors and an `|` took 8× as long)
        lo, hi = spec.bounds
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        buf = _scratch(scratch, post)
        dist = torch.abs(post, out=buf) if mid == 0 else torch.sub(post, mid, out=buf).abs_()
        vals.append(dist.gt_(half - 0.01).mean())
    else:
        vals.append(zero)
    rec["vals"] = vals
    rec["nx"] = x.numel() if x is not None else 1
    rec["ny"] = shape.numel()
    rec["has_x"] = x is not None
    return given


def _backward_reductions(
    rec: dict[str, Any],
) -> tuple[list[torch.Tensor], Callable[[list[float]], None]]:
    """All :data:`_N_STATS` 0-d tensors of one layer — 0–6 from :func:`_forward_reductions`,
    7–8 the output gradient's sums from :func:`_grad_sums`, 9–13 the weight's, bias's and
    weight gradient's — and the function that turns their values into the record's
    statistics."""
    module = rec["module"]
    vals: list[torch.Tensor] = rec.pop("vals")
    zero = vals[0]  # statistic 0 (Σx, unused) is a zero on the output's device
    g_sums = rec.pop("g_sums", None)
    vals += list(g_sums) if g_sums is not None else [zero, zero]  # 7, 8
    w = _weight(rec)
    b = getattr(module, "bias", None)
    w_ok = isinstance(w, torch.Tensor)
    b_ok = isinstance(b, torch.Tensor)
    vals += _sums(w.detach().float()) if w_ok else [zero, zero]  # 9, 10
    vals.append(_sq(b.detach().float()) if b_ok else zero)  # 11
    wg_sums = rec.pop("wg_sums", None)  # (taken by the weight's hook in backward)
    vals += list(wg_sums) if wg_sums is not None else [zero, zero]  # 12, 13
    device = zero.device
    if any(t.device != device for t in vals):  # (all float32: each came from .float())
        vals = [t.to(device) for t in vals]
    nx, ny, has_x = rec.pop("nx"), rec.pop("ny"), rec.pop("has_x")
    nw = w.numel() if w_ok else 1
    has_g, has_wg = g_sums is not None, wg_sums is not None
    b_n = b.numel() if b_ok else 1
    wg_n = rec.pop("wg_n", 1)

    def finish(v: list[float]) -> None:  # (the output's gradient has the output's ny elements)
        _store(rec, v, nx, ny, nw, b_n, ny, wg_n, has_x, w_ok, b_ok, has_g, has_wg)

    return vals, finish


def _store(
    rec: dict[str, Any],
    v: list[float],
    nx: int,
    ny: int,
    nw: int,
    nb: int,
    ng: int,
    nwg: int,
    has_x: bool,
    w_ok: bool,
    b_ok: bool,
    has_g: bool,
    has_wg: bool,
) -> None:
    mean = v[2] / ny
    rec.update(
        has_x=has_x,
        zero_weight=w_ok and v[10] == 0,
        in_m2=v[1] / nx if has_x else 0.0,
        out_mean=mean,
        out_std=_std(v[2], v[3], ny),
        out_m2=v[3] / ny,
        post_m2=v[4] / ny,
        dead=v[5],
        saturated=v[6],
        weight_std=_std(v[9], v[10], nw) if w_ok else 0.0,
        weight_m2=v[10] / nw if w_ok else 0.0,
        bias_m2=v[11] / nb if b_ok else 0.0,
    )
    if has_g:
        rec["grad_std"] = _std(v[7], v[8], ng)
    if has_wg:
        rec["weight_grad_std"] = _std(v[12], v[13], nwg)


def _std(s1: float, s2: float, n: int) -> float:
    """Unbiased std from ``Σx`` and ``Σx²`` (float64 arithmetic; clamped at 0)."""
    if n < 2:
        return 0.0
    var = (s2 - s1 * s1 / n) / (n - 1)
    return math.sqrt(var) if var > 0 else 0.0


def _stats(
    records: dict[str, dict[str, Any]], order: list[str], info: ModelInfo
) -> list[LayerStats]:
    out = []
    for name in order:
        r = records[name]
        m = r["module"]
        w = _weight(r)
        kind = module_kind(m)
        fi = fo = None
        if kind in ("linear", "conv", "conv_transpose", "conv1d_hf") and w is not None:
            f, _, _, _ = weight_fans(kind, m, tuple(w.shape), name)
            fi, fo = f.fan_in, f.fan_out
        wm2, bm2 = r["weight_m2"], r["bias_m2"]
        s = LayerStats(
            name,
            type(m).__name__,
            r["act"].describe(),
            fi,
            fo,
            r["weight_std"],
            wm2,
            bm2,
            r["in_m2"],
            r["out_mean"],
            r["out_std"],
            r["out_m2"],
            r["post_m2"],
            r["dead"],
            r["saturated"],
            r.get("grad_std"),
            r.get("weight_grad_std"),
        )
        s._act = r["act"]  # type: ignore[attr-defined]
        s._has_x = r["has_x"]  # type: ignore[attr-defined]
        s.zero_weight = r["zero_weight"]
        if fi is not None and kind != "conv_transpose":
            s.pred_local = fi * wm2 * r["in_m2"] + bm2
        out.append(s)
    # χ: the mean-field gain of the gradient's squared norm across the layer's activation and
    # the next weight layer, σ_w² = fan_in·E[w²] of that layer (Poole et al. 2016). Per unit
    # the gradient also changes by the width ratio (fan_out/fan_in: a 256 → 10 readout makes
    # it 0.04×), which the chain prediction δ̂ includes but which is not instability.
    # One quadrature per activation for all its layers (one each cost ~0.2 ms of NumPy).
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, s in enumerate(out[:-1]):
        if out[i + 1].fan_in is not None and s.out_m2 > 0:
            fn, param = _act_args(s)
            groups.setdefault((fn if isinstance(fn, str) else id(fn), param), []).append(i)
    for idx in groups.values():
        fn, param = _act_args(out[idx[0]])
        values = chis([out[i].out_m2 for i in idx], 1.0, fn, param, panel=_PANEL)
        for i, c in zip(idx, values.tolist(), strict=True):
            s, nxt = out[i], out[i + 1]
            s._act_chi = c  # type: ignore[attr-defined]
            s.chi = nxt.fan_in * nxt.weight_m2 * c  # type: ignore[attr-defined,operator]
    return out


_PANEL = 1.0
"""The theory's quadrature panel (:func:`~initwise.math.gains.gaussian_expectations`): a quarter
of the nodes of the library's 0.25, the same values to 2.4e-10 for q ≤ 100 (measured there)."""


def _act_chi(s: LayerStats) -> float:
    """``E[φ′(√q·z)²]`` at the layer's measured output second moment (the factor of χ that
    belongs to its activation), as :func:`_stats` computed it where it did."""
    known = getattr(s, "_act_chi", None)
    if known is not None and s.out_m2 > 0:
        return float(known)
    return float(chis([max(s.out_m2, 1e-300)], 1.0, *_act_args(s), panel=_PANEL)[0])


def _act_args(s: LayerStats) -> tuple[Any, Any]:
    act: Act = s._act  # type: ignore[attr-defined]
    if act.module is not None:
        return act.module, None
    return act.name, act.param


_CHAIN_KINDS = (
    "Linear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "FunctionalLinear",
    "FunctionalConv",
    "FunctionalEinsum",
)


def _chain_skipped(info: ModelInfo, layers: list[LayerStats]) -> str | None:
    """Why the chain theory (a plain stack of Linear/Conv layers and activations) does not
    apply to this model, or None when it does."""
    if not layers:
        return "no weight layers ran"
    if info.method == "none":
        return "the model's graph is unknown (it could not be traced)"
    if info.n_residual:
        return f"the model has {info.n_residual} residual branches"
    if info.data_products:
        return (
            "the model multiplies layer outputs by data (a graph's Â @ h), which the chain "
            "of Linear/Conv layers and activations does not cover"
        )
    norms = [
        n for n, i in info.layers.items() if is_norm(i.module) or probed_norm(i.module) is not None
    ]
    if norms:
        return f"the model has normalization layers ({few([repr(n) for n in norms], 3)})"
    other = [
        (f"{s.name!r} is a {s.kind}" if s.name else f"the model itself is a {s.kind}")
        for s in layers
        if s.fan_in is None or s.kind.removeprefix("Parametrized") not in _CHAIN_KINDS
    ]
    if other:
        return f"the chain covers Linear and Conv layers only: {few(other, 3)}"
    return None


def _chain_theory(layers: list[LayerStats]) -> None:
    chain = [
        ChainLayer(
            s.fan_in * s.weight_m2, s.bias_m2, *_act_args(s), out_over_in=s.fan_out / s.fan_in
        )
        for s in layers
    ]  # type: ignore[operator]
    qs, _ = propagate(chain, layers[0].in_m2, gradients=False, panel=_PANEL)  # δ̂ below
    for s, q in zip(layers, qs, strict=True):
        s.pred_chain = q
    last = layers[-1].grad_std
    if last:
        g = last**2
        layers[-1].pred_grad_chain = g
        for i in range(len(layers) - 2, -1, -1):
            nxt = layers[i + 1]
            g *= nxt.fan_out * nxt.weight_m2 * _act_chi(layers[i])  # type: ignore[operator]
            layers[i].pred_grad_chain = g


def _zero_weights(model: nn.Module) -> list[str]:
    """The modules whose ``weight`` is all zero: zero-initialized weight layers and norms (the
    last BatchNorm of a zero-init residual branch, Goyal et al. 2017)."""
    out = []
    for name, m in model.named_modules():
        w = m._parameters.get("weight")
        if isinstance(w, torch.Tensor) and w.numel() and not w.is_meta and not w.detach().any():
            out.append(name)
    return out


def _zero_init(s: LayerStats, zeros: list[str], r: float, tol: float) -> str | None:
    """Why the layer's verdict is ``zero-init`` (its advice), or None. A layer whose weight is
    all zero, on an input that is not (or none: a table read in ``forward``), starts at zero —
    a residual branch end (Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020), a read-out or
    a table zero-initialized on purpose — and a layer whose gradient is exactly zero while some
    weight is all zero and its forward signal holds gets none through it yet; both were called
    "vanishing" with the advice to draw the weights at 1/√fan_in, which would undo the scheme.
    A zero weight on a zero input (a network zero-initialized throughout: the symmetry never
    breaks) keeps the verdicts it had. A module called with no signal whose output is zero
    (Swin's relative position bias table, zero as Hugging Face builds it) is such a table."""
    table = not getattr(s, "_has_x", True)  # (no signal in: a table read in forward)
    if table and s.out_m2 == 0:
        return (
            "called with no signal and all zero: a table read in forward (a relative "
            "position bias, a learned offset) zero-initialized on purpose, which adds nothing "
            "at the start and moves in training; re-initialize it if not"
        )
    if s.zero_weight and s.in_m2 > 0:
        return (
            "weights all zero: its output is its bias alone, and layers before it get no "
            "gradient through it until a step moves it — a residual branch end, read-out or "
            "table zero-initialized on purpose (Fixup, SkipInit, zero-init residual); "
            "re-initialize it if not (initwise policy auto)"
        )
    if s.grad_std == 0 and zeros and 1 / tol <= r <= tol:
        return (
            f"no gradient reaches it yet: every path from it to the loss passes an all-zero "
            f"weight ({few(zeros)}), as zero-init schemes intend; the first step opens it"
        )
    return None


def _verdicts(
    layers: list[LayerStats], tol: float, zeros: list[str] | None = None
) -> tuple[str, str]:
    if not layers:
        return "healthy", "no weight layers were run"
    # Layers are compared with the first (forward) and last (gradients) layer of the same *role*:
    # the same class at the same place of a repeated block, feeding the same activation. Roles
    # differ on purpose (a branch's last layer adds 1/R of the stream; tanh runs at a smaller
    # pre-activation scale than GELU), and vanishing/exploding is a trend along depth.
    # The output layer's gradient is set by the loss (and a pooling head shrinks it), not by the
    # network: it is not compared.
    hidden = layers[:-1] if len(layers) > 1 else layers
    roles = [_role(s) for s in layers]
    first: dict[tuple[str, str, str], float] = {}
    last: dict[tuple[str, str, str], float | None] = {}
    for s, role in zip(layers, roles, strict=True):
        if not s.zero_weight:  # (a zero-initialized first layer of a role is no reference)
            first.setdefault(role, s.out_m2 or 1e-300)
    for s, role in zip(hidden, roles, strict=False):
        if s.grad_std is not None:
            last[role] = s.grad_std
    counts = dict.fromkeys(VERDICTS, 0)
    gains: dict[str, float] = {}  # per activation (a quadrature each)
    for s, role in zip(layers, roles, strict=True):
        act: Act = s._act  # type: ignore[attr-defined]
        r = s.out_m2 / first.get(role, s.out_m2 or 1e-300)
        is_output = s is layers[-1] and len(layers) > 1
        g_last = last.get(role)
        g = (s.grad_std / g_last) if (s.grad_std is not None and g_last and not is_output) else 1.0
        if role[2] not in gains:
            try:
                spec = act.spec  # the auto rule: gain 1 (Xavier) before a saturating activation
                gains[role[2]] = (
                    1.0 if spec is not None and spec.saturating else act.gain("forward")
                )
            except ValueError:
                gains[role[2]] = 1.0
        good = gains[role[2]]
        zero = _zero_init(s, zeros or [], r, tol)
        if zero is not None:
            s.verdict, s.suggestion = "zero-init", zero
        elif s.dead > 0.5:
            s.verdict = "dead"
            s.suggestion = (
                f"{s.dead:.0%} of units never activate: biases too negative or the "
                "weights too small — use He init (initwise policy auto)"
            )
        elif s.saturated > 0.3:
            s.verdict = "saturated"
            s.suggestion = (
                f"{s.saturated:.0%} of outputs saturate {act.describe()}: weights too "
                "large — use xavier_uniform (gain 1)"
            )
        elif r < 1 / tol or g < 1 / tol or r > tol or g > tol:
            s.verdict = "vanishing" if (r < 1 / tol or g < 1 / tol) else "exploding"
            s.suggestion = _suggest(s, act, r, g, tol, good)
        counts[s.verdict] += 1
    bad = [v for v in ("exploding", "vanishing", "saturated", "dead") if counts[v]]
    zero = counts["zero-init"]
    if not bad and zero:
        return "healthy", (
            f"{counts['healthy']} of {len(layers)} layers healthy (within ×{tol:g}), {zero} "
            "zero-initialized (their notes say which)"
        )
    if not bad:
        return "healthy", f"all {len(layers)} layers healthy (within ×{tol:g})"
    worst = bad[0]
    return worst, ", ".join(f"{counts[v]} {v}" for v in bad) + f" of {len(layers)} layers"


def _role(s: LayerStats) -> tuple[str, str, str]:
    """(class, module path without indices, activation): ``h.3.attn.c_proj`` → ``h.attn.c_proj``."""
    act: Act = s._act  # type: ignore[attr-defined]
    path = ".".join(p for p in s.name.split(".") if not p.isdigit())
    return (s.kind, path, act.describe())


def _suggest(s: LayerStats, act: Act, r: float, g: float, tol: float, good: float) -> str:
    """The one-line advice for a vanishing/exploding layer: which quantity changed, and whether
    the layer's own init is the cause (its σ_w² differs from gain²) or not."""
    forward = r < 1 / tol or r > tol
    factor = r if forward else g
    change = (
        (f"shrank {1 / factor:.3g}×" if factor < 1 else f"grew {factor:.3g}×")
        if factor
        else "shrank to 0"
    )
    where = "signal" if forward else "gradient"
    since = "the first layer" if forward else "the last hidden layer"
    sigma_w2 = (s.fan_in or 0) * s.weight_m2
    own_init_ok = abs(sigma_w2 / good**2 - 1) < 0.2
    local_ok = bool(s.pred_local) and abs(math.log2(s.out_m2 / s.pred_local)) < 1
    if not forward and getattr(s, "_scale_free", False):
        return (
            f"{where} {change} since {since} through normalized layers: this layer feeds a "
            "normalization that removes its output's scale, so its weight's scale only "
            "rescales this gradient inversely (its effective learning rate) and passes nothing "
            "on to the layers before it — another init rule (fan_out, Xavier) does not change "
            "the growth, which is the normalized layers' own at init (batch norm: Yang et al. "
            "2019); residual connections with a small branch scale, or fewer normalized layers "
            "in a row, reduce it"
        )
    if own_init_ok and not forward:
        return (
            f"{where} {change} since {since} although the forward signal is preserved "
            "(fan_in-mode init): layers after it have fewer outputs than inputs — use "
            "mode='fan_out' or a fan_avg (Xavier-style) rule if the backward pass matters more"
        )
    if own_init_ok and local_ok:
        return (
            f"{where} {change} since {since}, but this layer matches its own theory "
            f"(q {s.out_m2:.3g} vs q̂ {s.pred_local:.3g}) with the right gain for "
            f"{act.describe()}: the change comes from between the layers (max pooling raises "
            "E[x²], average pooling and strides lower it) or from earlier layers"
        )
    direction = "small" if factor < 1 else "large"
    return (
        f"{where} {change} since {since}: weights too {direction} for {act.describe()} — "
        f"use std = {good:.4g}/√fan_in (kaiming_normal with gain {good:.4g}; initwise policy "
        "auto)"
    )


def _jacobian(model: nn.Module, batch: Any) -> JacobianSpectrum:
    if not isinstance(batch, torch.Tensor):
        raise ValueError("jacobian=True needs a single tensor batch")
    x = batch[:1].detach()

    def f(inp: torch.Tensor) -> torch.Tensor:
        y = first_tensor(model(inp))
        assert y is not None
        return y.reshape(-1)

    n_in, n_out = x.numel(), f(x).numel()
    if n_in * n_out > 4_000_000:
        raise ValueError(
            f"jacobian=True is for small models: the Jacobian would be {n_out}×"
            f"{n_in}; use a smaller input"
        )
    with torch.enable_grad():
        j = torch.autograd.functional.jacobian(f, x).reshape(n_out, n_in)
    s = torch.linalg.svdvals(j.double())
    return JacobianSpectrum([float(v) for v in s])
