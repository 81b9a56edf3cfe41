"""Running a model on a batch: finding the tensors in a batch, checking it, calling the model
with it (tensor, tuple of positional args or dict of kwargs) and saying clearly when it does not
fit. Shared by graph tracing, LSUV and the diagnostics."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch


class ProbeError(ValueError):
    """An error a probe raises about the model's values (not about the batch): passed through
    :func:`run_model` unchanged. Its message stays as written: raised inside a ``torch.fx``
    interpreter (LSUV's pass), torch appended "While executing %b … Original traceback: None
    Use tlparse to see full graph" to its arguments, and that was the end of every LSUV error."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.message = str(args[0]) if args else ""

    def __str__(self) -> str:
        return self.message


class NonFiniteError(ProbeError):
    """A layer produced Inf/NaN during a probe (the initialization explodes)."""


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators seeded by ``seed`` — random layers (dropout
    in train mode) and module constructors draw the same values on every call — and put their
    states back afterwards, so the caller's random stream does not move. CUDA generators are
    saved and restored where CUDA is in use. Python's ``random`` and NumPy's global generator
    (``np.random.*``, where NumPy is loaded) are seeded and put back too: a forward that draws
    from them — Hugging Face's Wav2Vec2/HuBERT/SEW mask time steps in train mode with
    ``np.random`` (SpecAugment) — moved the caller's NumPy stream on every plan, ``diagnose``
    or ``lsuv`` call, and the plan itself changed with the caller's NumPy seed."""
    devices = (
        list(range(torch.cuda.device_count()))
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else []
    )
    py_state = random.getstate()
    np_random = getattr(sys.modules.get("numpy"), "random", None)  # (not imported for this)
    np_state = np_random.get_state() if np_random is not None else None
    try:
        with torch.random.fork_rng(devices=devices):
            # not torch.manual_seed: with CUDA present but not yet initialized it queues a
            # seed for the GPUs that would run later, outside this block, over the caller's own
            torch.random.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            random.seed(seed)
            if np_random is not None:
                np_random.seed(seed % 2**32)
            yield
    finally:
        random.setstate(py_state)
        if np_random is not None:
            np_random.set_state(np_state)


@contextmanager
def kept_modes(model: torch.nn.Module, mode: bool | None = None) -> Iterator[None]:
    """Run the block with ``model.train(mode)`` (None: the modes as they are) and give every
    submodule its own train/eval flag back afterwards. ``model.train(was)`` would not: it sets
    one flag on all of them, so a BatchNorm the user froze with ``.eval()`` inside a model in
    train mode (fine-tuning) would come back in train mode and update its statistics."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        if mode is not None:
            model.train(mode)
        yield
    finally:
        for m, flag in saved:
            if m.training is not flag:  # (nn.Module.__setattr__ is slow; most are unchanged)
                m.training = flag


@contextmanager
def kept_buffers(model: torch.nn.Module) -> Iterator[None]:
    """Run the block and put every buffer's values back afterwards: a forward pass in train mode
    moves BatchNorm's running statistics, a hand-written one may count steps or keep an average.
    Buffers on the meta device hold no values and are left alone."""
    saved = {k: b.detach().clone() for k, b in model.named_buffers() if not b.is_meta}
    try:
        yield
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved and not b.is_meta:
                    b.copy_(saved[k])


KEPT_PARAMETERS_BUDGET = 1 << 27
"""Elements of parameters :func:`kept_parameters` copies at most (512 MB of float32)."""


@contextmanager
def kept_parameters(model: torch.nn.Module) -> Iterator[None]:
    """Run the block and put back the values of the parameters that modules of the model's own
    (not torch's layers, which never write their weights in ``forward``) own directly: a
    data-dependent init in ``forward`` — Glow's ActNorm sets its ``loc`` and ``scale`` from the
    first batch it sees — wrote the example input's statistics into the model when the plan
    ran it. Up to :data:`KEPT_PARAMETERS_BUDGET` elements, largest modules last; meta-device
    parameters hold no values and are left alone."""
    own = [
        p
        for m in model.modules()
        if not type(m).__module__.startswith("torch.")
        for p in m._parameters.values()
        if p is not None and not p.is_meta
    ]
    saved, total = [], 0
    for p in sorted(own, key=lambda t: t.numel()):
        total += p.numel()
        if total > KEPT_PARAMETERS_BUDGET:
            break
        saved.append((p, p.detach().clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, v in saved:
                if not torch.equal(p.detach(), v):
                    p.detach().copy_(v)


MODULE_INTERNALS = frozenset(vars(torch.nn.Module()))
"""The attributes torch keeps on every module (parameters, buffers, children, hooks, the mode):
not the module's own Python state."""


def _shallow(v: Any) -> Any:
    """What a container attribute held, by identity (a list, dict or set is copied)."""
    if type(v) is list:
        return list(v)
    if type(v) is dict:
        return dict(v)
    if type(v) is set:
        return set(v)
    return None


def _same(a: Any, b: Any) -> bool:
    if type(a) is list:
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(a[k] is b[k] for k in a)
    return a == b


@contextmanager
def kept_attributes(model: torch.nn.Module, keep_new_on_root: bool = False) -> Iterator[None]:
    """Run the block and put each module's own Python attributes back afterwards — what a
    ``forward`` writes while it is traced or run: a call counter (``self.calls += 1``), the
    last attention map kept for a plot (``self.attn = attn``: an fx ``Proxy`` after a trace), a
    list it appends to. Attributes it added are removed (``keep_new_on_root``: not those of
    ``model`` itself, for the caller to take — :class:`~initwise.torch.graph.LeafTracer`'s
    constants), rebound ones get their
    object back, and a list, dict or set changed in place gets its contents back. torch's own
    attributes (parameters, buffers, children, hooks, the mode) are not touched here."""
    saved = []
    for m in model.modules():
        own = {k: v for k, v in vars(m).items() if k not in MODULE_INTERNALS}
        saved.append((m, own, {k: c for k, v in own.items() if (c := _shallow(v)) is not None}))
    try:
        yield
    finally:
        for m, own, contents in saved:
            d = vars(m)
            if not (keep_new_on_root and m is model):
                for k in [k for k in d if k not in own and k not in MODULE_INTERNALS]:
                    del d[k]
            for k, v in own.items():
                if d.get(k) is not v:
                    d[k] = v
                if k in contents and not _same(v, contents[k]):
                    c = contents[k]
                    if type(v) is list:
                        v[:] = c
                    else:
                        v.clear()
                        v.update(c)


@contextmanager
def kept_state(model: torch.nn.Module) -> Iterator[None]:
    """Run the block and put back what running ``model`` may write: its buffers
    (:func:`kept_buffers`), the parameters of its own modules (:func:`kept_parameters`) and
    each module's own attributes (:func:`kept_attributes`). For the plan's own runs of the
    model on its example input (the trace by running, the input's check, the measuring pass)."""
    with kept_buffers(model), kept_parameters(model), kept_attributes(model):
        yield


def tensors(obj: Any, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Every tensor in ``obj`` (nested dicts, lists and tuples), in order."""
    out = [] if out is None else out
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, Mapping):  # (a dict, Hugging Face's BatchEncoding)
        for v in obj.values():
            tensors(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            tensors(v, out)
    return out


def first_tensor(obj: Any) -> torch.Tensor | None:
    found = tensors(obj)
    return found[0] if found else None


def plain_strided(t: Any) -> bool:
    """A plain tensor (``torch.Tensor`` or ``nn.Parameter``, not a subclass such as FSDP2's
    ``DTensor``) with the strided layout: one that shape, strides and dtype describe."""
    return type(t) in (torch.Tensor, torch.nn.Parameter) and t.layout == torch.strided


def meta_stand_in(t: torch.Tensor) -> torch.Tensor:
    """An empty meta tensor of ``t``'s shape, strides and dtype (``empty_like`` for a tensor that
    is not :func:`plain_strided`); an ``nn.Parameter`` with ``t``'s ``requires_grad`` for a
    parameter. (``empty_like`` from a meta tensor runs torch's Python reference path, ~20 µs.)"""
    if plain_strided(t):
        s = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    else:
        s = torch.empty_like(t, device="meta")
    if isinstance(t, torch.nn.Parameter):
        return torch.nn.Parameter(s, requires_grad=t.requires_grad)
    return s


def meta_tensors(model: torch.nn.Module) -> dict[int, Any]:
    """``{id(tensor): meta_stand_in(tensor)}`` for every parameter and buffer of ``model``, one
    per tensor (a tie: one stand-in)."""
    memo: dict[int, Any] = {}
    for t in model.parameters():
        memo.setdefault(id(t), meta_stand_in(t))
    for b in model.buffers():
        memo.setdefault(id(b), meta_stand_in(b))
    return memo


def to_meta(obj: Any) -> Any:
    """``obj`` with every tensor moved to the meta device (shapes only)."""
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, Mapping):
        return {k: to_meta(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_meta(v) for v in obj)
    return obj


def check_batch(batch: Any) -> None:
    """Raise ``ValueError`` unless ``batch`` holds tensors with finite floating values."""
    found = tensors(batch)
    if not found:
        raise ValueError("batch must be a tensor, a tuple of tensors or a dict of tensors")
    for t in found:
        if t.is_meta:
            raise ValueError(
                f"batch has a meta-device tensor of shape {tuple(t.shape)}: statistics need "
                "data; pass a real batch (and a model with materialized weights)"
            )
        if t.numel() == 0:
            raise ValueError(
                f"batch has an empty tensor of shape {tuple(t.shape)}; pass at least one example"
            )
        # a finite sum means every value is finite (NaN/Inf propagate into it; an overflow to
        # Inf is checked element-wise): one reduction instead of a boolean copy of the batch
        if (
            t.is_floating_point()
            and not bool(torch.isfinite(t.sum()))
            and not bool(torch.isfinite(t).all())
        ):
            raise ValueError(
                f"batch has non-finite values (NaN or Inf) in a tensor of shape {tuple(t.shape)};"
                " clean the data first"
            )


EXAMPLE_RUNS: ContextVar[dict[str, Any] | None] = ContextVar("example_runs", default=None)
"""While :func:`~initwise.torch.planner.plan` runs: whether a pass ran the model on the example
input (``"ok"``) or the model raised on it (``"error"``), so that the plan checks the input
with a run of its own only where no pass ran it (:func:`noted_run`)."""


def noted_run(exc: BaseException | None = None) -> None:
    """Record that a pass ran the model on the example input (``exc``: it raised that)."""
    seen = EXAMPLE_RUNS.get()
    if seen is None:
        return
    if exc is None:
        seen["ok"] = True
    else:
        seen.setdefault("error", exc)


def split(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) for ``model(*args, **kwargs)``: a mapping (a dict, a tokenizer's
    ``BatchEncoding``) is keyword arguments, a tuple or list positional ones."""
    if isinstance(batch, Mapping):
        return (), dict(batch)
    if isinstance(batch, (tuple, list)):
        return tuple(batch), {}
    return (batch,), {}


def call(model: Callable[..., Any], batch: Any) -> Any:
    args, kwargs = split(batch)
    return model(*args, **kwargs)


def shapes(batch: Any) -> str:
    return ", ".join(str(tuple(t.shape)) for t in tensors(batch))


def run_model(model: Callable[..., Any], batch: Any) -> Any:
    """``model(batch)`` (or any callable) with a clear error when the batch does not fit."""
    try:
        return call(model, batch)
    except ProbeError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError, AssertionError) as exc:
        # (an `assert` in forward, or a torch.export'ed module's shape guards: they came out
        # as a bare AssertionError)
        said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if said.startswith("Guard failed"):
            said += (
                " — a torch.export'ed module takes the shapes it was exported with; give a "
                "batch of those, or export with dynamic shapes (torch.export.Dim)"
            )
        raise ValueError(
            f"the model could not run on the batch (shapes {shapes(batch)}): {said}"
        ) from exc
