"""Plans: what initwise will do to every parameter of a model, and why — pure data.

A :class:`Plan` holds one :class:`ParamPlan` per parameter (scheme, fans, gain, resulting std,
and a sentence of reason). It round-trips through JSON (never pickle), prints as a table, takes
per-name-pattern overrides, and is applied by :meth:`Plan.apply` through the framework adapter
(PyTorch: :func:`initwise.torch.apply_plan`), which validates every entry against the model.
This module imports no framework.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import schemes as S
from .math.fans import Fans
from .math.shaping import Transform


class AssumptionWarning(UserWarning):
    """A plan was made with assumptions (untraced model, unknown activation or input moments,
    parameters without a rule); ``plan(..., strict=True)`` raises :class:`AssumptionError`."""


class AssumptionError(ValueError):
    """Raised by ``plan(..., strict=True)`` when anything had to be assumed."""


class SignalWarning(UserWarning):
    """The plan cannot hold the signal somewhere, with nothing assumed: a chain whose best
    operating point still drifts by more than ×10 (an activation such as a squared ReLU, whose
    variance map has no stable fixed point) — a norm, skip connections or kernel shaping can."""


FORMAT = "initwise-plan"
VERSION = 1


@dataclass(frozen=True)
class ParamPlan:
    """The plan for one parameter.

    ``scheme`` is ``None`` when the parameter is left as is (``reason`` says why). Packed
    parameters are split into ``chunks`` equal blocks along ``chunk_dim``; each block is drawn
    on its own with the block's fans, and ``chunk_schemes`` replaces the scheme of single blocks
    (e.g. an LSTM's forget-gate bias). ``zero_rows`` are set to 0 afterwards (an embedding's
    ``padding_idx``). ``center_dims``: the drawn values are centered over these dims (each output
    unit's weights sum to zero, then scaled by ``√(n/(n−1))`` so the variance is kept) — ``auto``
    does this before activations with a large mean, so the mean does not reach the next layer.
    ``row_scales``: each row (output unit) multiplied by its factor after the draw — a layer
    whose forward multiplies its weight by a fixed 0/1 mask (MADE, PixelCNN) has rows that keep
    different numbers of inputs, and ``√(mean kept fan / the row's kept fan)`` puts every unit
    at the variance the rule sets for the mean one.
    """

    name: str
    shape: tuple[int, ...]
    scheme: S.Scheme | None
    reason: str
    layer: str = ""
    fan_in: float | None = None
    fan_out: float | None = None
    gain: float | None = None
    std: float | None = None
    chunks: int = 1
    chunk_dim: int = 0
    chunk_schemes: tuple[tuple[int, S.Scheme], ...] = ()
    zero_rows: tuple[int, ...] = ()
    center_dims: tuple[int, ...] = ()
    row_scales: tuple[float, ...] = ()
    lr_mult: tuple[tuple[str, float], ...] = ()
    """Learning-rate multipliers by optimizer family (``(("adam", 0.25), ("sgd", 1.0))``), set
    by width-aware policies (μP); :meth:`Plan.param_groups` reads them."""
    forward_mult: float | None = None
    """A weight's forward multiplier ``A`` (the layer computes ``W·(A·x) + b``), set by u-μP;
    ``apply`` installs it on the weight's module as an input pre-hook
    (:mod:`initwise.torch.multipliers`). ``None``: no multiplier."""
    forward_mult_at: str = ""
    """The module whose call carries ``forward_mult`` when it is not the weight's own: a weight
    shared by several modules (μP's tied read-out, ``head.weight = emb.weight``: the multiplier
    ``1/m`` goes on the read-out's call only, the embedding's lookup stays as it is — mup's
    ``MuSharedReadout``). ``""``: the module that owns the weight's name."""

    @property
    def fans(self) -> Fans | None:
        if self.fan_in is None or self.fan_out is None:
            return None
        return Fans(self.fan_in, self.fan_out)

    @property
    def block_shape(self) -> tuple[int, ...]:
        s = list(self.shape)
        if self.chunks > 1:
            s[self.chunk_dim] //= self.chunks
        return tuple(s)

    def scheme_for_chunk(self, i: int) -> S.Scheme | None:
        return dict(self.chunk_schemes).get(i, self.scheme)

    def chunk_stream(self, i: int) -> str:
        """The name block ``i``'s counter-based stream is keyed by: the parameter's name, or
        ``name[i]`` for a packed parameter's blocks (its bits depend on it)."""
        return self.name if self.chunks == 1 else f"{self.name}[{i}]"

    @classmethod
    def build(
        cls,
        name: str,
        shape: tuple[int, ...],
        scheme: S.Scheme,
        reason: str,
        fans: Fans | None,
        gain: float | None = None,
        **kw: Any,
    ) -> ParamPlan:
        """An entry whose ``std`` is computed from the scheme; ``{std}`` in ``reason`` is
        replaced by it (how policies write their reasons)."""
        e = cls(
            name,
            shape,
            scheme,
            reason,
            fan_in=None if fans is None else fans.fan_in,
            fan_out=None if fans is None else fans.fan_out,
            gain=gain,
            **kw,
        )
        std = scheme_std(scheme, e.block_shape, fans)
        text = e.reason.replace("{std}", "—" if std is None else f"{std:.4g}")
        return dataclasses.replace(e, std=std, reason=text)

    def with_scheme(self, scheme: S.Scheme | None, reason: str) -> ParamPlan:
        """A copy with another scheme (std recomputed; chunk overrides and centering, which
        belonged to the old scheme's decision, dropped)."""
        std = None if scheme is None else scheme_std(scheme, self.block_shape, self.fans)
        return dataclasses.replace(
            self, scheme=scheme, reason=reason, std=std, chunk_schemes=(), center_dims=()
        )

    def describe(self) -> str:
        if self.scheme is None:
            return "left as is"
        name = self.scheme.label
        if self.chunks > 1:
            name += f" ×{self.chunks} blocks"
        for i, s in self.chunk_schemes:
            name += f", block {i}: {s.label}"
        if self.center_dims:
            name += ", centered"
        if self.row_scales:
            name += ", rows by kept fan"
        return name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "scheme": None if self.scheme is None else self.scheme.to_dict(),
            "reason": self.reason,
            "layer": self.layer,
            "fan_in": self.fan_in,
            "fan_out": self.fan_out,
            "gain": self.gain,
            "std": self.std,
            "chunks": self.chunks,
            "chunk_dim": self.chunk_dim,
            "chunk_schemes": [[i, s.to_dict()] for i, s in self.chunk_schemes],
            "zero_rows": list(self.zero_rows),
            **({"center_dims": list(self.center_dims)} if self.center_dims else {}),
            **({"row_scales": list(self.row_scales)} if self.row_scales else {}),
            **({"lr_mult": dict(self.lr_mult)} if self.lr_mult else {}),
            **({"forward_mult": self.forward_mult} if self.forward_mult is not None else {}),
            **({"forward_mult_at": self.forward_mult_at} if self.forward_mult_at else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamPlan:
        where = f"plan entry {d.get('name', '?')!r}" if isinstance(d, Mapping) else "plan entry"
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: must be an object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - known
        if extra:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}; known: {sorted(known)}")
        for key in ("name", "shape", "scheme", "reason"):
            if key not in d:
                raise ValueError(f"{where}: missing key {key!r}")
        try:
            shape = _shape(d["shape"])
            chunk_schemes = tuple((int(i), S.from_dict(s)) for i, s in d.get("chunk_schemes", []))
            entry = cls(
                name=str(d["name"]),
                shape=shape,
                scheme=None if d["scheme"] is None else S.from_dict(d["scheme"]),
                reason=str(d["reason"]),
                layer=str(d.get("layer", "")),
                fan_in=_opt_float(d.get("fan_in")),
                fan_out=_opt_float(d.get("fan_out")),
                gain=_opt_float(d.get("gain")),
                std=_opt_float(d.get("std")),
                chunks=int(d.get("chunks", 1)),
                chunk_dim=int(d.get("chunk_dim", 0)),
                chunk_schemes=chunk_schemes,
                zero_rows=tuple(int(r) for r in d.get("zero_rows", [])),
                center_dims=tuple(int(r) for r in d.get("center_dims", [])),
                row_scales=tuple(float(r) for r in d.get("row_scales", [])),
                lr_mult=_lr_mult(d.get("lr_mult", {})),
                forward_mult=_opt_float(d.get("forward_mult")),
                forward_mult_at=_module_name(d.get("forward_mult_at", "")),
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        entry.check()
        if entry.std is not None and entry.scheme is not None:
            real = scheme_std(entry.scheme, entry.block_shape, entry.fans)
            if real is not None and not math.isclose(entry.std, real, rel_tol=1e-6, abs_tol=1e-12):
                raise ValueError(
                    f"{where}: its 'std' field ({entry.std:g}) disagrees with its scheme, which "
                    f"gives {real:g}; 'std' is informational: remove it or correct the scheme"
                )
        return entry

    def check(self) -> None:
        """Raise ``ValueError`` if the entry is inconsistent (shape, chunks, fans, scheme)."""
        where = f"plan entry {self.name!r}"
        if any(s < 0 for s in self.shape):
            raise ValueError(f"{where}: negative dimension in shape {self.shape}")
        bad_dim = not 0 <= self.chunk_dim < len(self.shape)
        if self.chunks < 1 or (bad_dim and (self.shape or self.chunks > 1)):
            raise ValueError(f"{where}: bad chunks={self.chunks}/chunk_dim={self.chunk_dim}")
        if self.chunks > 1 and self.shape[self.chunk_dim] % self.chunks:
            raise ValueError(
                f"{where}: dim {self.chunk_dim} of shape {self.shape} is not divisible into "
                f"{self.chunks} chunks"
            )
        for i, _ in self.chunk_schemes:
            if not 0 <= i < self.chunks:
                raise ValueError(f"{where}: chunk_schemes index {i} outside 0..{self.chunks - 1}")
        for f in (self.fan_in, self.fan_out):
            if f is not None and not (math.isfinite(f) and f > 0):
                raise ValueError(f"{where}: fans must be finite and > 0, got {f}")
        a = self.forward_mult
        if a is not None and not (math.isfinite(a) and 1e-30 < a < 1e30):
            raise ValueError(
                f"{where}: forward_mult must be a finite number > 0 (between 1e-30 and 1e30), "
                f"got {a}"
            )
        if a is not None and not self.name.endswith("weight"):
            raise ValueError(
                f"{where}: forward_mult applies to weights (the layer's input is scaled); "
                "remove it from this entry"
            )
        if self.forward_mult_at and a is None:
            raise ValueError(
                f"{where}: forward_mult_at names the module that carries a forward multiplier, "
                "and the entry has none: remove forward_mult_at or give forward_mult"
            )
        for r in self.zero_rows:
            if not self.shape or not 0 <= r < self.shape[0]:
                raise ValueError(f"{where}: zero row {r} outside shape {self.shape}")
        if self.row_scales:
            if not self.shape or len(self.row_scales) != self.shape[0] or self.chunks > 1:
                raise ValueError(
                    f"{where}: row_scales must give one factor per row of shape {self.shape} "
                    f"(got {len(self.row_scales)}) and no chunks"
                )
            if not all(math.isfinite(r) and r > 0 for r in self.row_scales):
                raise ValueError(f"{where}: row_scales must be finite numbers > 0")
        if self.center_dims:
            if len(set(self.center_dims)) != len(self.center_dims) or not all(
                0 <= c < len(self.shape) for c in self.center_dims
            ):
                raise ValueError(
                    f"{where}: center_dims {list(self.center_dims)} must be distinct dims of "
                    f"shape {self.shape}"
                )
            if self.chunks > 1:
                raise ValueError(f"{where}: center_dims can not be combined with chunks")
        for i in range(self.chunks):
            s = self.scheme_for_chunk(i)
            if s is not None:
                s.check_shape(self.block_shape)
                if s.needs_fans and self.fans is None and len(self.block_shape) < 2:
                    raise ValueError(f"{where}: {s.type} needs fans, and the entry has none")


def _lr_mult(x: Any) -> tuple[tuple[str, float], ...]:
    """``{"adam": 0.25, "sgd": 1}`` from JSON: optimizer family → a finite positive number."""
    if not isinstance(x, Mapping):
        raise ValueError(f"lr_mult must be an object of optimizer -> number, got {x!r}")
    out = []
    for k, v in x.items():
        f = _opt_float(v)
        if k not in OPTIMIZERS or f is None or f <= 0:
            raise ValueError(
                f"lr_mult: {k!r}: {v!r} — optimizers are {OPTIMIZERS}, multipliers numbers > 0"
            )
        out.append((str(k), f))
    return tuple(sorted(out))


OPTIMIZERS = ("adam", "sgd")


def _shape(x: Any) -> tuple[int, ...]:
    """A shape from JSON: a list of non-negative integers (not a string, floats or booleans)."""
    if not isinstance(x, list):
        raise ValueError(f"shape must be a list of integers, got {x!r}")
    for n in x:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"shape must be a list of integers, got {x!r}")
    return tuple(x)


def _opt_float(x: Any) -> float | None:
    """An optional number from JSON: None, or a finite int/float (not a string or boolean)."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"expected a number or null, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return x


def _module_name(x: Any) -> str:
    """A module's name from JSON (``forward_mult_at``): a string, ``""`` for the root."""
    if not isinstance(x, str):
        raise ValueError(f"forward_mult_at must be a module's name (a string), got {x!r}")
    return x


MAX_PLAN_BYTES = 256 * 1024 * 1024


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    ``os.replace``: readers see the old file or the new one, never a partial one; on failure the
    temporary file is removed. The new file's mode follows the umask (as ``open`` would)."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {path!r} does not exist; create it first")
    if os.path.isdir(path):  # (os.replace would fail after the temporary file was written)
        raise IsADirectoryError(
            f"{path!r} is a directory; give a file's path (e.g. "
            f"{os.path.join(path, 'plan.json')!r})"
        )
    fd, tmp = tempfile.mkstemp(prefix=".initwise-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o777
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def scheme_std(scheme: S.Scheme, shape: tuple[int, ...], fans: Fans | None) -> float | None:
    """Std of ``scheme``'s entries for a block of ``shape`` (None for an empty block)."""
    if 0 in shape:
        return None
    return scheme.std(shape, fans)


@dataclass(frozen=True)
class ActivationRewrite:
    """An activation the plan replaces (kernel shaping: DKS/TAT).

    ``site`` is a module path (``"net.3"``, every use of that module) or ``"forward:<fn>#<k>"``,
    the k-th call (from 0) of the function ``fn`` in the model's ``forward`` as ``torch.fx``
    traces it. ``original`` names the activation found there; ``transform`` is what ``apply``
    installs (:class:`initwise.math.shaping.Transform`)."""

    site: str
    original: str
    transform: Transform
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "original": self.original,
            "transform": self.transform.to_dict(),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Any) -> ActivationRewrite:
        if not isinstance(d, Mapping):
            raise ValueError(f"activation rewrite must be an object, got {type(d).__name__}")
        extra = set(d) - {"site", "original", "transform", "reason"}
        if extra:
            raise ValueError(f"activation rewrite: unknown keys {sorted(extra)}")
        for k in ("site", "original", "reason"):
            if not isinstance(d.get(k), str):
                raise ValueError(f"activation rewrite: {k!r} must be a string")
        site = d["site"]
        if site.startswith("forward:"):
            fn, _, k = site[len("forward:") :].rpartition("#")
            if not fn or not k.isdigit():
                raise ValueError(
                    f"activation rewrite: site {site!r} must be a module path or "
                    "'forward:<function>#<call index>'"
                )
        try:
            t = Transform.from_dict(dict(d.get("transform") or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"activation rewrite at {site!r}: {exc}") from None
        return cls(site, d["original"], t, d["reason"])


@dataclass(frozen=True)
class Plan:
    """Per-parameter initialization plan for one model (and, for kernel-shaping policies, the
    activations it replaces: ``rewrites``)."""

    entries: tuple[ParamPlan, ...]
    policy: str = "custom"
    model: str = ""
    notes: tuple[str, ...] = field(default=())
    rewrites: tuple[ActivationRewrite, ...] = field(default=())

    def __post_init__(self) -> None:
        seen = set()
        for e in self.entries:
            if e.name in seen:
                raise ValueError(f"plan has two entries for parameter {e.name!r}")
            seen.add(e.name)
        sites = [r.site for r in self.rewrites]
        if len(set(sites)) != len(sites):
            raise ValueError("plan rewrites one activation site twice")

    def __iter__(self) -> Iterator[ParamPlan]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, name: str) -> ParamPlan:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no plan entry for parameter {name!r}")

    # ------------------------------------------------------------------ overrides

    def override(self, overrides: Mapping[str, Any]) -> Plan:
        """A new plan where parameters matching each glob pattern (``fnmatch`` on the parameter
        name; later patterns win) get the given scheme: a preset name (``"zeros"``),
        ``{"scheme": "normal", "std": 0.02}``, a scheme dict with ``"type"``, a Scheme, or
        ``None`` to leave the parameter as is. A pattern that matches nothing is an error."""
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a dict of pattern -> scheme, got {overrides!r}")
        entries = list(self.entries)
        for pattern, spec in overrides.items():
            if not isinstance(pattern, str):
                raise TypeError(
                    f"overrides: a pattern must be a glob string on parameter names (e.g. "
                    f"'*.bias'), got {type(pattern).__name__} {pattern!r}"
                )
            scheme = None if spec is None else S.resolve(spec)
            hits = [i for i, e in enumerate(entries) if fnmatch.fnmatchcase(e.name, pattern)]
            if not hits:
                sample = ", ".join(e.name for e in entries[:4])
                raise ValueError(
                    f"override pattern {pattern!r} matches no parameter (names look like "
                    f"{sample}, …); fix the pattern"
                )
            for i in hits:
                e = entries[i]
                what = "left as is" if scheme is None else scheme.formula()
                try:
                    if scheme is not None:
                        scheme.check_shape(e.block_shape)
                    new = e.with_scheme(scheme, f"override {pattern!r}: {what}")
                    new = dataclasses.replace(new, row_scales=())  # (the user's draw, as given)
                    if e.forward_mult is not None and e.forward_mult_at:  # (μP's tied table)
                        new = dataclasses.replace(
                            new,
                            reason=f"{new.reason} (the table as stored and looked up; its "
                            f"read-out '{e.forward_mult_at}' keeps its forward multiplier "
                            f"×{e.forward_mult:.4g})",
                        )
                    elif e.forward_mult is not None:  # u-μP: the stored weight is overridden
                        eff = (
                            ""
                            if new.std is None
                            else f": effective std {new.std * e.forward_mult:.4g}"
                        )
                        new = dataclasses.replace(
                            new,
                            reason=f"{new.reason} (the stored weight; its forward multiplier "
                            f"×{e.forward_mult:.4g} stays{eff})",
                        )
                    entries[i] = new
                except ValueError as exc:
                    raise ValueError(
                        f"override {pattern!r} does not fit parameter {e.name!r}: {exc}"
                    ) from None
        return dataclasses.replace(self, entries=tuple(entries))

    # ------------------------------------------------------------------ optimizers

    def param_groups(
        self,
        model: Any,
        lr: float,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        decay: str = "independent",
    ) -> list[dict[str, Any]]:
        """torch optimizer parameter groups with each parameter's learning rate ``lr ×`` its
        multiplier for ``optimizer`` (``"adam"`` for Adam/AdamW/…, ``"sgd"``), 1 where the plan
        has none. Parameters are found by name on the model (``torch.compile``'s
        ``OptimizedModule`` and ``DataParallel``/DDP wrappers are looked through; FSDP2
        keeps the names), so nothing is stored on the tensors and the groups survive
        ``state_dict`` round trips. Tied parameters appear once.

        ``weight_decay``: with ``decay="independent"`` (the default) each group gets
        ``weight_decay / multiplier``, so the decay a step applies — torch's ``lr · wd``, in
        AdamW and in SGD alike — is ``lr · weight_decay`` for every parameter whatever its
        learning-rate multiplier: mup's ``MuAdam``/``MuAdamW``/``MuSGD`` scale it so (checked
        against mup 1.0.0), and μP transfers with this "independent" decay (Wang & Aitchison
        2024; Kosson et al. 2025: with decay scaled by the learning rate a hidden layer's decay
        per step falls as 1/width). ``decay="coupled"``: ``weight_decay`` in every group as
        given (what this method did before 2026-12-05)."""
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if decay not in ("independent", "coupled"):
            raise ValueError(
                f"decay must be 'independent' (lr · weight_decay the same for every parameter, "
                f"as mup) or 'coupled' (weight_decay as given in every group), got {decay!r}"
            )
        if (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not (math.isfinite(weight_decay) and weight_decay >= 0)
        ):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise TypeError(f"lr must be a finite number > 0 (e.g. 3e-4), got {lr!r}") from None
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        mults = {e.name: dict(e.lr_mult).get(optimizer, 1.0) for e in self.entries}
        groups: dict[float, list[Any]] = {}
        missing = []
        for name, p in _adapter_for(model)[2](model):
            if name not in mults:
                missing.append(name)
                continue
            groups.setdefault(mults[name], []).append(p)
        if missing:
            raise ValueError(
                f"the model has parameters the plan lacks: {', '.join(missing[:4])}; make the "
                "plan for this model"
            )
        return [
            {
                "params": ps,
                "lr": lr * m,
                "weight_decay": weight_decay / m if decay == "independent" else weight_decay,
                "lr_mult": m,
            }
            for m, ps in sorted(groups.items(), key=lambda kv: -kv[0])
        ]

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "policy": self.policy,
            "model": self.model,
            "notes": list(self.notes),
            "entries": [e.to_dict() for e in self.entries],
            **({"rewrites": [r.to_dict() for r in self.rewrites]} if self.rewrites else {}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text; :meth:`from_json` reads it back to an equal plan."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any) -> Plan:
        if not isinstance(d, Mapping):
            raise ValueError(f"plan JSON must be an object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ValueError(f"not an initwise plan (format {d.get('format')!r}, want {FORMAT!r})")
        if d.get("version") != VERSION:
            raise ValueError(f"plan version {d.get('version')!r} is not supported (want {VERSION})")
        entries = d.get("entries")
        if not isinstance(entries, list):
            raise ValueError("plan JSON: 'entries' must be a list")
        notes = d.get("notes", [])
        if not isinstance(notes, list):
            raise ValueError("plan JSON: 'notes' must be a list")
        rewrites = d.get("rewrites", [])
        if not isinstance(rewrites, list):
            raise ValueError("plan JSON: 'rewrites' must be a list")
        return cls(
            tuple(ParamPlan.from_dict(e) for e in entries),
            str(d.get("policy", "")),
            str(d.get("model", "")),
            tuple(str(n) for n in notes),
            tuple(ActivationRewrite.from_dict(r) for r in rewrites),
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse and validate plan JSON; any problem raises ``ValueError`` saying where."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"plan JSON could not be parsed: {exc}") from None
        except RecursionError:
            raise ValueError("plan JSON is nested too deeply to be a plan") from None
        return cls.from_dict(data)

    def save(self, path: str) -> None:
        """Write the plan as JSON, atomically: serialized first, written to a temporary file
        beside ``path`` and renamed over it, so a failure leaves any existing file as it was
        (and no partial file). The new file gets the permissions ``open`` would give it."""
        text = self.to_json()
        write_atomic(path, text.encode("utf-8"))

    @classmethod
    def load(cls, path: str) -> Plan:
        """Read a plan written by :meth:`save` (``FileNotFoundError`` for a missing file,
        ``ValueError`` for a directory, a binary or non-JSON file, or an invalid plan, each naming
        the path)."""
        if os.path.isdir(path):
            raise ValueError(f"plan file {path!r} is a directory; pass the plan's JSON file")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"plan file {path!r} does not exist; write one with `initwise plan --json FILE` "
                "or Plan.save"
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_PLAN_BYTES + 1)
        if len(raw) > MAX_PLAN_BYTES:
            raise ValueError(f"plan file {path!r} is larger than {MAX_PLAN_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"plan file {path!r} is not UTF-8 text (a binary file?); pass the JSON written "
                "by `initwise plan --json` or Plan.save"
            ) from None
        try:
            return cls.from_json(text)
        except ValueError as exc:
            raise ValueError(f"plan file {path!r}: {exc}") from None

    # ------------------------------------------------------------------ display

    def table(self, reasons: bool = True) -> Any:
        """A ``rich`` table: parameter, shape, scheme, fans, gain, std (and reason)."""
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=escape(f"initwise plan — {self.model} (policy {self.policy})"))
        # (μP / u-μP: the learning-rate and forward multipliers, where the plan has any — in the
        # reasons only, `plan --no-reasons` showed none of them)
        lr = any(e.lr_mult for e in self.entries)
        fwd = any(e.forward_mult is not None for e in self.entries)
        numeric = ("fan_in", "fan_out", "gain", "std", "LR× Adam", "LR× SGD", "forward×")
        cols = ["parameter", "shape", "scheme", "fan_in", "fan_out", "gain", "std"]
        cols += [*(["LR× Adam", "LR× SGD"] if lr else []), *(["forward×"] if fwd else [])]
        for col in cols:
            t.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
        if reasons:
            t.add_column("reason", overflow="fold")
        for e in self.entries:
            row = [
                e.name,
                "×".join(map(str, e.shape)) or "scalar",
                e.describe(),
                _fmt(e.fan_in),
                _fmt(e.fan_out),
                _fmt(e.gain),
                _fmt(e.std),
            ]
            if lr:
                mult = dict(e.lr_mult)
                row += [_fmt(mult.get("adam")), _fmt(mult.get("sgd"))]
            if fwd:
                at = f" at {e.forward_mult_at}" if e.forward_mult_at else ""
                row.append(_fmt(e.forward_mult) + (at if e.forward_mult is not None else ""))
            cells = [*row, *([e.reason] if reasons else [])]
            t.add_row(*(escape(c) for c in cells))  # names and reasons are text, not markup
        return t

    def rewrite_table(self, reasons: bool = True) -> Any:
        """A ``rich`` table of the activations the plan replaces (site, original, installed
        function, reason)."""
        from rich.markup import escape
        from rich.table import Table

        t = Table(title="activation rewrites (installed by apply)")
        for col in ("site", "original", "installed", *(["reason"] if reasons else [])):
            t.add_column(col, overflow="fold")
        for r in self.rewrites:
            cells = [r.site, r.original, r.transform.formula(), *([r.reason] if reasons else [])]
            t.add_row(*(escape(c) for c in cells))
        return t

    def explain(self) -> str:
        """Every decision in words: one line per parameter (scheme and reason), one per
        activation rewrite, then the notes."""
        lines = [f"plan for {self.model} (policy {self.policy}):"]
        for e in self.entries:
            lines.append(f"- {e.name} {list(e.shape)}: {e.describe()} — {e.reason}")
        for r in self.rewrites:
            lines.append(
                f"- activation at {r.site}: {r.original} → {r.transform.formula()} — {r.reason}"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def render(self, width: int = 160, reasons: bool = True) -> str:
        """The table as plain text."""
        from rich.console import Console

        console = Console(width=width, record=True, file=io.StringIO())
        console.print(self.table(reasons))
        if self.rewrites:
            console.print(self.rewrite_table(reasons))
        for n in self.notes:
            console.print(f"note: {n}")
        return console.export_text()

    def __str__(self) -> str:
        return self.render()

    # ------------------------------------------------------------------ apply

    def apply(self, model: Any, seed: int, **kwargs: Any) -> Any:
        """Initialize ``model`` by this plan with the framework adapter that handles it
        (PyTorch: :func:`initwise.torch.apply_plan`). Adapters register themselves with
        :func:`register_applier` when imported, or when asked (their ``_register()``); a torch
        model loads ``initwise.torch``."""
        return applier_for(model)(self, model, seed, **kwargs)


Applier = Callable[..., Any]
_APPLIERS: list[tuple[Callable[[Any], bool], Applier, Callable[[Any], Any]]] = []
_ADAPTERS = {"torch": "initwise.torch"}  # root module of the model's class -> adapter package


def register_applier(
    accepts: Callable[[Any], bool],
    apply: Applier,
    named_parameters: Callable[[Any], Any] | None = None,
) -> None:
    """Let :meth:`Plan.apply` hand models for which ``accepts(model)`` is true to ``apply(plan,
    model, seed, **kwargs)``, and :meth:`Plan.param_groups` find their parameters by name with
    ``named_parameters(model)`` (looking through the framework's wrappers; default: the model's
    own ``named_parameters()``). Pure data stays framework-free: frameworks plug in here."""
    names = named_parameters or (lambda m: m.named_parameters())
    _APPLIERS.append((accepts, apply, names))


def applier_for(model: Any) -> Applier:
    """The registered applier for ``model``, importing the adapter its framework names."""
    return _adapter_for(model)[1]


def _adapter_for(model: Any) -> tuple[Callable[[Any], bool], Applier, Callable[[Any], Any]]:
    for adapter in _APPLIERS:
        if adapter[0](model):
            return adapter
    roots = {(c.__module__ or "").split(".")[0] for c in type(model).__mro__}
    for root, package in _ADAPTERS.items():
        if root in roots:
            module = importlib.import_module(package)
            register = getattr(module, "_register", None)
            if callable(register):  # (an adapter whose import loads nothing registers here)
                register()
            for adapter in _APPLIERS:
                if adapter[0](model):
                    return adapter
    raise TypeError(
        f"Plan.apply: no adapter for a {type(model).__name__} (initwise applies plans to "
        "torch.nn.Module models; install torch and pass a module)"
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:g}" if float(x).is_integer() else f"{x:.4g}"
