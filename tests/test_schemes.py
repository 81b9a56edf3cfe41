"""Every scheme against its paper formula, in distribution (KS, fixed seeds, p > 1e-4), with a
negative control showing the same check rejects a wrong std."""

import json
import math

import numpy as np
import pytest
from scipy import stats

import initwise.numpy as iw
from initwise import schemes as S
from initwise.math import fans
from tests.conftest import P_MIN, ks_p

SHAPE = (300, 200)  # fan_in 200, fan_out 300 -> 60_000 draws
FI, FO = 200, 300


def _check(sample, dist, wrong):
    assert ks_p(sample, dist) > P_MIN
    assert ks_p(sample, wrong) < P_MIN  # negative control: the test has power


@pytest.mark.parametrize(
    ("fn", "dist_of_std"),
    [
        (lambda r: iw.xavier_normal(SHAPE, rng=r), lambda s: stats.norm(0, s)),
        (
            lambda r: iw.kaiming_normal(SHAPE, nonlinearity="relu", rng=r),
            lambda s: stats.norm(0, s),
        ),
        (lambda r: iw.lecun_normal(SHAPE, rng=r), lambda s: stats.norm(0, s)),
        (
            lambda r: iw.xavier_uniform(SHAPE, rng=r),
            lambda s: stats.uniform(-math.sqrt(3) * s, 2 * math.sqrt(3) * s),
        ),
        (
            lambda r: iw.kaiming_uniform(SHAPE, nonlinearity="relu", rng=r),
            lambda s: stats.uniform(-math.sqrt(3) * s, 2 * math.sqrt(3) * s),
        ),
        (
            lambda r: iw.lecun_uniform(SHAPE, rng=r),
            lambda s: stats.uniform(-math.sqrt(3) * s, 2 * math.sqrt(3) * s),
        ),
    ],
    ids=[
        "xavier_normal",
        "he_normal",
        "lecun_normal",
        "xavier_uniform",
        "he_uniform",
        "lecun_uniform",
    ],
)
def test_variance_scaling_presets_in_distribution(fn, dist_of_std, request):
    # the paper formulas, written out independently of the implementation
    std = {
        "xavier_normal": math.sqrt(2 / (FI + FO)),  # Glorot 2010 eq. 16 (normal form)
        "xavier_uniform": math.sqrt(6 / (FI + FO)) / math.sqrt(3),  # bound √(6/(nin+nout))
        "he_normal": math.sqrt(2 / FI),  # He 2015 eq. 10
        "he_uniform": math.sqrt(6 / FI) / math.sqrt(3),  # bound √(6/fan_in)
        "lecun_normal": math.sqrt(1 / FI),
        "lecun_uniform": math.sqrt(3 / FI) / math.sqrt(3),
    }[request.node.callspec.id]
    _check(fn(0), dist_of_std(std), dist_of_std(std * 1.05))


def test_popular_misstatements_are_not_what_we_compute():
    # He-uniform bound √6/(2√(n_in+n_out)) and "Xavier std 1/√n_out" circulate in write-ups.
    he_u = iw.kaiming_uniform(SHAPE, nonlinearity="relu", rng=0)
    assert np.abs(he_u).max() == pytest.approx(math.sqrt(6 / FI), rel=1e-3)
    assert np.abs(he_u).max() > 2 * math.sqrt(6) / (2 * math.sqrt(FI + FO))
    xn = iw.xavier_normal(SHAPE, rng=0)
    assert ks_p(xn, stats.norm(0, 1 / math.sqrt(FO))) < P_MIN


def test_truncated_variance_scaling_has_target_variance():
    w = iw.variance_scaling(SHAPE, 2.0, "fan_in", "truncated_normal", rng=0, dtype=np.float64)
    std = math.sqrt(2 / FI)
    sigma = std / S.TRUNC_STD_CORRECTION
    assert np.abs(w).max() <= 2 * sigma
    dist = stats.truncnorm(-2, 2, scale=sigma)
    _check(w, dist, stats.truncnorm(-2, 2, scale=sigma * 1.05))
    assert dist.std() == pytest.approx(std, rel=1e-12)


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [
        (0, 1, -2, 2),
        (0, 0.02, -0.04, 0.04),
        (0, 1, 5, 6),
        (1, 1, -9, -8.5),
        (0, 1, -0.1, 0.1),
        (0, 0.02, -2, 2),
    ],
)
def test_trunc_normal_exact_including_far_tails(mean, std, a, b):
    w = iw.trunc_normal((40_000,), mean, std, a, b, rng=0, dtype=np.float64)
    assert w.min() >= a and w.max() <= b
    al, be = (a - mean) / std, (b - mean) / std
    _check(
        w,
        stats.truncnorm(al, be, loc=mean, scale=std),
        stats.truncnorm(al, be, loc=mean, scale=std * 1.1),
    )


def test_trunc_normal_relative_bounds():
    w = iw.trunc_normal((40_000,), 0.0, 0.02, -2, 2, relative=True, rng=1, dtype=np.float64)
    assert np.abs(w).max() <= 0.04
    assert S.trunc_normal(0, 0.02, -2, 2, relative=True).std((1,)) == pytest.approx(
        0.02 * S.TRUNC_STD_CORRECTION, rel=1e-9
    )


def test_normal_uniform_constant():
    _check(iw.normal((50_000,), 0.5, 2.0, rng=0), stats.norm(0.5, 2.0), stats.norm(0.5, 2.1))
    _check(iw.uniform((50_000,), -1, 3, rng=0), stats.uniform(-1, 4), stats.uniform(-1, 4.2))
    assert (iw.constant((3, 4), 0.25) == 0.25).all()
    assert (iw.zeros((3,)) == 0).all() and (iw.ones((2, 2)) == 1).all()


@pytest.mark.parametrize("shape", [(64, 64), (64, 20), (20, 64), (32, 8, 3, 3)])
def test_orthogonal(shape):
    w = iw.orthogonal(shape, gain=2.0, rng=0, dtype=np.float64).reshape(shape[0], -1)
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] == small else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-10)
    assert S.orthogonal(2.0).std(shape) == pytest.approx(float(np.sqrt((w**2).mean())), rel=1e-9)


@pytest.mark.parametrize(
    "shape,view",
    [
        ((4, 32, 16), ((0,), (2,), (1,))),
        ((4, 8, 64), ((), (2,), (0, 1))),
        ((6, 5, 2, 7), ((2,), (0, 3), (1,))),
    ],
)
def test_orthogonal_view_draws_the_named_matrices(shape, view):
    """``view = (batch, rows, cols)``: the tensor permuted to batch + rows + cols holds ∏ batch
    (semi-)orthogonal ∏ rows × ∏ cols matrices (each an isometry of its smaller side), the std
    is theirs, and the scheme round-trips through JSON; a plain orthogonal's JSON is unchanged."""
    from initwise._backend import NumpyBackend

    scheme = S.Orthogonal(2.0, view=view)
    w = np.asarray(scheme.sample(shape, NumpyBackend(np.random.default_rng(0))))
    batch, rows, cols = view
    perm = [*batch, *rows, *cols]
    r, c = math.prod(shape[d] for d in rows), math.prod(shape[d] for d in cols)
    mats = w.transpose(perm).reshape(-1, r, c)
    for m in mats:
        gram = m @ m.T if r <= c else m.T @ m
        np.testing.assert_allclose(gram, 4.0 * np.eye(min(r, c)), atol=1e-10)
    assert not np.allclose(mats[0], mats[-1]) or len(mats) == 1
    assert scheme.std(shape) == pytest.approx(float(np.sqrt((w**2).mean())), rel=1e-9)
    assert S.from_dict(json.loads(json.dumps(scheme.to_dict()))) == scheme
    assert "view" not in S.orthogonal(2.0).to_dict()
    assert scheme.scaled(0.5) == S.Orthogonal(1.0, view=view)


def test_orthogonal_view_errors_name_the_view():
    with pytest.raises(ValueError, match="view must be .batch, rows, cols."):
        S.Orthogonal(1.0, view=((0,), (), (1,)))
    with pytest.raises(ValueError, match="view must be"):
        S.Orthogonal(1.0, view=((0,), (1,), (1,)))
    with pytest.raises(ValueError, match="view must be"):
        S.Orthogonal(1.0, view="rows")
    with pytest.raises(ValueError, match=r"view \[\[0\], \[1\], \[2\]\] must name each of the 2"):
        S.Orthogonal(1.0, view=((0,), (1,), (2,))).check_shape((3, 4))


def test_orthogonal_is_haar():
    # With the sign fix the diagonal of a Haar orthogonal matrix is symmetric about 0;
    # without it (plain QR) it is biased. Chi-square on the sign of Q[0, 0] over many draws.
    rng = np.random.default_rng(0)
    signs = np.array([np.sign(iw.orthogonal((4, 4), rng=rng)[0, 0]) for _ in range(4000)])
    obs = [(signs > 0).sum(), (signs < 0).sum()]
    assert stats.chisquare(obs).pvalue > P_MIN
    # negative control: plain QR (no sign fix) fails the same check
    plain = np.array(
        [np.sign(np.linalg.qr(rng.standard_normal((4, 4)))[0][0, 0]) for _ in range(4000)]
    )
    assert stats.chisquare([(plain > 0).sum(), (plain < 0).sum()]).pvalue < P_MIN


@pytest.mark.parametrize("method", ["reflectors", "qr"])
def test_both_orthogonal_methods_are_haar(method):
    """The eigenvalues of a Haar-distributed orthogonal matrix have uniformly distributed
    phases on the circle (Mezzadri 2007, fig. 1: plain QR without the sign fix clusters them);
    KS test of the phases in [0, π] over many 6×6 draws, for both methods, and the entries'
    law: Q[0, 0]·√n → N(0, 1)-like, checked against the exact Beta law of Q[0, 0]²."""
    from initwise._backend import NumpyBackend

    rng = np.random.default_rng(1)
    b = NumpyBackend(rng)
    make = b.reflectors_signed if method == "reflectors" else b.qr_signed
    phases, first = [], []
    for _ in range(1500):
        q = make(rng.standard_normal((6, 6)))
        ang = np.abs(np.angle(np.linalg.eigvals(q)))
        phases.extend(ang[(ang > 1e-9) & (ang < np.pi - 1e-9)])
        first.append(q[0, 0])
    assert stats.kstest(np.array(phases), stats.uniform(0, np.pi).cdf).pvalue > P_MIN
    # Q[0,0]² ~ Beta(1/2, (n−1)/2) for a Haar column of length n = 6
    assert stats.kstest(np.array(first) ** 2, stats.beta(0.5, 2.5).cdf).pvalue > P_MIN
    # negative control: reflectors without the sign fix are not Haar (phases cluster)
    bad = []
    for _ in range(1500):
        q = b.reflectors_signed(rng.standard_normal((6, 6)))
        q = q * np.sign(q[0:1, :] + 1e-300)  # undo the fix in a data-dependent way
        ang = np.abs(np.angle(np.linalg.eigvals(q)))
        bad.extend(ang[(ang > 1e-9) & (ang < np.pi - 1e-9)])
    assert stats.kstest(np.array(bad), stats.uniform(0, np.pi).cdf).pvalue < P_MIN


def test_reflector_method_numpy_and_torch_agree_and_old_plans_read_as_qr():
    torch = pytest.importorskip("torch")
    from initwise._backend import NumpyBackend
    from initwise.torch.init import TorchBackend

    rng = np.random.default_rng(2)
    for shape in [(7, 7), (12, 5), (1, 1), (9, 1)]:
        a = rng.standard_normal(shape)
        q_np = NumpyBackend(rng).reflectors_signed(np.asfortranarray(a))  # a as laid out
        g = torch.Generator().manual_seed(0)
        q_t = TorchBackend(g, torch.device("cpu"), torch.float64).reflectors_signed(
            torch.from_numpy(a.copy())
        )
        np.testing.assert_allclose(q_t.numpy(), q_np, atol=1e-12)
        np.testing.assert_allclose(q_np.T @ q_np, np.eye(shape[1]), atol=1e-12)
    # the default is the reflector method; the torch drop-ins keep torch's QR (torch's bits)
    assert S.orthogonal().method == "reflectors" and S.delta_orthogonal().method == "reflectors"
    assert S.orthogonal(2.0).to_dict() == {
        "type": "orthogonal",
        "gain": 2.0,
        "method": "reflectors",
    }
    assert S.from_dict({"type": "orthogonal", "gain": 2.0}).method == "qr"  # written before
    assert S.from_dict({"type": "delta_orthogonal", "gain": 1.0}).method == "qr"
    assert S.orthogonal(2.0, "qr").scaled(0.5) == S.orthogonal(1.0, "qr")
    with pytest.raises(ValueError, match="method must be one of 'reflectors', 'qr'"):
        S.orthogonal(1.0, "svd")
    with pytest.raises(ValueError, match="method must be one of"):
        S.from_dict({"type": "orthogonal", "gain": 1.0, "method": 3})
    w = torch.empty(16, 24)
    import initwise.torch as it

    it.orthogonal_(w, generator=torch.Generator().manual_seed(4))
    ref = torch.empty(16, 24)
    torch.nn.init.orthogonal_(ref, generator=torch.Generator().manual_seed(4))
    assert torch.equal(w, ref)


def test_eye_dirac_delta_orthogonal():
    np.testing.assert_array_equal(iw.eye((3, 5)), np.eye(3, 5))
    d = iw.dirac((6, 2, 3, 3), groups=2)
    assert d.sum() == 4 and d[0, 0, 1, 1] == 1 and d[3, 0, 1, 1] == 1 and d[3, 1, 1, 1] == 0
    w = iw.delta_orthogonal((8, 4, 3, 3), gain=1.5, rng=0, dtype=np.float64)
    centre = w[:, :, 1, 1]
    np.testing.assert_allclose(centre.T @ centre, 2.25 * np.eye(4), atol=1e-10)
    w[:, :, 1, 1] = 0
    assert not w.any()


def test_sparse_exact_zero_count_and_reproducible():
    w = iw.sparse((50, 7), 0.3, std=0.5, rng=3)
    assert ((w == 0).sum(axis=0) == math.ceil(0.3 * 50)).all()
    np.testing.assert_array_equal(w, iw.sparse((50, 7), 0.3, std=0.5, rng=3))
    nz = w[w != 0]
    assert ks_p(nz, stats.norm(0, 0.5)) > P_MIN


def test_grouped_fans_change_the_std():
    shape = (32, 1, 3, 3)
    w = iw.kaiming_normal(
        shape, mode="fan_out", nonlinearity="relu", kind="conv", groups=32, rng=0, dtype=np.float64
    )
    assert w.std() == pytest.approx(math.sqrt(2 / 9), rel=0.1)


ALL = [
    S.zeros(),
    S.ones(),
    S.constant(0.5),
    S.normal(0.1, 0.2),
    S.uniform(-1, 2),
    S.trunc_normal(0, 0.02, -2, 2, relative=True),
    S.variance_scaling(2, "fan_out", "uniform"),
    S.xavier_uniform(1.3),
    S.xavier_normal(),
    S.kaiming_uniform(0.2, "fan_out"),
    S.kaiming_normal(nonlinearity="tanh"),
    S.he_normal(),
    S.he_uniform(),
    S.lecun_normal(),
    S.lecun_uniform(),
    S.orthogonal(1.5),
    S.eye(2.0),
    S.dirac(2),
    S.delta_orthogonal(),
    S.sparse(0.2, 0.1),
]


@pytest.mark.parametrize("scheme", ALL, ids=lambda s: getattr(s, "name", s.type))
def test_dict_round_trip(scheme):
    d = scheme.to_dict()
    again = S.from_dict(json.loads(json.dumps(d)))
    assert again == scheme and again.to_dict() == d
    assert isinstance(scheme.formula(), str)


def test_std_matches_samples():
    shape = (120, 90)
    f = fans(shape)
    for scheme in [s for s in ALL if s.type not in ("eye", "dirac", "delta_orthogonal")]:
        w = iw.init(scheme, shape, rng=0, dtype=np.float64)
        assert w.std() == pytest.approx(scheme.std(shape, f), rel=0.03, abs=1e-12), scheme


def test_reproducible_and_rng_explicit():
    a = iw.kaiming_normal
    np.testing.assert_array_equal(a((5, 5), rng=7), a((5, 5), rng=7))
    state = np.random.get_state()[1].copy()
    iw.normal((10,), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(state, np.random.get_state()[1])  # global RNG untouched
    with pytest.raises(TypeError, match="never draws from global random state"):
        iw.normal((3,), rng=None)


def test_eye_rows_fills_a_vector_with_a_flattened_identity():
    """``eye(rows=r)``: a spatial transformer's θ bias, the ``r × n/r`` identity flattened."""
    from initwise._backend import NumpyBackend

    e = S.eye(rows=2)
    assert e.formula() == "identity (2 rows, flattened)"
    assert S.from_dict(e.to_dict()) == e and "rows" not in S.eye().to_dict()
    np.testing.assert_array_equal(
        e.sample((6,), NumpyBackend(np.random.default_rng(0))), [1, 0, 0, 0, 1, 0]
    )
    np.testing.assert_array_equal(
        S.eye(rows=3).sample((12,), NumpyBackend(np.random.default_rng(0))), np.eye(3, 4).ravel()
    )
    with pytest.raises(ValueError, match="rows=2 fills a vector whose length is a multiple of 2"):
        e.check_shape((5,))
    with pytest.raises(ValueError, match="rows must be an int"):
        S.eye(rows=-1)
