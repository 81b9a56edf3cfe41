"""Every write path: an exception midway leaves the model (or tensor) bit-identical; and the same
seed gives the same bits across runs and processes."""

import hashlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch import apply as apply_mod  # noqa: E402
from initwise.torch import init as init_mod  # noqa: E402
from tests import models  # noqa: E402


def snapshot(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def failing_after(n, real):
    calls = {"n": 0}

    def f(*args, **kw):
        calls["n"] += 1
        if calls["n"] > n:
            raise RuntimeError("simulated failure")
        return real(*args, **kw)

    return f


@pytest.mark.parametrize("engine", ["stream", "torch"])
def test_apply_atomic(monkeypatch, engine):
    m = models.resnet()
    before = snapshot(m)
    monkeypatch.setattr(apply_mod, "draw", failing_after(5, apply_mod.draw))
    with pytest.raises(RuntimeError, match="simulated"):
        it.plan(m).apply(m, seed=0, engine=engine)
    assert same(before, snapshot(m))


def test_apply_non_atomic_validates_before_writing():
    m = models.resnet()
    before = snapshot(m)
    bad = it.plan(models.vgg())
    with pytest.raises(ValueError):
        bad.apply(m, seed=0, atomic=False)
    assert same(before, snapshot(m))


def test_meta_materialize_failure_returns_to_meta(monkeypatch):
    with torch.device("meta"):
        m = models.Tied()
    p = it.plan(models.Tied())
    monkeypatch.setattr(apply_mod, "draw", failing_after(1, apply_mod.draw))
    with pytest.raises(RuntimeError, match="simulated"):
        it.materialize(m, p, seed=0)
    assert all(q.is_meta for q in m.parameters())
    assert m.head.weight is m.emb.weight  # ties kept
    monkeypatch.undo()
    it.materialize(m, p, seed=0)  # and it can still be materialized
    assert not m.fc.weight.is_meta


def test_drop_in_init_failure_leaves_tensor(monkeypatch):
    t = torch.randn(16, 16)
    before = t.clone()
    monkeypatch.setattr(init_mod, "sample", failing_after(0, init_mod.sample))
    with pytest.raises(RuntimeError, match="simulated"):
        it.kaiming_normal_(t)
    assert torch.equal(t, before)


def test_lsuv_failure_restores_model():
    # the second Linear sees an all-zero input (ReLU of a very negative pre-activation), so its
    # output is constant and LSUV fails there — after it already changed the first layer
    m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    before = snapshot(m)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))

    class Hook:
        def __call__(self, mod, inp, out):
            return out - 1e6  # make every unit dead

    h = m[0].register_forward_hook(Hook())
    with pytest.raises(ValueError, match="layer '2' output has std 0"):
        it.lsuv(m, x)
    h.remove()
    assert same(before, snapshot(m))


def test_diagnose_failure_restores_model():
    from initwise.diagnostics import diagnose

    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.Linear(4, 4))
    with torch.no_grad():
        m[2].weight.fill_(1e30)
        m[3].weight.fill_(1e30)  # its output overflows float32
    m.train()
    before = snapshot(m)
    with pytest.raises(ValueError, match="non-finite"):
        diagnose(m, torch.randn(8, 4) * 1e3)
    assert same(before, snapshot(m)) and m.training


DIGEST = """
import hashlib, torch, initwise.torch as it
from tests import models
m = models.resnet()
it.plan(m).apply(m, seed=11, threads={threads})
h = hashlib.sha256()
for k, v in sorted(m.state_dict().items()):
    h.update(k.encode()); h.update(v.detach().numpy().tobytes())
print(h.hexdigest())
"""


def test_same_seed_same_bits_across_processes():
    digests = {
        subprocess.run(
            [sys.executable, "-c", DIGEST.format(threads=t)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for t in (1, 2)
    }
    m = models.resnet()
    it.plan(m).apply(m, seed=11)
    h = hashlib.sha256()
    for k, v in sorted(m.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().numpy().tobytes())
    assert digests == {h.hexdigest()}


def test_lazy_modules_are_refused_not_materialized():
    # running a lazy model creates its parameters with torch's defaults: a change to the model
    # that diagnose/lsuv/plan must not make on their own (before: diagnose did, silently)
    from initwise.diagnostics import diagnose

    x = torch.randn(8, 3)
    calls = {
        "plan": lambda m: it.plan(m),
        "init_model": lambda m: it.init_model(m, seed=0),
        "lsuv": lambda m: it.lsuv(m, x, seed=0),
        "diagnose": lambda m: diagnose(m, x),
        "apply": lambda m: it.plan(nn.Sequential(nn.Linear(3, 4), nn.ReLU())).apply(m, seed=0),
    }
    for where, call in calls.items():
        m = nn.Sequential(nn.LazyLinear(4), nn.ReLU())
        with pytest.raises(ValueError, match="lazy modules that have not run yet"):
            call(m)
        assert isinstance(m[0], nn.LazyLinear), where


def test_planning_leaves_buffers_that_forward_writes_as_they_were():
    """fx hands ``forward`` the real buffers while tracing, so a module that writes one in
    place (a BatchNorm written by hand updating its running statistics, a step counter) had it
    changed by ``plan``: the running variance went 1 → 0.9 per trace. Every buffer is put back
    after tracing; the plan also measures nothing on the model itself."""
    import warnings

    class Counted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.register_buffer("steps", torch.zeros(()))
            self.register_buffer("ema", torch.ones(8))

        def forward(self, x):
            self.steps += 1
            self.ema.mul_(0.9).add_(0.1)
            return self.lin(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = Counted(), nn.Linear(8, 4)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    m = Net()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it.plan(m, "auto")
        it.plan(m, "auto", example_input=torch.randn(4, 8))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def _bn_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: it.init_model(m, seed=0),
        lambda m: it.plan(m).apply(m, seed=0, atomic=False),
        lambda m: it.lsuv(m, torch.randn(16, 4), seed=0),
        lambda m: it.lsuv(m, torch.randn(16, 4), seed=0, orthogonal=False),
        lambda m: it.kaiming_normal_(m[0].weight),
    ],
    ids=["init_model", "apply-non-atomic", "lsuv", "lsuv-rescale", "drop-in"],
)
def test_inference_tensors_are_refused_before_anything_is_written(call):
    # torch's copy_ into an inference tensor outside inference mode writes the data and *then*
    # raises: before the check, init_model left the first weight drawn and the rest as built
    with torch.inference_mode():
        m = _bn_mlp()
    before = snapshot(m)
    with pytest.raises(RuntimeError, match="an inference tensor .* nothing was written"):
        call(m)
    assert same(before, snapshot(m))


def test_inference_tensors_inside_inference_mode_get_the_same_bits():
    with torch.inference_mode():
        m = _bn_mlp()
        m[1].running_mean += 1
        it.init_model(m, seed=3)
    ref = _bn_mlp()
    it.init_model(ref, seed=3)
    assert same(snapshot(ref), snapshot(m))  # (running statistics reset there too)


def test_init_model_checks_the_norm_buffers_it_resets_before_writing():
    m = _bn_mlp()
    with torch.inference_mode():
        m[1].running_mean = torch.ones(8)  # (a buffer loaded under inference mode)
    before = snapshot(m)
    with pytest.raises(RuntimeError, match="buffer '1.running_mean': an inference tensor"):
        it.init_model(m, seed=0)
    assert same(before, snapshot(m))  # (the weights were not written either)


def test_zero_size_layers_are_planned():
    # nn.AdaptiveLogSoftmaxWithLoss(8, 100, cutoffs=[10, 50]) has an (0, 8) tail projection
    # (8 // 4**2 rows): planning raised "fans: shape (0, 8) has a zero-sized dimension"
    m = nn.AdaptiveLogSoftmaxWithLoss(8, 100, cutoffs=[10, 50])
    p = it.init_model(m, seed=0)
    assert p["tail.1.0.weight"].scheme is None
    assert "no elements" in p["tail.1.0.weight"].reason
    assert p["head.weight"].scheme is not None
    # a layer with no inputs (an (n, 0) weight; planning raised ZeroDivisionError): its bias,
    # the layer's whole output, starts at zero
    z = nn.Sequential(nn.Linear(0, 4), nn.ReLU(), nn.Linear(4, 3))
    q = it.init_model(z, seed=0)
    assert q["0.weight"].scheme is None
    assert q["0.bias"].scheme.label == "zeros" and not z[0].bias.any()


def test_init_model_leaves_a_lazy_norm_that_has_not_run():
    # a LazyBatchNorm without affine parameters has only uninitialized buffers: the norm-stat
    # reset ran zero_() on them after the weights were written and raised ("Attempted to use an
    # uninitialized parameter"), leaving the Linear drawn
    m = nn.Sequential(nn.Linear(4, 4), nn.LazyBatchNorm1d(affine=False))
    it.init_model(m, seed=0)
    ref = nn.Sequential(nn.Linear(4, 4))
    it.init_model(ref, seed=0)
    assert torch.equal(m[0].weight, ref[0].weight)
    m(torch.randn(3, 4))  # (the lazy norm still materializes on its first batch)
    assert m[1].running_mean.shape == (4,)
