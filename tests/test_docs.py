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


# ----------------------------------------------------------------------------- every snippet


def _namespace() -> dict:
    """The user's own objects that snippets name without defining them (what the prose around
    them says they are): ``model`` (a small net with the parameter names the override example
    uses), ``batch`` for it, ``ResNet`` (tests/models.py), ``conv`` (a grouped Conv2d) and ``w``
    (a weight tensor). Everything else a snippet uses it imports itself."""
    from collections import OrderedDict

    import torch
    from torch import nn

    from tests import models

    class DocNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, 16))
            fc = OrderedDict(fc1=nn.Linear(16, 32), act=nn.GELU(), fc2=nn.Linear(32, 16))
            self.blocks = nn.ModuleList([nn.Sequential(fc)])
            self.frozen = nn.Linear(16, 16)
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.pos_embed
            for b in self.blocks:
                x = x + b(x)
            return self.head(torch.relu(self.frozen(x)))

    return {
        "__name__": "__doc_snippet__",
        "model": DocNet(),
        "batch": torch.randn(64, 16, generator=torch.Generator().manual_seed(0)),
        "ResNet": models.ResNet,
        "conv": nn.Conv2d(8, 16, 3, groups=4),
        "w": torch.empty(256, 256),
    }


def _snippets() -> list[tuple[str, int, str]]:
    out = []
    for path in ["README.md", *sorted(f"docs/{f}" for f in os.listdir(os.path.join(ROOT, "docs")))]:
        if not path.endswith(".md"):
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"(<!-- no-doc-test[^>]*-->\n)?```python\n(.*?)```", text, re.S):
            if m.group(1) is None:
                out.append((path, text[: m.start()].count("\n") + 1, m.group(2)))
    return out


@pytest.mark.parametrize("path,line,code", _snippets(), ids=lambda v: str(v)[:40])
def test_every_doc_snippet_runs_as_written(path, line, code, tmp_path, monkeypatch):
    """Every ```python block of README.md and docs/*.md runs (blocks that need a process group
    say so with a ``no-doc-test`` marker); files they write go to a temporary folder."""
    import warnings

    from initwise import activations as A
    from initwise.torch import policies as P

    monkeypatch.chdir(tmp_path)
    before, acts = dict(P._REGISTRY), set(A.known_names())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, f"{path}:{line}", "exec"), _namespace())
    finally:
        P._REGISTRY.clear()
        P._REGISTRY.update(before)
        for name in set(A.known_names()) - acts:
            A.unregister_activation(name)
