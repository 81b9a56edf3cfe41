"""Weight layers the trace never reaches are said, and quantization-aware layers are layers."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initwise.plan import AssumptionError, AssumptionWarning  # noqa: E402
from initwise.torch import plan  # noqa: E402


class _Unused(nn.Module):
    """A layer built but never called in ``forward`` (an auxiliary head switched off)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
        self.aux = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_a_layer_never_called_is_an_assumption():
    # planned as linear for unit input, which is assumed (it was only a plan note): warned, and
    # strict refuses it
    with pytest.warns(AssumptionWarning, match="'aux' not called in forward on this trace"):
        p = plan(_Unused(), "auto")
    assert any("'aux' not called in forward" in n for n in p.notes)
    with pytest.raises(AssumptionError, match="'aux' not called in forward"):
        plan(_Unused(), "auto", strict=True)


def test_an_override_is_the_users_choice_not_an_assumption():
    # the error's own advice (an override for it) did not silence it for an uncalled or
    # activation-less layer
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(_Unused(), "auto", overrides={"aux.weight": "xavier_normal"}, strict=True)
        q = plan(_InCode(), "auto", overrides={"b.weight": "xavier_normal"}, strict=True)
    assert p["aux.weight"].reason.startswith("override ")
    assert q["b.weight"].reason.startswith("override ")


class _InCode(nn.Module):
    """A layer's weight used in code, not as a module call: the trace sees the tensor only."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(32, 32)
        self.b = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return torch.addmm(self.b.bias, h, self.b.weight.t()) * 1.0 + h.sum(-1, keepdim=True)


def test_a_layer_whose_weight_is_used_in_code_is_an_assumption():
    # it was planned as linear for unit input ("not reached by tracing" in its reason only)
    m = _InCode()
    with pytest.warns(AssumptionWarning, match="'b': the weight is used in code the trace"):
        plan(m, "auto")
    with pytest.raises(AssumptionError, match="'b': the weight is used in code"):
        plan(m, "auto", strict=True)


def test_every_reached_layer_says_nothing():
    m = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        plan(m, "auto")


def _qat_mlp(depth: int = 8, width: int = 128) -> nn.Module:
    tq = pytest.importorskip("torch.ao.quantization")
    torch.manual_seed(0)
    layers = [nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth)]
    m = nn.Sequential(tq.QuantStub(), *layers, nn.Linear(width, width), tq.DeQuantStub())
    m.qconfig = tq.get_default_qat_qconfig("fbgemm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.prepare_qat(m.train())


def test_quantization_aware_layers_are_planned_as_the_layers_they_are():
    # prepare_qat swaps each Linear for torch.ao.nn.qat.Linear, which owns its weight's fake
    # quantizer: traced into, no layer node reached its weight, every ReLU layer got LeCun's
    # std (output rms 0.075 after plan(…).apply, nothing said)
    m = _qat_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(m, "auto")
    assert "relu at q* 2" in p["1.0.weight"].reason
    assert "not reached" not in p["1.0.weight"].reason
    p.apply(m, seed=0)
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rms = float(m(x).pow(2).mean().sqrt())
    assert 0.5 < rms < 2.0
