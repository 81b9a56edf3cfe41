"""Every row of docs/errors.md: the bad input raises the documented error."""

import os
import re

import pytest

pytest.importorskip("torch")

from tests.error_cases import CASES, markdown


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.area}: {c.bad_input}")
def test_case(case):
    if issubclass(case.exc, Warning):
        with pytest.warns(case.exc, match=case.match):
            case.call()
        return
    with pytest.raises(case.exc) as info:
        case.call()
    assert re.search(case.match, str(info.value)), str(info.value)


def test_docs_table_is_current():
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "errors.md")
    with open(path, encoding="utf-8") as f:
        assert f.read() == markdown(), "regenerate with: python -m tests.error_cases"
