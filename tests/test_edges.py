"""Zero padding at the edges of small maps (initwise.torch.edges): measured on the example
input, and each convolution solved for what reaches its taps."""

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch.edges import edge_factor, has_edges, measured_taps  # noqa: E402


def test_the_share_that_reaches_the_taps_of_a_uniform_map():
    ones = torch.ones(2, 4, 16, 16)
    same = nn.Conv2d(4, 8, 3, padding=1)
    assert edge_factor(same, ones) == pytest.approx((46 / 48) ** 2, rel=1e-12)
    strided = nn.Conv2d(4, 8, 3, stride=2, padding=1)  # outputs 0..7 read rows 2o-1..2o+1
    assert edge_factor(strided, ones) == pytest.approx((23 / 24) ** 2, rel=1e-12)
    up = nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1)  # 4×4 -> 8×8: taps 1,2,…,2,1 of 2
    assert edge_factor(up, torch.ones(1, 4, 4, 4)) == pytest.approx((14 / 16) ** 2, rel=1e-12)
    causal = nn.Conv1d(4, 4, 3, padding=2)  # both ends padded by 2: taps 1,2,3,…,3,2,1
    assert edge_factor(causal, torch.ones(1, 4, 10)) == pytest.approx(30 / 36, rel=1e-12)
    for m in (nn.Conv2d(4, 8, 1, padding=0), nn.ConvTranspose2d(4, 8, 2, 2)):
        assert not has_edges(m) and not measured_taps(m) and edge_factor(m, ones) is None
    assert not has_edges(nn.Conv2d(4, 8, 3, padding=1, padding_mode="circular"))
    valid = nn.Conv2d(4, 8, 3)  # (no padding of its own: every tap in bounds on a uniform map)
    assert not has_edges(valid) and measured_taps(valid)
    assert edge_factor(valid, ones) == pytest.approx(1.0, rel=1e-12)


def test_a_convolution_after_zeros_padded_in_front_of_it_reads_its_share():
    """``F.pad``/``nn.ZeroPad2d`` and then a ``padding=0`` convolution is a "same" convolution
    written in two steps: its outputs read ×(22/24)² of the 8×8 map's E[x²], while the padded
    10×10 map's mean is ×0.64 of it — the share is taken against the padded map's mean."""
    padded = nn.functional.pad(torch.ones(1, 4, 8, 8), (1, 1, 1, 1))
    f = edge_factor(nn.Conv2d(4, 8, 3), padded)
    assert f == pytest.approx((22 / 24) ** 2 / 0.64, rel=1e-12)


class _PaddedInFront(nn.Module):
    """``depth`` 3×3 convolutions without padding of their own on 8×8 maps, each behind one
    pixel of zeros — ``F.pad`` in ``forward`` or an ``nn.ZeroPad2d`` module — ReLU, no norm."""

    def __init__(self, module: bool, depth: int = 6, c: int = 32) -> None:
        super().__init__()
        self.module = module
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.pads = nn.ModuleList(nn.ZeroPad2d(1) for _ in range(depth if module else 0))
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3) for _ in range(depth))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for i, conv in enumerate(self.convs):
            x = self.pads[i](x) if self.module else nn.functional.pad(x, (1, 1, 1, 1))
            x = conv(x)
            x = torch.relu(x) if i < len(self.convs) - 1 else x
        return x


@pytest.mark.parametrize("module", [False, True], ids=["F.pad", "ZeroPad2d"])
def test_zeros_padded_in_front_of_a_convolution_are_measured_with_it(module):
    """With an example input the padded map's E[x²] (×0.64 of the 8×8 map's) was measured
    for ``F.pad`` and each convolution solved for it, though its outputs read ×0.84: each
    layer gained ×1.31 and eight of them put the output at ×4.3 in rms; an ``nn.ZeroPad2d``
    module was not measured at all (×0.6). Both now measure the share that reaches the taps
    and keep the last pre-activation at E[y²] ≈ 1 (ReLU's q* 2 in between)."""
    x = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _PaddedInFront(module)
    p, ms = _quiet_draws(m, x, 6)
    assert "the border is weaker (zeros padded in front of it)" in p["convs.3.weight"].reason
    assert 0.6 < sum(ms) / len(ms) < 1.6


def _quiet_draws(m: nn.Module, x: torch.Tensor, seeds: int) -> tuple:
    """``m`` planned with its example input ``x`` (any warning an error), and the output's
    E[y²] for the plan drawn with seeds 0 … ``seeds`` − 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = it.plan(m, "auto", example_input=x)
    ms = []
    for seed in range(seeds):
        p.apply(m, seed=seed)
        with torch.no_grad():
            ms.append(float(m(x).pow(2).mean()))
    return p, ms


def test_a_fixed_mask_weights_each_tap_by_the_weights_it_keeps():
    m = nn.Conv2d(2, 2, 3, padding=1)
    mask = torch.ones_like(m.weight)
    mask[:, :, 2, :] = 0  # the bottom row of taps: reads below, never padding at the top edge
    m.register_buffer("mask", mask)
    x = torch.ones(1, 2, 6, 6)
    # rows: kept kernel rows read o-1 and o: 1 of 2 in bounds at the top row (11/12 on
    # average); columns: 2 of 3 at the left and right edges (16/18)
    assert edge_factor(m, x) == pytest.approx((11 / 12) * (16 / 18), rel=1e-12)


class _PlainCNN(nn.Module):
    """Eight 3×3 "same" convolutions on 8×8 maps, ReLU, no norm, a transposed read-out."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
        for _ in range(7):
            layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(64, 8, 4, stride=2, padding=1)

    def forward(self, x):
        return self.up(self.body(x))


def test_convolutions_on_small_maps_are_solved_for_what_reaches_their_taps():
    """On 8×8 maps a 3×3 'same' convolution's edge units sum fewer inputs: eight of them and a
    transposed convolution kept 0.56 of the output rms with the fan's count. With the example
    input the plan measures the share (×0.84 for the first, on a uniform input) and says it;
    without one the fan's count stands and the plan says what it could not know (the chain's
    loss on 8-wide maps; nothing was said before)."""
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _PlainCNN()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = it.plan(m, "auto", example_input=x)
    first = p["body.0.weight"].reason
    assert "reaches the kernel's taps: zero padding" in first
    share = float(first.split("(×")[1].split(" ")[0])
    assert share == pytest.approx((22 / 24) ** 2, abs=0.01)
    with pytest.warns(it.AssumptionWarning, match="9 zero-padded convolutions with no norm"):
        blind = it.plan(m, "auto")  # (the fan's count)
    assert "zero padding" not in blind["body.0.weight"].reason

    def rms(plan) -> float:  # geometric mean over six draws (the spread between draws is wide)
        logs = []
        for seed in range(6):
            plan.apply(m, seed=seed)
            with torch.no_grad():
                logs.append(math.log(float(m(x).pow(2).mean().sqrt())))
        return math.exp(sum(logs) / 6)

    assert 0.8 < rms(p) < 1.25 and rms(blind) < 0.7  # (0.89 and 0.56, measured)


def _chain(depth: int = 8, norm: bool = False, residual: bool = False, pool: str = "") -> nn.Module:
    """``depth`` 3×3 'same' convolutions of 16 channels with ReLU (a BatchNorm after each, or a
    residual addition around each), then a 2×2 average pool (``pool="avg"``) or none, and a
    1×1 read-out."""

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(depth))
            self.norms = nn.ModuleList(nn.BatchNorm2d(16) for _ in range(depth if norm else 0))
            self.pool = nn.AvgPool2d(2) if pool == "avg" else nn.Identity()
            self.out = nn.Conv2d(16, 16, 1)

        def forward(self, x):
            for i, conv in enumerate(self.convs):
                y = conv(x)
                y = torch.relu(self.norms[i](y) if norm else y)
                x = x + y if residual else y
            return self.out(self.pool(x))

    return Chain()


def _said(model, **kw) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        it.plan(model, "auto", **kw)
    return [str(w.message) for w in caught if "with no norm between them" in str(w.message)]


def test_an_unmeasured_chain_of_padded_convolutions_is_said():
    """Without an example input a chain of zero-padded convolutions with no norm between them
    is said when its edges may lose ×4 of E[x²] on 8-wide maps (eight 3×3: ×0.84 each, 0.25);
    a norm after each, a residual addition around each, or an example input end it."""
    (text,) = _said(_chain(8))
    assert text.split("assumed: ")[1].startswith("'convs.0' … 'convs.7': 8 zero-padded")
    assert "×0.25 after them on uniform 8-wide maps, ×0.71 on 32-wide maps" in text
    assert "give example_input= to measure it" in text
    assert _said(_chain(6)) == []  # (×0.35: within ×4)
    assert _said(_chain(12, norm=True)) == []
    assert _said(_chain(12, residual=True)) == []
    x = torch.randn(4, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    assert _said(_chain(8), example_input=x) == []
    with pytest.raises(it.AssumptionError, match="8 zero-padded convolutions"):
        it.plan(_chain(8), "auto", strict=True)


def test_average_pools_compound_with_the_chain():
    """A 2×2 average pool of ReLU features keeps between their mean's share (1/π) and all of
    E[x²]; the plan takes all. Six convolutions alone are not said (×0.35); with the pool the
    floor is ×0.35 × (1/π + (1 − 1/π)/4) = ×0.17 and the run is said, naming both."""
    (text,) = _said(_chain(6, pool="avg"))
    assert "'convs.0' … 'pool': 6 zero-padded convolutions and an average pool" in text
    floor = 1 / math.pi + (1 - 1 / math.pi) / 4
    assert f"×{floor:.2g} for independent values" in text


def test_one_dimensional_chains_are_counted_on_sequences():
    """1-D convolutions are counted on 32-long sequences: dilated ones (HiFi-GAN's residual
    stacks, in band) lose most of their taps on 8 samples and were said there; a long plain
    chain still is."""

    def seq(dilations) -> nn.Module:
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [nn.Conv1d(16, 16, 3, dilation=d, padding=d), nn.LeakyReLU(0.1)]
        return nn.Sequential(*layers, nn.Conv1d(16, 16, 1))

    assert _said(seq([1, 3, 5, 1, 3, 5])) == []
    (text,) = _said(seq([1] * 80))  # (×0.979 each on 32 samples: ×0.19)
    assert "80 zero-padded convolutions" in text and "32-long sequences" in text


def test_the_reference_map_is_never_narrower_than_the_kernel():
    """A kernel wider than the 8-wide reference map (a 15×15 one with padding 1, a dilated 1-D
    one) made torch refuse the map, and the plan failed; the map is now as wide as the kernel
    reaches."""
    from initwise.torch.edges import uniform_factor

    for m in (nn.Conv2d(3, 8, 15, padding=1), nn.Conv1d(3, 8, 65, padding=2, dilation=2)):
        f = uniform_factor(m, 8)
        assert f is not None and 0 < f < 1
    big = nn.Sequential(*[nn.Conv2d(4, 4, 15, padding=7) for _ in range(3)], nn.Conv2d(4, 4, 1))
    it.plan(big, "auto")  # (planned, with or without a warning)


def test_the_chain_is_said_before_the_layers_own_assumptions():
    """The warning lists three assumptions; a VGG without norms has one per max pool, and the
    run of thirteen padded convolutions (×0.10 on 8-wide maps) came after them, cut off."""
    layers: list[nn.Module] = []
    c = 3
    for v in (8, 8, "M", 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    (text,) = _said(nn.Sequential(*layers, nn.Flatten(), nn.Linear(8, 10)))
    assert text.split("assumed: ")[1].startswith("'0' … '28': 13 zero-padded convolutions")
    assert "the 5 max pools among them raise it by as much as neighbouring values differ" in text
    assert "max pooling" in text


class _SqueezeExcite(nn.Module):
    """``blocks`` 3×3 convolutions, ReLU, each gated by a squeeze-excite ``σ(W₂ relu(W₁ x̄))``
    over the channels — no norm anywhere (``norm=True``: a BatchNorm after each convolution)."""

    def __init__(self, blocks: int = 10, c: int = 16, norm: bool = False) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(blocks if norm else 0))
        self.down = nn.ModuleList(nn.Linear(c, c // 4) for _ in range(blocks))
        self.up = nn.ModuleList(nn.Linear(c // 4, c) for _ in range(blocks))
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        for i, (conv, a, b) in enumerate(zip(self.convs, self.down, self.up, strict=True)):
            y = conv(x)
            h = torch.relu(self.norms[i](y) if self.norms else y)
            w = torch.sigmoid(b(torch.relu(a(h.mean((2, 3))))))
            x = h * w[:, :, None, None]
        return self.out(x)


def test_a_gate_carries_the_run_of_what_it_gates():
    """An elementwise product of signals ended the run, so a squeeze-excite CNN without norms
    (output rms 0.21–0.49 over three draws on 16×16 white noise) said nothing: its σ gate cut
    every block's run short. The product now carries the run of what it gates — the gate is
    bounded and centered away from zero, its own input's loss barely reaches the product — and
    a product of two signals the losses of both."""
    (text,) = _said(_SqueezeExcite())
    assert "'convs.0' … 'convs.9': 10 zero-padded convolutions with no norm between" in text
    assert _said(_SqueezeExcite(norm=True)) == []
    assert _said(_SqueezeExcite(blocks=3)) == []  # (×0.59 on 8-wide maps; the pooled x̄ only
    # feeds the gate, whose σ keeps the product's scale)


def test_a_subclass_of_a_pool_is_that_pool():
    """A subclass of ``nn.AvgPool2d`` was looked up by its type and ``plan`` raised KeyError."""
    from initwise.torch.graph import Node
    from initwise.torch.pooling import avg_count

    class Pool(nn.AvgPool2d):
        pass

    node = Node(0, "module", "p")
    assert avg_count(node, {"p": Pool(2)}) == 4 and avg_count(node, {"p": nn.AvgPool3d(2)}) == 8
    assert avg_count(Node(1, "function", "avg_pool1d", args=(3,)), {}) == 3
    assert avg_count(node, {"p": nn.AdaptiveAvgPool2d(1)}) is None
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Pool(2), nn.Conv2d(8, 8, 1))
    it.plan(model, "auto")


class _RawConvs(nn.Module):
    """Eight 3×3 "same" convolutions written with raw parameters — ``F.conv2d(x, w, b,
    padding=1)`` — on 8×8 maps, ReLU, no norm, a 1×1 read-out module."""

    def __init__(self, c: int = 32, depth: int = 8) -> None:
        super().__init__()
        shapes = [(c, 3, 3, 3)] + [(c, c, 3, 3)] * (depth - 1)
        self.w = nn.ParameterList(nn.Parameter(0.1 * torch.randn(*s)) for s in shapes)
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(c)) for _ in shapes)
        self.head = nn.Conv2d(c, 8, 1)

    def forward(self, x):
        for w, b in zip(self.w, self.b, strict=True):
            x = torch.relu(nn.functional.conv2d(x, w, b, padding=1))
        return self.head(x)


def test_raw_parameter_convolutions_lose_their_edges_as_modules_do():
    """A raw-parameter convolution (``F.conv2d(x, self.w, b, padding=1)``) was read with its
    fans but not its geometry: eight on 8×8 maps held the output at ×0.58 in rms with or
    without the example input, and nothing was said. Its call's stride, padding and dilation
    are read now: the run is said without an example input and measured with one."""
    from initwise.torch.modules import FunctionalConv

    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _RawConvs()
    (text,) = _said(m)
    assert "'w.0' … 'w.7': 8 zero-padded convolutions" in text
    p, ms = _quiet_draws(m, x, 4)
    assert "reaches the kernel's taps: zero padding" in p["w.3"].reason
    assert 0.75 < math.exp(sum(math.log(v) / 2 for v in ms) / 4) < 1.33  # (geometric mean rms)
    w = nn.Parameter(torch.randn(4, 2, 3, 3))
    site = FunctionalConv(w, None, 1, "", (2, "same", (1, 2)))
    assert (site.kernel_size, site.stride, site.padding, site.dilation) == (
        (3, 3),
        (2, 2),
        "same",
        (1, 2),
    )
    assert FunctionalConv(w, None, 1, "", ("?", 1, 1)).padding is None  # (not read: no edges)
    assert not has_edges(FunctionalConv(w, None, 1, "", ("?", 1, 1)))


class _Decoder(nn.Module):
    """A latent vector made into a 1×1 map and decoded by transposed convolutions (DCGAN's
    generator without its norms, a VAE's decoder), the map made as ``how`` says."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32, 64, 4, 1, 0),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.how == "index":
            x = z[:, :, None, None]
        elif self.how == "view":
            x = z.view(z.shape[0], -1, 1, 1)
        elif self.how == "reshape":
            x = z.reshape(-1, 32, 1, 1)
        else:
            x = z.unsqueeze(-1).unsqueeze(-1)
        return self.net(x)


@pytest.mark.parametrize("how", ["index", "view", "reshape", "unsqueeze"])
def test_a_latent_made_into_a_one_by_one_map_is_solved_for_the_one_tap_it_reaches(how):
    """Without an example input the first 4×4 layer was solved for its fan's 16 taps per output
    where a 1×1 input gives each output one: the decoder's output rms was 0.22, nothing said.
    The 1×1 map is in the graph (`z[:, :, None, None]` and its spellings): solved for 1/16."""
    torch.manual_seed(0)
    m = _Decoder(how)
    p = it.plan(m, strict=True)  # (structural: nothing assumed)
    assert "its input is a 1×1 map" in p["net.0.weight"].reason
    assert "one tap" in p["net.0.weight"].reason
    p.apply(m, seed=0)
    with torch.no_grad():
        rms = float(m(torch.randn(256, 32)).pow(2).mean().sqrt())
    assert 0.6 < rms < 1.5, rms


def test_a_one_by_one_kernel_or_a_map_from_elsewhere_is_not_a_unit_map():
    """A 1×1 kernel loses nothing on a 1×1 map, and a map whose size the graph does not give
    (a convolution on the model's input) keeps the fan's count."""
    from initwise.torch.edges import unit_factor

    assert unit_factor(nn.Conv2d(8, 8, 1)) is None
    assert unit_factor(nn.Conv2d(8, 8, 3, padding=1)) == pytest.approx(1 / 9)
    assert unit_factor(nn.ConvTranspose2d(8, 8, 4, 2, 1)) == pytest.approx(1 / 4)
    p = it.plan(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3)))
    assert "1×1 map" not in p["0.weight"].reason
