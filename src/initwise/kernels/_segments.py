"""How a fill of flat segments maps onto Philox groups — shared by the NumPy reference and the
torch kernel (the Numba kernel has the same loop compiled)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def chunks(
    starts: np.ndarray, lens: np.ndarray, group: int, chunk: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """``(g, m, lo, hi, pos)`` for each run of at most ``chunk`` groups covering the segments
    ``[starts[i], starts[i] + lens[i])``: groups ``g … g + m − 1`` are generated, and values
    ``[lo, hi)`` of their ``m · group`` values go to the output at ``pos``."""
    pos = 0
    for a, n in zip(starts.tolist(), lens.tolist(), strict=True):
        if n <= 0:
            continue
        g, gend = a // group, (a + n - 1) // group + 1
        while g < gend:
            m = min(chunk, gend - g)
            lo = max(a, g * group) - g * group
            hi = min(a + n, (g + m) * group) - g * group
            yield g, m, lo, hi, pos
            pos += hi - lo
            g += m
