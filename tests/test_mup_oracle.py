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


def _mup_lrs(build, width: int, base: int, optimizer: str, readout: str) -> dict[str, float]:
    """Per parameter: the learning rate mup's optimizer gives it (lr 1) in ``build(width,
    mup.MuReadout)`` against the base width, times the read-out's forward factor 1/m (once for
    Adam, squared for SGD)."""
    model = build(width, mup.MuReadout)
    mup.set_base_shapes(model, build(base, mup.MuReadout), delta=build(2 * base, mup.MuReadout))
    make = mup.MuAdam if optimizer == "adam" else mup.MuSGD
    opt = make(model.parameters(), lr=1.0)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    a, k = base / width, 1 if optimizer == "adam" else 2
    return {n: lr[id(p)] * (a**k if n == readout else 1.0) for n, p in model.named_parameters()}


def _mup_effective(width: int, base: int, optimizer: str) -> dict[str, float]:
    return _mup_lrs(net, width, base, optimizer, "4.weight")


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


def _cnn(width: int, readout: type = nn.Linear) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width),  # depthwise: one width dimension
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=4),  # a fixed number of groups
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        readout(width, 10),
    )


class _FFN(nn.Module):
    """An embedding, a 4·d feed-forward block with a residual sum and norms, a read-out: the
    dimensions that grow with the width are d and 4·d."""

    def __init__(self, width: int, readout: type = nn.Linear) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, width)
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.head = readout(width, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        h = h + self.down(torch.nn.functional.gelu(self.up(self.ln1(h))))
        return self.head(self.ln2(h))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("case", ["cnn", "feed-forward"])
def test_mup_learning_rates_equal_the_mup_package_beyond_the_mlp(case, optimizer):
    """One ratio m for every dimension that grows, as mup's base shapes give it. The CNN: the
    width is the channel count, not the fans (which count the kernel's taps: a 3×3
    convolution's multipliers were 9× off, at the base width too), and a depthwise convolution
    has one width dimension (vector-like: its Adam LR was ×7.1 at every width). The
    feed-forward model: the 4·d layer's m is d/d_base (it was 4·d/base_width: Adam LR ×¼ of
    auto's at the base width)."""
    build, base, readout = {
        "cnn": (_cnn, 16, "10.weight"),
        "feed-forward": (_FFN, 32, "head.weight"),
    }[case]
    for width in (base, 4 * base, 16 * base):
        ref = _mup_lrs(build, width, base, optimizer, readout)
        p = it.plan(build(width), it.MuP(base_width=base))
        ours = {e.name: dict(e.lr_mult)[optimizer] for e in p}
        assert ours == pytest.approx(ref, rel=1e-12), (width, ours, ref)
        assert any(f"model's width {width} (" in n for n in p.notes)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_weight_decay_per_step_equals_mups(optimizer):
    """mup scales each group's weight decay against its learning rate (``MuAdamW``: ``wd × m``
    where ``lr / m``; ``MuSGD``: ``wd / k`` where ``lr × k``), so the decay a step applies,
    ``lr · wd``, is the same for every parameter. ``param_groups`` does the same by default
    (before 2026-12-05 it passed ``weight_decay`` unchanged: a hidden layer's decay per step
    fell as 1/m); ``decay="coupled"`` keeps that."""
    base, wd = 32, 0.1
    for width in (32, 128, 512):
        model = _FFN(width, mup.MuReadout)
        mup.set_base_shapes(model, _FFN(base, mup.MuReadout), delta=_FFN(2 * base, mup.MuReadout))
        make = mup.MuAdamW if optimizer == "adam" else mup.MuSGD
        opt = make(model.parameters(), lr=1.0, weight_decay=wd)
        ref = {id(p): g["lr"] * g["weight_decay"] for g in opt.param_groups for p in g["params"]}
        ref = {n: ref[id(p)] for n, p in model.named_parameters()}
        ours_model = _FFN(width)
        plan = it.plan(ours_model, it.MuP(base_width=base))
        groups = plan.param_groups(ours_model, lr=1.0, optimizer=optimizer, weight_decay=wd)
        by_id = {id(p): g["lr"] * g["weight_decay"] for g in groups for p in g["params"]}
        ours = {n: by_id[id(p)] for n, p in ours_model.named_parameters()}
        assert ours == pytest.approx(ref, rel=1e-12), (width, ours, ref)
        assert all(v == pytest.approx(wd) for v in ours.values())
        coupled = plan.param_groups(ours_model, lr=1.0, optimizer=optimizer, weight_decay=wd,
                                    decay="coupled")  # fmt: skip
        assert {g["weight_decay"] for g in coupled} == {wd}
    with pytest.raises(ValueError, match="decay must be 'independent'"):
        plan.param_groups(ours_model, lr=1.0, decay="mup")
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        plan.param_groups(ours_model, lr=1.0, weight_decay=-1)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_u_mup_convolutions_scale_with_width_as_mup_does(optimizer):
    """u-μP on the CNN: each parameter's effective learning rate changes with the width as
    mup's does — the depthwise convolution's SGD rate too (it was constant in width, mup's
    grows with it: one width dimension)."""
    base = 16

    def ours(width: int) -> dict[str, float]:
        model = _cnn(width)
        p = it.init_model(model, "u-mup", seed=0)
        mults = installed(model)
        k = 1 if optimizer == "adam" else 2
        return {
            e.name: dict(e.lr_mult)[optimizer]
            * (mults.get(e.name.rpartition(".")[0], 1.0) if e.name.endswith("weight") else 1.0) ** k
            for e in p
        }

    r0, o0 = _mup_lrs(_cnn, base, base, optimizer, "10.weight"), ours(base)
    r1, o1 = _mup_lrs(_cnn, 8 * base, base, optimizer, "10.weight"), ours(8 * base)
    for n in r0:
        assert o1[n] / o0[n] == pytest.approx(r1[n] / r0[n], rel=1e-9), n
