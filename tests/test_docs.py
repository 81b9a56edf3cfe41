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


def _doc_tests(path: str) -> list[str]:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"<!-- doc-test -->\n```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("i", range(3))
def test_policy_doc_snippets_run_as_written(i):
    """docs/policies.md's snippets marked doc-test run unchanged (user-defined policy in under
    30 lines, composition, register_activation)."""
    snippets = _doc_tests("docs/policies.md")
    assert len(snippets) == 3
    code = snippets[i]
    if "class HalfGain" in code:
        body = code[code.index("class HalfGain") : code.index("it.register_policy")]
        assert len(body.strip().splitlines()) < 30
    from initwise.torch import policies as P

    before = dict(P._REGISTRY)
    try:
        exec(compile(code, f"docs/policies.md[{i}]", "exec"), {})
    finally:
        P._REGISTRY.clear()
        P._REGISTRY.update(before)
