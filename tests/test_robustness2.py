"""Issue 17 (robustness, round 2): failures leave models and files as they were; numbers the
target dtype can not hold are refused; a property test of extreme plan files."""

import json
import math
import os
import signal
import stat

import pytest

torch = pytest.importorskip("torch")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.diagnostics import diagnose  # noqa: E402
from initwise.plan import Plan  # noqa: E402
from initwise.torch.batch import NonFiniteError  # noqa: E402


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Fails(nn.Module):
    """BatchNorm in train mode, then a data-dependent failure (fx can not trace it either)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        h = self.bn(self.fc(x))
        if h.sum() > -1e9:
            raise RuntimeError("boom")
        return h


def test_failures_mid_forward_leave_norm_statistics_alone():
    m = _Fails().train()
    before = _state(m)
    x = torch.randn(8, 4) * 3 + 1
    with pytest.raises((RuntimeError, ValueError), match="boom"):
        diagnose(m, x)
    assert _same(before, _state(m))
    with pytest.raises(ValueError, match="could not run on the batch .*boom"):
        it.lsuv(m, x)
    assert _same(before, _state(m))
    with pytest.raises(ValueError, match="example_input: the model could not run on it.*boom"):
        it.plan(m, example_input=x)  # (before: planned without it, an assumption said)
    assert _same(before, _state(m))


def test_plan_by_running_restores_norm_statistics():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)

        def forward(self, x):
            h = self.bn(self.fc(x))
            return h if h.sum() > -1e9 else -h  # data-dependent: traced by running

    m = Branchy().train()
    before = _state(m)
    it.plan(m, example_input=torch.randn(8, 4) * 3 + 1)
    assert _same(before, _state(m))


def test_diagnose_refuses_a_nan_loss_and_bad_tol_and_warns_on_one_example():
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(16, 4)
    with pytest.raises(NonFiniteError, match="loss is nan"):
        diagnose(m, x, loss_fn=lambda out: out.sum() * float("nan"))
    for tol in (-1, 0, float("nan"), 1.0, float("inf")):
        with pytest.raises(ValueError, match="tol must be a finite number > 1"):
            diagnose(m, x, tol=tol)
    with pytest.warns(UserWarning, match="a batch of 1 example"):
        diagnose(m, x[:1])
    with pytest.raises(ValueError, match="empty tensor"):
        diagnose(m, x[:0])
    with pytest.raises(ValueError, match="meta-device"):
        diagnose(m, x.to("meta"))


def test_lsuv_reports_each_use_of_a_module_applied_twice():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(16, 16)
            self.b = nn.Linear(16, 16)

        def forward(self, x):
            return self.b(torch.tanh(self.a(torch.tanh(self.a(x)))))

    r = it.lsuv(Twice(), torch.randn(256, 16, generator=torch.Generator().manual_seed(0)))
    names = [x.name for x in r.layers]
    assert "a (use 2)" in names
    second = r.layers[names.index("a (use 2)")]
    assert second.converged == (abs(second.std_after - 1.0) < 0.1)


def test_plan_save_is_atomic_and_keeps_the_old_file(tmp_path, monkeypatch):
    p = it.plan(nn.Linear(3, 3))
    path = tmp_path / "plan.json"
    p.save(str(path))
    old = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        it.plan(nn.Linear(5, 5)).save(str(path))
    assert path.read_bytes() == old  # untouched, not truncated
    assert [f.name for f in tmp_path.iterdir()] == ["plan.json"]  # no temporary left


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "p.json"
        it.plan(nn.Linear(3, 3)).save(str(path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_ctrl_c_during_the_write_loop_waits_until_all_is_written(monkeypatch):
    m = nn.Sequential(*[nn.Linear(8, 8) for _ in range(6)])
    p = it.plan(m)
    real = torch.Tensor.copy_
    calls = []

    def copy_and_interrupt(self, src, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, src, *a, **k)

    monkeypatch.setattr(torch.Tensor, "copy_", copy_and_interrupt)
    with pytest.raises(KeyboardInterrupt):
        p.apply(m, seed=0)
    monkeypatch.setattr(torch.Tensor, "copy_", real)
    ref = nn.Sequential(*[nn.Linear(8, 8) for _ in range(6)])
    p.apply(ref, seed=0)
    assert _same(_state(ref), _state(m))  # every parameter written, none half


_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([1e-300, 1e300, 1e308, -1e308, 5e-324, 1e40, 1e-40, 0.0]),
)


@settings(max_examples=60, deadline=None)
@example(kind="fan_in", x=1.1754943508222875e-38, y=0.0, dtype=torch.float32)  # found by it
@given(
    kind=st.sampled_from(["normal", "uniform", "constant", "fan_in", "trunc"]),
    x=_numbers,
    y=_numbers,
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
)
def test_extreme_plan_files_are_refused_or_write_finite_values(kind, x, y, dtype):
    m = nn.Linear(6, 4).to(dtype)
    d = it.plan(m).to_dict()
    e = d["entries"][0]
    e["std"] = None
    if kind == "normal":
        e["scheme"] = {"type": "normal", "mean": x, "std": abs(y)}
    elif kind == "uniform":
        e["scheme"] = {"type": "uniform", "a": min(x, y), "b": max(x, y)}
    elif kind == "constant":
        e["scheme"] = {"type": "constant", "value": x}
    elif kind == "trunc":
        e["scheme"] = {
            "type": "trunc_normal",
            "mean": 0.0,
            "std": abs(x),
            "a": min(x, y),
            "b": max(x, y),
        }
    else:
        e["fan_in"] = abs(x)
    before = _state(m)
    try:
        plan = Plan.from_json(json.dumps(d))
        plan.apply(m, seed=0)
    except (ValueError, TypeError):
        assert _same(before, _state(m))  # refused: nothing written
        return
    w = m.weight.detach()
    assert torch.isfinite(w).all(), (kind, x, y, dtype)
    assert math.isfinite(float(w.double().abs().max()))


def test_an_example_input_the_model_cannot_run_is_an_error_not_a_silent_plan():
    """An example input of the wrong width or dtype was used as far as it went and nothing was
    said — for a Sequential, the first layer "solved for the example input's moments" — and a
    NaN batch failed deep inside ("kaiming_normal: gain must be finite"). Each is an error
    naming ``example_input`` now; the model runs once to check it, on copies of the input, its
    buffers and modes put back; a forward that needs gradients runs with them."""
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).train()
    before = _state(m)
    for bad in (torch.randn(8, 5), torch.ones(8, 4, dtype=torch.long)):
        with pytest.raises(ValueError, match="example_input: the model could not run on it"):
            it.plan(m, example_input=bad, strict=True)
        assert _same(before, _state(m))
    with pytest.raises(ValueError, match="example_input: .* non-finite values"):
        it.plan(m, example_input=torch.full((8, 4), float("inf")))
    x = torch.randn(8, 4) * 3 + 1
    kept = x.clone()
    it.plan(m, example_input=x)
    assert _same(before, _state(m)) and torch.equal(x, kept)

    class InPlace(nn.Module):  # (writes its input: the check runs on a copy of it)
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x.mul_(2))

    it.plan(InPlace(), example_input=x)
    assert torch.equal(x, kept)

    class Energy(nn.Module):  # (forward takes a gradient: a force field's −∂E/∂x)
        def __init__(self) -> None:
            super().__init__()
            self.e = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x):
            x = x.detach().requires_grad_(True)
            return -torch.autograd.grad(self.e(x).sum(), x, create_graph=True)[0]

    it.plan(Energy(), example_input=x)
    with torch.device("meta"):
        meta = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    it.plan(meta, example_input=torch.randn(8, 4, device="meta"))


def test_an_example_input_given_as_a_mapping_is_keyword_arguments():
    """A tokenizer's ``BatchEncoding`` is a mapping but not a dict: it was passed as one
    positional argument, so nothing ran on it (and, once example inputs were checked, planning
    raised with an empty message). Any mapping is keyword arguments now, as a dict is."""
    from collections import UserDict

    class Kw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x, scale=None):
            return self.b(torch.relu(self.a(x))) * (1 if scale is None else scale)

    x = torch.randn(8, 4)
    as_dict = it.plan(Kw(), example_input={"x": x, "scale": 2.0})
    assert it.plan(Kw(), example_input=UserDict({"x": x, "scale": 2.0})) == as_dict
    with pytest.raises(ValueError, match=r"\(no tensor in the object\): TypeError"):
        it.plan(Kw(), example_input=object())


def test_numpy_scalars_pass_where_python_ones_do():
    """The flag checks refuse strings ("no" is truthy) but take NumPy's bools, and the counts and
    scales NumPy's integers and floats, as the code before those checks took them."""
    import numpy as np
    import torch
    from torch import nn

    import initwise.torch as it
    from initwise.diagnostics import diagnose

    m = nn.Sequential(nn.Linear(4, 4))
    x = torch.randn(8, 4)
    it.plan(m, strict=np.False_).apply(m, seed=0, atomic=np.True_)
    diagnose(m, x, jacobian=np.False_, train=np.True_)
    it.lsuv(m, x, orthogonal=np.True_, max_iter=np.int64(3))
    n = it.NormalizeInput(dim=np.int64(-1), eps=np.float32(1e-6))
    assert n.dim == -1 and isinstance(n.dim, int)
    with pytest.raises(TypeError, match="strict must be True or False, got 'no'"):
        it.plan(m, strict="no")
