"""Rendering of diagnostics: rich tables, matplotlib signal-propagation plots, markdown."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rendering needs the report's type for annotations only
    from .probe import Report

_COLORS = {
    "healthy": "green",
    "vanishing": "yellow",
    "exploding": "red",
    "saturated": "magenta",
    "dead": "red",
    "zero-init": "cyan",
}


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def report_table(report: Report) -> Any:
    """Per-layer table: measurement next to theory, verdict coloured."""
    from rich.table import Table

    title = f"initwise diagnose — {report.model}" + (f" ({report.label})" if report.label else "")
    t = Table(title=title, caption=f"verdict: {report.verdict} — {report.summary}")
    cols = [
        "#",
        "layer",
        "act",
        "w std",
        "E\\[x²] in",
        "q out",
        "q̂ local",
        "q̂ chain",
        "dead",
        "sat",
        "grad std",
        "δ̂ chain",
        "χ",
        "verdict",
    ]
    for c in cols:
        t.add_column(c, justify="left" if c in ("layer", "act", "verdict") else "right")
    for i, s in enumerate(report.layers):
        pred_g = None if s.pred_grad_chain is None else s.pred_grad_chain**0.5
        t.add_row(
            str(i),
            s.name,
            s.activation,
            _g(s.weight_std),
            _g(s.in_m2),
            _g(s.out_m2),
            _g(s.pred_local),
            _g(s.pred_chain),
            f"{s.dead:.0%}",
            f"{s.saturated:.0%}",
            _g(s.grad_std),
            _g(pred_g),
            _g(s.chi),
            f"[{_COLORS[s.verdict]}]{s.verdict}[/]",
        )
    return t


def render_text(report: Report, width: int = 180) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(report_table(report))
    for s in report.layers:
        if s.suggestion:
            console.print(f"  {s.name}: {s.suggestion}")
    if report.jacobian:
        j = report.jacobian
        console.print(
            f"Jacobian: mean σ² {j.mean_sq:.3g}, condition {j.condition:.3g} "
            f"({len(j.singular_values)} singular values)"
        )
    for n in report.notes:
        console.print(f"note: {n}")
    return console.export_text()


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf: a layer that blew up, a ratio with a zero)
    replaced by None, so the file is valid JSON (RFC 8259 has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def new_figure(figsize: tuple[float, float] | None = None, need: str = "") -> Any:
    """A matplotlib ``Figure`` that renders off-screen without pyplot: the user's backend
    (a notebook's inline one, say) is never switched, and nothing is left open."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(need or "plots need matplotlib: pip install 'initwise[plot]'") from exc
    return Figure(figsize=figsize)


def plot_reports(
    reports: Sequence[Report] | Mapping[str, Report], path: str, title: str = ""
) -> str:
    """Forward (output std) and backward (gradient std) per layer, log scale, one line per report,
    theory dashed where the chain prediction applies. Writes a PNG; returns its path."""
    fig = new_figure(figsize=(11, 4), need="plots need matplotlib: pip install 'initwise[plot]'")
    axes = fig.subplots(1, 2)
    items = (
        list(reports.items())
        if isinstance(reports, Mapping)
        else [(r.label or r.model, r) for r in reports]
    )
    for k, (label, r) in enumerate(items):
        color = f"C{k % 10}"
        xs = list(range(len(r.layers)))
        fwd = [max(s.out_m2, 1e-300) ** 0.5 for s in r.layers]
        axes[0].plot(xs, fwd, "-o", ms=3, color=color, label=label)
        if r.chain_theory:
            axes[0].plot(
                xs,
                [max(s.pred_chain or 1e-300, 1e-300) ** 0.5 for s in r.layers],
                "--",
                color=color,
                alpha=0.6,
            )
        bwd = [s.grad_std for s in r.layers]
        if all(g is not None for g in bwd):
            axes[1].plot(xs, [max(g, 1e-300) for g in bwd], "-o", ms=3, color=color, label=label)
            if r.chain_theory and all(s.pred_grad_chain for s in r.layers):
                axes[1].plot(
                    xs, [s.pred_grad_chain**0.5 for s in r.layers], "--", color=color, alpha=0.6
                )
    axes[0].set(yscale="log", xlabel="layer", ylabel="√q = RMS of pre-activation", title="forward")
    axes[1].set(
        yscale="log", xlabel="layer", ylabel="std of gradient at layer output", title="backward"
    )
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "signal propagation (dashed: mean-field theory)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def markdown(report: Report) -> str:
    """The per-layer table as markdown."""
    head = (
        "| # | layer | act | w std | E[x²] in | q out | q̂ local | q̂ chain | dead | sat | "
        "grad std | χ | verdict |\n|" + "---|" * 13 + "\n"
    )
    rows = [
        f"| {i} | {s.name} | {s.activation} | {_g(s.weight_std)} | {_g(s.in_m2)} | "
        f"{_g(s.out_m2)} | {_g(s.pred_local)} | {_g(s.pred_chain)} | {s.dead:.0%} | "
        f"{s.saturated:.0%} | {_g(s.grad_std)} | {_g(s.chi)} | {s.verdict} |"
        for i, s in enumerate(report.layers)
    ]
    return head + "\n".join(rows) + "\n"


def write_report(reports: Mapping[str, Report], out_dir: str, title: str = "") -> str:
    """Write ``report.md`` (tables, verdicts, suggestions, the plot), ``signal.png`` and
    ``results.json`` under ``out_dir``; return the markdown path."""
    os.makedirs(out_dir, exist_ok=True)
    png = plot_reports(reports, os.path.join(out_dir, "signal.png"), title)
    lines = [
        f"# {title or 'initwise diagnose'}\n",
        f"![signal propagation]({os.path.basename(png)})\n",
    ]
    for label, r in reports.items():
        lines.append(f"## {label}: {r.verdict}\n\n{r.summary}\n")
        lines.append(markdown(r))
        tips = [f"- `{s.name}`: {s.suggestion}" for s in r.layers if s.suggestion]
        if tips:
            lines.append("\n".join(tips) + "\n")
        for n in r.notes:
            lines.append(f"> {n}\n")
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(
            json_safe({k: r.to_dict() for k, r in reports.items()}), f, indent=1, allow_nan=False
        )
    return path
