"""``auto``'s plan held against the example input: the moments walk
(:mod:`~initwise.torch.moments`) predicts the model output's ``E[y²]`` from the graph alone;
where the user gave an example input, :func:`check_output` draws the plan on a copy of the
model (seeds :data:`SEEDS`), runs the example once per draw and compares.

The walk models each operation it knows by its mean-field rule (Poole et al. 2016; Schoenholz
et al. 2017: ``E[y²] = σ_w²·fan_in·E[x²]`` for a layer, the activation's Gaussian expectation,
sums of independent terms add). What it does not model — a correlated difference such as a
factorization machine's ``½((Σv)² − Σv²)``, a product taken through an FFT, a filter a layer
generates — is passed through as if it kept ``E[x²]``, and nothing in the plan would say so.
The check turns that silence into a finding: when the measured output's second moment is more
than :data:`OUTPUT_TOLERANCE` times off the prediction either way, the plan carries a note and a
:class:`~initwise.plan.SignalWarning` says both figures (a finding, like a chain no
operating point holds: ``strict=True`` does not raise for it).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .batch import kept_modes, noted_run, seeded_rng, split, tensors
from .copying import module_copy
from .modules import few
from .pooling import COPY_LIMIT

SEEDS = (0, 1, 2)
"""The draws the check runs: a narrow, deep network's output moment varies from draw to draw
(log-normally, with a variance that grows as depth/width: Hanin & Nica 2019), which one draw
cannot tell from a fault of the walk. Where the first draw agrees, it is the only one."""

OUTPUT_TOLERANCE = 4.0
"""How far the measured output ``E[y²]`` may sit from the walk's prediction, as a factor either
way (2× in rms), beyond twice the spread between the draws, before the plan says so: one draw
of each of the 17 zoo networks and the 28 language-model families landed within 0.69–2.9× of
it on their example inputs, measured."""


UNIT_BAND = 16.0
"""How far from the input's ``E[x²]`` the walk's predicted output ``E[y²]`` may be (a factor
either way: 4× in rms) before the plan says that what follows the last layers is not solved
for a unit output."""


def _names(names: Sequence[str]) -> str:
    """The first three of ``names``, quoted, and how many more."""
    return few([f"'{n}'" for n in names], 3)


def off_unit(
    predicted: tuple[float, float] | None,
    first: tuple[float, float] | None,
    fixed: Sequence[str] = (),
    held: Sequence[str] = (),
) -> str | None:
    """A sentence when the walk predicts the model's output ``E[y²]`` more than
    :data:`UNIT_BAND` times away from the input's (``first``: the example input's ``(E[x²],
    E[x])``; a unit input without one) — what follows the last weight layers (a sum of
    products over a feature dimension, as DeepONet's ``Σ_k b_k·t_k``; a factorization machine's
    pairwise term; distances to prototypes) scales it and no layer after it is solved for a unit
    output — else None (no prediction: a softmax's probabilities, an unknown op). Against the
    input's: a forecaster that puts its output back in the data's scale (RevIN) is right to;
    and a prediction within the band of 1 is not said either — a model that standardizes its
    raw input (by stored statistics, a first BatchNorm) is solved for unit output on purpose
    (an example input at data scale, E[x²] 120, gave "×0.0083" for a unit output before
    2026-12-04). ``fixed``: the weight layers whose weight is normalized in ``forward``
    (``spectral_norm``, ``orthogonal``, standardized weights), which no draw can scale: where
    there are any, the sentence names them as the cause (an SN-GAN discriminator's signal
    shrinks at every layer). ``held``: the weight layers the plan keeps or overrides (frozen,
    an override: :func:`~initwise.torch.planner.held_layers`), whose scale it does not set."""
    if predicted is None or not math.isfinite(predicted[0]) or predicted[0] <= 0:
        return None
    ref = first[0] if first is not None and first[0] > 0 else 1.0
    if _within(predicted[0], ref, UNIT_BAND) or _within(predicted[0], 1.0, UNIT_BAND):
        return None  # (at the input's scale, or at unit scale: a model that standardizes its
        # raw input — `(x − μ)/σ` by stored statistics, a first BatchNorm — solves for that)
    against = f"the input's E[x²] {ref:.3g}" if first is not None else "a unit input"
    head = (
        f"the moments walk puts the model's output at E[y²] {predicted[0]:.3g} for {against} "
        f"(×{predicted[0] / ref:.3g})"
    )
    if held and not fixed:
        return (
            f"{head}: {len(held)} of its weight layers ({_names(held)}) are kept or "
            "overridden (frozen, started at zero on purpose, an override), and the plan does "
            "not set their scale — each reason gives its factor (draw them, or accept it: a "
            "frozen pretrained network keeps its own scale)"
        )
    if fixed:
        names = _names(fixed)
        return (
            f"{head}: {len(fixed)} of its weight layers ({names}) compute with a weight "
            "normalized in forward (spectral_norm, orthogonal or standardized weights), whose "
            "output scale no draw sets — each reason gives its factor (rescale the signal "
            "after them, or accept it: spectral normalization bounds every layer's gain by 1 on "
            "purpose)"
        )
    return (
        f"{head}: what follows the last weight layers scales it, and no layer after it is "
        "solved for a unit output (scale the output, or give an override)"
    )


def _redraw(plan: Any, twin: nn.Module, draft: Any) -> tuple[nn.Module, Any]:
    """``(twin, the plan with every entry the draft already drew at seed 0 left as is)``: an
    entry is redrawn where anything but its reason differs from the draft's."""
    before = {e.name: dataclasses.replace(e, reason="") for e in draft.entries}
    entries = tuple(
        dataclasses.replace(e, scheme=None)
        if before.get(e.name) == dataclasses.replace(e, reason="")
        else e
        for e in plan.entries
    )
    return twin, dataclasses.replace(plan, entries=entries)


def _within(measured: float, predicted: float, tol: float = OUTPUT_TOLERANCE) -> bool:
    return math.isfinite(measured) and 1 / tol <= measured / predicted <= tol


def check_output(
    model: nn.Module,
    plan: Any,
    example_input: Any,
    predicted: tuple[float, float] | None,
    drafted: tuple[nn.Module, Any] | None = None,
    unknown: str = "",
    given: tuple[float, float] | None = None,
) -> str | None:
    """A sentence when the model's output, run on ``example_input`` with ``plan`` drawn on a
    copy (seeds :data:`SEEDS`; torch's random state and the model itself untouched), has a
    second moment more than :data:`OUTPUT_TOLERANCE` times off ``predicted`` (the walk's
    ``(E[y²], E[y])``) for every draw, on the same side, and in their geometric mean beyond
    twice their spread; or is not finite. None
    when it agrees, or when it cannot be checked: no prediction, an output that is not one
    floating-point tensor, a model on the meta device or above
    :data:`~initwise.torch.pooling.COPY_LIMIT` parameters, or a copy that fails to run.

    ``drafted``: ``(copy, draft)`` — a copy of ``model`` with the plan's last draft drawn at
    seed 0 and run once on ``example_input`` (:func:`~initwise.torch.pooling.measure_pools`).
    The first draw is then made on that copy and redraws only the entries the final plan
    changed: the others already hold seed 0's values (a value is a function of seed, name and
    scheme). The copy's buffers may have moved with that run (BatchNorm's running statistics
    in train mode), which a train-mode output does not read and an eval-mode run does not
    move. Saves a copy and a draw of every parameter (EDSR: a plan's median 106 → 76 ms).

    ``unknown``: where the walk has no prediction because the output passed a product of two
    signals (:attr:`~initwise.torch.moments.Moments.output_unknown`); the output is then held
    against the input's ``E[x²]`` (``given``: the example input's ``(E[x²], E[x])``; 1 without
    it) with :data:`UNIT_BAND`, as
    :func:`off_unit` holds a prediction, and a sentence says where it is off."""
    target, tol = (predicted[0], OUTPUT_TOLERANCE) if predicted is not None else (0.0, 0.0)
    if predicted is None and unknown:
        target, tol = (given[0] if given is not None and given[0] > 0 else 1.0), UNIT_BAND
    if not target > 0 or not math.isfinite(target):
        return None
    params = list(model.parameters())
    if any(p.is_meta for p in params) or any(t.is_meta for t in tensors(example_input)):
        return None
    if sum(p.numel() for p in params) > COPY_LIMIT:
        return None
    args, kwargs = split(example_input)
    seen: list[float] = []
    try:
        twin, first = (module_copy(model), plan) if drafted is None else _redraw(plan, *drafted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for seed in SEEDS:
                (first if seed == SEEDS[0] else plan).apply(twin, seed=seed)
                with torch.no_grad(), seeded_rng(0), kept_modes(twin):
                    try:
                        out = twin(*args, **kwargs)
                    except Exception as exc:
                        noted_run(exc)
                        raise
                    noted_run()
                found = [t for t in tensors(out) if t.is_floating_point() and t.numel()]
                if len(found) != 1:
                    return None
                seen.append(float(found[0].detach().double().pow(2).mean()))
                if len(seen) == 1 and _within(seen[0], target, tol):
                    return None  # (the first draw agrees: no more draws)
    except Exception:  # (the plan stands as made; the check could not run)
        return None
    where = f"checked on the example input with this plan drawn (seeds {SEEDS[0]}–{SEEDS[-1]})"
    if not all(math.isfinite(v) and v > 0 for v in seen):
        expected = (
            f"the moments walk predicted E[y²] {target:.3g}"
            if predicted is not None
            else f"the walk has no prediction past {unknown}"
        )
        return (
            f"{where}: the model's output is not finite, or zero, for at least one seed, where "
            f"{expected}"
        )
    logs = [math.log(v / target) for v in seen]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    band = math.log(tol)
    same_side = all(x > band for x in logs) or all(x < -band for x in logs)
    if not same_side or abs(mean) <= band + 2 * sd:
        return None
    measured, ratio = math.exp(mean) * target, math.exp(mean)
    if predicted is None and _within(measured, 1.0, UNIT_BAND):  # (held against the input's
        return None  # scale: a model that standardizes its raw input is at unit scale)
    if predicted is None:
        against = (
            f"for the input's E[x²] {target:.3g}" if given is not None else "against unit scale"
        )
        return (
            f"{where}: the model's output has E[y²] {measured:.3g} (geometric mean; "
            f"×{math.exp(sd):.3g} between seeds) {against} (×{ratio:.3g}) — the walk has no "
            f"prediction past {unknown}, whose scale is in the width it contracts, and no layer "
            "after it is solved for a unit output (scale the product, e.g. by 1/√width, or "
            "start its weight at zero as the biaffine parser does)"
        )
    return (
        f"{where}: the model's output has E[y²] {measured:.3g} (geometric mean; "
        f"×{math.exp(sd):.3g} between seeds) where the moments walk predicted {target:.3g} "
        f"(×{ratio:.3g}) — something between input and output is not what the walk modelled "
        "(a correlated difference, a product through a transform, a filter a layer generates); the "
        "per-layer figures of diagnose(model, example) show where, and lsuv(model, example) "
        "rescales by measurement"
    )
