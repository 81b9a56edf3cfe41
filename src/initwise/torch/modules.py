"""What kind of layer a torch module is, and its true fans — shared by the planner, the policies,
LSUV and the diagnostics.

Kinds: ``mha``, ``rnn``, ``prelu``, ``norm``, ``embedding``, ``conv_transpose``, ``conv``,
``linear``, ``bilinear`` (``nn.Bilinear``, ``y_k = x1ᵀ W_k x2``: ``fan_in = in1·in2``, and its
input moment is ``E[x1²]·E[x2²]``), ``conv1d_hf`` (Hugging Face GPT-2's ``Conv1D``, a Linear
with an ``(in, out)`` weight), ``experts`` (a mixture-of-experts module holding its experts'
matrices as ``(E, out, in)`` or ``(E, in, out)`` stacks: Mixtral, Qwen-MoE, DeepSeek, OLMoE,
gpt-oss in transformers), ``router`` (its ``(E, width)`` router weight, used as ``F.linear``),
``grn`` (ConvNeXt-V2's global response normalization ``x + γ·(x·N(x)) + β``) and
``unknown``. A raw parameter that ``forward`` uses as a layer's weight (``x @ W``,
``F.linear(x, W, b)``, ``einsum``) is read as a :class:`FunctionalLinear`: ``linear`` or
``conv1d_hf`` by its layout; one used in ``F.conv1d/2d/3d`` as a :class:`FunctionalConv`
(``conv``). Fans come from :func:`initwise.math.fans` with
the layer's groups, stride and packing (q/k/v blocks) taken into account.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList

from ..math.fans import Fans, fans
from .batch import seeded_rng
from .copying import module_copy


class FunctionalLayer(nn.Module):
    """A layer that ``forward`` computes from raw parameters, with no module of its own: its
    ``weight``, its ``bias`` (or None) and ``call``, how ``forward`` used them (for the plan's
    reasons). Never added to the model: it holds the model's own parameters. ``factor`` and
    ``bias_factor``: the numbers ``forward`` multiplies them by before use (an equalized
    learning rate's ``W·c``, Karras et al. 2018), 1 where none."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, call: str) -> None:
        super().__init__()
        self.weight = weight
        self.register_parameter("bias", bias)
        self.call = call
        self.factor = 1.0
        self.bias_factor = 1.0
        # whether forward normalizes each output unit's weights to norm 1 with no gain (a
        # cosine classifier's F.normalize(W)): the draw sets the direction only
        self.unit_norm = False

    def effective(self) -> tuple[Any, Any]:
        """``(weight·factor, bias·bias_factor)``: what ``forward`` computes with — for a weight
        normalized in ``forward`` (``norm_gain``, a parameter then), ``g·v/‖v‖`` per output
        unit."""
        w = self.weight if self.factor == 1.0 else self.weight * self.factor
        g = self._parameters.get("norm_gain")
        if g is None and self.unit_norm:
            units = w.shape[1] if getattr(self, "layout", "out_in") == "in_out" else w.shape[0]
            g = w.new_ones(units)
        if g is not None:
            cols = getattr(self, "layout", "out_in") == "in_out"
            n = w.norm(dim=0, keepdim=True) if cols else w.flatten(1).norm(dim=1)
            shape = (1, -1) if cols else (-1, *[1] * (w.ndim - 1))
            w = w / n.reshape(shape) * g.reshape(shape)
        b = self.bias
        return w, b if b is None or self.bias_factor == 1.0 else b * self.bias_factor


class FunctionalLinear(FunctionalLayer):
    """A raw ``nn.Parameter`` that ``forward`` uses as a layer's weight — ``x @ W``,
    ``torch.matmul``/``mm``/``addmm``, ``F.linear(x, W, b)``, a two-operand ``einsum`` that
    contracts the input's features with a matrix ``W`` — read as a Linear layer. ``layout``:
    ``"in_out"`` (``x @ W``: an ``(in, out)`` weight, as Hugging Face's ``Conv1D``; kind
    ``conv1d_hf``) or ``"out_in"`` (``F.linear``, ``W @ x``: ``nn.Linear``'s; kind ``linear``).
    ``call`` says how ``forward`` used it (for the plan's reason). Built by the graph's analysis
    (:func:`initwise.torch.functional.functional_layers`) and never added to the model: it holds the
    model's own parameters — ``weight``, and ``bias`` where a vector parameter is added to the
    product right after (or passed as ``F.linear``'s / ``addmm``'s bias)."""

    def __init__(
        self, weight: nn.Parameter, bias: nn.Parameter | None, layout: str, call: str
    ) -> None:
        if layout not in ("in_out", "out_in"):
            raise ValueError(
                f"FunctionalLinear: layout must be 'in_out' or 'out_in', got {layout!r}"
            )
        super().__init__(weight, bias, call)
        self.layout = layout

    def forward(self, x: Any) -> Any:
        import torch.nn.functional as F

        w, b = self.effective()
        return F.linear(x, w if self.layout == "out_in" else w.t(), b)


class FunctionalEinsum(FunctionalLayer):
    """A raw ``nn.Parameter`` of three or more dimensions that ``forward`` contracts with the
    signal in a two-operand ``einsum`` — per-head projections as JAX/Flax ports write them
    (``einsum("bsd,dhk->bshk", x, W)``, ``einsum("bshk,hkd->bsd", o, W)``) or per-head matrices
    (``einsum("bhi,hio->bho", x, W)``) — read as a Linear layer (kind ``linear``) whose fans
    come from the equation: each output unit sums ``fan_in = ∏`` the sizes of ``W``'s
    *contracted* dimensions (``in_dims``: in ``W`` and the signal, not in the output) and each
    input reaches ``fan_out = ∏`` the sizes of its *output* dimensions (``out_dims``: in ``W``
    and the output, not in the signal); dimensions in all three (``batch_dims``, heads that
    each have their own matrix) are neither — every head is one layer with those fans
    (Glorot & Bengio 2010's and He et al. 2015's variance rules per output unit). ``equation``
    is the einsum's (spaces removed), ``w_first`` whether ``W`` is its first operand."""

    def __init__(
        self,
        weight: nn.Parameter,
        bias: nn.Parameter | None,
        equation: str,
        w_first: bool,
        call: str,
    ) -> None:
        roles = einsum_roles(equation, w_first, weight.ndim)
        if roles is None:
            raise ValueError(
                f"FunctionalEinsum: {equation!r} does not contract the signal with a "
                f"{weight.ndim}-D weight (operand {'1' if w_first else '2'}); see einsum_roles"
            )
        super().__init__(weight, bias, call)
        self.equation, self.w_first = equation, w_first
        self.in_dims, self.out_dims, self.batch_dims = roles

    @property
    def fans(self) -> Fans:
        """``(∏ contracted sizes, ∏ output sizes)`` of ``W``: one head's fans."""
        s = self.weight.shape
        return Fans(
            float(math.prod(s[d] for d in self.in_dims)),
            float(math.prod(s[d] for d in self.out_dims)),
        )

    def unit_dims(self, ndim: int) -> tuple[int, ...]:
        """The dimensions of an ``ndim``-D output that index its units (``W``'s output and
        batch dimensions), as non-negative indices."""
        w = self.equation.split("->")[0].split(",")[0 if self.w_first else 1]
        out = self.equation.split("->")[1]
        keep = {w[d] for d in (*self.out_dims, *self.batch_dims)}
        head, _, tail = out.partition("...")
        dims = [i for i, c in enumerate(head) if c in keep]
        dims += [ndim - len(tail) + i for i, c in enumerate(tail) if c in keep]
        return tuple(dims)

    def forward(self, x: Any) -> Any:
        import torch

        w, b = self.effective()
        y = torch.einsum(self.equation, *((w, x) if self.w_first else (x, w)))
        return y if b is None else y + b


def einsum_roles(
    equation: Any, w_first: bool, ndim: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """``(in_dims, out_dims, batch_dims)`` of the ``ndim``-D weight operand of a two-operand
    ``einsum`` with an explicit output (``"…->…"``): each of its dimensions contracted with
    the signal (in), kept in the output only (out), or in all three (batch: a head with its own
    matrix). None where the equation is not such a product: an ellipsis or a repeated index on
    the weight, an index of the weight summed on its own, none contracted or none kept, an
    index contracted twice in the signal."""
    if not isinstance(equation, str) or "->" not in equation:
        return None
    lhs, out = equation.replace(" ", "").split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        return None
    w, x = (ops[0], ops[1]) if w_first else (ops[1], ops[0])
    if len(w) != ndim or "." in w or len(set(w)) != len(w):
        return None
    ins, outs, batch = [], [], []
    for d, c in enumerate(w):
        if x.count(c) == 1 and c not in out:
            ins.append(d)
        elif c in out and c not in x:
            outs.append(d)
        elif c in out and x.count(c) == 1:
            batch.append(d)
        else:
            return None
    if not ins or not outs:
        return None
    return tuple(ins), tuple(outs), tuple(batch)


class FunctionalConv(FunctionalLayer):
    """A raw ``nn.Parameter`` that ``forward`` uses as a convolution's weight —
    ``F.conv1d/2d/3d(x, W, b, …, groups=g)`` — read as that ``nn.ConvNd`` (kind ``conv``: fans
    ``in/groups · k`` and ``out/groups · k``). Built by the graph's analysis like
    :class:`FunctionalLinear` and never added to the model. ``stride``, ``padding`` and
    ``dilation`` are the call's, as ``nn.ConvNd`` holds them (tuples, or ``"same"``/``"valid"``
    for the padding; None where the call computed them), with ``kernel_size`` from the weight
    and ``padding_mode`` ``"zeros"`` (``F.convNd`` pads with zeros): what the map's edges take
    is measured and said as for a module (:mod:`initwise.torch.edges`)."""

    padding_mode = "zeros"

    def __init__(
        self,
        weight: nn.Parameter,
        bias: nn.Parameter | None,
        groups: int,
        call: str,
        geometry: tuple[Any, Any, Any] | None = None,
    ) -> None:
        super().__init__(weight, bias, call)
        self.groups = groups
        nd = weight.ndim - 2
        self.kernel_size = tuple(int(k) for k in weight.shape[2:])
        stride, padding, dilation = geometry if geometry is not None else (None, None, None)
        self.stride = _spatial(stride, nd)
        self.dilation = _spatial(dilation, nd)
        self.padding = padding if padding in ("same", "valid") else _spatial(padding, nd)
        if self.stride is None or self.dilation is None:
            self.padding = None  # (no geometry: the fans' count, nothing measured at the edges)

    def forward(self, x: Any) -> Any:
        import torch.nn.functional as F

        conv = (F.conv1d, F.conv2d, F.conv3d)[self.weight.ndim - 3]
        return conv(x, *self.effective(), groups=self.groups)


def _spatial(v: Any, nd: int) -> tuple[int, ...] | None:
    """A convolution argument (``stride``, ``padding``, ``dilation``) as ``nd`` non-negative
    ints, as ``nn.ConvNd`` holds it; None where it is not one (computed in ``forward``)."""
    vals = (v,) * nd if isinstance(v, int) else tuple(v) if isinstance(v, (tuple, list)) else ()
    if len(vals) != nd or not all(isinstance(a, int) and not isinstance(a, bool) for a in vals):
        return None
    return vals if all(a >= 0 for a in vals) else None


NORMS: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
"""torch's normalization layers (others are recognised by class name, see :func:`is_norm`).
Local response normalization is not one: it leaves no unit scale (``moments._lrn``)."""

PACKED_NAMES = ("qkv", "c_attn", "query_key_value", "in_proj", "wqkv", "qkv_proj")
"""Names of packed q/k/v projections: a weight of 3E×E under one of these names is three
blocks, each with its own fans."""


def probe_copy(m: nn.Module) -> nn.Module | None:
    """A copy of ``m`` to probe by calling it, so that the model is not touched: its buffers
    and the Python state its ``forward`` may write (a call counter, the last input kept, a
    cache) are copied, its parameters shared — a forward does not write them, and a large
    weight is not copied. None where ``m`` cannot be copied (then it is not called)."""
    try:
        return module_copy(m, {id(p): p for p in m.parameters()})
    except Exception:
        return None


NOISE_PROBE = (8, 16, 32)
"""The probe a module is run on to see whether it draws noise: 3-D, as a sequence model's
(time, batch, features) — AWD-LSTM's ``LockedDropout`` reads ``x.size(1)`` and ``x.size(2)``."""


def seeded_pair(m: nn.Module, x: Any) -> tuple[Any, Any] | None:
    """``m(x)`` twice, under torch's seeds 1 and 2 (its random state put back), without
    gradients, each on its own copy of ``x``: a module that draws noise gives two outputs. Run
    it on a :func:`probe_copy`. None where a call raises."""
    try:
        with torch.no_grad():
            with seeded_rng(1):
                a = m(x.clone())
            with seeded_rng(2):
                b = m(x.clone())
    except Exception:
        return None
    return a, b


def has_parametrizations(m: nn.Module) -> bool:
    """``torch.nn.utils.parametrize.is_parametrized(m)`` without its ``getattr``, which raises
    and catches an AttributeError inside ``nn.Module.__getattr__`` for every module that has
    none (most of them; the graph's analysis asks for every module)."""
    return isinstance(m._modules.get("parametrizations"), nn.ModuleDict)


def owns_parameters(m: nn.Module) -> bool:
    """``next(m.parameters(recurse=False), None) is not None`` without its three nested
    generators (the graph's analysis and ``diagnose`` ask it of every module on every call)."""
    return any(p is not None for p in m._parameters.values())


def has_children(m: nn.Module) -> bool:
    """``any(m.children())`` without its generators (asked of every module on every call)."""
    return any(c is not None for c in m._modules.values())


def standardized_gain(m: nn.Module) -> float | None:
    """``c²`` with ``E[y²] = c²·Var[x]`` for a convolution that standardizes its weight in the
    forward (each output row to zero mean and unit variance; Qiao et al. 2019): timm's
    ``StdConv2d`` (BiT, ``c² = fan_in``) and ``ScaledStdConv2d`` (NFNets, rows scaled by
    ``gain·γ/√fan_in``: ``c² = E[gain²]·γ²``, Brock et al. 2021), and their ``…Same`` forms.
    The weight's drawn scale cancels, and a zero-mean row removes the input's mean: only its
    variance passes. A convolution that does so under another name (or without timm's
    ``scale``) is found by probing (:func:`_probed_standardized`). None for any other
    module."""
    name = type(m).__name__
    if not isinstance(m, nn.modules.conv._ConvNd):
        return None
    if "StdConv" not in name:
        return _probed_standardized(m)
    fan_in = m.weight[0].numel()
    if "Scaled" not in name:
        return float(fan_in)
    scale, gain = getattr(m, "scale", None), getattr(m, "gain", None)
    if not isinstance(scale, (int, float)):  # (named so, written otherwise: what it does)
        return _probed_standardized(m)
    if not hasattr(gain, "detach") or gain.is_meta:  # (timm's gain_init is 1)
        g2 = 1.0
    else:
        g2 = float(gain.detach().float().pow(2).mean())
    return g2 * float(scale) ** 2 * fan_in


_STANDARDIZED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probed_standardized(m: nn.Module) -> float | None:
    """``c²`` for a convolution whose own ``forward`` standardizes its weight under another
    name (the NFNet paper's ``WSConv2d``/``ScaledWSConv2d``, ``w = (w − μ)/(σ·√fan_in)·gain``
    written in a subclass): the weight its ``forward`` hands to ``F.conv*d`` is the same for a
    weight ``w`` of N(0, 1) entries and for ``3·w + 0.5`` (its scale and each row's offset
    cancel) and has centered rows — probed once (``_probed_once``); then ``c²`` is the mean
    squared row norm ``Σ_j w_ij²`` of what it makes of the module's *own* weight, read on every
    call (its gain may have changed): ``E[y²] = c²·Var[x]`` for i.i.d. inputs. None for any
    other module."""
    if getattr(type(m).forward, "__module__", "").startswith("torch."):
        return None
    if not _probed_once(_STANDARDIZED, m, _standardizes, False):
        return None
    try:
        w = _used_weights(m, [m.weight.detach()])
    except Exception:
        return None
    return None if w is None else float(w[0].reshape(w[0].shape[0], -1).pow(2).sum(1).mean())


def _standardizes(m: nn.Module) -> bool:
    """Whether ``m.forward`` standardizes its weight (see :func:`_probed_standardized`)."""
    import torch

    w = m.weight
    if not isinstance(w, torch.Tensor) or w.is_meta or not w.is_floating_point() or w.dim() < 3:
        return False
    z = torch.randn(w.shape, generator=torch.Generator().manual_seed(0), dtype=w.dtype)
    got = _used_weights(m, [z.to(w.device), 3.0 * z.to(w.device) + 0.5])
    if got is None:
        return False
    u, v = got
    if not torch.allclose(u, v, rtol=1e-3, atol=1e-3 * float(u.abs().max())):
        return False
    rows = u.reshape(u.shape[0], -1).double()
    return bool(rows.mean(1).abs().max() <= 1e-3 * rows.pow(2).mean(1).sqrt().min())


def _used_weights(m: nn.Module, weights: list[Any]) -> list[Any] | None:
    """The weight ``m.forward`` hands to ``F.conv*d`` with each of ``weights`` as its own, on a
    small seeded input (``functional_call``: the module is not changed); None where a call
    hands none, or another shape."""
    import torch
    from torch.func import functional_call

    w = m.weight
    got: list[torch.Tensor] = []

    class Seen(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") in ("conv1d", "conv2d", "conv3d"):
                got.append((args[1] if len(args) > 1 else kwargs["weight"]).detach().clone())
            return func(*args, **kwargs)

    dil = tuple(getattr(m, "dilation", (1,) * (w.dim() - 2)))
    size = ((k - 1) * d + 3 for k, d in zip(w.shape[2:], dil, strict=False))
    x = torch.randn(
        (1, w.shape[1] * getattr(m, "groups", 1), *size),
        generator=torch.Generator().manual_seed(0),
        dtype=w.dtype,
    ).to(w.device)
    probe = probe_copy(m)
    if probe is None:
        return None
    with torch.no_grad(), Seen():
        for own in weights:
            functional_call(probe, {"weight": own}, (x,))
    if len(got) != len(weights) or any(u.shape != w.shape for u in got):
        return None
    return got


def embedding_norm_cap(m: nn.Module) -> float | None:
    """``max_norm/√dim`` for an embedding whose forward renormalizes each looked-up row to an
    L2 norm of at most ``max_norm`` (``nn.Embedding(max_norm=…)``, in place): the largest std
    an i.i.d. row can have and keep it; None without ``max_norm`` or for a norm other than L2
    (then the rows' scale is not known here)."""
    cap = getattr(m, "max_norm", None)
    if cap is None or getattr(m, "norm_type", 2.0) != 2.0:
        return None
    dim = getattr(m, "embedding_dim", None)
    return float(cap) / math.sqrt(dim) if dim else None


def is_grn(m: nn.Module) -> bool:
    """ConvNeXt-V2's global response normalization ``x + γ·(x·N(x)) + β`` (HF's ``…GRN``,
    timm's ``GlobalResponseNorm``): the identity at init (γ = β = 0), no normalization."""
    name = type(m).__name__
    return name.endswith("GRN") or name == "GlobalResponseNorm"


AFFINES = {"Affine": ("alpha", "beta"), "LearnableAffineBlock": ("scale", "bias")}
"""Elementwise affine modules (class name → (scale, shift) parameter names): ResMLP's ``Affine``
(``x·α + β``, Touvron et al. 2021), HGNetV2's ``LearnableAffineBlock`` (``s·x + b``; timm)."""


def is_affine(m: nn.Module) -> bool:
    """An elementwise affine module (:data:`AFFINES`): the identity at init (scale 1, shift 0),
    in a norm's place or after an activation, but no normalization."""
    names = AFFINES.get(type(m).__name__)
    return names is not None and set(m._parameters) == set(names)


_PROBED_NORMS: weakref.WeakKeyDictionary[nn.Module, tuple[bool, tuple[int, ...]] | None] = (
    weakref.WeakKeyDictionary()
)
"""Per module probed: ``(centers, the input shape it was found on)``, or None (no norm)."""


def probed_norm(m: nn.Module) -> bool | None:
    """Whether ``m`` is a normalization written by hand under a name :func:`is_norm` does not
    know (``class RMS(nn.Module)``: ``x·rsqrt(mean(x²) + ε)·w``), found by what it does: a
    leaf module of no known kind whose parameters are vectors of one size ``d`` (or share one
    broadcast shape with a single axis of size ``d``: Conv-TasNet's ``(1, C, 1)``, probed on a
    ``(4, C, 5)`` input), whose output on a seeded ``(4, 8, d)`` (or ``(2, d, 3, 3)``) input is
    unchanged when the input is scaled ×5 (one with buffers — a BatchNorm written by hand, its
    running statistics — is probed on a copy in train mode, also on a ``(16, d)`` batch) — the
    signature of a norm, which a layer, an activation or a layer scale is not. Returns True
    where it also ignores a shift of its input (it centers: a LayerNorm), False where not (an
    RMS norm: the mean's share passes), None for anything else. Run once per module, without
    gradients or global random state; a module that fails on the probe is not a norm."""
    found = _probed_once(_PROBED_NORMS, m, _probe_norm, None)
    return None if found is None else found[0]


def _probed_once(cache: weakref.WeakKeyDictionary, m: nn.Module, probe: Any, none: Any) -> Any:
    """``probe(m)``, run once per module and kept in ``cache``; ``none`` where it raises (a
    module that fails on the probe is not what it looks for)."""
    if m not in cache:
        try:
            cache[m] = probe(m)
        except Exception:
            cache[m] = none
    return cache[m]


def _one_axis_shape(ps: list[Any]) -> tuple[int, ...] | None:
    """The shape parameters ``ps`` share where it has a single axis longer than one (a vector,
    or a broadcast shape such as ``(1, C, 1)``), else None."""
    shapes = {tuple(p.shape) for p in ps}
    if len(shapes) != 1:
        return None
    shape = shapes.pop()
    return shape if sum(n != 1 for n in shape) == 1 else None


def _probe_norm(m: nn.Module) -> tuple[bool, tuple[int, ...]] | None:
    import torch

    ps = list(m._parameters.values())
    if m._modules or not ps or has_parametrizations(m) or kind(m) != "unknown":
        return None
    if any(p is None or p.is_meta or not p.is_floating_point() for p in ps):
        return None
    if any(b.is_meta for b in m._buffers.values() if b is not None):
        return None
    probe = probe_copy(m)  # (running statistics written by hand: probed in train mode)
    if probe is None:
        return None
    m = probe.train() if m._buffers else probe
    # vectors of one size d, or one broadcast shape with a single axis of size d (Conv-TasNet's
    # global layer norm keeps (1, C, 1): probed on (4, C, 5) inputs)
    if _one_axis_shape(ps) is None:
        return None
    d = ps[0].numel()
    if d < 2:
        return None
    if ps[0].ndim == 1:  # (a BatchNorm1d written by hand takes (batch, d) only)
        shapes: tuple[tuple[int, ...], ...] = ((4, 8, d), (2, d, 3, 3), (16, d))
    else:
        lead = ps[0].shape[1:] if ps[0].shape[0] == 1 else ps[0].shape
        shapes = ((4, *(5 if n == 1 else n for n in lead)),)
    g = torch.Generator().manual_seed(0)
    for shape in shapes:
        x = torch.randn(shape, generator=g, dtype=ps[0].dtype).to(ps[0].device)
        try:
            with torch.no_grad():
                y, big, shifted = m(x), m(5.0 * x), m(x + 3.0)
        except Exception:
            continue
        if not all(isinstance(t, torch.Tensor) and t.shape == x.shape for t in (y, big, shifted)):
            continue
        if not bool(torch.isfinite(y).all()) or torch.allclose(y, x):
            return None
        if not torch.allclose(y, big, rtol=1e-3, atol=1e-4):
            return None
        return bool(torch.allclose(y, shifted, rtol=1e-3, atol=1e-4)), shape
    return None


_PROBED_ACTIVATIONS: weakref.WeakKeyDictionary[nn.Module, tuple[int, ...] | None] = (
    weakref.WeakKeyDictionary()
)
"""Per module probed: its parameters' broadcast shape where it is an activation, else None (a
shape, not the stand-in: a value that held the module would keep its weak key alive)."""


def probed_activation(m: nn.Module) -> nn.Module | None:
    """A parameter-free stand-in for ``m`` where ``m`` is an activation with learned
    parameters written by hand — BigVGAN's Snake ``x + sin²(αx)/α`` with ``α`` of ``(1, C,
    1)`` (Ziyin et al. 2020; Lee et al. 2023), a Swish with a learned β — found by what it does;
    None for anything else. A leaf module of no known kind, whose buffers (if any) are single
    numbers (xIELU's ``β``, ``ε``: Apertus's activation), whose parameters are numbers or share
    one broadcast shape with a single axis of size ``C`` and are equal
    along it (every channel computes the same function, as at init), which on a seeded input of
    that shape acts elementwise (one element moved moves its own output only) and is not affine
    (not a scale or shift) nor scale-free (not a norm). The stand-in computes the first
    channel's function of any tensor (the activation's gain is computed from it numerically);
    the parameters are the model's choice, kept as built. Run once per module, without
    gradients or global random state."""
    shape = _activation_shape(m)
    copied = probe_copy(m) if shape is not None else None  # (tabulated on a copy)
    return None if shape is None or copied is None else _FirstChannel(copied, shape)


def _activation_shape(m: nn.Module) -> tuple[int, ...] | None:
    """:func:`probed_activation`'s finding without its stand-in: the parameters' broadcast
    shape where ``m`` is an activation with learned parameters, else None."""
    if not m._parameters or m._modules or type(m).__module__.startswith("torch."):
        return None
    if not all(_constant_buffer(b) for b in m._buffers.values()):
        return None  # (running statistics: a BatchNorm written by hand, probed as a norm)
    return _probed_once(_PROBED_ACTIVATIONS, m, _probe_activation, None)


def _constant_buffer(b: Any) -> bool:
    """A buffer an activation may hold: one floating-point number (xIELU's ``beta`` and ``eps``,
    Apertus's activation; Fishman et al. 2024) — not a statistic of channels nor a step count."""
    return b is None or (b.is_floating_point() and b.numel() == 1 and not b.is_meta)


class _FirstChannel(nn.Module):
    """``m``'s function of one channel as an elementwise map of any tensor (see
    :func:`probed_activation`): the elements laid along an axis its parameters broadcast over,
    the first channel's output read back. ``m`` is held, not registered: no parameters here."""

    def __init__(self, m: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.__dict__["_inner"] = m
        k = max(len(shape), 2)
        self._shape = (1,) * (k - len(shape)) + tuple(shape)
        wide = [i for i, n in enumerate(self._shape) if n != 1]
        self._axis = wide[0] if wide else None
        self._along = 0 if self._axis != 0 else 1

    def forward(self, x: Any) -> Any:
        view = [1] * len(self._shape)
        view[self._along] = x.numel()
        y = self._inner(x.reshape(view))
        if self._axis is not None:
            y = y.select(self._axis, 0)
        return y.reshape(x.shape)


def _probe_activation(m: nn.Module) -> tuple[int, ...] | None:
    import torch

    ps = list(m._parameters.values())
    if any(p is None or p.is_meta or not p.is_floating_point() for p in ps):
        return None
    if kind(m) != "unknown" or has_parametrizations(m) or layer_scale_module(m) is not None:
        return None
    wide = [p for p in ps if p.numel() > 1]
    shape: tuple[int, ...] = ()
    if wide:
        found = _one_axis_shape(wide)
        if found is None:
            return None
        shape = found
        if not all(bool((p == p.reshape(-1)[0]).all()) for p in wide):
            return None  # (channels that compute different functions: no one activation)
    k = max(len(shape), 2)
    full = (1,) * (k - len(shape)) + shape
    probe = tuple(n if n != 1 else (3 if i == 0 else 7) for i, n in enumerate(full))
    g = torch.Generator().manual_seed(0)
    dtype, dev = ps[0].dtype, ps[0].device
    x = (torch.rand(probe, generator=g, dtype=dtype) * 6 - 3).to(dev)
    copied = probe_copy(m)
    if copied is None:
        return None
    m = copied
    with torch.no_grad():
        y = m(x.clone())
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            return None
        if not bool(torch.isfinite(y).all()):
            return None
        h = torch.full_like(x, 0.37)
        shifted = m(x + h) - y
        if torch.allclose(shifted, m(h) - m(torch.zeros_like(x)), rtol=1e-4, atol=1e-5):
            return None  # (affine: a scale or a shift, no activation)
        if torch.allclose(m(5.0 * x), y, rtol=1e-3, atol=1e-4):
            return None  # (scale-free: a norm)
        flat = x.reshape(-1)
        for pos in (0, flat.numel() // 2, flat.numel() - 1):
            x2 = flat.clone()
            x2[pos] += 0.5
            d = (m(x2.reshape(x.shape)).reshape(-1) - y.reshape(-1)).abs()
            d[pos] = 0
            if d.max() > 1e-6 * (1 + float(y.abs().max())):
                return None
    return shape


_PROBED_TOKENIZERS: weakref.WeakKeyDictionary[nn.Module, dict[str, str] | None] = (
    weakref.WeakKeyDictionary()
)


def probed_tokenizer(m: nn.Module) -> dict[str, str] | None:
    """``{parameter name: "weight" | "bias"}`` where ``m`` is a feature tokenizer written by
    hand — each numeric feature its own embedding, ``x[..., None] * W + b`` with ``W`` (and
    ``b``) of shape ``(n_features, d)`` (FT-Transformer's, Gorishniy et al. 2021) — found by
    what it does on a seeded ``(4, n_features)`` input; None for anything else. Run once per
    module, without gradients or global random state."""
    return _probed_once(_PROBED_TOKENIZERS, m, _probe_tokenizer, None)


def _probe_tokenizer(m: nn.Module) -> dict[str, str] | None:
    import torch

    ps = {k: p for k, p in m._parameters.items() if p is not None}
    if m._modules or not 1 <= len(ps) <= 2 or has_parametrizations(m) or kind(m) != "unknown":
        return None
    shapes = {tuple(p.shape) for p in ps.values()}
    if len(shapes) != 1 or any(p.ndim != 2 or p.is_meta for p in ps.values()):
        return None
    n = next(iter(shapes))[0]
    p0 = next(iter(ps.values()))
    x = torch.randn((4, n), generator=torch.Generator().manual_seed(0), dtype=p0.dtype)
    probe = probe_copy(m)
    if probe is None:
        return None
    with torch.no_grad():
        y = probe(x.to(p0.device))
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (4, *p0.shape):
            return None
        for w_name in ps:
            rest = [k for k in ps if k != w_name]
            want = x.to(p0.device)[..., None] * ps[w_name]
            if rest:
                want = want + ps[rest[0]]
            if torch.allclose(y, want, rtol=1e-5, atol=1e-6):
                return {w_name: "weight", **{k: "bias" for k in rest}}
    return None


_NORM_ROLES: weakref.WeakKeyDictionary[nn.Module, dict[str, str]] = weakref.WeakKeyDictionary()


def norm_roles(m: nn.Module) -> dict[str, str]:
    """For a norm :func:`probed_norm` found: each parameter's role — ``"scale"`` (``w·x̂``: with
    it at 0 the output no longer depends on the input), ``"scale+1"`` (``(1 + w)·x̂``: 0 is the
    identity scale, Gemma's) or ``"shift"`` (``x̂ + b``: it adds itself) — measured on a copy
    (the others at 1, this one at 0 and 1, a seeded input); a parameter that is none of these
    is left out. Empty for anything else. Cached per module."""

    def roles(m: nn.Module) -> dict[str, str]:
        found = _PROBED_NORMS.get(m) if probed_norm(m) is not None else None
        return _norm_roles(m, found[1]) if found is not None else {}

    return _probed_once(_NORM_ROLES, m, roles, {})


def _close(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.allclose(a, torch.as_tensor(b), rtol=1e-3, atol=1e-4))


def _norm_roles(m: nn.Module, shape: tuple[int, ...]) -> dict[str, str]:

    import torch

    probe = module_copy(m).float().cpu()
    names = list(probe._parameters)
    g = torch.Generator().manual_seed(1)
    x, x2 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    roles: dict[str, str] = {}
    with torch.no_grad():
        for pn in names:
            for other in names:
                probe._parameters[other].fill_(1.0)  # type: ignore[union-attr]
            y1 = probe(x)
            probe._parameters[pn].fill_(0.0)  # type: ignore[union-attr]
            y0, y0b = probe(x), probe(x2)
            if _close(y0, y0b):
                roles[pn] = "scale"  # (nothing of the input passes without it)
            elif _close(y1 - y0, 1.0):
                roles[pn] = "shift"
            elif _close(y1 - y0, y0):
                roles[pn] = "scale+1"
    return roles


def is_norm(m: nn.Module) -> bool:
    """torch norms, and classes named ``…Norm`` / ``…RMSNorm`` / ``…LayerNorm`` (HF, timm) —
    not global response normalization (:func:`is_grn`), which normalizes nothing at init, nor
    local response normalization (``nn.LocalResponseNorm``), which divides by ``(k + α·E[x²])^β``
    and leaves no unit scale (``moments._lrn``). Decided by the class alone, once per class
    (the graph's analysis and ``diagnose`` ask it of every module on every call)."""
    t = type(m)
    try:
        return _NORM_TYPES[t]
    except KeyError:
        pass
    found = not issubclass(t, (nn.LocalResponseNorm, nn.CrossMapLRN2d)) and (
        issubclass(t, NORMS)
        or (t.__name__.endswith(("RMSNorm", "LayerNorm", "Norm", "NormGated")) and not is_grn(m))
    )
    _NORM_TYPES[t] = found
    return found


_NORM_TYPES: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()
""":func:`is_norm` per class (its answer depends on the class only)."""


LAYER_SCALES = (
    "layer_scale_parameter",
    "lambda1",
    "lambda_1",
    "lambda_2",
    "gamma_1",
    "gamma_2",
    "layer_scale_1",
    "layer_scale_2",
    "layer_scale",  # torchvision's ConvNeXt: (C, 1, 1), 10⁻⁶
    "gamma",  # timm's ConvNeXt (`x.mul(self.gamma.reshape(1, -1, 1, 1))`)
    "ls1",  # timm's ResMLP
    "ls2",
    "gamma1",  # timm's XCiT
    "gamma2",
    "gamma3",
    "gamma_xca",  # timm's EdgeNeXt
)
"""Names of per-channel layer-scale parameters, ``x · λ`` at the end of a residual branch
(CaiT, Touvron et al. 2021): ConvNeXt, DINOv2, BEiT, Data2Vec-vision, PoolFormer…"""


def is_layer_scale(pname: str, p: Any) -> bool:
    """A per-channel layer scale: a parameter named as in :data:`LAYER_SCALES` that is a vector,
    1-d or shaped to broadcast over positions (torchvision's ConvNeXt: ``(C, 1, 1)``)."""
    shape = tuple(getattr(p, "shape", ()))
    return pname in LAYER_SCALES and len(shape) >= 1 and sum(d > 1 for d in shape) <= 1


def layer_scale_module(m: nn.Module) -> str | None:
    """The parameter's name when ``m`` is a module that only multiplies its input by a layer
    scale (DINOv2's ``Dinov2LayerScale``: no children, one own parameter, a layer scale by
    :func:`is_layer_scale`, or a 1-d ``gamma`` of a class named ``…LayerScale``, as timm's);
    None otherwise. Such a module mixes no features: it is no weight layer."""
    own = [(k, p) for k, p in m._parameters.items() if p is not None]
    if len(own) != 1 or m._modules:
        return None
    k, p = own[0]
    if is_layer_scale(k, p) or (k == "gamma" and p.ndim == 1 and "LayerScale" in type(m).__name__):
        return k
    if k == "scale" and p.ndim == 1 and type(m).__name__ in ("Scale", "LayerScale"):
        return k  # timm's MetaFormer (PoolFormer, ConvFormer…): `x * self.scale.view(shape)`
    return None


def layer_scale_value(model: nn.Module) -> float | None:
    """The value ``model``'s layer scales start at: the config's
    ``layer_scale_init_value`` / ``layerscale_value`` (Hugging Face), else None (kept as built)."""
    cfg = getattr(model, "config", None)
    for v in (
        getattr(cfg, "layer_scale_init_value", None),
        getattr(cfg, "layerscale_value", None),
    ):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def is_weight_layer(m: nn.Module) -> bool:
    """Layers that mix features (their output is a new pre-activation). A layer whose weight is
    parametrized (``weight_norm``…) is one even when it owns no parameter directly; the
    parametrizations' container (which owns the originals) is not, nor is a layer-scale module
    (:func:`layer_scale_module`: an elementwise product)."""
    if isinstance(m, ParametrizationList):
        return False
    return (
        (owns_parameters(m) or has_parametrizations(m))
        and not isinstance(m, NORMS)
        and not isinstance(m, nn.PReLU)
        and not type(m).__name__.endswith(("Norm", "LayerNorm", "NormGated"))
        and layer_scale_module(m) is None
        and _activation_shape(m) is None
    )


def kind(module: nn.Module) -> str:
    """The module's kind (see the module docstring)."""
    t = type(module)
    try:
        k = _TYPE_KINDS[t]
    except KeyError:
        k = _TYPE_KINDS[t] = _type_kind(module)
    if k:
        return k
    if isinstance(module, FunctionalLinear):
        return "conv1d_hf" if module.layout == "in_out" else "linear"
    if is_grn(module) or is_affine(module):
        return "grn"  # the identity at init: ConvNeXt-V2's x + γ·(x·N(x)) + β, ResMLP's x·α + β
    if not module._parameters and not has_parametrizations(module):
        return "unknown"  # (the kinds below own their weights: no attribute lookups, each a
    w = getattr(module, "weight", None)  # raised AttributeError inside nn.Module.__getattr__)
    if type(module).__name__ == "Conv1D" and w is not None and w.ndim == 2:
        return "conv1d_hf"
    e = num_experts(module)
    if e is not None:
        own = dict(module.named_parameters(recurse=False))
        if any(p.ndim == 3 and p.shape[0] == e for p in own.values()):
            return "experts"
        w = own.get("weight")
        if w is not None and w.ndim == 2 and w.shape[0] == e:
            return "router"
    return "unknown"


def _type_kind(module: nn.Module) -> str:
    """The kind :func:`kind` gives every module of ``module``'s class — a torch layer, a norm,
    initwise's functional stand-ins but one — or "" where it depends on the module itself (a
    :class:`FunctionalLinear`'s layout, a class of no known kind: its parameters decide)."""
    t = type(module)
    for base, k in _KINDS_BY_CLASS:
        if issubclass(t, base):
            return k
    if is_norm(module):  # (by the class too)
        return "norm"
    for base, k in _LAYER_KINDS:
        if issubclass(t, base):
            return k
    return ""


_KINDS_BY_CLASS: tuple[tuple[Any, str], ...] = (
    (FunctionalLinear, ""),
    (FunctionalConv, "conv"),
    (FunctionalEinsum, "linear"),
    (nn.MultiheadAttention, "mha"),
    ((nn.RNNBase, nn.RNNCellBase), "rnn"),
    (nn.PReLU, "prelu"),
)
_LAYER_KINDS: tuple[tuple[Any, str], ...] = (
    ((nn.Embedding, nn.EmbeddingBag), "embedding"),
    (nn.modules.conv._ConvTransposeNd, "conv_transpose"),
    (nn.modules.conv._ConvNd, "conv"),
    (nn.Linear, "linear"),
    (nn.Bilinear, "bilinear"),
)
""":func:`kind`'s classes in its order of tests: those before and after the norms."""

_TYPE_KINDS: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
""":func:`_type_kind` per class: the graph's analysis, the planner and ``diagnose`` ask a
module's kind many times on every call (121 times on a 40-module MLP: a fifth of its
analysis)."""


_OFFSETS: dict[tuple[type, str, tuple[int, ...]], float | None] = {}


def norm_offset(module: nn.Module) -> float | None:
    """``c`` in the scale ``c + weight`` a norm applies to its normalized input: 0 for torch's
    norms and most others (``weight · x̂``), 1 for Gemma's RMSNorm (``(1 + weight) · x̂``, whose
    identity scale is weight zeros) and Nemotron's ``LayerNorm1P`` (a subclass of
    ``nn.LayerNorm`` that passes ``weight + 1``: taken for torch's own, its weight was set to
    ones — every norm scaled by 2, the residual stream grew 11.3× over 4 layers and the logits
    came out at std 2). Measured on a copy of a norm not from torch (its weight set to 0 and to
    1, the bias to 0, a seeded ``(4, d)`` input, else ``(2, d, 3, 3)`` for a channels-first norm:
    ConvNeXt's): ``c = ⟨y₀, y₁ − y₀⟩ / ‖y₁ − y₀‖²``, 0 or 1 within 10⁻³. None where the copy
    runs on neither (a norm that needs more, e.g. a conditioning input) or gives another value:
    the scale rule then stays ``ones`` and the planner reports the assumption. Cached per class,
    ``extra_repr`` and weight shape."""

    import torch

    w = getattr(module, "weight", None)
    torch_own = isinstance(module, NORMS) and type(module).__module__.startswith("torch.")
    if torch_own or not isinstance(w, torch.Tensor) or w.ndim != 1:
        return 0.0  # (a subclass of torch's norm may apply its own scale: Nemotron's)
    key = (type(module), module.extra_repr(), tuple(w.shape))
    if key in _OFFSETS:
        return _OFFSETS[key]
    c: float | None = None
    try:
        probe = module_copy(module)
        if any(t.is_meta for t in probe.parameters()):
            probe = probe.to_empty(device="cpu")
        probe = probe.float().cpu()
        d_ = w.shape[0]
        for shape in ((4, d_), (2, d_, 3, 3)):  # (channels last, then first: ConvNeXt's)
            c = _offset_on(probe, torch.randn(*shape, generator=torch.Generator().manual_seed(0)))
            if c is not None:
                break
    except Exception:  # (a copy that cannot be made: not measured, reported by the planner)
        c = None
    _OFFSETS[key] = c
    return c


def _offset_on(probe: nn.Module, x: Any) -> float | None:
    """:func:`norm_offset` on one probe input ``x``: 0 or 1, else None (the norm does not run
    on it, or gives another value)."""
    import torch

    outs = []
    try:
        with torch.no_grad():
            for v in (0.0, 1.0):
                probe.weight.fill_(v)  # type: ignore[operator]
                b = getattr(probe, "bias", None)
                if isinstance(b, torch.Tensor):
                    b.zero_()
                outs.append(probe(x).double())
    except Exception:  # a norm that needs another input or shape
        return None
    y0, y1 = outs
    d = y1 - y0
    if y0.shape != x.shape or not float((d * d).sum()) > 0:
        return None
    ratio = float((y0 * d).sum() / (d * d).sum())
    return next((v for v in (0.0, 1.0) if abs(ratio - v) < 1e-3), None)


def is_ssm_mixer(module: nn.Module) -> bool:
    """A Mamba-style mixer: a module owning ``A_log`` and ``D`` (transformers' Mamba, Mamba 2,
    Jamba, Falcon-Mamba)."""
    own = module._parameters
    return own.get("A_log") is not None and own.get("D") is not None


EXPERT_COUNT = ("num_experts", "num_local_experts", "n_routed_experts")
"""Attributes that give a mixture-of-experts module's expert count (Hugging Face's names)."""

EXPERT_OUT_SIDE = ("down", "w2", "wo", "fc2", "out")
"""Name parts of an expert stack that produces the block's output (the others read its input)."""


def num_experts(module: nn.Module) -> int | None:
    """The expert count a MoE module states (:data:`EXPERT_COUNT`), or None."""
    for a in EXPERT_COUNT:
        v = getattr(module, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def hidden_size(module: nn.Module) -> int | None:
    """The model width a MoE experts module states (``hidden_dim``, ``hidden_size`` or its
    ``config.hidden_size``), or None."""
    for v in (
        getattr(module, "hidden_dim", None),
        getattr(module, "hidden_size", None),
        getattr(getattr(module, "config", None), "hidden_size", None),
    ):
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


EXPERT_IO = (("input_size", "output_size"), ("in_features", "out_features"))
"""Attribute pairs by which a module holding one ``(E, ·, ·)`` stack states its input and output
sizes (JetMoE's and ScatterMoE's ``ParallelExperts``: ``input_size``/``output_size``)."""


def expert_layer(module: nn.Module) -> tuple[str, bool] | None:
    """``(parameter name, transposed)`` where ``module`` holds exactly one ``(E, a, b)`` expert
    stack and states its sizes (:data:`EXPERT_IO`): one linear map per expert, the module a layer
    of its own — what follows it (its activation, the branch it ends) is the graph's, as for a
    Linear. ``transposed``: stored ``(E, in, out)``. JetMoE's ``JetMoeParallelExperts`` (weight
    ``(E, output_size, input_size)``, used as ``F.linear(x_e, W[e])``). None otherwise (a
    transformers experts module holds the whole MLP: gate/up and down stacks)."""
    e = num_experts(module)
    stacks = [
        (n, p) for n, p in module.named_parameters(recurse=False) if p.ndim == 3 and p.shape[0] == e
    ]
    if len(stacks) != 1:
        return None
    pname, p = stacks[0]
    _, a, b = p.shape
    for i_attr, o_attr in EXPERT_IO:
        i, o = getattr(module, i_attr, None), getattr(module, o_attr, None)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (i, o)):
            continue
        if (a, b) == (o, i):  # (out, in): F.linear(x, W[e]); square counts as this one
            return pname, False
        if (a, b) == (i, o):
            return pname, True
    return None


def expert_stack(
    module: nn.Module, pname: str, shape: tuple[int, ...]
) -> tuple[bool, bool, bool] | None:
    """How one ``(E, a, b)`` expert stack of a MoE experts module is used:
    ``(out_side, transposed, packed)`` — whether it produces the block's output (its name has a
    part of :data:`EXPERT_OUT_SIDE`), whether it is stored ``(E, in, out)`` (multiplied as
    ``x @ W[e]``) rather than ``(E, out, in)`` (``F.linear(x, W[e])``), and whether it holds the
    gate and up projections together (``gate_up``). The layout is the module's own
    ``is_transposed`` flag (transformers' experts) where it has one; otherwise the side that
    meets the model width (:func:`hidden_size`). A module holding one stack whose sizes it states
    (:func:`expert_layer`) is a layer of its own: ``out_side`` True (what follows it is the
    graph's), its layout read from the sizes. None where nothing tells."""
    one = expert_layer(module)
    if one is not None and one[0] == pname:  # (a layer of its own: no in/out side within it)
        return True, one[1], False
    _, a, b = shape
    low = pname.lower()
    out_side = any(part in low for part in EXPERT_OUT_SIDE)
    packed = "gate_up" in low
    flag = getattr(module, "is_transposed", None)
    if isinstance(flag, bool):
        return out_side, flag, packed
    h = hidden_size(module)
    if a == b:  # square: the same fans either way
        return out_side, False, packed
    if h is None or (a == h) == (b == h):
        return None
    # the input side contracts over the width, the output side produces it
    transposed = (a == h) != out_side
    return out_side, transposed, packed


def expert_fans(shape: tuple[int, ...], how: tuple[bool, bool, bool]) -> tuple[Fans, int, int, str]:
    """(per-expert fans per block, chunks, chunk_dim, description) of an expert stack, like
    :func:`weight_fans`, from its layout ``how`` (:func:`expert_stack`)."""
    _, transposed, packed = how
    e, a, b = shape
    out, inp = (b, a) if transposed else (a, b)
    chunks = 2 if packed and out % 2 == 0 else 1
    dim = (2 if transposed else 1) if chunks == 2 else 0
    desc = f", {e} experts: per-expert fans" + (", stored (in, out)" if transposed else "")
    if chunks == 2:
        desc += ", gate and up halves"
    return Fans(float(inp), float(out // chunks)), chunks, dim, desc


def weight_fans(
    kind: str, module: nn.Module, shape: tuple[int, ...], name: str
) -> tuple[Fans, int, int, str]:
    """(fans per block, chunks, chunk_dim, description) of a weight of a ``kind`` module."""
    if isinstance(module, FunctionalLinear):
        # (a module's own `weight` used in a product — an exported model's, a custom layer
        # traced into — is named as its module is: `…attn.c_attn`, a packed q/k/v projection)
        owner = name.removesuffix(".weight") if name.endswith(".weight") else name
        f, chunks, dim, extra = weight_fans(kind, nn.Module(), shape, owner)
        return f, chunks, dim, f"{extra}, used as {module.call} in forward"
    if isinstance(module, FunctionalConv):
        f = _fans(tuple(shape), "conv", groups=module.groups)
        return f, 1, 0, f"{_g(module.groups)}, used as {module.call} in forward"
    if isinstance(module, FunctionalEinsum):
        f = module.fans
        extra = f", fan_out {f.fan_out:g} (the einsum's contracted and output dimensions"
        if module.batch_dims:
            heads = math.prod(shape[d] for d in module.batch_dims)
            extra += f"; per head, {heads} heads"
        return f, 1, 0, f"{extra}), used as {module.call} in forward"
    if kind in ("conv", "conv_transpose"):  # (asked of a Linear, the lookup raises inside)
        groups = getattr(module, "groups", 1)
        if kind == "conv":
            return _fans(tuple(shape), "conv", groups=groups), 1, 0, _g(groups)
        f = _fans(tuple(shape), "conv_transpose", groups=groups, stride=tuple(module.stride))
        strided = math.prod(module.stride) > 1
        return f, 1, 0, _g(groups) + (f", stride {tuple(module.stride)}" if strided else "")
    if kind == "embedding":
        return _fans(tuple(shape), "embedding"), 1, 0, ""
    leaf = name.rsplit(".", 1)[-1].lower()
    if kind == "conv1d_hf":
        rows, cols = shape[1], shape[0]  # (in, out) layout
        if leaf in PACKED_NAMES and rows == 3 * cols:
            return _fans((rows, cols), "qkv"), 3, 1, ", packed q/k/v: per-block fans"
        return _fans((rows, cols)), 1, 0, ""
    if leaf in PACKED_NAMES and shape[0] == 3 * shape[1]:
        return _fans(tuple(shape), "qkv"), 3, 0, ", packed q/k/v: per-block fans"
    if kind == "bilinear":  # y_k = x1ᵀ W_k x2: in1·in2 products per output (linear's fans)
        return _fans(tuple(shape)), 1, 0, f" = in1·in2 ({shape[1]}·{shape[2]}), bilinear"
    return _fans(tuple(shape)), 1, 0, ""


_fans = functools.lru_cache(maxsize=4096)(fans)
""":func:`~initwise.math.fans.fans` remembered by its arguments (all hashable here; a
:class:`~initwise.math.fans.Fans` is immutable): ``diagnose`` and the planner ask it of every
layer on every call, and its argument checks cost more than the arithmetic."""


def _g(groups: int) -> str:
    return f", groups {groups}" if groups > 1 else ""


def kept_fractions(mask: Any) -> tuple[float, float] | None:
    """The mean kept fraction of a 0/1 weight mask's non-empty slices along dim 0 and along
    dim 1 (for a Linear/Conv weight: each output unit's inputs, each input's outputs); None for
    a meta mask, fewer than 2 dimensions, or nothing kept."""
    import torch

    if mask.is_meta or mask.ndim < 2:
        return None
    m = (mask != 0).to(torch.float64)
    out = []
    for d in (0, 1):
        per = m.transpose(0, d).reshape(m.shape[d], -1)
        kept = per.sum(1)
        nonempty = kept > 0
        if not bool(nonempty.any()):
            return None
        out.append(float((kept[nonempty] / per.shape[1]).mean()))
    return out[0], out[1]


ROW_SPREAD = 1.05
"""How far apart (max/min) the kept fans of a masked layer's rows may be before each row gets
its own scale (:func:`row_fans`)."""


def row_fans(mask: Any) -> tuple[float, ...]:
    """Each row's kept fan-in of a 0/1 weight mask (a Linear's or convolution's output units:
    the kept entries of ``mask[j]``), where the non-empty rows' fans differ by more than
    :data:`ROW_SPREAD` — MADE's masks keep 1 to ``D − 1`` inputs per unit, and with one std per
    layer the units with few inputs start near zero and those reading them fade further each
    layer (a 4-layer MADE's output at rms 0.41, layer by layer E[y²] 2.0, 1.5, 0.86, 0.20) —
    else ``()`` (a PixelCNN mask keeps the same taps for every output channel)."""
    if mask.is_meta or mask.ndim < 2:
        return ()
    kept = (mask != 0).reshape(mask.shape[0], -1).sum(1).tolist()
    live = [k for k in kept if k > 0]
    if not live or max(live) <= ROW_SPREAD * min(live):
        return ()
    return tuple(float(k) for k in kept)


def weight_mask(module: nn.Module) -> tuple[str, Any] | None:
    """``(name, buffer)`` of a fixed 0/1 mask a layer applies to its weight in its own
    ``forward`` — a buffer named ``*mask*`` of the weight's shape holding only 0 and 1 (PixelCNN's
    ``MaskedConv2d``: ``F.conv2d(x, self.weight * self.mask, …)``, MADE's masked Linear) — else
    None. (``torch.nn.utils.prune``'s ``weight_mask`` is a computed weight of its own.)"""
    w = module._parameters.get("weight")
    if w is None or w.ndim < 2:
        return None
    for name, b in module._buffers.items():
        if b is None or "mask" not in name.lower() or tuple(b.shape) != tuple(w.shape):
            continue
        if b.is_meta or not bool(((b == 0) | (b == 1)).all()) or bool((b == 1).all()):
            continue
        return name, b
    return None


def few(names: list[str], n: int = 4) -> str:
    """The first ``n`` of ``names`` and how many more (``"a, b, c, d and 3 more"``): the list a
    message names."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_materialized(
    model: nn.Module, where: str, named: list[tuple[str, nn.Parameter]] | None = None
) -> None:
    """Raise a clear ``ValueError`` when ``model`` has lazy modules that have not run yet
    (``nn.LazyLinear``…: their parameters have no shape until the first forward pass, which
    also gives them torch's default values — a change initwise does not make on its own).
    ``named``: ``model.named_parameters()`` when already listed."""
    named = list(model.named_parameters()) if named is None else named
    lazy = [n for n, p in named if isinstance(p, nn.parameter.UninitializedParameter)]
    if lazy:
        raise ValueError(
            f"{where}: {few(lazy)} belong to lazy modules that have not run yet (no shape); run "
            "the model once on a batch first (model(x) — torch then creates them), then call this"
        )


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile``'s ``OptimizedModule`` (``_orig_mod``) and
    ``DataParallel``/``DistributedDataParallel`` (``module``), so that plans name and draw the
    same parameters with or without the wrapper; a ``torch.export``'ed module read as the layers
    it was exported from (:func:`~initwise.torch.exported.eager_view`: the same tensors, under
    the same names). TorchScript modules are refused: their parameters are copies the eager
    model does not see.

    Raises:
        TypeError: ``model`` (or a module it wraps) is a ``torch.jit`` ScriptModule.
    """
    import torch

    inner = unwrap_wrappers(model)
    for m in (model, inner):
        if isinstance(m, torch.jit.ScriptModule):
            raise TypeError(
                f"model is a TorchScript module ({type(m).__name__}); initwise plans eager "
                "modules: plan and initialize the nn.Module first, then torch.jit.script it"
            )
    if isinstance(inner, torch.fx.GraphModule):
        from .exported import eager_view, is_exported

        if is_exported(inner):
            return eager_view(inner)
    return inner


@contextlib.contextmanager
def nested_unwrapped(model: nn.Module) -> Iterator[nn.Module]:
    """Within: every wrapped submodule — ``torch.compile``'d blocks (``OptimizedModule``, as
    torchtitan compiles each transformer block), a data-parallel wrapper inside — replaced in
    its parent by the module it wraps, so that names, draws and tracing are the unwrapped
    model's (``blocks.0._orig_mod.fc.weight`` is ``blocks.0.fc.weight``; fx cannot trace a
    compiled module, and running one under a function mode fails); a ``torch.export``'ed block
    by the layers it was exported from (:func:`~initwise.torch.exported.eager_view`). Only the
    parents' ``_modules`` entries change (no parameter, buffer or hook), and they are put back
    on the way out, whatever happens inside."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        stack = [(model, "")]
        while stack:
            m, prefix = stack.pop()
            for name, child in list(m._modules.items()):
                if child is None:
                    continue
                path = f"{prefix}{name}"
                if isinstance(child, torch.jit.ScriptModule):  # (it crashed the walk inside)
                    raise TypeError(
                        f"submodule {path!r} is a TorchScript module ({type(child).__name__}); "
                        "initwise plans eager modules: plan and initialize the model with the "
                        "eager block, then torch.jit.script it"
                    )
                inner = unwrap_wrappers(child)
                if isinstance(inner, torch.fx.GraphModule):  # (an exported block inside)
                    from .exported import eager_view, is_exported

                    if is_exported(inner):
                        inner = eager_view(inner)
                if inner is not child:
                    m._modules[name] = inner
                    swapped.append((m, name, child))
                stack.append((inner, f"{path}."))
        yield model
    finally:
        for m, name, child in reversed(swapped):
            m._modules[name] = child


def not_a_module(model: Any) -> TypeError:
    """The error for a ``model`` that is not an ``nn.Module`` (``torch.export``'s
    ``ExportedProgram``: its ``.module()`` is one, sharing the program's tensors)."""
    tip = ""
    if type(model).__name__ == "ExportedProgram" and callable(getattr(model, "module", None)):
        tip = (
            "; pass program.module() — the module torch.export builds from it, whose "
            "parameters are the program's own tensors"
        )
    return TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}{tip}")


def unwrap_wrappers(model: nn.Module) -> nn.Module:
    """:func:`unwrap` without the TorchScript check: the innermost module under the compile and
    data-parallel wrappers (at most 16 levels)."""
    for _ in range(16):
        # (the class's name first: `getattr` of a missing attribute raises and catches an
        # AttributeError inside nn.Module.__getattr__, and this is asked of every module)
        inner = (
            getattr(model, "_orig_mod", None) if type(model).__name__ == "OptimizedModule" else None
        )
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model
    return model


def frozen(p: Any) -> bool:
    """Whether parameter ``p`` is frozen: floating point with ``requires_grad`` off (an integer
    parameter cannot have gradients; it is not frozen by choice)."""
    return isinstance(p, nn.Parameter) and p.is_floating_point() and not p.requires_grad


_SCAN = 64
"""Entries :func:`zero_starts` looks at before reading a whole weight (most are not zero)."""


def all_zero(w: Any) -> bool:
    """Whether floating-point tensor ``w`` (not on the meta device) holds only zeros."""
    if not isinstance(w, torch.Tensor) or w.is_meta or not w.numel() or not w.is_floating_point():
        return False
    flat = w.detach().reshape(-1)
    return not bool(flat[:_SCAN].any()) and not bool(flat.any())


def is_identity(w: Any, m: nn.Module) -> bool:
    """Whether weight ``w`` of module ``m`` is an exact identity: ``eye`` for a 2-D weight (each
    square gate block of an RNN's recurrent matrix), ``dirac`` for a convolution's."""
    if not isinstance(w, torch.Tensor) or w.is_meta or not w.is_floating_point() or w.ndim < 2:
        return False
    if not w.numel():  # (no identity of zero size: nn.Linear(0, n) has a (n, 0) weight)
        return False
    t = w.detach()
    head = t.reshape(-1)[:_SCAN]  # (an identity holds only 0 and 1: random weights fail here)
    if not bool(((head == 0) | (head == 1)).all()):
        return False
    if t.ndim == 2:
        rows, cols = t.shape
        if rows % cols or not bool(t.diagonal().eq(1).all()):
            return False
        eye = torch.eye(cols, dtype=t.dtype, device=t.device)
        return all(torch.equal(b, eye) for b in t.split(cols, 0))
    if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
        ref = torch.nn.init.dirac_(torch.empty_like(t), groups=m.groups)
        return torch.equal(t, ref)
    return False


def structured_starts(model: nn.Module) -> dict[int, str]:
    """Weights set to an exact identity by the model's author — ``nn.init.eye_`` on a Linear,
    ``dirac_`` on a convolution, an identity recurrent matrix (IRNN, Le et al. 2015: a ReLU RNN
    that starts by carrying its state unchanged) — which torch's own init never gives: ``{id
    of the parameter: what it is}``; their biases are part of that start and included."""
    found: dict[int, str] = {}
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            w = getattr(m, "weight", None)
            if isinstance(w, nn.Parameter) and is_identity(w, m):
                found[id(w)] = "dirac" if w.ndim > 2 else "identity"
                if isinstance(getattr(m, "bias", None), nn.Parameter):
                    found[id(m.bias)] = "its bias"
        elif isinstance(m, nn.RNNBase):
            for name, q in m.named_parameters(recurse=False):
                if name.startswith("weight_hh") and is_identity(q, m):
                    found[id(q)] = "identity"
    return found


def zero_starts(model: nn.Module) -> tuple[set[int], bool]:
    """``(ids of the parameters started at zero on purpose, whether the model looks
    uninitialized)``. torch's own init never gives an ``nn.Linear``/convolution an all-zero
    weight, nor a torch norm an all-zero gain: such a tensor was zeroed by the model's author —
    ``zero_module`` (ControlNet's zero convolutions, a diffusion U-Net's output layers),
    ``zero_init_residual`` (the last norm of each residual block, Goyal et al. 2017), gMLP's
    spatial gate (its bias ones) — and the layer's bias with it is part of that start. Every
    Linear/convolution weight zero is no such choice but memory never written (``skip_init``,
    an empty allocation): then nothing is kept and the second value says so."""
    layers = [
        m
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))
        and isinstance(getattr(m, "weight", None), nn.Parameter)
        and not m.weight.is_meta
    ]
    zero = [m for m in layers if all_zero(m.weight)]
    if zero and len(zero) == len(layers):
        return set(), True
    norms = [
        m
        for m in model.modules()
        if isinstance(m, NORMS)
        and isinstance(getattr(m, "weight", None), nn.Parameter)
        and all_zero(m.weight)
    ]
    found: set[int] = set()
    for m in (*zero, *norms):
        found.add(id(m.weight))
        if isinstance(getattr(m, "bias", None), nn.Parameter):
            found.add(id(m.bias))
    return found, False
