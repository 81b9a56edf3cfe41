"""diagnose: numbers against hand computation, theory, verdicts, restoration, rendering."""

import copy
import json
import math
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.diagnostics import diagnose, plot_reports, write_report  # noqa: E402
from initwise.plan import AssumptionWarning  # noqa: E402
from tests import models  # noqa: E402


def test_probe_numbers_match_hand_computation():
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]]))
        m[0].bias.copy_(torch.tensor([0.5, -0.5]))
        m[2].weight.copy_(torch.tensor([[2.0, -3.0]]))
        m[2].bias.zero_()
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    r = diagnose(m, x, loss_fn=lambda y: y.sum())
    with torch.no_grad():
        h = x @ m[0].weight.T + m[0].bias  # [[2.5, -2.5], [-1.5, 2.5]]
        a = torch.relu(h)
    s0, s1 = r.layers
    assert s0.in_m2 == pytest.approx(float((x**2).mean()))
    assert s0.out_m2 == pytest.approx(float((h**2).mean()))
    assert s0.out_mean == pytest.approx(float(h.mean()))
    assert s0.out_std == pytest.approx(float(h.std()))
    assert s0.post_m2 == pytest.approx(float((a**2).mean()))
    assert s0.dead == 0.0
    # d(sum y)/dh = w2 * relu'(h): [[2, 0], [0, -3]] -> std of those 4 numbers
    g = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    assert s0.grad_std == pytest.approx(float(g.std()))
    assert s1.grad_std == pytest.approx(0.0)  # dL/dy = 1 everywhere
    # weight gradient of layer 0 = g^T x
    assert s0.weight_grad_std == pytest.approx(float((g.T @ x).std()))
    assert s0.pred_local == pytest.approx(
        3 * float((m[0].weight.detach() ** 2).mean()) * s0.in_m2
        + float((m[0].bias.detach() ** 2).mean())
    )
    assert s0.weight_std == pytest.approx(float(m[0].weight.detach().std()))
    assert s1.in_m2 == pytest.approx(float((a**2).mean()))  # Σx² reused from layer 0's Σpost²


def test_a_root_weight_layer_is_not_its_own_successor():
    """The model itself a weight layer (its name is ""): its post-activation is its output, not
    its input (a "" default in the successor lookup once read its own input back)."""
    m = nn.Linear(8, 8)
    x = torch.randn(64, 8) * 3.0
    (s,) = diagnose(m, x).layers
    with torch.no_grad():
        y = m(x)
    assert s.post_m2 == pytest.approx(float((y**2).mean()), rel=1e-5)
    assert s.in_m2 == pytest.approx(float((x**2).mean()), rel=1e-5)


def test_he_flat_xavier_decays_as_predicted():
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    he, xa = models.deep_mlp(12), models.deep_mlp(12)
    it.plan(he, "he").apply(he, seed=0)
    it.plan(xa, "xavier").apply(xa, seed=0)
    rh, rx = diagnose(he, x), diagnose(xa, x)
    assert rh.chain_theory and rx.chain_theory
    assert rh.verdict == "healthy"
    preds = [s.pred_chain for s in rh.layers]
    assert max(preds) / min(preds) < 1.1  # theory: flat
    for s in rh.layers:  # measured: a finite-width (256) random walk around it
        assert s.out_m2 == pytest.approx(s.pred_chain, rel=0.6)
    for k, s in enumerate(rx.layers):  # 2^-L decay
        assert s.pred_chain == pytest.approx(2.0**-k * rx.layers[0].pred_chain, rel=0.05)
        # each layer does what its own theory says (the chain is only the expectation: finite
        # width makes the measured q a random walk around it)
        assert s.out_m2 == pytest.approx(s.pred_local, rel=0.2)
    per_layer = (rx.layers[-1].out_m2 / rx.layers[0].out_m2) ** (1 / (len(rx.layers) - 1))
    assert per_layer == pytest.approx(0.5, rel=0.1)
    assert rx.verdict == "vanishing"
    assert "kaiming_normal with gain 1.414" in rx.layers[-1].suggestion
    for s in rh.layers[:-1]:
        assert s.chi == pytest.approx(1.0, abs=0.1)
    for s in rx.layers[:-1]:
        assert s.chi == pytest.approx(0.5, abs=0.05)
    # predicted gradients follow the measurement
    for s in rx.layers:
        assert s.grad_std == pytest.approx(math.sqrt(s.pred_grad_chain), rel=0.25)


def test_dead_saturated_exploding():
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    dead = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    it.init_model(dead, seed=0, overrides={"0.bias": {"scheme": "constant", "value": -50.0}})
    assert diagnose(dead, x).layers[0].verdict == "dead"
    sat = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    it.init_model(sat, seed=0, overrides={"0.weight": {"scheme": "normal", "std": 1.0}})
    r = diagnose(sat, x)
    assert r.layers[0].verdict == "saturated" and r.layers[0].saturated > 0.5
    boom = models.deep_mlp(8, 64)
    it.init_model(boom, seed=0, overrides={"*.weight": {"scheme": "normal", "std": 0.4}})
    rb = diagnose(boom, x)
    assert rb.verdict == "exploding"
    assert "use std = 1.414/√fan_in" in rb.layers[-1].suggestion


@pytest.mark.parametrize("width", [64, 512])  # the hook's sums by NumPy / by torch
def test_in_place_activations_give_the_same_report(width):
    """ReLU(inplace=True) (torchvision's default) overwrites a layer's output after its hook:
    the pre-activation statistics and the gradient at the pre-activation are taken before."""
    reports = []
    for inplace in (False, True):
        torch.manual_seed(0)
        m = nn.Sequential(
            nn.Linear(width, width),
            nn.ReLU(inplace=inplace),
            nn.Linear(width, width),
            nn.ReLU(inplace=inplace),
            nn.Linear(width, 10),
            nn.ReLU(inplace=inplace),  # the last one: no next layer sees its output
        )
        reports.append(
            diagnose(m, torch.randn(300, width, generator=torch.Generator().manual_seed(1)))
        )
    plain, inplace = (r.to_dict()["layers"] for r in reports)
    assert plain[0]["out_mean"] == pytest.approx(0.0, abs=0.05)  # not the ReLU's positive mean
    for a, b in zip(plain, inplace, strict=True):
        for k, va in a.items():
            assert b[k] == (
                pytest.approx(va, rel=1e-5, abs=1e-5) if isinstance(va, float) else va
            ), k


class _Functional(nn.Module):
    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.in_place = in_place
        self.a, self.b, self.c = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.relu(self.a(x), inplace=self.in_place)
        h = self.b(h).relu_() if self.in_place else self.b(h).relu()
        return self.c(h)


class _SetItem(nn.Module):
    def __init__(self, then_scale: bool = False) -> None:
        super().__init__()
        self.then_scale = then_scale
        self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.then_scale:  # an in-place change diagnose does not recognize: a write through
            h.detach()[:, 0] = 0.0  # another tensor of the same storage
        else:  # recorded as a node of its own (a setitem) since 2026-12-05
            h[:, 0] = 0.0
        p = torch.relu(h)
        return self.b(p * 1.0 if self.then_scale else p)


class _AddInPlace(nn.Module):
    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.in_place = in_place
        self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.in_place:
            h += x  # a residual sum written in place: not the activation
        else:
            h = h + x
        return self.b(torch.relu(h))


def _both_forms(make: Any, x: torch.Tensor) -> list[list[dict[str, Any]]]:
    """The report layers of ``make(False)`` and ``make(True)`` (out of place, in place), built
    from the same seed."""
    reports = []
    for in_place in (False, True):
        torch.manual_seed(0)
        reports.append(diagnose(make(in_place), x).to_dict()["layers"])
    return reports


def test_in_place_sum_after_a_layer_keeps_its_own_statistics():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    reports = _both_forms(_AddInPlace, x)
    for a, b in zip(*reports, strict=True):
        for k in ("out_mean", "out_m2", "post_m2", "grad_std", "weight_grad_std"):
            assert b[k] == pytest.approx(a[k], rel=1e-5), k
    with pytest.warns(AssumptionWarning, match="'a' was changed in place"):
        r = diagnose(_AddInPlace(True), x)
    assert any("'a' was changed in place" in n and "recomputed" in n for n in r.notes)
    assert not any("input had changed too" in n for n in r.notes)  # its input was kept intact


def test_functional_in_place_activations_and_unrecognized_changes():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    reports = _both_forms(_Functional, x)
    for a, b in zip(*reports, strict=True):
        for k, va in a.items():
            assert b[k] == (
                pytest.approx(va, rel=1e-5, abs=1e-5) if isinstance(va, float) else va
            ), k
    # the layer's own statistics are taken as it runs; its post-activation is the next layer's
    # input (what the network computed): nothing recomputed, nothing to say
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = diagnose(_SetItem(), x)
    assert not any("changed in place" in n for n in r.notes)
    torch.manual_seed(0)
    ref = _SetItem()
    ref.forward = lambda t: ref.b(torch.relu(ref.a(t)))  # the same layer, nothing in place
    assert r.layers[0].out_m2 == pytest.approx(diagnose(ref, x).layers[0].out_m2, rel=1e-5)
    # φ(y) computed from the kept output, which changed: recomputed from the layer's input
    torch.manual_seed(0)
    with pytest.warns(AssumptionWarning, match="'a' was changed in place"):
        r2 = diagnose(_SetItem(then_scale=True), x)
    assert any("'a' was changed in place" in n and "recomputed" in n for n in r2.notes)
    assert r2.layers[0].out_m2 == pytest.approx(r.layers[0].out_m2, rel=1e-6)
    assert r2.layers[0].post_m2 == pytest.approx(diagnose(ref, x).layers[0].post_m2, rel=1e-5)

    def masked(t: torch.Tensor) -> torch.Tensor:  # column 0 zeroed out of place
        h = ref.a(t).clone()
        h[:, 0] = 0.0
        return ref.b(torch.relu(h))

    ref.forward = masked  # the gradient at the layer's own output (column 0 gets none)
    m = diagnose(ref, x).layers[0]
    assert r.layers[0].grad_std == pytest.approx(m.grad_std, rel=1e-5)
    assert r.layers[0].weight_grad_std == pytest.approx(m.weight_grad_std, rel=1e-5)
    assert not any("changed in place" in n for n in diagnose(_Functional(True), x).notes)
    # the write by index is what the activation read: its statistics are the written tensor's
    with torch.no_grad():
        h = ref.a(x).clone()
        h[:, 0] = 0.0
        assert r.layers[0].post_m2 == pytest.approx(float(torch.relu(h).pow(2).mean()), rel=1e-5)


def test_outputs_and_weight_gradients_are_not_kept_to_the_end():
    """diagnose's peak memory: a layer's output is released once the next layer took its
    post-activation, and each weight gradient as soon as its hook reduced it (the previous
    code kept both to the end: every output and the model's size again in gradients)."""
    import weakref

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Linear(16, 16), nn.Tanh()]
    m = nn.Sequential(*layers, nn.Linear(16, 4))
    grads: dict[str, Any] = {}
    seen: dict[str, bool] = {}
    m[6].weight.register_hook(lambda g: grads.__setitem__("g6", weakref.ref(g)))
    m[0].weight.register_hook(lambda g: seen.__setitem__("g6", grads["g6"]() is not None))
    m[0].register_forward_hook(
        lambda mod, a, o: grads.__setitem__("y0", weakref.ref(o.untyped_storage()))
    )
    m[4].register_forward_hook(lambda mod, a, o: seen.__setitem__("y0", grads["y0"]() is not None))
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    r = diagnose(m, x)
    assert seen == {"g6": False, "y0": False}  # both were alive to the end before
    # the statistics are those of the released tensors
    y0 = m[0](x)
    assert r.layers[0].out_m2 == pytest.approx(float(y0.double().pow(2).mean()), rel=1e-5)
    out = m(x)
    rproj = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (g6,) = torch.autograd.grad((out * rproj).sum(), [m[6].weight])
    assert r.layers[3].weight_grad_std == pytest.approx(float(g6.std()), rel=1e-5)


def test_tied_weight_reports_its_whole_gradient_in_each_layer():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
    m[2].weight = m[0].weight  # one tensor, two layers
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    r = diagnose(m, x)
    out = m(x)
    rproj = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (g,) = torch.autograd.grad((out * rproj).sum(), [m[0].weight])  # both uses summed
    for s in r.layers:
        assert s.weight_grad_std == pytest.approx(float(g.std()), rel=1e-5)


@pytest.mark.parametrize("train", [None, True, False])
def test_each_submodule_gets_its_mode_back(train):
    # a BatchNorm frozen in eval inside a model in train mode (fine-tuning) stays frozen:
    # model.train(was) would have switched it back to train mode
    m = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    m.train()
    m[1].eval()
    seen = []
    m[1].register_forward_hook(lambda mod, a, o: seen.append(mod.training))
    diagnose(m, torch.randn(32, 8), train=train)
    assert [x.training for x in m.modules()] == [True, True, False, True, True]
    assert seen[-1] is (False if train is None else train)  # the mode it ran in


def test_model_is_restored():
    m = models.resnet()
    m.train()
    m.fc.weight.grad = torch.ones_like(m.fc.weight)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    r = diagnose(m, torch.randn(8, 3, 16, 16), train=False)
    assert m.training
    assert torch.equal(m.fc.weight.grad, torch.ones_like(m.fc.weight))
    assert m.layers[0].conv1.weight.grad is None
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. BN running stats
    assert not r.chain_theory and "chain theory skipped: the model has 4 residual" in r.notes[0]
    r2 = diagnose(m, torch.randn(8, 3, 16, 16))  # train mode: BN stats would move; restored
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(r2.layers) == 13  # stem, 4×2 block convs, 3 downsample convs, fc


def test_bad_batches_are_clear():
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(ValueError, match="non-finite values"):
        diagnose(m, torch.tensor([[float("nan"), 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"could not run on the batch \(shapes \(2, 5\)\)"):
        diagnose(m, torch.randn(2, 5))
    with pytest.raises(ValueError, match="must be a tensor"):
        diagnose(m, [1, 2])
    big = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    with torch.no_grad():
        big[0].weight.fill_(1e30)  # finite output 4e30 ...
        big[1].weight.fill_(1e30)  # ... times 1e30 overflows float32
    with pytest.raises(ValueError, match="layer '1' produced non-finite values"):
        diagnose(big, torch.ones(2, 4))


def test_batch_finiteness_check_is_exact_and_reductions_restore_threads():
    """check_batch reads one sum first: NaN/Inf anywhere is caught (also +Inf and −Inf that
    cancel to NaN), and a finite batch whose float32 sum overflows is not refused."""
    from initwise.diagnostics.probe import SMALL_REDUCTION, _reduction_threads
    from initwise.torch.batch import check_batch

    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.zeros(3, 4)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="non-finite values"):
            check_batch(x)
    x = torch.zeros(2, 4)
    x[0, 0], x[1, 1] = float("inf"), -float("inf")
    with pytest.raises(ValueError, match="non-finite values"):
        check_batch(x)
    check_batch(torch.full((4, 4), 3e38))  # sum overflows float32, every value is finite
    # small CPU tensors: one thread for the reductions; torch's setting restored after
    before = torch.get_num_threads()
    m = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
    diagnose(m, torch.randn(16, 8))
    assert torch.get_num_threads() == before
    sums = (torch.zeros(()), torch.zeros(()))  # (a layer's output is kept as its shape and sums)
    small = {"a": {"x": torch.zeros(4), "y_shape": torch.Size([4]), "y_sums": sums}}
    assert _reduction_threads(small, ["a"]) == 1
    large = {"a": {"x": torch.zeros(4), "y_shape": torch.Size([SMALL_REDUCTION]), "y_sums": sums}}
    assert _reduction_threads(large, ["a"]) is None
    large_in = {
        "a": {"x": torch.zeros(SMALL_REDUCTION), "y_shape": torch.Size([4]), "y_sums": sums}
    }
    assert _reduction_threads(large_in, ["a"]) is None


def test_jacobian_isometry():
    lin = nn.Sequential(*[nn.Linear(32, 32, bias=False) for _ in range(6)])
    it.plan(lin, "orthogonal").apply(lin, seed=0)
    r = diagnose(lin, torch.randn(4, 32), jacobian=True)
    assert r.jacobian is not None
    assert r.jacobian.singular_values == pytest.approx([1.0] * 32, abs=1e-4)
    relu = models.deep_mlp(6, 32)
    it.init_model(relu, seed=0)
    rr = diagnose(relu, torch.randn(4, 32), jacobian=True)
    assert rr.jacobian.condition > 10  # ReLU nets are far from isometry
    with pytest.raises(ValueError, match="small models"):
        diagnose(models.deep_mlp(2, 2048), torch.randn(2, 2048), jacobian=True)


def test_rendering(tmp_path):
    x = torch.randn(64, 256)
    reps = {}
    for policy in ("auto", "xavier"):
        m = models.deep_mlp(5)
        it.plan(m, policy).apply(m, seed=0)
        reps[policy] = diagnose(m, x, label=policy)
    text = reps["xavier"].render(200)
    assert "E[x²] in" in text and "vanishing" in text and "q̂ chain" in text
    png = plot_reports(reps, str(tmp_path / "p.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    md = write_report(reps, str(tmp_path / "rep"), "test")
    content = open(md).read()
    assert "![signal propagation](signal.png)" in content and "## xavier: vanishing" in content
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["auto"]["verdict"] == "healthy" and len(data["auto"]["layers"]) == 5


def test_cli_diagnose(tmp_path, capsys):
    from initwise.cli import main

    assert (
        main(
            [
                "diagnose",
                "tests.models:vgg",
                "--input-shape",
                "8,3,32,32",
                "--compare",
                "auto,torch-default",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "torch-default" in out and (tmp_path / "signal.png").exists()
    assert main(["diagnose", "tests.models:vgg", "--input-shape", "8,3,31"]) == 2
    assert "could not run on the batch" in capsys.readouterr().err


def test_chi_is_the_gradient_norm_gain_not_the_width_ratio():
    """A 256 → 10 readout shrinks the per-unit gradient 25×; χ (mean-field, fan_in-based) does
    not count that as instability (it printed 0.02 beside "healthy" before)."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    it.init_model(m, seed=0)
    r = diagnose(m, torch.randn(256, 64))
    assert r.verdict == "healthy"
    assert r.layers[0].chi == pytest.approx(1.0, abs=0.1)  # He into He
    assert r.layers[1].chi == pytest.approx(0.5, abs=0.08)  # ReLU into the gain-1 readout


def test_gradient_at_a_frozen_layer_is_still_measured():
    # the first layer's weight frozen, its bias trainable: its output needs a gradient but lies
    # on no path to a trainable weight; the report must still give its gradient, equal to the
    # unfrozen model's (the gradient does not depend on what is trainable)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))
    frozen = copy.deepcopy(ref)
    frozen[0].weight.requires_grad_(False)
    a, b = diagnose(ref, x).layers, diagnose(frozen, x).layers
    assert b[0].grad_std is not None
    assert b[0].grad_std == pytest.approx(a[0].grad_std, rel=1e-6)
    assert b[1].weight_grad_std == pytest.approx(a[1].weight_grad_std, rel=1e-6)
    assert b[0].weight_grad_std is None  # a frozen weight has no gradient to report
    assert frozen[0].bias.grad is None and frozen[2].weight.grad is None  # .grad untouched
    every = copy.deepcopy(ref).requires_grad_(False)  # nothing trainable: no gradients at all
    assert all(s.grad_std is None for s in diagnose(every, x).layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_report_equals_cpu():
    # the same statistics on the device (sums, tensor hooks and the one read-back on the GPU),
    # including an in-place activation (its sums taken in the hook) and a ReLU's dead fraction
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(inplace=True), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 8)
    )
    cpu = diagnose(model, x).to_dict()["layers"]
    gpu = diagnose(model.cuda(), x.cuda()).to_dict()["layers"]
    for a, b in zip(cpu, gpu, strict=True):
        for k, va in a.items():
            if isinstance(va, float):
                assert b[k] == pytest.approx(va, rel=1e-3, abs=1e-6), k
            else:
                assert b[k] == va, k


class _Checkpointed(nn.Module):
    def __init__(self, ck: bool) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)
        self.ck = ck

    def block(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.b(torch.tanh(self.a(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        h = checkpoint(self.block, x, use_reentrant=False) if self.ck else self.block(x)
        return self.c(h)


def test_activation_checkpointing_gives_the_same_report():
    # the block runs twice (again in backward); the hooks keep the first run and its gradients
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    plain = _Checkpointed(False)
    ck = copy.deepcopy(plain)
    ck.ck = True
    a, b = diagnose(plain, x).to_dict()["layers"], diagnose(ck, x).to_dict()["layers"]
    assert [s["name"] for s in b] == ["a", "b", "c"]
    for sa, sb in zip(a, b, strict=True):
        for k in ("out_m2", "post_m2", "grad_std", "weight_grad_std", "in_m2"):
            assert sb[k] == pytest.approx(sa[k], rel=1e-6), k


class _Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)).detach())  # `a` can never learn


def test_a_trainable_weight_no_gradient_reaches_is_reported():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(5))
    with pytest.warns(UserWarning, match="no gradient from the loss reaches the weight of 'a'"):
        r = diagnose(_Detached(), x)
    assert r.layers[0].weight_grad_std is None and r.layers[1].weight_grad_std is not None
    assert any("'a'" in n and "would not change" in n for n in r.notes)
    frozen = _Detached()
    frozen.a.requires_grad_(False)  # frozen on purpose: nothing to report
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not any("no gradient" in n for n in diagnose(frozen, x).notes)


def test_dropout_in_train_mode_is_seeded_and_the_global_rng_left_alone():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))
    model.train()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(6))
    state = torch.get_rng_state().clone()
    a = diagnose(model, x).to_dict()["layers"]
    assert torch.equal(state, torch.get_rng_state())  # the caller's stream did not move
    torch.manual_seed(123)  # whatever the global state: the same masks for the same seed
    assert diagnose(model, x).to_dict()["layers"] == a
    other = diagnose(model, x, seed=1).to_dict()["layers"]
    assert other[1]["in_m2"] != a[1]["in_m2"]  # another seed, other dropout masks


def test_the_callers_queued_gpu_seed_is_left_alone():
    # torch.manual_seed queues a seed for GPUs not yet initialized (even on a CPU-only build);
    # seeding dropout with it inside diagnose would replace the caller's queued seed, which a
    # later first use of CUDA would then apply
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if tracker is None or not hasattr(tracker, "manual_seed_all_cb"):
        pytest.skip("this torch has no lazy CUDA seed tracker")
    torch.manual_seed(5)
    queued = tracker.manual_seed_all_cb
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    diagnose(model, torch.randn(16, 8))
    assert tracker.manual_seed_all_cb is queued


def test_chain_theory_skipped_says_why():
    # before: "the model has norms or residual branches" whatever the reason
    cases = [
        (nn.GRUCell(8, 16), torch.randn(4, 8), "Linear and Conv layers only: the model itself is"),
        (
            nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 4)),
            torch.randn(16, 8),
            "normalization layers ('1')",
        ),
        (
            nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.LSTM(16, 4)),
            torch.randn(5, 8),
            "'2' is a LSTM",
        ),
    ]
    for m, x, why in cases:
        r = diagnose(m, x)
        assert not r.chain_theory and why in r.notes[0], r.notes


def test_a_fully_frozen_model_says_no_gradients_were_measured():
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    for p in m.parameters():
        p.requires_grad_(False)
    r = diagnose(m, torch.randn(16, 8))
    assert all(s.grad_std is None for s in r.layers)
    assert any("no gradients were measured" in n for n in r.notes)


def test_diagnose_runs_through_reentrant_checkpointing():
    """``checkpoint(..., use_reentrant=True)`` refuses ``autograd.grad``: diagnose raised torch's
    RuntimeError. It now takes the same statistics as without checkpointing, and the
    parameters' ``.grad`` are as they were."""
    from torch.utils.checkpoint import checkpoint

    class Net(torch.nn.Module):
        def __init__(self, ckpt: bool) -> None:
            super().__init__()
            self.a, self.b, self.c = (torch.nn.Linear(16, 16) for _ in range(3))
            self.ckpt = ckpt

        def block(self, h: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.b(h))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.a(x))
            h = checkpoint(self.block, h, use_reentrant=True) if self.ckpt else self.block(h)
            return self.c(h)

    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = Net(False)
    torch.manual_seed(0)
    ckpt = Net(True)
    ckpt.a.weight.grad = torch.ones_like(ckpt.a.weight)
    a, b = diagnose(plain, x), diagnose(ckpt, x)
    assert [s.name for s in b.layers] == [s.name for s in a.layers]
    for p, q in zip(a.layers, b.layers, strict=True):
        assert q.out_std == pytest.approx(p.out_std, rel=1e-6)
        assert q.weight_grad_std == pytest.approx(p.weight_grad_std, rel=1e-5)
    assert torch.equal(ckpt.a.weight.grad, torch.ones_like(ckpt.a.weight))
    assert ckpt.b.weight.grad is None


@pytest.mark.parametrize("policy", ["fixup", "zero-init-residual"])
def test_zero_initialized_layers_are_not_called_vanishing(policy):
    """Fixup and zero-init-residual start each residual branch's last layer at zero (Fixup
    the read-out too): the zero layer's output is its bias, and the layers before it get no
    gradient through it until the first step. `diagnose` called 17 and 22 of the 33 layers
    "vanishing" and advised drawing them at 1/√fan_in, which undoes the scheme. They are
    "zero-init" now, each with why, and the verdict is healthy."""
    from initwise.bench.zoo import ResidualMLP

    torch.manual_seed(0)
    m = ResidualMLP()
    it.init_model(m, policy, seed=0)
    r = diagnose(m, torch.randn(256, 256, generator=torch.Generator().manual_seed(1)))
    assert r.verdict == "healthy" and "zero-initialized" in r.summary
    ends = [s for s in r.layers if s.name.startswith("outer.")]
    assert ends and all(s.zero_weight and s.verdict == "zero-init" for s in ends)
    assert "weights all zero" in ends[0].suggestion
    inner = [s for s in r.layers if s.name.startswith("inner.")]
    assert all(s.verdict == "zero-init" and "no gradient reaches it yet" in s.suggestion
               for s in inner)  # fmt: skip
    assert {s.verdict for s in r.layers} <= {"healthy", "zero-init"}


def test_a_network_zero_initialized_throughout_is_still_not_healthy():
    """A zero weight on a zero input is the symmetry that never breaks (the zero-symmetry
    experiment): not excused as a deliberate zero start."""
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    for p in m.parameters():
        nn.init.zeros_(p)
    r = diagnose(m, torch.randn(128, 64, generator=torch.Generator().manual_seed(0)))
    assert r.verdict != "healthy"
    assert [s.verdict for s in r.layers][1:] != ["zero-init", "zero-init"]


class _Table(nn.Module):
    """A bias table read in forward with no signal (Swin's relative position bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(8, 16))

    def forward(self) -> torch.Tensor:
        return self.table.sum(0)


class _WithTable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.bias = nn.Linear(16, 16), nn.Linear(16, 4), _Table()

    def forward(self, x):
        return self.b(torch.relu(self.a(x) + self.bias()))


def test_a_zero_table_read_in_forward_is_not_vanishing():
    """Swin's relative position bias is a module called with no signal, its table zero as
    Hugging Face builds it: `diagnose` measured it as a layer whose signal "shrank to 0" and
    the verdict was vanishing."""
    torch.manual_seed(0)
    m = _WithTable()
    it.init_model(m, seed=0)
    r = diagnose(m, torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    table = {s.name: s for s in r.layers}["bias"]
    assert table.verdict == "zero-init" and "no signal" in table.suggestion
    assert r.verdict == "healthy"


def test_gradient_growth_through_batch_norms_is_not_blamed_on_the_init():
    """A plain 30-layer Linear → BatchNorm → ReLU network explodes its gradients at init
    (Yang et al. 2019): ×177 from the last hidden layer to the first. Each layer feeds a batch
    norm, which removes its scale, so the advice to switch to fan_out (what an unnormalized
    layer gets) would change nothing; it says so. In eval mode, fresh running statistics make
    the norms affine and the layers' scales matter again."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(32, 64)]
    for _ in range(30):
        layers += [nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64, bias=False)]
    layers += [nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)]
    m = nn.Sequential(*layers)
    it.init_model(m, seed=0)
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    r = diagnose(m, x, train=True)
    bad = [s for s in r.layers if s.verdict == "exploding"]
    assert r.verdict == "exploding" and len(bad) > 10
    assert all("through normalized layers" in s.suggestion for s in bad)
    assert not any("fan_out'" in s.suggestion for s in bad)
    ev = diagnose(m, x, train=False)
    assert not any("through normalized layers" in s.suggestion for s in ev.layers)


def test_a_forward_that_breaks_its_own_backward_gets_a_clear_error():
    """A forward that writes in place into a tensor its gradient needs (HF RWKV's state in eval
    mode; here a sigmoid's output) cannot be differentiated: torch's "one of the variables
    needed for gradient computation has been modified by an inplace operation" came out of
    diagnose as is. It is a ValueError that says what and what to do; the model is as it was."""

    class Writes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.sigmoid(self.a(x))
            if not self.training:
                h.mul_(2.0)  # (sigmoid's backward needs its output)
            return self.b(h)

    torch.manual_seed(0)
    m = Writes().eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="backward pass failed.*train=True"):
        diagnose(m, x)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters()) and not m.training
    assert diagnose(m, x, train=True).verdict in ("healthy", "vanishing", "exploding")
