"""Command-line interface: ``initwise <command>``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any


def console() -> Any:
    """A rich Console: the terminal's width, or 200 columns when output is piped."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _cmd_gains(args: argparse.Namespace) -> int:
    from rich.table import Table

    from . import activations as A
    from .math.gains import calculate_gain, gain

    table = Table(title="Activation gains (std = gain / √fan)")
    for col in ("activation", "torch.nn.init.calculate_gain", "forward", "backward"):
        table.add_column(col, justify="right" if col != "activation" else "left")
    for name in args.names:
        known = A.lookup(name).torch_gain is not None
        table.add_row(
            name,
            f"{calculate_gain(name):.4f}" if known else "raises (unknown to torch)",
            f"{gain(name):.4f}",
            f"{gain(name, method='backward'):.4f}",
        )
    console().print(table)
    return 0


def load_factory(spec: str, *args: Any) -> Any:
    """Call ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY`` and return the model it builds.

    A dotted ``MODULE`` is imported normally, and from the current directory only when it is not
    importable otherwise (the current directory is appended to ``sys.path``, never put first:
    a folder named like a dependency must not replace it)."""
    hint = "(e.g. mypkg.models:resnet18 or ./models.py:resnet18)"
    if ":" not in spec or spec.endswith(":") or spec.startswith(":"):
        raise ValueError(f"model must be given as MODULE:FACTORY {hint}, got {spec!r}")
    mod_name, _, attr = spec.rpartition(":")
    try:
        if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
            module = _import_file(mod_name, hint)
        else:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"could not import {mod_name!r} {hint}: {exc}") from None
    except SyntaxError as exc:
        raise ValueError(
            f"could not import {mod_name!r}: syntax error in {exc.filename}, line {exc.lineno}: "
            f"{exc.msg}"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ValueError(f"{mod_name!r} has no callable {attr!r} {hint}")
    try:
        return factory(*args)
    except Exception as exc:  # the user's code: say where it came from
        raise ValueError(
            f"the factory {spec!r} raised {type(exc).__name__}: {exc}".rstrip(": ")
        ) from None


def _import_file(path: str, hint: str) -> Any:
    import importlib.util

    if not path.endswith(".py") or not os.path.isfile(path):
        raise ImportError(f"{path!r} is not a .py file {hint}")
    name = "initwise_user_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"can not load {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def check_out(path: str | None, what: str, *, folder: bool = False) -> None:
    """Fail before any work if ``path`` can not be written (its folder is missing or not
    writable, or it is a directory where a file is wanted)."""
    if not path:
        return
    # absolute first: a relative name's dirname is "" (the default --out initwise-report)
    target = os.path.abspath(path) if folder else os.path.dirname(os.path.abspath(path))
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} exists and is not a folder")
    if not folder and os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder; give a file name")
    probe = target
    while not os.path.exists(probe):  # a folder to be created: its nearest existing parent
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise ValueError(f"{what} {path!r}: {probe!r} is not a writable folder")
    if not folder and not os.path.isdir(target):
        raise ValueError(f"{what} {path!r}: the folder {target!r} does not exist")


def _seed(text: str) -> int:
    """A CLI seed: an integer in [0, 2⁶³)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= n < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {n}")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {n}")
    return n


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    # sizes separated by commas or "x" (2,3,32,32 or 2x3x32x32); every part one integer: an
    # empty or non-numeric part ("2,x", "2,,3") is refused, not dropped
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(
            f"--input-shape must be sizes separated by commas, like 2,3,32,32; got {text!r}"
        ) from None
    if not shape or any(n <= 0 for n in shape):
        raise ValueError(f"--input-shape needs positive sizes, like 2,3,32,32; got {text!r}")
    return shape


def _example(args: argparse.Namespace) -> Any:
    shape = _shape(getattr(args, "input_shape", None))
    if shape is None:
        return None
    import torch

    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _planned(args: argparse.Namespace, model: Any, policy: Any, **kw: Any) -> Any:
    """``plan(model, policy, example_input=<--input-shape>, **kw)``, an unusable example input
    said as the flag's (the library names its ``example_input``)."""
    from .torch import plan
    from .torch.planner import ExampleInputError

    try:
        return plan(model, policy, example_input=_example(args), **kw)
    except ExampleInputError as exc:
        raise ValueError(
            f"--input-shape {args.input_shape}: a random input of that shape — {exc.detail}; "
            "give the shape the model's forward takes"
        ) from exc


def _in_flags(text: str, args: argparse.Namespace) -> str:
    """The library's advice in the command's own words: ``example_input=`` is ``--input-shape``
    and ``strict=False`` no ``--strict`` for the commands that take them (the shell has no
    keyword arguments)."""
    if hasattr(args, "strict"):
        text = text.replace("plan with strict=False", "leave out --strict")
    if not hasattr(args, "input_shape"):
        return text
    return text.replace("give example_input=", "give --input-shape").replace(
        "Give example_input=", "Give --input-shape"
    )


def _policy(args: argparse.Namespace, name: str) -> Any:
    """``--policy``'s policy: a built-in name, or ``mup`` with ``--base-width`` (and
    ``--width``) as ``initwise.torch.MuP``; the μP flags without ``--policy mup`` are
    refused."""
    base, width = getattr(args, "base_width", None), getattr(args, "width", None)
    if name != "mup":
        if base is not None or width is not None:
            flag = "--base-width" if base is not None else "--width"
            raise ValueError(f"{flag} is μP's: give it with --policy mup")
        return name
    if base is None:
        raise ValueError(
            "--policy mup needs --base-width N: the width the hyperparameters were tuned at "
            "(the model's own width is inferred, or give --width)"
        )
    from .torch import MuP

    return MuP(base, width=width)


def _threads(args: argparse.Namespace) -> Any:
    from .torch.threads import intra_op_threads

    return intra_op_threads(getattr(args, "threads", None))


def _cmd_plan(args: argparse.Namespace) -> int:

    check_out(args.json, "--json")
    overrides = _overrides(args.override)
    policy = _policy(args, args.policy)
    model = load_factory(args.model)
    with _threads(args):
        p = _planned(args, model, policy, strict=args.strict, overrides=overrides)
    if args.json:
        p.save(args.json)
    if not args.quiet:
        out = console()
        out.print(p.table(reasons=not args.no_reasons))
        if p.rewrites:
            out.print(p.rewrite_table(reasons=not args.no_reasons))
        for n in p.notes:
            out.print(f"note: {n}")
        if args.json:
            out.print(f"plan written to {args.json}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from .plan import Plan
    from .torch import apply_plan

    if args.plan and args.policy:
        raise ValueError("--plan and --policy exclude each other: the plan already chose")
    check_out(args.out, "--out")
    overrides = _overrides(args.override)
    loaded = Plan.load(args.plan) if args.plan else None  # (before the factory: fail fast)
    policy = _policy(args, args.policy or "auto") if loaded is None else None
    model = _to(load_factory(args.model), args)
    p = loaded if loaded is not None else _planned(args, model, policy, strict=args.strict)
    if overrides:
        p = p.override(overrides)
    written = sum(1 for e in p if e.scheme is not None)
    if written == 0:
        raise ValueError(f"the plan initializes no parameter (all {len(p)} are left as is)")
    with _threads(args), _progress() as progress:
        task = progress.add_task("apply", total=written)
        apply_plan(
            p,
            model,
            args.seed,
            threads=args.threads,
            progress=lambda done, total: progress.advance(task),
        )
    from safetensors.torch import save as save_bytes

    from .plan import write_atomic

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(args.out, save_bytes(_untied(tensors)))
    left = len(p) - written
    print(
        f"initialized {written} parameters"
        + (f" ({left} left as is)" if left else "")
        + f" (seed {args.seed}); weights written to {args.out}"
    )
    n_mult = sum(1 for e in p if e.forward_mult is not None)
    whose = "μP's tied read-out" if any(e.forward_mult_at for e in p) else "u-μP"
    changes = [
        *([f"replaces {len(p.rewrites)} activations (kernel shaping)"] if p.rewrites else []),
        *(
            [f"gives {n_mult} weight{'s' if n_mult > 1 else ''} a forward multiplier ({whose})"]
            if n_mult
            else []
        ),
    ]
    if changes:
        print(
            f"note: the plan also {' and '.join(changes)}, which a weights file can not hold: "
            "after loading the weights, install them on the model with "
            "initwise.torch.install_rewrites(plan, model) (save the plan with `initwise plan "
            "--json`)"
            + (", and build the optimizer with plan.param_groups(model, lr)" if n_mult else "")
        )
    elif any(v != 1.0 for e in p for _, v in e.lr_mult):
        print(
            "note: the plan gives parameters their own learning-rate multipliers (μP), which a "
            "weights file can not hold: save the plan (`initwise plan ... --json`) and build "
            "the optimizer with plan.param_groups(model, lr)"
        )
    return 0


def _untied(tensors: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses shared storage: tied parameters are saved once per name, copied."""
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else id(v)
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _overrides(items: list[str] | None) -> dict[str, Any] | None:
    """``--override PATTERN=SCHEME`` values: a preset name (``zeros``), a JSON object
    (``{"scheme": "normal", "std": 0.02}``) or ``keep`` (leave the parameter as is)."""
    if not items:
        return None
    import json

    out: dict[str, Any] = {}
    for item in items:
        pattern, sep, spec = item.partition("=")
        if not sep or not pattern.strip() or not spec.strip():
            raise ValueError(
                f"--override must look like 'PATTERN=SCHEME' (e.g. '*.bias=zeros' or "
                f'\'head.*={{"scheme": "normal", "std": 0.02}}\'); got {item!r}'
            )
        spec = spec.strip()
        if spec.startswith("{"):
            try:
                out[pattern.strip()] = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"--override {item!r}: the scheme is not valid JSON ({exc})"
                ) from None
        else:
            out[pattern.strip()] = None if spec == "keep" else spec
    return out


def _to(model: Any, args: argparse.Namespace) -> Any:
    """Move the factory's model to ``--device`` / ``--dtype`` (checked before any work)."""
    import torch

    device, dtype = getattr(args, "device", None), getattr(args, "dtype", None)
    if dtype:
        dt = {
            "float32": torch.float32,
            "float64": torch.float64,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[dtype]
        model = model.to(dtype=dt)
    if device:
        try:
            dev = torch.device(device)
            model = model.to(dev)
        except (RuntimeError, AssertionError) as exc:
            raise ValueError(f"--device {device!r} is not usable here: {exc}") from None
    return model


def _load_batch(path: str) -> Any:
    """A batch from a ``.npy`` file (no pickles) or a ``.safetensors`` file holding one tensor
    (or ``FILE:KEY``)."""
    import numpy as np
    import torch

    key = None
    if ":" in path and not os.path.exists(path):
        path, key = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ValueError(f"--batch {path!r} is not a file; give a .npy or .safetensors file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"--batch {path!r}: not a plain .npy array ({exc})") from None
        return torch.from_numpy(np.ascontiguousarray(arr))
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            tensors = load_file(path)
        except Exception as exc:
            raise ValueError(f"--batch {path!r}: not a safetensors file ({exc})") from None
        if key is None:
            if len(tensors) != 1:
                raise ValueError(
                    f"--batch {path!r} holds {len(tensors)} tensors "
                    f"({', '.join(list(tensors)[:4])}); pick one with FILE:KEY"
                )
            return next(iter(tensors.values()))
        if key not in tensors:
            raise ValueError(f"--batch {path!r} has no tensor {key!r}; it has {', '.join(tensors)}")
        return tensors[key]
    raise ValueError(f"--batch {path!r}: use a .npy or .safetensors file")


def _loss(args: argparse.Namespace, batch: Any) -> Any:
    """``--loss``: None (diagnose's random projection), mean square, or cross-entropy against
    ``--targets``."""
    import torch.nn.functional as F

    kind = getattr(args, "loss", "projection")
    if kind == "projection":
        if getattr(args, "targets", None):
            raise ValueError("--targets goes with --loss cross-entropy")
        return None
    if kind == "mean-square":
        return lambda out: out.float().square().mean()
    if not getattr(args, "targets", None):
        raise ValueError("--loss cross-entropy needs --targets FILE (class indices, .npy)")
    targets = _load_batch(args.targets).long()
    n = int(batch.shape[0]) if batch.dim() else 1
    if targets.dim() != 1 or targets.shape[0] != n:
        raise ValueError(
            f"--targets must be {n} class indices (one per batch row), got shape "
            f"{tuple(targets.shape)}"
        )
    return lambda out: F.cross_entropy(out.float(), targets.to(out.device))


def _batch(args: argparse.Namespace) -> Any:
    import torch

    if getattr(args, "batch", None):
        if args.input_shape or args.vocab is not None:
            raise ValueError("--batch excludes --input-shape and --vocab (the file is the batch)")
        return _load_batch(args.batch)
    shape = _shape(args.input_shape)
    if shape is None:
        raise ValueError("diagnose needs --input-shape (e.g. 64,3,32,32) or --batch FILE")
    gen = torch.Generator().manual_seed(args.seed)
    if args.vocab is not None:
        return torch.randint(0, args.vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)


def _coord_widths(text: str) -> list[int]:
    try:
        widths = sorted({int(w) for w in text.split(",") if w.strip()})
    except ValueError:
        raise ValueError(f"--widths must look like 64,256,1024; got {text!r}") from None
    if len(widths) < 2 or widths[0] < 1:
        raise ValueError(f"--widths needs at least two positive widths, got {text!r}")
    return widths


def _cmd_coord_check(args: argparse.Namespace) -> int:
    """``diagnose --coord-check``: μP (against the smallest width, or --base-width) beside the
    standard parametrization (auto), the factory called as ``FACTORY(width)``."""
    import torch

    from .diagnostics import coord_check
    from .torch import MuP
    from .torch.modules import few

    if not args.widths:
        raise ValueError("--coord-check needs --widths, e.g. --widths 64,256,1024")
    widths = _coord_widths(args.widths)
    base = args.base_width or widths[0]
    batch = _batch(args)
    spec = args.model

    def make(width: int) -> Any:
        return load_factory(spec, width)

    out_shape = first_output_shape(make(widths[0]), batch)
    target = torch.randn(out_shape, generator=torch.Generator().manual_seed(args.seed + 1))

    def loss(out: Any, t: Any) -> Any:  # ⟨output, r⟩ / n: unit-variance gradients, any output
        return (out * t).sum() / out.shape[0]

    results = {}
    skipped = {}
    runs = (
        ("standard (auto)", "auto"),
        (f"μP (base {base})", lambda w: MuP(base, width=w)),
        ("u-μP", "u-mup"),
    )
    with _progress() as progress:
        task = progress.add_task("coord-check", total=len(runs) * len(widths) * args.steps)
        for label, policy in runs:
            try:
                results[label] = coord_check(
                    make,
                    widths,
                    batch,
                    target,
                    policy=policy,
                    loss_fn=loss,
                    steps=args.steps,
                    lr=args.lr,
                    seed=args.seed,
                    label=label,
                    progress=lambda: progress.advance(task),
                )
            except ValueError as exc:
                if policy != "u-mup":
                    raise
                skipped[label] = str(exc)  # u-μP refuses some layers (attention, ties)
                progress.advance(task, len(widths) * args.steps)
    out = console()
    for label, r in results.items():
        growth = r.growth()
        out.print(f"{label}: change after {args.steps} steps, width {widths[-1]} / {widths[0]}:")
        for name in r.layers:
            out.print(f"  {name or '(model)'}: ×{growth[name]:.3g}")
        if r.unmeasured:
            out.print(f"  not measured (not called as modules in forward): {few(r.unmeasured)}")
        if args.out:
            slug = {"μ": "mup", "u": "umup"}.get(label[0], "standard")
            out.print(f"  plot: {r.plot(os.path.join(args.out, f'coord_{slug}.png'))}")
    for label, why in skipped.items():
        out.print(f"{label}: not run — {why}")
    return 0


def first_output_shape(model: Any, batch: Any) -> tuple[int, ...]:
    import torch

    from .torch.batch import first_tensor, run_model

    with torch.no_grad():
        y = first_tensor(run_model(model, batch))
    if y is None:
        raise ValueError("the model returned no tensor")
    return tuple(y.shape)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnostics import write_report

    check_out(args.out, "--out", folder=True)
    if args.coord_check:
        return _cmd_coord_check(args)
    batch = _batch(args)
    reports = {}
    labels = [p.strip() for p in args.compare.split(",")] if args.compare else ["as built"]
    loss_fn = _loss(args, batch)
    with _progress() as progress:
        task = progress.add_task("diagnose", total=len(labels))
        for label in labels:
            reports[label] = _diagnose_one(args, label, batch, loss_fn)
            progress.advance(task)
    out = console()
    for r in reports.values():
        out.print(r.table())
        for s in r.layers:
            if s.suggestion:
                out.print(f"  {s.name}: {s.suggestion}")
    if args.out:
        path = write_report(reports, args.out, f"initwise diagnose {args.model}")
        out.print(f"report written to {path}")
    return 0


def _diagnose_one(args: argparse.Namespace, label: str, batch: Any, loss_fn: Any) -> Any:
    """One diagnosis: the model built fresh, initialized by ``label``'s policy unless it is
    "as built", on the batch moved to its device and dtype."""
    from .diagnostics import diagnose
    from .torch import plan
    from .torch.threads import intra_op_threads, threads_for

    model = _to(load_factory(args.model), args)
    p0 = next(model.parameters(), None)
    x = batch
    if p0 is not None:
        x = batch.to(p0.device)
        if x.is_floating_point():
            x = x.to(p0.dtype)
    rows = int(batch.shape[0]) if batch.dim() else 1
    with intra_op_threads(args.threads or threads_for(model, rows)):
        if label != "as built":
            plan(model, label, example_input=x).apply(model, args.seed)
        return diagnose(model, x, jacobian=args.jacobian, label=label, loss_fn=loss_fn)


def _cmd_bench(args: argparse.Namespace) -> int:
    names = (
        ["lsuv", "diagnose", "fill", "materialize", "shaping", "plan"]
        if args.name == "all"
        else [args.name]
    )
    if args.device != "cpu" and not set(names) <= {"fill", "materialize"}:
        raise ValueError("--device applies to the fill and materialize benchmarks")
    if args.seeds != 1 and names != ["zoo"]:
        raise ValueError("--seeds applies to the zoo benchmark only")
    if args.size is not None and names != ["materialize"]:
        if not (
            (names in (["orthogonal"], ["lsuv"]) and args.size == "xl")
            or (names == ["plan"] and args.size == "ci")
        ):
            raise ValueError(
                "a size applies to the materialize benchmark (and xl to orthogonal and lsuv, ci "
                "to plan) only"
            )
    if args.name == "load" or names == ["load"]:
        from .bench import load

        load.run()
        return 0
    from . import bench

    for name in names:
        module = importlib.import_module(f"initwise.bench.{name}")
        kw: dict[str, Any] = {}
        if name in ("fill", "materialize"):
            kw["device"] = args.device
        if name == "materialize" and args.size is not None:
            kw["size"] = args.size
        if name in ("orthogonal", "lsuv") and args.size == "xl":
            kw["xl"] = True
        if name == "plan" and args.size == "ci":
            kw["size"] = "ci"
        if name == "zoo" and args.seeds > 1:
            kw["seeds"] = tuple(range(args.seeds))
        # plain lines on stderr (a live bar would fight the tables printed on stdout)
        with _threads(args), PlainProgress() as progress:
            task = progress.add_task(f"bench {name} (measurements)")
            bench.report_progress(lambda task=task: progress.advance(task))
            try:
                module.run(**kw)
            finally:
                bench.report_progress(None)
    return 0


def _cmd_warm(args: argparse.Namespace) -> int:
    import time

    from . import kernels

    t = time.perf_counter()
    backend = kernels.warm()
    where = kernels.cache_dir() or "NUMBA_CACHE_DIR"
    print(
        f"kernel {backend} ready in {time.perf_counter() - t:.1f} s"
        + (
            f" (cache: {where})"
            if backend == "numba"
            else " (numba not installed: NumPy reference)"
        )
    )
    return 0


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return n


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="move the model there first (e.g. cuda, cpu)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "float64", "bfloat16", "float16"],
        help="convert the model's parameters first",
    )


def _add_threads(p: argparse.ArgumentParser, default_help: str) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help=f"intra-op threads for torch (and initwise's fill threads); default: {default_help}",
    )


def _progress() -> Any:
    """A live bar on a terminal; plain periodic lines on stderr when it is piped or logged."""
    if not sys.stderr.isatty():
        return PlainProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


class PlainProgress:
    """The part of ``rich.progress.Progress`` the experiments use (``add_task``, ``advance``),
    printing ``name: done/total (p%), elapsed`` to stderr at most every ``every`` seconds and
    once when a task completes — readable in CI logs, where a live bar prints nothing."""

    def __init__(self, every: float = 10.0, stream: Any = None) -> None:
        import time

        self._clock = time.monotonic
        self.every = every
        self.stream = stream
        self.tasks: dict[int, list[Any]] = {}  # id -> [name, total, done, start, last print]

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        now = self._clock()
        self.tasks[len(self.tasks)] = [description, total, 0.0, now, now]
        self._line(len(self.tasks) - 1, "started")
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1.0) -> None:
        t = self.tasks[task]
        t[2] += advance
        now = self._clock()
        finished = t[1] is not None and t[2] >= t[1]
        if finished or now - t[4] >= self.every:
            t[4] = now
            self._line(task, "done" if finished else "")

    def _line(self, task: int, word: str) -> None:
        name, total, done, start, _ = self.tasks[task]
        if not total and not done and word == "started":  # (no count yet: "bench zoo: started",
            print(f"{name}: started", file=self.stream or sys.stderr, flush=True)  # not "0, 0 s")
            return
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        amount = f"{done:g}/{total:g}{pct}" if total else f"{done:g}"
        tail = f" {word}" if word else ""
        print(
            f"{name}: {amount}, {self._clock() - start:.0f} s{tail}",
            file=self.stream or sys.stderr,
            flush=True,
        )


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import run

    check_out(args.out, "--out", folder=True)
    with _progress() as progress:
        res = run(
            args.name,
            quick=args.quick,
            seed=args.seed,
            out=args.out,
            progress=progress,
            threads=args.threads or 1,
            resume=args.resume,
        )
    print(f"{args.name}: claim {'holds' if res['claim_holds'] else 'FAILS'} — {res['claim']}")
    print(f"report: {os.path.join(args.out, args.name, 'report.md')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments import demo

    check_out(args.out, "--out", folder=True)
    with _progress() as progress:
        path = demo(args.out, args.seed, progress, threads=args.threads or 1)
    print(f"initwise demo done — report written to {os.path.abspath(path)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``initwise`` argument parser."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="initwise", description=__doc__)
    parser.add_argument("--version", action="version", version=f"initwise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gains", help="print forward/backward gains of activations")
    g.add_argument(
        "names",
        nargs="*",
        default=["linear", "relu", "tanh", "sigmoid", "selu", "gelu", "silu", "mish"],
    )
    g.set_defaults(func=_cmd_gains)

    from .policy_names import BUILTIN as POLICIES
    from .policy_names import policy_help

    override_help = (
        "PATTERN=SCHEME, repeatable: parameters matching the glob get SCHEME — a preset "
        '(zeros, ones, xavier_uniform, …), a JSON object (\'{"scheme": "normal", "std": '
        "0.02}') or keep (left as is)"
    )

    mup_help = (
        "; mup: μP against --base-width (the width the hyperparameters were tuned at; the "
        "model's own width is inferred, or --width)"
    )

    def add_mup(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--base-width", type=_positive, default=None, help="with --policy mup: μP's base width"
        )
        parser.add_argument(
            "--width",
            type=_positive,
            default=None,
            help="with --policy mup: the model's width (default: inferred, the plan says how)",
        )

    pl = sub.add_parser("plan", help="print (and save) the initialization plan of a model")
    pl.add_argument("model", help="MODULE:FACTORY, a function that returns the model")
    pl.add_argument(
        "--policy", default="auto", choices=(*POLICIES, "mup"), help=policy_help() + mup_help
    )
    add_mup(pl)
    pl.add_argument("--override", action="append", metavar="PATTERN=SCHEME", help=override_help)
    pl.add_argument("--json", help="write the plan as JSON to this file")
    pl.add_argument("--input-shape", help="example input shape for tracing, e.g. 2,3,32,32")
    pl.add_argument("--no-reasons", action="store_true", help="leave the reason column out")
    pl.add_argument("--quiet", action="store_true", help="print nothing")
    pl.add_argument(
        "--strict",
        action="store_true",
        help="fail instead of warning when the plan had to assume anything",
    )
    _add_threads(pl, "torch's")
    pl.set_defaults(func=_cmd_plan)

    ap = sub.add_parser("apply", help="initialize a model and save its weights (safetensors)")
    ap.add_argument("model", help="MODULE:FACTORY, a function that returns the model")
    ap.add_argument("--plan", help="plan JSON (from `initwise plan --json`); else --policy")
    ap.add_argument(
        "--policy",
        default=None,
        choices=(*POLICIES, "mup"),
        help="default auto; " + policy_help() + mup_help,
    )
    add_mup(ap)
    ap.add_argument("--override", action="append", metavar="PATTERN=SCHEME", help=override_help)
    _add_device(ap)
    ap.add_argument("--input-shape", help="example input shape for tracing")
    ap.add_argument("--seed", type=_seed, default=0, help="integer in [0, 2**63)")
    ap.add_argument("--out", required=True, help="output .safetensors file")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="fail instead of warning when the plan had to assume anything",
    )
    _add_threads(ap, "torch's; fills split from 64 Ki elements per thread")
    ap.set_defaults(func=_cmd_apply)

    dg = sub.add_parser("diagnose", help="signal propagation per layer vs mean-field theory")
    dg.add_argument("model", help="MODULE:FACTORY, a function that returns the model")
    dg.add_argument(
        "--input-shape", help="a random batch of this shape, e.g. 64,3,32,32 (or --batch)"
    )
    dg.add_argument(
        "--batch", help="the batch from a file: .npy (no pickles) or .safetensors (FILE:KEY)"
    )
    dg.add_argument(
        "--loss",
        choices=["projection", "mean-square", "cross-entropy"],
        default="projection",
        help="what gradients are taken of: a random projection of the output (default), its "
        "mean square, or cross-entropy against --targets",
    )
    dg.add_argument("--targets", help="with --loss cross-entropy: class indices (.npy)")
    _add_device(dg)
    dg.add_argument(
        "--vocab", type=_positive, default=None, help="integer token inputs in [0, VOCAB)"
    )
    dg.add_argument(
        "--compare",
        help="policies to compare, e.g. auto,xavier,torch-default "
        "(default: the model as the factory built it)",
    )
    dg.add_argument("--seed", type=_seed, default=0, help="integer in [0, 2**63)")
    dg.add_argument("--jacobian", action="store_true", help="input-output Jacobian spectrum")
    dg.add_argument("--out", help="write report.md, signal.png and results.json here")
    dg.add_argument(
        "--coord-check",
        action="store_true",
        help="train a few steps at several widths (FACTORY(width)) under μP and the standard "
        "parametrization; flat change against width = hyperparameters transfer",
    )
    dg.add_argument("--widths", help="with --coord-check: e.g. 64,256,1024")
    dg.add_argument(
        "--base-width", type=_positive, default=None, help="μP base (default: smallest)"
    )
    dg.add_argument("--steps", type=_positive, default=4, help="with --coord-check: Adam steps")
    dg.add_argument("--lr", type=float, default=1e-2, help="with --coord-check: Adam learning rate")
    _add_threads(dg, "1 for small models (parameters × batch < 2^26), else torch's")
    dg.set_defaults(func=_cmd_diagnose)

    from .experiments import EXPERIMENTS

    rp = sub.add_parser(
        "reproduce", help="run a classic experiment (results.json, plots, report.md)"
    )
    rp.add_argument(
        "name",
        choices=list(EXPERIMENTS),
        help="full run times on a 2-core machine (docs/experiments.md): he2015 ~1.5-2 min, "
        "sigmoid-vanishing 12 s, zero-symmetry 9 s, seed-formulas 6 s, edge-of-chaos 4-11 min, "
        "depth-sweep 3 seeds ~30-40 min, lr-transfer ~45 min, deep-vanilla ~55 min; --quick: under "
        "a minute each",
    )
    rp.add_argument("--quick", action="store_true", help="the short version (for tests)")
    rp.add_argument(
        "--resume",
        action="store_true",
        help="go on from the cells an interrupted run finished (OUT/NAME/cells.jsonl; same "
        "seed, config and package source, else an error): depth-sweep, lr-transfer, deep-vanilla",
    )
    rp.add_argument("--seed", type=_seed, default=0, help="integer in [0, 2**63)")
    rp.add_argument("--out", default="initwise-report")
    _add_threads(rp, "1 (the experiments' networks are small)")
    rp.set_defaults(func=_cmd_reproduce)

    de = sub.add_parser("demo", help="quick he2015 + depth-sweep + diagnose report")
    de.add_argument("--seed", type=_seed, default=0, help="integer in [0, 2**63)")
    de.add_argument("--out", default="initwise-report")
    _add_threads(de, "1 (the networks are small)")
    de.set_defaults(func=_cmd_demo)

    bn = sub.add_parser("bench", help="run the benchmarks (ratios against peers)")
    bn.add_argument(
        "name",
        nargs="?",
        default="all",
        choices=[
            "all",
            "lsuv",
            "diagnose",
            "fill",
            "materialize",
            "load",
            "zoo",
            "families",
            "shaping",
            "orthogonal",
            "plan",
        ],
    )
    bn.add_argument(
        "size",
        nargs="?",
        default=None,
        choices=["ci", "small", "medium", "xl"],
        help="GPT-2 size for the materialize benchmark (default medium); orthogonal xl adds "
        "VGG-11's 4096×25088 classifier (~6 min more), lsuv xl VGG-11 at 224² (~4 min more); "
        "plan ci: a 2-layer GPT-2 only",
    )
    bn.add_argument(
        "--device",
        default="cpu",
        help="fill/materialize on this device (e.g. cuda): initwise's on-device kernel vs torch's",
    )
    bn.add_argument(
        "--seeds",
        type=_positive,
        default=1,
        help="zoo: initialize with seeds 0…N−1 and summarize how many land in each band "
        "(default 1: seed 0's table)",
    )
    _add_threads(bn, "torch's")
    bn.set_defaults(func=_cmd_bench)

    wm = sub.add_parser(
        "warm", help="compile (first time) or load the fast fill kernel now, into the user cache"
    )
    wm.set_defaults(func=_cmd_warm)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``initwise`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    from .plan import AssumptionWarning, SignalWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AssumptionWarning)
        warnings.simplefilter("always", SignalWarning)
        try:
            code = int(args.func(args))
        except (ValueError, TypeError, OSError) as exc:
            print(f"initwise {args.command}: error: {_in_flags(str(exc), args)}", file=sys.stderr)
            code = 2
        except KeyboardInterrupt:
            print(f"initwise {args.command}: interrupted", file=sys.stderr)
            code = 130
        except Exception as exc:  # not ours to hide: one line, the traceback on request
            if os.environ.get("INITWISE_DEBUG"):
                raise
            print(
                f"initwise {args.command}: error: {type(exc).__name__}: {exc} "
                "(INITWISE_DEBUG=1 shows the traceback)",
                file=sys.stderr,
            )
            code = 1
    said: dict[str, int] = {}  # (each warning once, with how often: `bench zoo --seeds 10`
    for w in caught:  # planned each network ten times and printed each warning ten times)
        if issubclass(w.category, (AssumptionWarning, SignalWarning)):
            text = _in_flags(str(w.message), args)
            said[text] = said.get(text, 0) + 1
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for text, times in said.items():
        again = f" ({times} times)" if times > 1 else ""
        print(f"initwise {args.command}: warning{again}: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
