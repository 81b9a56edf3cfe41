"""Policies as values (issue 11): composition, registration, errors, and that the planner's
decisions come from the policy objects."""

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise import schemes as S  # noqa: E402
from initwise.torch import policies as P  # noqa: E402
from tests import models  # noqa: E402


@pytest.fixture
def registry():
    before = dict(P._REGISTRY)
    yield
    P._REGISTRY.clear()
    P._REGISTRY.update(before)


def test_builtin_names_are_registered_values():
    assert set(it.POLICIES) <= set(it.policy_names())
    for name in it.POLICIES:
        pol = it.get_policy(name)
        assert isinstance(pol, it.Policy) and pol.name == name


def test_composed_by_name_equals_builtin():
    m = models.NoNormResNet()
    assert (
        it.plan(m, ["auto", "zero-init-residual"]).entries
        == it.plan(m, "zero-init-residual").entries
    )
    assert it.plan(m, P.chain(P.Auto(), P.Fixup())).entries == it.plan(m, "fixup").entries


def test_modifier_composes_with_any_base():
    m = models.NoNormResNet(blocks=4)
    he = it.plan(m, "he")
    zi = it.plan(m, ["he", "zero-init-residual"])
    last = [f"blocks.{i}.2.weight" for i in range(4)]
    for n in last:
        assert zi[n].scheme == S.zeros() and he[n].scheme == S.he_normal()
    assert zi["blocks.0.0.weight"] == he["blocks.0.0.weight"]


def _out_rms(m, x):
    with torch.no_grad():
        return float(m.eval()(x).pow(2).mean().sqrt())


@pytest.mark.parametrize("modifier", ["zero-init-residual", "depth-scaled-residual"])
def test_a_residual_modifier_is_propagated(modifier):
    """The walk ran before the modifier, with every branch end at unit output, so the stream
    was taken to grow ×17 over 16 blocks: zero-init-residual's branches add nothing and its
    read-out came out at rms 0.24 (inner layers ¼ of He); depth-scaled's ×1/√16 ends add
    1/16 each and the read-out was at 0.27. The layers the modifier sets are held as set and
    the others solved for what arrives; each modifier acts once."""
    from initwise.bench.zoo import ResidualMLP

    torch.manual_seed(0)
    m = ResidualMLP()
    p = it.plan(m, ["auto", modifier])
    want = 1.0 if modifier == "zero-init-residual" else 2.0  # (the stream: 1 + 16 · 1/16)
    said = float(p["head.weight"].reason.split("input E[x²] ")[1].split(" ")[0].rstrip(","))
    assert said == pytest.approx(want, rel=0.05)
    if modifier == "zero-init-residual":
        assert "input E[x²] 1 →" in p["inner.15.weight"].reason
        assert p["inner.15.weight"].std == pytest.approx(math.sqrt(2 / 256))
    else:  # once: a unit-output end (its input, a ReLU at q* 2, has E[x²] 1) × 1/√16
        for i in (0, 15):
            assert p[f"outer.{i}.weight"].std == pytest.approx(1 / 16 / 4)
    p.apply(m, seed=0)
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    assert 0.8 < _out_rms(m, x) < 1.25


def test_zero_init_residual_with_batchnorm_is_propagated():
    """Zero-init-residual zeroes the last BatchNorm of each block (Goyal et al. 2017): the walk
    took those blocks as adding a unit branch and the head came out at rms 0.36."""
    from initwise.bench.zoo import ResNetBN

    torch.manual_seed(0)
    m = ResNetBN()
    it.plan(m, "zero-init-residual").apply(m, seed=0)
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert 0.8 < _out_rms(m, x) < 1.25


def test_depth_scaled_residual_scales_by_inverse_sqrt_of_branches():
    m = models.NoNormResNet(blocks=4)
    base = it.plan(m, "orthogonal")
    scaled = it.plan(m, ["orthogonal", "depth-scaled-residual"])
    for i in range(4):
        n = f"blocks.{i}.2.weight"
        assert scaled[n].std == pytest.approx(base[n].std / math.sqrt(4))
        assert "1/√4" in scaled[n].reason
    assert scaled["inp.weight"] == base["inp.weight"]
    assert scaled.policy == "orthogonal+depth-scaled-residual"


def test_scaled_scheme_scales_std():
    shape, f = (16, 32), None
    for s in (
        S.he_normal(),
        S.xavier_uniform(),
        S.normal(0.1, 0.3),
        S.uniform(-1, 2),
        S.trunc_normal(0, 1, -2, 2),
        S.trunc_normal(0, 1, -1, 3, relative=True),
        S.orthogonal(2.0),
        S.sparse(0.2, 0.5),
    ):
        assert s.scaled(0.5).std(shape, f) == pytest.approx(0.5 * s.std(shape, f))


def test_register_policy_then_plan_by_name(registry):
    class Tiny(it.Policy):
        name = "tiny"

        def scheme(self, ctx, act):
            return S.normal(0.0, 1e-3), None, "tiny"

    it.register_policy("tiny", Tiny())
    p = it.plan(nn.Linear(4, 3), "tiny")
    assert p["weight"].std == 1e-3 and p.policy == "tiny"
    with pytest.raises(ValueError, match="already registered"):
        it.register_policy("tiny", Tiny())
    it.register_policy("tiny2", Tiny())
    assert it.get_policy("tiny2").name == "tiny2" and it.get_policy("tiny").name == "tiny"


def test_policy_errors_name_the_fix(registry):
    with pytest.raises(ValueError, match="unknown policy 'nope'.*register_policy"):
        it.plan(nn.Linear(2, 2), "nope")
    with pytest.raises(TypeError, match="subclass initwise.torch.Policy"):
        it.register_policy("x", object())
    with pytest.raises(ValueError, match="not a Modifier"):
        it.plan(nn.Linear(2, 2), ["auto", "nope"])
    with pytest.raises(TypeError, match="first element must be a Policy"):
        P.chain(P.ZeroInitResidual())

    class NoRule(it.Policy):
        name = "norule"

    with pytest.raises(NotImplementedError, match="does not say how to draw weights"):
        it.plan(nn.Linear(2, 2), NoRule())


def test_planner_compares_no_policy_strings():
    import inspect

    from initwise.torch import planner

    src = inspect.getsource(planner)
    assert "policy ==" not in src and "ctx.policy" not in src and "pol.name ==" not in src


def test_lsuv_policy_is_registered_by_lsuv_module():
    pol = it.get_policy("lsuv")
    assert pol.plan_model is not None
    with pytest.raises(ValueError, match="needs a batch of real data"):
        it.plan(nn.Sequential(nn.Linear(4, 4)), "lsuv")


def test_plan_apply_needs_no_prior_import_of_the_adapter(tmp_path):
    import subprocess
    import sys

    code = (
        "import torch, initwise.plan as P\n"
        "import sys\n"
        "assert 'initwise.torch' not in sys.modules\n"
        f"p = P.Plan.load({str(tmp_path / 'p.json')!r})\n"
        "m = torch.nn.Linear(4, 3)\n"
        "p.apply(m, seed=0)\n"
        "print(float(m.weight.std()))\n"
    )
    it.plan(nn.Linear(4, 3)).save(str(tmp_path / "p.json"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 0
    from initwise.plan import applier_for

    with pytest.raises(TypeError, match="no adapter"):
        applier_for(object())
