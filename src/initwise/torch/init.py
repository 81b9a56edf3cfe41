r"""Drop-in replacements for ``torch.nn.init`` — same names, same signatures, same bits.

For a float32 tensor and the same ``generator`` state, ``uniform_``, ``normal_``,
``xavier_*``, ``kaiming_*`` and ``orthogonal_`` produce exactly torch's values. They differ on
purpose where torch is wrong or fragile:

* keyword-only ``kind=``, ``groups=``, ``chunks=``, ``stride=`` (or ``fans=``) give the true fans
  of grouped/depthwise/transposed convs and packed QKV / RNN-gate weights
  (:func:`initwise.math.fans`); the default ``kind="linear"`` equals torch's convention;
* bf16/fp16 tensors are sampled in float32 and cast last (torch's ``orthogonal_`` fails on them
  and low-precision inverse-CDF truncation is biased);
* ``trunc_normal_`` is exact in the far tails; ``sparse_`` honours ``generator`` (torch's row
  permutations draw from the global RNG);
* ``calculate_gain`` also knows GELU, SiLU, Mish, ELU… (numeric gain) instead of raising.

Like torch, ``generator=None`` draws from torch's default generator; the planner
(:func:`initwise.torch.plan`) always takes an explicit seed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .. import schemes as S
from ..math.fans import Fans
from ..math.fans import fans as compute_fans
from ..math.gains import calculate_gain
from .threads import held_to_free

__all__ = [
    "calculate_gain",
    "constant",
    "constant_",
    "delta_orthogonal_",
    "dirac",
    "dirac_",
    "eye",
    "eye_",
    "init_",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "normal",
    "normal_",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "sparse",
    "sparse_",
    "trunc_normal_",
    "uniform",
    "uniform_",
    "variance_scaling_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros_",
]


class TorchBackend:
    """torch back end: draws on ``device`` in ``dtype`` (float32, or float64 for float64
    targets) from ``generator``. The first draw of the target's own shape is written straight
    into ``target`` when dtypes agree, so float32 fills allocate nothing extra."""

    def __init__(
        self,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype,
        target: torch.Tensor | None = None,
    ) -> None:
        self.generator = generator
        self.device = device
        self.dtype = dtype
        self._target = target if target is not None and target.dtype == dtype else None

    def _buf(self, shape: tuple[int, ...]) -> torch.Tensor:
        t = self._target
        if t is not None and tuple(t.shape) == tuple(shape):
            self._target = None
            return t
        return torch.empty(shape, device=self.device, dtype=self.dtype)

    def normal(self, shape: tuple[int, ...], mean: float, std: float) -> torch.Tensor:
        return self._buf(shape).normal_(mean, std, generator=self.generator)

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return self._buf(shape).uniform_(low, high, generator=self.generator)

    def qr_signed(self, a: torch.Tensor) -> torch.Tensor:
        q, r = torch.linalg.qr(a)
        return q * r.diagonal().sign()

    def reflectors_signed(self, a: torch.Tensor) -> torch.Tensor:
        """As :meth:`initwise._backend.NumpyBackend.reflectors_signed`, with
        ``torch.linalg.householder_product`` (LAPACK's ``orgqr``) in ``a``'s dtype."""
        m, n = a.shape
        x0 = a.diagonal()
        below = torch.tril(a)  # column k's reflector is a[k:, k]
        norm = below.pow(2).sum(0).sqrt()
        beta = -torch.copysign(norm, x0)
        safe = norm > 0
        denom = torch.where(safe, x0 - beta, torch.ones_like(x0))
        v = torch.tril(below / denom, diagonal=-1)
        v = v + torch.eye(m, n, dtype=a.dtype, device=a.device)
        tau = torch.where(safe, (beta - x0) / torch.where(safe, beta, torch.ones_like(beta)), 0)
        sign = torch.where(beta > 0, 1.0, -1.0).to(a.dtype)
        return torch.linalg.householder_product(v, tau) * torch.where(safe, sign, 1.0)

    def rank_mask(self, rows: int, cols: int, k: int) -> torch.Tensor:
        keys = torch.rand((rows, cols), generator=self.generator, device=self.device)
        return keys.argsort(dim=0).argsort(dim=0) < k

    def zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, device=self.device, dtype=self.dtype)

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().to("cpu", torch.float64).numpy()

    def where(self, mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, a, b)

    def ndtr(self, x: float) -> float:
        from scipy import special

        return float(special.ndtr(x))

    def ndtri(self, u: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtri(u)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sampling precision for a target dtype: float64 stays, everything else uses float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_tensor(tensor: Any, where: str) -> None:
    """Raise unless ``tensor`` is a floating-point torch tensor that may be written in place
    here (not an inference tensor outside ``torch.inference_mode()``: torch's ``copy_`` would
    write it and *then* raise, so the check comes first)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(
            f"{where}: tensor has dtype {tensor.dtype}; initializers need a floating-point "
            "tensor (convert it with tensor.float())"
        )
    if tensor.layout != torch.strided:
        raise TypeError(
            f"{where}: tensor has layout {tensor.layout}; initializers fill dense (strided) "
            "tensors — initialize a dense one and convert it (e.g. .to_sparse()), or leave this "
            "one out (an override 'keep')"
        )
    check_writable(tensor, where)


def check_writable(tensor: torch.Tensor, where: str) -> None:
    """Raise ``RuntimeError`` (torch's type for it) for an inference tensor outside inference
    mode: torch refuses in-place writes to one there, but only after its kernel wrote the data."""
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(
            f"{where}: an inference tensor (made under torch.inference_mode()), which torch lets "
            "be written in place only inside inference mode; nothing was written — call this "
            "inside `with torch.inference_mode():`, or build the model outside inference mode"
        )


def sample(
    scheme: S.Scheme,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
    fans: Fans | None = None,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw ``scheme`` values for ``shape`` in ``compute_dtype(dtype)`` (no checks, no write)."""
    backend = TorchBackend(generator, device, compute_dtype(dtype), target)
    return scheme.sample(shape, backend, fans)


def check_range(
    scheme: S.Scheme, shape: tuple[int, ...], fans: Fans | None, dtype: torch.dtype, where: str
) -> None:
    """Raise ``ValueError`` unless ``scheme``'s values fit ``dtype``: its largest likely value
    (the bounds of a uniform/truncated window, ``|mean| + 7·std`` for a normal — beyond 7σ lies
    one value in 10¹², — ``|value|`` for a constant) must be finite and below the dtype's largest
    number, and a non-zero spread must not underflow to zero. Checked before anything is
    written (``normal_(std=1e40)`` on float32 would write inf, ``std=1e-300`` zeros)."""
    if 0 in shape or not dtype.is_floating_point:
        return
    info = torch.finfo(dtype)
    dist = scheme.dist(shape, fans)
    if dist is None:  # matrix schemes: entries are at most std·√n
        std = float(scheme.std(shape, fans))
        peak, spread = std * math.sqrt(math.prod(shape)), std
    elif dist.kind == "constant":
        peak, spread = abs(dist.mean), 0.0
    elif dist.kind == "uniform":
        peak, spread = max(abs(dist.low), abs(dist.high)), dist.high - dist.low
    else:
        peak = abs(dist.mean) + 7.0 * dist.std
        if dist.kind == "trunc":
            peak = min(peak, max(abs(dist.low), abs(dist.high)))
        spread = dist.std
    if not math.isfinite(peak) or peak > info.max:
        raise ValueError(
            f"{where}: values up to {peak:.3g} can not be represented in {dtype} (largest "
            f"{info.max:.3g}): they would be written as inf; check the scale (std/bounds/fans)"
        )
    if dist is not None and dist.kind == "normal":
        # the streams fold the std into the Box–Muller radius as √(2·std²·(−ln u)), computed in
        # float32 (float64 for float64 targets) with u ≥ 2⁻²⁴ (2⁻⁵³): the product must be
        # finite for the smallest u, not only 2·std² (a property test found std 9e18 writing inf)
        cdt = compute_dtype(dtype)
        cmax = torch.finfo(cdt).max
        bits = 53 if cdt == torch.float64 else 24
        largest = math.sqrt(cmax / (2.0 * bits * math.log(2.0)))
        if dist.std > largest:
            raise ValueError(
                f"{where}: std {dist.std:.3g} is too large to draw in {cdt} (the normal "
                f"transform needs 2·std²·{bits}·ln 2 ≤ {cmax:.3g}, so std ≤ {largest:.3g}): "
                "values would be inf; check the scale (std/fans)"
            )
    if 0.0 < spread < info.tiny:
        raise ValueError(
            f"{where}: a spread of {spread:.3g} underflows in {dtype} (smallest normal "
            f"{info.tiny:.3g}): every value would be written as {abs(dist.mean) if dist else 0:g}; "
            "check the scale (std/bounds/fans)"
        )


def init_(
    tensor: torch.Tensor,
    scheme: S.Scheme,
    generator: torch.Generator | None = None,
    *,
    fans: Fans | None = None,
    kind: str = "linear",
    groups: int = 1,
    chunks: int | None = None,
    stride: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``scheme`` (the general entry point behind every ``*_``).

    Checks everything before writing and draws into a new buffer before copying, so any
    failure leaves ``tensor`` unchanged; a meta tensor is left as is (no storage), a
    zero-element tensor warns and is left as is.
    """
    where = f"initwise.torch.{getattr(scheme, 'name', scheme.type)}_"
    if isinstance(tensor, torch.Tensor) and tensor.is_complex():
        return _init_complex(tensor, scheme, generator, fans, kind, groups, chunks, stride, where)
    check_tensor(tensor, where)
    shape = tuple(tensor.shape)
    scheme.check_shape(shape)
    if scheme.needs_fans and fans is None and 0 not in shape:
        fans = compute_fans(shape, kind, groups=groups, chunks=chunks, stride=stride)
    if tensor.is_meta:
        return tensor
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    check_range(scheme, shape, fans, tensor.dtype, where)
    # draw into a new buffer, then write: a failure changes nothing. (On a machine whose cores
    # other processes keep busy, torch's own split of the write waits for threads that cannot
    # run: its intra-op threads are held to the CPUs free now, as apply's.)
    with held_to_free(), torch.no_grad():
        values = sample(
            scheme,
            shape,
            generator=generator,
            device=tensor.device,
            dtype=tensor.dtype,
            fans=fans,
        )
        tensor.copy_(values)
    return tensor


def _init_complex(
    tensor: torch.Tensor,
    scheme: S.Scheme,
    generator: torch.Generator | None,
    fans: Fans | None,
    kind: str,
    groups: int,
    chunks: int | None,
    stride: int | Sequence[int],
    where: str,
) -> torch.Tensor:
    """:func:`init_` of a complex tensor: its real view drawn from the part scheme
    (:mod:`initwise.torch.complex`: ``E|w|² = σ²``, each part ``σ/√2``) with the complex tensor's
    own fans; a constant ``c`` is ``c + 0i``."""
    from .complex import part_scheme

    shape = tuple(tensor.shape)
    scheme.check_shape(shape)
    if scheme.needs_fans and fans is None and 0 not in shape:
        fans = compute_fans(shape, kind, groups=groups, chunks=chunks, stride=stride)
    d = scheme.dist(shape, fans)
    if d is not None and d.kind == "constant" and d.mean != 0:
        check_tensor(torch.view_as_real(tensor), where)
        if not tensor.is_meta and tensor.numel():
            with torch.no_grad():
                tensor.fill_(d.mean)
        return tensor
    part = part_scheme(scheme, shape, fans, where)
    init_(torch.view_as_real(tensor), part, generator, fans=fans)
    return tensor


def uniform_(
    tensor: torch.Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill with ``U(a, b)``."""
    return init_(tensor, S.uniform(a, b), generator)


def normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill with ``N(mean, std²)``."""
    return init_(tensor, S.normal(mean, std), generator)


def trunc_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
    *,
    relative: bool = False,
) -> torch.Tensor:
    """Fill with ``N(mean, std²)`` truncated to ``[a, b]`` (absolute, as torch), or to
    ``[mean + a·std, mean + b·std]`` with ``relative=True``."""
    return init_(tensor, S.trunc_normal(mean, std, a, b, relative=relative), generator)


def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fill with ``val``."""
    return init_(tensor, S.constant(val))


def ones_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with ones."""
    return init_(tensor, S.ones())


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with zeros."""
    return init_(tensor, S.zeros())


def eye_(tensor: torch.Tensor) -> torch.Tensor:
    """Identity matrix (2-D)."""
    return init_(tensor, S.eye())


def dirac_(tensor: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Dirac delta (3-, 4-, 5-D conv weights)."""
    return init_(tensor, S.dirac(groups))


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None, **fan_kw: Any
) -> torch.Tensor:
    """Glorot uniform ``U(±gain·√(6/(fan_in+fan_out)))``."""
    return init_(tensor, S.xavier_uniform(gain), generator, **fan_kw)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None, **fan_kw: Any
) -> torch.Tensor:
    """Glorot normal ``N(0, gain²·2/(fan_in+fan_out))``."""
    return init_(tensor, S.xavier_normal(gain), generator, **fan_kw)


def kaiming_uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    **fan_kw: Any,
) -> torch.Tensor:
    """He uniform ``U(±gain·√(3/fan))``, ``gain = calculate_gain(nonlinearity, a)``."""
    return init_(tensor, S.kaiming_uniform(a, mode, nonlinearity), generator, **fan_kw)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    **fan_kw: Any,
) -> torch.Tensor:
    """He normal ``N(0, gain²/fan)``."""
    return init_(tensor, S.kaiming_normal(a, mode, nonlinearity), generator, **fan_kw)


def lecun_uniform_(
    tensor: torch.Tensor, generator: torch.Generator | None = None, **fan_kw: Any
) -> torch.Tensor:
    """LeCun uniform ``U(±√(3/fan_in))``."""
    return init_(tensor, S.lecun_uniform(), generator, **fan_kw)


def lecun_normal_(
    tensor: torch.Tensor, generator: torch.Generator | None = None, **fan_kw: Any
) -> torch.Tensor:
    """LeCun normal ``N(0, 1/fan_in)``."""
    return init_(tensor, S.lecun_normal(), generator, **fan_kw)


def variance_scaling_(
    tensor: torch.Tensor,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    generator: torch.Generator | None = None,
    **fan_kw: Any,
) -> torch.Tensor:
    """JAX/Keras ``variance_scaling``: ``Var = scale/fan(mode)``."""
    return init_(tensor, S.variance_scaling(scale, mode, distribution), generator, **fan_kw)


def orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(Semi-)orthogonal matrix times ``gain`` (works for bf16/fp16); torch's algorithm (QR of a
    Gaussian), so torch's bits."""
    return init_(tensor, S.orthogonal(gain, method="qr"), generator)


def delta_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Delta-orthogonal conv kernel (Xiao et al. 2018); its centre tap by QR, as ``orthogonal_``."""
    return init_(tensor, S.delta_orthogonal(gain, method="qr"), generator)


def sparse_(
    tensor: torch.Tensor,
    sparsity: float,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sparse (Martens 2010), reproducible with ``generator``."""
    return init_(tensor, S.sparse(sparsity, std), generator)


# ----------------------------------------------------------------------------- deprecated names


def _deprecated(new: Callable[..., Any], old: str) -> Callable[..., Any]:
    """torch 2.13 still ships ``nn.init.normal`` & co. (FutureWarning): the same here, so code
    written against the old names runs unchanged on initwise.torch."""

    def fn(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"`initwise.torch.{old}` is deprecated in favor of `initwise.torch.{old}_` "
            f"(as `nn.init.{old}` is in torch).",
            FutureWarning,
            stacklevel=2,
        )
        return new(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = old
    fn.__doc__ = f"Deprecated alias of :func:`{old}_` (torch's ``nn.init.{old}``)."
    return fn


normal = _deprecated(normal_, "normal")
uniform = _deprecated(uniform_, "uniform")
constant = _deprecated(constant_, "constant")
xavier_uniform = _deprecated(xavier_uniform_, "xavier_uniform")
xavier_normal = _deprecated(xavier_normal_, "xavier_normal")
kaiming_uniform = _deprecated(kaiming_uniform_, "kaiming_uniform")
kaiming_normal = _deprecated(kaiming_normal_, "kaiming_normal")
orthogonal = _deprecated(orthogonal_, "orthogonal")
sparse = _deprecated(sparse_, "sparse")
eye = _deprecated(eye_, "eye")
dirac = _deprecated(dirac_, "dirac")
DEPRECATED = (
    "normal",
    "uniform",
    "constant",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
    "eye",
    "dirac",
)
