"""``meta_ops.fast_meta``: the shapes of common operations on meta tensors without torch's meta
kernels — each result checked against torch's own (shape, strides, dtype, and the input itself
where torch gives it back), and plans of meta-device models equal with and without it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.torch import graph as G  # noqa: E402
from initwise.torch.meta_ops import fast_meta  # noqa: E402


def m(*shape: int, dtype: Any = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


T = torch.Tensor

# (func, args, kwargs, whether the shortcut must apply)
CASES: list[tuple[Callable[..., Any], Callable[[], tuple], dict[str, Any], bool]] = [
    (torch.add, lambda: (m(2, 5, 8), m(8)), {}, True),
    (T.__add__, lambda: (m(8), m(2, 5, 8)), {}, True),
    (T.__radd__, lambda: (m(2, 1, 8), 3), {}, True),
    (torch.add, lambda: (m(2, 5, 8), m(8)), {"alpha": 2}, True),
    (T.__mul__, lambda: (m(2, 1, 8), m(1, 5, 1)), {}, True),
    (torch.mul, lambda: (m(2, 8), m(8)), {"alpha": 2}, False),  # (mul takes no alpha)
    (T.__rmul__, lambda: (m(4, 3), 0.5), {}, True),
    (torch.mul, lambda: (m(4, 3, dtype=torch.float16), m(3)), {}, True),
    (torch.mul, lambda: (m(4, 3, dtype=torch.float16), 2.5), {}, True),
    (torch.mul, lambda: (m(4, 3, dtype=torch.int64), 2.5), {}, True),
    (torch.mul, lambda: (m(4, 3, dtype=torch.int64), 2), {}, False),  # (an integer result)
    (torch.mul, lambda: (m(4, 3), m(dtype=torch.float64)), {}, True),  # (a 0-d operand)
    (T.__sub__, lambda: (m(4, 3), m(4, 3)), {}, True),
    (T.__rsub__, lambda: (m(4, 3), 1.0), {}, True),
    (T.__truediv__, lambda: (m(4, 3, dtype=torch.int64), m(3, dtype=torch.int64)), {}, True),
    (T.__rtruediv__, lambda: (m(4, 3), 1), {}, True),
    (torch.div, lambda: (m(4, 3), m(3)), {"rounding_mode": "floor"}, False),
    (T.__pow__, lambda: (m(4, 3), 2), {}, True),
    (T.__rpow__, lambda: (m(4, 3), 2.0), {}, True),
    (torch.add, lambda: (m(3, 4).t(), 1.0), {}, False),  # (transposed: torch keeps its strides)
    (torch.add, lambda: (m(2, 3), m(4, 3)), {}, False),  # (shapes that do not broadcast)
    (torch.tanh, lambda: (m(2, 5, 8),), {}, True),
    (T.__neg__, lambda: (m(2, 5, 8),), {}, True),
    (torch.rsqrt, lambda: (m(2, 5, 8, dtype=torch.bfloat16),), {}, True),
    (F.gelu, lambda: (m(2, 8),), {"approximate": "tanh"}, True),
    (F.silu, lambda: (m(2, 8),), {}, True),
    (F.relu, lambda: (m(2, 8),), {"inplace": True}, False),
    (torch.tanh, lambda: (m(8, 4)[:, :2],), {}, False),  # (a slice: not contiguous)
    (torch.tanh, lambda: (m(8, dtype=torch.int64),), {}, False),
    (F.layer_norm, lambda: (m(2, 5, 8), (8,), m(8), m(8)), {}, True),
    (F.layer_norm, lambda: (m(2, 5, 8), [5, 8]), {"eps": 1e-6}, True),
    (torch.layer_norm, lambda: (m(2, 5, 8), (8,)), {}, True),
    (F.layer_norm, lambda: (m(2, 5, 8), (4,)), {}, False),
    (torch.addmm, lambda: (m(12), m(6, 8), m(8, 12)), {}, True),
    (torch.addmm, lambda: (m(6, 12), m(6, 8), m(8, 12)), {"beta": 0.5}, True),
    (torch.addmm, lambda: (m(12), m(6, 8), m(7, 12)), {}, False),
    (
        F.scaled_dot_product_attention,
        lambda: (m(3, 4, 5, 16), m(3, 4, 7, 16), m(3, 4, 7, 8)),
        {"is_causal": False, "dropout_p": 0.1, "scale": 0.25},
        True,
    ),
    (
        F.scaled_dot_product_attention,
        lambda: tuple(
            m(3, 5, 3 * 64).split(64, dim=-1)[i].view(3, 5, 4, 16).transpose(1, 2) for i in range(3)
        ),
        {"is_causal": True},
        True,
    ),
    (
        F.scaled_dot_product_attention,
        lambda: (m(3, 4, 5, 16), m(3, 4, 5, 16), m(3, 4, 5, 16), m(3, 1, 5, 5, dtype=torch.bool)),
        {},
        True,
    ),
    (
        F.scaled_dot_product_attention,
        lambda: (m(3, 4, 5, 16), m(3, 2, 5, 16), m(3, 2, 5, 16)),
        {"enable_gqa": True},
        False,
    ),
    (
        F.scaled_dot_product_attention,
        lambda: (m(3, 4, 5, 16), m(3, 4, 5, 16), m(3, 4, 5, 16)),
        {"dropout_p": 1.5},
        False,
    ),
    (F.dropout, lambda: (m(2, 8), 0.1, True), {}, True),
    (F.dropout, lambda: (m(2, 8), 0.1, False), {}, True),
    (F.dropout, lambda: (m(2, 8),), {"p": 0.0}, True),
    (F.dropout, lambda: (m(2, 8), 0.1, True, True), {}, False),
    (torch.cat, lambda: ([m(2, 3), m(4, 3)],), {}, True),
    (torch.cat, lambda: ([m(2, 3, 5), m(2, 1, 5)],), {"dim": -2}, True),
    (torch.cat, lambda: ([m(2, 3, 5, 5), m(2, 1, 5, 5)],), {"dim": 1}, False),
    (torch.cat, lambda: ([m(0), m(2, 3)],), {}, False),  # (torch's legacy empty tensor)
    (torch.mean, lambda: (m(2, 5, 8), -1), {"keepdim": True}, True),
    (T.mean, lambda: (m(2, 5, 8), (0, 2)), {}, True),
    (T.mean, lambda: (m(2, 5, 8),), {}, False),
    (torch.mean, lambda: (m(2, 5, 8), 1), {"dtype": torch.float64}, False),
]


def _same(a: Any, b: Any) -> bool:
    return (a.shape, a.stride(), a.dtype, a.device, a.requires_grad) == (
        b.shape,
        b.stride(),
        b.dtype,
        b.device,
        b.requires_grad,
    )


@pytest.mark.parametrize("i", range(len(CASES)))
def test_the_shortcut_gives_what_torch_s_meta_kernel_gives(i):
    func, build, kwargs, applies = CASES[i]
    args = build()
    with torch.no_grad():
        fast = fast_meta(func, args, dict(kwargs))
        try:
            real = func(*args, **kwargs)
        except Exception:
            real = None  # (torch refuses it: the shortcut must not answer)
    if not applies:
        assert fast is NotImplemented
        return
    assert fast is not NotImplemented and real is not None
    assert _same(fast, real), (fast.stride(), real.stride(), fast.dtype, real.dtype)
    assert (fast is args[0]) == (real is args[0])  # (dropout off gives its input itself)


def test_no_shortcut_with_gradients_or_off_the_meta_device():
    x = torch.empty(2, 8, device="meta")
    assert fast_meta(torch.tanh, (x,), {}) is NotImplemented  # (grad mode on)
    with torch.no_grad():
        assert fast_meta(torch.tanh, (torch.empty(2, 8),), {}) is NotImplemented
        assert fast_meta(torch.tanh, (x,), {}) is not NotImplemented
        assert fast_meta(torch.softmax, (x, -1), {}) is NotImplemented  # (not one of these)


def _families() -> dict[str, Callable[[], Any]]:
    transformers = pytest.importorskip("transformers")
    from initwise.bench.families import builders

    T_ = transformers
    return {
        "gpt2": lambda: T_.GPT2LMHeadModel(
            T_.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128)
        ),
        "llama": builders(T_)["llama"],  # (`bench families`' own)
        "bert": lambda: T_.BertForMaskedLM(
            T_.BertConfig(
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=128,
                vocab_size=128,
            )
        ),
        "vit": lambda: T_.ViTForImageClassification(
            T_.ViTConfig(
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=128,
                image_size=32,
                patch_size=8,
            )
        ),
    }


def test_meta_plans_and_graphs_are_the_same_with_and_without_the_shortcuts(monkeypatch):
    """The oracle: each family planned on the meta device with every operation run by torch's
    meta kernels and with the shortcuts — the same graph (ops, targets, edges, arguments) and
    the same JSON plan. (Over 35 Hugging Face families — `bench families`' 30 and GPT-2, BERT,
    T5, ViT, GPT-NeoX — all equal when measured, planning 2.6 → 1.4 s in all.) And the
    shortcuts are taken: a meta GPT-2's trace answers most operations from them."""
    import transformers

    from initwise.torch.inspection import hf_example

    used = []

    def counting(func: Any, args: tuple, kwargs: dict) -> Any:
        out = fast_meta(func, args, kwargs)
        used.append((func, out is not NotImplemented))
        return out

    monkeypatch.setattr(G, "fast_meta", counting)
    for name, build in _families().items():
        with torch.device("meta"):
            model = build()
        seen = {}
        for on in (False, True):
            monkeypatch.setattr(G, "META_SHORTCUTS", on)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = G.trace_run(model, hf_example(model))
                plan = it.plan(model, "auto")
            nodes = [
                (n.op, str(n.target), n.inputs, repr(n.args), repr(n.kwargs)) for n in graph.nodes
            ]
            seen[on] = (nodes, json.dumps(plan.to_dict(), sort_keys=True, default=str))
        assert seen[False][0] == seen[True][0], name
        assert seen[False][1] == seen[True][1], name
        if name == "gpt2":  # (the costly ones: ~80 % of the trace without the shortcuts)
            assert isinstance(model, transformers.GPT2LMHeadModel)
            for func in (F.layer_norm, torch.addmm, F.scaled_dot_product_attention):
                calls = [u for f, u in used if f is func]
                assert calls and all(calls), (func, calls)
        used.clear()


# ---------------------------------------------------------------- meta stand-ins of a CPU model


def test_cpu_plans_are_the_same_traced_on_meta_stand_ins(monkeypatch):
    """A CPU model fx cannot trace is run on meta stand-ins of its tensors first: the same graph
    and the same plan as its own forward on the example input (over 35 Hugging Face families
    when measured), the stand-ins used, the model's tensors the same objects with the same
    values afterwards."""
    from initwise.torch.inspection import hf_example

    monkeypatch.setattr(G, "STAND_INS_FROM", 0)  # (the test models are small)
    ran_on = _record_runs(monkeypatch)
    for name, build in _families().items():
        torch.manual_seed(0)
        model = build()
        own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        tensors = {k: (v, v.clone()) for k, v in own.items()}
        seen = {}
        for on in (False, True):
            monkeypatch.setattr(G, "META_STAND_INS", on)
            ran_on.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = G.trace_run(model, hf_example(model))
                plan = it.plan(model, "auto")
            assert ran_on and ran_on[0] is on, (name, ran_on)  # (stand-ins: meta; else its own)
            nodes = [(n.op, str(n.target), n.inputs, _shapes(n.args), _shapes(n.kwargs))
                     for n in graph.nodes]  # fmt: skip
            seen[on] = (nodes, json.dumps(plan.to_dict(), sort_keys=True, default=str))
        assert seen[False] == seen[True], name
        now = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        assert now.keys() == tensors.keys(), name
        assert all(now[k] is t and torch.equal(t, v) for k, (t, v) in tensors.items()), name


def _record_runs(monkeypatch: Any) -> list[bool]:
    """The list that gets, for each run of the trace, whether it ran on meta tensors."""
    ran_on: list[bool] = []
    inner = G._trace_run

    def recording(m: Any, *a: Any, **kw: Any) -> Any:
        ran_on.append(next(m.parameters()).is_meta)
        return inner(m, *a, **kw)

    monkeypatch.setattr(G, "_trace_run", recording)
    return ran_on


def _shapes(a: Any) -> Any:
    """A node's arguments with each tensor in them (a list given to ``cat``) as its shape and
    dtype: a run on stand-ins holds meta tensors where the model's own run held its values."""
    if isinstance(a, torch.Tensor):
        return ("tensor", tuple(a.shape), a.dtype)
    if isinstance(a, (list, tuple)):
        return type(a)(_shapes(x) for x in a)
    if isinstance(a, dict):
        return {k: _shapes(v) for k, v in a.items()}
    return a


class _Writes(torch.nn.Module):
    """A forward that writes what it should not keep: a buffer registered on first use, an
    attribute, a parameter's values through ``.data``; a tie between two names."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 8)
        self.b2 = self.b  # (one module under two names)
        self.alias = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "cache"):
            self.register_buffer("cache", torch.zeros(16, device=x.device), persistent=False)
        self.calls = getattr(self, "calls", 0) + 1
        self.a.bias.data.add_(1.0)
        return self.b2(torch.relu(self.a(x)))


def test_stand_ins_leave_the_model_as_it_was(monkeypatch):
    monkeypatch.setattr(G, "STAND_INS_FROM", 0)
    model = _Writes()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    graph = G.trace_run(model, torch.randn(4, 8))
    assert [n.target for n in graph.nodes if n.op == "module"] == ["a", "b"]
    assert not hasattr(model, "cache") and not hasattr(model, "calls")
    assert "cache" not in model._buffers and model.alias is model.a.weight
    assert list(model.parameters()) == params and all(not p.is_meta for p in params)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_forward_that_reads_values_runs_on_the_model_s_own_tensors(monkeypatch):
    """On meta stand-ins a branch on a value fails (a meta tensor has none): the model is run on
    its own tensors, as before — the same graph as without stand-ins."""
    monkeypatch.setattr(G, "STAND_INS_FROM", 0)

    class Branches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = torch.nn.Linear(8, 8)
            self.o = torch.nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.l(x)
            if bool(h.sum() > 0):
                h = torch.relu(h)
            else:
                h = torch.tanh(h)
            return self.o(h)

    model = Branches()
    x = torch.randn(4, 8)
    ran_on = _record_runs(monkeypatch)
    got = [(n.op, str(n.target)) for n in G.trace_run(model, x).nodes]
    assert ran_on == [True, False]  # (tried on stand-ins, then on its own tensors)
    monkeypatch.setattr(G, "META_STAND_INS", False)
    assert got == [(n.op, str(n.target)) for n in G.trace_run(model, x).nodes]
    assert all(not p.is_meta for p in model.parameters())


def test_no_stand_ins_below_the_size_or_for_other_tensors():
    small = torch.nn.Linear(8, 8)
    assert not G._stand_ins_apply(small)  # (below STAND_INS_FROM: its own forward is faster)
    big = torch.nn.Linear(4096, 2048)
    assert G._stand_ins_apply(big)
    with torch.device("meta"):
        on_meta = torch.nn.Linear(4096, 2048)
    assert not G._stand_ins_apply(on_meta)
    big.weight.requires_grad_(False)
    big.register_buffer("q", torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8))
    assert not G._stand_ins_apply(big)


def test_a_forward_that_draws_random_numbers_on_the_cpu_runs_on_its_own_tensors(monkeypatch):
    """LayerDrop (HuBERT, wav2vec 2.0 in train mode): ``torch.rand([]) < p`` draws on the CPU
    and decides which layers run; on stand-ins dropout draws nothing, so the draws — and the
    layers skipped — differed from the model's own run (HuBERT's attention layers went
    "not called"). A stand-in run that moved the CPU generator is thrown away and the model
    runs on its own tensors from the same random state: the graph its own run gives."""
    monkeypatch.setattr(G, "STAND_INS_FROM", 0)

    class LayerDrop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(16, 16) for _ in range(6))
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = self.drop(x)
                if not bool(torch.rand([]) < 0.3):
                    x = torch.relu(layer(x))
            return x

    model = LayerDrop()
    x = torch.randn(4, 16)

    def calls(on: bool) -> list[str]:
        monkeypatch.setattr(G, "META_STAND_INS", on)
        torch.manual_seed(1)
        graph = G.trace_run(model, x)
        return [str(n.target) for n in graph.nodes if n.op == "module"], torch.get_rng_state()

    (own, rng_own), (got, rng_got) = calls(False), calls(True)
    assert got == own and torch.equal(rng_got, rng_own)
    torch.manual_seed(1)
    assert torch.equal(rng_own, torch.get_rng_state())  # (the caller's random state put back)


def test_plan_leaves_torch_s_random_state_as_it_was():
    """The trace by running ran a train-mode model's dropout on torch's global generator:
    ``plan`` of a GPT-2 moved the caller's random stream. It runs seeded now, the state put
    back (so a LayerDrop's choice of layers is the same on every call, too)."""
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128)
    ).train()
    state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = json.dumps(it.plan(model, "auto").to_dict(), sort_keys=True, default=str)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # (another caller state: the same plan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = json.dumps(it.plan(model, "auto").to_dict(), sort_keys=True, default=str)
    assert again == first
