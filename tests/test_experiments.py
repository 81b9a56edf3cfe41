"""Experiments in quick mode: the qualitative outcome the data show, determinism, offline data."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mnist1d")
pytest.importorskip("sklearn")

from initwise.experiments import EXPERIMENTS, run  # noqa: E402
from initwise.experiments.common import digits, mlp, mnist1d  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    old = os.environ.get("INITWISE_CACHE")
    os.environ["INITWISE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["INITWISE_CACHE"]
    else:
        os.environ["INITWISE_CACHE"] = old


def test_mnist1d_offline_cached_and_global_rng_untouched():
    state = np.random.get_state()[1].copy()
    d = mnist1d()
    assert np.array_equal(state, np.random.get_state()[1])
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40)
    assert d.n_classes == 10 and abs(float(d.x_train.mean())) < 1e-5
    assert os.path.exists(os.path.join(os.environ["INITWISE_CACHE"], "mnist1d_seed42.npz"))
    again = mnist1d()  # from the cache
    assert torch.equal(again.x_train, d.x_train)


def test_digits_split():
    d = digits(0)
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64) and d.n_classes == 10
    assert not torch.equal(digits(1).y_train, d.y_train)


def test_mlp_shapes_and_errors():
    m = mlp(3, 16, 40, 10, "relu")
    assert sum(isinstance(x, torch.nn.Linear) for x in m) == 3
    with pytest.raises(ValueError, match="depth must be"):
        mlp(0, 16, 40, 10, "relu")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("quick")
    return out, {name: run(name, quick=True, seed=0, out=str(out)) for name in EXPERIMENTS}


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_experiment_claims(name, quick):
    out, results = quick
    d = out / name
    assert (d / "results.json").exists() and (d / "report.md").exists()
    assert any(p.suffix == ".png" for p in d.iterdir())
    assert json.loads((d / "results.json").read_text())["experiment"] == name
    assert results[name]["claim_holds"], results[name]["claim"]


def test_he2015_quick_outcome_in_numbers(quick):
    runs = quick[1]["he2015"]["runs"]
    assert runs["30/he"]["final_loss"] < runs["30/xavier"]["final_loss"] - 0.3
    assert runs["30/xavier"]["final_loss"] == pytest.approx(np.log(10), abs=0.02)  # stalled


def test_sigmoid_quick_outcome_in_numbers(quick):
    runs = quick[1]["sigmoid-vanishing"]["runs"]
    assert runs["xavier"]["chi"] < 0.1 and runs["xavier"]["first_over_last_init"] < 1e-4
    assert runs["normal1"]["chi"] > 0.9 and runs["normal1"]["first_over_last_init"] > 1e-2


def test_rerun_gives_identical_json(tmp_path):
    run("zero-symmetry", quick=True, seed=3, out=str(tmp_path / "a"))
    run("zero-symmetry", quick=True, seed=3, out=str(tmp_path / "b"))
    a = (tmp_path / "a" / "zero-symmetry" / "results.json").read_bytes()
    b = (tmp_path / "b" / "zero-symmetry" / "results.json").read_bytes()
    assert a == b


def test_unknown_experiment():
    with pytest.raises(ValueError, match="unknown experiment 'he2016'"):
        run("he2016")


def test_cli_reproduce_and_demo(tmp_path, capsys):
    from initwise.cli import main

    assert main(["reproduce", "seed-formulas", "--quick", "--out", str(tmp_path)]) == 0
    assert "claim holds" in capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "report written to" in out
    text = (tmp_path / "demo" / "report.md").read_text()
    assert "He et al. 2015" in text and "diagnose/signal.png" in text


def test_lr_transfer_quick_outcome_in_numbers(quick):
    r = quick[1]["lr-transfer"]
    assert set(r["tasks"]) == {"mlp", "transformer"}
    for res in r["tasks"].values():
        assert set(res["summary"]) == {"standard", "mup", "u-mup"}
        for param, s in res["summary"].items():
            assert set(s["best_log2_lr"]) == {str(w) for w in res["widths"]}
            assert s["transfer_cost"] >= 1.0  # the best loss is the best
            assert all(
                str(k) in res["loss"][param][str(res["widths"][0])] for k in res["log2_lrs"][param]
            )
        # μP's transferred LR costs no more at the widest width than the standard one's
        assert res["summary"]["mup"]["transfer_cost"] <= res["summary"]["standard"]["transfer_cost"]
        assert res["claim_holds"] == (
            res["summary"]["mup"]["octaves_moved"] <= 1
            and res["summary"]["mup"]["transfer_cost"] <= 1.10
        )
    assert r["claim_holds"] == all(v["claim_holds"] for v in r["tasks"].values())


def test_lr_transfer_report_from_results_json_in_numeric_order(quick):
    """results.json sorts its keys as strings ("256" < "32"); the report and plot made from it
    list widths and learning rates in numeric order."""
    from initwise.experiments import lr_transfer

    out, _ = quick
    r = json.loads((out / "lr-transfer" / "results.json").read_text())
    text = lr_transfer._report(r)
    assert "| standard | 32: " in text and "| standard | 256: " not in text


def test_markov_sequences_offline_and_deterministic():
    import numpy as np

    from initwise.experiments.lr_transfer import VOCAB, markov_sequences

    state = np.random.get_state()[1].copy()
    a, b = markov_sequences(64, 10, seed=3), markov_sequences(64, 10, seed=3)
    assert torch.equal(a, b) and a.shape == (64, 10) and int(a.max()) < VOCAB
    assert np.array_equal(state, np.random.get_state()[1])
    assert not torch.equal(a, markov_sequences(64, 10, seed=4))


def test_worker_processes_give_the_same_numbers(quick, tmp_path):
    """Cells run in spawned processes give exactly what one process gives."""
    from initwise.experiments import depth_sweep

    r = depth_sweep.run(quick=True, seed=0, out=str(tmp_path), workers=2)
    assert r["runs"] == quick[1]["depth-sweep"]["runs"]


def test_deep_vanilla_quick_outcome_in_numbers(quick):
    r = quick[1]["deep-vanilla"]
    runs = r["runs"]
    assert set(runs) == {f"{i}/{d}" for i in r["config"]["inits"] for d in r["config"]["depths"]}
    for cell in runs.values():
        assert len(cell["test_acc"]) == 3 and cell["log2_lr"] in r["config"]["log2_lrs"]
    # at depth 30 the torch default sits at chance while kernel shaping trains
    assert runs["torch-default/30"]["mean"] < 0.15
    assert runs["dks/30"]["mean"] > 0.2 and runs["tat/30"]["mean"] > 0.15
    # the plain 1-D CNN half: the same cells, its own config; at depth 20 the torch default is
    # at chance, DKS trains
    c = r["cnn"]
    assert set(c["runs"]) == {
        f"{i}/{d}" for i in c["config"]["inits"] for d in c["config"]["depths"]
    }
    assert all(len(cell["test_acc"]) == len(c["seeds"]) for cell in c["runs"].values())
    assert c["runs"]["torch-default/20"]["mean"] < 0.15 < c["runs"]["dks/20"]["mean"]


def test_deep_vanilla_picks_a_kernel_shaping_target_on_the_validation_split():
    """``tat-eta`` and ``tat-tau`` pick η (Leaky-ReLU TAT) or τ (GELU TAT) from their grid with
    the learning rate; the cell records the pick and the report's table prints it."""
    from initwise.experiments import deep_vanilla as dv

    cell = dv._cell("tat-tau", 3, True, (0,))
    assert cell["tau"] in dv.TAUS and cell["activation"] == "gelu"
    assert set(cell["val_acc_by_log2_lr"]) == {
        f"{k}/tau={t:g}" for k in dv.QUICK["log2_lrs"] for t in dv.TAUS
    }
    table = dv._table({"depths": (3,), "inits": ("tat-tau",)}, {"tat-tau/3": cell})
    assert f"τ {cell['tau']:g})" in table[-1]
    data = dv.mnist1d()
    with torch.no_grad():  # (τ is the model's: another τ, another transformed GELU)
        a, b = (dv._model("tat-tau", 3, 8, data, 0, t)(data.x_test[:8]) for t in (1.0, 3.0))
    assert not torch.allclose(a, b)


def test_plain_cnn_has_depth_weight_layers():
    from torch import nn

    from initwise.experiments.deep_vanilla import cnn

    net = cnn(6, 8, 40, 10, "relu")
    assert sum(isinstance(m, (nn.Conv1d, nn.Linear)) for m in net) == 6
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)
    with pytest.raises(ValueError, match="depth"):
        cnn(1, 8, 40, 10, "relu")


def test_resume_goes_on_where_an_interrupted_run_stopped(quick, tmp_path, monkeypatch):
    """A run killed after two cells, resumed: only the other cells run, and the numbers equal an
    uninterrupted run's; a journal from another seed or other code is refused, untouched."""
    from initwise.experiments import common, depth_sweep

    real, calls = depth_sweep._cell, []

    def dies_after_two(*job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a user's ^C or a lost machine
        calls.append(job)
        return real(*job)

    monkeypatch.setattr(depth_sweep, "_cell", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        depth_sweep.run(quick=True, seed=0, out=str(tmp_path), workers=1)
    path = tmp_path / "depth-sweep" / "cells.jsonl"
    assert len(path.read_text().splitlines()) == 3  # the fingerprint and two cells
    with open(path, "a") as f:
        f.write('{"job": "[\\"relu\\", ')  # a line cut short by the kill: ignored
    before = path.read_bytes()

    with pytest.raises(ValueError, match="seed 0 there, 1 here"):
        depth_sweep.run(quick=True, seed=1, out=str(tmp_path), workers=1, resume=True)
    monkeypatch.setattr(common, "code_digest", lambda: "other")
    with pytest.raises(ValueError, match="package's source"):
        depth_sweep.run(quick=True, seed=0, out=str(tmp_path), workers=1, resume=True)
    monkeypatch.undo()
    assert path.read_bytes() == before

    rerun = []
    monkeypatch.setattr(depth_sweep, "_cell", lambda *job: rerun.append(job) or real(*job))
    r = depth_sweep.run(quick=True, seed=0, out=str(tmp_path), workers=1, resume=True)
    total = len(quick[1]["depth-sweep"]["runs"])
    assert len(rerun) == total - 2 and not set(rerun) & set(calls)
    assert r["runs"] == quick[1]["depth-sweep"]["runs"]
    lines = path.read_text().splitlines()
    assert len([ln for ln in lines if ln.startswith('{"job"') and ln.endswith("}")]) == total
    # resumed once more: nothing runs, the same results
    rerun.clear()
    again = depth_sweep.run(quick=True, seed=0, out=str(tmp_path), workers=1, resume=True)
    assert rerun == [] and again["runs"] == r["runs"]


def test_resume_refused_where_no_journal_is_kept(tmp_path):
    with pytest.raises(ValueError, match="he2015 is short and keeps no journal"):
        run("he2015", quick=True, out=str(tmp_path), resume=True)
    assert not os.listdir(tmp_path)


def test_resume_refuses_a_file_that_is_not_a_journal(tmp_path):
    from initwise.experiments.common import Journal

    (tmp_path / "deep-vanilla").mkdir()
    (tmp_path / "deep-vanilla" / "cells.jsonl").write_text("hello\n")
    with pytest.raises(ValueError, match="is not a journal"):
        Journal(str(tmp_path), "deep-vanilla", {"seed": 0}, resume=True)
    assert (tmp_path / "deep-vanilla" / "cells.jsonl").read_text() == "hello\n"
