"""Weights a layer computes from other parameters: ``torch.nn.utils.parametrize``
(``weight_norm``, ``spectral_norm``, ``orthogonal``, custom), the older hook-based
``torch.nn.utils.weight_norm`` and ``torch.nn.utils.spectral_norm``, and ``torch.nn.utils.prune``.

Such a layer computes with ``module.weight``, a function of *original* parameters
(``…parametrizations.weight.original0/1``; ``weight_g``/``weight_v``; ``weight_orig`` and the
buffers ``weight_u``/``weight_v`` or ``weight_mask``). initwise plans that tensor under its own
name (``"0.weight"``, as in the same model without the reparametrization: the same seed draws
the same values), gives the originals no entries, and writes the draw *through* the
reparametrization:

* ``weight_norm`` (Salimans & Kingma 2016, ``w = g·v/‖v‖``), either API: ``v`` = the draw,
  ``g = ‖draw‖`` per output unit — the layer computes with the draw (to float rounding:
  ``g·v/‖v‖`` is recomputed);
* ``spectral_norm`` (Miyato et al. 2018, ``w = W/σ_max(W)``): ``W`` = the draw; the
  power-iteration vectors ``_u``, ``_v`` are restarted from the seed and iterated 15 times on the
  new matrix (as torch does when the parametrization is registered) — the layer computes with
  the draw scaled to spectral norm 1: the init sets its direction, not its scale. The hook-based
  API the same: ``weight_orig`` = the draw, ``weight_u``/``weight_v`` restarted and iterated;
* ``orthogonal``: the layer computes with an orthogonal matrix (the Q of the draw's QR): the init
  picks which one, not its scale;
* other parametrizations: written through ``right_inverse`` (one without it cannot be written:
  the planner leaves it as is and says so); the layer computes with ``f(draw)``;
* ``prune`` (``w = weight_orig ⊙ weight_mask``): ``weight_orig`` = the draw, the mask stays — the
  layer computes with the draw's kept entries (its output variance is the kept fraction of the
  planned one).

Imports only torch, :mod:`initwise.plan` and :mod:`initwise.torch.batch`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize as P

from ..plan import AssumptionWarning
from .batch import kept_modes
from .modules import kept_fractions

POWER_ITERATIONS = 15
"""Power iterations for ``spectral_norm``'s vectors after a write (torch's own at registration)."""


@dataclass(frozen=True, eq=False)
class Site:
    """One weight computed from other parameters: ``module.attr``, planned as ``name``."""

    name: str
    module: nn.Module
    attr: str
    mechanism: str  # "parametrize", "weight_norm_hook" or "prune"
    hook: Any = None  # the forward pre-hook object of the hook-based mechanisms
    originals: tuple[str, ...] = ()  # full names of the parameters it is computed from

    @property
    def kinds(self) -> list[str]:
        """The reparametrizations in order (``["weight_norm"]``, ``["pruned"]``…)."""
        if self.mechanism == "weight_norm_hook":
            return ["weight_norm"]
        if self.mechanism == "spectral_norm_hook":
            return ["spectral_norm"]
        if self.mechanism == "prune":
            return ["pruned"]
        known = {
            "_WeightNorm": "weight_norm",
            "_SpectralNorm": "spectral_norm",
            "_Orthogonal": "orthogonal",
        }
        plist = self.module.parametrizations[self.attr]
        return [known.get(type(p).__name__, type(p).__name__) for p in plist]

    @property
    def writable(self) -> bool:
        """Whether a value can be written through it (every parametrization on it has a
        ``right_inverse``; torch raises otherwise)."""
        if self.mechanism != "parametrize":
            return True
        return all(hasattr(p, "right_inverse") for p in self.module.parametrizations[self.attr])

    @property
    def fixed_scale(self) -> str | None:
        """The reparametrization that fixes the weight's scale (LSUV cannot change it)."""
        return next((k for k in self.kinds if k in ("spectral_norm", "orthogonal")), None)

    def describe(self) -> str:
        """What writing the weight through it does, for a plan entry's reason."""
        ks = self.kinds
        if ks == ["weight_norm"]:
            api = " (hook-based torch.nn.utils.weight_norm)" if self.hook is not None else ""
            return (
                f"weight_norm{api}: written through it (g = the draw's norm per unit, v = the "
                "draw), the layer computes with the draw (g·v/‖v‖: to float rounding)"
            )
        if ks == ["spectral_norm"]:
            api = " (hook-based torch.nn.utils.spectral_norm)" if self.hook is not None else ""
            return (
                f"spectral_norm{api}: written through it, the layer computes with the draw "
                "divided by its largest singular value (power iteration restarted from the "
                "seed) — the init sets its direction, not its scale"
            )
        if ks == ["orthogonal"]:
            return (
                "orthogonal parametrization: written through it, the layer computes with the Q "
                "of the draw's QR — orthogonal whatever the draw; the init picks which, not the "
                "scale"
            )
        if ks == ["pruned"]:
            mask = getattr(self.module, f"{self.attr}_mask")
            kept = float(mask.float().mean()) if not mask.is_meta else float("nan")
            return (
                f"pruned (torch.nn.utils.prune): {self.attr}_orig = the draw, the mask stays "
                f"(keeps {kept:.0%}): the layer computes with the kept entries"
            )
        return (
            f"parametrized by {' → '.join(ks)}: written through right_inverse, the layer "
            "computes with f(draw)"
        )

    def kept_fractions(self) -> tuple[float, float] | None:
        """For a pruned weight: the mean kept fraction of the non-empty slices along dim 0 and
        along dim 1 (for a Linear/Conv weight, each output unit's inputs and each input's
        outputs); None for other mechanisms, a meta mask, or nothing kept."""
        if self.mechanism != "prune":
            return None
        return kept_fractions(getattr(self.module, f"{self.attr}_mask"))

    def effective(self) -> torch.Tensor:
        """The tensor the layer computes with (no graph kept). Parametrizations run in eval
        mode: in train mode ``spectral_norm`` runs a power iteration on every read and moves
        its vectors (buffers of the user's model)."""
        with torch.no_grad():
            if self.mechanism == "weight_norm_hook":
                return self.hook.compute_weight(self.module).detach()
            if self.mechanism == "spectral_norm_hook":
                return self.hook.compute_weight(self.module, do_power_iteration=False).detach()
            if self.mechanism == "prune":
                return self.hook.apply_mask(self.module).detach()
            with kept_modes(self.module.parametrizations[self.attr], False):
                return getattr(self.module, self.attr).detach()

    def state(self) -> dict[str, Any]:
        """A copy of everything a write changes, for :meth:`restore` (bit for bit)."""
        if self.mechanism == "parametrize":
            plist = self.module.parametrizations[self.attr]
            return {k: t.detach().clone() for k, t in plist.state_dict(keep_vars=True).items()}
        names = {
            "weight_norm_hook": ("_g", "_v"),
            "spectral_norm_hook": ("_orig", "_u", "_v"),
        }.get(self.mechanism, ("_orig",))
        saved: dict[str, Any] = {
            s: getattr(self.module, self.attr + s).detach().clone() for s in names
        }
        saved[""] = getattr(self.module, self.attr, None)  # the computed attribute (an object)
        return saved

    def restore(self, saved: dict[str, Any]) -> None:
        """Put back what :meth:`state` copied."""
        with torch.no_grad():
            if self.mechanism == "parametrize":
                plist = self.module.parametrizations[self.attr]
                for k, t in plist.state_dict(keep_vars=True).items():
                    t.copy_(saved[k])
                return
            for s, t in saved.items():
                if s:
                    getattr(self.module, self.attr + s).copy_(t)
            setattr(self.module, self.attr, saved[""])

    def write(self, value: torch.Tensor, seed: int | None = None) -> None:
        """The layer's weight := ``value`` through the reparametrization (see the module
        docstring); ``seed`` restarts ``spectral_norm``'s power iteration."""
        m, attr = self.module, self.attr
        with torch.no_grad():
            if self.mechanism == "weight_norm_hook":
                v, g = getattr(m, attr + "_v"), getattr(m, attr + "_g")
                v.copy_(value)
                g.copy_(torch.norm_except_dim(value, 2, self.hook.dim))
                setattr(m, attr, self.hook.compute_weight(m))  # as its own hook does
                return
            if self.mechanism == "prune":
                getattr(m, attr + "_orig").copy_(value)
                setattr(m, attr, self.hook.apply_mask(m))  # as its own hook does
                return
            if self.mechanism == "spectral_norm_hook":
                getattr(m, attr + "_orig").copy_(value)
                _restart_hook_power_iteration(self.hook, m, seed)
                setattr(m, attr, self.hook.compute_weight(m, do_power_iteration=False))
                return
            plist = m.parametrizations[attr]
            setattr(m, attr, value)
            first = plist[0]
            if type(first).__name__ == "_SpectralNorm" and hasattr(plist, "original"):
                _restart_power_iteration(first, plist.original, seed)

    def scale(self, f: float) -> None:
        """The layer's weight × ``f`` (LSUV): weight_norm's ``g``, prune's ``weight_orig``."""
        m, attr = self.module, self.attr
        with torch.no_grad():
            if self.mechanism == "weight_norm_hook":
                getattr(m, attr + "_g").mul_(f)
                setattr(m, attr, self.hook.compute_weight(m))
            elif self.mechanism == "prune":
                getattr(m, attr + "_orig").mul_(f)
                setattr(m, attr, self.hook.apply_mask(m))
            else:
                self.write(self.effective() * f)


def _hook_sites(name: str, m: nn.Module) -> Iterator[Site]:
    from torch.nn.utils import prune
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    prefix = f"{name}." if name else ""
    for hook in m._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            originals = (f"{prefix}{hook.name}_g", f"{prefix}{hook.name}_v")
            yield Site(f"{prefix}{hook.name}", m, hook.name, "weight_norm_hook", hook, originals)
        elif isinstance(hook, SpectralNorm):
            yield Site(
                f"{prefix}{hook.name}",
                m,
                hook.name,
                "spectral_norm_hook",
                hook,
                (f"{prefix}{hook.name}_orig",),
            )
        elif isinstance(hook, prune.BasePruningMethod):  # (a PruningContainer too)
            t = hook._tensor_name
            yield Site(f"{prefix}{t}", m, t, "prune", hook, (f"{prefix}{t}_orig",))


def sites_of(name: str, module: nn.Module) -> list[Site]:
    """The computed weights of one module (``name``: its name in the model)."""
    out = list(_hook_sites(name, module)) if module._forward_pre_hooks else []
    if P.is_parametrized(module):
        prefix = f"{name}." if name else ""
        for attr, plist in module.parametrizations.items():
            originals = tuple(
                f"{prefix}parametrizations.{attr}.{n}"
                for n, _ in plist.named_parameters(recurse=False)
            )
            out.append(Site(f"{prefix}{attr}", module, attr, "parametrize", None, originals))
    return out


def sites(model: nn.Module) -> dict[str, Site]:
    """``{"0.weight": Site}`` for every computed weight of ``model`` (one walk; a module with
    no forward pre-hook and no parametrization is passed over without a call — ``apply`` asks
    this of every model)."""
    out: dict[str, Site] = {}
    for n, m in model.named_modules():
        if _may_compute(m):
            for s in sites_of(n, m):
                out[s.name] = s
    return out


def originals(model: nn.Module, found: dict[str, Site] | None = None) -> dict[str, str]:
    """``{original parameter's name: its site's name}``
    (``"0.parametrizations.weight.original1"`` → ``"0.weight"``, ``"0.weight_g"`` → …);
    ``found``: :func:`sites` of the model when already known."""
    found = sites(model) if found is None else found
    return {o: s.name for s in found.values() for o in s.originals}


def named_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """``model.named_parameters()`` with each original under its site's name (the name a plan
    gives it: weight_norm's ``g`` and ``v`` both as ``"0.weight"``)."""
    orig = originals(model)
    for n, p in model.named_parameters():
        yield orig.get(n, n), p


def site_of(module: nn.Module, attr: str = "weight") -> Site | None:
    """The :class:`Site` of ``module.attr`` if it is computed, else None."""
    if not _may_compute(module):  # (asked of every weight layer while planning)
        return None
    return next((s for s in sites_of("", module) if s.attr == attr), None)


def _may_compute(m: nn.Module) -> bool:
    """Whether ``m`` has a forward pre-hook or a parametrization — without
    ``P.is_parametrized``, which reads the attribute through ``Module.__getattr__`` and raises
    for almost every module (3× the time of a whole :func:`sites` walk)."""
    return bool(m._forward_pre_hooks) or isinstance(
        m.__dict__.get("_modules", {}).get("parametrizations"), nn.ModuleDict
    )


@contextmanager
def quiet(model: nn.Module) -> Iterator[None]:
    """Run the block with every parametrization of ``model`` in eval mode (each one's own mode
    given back after): reading a weight under ``spectral_norm`` in train mode runs a power
    iteration and moves its vectors, buffers of the user's model — planning reads weights."""
    with ExitStack() as stack:
        for m in model.modules():
            if isinstance(m, P.ParametrizationList):
                stack.enter_context(kept_modes(m, False))
        yield


def written_buffer(buffer_name: str) -> bool:
    """Whether :meth:`Site.write` sets this buffer (``spectral_norm``'s ``_u``/``_v``), so a
    meta-device model's copy need not be known in advance."""
    parts = buffer_name.split(".")
    return (
        len(parts) >= 4
        and parts[-1] in ("_u", "_v")
        and parts[-2] == "0"
        and parts[-4] == "parametrizations"
    )


def hook_written_buffers(model: nn.Module) -> set[str]:
    """The buffers :meth:`Site.write` sets for the hook-based ``spectral_norm``
    (``weight_u``/``weight_v``: restarted from the seed), so a meta-device model's copy need
    not be known in advance."""
    return {
        f"{s.name}{suffix}"
        for s in sites(model).values()
        if s.mechanism == "spectral_norm_hook"
        for suffix in ("_u", "_v")
    }


def _seeded_unit_vectors(u: torch.Tensor, v: torch.Tensor, seed: int | None) -> None:
    """``u`` and ``v`` := unit vectors drawn from ``seed`` (float64, then cast): the start of a
    restarted power iteration, the same for both ``spectral_norm`` APIs."""
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    for t in (u, v):
        start = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        t.copy_((start / start.norm()).to(t.dtype))


def _restart_power_iteration(sn: Any, original: torch.Tensor, seed: int | None) -> None:
    if original.ndim <= 1:
        return  # a vector is normalized exactly (no iteration)
    u, v = getattr(sn, "_u", None), getattr(sn, "_v", None)
    method = getattr(sn, "_power_method", None)
    reshape = getattr(sn, "_reshape_weight_to_matrix", None)
    if u is None or v is None or method is None or reshape is None:  # torch changed its internals
        warnings.warn(
            AssumptionWarning(
                "spectral_norm: this torch has no _u/_v/_power_method on its parametrization; "
                "the power-iteration vectors were not restarted for the new weight (they catch "
                "up one iteration per forward pass in train mode)"
            ),
            stacklevel=4,
        )
        return
    _seeded_unit_vectors(u, v, seed)
    method(reshape(original), POWER_ITERATIONS)


def _restart_hook_power_iteration(hook: Any, m: nn.Module, seed: int | None) -> None:
    """The hook-based ``spectral_norm``'s ``u``, ``v`` restarted from ``seed`` and iterated
    :data:`POWER_ITERATIONS` times on the new ``weight_orig`` (its own update, in place)."""
    w = hook.reshape_weight_to_matrix(getattr(m, hook.name + "_orig"))
    u, v = getattr(m, hook.name + "_u"), getattr(m, hook.name + "_v")
    _seeded_unit_vectors(u, v, seed)
    for _ in range(POWER_ITERATIONS):
        v.copy_(torch.nn.functional.normalize(torch.mv(w.t(), u), dim=0, eps=hook.eps))
        u.copy_(torch.nn.functional.normalize(torch.mv(w, v), dim=0, eps=hook.eps))
