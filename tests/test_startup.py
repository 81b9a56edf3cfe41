"""Fast where users feel it (issue 15): light imports, no JIT wait on the small path, the
compiled kernel cached in a user cache directory, thread counts that are scoped, a chain graph
for Sequentials, diagnose's one-pass statistics, and the load benchmark. No timed assertions:
what is checked is which modules load and which kernel runs; times live in `initwise bench`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise import kernels as KN  # noqa: E402
from tests import models  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _modules_after(code: str, env: dict | None = None) -> set[str]:
    full = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", full],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_initwise_loads_nothing_heavy():
    mods = _modules_after("import initwise")
    assert not {"numpy", "torch", "scipy", "numba", "rich"} & mods


def test_import_initwise_torch_skips_scipy_numba_and_distributed():
    mods = _modules_after("import initwise.torch")
    assert "scipy" not in mods and "numba" not in mods
    assert "torch.distributed.tensor" not in mods


def test_import_initwise_torch_loads_only_torch_and_itself():
    """Every public name of ``initwise.torch`` loads at its first use: the import itself costs
    torch and one file (measured 0.001 s beyond ``import torch`` without a bytecode cache, was
    0.11–0.19 s; NumPy and the planner load with the first call)."""
    mods = _modules_after("import initwise.torch")
    ours = {m for m in mods if m.startswith("initwise")}
    assert ours == {"initwise", "initwise.torch"}, sorted(ours)
    assert "numpy" not in mods or "numpy" in _modules_after("import torch")


def test_lazy_names_are_the_modules_names_and_survive_their_submodule():
    import initwise.torch.init as init_module
    import initwise.torch.lsuv  # noqa: F401  (the submodule named as the function)

    assert set(init_module.__all__) <= set(it.__all__)
    assert it.kaiming_normal_ is init_module.kaiming_normal_
    assert callable(it.lsuv) and it.lsuv.__module__ == "initwise.torch.lsuv"
    assert it.plan.__module__ == "initwise.torch.planner"
    assert it.planner.__name__ == "initwise.torch.planner"  # (submodules by attribute, as before)
    assert set(it.__all__) <= set(dir(it))
    for name in it.__all__:
        assert getattr(it, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        it.nope  # noqa: B018


def test_a_plan_applies_though_importing_initwise_torch_registers_nothing():
    """``Plan.apply`` finds the torch adapter through ``initwise.torch._register`` (the import
    of ``initwise.torch`` registers nothing; it is asked once, when a torch model needs it)."""
    code = (
        "import torch\n"
        "import initwise.torch as it\n"
        "from initwise import plan as P\n"
        "m = torch.nn.Linear(8, 8)\n"
        "p = P.Plan.from_json(it.plan(m).to_json())\n"
        "assert P._APPLIERS == [], P._APPLIERS\n"
        "p.apply(m, seed=3)\n"
        "ref = torch.nn.Linear(8, 8)\n"
        "it.init_model(ref, seed=3)\n"
        "assert torch.equal(m.weight, ref.weight)\n"
        "p.apply(ref, seed=3)\n"
        "assert len(P._APPLIERS) == 1, P._APPLIERS\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_cli_parser_does_not_load_torch():
    mods = _modules_after("from initwise.cli import build_parser; build_parser()")
    assert "torch" not in mods and "numpy" not in mods


def test_small_model_never_loads_the_jit_and_large_fills_do(tmp_path):
    code = (
        "import torch, initwise.torch as it, sys\n"
        "from torch import nn\n"
        "m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))\n"
        "it.init_model(m, seed=0)\n"
        "assert 'numba' not in sys.modules, 'numba loaded for a small model'\n"
        "from initwise import kernels, sampling, schemes as S\n"
        "sampling.sample(S.normal(), (1 << 22,), seed=0, name='big')\n"
        "assert 'numba' in sys.modules, 'a large fill should load the kernel'\n"
    )
    if not KN._numba_available():
        pytest.skip("numba not installed")
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={**os.environ, "INITWISE_CACHE_DIR": str(tmp_path)},
    )
    cached = list((tmp_path / "numba").rglob("*.nbi"))
    assert cached, "the kernel's cache should be in INITWISE_CACHE_DIR"


def test_cache_dir_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("INITWISE_CACHE_DIR", str(tmp_path))
    assert KN.cache_dir() == str(tmp_path)
    monkeypatch.delenv("INITWISE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert KN.cache_dir() == str(tmp_path / "xdg" / "initwise")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "user"))
    assert KN.cache_dir() is None  # the user's own numba setting wins


def test_reference_and_kernel_agree_across_the_switch(monkeypatch):
    """The size-based choice never changes values: small and large requests give the same
    elements."""
    from initwise import sampling
    from initwise import schemes as S

    big = sampling.sample(S.normal(0, 2), (1 << 22,), seed=1, name="w")
    small = sampling.sample(S.normal(0, 2), (1 << 22,), seed=1, name="w", ranges=[(5, 1005)])
    np.testing.assert_array_equal(big[5:1005], small)


def test_intra_op_threads_is_scoped_and_validated():
    from initwise.torch.threads import check_threads, intra_op_threads, threads_for

    before = torch.get_num_threads()
    with intra_op_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="whole number"):
        check_threads(0)
    with pytest.raises(ValueError, match="whole number"):
        check_threads(True)
    assert threads_for(nn.Linear(256, 256), 64) == 1
    assert threads_for(nn.Linear(4096, 4096), 512) is None


def test_experiments_run_on_one_thread_and_restore(tmp_path, monkeypatch):
    from initwise import experiments

    seen = []

    class Fake:
        @staticmethod
        def run(**kw):
            seen.append(torch.get_num_threads())
            return {"claim": "x", "claim_holds": True}

    monkeypatch.setattr(experiments.importlib, "import_module", lambda name: Fake)
    before = torch.get_num_threads()
    experiments.run("he2015", quick=True, out=str(tmp_path))
    experiments.run("he2015", quick=True, out=str(tmp_path), threads=None)
    assert seen == [1, before] and torch.get_num_threads() == before


def test_cli_threads_and_warm(capsys):
    from initwise.cli import main

    with pytest.raises(SystemExit):
        main(["reproduce", "he2015", "--quick", "--threads", "0"])
    assert "whole number" in capsys.readouterr().err
    assert main(["warm"]) == 0
    assert "kernel" in capsys.readouterr().out


def test_builtin_policy_names_match_the_registry():
    from initwise.policy_names import BUILTIN

    assert BUILTIN == it.POLICIES
    assert set(BUILTIN) <= set(it.policy_names())


@pytest.mark.parametrize("factory", [lambda: models.deep_mlp(4, 32), models.vgg])
def test_sequential_chain_graph_equals_fx(factory):
    from initwise.torch.graph import analyze, trace_fx, trace_sequential

    m = factory()
    a, b = analyze(m, trace_fx(m)), analyze(m, trace_sequential(m))
    assert a.layers.keys() == b.layers.keys() and a.n_residual == b.n_residual
    for k in a.layers:
        assert a.layers[k].activation == b.layers[k].activation
    assert trace_sequential(models.ResNet()) is None  # not a chain: fx


def test_diagnose_statistics_equal_direct_computation():
    from initwise.diagnostics import diagnose

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    x = torch.randn(64, 16)
    rep = diagnose(m, x)
    h = m[0](x).detach()
    s = rep.layers[0]
    assert s.out_std == pytest.approx(float(h.std()), rel=1e-5)
    assert s.out_mean == pytest.approx(float(h.mean()), rel=1e-4, abs=1e-6)
    assert s.out_m2 == pytest.approx(float(h.pow(2).mean()), rel=1e-5)
    assert s.post_m2 == pytest.approx(float(torch.relu(h).pow(2).mean()), rel=1e-5)
    assert s.in_m2 == pytest.approx(float(x.pow(2).mean()), rel=1e-5)
    assert s.weight_std == pytest.approx(float(m[0].weight.detach().std()), rel=1e-5)
    assert s.weight_m2 == pytest.approx(float(m[0].weight.detach().pow(2).mean()), rel=1e-5)
    dead = float((torch.relu(h) == 0).all(dim=0).float().mean())
    assert s.dead == pytest.approx(dead)


def test_load_benchmark_quick_runs_and_reports(capsys):
    from initwise.bench import load

    rows = load.run(quick=True)
    names = {r["task"] for r in rows}
    assert {"apply 30×256 MLP", "diagnose 20-layer MLP"} <= names
    assert all(r["idle_s"] > 0 and r["loaded_s"] > 0 and r["all_busy_s"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "1 busy / idle" in out and "busy / idle" in out.replace("1 busy / idle", "")
