"""Property-based tests (hypothesis) over shapes, dtypes and arguments for every scheme and back
end, and a fuzz test of the plan JSON loader."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import initwise.numpy as iw
from initwise import sampling
from initwise import schemes as S
from initwise.math import fans as compute_fans

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(0.05, 4.0)
dims = st.integers(1, 7)


@st.composite
def scheme_and_shape(draw):
    kind = draw(
        st.sampled_from(
            ["vs", "normal", "uniform", "trunc", "const", "orth", "eye", "dirac", "delta", "sparse"]
        )
    )
    if kind == "vs":
        sc = S.VarianceScaling(
            draw(finite),
            draw(st.sampled_from(S.MODES)),
            draw(st.sampled_from(S.DISTRIBUTIONS)),
            draw(finite),
        )
        shape = tuple(draw(st.lists(dims, min_size=2, max_size=4)))
    elif kind == "normal":
        sc, shape = S.normal(draw(st.floats(-2, 2)), draw(finite)), (draw(dims), draw(dims))
    elif kind == "uniform":
        a = draw(st.floats(-3, 3))
        sc, shape = S.uniform(a, a + draw(finite)), (draw(dims),)
    elif kind == "trunc":
        a = draw(st.floats(-3, 2.5))
        sc = S.trunc_normal(
            draw(st.floats(-1, 1)), draw(finite), a, a + draw(finite), relative=draw(st.booleans())
        )
        shape = (draw(dims), draw(dims))
    elif kind == "const":
        sc, shape = S.constant(draw(st.floats(-5, 5))), (draw(dims), draw(dims))
    elif kind == "orth":
        sc, shape = S.orthogonal(draw(finite)), tuple(draw(st.lists(dims, min_size=2, max_size=4)))
    elif kind == "eye":
        sc, shape = S.eye(draw(finite)), (draw(dims), draw(dims))
    elif kind == "dirac":
        g = draw(st.integers(1, 3))
        sc, shape = (
            S.dirac(g),
            (g * draw(dims), draw(dims), *draw(st.lists(dims, min_size=1, max_size=3))),
        )
    elif kind == "delta":
        cin = draw(dims)
        sc = S.delta_orthogonal(draw(finite))
        shape = (cin + draw(st.integers(0, 3)), cin, *draw(st.lists(dims, min_size=1, max_size=3)))
    else:
        sc, shape = S.sparse(draw(st.floats(0, 0.9)), draw(finite)), (draw(dims), draw(dims))
    return sc, shape


def _check_values(sc, shape, w):
    assert w.shape == shape and np.all(np.isfinite(w))
    if isinstance(sc, S.Uniform):
        assert w.min() >= sc.low - 1e-6 and w.max() <= sc.high + 1e-6
    if isinstance(sc, S.TruncNormal):
        lo, hi = sc.bounds()
        assert w.min() >= lo - 1e-5 * max(1, abs(lo)) and w.max() <= hi + 1e-5 * max(1, abs(hi))
    if isinstance(sc, S.Constant):
        assert np.all(w == w.dtype.type(sc.value))
    if isinstance(sc, S.VarianceScaling) and sc.distribution == "uniform":
        bound = math.sqrt(3) * sc.std(shape, compute_fans(shape))
        assert np.abs(w).max() <= bound * (1 + 1e-5)


@SETTINGS
@given(scheme_and_shape(), st.integers(0, 2**32), st.sampled_from([np.float32, np.float64]))
def test_numpy_backend(case, seed, dtype):
    sc, shape = case
    w = iw.init(sc, shape, rng=seed, dtype=dtype)
    assert w.dtype == dtype
    _check_values(sc, shape, w)
    assert np.array_equal(w, iw.init(sc, shape, rng=seed, dtype=dtype))
    assert S.from_dict(json.loads(json.dumps(sc.to_dict()))) == sc


@SETTINGS
@given(scheme_and_shape(), st.integers(0, 2**40), st.integers(1, 3))
def test_stream_backend_any_slice(case, seed, threads):
    sc, shape = case
    w = sampling.sample(sc, shape, seed=seed, name="p", threads=threads)
    _check_values(sc, shape, w)
    flat = w.reshape(-1)
    n = flat.size
    a, b = n // 3, n - n // 4
    part = sampling.sample(sc, shape, seed=seed, name="p", ranges=[(a, b)], threads=1)
    assert np.array_equal(part, flat[a:b])


torch = pytest.importorskip("torch")
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@SETTINGS
@given(scheme_and_shape(), st.integers(0, 2**31), st.sampled_from(DTYPES), st.sampled_from(DEVICES))
def test_torch_backend(case, seed, dtype, device):
    import initwise.torch as it

    sc, shape = case
    t = torch.empty(shape, dtype=dtype, device=device)
    it.init_(t, sc, torch.Generator(device=device).manual_seed(seed))
    assert t.dtype == dtype and t.shape == shape
    w = t.float().cpu().numpy()
    assert np.all(np.isfinite(w))
    if dtype in (torch.float32, torch.float64):
        _check_values(sc, shape, w)
        t2 = torch.empty(shape, dtype=dtype, device=device)
        it.init_(t2, sc, torch.Generator(device=device).manual_seed(seed))
        assert torch.equal(t, t2)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _valid_plan_dict():
    import initwise.torch as it

    return it.plan(torch.nn.LSTM(3, 4), overrides={"weight_ih_l0": "he_normal"}).to_dict()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_plan_loader_fuzz_arbitrary_json(value):
    from initwise.plan import Plan

    try:
        Plan.from_json(json.dumps(value))
    except ValueError:
        pass  # the only error it may raise


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**6),
    st.sampled_from(
        [
            "name",
            "shape",
            "scheme",
            "reason",
            "layer",
            "fan_in",
            "fan_out",
            "gain",
            "std",
            "chunks",
            "chunk_dim",
            "chunk_schemes",
            "zero_rows",
            "type",
            "scale",
            "mode",
        ]
    ),
    json_values,
)
def test_plan_loader_fuzz_mutations(pick, key, value):
    from initwise.plan import Plan

    d = _valid_plan_dict()
    entry = d["entries"][pick % len(d["entries"])]
    target = entry["scheme"] if key in ("type", "scale", "mode") and entry["scheme"] else entry
    target[key] = value
    try:
        plan = Plan.from_json(json.dumps(d))
    except ValueError:
        return
    assert Plan.from_json(plan.to_json()) == plan  # whatever it accepts round-trips
