r"""The activation registry: every fact initwise knows about an activation, in one record.

One :class:`ActivationSpec` per activation holds

* its canonical name and aliases (``swish`` → ``silu``, ``gelu_new`` → ``gelu_tanh``);
* a NumPy float64 function ``fn(x, param)`` — what the quadrature of gains and mean-field maps
  integrates (:mod:`initwise.math.gains`, :mod:`initwise.math.meanfield`);
* the torch modules and functionals that denote it, so graph analysis recognises it
  (:mod:`initwise.torch.graph`), and the torch function diagnostics apply to measured
  pre-activations (:mod:`initwise.diagnostics`);
* its properties: ``odd`` (φ(−x) = −φ(x): zero mean on symmetric input), ``saturating`` (bounded
  output; ``bounds`` give the range, used for the saturation statistic), ``can_die`` (a unit can
  be zero for every input, ReLU-style), ``homogeneous`` (φ(cx) = cφ(x) for c > 0, so the gain
  does not depend on the input scale).

This module imports NumPy and SciPy only; torch facts are stated by name (class names, function
names, and a function that receives ``torch.nn.functional`` as its first argument), so the math
layer stays torch-free. Users add activations with :func:`register_activation`::

    import numpy as np, initwise
    initwise.register_activation(
        "sqrelu", lambda x: np.maximum(x, 0) ** 2, modules=[SquaredReLU], functions=["sqrelu"]
    )

after which gains, the planner's graph detection and the diagnostics know it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

NumpyFn = Callable[[np.ndarray, "float | None"], np.ndarray]
TorchFn = Callable[[Any, Any, "float | None"], Any]  # (torch.nn.functional, x, param) -> tensor


@dataclass(frozen=True)
class ModuleMatch:
    """A torch module class that denotes an activation.

    ``cls`` is a class name matched along the module's MRO (``"ReLU"`` with ``torch_only`` means
    ``isinstance(m, torch.nn.ReLU)`` without importing torch here; Hugging Face classes are
    matched by name alone) or a class object (``isinstance``). ``param`` names the attribute
    holding the activation's parameter (``"negative_slope"``) or is a function of the module;
    ``when`` restricts the match (``nn.GELU(approximate="tanh")`` is ``gelu_tanh``)."""

    cls: str | type
    param: str | Callable[[Any], float | None] | None = None
    when: Callable[[Any], bool] | None = None
    torch_only: bool = True

    def matches_class(self, cls: type) -> bool:
        """The class test alone (``when`` not checked)."""
        if isinstance(self.cls, type):
            return issubclass(cls, self.cls)
        return any(
            c.__name__ == self.cls
            and (not self.torch_only or (c.__module__ or "").startswith("torch.nn"))
            for c in cls.__mro__
        )

    def matches(self, module: Any) -> bool:
        return self.matches_class(type(module)) and (self.when is None or bool(self.when(module)))

    def param_of(self, module: Any) -> float | None:
        if self.param is None:
            return None
        if callable(self.param):
            return self.param(module)
        return float(getattr(module, self.param))


@dataclass(frozen=True)
class ActivationSpec:
    """Everything initwise knows about one activation (see the module docstring)."""

    name: str
    fn: NumpyFn
    default_param: float | None = None
    param_name: str | None = None  # keyword of the torch functional ("negative_slope")
    aliases: tuple[str, ...] = ()
    modules: tuple[ModuleMatch, ...] = ()
    functions: tuple[str, ...] = ()  # torch function/method names (trailing "_" stripped)
    torch_fn: TorchFn | None = None
    odd: bool = False
    saturating: bool = False
    bounds: tuple[float, float] | None = None  # output range of a saturating activation
    can_die: bool = False
    homogeneous: bool = False
    kinks: tuple[float, ...] = ()
    """Points where the function or its first two derivatives jump (ReLU: 0; hardtanh: ±1):
    quadrature splits its interval there and finite differences do not straddle them
    (:mod:`initwise.math.shaping`)."""
    torch_gain: Callable[[float | None], float] | None = field(default=None, repr=False)
    """torch's ``calculate_gain`` closed form for the names torch knows (``tanh`` 5/3, ``selu``
    3/4, …); None where torch raises and initwise uses the numeric forward gain."""
    call_variant: Callable[[tuple, dict], str | None] | None = field(default=None, repr=False)
    """For functionals whose keyword picks another registered activation (``F.gelu(x,
    approximate="tanh")`` → ``gelu_tanh``): returns that name, or ``""`` for "not an
    activation here" (``F.hardtanh(x, -2, 2)``)."""

    def numpy(self, param: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
        p = self.default_param if param is None else param
        fn = self.fn
        return lambda x: fn(x, p)

    def saturated_fraction(self, post: Any) -> float:
        """Fraction of outputs within 0.01 of the range's ends (0 when not saturating)."""
        if not self.saturating or self.bounds is None:
            return 0.0
        lo, hi = self.bounds
        return float(((post < lo + 0.01) | (post > hi - 0.01)).float().mean())


# ----------------------------------------------------------------------------- NumPy functions


def _special() -> Any:
    """``scipy.special``, imported at first use (0.3 s: not paid by ``import initwise.torch``)."""
    from scipy import special

    return special


def _softplus(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    return np.logaddexp(0.0, beta * x) / beta


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _gelu_variant(args: tuple, kwargs: dict) -> str | None:
    return "gelu_tanh" if kwargs.get("approximate") == "tanh" else "gelu"


def _hardtanh_variant(args: tuple, kwargs: dict) -> str | None:
    lo = kwargs.get("min_val", args[0] if args else -1.0)
    hi = kwargs.get("max_val", args[1] if len(args) > 1 else 1.0)
    return "hardtanh" if (lo, hi) == (-1, 1) else ""


def _prelu_slope(m: Any) -> float:
    w = m.weight
    return float(w.detach().float().mean()) if w.device.type != "meta" else 0.25


def _builtin() -> list[ActivationSpec]:
    M = ModuleMatch
    return [
        ActivationSpec(
            "linear",
            lambda x, p: x,
            torch_gain=lambda p: 1.0,
            aliases=("identity", "none"),
            modules=(ModuleMatch("LinearActivation", torch_only=False),),
            functions=(),  # F.linear is a layer, not an activation
            torch_fn=lambda F, x, p: x,
            odd=True,
            homogeneous=True,
        ),
        ActivationSpec(
            "sigmoid",
            lambda x, p: _special().expit(x),
            torch_gain=lambda p: 1.0,
            modules=(M("Sigmoid"),),
            torch_fn=lambda F, x, p: F.sigmoid(x),
            saturating=True,
            bounds=(0.0, 1.0),
        ),
        ActivationSpec(
            "tanh",
            lambda x, p: np.tanh(x),
            torch_gain=lambda p: 5.0 / 3,
            modules=(M("Tanh"),),
            torch_fn=lambda F, x, p: F.tanh(x),
            odd=True,
            saturating=True,
            bounds=(-1.0, 1.0),
        ),
        ActivationSpec(
            "relu",
            lambda x, p: np.maximum(x, 0.0),
            torch_gain=lambda p: math.sqrt(2.0),
            modules=(M("ReLU"),),
            torch_fn=lambda F, x, p: F.relu(x),
            can_die=True,
            homogeneous=True,
            kinks=(0.0,),
        ),
        ActivationSpec(
            "leaky_relu",
            lambda x, p: np.where(x > 0, x, p * x),
            torch_gain=lambda p: math.sqrt(2.0 / (1 + (0.01 if p is None else p) ** 2)),
            default_param=0.01,
            param_name="negative_slope",
            aliases=("leakyrelu",),
            modules=(M("LeakyReLU", "negative_slope"), M("PReLU", _prelu_slope)),
            torch_fn=lambda F, x, p: F.leaky_relu(x, 0.01 if p is None else p),
            homogeneous=True,
            kinks=(0.0,),
        ),
        ActivationSpec(
            "elu",
            lambda x, p: _elu(x, p),
            default_param=1.0,
            param_name="alpha",
            modules=(M("ELU", "alpha"),),
            torch_fn=lambda F, x, p: F.elu(x, p or 1.0),
            kinks=(0.0,),
        ),
        ActivationSpec(
            "celu",
            lambda x, p: np.maximum(x, 0) + np.minimum(0, p * np.expm1(np.minimum(x, 0) / p)),
            default_param=1.0,
            param_name="alpha",
            modules=(M("CELU", "alpha"),),
            torch_fn=lambda F, x, p: F.celu(x, p or 1.0),
            kinks=(0.0,),
        ),
        ActivationSpec(
            "selu",
            lambda x, p: SELU_SCALE * _elu(x, SELU_ALPHA),
            torch_gain=lambda p: 3.0 / 4,
            modules=(M("SELU"),),
            torch_fn=lambda F, x, p: F.selu(x),
            kinks=(0.0,),
        ),
        ActivationSpec(
            "gelu",
            lambda x, p: x * _special().ndtr(x),
            modules=(
                M("GELU", when=lambda m: m.approximate != "tanh"),
                M("GELUActivation", torch_only=False),
                M("QuickGELUActivation", torch_only=False),
            ),
            torch_fn=lambda F, x, p: F.gelu(x),
            call_variant=_gelu_variant,
        ),
        ActivationSpec(
            "gelu_tanh",
            lambda x, p: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
            aliases=("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu"),
            modules=(
                M("GELU", when=lambda m: m.approximate == "tanh"),
                *(
                    M(n, torch_only=False)
                    for n in (
                        "NewGELUActivation",
                        "GELUTanh",
                        "PytorchGELUTanh",
                        "FastGELUActivation",
                        "AccurateGELUActivation",
                    )
                ),
            ),
            torch_fn=lambda F, x, p: F.gelu(x, approximate="tanh"),
        ),
        ActivationSpec(
            "silu",
            lambda x, p: x * _special().expit(x),
            aliases=("swish",),
            modules=(M("SiLU"), M("SiLUActivation", torch_only=False)),
            torch_fn=lambda F, x, p: F.silu(x),
        ),
        ActivationSpec(
            "mish",
            lambda x, p: x * np.tanh(_softplus(x)),
            modules=(M("Mish"), M("MishActivation", torch_only=False)),
            torch_fn=lambda F, x, p: F.mish(x),
        ),
        ActivationSpec(
            "softplus",
            lambda x, p: _softplus(x, p),
            default_param=1.0,
            param_name="beta",
            modules=(M("Softplus", "beta"),),
            torch_fn=lambda F, x, p: F.softplus(x, p or 1.0),
        ),
        ActivationSpec(
            "softsign",
            lambda x, p: x / (1 + np.abs(x)),
            modules=(M("Softsign"),),
            torch_fn=lambda F, x, p: F.softsign(x),
            odd=True,
            saturating=True,
            bounds=(-1.0, 1.0),
        ),
        ActivationSpec(
            "hardtanh",
            lambda x, p: np.clip(x, -1.0, 1.0),
            aliases=("hard_tanh",),
            modules=(M("Hardtanh", when=lambda m: (m.min_val, m.max_val) == (-1, 1)),),
            torch_fn=lambda F, x, p: F.hardtanh(x),
            odd=True,
            saturating=True,
            bounds=(-1.0, 1.0),
            call_variant=_hardtanh_variant,
            kinks=(-1.0, 1.0),
        ),
        ActivationSpec(
            "relu6",
            lambda x, p: _relu6(x),
            modules=(M("ReLU6"),),
            torch_fn=lambda F, x, p: F.relu6(x),
            can_die=True,
            kinks=(0.0, 6.0),
        ),
        ActivationSpec(
            "hardsigmoid",
            lambda x, p: _relu6(x + 3.0) / 6.0,
            aliases=("hard_sigmoid",),
            modules=(M("Hardsigmoid"),),
            torch_fn=lambda F, x, p: F.hardsigmoid(x),
            saturating=True,
            bounds=(0.0, 1.0),
            kinks=(-3.0, 3.0),
        ),
        ActivationSpec(
            "hardswish",
            lambda x, p: x * _relu6(x + 3.0) / 6.0,
            aliases=("hard_swish",),
            modules=(M("Hardswish"),),
            torch_fn=lambda F, x, p: F.hardswish(x),
            kinks=(-3.0, 3.0),
        ),
    ]


# ----------------------------------------------------------------------------- the registry

_REGISTRY: dict[str, ActivationSpec] = {}
_ALIAS: dict[str, str] = {}
_CANDIDATES: dict[type, list[tuple[ActivationSpec, ModuleMatch]]] = {}
_LINEAR_LIKE = tuple(f"{op}{d}d" for op in ("conv", "conv_transpose") for d in (1, 2, 3))
"""torch ``calculate_gain`` names with gain 1 (the layer itself, no activation)."""

NOT_AN_ACTIVATION = {"ReLUSquaredActivation"}
"""Class names that look like activations but have no registered rule: probed numerically."""


def _add(spec: ActivationSpec) -> None:
    _CANDIDATES.clear()
    _REGISTRY[spec.name] = spec
    _ALIAS[spec.name] = spec.name
    for a in spec.aliases:
        _ALIAS[a] = spec.name


for _s in _builtin():
    _add(_s)

REGISTRY: Mapping[str, ActivationSpec] = MappingProxyType(_REGISTRY)
"""Read-only view of every registered activation by canonical name."""


def known_names() -> tuple[str, ...]:
    """Every name and alias :func:`lookup` accepts (plus torch's conv names, gain 1)."""
    return tuple(sorted([*_ALIAS, *_LINEAR_LIKE]))


def normalize(name: str) -> str:
    """Case-fold a name and turn ``-`` into ``_`` (no alias resolution)."""
    return name.strip().lower().replace("-", "_")


def canonical(name: str) -> str | None:
    """The canonical name for ``name`` or an alias; ``"linear"`` for torch's conv names; None
    when unknown."""
    key = normalize(name)
    if key in _LINEAR_LIKE:
        return "linear"
    return _ALIAS.get(key)


def lookup(name: str) -> ActivationSpec:
    """The record of ``name`` (any alias, any case); ``ValueError`` listing known names."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name or a callable, got {type(name).__name__}")
    key = canonical(name)
    if key is None:
        raise ValueError(
            f"unknown activation {name!r}; known names: {', '.join(known_names())} "
            "(or pass the activation itself as a callable, or register it with "
            "initwise.register_activation)"
        )
    return _REGISTRY[key]


def for_module(module: Any) -> tuple[ActivationSpec, float | None] | None:
    """(record, parameter) of the registered activation a torch module computes, or None.
    User registrations are checked before built-ins, so a user's subclass wins."""
    for spec, m in _candidates(type(module)):
        if m.when is None or m.when(module):
            return spec, m.param_of(module)
    return None


def _candidates(cls: type) -> list[tuple[ActivationSpec, ModuleMatch]]:
    """(record, match) pairs whose class test passes for ``cls`` (``when`` still to check), in
    lookup order; cached per class and cleared when the registry changes."""
    found = _CANDIDATES.get(cls)
    if found is None:
        found = []
        for spec in reversed(list(_REGISTRY.values())):
            for m in spec.modules:
                if m.matches_class(cls):
                    found.append((spec, m))
        _CANDIDATES[cls] = found
    return found


def for_function(
    name: str, args: tuple, kwargs: Mapping[str, Any]
) -> tuple[ActivationSpec, float | None] | None:
    """(record, parameter) of the activation a torch function or method call computes (by its
    name, e.g. ``relu``, ``relu_``, ``leaky_relu``), or None if it is not an activation."""
    key = name.rstrip("_").lower()
    target = _FUNCTIONS.get(key)
    if target is None:
        return None
    spec = _REGISTRY[target]
    if spec.call_variant is not None:
        variant = spec.call_variant(tuple(args), dict(kwargs))
        if not variant:
            return None
        spec = _REGISTRY[variant]
    if spec.default_param is None:
        return spec, None
    p = kwargs.get(spec.param_name or "", args[0] if args else spec.default_param)
    return spec, float(p)


_FUNCTIONS: dict[str, str] = {}


def _index_functions() -> None:
    _FUNCTIONS.clear()
    for spec in _REGISTRY.values():
        names = (
            spec.functions
            if spec.name == "linear"
            else (spec.functions or (spec.name, *spec.aliases))
        )
        for n in names:
            _FUNCTIONS[n.rstrip("_").lower()] = spec.name


_index_functions()


def register_activation(
    name: str,
    fn: Callable[..., Any],
    *,
    param: float | None = None,
    param_name: str | None = None,
    aliases: Iterable[str] = (),
    modules: Iterable[type | str] = (),
    functions: Iterable[str] = (),
    torch_fn: Callable[..., Any] | None = None,
    odd: bool = False,
    saturating: bool = False,
    bounds: tuple[float, float] | None = None,
    can_die: bool = False,
    homogeneous: bool = False,
    kinks: Iterable[float] = (),
    replace: bool = False,
) -> ActivationSpec:
    """Teach initwise an activation: gains, mean-field maps, graph detection and diagnostics
    all read this one record.

    Args:
        name: canonical name (case-insensitive, ``-`` read as ``_``).
        fn: the activation, elementwise: a NumPy function ``fn(x)`` (or ``fn(x, param)`` when
            ``param`` is given) or a torch callable (an ``nn.Module`` instance or a function of
            tensors); it is integrated in float64 by quadrature.
        param: default value of its parameter, if it has one (then ``fn`` takes it).
        param_name: the keyword its torch functional uses for the parameter.
        aliases: other names for it.
        modules: torch module classes (or class names) that compute it; graph analysis then
            recognises them.
        functions: torch function / method names (``torch.my_act``, ``x.my_act()``).
        torch_fn: ``f(x)`` or ``f(x, param)`` on tensors, used by diagnostics; by default
            ``fn`` is used (through NumPy when it is a NumPy function).
        odd, saturating, bounds, can_die, homogeneous: properties (see :class:`ActivationSpec`).
        kinks: points where ``fn`` or its first two derivatives jump (for kernel shaping's
            quadrature and derivatives).
        replace: allow replacing an existing registration.

    Returns:
        the new :class:`ActivationSpec`.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"register_activation: name must be a non-empty string, got {name!r}")
    key = normalize(name)
    aliases = tuple(normalize(a) for a in aliases)
    for n in (key, *aliases):
        if n in _ALIAS and not replace:
            raise ValueError(
                f"register_activation: {n!r} is already registered (as {_ALIAS[n]!r}); "
                "pass replace=True to replace it"
            )
    if not callable(fn):
        raise TypeError(f"register_activation: fn must be callable, got {type(fn).__name__}")
    if saturating and bounds is None:
        raise ValueError("register_activation: a saturating activation needs bounds=(lo, hi)")
    wrapped = _as_numpy(fn, takes_param=param is not None)
    tfn = _as_torch(torch_fn if torch_fn is not None else fn, param is not None, wrapped)
    matches = tuple(
        ModuleMatch(m, torch_only=False) if isinstance(m, str) else ModuleMatch(m) for m in modules
    )
    spec = ActivationSpec(
        key,
        wrapped,
        default_param=None if param is None else float(param),
        param_name=param_name,
        aliases=aliases,
        modules=matches,
        functions=tuple(functions) or (key,),
        torch_fn=tfn,
        odd=odd,
        saturating=saturating,
        bounds=bounds,
        can_die=can_die,
        homogeneous=homogeneous,
        kinks=tuple(sorted(float(k) for k in kinks)),
    )
    # the quadrature must work before the name becomes visible
    x = np.linspace(-3.0, 3.0, 13)
    y = np.asarray(spec.fn(x, spec.default_param))
    if y.shape != x.shape or not np.all(np.isfinite(y)):
        raise ValueError(
            f"register_activation {key!r}: fn must map a float64 array elementwise to finite "
            f"values of the same shape; got shape {y.shape}"
        )
    _add(spec)
    _index_functions()
    return spec


def unregister_activation(name: str) -> None:
    """Remove a user registration (built-ins can be replaced, not removed)."""
    key = canonical(name)
    builtin = {s.name for s in _builtin()}
    if key is None or key in builtin:
        raise ValueError(f"unregister_activation: {name!r} is not a user-registered activation")
    spec = _REGISTRY.pop(key)
    _CANDIDATES.clear()
    for a in (spec.name, *spec.aliases):
        _ALIAS.pop(a, None)
    _index_functions()


def wants_torch(fn: Callable[..., Any]) -> bool:
    """torch functions, and instances of any ``torch.nn.Module`` subclass (also user-defined)."""
    fmod = getattr(fn, "__module__", "") or ""
    return fmod.startswith("torch") or any(
        (getattr(c, "__module__", "") or "").startswith("torch") for c in type(fn).__mro__[:-1]
    )


def numpy_callable(fn: Callable[..., Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Any elementwise callable as a NumPy float64 → float64 function.

    torch modules and functions are called on a float64 tensor; a plain Python function is tried
    on the NumPy array first and, if it fails there or returns a tensor (``lambda z: z *
    torch.sigmoid(z)``), on a float64 tensor. Each call gets its own copy of ``x``: an
    activation that works in place (``nn.ReLU(inplace=True)``, ``z.mul_(…)``) wrote into the
    caller's array — the cached quadrature nodes, so every later expectation at that ``q`` was
    wrong (``gain("tanh")`` 2.25 instead of 1.59 after ``gain(nn.ReLU(inplace=True))``)."""

    def via_torch(x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = fn(torch.from_numpy(np.array(x, dtype=np.float64)))  # a copy
        if not isinstance(out, torch.Tensor):
            return np.asarray(out, dtype=np.float64)
        return out.detach().cpu().double().numpy()

    if wants_torch(fn):
        return via_torch

    def call(x: np.ndarray) -> np.ndarray:
        try:
            out = fn(np.array(x, dtype=np.float64))  # a copy (see above)
        except (TypeError, AttributeError):  # a function of tensors (z.sigmoid(), z.mul_(…))
            return via_torch(x)
        if type(out).__module__.startswith("torch"):
            return out.detach().cpu().double().numpy()  # type: ignore[union-attr]
        return np.asarray(out, dtype=np.float64)

    return call


def _as_numpy(fn: Callable[..., Any], takes_param: bool) -> NumpyFn:
    if takes_param:
        return lambda x, p: numpy_callable(lambda t: fn(t, p))(x)
    f = numpy_callable(fn)
    return lambda x, p: f(x)


def _as_torch(fn: Callable[..., Any], takes_param: bool, numpy_fn: NumpyFn) -> TorchFn:
    def run(F: Any, x: Any, p: float | None) -> Any:
        try:
            out = fn(x, p) if takes_param else fn(x)
            if type(out).__module__.startswith("torch"):
                return out
        except Exception:
            pass
        import torch  # a NumPy function: through float64 on the host, back to x's device/dtype

        y = numpy_fn(x.detach().cpu().double().numpy(), p)
        return torch.from_numpy(np.asarray(y)).to(device=x.device, dtype=x.dtype)

    return run
