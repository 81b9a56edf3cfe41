"""What a user waits for, idle and on a busy machine: each task runs once with the machine idle,
once while one CPU-bound competitor process (started and stopped here, bounded in time) keeps a
core busy, and once while as many competitors as the machine has CPUs keep every core busy (a
training run, a data loader's workers). Prints loaded / idle per task (users' machines are never
idle).

Tasks: ``reproduce he2015 --quick``; ``apply`` of a plan on a 30×256 MLP (beside
``torch.nn.init``'s re-init of the same layers) and on GPT-2-small; ``diagnose`` on a 20-layer
MLP (beside one forward + backward)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from . import print_table, timeit

_BUSY = (
    "import time, sys\nend = time.time() + float(sys.argv[1])\nx = 0\n"
    "while time.time() < end:\n    x += 1\n"
)


@contextmanager
def competitor(seconds: float = 900.0, n: int = 1) -> Any:
    """``n`` CPU-bound processes for the duration of the block (never longer than ``seconds``)."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY, str(seconds)]) for _ in range(n)]
    time.sleep(0.5)  # let them start spinning
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _tasks(quick: bool) -> list[tuple[str, Callable[[], Any], int]]:
    import torch
    from torch import nn

    import initwise.torch as it
    from initwise.diagnostics import diagnose

    from ..experiments import run as reproduce

    mlp = nn.Sequential(*[nn.Sequential(nn.Linear(256, 256), nn.ReLU()) for _ in range(30)])
    mlp_plan = it.plan(mlp)

    def torch_reinit() -> None:
        for m in mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    deep = nn.Sequential(*[nn.Sequential(nn.Linear(256, 256), nn.ReLU()) for _ in range(20)])
    batch = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))

    def fwd_bwd() -> None:
        deep.zero_grad()
        deep(batch).sum().backward()

    tasks: list[tuple[str, Callable[[], Any], int]] = [
        ("apply 30×256 MLP", lambda: mlp_plan.apply(mlp, seed=0), 9),
        ("torch.nn.init re-init 30×256 MLP", torch_reinit, 9),
        ("diagnose 20-layer MLP", lambda: diagnose(deep, batch), 5),
        ("forward+backward 20-layer MLP", fwd_bwd, 9),
    ]
    try:
        from transformers import GPT2Config, GPT2LMHeadModel

        gpt = GPT2LMHeadModel(GPT2Config(n_layer=2 if quick else 12))
        gpt_plan = it.plan(gpt, "gpt2")
        name = "apply GPT-2-small" + (" (2 layers)" if quick else "")
        tasks.append((name, lambda: gpt_plan.apply(gpt, seed=0), 3))
    except ImportError:  # pragma: no cover - transformers is a dev requirement
        pass
    if not quick:
        out = tempfile.mkdtemp(prefix="initwise-load-")
        tasks.append(
            ("reproduce he2015 --quick", lambda: reproduce("he2015", quick=True, out=out), 1)
        )
    return tasks


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every task idle, then loaded; print and return the rows."""
    from ..cpus import online

    tasks = _tasks(quick)
    idle = {name: timeit(fn, n) for name, fn, n in tasks}
    with competitor():
        loaded = {name: timeit(fn, n) for name, fn, n in tasks}
    cores = online()
    with competitor(n=cores):
        full = {name: timeit(fn, n) for name, fn, n in tasks}
    rows = [
        {
            "task": name,
            "idle_s": idle[name],
            "loaded_s": loaded[name],
            "ratio": loaded[name] / idle[name],
            "all_busy_s": full[name],
            "all_busy_ratio": full[name] / idle[name],
        }
        for name, _, _ in tasks
    ]
    import torch

    print_table(
        f"idle vs one busy competitor process vs {cores} ({torch.get_num_threads()} torch "
        "threads, median per task)",
        ["task", "idle", "1 busy", "1 busy / idle", f"{cores} busy", f"{cores} busy / idle"],
        [
            [
                r["task"],
                _fmt(r["idle_s"]),
                _fmt(r["loaded_s"]),
                f"{r['ratio']:.2f}×",
                _fmt(r["all_busy_s"]),
                f"{r['all_busy_ratio']:.2f}×",
            ]
            for r in rows
        ],
    )
    return rows


def _fmt(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"
