import json

import pytest

torch = pytest.importorskip("torch")

from initwise.cli import main  # noqa: E402


def test_plan_and_apply_commands(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "tests.models:resnet", "--json", str(out), "--no-reasons"]) == 0
    shown = capsys.readouterr().out
    assert "layers.0.conv1.weight" in shown and "plan written" in shown
    data = json.loads(out.read_text())
    assert data["format"] == "initwise-plan" and data["policy"] == "auto"
    weights = tmp_path / "w.safetensors"
    assert (
        main(
            [
                "apply",
                "tests.models:resnet",
                "--plan",
                str(out),
                "--out",
                str(weights),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    from safetensors.torch import load_file

    from tests import models

    state = load_file(str(weights))
    ref = models.resnet()
    from initwise.plan import Plan

    Plan.load(str(out)).apply(ref, seed=3)
    assert torch.equal(state["fc.weight"], ref.fc.weight)


def test_plan_with_input_shape_and_policy(capsys):
    assert (
        main(["plan", "tests.models:transformer", "--policy", "gpt2", "--input-shape", "2,5,32"])
        == 0
    )
    assert "6 residual branches" in capsys.readouterr().out


def test_cli_errors_are_clear(capsys):
    assert main(["plan", "tests.models"]) == 2
    assert "MODULE:FACTORY" in capsys.readouterr().err
    assert main(["plan", "tests.nope:x"]) == 2
    assert "could not import 'tests.nope'" in capsys.readouterr().err
    assert main(["plan", "tests.models:missing"]) == 2
    assert "no callable 'missing'" in capsys.readouterr().err
    assert main(["plan", "tests.models:resnet", "--input-shape", "a,b"]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_the_cli_gives_its_own_flags_as_the_remedy(tmp_path, capsys):
    """The library's advice names keyword arguments (``give example_input=``, ``plan with
    strict=False``); the shell has flags — said as ``--input-shape`` and ``--strict``."""
    f = tmp_path / "convs.py"
    f.write_text(
        "import torch.nn as nn\n"
        "def net():\n"
        "    layers = []\n"
        "    for _ in range(10):\n"
        "        layers += [nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()]\n"
        "    return nn.Sequential(*layers, nn.Conv2d(4, 4, 1))\n"
    )
    assert main(["plan", f"{f}:net", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "10 zero-padded convolutions" in err and "give --input-shape to measure it" in err
    assert "example_input=" not in err
    assert main(["plan", f"{f}:net", "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "Give --input-shape, an override" in err and "leave out --strict" in err
    assert main(["plan", f"{f}:net", "--quiet", "--input-shape", "2,4,8,8"]) == 0
    assert "zero-padded" not in capsys.readouterr().err


def test_gains_command(capsys):
    assert main(["gains", "relu", "gelu"]) == 0
    assert "1.5335" in capsys.readouterr().out


def test_version_and_an_honest_gains_table(capsys):
    from initwise import __version__
    from initwise.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    assert main(["gains", "relu", "gelu"]) == 0
    out = capsys.readouterr().out
    assert "raises (unknown to torch)" in out and "1.4142" in out


def test_plain_progress_prints_periodic_lines():
    import io

    from initwise.cli import PlainProgress

    buf = io.StringIO()
    p = PlainProgress(every=0.0, stream=buf)
    t = p.add_task("he2015", total=4)
    for _ in range(4):
        p.advance(t)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("he2015: 0/4 (0%)") and lines[0].endswith("started")
    assert lines[-1].startswith("he2015: 4/4 (100%)") and lines[-1].endswith("done")


def test_cli_override_device_dtype_batch_and_loss(tmp_path, capsys):
    import numpy as np

    from initwise.cli import main
    from initwise.plan import Plan

    f = tmp_path / "fac.py"
    f.write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))\n"
    )
    model = f"{f}:make"
    pj = tmp_path / "p.json"
    spec = '2.*={"scheme": "normal", "std": 0.02}'
    assert (
        main(["plan", model, "--override", "0.bias=ones", "--override", spec, "--json", str(pj)])
        == 0
    )
    p = Plan.load(str(pj))
    assert p["0.bias"].scheme.type == "constant" and p["2.weight"].std == 0.02
    assert main(["plan", model, "--override", "0.bias=keep", "--json", str(pj), "--quiet"]) == 0
    assert Plan.load(str(pj))["0.bias"].scheme is None
    for bad in ("nonsense", "x.*=zeros", '0.*={"scheme": '):
        assert main(["plan", model, "--override", bad]) == 2
    capsys.readouterr()
    out = tmp_path / "w.safetensors"
    assert (
        main(["apply", model, "--out", str(out), "--dtype", "float64", "--override", "*.bias=ones"])
        == 0
    )
    from safetensors.torch import load_file

    w = load_file(str(out))
    assert w["0.weight"].dtype.is_floating_point and str(w["0.weight"].dtype) == "torch.float64"
    assert float(w["0.bias"].min()) == 1.0
    assert main(["apply", model, "--out", str(out), "--device", "nosuchdevice"]) == 2
    assert "--device" in capsys.readouterr().err
    # diagnose on a saved batch, with a chosen loss
    np.save(
        tmp_path / "x.npy", np.random.default_rng(0).standard_normal((32, 6)).astype(np.float32)
    )
    np.save(tmp_path / "y.npy", np.arange(32) % 3)
    assert main(["diagnose", model, "--batch", str(tmp_path / "x.npy")]) == 0
    assert (
        main(
            [
                "diagnose",
                model,
                "--batch",
                str(tmp_path / "x.npy"),
                "--loss",
                "cross-entropy",
                "--targets",
                str(tmp_path / "y.npy"),
                "--compare",
                "auto",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["diagnose", model, "--batch", str(tmp_path / "x.npy"), "--loss", "cross-entropy"])
        == 2
    )
    assert "--targets" in capsys.readouterr().err
    assert (
        main(["diagnose", model, "--batch", str(tmp_path / "x.npy"), "--input-shape", "2,6"]) == 2
    )
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["diagnose", model, "--batch", str(tmp_path / "obj.npy")]) == 2
    assert "not a plain .npy" in capsys.readouterr().err
    assert main(["diagnose", model]) == 2
    assert "--batch" in capsys.readouterr().err


def test_relative_output_folders_are_accepted(tmp_path, monkeypatch):
    """The defaults (--out initwise-report) are relative names: `make demo` and `initwise
    reproduce` must accept them (a relative folder's dirname is "")."""
    from initwise.cli import check_out, main

    monkeypatch.chdir(tmp_path)
    check_out("initwise-report", "--out", folder=True)
    check_out("new/deeper", "--out", folder=True)
    check_out("plan.json", "--json")
    assert main(["reproduce", "seed-formulas", "--quick"]) == 0
    assert (tmp_path / "initwise-report" / "seed-formulas" / "report.md").exists()


def test_a_warning_repeated_by_one_command_is_printed_once_with_its_count(capsys, monkeypatch):
    """``initwise bench zoo --seeds 10`` plans each network ten times and printed each of its
    warnings ten times; the same text is printed once now, with how often it came."""
    import warnings

    import initwise.cli as cli
    from initwise.plan import AssumptionWarning

    def noisy(args):
        for text in ("the same thing", "the same thing", "another thing"):
            warnings.warn(AssumptionWarning(text), stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_cmd_gains", noisy)
    assert main(["gains"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "initwise gains: warning (2 times): the same thing",
        "initwise gains: warning: another thing",
    ]
