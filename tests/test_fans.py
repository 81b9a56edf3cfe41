import math

import pytest

from initwise.math import Fans, fans


@pytest.mark.parametrize(
    ("shape", "kind", "kw", "expected"),
    [
        ((30, 20), "linear", {}, (20, 30)),
        ((64, 32, 3, 3), "conv", {}, (32 * 9, 64 * 9)),
        # grouped conv: in=32, out=64, groups=4 -> weight (64, 8, 3, 3)
        ((64, 8, 3, 3), "conv", {"groups": 4}, (8 * 9, 16 * 9)),
        # depthwise: in=out=groups=32 -> weight (32, 1, 3, 3): fan_out = k, not 32·k
        ((32, 1, 3, 3), "conv", {"groups": 32}, (9, 9)),
        # transposed conv in=16, out=8, groups=2 -> weight (16, 4, 4, 4)
        ((16, 4, 4, 4), "conv_transpose", {"groups": 2}, (8 * 16, 4 * 16)),
        ((16, 4, 4, 4), "conv_transpose", {"groups": 2, "stride": 2}, (8 * 16 / 4, 4 * 16)),
        ((1000, 64), "embedding", {}, (1, 64)),
        ((3 * 48, 48), "qkv", {}, (48, 48)),
        ((4 * 20, 10), "lstm", {}, (10, 20)),
        ((3 * 20, 20), "gru", {}, (20, 20)),
        ((20, 10), "rnn", {}, (10, 20)),
        ((6 * 5, 7), "packed", {"chunks": 6}, (7, 5)),
        ((64, 8, 3, 3), "torch", {}, (72, 576)),
    ],
)
def test_fans_table(shape, kind, kw, expected):
    assert fans(shape, kind, **kw) == Fans(*map(float, expected))


def test_torch_convention_differs_exactly_where_torch_is_wrong():
    torch = pytest.importorskip("torch")
    calc = torch.nn.init._calculate_fan_in_and_fan_out
    # Linear and ungrouped conv: identical.
    for shape in [(30, 20), (64, 32, 3, 3)]:
        assert fans(shape) == Fans(*map(float, calc(torch.empty(shape))))
    # Depthwise: torch overstates fan_out by the group count (pytorch#23854).
    dw = (32, 1, 3, 3)
    assert calc(torch.empty(dw))[1] == 32 * fans(dw, "conv", groups=32).fan_out
    # Packed QKV: torch's fan_out is 3E (pytorch#166378).
    assert calc(torch.empty(96, 32))[1] == 3 * fans((96, 32), "qkv").fan_out


def test_fan_modes():
    f = Fans(10.0, 30.0)
    assert (f.of("fan_in"), f.of("fan_out"), f.of("fan_avg")) == (10.0, 30.0, 20.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        f.of("fan_sum")


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        (((5,),), {}, "fewer than 2 dimensions.*biases"),
        (((),), {}, "fewer than 2 dimensions"),
        (((3, 0),), {}, "zero-sized"),
        (((10, 4, 3), "conv"), {"groups": 3}, "not divisible by groups=3"),
        (((10, 4), "qkv"), {}, "can not be split into 3"),
        (((10, 4), "packed"), {}, "needs chunks"),
        (((12, 4), "lstm"), {"chunks": 3}, "implies chunks=4"),
        (((10, 4), "dense"), {}, "kind must be one of"),
        (((10, 4, 3), "conv_transpose"), {"stride": (1, 2)}, "stride"),
        (((10, -4),), {}, r"shape\[1\] must be >= 0"),
        (((10, 4), "conv"), {"groups": 0}, "groups must be an integer >= 1"),
    ],
)
def test_fans_errors(args, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fans(*args, **kw)


def test_fan_values_are_used_in_he_std():
    # He 2015: Var = 2/fan_in; for a depthwise conv with fan_out mode the true fan is k.
    from initwise import schemes as S

    he_out = S.kaiming_normal(mode="fan_out", nonlinearity="relu")
    shape = (32, 1, 3, 3)
    assert he_out.std(shape, fans(shape, "conv", groups=32)) == pytest.approx(math.sqrt(2 / 9))
    assert he_out.std(shape) == pytest.approx(math.sqrt(2 / (32 * 9)))  # torch's convention
