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

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import inf
from typing import Any

import torch
from torch import nn

from ..math.meanfield import ChainLayer, chi, propagate
from ..torch.batch import (
    NonFiniteError,
    ProbeError,
    check_batch,
    first_tensor,
    run_model,
    tensors,
)
from ..torch.graph import LINEAR, Act, ModelInfo, inspect_model
from ..torch.modules import is_norm, is_weight_layer, weight_fans
from ..torch.modules import kind as module_kind
from ..torch.threads import intra_op_threads
from .render import render_text, report_table

VERDICTS = ("healthy", "vanishing", "exploding", "saturated", "dead")


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
    if isinstance(module, nn.modules.conv._ConvNd) and out.ndim > 2:
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
        seed: seed of the default loss's random projection.
        label: name of this run in plots and reports (e.g. the init policy).

    Returns:
        a :class:`Report`; ``print(report)`` shows the table.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 1 or tol == inf:
        raise ValueError(
            f"diagnose: tol must be a finite number > 1 (a factor, e.g. 10), got {tol!r}"
        )
    check_batch(batch)
    first = tensors(batch)[0]
    if first.dim() and first.shape[0] < 2:
        warnings.warn(
            f"diagnose: a batch of {first.shape[0]} example: statistics over one example are "
            "noisy and BatchNorm in train mode normalizes it to zero; use ≥ 32 examples",
            stacklevel=2,
        )
    info = inspect_model(model, batch)  # tracing by running restores norm statistics itself
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    was_training = model.training
    params = [p for p in model.parameters()]
    grads = [p.grad for p in params]
    names = {m: n for n, m in model.named_modules()}
    feeds = _feeds(info)
    fed_by = {b: a for a, b in feeds.items()}
    records: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    handles: list[Any] = []
    # id(tensor) → (tensor, its Σx²): an activation's output is the next layer's input
    sq_known: _SqCache = {}

    def hook(module: nn.Module, args: tuple, out: Any) -> None:
        # The output's Σy and Σy² are reduced here, before an in-place activation
        # (ReLU(inplace=True)) overwrites it, and its gradient is taken by a tensor hook
        # registered now (which sees the gradient at this value, not at the overwritten one).
        # Large layers reduce everything here, while the tensors are still in cache; small
        # ones keep references and reduce after the pass on one thread (see _reduction_threads).
        name = names[module]
        y = first_tensor(out)
        x = first_tensor(args)
        if y is None or not y.is_floating_point() or name in records:
            return
        x = x.detach() if x is not None and x.is_floating_point() else None
        act = (info.layers.get(name).activation if name in info.layers else None) or LINEAR
        rec: dict[str, Any] = {"module": module, "act": act, "v": {}, "ny": y.numel()}
        records[name] = rec
        order.append(name)
        eager = _reduction_threads(x, y) is None
        rec["eager"] = eager
        yd = y.detach()
        flat = yd.float().reshape(-1)
        rec["v"]["y_sum"], rec["v"]["y_sq"] = _sum(flat), torch.dot(flat, flat)
        rec["y"], rec["y_version"] = yd, yd._version
        if x is not None:
            rec["x"] = x
            rec["nx"] = x.numel()
        prev = records.get(fed_by[name]) if name in fed_by else None
        if prev is not None and x is not None and tuple(x.shape) == tuple(prev["y"].shape):
            prev["post_t"] = x  # the previous layer's activation output, as it reached here
        if eager:
            _layer_stats(rec, sq_known)
            if prev is not None and prev.get("post_t") is x:
                _post_stats(prev, x.float(), sq_known)
            if name not in feeds:
                _post_stats(rec, act.torch_fn()(yd.float()), sq_known)
        if y.requires_grad:
            handles.append(y.register_hook(_grad_hook(rec, "g", eager)))
            rec["y_graph"] = y
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor) and w.requires_grad:
            if eager:
                handles.append(w.register_hook(_grad_hook(rec, "wg", eager)))
            rec["w_graph"] = w

    for m in names:
        if is_weight_layer(m) and not isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            handles.append(m.register_forward_hook(hook))
    try:
        if train is not None:
            model.train(train)
        for p in params:
            p.grad = None
        with torch.enable_grad():
            out = run_model(model, batch)
            _check_finite(records, order)
            y = first_tensor(out)
            if y is None:
                raise ValueError("the model returned no tensor; pass loss_fn to say what to use")
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
                _gradients(loss, records, order)
        small = [n for n in order if not records[n]["eager"]]
        with intra_op_threads(1 if small else None):
            for name in small:
                _layer_stats(records[name], sq_known)
        for name in order:  # the activation's output: as the next layer received it, else
            rec = records[name]  # recomputed from the output
            if "post" not in rec["v"]:
                post = rec.get("post_t")
                post = post.float() if post is not None else _post_from(rec)
                with intra_op_threads(_reduction_threads(None, post)):
                    _post_stats(rec, post, sq_known)
        _read_back(records, order)
        jac = _jacobian(model, batch) if jacobian else None
    finally:
        for h in handles:
            h.remove()
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers:
                    b.copy_(buffers[k])
        model.train(was_training)
    layers = _stats(records, order, info)
    chain = _chain_ok(info, layers)
    if chain:
        _chain_theory(layers)
    verdict, summary = _verdicts(layers, tol)
    notes = (
        []
        if chain
        else [
            "chain theory skipped: the model has norms or residual branches "
            "(the local prediction still applies)"
        ]
    )
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


_SqCache = dict[int, tuple[torch.Tensor, torch.Tensor]]
"""``id(tensor) → (tensor, Σx²)``: an activation's output is the next layer's input."""

SMALL_REDUCTION = 1 << 17
"""Elements below which a layer's reductions run on one intra-op thread
(:func:`_reduction_threads`)."""


def _reduction_threads(x: torch.Tensor | None, y: torch.Tensor) -> int | None:
    """1 where the layer's input and output are CPU tensors below :data:`SMALL_REDUCTION`
    elements, else None (torch's setting). A layer's ~12 reductions are each too small to repay
    splitting over threads: measured on the 2-core VM with both cores busy (two experiment
    workers), `diagnose` of a 20×256 MLP took 2.8× one forward+backward with the default threads
    and 1.0× with one; a CNN's 512 Ki-element layers were slower on one thread idle (1.5× →
    1.8×), hence the threshold. (Switching torch's thread count costs about 1 µs.)"""
    for t in (x, y):
        if t is not None and (t.device.type != "cpu" or t.numel() >= SMALL_REDUCTION):
            return None
    return 1


def _layer_stats(rec: dict[str, Any], sq_known: _SqCache) -> None:
    """A layer's input and weight statistics as 0-d tensors in ``rec["v"]`` (``Σx²``, ``Σw``,
    ``Σw²``, ``Σb²``) and, for a layer reduced after the pass, its kept gradients'."""
    v = rec["v"]
    module = rec["module"]
    x = rec.get("x")
    if x is not None:
        v["x_sq"] = _sq_known(x, sq_known)
    w = getattr(module, "weight", None)
    if isinstance(w, torch.Tensor):
        v["w_sum"], v["w_sq"] = _sums(w.detach().float())
        rec["nw"] = w.numel()
    b = getattr(module, "bias", None)
    if isinstance(b, torch.Tensor):
        v["b_sq"] = _sq(b.detach().float())
        rec["nb"] = b.numel()
    for key in ("g", "wg"):
        g = rec.pop(key + "_t", None)
        if g is not None:
            v[key + "_sum"], v[key + "_sq"] = _sums(g)


def _sq_known(t: torch.Tensor, sq_known: _SqCache) -> torch.Tensor:
    """``Σt²``, reduced once per tensor: a layer's activation output is the next layer's input
    (the same tensor object)."""
    got = sq_known.get(id(t))
    if got is not None and got[0] is t:  # (the tensor is kept: its id is not reused meanwhile)
        return got[1]
    sq = _sq(t.float())
    sq_known[id(t)] = (t, sq)
    return sq


def _post_from(rec: dict[str, Any]) -> torch.Tensor:
    """The activation's output recomputed from the kept layer output (fallback). An output
    changed in place since the hook (``ReLU(inplace=True)``) already *is* that output."""
    y = rec["y"].float()
    if rec["y"]._version != rec["y_version"]:
        return y
    return rec["act"].torch_fn()(y)


def _post_stats(rec: dict[str, Any], post: torch.Tensor, sq_known: _SqCache) -> None:
    """``Σφ²`` (shared with the next layer's ``Σx²`` when that is the same tensor), the fraction
    of units zero on the whole batch and of saturated outputs, for the activation output
    ``post`` of the layer ``rec``."""
    v = rec["v"]
    spec = rec["act"].spec  # properties from the activation registry (None: probed module)
    v["post"] = _sq_known(post, sq_known)
    if spec is not None and spec.can_die:  # units zero on the whole batch
        dim = _units_dim(post, rec["module"])
        others = tuple(d for d in range(post.dim()) if d != dim)
        mag = post if spec.name in ("relu", "relu6") else post.abs()  # ReLUs: already ≥ 0
        per_unit = mag.amax(dim=others) if others else mag  # no copy
        v["dead"] = (per_unit == 0).float().mean()
    if spec is not None and spec.saturating and spec.bounds is not None:
        # within 0.01 of either bound: |post − mid| > half − 0.01, one float pass and an
        # in-place compare (three boolean tensors and an `|` took 8× as long)
        lo, hi = spec.bounds
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        dist = post.abs() if mid == 0 else (post - mid).abs_()
        v["saturated"] = dist.gt_(half - 0.01).mean()


def _grad_hook(rec: dict[str, Any], key: str, eager: bool) -> Callable[[torch.Tensor], None]:
    """A tensor hook that reduces the gradient it sees to ``Σg``, ``Σg²`` (``eager``: in cache,
    as the backward pass makes it) or keeps it for the reductions after the pass; it never
    changes the gradient."""

    def fn(g: torch.Tensor) -> None:
        gf = g.detach().float()
        rec["n" + key] = g.numel()
        if eager:
            rec["v"][key + "_sum"], rec["v"][key + "_sq"] = _sums(gf)
        else:
            rec[key + "_t"] = gf

    return fn


def _check_finite(records: dict[str, dict[str, Any]], order: list[str]) -> None:
    """Raise :class:`NonFiniteError` naming the first layer whose output has Inf/NaN (its
    ``Σy`` from the hook, one read-back for all: Inf/NaN propagate into the sum)."""
    if not order:
        return
    dev = records[order[0]]["v"]["y_sum"].device
    sums = torch.stack([records[n]["v"]["y_sum"].to(dev) for n in order])
    bad = (~torch.isfinite(sums)).tolist()
    for name, b in zip(order, bad, strict=True):
        if b:
            raise NonFiniteError(
                f"layer {name!r} produced non-finite values (Inf/NaN) on this batch: the "
                "initialization explodes — re-initialize (e.g. initwise.torch.init_model)"
            )


_ONES: dict[tuple[str, torch.dtype], torch.Tensor] = {}


def _sum(flat: torch.Tensor) -> torch.Tensor:
    """``Σx`` of a 1-D float tensor as a 0-d tensor. Below :data:`SMALL_REDUCTION` CPU elements
    a dot product with ones (BLAS, one thread: 10 µs at 64 Ki elements), since torch's ``sum``
    splits such a tensor over its threads and waits for them (20 µs idle on 2 cores, 37 µs
    between the layers of a pass)."""
    n = flat.numel()
    if flat.device.type != "cpu" or n >= SMALL_REDUCTION or flat.dtype != torch.float32:
        return flat.sum()
    key = (str(flat.device), flat.dtype)
    ones = _ONES.get(key)
    if ones is None or ones.numel() < n:
        ones = _ONES[key] = torch.ones(max(n, 1024), dtype=flat.dtype)
    return torch.dot(flat, ones[:n])


def _sums(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σx, Σx²)`` of a float tensor as two 0-d tensors: a sum and a dot product (several
    times faster than ``var_mean``/``std``, which use Welford's algorithm)."""
    return _sum(t.reshape(-1)), _sq(t)


def _sq(t: torch.Tensor) -> torch.Tensor:
    """``Σx²`` of a float tensor as a 0-d tensor (one dot product)."""
    flat = t.reshape(-1)
    return torch.dot(flat, flat)


def _gradients(loss: torch.Tensor, records: dict[str, dict[str, Any]], order: list[str]) -> None:
    """One backward pass (``torch.autograd.grad``: the parameters' ``.grad`` are not touched);
    the tensor hooks take each output's gradient as it is made. It asks for the layers'
    weights, and for a layer's output only where its weight is frozen (a requested gradient is
    kept to the end of the pass instead of its memory being reused for the next layer's). A
    gradient no hook saw (an output changed in place whose earlier value the requested tensors
    do not reach) is taken from what ``grad`` returned."""
    outs: list[tuple[str, str, torch.Tensor]] = []
    for n in order:
        rec = records[n]
        w, y = rec.pop("w_graph", None), rec.pop("y_graph", None)
        if w is not None:
            outs.append((n, "wg", w))
        elif y is not None:
            outs.append((n, "g", y))
    if not outs:
        return
    grads = torch.autograd.grad(loss, [t for _, _, t in outs], allow_unused=True)
    for (n, key, _), g in zip(outs, grads, strict=True):
        rec = records[n]
        if g is not None and key + "_sum" not in rec["v"] and key + "_t" not in rec:
            _grad_hook(rec, key, rec["eager"])(g)


def _feeds(info: ModelInfo) -> dict[str, str]:
    """``{layer: next layer}`` where the activation of ``layer`` feeds ``next layer`` directly
    (a chain ``Linear → act → Linear``): the next layer's recorded input *is* the post-activation,
    so it is not computed again."""
    g = info.graph
    if g is None:
        return {}
    users = g.users()
    out: dict[str, str] = {}
    for n in g.nodes:
        if n.op != "module" or info.kinds[n.idx] != "weight" or len(users[n.idx]) != 1:
            continue
        a = users[n.idx][0]
        if info.kinds[a] != "act" or a in info.composite or len(users[a]) != 1:
            continue
        nxt = g.nodes[users[a][0]]
        if nxt.op == "module" and info.kinds[nxt.idx] == "weight":
            out[n.target] = nxt.target
    return out


_KEYS = (
    "x_sq", "y_sum", "y_sq", "post", "dead", "saturated", "g_sum", "g_sq",
    "w_sum", "w_sq", "b_sq", "wg_sum", "wg_sq",
)  # fmt: skip


def _read_back(records: dict[str, dict[str, Any]], order: list[str]) -> None:
    """Every layer's 0-d statistics read back in one conversion (each ``float(tensor)`` costs a
    dispatch and a copy), then turned into the record's statistics."""
    dev = None
    flat: list[torch.Tensor] = []
    where: list[tuple[str, str]] = []
    for n in order:
        for k in _KEYS:
            t = records[n]["v"].get(k)
            if t is not None:
                dev = t.device if dev is None else dev
                flat.append(t.to(dev, torch.float32))
                where.append((n, k))
    values = torch.stack(flat).double().tolist() if flat else []
    got: dict[str, dict[str, float]] = {n: {} for n in order}
    for (n, k), val in zip(where, values, strict=True):
        got[n][k] = val
    for n in order:
        _store(records[n], got[n])


def _store(rec: dict[str, Any], v: dict[str, float]) -> None:
    ny = rec["ny"]
    nw, nb = rec.get("nw", 1), rec.get("nb", 1)
    rec.update(
        in_m2=v["x_sq"] / rec["nx"] if "x_sq" in v else 0.0,
        out_mean=v["y_sum"] / ny,
        out_std=_std(v["y_sum"], v["y_sq"], ny),
        out_m2=v["y_sq"] / ny,
        post_m2=v.get("post", 0.0) / ny,
        dead=v.get("dead", 0.0),
        saturated=v.get("saturated", 0.0),
        weight_std=_std(v["w_sum"], v["w_sq"], nw) if "w_sq" in v else 0.0,
        weight_m2=v["w_sq"] / nw if "w_sq" in v else 0.0,
        bias_m2=v["b_sq"] / nb if "b_sq" in v else 0.0,
    )
    if "g_sq" in v:
        rec["grad_std"] = _std(v["g_sum"], v["g_sq"], rec["ng"])
    if "wg_sq" in v:
        rec["weight_grad_std"] = _std(v["wg_sum"], v["wg_sq"], rec["nwg"])


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
        w = getattr(m, "weight", None)
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
        if fi is not None and kind != "conv_transpose":
            s.pred_local = fi * wm2 * r["in_m2"] + bm2
        out.append(s)
    # χ: the mean-field gain of the gradient's squared norm across the layer's activation and
    # the next weight layer, σ_w² = fan_in·E[w²] of that layer (Poole et al. 2016). Per unit
    # the gradient also changes by the width ratio (fan_out/fan_in: a 256 → 10 readout makes
    # it 0.04×), which the chain prediction δ̂ includes but which is not instability.
    for i, s in enumerate(out[:-1]):
        nxt = out[i + 1]
        if nxt.fan_in is not None and s.out_m2 > 0:
            s._act_chi = chi(s.out_m2, 1.0, *_act_args(s))  # type: ignore[attr-defined]
            s.chi = nxt.fan_in * nxt.weight_m2 * s._act_chi  # type: ignore[attr-defined]
    return out


def _act_chi(s: LayerStats) -> float:
    """``E[φ′(√q·z)²]`` at the layer's measured output second moment (the factor of χ that
    belongs to its activation), as :func:`_stats` computed it where it did."""
    known = getattr(s, "_act_chi", None)
    if known is not None and s.out_m2 > 0:
        return float(known)
    return chi(max(s.out_m2, 1e-300), 1.0, *_act_args(s))


def _act_args(s: LayerStats) -> tuple[Any, Any]:
    act: Act = s._act  # type: ignore[attr-defined]
    if act.module is not None:
        return act.module, None
    return act.name, act.param


def _chain_ok(info: ModelInfo, layers: list[LayerStats]) -> bool:
    if info.n_residual or not layers or info.method == "none":
        return False
    if any(is_norm(i.module) for i in info.layers.values()):
        return False
    return all(
        s.fan_in is not None and s.kind in ("Linear", "Conv1d", "Conv2d", "Conv3d") for s in layers
    )


def _chain_theory(layers: list[LayerStats]) -> None:
    chain = [
        ChainLayer(
            s.fan_in * s.weight_m2, s.bias_m2, *_act_args(s), out_over_in=s.fan_out / s.fan_in
        )
        for s in layers
    ]  # type: ignore[operator]
    qs, _ = propagate(chain, layers[0].in_m2, gradients=False)  # δ̂ below, from measured q
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


def _verdicts(layers: list[LayerStats], tol: float) -> tuple[str, str]:
    if not layers:
        return "healthy", "no weight layers were run"
    # Layers are compared with the first (forward) and last (gradients) layer of the same *role*:
    # the same class at the same place of a repeated block, feeding the same activation. Roles
    # differ on purpose (a branch's last layer adds 1/R of the stream; tanh runs at a smaller
    # pre-activation scale than GELU), and vanishing/exploding is a trend along depth.
    # The output layer's gradient is set by the loss (and a pooling head shrinks it), not by the
    # network: it is not compared.
    hidden = layers[:-1] if len(layers) > 1 else layers
    first: dict[tuple[str, str, str], float] = {}
    last: dict[tuple[str, str, str], float | None] = {}
    for s in layers:
        first.setdefault(_role(s), s.out_m2 or 1e-300)
    for s in hidden:
        if s.grad_std is not None:
            last[_role(s)] = s.grad_std
    counts = dict.fromkeys(VERDICTS, 0)
    for s in layers:
        act: Act = s._act  # type: ignore[attr-defined]
        r = s.out_m2 / first[_role(s)]
        is_output = s is layers[-1] and len(layers) > 1
        g_last = last.get(_role(s))
        g = (s.grad_std / g_last) if (s.grad_std is not None and g_last and not is_output) else 1.0
        try:
            spec = act.spec  # the auto rule: gain 1 (Xavier) before a saturating activation
            good = 1.0 if spec is not None and spec.saturating else act.gain("forward")
        except ValueError:
            good = 1.0
        if s.dead > 0.5:
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
