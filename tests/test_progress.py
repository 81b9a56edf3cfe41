"""Progress output (issue 17): apply, diagnose, coord-check and bench report as they go —
plain periodic lines on stderr when it is not a terminal."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402


def test_apply_plan_reports_each_parameter():
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4), nn.Linear(4, 4))
    p = it.plan(model, "orthogonal")  # matrix schemes: drawn on worker threads
    calls = []
    it.apply_plan(p, model, seed=0, threads=2, progress=lambda d, t: calls.append((d, t)))
    n = sum(1 for e in p if e.scheme is not None)
    assert sorted(calls) == [(i, n) for i in range(1, n + 1)]
    ref = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4), nn.Linear(4, 4))
    it.apply_plan(p, ref, seed=0)  # the same bits with or without progress
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True)
    )


def test_coord_check_reports_each_step():
    from initwise.diagnostics import coord_check

    def make(w):
        return nn.Sequential(nn.Linear(4, w), nn.ReLU(), nn.Linear(w, 2))

    ticks = []
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    coord_check(make, (8, 16), x, y, steps=3, progress=lambda: ticks.append(1))
    assert len(ticks) == 6


def test_bench_timeit_reports_each_measurement():
    from initwise import bench

    ticks = []
    bench.report_progress(lambda: ticks.append(1))
    try:
        bench.timeit(lambda: None, repeat=2)
        bench.timeit(lambda: None, repeat=1)
    finally:
        bench.report_progress(None)
    bench.timeit(lambda: None, repeat=1)
    assert len(ticks) == 2


def test_cli_progress_lines_when_piped(tmp_path, capsys):
    from initwise.cli import main

    f = tmp_path / "m.py"
    f.write_text(
        "from torch import nn\n"
        "def make(width=16):\n"
        "    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width),"
        " nn.ReLU(), nn.Linear(width, 2))\n"
    )
    assert main(["apply", f"{f}:make", "--out", str(tmp_path / "w.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "apply: 0/6 (0%), 0 s started" in err and "apply: 6/6 (100%)" in err and "done" in err
    assert main(["diagnose", f"{f}:make", "--input-shape", "32,8", "--compare", "he,auto"]) == 0
    err = capsys.readouterr().err
    assert "diagnose: 2/2 (100%)" in err
    args = ["diagnose", f"{f}:make", "--input-shape", "32,8", "--coord-check"]
    assert main([*args, "--widths", "16,32", "--steps", "2"]) == 0
    cap = capsys.readouterr()
    assert "coord-check: 12/12 (100%)" in cap.err
    assert "u-μP: change after 2 steps" in cap.out


def test_a_task_without_a_count_says_it_started_without_a_zero():
    """A task with no total (``bench zoo``'s measurements) began with ``… (measurements): 0,
    0 s started`` in a log; it says ``… (measurements): started`` now."""
    import io

    from initwise.cli import PlainProgress

    out = io.StringIO()
    p = PlainProgress(stream=out)
    p.add_task("bench zoo (measurements)")
    p.add_task("apply", total=6)
    assert out.getvalue().splitlines() == [
        "bench zoo (measurements): started",
        "apply: 0/6 (0%), 0 s started",
    ]
