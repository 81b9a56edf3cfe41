"""Where the time of one meta-device materialization goes: host (Python) against device work.

``python benchmarks/materialize_profile.py [cuda|cpu] [ci|small|medium|xl]`` (default: cuda if
visible, else cpu; xl on cuda, ci on cpu). A GPT-2-shaped model under the ``gpt2`` policy is
materialized once to warm up (kernel compile and self-check), then once under ``cProfile`` and
once under ``torch.profiler``: prints the wall time, the parameters and fills per second, the
25 host functions with the most own time, and the device kernels' total time — so a run on a
GPU tells whether materialization is bound by the fills or by per-parameter host work (issue
15: GPT-2-XL meta → H200 took 0.44 s against ~0.01 s of fill at the measured throughput).
Run by ``benchmarks/gpu_check.sh``."""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

import torch


def _model(size: str) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    from initwise.bench.materialize import SIZES

    n_layer, n_embd, n_head = SIZES[size]
    with torch.device("meta"):
        return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(device: str, size: str) -> None:
    import initwise.torch as it
    from initwise import kernels

    plan = it.plan(_model(size), "gpt2")
    drawn = [e for e in plan if e.scheme is not None]
    fills = sum(e.chunks for e in drawn)
    it.materialize(_model(size), plan, seed=0, device=device)  # warm: compile, self-check
    _sync(device)
    kernel = kernels.device_kernel(device, "normal") if device != "cpu" else "host kernels"

    model = _model(size)
    t = time.perf_counter()
    it.materialize(model, plan, seed=0, device=device)
    _sync(device)
    wall = time.perf_counter() - t
    n = sum(p.numel() for p in model.parameters())
    print(
        f"materialize GPT-2 {size} → {device} ({kernel}): {wall:.3f} s, {len(drawn)} drawn "
        f"parameters ({fills} fills), {n / 1e6:.0f} M values; {wall / fills * 1e6:.0f} µs a fill"
    )
    del model

    prof = cProfile.Profile()
    model = _model(size)
    prof.enable()
    it.materialize(model, plan, seed=0, device=device)
    _sync(device)
    prof.disable()
    del model
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    print(buf.getvalue())

    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    model = _model(size)
    with torch.profiler.profile(activities=acts) as tp:
        it.materialize(model, plan, seed=0, device=device)
        _sync(device)
    events = tp.key_averages()
    dev_us = sum(getattr(e, "self_device_time_total", 0.0) for e in events)
    print(f"device kernels' own time in all: {dev_us / 1e3:.1f} ms (0 on cpu)")
    sort = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=20))


if __name__ == "__main__":
    dev = sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu")
    main(dev, sys.argv[2] if len(sys.argv) > 2 else ("xl" if dev != "cpu" else "ci"))
