"""Benchmarks that print ratios against the peer measured in the same run (``initwise bench``).

Timing: each measurement is the median of ``repeat`` runs after one warm-up, on the same
thread count for both sides (``torch.get_num_threads()``, printed).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

_progress: list[Callable[[], None]] = []


def report_progress(callback: Callable[[], None] | None) -> None:
    """Have :func:`timeit` call ``callback()`` after each measurement (the CLI prints periodic
    progress lines from it); ``None`` stops it."""
    _progress.clear()
    if callback is not None:
        _progress.append(callback)


def timeit(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    for cb in _progress:
        cb()
    return statistics.median(times)


def timeit_side_by_side(
    fns: Sequence[Callable[[], Any]], repeat: int = 3, warmup: int = 1, settle: float = 0.3
) -> list[float]:
    """Median wall times of several ``fns``, measured in turns (each round runs every one, the
    order rotated), so that a machine whose speed drifts — a busy host, a VM's neighbours —
    moves all of them alike and their ratio stays fair. ``settle`` seconds of sleep before each
    measurement let the previous one's thread pool go quiet: OpenBLAS's and OpenMP's workers
    spin for up to ~0.1–0.2 s after a call, and whatever runs next shares the cores with them
    (torch's 1024² orthogonal_ took 117 ms right after a SciPy QR, 80 ms after a pause)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeat):
        for i in [(r + j) % len(fns) for j in range(len(fns))]:
            if settle:
                time.sleep(settle)
            t = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t)
    for cb in _progress:
        cb()
    return [statistics.median(ts) for ts in times]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a rich table (plain text when piped)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="right" if h != header[0] else "left")
    for r in rows:
        t.add_row(*r)
    Console(width=160).print(t)
