"""The planner: activations, true fans, residual branches, policies, overrides, JSON."""

import json
import math
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise import schemes as S  # noqa: E402
from initwise.math import gain  # noqa: E402
from initwise.math.operating import operating_point  # noqa: E402
from initwise.plan import AssumptionWarning, Plan  # noqa: E402
from initwise.torch.graph import analyze, trace_run  # noqa: E402
from initwise.torch.inspection import inspect_model  # noqa: E402
from tests import models  # noqa: E402


def test_activation_detection_modules_functions_methods_and_unknown():
    p = it.plan(models.ActMLP())
    g = {e.name: e.gain for e in p}
    # each layer is solved for what arrives (input E[x²]) and the activation after it (q*):
    # gain² · E[x²] = q*
    for name, act in [
        ("relu", "relu at q* 2"),
        ("gelu", "gelu at q*"),
        ("tanh", "tanh at q*"),
        ("selu", "selu at q* 1 (SELU"),
        ("silu_f", "silu at q*"),
        ("leaky", "leaky_relu(0.2) at q*"),
        ("method", "relu at q* 2"),
        ("swish", "Swish (= silu) at q*"),  # an unknown elementwise module, probed: SiLU
    ]:
        assert act in p[f"{name}.weight"].reason, name
    assert g["relu.weight"] == pytest.approx(math.sqrt(2), abs=1e-9)  # unit input → He
    # relu's output at q = 2 has E[x²] = 1, so GELU's layer gets gain √q*(gelu)
    op = operating_point("gelu", depth=2)
    assert g["gelu.weight"] == pytest.approx(math.sqrt(op.q), rel=1e-6)
    # the probed Swish is SiLU: the same operating point as the registered one
    assert "Swish" in p["swish.weight"].reason
    # through a LayerNorm to the ReLU: a norm follows, the classic gain is kept
    assert g["norm_relu.weight"] == pytest.approx(math.sqrt(2), abs=1e-9)
    assert "a norm follows" in p["norm_relu.weight"].reason
    # the output layer reads relu(N(0, 1)), E[x²] = ½: unit output needs gain √2
    assert g["out.weight"] == pytest.approx(math.sqrt(2), rel=1e-6)
    assert "unit output" in p["out.weight"].reason
    assert p["ln.weight"].scheme == S.ones() and p["out.bias"].scheme == S.zeros()


def test_plan_std_and_reason_text():
    m = nn.Sequential(nn.Linear(512, 256), nn.GELU(), nn.Linear(256, 4))
    p = it.plan(m)
    e = p["0.weight"]
    assert e.fan_in == 512 and e.fan_out == 256
    # unit input, GELU at its classic operating point q* = 1 (a chain of depth 1)
    assert e.std == pytest.approx(1 / math.sqrt(512))
    assert e.reason.startswith("Linear '0': fan_in 512, input E[x²] 1 → gelu at q* 1 (")
    assert e.reason.endswith(f"→ gain 1 → std {e.std:.4g}")
    # the classic GELU gain appears where GELU's output arrives: E[gelu(z)²] = 1/gain²
    out = p["2.weight"]
    assert out.gain == pytest.approx(gain("gelu"), rel=1e-6)
    assert "input E[x²] 0.425, mean 0.282 → linear consumer: unit output" in out.reason


def test_fx_and_run_tracing_agree_on_resnet():
    m = models.resnet()
    fx = inspect_model(m)
    run = analyze(m, trace_run(m, torch.randn(2, 3, 32, 32)))
    assert fx.method == "fx" and run.method == "run"
    assert fx.n_residual == run.n_residual == 4
    for name, info in fx.layers.items():
        other = run.layers[name]
        assert (info.activation, info.branches, info.last_in_branch, info.last_norm_in_branch) == (
            other.activation,
            other.branches,
            other.last_in_branch,
            other.last_norm_in_branch,
        )


def test_resnet_plan_true_fans_and_residuals():
    m = models.resnet()
    p = it.plan(m)
    e = p["layers.1.conv1.weight"]  # 8 -> 16, 3x3
    assert (e.fan_in, e.fan_out) == (8 * 9, 16 * 9)
    assert "relu" in e.reason
    # conv2 feeds bn2 -> add -> relu: a norm follows, He's gain for the relu is kept
    assert p["layers.1.conv2.weight"].gain == pytest.approx(math.sqrt(2), abs=1e-9)
    assert "a norm follows" in p["layers.1.conv2.weight"].reason
    z = it.plan(m, "zero-init-residual")
    for b in range(4):
        assert z[f"layers.{b}.bn2.weight"].scheme == S.zeros()
        assert z[f"layers.{b}.bn1.weight"].scheme == S.ones()
    assert z["layers.1.downsample.1.weight"].scheme == S.ones()  # the shortcut is no branch
    assert z["stem.1.weight"].scheme == S.ones()


def test_fixup_on_a_residual_net_without_norms():
    m = models.NoNormResNet(blocks=4)
    p = it.plan(m, "fixup")
    L, mm = 4, 2
    for b in range(4):
        assert p[f"blocks.{b}.2.weight"].scheme == S.zeros()
        e = p[f"blocks.{b}.0.weight"]
        assert e.std == pytest.approx(math.sqrt(2 / 32) * L ** (-1 / (2 * mm - 2)))
    assert p["head.weight"].scheme == S.zeros()
    assert p["inp.weight"].std == pytest.approx(math.sqrt(2 / 16))


def test_vgg_and_dropout_pool_transparent():
    p = it.plan(models.vgg().eval())  # (eval mode: dropout is the identity)
    assert p["9.weight"].gain == pytest.approx(math.sqrt(2), abs=1e-9)  # Linear -> ReLU
    assert p["12.weight"].gain == pytest.approx(1.0, rel=1e-12)  # last layer (1 ulp off on AVX-512)
    assert p["5.weight"].gain == pytest.approx(math.sqrt(2), abs=1e-9)
    # in train mode Dropout(0.5) doubles E[x²] before the last layer (tests/test_dropout.py)
    p = it.plan(models.vgg())
    assert p["9.weight"].gain == pytest.approx(math.sqrt(2), abs=1e-9)
    assert p["12.weight"].gain == pytest.approx(math.sqrt(0.5), rel=1e-12)


def test_transformer_gpt2_policy_scales_residual_projections():
    m = models.transformer()
    p = it.plan(m, "gpt2", example_input=torch.randn(2, 5, 32))
    assert "6 residual branches" in p.notes[0]
    for i in range(3):
        assert p[f"layers.{i}.self_attn.out_proj.weight"].std == pytest.approx(0.02 / math.sqrt(6))
        assert p[f"layers.{i}.linear2.weight"].std == pytest.approx(0.02 / math.sqrt(6))
        assert p[f"layers.{i}.linear1.weight"].std == pytest.approx(0.02)
        qkv = p[f"layers.{i}.self_attn.in_proj_weight"]
        assert qkv.chunks == 3 and (qkv.fan_in, qkv.fan_out) == (32, 32)


def test_transformer_auto_detects_gelu_and_per_block_qkv():
    x = torch.randn(2, 5, 32)
    p = it.plan(models.transformer(), example_input=x)
    # linear1 reads a LayerNorm's output (E[x²] = 1) and feeds GELU at q* = 1: gain 1
    lin1 = p["layers.0.linear1.weight"]
    assert lin1.gain == pytest.approx(1.0) and "gelu at q* 1 (" in lin1.reason
    qkv = p["layers.0.self_attn.in_proj_weight"]
    # the example input's own second moment reaches q/k/v: unit q/k/v for *this* input
    s = float(x.double().pow(2).mean())
    assert qkv.std == pytest.approx(1 / math.sqrt(32 * s)) and "torch: fan_out 96" in qkv.reason


def test_lstm_gru_rnn_per_gate():
    p = it.plan(nn.LSTM(8, 16, num_layers=2))
    hh = p["weight_hh_l0"]
    assert hh.scheme == S.orthogonal() and hh.chunks == 4
    assert p["weight_ih_l1"].chunks == 4 and (
        p["weight_ih_l1"].fan_in,
        p["weight_ih_l1"].fan_out,
    ) == (16, 16)
    assert p["bias_ih_l0"].scheme_for_chunk(1) == S.constant(1.0)
    assert p["bias_hh_l0"].scheme == S.zeros()
    assert "traced" not in " ".join(p.notes) or "single layer" in p.notes[0]
    gru = it.plan(nn.GRU(4, 6))
    assert gru["weight_hh_l0"].chunks == 3 and gru["bias_ih_l0"].chunk_schemes == ()
    rnn = it.plan(nn.RNN(4, 6, nonlinearity="relu"))
    # (not He's √2: the recurrence carries E[h²] again, see the next test)
    assert rnn["weight_ih_l0"].gain == pytest.approx(1.0, abs=1e-9)
    assert "in a recurrence" in rnn["weight_ih_l0"].reason


def test_a_stacked_relu_rnn_holds_its_state():
    """``h = relu(W_hh·h + W_ih·x)`` with ``W_hh`` orthogonal: ``E[h²] = ½(E[h²] + g²E[x²])``,
    so He's input gain doubled E[h²] in each layer (median over 12 draws 1.76 / 3.39 / 7.99 at
    1 / 2 / 3 layers); gain 1 holds it. The read-out is solved for the median of 5 probe draws
    (one draw's state scatters: its positive mean fed back through the orthogonal matrix)."""
    import statistics

    x = torch.randn(16, 256, 8, generator=torch.Generator().manual_seed(1))
    states, outs = [], []
    for seed in range(12):
        torch.manual_seed(seed)
        m = nn.Sequential()
        m.rnn, m.fc = nn.RNN(8, 32, num_layers=3, nonlinearity="relu"), nn.Linear(32, 4)

        class Last(nn.Module):
            def forward(self, out: tuple) -> torch.Tensor:
                return out[0][-1]

        m = nn.Sequential(m.rnn, Last(), m.fc)
        it.init_model(m, seed=seed)
        with torch.no_grad():
            h = m[0](x)[0]
            states.append(float(h.pow(2).mean()))
            outs.append(float(m(x).std()))
    assert 0.5 < statistics.median(states) < 2  # (He's: 7.99)
    assert sum(0.5 <= o <= 2 for o in outs) >= 9  # (10 of 12 measured; 7 with He's)


def test_conv_transpose_and_depthwise_fans():
    m = nn.Sequential(
        nn.ConvTranspose2d(16, 8, 4, stride=2, groups=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8),
        nn.ReLU(),
    )
    p = it.plan(m)
    t = p["0.weight"]  # (16, 4, 4, 4)
    assert (t.fan_in, t.fan_out) == (8 * 16 / 4, 4 * 16)
    d = p["2.weight"]
    assert (d.fan_in, d.fan_out) == (9, 9)


def test_embedding_padding_and_ties():
    p = it.plan(models.Tied())
    e = p["emb.weight"]
    assert e.zero_rows == (0,) and "tied with head.weight" in e.reason
    # planned once for both uses: the std that gives unit logits through the head
    assert "tied with 'head': std" in e.reason and "unit-variance logits" in e.reason
    assert "head.weight" not in {x.name for x in p}
    assert "tanh at q*" in p["fc.weight"].reason
    m = models.Tied()
    it.init_model(m, seed=0)
    logits = m(torch.randint(1, 50, (64, 8)))
    assert 0.7 < float(logits.pow(2).mean().sqrt()) < 1.4


def test_unknown_layers_are_reported_not_skipped():
    m = models.WithUnknown()
    p = it.plan(m)
    assert {e.name for e in p} == {n for n, _ in m.named_parameters()}
    for name in ("bil.weight", "bil.bias", "scale"):
        assert p[name].scheme is None and p[name].reason.startswith("left as is")
    assert "_OwnBilinear" in p["bil.weight"].reason
    before = {n: t.clone() for n, t in m.named_parameters()}
    p.apply(m, seed=0)
    for name in ("bil.weight", "bil.bias", "scale"):
        assert torch.equal(before[name], dict(m.named_parameters())[name])
    assert not torch.equal(before["fc.weight"], m.fc.weight)


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent: fx can not trace it
            return self.b(torch.relu(self.a(x)))
        return self.b(self.a(x))


def test_untraceable_without_input_says_so():
    p = it.plan(_Branchy())
    assert any("could not trace" in n for n in p.notes)
    assert "assumed linear" in p["a.weight"].reason


def test_transformer_containers_are_read_from_their_attributes():
    m = models.transformer()  # fx can not trace TransformerEncoderLayer's fast-path checks
    p = it.plan(m)  # no example input
    assert not any("could not trace" in n for n in p.notes)
    assert "gelu" in p["layers.0.linear1.weight"].reason
    assert "6 residual branches" in p.notes[0]
    g = it.plan(m, "gpt2")  # the depth rule is not dropped
    assert g["layers.0.linear2.weight"].std == pytest.approx(0.02 / math.sqrt(6))
    enc = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 2, 32, activation="gelu", norm_first=True),
        2,
        enable_nested_tensor=False,
    )
    q = it.plan(enc)  # the container is the model
    assert "gelu" in q["layers.1.linear1.weight"].reason
    assert "residual branches" in q.notes[0]
    dec = nn.TransformerDecoderLayer(16, 2, 32)
    r = it.plan(dec)
    assert "relu" in r["linear1.weight"].reason
    assert "3 residual branches" in r.notes[0]


def test_torch_default_policy_matches_torch_in_distribution():
    from scipy import stats

    from tests.conftest import P_MIN, ks_p

    lin = nn.Linear(300, 200)
    p = it.plan(lin, "torch-default")
    bound = 1 / math.sqrt(300)
    assert p["weight"].std == pytest.approx(bound / math.sqrt(3))
    p.apply(lin, seed=1)
    assert ks_p(lin.weight.detach().numpy(), stats.uniform(-bound, 2 * bound)) > P_MIN
    assert lin.bias.abs().max().item() <= bound
    lstm = nn.LSTM(4, 25)
    it.plan(lstm, "torch-default").apply(lstm, seed=0)
    assert lstm.weight_hh_l0.abs().max().item() <= 1 / 5
    mha = nn.MultiheadAttention(16, 2)
    pm = it.plan(mha, "torch-default")
    assert pm["in_proj_weight"].std == pytest.approx(math.sqrt(2 / (16 + 48)) * 1)


@pytest.mark.parametrize("policy", it.POLICIES)
def test_every_policy_plans_and_applies(policy):
    m = models.resnet()
    batch = torch.randn(8, 3, 16, 16) if policy == "lsuv" else None
    p = it.plan(m, policy, example_input=batch)
    p.apply(m, seed=0)
    assert all(torch.isfinite(t).all() for t in m.parameters())
    assert m(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_auto_init_preserves_signal_in_a_deep_relu_mlp():
    # mean-field predictions for post-ReLU E[x²] after 20 layers of width n = 256:
    # He: q_{l+1} = (2/n)·n·q_l/2 = q_l -> 1; Xavier: q_1 = E[x²] = 1 and q halves per layer,
    # q_20 = 2^-19, post-ReLU output q_20/2 = 2^-20;
    # torch default: weights Var 1/(3n), biases Var 1/(3n): fixed point
    # q* = (1/(3n)) / (1 - 1/6), output E[relu²] = q*/2.
    # One network is a finite-width random walk (seen: 0.34 to 2.2 for He), so average 8 seeds.
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(0))
    ratios = {}
    for policy in ("auto", "torch-default", "xavier"):
        vals = []
        for seed in range(8):
            m = models.deep_mlp(20)
            it.plan(m, policy).apply(m, seed=seed)
            with torch.no_grad():
                vals.append((m(x) ** 2).mean().item() / (x**2).mean().item())
        ratios[policy] = sum(vals) / len(vals)
    assert ratios["auto"] == pytest.approx(1.0, rel=0.3)
    assert ratios["xavier"] == pytest.approx(2.0**-20, rel=0.3)
    n = 256
    assert ratios["torch-default"] == pytest.approx((1 / (3 * n)) / (1 - 1 / 6) / 2, rel=0.25)


def test_overrides():
    m = models.resnet()
    p = it.plan(
        m,
        overrides={
            "*.bias": "zeros",
            "fc.*": {"scheme": "normal", "std": 0.01},
            "stem.0.weight": S.orthogonal(2.0),
        },
    )
    assert p["fc.weight"].std == 0.01 and "override 'fc.*'" in p["fc.weight"].reason
    assert p["stem.0.weight"].scheme == S.orthogonal(2.0)
    assert p["fc.weight"].fan_in == 64  # fans kept
    left = p.override({"fc.bias": None})
    assert left["fc.bias"].scheme is None
    with pytest.raises(ValueError, match="matches no parameter"):
        p.override({"fcc.*": "zeros"})
    with pytest.raises(ValueError, match="does not fit parameter 'stem.0.weight'"):
        p.override({"stem.0.weight": "eye"})
    with pytest.raises(ValueError, match="unknown scheme 'he'"):
        p.override({"fc.weight": "he"})
    with pytest.raises(TypeError, match="scheme 'normal'"):
        p.override({"fc.weight": {"scheme": "normal", "sigma": 1}})


def test_json_round_trip_and_table():
    p = it.plan(nn.LSTM(4, 8), overrides={"weight_ih_l0": "he_normal"})
    q = Plan.from_json(p.to_json())
    assert q == p
    text = p.render(200)
    assert "weight_hh_l0" in text and "orthogonal ×4 blocks" in text
    assert "block 1: ones" in text  # forget-gate bias


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: "not json", "could not be parsed"),
        (lambda d: [], "must be an object"),
        (lambda d: {**d, "format": "x"}, "not an initwise plan"),
        (lambda d: {**d, "version": 99}, "version 99"),
        (lambda d: {**d, "entries": {}}, "'entries' must be a list"),
        (lambda d: {**d, "entries": [{"name": "a"}]}, "missing key 'shape'"),
        (lambda d: {**d, "entries": [{**d["entries"][0], "bogus": 1}]}, "unknown keys"),
        (
            lambda d: {**d, "entries": [{**d["entries"][0], "scheme": {"type": "magic"}}]},
            "unknown scheme type 'magic'",
        ),
        (lambda d: {**d, "entries": [{**d["entries"][0], "chunks": 5}]}, "not divisible"),
        (lambda d: {**d, "entries": [d["entries"][0], d["entries"][0]]}, "two entries"),
        (lambda d: {**d, "entries": [{**d["entries"][0], "fan_in": -1}]}, "fans must be"),
    ],
)
def test_corrupt_plan_json_is_rejected_clearly(mutate, match):
    d = it.plan(nn.Linear(4, 6)).to_dict()
    text = mutate(d)
    with pytest.raises(ValueError, match=match):
        Plan.from_json(text if isinstance(text, str) else json.dumps(text))


def test_bad_policy_and_model():
    with pytest.raises(ValueError, match="unknown policy 'kaiming'; policies: auto"):
        it.plan(nn.Linear(2, 2), "kaiming")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        it.plan("model")


def test_a_keep_override_is_not_an_assumption():
    """`overrides={"0.bias": None}` (keep) said "no rule for 0.bias" and strict=True raised,
    asking for the override the user had given."""
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = it.plan(m, "he", overrides={"0.bias": None}, strict=True)
    assert p["0.bias"].scheme is None and p["0.bias"].reason.startswith("override '0.bias'")


def test_summed_lookups_of_one_input_are_no_residual():
    """A tabular model's `Σ emb_i(x[:, i])` (and MusicGen's codebooks) read as residual
    branches — `(e0 + e1) + e2` has more layers on one side — so the later embeddings were
    solved as branch ends for a share of the stream."""
    import torch
    from torch import nn

    import initwise.torch as it

    class Tabular(nn.Module):
        def __init__(self):
            super().__init__()
            self.cols = nn.ModuleList([nn.Embedding(10, 16) for _ in range(4)])
            self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, x):
            h = self.cols[0](x[:, 0])
            for i in range(1, 4):
                h = h + self.cols[i](x[:, i])
            return self.mlp(h)

    x = torch.randint(0, 10, (8, 4))
    p = it.plan(Tabular(), "auto", example_input=x, strict=True)
    assert "residual" not in p.notes[0]
    assert all("residual" not in e.reason for e in p)


class _TvBlock(nn.Module):
    """torchvision's names without a Hugging Face config: ConvNeXt's ``layer_scale`` (C, 1, 1),
    Swin v2's per-head ``logit_scale`` (H, 1, 1), its ``cpb_mlp`` and Swin's
    ``relative_position_bias_table``, ViT's ``class_token`` and ``pos_embedding``."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.empty(1, 5, d).normal_(std=0.02))
        self.proj = nn.Linear(d, d)
        self.layer_scale = nn.Parameter(torch.full((d, 1, 1), 1e-6))
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.relative_position_bias_table = nn.Parameter(torch.randn(9, heads) * 0.02)
        self.rel_pos_h = nn.Parameter(torch.randn(9, d // heads) * 0.02)  # MViT v2's
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, heads, bias=False))
        self.register_buffer("coords", torch.rand(9, 2) * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 4, d)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embedding
        bias = 16 * torch.sigmoid(self.cpb_mlp(self.coords)) + self.relative_position_bias_table
        bias = bias + self.rel_pos_h.mean()
        h = self.proj(x) * self.logit_scale.exp().mean() + bias.mean()
        return x + self.layer_scale.flatten() * h


def test_configless_vision_parameters_get_rules_not_assumptions():
    torch.manual_seed(0)
    m = _TvBlock()
    plan = it.plan(m, "auto", strict=True)  # before: "no rule for … (left as is)"
    r = {e.name: e.reason or "" for e in plan.entries}
    assert r["layer_scale"].startswith("kept: ") and r["logit_scale"].startswith("kept: ")
    assert "zeros" in r["relative_position_bias_table"] and "std 0.02" in r["class_token"]
    assert "zeros" in r["rel_pos_h"]
    assert "N(0, 0.02²)" in r["pos_embedding"]
    assert r["cpb_mlp.2.weight"].startswith("zeros: the output layer of Swin v2's position-bias")
    plan.apply(m, seed=0)
    assert torch.equal(m.layer_scale, torch.full((16, 1, 1), 1e-6))  # as built
    assert float(m.pos_embedding.detach().std()) == pytest.approx(0.02, rel=0.3)
    with torch.no_grad():
        assert torch.equal(m.cpb_mlp(m.coords), torch.zeros(9, 2))  # a flat bias at init


@torch.fx.wrap
def _squeeze(x: torch.Tensor, dim: int, tensor_dim: int) -> torch.Tensor:
    return x.squeeze(dim) if tensor_dim == 4 else x


def test_private_helpers_named_as_shape_ops_pass_moments():
    """torchvision's MViT wraps `_squeeze(x, …, tensor_dim)` for fx; its int input is a graph
    node like a tensor's, and a two-input unknown function gave "input moments unknown"."""

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x)).unsqueeze(1)
            return self.b(_squeeze(h, 1, h.dim()))

    plan = it.plan(M(), "auto", strict=True)  # before: "b: input moments unknown"
    assert "input E[x²] 1, mean 0.564" in (plan["b.weight"].reason or "")  # ReLU of unit q


class _BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d in small: a BatchNorm with its activation inside, calling
    ``F.batch_norm`` itself (fx traces into it: the norm is a function node)."""

    def __init__(self, c: int) -> None:
        super().__init__(c)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training
        )
        return self.act(x)


class _GlobalResponseNorm(nn.Module):  # timm's name (HF's is …GRN)
    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(c)), nn.Parameter(torch.randn(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.norm(p=2, dim=(1, 2), keepdim=True)
        return x + self.bias + self.weight * (x * g / (g.mean(-1, keepdim=True) + 1e-6))


_GlobalResponseNorm.__name__ = "GlobalResponseNorm"


class Affine(nn.Module):  # ResMLP's (timm)
    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha, self.beta = (
            nn.Parameter(torch.randn(1, 1, c)),
            nn.Parameter(torch.randn(1, 1, c)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha + self.beta


class Scale(nn.Module):  # timm's MetaFormer layer scale module
    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(1e-5 * torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)


class _TimmLike(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, c, 3, padding=1), _BatchNormAct(c)
        self.pw = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(1e-6 * torch.ones(c))  # timm's ConvNeXt block
        self.grn = _GlobalResponseNorm(c)
        self.scale = Scale(c)
        self.aff = Affine(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.softmax = nn.Softmax(dim=-1)  # timm's Swin: a module
        self.attention_biases = nn.Parameter(torch.randn(2, 16))  # LeViT's, config-less

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x))
        h = h + self.pw(h).mul(self.gamma.reshape(1, -1, 1, 1))
        h = h + self.scale(self.pw(h))
        t = self.grn(h.permute(0, 2, 3, 1)).flatten(1, 2)  # (B, 16, c)
        t = self.aff(t)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        a = self.softmax(q @ k.transpose(1, 2) + self.attention_biases.mean())
        return self.proj(a @ v)


def test_timm_patterns_are_planned_without_assumptions():
    """Function norms (BatchNormAct2d), a softmax module, GlobalResponseNorm and ResMLP's Affine
    (identities at init), timm's layer scales (`gamma`, MetaFormer's `Scale`), LeViT's
    config-less `attention_biases`: before, "input moments unknown" or "no rule". (Its last
    attention is read by a layer that ends no residual branch: measured on the example input,
    else it would be said.)"""
    torch.manual_seed(0)
    m = _TimmLike()
    x = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.warns(AssumptionWarning, match="proj: its input passed attention"):
        it.plan(m, "auto")
    plan = it.plan(m, "auto", strict=True, example_input=x)
    r = {e.name: e.reason or "" for e in plan.entries}
    assert r["gamma"].startswith("kept: ") and r["scale.scale"].startswith("kept: ")
    assert "zeros" in r["grn.weight"] and "zeros" in r["grn.bias"]
    assert "alpha: ones" in r["aff.alpha"] and "beta: zeros" in r["aff.beta"]
    assert "zeros" in r["attention_biases"]
    assert "input E[x²] 0.356" in r["pw.weight"]  # SiLU of the function norm's unit output
    assert "input moments unknown" not in r["proj.weight"]
    plan.apply(m, seed=0)
    assert torch.equal(m.aff.alpha, torch.ones(1, 1, 8)) and not m.grn.weight.any()


class _Untraceable(nn.Module):
    """fx cannot trace it (control flow on a tensor value); timm states its input size in
    ``pretrained_cfg``, so it is traced by running zeros of that size. timm's token names."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.pretrained_cfg = {"input_size": (3, 8, 8)}
        self.embed = nn.Conv2d(3, d, 4, stride=4)
        self.cls_token_0 = nn.Parameter(torch.zeros(1, 1, d))  # CrossViT's names
        self.reg_token = nn.Parameter(torch.zeros(1, 2, d))  # timm's register tokens
        self.pos_embed_0 = nn.Parameter(torch.zeros(1, 5, d))
        self.q_bias, self.v_bias = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.temperature = nn.Parameter(torch.ones(2, 1, 1))  # XCiT's
        self.gamma1 = nn.Parameter(1e-5 * torch.ones(d))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token_0.expand(t.shape[0], -1, -1), t], 1) + self.pos_embed_0
        t = torch.cat([t, self.reg_token.expand(t.shape[0], -1, -1)], 1)
        if t.sum() > 1e9:  # data-dependent control flow
            t = t / 2
        t = t + self.q_bias + self.v_bias + self.temperature.mean()
        return t + self.gamma1 * self.fc2(torch.nn.functional.gelu(self.fc1(t)))


def test_timm_models_are_traced_on_their_stated_input_size_and_tokens_get_rules():
    torch.manual_seed(0)
    plan = it.plan(_Untraceable(), "auto", strict=True)  # before: not traced, no rules
    r = {e.name: e.reason or "" for e in plan.entries}
    assert "gelu" in r["fc1.weight"]  # the activation was found by running
    assert "std 0.02" in r["cls_token_0"] and "N(0, 0.02²)" in r["pos_embed_0"]
    assert "std 0.02" in r["reg_token"]
    assert "zeros" in r["q_bias"] and "zeros" in r["v_bias"]
    assert r["temperature"].startswith("kept: ") and r["gamma1"].startswith("kept: ")


def test_a_linear_called_through_its_weight_is_that_module():
    """BEiT's and EVA's attention: ``F.linear(x, self.qkv.weight, cat(q_bias, 0, v_bias))``."""

    class Attn(nn.Module):
        def __init__(self, d: int = 16) -> None:
            super().__init__()
            self.norm, self.qkv, self.proj = (
                nn.LayerNorm(d),
                nn.Linear(d, 3 * d, bias=False),
                nn.Linear(d, d),
            )
            self.q_bias, self.v_bias = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
            qkv = torch.nn.functional.linear(self.norm(x), weight=self.qkv.weight, bias=b)
            q, k, v = qkv.chunk(3, dim=-1)
            a = torch.softmax(q @ k.transpose(-2, -1) * 0.25, dim=-1)
            return x + self.proj(a @ v)

    plan = it.plan(Attn(), "auto", strict=True)  # before: "proj: input moments unknown"
    assert "input E[x²] 1 " in (plan["qkv.weight"].reason or "")  # the norm's output
    assert "input moments unknown" not in (plan["proj.weight"].reason or "")


class LearnableAffineBlock(nn.Module):  # HGNetV2's (timm)
    def __init__(self) -> None:
        super().__init__()
        self.scale, self.bias = nn.Parameter(torch.tensor([2.0])), nn.Parameter(torch.tensor([1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.bias


class ScaledStdConv2d(nn.Conv2d):  # NFNets' (timm): the weight standardized in the forward
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return self._conv_forward(x, self.gain * w / w[0].numel() ** 0.5, self.bias)


class _TimmLike2(nn.Module):
    def __init__(self, c: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.conv, self.lab = ScaledStdConv2d(3, c, 3, padding=1), LearnableAffineBlock()
        self.fc = nn.Linear(c, c)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads)))  # Swin v2 CR: (H,)
        self.gating_param = nn.Parameter(torch.ones(heads))  # ConViT
        self.height_rel = nn.Parameter(torch.randn(7, 4) * 0.5)  # BoTNet, HaloNet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lab(torch.relu(self.conv(x))).mean((2, 3))
        extra = self.logit_scale.sum() + self.gating_param.sum() + self.height_rel.sum()
        return self.fc(h) + 0 * extra


def test_more_timm_parameters_get_rules():
    torch.manual_seed(0)
    m = _TimmLike2()
    plan = it.plan(m, "auto", strict=True)  # before: "no rule for conv.gain, lab.scale, …"
    r = {e.name: e.reason or "" for e in plan.entries}
    assert "ones" in r["lab.scale"] and "zeros" in r["lab.bias"]
    for name in ("conv.gain", "logit_scale", "gating_param", "height_rel"):
        assert r[name].startswith("kept: "), name
    assert "input moments unknown" not in r["fc.weight"]  # through the affine block
    plan.apply(m, seed=0)
    assert float(m.lab.scale) == 1.0 and float(m.lab.bias) == 0.0


def test_a_norm_called_as_a_function_follows_the_module_rule():
    """``F.rms_norm`` divides without centering: like an RMSNorm module it keeps the mean's share
    of its input (a ReLU's output here), where ``F.layer_norm`` centers."""

    class M(nn.Module):
        def __init__(self, rms: bool) -> None:
            super().__init__()
            self.rms, self.a, self.b = rms, nn.Linear(16, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            norm = torch.nn.functional.rms_norm if self.rms else torch.nn.functional.layer_norm
            return self.b(norm(h, (16,)))

    rms = it.plan(M(True), "auto", strict=True)["b.weight"].reason or ""
    ln = it.plan(M(False), "auto", strict=True)["b.weight"].reason or ""
    assert "input E[x²] 1, mean 0.564" in rms  # E[relu]/√E[relu²] for q 2: 0.564/1
    assert "input E[x²] 1 →" in ln
