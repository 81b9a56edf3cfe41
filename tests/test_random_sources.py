"""docs/formulas.md 'Random sources': the agreements it states hold, and the disagreement too."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise import sampling  # noqa: E402
from tests import models  # noqa: E402


def _model():
    torch.manual_seed(0)
    return models.ActMLP()


def test_stream_apply_equals_sampling_for_every_parameter():
    m = _model()
    p = it.plan(m, "auto")
    p.apply(m, seed=11, threads=1)
    params = dict(m.named_parameters())
    for e in p:
        if e.scheme is None or e.chunks > 1:
            continue
        want = sampling.sample(e.scheme, e.shape, seed=11, name=e.name, fans=e.fans, threads=3)
        np.testing.assert_array_equal(params[e.name].detach().numpy(), want, err_msg=e.name)


def test_torch_engine_equals_dropin_with_the_parameter_seed():
    m = _model()
    p = it.plan(m, "auto")
    it.apply_plan(p, m, 5, engine="torch")
    params = dict(m.named_parameters())
    for e in p:
        if e.scheme is None or e.chunks > 1 or e.zero_rows:
            continue
        t = torch.empty(e.shape)
        g = torch.Generator().manual_seed(it.param_seed(5, e.name))
        it.init_(t, e.scheme, generator=g, fans=e.fans)
        assert torch.equal(params[e.name].detach(), t), e.name


def test_stream_and_generator_sources_differ():
    a, b = nn.Linear(32, 32), nn.Linear(32, 32)
    p = it.plan(a, "he")
    it.apply_plan(p, a, 0)
    it.apply_plan(p, b, 0, engine="torch")
    assert not torch.equal(a.weight, b.weight)
