"""Apply a :class:`~initwise.plan.Plan` to a model: validate everything, then write.

Every parameter is drawn from its own ``torch.Generator`` seeded by a hash of ``(seed, name)``,
so a parameter's values depend on the seed and its name only — not on the order of layers, on
other parameters, or on which parameters a plan leaves as is. CPU and CUDA generators produce
different streams, so the same seed gives different (equally distributed) values per device
type.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from ..plan import ParamPlan, Plan
from .init import check_tensor, sample


def param_seed(seed: int, name: str) -> int:
    """63-bit seed of parameter ``name``: ``blake2b(f"{seed}/{name}")``."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def draw(
    entry: ParamPlan,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """The values of ``entry`` as a tensor on ``device`` (compute precision; not yet cast)."""
    gen = torch.Generator(device=device).manual_seed(param_seed(seed, entry.name))
    blocks = []
    for i in range(entry.chunks):
        scheme = entry.scheme_for_chunk(i)
        assert scheme is not None
        blocks.append(
            sample(
                scheme,
                entry.block_shape,
                generator=gen,
                device=device,
                dtype=dtype,
                fans=entry.fans,
                target=target if entry.chunks == 1 else None,
            )
        )
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=entry.chunk_dim)
    if entry.zero_rows:
        out[list(entry.zero_rows)] = 0
    return out


def validate(plan: Plan, model: nn.Module) -> dict[str, nn.Parameter]:
    """Check ``plan`` against ``model``; return the parameters by name. Raises ``ValueError``
    naming the first problems and the fix; nothing is written."""
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an initwise Plan, got {type(plan).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = dict(model.named_parameters())
    names = {e.name for e in plan}
    missing = [n for n in params if n not in names]
    extra = [n for n in names if n not in params]
    if missing or extra:
        parts = []
        if extra:
            parts.append(f"the plan has parameters the model lacks: {_few(extra)}")
        if missing:
            parts.append(f"the model has parameters the plan lacks: {_few(missing)}")
        raise ValueError(
            f"plan does not match the model ({plan.model or '?'} vs {type(model).__name__}): "
            + "; ".join(parts)
            + " — make a new plan for this model"
        )
    for e in plan:
        p = params[e.name]
        if tuple(p.shape) != e.shape:
            raise ValueError(
                f"parameter {e.name!r} has shape {tuple(p.shape)} but the plan says {e.shape} — "
                "make a new plan for this model"
            )
        e.check()
        if e.scheme is not None:
            check_tensor(p, f"parameter {e.name!r}")
    return params


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


def apply_plan(
    plan: Plan,
    model: nn.Module,
    seed: int,
    *,
    device: str | torch.device | None = None,
    atomic: bool = True,
) -> nn.Module:
    """Initialize ``model`` by ``plan`` in place and return it.

    Args:
        plan: from :func:`initwise.torch.plan` or :meth:`Plan.from_json`.
        model: the model (any device; meta-device models are materialized).
        seed: integer; with the parameter name it determines every value.
        device: where a meta-device model is materialized (default ``"cpu"``).
        atomic: draw every parameter before writing any (peak memory: the new values of the
            whole model). ``False`` writes each parameter as it is drawn; validation still
            happens first. Meta-device models are always filled directly.

    Raises:
        ValueError / TypeError: plan and model disagree (names, shapes, dtypes), a scheme does
            not fit, a meta-device model has parameters the plan leaves as is or buffers initwise
            cannot fill. The model is unchanged.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    params = validate(plan, model)
    entries = [e for e in plan if e.scheme is not None]
    meta = [n for n, p in params.items() if p.is_meta]
    if meta:
        _check_meta(plan, model, params)
        model.to_empty(device=device or "cpu")
        for m in model.modules():
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
        params = dict(model.named_parameters())
        atomic = False
    with torch.no_grad():
        if atomic:
            staged = {
                e.name: draw(e, seed, params[e.name].device, params[e.name].dtype) for e in entries
            }
            for name, values in staged.items():
                params[name].copy_(values)
        else:
            for e in entries:
                p = params[e.name]
                values = draw(e, seed, p.device, p.dtype, target=p)
                if values is not p:
                    p.copy_(values)
    return model


def _check_meta(plan: Plan, model: nn.Module, params: dict[str, nn.Parameter]) -> None:
    left = [e.name for e in plan if e.scheme is None]
    if left:
        raise ValueError(
            f"the model is on the meta device and the plan leaves {_few(left)} as is: they "
            "would hold uninitialized memory — give them a scheme with overrides="
        )
    norm_buffers = {"running_mean", "running_var", "num_batches_tracked"}
    bad = [
        n
        for n, b in model.named_buffers()
        if b.is_meta and n.rsplit(".", 1)[-1] not in norm_buffers
    ]
    if bad:
        raise ValueError(
            f"buffers {_few(bad)} are on the meta device and initwise can not know their values;"
            " create them on a real device (or fill them yourself after apply)"
        )
    on = {p.device.type for p in params.values()}
    if len(on) > 1:
        raise ValueError(f"the model is partly on the meta device ({sorted(on)}); move it to one")


def materialize(
    model: nn.Module,
    plan: Plan | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    policy: str = "auto",
    **plan_kw: Any,
) -> nn.Module:
    """Allocate a meta-device ``model`` on ``device`` and fill it by ``plan`` (made with
    ``policy`` when not given): one allocation per parameter, no default init to throw away."""
    if plan is None:
        from .planner import plan as make_plan

        plan = make_plan(model, policy, **plan_kw)
    return apply_plan(plan, model, seed, device=device)
