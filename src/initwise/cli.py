"""Command-line interface: ``initwise <command>``."""

from __future__ import annotations

import argparse
import sys


def _cmd_gains(args: argparse.Namespace) -> int:
    from rich.console import Console
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
    Console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``initwise`` argument parser."""
    parser = argparse.ArgumentParser(prog="initwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gains", help="print forward/backward gains of activations")
    g.add_argument("names", nargs="*", default=["linear", "relu", "tanh", "sigmoid", "selu",
                                                 "gelu", "silu", "mish"])
    g.set_defaults(func=_cmd_gains)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``initwise`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"initwise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
