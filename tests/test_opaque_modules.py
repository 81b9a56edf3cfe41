"""A parameter-free module of the model's own that the trace does not go into (a leaf) and that
is not an activation, nor noise, passes its input's moments to the walk: where a probe shows it
does not (a cumulative sum, a pool written as a module), that is an assumption, said."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initwise.plan import AssumptionError, AssumptionWarning  # noqa: E402
from initwise.torch import plan  # noqa: E402
from initwise.torch.moments import opaque_moments  # noqa: E402


class _Cum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(-1)


class _Permute(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1)


class _First(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :8]


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class _GapSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum((2, 3))


def test_a_cumulative_sum_module_is_said():
    # in a Sequential it was the identity to the walk without a word; the layer after it got
    # E[x²] ×16 (the example input's check found ×27.7 at the output)
    m = nn.Sequential(nn.Linear(16, 32), _Cum(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    with pytest.warns(AssumptionWarning, match=r"_Cum '1', a parameter-free module .* ×1\d"):
        plan(m, "auto")
    with pytest.raises(AssumptionError, match="_Cum '1'"):
        plan(m, "auto", strict=True)


def test_a_sum_pool_module_in_a_cnn_is_said():
    m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), _GapSum(), nn.Linear(16, 10))
    with pytest.warns(AssumptionWarning, match=r"_GapSum '2'.*probe of shape \(8, 16, 6, 6\)"):
        plan(m, "auto")


@pytest.mark.parametrize("mod", [_Permute, _First, _Flatten])
def test_reshapes_permutations_and_selections_say_nothing(mod: type) -> None:
    # their values are the input's: the moments pass, as the walk takes them
    assert opaque_moments(mod(), (1.0, 0.0), 32) == (None, "")
    assert opaque_moments(mod(), (2.0, 1.0), 32) == (None, "")
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Unflatten(1, (4, 8)), mod())
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        plan(m, "auto")


def test_torch_modules_and_modules_with_parameters_are_not_probed():
    assert opaque_moments(nn.Identity(), (1.0, 0.0), 8) == (None, "")
    assert opaque_moments(nn.Linear(4, 4), (1.0, 0.0), 4) == (None, "")


class _Table(nn.Module):
    """A sinusoidal position table the shape of its input (its values are not read)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[-2] if x.dim() > 2 else x.shape[0], dtype=x.dtype)
        freq = torch.arange(x.shape[-1], dtype=x.dtype)
        table = torch.sin(pos[:, None] / 10.0 ** (freq[None, :] / x.shape[-1]) + freq % 2 * 1.5708)
        return table.expand_as(x)


class _WithTable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        self.pos = _Table()
        self.out = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(torch.relu(h + 3.0 * self.pos(h)))


def test_a_table_the_module_computes_is_measured():
    # its output does not depend on its input's values: its moments are its own (E[y²] ≈ ½ for
    # a sinusoid), where the walk took the input's: the layer after it was solved for input
    # E[x²] 10 where 3.2 arrives (measured after init_model, 5 seeds); 3.5 now
    val, how = opaque_moments(_Table(), (1.0, 0.0), 32)
    assert val is not None and 0.4 < val[0] < 0.6 and "a table it computes" in how
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        p = plan(_WithTable(), "auto")
    assert "a table it computes" in p["out.weight"].reason
    assert "input E[x²] 3.5," in p["out.weight"].reason, p["out.weight"].reason
