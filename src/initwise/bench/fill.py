"""Fill throughput: initwise's reproducible streams vs ``torch.nn.init`` at the same thread count,
with ``Tensor.fill_`` (pure memory writes) printed as the ceiling.

On the CPU (default) the compiled host kernel is measured, with the NumPy reference and the torch
kernel (the device path, eager torch ops on the CPU) beside it — all three give the same values.
With ``device="cuda"`` the torch kernel draws on the GPU (fused by ``torch.compile`` when it
passes its bit-for-bit check), against torch's own GPU generator and ``fill_``'s bandwidth, and
the GPU's values are compared with the CPU's."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

from . import print_table, timeit, timeit_side_by_side


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


#: timed calls per measurement on a GPU: one 64 Mi fill takes 0.1–0.6 ms there, so three calls
#: (the CPU's default) gave medians 2× apart between runs on the H200
GPU_REPEAT = 25


def _timed(fn: Any, device: str, repeat: int) -> float:
    """Median wall time of ``fn()`` followed by a device synchronization (at least
    :data:`GPU_REPEAT` calls on a GPU)."""

    def call() -> None:
        fn()
        _sync(device)

    if device != "cpu":
        repeat = max(repeat, GPU_REPEAT)
    return timeit(call, repeat)


def run(
    numel: int = 1 << 26,
    repeat: int = 3,
    threads: int | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    from .. import kernels, sampling
    from .. import schemes as S

    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise ValueError(
            f"bench fill --device {device}: no such device here (CUDA available: "
            f"{torch.cuda.is_available()})"
        )
    backend = kernels.warm()
    n_threads = threads or torch.get_num_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    rows = []
    try:
        t = torch.empty(numel, device=device)
        g = torch.Generator(device=device).manual_seed(0)
        ceiling = numel / _timed(lambda: t.fill_(1.0), device, repeat) / 1e6
        cases = [
            (
                "uniform",
                lambda: torch.nn.init.uniform_(t, -1, 1, generator=g),
                S.uniform(-1, 1),
                "uniform",
            ),
            (
                "normal",
                lambda: torch.nn.init.normal_(t, 0, 0.02, generator=g),
                S.normal(0, 0.02),
                "normal",
            ),
            (
                "trunc_normal ±2σ",
                lambda: torch.nn.init.trunc_normal_(t, 0, 0.02, -0.04, 0.04, generator=g),
                S.trunc_normal(0, 0.02, -0.04, 0.04),
                "trunc",  # the stream kernel's kind
            ),
        ]
        for name, peer, scheme, kind in cases:

            def on_device(scheme: Any = scheme) -> None:
                sampling.sample_tensor(scheme, (numel,), seed=0, name="bench", device=device, out=t)

            def on_host(scheme: Any = scheme) -> None:
                sampling.sample(
                    scheme, (numel,), seed=0, name="bench", threads=n_threads, out=t.numpy()
                )

            if device == "cpu":  # side by side, in turns: the ratio survives a drifting host
                t_peer, t_ours = timeit_side_by_side([peer, on_host], repeat)
            else:
                t_peer = _timed(peer, device, repeat)
            tp = numel / t_peer / 1e6
            row: dict[str, Any] = {
                "dist": name,
                "torch_melem_s": tp,
                "ceiling_melem_s": ceiling,
                "kernel": backend,
                "device": device,
            }
            if device == "cpu":
                row["initwise_melem_s"] = numel / t_ours / 1e6
                old_env = os.environ.get("INITWISE_KERNEL")
                os.environ["INITWISE_KERNEL"] = "numpy"
                try:
                    row["numpy_ref_melem_s"] = numel / timeit(on_host, 1) / 1e6
                finally:
                    if old_env is None:
                        del os.environ["INITWISE_KERNEL"]
                    else:
                        os.environ["INITWISE_KERNEL"] = old_env
                row["torch_ops_melem_s"] = numel / timeit(on_device, 1, warmup=0) / 1e6
            else:
                on_device()  # first call: compile (once per process) and self-check
                row["device_kernel"] = kernels.device_kernel(device, kind)
                row["initwise_melem_s"] = numel / _timed(on_device, device, repeat) / 1e6
                on_device()
                gpu = hashlib.sha256(t.cpu().numpy().tobytes()).hexdigest()
                host = sampling.sample(scheme, (numel,), seed=0, name="bench", threads=n_threads)
                row["same_bits_as_cpu"] = gpu == hashlib.sha256(host.tobytes()).hexdigest()
            row["ratio"] = row["initwise_melem_s"] / tp
            row["of_fill"] = row["initwise_melem_s"] / ceiling
            rows.append(row)
    finally:
        torch.set_num_threads(old)
    _print(rows, numel, n_threads, backend, device)
    return rows


def _f(x: float) -> str:
    return "—" if x != x else f"{x:.0f}"


def _print(rows: list[dict[str, Any]], numel: int, threads: int, backend: str, device: str) -> None:
    ceiling = rows[0]["ceiling_melem_s"]
    if device == "cpu":
        title = (
            f"fill {numel / 2**20:.0f} Mi float32 elements, {threads} threads, kernel "
            f"{backend} (fill_ ceiling {ceiling:.0f} Melem/s, torch {torch.__version__})"
        )
        header = [
            "distribution",
            "torch.nn.init Melem/s",
            "initwise Melem/s",
            "initwise / torch",
            "NumPy reference Melem/s",
            "torch-ops kernel Melem/s",
        ]
        body = [
            [
                r["dist"],
                _f(r["torch_melem_s"]),
                _f(r["initwise_melem_s"]),
                f"{r['ratio']:.2f}×",
                _f(r["numpy_ref_melem_s"]),
                _f(r["torch_ops_melem_s"]),
            ]
            for r in rows
        ]
    else:
        name = torch.cuda.get_device_name(torch.device(device))
        title = (
            f"fill {numel / 2**20:.0f} Mi float32 elements on {name} (fill_ "
            f"{ceiling:.0f} Melem/s = {ceiling * 4 / 1e3:.0f} GB/s, torch {torch.__version__})"
        )
        header = [
            "distribution",
            "torch.nn.init Melem/s",
            "initwise Melem/s",
            "initwise / torch",
            "initwise / fill_",
            "same bits as CPU",
            "kernel",
        ]
        body = [
            [
                r["dist"],
                _f(r["torch_melem_s"]),
                _f(r["initwise_melem_s"]),
                f"{r['ratio']:.2f}×",
                f"{r['of_fill']:.0%}",
                str(r["same_bits_as_cpu"]),
                r["device_kernel"],
            ]
            for r in rows
        ]
    print_table(title, header, body)
