"""A concatenation's moments weigh each part by its size along the joined dimension, where the
graph tells it (the weight layer a part comes from), and a part computed from the data by an op
the walk has no rule for leaves them unknown. Before, every part counted equally."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch import graph  # noqa: E402
from initwise.torch.inspection import inspect_model  # noqa: E402


class Wide(nn.Module):
    """A 64-wide linear part beside a 2-wide sigmoid part (unequal E[x²]), then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.head = nn.Linear(32, 64), nn.Linear(32, 2), nn.Linear(66, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.a(x), torch.sigmoid(self.c(x))], -1))


class Channels(nn.Module):
    """Convolutions' outputs joined on the channel dimension: 8 linear channels, 40 small tanh
    ones (1×1 kernels: no map edges)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(32, 8, 1)
        self.b = nn.Conv2d(32, 40, 1)
        self.head = nn.Conv2d(48, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.a(x), torch.tanh(self.b(x)) * 0.2], dim=1))


class Pairs(nn.Module):
    """EGNN's edge input (Satorras et al. 2021): both ends' features and their squared
    distance, ``cat([h_i, h_j, |h_i − h_j|²], -1)`` — widths 32, 32 and 1."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.edge = nn.Linear(8, 32), nn.Linear(65, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        n = h.shape[1]
        hi = h.unsqueeze(2).expand(-1, -1, n, -1)
        hj = h.unsqueeze(1).expand(-1, n, -1, -1)
        d2 = (hi - hj).pow(2).sum(-1, keepdim=True)
        return self.edge(torch.cat([hi, hj, d2], -1))


def _arrives(m: nn.Module, layer: nn.Module, x: torch.Tensor) -> float:
    seen: list[float] = []
    h = layer.register_forward_hook(lambda _m, a, _o: seen.append(float(a[0].pow(2).mean())))
    with torch.no_grad():
        m(x)
    h.remove()
    return seen[0]


def _planned(reason: str) -> float:
    return float(reason.split("input E[x²] ")[1].split(",")[0].split(" ")[0])


@pytest.mark.parametrize(
    ("net", "x", "head"),
    [
        (Wide, lambda g: torch.randn(512, 32, generator=g), "head"),
        (Channels, lambda g: torch.randn(16, 32, 8, 8, generator=g), "head"),
    ],
)
def test_parts_count_by_their_width(net, x, head) -> None:
    # before: Wide's head solved for E[x²] ≈ 0.65 where ≈ 0.98 arrives (arriving / planned
    # 1.47–1.53 over three seeds); Channels' for the average of 8 unit channels and 40 small
    # ones taken equally (0.32–0.35)
    batch = x(torch.Generator().manual_seed(0))
    ratios = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = net()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the edges of a padded map: not what is tested)
            plan = it.plan(m)
        planned = _planned(plan[f"{head}.weight"].reason)
        plan.apply(m, seed=seed)
        ratios.append(_arrives(m, getattr(m, head), batch) / planned)
    assert all(0.8 <= r <= 1.2 for r in ratios), ratios


def test_a_pairwise_edge_input_counts_the_distance_as_one_column() -> None:
    # before: the three parts averaged equally, the squared distance's E[x²] (≈ 5,000) taking a
    # third of the mean: the edge layer solved for ~17× what arrives (0.06 of it). What is left
    # (≈ 1.3×) is the distance's fourth moment: an 8-dimensional input's rows differ in scale,
    # which the Gaussian rule for the square does not see
    batch = torch.randn(8, 20, 8, generator=torch.Generator().manual_seed(0))
    ratios = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = Pairs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the sum over the coordinates: said, unmeasured)
            plan = it.plan(m, example_input=batch)
        plan.apply(m, seed=seed)
        ratios.append(_arrives(m, m.edge, batch) / _planned(plan["edge.weight"].reason))
    assert all(0.7 <= r <= 1.5 for r in ratios), ratios


def test_part_width_reads_sizes_only_where_the_graph_tells_them() -> None:
    m = Pairs()
    info = inspect_model(m)
    g = info.graph
    modules = dict(m.named_modules())
    cat = next(n for n in g.nodes if n.op == "function" and n.target == "cat")
    widths = [graph.part_width(g.nodes, modules, info.kinds, i, -1) for i in cat.inputs]
    assert widths == [32, 32, 1]
    # along another dimension, or from the input itself: unknown
    assert graph.part_width(g.nodes, modules, info.kinds, cat.inputs[0], 1) is None
    first = next(n for n in g.nodes if n.op == "input")
    assert graph.part_width(g.nodes, modules, info.kinds, first.idx, -1) is None


class NormAppended(nn.Module):
    """A hidden vector with its norm appended as one more feature, ``cat([h, ‖h‖], -1)``."""

    def __init__(self, linalg: bool = False) -> None:
        super().__init__()
        self.e, self.o = nn.Linear(16, 64), nn.Linear(65, 8)
        self.linalg = linalg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.e(x))
        if self.linalg:
            return self.o(torch.cat([h, torch.linalg.vector_norm(h, 2, -1, keepdim=True)], -1))
        return self.o(torch.cat([h, h.norm(dim=-1, keepdim=True)], -1))


@pytest.mark.parametrize("linalg", [False, True])
def test_a_vector_norm_as_a_feature_counts_its_width(linalg: bool) -> None:
    # before: ‖h‖ passed h's moments on (E[x²] 1 where 64 arrives) and the concatenation took
    # E[x²] 1 for all of it where ≈ 1.97 arrives
    batch = torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    ratios = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = NormAppended(linalg)
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=it.AssumptionWarning)
            plan = it.plan(m)
        plan.apply(m, seed=seed)
        ratios.append(_arrives(m, m.o, batch) / _planned(plan["o.weight"].reason))
    assert all(0.85 <= r <= 1.15 for r in ratios), ratios
