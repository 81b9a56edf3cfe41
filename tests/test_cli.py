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
