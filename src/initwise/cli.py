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

    from .math.gains import calculate_gain, gain

    table = Table(title="Activation gains (std = gain / √fan)")
    for col in ("activation", "torch calculate_gain", "forward", "backward"):
        table.add_column(col, justify="right" if col != "activation" else "left")
    for name in args.names:
        table.add_row(
            name,
            f"{calculate_gain(name):.4f}",
            f"{gain(name):.4f}",
            f"{gain(name, method='backward'):.4f}",
        )
    console().print(table)
    return 0


def load_factory(spec: str) -> Any:
    """Call ``MODULE:FACTORY`` (a dotted module path, importable from the current directory)
    and return the model it builds."""
    if ":" not in spec:
        raise ValueError(
            f"model must be given as MODULE:FACTORY (e.g. mypkg.models:resnet18), got {spec!r}"
        )
    mod_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"could not import {mod_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ValueError(f"{mod_name!r} has no callable {attr!r}")
    return factory()


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.replace("x", ",").split(",") if x)
    except ValueError:
        raise ValueError(f"--input-shape must look like 2,3,32,32; got {text!r}") from None


def _example(args: argparse.Namespace) -> Any:
    shape = _shape(getattr(args, "input_shape", None))
    if shape is None:
        return None
    import torch

    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _threads(args: argparse.Namespace) -> Any:
    from .torch.threads import intra_op_threads

    return intra_op_threads(getattr(args, "threads", None))


def _cmd_plan(args: argparse.Namespace) -> int:
    from .torch import plan

    model = load_factory(args.model)
    with _threads(args):
        p = plan(model, args.policy, example_input=_example(args), strict=args.strict)
    if args.json:
        p.save(args.json)
    if not args.quiet:
        out = console()
        out.print(p.table(reasons=not args.no_reasons))
        for n in p.notes:
            out.print(f"note: {n}")
        if args.json:
            out.print(f"plan written to {args.json}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from .plan import Plan
    from .torch import apply_plan, plan

    model = load_factory(args.model)
    p = (
        Plan.load(args.plan)
        if args.plan
        else plan(model, args.policy, example_input=_example(args), strict=args.strict)
    )
    with _threads(args):
        apply_plan(p, model, args.seed, threads=args.threads)
    if args.out:
        from safetensors.torch import save_model

        save_model(model, args.out)
        print(f"initialized {len(p)} parameters (seed {args.seed}); weights written to {args.out}")
    return 0


def _batch(args: argparse.Namespace) -> Any:
    import torch

    shape = _shape(args.input_shape)
    if shape is None:
        raise ValueError("diagnose needs --input-shape (e.g. 64,3,32,32)")
    gen = torch.Generator().manual_seed(args.seed)
    if args.vocab:
        return torch.randint(0, args.vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnostics import diagnose, write_report
    from .torch import plan

    batch = _batch(args)
    reports = {}
    labels = [p.strip() for p in args.compare.split(",")] if args.compare else ["as built"]
    from .torch.threads import intra_op_threads, threads_for

    for label in labels:
        model = load_factory(args.model)
        rows = int(batch.shape[0]) if batch.dim() else 1
        with intra_op_threads(args.threads or threads_for(model, rows)):
            if label != "as built":
                plan(model, label, example_input=batch).apply(model, args.seed)
            reports[label] = diagnose(model, batch, jacobian=args.jacobian, label=label)
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


def _cmd_bench(args: argparse.Namespace) -> int:
    names = ["lsuv", "diagnose", "fill", "materialize"] if args.name == "all" else [args.name]
    if args.device != "cpu" and not set(names) <= {"fill", "materialize"}:
        raise ValueError("--device applies to the fill and materialize benchmarks")
    if args.size is not None and names != ["materialize"]:
        raise ValueError("a size applies to the materialize benchmark only")
    if args.name == "load" or names == ["load"]:
        from .bench import load

        load.run()
        return 0
    for name in names:
        module = importlib.import_module(f"initwise.bench.{name}")
        kw: dict[str, Any] = {}
        if name in ("fill", "materialize"):
            kw["device"] = args.device
        if name == "materialize" and args.size is not None:
            kw["size"] = args.size
        with _threads(args):
            module.run(**kw)
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


def _add_threads(p: argparse.ArgumentParser, default_help: str) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help=f"intra-op threads for torch (and initwise's fill threads); default: {default_help}",
    )


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not sys.stderr.isatty(),
    )


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import run

    with _progress() as progress:
        res = run(
            args.name,
            quick=args.quick,
            seed=args.seed,
            out=args.out,
            progress=progress,
            threads=args.threads or 1,
        )
    print(f"{args.name}: claim {'holds' if res['claim_holds'] else 'FAILS'} — {res['claim']}")
    print(f"report: {os.path.join(args.out, args.name, 'report.md')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments import demo

    with _progress() as progress:
        path = demo(args.out, args.seed, progress, threads=args.threads or 1)
    print(f"initwise demo done — report written to {os.path.abspath(path)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``initwise`` argument parser."""
    parser = argparse.ArgumentParser(prog="initwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gains", help="print forward/backward gains of activations")
    g.add_argument(
        "names",
        nargs="*",
        default=["linear", "relu", "tanh", "sigmoid", "selu", "gelu", "silu", "mish"],
    )
    g.set_defaults(func=_cmd_gains)

    from .policy_names import BUILTIN as POLICIES

    pl = sub.add_parser("plan", help="print (and save) the initialization plan of a model")
    pl.add_argument("model", help="MODULE:FACTORY, a function that returns the model")
    pl.add_argument("--policy", default="auto", choices=POLICIES)
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
    ap.add_argument("--policy", default="auto", choices=POLICIES)
    ap.add_argument("--input-shape", help="example input shape for tracing")
    ap.add_argument("--seed", type=int, default=0)
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
    dg.add_argument("--input-shape", required=True, help="batch shape, e.g. 64,3,32,32")
    dg.add_argument("--vocab", type=int, default=0, help="integer token inputs in [0, VOCAB)")
    dg.add_argument(
        "--compare",
        help="policies to compare, e.g. auto,xavier,torch-default "
        "(default: the model as the factory built it)",
    )
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--jacobian", action="store_true", help="input-output Jacobian spectrum")
    dg.add_argument("--out", help="write report.md, signal.png and results.json here")
    _add_threads(dg, "1 for small models (parameters × batch < 2^26), else torch's")
    dg.set_defaults(func=_cmd_diagnose)

    from .experiments import EXPERIMENTS

    rp = sub.add_parser(
        "reproduce", help="run a classic experiment (results.json, plots, report.md)"
    )
    rp.add_argument("name", choices=list(EXPERIMENTS))
    rp.add_argument("--quick", action="store_true", help="the short version (for tests)")
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--out", default="initwise-report")
    _add_threads(rp, "1 (the experiments' networks are small)")
    rp.set_defaults(func=_cmd_reproduce)

    de = sub.add_parser("demo", help="quick he2015 + depth-sweep + diagnose report")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--out", default="initwise-report")
    _add_threads(de, "1 (the networks are small)")
    de.set_defaults(func=_cmd_demo)

    bn = sub.add_parser("bench", help="run the benchmarks (ratios against peers)")
    bn.add_argument(
        "name",
        nargs="?",
        default="all",
        choices=["all", "lsuv", "diagnose", "fill", "materialize", "load", "zoo"],
    )
    bn.add_argument(
        "size",
        nargs="?",
        default=None,
        choices=["ci", "small", "medium", "xl"],
        help="GPT-2 size for the materialize benchmark (default medium)",
    )
    bn.add_argument(
        "--device",
        default="cpu",
        help="fill/materialize on this device (e.g. cuda): initwise's on-device kernel vs torch's",
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

    from .plan import AssumptionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AssumptionWarning)
        try:
            code = int(args.func(args))
        except (ValueError, TypeError, FileNotFoundError) as exc:
            print(f"initwise {args.command}: error: {exc}", file=sys.stderr)
            code = 2
    for w in caught:
        if issubclass(w.category, AssumptionWarning):
            print(f"initwise {args.command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
