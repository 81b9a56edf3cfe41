"""Dropout in training multiplies ``E[x²]`` by ``1/(1 − p)`` (inverted dropout: ``E[ε²] = 1/(1 −
p)``); ``auto`` solves the layers after it for that in training mode (Pretorius et al. 2018) and
takes it as the identity in eval mode, where it is one."""

from __future__ import annotations

import math
import re
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from initwise.torch import init_model, plan  # noqa: E402


def _mlp(depth: int, p: float, width: int = 256, drop: type[nn.Module] = nn.Dropout) -> nn.Module:
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Linear(width, width), nn.ReLU(), drop(p)) for _ in range(depth)]
    return nn.Sequential(*blocks, nn.Linear(width, width))


def _rms(model: nn.Module, x: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(1)  # (dropout's masks from a fixed state)
    with torch.no_grad():
        state = torch.get_rng_state()
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        try:
            return float(model(x).pow(2).mean().sqrt())
        finally:
            torch.set_rng_state(state)


def _x(width: int = 256) -> torch.Tensor:
    return torch.randn(512, width, generator=torch.Generator().manual_seed(2))


def _quiet(model: nn.Module, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plan(model, "auto", **kw)


def test_a_deep_dropout_mlp_in_training_keeps_its_scale():
    # 12 × (Linear, ReLU, Dropout(0.5)) in train mode: each dropout doubled E[x²] and the old
    # plan did not count it — output rms ≈ 2⁶ = 64 (measured 70.2; now 1.10)
    m = _mlp(12, 0.5)
    _quiet(m).apply(m, seed=0)
    assert 0.5 < _rms(m, _x()) < 2.0


def test_the_reason_names_the_dropout_and_its_factor():
    m = _mlp(3, 0.2)
    r = _quiet(m)["1.0.weight"]
    assert "Dropout '0.2' p 0.2 in training: E[x²] ×1.25" in r.reason
    # the layer reading it: He's gain for E[relu²] = 1, times √(1 − p)
    assert r.gain == pytest.approx(math.sqrt(2 * 0.8), rel=1e-9)


def test_in_eval_mode_dropout_is_the_identity_and_the_plan_is_the_plain_one():
    m = _mlp(3, 0.3).eval()
    bare = _mlp(3, 0.0).eval()
    a, b = _quiet(m), _quiet(bare)
    for name in ("0.0.weight", "1.0.weight", "3.weight"):
        assert a[name].std == b[name].std
        assert "dropout" not in a[name].reason


def test_alpha_dropout_keeps_the_moments_and_is_not_counted():
    m = _mlp(3, 0.3, drop=nn.AlphaDropout)
    bare = _mlp(3, 0.0)
    assert _quiet(m)["1.0.weight"].std == _quiet(bare)["1.0.weight"].std


class _Functional(nn.Module):
    """``F.dropout(…, training=self.training)`` in ``forward``, as Hugging Face writes it."""

    def __init__(self, depth: int, p: float, width: int = 256) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = p
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), p=self.p, training=self.training)
        return self.out(x)


def test_functional_dropout_counts_when_traced_in_training():
    m = _Functional(10, 0.5)
    _quiet(m).apply(m, seed=0)
    assert 0.5 < _rms(m, _x()) < 2.0
    e = _Functional(10, 0.5).eval()  # traced with training=False: the identity
    assert "dropout" not in _quiet(e)["layers.1.weight"].reason
    assert _quiet(e)["layers.1.weight"].gain == pytest.approx(math.sqrt(2), rel=1e-9)


def test_a_transformer_layers_dropouts_are_read_from_its_attributes():
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.2, batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    p = _quiet(enc)
    r = p["layers.0.linear2.weight"]
    assert "Dropout 'layers.0.dropout' p 0.2 in training" in r.reason
    # the branch ends: their output is scaled by the dropout after them on the way to the sum
    assert "×1.25 in E[x²] on the way" in r.reason
    assert "×1.25 in E[x²] on the way" in p["layers.1.self_attn.out_proj.weight"].reason
    ev = _quiet(enc.eval())["layers.0.linear2.weight"].reason
    assert "dropout" not in ev and "on the way" not in ev


def test_init_model_on_a_dropout_network_leaves_the_rng_alone():
    m = _mlp(3, 0.5)
    state = torch.get_rng_state()
    init_model(m, seed=0)
    assert torch.equal(state, torch.get_rng_state())


class _NumpyMasked(nn.Module):
    """Masks time steps in train mode with NumPy's and Python's global generators, as Hugging
    Face's Wav2Vec2/HuBERT/SEW do with ``np.random`` (SpecAugment) and layer-drop code with
    ``random.uniform``."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.fc, self.out = nn.Linear(8, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import random

        import numpy as np

        h = self.inp(x)
        if self.training:
            keep = torch.from_numpy(np.random.rand(x.shape[1]) > 0.5).to(h.dtype)
            h = h * keep[None, :, None] * (1.0 + random.random())
        return self.out(torch.relu(self.fc(torch.relu(h))))


def test_a_forward_drawing_from_numpy_and_python_leaves_their_streams_alone():
    """``plan`` with an example input, ``init_model``, ``diagnose`` and ``lsuv`` run the model
    in train mode: a forward drawing from ``np.random``/``random`` moved the caller's streams,
    and the plan changed with the caller's NumPy seed. Both are seeded inside the call and put
    back after it."""
    import random

    import numpy as np

    from initwise.diagnostics import diagnose
    from initwise.torch import lsuv

    x = torch.randn(16, 10, 8, generator=torch.Generator().manual_seed(0))
    m = _NumpyMasked()
    calls = {
        "plan": lambda: plan(m, example_input=x),
        "init_model": lambda: init_model(m, seed=0, example_input=x),
        "diagnose": lambda: diagnose(m, x),
        "lsuv": lambda: lsuv(m, x, seed=0),
    }
    for name, call in calls.items():
        np.random.seed(5)
        random.seed(5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        assert (np.random.rand(), random.random()) == (
            np.random.RandomState(5).rand(),
            random.Random(5).random(),
        ), name
    plans = []
    for s in (1, 2):  # (the caller's NumPy seed does not decide the plan)
        np.random.seed(s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plans.append([(e.name, e.std) for e in plan(m, example_input=x)])
    assert plans[0] == plans[1]


class DropPath(nn.Module):
    """Stochastic depth as timm and Hugging Face write it: one keep/drop per example for the
    whole branch, kept values divided by the keep probability."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = torch.floor(torch.rand((x.shape[0],) + (1,) * (x.ndim - 1)) + keep)
        return x.div(keep) * mask


class _Residual(nn.Module):
    def __init__(self, blocks: int, drop: float, width: int = 256) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.drop = nn.ModuleList(DropPath(drop) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, b, d in zip(self.fc1, self.fc2, self.drop, strict=True):
            x = x + d(b(F.relu(a(x))))
        return x


def test_drop_path_scales_the_branch_it_ends_in_training():
    p = _quiet(_Residual(4, 0.5))
    r = p["fc2.0.weight"].reason
    assert "after ×2 in E[x²] on the way" in r
    # the branch is solved for half its share, so the stream still grows to 2× over 4 blocks
    base = _quiet(_Residual(4, 0.5).eval())["fc2.0.weight"]
    assert p["fc2.0.weight"].std == pytest.approx(base.std * math.sqrt(0.5), rel=1e-9)
    assert "on the way" not in base.reason


def test_a_plan_in_eval_mode_says_dropout_was_taken_as_the_identity():
    # (a pretrained model is loaded in eval mode; it trains with its dropout on)
    notes = _quiet(_mlp(3, 0.3).eval()).notes
    said = "planned for eval mode, where dropout is the identity (3 dropout modules, p up to 0.3)"
    assert any(said in n for n in notes)
    assert not any("eval mode" in n for n in _quiet(_mlp(3, 0.3)).notes)
    assert not any("eval mode" in n for n in _quiet(_mlp(3, 0.0).eval()).notes)


class _Forms(nn.Module):
    """Dropout written the ways code writes it."""

    def __init__(self, form: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.form = form
        self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x))
        if self.form == "positional":
            h = F.dropout(h, 0.5, True)
        elif self.form == "torch.dropout off":
            h = torch.dropout(h, 0.5, False)
        elif self.form == "default training":  # (F.dropout's training defaults to True: it
            h = F.dropout(h, p=0.5)  # acts in eval mode too)
        else:
            h = F.dropout2d(h.unsqueeze(-1), 0.5, True).squeeze(-1)
        return self.b(h)


@pytest.mark.parametrize(
    "form, counted",
    [("positional", True), ("torch.dropout off", False), ("default training", True), ("2d", True)],
)
def test_functional_dropout_forms(form, counted):
    r = _quiet(_Forms(form).eval())["b.weight"].reason
    assert ("in training: E[x²] ×2" in r) is counted


def test_lsuv_says_it_measured_with_dropout_off():
    from initwise.plan import SignalWarning
    from initwise.torch import lsuv

    batch = _x()[:128]
    said = r"lsuv: measured in eval mode, dropout off .* 3 dropout modules \(p up to 0.3\)"
    with pytest.warns(SignalWarning, match=said):
        res = lsuv(_mlp(3, 0.3), batch)
    assert any("dropout off" in n for n in res.plan.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SignalWarning)
        lsuv(_mlp(3, 0.3).eval(), batch)  # (planned for evaluation: nothing to say)
        lsuv(_mlp(3, 0.0), batch)


@pytest.mark.parametrize("policy", ["tat", "dks"])
def test_kernel_shaping_says_dropout_in_training_is_not_covered(policy):
    from initwise.plan import AssumptionError, AssumptionWarning

    m = _mlp(20, 0.3, width=32)
    with pytest.warns(AssumptionWarning, match="dropout in training is not covered"):
        plan(m, policy)
    with pytest.raises(AssumptionError, match="dropout in training is not covered"):
        plan(m, policy, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        plan(m.eval(), policy)  # (the identity in eval mode: nothing to say)


class LockedDropout(nn.Module):
    """AWD-LSTM's dropout (Merity et al. 2018): one mask per sequence, shared over time."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class GaussianNoise(nn.Module):
    """Additive noise in training (a denoising autoencoder's, Keras's ``GaussianNoise``)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.sigma if self.training else x


@pytest.mark.parametrize(
    "make, factor",
    [
        (lambda: LockedDropout(0.5), r"×(1\.9\d*|2\.0\d*|2)\b"),
        (lambda: GaussianNoise(0.5), r"×1\.2[45]"),
    ],
    ids=["LockedDropout", "GaussianNoise"],
)
def test_noise_written_by_hand_is_measured_in_training(make, factor):
    # each was the identity to the walk (ten GaussianNoise(0.5) between ReLU layers: rms 2.2)
    torch.manual_seed(0)
    blocks = [nn.Sequential(make(), nn.Linear(64, 64), nn.ReLU()) for _ in range(10)]
    m = nn.Sequential(*blocks, nn.Linear(64, 64))
    p = _quiet(m)
    r = p["1.1.weight"].reason
    assert re.search(r"draws noise in training: E\[x²\] " + factor, r), r  # (measured: ±2 %)
    p.apply(m, seed=0)
    x = torch.randn(16, 32, 64, generator=torch.Generator().manual_seed(2))
    assert 0.6 < _rms(m, x) < 1.6
    assert "draws noise" not in _quiet(m.eval())["1.1.weight"].reason  # (eval: the identity)


class _Recording(GaussianNoise):
    """A noise module that counts its training-mode calls (state a module written for plotting
    might keep; the activation probe's eval-mode calls are not counted)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen = getattr(self, "seen", 0) + 1
        return super().forward(x)


def test_probing_a_noise_module_leaves_it_as_it_was():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), _Recording(0.5), nn.Linear(64, 64))
    state = torch.get_rng_state()
    r = _quiet(m)["3.weight"].reason
    assert "draws noise in training" in r
    assert not hasattr(m[2], "seen") and torch.equal(state, torch.get_rng_state())
