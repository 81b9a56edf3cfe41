"""Apply a :class:`~initwise.plan.Plan` to a model: validate everything, then write.

Every parameter's values come from :mod:`initwise.sampling`: a pure function of
``(seed, parameter name, element index)`` — not of the order of layers, of other parameters, of
the thread count, of the device, or of how a DTensor/FSDP2 parameter is sharded (each rank draws
only its own shard). ``engine="torch"`` uses a ``torch.Generator`` per parameter instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _validate as v
from .. import sampling
from ..plan import ParamPlan, Plan
from . import complex as CX
from . import parametrized as PZ
from .batch import plain_strided
from .init import check_range, check_tensor, sample
from .modules import check_materialized, nested_unwrapped, not_a_module, unwrap
from .threads import check_threads, held_to_free

Box = tuple[tuple[int, ...], tuple[int, ...]]  # (global offset, local shape)


def param_seed(seed: int, name: str) -> int:
    """63-bit seed of parameter ``name`` for ``engine="torch"``: ``blake2b(f"{seed}/{name}")``."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def draw(
    entry: ParamPlan,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    target: torch.Tensor | None = None,
    *,
    engine: str = "stream",
    threads: int | None = None,
    box: Box | None = None,
    draw_on: str = "auto",
) -> torch.Tensor:
    """The values of ``entry`` on ``device`` (compute precision, not yet cast).

    ``engine="stream"``: :mod:`initwise.sampling`'s streams, drawn on the host (Numba/NumPy
    kernels) for CPU parameters and on the parameter's own device (the torch kernel, same bits)
    for accelerator parameters; ``draw_on="device"``/``"host"`` forces one or the other.
    ``engine="torch"``: a ``torch.Generator`` on ``device`` seeded by :func:`param_seed`.
    ``box`` draws only that slice of the parameter (a shard); ``target`` may be filled in place
    and returned.
    """
    if engine == "torch":
        if box is not None:
            raise ValueError("engine='torch' can not draw a shard on its own; use 'stream'")
        return _draw_torch(entry, seed, device, dtype, target)
    if draw_on == "device" or (
        draw_on == "auto" and torch.device(device).type not in ("cpu", "meta")
    ):
        return _draw_device(entry, seed, torch.device(device), dtype, target, box)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    if box is not None and entry.chunks == 1 and not entry.center_dims and not entry.row_scales:
        assert entry.scheme is not None
        offset, local = box
        flat = sampling.sample(
            entry.scheme,
            entry.shape,
            seed=seed,
            name=entry.name,
            fans=entry.fans,
            ranges=sampling.box_ranges(entry.shape, offset, local),
            dtype=np_dtype,
            threads=threads,
        )
        return _zero_rows_in_box(torch.from_numpy(flat).reshape(local), entry, offset).to(device)
    direct = (
        target is not None
        and box is None
        and target.device.type == "cpu"
        and target.is_contiguous()
        and target.dtype == (torch.float64 if np_dtype == np.float64 else torch.float32)
    )
    blocks = []
    size = entry.block_shape[entry.chunk_dim]
    for i in range(entry.chunks):
        scheme = entry.scheme_for_chunk(i)
        assert scheme is not None
        name = entry.chunk_stream(i)
        # straight into the target where the chunk is contiguous in it; else through a temporary
        # copied into the strided slice (no concatenation of the chunks)
        view = target.detach().narrow(entry.chunk_dim, i * size, size) if direct else None
        values = sampling.sample(
            scheme,
            entry.block_shape,
            seed=seed,
            name=name,
            fans=entry.fans,
            dtype=np_dtype,
            threads=threads,
            out=view.numpy() if view is not None and view.is_contiguous() else None,
        )
        if view is not None and not view.is_contiguous():
            view.copy_(torch.from_numpy(values))
        blocks.append(values)
    if direct:
        assert target is not None
        out = target
    else:
        full = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=entry.chunk_dim)
        out = torch.from_numpy(np.ascontiguousarray(full, dtype=np_dtype))  # numpy casts fast
    _finish(out, entry)
    if box is not None:
        offset, local = box
        out = out[tuple(slice(o, o + n) for o, n in zip(offset, local, strict=True))]
    return out if out is target else out.to(device)


def _zero_rows_in_box(out: torch.Tensor, entry: ParamPlan, offset: tuple[int, ...]) -> torch.Tensor:
    """Zero the entry's ``zero_rows`` (an embedding's padding row) that fall in this shard."""
    n = out.shape[0] if out.dim() else 0
    rows = [r - offset[0] for r in entry.zero_rows if offset[0] <= r < offset[0] + n]
    if rows:
        out[rows] = 0
    return out


def _draw_device(
    entry: ParamPlan,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    target: torch.Tensor | None,
    box: Box | None,
) -> torch.Tensor:
    """The stream's values generated on ``device`` by the torch kernel (no host round trip for
    elementwise schemes); a shard generates only its own elements."""
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    if box is not None and entry.chunks == 1 and not entry.center_dims and not entry.row_scales:
        assert entry.scheme is not None
        offset, local = box
        flat = sampling.sample_tensor(
            entry.scheme,
            entry.shape,
            seed=seed,
            name=entry.name,
            device=device,
            dtype=cdt,
            fans=entry.fans,
            ranges=sampling.box_ranges(entry.shape, offset, local),
        )
        return _zero_rows_in_box(flat.reshape(local), entry, offset)
    direct = target is not None and box is None and target.dtype == cdt
    full = target if direct else torch.empty(entry.shape, dtype=cdt, device=device)
    assert full is not None
    size = entry.block_shape[entry.chunk_dim]
    for i in range(entry.chunks):
        scheme = entry.scheme_for_chunk(i)
        assert scheme is not None
        name = entry.chunk_stream(i)
        view = full.detach().narrow(entry.chunk_dim, i * size, size)
        contiguous = view.is_contiguous()
        values = sampling.sample_tensor(
            scheme,
            entry.block_shape,
            seed=seed,
            name=name,
            device=device,
            dtype=cdt,
            fans=entry.fans,
            out=view if contiguous else None,
        )
        if not contiguous:
            view.copy_(values)
    _finish(full, entry)
    if box is not None:
        offset, local = box
        return full[tuple(slice(o, o + n) for o, n in zip(offset, local, strict=True))]
    return full


def _draw_torch(
    entry: ParamPlan,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    target: torch.Tensor | None,
) -> torch.Tensor:
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
    _finish(out, entry)
    return out


def _finish(out: torch.Tensor, entry: ParamPlan) -> None:
    """In place on the full tensor: center over ``entry.center_dims`` (in float64, times
    ``√(n/(n−1))`` to keep the variance), scale the rows by ``entry.row_scales``, then zero
    ``entry.zero_rows``."""
    if entry.center_dims:
        dims = tuple(entry.center_dims)
        n = math.prod(out.shape[d] for d in dims)
        if n > 1 and out.numel():
            x = out.detach().double()
            x = (x - x.mean(dim=dims, keepdim=True)) * math.sqrt(n / (n - 1))
            out.detach().copy_(x)
    if entry.row_scales:
        shape = (-1,) + (1,) * (out.dim() - 1)
        scales = torch.tensor(entry.row_scales, dtype=torch.float64).reshape(shape)
        out.detach().copy_(out.detach().double() * scales.to(out.device))
    if entry.zero_rows:
        out[list(entry.zero_rows)] = 0


def shard_box(p: torch.Tensor) -> Box | None:
    """(global offset, local shape) of a DTensor parameter's shard; None for plain tensors.

    ``torch.distributed.tensor`` is not imported for this (1.4 s with sympy, measured): a DTensor
    can only exist once the program has imported it."""
    dt = sys.modules.get("torch.distributed.tensor")
    DTensor = getattr(dt, "DTensor", None)
    if DTensor is None:
        return None
    if not isinstance(p, DTensor):
        return None
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    local, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    return tuple(int(o) for o in offset), tuple(int(n) for n in local)


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if hasattr(p, "to_local") else p


def validate(
    plan: Plan, model: nn.Module, found: dict[str, PZ.Site] | None = None
) -> dict[str, nn.Parameter]:
    """Check ``plan`` against ``model``; return the parameters by name. Raises ``ValueError``
    naming the first problems and the fix; nothing is written. ``found``: the model's computed
    weights (:func:`initwise.torch.parametrized.sites`) when already known."""
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an initwise Plan, got {type(plan).__name__}")
    if not isinstance(model, nn.Module):
        raise not_a_module(model)
    named = list(model.named_parameters())
    check_materialized(model, "apply", named)
    params = targets(model, named, found)
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
            where = f"parameter {e.name!r}"
            if isinstance(p, torch.Tensor) and p.is_complex():  # (drawn as its real view)
                if found and e.name in found:
                    raise TypeError(f"{where}: a complex parametrized weight is not supported")
                e, p = CX.real_entry(e, where), torch.view_as_real(p.detach())
            check_tensor(p, where)
            for i in range(e.chunks):
                s = e.scheme_for_chunk(i)
                if s is not None:
                    check_range(s, e.block_shape, e.fans, p.dtype, where)
    return params


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


def targets(
    model: nn.Module,
    named: list[tuple[str, nn.Parameter]] | None = None,
    found: dict[str, PZ.Site] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors a plan names: every parameter except the originals of computed weights, and
    each computed weight under its own name (``"0.weight"``: the tensor the layer computes
    with; :mod:`initwise.torch.parametrized`). ``named``: ``model.named_parameters()`` and
    ``found``: its sites, when already listed."""
    found = PZ.sites(model) if found is None else found
    orig = PZ.originals(model, found)
    named = list(model.named_parameters()) if named is None else named
    out: dict[str, torch.Tensor] = {n: p for n, p in named if n not in orig}
    for name, site in found.items():
        t = site.effective()
        if shard_box(t) is not None:
            raise ValueError(
                f"{name!r} is computed ({', '.join(site.kinds)}) and sharded "
                "(DTensor/FSDP2): initwise cannot write it through its reparametrization shard "
                "by shard — initialize before sharding"
            )
        out[name] = t
    return out


def apply_plan(
    plan: Plan,
    model: nn.Module,
    seed: int,
    *,
    device: str | torch.device | None = None,
    atomic: bool = True,
    engine: str = "stream",
    threads: int | None = None,
    draw_on: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> nn.Module:
    """Initialize ``model`` by ``plan`` in place and return it.

    Args:
        plan: from :func:`initwise.torch.plan` or :meth:`Plan.from_json`.
        model: the model (any device; meta-device models are materialized; DTensor / FSDP2
            parameters are filled shard by shard).
        seed: integer; with the parameter name it determines every value.
        device: where a meta-device model is materialized (default ``"cpu"``). A model
            already on a device is filled where it is: a ``device`` other than its parameters'
            is an error (apply does not move a model).
        atomic: draw every parameter before writing any (peak memory: the new values of the
            whole model), so a failure leaves the model bit-identical. ``False`` writes each
            parameter as it is drawn (no extra memory; validation still happens first, but a
            failure while drawing — out of memory, an interrupt — leaves earlier parameters
            written). Meta-device models are filled directly; a failure puts them back on the
            meta device.
        engine: ``"stream"`` (default): values from :mod:`initwise.sampling`, a pure function of
            (seed, name, element index) — the same bits for any thread count, shard layout and
            device. ``"torch"``: a ``torch.Generator`` per parameter on its device (fast on GPUs;
            CPU and CUDA differ; no DTensor shards).
        threads: threads for the stream engine and, when fewer than torch's intra-op count,
            for torch's writes too (default ``INITWISE_THREADS``, else the CPUs free now:
            :func:`initwise.cpus.free`, so a machine whose cores other processes keep busy
            gets one thread, not a split that waits for threads that cannot run).
        draw_on: where the stream engine generates values: ``"auto"`` (default) — on the host
            for CPU parameters, on the parameter's own device for accelerator parameters (each
            rank draws only its shard there, no host round trip); ``"device"`` or ``"host"`` to
            force one. Same bits everywhere.
        progress: called as ``progress(done, total)`` after each parameter is drawn (from the
            drawing threads; the CLI's progress bar).

    Raises:
        ValueError / TypeError: plan and model disagree (names, shapes, dtypes), a scheme does
            not fit, a meta-device model has parameters the plan leaves as is or buffers initwise
            cannot fill. The model is unchanged.
    """
    seed = v.seed(seed)
    if engine not in ("stream", "torch"):
        raise ValueError(f"engine must be 'stream' or 'torch', got {engine!r}")
    if draw_on not in ("auto", "device", "host"):
        raise ValueError(f"draw_on must be 'auto', 'device' or 'host', got {draw_on!r}")
    atomic = v.boolean("atomic", atomic)
    check_threads(threads, "threads")  # (0 and -1 fell back to the default silently)
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(
                f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0', got {device!r}"
            ) from None
    wrapper, model = model, unwrap(model)
    n = threads if threads is not None else sampling.default_threads()  # (once per call)
    with held_to_free(n), nested_unwrapped(model):  # (compiled blocks: their modules' names)
        _apply(plan, model, seed, device, atomic, engine, n, draw_on, progress)
    return wrapper


def _apply(
    plan: Plan,
    model: nn.Module,
    seed: int,
    device: str | torch.device | None,
    atomic: bool,
    engine: str,
    threads: int | None,
    draw_on: str,
    progress: Callable[[int, int], None] | None,
) -> None:
    """:func:`apply_plan` on the unwrapped model."""
    through = PZ.sites(model)  # computed weights: written through their reparametrization
    params = validate(plan, model, through)
    from .shaping import prepare_forward

    install = prepare_forward(plan, model)  # every site checked before anything is written
    entries = [e for e in plan if e.scheme is not None]
    was_meta = any(p.is_meta for p in params.values())
    if not was_meta and device is not None:
        _check_device(device, params)
    if was_meta:
        _check_meta(plan, model, params)
        shapes = {n: params[n] for n in through}
        to_empty_keeping_ties(model, device or "cpu")
        for m in model.modules():
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
        with torch.no_grad():
            for n, b in model.named_buffers():
                fill = _known_buffer(n, b)
                if fill is not None:
                    b.copy_(fill)
        orig = PZ.originals(model, through)  # (the sites outlive to_empty: same modules)
        params = {n: p for n, p in model.named_parameters() if n not in orig}
        dev = torch.device(device or "cpu")
        # the originals hold uninitialized memory until written: only shape and dtype are used
        params.update({n: _empty_on(t, dev) for n, t in shapes.items()})
        atomic = False
    complex_ = [e.name for e in entries if params[e.name].is_complex()]
    if complex_:  # drawn as their real views, (*shape, 2), each part at σ/√2 (torch/complex.py)
        entries = [
            CX.real_entry(e, f"parameter {e.name!r}") if e.name in complex_ else e for e in entries
        ]
        params = {**params, **{n: torch.view_as_real(params[n].detach()) for n in complex_}}
    boxes = {e.name: shard_box(params[e.name]) for e in entries}

    def put(name: str, v: torch.Tensor) -> None:
        if name in through:
            through[name].write(v, param_seed(seed, name))
        else:
            _local(params[name]).copy_(v)

    def values(e: ParamPlan, target: torch.Tensor | None) -> torch.Tensor:
        local = _local(params[e.name])
        return draw(
            e,
            seed,
            local.device,
            local.dtype,
            target,
            engine=engine,
            threads=threads,
            box=boxes[e.name],
            draw_on=draw_on,
        )

    def write(e: ParamPlan) -> None:
        local = _local(params[e.name])
        direct = boxes[e.name] is None and e.name not in through
        v = values(e, local if direct else None)
        if v is not local:
            put(e.name, v)

    # matrix schemes (orthogonal: a QR per matrix, which releases the GIL) are drawn on a few
    # threads with BLAS held to one thread each; elementwise ones run in order (their kernel
    # has its own threads)
    workers = _matrix_workers(entries, engine, threads)

    def counted(fn: Any) -> Any:
        return fn if progress is None else _counted(fn, len(entries), progress)

    try:
        with torch.no_grad():
            if atomic:
                staged = _draw_all(entries, counted(lambda e: values(e, None)), workers)
                # a parametrization's right_inverse may refuse a value: those are written
                # first, their state kept, and put back if any fails
                saved = {n: through[n].state() for n in staged if n in through}
                try:
                    for name in saved:
                        put(name, staged[name])
                except BaseException:
                    for name, st in saved.items():
                        through[name].restore(st)
                    raise
                with _interrupt_after():  # all written or none: Ctrl-C waits for the copies
                    for name, v in staged.items():
                        if name not in through:
                            put(name, v)
                    install()
            else:
                _draw_all(entries, counted(write), workers)
                install()
    except BaseException:
        if was_meta:  # back to what it was: a meta-device model (its ties kept)
            to_empty_keeping_ties(model, "meta")
        raise


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) until the block is done, then raise ``KeyboardInterrupt`` if one
    came: the copy loop of an atomic apply is short and must not stop half way. Outside the
    main thread (no signal handlers there) the block simply runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if got:
        raise KeyboardInterrupt


def _is_matrix(e: ParamPlan) -> bool:
    return any(
        s is not None and s.dist(e.block_shape, e.fans) is None
        for s in (e.scheme_for_chunk(i) for i in range(e.chunks))
    )


def _matrix_workers(entries: list[ParamPlan], engine: str, threads: int | None) -> int:
    n_matrix = sum(1 for e in entries if _is_matrix(e)) if engine == "stream" else 0
    if n_matrix < 2:
        return 1
    return max(1, min(n_matrix, threads or sampling.default_threads()))


def _counted(fn: Any, total: int, progress: Callable[[int, int], None]) -> Any:
    """``fn`` that reports ``progress(done, total)`` after each call (thread-safe)."""
    lock, done = threading.Lock(), [0]

    def call(e: ParamPlan, *rest: Any) -> Any:
        out = fn(e, *rest)
        with lock:
            done[0] += 1
            n = done[0]
        progress(n, total)
        return out

    return call


def _draw_all(entries: list[ParamPlan], fn: Any, workers: int) -> dict[str, Any]:
    """``{name: fn(entry)}`` in plan order; matrix-scheme entries on ``workers`` threads. The
    values do not depend on the threads (each entry's draw is a pure function of its key)."""
    if workers == 1:
        return {e.name: fn(e) for e in entries}
    from concurrent.futures import ThreadPoolExecutor

    matrix = [e for e in entries if _is_matrix(e)]
    with _blas_single_thread(), ThreadPoolExecutor(workers) as ex:
        futures = {e.name: ex.submit(fn, e) for e in matrix}
        out = {e.name: fn(e) for e in entries if e.name not in futures}
        done = {name: f.result() for name, f in futures.items()}
    return {e.name: done[e.name] if e.name in done else out[e.name] for e in entries}


def _blas_single_thread() -> Any:
    """BLAS held to one thread while several QRs run side by side (with OpenBLAS's own threads
    on top, 100 QRs of 256×256 took 0.89 s on 2 threads vs 0.27 s; the bits do not depend on it,
    tested). Uses threadpoolctl when installed; else nothing is changed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/scipy stacks
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _check_device(device: torch.device, params: dict[str, torch.Tensor]) -> None:
    """``device`` says where a meta-device model is materialized; for a model already on a
    device, one that differs from its parameters' is refused (apply writes in place, it does
    not move a model: a silent no-op would leave the user's model where it was)."""
    bad = sorted(
        {
            str(p.device)
            for p in params.values()
            if p.device.type != device.type
            or (device.index is not None and (p.device.index or 0) != device.index)
        }
    )
    if bad:
        raise ValueError(
            f"device={str(device)!r} only says where a meta-device model is materialized; this "
            f"model's parameters are on {', '.join(bad)}: apply fills them where they are — move "
            "the model with model.to(...) first, or leave device out"
        )


def to_empty_keeping_ties(model: nn.Module, device: str | torch.device) -> None:
    """``model.to_empty(device)``, then re-tie parameters that were shared before (``to_empty``
    gives each module its own copy, e.g. GPT-2's ``lm_head`` and ``wte``)."""
    groups: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in model.modules():
        for pname, p in mod._parameters.items():  # (not named_parameters: its generators)
            if p is not None:
                groups.setdefault(id(p), []).append((mod, pname))
    if type(model).to_empty is nn.Module.to_empty:
        model._apply(lambda t: _empty_on(t, device))
    else:  # (a class's own to_empty is honoured)
        model.to_empty(device=device)
    for group in groups.values():
        first_mod, first_name = group[0]
        for mod, pname in group[1:]:
            setattr(mod, pname, getattr(first_mod, first_name))


def _empty_on(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``torch.empty_like(t, device=device)`` (what ``Module.to_empty`` makes of each tensor)
    without its Python path: from a meta tensor, ``empty_like`` runs torch's Python reference
    implementation (~20 µs a tensor after ~0.3 s of imports on the first call, against ~2 µs
    for ``torch.empty``; 580 tensors of a GPT-2-XL-shaped model: 11.6 vs 1.0 ms). A plain
    contiguous tensor gets ``torch.empty`` of its shape and dtype — the same strides; anything
    else (a tensor subclass such as FSDP2's DTensor, a sparse or strided layout) ``empty_like``."""
    if plain_strided(t) and t.is_contiguous():
        return torch.empty(t.shape, dtype=t.dtype, device=device)
    return torch.empty_like(t, device=device)


def _known_buffer(name: str, b: torch.Tensor) -> torch.Tensor | None:
    """The values of buffers whose content is fixed by convention, so a meta-device model can
    be materialized: Hugging Face's ``position_ids`` (``arange`` along the last dim) and
    ``token_type_ids`` (zeros), integer tensors. None for anything else."""
    leaf = name.rsplit(".", 1)[-1]
    if b.dtype.is_floating_point or b.dim() == 0:
        return None
    if leaf == "position_ids":
        n = b.shape[-1]
        return torch.arange(n, dtype=b.dtype, device=b.device).expand(b.shape)
    if leaf == "token_type_ids":
        return torch.zeros(b.shape, dtype=b.dtype, device=b.device)
    return None


def _check_meta(plan: Plan, model: nn.Module, params: dict[str, nn.Parameter]) -> None:
    left = [e.name for e in plan if e.scheme is None]
    if left:
        raise ValueError(
            f"the model is on the meta device and the plan leaves {_few(left)} as is: they "
            "would hold uninitialized memory — give them a scheme with overrides="
        )
    norm_buffers = {"running_mean", "running_var", "num_batches_tracked"}
    written = PZ.hook_written_buffers(model)
    bad = [
        n
        for n, b in model.named_buffers()
        if b.is_meta
        and n.rsplit(".", 1)[-1] not in norm_buffers
        and _known_buffer(n, b) is None
        and not PZ.written_buffer(n)
        and n not in written
    ]
    if bad:
        raise ValueError(
            f"buffers {_few(bad)} are on the meta device and initwise can not know their values;"
            " create them on a real device (or fill them yourself after apply)"
        )
    on = {p.device.type for p in params.values()}
    if len(on) > 1:
        raise ValueError(f"the model is partly on the meta device ({sorted(on)}); move it to one")
