"""Parametrized weights (weight_norm, spectral_norm, orthogonal, custom): planned under the
weight's own name, written through the parametrization, measured by diagnose, scaled by LSUV."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize, prune
from torch.nn.utils.parametrizations import orthogonal, spectral_norm, weight_norm

import initwise.torch as it
from initwise.diagnostics import diagnose
from initwise.plan import Plan
from initwise.torch import parametrized as PZ


def _mlp(wrap=None, device="cpu", bias=True):
    with torch.device(device):
        torch.manual_seed(0)
        m = nn.Sequential(
            nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32, bias=bias), nn.GELU(), nn.Linear(32, 8)
        )
        if wrap is not None:
            m[2] = wrap(m[2])
    return m


def _planned(model, seed=3):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is assumed or left as is
        p = it.plan(model)
    p.apply(model, seed=seed)
    return p


def _snapshot(m):
    return {k: v.detach().clone() for k, v in m.state_dict(keep_vars=True).items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bias", [True, False])
def test_weight_norm_gets_the_plain_models_values(bias):
    ref, m = _mlp(bias=bias), _mlp(weight_norm, bias=bias)
    pr, pm = _planned(ref), _planned(m)
    assert [e.name for e in pm] == [e.name for e in pr]  # "2.weight", not the originals
    assert "weight_norm: written through it" in pm["2.weight"].reason
    assert pm["2.weight"].scheme == pr["2.weight"].scheme
    torch.testing.assert_close(m[2].weight, ref[2].weight, rtol=1e-6, atol=1e-7)
    g, v = m[2].parametrizations.weight.original0, m[2].parametrizations.weight.original1
    assert torch.equal(v, ref[2].weight)  # v is the draw, g its norm per output unit
    torch.testing.assert_close(g, ref[2].weight.norm(dim=1, keepdim=True))
    assert all(torch.equal(m[i].weight, ref[i].weight) for i in (0, 4))


def test_spectral_norm_direction_from_the_draw_power_iteration_from_the_seed():
    ref, m = _mlp(), _mlp(spectral_norm)
    m.train()
    _planned(ref)
    p = _planned(m)
    assert "spectral_norm" in p["2.weight"].reason and "not its scale" in p["2.weight"].reason
    assert torch.equal(m[2].parametrizations.weight.original, ref[2].weight)
    with torch.no_grad():
        m.eval()  # (train mode would run a power iteration on this read)
        ratio = ref[2].weight / m[2].weight
    torch.testing.assert_close(
        ratio, torch.full_like(ratio, float(ratio.mean())), rtol=1e-5, atol=0
    )
    sigma = float(torch.linalg.matrix_norm(ref[2].weight.detach(), 2))
    assert float(ratio.mean()) == pytest.approx(sigma, rel=0.05)
    again = _mlp(spectral_norm)
    _planned(again)
    assert _same(_snapshot(again), _snapshot(m))  # _u, _v included: a function of the seed


def test_orthogonal_parametrization_stays_orthogonal():
    m = _mlp(orthogonal)
    p = _planned(m)
    assert "orthogonal parametrization" in p["2.weight"].reason
    q = m[2].weight.detach()
    torch.testing.assert_close(q.T @ q, torch.eye(32), atol=1e-5, rtol=0)
    again = _mlp(orthogonal)
    _planned(again)
    assert _same(_snapshot(again), _snapshot(m))


def test_json_round_trip_and_meta_device():
    m = _mlp(weight_norm)
    p = _planned(m)
    back = Plan.from_json(p.to_json())
    n = _mlp(weight_norm)
    back.apply(n, seed=3)
    assert _same(_snapshot(n), _snapshot(m))
    # the names are the plain model's: a plan made without the parametrization applies to it
    plain_plan = Plan.from_json(it.plan(_mlp()).to_json())
    o = _mlp(weight_norm)
    plain_plan.apply(o, seed=3)
    torch.testing.assert_close(o[2].weight, m[2].weight, rtol=1e-6, atol=1e-7)
    for wrap in (weight_norm, spectral_norm):
        on_meta = _mlp(wrap, device="meta")
        _planned(on_meta)
        ref = _mlp(wrap)
        _planned(ref)
        assert not any(t.is_meta for t in on_meta.state_dict().values())
        assert _same(_snapshot(on_meta), _snapshot(ref))


def _legacy_weight_norm(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates the hook-based API
        return torch.nn.utils.weight_norm(module)


def test_hook_based_weight_norm_and_pruning_are_written_through():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    ref = _mlp()
    pr = _planned(ref)
    wn, pruned = _mlp(_legacy_weight_norm), _mlp()
    prune.random_unstructured(pruned[2], "weight", amount=0.5)
    mask = pruned[2].weight_mask.clone()
    plans = {}
    for m, tag in ((wn, "hook-based torch.nn.utils.weight_norm"), (pruned, "keeps 50%")):
        plans[tag] = p = _planned(m)
        assert [e.name for e in p] == [e.name for e in pr] and tag in p["2.weight"].reason
    assert torch.equal(wn[2].weight_v, ref[2].weight)
    torch.testing.assert_close(wn[2].weight_g, ref[2].weight.norm(dim=1, keepdim=True))
    torch.testing.assert_close(wn[2].weight, ref[2].weight, rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(wn(x), ref(x), rtol=1e-5, atol=1e-6)
    # the same draw, scaled for the kept fan (a fan-based scheme: std ∝ 1/√fan_in)
    dense, kept = pr["2.weight"].fans.fan_in, plans["keeps 50%"]["2.weight"].fans.fan_in
    assert kept == pytest.approx(16, rel=0.2)
    torch.testing.assert_close(pruned[2].weight_orig, ref[2].weight * (dense / kept) ** 0.5)
    assert torch.equal(pruned[2].weight_mask, mask)  # the mask stays
    assert torch.equal(pruned[2].weight, pruned[2].weight_orig * mask)
    # diagnose, LSUV and param_groups see them too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = diagnose(ref, x), diagnose(wn, x)
    assert b.layers[1].weight_grad_std == pytest.approx(a.layers[1].weight_grad_std, rel=1e-4)
    for m in (wn, pruned):
        r = it.lsuv(m, x, seed=0)
        assert all(layer.converged for layer in r.layers)
        with torch.no_grad():
            assert float(m[:3](x).std()) == pytest.approx(1.0, abs=0.02)
    groups = it.plan(wn).param_groups(wn, lr=1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(wn.parameters()))


class _Refuses(nn.Module):
    armed = False  # (registering calls right_inverse once)

    def forward(self, x):
        return x

    def right_inverse(self, x):
        if self.armed:
            raise ValueError("this parametrization refuses assignment")
        return x


class _Doubles(nn.Module):
    def forward(self, x):
        return 2 * x


def _refuse_writes(layer: nn.Module) -> None:
    """A parametrization on ``layer.weight`` whose ``right_inverse`` raises from now on."""
    refuses = _Refuses()
    parametrize.register_parametrization(layer, "weight", refuses)
    refuses.armed = True


def test_a_refusing_parametrization_leaves_the_model_bit_identical():
    m = _mlp()
    m[0] = _legacy_weight_norm(m[0])  # written first, then put back when '2' refuses
    _refuse_writes(m[2])
    before = _snapshot(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(m)
    assert "parametrized by _Refuses" in p["2.weight"].reason
    with pytest.raises(ValueError, match="refuses assignment"):
        p.apply(m, seed=0)
    assert _same(_snapshot(m), before)
    # a parametrization without right_inverse cannot be written through: left as is, said
    d = _mlp()
    parametrize.register_parametrization(d[2], "weight", _Doubles())
    with pytest.warns(it.AssumptionWarning, match=r"no rule for 2\.weight"):
        p = it.plan(d)
    assert p["2.weight"].scheme is None and "no right_inverse" in p["2.weight"].reason
    before = _snapshot(d)
    p.apply(d, seed=3)
    assert torch.equal(
        d[2].parametrizations.weight.original, before["2.parametrizations.weight.original"]
    )


def test_planning_does_not_move_spectral_norm_vectors_in_train_mode():
    m = _mlp(spectral_norm)
    m.train()
    before = _snapshot(m)
    it.plan(m)
    assert _same(_snapshot(m), before)


def test_diagnose_measures_the_weight_the_forward_used():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    ref, m = _mlp(), _mlp(weight_norm)
    _planned(ref)
    _planned(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: "no gradient reaches the weight of '2'"
        a, b = diagnose(ref, x), diagnose(m, x)
    assert [s.name for s in b.layers] == ["0", "2", "4"]  # not the parametrization container
    assert b.chain_theory == a.chain_theory
    for sa, sb in zip(a.layers, b.layers, strict=True):
        assert sb.weight_grad_std == pytest.approx(sa.weight_grad_std, rel=1e-4)
        assert sb.weight_std == pytest.approx(sa.weight_std, rel=1e-4)
        assert sb.grad_std == pytest.approx(sa.grad_std, rel=1e-4)
    s = _mlp(spectral_norm)
    s.train()
    before = _snapshot(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = diagnose(s, x)
    assert r.layers[1].weight_grad_std is not None
    assert _same(_snapshot(s), before)  # the power iteration's vectors put back


def test_lsuv_scales_weight_norm_and_says_what_it_cannot_scale():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    m = _mlp(weight_norm)
    r = it.lsuv(m, x, seed=0)
    assert all(layer.converged for layer in r.layers)
    with torch.no_grad():
        assert float(m[:3](x).std()) == pytest.approx(1.0, abs=0.02)
    s = _mlp(spectral_norm)
    r = it.lsuv(s, x, seed=0)
    (fixed,) = [layer for layer in r.layers if "fixes its weight's scale" in layer.name]
    assert fixed.scale == 1.0 and fixed.iterations == 0 and fixed.name.startswith("2 ")


def test_parametrized_layer_without_own_parameters_is_a_layer():
    m = _mlp(weight_norm, bias=False)
    p = it.plan(m)  # before: the weight was an original under the container, left as is
    assert p["2.weight"].scheme is not None and "gelu" in p["2.weight"].reason
    (site,) = PZ.sites(m).values()
    assert (site.name, site.module, site.attr) == ("2.weight", m[2], "weight")
    assert PZ.originals(m) == {
        "2.parametrizations.weight.original0": "2.weight",
        "2.parametrizations.weight.original1": "2.weight",
    }
    root = weight_norm(nn.Linear(3, 3))
    assert PZ.originals(root) == {
        "parametrizations.weight.original0": "weight",
        "parametrizations.weight.original1": "weight",
    }


def test_param_groups_give_the_originals_their_weights_multiplier():
    m = nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), weight_norm(nn.Linear(64, 64)), nn.ReLU(), nn.Linear(64, 8)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(m, it.MuP(base_width=16))
    groups = p.param_groups(m, lr=1e-3)
    by_param = {id(q): g["lr_mult"] for g in groups for q in g["params"]}
    assert len(by_param) == len(list(m.parameters()))  # g and v included, nothing missing
    mult = dict(p["2.weight"].lr_mult)["adam"]
    assert mult != 1.0
    wn = m[2].parametrizations.weight
    assert by_param[id(wn.original0)] == by_param[id(wn.original1)] == mult


def test_every_computed_weight_of_a_deep_stack_gets_its_entry():
    # each computed weight is a fresh tensor; ties are found by id(), and a freed tensor's id
    # is reused by the next one — found on HF's Encodec, whose plan lost two weight_norm convs
    layers = []
    for _ in range(8):
        layers += [weight_norm(nn.Linear(8, 8)), nn.Tanh()]
    m = nn.Sequential(*layers)
    p = it.plan(m)
    assert [e.name for e in p if e.name.endswith("weight")] == [f"{2 * i}.weight" for i in range(8)]
    p.apply(m, seed=0)


def test_pruned_layers_get_the_kept_fans_and_hold_the_signal():
    # 90 % of every weight pruned at random: dense fans shrink the output variance ~10× a layer
    # (output rms 4.7e-11 after 21 layers, measured); the kept fans hold it
    torch.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    m = nn.Sequential(*layers, nn.Linear(256, 256))
    for layer in m:
        if isinstance(layer, nn.Linear):
            prune.random_unstructured(layer, "weight", amount=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = it.plan(m)
    assert p["0.weight"].fans.fan_in == pytest.approx(25.6, rel=0.02)
    assert "pruned: the kept fans" in p["0.weight"].reason
    p.apply(m, seed=0)
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ratio = float(m(x).pow(2).mean().sqrt() / x.pow(2).mean().sqrt())
    assert 0.5 < ratio < 2.0
    # whole output rows pruned (structured): each kept unit still has all its inputs
    s = nn.Linear(64, 32)
    prune.ln_structured(s, "weight", amount=0.5, n=2, dim=0)
    f = it.plan(s)["weight"].fans
    assert f.fan_in == pytest.approx(64) and f.fan_out == pytest.approx(16)


def test_spectral_norm_without_the_internals_it_restarts_says_so():
    # torch's _SpectralNorm keeps _u, _v and _power_method; if a torch lacked them, the vectors
    # would stay the old weight's: a warning, not silence
    m = _mlp(spectral_norm)
    m[2].parametrizations.weight[0]._power_method = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(m)
    with pytest.warns(it.AssumptionWarning, match="were not restarted"):
        p.apply(m, seed=3)


def test_hook_based_spectral_norm_is_written_through():
    """torch.nn.utils.spectral_norm (the hook-based API GAN code still uses) was not
    recognized: 'weight_orig' and even the biases were "left as is" and `apply` changed
    nothing. Now: planned as '2.weight', weight_orig = the draw, u/v restarted from the seed
    and iterated; a failed apply puts all three back."""
    ref = _mlp()
    _planned(ref)
    m = _mlp(torch.nn.utils.spectral_norm)
    p = _planned(m)  # nothing assumed
    assert "hook-based torch.nn.utils.spectral_norm" in p["2.weight"].reason
    assert torch.equal(m[2].weight_orig, ref[2].weight)
    sigma = float(torch.linalg.matrix_norm(ref[2].weight.detach(), 2))
    with torch.no_grad():
        m.eval()
        m(torch.ones(2, 16))  # eval mode: the hook recomputes the weight from its u, v
        ratio = ref[2].weight / m[2].weight
    assert float(ratio.mean()) == pytest.approx(sigma, rel=1e-3)
    again = _mlp(torch.nn.utils.spectral_norm)
    _planned(again)
    assert _same(_snapshot(again), _snapshot(m))  # weight_u/_v a function of the seed
    # on the meta device: weight_u/_v are written too, so materialize knows them
    meta = _mlp(torch.nn.utils.spectral_norm, device="meta")
    it.materialize(meta, seed=3)
    assert _same(_snapshot(meta), _snapshot(again))
    # atomic: a later failure puts weight_orig, weight_u, weight_v back
    bad = _mlp(torch.nn.utils.spectral_norm)
    _refuse_writes(bad[4])
    before = _snapshot(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = it.plan(bad)
    with pytest.raises(ValueError, match="refuses assignment"):
        q.apply(bad, seed=0)
    assert _same(_snapshot(bad), before)


@pytest.mark.parametrize(
    "wrap", [spectral_norm, torch.nn.utils.spectral_norm, orthogonal], ids=["sn", "sn-hook", "orth"]
)
def test_a_plain_layer_after_normalized_weights_is_solved_for_what_they_give(wrap):
    """A spectrally normalized (or orthogonal) weight computes with the draw over its largest
    singular value: its output is `fan_in·E[w²]·E[x²]` with E[w²] from the normalization, not
    the solved q. A discriminator-like body of such layers and a plain head: the head's output
    at unit scale (before: 0.058 with spectral_norm, 0.27 with orthogonal)."""
    torch.manual_seed(0)
    m = nn.Sequential(
        wrap(nn.Linear(128, 256)),
        nn.LeakyReLU(0.2),
        wrap(nn.Linear(256, 256)),
        nn.LeakyReLU(0.2),
        wrap(nn.Linear(256, 64)),
        nn.LeakyReLU(0.2),
        nn.Linear(64, 1),
    )
    p = _planned(m, seed=0)
    assert "so the draw's scale cancels" in p["2.weight"].reason
    x = torch.randn(2048, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        m.eval()
        out = m(x)
    assert 0.8 < float(out.pow(2).mean().sqrt()) < 1.25


def test_normalized_weight_variance():
    from initwise.math.meanfield import normalized_weight_variance as nwv

    assert nwv(1, 300) == pytest.approx(1 / 300) and nwv(300, 1) == pytest.approx(1 / 300)
    assert nwv(64, 256, "orthogonal") == pytest.approx(64 / (64 * 256))
    # simulated (small) and the Bai–Yin edge (large) agree where both are close to the truth
    g = torch.randn(256, 256, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = float((g * g).sum() / torch.linalg.matrix_norm(g, 2) ** 2) / g.numel()
    assert nwv(256, 256) == pytest.approx(exact, rel=0.03)
    assert nwv(1024, 1024) == pytest.approx(1 / 64**2)
    with pytest.raises(ValueError, match="how must be"):
        nwv(4, 4, "frobenius")


def test_a_spectrally_normalized_network_says_its_layers_set_the_small_output():
    """An SN-GAN discriminator: every layer divides its weight by its largest singular value, so
    the signal shrinks at each (output rms 0.03 for a unit input) and no draw can change it. The
    walk predicted it and said that "what follows the last weight layers scales it" — wrong
    here; it now names the layers whose weight is normalized in forward."""
    torch.manual_seed(0)
    convs = [spectral_norm(nn.Conv2d(a, b, 3, s, 1)) for a, b, s in ((3, 16, 1), (16, 16, 2))]
    head = spectral_norm(nn.Linear(16 * 8 * 8, 1))
    act = nn.LeakyReLU(0.1)
    m = nn.Sequential(convs[0], act, convs[1], act, nn.Flatten(), head)
    said = r"3 of its weight layers \('0', '2', '5'\) compute with a weight normalized in forward"
    with pytest.warns(it.SignalWarning, match=said) as rec:
        it.plan(m, "auto")
    assert not any("what follows the last weight layers" in str(w.message) for w in rec)
    it.init_model(m, seed=0)
    with torch.no_grad():
        assert float(m(torch.randn(16, 3, 16, 16)).pow(2).mean().sqrt()) < 0.25
