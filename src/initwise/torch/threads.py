"""Thread counts that behave on a busy machine.

torch runs each operation on its intra-op thread pool (OpenMP: every core by default). For a tiny
network a step is many small operations; each is split over the pool, and when another process
holds a core the whole operation waits for the thread that was descheduled — measured on a 2-core
machine: ``reproduce he2015 --quick`` 24.6 s idle and 69.8 s beside one busy process with 2
threads, 23.5 s and 34.5 s with 1. So the rule:

* work below :data:`SMALL_WORK` multiply-adds per forward pass (a 256-wide MLP on a batch of a
  few hundred) runs on **one** intra-op thread; larger work keeps torch's setting;
* the experiments use one intra-op thread unless told otherwise; the CLI picks by the rule and
  takes ``--threads N`` for every command;
* initwise's own fill threads (``INITWISE_THREADS`` / ``threads=``) split a fill only from 64 Ki
  elements per thread, so small parameters never wake them.

Changes to torch's thread count are scoped (:func:`intra_op_threads`) and undone afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

SMALL_WORK = 1 << 26
"""Multiply-adds per forward pass below which one intra-op thread is faster (and robust to load)."""


def check_threads(n: Any, where: str = "threads") -> int | None:
    """``n`` as a thread count (None = the default); a clear error for anything else."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where} must be a whole number >= 1, got {n!r}")
    return n


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[int]:
    """Run the block with torch's intra-op thread count ``n`` (None: unchanged); restored after."""
    old = torch.get_num_threads()
    n = check_threads(n)
    if n is None or n == old:
        yield old
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


def held_to_free(n: int | None = None) -> Any:
    """A context that holds torch's intra-op threads to ``n`` (default: the CPUs free now,
    :func:`initwise.cpus.free` — or ``INITWISE_THREADS`` where set) while it is fewer than
    torch's count, and gives the count back after; otherwise it changes nothing. On a machine
    whose cores other processes keep busy, an operation split over threads waits for those that
    cannot run (see :mod:`initwise.cpus`). Around ``plan``, ``apply``, the drop-ins,
    ``diagnose`` and ``lsuv``."""
    from ..sampling import default_threads  # (NumPy and the kernels: loaded at first use)

    k = default_threads() if n is None else n
    return intra_op_threads(k) if k < torch.get_num_threads() else nullcontext()


def forward_work(model: torch.nn.Module, rows: int) -> float:
    """Multiply-adds of one forward pass, estimated as parameters × rows (exact for MLPs; a
    lower bound for convolutions, which reuse weights over positions)."""
    return float(sum(p.numel() for p in model.parameters())) * max(1, rows)


def threads_for(model: torch.nn.Module, rows: int) -> int | None:
    """1 for small work (:data:`SMALL_WORK`), else None (torch's own setting)."""
    return 1 if forward_work(model, rows) < SMALL_WORK else None
