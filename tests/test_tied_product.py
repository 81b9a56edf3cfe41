"""A product with a weight its layer also uses — a tied autoencoder's decoder,
``F.linear(z, enc.weight.t(), b)`` or ``z @ enc.weight`` — has the moments the layer's solve gives
that weight: ``E[y²] = n·E[w²]·E[z²]``. Before, no rule: its output had no moments, and a layer
after it was solved for an assumed unit input."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


class TiedAE(nn.Module):
    """A 256 → 64 sigmoid autoencoder whose decoder is the encoder's weight, transposed, and a
    ReLU head reading the reconstruction (``how``: ``linear`` or ``matmul``)."""

    def __init__(self, how: str = "linear") -> None:
        super().__init__()
        self.how = how
        self.enc = nn.Linear(256, 64)
        self.b = nn.Parameter(torch.zeros(256))
        self.head = nn.Linear(256, 256)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.how == "linear":
            return F.linear(z, self.enc.weight.t(), self.b)
        return z @ self.enc.weight + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.decode(torch.sigmoid(self.enc(x)))))


@pytest.mark.parametrize("how", ["linear", "matmul"])
def test_the_tied_decoder_has_the_moments_its_weight_gives(how: str) -> None:
    torch.manual_seed(0)
    m = TiedAE(how)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (nothing assumed: the decoder's output is known)
        plan = it.plan(m)
    reason = plan["enc.weight"].reason
    assert f"its weight also used in `{how}`" in reason
    predicted = float(reason.split("E[y²] ")[1].split(" ")[0])
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    rec, outs = [], []
    for seed in range(3):
        plan.apply(m, seed=seed)
        with torch.no_grad():
            rec.append(float(m.decode(torch.sigmoid(m.enc(x))).pow(2).mean()))
            outs.append(float(m(x).pow(2).mean().sqrt()))
    assert predicted == pytest.approx(sum(rec) / 3, rel=0.2)
    # the head is solved for what the decoder gives (before: for an assumed E[x²] of 1 — its
    # output at rms ~0.2)
    assert 0.8 <= sum(outs) / 3 <= 1.25, outs
