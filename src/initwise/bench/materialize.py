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


def child(variant: str, size: str, device: str = "cpu") -> dict[str, Any]:
    """One measurement, in this process."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import initwise.torch as it
    from initwise import kernels

    kernels.warm()  # the compiled kernel is part of the baseline: a fixed cost, not the model's
    if device != "cpu":
        return _child_device(variant, size, device)
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
    return _row(variant, size, model, seconds, _peak_mb() - base)


def _row(variant: str, size: str, model: Any, seconds: float, peak_mb: float, **extra: Any) -> dict:
    import torch

    return {
        "variant": variant,
        "size": size,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": seconds,
        "weights_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
        "peak_above_base_mb": peak_mb,
        "threads": torch.get_num_threads(),
        **extra,
    }


def _child_device(variant: str, size: str, device: str) -> dict[str, Any]:
    """On a GPU: initwise materializes meta → device, drawing on the device; HF builds the model
    under ``torch.device(device)`` (its own init on the GPU). Peak = CUDA allocator peak."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import initwise.torch as it

    n_layer, n_embd, n_head = SIZES[size]
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    with torch.device("meta"):
        plan = it.plan(GPT2LMHeadModel(cfg), "gpt2")
    if variant == "initwise-meta":  # compile + self-check the device kernel outside the timing
        with torch.device("meta"):
            warm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=n_embd, n_head=n_head))
        it.materialize(warm, seed=0, device=device, policy="gpt2")
        del warm
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    if variant == "initwise-meta":
        with torch.device("meta"):
            model = GPT2LMHeadModel(cfg)
        it.materialize(model, plan, seed=0, device=device)
    elif variant == "hf-from-config":
        with torch.device(device):
            model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(f"variant {variant!r} is not measured on {device}")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**20
    from initwise import kernels

    return _row(
        variant,
        size,
        model,
        seconds,
        peak,
        device=torch.cuda.get_device_name(),
        device_kernel=kernels.device_kernel(device, "normal"),
    )


def measure(variant: str, size: str, device: str = "cpu") -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and return its result."""
    code = (
        "import json, sys; from initwise.bench.materialize import child; "
        f"print(json.dumps(child({variant!r}, {size!r}, {device!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode:
        tail = "\n".join(out.stderr.strip().splitlines()[-12:])
        raise RuntimeError(
            f"bench materialize: the {variant!r} child on {device} exited with status "
            f"{out.returncode}; its last lines:\n{tail}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(
    size: str = "medium", variants: tuple[str, ...] | None = None, device: str = "cpu"
) -> list[dict[str, Any]]:
    from . import print_table

    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError("the materialize benchmark builds GPT-2 with transformers") from exc
    if size not in SIZES:
        raise ValueError(f"bench materialize: size must be one of {', '.join(SIZES)}, got {size!r}")
    if variants is None:
        variants = VARIANTS if device == "cpu" else ("initwise-meta", "hf-from-config")
    rows = [measure(v, size, device) for v in variants]
    ref = next((r for r in rows if r["variant"] == "initwise-meta"), rows[0])
    print_table(
        f"GPT-2-{size} ({rows[0]['params'] / 1e6:.0f} M params, {rows[0]['weights_mb']:.0f} MiB "
        f"fp32), "
        + (
            f"{rows[0]['threads']} threads"
            if device == "cpu"
            else f"{ref['device']}, initwise's device kernel: {ref['device_kernel']}"
        ),
        [
            "variant",
            "seconds",
            "peak RSS above base / weights" if device == "cpu" else "peak GPU memory / weights",
            "time / initwise",
        ],
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
