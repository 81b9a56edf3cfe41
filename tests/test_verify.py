"""The plan held against the example input (initwise.torch.verify): what the moments walk does
not model is said, not passed over."""

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initwise.torch as it  # noqa: E402
from initwise.plan import SignalWarning  # noqa: E402
from initwise.torch.inspection import inspect_model  # noqa: E402
from initwise.torch.moments import propagate  # noqa: E402

CHECKED = "checked on the example input"


class FM(nn.Module):
    """DeepFM's second-order term ½((Σv)² − Σv²) beside a deep MLP (Guo et al. 2017): the
    difference of two correlated terms, which the walk adds as if independent."""

    def __init__(self, fields: int = 10, vocab: int = 50, k: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(fields * vocab, k)
        self.deep = nn.Sequential(nn.Linear(fields * k, 64), nn.ReLU(), nn.Linear(64, 1))
        self.register_buffer("offs", torch.arange(fields) * vocab)

    def forward(self, idx):
        v = self.emb(idx + self.offs)
        fm = 0.5 * (v.sum(1).pow(2) - v.pow(2).sum(1)).sum(1, keepdim=True)
        return fm + self.deep(v.flatten(1))


def _ids():
    return torch.randint(0, 50, (64, 10), generator=torch.Generator().manual_seed(1))


def _said(ws):
    return [str(w.message) for w in ws if CHECKED in str(w.message)]


def test_an_output_the_walk_does_not_model_is_said_with_both_figures():
    """DeepFM's output came out at rms ~29 with nothing said (the walk predicted E[y²] 52 and
    the plan's reasons read as if all was solved); now the plan says what it measured."""
    torch.manual_seed(0)
    with pytest.warns(SignalWarning, match=CHECKED) as ws:
        p = it.plan(FM(), "auto", example_input=_ids())
    said = _said(ws)[0]
    assert "the moments walk puts the model's output at E[y²]" in said  # (25 > 16: off unit)
    text = said[said.index(CHECKED) :]
    pred, meas = (
        float(x)
        for x in [text.split("predicted ")[1].split(" ")[0], text.split("E[y²] ")[1].split(" ")[0]]
    )
    assert meas / pred > 4
    assert any(CHECKED in n for n in p.notes)
    m, logs = FM(), []
    for seed in (0, 1, 2):  # the figure it says: the geometric mean over three draws
        p.apply(m, seed=seed)
        with torch.no_grad():
            logs.append(math.log(float(m(_ids()).double().pow(2).mean())))
    assert math.exp(sum(logs) / 3) == pytest.approx(meas, rel=2e-3)
    # a finding, not an assumption: strict does not refuse it; no example input, no check
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        it.plan(FM(), "auto", example_input=_ids(), strict=True)
        q = it.plan(FM(), "auto")
    assert len(_said(ws)) == 1 and not any(CHECKED in n for n in q.notes)


@pytest.mark.parametrize("act", [nn.ReLU, nn.GELU, nn.Tanh])
def test_a_plan_the_walk_models_passes_the_check(act):
    layers = []
    for _ in range(12):
        layers += [nn.Linear(64, 64), act()]
    m = nn.Sequential(*layers, nn.Linear(64, 8))
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        p = it.plan(m, "auto", example_input=torch.randn(128, 64))
    assert not _said(ws) and not any(CHECKED in n for n in p.notes)


def test_the_check_leaves_the_model_and_the_random_state_as_they_were():
    m = nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 16)
    )

    class Square(nn.Module):  # (y², not modelled: the check fires and runs the copy)
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x):
            h = self.m(x)
            return (h.sum(1, keepdim=True).pow(2) - h.pow(2).sum(1, keepdim=True)) * 3.0

    model = Square().train()
    model.m[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [x.training for x in model.modules()]
    x = torch.randn(32, 8)
    rng = torch.get_rng_state()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        it.plan(model, "auto", example_input=x)
    assert _said(ws)  # (the check ran)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [x.training for x in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_tied_head_scaled_after_predicts_the_logits_it_gives():
    """A tied read-out whose logits are scaled by a constant (Cohere's logit_scale, Granite's
    1/logits_scaling): the table's std is solved for the scaled logits, and the walk's output
    is what that std gives (it said 1/64 for Granite's unit logits)."""

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            self.mlp = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
            self.head = nn.Linear(32, 100, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, idx):
            h = self.emb(idx)
            return self.head(h + self.mlp(F.layer_norm(h, (32,)))) / 8.0

    torch.manual_seed(0)
    m = LM()
    ids = torch.randint(0, 100, (16, 12), generator=torch.Generator().manual_seed(0))
    out = propagate(m, inspect_model(m, None))
    assert out.output is not None and out.output[0] == pytest.approx(1.0, rel=1e-6)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        p = it.plan(m, "auto", example_input=ids)
    assert not _said(ws)
    p.apply(m, seed=0)
    with torch.no_grad():
        rms = float(m(ids).pow(2).mean().sqrt())
    assert 0.5 < rms < 2 and math.isfinite(rms)


class VQ(nn.Module):
    """A quantizer's straight-through estimator between an encoder and a decoder (VQ-VAE, van
    den Oord et al. 2017), or a straight-through sample ``(h − s.detach()) + s``."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.enc = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))
        self.other = nn.Linear(32, 16)
        self.code = nn.Embedding(128, 16)
        self.dec = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x):
        z = self.enc(x)
        if self.form == "vq":
            q = self.code(torch.cdist(z, self.code.weight).argmin(1))
            return self.dec(z + (q - z).detach())
        s = self.other(x)
        return self.dec((z - s.detach()) + s)


@pytest.mark.parametrize("form", ["vq", "sample"])
def test_a_straight_through_estimator_passes_the_value_it_computes(form):
    """The walk added ``z`` and ``(q − z).detach()`` as independent terms: the decoder was solved
    for an input E[x²] of 3 where the codes give 1, and its output came out at rms ~0.58."""
    torch.manual_seed(0)
    m = VQ(form)
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    p = it.plan(m, "auto", example_input=x)
    assert "input E[x²] 1 →" in p["dec.0.weight"].reason
    rms = []
    for seed in range(3):
        p.apply(m, seed=seed)
        with torch.no_grad():
            rms.append(float(m(x).pow(2).mean().sqrt()))
    assert 0.8 < sum(rms) / 3 < 1.25


class DeepONet(nn.Module):
    """DeepONet (Lu et al. 2021): ``Σ_k b_k(u)·t_k(y) + b₀`` over the nets' p outputs."""

    def __init__(self, m: int = 50, p: int = 64) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(m, 128), nn.Tanh(), nn.Linear(128, p))
        self.trunk = nn.Sequential(nn.Linear(1, 128), nn.Tanh(), nn.Linear(128, p), nn.Tanh())
        self.b0 = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        u, y = x[:, :50], x[:, 50:]
        return (self.branch(u) * self.trunk(y)).sum(-1, keepdim=True) + self.b0


def test_a_sum_of_products_before_the_output_is_said():
    """DeepONet's output came out at rms ~5 (64 products summed) with nothing said, with or
    without an example input: the keepdim sum before ``+ b₀`` was a statistic, passed through.
    With an example input it is measured; without one, the sum over the 64 features of the
    branch and trunk nets counts them (since 2026-12-04; before, an assumption strict refused):
    either way the walk's output, E[y²] ~20–26, is said to be off unit."""
    x = torch.randn(256, 51, generator=torch.Generator().manual_seed(1))
    for example in (None, x):
        with pytest.warns(SignalWarning, match="the moments walk puts the model's output") as ws:
            it.plan(DeepONet(), "auto", example_input=example, strict=example is None)
        text = next(str(w.message) for w in ws if "walk puts" in str(w.message))
        assert float(text.split("E[y²] ")[1].split(" ")[0]) > 16


def test_exp_of_a_gaussian_is_lognormal_in_the_walk():
    """``torch.exp`` was an unknown op passed through (E[x²] unchanged): a zero-started
    coupling's ``exp(tanh(0)) = 1`` came out as 0, and six couplings' output as 1/64."""

    class Exp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 16, bias=False)

        def forward(self, x):  # (exp of the input: no layer before it to be its activation)
            return torch.cat([torch.exp(x), self.fc(x)], -1)

    m = Exp()
    out = propagate(m, inspect_model(m, None))
    # the concatenation's halves: E[e²ˣ] = e² and E[eˣ] = e^½ for x ~ N(0, 1), the layer's unit
    assert out.output[0] == pytest.approx((math.exp(2.0) + 1) / 2, rel=1e-9)
    assert out.output[1] == pytest.approx(math.exp(0.5) / 2, rel=1e-9)


def test_a_factor_computed_from_a_shape_carries_no_moments_and_is_said():
    """nGPT scales its logits by ``√d`` with ``d = h.shape[-1]``: the walk carried ``h``'s
    moments through ``getattr(h, 'shape')`` into that factor (the output "at E[y²] 1/64" for
    logits at 64), silently. A shape carries no moments now, and the factor — unknown without
    shapes — is said."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.head = nn.Linear(16, 64), nn.Linear(64, 10)

        def forward(self, x):
            h = F.normalize(self.fc(x), dim=-1)
            return self.head(h) * math.sqrt(h.shape[-1])

    m = Scaled()
    out = propagate(m, inspect_model(m, None))
    assert out.output is not None and out.output[0] == pytest.approx(1.0)  # (not 1/64)
    with pytest.raises(it.AssumptionError, match="a factor computed from a tensor's shape"):
        it.plan(m, "auto", strict=True)


@pytest.mark.parametrize("policy", ["zero-init-residual", "fixup"])
def test_policies_that_change_weights_after_the_walk_are_not_checked_against_it(policy):
    """zero-init-residual and fixup zero layers after the walk: its prediction is the base
    policy's, and holding the plan against it called a zeroed output "not finite, or zero"."""

    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(16, 32)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32)) for _ in range(4)
            )
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            x = self.inp(x)
            for b in self.blocks:
                x = x + b(x)
            return self.head(x)

    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        p = it.plan(Res(), policy, example_input=x)
    assert not _said(ws) and not any("walk puts" in str(w.message) for w in ws)
    assert not any(CHECKED in n for n in p.notes)


def test_the_first_draw_reuses_the_measured_copy_and_equals_a_fresh_draw(monkeypatch):
    """The check's first draw is made on the copy the pools were measured on (the last draft
    drawn at seed 0), redrawing only what the final plan changed: its weights equal the whole
    plan drawn at seed 0 on a fresh copy, and no other copy is made."""
    import copy

    from initwise.torch import verify

    model = nn.Sequential(  # zero-padded convs on a small map: the final plan rescales them
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).train()
    x = torch.randn(16, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    seen = {}
    real = verify._redraw

    def spy(plan, twin, draft):
        out = real(plan, twin, draft)
        seen.update(twin=twin, plan=plan, first=out[1], draft=draft)
        return out

    monkeypatch.setattr(verify, "_redraw", spy)
    deep = []
    real_copy = copy.deepcopy
    from initwise.torch import copying  # (every copy initwise makes goes through it)

    monkeypatch.setattr(copying.copy, "deepcopy", lambda m, *a: deep.append(m) or real_copy(m, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(model, "auto", example_input=x)
    assert seen and sum(m is model for m in deep) == 1  # (the measuring copy; none here)
    redrawn = [e.name for e in seen["first"] if e.scheme is not None]
    kept = [e.name for e in seen["first"] if e.scheme is None]
    assert any(n.endswith("weight") and n.startswith(("0.", "3.", "5.")) for n in redrawn)
    assert kept  # (biases, the norm's affine: the draft's values stand)
    fresh = copy.deepcopy(model)
    p.apply(fresh, seed=0)
    got = dict(seen["twin"].named_parameters())
    for n, t in fresh.named_parameters():
        assert torch.equal(got[n], t), n


class _Biaffine(nn.Module):
    """Dozat & Manning's biaffine arc scorer: ``(h_dep·U) @ h_headᵀ + h_head·u`` — a product
    of two signals that contracts a width of 64 at the output."""

    def __init__(self, d: int = 32, a: int = 64) -> None:
        super().__init__()
        self.dep = nn.Linear(d, a)
        self.head = nn.Linear(d, a)
        self.U = nn.Parameter(torch.zeros(a, a))
        self.u = nn.Parameter(torch.zeros(a))

    def forward(self, x):
        hd, hh = F.elu(self.dep(x)), F.elu(self.head(x))
        return hd @ self.U @ hh.transpose(1, 2) + (hh @ self.u).unsqueeze(1)


def test_an_output_past_a_product_of_two_signals_is_said():
    """The walk has no rule for a product of two signals (its scale is in the width it
    contracts), so the output had no prediction — and nothing was said at all: the biaffine
    scorer gave output rms ~9 in silence, with and without an example input. Without one it
    is an assumption now (strict refuses it); with one the output is measured on the drawn
    plan against the input's scale, and said where it is more than 16× off. Since the products
    with its raw ``U`` are told apart on the drafted copy (they were not: nothing was measured),
    the example input measures the product itself; the term added to it, ``h_head·u`` (a
    vector the walk does not follow), leaves the sum without a prediction (before 2026-12-04
    the sum took the product's 29.8 alone), so the output is measured on the drawn plan and
    held against the input's scale: ×27, said (the scorer's actual E[y²]: 28–31)."""
    torch.manual_seed(0)
    m = _Biaffine()
    said = r"the model's output: its moments are unknown past the product of two signals 'matmul'"
    with pytest.warns(it.AssumptionWarning, match=said):
        it.plan(m, "auto")
    with pytest.raises(it.AssumptionError, match="product of two signals"):
        it.plan(m, "auto", strict=True)
    x = torch.randn(8, 20, 32, generator=torch.Generator().manual_seed(1))
    measured = (
        r"the model's output has E\[y²\] 2\d\.\d .* the walk has no prediction past the product "
        r"of a signal and a parameter .* no layer after it is solved"
    )
    with pytest.warns(SignalWarning, match=measured):
        p = it.plan(m, "auto", example_input=x)
    assert any("cannot hold: checked on the example input" in n for n in p.notes)
    # a product that lands near unit scale is not said

    class Small(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Linear(32, 4), nn.Tanh())
            self.b = nn.Sequential(nn.Linear(32, 4), nn.Tanh())

        def forward(self, x):
            return self.a(x) @ self.b(x).transpose(1, 2) / 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", SignalWarning)
        it.plan(Small(), "auto", example_input=x)


class _Standardized(nn.Module):
    """Raw features at scale 10 around 5, standardized in forward by stored statistics, or by
    a first BatchNorm."""

    def __init__(self, batchnorm: bool) -> None:
        super().__init__()
        self.register_buffer("mu", torch.full((16,), 5.0))
        self.register_buffer("sd", torch.full((16,), 10.0))
        self.bn = nn.BatchNorm1d(16) if batchnorm else None
        self.l = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 4))

    def forward(self, x):
        return self.l(self.bn(x) if self.bn is not None else (x - self.mu) / self.sd)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_a_model_that_standardizes_its_raw_input_is_not_said_to_be_off(batchnorm):
    """The output is solved for unit scale; the example input is raw data (E[x²] ≈ 125). Held
    against the input's scale only, a unit output was "×0.008 … what follows the last weight
    layers scales it" — said of a model whose output is what the plan solved for."""
    x = 5 + 10 * torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SignalWarning)
        it.plan(_Standardized(batchnorm), "auto", example_input=x)
