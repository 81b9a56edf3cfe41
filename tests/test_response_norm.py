"""Parameter-free modules that are neither the identity nor an activation: local response
normalization divides by ``(k + α·E[x²])^β``; a softmin or a 2-D softmax gives weights without
moments of their own, like a softmax."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from initwise.plan import AssumptionWarning  # noqa: E402
from initwise.torch import plan  # noqa: E402


class _Between(nn.Module):
    def __init__(self, mid: nn.Module | None, conv: bool = True, fn: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        make = (lambda: nn.Conv2d(16, 16, 3, padding=1)) if conv else (lambda: nn.Linear(64, 64))
        self.a, self.mid, self.b, self.fn = make(), mid, make(), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = F.local_response_norm(h, 5, alpha=1e-4, beta=0.75, k=2.0) if self.fn else self.mid(h)
        return self.b(h)


def _rms(m: nn.Module, conv: bool = True) -> float:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 16, 16, 16, generator=g) if conv else torch.randn(256, 64, generator=g)
    with torch.no_grad():
        return float(m(x).pow(2).mean().sqrt())


@pytest.mark.parametrize(
    "make",
    [
        lambda: _Between(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)),  # AlexNet's
        lambda: _Between(nn.CrossMapLRN2d(5, alpha=1e-4, beta=0.75, k=2.0)),
        lambda: _Between(None, fn=True),
    ],
    ids=["LocalResponseNorm", "CrossMapLRN2d", "F.local_response_norm"],
)
def test_local_response_normalization_divides_the_second_moment(make):
    # k = 2, β = 0.75: E[x²] / 2^1.5 = 0.354; as a norm (LocalResponseNorm) or the identity
    # (the others) the output came out at rms 0.54
    m = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = plan(m, "auto")
    assert "input E[x²] 0.354" in p["b.weight"].reason
    p.apply(m, seed=0)
    assert 0.8 < _rms(m) < 1.25


@pytest.mark.parametrize(
    "mid, conv", [(nn.Softmin(-1), False), (nn.Softmax2d(), True)], ids=["Softmin", "Softmax2d"]
)
def test_a_softmin_or_2d_softmax_is_said_like_a_softmax(mid, conv):
    # passed as the identity before, unsaid: the layer after it at rms 0.02–0.08
    with pytest.warns(AssumptionWarning, match="b: input moments unknown"):
        plan(_Between(mid, conv=conv), "auto")
    with pytest.raises(ValueError, match="input moments unknown"):
        plan(_Between(mid, conv=conv), "auto", strict=True)
