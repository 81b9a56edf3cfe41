"""μP (issue 14, part): roles from the graph, init and learning-rate multipliers in the plan,
param_groups through wrappers and state_dict round trips, and a coordinate check."""

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.plan import Plan  # noqa: E402
from tests.models import width_mlp  # noqa: E402

mlp = width_mlp


def test_roles_multipliers_and_init_follow_table_3():
    base, width = 64, 256
    p = it.plan(mlp(width), it.MuP(base_width=base))
    m = width / base
    first, hidden, out = p["0.weight"], p["2.weight"], p["4.weight"]
    assert dict(first.lr_mult) == {"adam": 1.0, "sgd": m}
    assert dict(hidden.lr_mult) == {"adam": 1 / m, "sgd": 1.0}
    assert dict(out.lr_mult) == {"adam": 1 / m, "sgd": 1 / m}
    assert dict(p["0.bias"].lr_mult) == {"adam": 1.0, "sgd": m}
    assert dict(p["4.bias"].lr_mult) == {"adam": 1.0, "sgd": 1.0}
    auto = it.plan(mlp(width))
    assert first.std == pytest.approx(auto["0.weight"].std)
    assert hidden.std == pytest.approx(auto["2.weight"].std)
    assert out.std == pytest.approx(auto["4.weight"].std / math.sqrt(m))
    assert "Table 3" in out.reason and any("param_groups" in n for n in p.notes)
    # at the base width μP is auto with multipliers 1
    b = it.plan(mlp(base), it.MuP(base_width=base))
    assert all(v == 1.0 for e in b for _, v in e.lr_mult if e.name != "0.weight")
    with pytest.raises(ValueError, match="base_width"):
        it.MuP(base_width=0)


def test_multipliers_survive_json_and_reach_the_optimizer_through_wrappers(tmp_path):
    model = mlp(128)
    p = it.plan(model, it.MuP(base_width=32))
    path = tmp_path / "plan.json"
    p.save(str(path))
    q = Plan.load(str(path))
    assert [e.lr_mult for e in q] == [e.lr_mult for e in p]
    groups = q.param_groups(model, lr=1e-3, optimizer="adam")
    by_id = {id(t): g["lr"] for g in groups for t in g["params"]}
    assert by_id[id(model[2].weight)] == pytest.approx(1e-3 / 4)
    assert by_id[id(model[0].weight)] == pytest.approx(1e-3)
    torch.optim.AdamW(groups)  # torch accepts the groups as they are
    for wrapped in (torch.compile(model), nn.DataParallel(model)):
        g2 = q.param_groups(wrapped, lr=1e-3)
        assert {id(t): g["lr"] for g in g2 for t in g["params"]} == by_id
    fresh = mlp(128)  # a new model after a state_dict round trip: same names, same groups
    fresh.load_state_dict(model.state_dict())
    g3 = q.param_groups(fresh, lr=1e-3, optimizer="sgd")
    assert {round(g["lr_mult"], 6) for g in g3} == {4.0, 1.0, 0.25}
    with pytest.raises(ValueError, match="optimizer must be one of"):
        q.param_groups(model, lr=1e-3, optimizer="lion")
    with pytest.raises(TypeError, match=r"lr must be a finite number > 0 \(e.g. 3e-4\), got 'a'"):
        q.param_groups(model, lr="a")  # (was float()'s "could not convert string to float")
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1.0"):
        q.param_groups(model, lr=-1)
    with pytest.raises(ValueError, match="plan lacks"):
        q.param_groups(mlp(64), lr=1e-3) if False else q.param_groups(nn.Linear(3, 3), lr=1e-3)


def _update_size(width: int, policy, steps: int = 4, lr: float = 0.02) -> float:
    """rms change of the hidden activations after a few Adam steps (the coordinate check)."""
    torch.manual_seed(0)
    model = mlp(width)
    p = it.init_model(model, policy, seed=0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 32, generator=g), torch.randint(0, 10, (256,), generator=g)
    hidden = nn.Sequential(*list(model)[:4])
    before = hidden(x).detach()
    opt = torch.optim.Adam(
        p.param_groups(model, lr=lr) if p.policy == "mup" else model.parameters(), lr=lr
    )
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return float((hidden(x).detach() - before).pow(2).mean().sqrt())


def test_coordinate_check_update_size_does_not_grow_with_width_under_mup():
    widths = (64, 256, 1024)
    mup = [_update_size(w, it.MuP(base_width=64)) for w in widths]
    sp = [_update_size(w, "auto") for w in widths]
    # standard parametrization: the hidden activations' per-step change grows with width
    assert sp[-1] / sp[0] > 3.0
    # μP: it stays within a factor 2 from width 64 to 1024
    assert 0.5 < mup[-1] / mup[0] < 2.0


def test_coord_check_api_flat_under_mup_and_growing_under_sp(tmp_path):
    from initwise.diagnostics import coord_check

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(128, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
    widths = (64, 256, 1024)
    mup = coord_check(
        mlp, widths, x, y, policy=lambda w: it.MuP(base_width=64), lr=0.02, label="μP"
    )
    sp = coord_check(mlp, widths, x, y, policy="auto", lr=0.02)
    assert mup.layers == ["0", "2", "4"]
    assert 0.5 < mup.growth()["2"] < 2.0  # hidden layer: flat across a 16× width range
    assert sp.growth()["2"] > 3.0
    pytest.importorskip("matplotlib")
    path = mup.plot(str(tmp_path / "coord.png"))
    assert (tmp_path / "coord.png").stat().st_size > 1000 and path.endswith("coord.png")
    with pytest.raises(ValueError, match="two positive widths"):
        coord_check(mlp, (64,), x, y)


def test_coord_check_is_seeded_and_leaves_the_global_rng_alone():
    # the constructors' draws and dropout come from `seed` in a forked RNG: the same result on
    # every call, and the caller's random stream does not move (it did before)
    from initwise.diagnostics import coord_check

    def make(w: int) -> nn.Module:
        return nn.Sequential(nn.Linear(8, w), nn.ReLU(), nn.Dropout(0.1), nn.Linear(w, 4))

    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 8, generator=g), torch.randint(0, 4, (16,), generator=g)
    state = torch.get_rng_state().clone()
    a = coord_check(make, (16, 32), x, y, steps=2)
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(99)
    b = coord_check(make, (16, 32), x, y, steps=2)
    assert a.rms == b.rms and a.delta == b.delta
    c = coord_check(make, (16, 32), x, y, steps=2, seed=1)
    assert c.delta != a.delta


def test_cli_coord_check(tmp_path, capsys):
    from initwise.cli import main

    f = tmp_path / "wide.py"
    f.write_text(
        "from torch import nn\n"
        "def make(width=64):\n"
        "    return nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width),"
        " nn.ReLU(), nn.Linear(width, 4))\n"
    )
    args = ["diagnose", f"{f}:make", "--input-shape", "64,16", "--coord-check"]
    assert main([*args, "--widths", "32,128", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "μP (base 32)" in out and "standard (auto)" in out
    assert main(args) == 2  # no --widths
    assert "needs --widths" in capsys.readouterr().err


def test_coord_check_of_a_transformer_encoder(tmp_path, capsys):
    """nn.MultiheadAttention computes with its out_proj's weight without calling the module:
    the check raised KeyError for every nn.TransformerEncoder. The attention is measured under
    its own name, out_proj is listed as not measured, and the CLI says so."""
    from initwise.cli import main
    from initwise.diagnostics import coord_check

    src = (
        "from torch import nn\n"
        "def make(width=32):\n"
        "    layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0,"
        " batch_first=True, norm_first=True)\n"
        "    return nn.Sequential(nn.Linear(8, width), nn.TransformerEncoder(layer, 2,"
        " enable_nested_tensor=False),"
        " nn.Linear(width, 4))\n"
    )
    f = tmp_path / "enc.py"
    f.write_text(src)
    scope: dict = {}
    exec(src, scope)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 6, 8, generator=g), torch.randn(4, 6, 4, generator=g)
    cc = coord_check(scope["make"], (32, 64), x, y, steps=2)
    assert "1.layers.0.self_attn" in cc.layers and "1.layers.0.linear1" in cc.layers
    assert cc.unmeasured == ["1.layers.0.self_attn.out_proj", "1.layers.1.self_attn.out_proj"]
    assert set(cc.growth()) == set(cc.layers)
    args = ["diagnose", f"{f}:make", "--input-shape", "4,6,8", "--coord-check"]
    assert main([*args, "--widths", "32,64", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "not measured (not called as modules in forward): 1.layers.0.self_attn.out_proj" in out


def test_mup_attention_switches_hf_logits_to_one_over_d():
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100)
    )
    p = it.plan(model, it.MuP(base_width=32))
    assert any("mup_attention" in n for n in p.notes)
    names = it.mup_attention(model)
    assert len(names) == 2
    attn = model.transformer.h[0].attn
    assert attn.scaling == pytest.approx(1 / 16)  # head_dim 16: 1/d
    it.mup_attention(model)  # idempotent
    assert attn.scaling == pytest.approx(1 / 16)
    out = model(torch.randint(0, 100, (2, 8))).logits
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="MultiheadAttention"):
        it.mup_attention(nn.TransformerEncoderLayer(16, 2))
    with pytest.raises(ValueError, match="no attention module"):
        it.mup_attention(mlp(8))


def _encoder_lm(width: int) -> nn.Module:
    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, width)
            layer = nn.TransformerEncoderLayer(
                width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.head = nn.Linear(width, 50)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.enc(self.emb(x)))

    return LM()


def _cnn(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def _lstm(width: int) -> nn.Module:
    class R(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(8, width, 2, batch_first=True)
            self.out = nn.Linear(width, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rnn(x)[0])

    return R()


@pytest.mark.parametrize("make", [_encoder_lm, _cnn, _lstm], ids=["encoder", "cnn", "lstm"])
def test_every_multiplier_is_one_at_the_base_width_and_m_above_it(make):
    """μP at the base width is auto (every multiplier 1) — before, a 4·d feed-forward layer had
    m = 4 there, a 3×3 convolution m = 9, a depthwise one Adam ×7.1 at every width — and
    attention and recurrent weights, which had none, get μP's."""
    base = 32
    p = it.plan(make(base), it.MuP(base_width=base))
    assert {v for e in p for _, v in e.lr_mult} == {1.0}
    assert all(e.lr_mult for e in p), [e.name for e in p if not e.lr_mult]
    q = it.plan(make(4 * base), it.MuP(base_width=base))
    adam = {e.name: dict(e.lr_mult)["adam"] for e in q}
    sgd = {e.name: dict(e.lr_mult)["sgd"] for e in q}
    assert set(adam.values()) <= {1.0, 0.25} and set(sgd.values()) <= {1.0, 4.0, 0.25}
    hidden = {
        _encoder_lm: ["enc.layers.0.self_attn.in_proj_weight", "enc.layers.0.linear2.weight"],
        _cnn: ["4.weight"],
        _lstm: ["rnn.weight_hh_l0", "rnn.weight_ih_l1"],
    }[make]
    assert all(adam[n] == 0.25 and sgd[n] == 1.0 for n in hidden)
    vector = {
        _encoder_lm: ["enc.layers.0.self_attn.in_proj_bias"],
        _cnn: ["2.weight"],  # depthwise: one width dimension
        _lstm: ["rnn.bias_ih_l0", "rnn.weight_ih_l0"],  # (reads the data: input-like)
    }[make]
    assert all(adam[n] == 1.0 and sgd[n] == 4.0 for n in vector)


def test_the_models_width_is_inferred_or_given():
    p = it.plan(_encoder_lm(128), it.MuP(base_width=32))
    assert any("width 128 (its residual stream's" in n and "m = 4 " in n for n in p.notes)
    cnn = it.plan(_cnn(128), it.MuP(base_width=32))  # (its stem's channels)
    assert any("width 128 (the output size" in n for n in cnn.notes)
    transformers = pytest.importorskip("transformers")
    mamba = transformers.MambaForCausalLM(
        transformers.MambaConfig(vocab_size=64, hidden_size=128, state_size=8, num_hidden_layers=1)
    )  # its inner width 2·d is the most common size: the width is its stream's, d
    q = it.plan(mamba, it.MuP(base_width=32))
    assert any("width 128 (its residual stream's" in n and "m = 4 " in n for n in q.notes)
    assert dict(q["backbone.layers.0.mixer.in_proj.weight"].lr_mult)["adam"] == 0.25
    q = it.plan(_encoder_lm(128), it.MuP(base_width=32, width=64))  # (given, not inferred)
    assert dict(q["enc.layers.0.linear1.weight"].lr_mult)["adam"] == 0.5
    assert any("width 64 (given)" in n for n in q.notes)
    for bad in (0, 2.5, True, "64"):
        with pytest.raises(ValueError, match="MuP: width must be a positive integer"):
            it.MuP(base_width=32, width=bad)


def test_parameters_outside_any_layer_rule_get_multipliers_by_their_shape():
    """A class token, a position table, a layer scale and a (positions × heads) table had no
    multipliers (LR × 1 at every width); by their shape: one dimension that grows with the
    width → vector-like (Adam × 1, SGD × m), none → × 1, two → a hidden matrix."""

    class Tokens(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.proj = nn.Linear(12, width)
            self.cls = nn.Parameter(torch.zeros(1, 1, width))
            self.pos = nn.Parameter(torch.zeros(1, 9, width))
            self.gamma = nn.Parameter(torch.full((width,), 0.1))
            self.table = nn.Parameter(torch.zeros(9, 4))  # (positions, heads): no width
            self.mix = nn.Parameter(torch.eye(width))
            self.fc = nn.Linear(width, width)
            self.head = nn.Linear(width, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.proj(x)], 1) + self.pos
            h = h + self.table.sum(1)[None, :, None]
            h = h @ self.mix
            return self.head((h + self.gamma * torch.relu(self.fc(h))).mean(1))

    base = 16
    p = it.plan(Tokens(base), it.MuP(base_width=base))
    assert all(e.lr_mult for e in p) and {v for e in p for _, v in e.lr_mult} == {1.0}
    q = {e.name: dict(e.lr_mult) for e in it.plan(Tokens(4 * base), it.MuP(base_width=base))}
    for n in ("cls", "pos", "gamma"):
        assert q[n] == {"adam": 1.0, "sgd": 4.0}, n
    assert q["table"] == {"adam": 1.0, "sgd": 1.0}
    assert q["mix"] == {"adam": 0.25, "sgd": 1.0}


def test_width_is_the_residual_streams_not_a_feature_encoders():
    """A wav2vec2-like model: a 32-channel convolutional feature encoder (its input layer),
    then a 64-wide residual stream. The width is the stream's (the input layer's 32 made m half
    the ratio of the stream a user scales)."""

    class Speech(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.feat = nn.Conv1d(1, 32, 10, stride=5)
            self.proj = nn.Linear(32, width)
            self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
            self.ln = nn.LayerNorm(width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.proj(torch.relu(self.feat(x)).transpose(1, 2))
            return h + self.fc2(torch.relu(self.fc1(self.ln(h))))

    p = it.plan(Speech(64), it.MuP(base_width=16))
    assert any("width 64 (its residual stream's" in n and "m = 4 " in n for n in p.notes)
    assert dict(p["fc2.weight"].lr_mult)["adam"] == 0.25


def test_cli_plan_and_apply_with_mup(tmp_path, capsys):
    """`--policy mup --base-width N [--width W]` on plan and apply (MuP was Python-only); the
    flags without each other refused; apply says the learning-rate multipliers need the plan;
    `plan(model, "mup")` says how to give the base width."""
    from initwise.cli import main
    from initwise.plan import Plan

    f = tmp_path / "wide.py"
    f.write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 128),"
        " nn.ReLU(), nn.Linear(128, 4))\n"
    )
    js = tmp_path / "p.json"
    args = ["plan", f"{f}:make", "--policy", "mup", "--base-width", "32", "--quiet"]
    assert main([*args, "--json", str(js)]) == 0
    assert dict(Plan.load(str(js))["2.weight"].lr_mult) == {"adam": 0.25, "sgd": 1.0}
    assert main([*args, "--width", "64", "--json", str(js)]) == 0  # (given, not inferred)
    assert dict(Plan.load(str(js))["2.weight"].lr_mult)["adam"] == 0.5
    out = tmp_path / "w.safetensors"
    apply = ["apply", f"{f}:make", "--policy", "mup", "--base-width", "32", "--out", str(out)]
    assert main(apply) == 0
    assert "learning-rate multipliers (μP)" in capsys.readouterr().out
    assert main(["plan", f"{f}:make", "--policy", "mup"]) == 2
    assert "--policy mup needs --base-width" in capsys.readouterr().err
    assert main(["plan", f"{f}:make", "--base-width", "32"]) == 2
    assert "--base-width is μP's" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"policy 'mup' needs its base width.*MuP\(base_width"):
        it.plan(nn.Linear(4, 4), "mup")


def test_the_plan_table_shows_the_multipliers():
    """A μP plan's table has the learning-rate multipliers (and a forward multiplier where the
    plan has one) as columns — they were only in the reasons, so `plan --no-reasons` showed
    none; an `auto` plan's table is as it was."""
    from rich.console import Console

    def text(p) -> str:
        con = Console(width=200, record=True)
        con.print(p.table(reasons=False))
        return con.export_text()

    mup = text(it.plan(mlp(128), it.MuP(base_width=32)))
    assert "LR× Adam" in mup and "LR× SGD" in mup and "forward×" not in mup
    row = next(line for line in mup.splitlines() if "2.weight" in line)
    assert row.split("│")[-3].strip() == "0.25"  # (the hidden layer's Adam multiplier)
    auto = text(it.plan(mlp(128)))
    assert "LR×" not in auto and "forward×" not in auto
    assert "forward×" in text(it.plan(mlp(128), "u-mup"))


def test_a_recurrent_layers_input_weights_keep_their_base_width_std():
    """auto draws an LSTM's input weights by Xavier per gate, (fan_in + fan_out)/2: reading 16
    features, their std fell as the width grew (0.158 → 0.044 from 64 to 1024) and the state
    with it (rms 0.127 → 0.055), where μP's input weights keep theirs. MuP sets them to their
    base-width std; the state's scale is then the same at both widths."""

    def make(width: int) -> nn.Module:
        return _lstm(width)

    p64 = it.plan(make(64), it.MuP(base_width=64))
    p1k = it.plan(make(1024), it.MuP(base_width=64))
    assert p1k["rnn.weight_ih_l0"].std == pytest.approx(p64["rnn.weight_ih_l0"].std)
    assert p64["rnn.weight_ih_l0"].std == pytest.approx(it.plan(make(64))["rnn.weight_ih_l0"].std)
    assert p1k["rnn.weight_ih_l1"].std == pytest.approx(p64["rnn.weight_ih_l1"].std / 4)  # hidden
    x = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(0))
    rms = {}
    for w in (64, 1024):
        m = make(w)
        it.init_model(m, it.MuP(base_width=64), seed=0)
        with torch.no_grad():
            rms[w] = float(m.rnn(x)[0].pow(2).mean().sqrt())
    assert rms[1024] == pytest.approx(rms[64], rel=0.2), rms


def test_a_guessed_width_is_said():
    """No residual stream and input layers of two sizes: the width is the most common size, a
    guess, said as an assumption (strict raises); given, it is not said."""
    import warnings

    from initwise.torch import AssumptionWarning

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 64), nn.Linear(5, 32)
            self.mid, self.out = nn.Linear(96, 64), nn.Linear(64, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            h = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(y))], -1)
            return self.out(torch.relu(self.mid(h)))

    with pytest.warns(AssumptionWarning, match=r"μP: this model's width 64 .* a guess"):
        it.plan(TwoInputs(), it.MuP(base_width=16))
    with pytest.raises(ValueError, match="a guess"):
        it.plan(TwoInputs(), it.MuP(base_width=16), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        it.plan(TwoInputs(), it.MuP(base_width=16, width=64))


class _Scored(nn.Module):
    """Attention pooling by a score vector (``h @ v``, Bahdanau's ``v``) over a sequence with a
    learned 1,024-position table: both raw parameters, read in forward."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.pos = nn.Parameter(torch.zeros(1, 1024, width))
        self.fc = nn.Linear(width, width)
        self.v = nn.Parameter(torch.randn(width) / width**0.5)
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(self.inp(x) + self.pos[:, : x.shape[1]]))
        self.score = h @ self.v
        w = torch.softmax(self.score, -1)
        return self.head((w[..., None] * h).sum(1))


def test_score_vectors_are_readouts_and_position_tables_input_like_whatever_their_length():
    """By their shape alone a 1,024-position table at width 256 (1,024 a multiple of it) was a
    hidden matrix (Adam × 1/m) and a score vector vector-like (Adam × 1: its output's change
    after 4 Adam steps grew ×6.5 from width 64 to 1024). By their use in forward: the table is
    input-like, the score vector a read-out (std × 1/√m, Adam and SGD × 1/m)."""
    x = torch.randn(8, 12, 16)
    p = {e.name: e for e in it.plan(_Scored(256), it.MuP(base_width=64), example_input=x)}
    base = {e.name: e for e in it.plan(_Scored(256), example_input=x)}
    assert dict(p["pos"].lr_mult) == {"adam": 1.0, "sgd": 4.0}
    assert "position table" in p["pos"].reason
    assert dict(p["v"].lr_mult) == {"adam": 0.25, "sgd": 0.25}
    assert p["v"].std == pytest.approx(base["v"].std / 2)
    assert "score vector" in p["v"].reason

    def change(width: int) -> float:  # the score's change after 4 Adam steps, 2 seeds
        out = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            x, y = torch.randn(16, 12, 16), torch.randint(0, 5, (16,))
            m = _Scored(width)
            q = it.plan(m, it.MuP(base_width=32), example_input=x)
            q.apply(m, seed=seed)
            opt = torch.optim.Adam(q.param_groups(m, 0.01, "adam"))
            m(x)
            s0 = m.score.detach().clone()
            for _ in range(4):
                opt.zero_grad()
                nn.functional.cross_entropy(m(x), y).backward()
                opt.step()
            m(x)
            out.append(float((m.score.detach() - s0).pow(2).mean().sqrt()))
        return sum(out) / len(out)

    assert 0.5 < change(256) / change(32) < 2
