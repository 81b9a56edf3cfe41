"""Same seeds, same bits: the values every policy and drop-in gives are pinned (see
tests/pin_digests.py). A refactor must leave them unchanged; a deliberate change of values
updates tests/data/digests.json in the same commit."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests import pin_digests


def test_pinned_digests_unchanged():
    pinned = json.loads((Path(__file__).parent / "data" / "digests.json").read_text())
    now = pin_digests.compute()
    changed = sorted(k for k in pinned if now.get(k) != pinned[k])
    assert not changed, f"values changed for: {changed}"
    assert set(now) == set(pinned)
