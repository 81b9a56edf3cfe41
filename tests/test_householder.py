"""The blocked ``Q = H₁⋯Hₙ`` (initwise._householder) against LAPACK's ``dorgqr`` and
``dlarfg``, and the tiled row-major cast of matrix schemes."""

import numpy as np
import pytest
from scipy.linalg import lapack

from initwise import _householder as H
from initwise import sampling as SM
from initwise import schemes as S


def _loop_reflectors(f):
    """The definition, one column at a time (LAPACK's dlarfg)."""
    n = f.shape[1]
    tau, sign = np.empty(n), np.empty(n)
    for k in range(n):
        x = f[k:, k]
        norm = np.sqrt(np.dot(x, x))
        beta = -np.copysign(norm, x[0])
        tau[k] = (beta - x[0]) / beta
        x[1:] /= x[0] - beta
        sign[k] = np.sign(beta)
    return tau, sign


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (7, 7), (300, 200), (700, 300), (513, 513)])
@pytest.mark.parametrize("block", [None, 1, 64, 128, 1000])
def test_form_q_equals_dorgqr(shape, block):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    f = np.asfortranarray(rng.standard_normal(shape))
    g = f.copy(order="F")
    tau, sign = H.reflectors(f)
    tau_ref, sign_ref = _loop_reflectors(g)
    np.testing.assert_allclose(tau, tau_ref, rtol=1e-14)
    assert np.array_equal(sign, sign_ref)
    below = np.tril(np.ones(shape, dtype=bool), -1)
    np.testing.assert_allclose(f[below], g[below], rtol=1e-13, atol=1e-15)
    ref, _, info = lapack.dorgqr(f.copy(order="F"), tau, lwork=max(1, 64 * shape[1]))
    assert info == 0
    q = H.form_q(f, tau, block)
    assert q is f
    np.testing.assert_allclose(q, ref, atol=2e-15)
    np.testing.assert_allclose(q.T @ q, np.eye(shape[1]), atol=1e-13)


def test_reflectors_are_lapacks_dlarfg():
    rng = np.random.default_rng(3)
    f = np.asfortranarray(rng.standard_normal((40, 6)))
    x = f.copy(order="F")
    tau, sign = H.reflectors(f)
    for k in range(6):
        beta, v, t = lapack.dlarfg(40 - k, x[k, k], x[k + 1 :, k].copy())
        assert tau[k] == pytest.approx(t, rel=1e-14)
        assert sign[k] == np.sign(beta)
        np.testing.assert_allclose(f[k + 1 :, k], v, rtol=1e-13)


def test_zero_column_is_the_identity_reflector():
    """A zero column (probability 0) gives, once signed, the Q of LAPACK's τ = 0."""
    rng = np.random.default_rng(4)
    f = np.asfortranarray(rng.standard_normal((9, 5)))
    f[2:, 2] = 0.0
    tau, sign = H.reflectors(f)
    assert tau[2] == 2.0 and sign[2] == -1.0
    ref_tau, ref_sign = tau.copy(), sign.copy()
    ref_tau[2], ref_sign[2] = 0.0, 1.0  # dlarfg's identity reflector for a zero column
    ref, _, _ = lapack.dorgqr(f.copy(order="F"), ref_tau, lwork=64 * 5)
    q = H.form_q(f, tau) * sign
    np.testing.assert_allclose(q, ref * ref_sign, atol=1e-15)
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-14)


def test_block_sizes_and_bad_input():
    assert [H.block_size(n) for n in (1, 383, 384, 1535, 1536, 3071, 3072, 25088)] == [
        64,
        64,
        128,
        128,
        256,
        256,
        512,
        512,
    ]
    with pytest.raises(ValueError, match="column-major float64"):
        H.form_q(np.zeros((3, 4), order="F"), np.ones(4))
    with pytest.raises(ValueError, match="column-major float64"):
        H.form_q(np.zeros((4, 3)), np.ones(3))


def test_orthogonal_bits_do_not_depend_on_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    outs = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            outs.append(
                [SM.sample(S.orthogonal(), shape, seed=1, name="w") for shape in [(300, 200)]]
            )
    assert all(np.array_equal(a, b) for a, b in zip(*outs, strict=True))


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (300, 129), (128, 128), (257, 1)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_cast_row_major_is_astype_then_flatten(shape, order):
    a = np.asarray(np.random.default_rng(0).standard_normal(shape), order=order)
    for dtype in (np.float32, np.float64):
        out = SM.cast_row_major(a, dtype)
        ref = a.astype(dtype).reshape(-1)
        assert out.dtype == dtype and out.flags.c_contiguous and np.array_equal(out, ref)
    cube = np.asfortranarray(np.ones((2, 3, 4)))
    assert np.array_equal(SM.cast_row_major(cube, np.float32), np.ones(24, np.float32))


def test_bench_vgg11_is_vgg11():
    torch = pytest.importorskip("torch")
    from initwise.bench.lsuv import vgg11

    with torch.device("meta"):
        model = vgg11()
        out = model(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 1000)
    assert sum(p.numel() for p in model.parameters()) == 132_863_336  # VGG-11 (config A)
    assert tuple(model[-1 - 4].weight.shape) == (4096, 25088)
