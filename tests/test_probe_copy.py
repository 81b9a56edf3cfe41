"""The plan's numeric probes call copies of the model's own modules, never the modules: one that
counts its calls or keeps what it saw is left as it was (only torch.fx's own trace runs a
module's forward once, with proxies, where fx traces into it)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initwise.torch import plan  # noqa: E402
from initwise.torch.modules import probe_copy  # noqa: E402


class _Swish(nn.Module):
    """A parameter-free activation of the model's own that keeps state (a leaf to the trace)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(tuple(x.shape))
        return x * torch.sigmoid(1.5 * x)


class _Snake(nn.Module):
    """BigVGAN's Snake (a learned α per channel) that counts its calls."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(c))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + torch.sin(self.alpha * x) ** 2 / self.alpha


class _RMS(nn.Module):
    """An RMS norm written by hand that counts its calls."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def test_a_parameter_free_activation_is_probed_on_a_copy():
    # it was called 6 times per plan (the probe and its table), each call seen by the module
    acts = [_Swish() for _ in range(3)]
    m = nn.Sequential(
        nn.Linear(16, 32), acts[0], nn.Linear(32, 32), acts[1], nn.Linear(32, 32), acts[2]
    )
    p = plan(m, "auto")
    assert "_Swish" in p["2.weight"].reason  # still found, and solved for
    assert [a.calls for a in acts] == [0, 0, 0] and all(not a.seen for a in acts)


def test_modules_with_parameters_are_probed_on_a_copy():
    # Snake: 13 calls per plan before (12 of them the probe and its table); the norm: 3+
    snakes = [_Snake(32) for _ in range(2)]
    norms = [_RMS(32) for _ in range(2)]
    m = nn.Sequential(
        nn.Linear(16, 32), norms[0], snakes[0], nn.Linear(32, 32), norms[1], snakes[1]
    )
    p = plan(m, "auto")
    assert "Snake" in p["3.weight"].reason
    assert all(s.calls <= 1 for s in snakes + norms), [s.calls for s in snakes + norms]


def test_probe_copy_shares_parameters_and_copies_state():
    s = _Snake(4)
    s.seen = [1]
    c = probe_copy(s)
    assert c is not None and c is not s
    assert c.alpha is s.alpha  # (a large weight is not copied)
    assert c.seen == [1] and c.seen is not s.seen


def test_a_module_that_cannot_be_copied_is_not_called():
    class Locked(_Swish):
        def __deepcopy__(self, memo: dict) -> None:
            raise TypeError("no copies")

    acts = [Locked(), Locked()]
    m = nn.Sequential(nn.Linear(16, 32), acts[0], nn.Linear(32, 32), acts[1], nn.Linear(32, 8))
    plan(m, "auto")  # (taken as it was before: an opaque module, passing its moments)
    assert [a.calls for a in acts] == [0, 0]
