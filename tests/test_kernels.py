"""Stream kernels: Philox known answers, the Numba kernel equal to the NumPy reference bit for bit,
polynomial Box–Muller accuracy, distributions in both precisions, back-end selection."""

import hashlib
import warnings

import numpy as np
import pytest
from scipy import stats

from initwise import kernels as KN
from initwise import sampling as SM
from initwise import schemes as S
from initwise.kernels import _numpy as NP
from initwise.kernels import constants as KC
from tests.conftest import P_MIN, ks_p

# Random123's published known-answer vectors for Philox4x32-10 (its tests/kat_vectors)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
KEY = 0x0123456789ABCDEF_FEDCBA9876543210
KINDS = [
    ("uniform", {"scale": 2.0, "shift": -1.0}),
    ("normal", {"scale": 0.02, "shift": 0.1}),
    ("normal", {"scale": 1.0, "shift": 0.0}),
    ("trunc", {"scale": 0.5, "shift": 0.25, "a": -2.0, "b": 2.0}),
    ("trunc", {"scale": 1.0, "a": -0.5, "b": 1.0}),  # mass 0.53: many redraws
]
numba_only = pytest.mark.skipif(KN._numba_module() is None, reason="numba not installed")


def _fill(kind, starts, lens, dtype, backend, monkeypatch, threads=2, **kw):
    monkeypatch.setenv("INITWISE_KERNEL", backend)
    out = np.empty(int(np.sum(lens)), dtype)
    return KN.fill(kind, KEY, np.array(starts), np.array(lens), out, threads=threads, **kw)


@pytest.mark.parametrize(("ctr", "key", "expected"), KAT)
def test_philox_known_answers(ctr, key, expected):
    c = np.array([ctr[0] | ctr[1] << 32], dtype=np.uint64)
    assert [int(w[0]) for w in NP.philox(c, ctr[2], ctr[3], *key)] == list(expected)
    mod = KN._numba_module()
    if mod is not None:
        out = np.empty((1, 4), np.uint32)
        mod.philox_block(c, *(np.uint32(x) for x in (ctr[2], ctr[3], *key)), out)
        assert out[0].tolist() == list(expected)


@numba_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("kind", "kw"), KINDS)
def test_numba_kernel_equals_numpy_reference_bit_for_bit(kind, kw, dtype, monkeypatch):
    # odd starts, partial groups at both ends, runs across both kernels' chunk sizes, an empty
    # segment, a lone element, and a segment far out (counter words above 2^32 elements)
    starts = [0, 3, 1_000_001, 17, 5, 7 << 33]
    lens = [(1 << 18) + 3, 9, 77_777, 0, 1, 4099]
    ref = _fill(kind, starts, lens, dtype, "numpy", monkeypatch, **kw)
    for threads in (1, 3):
        got = _fill(kind, starts, lens, dtype, "numba", monkeypatch, threads=threads, **kw)
        assert got.tobytes() == ref.tobytes()


@numba_only
def test_bit_identity_over_millions_of_normals(monkeypatch):
    # key 0's first 2^22 normals include u = 1 (r = 0: a signed zero plus the shift) at
    # element 1,819,059, and every quadrant edge many times
    out = {}
    for backend in ("numpy", "numba"):
        monkeypatch.setenv("INITWISE_KERNEL", backend)
        o = np.empty(1 << 22, np.float32)
        out[backend] = KN.fill("normal", 0, np.zeros(1, np.int64), np.array([1 << 22]), o)
    assert out["numba"].tobytes() == out["numpy"].tobytes()
    assert out["numpy"][1_819_059] == 0


def test_slices_equal_the_whole(monkeypatch):
    whole = _fill("trunc", [0], [10_000], np.float32, "numpy", monkeypatch)
    part = _fill("trunc", [9_001, 3], [998, 5], np.float32, "numpy", monkeypatch)
    assert np.array_equal(part, np.concatenate([whole[9_001:9_999], whole[3:8]]))


def test_polynomial_box_muller_accuracy():
    rng = np.random.default_rng(1)
    n = 1 << 20
    a, b, c, d = (rng.integers(0, 2**32, n, dtype=np.uint64) for _ in range(4))
    a[:3], b[:3] = [0, 2**32 - 1, 2**31], [0, 2**32 - 1, 3 << 29]  # u = 2^-24 and 1, θ edges
    L = np.longdouble
    pi = L("3.14159265358979323846264338327950288")
    # float32 against float64 libm, float64 against long double: within 4 units of roundoff
    x, y = NP.normal32(a, b, np.float32(-2.0))
    u = ((a >> np.uint64(8)).astype(L) + 1) * L(2) ** -24
    t = 2 * pi * (b >> np.uint64(8)).astype(L) * L(2) ** -24
    r = np.sqrt(-2 * np.log(u))
    for got, ref in ((x, r * np.cos(t)), (y, r * np.sin(t))):
        err = np.abs(got.astype(L) - ref) / np.maximum(np.abs(ref), L(1e-3))
        assert float(err.max()) < 4 * 2.0**-23
    x, y = NP.normal64(a, b, c, d, np.float64(-2.0))
    u = (NP._u53(a, b).astype(L) + 1) * L(2) ** -53
    t = 2 * pi * NP._u53(c, d).astype(L) * L(2) ** -53
    r = np.sqrt(-2 * np.log(u))
    for got, ref in ((x, r * np.cos(t)), (y, r * np.sin(t))):
        err = np.abs(got.astype(L) - ref) / np.maximum(np.abs(ref), L(1e-3))
        assert float(err.max()) < 4 * 2.0**-52


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("kind", "kw", "dist"),
    [
        ("normal", {"scale": 0.02, "shift": 0.1}, stats.norm(0.1, 0.02)),
        ("uniform", {"scale": 2.0, "shift": -1.0}, stats.uniform(-1, 2)),
        ("trunc", {"a": -2.0, "b": 2.0}, stats.truncnorm(-2, 2)),
        ("trunc", {"a": -0.5, "b": 1.0, "scale": 3.0}, stats.truncnorm(-0.5, 1.0, scale=3.0)),
    ],
)
def test_distributions(kind, kw, dist, dtype, monkeypatch):
    x = _fill(kind, [12_345], [200_000], dtype, "numpy", monkeypatch, **kw)
    assert ks_p(x, dist) > P_MIN
    assert (
        ks_p(x, stats.norm(x.mean(), x.std() * 1.02) if kind == "normal" else stats.norm()) < P_MIN
    )


def test_uniform_bits_are_uniform(monkeypatch):
    # chi-square on the top 8 bits of 2^20 float32 uniforms and on the low 8 of their 24
    x = _fill("uniform", [0], [1 << 20], np.float32, "numpy", monkeypatch)
    m = (x.astype(np.float64) * 2**24).astype(np.int64)
    for bins in (m >> 16, m & 0xFF):
        assert stats.chisquare(np.bincount(bins, minlength=256)).pvalue > P_MIN
    skewed = np.minimum(m >> 16, 254)  # negative control: one bin folded into another
    assert stats.chisquare(np.bincount(skewed, minlength=256)[:255]).pvalue < P_MIN


def test_pairs_are_independent(monkeypatch):
    # Box–Muller's two halves are independent normals: no correlation of values or squares
    x = _fill("normal", [0], [1 << 20], np.float32, "numpy", monkeypatch).astype(np.float64)
    c, s = x[0::2], x[1::2]
    n = c.size
    for u, v in ((c, s), (c**2, s**2), (x[:-4], x[4:])):
        assert abs(np.corrcoef(u, v)[0, 1]) < 5 / np.sqrt(n)


def test_backend_selection(monkeypatch):
    monkeypatch.setenv("INITWISE_KERNEL", "numpy")
    assert KN.backend() == "numpy"
    monkeypatch.setenv("INITWISE_KERNEL", "fortran")
    with pytest.raises(ValueError, match="INITWISE_KERNEL must be"):
        KN.backend()
    monkeypatch.setattr(KN, "_numba_module", lambda: None)
    monkeypatch.setattr(KN, "_numba_available", lambda: False)
    monkeypatch.setenv("INITWISE_KERNEL", "")
    assert KN.backend() == "numpy"
    monkeypatch.setenv("INITWISE_KERNEL", "numba")
    with pytest.raises(ImportError, match=r"initwise\[fast\]"):
        KN.backend()
    monkeypatch.setenv("INITWISE_KERNEL", "numpy")
    assert KN.warm() == "numpy"


def test_fill_rejects_bad_arguments():
    one = np.ones(1, np.int64)
    with pytest.raises(ValueError, match="kind must be one of"):
        KN.fill("cauchy", 1, one, one, np.empty(1, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        KN.fill("normal", 1, one, one, np.empty(1, np.float16))
    with pytest.raises(ValueError, match="out has 2 elements"):
        KN.fill("normal", 1, one, one, np.empty(2, np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        KN.fill("normal", 1, np.zeros(2, np.int64), np.array([3, -1]), np.empty(2, np.float32))


def test_truncation_gives_up_after_max_tries(monkeypatch):
    monkeypatch.setenv("INITWISE_KERNEL", "numpy")
    monkeypatch.setattr(KC, "MAX_TRIES", 0)
    with pytest.raises(RuntimeError, match="no draw in"):
        KN.fill("trunc", 1, np.zeros(1, np.int64), np.array([64]), np.empty(64, np.float32))


def test_split_covers_every_element_once():
    starts = np.array([5, 100, 7_000], np.int64)
    lens = np.array([10, 1, 50_000], np.int64)
    runs = KN._split(starts, lens, 3)
    pieces = [np.arange(a, a + n) for st, ln, _, _ in runs for a, n in zip(st, ln, strict=True)]
    want = [np.arange(a, a + n) for a, n in zip(starts, lens, strict=True)]
    assert np.array_equal(np.concatenate(pieces), np.concatenate(want))
    counts = [n for *_, n in runs]
    assert [o for _, _, o, _ in runs] == [0, counts[0], counts[0] + counts[1]]
    assert all(sum(ln) == n for _, ln, _, n in runs)


# Digests of the streams as they are: a change of generator, mapping or polynomial changes every
# model a seed gives, so it must be deliberate (update these and say so in the changelog).
GOLDEN = [
    (S.he_normal(), "float32", "c25d6ebf68ebd292"),
    (S.xavier_uniform(), "float32", "1a9df6ee9f7f81b2"),
    (S.trunc_normal(0, 0.02, -2, 2, relative=True), "float32", "f673fab2651d64cf"),
    (S.trunc_normal(0, 1, 3, 4), "float32", "e7f8a2f3d6dfd526"),  # narrow: inverse CDF
    (S.he_normal(), "float64", "9a523fe89f36837f"),
    (S.xavier_uniform(), "float64", "a7fb59221edc9e86"),
    (S.trunc_normal(0, 0.02, -2, 2, relative=True), "float64", "deb99092458e1f2b"),
    (S.trunc_normal(0, 1, 3, 4), "float64", "10d0d5bfa4316936"),
    (S.orthogonal(), "float32", "99d494c38358fe2e"),  # matrix schemes: NumPy SFC64, drawn whole
    (S.orthogonal(method="qr"), "float32", "717085fb5eb10674"),  # the QR method: as before
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(("scheme", "dtype", "digest"), GOLDEN)
def test_streams_are_pinned(scheme, dtype, digest, backend, monkeypatch):
    if backend == "numba" and KN._numba_module() is None:
        pytest.skip("numba not installed")
    monkeypatch.setenv("INITWISE_KERNEL", backend)
    x = SM.sample(scheme, (96, 40), seed=2024, name="layer.weight", dtype=dtype)
    assert hashlib.sha256(x.tobytes()).hexdigest()[:16] == digest


def test_large_fill_without_numba_warns_once(monkeypatch):
    monkeypatch.setattr(KN, "_numba_module", lambda: None)
    monkeypatch.setattr(KN, "_numba_available", lambda: False)
    monkeypatch.setattr(KN, "_warned_slow", False)
    monkeypatch.setattr(KN, "_SLOW_WARN_MIN", 1000)
    monkeypatch.delenv("INITWISE_KERNEL", raising=False)
    seg = (np.zeros(1, np.int64), np.array([1000]))
    with pytest.warns(KN.SlowKernelWarning, match=r"initwise\[fast\]"):
        KN.fill("uniform", 1, *seg, np.empty(1000, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KN.fill("uniform", 1, *seg, np.empty(1000, np.float32))  # once only
        monkeypatch.setattr(KN, "_warned_slow", False)
        monkeypatch.setenv("INITWISE_KERNEL", "numpy")  # chosen on purpose: silent
        KN.fill("uniform", 1, *seg, np.empty(1000, np.float32))
        KN.fill("uniform", 1, np.zeros(1, np.int64), np.array([999]), np.empty(999, np.float32))
