"""Generated docs are current, and the README's documents exist."""

import os
import re

import pytest

pytest.importorskip("torch")

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_api_reference_is_current():
    from tests.api_doc import markdown

    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        assert f.read() == markdown(), "regenerate with: python -m tests.api_doc"


def test_readme_links_resolve():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for link in re.findall(r"\]\(((?:docs/)[^)#]+)", text):
        assert os.path.exists(os.path.join(ROOT, link)), link
    assert "make demo" in text and "make test" in text
