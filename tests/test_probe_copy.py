"""The plan's numeric probes call copies of the model's own modules, never the modules: one that
counts its calls or keeps what it saw is left as it was (only torch.fx's own trace runs a
module's forward once, with proxies, where fx traces into it)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initwise.torch import plan  # noqa: E402
from initwise.torch.modules import probe_copy  # noqa: E402


class _Swish(nn.Module):
    """A parameter-free activation of the model's own that keeps state (a leaf to the trace)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(tuple(x.shape))
        return x * torch.sigmoid(1.5 * x)


class _Snake(nn.Module):
    """BigVGAN's Snake (a learned α per channel) that counts its calls."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(c))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + torch.sin(self.alpha * x) ** 2 / self.alpha


class _RMS(nn.Module):
    """An RMS norm written by hand that counts its calls."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def test_a_parameter_free_activation_is_probed_on_a_copy():
    # it was called 6 times per plan (the probe and its table), each call seen by the module
    acts = [_Swish() for _ in range(3)]
    m = nn.Sequential(
        nn.Linear(16, 32), acts[0], nn.Linear(32, 32), acts[1], nn.Linear(32, 32), acts[2]
    )
    p = plan(m, "auto")
    assert "_Swish" in p["2.weight"].reason  # still found, and solved for
    assert [a.calls for a in acts] == [0, 0, 0] and all(not a.seen for a in acts)


def test_modules_with_parameters_are_probed_on_a_copy():
    # Snake: 13 calls per plan before (12 of them the probe and its table); the norm: 3+
    snakes = [_Snake(32) for _ in range(2)]
    norms = [_RMS(32) for _ in range(2)]
    m = nn.Sequential(
        nn.Linear(16, 32), norms[0], snakes[0], nn.Linear(32, 32), norms[1], snakes[1]
    )
    p = plan(m, "auto")
    assert "Snake" in p["3.weight"].reason
    assert all(s.calls <= 1 for s in snakes + norms), [s.calls for s in snakes + norms]


def test_probe_copy_shares_parameters_and_copies_state():
    s = _Snake(4)
    s.seen = [1]
    c = probe_copy(s)
    assert c is not None and c is not s
    assert c.alpha is s.alpha  # (a large weight is not copied)
    assert c.seen == [1] and c.seen is not s.seen


def test_a_module_that_cannot_be_copied_is_not_called():
    class Locked(_Swish):
        def __deepcopy__(self, memo: dict) -> None:
            raise TypeError("no copies")

    acts = [Locked(), Locked()]
    m = nn.Sequential(nn.Linear(16, 32), acts[0], nn.Linear(32, 32), acts[1], nn.Linear(32, 8))
    plan(m, "auto")  # (taken as it was before: an opaque module, passing its moments)
    assert [a.calls for a in acts] == [0, 0]


class _Keeps(nn.Module):
    """A model whose forward writes Python state: a counter, a list, the last attention map
    (a new attribute), and — with ``branchy`` — a data-dependent branch fx cannot trace."""

    def __init__(self, branchy: bool = False) -> None:
        super().__init__()
        self.a = nn.Linear(16, 32)
        self.b = nn.Linear(32, 8)
        self.branchy = branchy
        self.calls = 0
        self.seen: list[object] = []
        self.meta: dict[str, object] = {"k": 1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = self.a(x)
        self.seen.append(h)
        self.meta["last"] = h
        self.last_hidden = h
        if self.branchy and bool(h.sum() > 0):
            h = h * 1.0
        return self.b(torch.relu(h))


@pytest.mark.parametrize("branchy", [False, True])
def test_tracing_and_running_leave_the_models_own_attributes(branchy: bool) -> None:
    # fx's trace left a Proxy in `last_hidden`, `seen` and `meta` and counted a call; a run
    # trace (and the plan's own runs on the example input) left the example's tensors there
    m = _Keeps(branchy)
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    p = plan(m, "auto", example_input=x if branchy else None)
    assert p.notes[0].startswith("traced with run" if branchy else "traced with fx")
    assert m.calls == 0 and m.seen == [] and m.meta == {"k": 1}
    assert not hasattr(m, "last_hidden")
    assert dict(m.named_parameters()).keys() == {"a.weight", "a.bias", "b.weight", "b.bias"}


def test_kept_attributes_puts_back_what_a_block_wrote() -> None:
    from initwise.torch.batch import kept_attributes

    m = _Keeps()
    seen, meta = m.seen, m.meta
    with kept_attributes(m):
        m(torch.zeros(2, 16))
        m.extra = 3
        m.a.note = "x"
    assert m.calls == 0 and m.seen is seen and seen == [] and m.meta is meta
    assert meta == {"k": 1} and not hasattr(m, "extra") and not hasattr(m.a, "note")
    assert not hasattr(m, "last_hidden") and m.training


class _ActNorm(nn.Module):
    """Glow's ActNorm (Kingma & Dhariwal 2018): a data-dependent init in its first forward."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(c))
        self.scale = nn.Parameter(torch.ones(c))
        self.initialized = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            with torch.no_grad():
                self.loc.data.copy_(-x.mean(0))
                self.scale.data.copy_(1 / (x.std(0) + 1e-6))
            self.initialized = True
        return self.scale * (x + self.loc)


class _Flow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(16, 32)
        self.n = _ActNorm(32)
        self.o = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.n(self.l(x))
        if bool(h.sum() > 0):  # (fx can not trace it: traced by running the example)
            h = torch.relu(h)
        return self.o(h)


def test_a_data_dependent_init_in_forward_does_not_keep_the_examples_statistics():
    # the run trace wrote the example's mean and std into ActNorm's loc and scale and set its
    # flag: the model was changed by plan
    m = _Flow()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = plan(m, "auto", example_input=x)
    assert p.notes[0].startswith("traced with run")
    assert m.n.initialized is False
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


class _Pooled(nn.Module):
    """Attention pooling that keeps its weights for plotting (``self.attn = w``, and a list of
    them): after one call outside ``torch.no_grad()`` the model holds tensors with an autograd
    history, which ``copy.deepcopy`` refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.fc = nn.Linear(16, 64), nn.Linear(64, 64)
        self.v = nn.Parameter(torch.randn(64) / 8)
        self.head = nn.Linear(64, 5)
        self.history: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(self.inp(x)))
        self.attn = torch.softmax(h @ self.v, -1)
        self.history = [self.attn]
        return self.head((self.attn[..., None] * h).sum(1))


def test_a_model_holding_tensors_with_a_graph_is_measured_and_lsuv_planned() -> None:
    """After one forward pass the draft copy failed: the head's input was "E[x²] = 1 assumed"
    with the example input given (output rms 0.22 instead of ~1), and ``plan(model, "lsuv",
    ...)`` raised torch's deepcopy error. The copies carry detached clones; the model's own
    attributes are left as they were."""
    torch.manual_seed(0)
    x = torch.randn(8, 12, 16)
    m = _Pooled()
    m(x)  # (a training step, a plot: the attribute now has a grad_fn)
    kept, history = m.attn, m.history
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no assumption: the head's input is measured)
        p = plan(m, example_input=x)
    assert "measured on the example input" in p["head.weight"].reason
    assert m.attn is kept and m.history is history
    from initwise.torch.copying import module_copy

    twin = module_copy(m)
    assert twin.attn is not kept and twin.attn.grad_fn is None
    assert torch.equal(twin.attn, kept.detach()) and twin.history[0] is twin.attn
    p.apply(m, seed=0)
    with torch.no_grad():
        rms = float(m(torch.randn(128, 12, 16)).pow(2).mean().sqrt())
    assert 0.6 < rms < 1.5, rms
    assert plan(m, "lsuv", example_input=x).entries
