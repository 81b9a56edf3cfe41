"""docs/formulas.md 'Random sources': the agreements it states hold, and the disagreement too."""

import math

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


# ----------------------------------------------------------------------------- far tails (issue 17)


@pytest.mark.parametrize(
    "a,b",
    [(14.0, 15.0), (15.0, 16.0), (40.0, 41.0), (-41.0, -40.0), (3.0, math.inf), (-math.inf, -5.0)],
)
def test_trunc_normal_far_tails_and_one_sided_windows(a, b):
    """Far-tail windows are drawn in log space (Φ(−14) is subnormal in float32, Φ(−39) is 0 in
    float64): every path matches scipy's truncated-normal mean and stays inside the window."""
    torch = pytest.importorskip("torch")
    from scipy import stats

    import initwise.numpy as inp
    import initwise.torch as it
    from initwise import sampling
    from initwise import schemes as S

    ref, sd = float(stats.truncnorm.mean(a, b)), float(stats.truncnorm.std(a, b))
    n = 20_000
    tol = 6 * sd / math.sqrt(n)
    t = it.trunc_normal_(torch.empty(n), a=a, b=b, generator=torch.Generator().manual_seed(0))
    x = inp.trunc_normal((n,), a=a, b=b, rng=0)
    y = sampling.sample(S.trunc_normal(0.0, 1.0, a, b), (n,), seed=0, name="w")
    for vals in (t.double().numpy(), x, y.astype(np.float64)):
        assert np.all(np.isfinite(vals))
        assert vals.min() >= a - 1e-5 * max(1.0, abs(a)) and vals.max() <= b + 1e-5 * max(
            1.0, abs(b)
        )
        assert abs(vals.mean() - ref) < tol


def test_trunc_normal_bounds_are_checked():
    from initwise import schemes as S

    with pytest.raises(ValueError, match="NaN"):
        S.trunc_normal(0.0, 1.0, math.nan, 1.0)
    with pytest.raises(ValueError, match="must be <"):
        S.trunc_normal(0.0, 1.0, math.inf, math.inf)  # an empty window
    with pytest.raises(ValueError, match="must be <"):
        S.trunc_normal(0.0, 1.0, 2.0, 2.0)
