"""A Hugging Face family's own rule for a parameter initwise has no rule for, read from the
family's ``_init_weights`` without running it on the model.

``PreTrainedModel._init_weights(module)`` is each family's statement of how its parameters start
(DiffLlama's λ vectors ``N(0, lambda_std_dev²)``, Doge's ``A`` zeros, GPT-NeoX-Japanese's
``dense_bias`` zeros, JetMoE's expert stacks ``N(0, initializer_range²)``). Before, such a
parameter was "left as is": its values were whatever the constructor's global-RNG draw gave,
not reproducible from the seed. Here the family's method is called on a copy of the module whose
tensors are on the meta device (nothing of the model is read or written, no random number is
drawn), with the init functions it calls — ``transformers.initialization``'s and
``torch.nn.init``'s — replaced by recorders; the last call on each whole parameter is its rule,
drawn then from initwise's stream like any scheme. Calls on part of a parameter (a padding row),
other functions, or a family without ``_init_weights`` give no rule (still "left as is").
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import schemes as S
from .batch import meta_stand_in, meta_tensors
from .copying import module_copy

_PARAMS = {
    "normal_": (("mean", 0.0), ("std", 1.0)),
    "uniform_": (("a", 0.0), ("b", 1.0)),
    "constant_": (("val", None),),
    "ones_": (),
    "zeros_": (),
    "trunc_normal_": (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
}
"""The init functions whose call is a rule (a distribution or a constant), with their arguments
by name and ``torch.nn.init``'s defaults."""


def family_owner(model: nn.Module) -> nn.Module | None:
    """The outermost Hugging Face model in ``model`` (a module with ``_init_weights`` and a
    ``config``, transformers imported), or None."""
    tf = sys.modules.get("transformers")
    base = getattr(tf, "PreTrainedModel", None)
    if base is None:
        return None
    return next((m for m in model.modules() if isinstance(m, base)), None)


def family_rules(
    owner: nn.Module, module: nn.Module, meta: dict[int, Any] | None = None
) -> dict[str, tuple[S.Scheme, str]]:
    """``{parameter name: (scheme, the call as written)}`` for ``module``'s own parameters that
    ``owner._init_weights(module)`` sets whole with one of :data:`_PARAMS`. Empty where the
    method fails on the copy or sets nothing recognizable. ``meta``: :func:`meta_tensors` of
    ``owner``, made here when not given."""
    try:
        probe = _meta_copy(module, meta if meta is not None else meta_tensors(owner))
    except Exception:  # (a module that cannot be copied: no rule)
        return {}
    own = dict(probe.named_parameters(recurse=False))
    ids = {id(t): n for n, t in own.items()}
    aliases: dict[int, str] = {}  # id of a parameter's `.data` -> its name
    keep: list[Any] = []  # (the aliases alive, so that their ids stay theirs)
    calls: dict[str, tuple[str, dict[str, Any]] | None] = {}

    def owner_of(t: Any) -> tuple[str | None, bool]:
        """(the parameter ``t`` is, or is part of; whether whole)."""
        name = ids.get(id(t)) or aliases.get(id(t))
        if name is not None:
            return name, True
        base = getattr(t, "_base", None)
        name = ids.get(id(base)) or aliases.get(id(base)) if base is not None else None
        return name, False

    def record(fn: str, t: Any, kw: dict[str, Any]) -> None:
        name, whole = owner_of(t)
        if name is not None:
            calls[name] = (fn, kw) if whole else None  # (part of it: not one rule)

    def written(t: Any) -> None:  # any other in-place write: the last call is not the rule
        name, _ = owner_of(t)
        if name is not None:
            calls[name] = None

    def alias(param: Any, data: Any) -> None:
        if id(param) in ids:
            aliases[id(data)] = ids[id(param)]
            keep.append(data)

    try:
        with _recording(record), _Writes(written, alias):
            owner._init_weights(probe)  # type: ignore[operator]
    except Exception:  # (a method that needs more than the copy gives: no rule)
        return {}
    out = {}
    for name, call in calls.items():
        scheme = _scheme(*call) if call is not None else None
        if scheme is not None:
            out[name] = (scheme, _written(*call))  # type: ignore[misc]
    return out


class _Writes(TorchFunctionMode):
    """Every other in-place write the family's method makes on the copy's tensors (``copy_``
    of a computed value, ``log_``, ``mul_``, an ``out=``): kimi-linear's ``init.copy_(A_log,
    init.uniform_(A_log, 1, 16).log())`` records ``uniform_(1, 16)`` first, which is not the
    rule — taken for it, ``A = −exp(A_log)`` would reach −8.9·10⁶. ``.data`` of a parameter is
    followed as the parameter. The copy's tensors are on the meta device: the operations run
    and write nothing."""

    def __init__(self, written: Any, alias: Any) -> None:
        super().__init__()
        self.written, self.alias = written, alias

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if getattr(func, "__self__", None) is torch._C.TensorBase.data and args:  # (`p.data`)
            self.alias(args[0], out)
        elif "out" in kwargs and isinstance(kwargs["out"], torch.Tensor):
            self.written(kwargs["out"])
        elif name.endswith("_") and not name.startswith("_") and args:
            if isinstance(args[0], torch.Tensor):
                self.written(args[0])
        return out


def _meta_copy(module: nn.Module, meta: dict[int, Any]) -> nn.Module:
    """``module`` deep-copied with every tensor of its owner (``meta``) and its own replaced by
    an empty meta tensor of the same shape: no data copied, nothing the family's init does
    reaches the model. (``deepcopy`` adds to its memo: ``meta`` is copied, not changed.)"""
    memo = dict(meta)
    for t in (*module.parameters(), *module.buffers()):
        memo.setdefault(id(t), meta_stand_in(t))
    return module_copy(module, memo)


@contextlib.contextmanager
def _recording(record: Any) -> Iterator[None]:
    """The init functions replaced by ``record(fn, tensor, kwargs)``, which writes nothing:
    ``transformers.initialization.TORCH_INIT_FUNCTIONS`` (what its ``init.*`` wrappers call) and
    ``torch.nn.init``'s (what older families call), put back afterwards — process-wide for the
    call's duration: another thread initializing a tensor through them meanwhile would be
    recorded instead."""
    tables = []
    hf = sys.modules.get("transformers.initialization")
    table = getattr(hf, "TORCH_INIT_FUNCTIONS", None)
    if isinstance(table, dict):
        tables.append(table)
    saved_table = [dict(t) for t in tables]
    saved_nn = {fn: getattr(nn.init, fn) for fn in _ALL if hasattr(nn.init, fn)}

    def recorder(fn: str) -> Any:
        def call(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            record(fn, tensor, _bind(fn, args, kwargs))
            return tensor

        return call

    try:
        for t in tables:
            for fn in list(t):
                t[fn] = recorder(fn)
        for fn in saved_nn:
            setattr(nn.init, fn, recorder(fn))
        yield
    finally:
        for t, old in zip(tables, saved_table, strict=True):
            t.update(old)
        for fn, f in saved_nn.items():
            setattr(nn.init, fn, f)


_ALL = (
    *_PARAMS,
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "sparse_",
)
"""Every ``torch.nn.init`` function replaced while recording (the others are recorded, and give
no rule)."""


def _bind(fn: str, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in (``torch.nn.init``'s signatures)."""
    names = _PARAMS.get(fn, ())
    out = {k: v for k, v in names}
    out.update(zip((k for k, _ in names), args, strict=False))
    out.update({k: v for k, v in kwargs.items() if k != "generator"})
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _scheme(fn: str, kw: dict[str, Any]) -> S.Scheme | None:
    """The initwise scheme of one recorded call, or None (a function or argument it does not
    map: a generator-independent distribution with numbers only)."""
    if fn not in _PARAMS:
        return None
    vals = {k: _num(v) for k, v in kw.items()}
    if any(v is None for v in vals.values()):
        return None
    try:
        if fn == "normal_":
            return S.normal(vals["mean"], vals["std"])  # type: ignore[arg-type]
        if fn == "uniform_":
            return S.uniform(vals["a"], vals["b"])  # type: ignore[arg-type]
        if fn == "constant_":
            return S.constant(vals["val"])  # type: ignore[arg-type]
        if fn in ("ones_", "zeros_"):
            return S.ones() if fn == "ones_" else S.zeros()
        if fn == "trunc_normal_":  # (torch's bounds are absolute)
            v = vals
            return S.trunc_normal(v["mean"], v["std"], v["a"], v["b"])  # type: ignore[arg-type]
        return None
    except (ValueError, TypeError):  # (a value the scheme refuses, e.g. a negative std)
        return None


def _written(fn: str, kw: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items())
    return f"init.{fn}({args})"
