"""The benchmarks run (tiny sizes) and report ratios against their peers; no timing asserted."""

import pytest

torch = pytest.importorskip("torch")


def test_fill_benchmark_reports_ratios(capsys):
    from initwise.bench.fill import run

    rows = run(numel=1 << 16, repeat=1, threads=1)
    assert [r["dist"] for r in rows] == ["uniform", "normal", "trunc_normal ±2σ"]
    assert all(r["ratio"] > 0 and r["ceiling_melem_s"] > 0 for r in rows)
    assert {r["kernel"] for r in rows} <= {"numba", "numpy"}
    printed = capsys.readouterr().out
    assert "initwise / torch" in printed and "NumPy reference" in printed


def test_lsuv_benchmark_against_the_lsuv_package(capsys):
    pytest.importorskip("lsuv")
    from initwise.bench.lsuv import run

    rows = run(depths=(3,), repeat=1)
    assert len(rows) == 2 and all(r["converged"] == r["layers"] for r in rows)
    assert "lsuv / initwise" in capsys.readouterr().out


def test_diagnose_benchmark(capsys):
    from initwise.bench.diagnose import run

    rows = run(repeat=1)
    assert all(r["ratio"] > 0 for r in rows)


def test_materialize_benchmark_ci_size(capsys):
    pytest.importorskip("transformers")
    from initwise.bench.materialize import run

    rows = run("ci", variants=("initwise-meta", "hf-from-config"))
    assert rows[0]["params"] == rows[1]["params"] == 38_866_432
    assert "GPT-2-ci" in capsys.readouterr().out


def test_materialize_profile_script_runs_on_the_cpu(capsys):
    """benchmarks/materialize_profile.py (a step of gpu_check.sh) runs: wall time, fills, the
    host functions and the profiler's table."""
    pytest.importorskip("transformers")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "materialize_profile.py"
    spec = importlib.util.spec_from_file_location("materialize_profile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main("cpu", "ci")
    out = capsys.readouterr().out
    assert "materialize GPT-2 ci → cpu (host kernels)" in out and "52 drawn parameters" in out
    assert "tottime" in out and "device kernels' own time in all: 0.0 ms" in out


def test_materialize_benchmark_says_why_a_child_failed():
    """A variant's child that fails (here: CUDA asked for on a machine without one) is reported
    with its own last lines, not as a bare exit status."""
    pytest.importorskip("transformers")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    from initwise.bench.materialize import measure

    with pytest.raises(RuntimeError, match=r"(?s)'hf-from-config' child on cuda exited.*Error"):
        measure("hf-from-config", "ci", "cuda")


def test_bench_cli_unknown_name():
    from initwise.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "nope"])


def test_shaping_benchmark_against_dks(capsys):
    pytest.importorskip("dks")
    from initwise.bench.shaping import run

    rows = run(
        repeat=1,
        cases=(("DKS", "softplus", "softplus", 20), ("TAT", "leaky_relu", "leaky_relu", 50)),
    )
    assert len(rows) == 2 and all(r["max_rel_diff"] < 1e-4 for r in rows)
    assert "dks / initwise" in capsys.readouterr().out


def test_orthogonal_benchmark(capsys):
    from initwise.bench.orthogonal import run

    rows = run(shapes=((64, 128),), repeat=1)
    assert rows[0]["ratio"] > 0 and rows[0]["dropin_ratio"] > 0
    out = capsys.readouterr().out
    assert "plan / torch" in out and "drop-in / torch" in out


def test_families_benchmark(capsys):
    """A dense, a MoE and a state-space family: planned with nothing assumed, the stream bounded."""
    pytest.importorskip("transformers")
    from initwise.bench.families import run

    rows = run(("llama", "mixtral", "mamba"))
    assert [r["family"] for r in rows] == ["llama", "mixtral", "mamba"]
    assert all(r["assumed"] == "none" and r["growth"] < 2.8 for r in rows)
    assert all(0.5 < r["logits_std"] < 2 for r in rows)
    assert "Hugging Face families under plain auto" in capsys.readouterr().out


def test_zoo_summary_over_seeds(capsys):
    """`initwise bench zoo --seeds N` summarizes each network over seeds 0…N−1: median, range and
    how many seeds fall in each band (the zoo's table is seed 0's; GELU and SiLU MLPs scatter
    between seeds, which one seed hides)."""
    from initwise.bench import zoo
    from initwise.cli import main

    rows = [
        {"name": "net", "out_ratio": r, "grad_ratio": g, "verdict": v, "summary": ""}
        for r, g, v in (
            (1.0, 0.9, "healthy"),
            (0.3, 1.1, "vanishing"),
            (1.5, float("nan"), "healthy"),
        )
    ]
    zoo._summary(rows, 3)
    out = capsys.readouterr().out
    assert "1 (0.3–1.5) 2/3" in out.replace("[", "(").replace("]", ")") and "2/3" in out
    assert main(["bench", "lsuv", "--seeds", "3"]) == 2
    assert "--seeds applies to the zoo benchmark only" in capsys.readouterr().err


def test_plan_benchmark_ci_size(capsys):
    """`initwise bench plan ci`: each way side by side, the same plan both ways, the switches
    given back."""
    pytest.importorskip("transformers")
    from initwise.bench.plan import run
    from initwise.torch import graph as G

    flags = (G.META_SHORTCUTS, G.META_STAND_INS, G.STAND_INS_FROM)
    rows = run("ci", repeat=1)
    assert [r["model"] for r in rows] == ["GPT-2-ci, meta", "GPT-2-ci, CPU"]
    assert all(r["same_plan"] and r["ratio"] > 0 for r in rows)
    assert (G.META_SHORTCUTS, G.META_STAND_INS, G.STAND_INS_FROM) == flags
    assert "before / now" in capsys.readouterr().out
