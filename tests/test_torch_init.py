"""Drop-in torch.nn.init replacements: same bits where torch is right, documented differences
where it is not."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
import torch.nn.init as TI  # noqa: E402

import initwise.torch as IT  # noqa: E402
from tests.conftest import P_MIN, ks_p  # noqa: E402

SAME_BITS = [
    ("uniform_", (-0.3, 0.7)),
    ("normal_", (0.1, 2.0)),
    ("xavier_uniform_", (1.3,)),
    ("xavier_normal_", (0.7,)),
    ("kaiming_uniform_", (0.1,)),
    ("kaiming_uniform_", (math.sqrt(5),)),  # nn.Linear's default
    ("kaiming_normal_", (0, "fan_out", "relu")),
    ("kaiming_normal_", (0, "fan_in", "tanh")),
    ("orthogonal_", (1.5,)),
]


@pytest.mark.parametrize(("name", "args"), SAME_BITS)
@pytest.mark.parametrize("shape", [(37, 23), (16, 8, 3, 3), (5, 40), (4, 6, 5)])
def test_same_bits_as_torch_for_float32(name, args, shape):
    a, b = torch.empty(shape), torch.empty(shape)
    getattr(TI, name)(a, *args, generator=torch.Generator().manual_seed(3))
    getattr(IT, name)(b, *args, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_deterministic_fills_equal_torch():
    for name, args, shape in [
        ("eye_", (), (3, 5)),
        ("dirac_", (2,), (6, 2, 3, 3)),
        ("zeros_", (), (4,)),
        ("ones_", (), (2, 3)),
        ("constant_", (0.3,), (2, 2)),
    ]:
        a, b = torch.empty(shape), torch.empty(shape)
        getattr(TI, name)(a, *args)
        getattr(IT, name)(b, *args)
        assert torch.equal(a, b), name


def test_true_fans_differ_from_torch_on_purpose():
    # depthwise conv: torch divides by out·k; the true fan_out is k (pytorch#23854)
    w = torch.empty(64, 1, 3, 3)
    IT.kaiming_normal_(
        w,
        mode="fan_out",
        nonlinearity="relu",
        kind="conv",
        groups=64,
        generator=torch.Generator().manual_seed(0),
    )
    assert ks_p(w.numpy(), stats.norm(0, math.sqrt(2 / 9))) > P_MIN
    t = torch.empty(64, 1, 3, 3)
    TI.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert t.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.1)
    # packed QKV: torch's xavier counts fan_out = 3E (pytorch#166378)
    e = 96
    q = torch.empty(3 * e, e)
    IT.xavier_uniform_(q, kind="qkv", generator=torch.Generator().manual_seed(0))
    assert q.abs().max().item() == pytest.approx(math.sqrt(6 / (2 * e)), rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_sampled_in_fp32(dtype):
    w = torch.empty(128, 128, dtype=dtype)
    IT.orthogonal_(w, generator=torch.Generator().manual_seed(0))  # torch's raises for bf16
    wf = w.float()
    assert (wf @ wf.T - torch.eye(128)).abs().max().item() < 0.02
    t = torch.empty(200_000, dtype=dtype)
    IT.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=torch.Generator().manual_seed(0))
    assert t.abs().max().item() <= 0.04 * 1.01
    assert t.float().std().item() == pytest.approx(0.02 * 0.8796, rel=0.01)


def test_trunc_normal_distribution_and_far_tail():
    t = torch.empty(50_000, dtype=torch.float64)
    IT.trunc_normal_(t, 0, 1, 3, 4, generator=torch.Generator().manual_seed(0))
    assert ks_p(t.numpy(), stats.truncnorm(3, 4)) > P_MIN
    assert ks_p(t.numpy(), stats.truncnorm(3, 4, scale=1.1)) < P_MIN


def test_sparse_honours_generator():
    def draw():
        w = torch.empty(40, 9)
        return IT.sparse_(w, 0.25, std=0.3, generator=torch.Generator().manual_seed(5))

    a, b = draw(), draw()
    assert torch.equal(a, b)
    assert ((a == 0).sum(0) == math.ceil(0.25 * 40)).all()


def test_meta_is_noop_and_empty_warns():
    m = torch.empty(3, 4, device="meta")
    assert IT.kaiming_normal_(m) is m
    with pytest.warns(UserWarning, match="zero-element"):
        IT.xavier_normal_(torch.empty(0, 4))


def test_extra_schemes_and_in_place():
    w = torch.empty(8, 4, 3, 3)
    out = IT.delta_orthogonal_(w, generator=torch.Generator().manual_seed(0))
    assert out is w
    c = w[:, :, 1, 1]
    assert torch.allclose(c.T @ c, torch.eye(4), atol=1e-5)
    v = torch.empty(300, 200, dtype=torch.float64)
    IT.lecun_normal_(v, generator=torch.Generator().manual_seed(0))
    assert ks_p(v.numpy(), stats.norm(0, math.sqrt(1 / 200))) > P_MIN
    IT.variance_scaling_(
        v, 2.0, "fan_in", "truncated_normal", generator=torch.Generator().manual_seed(0)
    )
    assert v.std().item() == pytest.approx(math.sqrt(2 / 200), rel=0.02)
    IT.lecun_uniform_(v, generator=torch.Generator().manual_seed(0))
    assert v.abs().max().item() <= math.sqrt(3 / 200)


def test_requires_grad_params_and_noncontiguous():
    p = torch.nn.Parameter(torch.empty(10, 20))
    IT.kaiming_uniform_(p, generator=torch.Generator().manual_seed(0))
    assert p.requires_grad and p.grad_fn is None
    base = torch.zeros(20, 10)
    view = base.T  # non-contiguous
    IT.normal_(view, 0, 1, generator=torch.Generator().manual_seed(0))
    assert base.std().item() > 0.5


def test_numpy_and_torch_agree_in_distribution():
    import initwise.numpy as iw

    a = iw.kaiming_normal((300, 200), nonlinearity="relu", rng=0)
    b = IT.kaiming_normal_(
        torch.empty(300, 200), nonlinearity="relu", generator=torch.Generator().manual_seed(0)
    ).numpy()
    assert stats.ks_2samp(a.ravel(), b.ravel()).pvalue > P_MIN


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: IT.normal_(torch.empty(3, dtype=torch.int64)), TypeError, "int64.*tensor.float"),
        (lambda: IT.normal_(torch.empty(3, dtype=torch.bool)), TypeError, "floating-point"),
        (lambda: IT.normal_(np.zeros(3)), TypeError, "expected a torch.Tensor"),
        (lambda: IT.normal_(torch.empty(3), std=-1.0), ValueError, "std must be >= 0"),
        (lambda: IT.uniform_(torch.empty(3), 2.0, 1.0), ValueError, "must be <= b"),
        (lambda: IT.trunc_normal_(torch.empty(3), a=1, b=-1), ValueError, "a = 1.0 must be <"),
        (lambda: IT.xavier_uniform_(torch.empty(3)), ValueError, "fewer than 2 dimensions"),
        (
            lambda: IT.xavier_uniform_(torch.empty(3, 3), gain=float("nan")),
            ValueError,
            "gain must be finite",
        ),
        (
            lambda: IT.kaiming_normal_(torch.empty(3, 3), mode="fan_sum"),
            ValueError,
            "mode must be one of",
        ),
        (
            lambda: IT.kaiming_normal_(torch.empty(3, 3), nonlinearity="relux"),
            ValueError,
            "unknown activation 'relux'",
        ),
        (lambda: IT.orthogonal_(torch.empty(3)), ValueError, "2 dimensions"),
        (lambda: IT.eye_(torch.empty(3, 3, 3)), ValueError, "eye: needs a tensor with 2"),
        (lambda: IT.dirac_(torch.empty(3, 3)), ValueError, "3 to 5"),
        (lambda: IT.dirac_(torch.empty(5, 3, 3), groups=2), ValueError, "divisible by groups"),
        (lambda: IT.delta_orthogonal_(torch.empty(2, 4, 3)), ValueError, ">= in_channels"),
        (lambda: IT.sparse_(torch.empty(3, 3, 3), 0.1), ValueError, "2 dimensions"),
        (lambda: IT.sparse_(torch.empty(3, 3), 1.5), ValueError, "in \\[0, 1\\)"),
        (lambda: IT.xavier_uniform_(torch.empty(10, 3), kind="qkv"), ValueError, "3 equal"),
        (lambda: IT.constant_(torch.empty(2), float("inf")), ValueError, "value must be finite"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_meta_still_validates():
    with pytest.raises(ValueError, match="3 to 5"):
        IT.dirac_(torch.empty(3, 3, device="meta"))


def test_no_warnings_on_normal_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IT.kaiming_uniform_(torch.empty(4, 4), generator=torch.Generator().manual_seed(0))
