"""u-μP (issue 14): unit-scale weights, forward multipliers installed by apply, learning-rate
multipliers in the plan — checked against the abc-parametrization they must be equivalent to."""

import copy
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.plan import Plan  # noqa: E402
from initwise.torch.multipliers import installed  # noqa: E402
from tests.models import width_mlp  # noqa: E402

mlp = width_mlp


def test_rules_follow_the_table():
    width = 256
    p = it.plan(mlp(width), "u-mup")
    auto = it.plan(mlp(width))
    first, hidden, out = p["0.weight"], p["2.weight"], p["4.weight"]
    for e in (first, hidden, out):
        assert e.std == 1.0 and e.scheme.type == "normal"  # unit init
    # input/hidden: the multiplier is auto's std (gain/√fan_in), Adam LR 1/√fan_in
    assert first.forward_mult == pytest.approx(auto["0.weight"].std)
    assert hidden.forward_mult == pytest.approx(math.sqrt(2 / width))
    assert dict(hidden.lr_mult) == pytest.approx({"adam": 1 / 16, "sgd": width / 2})
    assert dict(first.lr_mult)["adam"] == pytest.approx(1 / math.sqrt(32))
    assert dict(first.lr_mult)["sgd"] == pytest.approx(width / first.forward_mult**2)
    # readout: forward × 1/fan_in, Adam LR 1
    assert out.forward_mult == pytest.approx(1 / width)
    assert dict(out.lr_mult) == {"adam": 1.0, "sgd": float(width)}
    assert p["0.bias"].std == 0.0 and p["0.bias"].forward_mult is None
    assert dict(p["0.bias"].lr_mult) == {"adam": 1.0, "sgd": float(width)}
    assert dict(p["4.bias"].lr_mult) == {"adam": 1.0, "sgd": 1.0}
    assert "u-μP Table 3" in hidden.reason and "auto's std" in hidden.reason
    assert any("install_rewrites" in n for n in p.notes)
    q = it.plan(mlp(width), it.UMuP(output_mult=4.0))
    assert q["4.weight"].forward_mult == pytest.approx(4 / width)
    with pytest.raises(ValueError, match="output_mult"):
        it.UMuP(output_mult=0)


def test_embedding_rule_and_attention_note():
    from initwise.experiments.lr_transfer import TinyLM

    p = it.plan(TinyLM(64), "u-mup")
    tok = p["tok.weight"]
    assert tok.forward_mult is None and tok.std == 1.0
    assert dict(tok.lr_mult) == pytest.approx({"adam": 1 / 8, "sgd": 64.0})
    assert p["head.weight"].forward_mult == pytest.approx(1 / 64)
    assert p["blocks.0.attn.qkv.weight"].forward_mult == pytest.approx(1 / 8)
    assert dict(p["blocks.0.ln1.weight"].lr_mult) == {"adam": 1.0, "sgd": 64.0}
    assert any("mup_attention" in n for n in p.notes)


def _effective(model: nn.Sequential) -> nn.Sequential:
    """A hook-free copy whose weights are A·W: what a u-μP model must compute."""
    mults = installed(model)
    eff = copy.deepcopy(model)
    it.init_model(eff, "auto", seed=0)  # removes the hooks (values overwritten below)
    assert installed(eff) == {}
    with torch.no_grad():
        for name, m in eff.named_modules():
            src = model.get_submodule(name) if name else model
            for pn, prm in m.named_parameters(recurse=False):
                a = mults.get(name, 1.0) if pn == "weight" else 1.0
                prm.copy_(getattr(src, pn) * a)
    return eff


def test_apply_installs_the_multipliers_and_computes_the_effective_network():
    torch.manual_seed(0)
    model = mlp(256)
    keys = list(model.state_dict())
    p = it.init_model(model, "u-mup", seed=0)
    assert installed(model) == pytest.approx(
        {"0": p["0.weight"].forward_mult, "2": 2**0.5 / 16, "4": 1 / 256}
    )
    assert list(model.state_dict()) == keys  # no new parameters or buffers
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    y = model(x)
    assert torch.allclose(y, _effective(model)(x), atol=1e-6)
    h = model[:4](x)  # unit-scale signal through the hidden layers (auto's gain in A)
    assert 0.7 < float(h.detach().pow(2).mean().sqrt()) < 1.4
    # deepcopy and pickling keep them; a plan without multipliers removes them
    assert torch.equal(copy.deepcopy(model)(x), y)
    it.init_model(model, "auto", seed=0)
    assert installed(model) == {} and not model[0]._forward_pre_hooks
    # applying u-mup twice does not stack hooks
    it.init_model(model, "u-mup", seed=0)
    it.init_model(model, "u-mup", seed=0)
    assert len(model[2]._forward_pre_hooks) == 1
    assert torch.equal(model(x), y)


def test_adam_steps_equal_the_abc_equivalent_parametrization():
    """u-μP with Adam = the network with weights A·W and learning rates A·C (Adam ignores the
    gradient's scale): three steps give the same function."""
    torch.manual_seed(0)
    model = mlp(128)
    p = it.init_model(model, "u-mup", seed=0)
    eff = _effective(model)
    lr = 0.05
    opt = torch.optim.Adam(p.param_groups(model, lr=lr), eps=1e-30)
    mults = installed(model)
    groups = []
    for name, prm in eff.named_parameters():
        mod, _, pn = name.rpartition(".")
        a = mults.get(mod, 1.0) if pn == "weight" else 1.0
        groups.append({"params": [prm], "lr": lr * dict(p[name].lr_mult)["adam"] * a})
    opt_eff = torch.optim.Adam(groups, eps=1e-30)
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(64, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    for net, o in ((model, opt), (eff, opt_eff)):
        for _ in range(3):
            o.zero_grad()
            nn.functional.cross_entropy(net(x), t).backward()
            o.step()
    assert torch.allclose(model(x), eff(x), rtol=1e-4, atol=1e-5)


def _update_size(width: int, steps: int = 4, lr: float = 0.1) -> float:
    torch.manual_seed(0)
    model = mlp(width)
    p = it.init_model(model, "u-mup", seed=0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 32, generator=g), torch.randint(0, 10, (256,), generator=g)
    before = model[:4](x).detach()
    opt = torch.optim.Adam(p.param_groups(model, lr=lr))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return float((model[:4](x).detach() - before).pow(2).mean().sqrt())


def test_coordinate_check_flat_across_width():
    sizes = [_update_size(w) for w in (64, 256, 1024)]
    assert 0.5 < sizes[-1] / sizes[0] < 2.0, sizes


def test_multipliers_survive_json_and_install_on_a_rebuilt_model(tmp_path):
    torch.manual_seed(0)
    model = mlp(64)
    p = it.init_model(model, "u-mup", seed=3)
    path = tmp_path / "plan.json"
    p.save(str(path))
    q = Plan.load(str(path))
    assert [e.forward_mult for e in q] == [e.forward_mult for e in p]
    fresh = mlp(64)
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(8, 32)
    assert not torch.allclose(fresh(x), model(x))  # weights alone are not the network
    it.install_rewrites(q, fresh)
    assert torch.equal(fresh(x), model(x))
    wrapped = nn.DataParallel(mlp(64))
    wrapped.module.load_state_dict(model.state_dict())
    it.install_rewrites(q, wrapped)
    assert torch.equal(wrapped(x), model(x))


@pytest.mark.parametrize(
    "bad",
    [0, -1.0, 1e300, "0.1", True, float("nan")],
    ids=["0", "neg", "huge", "str", "bool", "nan"],
)
def test_plan_file_forward_mult_validated(tmp_path, bad):
    p = it.plan(mlp(16), "u-mup")
    d = p.to_dict()
    d["entries"][0]["forward_mult"] = bad
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="forward_mult|number"):
        Plan.load(str(path))


def test_forward_mult_on_a_bias_or_a_norm_refused_and_model_unchanged(tmp_path):
    d = it.plan(mlp(16), "u-mup").to_dict()
    d["entries"][1]["forward_mult"] = 0.5  # 0.bias
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="applies to weights"):
        Plan.load(str(path))
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    q = it.plan(model, "auto")
    import dataclasses

    q = Plan(
        [dataclasses.replace(e, forward_mult=2.0) if e.name == "1.weight" else e for e in q],
        policy=q.policy,
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="'1' is a LayerNorm"):
        q.apply(model, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert installed(model) == {}


def test_refusals_name_the_module_and_the_way_out():
    mha = nn.Sequential(nn.Linear(8, 8))
    mha.attn = nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match="MultiheadAttention.*MuP"):
        it.plan(mha, "u-mup")
    with pytest.raises(ValueError, match="recurrent.*MuP"):
        it.plan(nn.LSTM(8, 8), "u-mup")

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = nn.Embedding(10, 16), nn.Linear(16, 10, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, i):
            return self.head(self.emb(i))

    with pytest.raises(ValueError, match="tied weights.*Untie"):
        it.plan(Tied(), "u-mup")


def test_cli_apply_says_the_multipliers_need_installing(tmp_path, capsys):
    from initwise.cli import main

    f = tmp_path / "m.py"
    f.write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))\n"
    )
    out = tmp_path / "w.safetensors"
    assert main(["apply", f"{f}:make", "--policy", "u-mup", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "forward multiplier (u-μP)" in text and "install_rewrites" in text
    assert "u-mup" in it.policy_names()


def test_compiled_model_keeps_the_multipliers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    p = it.init_model(model, "u-mup", seed=0)
    x = torch.randn(5, 8)
    compiled = torch.compile(model)
    assert torch.allclose(compiled(x), model(x))
    assert {id(t) for g in p.param_groups(compiled, lr=0.1) for t in g["params"]} == {
        id(t) for t in model.parameters()
    }


def test_an_override_says_the_multiplier_stays():
    p = it.plan(mlp(64), "u-mup", overrides={"2.weight": {"scheme": "normal", "std": 0.02}})
    e = p["2.weight"]
    assert e.std == 0.02 and e.forward_mult == pytest.approx(math.sqrt(2 / 64))
    assert "forward multiplier ×0.1768 stays: effective std 0.003536" in e.reason


def test_edge_of_chaos_bias_variance_is_folded_into_the_multiplier():
    """auto gives deep tanh chains random biases (the edge of chaos); u-μP's biases start at
    zero, so its multiplier carries auto's whole pre-activation q (not q − σ_b²)."""
    depth, width = 12, 32
    layers = []
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    m = nn.Sequential(*layers, nn.Linear(width, width))
    auto = it.plan(m)
    u = it.plan(m, it.UMuP())
    assert auto["2.bias"].std > 0 and u["2.bias"].std == 0.0
    a = u["2.weight"].forward_mult
    w = auto["2.weight"].std
    b2 = auto["2.bias"].std ** 2
    s_in = float(auto["2.weight"].reason.split("input E[x²] ")[1].split(" ")[0])
    # auto: w²·fan_in·s + σ_b² = q; u-μP: a²·fan_in·s = q (3-significant-digit s from the reason)
    assert a**2 * width * s_in == pytest.approx(w**2 * width * s_in + b2, rel=5e-3)
    assert "bias variance folded in" in u["2.weight"].reason


def test_parameters_outside_any_layer_rule_get_u_mups_rules_by_their_use():
    """A class token, a position table, a layer scale, a score vector, a state-space-like
    (width × 16) table and a (width × width) raw parameter had no learning-rate multipliers
    (LR × 1 at u-μP's large global rate). Now: embedding rule for tokens and tables (Adam ×
    1/√d, SGD × d), a norm parameter's for the layer scale, the read-out's in absolute form for
    the score vector (std, Adam × output_mult/n), a bias's for one dimension that grows, and an
    assumption (strict: an error) for two."""
    from initwise.plan import AssumptionError
    from initwise.torch import AssumptionWarning

    width = 64

    class Loose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(12, width)
            self.cls = nn.Parameter(torch.zeros(1, 1, width))
            self.pos = nn.Parameter(torch.zeros(1, 9, width))
            self.gamma = nn.Parameter(torch.full((width,), 0.1))
            self.fc = nn.Linear(width, width)
            self.v = nn.Parameter(torch.randn(width) / width**0.5)
            self.state = nn.Parameter(torch.randn(width, 16))
            self.square = nn.Parameter(torch.randn(width, width))
            self.head = nn.Linear(width, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.proj(x)], 1) + self.pos
            h = h + self.gamma * torch.relu(self.fc(h))
            h = h + self.state.exp().mean(1) + self.square.mean(0)
            w = torch.softmax(h @ self.v, -1)
            return self.head((w[..., None] * h).sum(1))

    x = torch.randn(4, 8, 12)
    with pytest.warns(AssumptionWarning, match=r"square \(64, 64\)"):
        p = it.plan(Loose(), it.UMuP(output_mult=2.0), example_input=x)
    for n in ("cls", "pos"):
        assert dict(p[n].lr_mult) == pytest.approx({"adam": 1 / 8, "sgd": 64.0}), n
        assert "embedding rule" in p[n].reason
    assert dict(p["gamma"].lr_mult) == {"adam": 1.0, "sgd": 64.0}
    assert p["v"].std == pytest.approx(2 / width)
    assert dict(p["v"].lr_mult) == pytest.approx({"adam": 2 / width, "sgd": 4 / width})
    assert dict(p["state"].lr_mult) == {"adam": 1.0, "sgd": 64.0}
    assert dict(p["square"].lr_mult) == {"adam": 1.0, "sgd": 1.0}
    with pytest.raises(AssumptionError, match="square"):
        it.plan(Loose(), it.UMuP(), example_input=x, strict=True)


def test_a_drawn_vector_is_an_embedding_and_a_table_of_positions_by_heads_is_fixed():
    """CLIP's vision ``class_embedding`` (a 1-d vector drawn at random, no structural kind) was
    LR × 1 and then, by its shape, a bias's rule (Adam × 1); drawn at random it is u-μP's
    "weight", an embedding here: Adam × 1/√d. A (positions × heads) table added to attention
    scores is found as a position table, but its last dimension is not the width: × 1."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    p = it.plan(transformers.CLIPVisionModel(cfg), "u-mup")
    e = p["embeddings.class_embedding"]
    assert e.scheme is not None and dict(e.lr_mult) == pytest.approx({"adam": 1 / 8, "sgd": 64.0})
    assert "embedding rule (drawn at random" in e.reason

    class Biased(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.o = nn.Linear(12, 64), nn.Linear(12, 64), nn.Linear(64, 3)
            self.bias = nn.Parameter(torch.zeros(9, 9))  # (positions, positions)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / 8 + self.bias, -1)
            return self.o(a @ self.q(x))

    q = it.plan(Biased(), "u-mup", example_input=torch.randn(2, 9, 12))
    assert dict(q["bias"].lr_mult) == {"adam": 1.0, "sgd": 1.0}
    assert "a position table whose features do not grow" in q["bias"].reason


@pytest.mark.parametrize("act", [nn.Softplus, nn.Sigmoid])
def test_centered_points_draw_the_unit_weights_centered(act):
    """An activation with a mean gets centered weights from auto (its std is for Var[x]). u-μP
    drew its unit weights uncentered with auto's std as the multiplier, so the mean passed: a
    softplus ×20 chain's hidden signal grew to E[x²] ~10⁵ (output rms ×340 of u-μP's
    read-out scale). Centered as auto's, its hidden layers carry what auto's do."""
    layers = []
    for _ in range(20):
        layers += [nn.Linear(128, 128), act()]
    model = nn.Sequential(*layers, nn.Linear(128, 10))
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(0))
    seen = {}
    model[-1].register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    out = {}
    for policy in ("auto", "u-mup"):
        p = it.plan(model, policy)
        p.apply(model, seed=0)
        with torch.no_grad():
            model(x)
        out[policy] = float(seen["x"].pow(2).mean())
    assert "centered as auto's" in p["2.weight"].reason
    assert 0.5 < out["u-mup"] / out["auto"] < 2, out


def test_a_weight_also_used_outside_its_module_is_refused_and_the_model_kept():
    """A tied autoencoder's decoder, `F.conv_transpose2d(h, self.e2.weight)`: u-μP drew the
    weight at unit scale and put the multiplier on `e2`'s call only, so the decoder ran at unit
    scale, nothing said. Refused now, naming the weight and the call; the model is unchanged. A
    use whose result nothing reads (or a read of the weight's shape) is not a use."""
    import torch.nn.functional as F

    class TiedAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.e1, self.e2 = nn.Conv2d(1, 8, 4, 2, 1), nn.Conv2d(8, 16, 4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.e2(F.relu(self.e1(x))))
            return F.conv_transpose2d(h, self.e2.weight, stride=2, padding=1)

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _ = self.a.weight.t() * 2  # (computed, never read)
            return self.b(F.relu(self.a(x))) * self.a.weight.shape[0] / 16

    m = TiedAE()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(
        ValueError,
        match=r"'e2.weight' is also used in forward outside its module \(`conv_transpose2d`",
    ):
        it.init_model(m, "u-mup", example_input=torch.randn(2, 1, 16, 16), seed=0)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    p = it.plan(Unused(), "u-mup", example_input=torch.randn(2, 8))
    assert p["a.weight"].forward_mult is not None


def test_a_guessed_width_that_the_raw_parameters_rules_use_is_said():
    """u-μP has no base width, but its rules for raw parameters compare their dimensions with the
    model's width (:func:`model_width`); where that width is only the most common size (no
    residual stream, input layers of two widths) it was used unsaid. Now an assumption (strict:
    an error), as μP says its own guess."""
    from initwise.plan import AssumptionError
    from initwise.torch import AssumptionWarning

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(12, 32), nn.Linear(12, 48)
            self.tok = nn.Parameter(torch.zeros(1, 1, 32))
            self.out = nn.Linear(80, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.a(x) + self.tok, self.b(x)], -1)
            return self.out(torch.relu(h)).mean(1)

    x = torch.randn(2, 3, 12)
    with pytest.warns(AssumptionWarning, match=r"u-μP: this model's width 32 .* a guess"):
        it.plan(Two(), "u-mup", example_input=x)
    with pytest.raises(AssumptionError, match="a guess"):
        it.plan(Two(), "u-mup", example_input=x, strict=True)
