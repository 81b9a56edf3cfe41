"""Plan.apply: validate first, write atomically, reproducible per (seed, name), meta models."""

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise import schemes as S  # noqa: E402
from initwise.plan import Plan  # noqa: E402
from initwise.torch import apply as apply_mod  # noqa: E402
from tests import models  # noqa: E402


def snapshot(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_bits_other_seed_other_bits():
    a, b = models.resnet(), models.resnet()
    p = it.plan(a)
    p.apply(a, seed=3)
    p.apply(b, seed=3)
    assert same(snapshot(a), snapshot(b))
    p.apply(b, seed=4)
    assert not torch.equal(a.fc.weight, b.fc.weight)


def test_values_depend_only_on_seed_and_name():
    m = models.resnet()
    p = it.plan(m)
    p.apply(m, seed=0)
    ref = snapshot(m)
    # another plan for one parameter, and the entries in reverse order: the rest is unchanged
    q = dataclasses.replace(
        p.override({"fc.weight": "xavier_normal"}),
        entries=tuple(reversed(p.override({"fc.weight": "xavier_normal"}).entries)),
    )
    q.apply(m, seed=0)
    now = snapshot(m)
    changed = [k for k in ref if not torch.equal(ref[k], now[k])]
    assert changed == ["fc.weight"]
    assert it.param_seed(0, "fc.weight") != it.param_seed(0, "fc.bias")


def test_mismatched_plan_leaves_model_bit_identical():
    m = models.resnet()
    before = snapshot(m)
    other = it.plan(models.vgg())
    with pytest.raises(ValueError, match="plan does not match the model.*make a new plan"):
        other.apply(m, seed=0)
    p = it.plan(m)
    wrong = dataclasses.replace(
        p,
        entries=tuple(
            dataclasses.replace(e, shape=(7, 7)) if e.name == "fc.weight" else e for e in p
        ),
    )
    with pytest.raises(ValueError, match="'fc.weight' has shape"):
        wrong.apply(m, seed=0)
    assert same(before, snapshot(m))


def test_failure_midway_leaves_model_bit_identical(monkeypatch):
    m = models.resnet()
    before = snapshot(m)
    p = it.plan(m)
    calls = {"n": 0}
    real = apply_mod.draw

    def flaky(entry, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("simulated failure while sampling")
        return real(entry, *args, **kw)

    monkeypatch.setattr(apply_mod, "draw", flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        p.apply(m, seed=0)
    assert calls["n"] == 7 and same(before, snapshot(m))


def test_integer_parameter_is_rejected_before_writing():
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    p = it.plan(m)
    m[1].weight = nn.Parameter(torch.zeros(3, 3, dtype=torch.int64), requires_grad=False)
    before = snapshot(m)
    with pytest.raises(TypeError, match="parameter '1.weight'.*int64"):
        p.apply(m, seed=0)
    assert same(before, snapshot(m))


def test_bad_seed():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="seed must be an int"):
        it.plan(m).apply(m, seed="0")


def test_seed_is_any_integer_numpy_included_and_checked_first():
    """A NumPy integer (from a config array, ``np.arange`` of seeds) was refused by ``apply``,
    ``init_model`` and ``lsuv`` while the streams took it; now every entry point takes it, with
    the same bits as the int. A float, a string or a bool is refused naming the entry point —
    ``init_model`` before it plans, ``diagnose`` where torch's generators would have raised
    their own ``manual_seed expected a long``."""
    import numpy as np

    from initwise.diagnostics import diagnose

    a, b = nn.Sequential(nn.Linear(4, 4), nn.Tanh()), nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    it.init_model(a, seed=np.int64(7))
    it.init_model(b, seed=7)
    assert torch.equal(a[0].weight, b[0].weight)
    x = torch.randn(8, 4)
    assert diagnose(a, x, seed=np.int32(1)).verdict == diagnose(a, x, seed=1).verdict
    before = snapshot(a)
    for bad, err in ((3.0, TypeError), ("3", TypeError), (True, TypeError), (None, TypeError)):
        with pytest.raises(err, match="init_model: seed must be an int"):
            it.init_model(a, seed=bad)
        with pytest.raises(err, match="lsuv: seed must be an int"):
            it.lsuv(a, x, seed=bad)
        with pytest.raises(err, match="diagnose: seed must be an int"):
            diagnose(a, x, seed=bad)
    with pytest.raises(ValueError, match=r"diagnose: seed must be in \[-2\*\*63, 2\*\*64\)"):
        diagnose(a, x, seed=2**64)
    assert same(before, snapshot(a))
    it.init_model(b, seed=2**64)  # (the streams take any integer: it is hashed with the name)


def test_device_is_where_a_meta_model_goes_not_a_move():
    """``device`` says where a meta-device model is materialized: a model already on a device
    with another ``device`` given was filled where it was, silently; now refused, untouched."""
    m = models.resnet()
    p = it.plan(m)
    before = snapshot(m)
    for bad in ("meta", "cuda:0", "gpu0"):
        with pytest.raises(ValueError, match="device"):
            p.apply(m, seed=1, device=bad)
        assert same(snapshot(m), before)
    p.apply(m, seed=1, device="cpu")  # its own device: fine
    p.apply(m, seed=1, device=torch.device("cpu"))
    it.materialize(m, p, seed=1)  # a model not on the meta device is filled where it is
    assert not same(snapshot(m), before)


def test_meta_device_materialization_equals_cpu_init():
    cpu = models.resnet()
    p = it.plan(cpu)
    p.apply(cpu, seed=5)
    with torch.device("meta"):
        meta = models.ResNet()
    assert meta.fc.weight.is_meta
    it.materialize(meta, p, seed=5)
    assert not meta.fc.weight.is_meta
    assert same(snapshot(cpu), snapshot(meta))  # running stats reset too
    assert torch.equal(meta.layers[0].bn1.running_var, torch.ones(8))


def test_meta_materialization_keeps_tied_parameters():
    # Module.to_empty() gives each module its own copy of a shared parameter; initwise re-ties
    cpu = models.Tied()
    p = it.plan(cpu)
    p.apply(cpu, seed=1)
    with torch.device("meta"):
        meta = models.Tied()
    it.materialize(meta, p, seed=1)
    assert meta.head.weight is meta.emb.weight
    assert len(list(meta.parameters())) == len(list(cpu.parameters()))
    assert same(snapshot(cpu), snapshot(meta))


def test_meta_materialization_keeps_a_tie_inside_one_module():
    """One parameter under two names of the same module: ``to_empty`` gives each name its own
    uninitialized tensor; the re-tie listed each module's parameters once
    (``named_parameters`` drops the repeat), so the second name kept uninitialized memory."""
    with torch.device("meta"):
        meta = nn.Linear(3, 3)
    meta.alias = meta.weight
    cpu = nn.Linear(3, 3)
    cpu.alias = cpu.weight
    p = it.plan(cpu)
    p.apply(cpu, seed=2)
    it.materialize(meta, p, seed=2)
    assert meta.alias is meta.weight
    assert torch.equal(meta.alias, cpu.weight)


def test_materialized_tensors_are_what_to_empty_makes():
    """``materialize`` makes each tensor as ``Module.to_empty`` would (``empty_like``: shape,
    dtype, strides, requires_grad) but a plain contiguous one by ``torch.empty``, without
    ``empty_like``'s Python path from the meta device: a column-major weight keeps its strides, a
    frozen one stays frozen, a float64 buffer keeps its dtype."""

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.t = nn.Parameter(torch.empty(3, 4).t())  # (4, 3) with strides (1, 4)
            self.frozen = nn.Parameter(torch.empty(2, 3), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + x @ self.t.t()

    with torch.device("meta"):
        meta = Odd()
        meta.register_buffer("scale", torch.ones(3, dtype=torch.float64))
    want = {n: torch.empty_like(t, device="cpu") for n, t in meta.state_dict().items()}
    plan = it.plan(
        Odd(), overrides={"t": S.normal(0.0, 0.1), "frozen": S.zeros(), "a.*": S.normal(0.0, 1.0)}
    )
    apply_mod.to_empty_keeping_ties(meta, "cpu")
    for n, t in meta.state_dict().items():
        w = want[n]
        assert (t.shape, t.stride(), t.dtype, t.device) == (w.shape, w.stride(), w.dtype, w.device)
    assert (
        meta.t.stride() == (1, 4) and not meta.frozen.requires_grad and meta.a.weight.requires_grad
    )
    assert isinstance(meta.t, nn.Parameter) and meta.scale.dtype == torch.float64
    with torch.device("meta"):
        again = Odd()
    it.materialize(again, plan, seed=3)
    cpu = Odd()
    plan.apply(cpu, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), cpu.parameters(), strict=True))


def test_meta_plan_made_on_meta_model():
    with torch.device("meta"):
        m = models.transformer()
    p = it.plan(m, "gpt2")  # fx fails, no run possible on meta: structure still planned
    assert p["layers.0.linear1.weight"].std == 0.02
    it.materialize(m, p, seed=0)
    assert m.layers[0].linear1.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_meta_refuses_left_as_is_and_unknown_buffers():
    with torch.device("meta"):
        m = models.WithUnknown()
    with pytest.raises(ValueError, match="meta device and the plan leaves .* as is"):
        it.materialize(m, seed=0)
    assert m.fc.weight.is_meta  # nothing happened

    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("freqs", torch.arange(4.0))

    with torch.device("meta"):
        b = WithBuffer()
    with pytest.raises(ValueError, match="buffers freqs are on the meta device"):
        it.materialize(b, seed=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision_models(dtype):
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.LSTM(64, 32)).to(dtype)
    it.plan(m[:2]).apply(m[:2], seed=0)
    p = it.plan(m[2])
    p.apply(m[2], seed=0)
    assert m[0].weight.dtype == dtype
    assert m[0].weight.float().std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    w = m[2].weight_hh_l0.float()[:32]
    assert (w @ w.T - torch.eye(32)).abs().max().item() < 0.05


def test_padding_row_zero_and_forget_bias():
    m = models.Tied()
    it.init_model(m, seed=0)
    assert m.emb.weight[0].abs().sum().item() == 0
    lstm = nn.LSTM(3, 5)
    it.init_model(lstm, seed=0, forget_bias=2.0)
    assert torch.equal(lstm.bias_ih_l0[5:10], torch.full((5,), 2.0))
    assert lstm.bias_ih_l0[:5].abs().sum().item() == 0


def test_non_atomic_writes_same_values():
    a, b = models.resnet(), models.resnet()
    p = it.plan(a)
    p.apply(a, seed=1)
    p.apply(b, seed=1, atomic=False)
    assert same(snapshot(a), snapshot(b))


def test_plan_survives_json_then_applies_identically():
    a, b = models.resnet(), models.resnet()
    p = it.plan(a, "zero-init-residual")
    p.apply(a, seed=2)
    Plan.from_json(p.to_json()).apply(b, seed=2)
    assert same(snapshot(a), snapshot(b))


def test_apply_restores_nothing_it_should_not_touch():
    m = models.resnet()
    m.eval()
    p = it.plan(m, overrides={"fc.bias": S.constant(0.5)})
    p.apply(m, seed=0)
    assert not m.training
    assert torch.equal(m.fc.bias, torch.full((10,), 0.5))
    assert all(q.requires_grad for q in m.parameters())


@pytest.mark.parametrize("chunk_dim", [0, 1])
def test_packed_chunks_written_in_place_equal_the_concatenated_draw(chunk_dim):
    # chunks along dim 0 are contiguous slices of the weight (filled in place); along dim 1 they
    # are strided (drawn, then copied into the slice): both equal the chunks drawn and joined
    from initwise import sampling

    lin = nn.Linear(8, 24) if chunk_dim == 0 else nn.Linear(24, 8)
    p = it.plan(lin)
    e = dataclasses.replace(p["weight"], chunks=3, chunk_dim=chunk_dim)
    plan = dataclasses.replace(p, entries=(e, p["bias"]))
    plan.apply(lin, seed=5)
    parts = [
        sampling.sample(e.scheme, e.block_shape, seed=5, name=f"weight[{i}]", fans=e.fans)
        for i in range(3)
    ]
    expected = torch.from_numpy(np.concatenate(parts, axis=chunk_dim))
    assert torch.equal(lin.weight.detach(), expected)
    assert torch.equal(apply_mod.draw(e, 5, torch.device("cpu"), torch.float32), expected)


def test_complex_parameters_are_drawn_as_their_real_views():
    """A complex weight (an FNO's spectral weights, a complex-valued layer) was refused with
    advice to call ``.float()`` — which drops the imaginary part. Now it is drawn with
    ``E|w|² = σ²``, each part at ``σ/√2`` (torch's complex ``normal_``), the same bits on every
    call and engine-independent in scale; matrix schemes and uncentered ones are refused before
    anything is written; LSUV refuses complex models (it measured the real part)."""
    import initwise.schemes as S

    m = nn.Sequential(nn.Linear(256, 256, dtype=torch.cfloat))
    p = it.init_model(m, seed=0)
    w = m[0].weight.detach()
    assert float(w.abs().pow(2).mean()) == pytest.approx(p.entries[0].std ** 2, rel=0.02)
    assert float(w.real.var()) == pytest.approx(float(w.imag.var()), rel=0.05)
    twin = nn.Sequential(nn.Linear(256, 256, dtype=torch.cfloat))
    it.init_model(twin, seed=0)
    assert torch.equal(twin[0].weight, m[0].weight)
    p.apply(twin, seed=0, engine="torch")
    assert float(twin[0].weight.abs().pow(2).mean()) == pytest.approx(
        p.entries[0].std ** 2, rel=0.03
    )
    t = torch.empty(300, 300, dtype=torch.cfloat)
    it.xavier_uniform_(t)
    assert float(t.abs().pow(2).mean()) == pytest.approx(2 / 600, rel=0.03)  # (torch: 2×)
    it.constant_(t, 1.5)
    assert torch.equal(t, torch.full_like(t, 1.5))
    before = snapshot(m)
    with pytest.raises(ValueError, match="orthogonal can not fill a complex tensor"):
        it.init_model(m, seed=1, overrides={"0.weight": S.orthogonal()})
    with pytest.raises(ValueError, match="not centered at 0 and symmetric"):
        it.init_model(m, seed=1, overrides={"0.weight": S.normal(1.0, 0.1)})
    with pytest.raises(TypeError, match="lsuv: parameter '0.weight' is complex"):
        it.lsuv(m, torch.randn(8, 256, dtype=torch.cfloat))
    assert same(before, snapshot(m))
