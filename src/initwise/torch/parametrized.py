"""Weights under ``torch.nn.utils.parametrize`` — ``weight_norm``, ``spectral_norm``,
``orthogonal`` and custom parametrizations.

A parametrized layer computes with ``module.weight``, a function of *original* parameters
(``…parametrizations.weight.original`` or ``original0``/``original1``). initwise plans that
tensor under its own name (``"0.weight"``, as in the same model without the parametrization:
the same seed draws the same values) and writes it *through* the parametrization
(``module.weight = value`` calls its ``right_inverse``), so the originals follow:

* ``weight_norm`` (Salimans & Kingma 2016, ``w = g·v/‖v‖``): ``g = ‖value‖`` per output unit,
  ``v = value`` — the layer computes with the drawn tensor (to float rounding: ``g·v/‖v‖`` is
  recomputed);
* ``spectral_norm`` (Miyato et al. 2018, ``w = W/σ_max(W)``): ``W = value``; the power-iteration
  vectors ``_u``, ``_v`` are restarted from the seed and iterated 15 times on the new matrix (as
  torch does when the parametrization is registered) — the layer computes with the draw scaled
  to spectral norm 1: the init sets its direction, not its scale;
* ``orthogonal`` (``torch.nn.utils.parametrizations.orthogonal``): the layer computes with an
  orthogonal matrix (the Q of the draw's QR): the init picks which one, not its scale;
* others: written through ``right_inverse`` where they define one (else the value becomes the
  original); the layer computes with ``f(value)``, which ``diagnose`` measures.

The originals themselves get no plan entries. Imports only torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize as P

_ORIGINAL = re.compile(r"^(?:(.*)\.)?parametrizations\.([^.]+)\.(original\d*)$")

POWER_ITERATIONS = 15
"""Power iterations for ``spectral_norm``'s vectors after a write (torch's own at registration)."""


def is_parametrized(module: nn.Module) -> bool:
    """Whether ``module`` has any parametrized tensor."""
    return P.is_parametrized(module)


def sites(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """``{"0.weight": (module, "weight")}`` for every parametrized tensor of ``model``."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for name, m in model.named_modules():
        if P.is_parametrized(m):
            for attr in m.parametrizations:
                out[f"{name}.{attr}" if name else attr] = (m, attr)
    return out


def original_of(param_name: str) -> str | None:
    """The parametrized tensor an original parameter belongs to
    (``"0.parametrizations.weight.original1"`` → ``"0.weight"``), else None."""
    match = _ORIGINAL.match(param_name)
    if match is None:
        return None
    prefix, attr = match.group(1), match.group(2)
    return f"{prefix}.{attr}" if prefix else attr


_WRITTEN_BUFFER = re.compile(r"(?:^|\.)parametrizations\.[^.]+\.0\._[uv]$")


def written_buffer(buffer_name: str) -> bool:
    """Whether :func:`write` sets this buffer (``spectral_norm``'s ``_u``/``_v``), so a
    meta-device model's copy need not be known in advance."""
    return _WRITTEN_BUFFER.search(buffer_name) is not None


def kinds(module: nn.Module, attr: str) -> list[str]:
    """Names of the parametrizations on ``module.attr`` in order (``["weight_norm"]``)."""
    known = {
        "_WeightNorm": "weight_norm",
        "_SpectralNorm": "spectral_norm",
        "_Orthogonal": "orthogonal",
    }
    return [known.get(type(p).__name__, type(p).__name__) for p in module.parametrizations[attr]]


def describe(module: nn.Module, attr: str) -> str:
    """What writing ``module.attr`` through its parametrization does, for a plan's reason."""
    ks = kinds(module, attr)
    if ks == ["weight_norm"]:
        return (
            "weight_norm: written through it (g = the draw's norm per unit, v = the draw), the "
            "layer computes with the draw (g·v/‖v‖: to float rounding)"
        )
    if ks == ["spectral_norm"]:
        return (
            "spectral_norm: written through it, the layer computes with the draw divided by its "
            "largest singular value (power iteration restarted from the seed) — the init sets "
            "its direction, not its scale"
        )
    if ks == ["orthogonal"]:
        return (
            "orthogonal parametrization: written through it, the layer computes with the Q of "
            "the draw's QR — orthogonal whatever the draw; the init picks which, not the scale"
        )
    return (
        f"parametrized by {' → '.join(ks)}: written through right_inverse where defined, the "
        "layer computes with f(draw)"
    )


@contextmanager
def quiet(model: nn.Module) -> Iterator[None]:
    """Run the block with every parametrization of ``model`` in eval mode (each one's own mode
    given back after): reading a weight under ``spectral_norm`` in train mode runs a power
    iteration and moves its vectors, buffers of the user's model — planning reads weights."""
    lists = [m for m in model.modules() if isinstance(m, P.ParametrizationList)]
    saved = [(m, m.training) for x in lists for m in x.modules()]
    try:
        for x in lists:
            x.eval()
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def writable(module: nn.Module, attr: str) -> bool:
    """Whether ``module.attr = value`` works: every parametrization on it has a
    ``right_inverse`` (torch raises otherwise)."""
    return all(hasattr(p, "right_inverse") for p in module.parametrizations[attr])


def effective(module: nn.Module, attr: str) -> torch.Tensor:
    """The tensor the layer computes with (no graph kept), computed with the parametrizations in
    eval mode: in train mode ``spectral_norm`` runs a power iteration on every read and moves
    its vectors (buffers of the user's model)."""
    from .batch import kept_modes

    with torch.no_grad(), kept_modes(module.parametrizations[attr], False):
        return getattr(module, attr).detach()


def state(module: nn.Module, attr: str) -> dict[str, torch.Tensor]:
    """A copy of everything a write to ``module.attr`` changes (the originals, and buffers of
    the parametrizations such as ``spectral_norm``'s vectors), for :func:`restore`."""
    plist = module.parametrizations[attr]
    return {k: t.detach().clone() for k, t in plist.state_dict(keep_vars=True).items()}


def restore(module: nn.Module, attr: str, saved: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`state` copied (bit for bit)."""
    plist = module.parametrizations[attr]
    with torch.no_grad():
        for k, t in plist.state_dict(keep_vars=True).items():
            t.copy_(saved[k])


def write(module: nn.Module, attr: str, value: torch.Tensor, seed: int | None = None) -> None:
    """``module.attr = value`` through its parametrization (its ``right_inverse``), then
    ``spectral_norm``'s power-iteration vectors restarted (from ``seed``) on the new matrix."""
    plist = module.parametrizations[attr]
    with torch.no_grad():
        setattr(module, attr, value)
        first = plist[0]
        if type(first).__name__ == "_SpectralNorm" and hasattr(plist, "original"):
            _restart_power_iteration(first, plist.original, seed)


def _restart_power_iteration(sn: Any, original: torch.Tensor, seed: int | None) -> None:
    u, v = getattr(sn, "_u", None), getattr(sn, "_v", None)
    method = getattr(sn, "_power_method", None)
    reshape = getattr(sn, "_reshape_weight_to_matrix", None)
    if u is None or v is None or method is None or reshape is None or original.ndim <= 1:
        return  # a vector is normalized exactly (no iteration), or torch changed its internals
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    for t in (u, v):
        start = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        t.copy_((start / start.norm()).to(t.dtype))
    method(reshape(original), POWER_ITERATIONS)
