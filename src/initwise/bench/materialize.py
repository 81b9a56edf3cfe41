"""Materializing a GPT-2-shaped model: initwise from the meta device vs "construct on CPU, then
re-initialize" vs Hugging Face ``from_config``. Each variant runs in a fresh process so its peak
RSS is its own; memory is reported above the process's baseline (Python + torch + transformers
imported, initwise's compiled kernel loaded, the plan made: current RSS before building the
model), as a multiple of the final weights' size; the peak mark is reset at the baseline (VmHWM
via ``/proc/self/clear_refs``), so a start-up spike such as the kernel's first compile is not
counted. Linux only (``/proc/self/statm``, ``/proc/self/status``)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

SIZES = {  # GPT-2 shapes: (n_layer, n_embd, n_head)
    "small": (12, 768, 12),  # 124 M parameters
    "medium": (24, 1024, 16),  # 355 M
    "xl": (48, 1600, 25),  # 1.56 B
    "ci": (4, 512, 8),  # 38 M (tests)
}
VARIANTS = ("initwise-meta", "cpu-then-reinit", "hf-from-config")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so that the peak covers only what follows, not
    one-off start-up spikes such as compiling the kernel. False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """Peak RSS since the last reset (VmHWM), else the process's lifetime peak (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(variant: str, size: str) -> dict[str, Any]:
    """One measurement, in this process."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import initwise.torch as it
    from initwise import kernels

    kernels.warm()  # the compiled kernel is part of the baseline: a fixed cost, not the model's
    n_layer, n_embd, n_head = SIZES[size]
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    with torch.device("meta"):
        plan = it.plan(GPT2LMHeadModel(cfg), "gpt2")
    import gc

    gc.collect()
    base = _current_mb()
    _reset_peak()
    t = time.perf_counter()
    if variant == "initwise-meta":
        with torch.device("meta"):
            model = GPT2LMHeadModel(cfg)
        it.materialize(model, plan, seed=0)
    elif variant == "cpu-then-reinit":
        model = GPT2LMHeadModel(cfg)
        it.apply_plan(plan, model, 0, atomic=False)
    else:
        model = GPT2LMHeadModel(cfg)
    seconds = time.perf_counter() - t
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return {
        "variant": variant,
        "size": size,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": seconds,
        "weights_mb": weights,
        "peak_above_base_mb": _peak_mb() - base,
        "threads": torch.get_num_threads(),
    }


def measure(variant: str, size: str) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and return its result."""
    code = (
        "import json, sys; from initwise.bench.materialize import child; "
        f"print(json.dumps(child({variant!r}, {size!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(size: str = "medium", variants: tuple[str, ...] = VARIANTS) -> list[dict[str, Any]]:
    from . import print_table

    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError("the materialize benchmark builds GPT-2 with transformers") from exc
    rows = [measure(v, size) for v in variants]
    ref = next((r for r in rows if r["variant"] == "initwise-meta"), rows[0])
    print_table(
        f"GPT-2-{size} ({rows[0]['params'] / 1e6:.0f} M params, {rows[0]['weights_mb']:.0f} MiB "
        f"fp32), {rows[0]['threads']} threads",
        ["variant", "seconds", "peak RSS above base / weights", "time / initwise"],
        [
            [
                r["variant"],
                f"{r['seconds']:.2f}",
                f"{r['peak_above_base_mb'] / r['weights_mb']:.2f}×",
                f"{r['seconds'] / ref['seconds']:.2f}×",
            ]
            for r in rows
        ],
    )
    return rows
