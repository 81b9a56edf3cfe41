"""Forward hooks and pre-hooks of the user's: torch.fx calls a leaf layer without its hooks, and
the chain read from an ``nn.Sequential`` runs none. A hook that changes values was invisible (a
pre-hook scaling one layer's input ×10 left a 9-layer MLP at output rms 8.2, unsaid): it is said
now, and an example input traces it by running."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch import AssumptionError, AssumptionWarning  # noqa: E402


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Linear(128, 128), nn.ReLU()) for _ in range(8)]
    return nn.Sequential(*blocks, nn.Linear(128, 128))


def _scale_input(mod: nn.Module, args: tuple) -> tuple:
    return (args[0] * 10,)


def _scale_output(mod: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    return out * 10


def _rms(m: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(m(x).pow(2).mean().sqrt())


def _x() -> torch.Tensor:
    return torch.randn(256, 128, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("where", ["leaf pre", "leaf post", "container pre"])
def test_a_hook_the_trace_does_not_run_is_said(where: str) -> None:
    m = _mlp()
    if where == "leaf pre":
        m[3][0].register_forward_pre_hook(_scale_input)
    elif where == "leaf post":
        m[3][0].register_forward_hook(_scale_output)
    else:
        m[3].register_forward_pre_hook(_scale_input)
    with pytest.warns(AssumptionWarning, match="hooks the trace does not run") as rec:
        it.plan(m)
    text = " ".join(str(r.message) for r in rec)
    assert ("'3.0'" if where.startswith("leaf") else "'3'") in text
    assert ("_scale_input" if where.endswith("pre") else "_scale_output") in text
    with pytest.raises(AssumptionError, match="hooks the trace does not run"):
        it.plan(m, strict=True)


@pytest.mark.parametrize("hook", ["pre", "post"])
def test_an_example_input_traces_the_hook_by_running(hook: str) -> None:
    # Before: the plan ignored the hook with or without an example input — output rms 8.2
    m = _mlp()
    if hook == "pre":
        m[3][0].register_forward_pre_hook(_scale_input)
    else:
        m[3][0].register_forward_hook(_scale_output)
    x = _x()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing assumed, nothing off on the example's check
        plan = it.plan(m, example_input=x)
    plan.apply(m, seed=0)
    assert 0.6 <= _rms(m, x) <= 1.4
    assert len(m[3][0]._forward_pre_hooks) + len(m[3][0]._forward_hooks) == 1  # (left as it was)


def test_hooks_of_a_module_fx_goes_into_are_read() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(128, 128)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.lin(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(8))
            self.out = nn.Linear(128, 128)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for b in self.blocks:
                x = b(x)
            return self.out(x)

    torch.manual_seed(0)
    m = Net()
    m.blocks[3].register_forward_pre_hook(_scale_input)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = it.plan(m)
    plan.apply(m, seed=0)
    assert 0.6 <= _rms(m, _x()) <= 1.4


def test_library_hooks_are_not_the_users() -> None:
    m = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # (the old weight_norm is deprecated)
        torch.nn.utils.weight_norm(m[2][0])  # (a pre-hook that recomputes the weight)
    torch.nn.utils.prune.l1_unstructured(m[4][0], "weight", amount=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        it.plan(m)
