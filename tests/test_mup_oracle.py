"""μP and u-μP against the reference package ``mup`` 1.0.0 (microsoft/mup; dev requirement,
installed without its dependencies). mup puts the readout's 1/m into the forward pass
(``MuReadout``) and initializes the readout at ``√m`` × torch's scale, initwise puts it into
the readout's init and learning rate (MuP) or into a forward multiplier on a unit-scale weight
(u-μP): the comparison is of what the optimizer does to the *effective* weight ``A·W`` — its
learning rate (Adam: ``A × LR``, SGD: ``A² × LR``) and its initial scale — as the width grows."""

import math

import pytest

torch = pytest.importorskip("torch")
mup = pytest.importorskip("mup")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch.multipliers import installed  # noqa: E402

NAMES = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")


def net(width: int, readout: type = nn.Linear) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(32, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), readout(width, 10)
    )


def _mup_effective(width: int, base: int, optimizer: str) -> dict[str, float]:
    """Per parameter: the learning rate mup's optimizer gives it (lr 1), times the readout's
    forward factor 1/m (once for Adam, squared for SGD)."""
    model = net(width, mup.MuReadout)
    mup.set_base_shapes(model, net(base, mup.MuReadout), delta=net(2 * base, mup.MuReadout))
    make = mup.MuAdam if optimizer == "adam" else mup.MuSGD
    opt = make(model.parameters(), lr=1.0)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    m = width / base
    out = {}
    for name, p in model.named_parameters():
        a = 1 / m if name == "4.weight" else 1.0
        out[name] = lr[id(p)] * (a if optimizer == "adam" else a * a)
    return out


def _ours_effective(width: int, policy: object, optimizer: str) -> dict[str, float]:
    model = net(width)
    p = it.init_model(model, policy, seed=0)
    mults = installed(model)
    out = {}
    for e in p:
        a = mults.get(e.name.rpartition(".")[0], 1.0) if e.name.endswith("weight") else 1.0
        c = dict(e.lr_mult)[optimizer]
        out[e.name] = c * (a if optimizer == "adam" else a * a)
    return out


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mup_learning_rates_equal_the_mup_package(optimizer):
    base = 64
    for width in (64, 256, 1024):
        ref = _mup_effective(width, base, optimizer)
        ours = _ours_effective(width, it.MuP(base_width=base), optimizer)
        assert ours == pytest.approx(ref, rel=1e-12), (width, ours, ref)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_u_mup_scales_learning_rates_with_width_as_mup_does(optimizer):
    """u-μP has no base width: its absolute multipliers differ from mup's by a constant per
    parameter, but how each changes with the width must be mup's (the embedding rule, the one
    deliberate difference, is not in an MLP)."""
    base = 64
    ref0, ours0 = _mup_effective(base, base, optimizer), _ours_effective(base, "u-mup", optimizer)
    for width in (256, 1024):
        ref, ours = (
            _mup_effective(width, base, optimizer),
            _ours_effective(width, "u-mup", optimizer),
        )
        for n in NAMES:
            assert ours[n] / ours0[n] == pytest.approx(ref[n] / ref0[n], rel=1e-9), n


def test_readout_init_scales_like_mup():
    """The effective readout weight's std falls as 1/width in mup, MuP and u-μP."""
    base = 64

    def mup_std(width: int) -> float:
        torch.manual_seed(0)
        model = net(width, mup.MuReadout)
        mup.set_base_shapes(model, net(base, mup.MuReadout), delta=net(2 * base, mup.MuReadout))
        return float(model[4].weight.detach().std()) / (width / base)

    def ours_std(width: int, policy: object) -> float:
        model = net(width)
        it.init_model(model, policy, seed=0)
        return float(model[4].weight.detach().std()) * installed(model).get("4", 1.0)

    for policy in (it.MuP(base_width=base), "u-mup"):
        ratio = ours_std(1024, policy) / ours_std(base, policy)
        assert ratio == pytest.approx(mup_std(1024) / mup_std(base), rel=0.05)
        assert ratio == pytest.approx(1 / 16, rel=0.05)
    assert math.isfinite(mup_std(256))


class _TiedLM(nn.Module):
    """An embedding, a hidden layer and a read-out sharing the embedding's table: mup's
    ``MuSharedReadout`` or (``readout=None``) an ``nn.Linear`` whose weight is the table."""

    def __init__(self, width: int, shared: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, width)
        self.l1 = nn.Linear(width, width)
        if shared:
            self.head = mup.MuSharedReadout(self.emb.weight, bias=False)
        else:
            self.head = nn.Linear(width, 40, bias=False)
            self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.l1(self.emb(x))))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mup_tied_readout_equals_mups_shared_readout(optimizer):
    """A tied table: per parameter the same learning rate as mup's MuAdam/MuSGD gives (lr 1),
    and the read-out's forward factor ``1/m`` on the read-out's call alone — mup's
    ``MuSharedReadout`` multiplies its input by ``output_mult / width_mult``."""
    base = 64
    for width in (64, 256, 1024):
        model = _TiedLM(width, shared=True)
        mup.set_base_shapes(model, _TiedLM(base, shared=True), delta=_TiedLM(2 * base, shared=True))
        make = mup.MuAdam if optimizer == "adam" else mup.MuSGD
        opt = make(model.parameters(), lr=1.0)
        lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
        ref = {n: lr[id(p)] for n, p in model.named_parameters()}
        ref_mult = 1.0 / model.head.width_mult()
        ours_model = _TiedLM(width, shared=False)
        p = it.init_model(ours_model, it.MuP(base_width=base), seed=0)
        ours = {e.name: dict(e.lr_mult)[optimizer] for e in p}
        assert ours == pytest.approx(ref, rel=1e-12), (width, ours, ref)
        assert installed(ours_model) == ({"head": pytest.approx(ref_mult)} if width > base else {})
