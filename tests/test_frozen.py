"""Layers the plan does not draw — frozen (``requires_grad=False``) or given an override — are
kept or drawn as told, and the layers after them are solved for what they give."""

from __future__ import annotations

import re
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initwise.plan import AssumptionWarning, SignalWarning  # noqa: E402
from initwise.torch import init_model, lsuv, plan  # noqa: E402


def _mlp(seed: int = 0, width: int = 256) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, 10),
    )


def _pretend_pretrained(layer: nn.Module, scale: float) -> None:
    """A layer whose values are not a fresh draw (scaled), then frozen."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.normal_(0.5, 0.1, generator=torch.Generator().manual_seed(3))
    for p in layer.parameters():
        p.requires_grad_(False)


def _rms(model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model(x).double().pow(2).mean().sqrt())


def _quiet(call, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)  # nothing may be assumed
        return call(*args, **kw)


def _said(reason: str) -> float:
    """The input E[x²] a layer's reason gives."""
    return float(reason.split("input E[x²] ")[1].split(",")[0].split(" ")[0])


X = torch.randn(1024, 64, generator=torch.Generator().manual_seed(1))


def test_a_frozen_layer_is_kept_and_the_layers_after_it_are_solved_for_it():
    """A frozen (pretrained) first layer was drawn again by ``init_model`` — its values lost,
    nothing said. It is kept now, bit for bit, its entry says why, and the next layer is solved
    for what the kept weights give (E[x²] 8.2 after its ReLU, not 1): output rms ≈ 1."""
    m = _mlp()
    _pretend_pretrained(m[0], 4.0)
    before = {k: v.clone() for k, v in m[0].state_dict().items()}
    p = _quiet(init_model, m, seed=0, strict=True)
    for k, v in m[0].state_dict().items():
        assert torch.equal(v, before[k]), k
    assert p["0.weight"].scheme is None and p["0.weight"].reason.startswith("kept: frozen")
    assert p["0.bias"].scheme is None
    assert any(
        n.startswith("kept 2 frozen parameters as they are: 0.weight, 0.bias") for n in p.notes
    )
    assert "kept as it is (frozen)" not in p["2.weight"].reason  # (its own entry: solved)
    # the walk's E[x²] after the kept layer's ReLU is the one the data gives
    with torch.no_grad():
        came = float(torch.relu(m[0](X)).double().pow(2).mean())
    assert abs(_said(p["2.weight"].reason) / came - 1) < 0.25, came
    assert 0.75 < _rms(m, X) < 1.33


def test_an_override_is_what_the_layers_after_it_are_solved_for():
    """An override was applied after the walk: the layers after it were solved for the layer
    auto would have drawn. ``N(0, 1)`` on a 64-wide first layer put the output at rms 5.2;
    now the next layer is solved for E[x²] 32 and the output is ≈ 1."""
    m = _mlp()
    p = init_model(m, seed=0, overrides={"0.weight": {"scheme": "normal", "std": 1.0}})
    assert p["0.weight"].reason.startswith("override ")
    assert "input E[x²] 32" in p["2.weight"].reason
    assert 0.75 < _rms(m, X) < 1.33


def test_a_layer_left_as_is_by_an_override_passes_its_own_weights():
    """A hidden layer kept by ``None`` with weights ×5 its default: the next one was solved for
    unit input (output rms 2.0); it is solved for the E[x²] ≈ 25× that the kept weights give."""
    m = _mlp()
    with torch.no_grad():
        m[2].weight.mul_(5.0)
    before = m[2].weight.clone()
    p = init_model(m, seed=0, overrides={"2.*": None})
    assert torch.equal(m[2].weight, before)
    with torch.no_grad():
        came = float(torch.relu(m[2](torch.relu(m[0](X)))).double().pow(2).mean())
    assert abs(_said(p["4.weight"].reason) / came - 1) < 0.25, came  # (≈ 25, not 1)
    assert 0.75 < _rms(m, X) < 1.33


@pytest.mark.parametrize("how", ["override", "frozen"])
def test_a_layer_whose_bias_is_held_passes_what_it_gives(how):
    """A bias given an override (or frozen at its own values) was applied after the walk, which
    took the bias the plan draws (zeros): the next layer was solved for the E[x²] of a zero
    bias. The layer is held with its solved weight and that bias, its weight entry as solved."""
    m = _mlp()
    if how == "override":
        p = init_model(m, seed=0, overrides={"2.bias": {"scheme": "constant", "value": 2.0}})
    else:
        with torch.no_grad():
            m[2].bias.fill_(2.0)
        m[2].bias.requires_grad_(False)
        p = init_model(m, seed=0)
    assert p["2.weight"].reason.startswith("Linear '2'")  # (its own solve, not "held")
    with torch.no_grad():
        came = float(torch.relu(m[2](torch.relu(m[0](X)))).double().pow(2).mean())
    assert abs(_said(p["4.weight"].reason) / came - 1) < 0.25, came  # (≈ 6, not 1)
    assert 0.75 < _rms(m, X) < 1.33


class _Attending(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 64)
        self.att = nn.MultiheadAttention(64, 4, batch_first=True)
        self.ff, self.out = nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        h = self.inp(x)
        h = self.att(h, h, h, need_weights=False)[0]
        return self.out(torch.nn.functional.gelu(self.ff(h)))


@pytest.mark.parametrize("how", ["weight override", "bias override", "frozen"])
def test_an_attention_output_projection_held_passes_what_it_gives(how):
    """``nn.MultiheadAttention``'s ``out_proj`` given an override or frozen: the layer after the
    attention was solved for unit input (its weight ×4 or a bias of 1.5: E[x²] ×3.3–3.9 there).
    The walk passes the averaged values through it as it will be."""
    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _Attending()
    overrides = None
    if how == "weight override":
        overrides = {"att.out_proj.weight": {"scheme": "normal", "std": 0.5}}
    elif how == "bias override":
        overrides = {"att.out_proj.bias": {"scheme": "constant", "value": 1.5}}
    else:
        with torch.no_grad():
            m.att.out_proj.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))
        m.att.out_proj.weight.requires_grad_(False)
    p = init_model(m, seed=0, example_input=x, overrides=overrides)
    if how == "bias override":  # (the weight's own solve, not "held")
        assert "linear consumer" in p["att.out_proj.weight"].reason
    with torch.no_grad():
        h = m.inp(x)
        came = float(m.att(h, h, h, need_weights=False)[0].double().pow(2).mean())
    assert abs(_said(p["ff.weight"].reason) / came - 1) < 0.25, came
    assert 0.7 < _rms(m, x) < 1.4


class _CrossAttending(nn.Module):
    """Attention whose keys and values come from another layer, of another width."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.mem = nn.Linear(16, 64), nn.Linear(16, 32)
        self.att = nn.MultiheadAttention(64, 4, batch_first=True, kdim=32, vdim=32)
        self.ff, self.out = nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        h, kv = self.inp(x), self.mem(x)
        h = self.att(h, kv, kv, need_weights=False)[0]
        return self.out(torch.nn.functional.gelu(self.ff(h)))


@pytest.mark.parametrize("example", [True, False], ids=["example input", "data-free"])
@pytest.mark.parametrize("how", ["in_proj override", "v_proj override", "frozen"])
def test_an_attention_value_projection_held_passes_what_it_gives(how, example):
    """``nn.MultiheadAttention``'s value projection given an override or frozen (the packed
    ``in_proj_weight``, or ``v_proj_weight`` beside ``kdim``/``vdim``): the walk took the values
    at unit second moment, so the layer after the attention was solved for ×5.8 less than came
    (output rms 2.3–2.6 with the example input). Its values are passed as they will be, and
    its ``out_proj`` is solved for them."""
    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _CrossAttending() if how == "v_proj override" else _Attending()
    overrides = None
    if how == "in_proj override":
        overrides = {"att.in_proj_weight": {"scheme": "normal", "std": 0.3}}
    elif how == "v_proj override":
        overrides = {"att.v_proj_weight": {"scheme": "normal", "std": 0.5}}
    else:
        with torch.no_grad():
            m.att.in_proj_weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
        m.att.in_proj_weight.requires_grad_(False)
    p = init_model(m, seed=0, example_input=x if example else None, overrides=overrides)
    assert "linear consumer" in p["att.out_proj.weight"].reason  # (solved, not held)
    v = m.mem(x) if how == "v_proj override" else m.inp(x)
    w = m.att.v_proj_weight if how == "v_proj override" else m.att.in_proj_weight[128:]
    with torch.no_grad():
        values = float((v @ w.T).double().pow(2).mean())
    if example:
        h = m.inp(x)
        kv = m.mem(x) if how == "v_proj override" else h
        with torch.no_grad():
            came = float(m.att(h, kv, kv, need_weights=False)[0].double().pow(2).mean())
        assert abs(_said(p["ff.weight"].reason) / came - 1) < 0.25, came
        assert 0.7 < _rms(m, x) < 1.4
    else:  # (the attention's averaging assumed to keep E[x²], and said: out_proj is solved
        # for the values' own second moment, ×3 and more above the unit the walk took)
        assert values > 3 and abs(_said(p["att.out_proj.weight"].reason) / values - 1) < 0.25


def test_an_attention_value_bias_held_leaves_the_projection_weights_solved():
    """``in_proj_bias`` overridden alone: the values carry the bias, and out_proj is solved for
    them, but the q/k/v weights stay solved for unit output. The held values' E[v²] went into
    the projections' own gain (std 0.177 for 0.125), so the values came at E[x²] 3 where the
    walk said 2."""
    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(1))
    over = {"att.in_proj_bias": {"scheme": "constant", "value": 1.0}}
    torch.manual_seed(0)
    plain = plan(_Attending(), example_input=x)
    torch.manual_seed(0)
    m = _Attending()
    p = init_model(m, seed=0, example_input=x, overrides=over)
    assert p["att.in_proj_weight"].std == pytest.approx(plain["att.in_proj_weight"].std)
    assert "E[v²] = " in p["att.in_proj_weight"].reason
    with torch.no_grad():
        h = m.inp(x)
        w, b = m.att.in_proj_weight[128:], m.att.in_proj_bias[128:]
        values = float((h @ w.T + b).double().pow(2).mean())
    said = float(re.search(r"E\[v²\] = .* = ([0-9.e+-]+)", p["att.in_proj_weight"].reason).group(1))
    assert abs(said / values - 1) < 0.25, (said, values)


class _Scaled(nn.Module):
    """Six residual blocks ``x + γ·fc2(gelu(fc1(x)))`` with a raw layer scale γ (10⁻² built)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(16, 64), nn.Linear(64, 8)
        self.fc1 = nn.ModuleList(nn.Linear(64, 256) for _ in range(6))
        self.fc2 = nn.ModuleList(nn.Linear(256, 64) for _ in range(6))
        self.gamma = nn.ParameterList(nn.Parameter(1e-2 * torch.ones(64)) for _ in range(6))

    def forward(self, x):
        h = self.inp(x)
        for f1, f2, g in zip(self.fc1, self.fc2, self.gamma, strict=True):
            h = h + g * f2(torch.nn.functional.gelu(f1(h)))
        return self.out(h)


@pytest.mark.parametrize("how", ["override", "frozen"])
def test_a_layer_scale_held_passes_what_it_gives(how):
    """A layer scale ``γ`` (a raw parameter multiplied in code) given an override or frozen at
    another value: the walk read it as built (10⁻²), so the branches were solved as if scaled
    down ×100 and the read-out's input came at E[x²] ~75 where 1 was solved for (output rms
    7.1–8.6). It is walked as it will be (frozen, it was read as it is before too: the same
    value either way)."""
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    m = _Scaled()
    overrides = None
    if how == "override":
        overrides = {"gamma.*": {"scheme": "constant", "value": 1.0}}
    else:
        for g in m.gamma:
            g.data.fill_(1.0)
            g.requires_grad_(False)
    p = init_model(m, seed=0, overrides=overrides)
    came = []
    h = m.out.register_forward_pre_hook(lambda mod, a: came.append(float(a[0].pow(2).mean())))
    with torch.no_grad():
        y = m(x)
    h.remove()
    assert abs(_said(p["out.weight"].reason) / came[0] - 1) < 0.25, (p["out.weight"].reason, came)
    assert 0.7 < float(y.pow(2).mean().sqrt()) < 1.4


class _Tokens(nn.Module):
    """A ViT-like stem: patches plus a position table, a class token joined in front."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Linear(48, 64)
        self.pos = nn.Parameter(torch.zeros(1, 16, 64))
        self.cls = nn.Parameter(torch.zeros(1, 1, 64))
        self.fc1, self.fc2, self.out = nn.Linear(64, 256), nn.Linear(256, 64), nn.Linear(64, 8)

    def forward(self, x):
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.patch(x) + self.pos], 1)
        return self.out(self.fc2(torch.nn.functional.gelu(self.fc1(h))))


def _fc1_input(m: nn.Module, x: torch.Tensor) -> float:
    came = []
    h = m.fc1.register_forward_pre_hook(lambda mod, a: came.append(float(a[0].pow(2).mean())))
    with torch.no_grad():
        m(x)
    h.remove()
    return came[0]


def test_a_position_table_given_an_override_is_walked_as_it_will_be():
    """``pos`` overridden to std 3 was walked at its rule's scale: fc1 solved for E[x²] 1 where
    ~9 came (output rms 3.4–3.7)."""
    x = torch.randn(32, 16, 48, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    m = _Tokens()
    p = init_model(m, seed=0, overrides={"pos": {"scheme": "normal", "std": 3.0}})
    assert abs(_said(p["fc1.weight"].reason) / _fc1_input(m, x) - 1) < 0.25
    assert 0.7 < _rms(m, x) < 1.4


def test_a_class_token_unlike_the_patches_is_measured_or_said():
    """A class token overridden to 2 joined to 16 patches: the concatenation's equal average said
    E[x²] 2.5 where 1.18 comes (its sizes along the sequence are not in the graph). With an
    example input it is measured; without, the assumption is said."""
    x = torch.randn(32, 16, 48, generator=torch.Generator().manual_seed(0))
    over = {"cls": {"scheme": "constant", "value": 2.0}}
    torch.manual_seed(0)
    m = _Tokens()
    p = init_model(m, seed=0, example_input=x, overrides=over)
    assert abs(_said(p["fc1.weight"].reason) / _fc1_input(m, x) - 1) < 0.1
    assert 0.75 < _rms(m, x) < 1.33
    torch.manual_seed(0)
    with pytest.warns(AssumptionWarning, match="parts whose sizes the graph does not have"):
        plan(_Tokens(), overrides=over)
    with warnings.catch_warnings():  # (parts alike: averaged as before, nothing said)
        warnings.simplefilter("error", AssumptionWarning)
        plan(_Tokens())


def _upsampler() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 4, 1),
    )


@pytest.mark.parametrize("how", ["override", "frozen"])
def test_a_transposed_convolution_held_passes_what_it_gives(how):
    """A transposed convolution given an override (or frozen at its own values) was taken at
    unit output: the layers after it were solved as if the plan had drawn it (an override ×3
    of a U-Net's up-sampling layer put the output ×2.1–2.3). It is held as linear and
    convolution layers are, with its true fan-in (the taps that reach one output)."""
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    m = _upsampler()
    base = plan(m, example_input=x)
    std = 3 * base["2.weight"].std
    if how == "frozen":
        with torch.no_grad():
            m[2].weight.normal_(0.0, std, generator=torch.Generator().manual_seed(2))
        m[2].weight.requires_grad_(False)
        p = init_model(m, seed=0, example_input=x)
    else:
        p = init_model(
            m, seed=0, example_input=x, overrides={"2.weight": {"scheme": "normal", "std": std}}
        )
    with torch.no_grad():
        came = float(m[3](m[2](m[1](m[0](x)))).double().pow(2).mean())
    assert abs(_said(p["4.weight"].reason) / came - 1) < 0.25, came  # (≈ 9 × 0.5, not 0.5)
    assert 0.75 < _rms(m, x) < 1.33


class _Normed(nn.Module):
    def __init__(self, norm: str = "layer") -> None:
        super().__init__()
        self.inp, self.a, self.out = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 4)
        self.ln = nn.LayerNorm(64) if norm == "layer" else nn.RMSNorm(64)

    def forward(self, x):
        return self.out(torch.nn.functional.gelu(self.a(self.ln(self.inp(x)))))


@pytest.mark.parametrize(
    "how", ["gain override", "bias override", "frozen", "frozen rms"], ids=lambda s: s
)
def test_a_norm_affine_held_passes_what_it_gives(how):
    """A norm's gain or bias given an override, or frozen at pretrained values, was taken at
    γ = 1, β = 0: the layer after it was solved for unit input (a LayerNorm gain overridden to
    3: output rms 2.9; a bias of 2: 2.4). The walk now passes ``γ·x̂ + β`` as they will be."""
    torch.manual_seed(0)
    m = _Normed("rms" if how.endswith("rms") else "layer")
    overrides = None
    if how == "gain override":
        overrides = {"ln.weight": {"scheme": "constant", "value": 3.0}}
    elif how == "bias override":
        overrides = {"ln.bias": {"scheme": "constant", "value": 2.0}}
    else:
        with torch.no_grad():
            m.ln.weight.normal_(2.0, 0.5, generator=torch.Generator().manual_seed(4))
        for q in m.ln.parameters():
            q.requires_grad_(False)
    p = init_model(m, seed=0, overrides=overrides)
    with torch.no_grad():
        came = float(m.ln(m.inp(X)).double().pow(2).mean())
    assert abs(_said(p["a.weight"].reason) / came - 1) < 0.25, came
    assert 0.75 < _rms(m, X) < 1.33


def test_a_frozen_embedding_table_gives_its_own_scale():
    """A frozen pretrained table (std 3): the Linear reading it is solved for its E[x²] ≈ 9."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(100, 64), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    with torch.no_grad():
        m[0].weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(2))
    m[0].weight.requires_grad_(False)
    before = m[0].weight.clone()
    p = _quiet(init_model, m, seed=0)
    assert torch.equal(m[0].weight, before)
    assert _said(p["1.weight"].reason) == pytest.approx(float(before.double().pow(2).mean()), 1e-2)
    ids = torch.randint(0, 100, (4096,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert 0.75 < float(m(ids).pow(2).mean().sqrt()) < 1.33


def test_a_frozen_layer_with_an_example_input():
    """The draft measured on the example input keeps the frozen layer too (ReLU after it:
    mean-dominated input; the plan is the same kind and the output unit)."""
    m = _mlp()
    _pretend_pretrained(m[0], 4.0)
    before = m[0].weight.clone()
    p = init_model(m, seed=0, example_input=X[:256])
    assert torch.equal(m[0].weight, before)
    assert p["0.weight"].reason.startswith("kept: frozen")
    assert 0.75 < _rms(m, X) < 1.33


@pytest.mark.parametrize("policy", ["he", "xavier", "orthogonal"])
def test_classic_policies_keep_frozen_layers(policy):
    m = _mlp()
    _pretend_pretrained(m[0], 4.0)
    before = m[0].weight.clone()
    p = plan(m, policy)
    p.apply(m, seed=0)
    assert torch.equal(m[0].weight, before)
    assert p["0.weight"].scheme is None


def test_lsuv_leaves_a_frozen_layer_as_it_is():
    """LSUV scaled a frozen layer's weights until its output had unit std (and the orthogonal
    pre-init drew it first). It is left as it is and reported so; the rest converges."""
    m = _mlp()
    _pretend_pretrained(m[0], 4.0)
    before = m[0].weight.clone()
    r = lsuv(m, X[:256], seed=0)
    assert torch.equal(m[0].weight, before)
    first = next(x for x in r.layers if x.name.startswith("0"))
    assert "frozen" in first.name and first.scale == 1.0
    assert all(x.converged for x in r.layers if not x.name.startswith("0"))
    assert r.plan is not None and r.plan["0.weight"].scheme is None


def test_frozen_on_the_meta_device_is_drawn():
    """A meta-device model has no values to keep: its frozen layers are drawn as before."""
    from initwise.torch import materialize

    with torch.device("meta"):
        m = _mlp()
    for q in m[0].parameters():
        q.requires_grad_(False)
    assert plan(m)["0.weight"].scheme is not None
    m = materialize(m, seed=0)
    assert not m[0].weight.is_meta and torch.isfinite(m[0].weight).all()


def test_a_frozen_backbones_norm_statistics_are_kept():
    """``init_model`` reset every BatchNorm's running statistics; a frozen pretrained backbone
    kept its weights but lost the statistics that go with them. A norm whose affine parameters
    are frozen keeps its statistics now; the new head's norm is reset."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)
    )
    with torch.no_grad():
        m(torch.randn(16, 3, 12, 12))  # (train mode: statistics gathered)
    for q in [*m[0].parameters(), *m[1].parameters()]:
        q.requires_grad_(False)
    kept = {k: v.clone() for k, v in m[1].state_dict().items()}
    init_model(m, seed=0)
    for k, v in m[1].state_dict().items():
        assert torch.equal(v, kept[k]), k
    assert float(m[4].running_var.sum()) == 8.0 and int(m[4].num_batches_tracked) == 0


class _TiedLM(nn.Module):
    def __init__(self, vocab: int = 500, d: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.body = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.emb(ids)))


def test_a_frozen_tied_table_is_kept_and_the_body_solved_for_its_head():
    """A frozen pretrained table (std 0.5) tied to the head: the tie handed it to the head's
    rule and it was drawn again (std 0.125). It is kept now; the body's first layer is solved
    for the table's E[x²] 0.25 and its last layer for the held head's fan_in·E[w²] = 16, so the
    logits are unit (they would be rms 4 with the body solved for unit output)."""
    torch.manual_seed(0)
    m = _TiedLM()
    with torch.no_grad():
        m.emb.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))
    m.emb.weight.requires_grad_(False)
    before = m.emb.weight.clone()
    p = _quiet(init_model, m, seed=0)
    assert torch.equal(m.emb.weight, before) and m.head.weight is m.emb.weight
    assert p["emb.weight"].reason.startswith("kept: frozen")
    assert "only 'head' reads it" in p["body.2.weight"].reason
    ids = torch.randint(0, 500, (64, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert 0.75 < float(m(ids).pow(2).mean().sqrt()) < 1.33


def test_a_model_frozen_whole_is_said_to_draw_nothing():
    m = _mlp()
    m.requires_grad_(False)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.warns(SignalWarning, match=r"4 of its weight layers .* are kept or overridden"):
        p = init_model(m, seed=0)  # (torch's default init: output E[y²] 0.0034)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert any("(every parameter: nothing is drawn)" in n for n in p.notes)


def test_an_embedding_overridden_is_what_the_layer_after_it_is_solved_for():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(100, 64), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    p = init_model(m, seed=0, overrides={"0.weight": {"scheme": "normal", "std": 0.02}})
    assert _said(p["1.weight"].reason) == pytest.approx(4e-4, rel=1e-3)
    ids = torch.randint(0, 100, (4096,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert 0.75 < float(m(ids).pow(2).mean().sqrt()) < 1.33


class _Block(nn.Module):
    def __init__(self, c: int, zero: bool) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)
        if zero:  # (torchvision's zero_init_residual=True)
            nn.init.zeros_(self.b2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


class _ResNet(nn.Module):
    def __init__(self, zero: bool = True, blocks: int = 8) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.blocks = nn.Sequential(*[_Block(32, zero) for _ in range(blocks)])
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(torch.relu(self.bn(self.stem(x)))).mean((2, 3)))


def test_zero_init_residual_is_kept():
    """torchvision's ``zero_init_residual=True`` zeroes the last BatchNorm gain of each block
    (Goyal et al. 2017): ``init_model`` set it back to ones without a word. A torch norm's gain
    that is all zeros is kept now (torch's init never gives it), the walk takes each branch as
    adding nothing, and the head is solved for the stream that arrives."""
    torch.manual_seed(0)
    m = _ResNet()
    p = _quiet(init_model, m, seed=0, strict=True)
    assert p["blocks.3.b2.weight"].reason.startswith("kept: all zeros as built")
    assert not m.blocks[3].b2.weight.any() and bool(m.blocks[3].b1.weight.all())
    assert any(n.startswith("kept 16 parameters of layers started at zero") for n in p.notes)
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # (train mode: batch statistics)
        assert 0.6 < float(m(x).pow(2).mean().sqrt()) < 1.6


def _zero_module(m: nn.Module) -> nn.Module:
    for q in m.parameters():
        q.detach().zero_()
    return m


class _Controlled(nn.Module):
    """ControlNet's shape: a frozen base, a trainable copy whose output enters through a zero
    layer (Zhang et al. 2023), so the model starts as the base."""

    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.base = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.ctrl = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.zero = _zero_module(nn.Linear(d, d))
        self.base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.zero(self.ctrl(x))


def test_a_zero_module_is_kept_and_the_model_starts_as_its_base():
    """The zero layer was drawn (the control branch moved the output by rms 0.67 at init) and
    the frozen base drawn again. Both are kept now: the output is the base's, bit for bit."""
    torch.manual_seed(0)
    m = _Controlled()
    with torch.no_grad():
        base = m.base(X).clone()
    p = init_model(m, seed=0)
    assert p["zero.weight"].reason.startswith("kept: all zeros") and p["zero.bias"].scheme is None
    assert p["ctrl.0.weight"].scheme is not None
    with torch.no_grad():
        assert torch.equal(m(X), base)


def test_memory_never_written_is_drawn():
    """Every Linear weight zero is no choice (``skip_init``, an empty allocation): all drawn,
    and a note says why."""
    m = _mlp()
    for layer in m:
        if isinstance(layer, nn.Linear):
            _zero_module(layer)
    p = init_model(m, seed=0)
    assert all(p[f"{i}.weight"].scheme is not None for i in (0, 2, 4, 6))
    assert any("memory never written" in n for n in p.notes)
    assert 0.75 < _rms(m, X) < 1.33


class _IRNN(nn.Module):
    """Le et al. 2015: a ReLU RNN whose recurrent matrix starts at the identity."""

    def __init__(self, identity: bool = True) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 64, nonlinearity="relu", batch_first=True)
        if identity:
            nn.init.eye_(self.rnn.weight_hh_l0)
            nn.init.zeros_(self.rnn.bias_hh_l0)
        self.out = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0])  # (a read-out at every step)


@pytest.mark.parametrize("identity", [True, False], ids=["IRNN", "ReLU RNN"])
def test_an_identity_recurrent_matrix_is_kept_and_probed_as_it_is(identity):
    """An IRNN's identity recurrent matrix was drawn orthogonal; and the probe of every ReLU
    RNN drew Xavier input weights where the plan draws He's (an IRNN's state 9× too small in
    E[h²]). The identity is kept, the probe runs with it and with the plan's input rule, and
    the head is solved for the state that arrives."""
    torch.manual_seed(0)
    m = _IRNN(identity)
    p = init_model(m, seed=0)
    if identity:
        assert p["rnn.weight_hh_l0"].reason.startswith("kept: an exact identity as built")
        assert torch.equal(m.rnn.weight_hh_l0.detach(), torch.eye(64))
    x = torch.randn(64, 16, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        came = float(m.rnn(x)[0].double().pow(2).mean())
    assert abs(_said(p["out.weight"].reason) / came - 1) < 0.3, came


class _Recurrent(nn.Module):
    """A Linear, a 2-layer recurrent layer and a read-out at every step."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 64)
        self.rnn = getattr(nn, cell)(64, 64, num_layers=2, batch_first=True)
        self.out = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.inp(x))[0])


_BIAS_ONE = {"scheme": "constant", "value": 1.0}


@pytest.mark.parametrize(
    "cell, overrides, kw",
    [
        ("LSTM", {"rnn.bias_hh_l0": _BIAS_ONE, "rnn.bias_hh_l1": _BIAS_ONE}, {}),
        ("LSTM", {"rnn.weight_ih_l1": {"scheme": "normal", "std": 0.3}}, {}),
        ("LSTM", None, {"forget_bias": 0.0}),
        ("GRU", {"rnn.weight_hh_l1": {"scheme": "normal", "std": 0.3}}, {}),
        ("RNN", {"rnn.bias_hh_l0": _BIAS_ONE, "rnn.bias_hh_l1": _BIAS_ONE}, {}),
    ],
    ids=["LSTM bias_hh 1", "LSTM weight_ih", "LSTM forget_bias 0", "GRU weight_hh", "RNN bias"],
)
def test_a_recurrent_layer_is_probed_as_the_plan_draws_it(cell, overrides, kw):
    """The probe of a recurrent layer drew ``auto``'s rule whatever the plan drew: overridden
    biases or weights, and ``forget_bias=0``, left the read-out solved for the state of another
    layer (LSTM ``bias_hh`` 1: E[h²] 0.39 against 0.019 predicted, output rms 2.9–4.4;
    ``forget_bias=0``: 0.005 against 0.019, rms 0.50–0.56). The probe draws its copy by the
    plan's entries where they differ from that rule."""
    torch.manual_seed(0)
    m = _Recurrent(cell)
    p = init_model(m, seed=0, overrides=overrides, **kw)
    x = torch.randn(32, 20, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        came = float(m.rnn(m.inp(x))[0].double().pow(2).mean())
    assert abs(_said(p["out.weight"].reason) / came - 1) < 0.25, (
        _said(p["out.weight"].reason),
        came,
    )


def test_a_recurrent_cell_is_probed_as_the_plan_draws_it():
    """The same for a cell called in a loop (traced by running the example input): an
    ``nn.LSTMCell`` whose ``bias_hh`` is overridden to 1 had its read-out solved for E[h²] 0.05
    where 0.31–0.35 came (output rms 2.1–2.5)."""

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.cell, self.out = nn.Linear(16, 64), nn.LSTMCell(64, 64), nn.Linear(64, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            state, hs = None, []
            for t in range(x.shape[1]):
                state = self.cell(self.inp(x[:, t]), state)
                hs.append(state[0])
            return self.out(torch.stack(hs, 1))

    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    m = Loop()
    p = init_model(m, seed=0, example_input=x, overrides={"cell.bias_hh": _BIAS_ONE})
    came = []
    h = m.out.register_forward_pre_hook(lambda mod, a: came.append(float(a[0].pow(2).mean())))
    with torch.no_grad():
        m(x)
    h.remove()
    assert abs(_said(p["out.weight"].reason) / came[0] - 1) < 0.25, (p["out.weight"].reason, came)


def test_a_recurrent_layer_drawn_by_auto_s_rule_is_not_planned_twice(monkeypatch):
    """Nothing differs from the probe's rule: the layer is not held (no second pass)."""
    from initwise.torch import planner

    torch.manual_seed(0)
    found = []
    real = planner.held_layers
    monkeypatch.setattr(
        planner, "held_layers", lambda *a, **k: found.append(real(*a, **k)) or found[-1]
    )
    plan(_Recurrent("LSTM"))
    assert found == [{}]


def test_eye_and_dirac_starts_are_kept():
    """``nn.init.eye_`` on a Linear and ``dirac_`` on a convolution are the author's identity
    starts (DiracNets, Zagoruyko & Komodakis 2017): kept, with their biases, and walked as the
    identity they are."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(),
        nn.Linear(8 * 36, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4),
    )  # fmt: skip
    nn.init.dirac_(m[2].weight)
    nn.init.eye_(m[6].weight)
    p = _quiet(init_model, m, seed=0, strict=True)
    assert p["2.weight"].reason.startswith("kept: an exact identity as built") and "dirac" in (
        p["2.weight"].reason
    )
    assert p["6.weight"].reason.startswith("kept: an exact identity as built")
    assert p["6.bias"].scheme is None and p["4.weight"].scheme is not None
    assert torch.equal(m[6].weight.detach(), torch.eye(64))


def test_lsuv_leaves_deliberate_starts_as_they_are():
    """LSUV stopped at a zero layer ("output has std 0 … LSUV can not rescale it") and would
    have rescaled an identity start. Both are left as they are and reported so; the model
    still starts as its frozen base."""
    torch.manual_seed(0)
    m = _Controlled()
    with torch.no_grad():
        base = m.base(X).clone()
    r = lsuv(m, X[:256], seed=0)
    zero = next(x for x in r.layers if x.name.startswith("zero"))
    assert "started at zero or the identity on purpose" in zero.name and zero.scale == 1.0
    with torch.no_grad():
        assert torch.equal(m(X), base)


@pytest.mark.parametrize("family", ["whisper", "pegasus"])
def test_fixed_sinusoidal_position_tables_are_kept(family):
    """Whisper's, Pegasus's (and Marian's, Informer's, the time-series transformer's) position
    tables are fixed sinusoids (``requires_grad=False``, set by the model's own init): ``auto``
    drew them as learned tables, N(0, 1). Frozen, they are kept."""
    transformers = pytest.importorskip("transformers")
    small = {
        "encoder_layers": 1, "decoder_layers": 1, "d_model": 64, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
    }  # fmt: skip
    torch.manual_seed(0)
    if family == "whisper":
        m = transformers.WhisperModel(transformers.WhisperConfig(**small))
    else:
        m = transformers.PegasusModel(transformers.PegasusConfig(vocab_size=100, **small))
    table = m.encoder.embed_positions.weight.clone()
    p = init_model(m, seed=0)
    assert p["encoder.embed_positions.weight"].reason.startswith("kept: frozen")
    assert torch.equal(m.encoder.embed_positions.weight, table)
    assert float(table[0, :32].abs().max()) == 0.0  # (sin 0: the sinusoid's first row)
