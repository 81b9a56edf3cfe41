"""Raw ``nn.Parameter`` weights used in ``forward`` (``x @ W``, ``F.linear``, ``einsum``…) are
planned as the layers they compute (:class:`initwise.torch.modules.FunctionalLinear`)."""

import math
import re
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from initwise.plan import AssumptionError, AssumptionWarning  # noqa: E402
from initwise.torch import init_model, plan  # noqa: E402


class RawMLP(nn.Module):
    """``depth`` products ``x @ W + b`` from a ParameterList, ``act`` between them."""

    def __init__(self, act=torch.tanh, depth: int = 20, width: int = 128) -> None:
        super().__init__()
        self.W = nn.ParameterList(nn.Parameter(torch.randn(width, width)) for _ in range(depth))
        self.b = nn.ParameterList(nn.Parameter(torch.randn(width)) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.W, self.b, strict=True)):
            x = x @ w + b
            if i < len(self.W) - 1:
                x = self.act(x)
        return x


class LinearMLP(nn.Module):
    """The same network with nn.Linear layers (the reference)."""

    def __init__(self, act=torch.tanh, depth: int = 20, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


class MyLinear(nn.Module):
    """A hand-written linear layer: a custom leaf module the tracer does not go into."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_in, n_out))
        self.b = nn.Parameter(torch.randn(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w + self.b


class CustomMLP(nn.Module):
    def __init__(self, act=F.gelu, depth: int = 20, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MyLinear(width, width) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def _quiet_init(model: nn.Module, policy: str = "auto", seed: int = 0, **kw) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)  # nothing may be assumed
        return init_model(model, policy, seed=seed, **kw)


def _rms(model: nn.Module, d: int = 128) -> float:
    x = torch.randn(512, d, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float(model(x).pow(2).mean().sqrt())


class _FLinear(nn.Module):
    """``F.linear(x, self.weight, self.bias)`` in a custom module (its kind is unknown)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.randn(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@pytest.mark.parametrize("layer", [MyLinear, _FLinear])
def test_custom_linear_modules_in_a_sequential_are_planned_as_nn_linear(layer):
    """An ``nn.Sequential`` is read from its structure, without tracing: custom layers in it
    were never traced into, so each weight was "no rule" and kept its N(0, 1) draw (output rms
    ~50 over 11 ReLU layers of width 64). Traced by fx, they are planned as their nn.Linear
    twins: the same stds (and, written as ``F.linear``, the same values for the same seed)."""
    torch.manual_seed(0)
    mine = nn.Sequential(*[m for _ in range(10) for m in (layer(64, 64), nn.ReLU())])
    twin = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(64, 64), nn.ReLU())])
    a, b = _quiet_init(mine), _quiet_init(twin)
    assert [e.std for e in a.entries] == pytest.approx([e.std for e in b.entries], rel=1e-12)
    if layer is _FLinear:
        for p, q in zip(mine.parameters(), twin.parameters(), strict=True):
            assert torch.equal(p, q)
    assert 0.5 <= _rms(mine, 64) <= 2.0


class _EqualLinear(nn.Module):
    """StyleGAN2's equalized-learning-rate linear (rosinality's port): ``weight ~ N(0, 1)/lr_mul``
    read as ``weight · lr_mul/√fan_in`` in forward, the bias as ``bias · lr_mul``; ``div``
    writes the weight's constant as a division."""

    def __init__(self, n_in: int, n_out: int, lr_mul: float = 0.01, div: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale, self.lr_mul, self.div = lr_mul / math.sqrt(n_in), lr_mul, div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight / (1 / self.scale) if self.div else self.weight * self.scale
        out = F.linear(x, w, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2)


class _LReLU2(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class _EqualConv(nn.Module):
    """ProGAN's equalized-learning-rate conv: ``F.conv2d(x, weight · 1/√fan_in)``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = 1 / math.sqrt(c_in * 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(F.conv2d(x, self.weight * self.scale, self.bias, padding=1), 0.2)


@pytest.mark.parametrize("div", [False, True])
def test_weights_read_through_a_constant_are_solved_for_the_product(div):
    """An equalized learning rate keeps ``W ~ N(0, 1)`` and multiplies it by ``c = lr_mul/√fan``
    in forward: the product with ``W·c`` was no layer ("no rule" for every weight and bias;
    strict raised). The layer is now the product's: ``W`` is drawn at the nn.Linear twin's std
    divided by ``c``, so that ``W·c`` gets it, and the reason says so."""
    torch.manual_seed(0)
    mine = nn.Sequential(*[_EqualLinear(64, 64, div=div) for _ in range(8)])
    twin = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(64, 64), _LReLU2())])
    a, b = _quiet_init(mine, strict=True), _quiet_init(twin, strict=True)
    c = 0.01 / 8
    for i in range(8):
        assert a[f"{i}.weight"].std * c == pytest.approx(b[f"{2 * i}.weight"].std, rel=1e-9)
        assert "an equalized learning rate" in a[f"{i}.weight"].reason
        assert a[f"{i}.bias"].std == 0
    assert 0.5 <= _rms(mine, 64) <= 2.0


def test_an_equalized_learning_rate_conv_stack_holds_the_signal():
    """ProGAN's discriminator convolutions (``W·1/√fan`` in forward, no √2 gain in the
    constant): kept as built, six leaky-ReLU layers give output rms 0.06; solved for the
    product, within [0.5, 2]."""
    torch.manual_seed(0)
    m = nn.Sequential(*[_EqualConv(3 if i == 0 else 32, 32) for i in range(6)])
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    _quiet_init(m, strict=True)
    with torch.no_grad():
        assert 0.5 <= float(m(x).pow(2).mean().sqrt()) / float(x.pow(2).mean().sqrt()) <= 2.0


class _WNLinear(nn.Module):
    """Weight normalization written by hand (Salimans & Kingma 2016), three ways."""

    def __init__(self, n_in: int, n_out: int, how: str) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(n_out, n_in) * 0.05)
        self.g = nn.Parameter(torch.ones(n_out, 1) if how == "normalize" else torch.ones(n_out))
        self.b = nn.Parameter(torch.zeros(n_out))
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "normalize":
            w = F.normalize(self.v, dim=1) * self.g
        elif self.how == "divide":
            w = self.g[:, None] * self.v / self.v.norm(dim=1, keepdim=True)
        else:
            w = self.v * (self.g / self.v.norm(dim=1)).unsqueeze(1)
        return F.linear(x, w, self.b)


class _WNConv(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.g = nn.Parameter(torch.ones(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return F.conv2d(x, self.g.view(-1, 1, 1, 1) * self.v / n, padding=1)


class _LowRank(nn.Module):  # F.linear(x, U @ V): a product of two parameters, no normalization
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.u, self.w = nn.Parameter(torch.randn(n_out, 8)), nn.Parameter(torch.randn(8, n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.u @ self.w)


@pytest.mark.parametrize("how", ["normalize", "divide", "scale"])
def test_a_weight_normalized_by_hand_gets_its_gain_from_the_solve(how):
    """``F.linear(x, g·v/‖v‖, b)`` in ``forward``: the product's weight is computed from two
    parameters, so it was no layer — ``v``, ``g`` and ``b`` "no rule", kept as built (rows of
    norm 1: ten ReLU layers gave output rms 0.05). Found by evaluating the weight's own graph
    (only ``v`` and ``g`` feed it, scaling ``v`` changes nothing, scaling ``g`` scales it, each
    row has norm ``|g|``): ``v`` is the direction (the layer's draw), ``g`` the solved std ×
    √fan_in, so each row gets the nn.Linear twin's norm."""
    torch.manual_seed(0)
    mine = nn.Sequential(*[m for _ in range(10) for m in (_WNLinear(64, 64, how), nn.ReLU())])
    twin = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(64, 64), nn.ReLU())])
    a, b = _quiet_init(mine, strict=True), _quiet_init(twin, strict=True)
    for i in range(0, 20, 2):
        assert a[f"{i}.v"].std == pytest.approx(b[f"{i}.weight"].std, rel=1e-12)
        want = b[f"{i}.weight"].std * 8  # (× √64)
        assert torch.allclose(mine[i].g, torch.full_like(mine[i].g, want))
        assert "weight normalization by hand" in a[f"{i}.v"].reason
    assert 0.5 <= _rms(mine, 64) <= 2.0


def test_a_conv_weight_normalized_by_hand_and_a_low_rank_product():
    """The same for ``F.conv2d(x, g·v/‖v‖)`` (norms over each output channel's weights); a
    weight computed as a product of two parameters that is not normalized (``U @ V``) is not
    taken for one: still said, as before."""
    torch.manual_seed(0)
    m = nn.Sequential(*[k for i in range(6) for k in (_WNConv(3 if i == 0 else 16, 16), nn.ReLU())])
    _quiet_init(m, strict=True)
    assert torch.allclose(m[2].g, torch.full((16,), math.sqrt(2 / 144) * 12))
    low = nn.Sequential(_LowRank(16, 16), nn.ReLU(), _LowRank(16, 16))
    with pytest.warns(AssumptionWarning):
        init_model(low, seed=0)


def test_raw_mlp_is_planned_as_its_linear_twin():
    """Every weight and bias gets the std the nn.Linear network's layer gets (tanh at the edge
    of chaos: the bias variance too), not "left as is"."""
    torch.manual_seed(0)
    raw, ref = plan(RawMLP(), "auto", strict=True), plan(LinearMLP(), "auto", strict=True)
    for i in range(20):
        for mine, theirs in ((f"W.{i}", f"layers.{i}.weight"), (f"b.{i}", f"layers.{i}.bias")):
            assert raw[mine].std == pytest.approx(ref[theirs].std, rel=1e-12), mine
    assert "used as `x @ W.0 + b.0` in forward" in raw["W.0"].reason
    assert raw["b.0"].std > 0  # the edge of chaos's bias variance reached the raw bias


@pytest.mark.parametrize("act", [torch.relu, F.gelu, torch.tanh, F.silu])
@pytest.mark.parametrize("build", [RawMLP, CustomMLP])
def test_raw_networks_hold_the_signal(build, act):
    """Before: every parameter left as is (N(0, 1) weights: the output exploded or, for tanh,
    saturated); now the output rms of a 20-layer network stays within [0.5, 2]."""
    torch.manual_seed(0)
    model = build(act=act)
    before = _rms(model)
    assert not 0.5 <= before <= 2.0  # (the control: the model as built does not)
    logs = []  # (one draw of a 20-layer width-128 product spreads ×0.6–1.8 for ReLU-like
    for seed in range(3):  # activations, nn.Linear too: the geometric mean of three draws)
        _quiet_init(model, seed=seed)
        logs.append(math.log(_rms(model)))
    assert 0.5 <= math.exp(sum(logs) / 3) <= 2.0


def _one_layer(call: str, n_in: int = 48, n_out: int = 80) -> nn.Module:
    """A product of a (512, n_in) input with a raw weight, written as ``call``, then ReLU and
    a raw (n_out, 10) read-out."""

    class One(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            shape = (n_out, n_in) if call in ("linear", "W.T", "W @ x", "einsum out_in") else None
            self.W = nn.Parameter(torch.randn(*(shape or (n_in, n_out))))
            # ((W @ xᵀ)ᵀ + b: the sum is not the product's; that form is written without a bias)
            self.b = nn.Parameter(torch.ones(n_out)) if call != "W @ x" else None
            self.head = nn.Parameter(torch.randn(n_out, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            W, b = self.W, self.b
            if call == "x @ W":
                h = x @ W + b
            elif call == "matmul":
                h = torch.matmul(x, W) + b
            elif call == "mm":
                h = torch.mm(x, W.float()) + b
            elif call == "linear":
                h = F.linear(x, W, b)
            elif call == "W.T":
                h = x @ W.T + b
            elif call == "addmm":
                h = torch.addmm(b, x, W)
            elif call == "W @ x":
                h = (W @ x.t()).t()
            elif call == "einsum in_out":
                h = torch.einsum("bi,io->bo", x, W) + b
            else:  # einsum out_in
                h = torch.einsum("oi,bi->bo", W, x) + b
            return torch.relu(h) @ self.head

    return One()


CALLS = [
    "x @ W",
    "matmul",
    "mm",
    "linear",
    "W.T",
    "addmm",
    "W @ x",
    "einsum in_out",
    "einsum out_in",
]


@pytest.mark.parametrize("call", CALLS)
def test_each_way_of_writing_the_product(call):
    """The fan-in is the contracted dimension whichever way the product is written (a
    non-square weight: the wrong layout would give 1.414/√80 instead of 1.414/√48)."""
    p = plan(_one_layer(call), "auto", strict=True)
    assert p["W"].std == pytest.approx(math.sqrt(2 / 48), rel=1e-9), p["W"].reason
    assert p["head"].std == pytest.approx(1 / math.sqrt(80), rel=1e-9), p["head"].reason
    if call != "W @ x":
        assert p["b"].scheme is not None and p["b"].std == 0.0


def test_what_is_not_a_layer_stays_as_is():
    """A 3-D einsum weight with an index summed on its own (not a product with the signal), a
    product of two parameters and a buffer are not read as layers: the parameters are left as
    is and said so; the buffer is not touched."""

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.H = nn.Parameter(torch.randn(4, 32, 8))
            self.A = nn.Parameter(torch.randn(32, 32))
            self.B = nn.Parameter(torch.randn(32, 32))
            self.register_buffer("P", torch.randn(32, 32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = (x @ self.P) @ (self.A @ self.B)
            return torch.einsum("bd,hde->bh", x, self.H)  # (e: summed over the weight alone)

    m = Odd()
    before = m.P.clone()
    with pytest.warns(AssumptionWarning, match="no rule for H, A, B"):
        p = init_model(m, seed=0)
    assert all(p[n].scheme is None for n in ("H", "A", "B"))
    assert torch.equal(m.P, before)


def test_custom_module_with_another_parameter_is_not_traced_into():
    """A custom layer whose parameters are not all a product's weight/bias (here a learned
    temperature) stays one module, as before: its parameters are left as is."""

    class Scaled(MyLinear):
        def __init__(self) -> None:
            super().__init__(16, 16)
            self.t = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x @ self.w + self.b) * self.t

    model = nn.Sequential(Scaled(), nn.ReLU(), nn.Linear(16, 4))
    with pytest.warns(AssumptionWarning, match=r"no rule for 0.w, 0.b \(left as is\)"):
        p = plan(model, "auto")
    assert p["0.w"].scheme is None and p["2.weight"].scheme is not None
    assert p["0.t"].reason.startswith("kept: a single learned number")  # (the temperature)


def test_shared_weight_is_one_site():
    """A parameter used in several products is planned once (as a module called twice)."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W = nn.Parameter(torch.randn(64, 64))
            self.out = nn.Parameter(torch.randn(64, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(6):
                x = torch.relu(x @ self.W)
            return x @ self.out

    p = plan(Shared(), "auto", strict=True)
    assert p["W"].std == pytest.approx(math.sqrt(2 / 64))
    assert [e.name for e in p] == ["W", "out"]


def test_policies_on_raw_weights():
    """he/xavier/orthogonal/tat plan them with the right fans; torch-default keeps what the
    model drew (torch has none for a raw parameter: not an assumption); u-μP's forward
    multiplier needs a module, so it leaves them as is and says why; LSUV draws them
    orthonormal and warns that it cannot rescale them."""
    m = _one_layer("x @ W")
    assert plan(m, "he")["W"].std == pytest.approx(math.sqrt(2 / 48))
    assert plan(m, "xavier")["W"].std == pytest.approx(math.sqrt(2 / (48 + 80)))
    assert plan(m, "orthogonal")["W"].scheme.formula().startswith("orthogonal")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        kept = plan(m, "torch-default")
    assert all(e.scheme is None and e.reason.startswith("kept: torch has no default") for e in kept)
    with pytest.warns(AssumptionWarning, match="no rule for W, head"):
        u = plan(m, "u-mup")
    assert "forward multiplier" in u["W"].reason
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)  # rescaled where the product runs
        lsuv = plan(m, "lsuv", example_input=torch.randn(64, 48))
    assert lsuv["W"].reason.startswith("LSUV: orthonormal ×")


def test_apply_round_trip_and_meta_device():
    """The plan is keyed by the parameters' own names: applying it twice gives the same bits,
    a meta-device copy materializes to them, and a JSON round trip plans the same."""
    from initwise.plan import Plan

    torch.manual_seed(0)
    a, b = RawMLP(depth=4), RawMLP(depth=4)
    pa = _quiet_init(a)
    _quiet_init(b)
    for (n, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), n
    assert Plan.from_json(pa.to_json()).to_json() == pa.to_json()
    with torch.device("meta"):
        meta = RawMLP(depth=4)
    _quiet_init(meta)
    for (n, x), (_, y) in zip(a.named_parameters(), meta.named_parameters(), strict=True):
        assert not y.is_meta and torch.equal(x, y), n


def test_diagnose_runs_on_raw_networks():
    """diagnose measures module layers: a custom layer that the planner traces into is still
    one layer there, with the activation that follows it."""
    from initwise.diagnostics import diagnose

    model = CustomMLP(depth=4)
    _quiet_init(model)
    report = diagnose(model, torch.randn(64, 128))
    assert [s.name for s in report.layers] == [f"layers.{i}" for i in range(4)]
    assert [s.activation for s in report.layers] == ["gelu", "gelu", "gelu", "linear"]
    assert report.verdict == "healthy"


class _Dyn(nn.Module):
    """No child modules, raw weights, data-dependent control flow: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.W1 = nn.Parameter(torch.randn(32, 64))
        self.b1 = nn.Parameter(torch.randn(64))
        self.W2 = nn.Parameter(torch.randn(10, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x @ self.W1 + self.b1)
        if h.sum() > 0:  # (data-dependent: fx cannot trace this)
            h = h * 1.0
        return F.linear(h, self.W2)


def test_untraceable_raw_network_is_read_by_running_the_example_input():
    """A model with no child modules, raw weights and data-dependent control flow (fx cannot
    trace it) is read by running ``example_input``: its products are layers too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(_Dyn(), "auto", example_input=torch.randn(16, 32))
    assert p.notes[0] == "traced with run"
    assert "relu" in p["W1"].reason and p["b1"].std == 0.0
    assert "F.linear(x, W2)" in p["W2"].reason


class _TiedLM(nn.Module):
    """Embedding → 2 residual MLP blocks (pre-norm) → LayerNorm → logits read out with the
    embedding's own table, written as ``readout``."""

    def __init__(self, readout: str, vocab: int = 512, d: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            for _ in range(2)
        )
        self.ln = nn.LayerNorm(d)
        self.readout = readout
        if readout == "module":
            self.head = nn.Linear(d, vocab, bias=False)
            self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for b in self.blocks:
            x = x + b(x)
        x, E = self.ln(x), self.emb.weight
        if self.readout == "F.linear":
            return F.linear(x, E)
        if self.readout == "x @ E.T":
            return x @ E.T
        if self.readout == "einsum":
            return torch.einsum("btd,vd->btv", x, E)
        return self.head(x)


@pytest.mark.parametrize("readout", ["F.linear", "x @ E.T", "einsum"])
def test_read_out_tied_in_forward_gives_unit_logits(readout):
    """A head tied to the embedding by using its table in forward (not a tied nn.Linear) is
    a tied head too: the embedding's std is solved for unit logits, as for the module. Before:
    N(0, 1) rows, logits rms ≈ √width (11.9 at width 128), and nothing said."""
    torch.manual_seed(0)
    model, ref = _TiedLM(readout), _TiedLM("module")
    p, q = _quiet_init(model), _quiet_init(ref)
    assert p["emb.weight"].std == pytest.approx(q["emb.weight"].std, rel=1e-12)
    assert "tied with the read-out" in p["emb.weight"].reason
    ids = torch.randint(0, 512, (8, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rms = float(model(ids).pow(2).mean().sqrt())
    assert 0.5 <= rms <= 2.0


def _linear_twin(raw: RawMLP) -> LinearMLP:
    """The nn.Linear network computing exactly what ``raw`` computes."""
    twin = LinearMLP(act=raw.act, depth=len(raw.W), width=raw.W[0].shape[0])
    with torch.no_grad():
        for layer, w, b in zip(twin.layers, raw.W, raw.b, strict=True):
            layer.weight.copy_(w.t())
            layer.bias.copy_(b)
    return twin


def test_diagnose_measures_raw_layers_as_their_linear_twin():
    """Products with raw parameters run in no module, so no forward hook sees them: diagnose
    now sees them run (a function mode) and measures each as the layer it is — every statistic
    equal to the nn.Linear twin's, the chain theory included. Before: no layer measured, a
    "not measured" note."""
    from initwise.diagnostics import diagnose

    raw = RawMLP(depth=5)
    _quiet_init(raw)
    batch = torch.randn(64, 128, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left unmeasured, nothing said
        mine = diagnose(raw, batch)
    theirs = diagnose(_linear_twin(raw), batch)
    assert [s.name for s in mine.layers] == [f"W.{i}" for i in range(5)]
    assert mine.chain_theory and theirs.chain_theory and not mine.notes
    _same_statistics(mine, theirs, "weight_std")


def _same_statistics(mine, theirs, *more: str) -> None:
    """Every layer's statistics, theory included, equal to 1e-4 in two ``diagnose`` reports."""
    for a, b in zip(mine.layers, theirs.layers, strict=True):
        assert (a.activation, a.fan_in, a.fan_out) == (b.activation, b.fan_in, b.fan_out)
        for field in ("in_m2", "out_m2", "post_m2", "grad_std", "weight_grad_std", *more):
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-4), field
        for field in ("pred_local", "pred_chain", "pred_grad_chain", "chi"):
            x, y = getattr(a, field, None), getattr(b, field, None)
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=1e-4))


@pytest.mark.parametrize("call", CALLS)
def test_diagnose_measures_each_way_of_writing_the_product(call):
    """Whichever way the product is written (the weight itself, transposed, through
    ``.float()``, a bias added after or passed to the call), diagnose measures the layer's
    own output — its bias included — and the gradient reaching its weight."""
    from initwise.diagnostics import diagnose

    model = _one_layer(call)
    _quiet_init(model)
    x = torch.randn(256, 48, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = diagnose(model, x)
    assert [s.name for s in report.layers] == ["W", "head"]
    w = report.layers[0]
    with torch.no_grad():
        W = model.W if call in ("x @ W", "matmul", "mm", "addmm", "einsum in_out") else model.W.t()
        h = x @ W + (model.b if model.b is not None else 0)
    assert w.activation == "relu" and w.fan_in == 48 and w.fan_out == 80
    assert w.out_m2 == pytest.approx(float(h.pow(2).mean()), rel=1e-5)
    assert w.post_m2 == pytest.approx(float(torch.relu(h).pow(2).mean()), rel=1e-5)
    assert w.in_m2 == pytest.approx(float(x.pow(2).mean()), rel=1e-5)
    assert w.weight_grad_std is not None and w.weight_grad_std > 0


def test_diagnose_says_what_it_did_not_measure():
    """A raw-parameter layer whose product did not run on the batch (a forward that changes
    with each call: the trace took a branch that diagnose's own run does not) is named in a
    note and a warning, not passed over."""
    from initwise.diagnostics import diagnose

    calls = [0]  # (outside the model: the plan puts a model's own attributes back)

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W1 = nn.Parameter(torch.randn(128, 128))
            self.W2 = nn.Parameter(torch.randn(128, 128))
            self.head = nn.Linear(128, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            h = torch.relu(x @ self.W1)
            if calls[0] % 2:  # (the trace: call 1; diagnose's run: call 2)
                h = torch.relu(x @ self.W2) + h
            return self.head(h)

    model = Branch()
    _quiet_init(model)
    calls[0] = 0
    with pytest.warns(UserWarning, match=r"not measured: W2 \(`x @ W2`\)"):
        report = diagnose(model, torch.randn(64, 128))
    assert [s.name for s in report.layers] == ["W1", "head"]
    assert any(n.startswith("not measured: W2") for n in report.notes)
    custom = CustomMLP(depth=3)
    _quiet_init(custom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a custom layer traced into is measured: nothing said
        diagnose(custom, torch.randn(64, 128))


@pytest.mark.parametrize(
    "call, groups",
    [("kw", 1), ("kw", 4), ("kw", 16), ("positional", 4), ("conv1d", 1), ("conv3d", 2)],
)
def test_raw_convolution_weights(call, groups):
    """``F.conv1d/2d/3d(x, W, b, …, groups=g)`` with raw parameters: a convolution with fans
    ``in/g · k`` (depthwise: ``k``), its bias zeros. Before: left as is."""
    dims = {"conv1d": 1, "conv3d": 3}.get(call, 2)
    k = (3,) * dims

    class RawConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(16, 16 // groups, *k))
            self.b = nn.Parameter(torch.randn(16))
            self.fc = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
            if call == "positional":  # (x, W, b, stride, padding, dilation, groups)
                h = conv(x, self.w, self.b, 1, 1, 1, groups)
            else:
                h = conv(x, self.w, self.b, padding=1, groups=groups)
            return self.fc(torch.relu(h).flatten(2).mean(-1))

    # (3-D: the padded 3×3×3 convolution's edges on 8³ maps, ×0.77, and the global mean of
    # ReLU features, ×0.32 at worst, are said — as for an nn.Conv3d, since its geometry is read)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "plan.*zero-padded convolution")
        p = plan(RawConv(), "auto", strict=dims < 3)
    fan_in = 16 // groups * 3**dims
    assert p["w"].std == pytest.approx(math.sqrt(2 / fan_in), rel=1e-9), p["w"].reason
    assert p["b"].std == 0.0 and "FunctionalConv 'w'" in p["w"].reason
    x = torch.randn(4, 16, *((6,) * dims))
    m = RawConv()
    _quiet_init(m, **({"example_input": x} if dims == 3 else {}))  # (3-D: measured, not said)
    with torch.no_grad():
        h = torch.relu(
            (F.conv1d, F.conv2d, F.conv3d)[dims - 1](x, m.w, m.b, padding=1, groups=groups)
        )
    assert 0.5 <= float(h.pow(2).mean()) <= 2.0  # He: E[relu(h)²] = 1 for unit input


def test_class_token_and_position_table_found_by_structure():
    """A hand-written ViT whose token and position table have names no rule knows (``cls``,
    ``pos``): the token concatenated with the patches and the table added to them get the
    class-token and position-table rules (before: left as is, the table kept its N(0, 1)).
    A vector added to the signal and a multiplied parameter are not tokens: left as is."""

    class ViT(nn.Module):
        def __init__(self, d: int = 32) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, d, 4, 4)
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
            self.pos = nn.Parameter(torch.randn(1, 65, d))
            self.shift = nn.Parameter(torch.zeros(d))
            self.gain = nn.Parameter(torch.ones(1, 1, d))
            self.head = nn.Linear(d, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = (
                torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
                + self.pos[:, : x.shape[1] + 1]
            )
            x = (x + self.shift) * self.gain
            return self.head(x[:, 0])

    with pytest.warns(AssumptionWarning, match="no rule for shift, gain"):
        p = plan(ViT(), "auto")
    assert p["cls"].std == pytest.approx(0.02, rel=0.2) and "concatenated" in p["cls"].reason
    assert p["pos"].std == pytest.approx(0.02) and "added to the signal" in p["pos"].reason
    assert p["shift"].scheme is None and p["gain"].scheme is None


def test_lsuv_on_custom_layers_whose_weight_is_not_named_weight():
    """LSUV hooked a custom ``MyLinear`` (``self.w``) as a layer and raised AttributeError
    ('MyLinear' object has no attribute 'weight'); then it left such weights orthonormal with
    a warning. Now their product ``x @ self.w`` is rescaled where it runs."""
    model = CustomMLP(depth=3)
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = init_model(model, "lsuv", seed=0, example_input=x)
    assert p["layers.1.w"].reason.startswith("LSUV: orthonormal ×")
    with torch.no_grad():
        h = x
        for layer in model.layers:
            h = layer(h)
            assert abs(float(h.std()) - 1) < 0.1
            h = model.act(h)


@pytest.mark.parametrize("call", CALLS)
def test_lsuv_rescales_raw_layers(call):
    """LSUV left raw-parameter layers orthonormal (× 1, with a warning); now each product is
    rescaled where it runs, in the same single pass, to output std 1 ± tol — and the plan it
    returns reproduces the weights with the same seed."""
    from initwise.torch import apply_plan, lsuv

    x = torch.randn(256, 48, generator=torch.Generator().manual_seed(5))
    model, twin = _one_layer(call), _one_layer(call)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        res = lsuv(model, x, seed=0)
    assert res.forward_passes == 1 and [la.name for la in res.layers] == ["W", "head"]
    assert all(la.converged for la in res.layers) and res.layers[0].iterations >= 1
    with torch.no_grad():
        W = model.W if call in ("x @ W", "matmul", "mm", "addmm", "einsum in_out") else model.W.t()
        h = x @ W + (model.b if model.b is not None else 0)
        assert abs(float(h.std()) - 1) < 0.1
        assert abs(float((torch.relu(h) @ model.head).std()) - 1) < 0.1
    apply_plan(res.plan, twin, 0)
    for (n, a), (_, b) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), n


def test_lsuv_rescales_raw_layers_by_hooks_and_through_a_cast():
    """A model fx cannot trace (data-dependent control flow) is rescaled by hooks, one run per
    layer and attempt: its raw layers take their turn in execution order. A weight used
    through a dtype cast (``W.to(x.dtype)``, a copy) is rescaled too: in one pass the copy the
    product took is scaled with the parameter."""
    from initwise.torch import lsuv

    class Cast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W = nn.Parameter(torch.randn(32, 64, dtype=torch.float64))
            self.lin = nn.Linear(64, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(torch.tanh(x @ self.W.to(x.dtype)))

    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(6))
    for model, method, first in ((_Dyn(), "hooks", "W1"), (Cast(), "fx", "W")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", AssumptionWarning)
            res = lsuv(model, x, seed=0)
        assert res.method == method and res.layers[0].name == first
        assert all(la.converged for la in res.layers)
        with torch.no_grad():
            W = getattr(model, first).to(x.dtype)
            assert abs(float((x @ W).std()) - 1) < 0.1


def test_tied_decoder_biases_are_biases():
    """A tied autoencoder's decoder, ``F.linear(h, enc.weight.t(), b)`` or ``h @ enc.weight +
    b``: the product is no layer of its own (its weight is planned where the encoder runs), but
    its raw bias is a bias — zeros — not "no rule (left as is)" with an assumption."""

    class TiedAE(nn.Module):
        def __init__(self, form: str) -> None:
            super().__init__()
            self.enc = nn.Linear(64, 16)
            self.dec_bias = nn.Parameter(torch.randn(64))
            self.form = form

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.enc(x))
            if self.form == "linear":
                return F.linear(h, self.enc.weight.t(), self.dec_bias)
            return h @ self.enc.weight + self.dec_bias

    for form in ("linear", "matmul"):
        p = plan(TiedAE(form), "auto", strict=True)
        assert p["dec_bias"].std == 0.0 and p["dec_bias"].scheme is not None
        assert "a weight its layer also uses" in p["dec_bias"].reason
        assert "fan_in 64" in p["enc.weight"].reason  # (planned where the encoder runs)


def test_diagnose_counts_dead_units_along_a_products_rows():
    """``W @ x`` (the weight first) gives the units as the output's rows: dead units are
    counted per row (before: per column — per example — and half the units dead read 0 %)."""
    from initwise.diagnostics import diagnose

    model = _one_layer("W @ x")
    _quiet_init(model)
    with torch.no_grad():
        model.W[:40] = 0.0  # 40 of the 80 units give 0 → ReLU 0 on every example
    report = diagnose(model, torch.randn(256, 48, generator=torch.Generator().manual_seed(7)))
    assert report.layers[0].name == "W" and report.layers[0].dead == pytest.approx(0.5)


class DenseGeneral(nn.Module):
    """A JAX/Flax port: per-head projections as raw 3-D weights in ``einsum`` — ``(D, H, K)``
    in (``"...d,dhk->...hk"``, a bias per head and unit) and ``(H, K, D)`` out."""

    def __init__(self, act=torch.tanh, depth: int = 6, d: int = 64, h: int = 4, k: int = 32):
        super().__init__()
        self.w_in = nn.ParameterList(nn.Parameter(torch.randn(d, h, k)) for _ in range(depth))
        self.b_in = nn.ParameterList(nn.Parameter(torch.randn(h, k)) for _ in range(depth))
        self.w_out = nn.ParameterList(nn.Parameter(torch.randn(h, k, d)) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, b, c in zip(self.w_in, self.b_in, self.w_out, strict=True):
            u = self.act(torch.einsum("...d,dhk->...hk", x, a) + b)
            x = torch.einsum("bhk,hkd->bd", u, c)
        return x


class DenseGeneralTwin(nn.Module):
    """The same network with nn.Linear layers: ``(D, H·K)`` in, ``(H·K, D)`` out."""

    def __init__(self, act=torch.tanh, depth: int = 6, d: int = 64, h: int = 4, k: int = 32):
        super().__init__()
        self.ins = nn.ModuleList(nn.Linear(d, h * k) for _ in range(depth))
        self.outs = nn.ModuleList(nn.Linear(h * k, d, bias=False) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, c in zip(self.ins, self.outs, strict=True):
            x = c(self.act(a(x)))
        return x


def _dense_general_twin(model: DenseGeneral) -> DenseGeneralTwin:
    twin = DenseGeneralTwin(model.act, len(model.w_in), *model.w_in[0].shape)
    with torch.no_grad():
        for a, b, c, lin_a, lin_c in zip(
            model.w_in, model.b_in, model.w_out, twin.ins, twin.outs, strict=True
        ):
            lin_a.weight.copy_(a.reshape(a.shape[0], -1).t())
            lin_a.bias.copy_(b.reshape(-1))
            lin_c.weight.copy_(c.reshape(-1, c.shape[-1]).t())
    return twin


class PerHead(nn.Module):
    """Per-head matrices: ``einsum("bhi,hio->bho", x, W)``, the head index batched (each head
    its own ``(in, out)`` matrix), ``act`` after every layer."""

    def __init__(self, act=F.gelu, depth: int = 6, h: int = 4, k: int = 32) -> None:
        super().__init__()
        self.w = nn.ParameterList(nn.Parameter(torch.randn(h, k, k)) for _ in range(depth))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w in self.w:
            x = self.act(torch.einsum("bhi,hio->bho", x, w))
        return x


@pytest.mark.parametrize("act", [torch.tanh, F.gelu, torch.relu])
def test_einsum_weights_of_three_dims_are_planned_as_their_linear_twin(act):
    """Per-head projections written as 3-D raw weights in ``einsum`` (a Flax port) were "left as
    is" (output rms 11 on a 6-block tanh network): now each is the Linear layer it computes,
    with the fans its contracted and output dimensions give — every std equal to the nn.Linear
    twin's, the per-head bias planned with it — and the network holds the signal."""
    torch.manual_seed(0)
    mine = plan(DenseGeneral(act), "auto", strict=True)
    theirs = plan(DenseGeneralTwin(act), "auto", strict=True)
    for i in range(6):
        pairs = ((f"w_in.{i}", f"ins.{i}.weight"), (f"b_in.{i}", f"ins.{i}.bias"))
        pairs += ((f"w_out.{i}", f"outs.{i}.weight"),)
        for a, b in pairs:
            assert mine[a].std == pytest.approx(theirs[b].std, rel=1e-12), (a, mine[a].reason)
    assert "fan_in 64, fan_out 128 (the einsum's contracted and output dimensions)" in (
        mine["w_in.0"].reason
    )
    assert "fan_in 128" in mine["w_out.0"].reason
    model = DenseGeneral(act)
    _quiet_init(model)
    assert _rms(model, 64) == _rms(_dense_general_twin(model), 64)  # (the same computation)
    if act is torch.tanh:
        assert 0.8 < _rms(model, 64) < 1.25


def test_per_head_einsum_weights_hold_the_signal():
    """A head index in the weight, the signal and the output is a batch of matrices: fans per
    head (the plan says how many heads), the GELU chain solved like its nn.Linear twin's, output
    rms ≈ 1 (before: 2977, every weight left as is)."""
    torch.manual_seed(0)
    p = plan(PerHead(), "auto", strict=True)
    twin = nn.Sequential(*(m for _ in range(6) for m in (nn.Linear(32, 32, bias=False), nn.GELU())))
    ref = plan(twin, "auto", strict=True)
    for i in range(6):
        assert p[f"w.{i}"].std == pytest.approx(ref[f"{2 * i}.weight"].std, rel=1e-12)
    assert "fan_in 32, fan_out 32" in p["w.0"].reason and "per head, 4 heads" in p["w.0"].reason
    model = PerHead()
    _quiet_init(model)
    x = torch.randn(512, 4, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = x
        for i, w in enumerate(model.w):
            h = torch.einsum("bhi,hio->bho", h, w)
            planned = re.findall(r"(?:at q\*?) ([0-9.]+)", p[f"w.{i}"].reason)[-1]
            assert 0.6 < float(h.pow(2).mean()) / float(planned) < 1.6  # each at its q
            h = F.gelu(h)


def test_einsum_weights_centered_over_their_contracted_dims():
    """Where ``auto`` centers a layer's weights (before an activation with a large mean), each
    output unit's weights sum to zero over the dimensions it contracts — ``(0,)`` for ``(D, H,
    K)`` in ``"...d,dhk->...hk"``, ``(1,)`` for per-head ``(H, in, out)`` — where the
    ``(out, in…)`` rule would have centered over the wrong dimensions (the twin Linear's:
    ``(1,)``)."""
    torch.manual_seed(0)
    model = DenseGeneral(torch.sigmoid, depth=3)
    p = _quiet_init(model)
    ref = plan(DenseGeneralTwin(torch.sigmoid, depth=3), "auto", strict=True)
    assert ref["ins.1.weight"].center_dims == (1,) and p["w_in.1"].center_dims == (0,)
    assert float(model.w_in[1].detach().double().sum(0).abs().max()) < 1e-5
    heads = PerHead(torch.sigmoid, depth=3)
    q = _quiet_init(heads)
    assert q["w.1"].center_dims == (1,)
    assert float(heads.w[1].detach().double().sum(1).abs().max()) < 1e-5


def test_orthogonal_einsum_weights_are_the_layers_own_matrices():
    """Orthogonal views a tensor as ``shape[0] × ∏ shape[1:]`` — for ``(H, K, D)`` used as
    ``"bhk,hkd->bd"`` that mixes the contracted H with the output D, and for per-head
    ``(H, in, out)`` matrices it is one 4 × 1024 matrix. The plan draws each layer's own ``(out,
    in)`` matrix (one per head), so each map is an isometry; ``lsuv`` and kernel shaping use
    the same draw, and a plan written to JSON reads back the same."""
    from initwise.plan import Plan

    torch.manual_seed(0)
    model = DenseGeneral()
    p = init_model(model, "orthogonal", seed=0)
    assert p["w_out.0"].scheme.view == ((), (2,), (0, 1))
    assert "drawn as the layer's (out, in) matrix" in p["w_out.0"].reason
    assert p["w_out.0"].std == pytest.approx(float(model.w_out[0].std()), rel=0.05)
    w = model.w_in[0].detach().reshape(64, -1)  # (D, H·K): rows orthonormal, |x W| = |x|·g
    g = p["w_in.0"].scheme.gain
    assert torch.allclose(w @ w.t() / g**2, torch.eye(64), atol=1e-5)
    w = model.w_out[0].detach().reshape(-1, 64)  # (H·K, D): columns orthonormal
    g = p["w_out.0"].scheme.gain
    assert torch.allclose(w.t() @ w / g**2, torch.eye(64), atol=1e-5)
    heads = PerHead()
    q = init_model(heads, "orthogonal", seed=0)
    assert q["w.0"].scheme.view == ((0,), (2,), (1,)) and "per head" in q["w.0"].reason
    for h in range(4):
        m = heads.w[0][h].detach() / q["w.0"].scheme.gain
        assert torch.allclose(m.t() @ m, torch.eye(32), atol=1e-5)
    assert Plan.from_json(q.to_json())["w.0"].scheme == q["w.0"].scheme
    for policy in ("tat", "dks"):
        r = plan(PerHead(), policy)
        assert r["w.0"].scheme.view == ((0,), (2,), (1,)), policy


def test_diagnose_measures_einsum_layers_as_their_linear_twin():
    """``diagnose`` sees each 3-D einsum product run and measures it as the layer it is: every
    statistic equal to the nn.Linear twin's, the chain theory included; dead units are counted
    per (head, unit)."""
    from initwise.diagnostics import diagnose

    model = DenseGeneral(torch.relu, depth=3)
    _quiet_init(model)
    batch = torch.randn(128, 64, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mine = diagnose(model, batch)
    theirs = diagnose(_dense_general_twin(model), batch)
    assert [s.name for s in mine.layers] == [
        "w_in.0",
        "w_out.0",
        "w_in.1",
        "w_out.1",
        "w_in.2",
        "w_out.2",
    ]
    assert mine.chain_theory and not mine.notes
    _same_statistics(mine, theirs, "dead")
    heads = PerHead(torch.relu, depth=2)
    _quiet_init(heads)
    with torch.no_grad():
        heads.w[0][0] = -heads.w[0][0].abs()  # head 0 of 4: every unit dead on positive input
    x = torch.rand(256, 4, 32, generator=torch.Generator().manual_seed(4)) + 0.1
    dead = diagnose(heads, x).layers[0].dead
    with torch.no_grad():
        h = torch.einsum("bhi,hio->bho", x, heads.w[0])
        assert dead == pytest.approx(float((h.amax(0) <= 0).float().mean()))
    assert dead >= 0.25


def test_lsuv_rescales_einsum_layers():
    """LSUV pre-draws each 3-D einsum weight as the layer's orthonormal matrices (one per
    head) and rescales each product where it runs, in one pass, to output std 1 ± tol."""
    from initwise.torch import apply_plan, lsuv

    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(5))
    model = DenseGeneral(torch.tanh, depth=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        res = lsuv(model, x, seed=0)
    assert res.forward_passes == 1 and all(la.converged for la in res.layers)
    assert [la.name for la in res.layers][:2] == ["w_in.0", "w_out.0"]
    with torch.no_grad():
        h = x
        for a, b, c in zip(model.w_in, model.b_in, model.w_out, strict=True):
            u = torch.einsum("...d,dhk->...hk", h, a) + b
            assert abs(float(u.std()) - 1) < 0.1
            h = torch.einsum("bhk,hkd->bd", torch.tanh(u), c)
            assert abs(float(h.std()) - 1) < 0.1
    heads = PerHead(depth=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        res = lsuv(heads, torch.randn(256, 4, 32), seed=0)
    assert all(la.converged for la in res.layers)
    w = heads.w[0][1].detach()  # per head orthonormal before the rescaling
    assert torch.allclose(w.t() @ w / float(w.pow(2).sum(0).mean()), torch.eye(32), atol=1e-4)
    twin = PerHead(depth=2)
    apply_plan(res.plan, twin, 0)  # the plan it returns reproduces the weights
    for a, b in zip(heads.w, twin.w, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_single_learned_numbers_are_kept_as_built():
    """A 0-d or one-element raw parameter — a CLIP-style ``logit_scale`` written by hand,
    ReZero's ``α = 0`` — was "no rule" (an assumption; ``strict=True`` refused the model). It is
    the model's own choice, not a draw with fans: kept as built, said in the reason."""

    class Dual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.img, self.txt = nn.Linear(32, 16), nn.Linear(24, 16)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
            self.alpha = nn.Parameter(torch.zeros(1))
            self.block = nn.Linear(32, 32)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            a = a + self.alpha * self.block(a)  # ReZero
            u, v = F.normalize(self.img(a), dim=-1), F.normalize(self.txt(b), dim=-1)
            return self.logit_scale.exp() * u @ v.t()

    model = Dual()
    p = plan(model, "auto", strict=True)
    for name in ("logit_scale", "alpha"):
        assert p[name].scheme is None and p[name].reason.startswith("kept: a single learned number")
    _quiet_init(model)
    assert float(model.logit_scale) == pytest.approx(math.log(1 / 0.07)) and float(model.alpha) == 0


def test_a_raw_table_read_by_index_and_as_the_read_out_starts_the_stream_at_its_scale():
    """``x = E[idx]`` … ``logits = h @ E.T`` with a raw ``E``: the read-out plans ``E`` for unit
    logits (std 1/√d), and the rows looked up carry that std — the residual stream starts at
    E[x²] = 1/d. The lookup's moments were unknown and taken as 1, so each residual branch was
    solved for a larger stream than it is (the first branch alone 9× the stream; the stream grew
    ×18 over three blocks)."""

    class RawLM(nn.Module):
        def __init__(self, vocab: int = 256, d: int = 64, depth: int = 3) -> None:
            super().__init__()
            self.E = nn.Parameter(torch.randn(vocab, d))
            self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth + 1))
            self.fc = nn.ModuleList(nn.Linear(d, 4 * d) for _ in range(depth))
            self.proj = nn.ModuleList(nn.Linear(4 * d, d) for _ in range(depth))

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            x = self.E[idx]
            for n, a, b in zip(self.norms, self.fc, self.proj, strict=False):
                x = x + b(F.gelu(a(n(x))))
            return self.norms[-1](x) @ self.E.t()

    torch.manual_seed(0)
    model = RawLM()
    p = _quiet_init(model)
    assert p["E"].std == pytest.approx(1 / 8, rel=1e-9)
    target = float(p["proj.0.weight"].reason.split("s_skip/3 = ")[1].split(" ")[0])
    assert target == pytest.approx((1 / 64) / 3, rel=0.05)  # (before: 0.142)
    idx = torch.randint(0, 256, (16, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = model.E[idx]
        start = float(x.pow(2).mean())
        for n, a, b in zip(model.norms, model.fc, model.proj, strict=False):
            x = x + b(F.gelu(a(n(x))))
        assert 1.0 < float(x.pow(2).mean()) / start < 3.0  # (before: ×18)


@pytest.mark.parametrize("form", ["last dim", "broadcast"])
def test_a_layer_scale_found_by_structure_is_kept(form):
    """A raw vector multiplying a residual branch's output right before the addition — ConvNeXt's
    layer scale held in a ``ParameterList`` (no name to match) — was "no rule" (an assumption).
    It is a layer scale: kept as built (1e-6 here), and its value still scales the branch in the
    moments."""

    class Net(nn.Module):
        def __init__(self, c: int = 32, depth: int = 4) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, c, 4, 4)
            self.dw = nn.ModuleList(nn.Conv2d(c, c, 7, padding=3, groups=c) for _ in range(depth))
            self.pw = nn.ModuleList(nn.Linear(c, c) for _ in range(depth))
            self.gamma = nn.ParameterList(nn.Parameter(1e-6 * torch.ones(c)) for _ in range(depth))
            self.head = nn.Linear(c, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            for dw, pw, g in zip(self.dw, self.pw, self.gamma, strict=True):
                y = pw(F.gelu(dw(x)).permute(0, 2, 3, 1))
                if form == "last dim":
                    x = x + (y * g).permute(0, 3, 1, 2)
                else:
                    x = x + g[:, None, None] * y.permute(0, 3, 1, 2)
            return self.head(x.amax((2, 3)))

    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = Net()
    p = _quiet_init(model, example_input=x)
    for i in range(4):
        assert p[f"gamma.{i}"].reason.startswith("kept: a layer scale"), p[f"gamma.{i}"].reason
        assert torch.equal(model.gamma[i].detach(), torch.full((32,), 1e-6))
    assert "s_skip/4 = 0.25 " in p["pw.3.weight"].reason  # (λ 1e-6: the stream does not grow)


def test_a_position_table_read_in_two_places_is_one():
    """A learned position table added to the encoder's tokens and to the decoder's
    (``pos[:, :S]``, ``pos[:, :T]``) has two uses; only single-use tables were found, so it was
    "no rule" (left at what the model drew). Every use reaching an addition with the signal makes
    it a position table."""

    class S2S(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            self.pos = nn.Parameter(torch.randn(1, 64, 32))
            self.enc, self.dec = nn.Linear(32, 32), nn.Linear(32, 32)

        def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
            a = self.enc(self.emb(src) + self.pos[:, : src.shape[1]])
            return self.dec(self.emb(tgt) + self.pos[:, : tgt.shape[1]] + a.mean(1, keepdim=True))

    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 100, (4, 10), generator=g), torch.randint(0, 100, (4, 7), generator=g))
    p = _quiet_init(S2S(), example_input=x)
    assert "a learned position table (added to the signal in forward)" in p["pos"].reason
    assert p["pos"].std == pytest.approx(0.02)


def test_score_vectors_halves_and_loops():
    """A vector the signal is projected on is a Linear to one output: GAT's ``h @ a[:d]`` and
    ``h @ a[d:]`` contract d each (std 1/√d), Bahdanau's ``v`` in an unrolled decoder loop its
    whole length each step. A vector used any other way is not one."""

    class GAT(nn.Module):
        def __init__(self, d: int = 32) -> None:
            super().__init__()
            self.W = nn.Linear(d, d, bias=False)
            self.a = nn.Parameter(torch.randn(2 * d))
            self.s = nn.Parameter(torch.randn(d))  # (a scale, not a projection)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.W(x)
            e = F.leaky_relu((h @ self.a[:32]).unsqueeze(-1) + (h @ self.a[32:]).unsqueeze(-2))
            return torch.softmax(e, -1) @ (h * self.s)

    with pytest.warns(AssumptionWarning, match="no rule for s "):
        p = plan(GAT(), "auto")
    assert p["a"].std == pytest.approx(1 / math.sqrt(32)) and "contracting 32" in p["a"].reason
    assert p["s"].scheme is None


@pytest.mark.parametrize("form", ["module", "inline", "no bias"])
def test_feature_tokenizers_give_unit_tokens(form):
    """FT-Transformer's feature tokenizer, ``x[..., None] * W + b`` with ``W, b`` of ``(n, d)``
    — a module of its own (found by probing) or written in ``forward`` — was "no rule" (left at
    ``randn``: tokens of E[t²] ≈ 2). Now W and b are N(0, ½) each (the value and the feature's
    identity one half of a unit token), W N(0, 1) without a bias."""

    class Tok(nn.Module):
        def __init__(self, bias: bool = True) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(12, 32))
            self.bias = nn.Parameter(torch.randn(12, 32)) if bias else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = x[..., None] * self.weight[None]
            return t if self.bias is None else t + self.bias[None]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = Tok(form != "no bias")
            self.W = nn.Parameter(torch.randn(12, 32))
            self.b = nn.Parameter(torch.randn(12, 32))
            self.head = nn.Linear(32, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.tok(x) if form != "inline" else x[..., None] * self.W[None] + self.b[None]
            return self.head(torch.relu(t).mean(1))

    model = Net()
    if form == "inline":
        del model.tok
    else:
        del model.W, model.b
    x = torch.randn(256, 12, generator=torch.Generator().manual_seed(0))
    p = _quiet_init(model, example_input=x)
    w, b = ("W", "b") if form == "inline" else ("tok.weight", "tok.bias")
    assert "feature tokenizer" in p[w].reason
    assert p[w].std == pytest.approx(1.0 if form == "no bias" else math.sqrt(0.5))
    with torch.no_grad():
        t = model.tok(x) if form != "inline" else x[..., None] * model.W[None] + model.b[None]
        assert 0.8 < float(t.pow(2).mean()) < 1.25
    if form != "no bias":
        assert p[b].std == pytest.approx(math.sqrt(0.5)) and "identity" in p[b].reason


class _LoraLinear(nn.Linear):
    """loralib's ``lora.Linear`` (lit-gpt's is the same): an ``nn.Linear`` subclass whose own
    forward adds ``(dropout(x) @ lora_A.T @ lora_B.T) * scaling``; A kaiming-uniform, B zero."""

    def __init__(self, i: int, o: int, r: int = 8, form: str = "loralib") -> None:
        super().__init__(i, o)
        self.form = form
        self.lora_A = nn.Parameter(torch.empty(r, i))
        self.lora_B = nn.Parameter(torch.zeros(o, r))
        self.scaling = 2.0
        self.lora_dropout = nn.Dropout(0.1)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "loralib":
            out = F.linear(x, self.weight, bias=self.bias)
            out += (
                self.lora_dropout(x) @ self.lora_A.transpose(0, 1) @ self.lora_B.transpose(0, 1)
            ) * self.scaling
            return out
        return super().forward(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class _LoraMLP(nn.Module):
    def __init__(self, form: str, d: int = 64, depth: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _LoraLinear(32 if i == 0 else d, d, form=form) for i in range(depth)
        )
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.gelu(layer(x))
        return self.head(x)


@pytest.mark.parametrize("form", ["loralib", "by hand"])
def test_a_low_rank_adapter_starts_at_zero_and_its_layer_as_its_base(form):
    """loralib's ``lora_A``/``lora_B`` were "no rule" (an ``nn.Linear`` subclass's extra
    matrices were not read as layers) and its sum read as a residual stream whose branch was the
    base layer: the base solved for a sixth of a "skip" (std ×0.41 of He's). Written by hand
    (``x @ A.t() @ B.t()``), B was drawn at std 0.5 — the adapter no longer started at zero.
    Now B starts at zero (Hu et al. 2021), the base is solved as if alone, no residual, nothing
    assumed, and the model computes exactly what it computes with the adapters removed."""
    torch.manual_seed(0)
    m = _LoraMLP(form).eval()
    p = init_model(m, seed=0, strict=True)
    assert "residual" not in p.notes[0]
    assert "over depth 4)" in p["layers.0.weight"].reason  # (A and B are not in the chain)
    for i in range(4):
        assert p[f"layers.{i}.lora_B"].scheme.label == "zeros"
        assert "rank-8 adapter beside" in p[f"layers.{i}.lora_B"].reason
        assert torch.count_nonzero(m.layers[i].lora_B) == 0
        assert torch.count_nonzero(m.layers[i].lora_A) > 0
        assert "residual" not in p[f"layers.{i}.weight"].reason
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m(x)
        h = x
        for layer in m.layers:
            h = F.gelu(F.linear(h, layer.weight, layer.bias))
        assert torch.allclose(y, m.head(h))
    assert 0.5 < float(y.pow(2).mean().sqrt()) < 2


class _NoisyLinear(nn.Module):
    """Factorised NoisyNet layer as Rainbow implementations write it (Fortunato et al. 2018)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        r = 1 / math.sqrt(n_in)
        self.weight_mu = nn.Parameter(torch.empty(n_out, n_in).uniform_(-r, r))
        self.weight_sigma = nn.Parameter(torch.full((n_out, n_in), 0.5 * r))
        self.bias_mu = nn.Parameter(torch.empty(n_out).uniform_(-r, r))
        self.bias_sigma = nn.Parameter(torch.full((n_out,), 0.5 / math.sqrt(n_out)))
        self.register_buffer("weight_epsilon", torch.randn(n_out, n_in))
        self.register_buffer("bias_epsilon", torch.randn(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_mu + self.weight_sigma * self.weight_epsilon
        return F.linear(x, w, self.bias_mu + self.bias_sigma * self.bias_epsilon)


def test_noisy_net_layers_are_kept_as_built_not_assumed():
    """A NoisyNet layer's ``μ`` and ``σ`` were "no rule" (an assumption: strict raised); its own
    init is the paper's, so they are kept as built, said as such, and strict planning passes."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), _NoisyLinear(32, 4))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    p = init_model(m, seed=0, strict=True)
    for name in ("weight_mu", "weight_sigma", "bias_mu", "bias_sigma"):
        assert p[f"2.{name}"].reason.startswith("kept: _NoisyLinear.") and "NoisyNet" in (
            p[f"2.{name}"].reason
        )
        assert torch.equal(m.state_dict()[f"2.{name}"], before[f"2.{name}"])


class _CosineHead(nn.Module):
    """A cosine classifier (NormFace, Wang et al. 2017; CosFace, ArcFace):
    ``s · normalize(h) @ normalize(W)ᵀ`` — the class matrix is used row-normalized, no gain."""

    def __init__(self, transposed: bool | None = True) -> None:
        super().__init__()
        self.transposed = transposed
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128))
        self.W = nn.Parameter(torch.randn(100, 128) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.normalize(self.body(x), dim=-1)
        if self.transposed is None:  # ArcFace's order: the scale before the product
            return 16.0 * h @ F.normalize(self.W, dim=-1).t()
        if self.transposed:
            return h @ F.normalize(self.W, dim=-1).t() * 16
        return F.linear(h, self.W / self.W.norm(dim=1, keepdim=True)) * 16


@pytest.mark.parametrize(
    "transposed", [True, False, None], ids=["normalize(W).t()", "W/‖W‖", "s·x̂ @ Ŵᵀ"]
)
def test_a_cosine_classifiers_class_matrix_is_its_direction_only(transposed):
    """The class matrix of a cosine head, normalized to unit rows in forward with no gain, had
    "no rule" (kept as built, strict refused the model). It is the head's weight now: a layer
    whose rows forward sets to norm 1, so the draw's scale cancels (its reason says so) and the
    walk passes E[x²] 1/128 → ×16² = 2 to the logits (measured rms 1.39). Written as ArcFace
    does, ``s * F.normalize(x) @ …`` (the scale first), the normalized features' moments were
    lost: "input moments unknown, E[x²] = 1 assumed" (strict refused it) and the plan's logits
    E[y²] 1 against 2 measured."""
    torch.manual_seed(0)
    m = _CosineHead(transposed)
    p = _quiet_init(m, strict=True)
    assert "norm 1 per output unit" in p["W"].reason
    came = "2 " if transposed is None else "0.0078"  # (1/128 · 16², or 1/128)
    assert f"input E[x²] {came}" in p["W"].reason
    x = torch.randn(512, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert 1.2 < float(m(x).pow(2).mean().sqrt()) < 1.6  # (16/√128 = 1.41)
    with pytest.raises(AssumptionError):  # (a product of two parameters: still no layer)
        plan(nn.Sequential(_LowRank(16, 16)), "auto", strict=True)


class _CalledByWeight(nn.Module):
    """``fc`` called as a function of its own weight, or as itself."""

    def __init__(self, how: str, conv: bool = False, untraceable: bool = False) -> None:
        super().__init__()
        self.how, self.conv, self.untraceable = how, conv, untraceable
        if conv:
            self.fc, self.out = nn.Conv1d(16, 64, 3, padding=1), nn.Conv1d(64, 4, 1)
        else:
            self.fc, self.out = nn.Linear(16, 64), nn.Linear(64, 4)

    def forward(self, x):
        if self.untraceable and float(x.abs().amax()) < 0:  # (control flow fx cannot trace)
            x = -x
        if self.how == "module":
            h = self.fc(x)
        elif self.conv:
            h = F.conv1d(x, self.fc.weight, self.fc.bias, padding=1)
        elif self.how == "linear":
            h = F.linear(x, self.fc.weight, self.fc.bias)
        else:
            h = x @ self.fc.weight.T + self.fc.bias
        return self.out(F.gelu(h))


@pytest.mark.parametrize("how", ["linear", "matmul", "conv"])
def test_a_module_called_through_its_own_weight_is_diagnosed(how):
    """``F.linear(x, self.fc.weight, self.fc.bias)``: the planner reads it as a call of ``fc``,
    but no hook sees it run and ``diagnose`` reported ``out`` alone, nothing said. It is watched
    as raw-parameter layers are, and its statistics equal the module call's."""
    from initwise.diagnostics import diagnose

    conv = how == "conv"
    x = torch.randn(64, 16, 20) if conv else torch.randn(64, 16)
    reports = []
    for h in ("module", how):
        torch.manual_seed(0)
        m = _CalledByWeight(h, conv)
        init_model(m, seed=0)
        reports.append(diagnose(m, x))
    base, other = reports
    assert [s.name for s in other.layers] == ["fc", "out"]

    def stats(r):
        return [v for s in r.layers for v in (s.out_std, s.post_m2, s.grad_std, s.weight_grad_std)]

    assert stats(other) == pytest.approx(stats(base), rel=1e-5)


@pytest.mark.parametrize("how", ["linear", "matmul", "conv"])
@pytest.mark.parametrize("run", ["fx", "hooks", "hooks-dict"])
def test_lsuv_scales_a_module_called_through_its_own_weight(how, run):
    """No module hook or interpreter step runs ``fc`` when ``forward`` computes it as a function
    of ``fc.weight``: LSUV left it orthonormal and unscaled (and said so). The fx graph its
    pass runs reads such calls, and they are scaled where their product runs. Where fx cannot
    trace the model (or the batch is a dict of keyword arguments) LSUV runs by hooks; the
    product is watched there too, placed in execution order, and scaled the same way."""
    from initwise.torch import lsuv

    conv = how == "conv"
    x = torch.randn(256, 16, 20) if conv else torch.randn(256, 16)
    m = _CalledByWeight(how, conv, untraceable=run != "fx")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        result = lsuv(m, {"x": x} if run == "hooks-dict" else x, seed=0)
    assert result.method == ("fx" if run == "fx" else "hooks")
    assert [layer.name for layer in result.layers] == ["fc", "out"]
    with torch.no_grad():
        h = (
            F.conv1d(x, m.fc.weight, m.fc.bias, padding=1)
            if conv
            else F.linear(x, m.fc.weight, m.fc.bias)
        )
        y = m(x)
    assert abs(float(h.std()) - 1.0) < 0.1
    assert abs(float(y.std()) - 1.0) < 0.1
    assert result.plan["fc.weight"].scheme.gain == pytest.approx(result.layers[0].scale)


def test_lsuv_by_hooks_traces_only_where_a_layer_did_not_run(monkeypatch):
    """The trace that finds modules called through their own weight costs about a forward: the
    pass by hooks asks for it only where a layer with a weight did not run as a module."""
    import importlib

    from initwise.torch import lsuv

    lsuv_module = importlib.import_module("initwise.torch.lsuv")
    asked = []
    real = lsuv_module._traced_weight_calls
    monkeypatch.setattr(lsuv_module, "_traced_weight_calls", lambda *a: asked.append(1) or real(*a))
    x = torch.randn(256, 16)
    lsuv(_CalledByWeight("module", untraceable=True), x, seed=0)
    assert asked == []
    lsuv(_CalledByWeight("linear", untraceable=True), x, seed=0)
    assert asked == [1]
