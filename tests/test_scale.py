"""Meta-device materialization: one allocation per parameter (peak RSS ≤ 1.1 × weights)."""

import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc RSS")


def test_gpt2_small_from_meta_peak_rss_within_1_1x_weights():
    from initwise.bench.materialize import measure

    r = measure("initwise-meta", "small")  # 124 M parameters, in a fresh process
    assert r["params"] == 124_439_808  # lm_head stays tied to wte
    assert r["peak_above_base_mb"] <= 1.1 * r["weights_mb"], r
