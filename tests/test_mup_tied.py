"""μP with a tied embedding and read-out (``head.weight = emb.weight``): the table is μP's input
weight (its std at the base width, LR × 1 Adam / × m SGD) and the read-out's call carries μP's
output multiplier 1/m (``forward_mult_at``), as mup's ``MuSharedReadout``. Before, the table
got auto's std ∝ 1/√width and no multiplier, and the read-out's change after 4 Adam steps grew
×4.1 from width 64 to 1024."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.diagnostics import coord_check  # noqa: E402
from initwise.plan import Plan  # noqa: E402
from initwise.torch.multipliers import installed  # noqa: E402

V = 50


class TiedLM(nn.Module):
    def __init__(self, width: int, head_first: bool = False) -> None:
        super().__init__()
        if head_first:  # (the shared tensor is then planned under the read-out's name)
            self.head = nn.Linear(width, V, bias=False)
        self.emb = nn.Embedding(V, width)
        self.l1 = nn.Linear(width, width)
        self.ln = nn.LayerNorm(width)
        if not head_first:
            self.head = nn.Linear(width, V, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(torch.relu(self.l1(self.emb(x)))))


class FunctionalReadout(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, width)
        self.l1 = nn.Linear(width, width)
        self.ln = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.ln(torch.relu(self.l1(self.emb(x)))), self.emb.weight)


def _table(p: Plan):
    return next(e for e in p if e.name in ("emb.weight", "head.weight"))


@pytest.mark.parametrize("head_first", [False, True])
def test_tied_table_is_the_input_weight_and_the_readout_carries_one_over_m(head_first):
    base = 64
    at_base = _table(it.plan(TiedLM(base, head_first), it.MuP(base_width=base)))
    auto = _table(it.plan(TiedLM(base, head_first)))
    assert at_base.std == pytest.approx(auto.std) and at_base.forward_mult is None
    assert dict(at_base.lr_mult) == {"adam": 1.0, "sgd": 1.0}
    for width in (256, 1024):
        m = width / base
        model = TiedLM(width, head_first)
        p = it.init_model(model, it.MuP(base_width=base), seed=0)
        e = _table(p)
        assert e.std == pytest.approx(at_base.std)  # constant in width: its base-width std
        assert e.forward_mult == pytest.approx(1 / m) and e.forward_mult_at == "head"
        assert dict(e.lr_mult) == {"adam": 1.0, "sgd": m}
        assert "MuSharedReadout" in e.reason
        said = [n for n in p.notes if "install_rewrites" in n]
        assert len(said) == 1 and "tied read-out head carries a forward multiplier" in said[0]
        assert installed(model) == {"head": pytest.approx(1 / m)}  # not on the lookup
        # the layer after the table is solved for the table as drawn
        assert f"input E[x²] {at_base.std**2:.3g}" in p["l1.weight"].reason
        x = torch.randint(0, V, (4096,))
        with torch.no_grad():
            emb_rms = float(model.emb(x).pow(2).mean().sqrt())
            logits_rms = float(model(x).pow(2).mean().sqrt())
        assert emb_rms == pytest.approx(at_base.std, rel=0.05)
        assert logits_rms == pytest.approx(1 / math.sqrt(m), rel=0.1)  # μP's read-out: 1/√m


def test_tied_readout_change_does_not_grow_with_width():
    x = torch.randint(0, V, (64,))
    t = torch.randint(0, V, (64,))
    cc = coord_check(TiedLM, [64, 1024], x, t, policy=lambda w: it.MuP(base_width=64))
    growth = cc.growth()
    assert 0.5 < growth["head"] < 2 and 0.5 < growth["l1"] < 2, growth  # before: 4.06, 2.66
    sp = coord_check(TiedLM, [64, 1024], x, t, policy="auto").growth()
    assert sp["head"] > 3  # the standard parametrization's grows


def test_hf_gpt2_tied_lm_head_and_position_table():
    transformers = pytest.importorskip("transformers")
    cfg = dict(vocab_size=V, n_positions=16, n_layer=2, n_head=4, resid_pdrop=0.0)
    cfg.update(embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)

    def make(width: int) -> nn.Module:
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=width, **cfg))

    stds = {}
    for width in (64, 256):
        model = make(width)
        p = it.init_model(model, it.MuP(base_width=64), seed=0)
        stds[width] = p["transformer.wte.weight"].std, p["transformer.wpe.weight"].std
        if width == 256:
            assert installed(model) == {"lm_head": pytest.approx(0.25)}
            assert dict(p["transformer.wpe.weight"].lr_mult) == {"adam": 1.0, "sgd": 4.0}
    assert stds[256] == pytest.approx(stds[64])  # both tables constant in width
    x = torch.randint(0, V, (8, 16))

    def loss(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, V), t.reshape(-1))

    growth = coord_check(
        make, [64, 512], x, x, policy=lambda w: it.MuP(base_width=64), loss_fn=loss
    ).growth()
    assert 0.5 < growth["lm_head"] < 2, growth  # before: 5.5 at 1024


def test_a_functional_tied_readout_is_refused_off_the_base_width_and_nothing_changes():
    model = FunctionalReadout(256)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"F\.linear\(x, emb\.weight\).*nn\.Linear"):
        it.init_model(model, it.MuP(base_width=64), seed=0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    p = it.plan(FunctionalReadout(64), it.MuP(base_width=64))  # at the base width: auto's
    assert p["emb.weight"].forward_mult is None


def test_forward_mult_at_survives_json_and_install_rewrites(tmp_path):
    model = TiedLM(256)
    p = it.init_model(model, it.MuP(base_width=64), seed=0)
    path = tmp_path / "plan.json"
    p.save(str(path))
    q = Plan.load(str(path))
    assert q["emb.weight"].forward_mult_at == "head"
    fresh = TiedLM(256)
    fresh.load_state_dict(model.state_dict())
    it.install_rewrites(q, fresh)
    assert installed(fresh) == {"head": pytest.approx(0.25)}
    x = torch.randint(0, V, (8,))
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_forward_mult_at_checked_before_anything_changes(tmp_path):
    model = TiedLM(256)
    p = it.plan(model, it.MuP(base_width=64))
    d = json.loads(p.to_json())
    i = next(k for k, e in enumerate(d["entries"]) if e["name"] == "emb.weight")
    d["entries"][i]["forward_mult_at"] = "l1"  # a module that does not use the table
    bad = Plan.from_dict(d)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="forward_mult_at must use this weight"):
        bad.apply(model, seed=0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert installed(model) == {}
    d["entries"][i]["forward_mult_at"] = 3
    with pytest.raises(ValueError, match="forward_mult_at must be a module's name"):
        Plan.from_dict(d)
    del d["entries"][i]["forward_mult"]
    d["entries"][i]["forward_mult_at"] = "head"
    with pytest.raises(ValueError, match="forward_mult_at names the module"):
        Plan.from_dict(d)


def test_a_readout_input_scaled_by_one_over_root_width_is_said():
    """T5 scales its decoder's output by d_model^-0.5 before the tied read-out: μP's 1/m on top
    of that factor shrinks the read-out's updates as 1/√width — said (an AssumptionWarning;
    strict=True raises), not left silent. GPT-2 (a LayerNorm before its read-out) is not."""
    transformers = pytest.importorskip("transformers")
    from initwise.torch import AssumptionWarning

    t5 = transformers.T5ForConditionalGeneration(
        transformers.T5Config(
            vocab_size=V, d_model=128, d_kv=32, d_ff=256, num_layers=1, num_heads=4,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        )
    )  # fmt: skip
    with pytest.warns(AssumptionWarning, match=r"tied read-out 'lm_head' .* ≈ 1/width"):
        it.plan(t5, it.MuP(base_width=32))
    with pytest.raises(ValueError, match="≈ 1/width"):
        it.plan(t5, it.MuP(base_width=32), strict=True)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=V, n_positions=16, n_embd=128, n_layer=1, n_head=4,
            bos_token_id=0, eos_token_id=0,
        )
    )  # fmt: skip
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        it.plan(gpt2, it.MuP(base_width=32))
    assert not [w for w in seen if "1/width" in str(w.message)]


def test_an_override_of_the_tied_table_keeps_the_readouts_multiplier_and_says_so():
    p = it.plan(TiedLM(256), it.MuP(base_width=64))
    q = p.override({"emb.weight": {"scheme": "normal", "std": 0.02}})
    e = q["emb.weight"]
    assert e.std == 0.02 and e.forward_mult == pytest.approx(0.25)
    assert e.forward_mult_at == "head"
    assert "read-out 'head' keeps its forward multiplier ×0.25" in e.reason
    assert "effective std" not in e.reason  # (the lookup has no multiplier: 0.02 is what it is)
