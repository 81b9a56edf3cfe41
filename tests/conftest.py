"""Shared test helpers: statistical checks with fixed seeds and sensible power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

P_MIN = 1e-4  # torch's test_init.py threshold


def ks_p(sample: np.ndarray, dist: stats.rv_continuous) -> float:
    """Kolmogorov–Smirnov p-value of ``sample`` against the frozen ``dist``."""
    return float(stats.kstest(np.asarray(sample, dtype=np.float64).ravel(), dist.cdf).pvalue)


@pytest.fixture
def ks():
    return ks_p


def pytest_sessionstart(session: pytest.Session) -> None:
    """Policies registered by their module's import (``lsuv``, ``tat``, ``dks``: loaded at first
    use) are loaded once here, so a test that snapshots and restores the policy registry keeps
    them (their modules are not imported a second time to register them again)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    from initwise.torch import policies as P

    for name in P._LAZY:
        P.get_policy(name)
