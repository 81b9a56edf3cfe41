r"""Coordinate check (Yang et al. 2022, Tensor Programs V §7 and the ``mup`` package's
``get_coord_data``): train a few steps at several widths and see whether each layer's activation
scale — and how much a step changes it — depends on width. Under a parametrization whose
hyperparameters transfer (μP), the curves against width are flat; under the standard one the
per-step change grows with width.

``coord_check(make, widths, batch, target, policy=...)`` builds ``make(width)``, initializes it
with ``policy`` (a callable of the width, so μP can know its base: ``lambda w: MuP(64)``), builds
Adam or SGD from the plan's :meth:`~initwise.plan.Plan.param_groups`, and records for every
weight layer, after each step, the rms of its output and the rms of the output's change since
initialization on a fixed batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import _validate as v
from ..torch.batch import check_batch, first_tensor, run_model, seeded_rng
from ..torch.modules import is_weight_layer


@dataclass
class CoordCheck:
    """``rms[width][layer][step]`` and ``delta[width][layer][step]`` (step 0 = at init)."""

    widths: list[int]
    layers: list[str]
    rms: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    delta: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    label: str = ""
    unmeasured: list[str] = field(default_factory=list)
    """Weight layers whose output the check can not see: not called as modules in forward (a
    weight used through a function, a module the forward never reaches; an
    ``nn.MultiheadAttention``'s ``out_proj``, whose output is the attention module's, measured
    under that module's name)."""

    def growth(self, step: int = -1) -> dict[str, float]:
        """Per layer: the last step's change at the widest width over the narrowest (≈ 1 when
        the parametrization transfers)."""
        lo, hi = self.widths[0], self.widths[-1]
        out = {}
        for name in self.layers:
            a, b = self.delta[lo][name][step], self.delta[hi][name][step]
            out[name] = b / a if a > 0 else math.inf
        return out

    def plot(self, path: str) -> str:
        """One panel per layer: the change after the last step against width (log-log)."""
        import os

        from .render import new_figure

        n = len(self.layers)
        fig = new_figure(figsize=(3.2 * n, 3.0))
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, name in zip(axes, self.layers, strict=True):
            steps = len(self.delta[self.widths[0]][name])
            for t in range(1, steps):
                ax.plot(
                    self.widths,
                    [self.delta[w][name][t] for w in self.widths],
                    "-o",
                    ms=3,
                    label=f"step {t}",
                )
            ax.set(xscale="log", yscale="log", title=name, xlabel="width")
        axes[0].set_ylabel(f"rms of the change ({self.label})")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=110)
        return path


def coord_check(
    make: Callable[[int], nn.Module],
    widths: Sequence[int],
    batch: Any,
    target: torch.Tensor,
    *,
    policy: Callable[[int], Any] | str = "auto",
    steps: int = 4,
    lr: float = 1e-2,
    optimizer: str = "adam",
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    label: str = "",
    progress: Callable[[], None] | None = None,
) -> CoordCheck:
    """Run the coordinate check (see the module docstring). ``loss_fn(output, target)`` defaults
    to cross-entropy for integer targets and mean squared error otherwise. The models are built
    here; weights come from the plan's seeded streams, and everything else random (the
    constructors' own draws, dropout) from ``seed`` inside a forked RNG: the same result on
    every call, and torch's global random state is left as it was.
    ``progress()`` is called after each training step (``len(widths) × steps`` calls)."""
    from ..torch import init_model

    seed = v.seed(seed, where="coord_check", torch_range=True)
    widths = sorted({int(w) for w in widths})
    if len(widths) < 2 or widths[0] < 1:
        raise ValueError(f"coord_check needs at least two positive widths, got {widths}")
    if steps < 1:
        raise ValueError(f"coord_check: steps must be ≥ 1, got {steps}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"coord_check: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    check_batch(batch)
    if loss_fn is None:
        loss_fn = (
            nn.functional.cross_entropy
            if not target.is_floating_point()
            else nn.functional.mse_loss
        )
    result = CoordCheck(widths, [], label=label or (policy if isinstance(policy, str) else ""))
    with seeded_rng(seed):  # constructors and dropout draw from seed; the caller's stream stays
        for w in widths:
            model = make(w)
            pol = policy(w) if callable(policy) else policy
            plan = init_model(model, pol, seed=seed)
            groups = plan.param_groups(model, lr=lr, optimizer=optimizer)
            opt = (
                torch.optim.Adam(groups, lr=lr)
                if optimizer == "adam"
                else torch.optim.SGD(groups, lr=lr)
            )
            names = [n for n, m in model.named_modules() if is_weight_layer(m) and n]
            first = _outputs(model, names, batch)
            if not result.layers and not result.unmeasured:
                result.layers = [n for n in names if n in first]
                result.unmeasured = [n for n in names if n not in first]
                if not result.layers:
                    raise ValueError(
                        "coord_check: no weight layer of the model is called as a module in "
                        "its forward, so no layer's output can be measured"
                    )
            elif [n for n in names if n in first] != result.layers:
                raise ValueError(
                    "coord_check: the models at different widths have different layers"
                )
            names = result.layers
            result.rms[w] = {n: [_rms(first[n])] for n in names}
            result.delta[w] = {n: [0.0] for n in names}
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(first_tensor(run_model(model, batch)), target)
                loss.backward()
                opt.step()
                now = _outputs(model, names, batch)
                for n in names:
                    result.rms[w][n].append(_rms(now[n]))
                    result.delta[w][n].append(_rms(now[n] - first[n]))
                if progress is not None:
                    progress()
    return result


def _outputs(model: nn.Module, names: list[str], batch: Any) -> dict[str, torch.Tensor]:
    """Each named layer's output (its first call) on ``batch``; a layer that is not called as a
    module is missing (before 2026-12-05 a ``KeyError``: ``nn.MultiheadAttention`` computes
    with its ``out_proj``'s weight without calling it, so every ``nn.TransformerEncoder``)."""
    got: dict[str, torch.Tensor] = {}
    mods = dict(model.named_modules())

    def record(n: str, o: Any) -> None:
        y = first_tensor(o)
        if y is not None and n not in got:
            got[n] = y.detach().clone()

    handles = [mods[n].register_forward_hook(lambda m, a, o, n=n: record(n, o)) for n in names]
    try:
        with torch.no_grad():
            run_model(model, batch)
    finally:
        for h in handles:
            h.remove()
    return got


def _rms(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())
