"""Distances and cosine similarities between points whose dimension is the width of the layer
they come from: ``cdist`` (a prototype network), ``pairwise_distance`` and
``cosine_similarity`` of one encoder's two outputs (a Siamese metric head). Before: ``cdist``
was taken for points of one coordinate (said), the paired ones had no rule (the head's input
assumed at E[x²] 1, said), and with an example input a model whose only pool was a ``cdist``
was never measured."""

from __future__ import annotations

import statistics
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


def _enc() -> nn.Sequential:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64))


class Prototypes(nn.Module):
    """Snell et al. 2017's head: negative distances to class prototypes, then a read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = _enc()
        self.protos = nn.Parameter(torch.randn(10, 64))
        self.out = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(-torch.cdist(self.enc(x), self.protos))


class Paired(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.enc = _enc()
        self.out = nn.Linear(1, 64)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        u, v = self.enc(a), self.enc(b)
        s = F.cosine_similarity(u, v) if self.how == "cosine" else F.pairwise_distance(u, v)
        return self.out(s.unsqueeze(-1))


def _inputs(seed: int, two: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(512, 32, generator=g) for _ in range(2 if two else 1))


def _median_rms(make, two: bool, example: bool) -> float:
    outs = []
    for seed in range(5):
        torch.manual_seed(seed)
        m = make()
        xs = _inputs(10 + seed, two)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # (the prototypes: no rule, said)
            p = it.plan(m, example_input=xs if example else None)
        p.apply(m, seed=seed)
        with torch.no_grad():
            outs.append(float(m(*xs).pow(2).mean().sqrt()))
    return statistics.median(outs)


@pytest.mark.parametrize("example", [False, True])
def test_prototype_distances_are_in_their_dimension(example: bool) -> None:
    # before: 8.7 either way (E[d²] taken as 2 where 128 arrives)
    assert 0.75 <= _median_rms(Prototypes, False, example) <= 1.3


def test_prototype_distances_are_not_assumed_where_the_width_is_known() -> None:
    torch.manual_seed(0)
    with pytest.warns(UserWarning) as rec:
        it.plan(Prototypes())
    text = " ".join(str(r.message) for r in rec)
    assert "protos" in text  # (its own values, no rule: said)
    assert "pairwise distances" not in text


@pytest.mark.parametrize("how", ["cosine", "distance"])
@pytest.mark.parametrize("example", [False, True])
def test_paired_metric_heads(how: str, example: bool) -> None:
    # before: cosine 0.40, distance 9.5 (no rule: the head solved for E[x²] 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (nothing assumed)
        rms = _median_rms(lambda: Paired(how), True, example)
    assert 0.75 <= rms <= 1.33


class SimilarityLogits(nn.Module):
    """SimCLR's logits: cosine similarities of two views' projections over a temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = _enc()
        self.proj = nn.Sequential(nn.ReLU(), nn.Linear(64, 32))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za = F.normalize(self.proj(self.enc(a)), dim=-1)
        zb = F.normalize(self.proj(self.enc(b)), dim=-1)
        return za @ zb.t() / 0.1


def test_a_similarity_matrix_of_normalized_projections_has_its_scale() -> None:
    # before: the matrix product of the normalized projections had no moments and the logits'
    # scale (rms ~5 from τ = 0.1: the two views' projections are correlated through the one
    # encoder, ~0.5) went unsaid; now predicted (E[y²] 28 where ~26 is measured) and said
    from initwise.plan import SignalWarning

    torch.manual_seed(0)
    m = SimilarityLogits()
    with pytest.warns(SignalWarning, match="puts the model's output at E") as rec:
        plan = it.plan(m)
    text = str(next(r.message for r in rec if issubclass(r.category, SignalWarning)))
    predicted = float(text.split("output at E[y²] ")[1].split(" ")[0])
    plan.apply(m, seed=0)
    with torch.no_grad():
        measured = float(m(*_inputs(3, True)).pow(2).mean())
    assert predicted == pytest.approx(measured, rel=0.35)


class ScoreHead(nn.Module):
    """A dot-product score of two projections, then a layer on the score."""

    def __init__(self) -> None:
        super().__init__()
        self.e, self.q, self.out = nn.Linear(32, 64), nn.Linear(32, 64), nn.Linear(1, 64)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.out((torch.relu(self.e(x)) * self.q(y)).sum(-1, keepdim=True))


def test_a_sum_over_the_features_counts_them() -> None:
    # before: taken to leave E[x²] unchanged and said — the layer on the score solved for 1 where
    # 64 arrives (output rms 8.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rms = _median_rms(ScoreHead, True, False)
    assert 0.75 <= rms <= 1.33
