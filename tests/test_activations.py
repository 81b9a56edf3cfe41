"""The activation registry (issue 11): one record per activation read by gains, graph detection,
the auto policy and the diagnostics; register_activation; and the bugs fixed on the way."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise  # noqa: E402
import initwise.numpy as inp  # noqa: E402
import initwise.torch as it  # noqa: E402
from initwise import activations as A  # noqa: E402
from initwise.math import gain  # noqa: E402
from initwise.math.gains import second_moment  # noqa: E402
from initwise.math.operating import operating_point  # noqa: E402
from initwise.torch.graph import Act, function_activation, module_activation  # noqa: E402


class Cube(nn.Module):
    def forward(self, x):
        return x**3 / 3


@pytest.fixture
def cube():
    spec = initwise.register_activation(
        "cube", lambda x: x**3 / 3, modules=[Cube], functions=["cube"], odd=True
    )
    yield spec
    initwise.unregister_activation("cube")


def test_every_builtin_has_numpy_and_torch_forms_that_agree():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    for name, spec in A.REGISTRY.items():
        p = spec.default_param
        want = spec.fn(x.numpy(), p)
        got = Act(name, p).torch_fn()(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=name)


def test_properties_match_the_functions():
    z = np.linspace(-5, 5, 1001)
    for name, spec in A.REGISTRY.items():
        y = spec.fn(z, spec.default_param)
        if spec.odd:
            np.testing.assert_allclose(spec.fn(-z, spec.default_param), -y, atol=1e-12)
        if spec.saturating:
            lo, hi = spec.bounds
            assert y.min() >= lo - 1e-12 and y.max() <= hi + 1e-12, name
        if spec.homogeneous:
            np.testing.assert_allclose(spec.fn(2 * z, spec.default_param), 2 * y, atol=1e-12)
    assert A.lookup("swish").name == "silu" and A.lookup("GELU-new").name == "gelu_tanh"


def test_registered_activation_reaches_gain_graph_auto_and_diagnostics(cube):
    assert gain("cube") == pytest.approx(math.sqrt(1 / (15 / 9)), rel=1e-9)  # E[z^6]/9 = 15/9
    assert module_activation(Cube()).name == "cube"
    assert function_activation("cube", (), {}).name == "cube"
    m = nn.Sequential(nn.Linear(16, 16), Cube(), nn.Linear(16, 2))
    p = it.plan(m)
    assert "cube at q*" in p["0.weight"].reason
    # the read-out sees E[cube(x)²] at the chosen q*: it restores unit output
    q = operating_point("cube", depth=1).q
    e2 = second_moment("cube", q)
    assert p["2.weight"].gain == pytest.approx(math.sqrt(1 / e2), rel=1e-6)
    from initwise.diagnostics import diagnose

    rep = diagnose(m, torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    assert rep.layers[0].activation == "cube"
    assert rep.layers[0].post_m2 > 0


def test_register_activation_with_param_and_torch_callable():
    initwise.register_activation(
        "scaled_tanh",
        lambda x, a: torch.tanh(a * x),
        param=2.0,
        param_name="a",
        saturating=True,
        bounds=(-1.0, 1.0),
        odd=True,
    )
    try:
        assert gain("scaled_tanh") == pytest.approx(gain(lambda z: np.tanh(2 * z)))
        assert gain("scaled_tanh", 1.0) == pytest.approx(gain("tanh"))
        assert function_activation("scaled_tanh", (), {"a": 0.5}).param == 0.5
        act = Act("scaled_tanh", 2.0)
        assert torch.allclose(act.torch_fn()(torch.ones(3)), torch.tanh(torch.full((3,), 2.0)))
        assert it.plan(nn.Sequential(nn.Linear(4, 4), nn.Tanh())).entries  # built-ins intact
    finally:
        initwise.unregister_activation("scaled_tanh")
    with pytest.raises(ValueError, match="unknown activation 'scaled_tanh'"):
        gain("scaled_tanh")


def test_register_activation_errors(cube):
    with pytest.raises(ValueError, match="already registered"):
        initwise.register_activation("cube", lambda x: x)
    with pytest.raises(ValueError, match="already registered"):
        initwise.register_activation("my_relu", lambda x: x, aliases=["relu"])
    with pytest.raises(ValueError, match="needs bounds"):
        initwise.register_activation("sat", np.tanh, saturating=True)
    with pytest.raises(ValueError, match="elementwise"):
        initwise.register_activation("sumall", lambda x: np.sum(x))
    with pytest.raises(TypeError, match="callable"):
        initwise.register_activation("nofn", 3)
    with pytest.raises(ValueError, match="not a user-registered"):
        initwise.unregister_activation("relu")
    assert "sat" not in A.REGISTRY and "sumall" not in A.REGISTRY


def test_unknown_activation_is_never_silently_identity():
    with pytest.raises(ValueError, match="not in the registry"):
        Act("no_such_activation").torch_fn()
    from initwise.diagnostics.probe import torch_activation

    with pytest.raises(ValueError, match="register it"):
        torch_activation(Act("no_such_activation"))


# ----------------------------------------------------------------------------- bugs (item 5)


def test_calculate_gain_accepts_modules_and_functionals():
    assert it.calculate_gain(F.silu) == pytest.approx(gain("silu"))
    assert it.calculate_gain(nn.Tanh()) == 5 / 3  # torch's closed form for its name
    assert it.calculate_gain(nn.LeakyReLU(0.2)) == pytest.approx(
        it.calculate_gain("leaky_relu", 0.2)
    )
    assert it.calculate_gain(lambda z: z * torch.sigmoid(z)) == pytest.approx(gain("silu"))
    t = torch.empty(400, 300)
    it.kaiming_normal_(t, nonlinearity=nn.Mish(), generator=torch.Generator().manual_seed(0))
    assert float(t.std()) * math.sqrt(300) == pytest.approx(gain("mish"), rel=0.02)


def test_gain_of_a_plain_function_of_tensors():
    assert gain(lambda z: z * torch.sigmoid(z)) == pytest.approx(gain("silu"), rel=1e-12)
    assert gain(lambda z: torch.tanh(z), method="backward") == pytest.approx(
        gain("tanh", method="backward")
    )


def test_numpy_init_resolves_names_in_either_order():
    a = inp.init("xavier_uniform", (30, 20), rng=0)
    b = inp.init((30, 20), "xavier_uniform", rng=0)
    c = inp.init({"scheme": "normal", "std": 0.02}, (30, 20), rng=0)
    np.testing.assert_array_equal(a, b)
    assert abs(a).max() <= math.sqrt(6 / 50) and c.std() == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ValueError, match="unknown scheme 'nope'"):
        inp.init("nope", (3, 3), rng=0)
    with pytest.raises(TypeError, match="preset name"):
        inp.init(3.5, (3, 3), rng=0)


def test_plots_do_not_switch_the_matplotlib_backend(tmp_path):
    import subprocess
    import sys

    code = (
        "import matplotlib\nmatplotlib.use('svg')\n"
        "import torch\nfrom torch import nn\nfrom initwise.diagnostics import diagnose, "
        "plot_reports\nfrom initwise.experiments.common import figure, save_figure\n"
        "m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "r = diagnose(m, torch.randn(16, 8))\n"
        f"plot_reports([r], {str(tmp_path / 'a.png')!r})\n"
        f"fig, ax = figure({str(tmp_path / 'b.png')!r}).subplots(figsize=(3, 2))\n"
        f"ax.plot([1, 2]); save_figure(fig, {str(tmp_path / 'b.png')!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_json_is_valid_json_with_non_finite_values(tmp_path):
    from initwise.diagnostics import diagnose, write_report

    m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    r = diagnose(m, torch.randn(16, 8))
    r.layers[0].chi = float("nan")
    r.layers[1].pred_local = float("inf")
    write_report({"x": r}, str(tmp_path))
    text = (tmp_path / "results.json").read_text()

    def no_constants(c):
        raise AssertionError(f"non-JSON constant {c}")

    data = json.loads(text, parse_constant=no_constants)
    assert data["x"]["layers"][0]["chi"] is None


def test_experiments_extra_is_declared():
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    line = re.search(r"^experiments = \[(.*)\]$", text, flags=re.M).group(1)
    names = {re.split(r"[<>=]", e.strip(' "'))[0] for e in line.split(",")}
    assert {"mnist1d", "scikit-learn", "torch", "matplotlib"} <= names


@pytest.mark.parametrize("depth", [1, 30])
def test_a_step_function_has_an_operating_point(depth):
    """A piecewise-constant function (``np.sign``, a Heaviside step) has χ = 0: the grid's
    gradient balance was ``log 0`` ("math domain error"). It gets unit pre-activations and says
    why; its output moments are the step's."""
    op = operating_point(np.sign, depth=depth)
    assert op.q == 1.0 and op.chi == 0.0 and "piecewise constant" in op.rule
    assert op.second_moment == pytest.approx(1.0, abs=1e-6) and abs(op.mean) < 1e-9
    step = operating_point(lambda x: (x > 0).astype(float), depth=depth)
    assert step.second_moment == pytest.approx(0.5, abs=1e-6)
    assert step.mean == pytest.approx(0.5, abs=1e-6)
