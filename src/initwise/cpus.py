"""How many CPUs a fill can use now: the ones this process may run on, less those other processes
keep busy at this moment.

A fill split over threads waits for its slowest thread. On a machine whose cores are all busy
with other processes, a thread waits a scheduler slice (milliseconds) before it runs at all, so
a split fill — and torch's intra-op split of the ``copy_`` that writes it — takes far longer than
one thread would: measured on a 2-core VM beside two CPU-bound processes (old and new code
alternating in one process, 40 rounds, medians), ``apply`` of a 30×256 MLP took 243 ms split
over both cores against 18.8 ms on one thread (``torch.nn.init`` 8.6 ms); a 784-256-256-10 MLP
20.7 ms against 1.8 ms (``torch.nn.init`` 1.5 ms).

* :func:`allowed`: the CPU affinity mask (``os.sched_getaffinity``) capped by a container's CPU
  quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), read once; where
  neither is readable, ``os.cpu_count()``.
* :func:`busy_elsewhere`: tasks runnable now (``/proc/loadavg``'s fourth field, which counts every
  running or runnable thread of the machine) less this process's own running threads (its
  ``/proc/self/task/*/stat`` states: an OpenMP pool spins for a while after each parallel
  region, and those are not other work). Linux only; 0 elsewhere. Read at most every
  :data:`REFRESH_S` seconds (each read is ~20 µs per thread of this process).
* :func:`free`: the allowed CPUs, or fewer where the machine's idle ones are fewer:
  ``max(1, min(allowed(), cpu_count − busy_elsewhere()))``. The runnable count is the whole
  machine's (a container sees its host's), so it is set against the machine's CPU count, not the
  allowed ones: a container held to 4 CPUs on a 64-CPU host with 60 busy threads still gets its
  4 (and one pinned to 4 CPUs whose other threads all run there is not told it is busy — the
  kernel does not say cheaply which CPU a task waits for).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time

REFRESH_S = 0.1
"""Seconds a :func:`busy_elsewhere` reading is reused (one ``apply`` asks once per parameter)."""

_CGROUP_V2 = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1 = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def quota(v2: str = _CGROUP_V2, v1: tuple[str, str] = _CGROUP_V1) -> int | None:
    """The CPUs a container's quota allows (rounded up), or None where there is none."""
    text = _read(v2)
    if text is not None:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                q, p = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None
        return None
    q_text, p_text = _read(v1[0]), _read(v1[1])
    try:
        q, p = int(q_text or ""), int(p_text or "")
    except ValueError:
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


@functools.cache
def allowed() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container quota (read once)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # (macOS, Windows)
        n = os.cpu_count() or 1
    q = quota()
    return max(1, min(n, q) if q is not None else n)


def _runnable(path: str = "/proc/loadavg") -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.split()[3].split("/")[0])
    except (IndexError, ValueError):
        return None


def _own_running(task_dir: str = "/proc/self/task") -> int:
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return 1
    n = 0
    for tid in tids:
        try:
            with open(f"{task_dir}/{tid}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue  # (a thread that ended meanwhile)
        end = s.rfind(b")")  # (the name, in parentheses, may hold spaces)
        if end >= 0 and s[end + 2 : end + 3] == b"R":
            n += 1
    return max(1, n)  # (the asking thread runs)


_lock = threading.Lock()
_last: list[float] = [-math.inf, 0.0]  # [monotonic time of the reading, busy count]


def busy_elsewhere() -> int:
    """Threads of other processes running or waiting to run now (0 where not readable)."""
    now = time.monotonic()
    with _lock:
        if now - _last[0] < REFRESH_S:
            return int(_last[1])
    r = _runnable()
    busy = 0 if r is None else max(0, r - _own_running())
    with _lock:
        _last[0], _last[1] = now, float(busy)
    return busy


@functools.cache
def online() -> int:
    """The machine's CPUs (``os.cpu_count()``, read once: it reads ``/sys`` on every call)."""
    return max(1, os.cpu_count() or 1)


def free() -> int:
    """CPUs a fill can use now: :func:`allowed`, or the machine's idle ones if fewer; ≥ 1."""
    return max(1, min(allowed(), online() - busy_elsewhere()))
