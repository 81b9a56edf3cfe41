"""Reproducible streams: a pure function of (seed, name, index) — threads, slices, order."""

import numpy as np
import pytest
from scipy import stats

from initwise import sampling as SM
from initwise import schemes as S
from tests.conftest import P_MIN, ks_p

ELEMENTWISE = [
    S.he_normal(),
    S.xavier_uniform(),
    S.trunc_normal(0, 0.02, -2, 2, relative=True),
    S.variance_scaling(2.0),
    S.trunc_normal(0, 1, 3, 4),
    S.constant(0.3),
    S.normal(1, 2),
    S.uniform(-1, 2),
]
MATRIX = [S.orthogonal(), S.sparse(0.1)]


@pytest.mark.parametrize("scheme", ELEMENTWISE + MATRIX, ids=lambda s: s.label)
def test_threads_and_slices_give_the_same_bits(scheme):
    shape = (1500, 1001)  # 1.5 M elements: two blocks, the second partial
    one = SM.sample(scheme, shape, seed=3, name="w", threads=1)
    four = SM.sample(scheme, shape, seed=3, name="w", threads=4)
    assert np.array_equal(one, four)
    for offset, local in [((0, 300), (1500, 400)), ((700, 0), (800, 1001)), ((5, 7), (3, 2))]:
        ranges = SM.box_ranges(shape, offset, local)
        part = SM.sample(scheme, shape, seed=3, name="w", ranges=ranges, threads=2)
        box = one[offset[0] : offset[0] + local[0], offset[1] : offset[1] + local[1]]
        assert np.array_equal(part, box.reshape(-1))


def test_depends_on_seed_name_and_nothing_else():
    a = SM.sample(S.he_normal(), (64, 64), seed=1, name="a.weight")
    assert np.array_equal(a, SM.sample(S.he_normal(), (64, 64), seed=1, name="a.weight"))
    assert not np.array_equal(a, SM.sample(S.he_normal(), (64, 64), seed=2, name="a.weight"))
    assert not np.array_equal(a, SM.sample(S.he_normal(), (64, 64), seed=1, name="b.weight"))
    state = np.random.get_state()[1].copy()
    SM.sample(S.normal(), (1000,), seed=0, name="x")
    assert np.array_equal(state, np.random.get_state()[1])


@pytest.mark.parametrize(
    ("scheme", "dist"),
    [
        (S.normal(), stats.norm()),
        (S.uniform(), stats.uniform()),
        (S.trunc_normal(), stats.truncnorm(-2, 2)),
        (S.trunc_normal(0, 1, 3, 4), stats.truncnorm(3, 4)),
        (
            S.variance_scaling(1.0, "fan_in", "truncated_normal"),
            stats.truncnorm(-2, 2, scale=(1 / 50) ** 0.5 / S.TRUNC_STD_CORRECTION),
        ),
    ],
)
def test_distributions(scheme, dist):
    shape = (1200, 50) if scheme.needs_fans else (60_000,)
    x = SM.sample(scheme, shape, seed=0, name="d", dtype=np.float64)
    assert ks_p(x, dist) > P_MIN
    if scheme == S.normal():  # negative control: the check has power
        assert ks_p(x, stats.norm(0, 1.05)) < P_MIN


def test_float32_and_float64_and_out():
    x32 = SM.sample(S.normal(), (1000,), seed=0, name="x")
    assert x32.dtype == np.float32
    out = np.empty((10, 100), np.float32)
    assert SM.sample(S.normal(), (10, 100), seed=0, name="x", out=out) is out
    assert np.array_equal(out.reshape(-1), x32)
    assert SM.sample(S.normal(), (5,), seed=0, name="x", dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        SM.sample(S.normal(), (5,), seed=0, name="x", dtype=np.float16)
    with pytest.raises(TypeError, match="seed must be an int"):
        SM.sample(S.normal(), (5,), seed="0", name="x")
    with pytest.raises(ValueError, match="outside"):
        SM.sample(S.normal(), (5,), seed=0, name="x", ranges=[(3, 9)])


def test_box_ranges_merge_rows():
    assert SM.box_ranges((4, 5), (1, 0), (2, 5)) == [(5, 15)]
    assert SM.box_ranges((4, 5), (0, 1), (2, 2)) == [(1, 3), (6, 8)]
    assert SM.box_ranges((4, 5), (0, 0), (0, 5)) == []


def test_apply_same_bits_for_any_thread_count():
    torch = pytest.importorskip("torch")
    import initwise.torch as it
    from tests import models

    a, b = models.resnet(), models.resnet()
    p = it.plan(a)
    p.apply(a, seed=0, threads=1)
    p.apply(b, seed=0, threads=3, atomic=False)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    c = models.resnet()
    p.apply(c, seed=0, engine="torch")
    assert not torch.equal(a.fc.weight, c.fc.weight)  # the other engine: other stream
    with pytest.raises(ValueError, match="engine must be"):
        p.apply(c, seed=0, engine="jax")
