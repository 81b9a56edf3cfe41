"""``torch.export``'ed modules are planned, initialized, diagnosed and LSUV'd as the layers they
were exported from (:mod:`initwise.torch.exported`)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initwise.torch as it
from initwise.diagnostics import diagnose
from initwise.plan import AssumptionWarning
from initwise.torch.exported import eager_view, is_exported

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # (torch.export's own)


def _export(model: nn.Module, *args: torch.Tensor) -> nn.Module:
    return torch.export.export(copy.deepcopy(model), args).module()


def _entries(p):
    return [(e.name, repr(e.scheme)) for e in p.entries]


def _same(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = list(a.named_parameters()), list(b.named_parameters())
    return [n for n, _ in pa] == [n for n, _ in pb] and all(
        torch.equal(x, y) for (_, x), (_, y) in zip(pa, pb, strict=True)
    )


class _GeluMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


class _Block(nn.Module):
    """Pre-norm attention with Linear projections and SDPA, then a SiLU MLP; both residual."""

    def __init__(self, d: int = 32, h: int = 4) -> None:
        super().__init__()
        self.h = h
        self.emb = nn.Embedding(100, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.RMSNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head = nn.Linear(d, 100, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        b, t, d = x.shape
        y = self.ln1(x)
        q, k, v = (f(y).view(b, t, self.h, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        x = x + self.down(F.silu(self.up(self.ln2(x))))
        return self.head(x)


def _convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, groups=4),
        nn.GroupNorm(4, 16),
        nn.ConvTranspose2d(16, 8, 2, stride=2),
        nn.Tanh(),
        nn.Flatten(),
        nn.LazyLinear(10),
    )


def test_exported_mlp_is_planned_and_drawn_as_the_eager_model():
    """An exported GELU MLP was planned with every weight "left as is" (output std 0.08 where
    the eager model gets ~1); now the same plan and the same bits as the eager model."""
    torch.manual_seed(0)
    eager = _GeluMLP()
    x = torch.randn(256, 16)
    gm = _export(eager, x)
    assert is_exported(gm) and not is_exported(torch.fx.symbolic_trace(_GeluMLP()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)  # (nothing assumed, as for the eager)
        p = it.plan(gm)
    assert _entries(p) == _entries(it.plan(eager))
    assert any("torch.export'ed module" in n for n in p.notes)
    code = gm.code
    it.init_model(eager, seed=0)
    it.init_model(gm, seed=0)
    assert _same(eager, gm)
    assert torch.equal(gm(x), eager(x))
    assert 0.5 < float(gm(x).detach().std()) < 2
    assert gm.code == code  # (its graph is never edited)


def test_exported_transformer_block_matches_the_eager_plan():
    torch.manual_seed(0)
    eager = _Block()
    ids = torch.randint(0, 100, (4, 12))
    gm = _export(eager, ids)
    assert _entries(it.plan(gm)) == _entries(it.plan(eager))
    it.init_model(eager, seed=3)
    it.init_model(gm, seed=3)
    assert _same(eager, gm)
    assert torch.equal(gm(ids), eager(ids))


def test_exported_convnet_view_computes_the_same_and_norm_statistics_are_reset():
    """Convolutions (strided, grouped, transposed), BatchNorm and GroupNorm: the view computes
    what the exported module computes, bit for bit; ``init_model`` resets the BatchNorm's
    statistics (they are the exported module's buffers) and draws what the eager model gets."""
    torch.manual_seed(0)
    eager = _convnet()
    x = torch.randn(8, 3, 16, 16)
    eager(x)  # (the lazy layer)
    gm = _export(eager, x)
    view = eager_view(gm)
    assert [n for n, _ in view.named_parameters()] == [n for n, _ in gm.named_parameters()]
    assert [n for n, _ in view.named_buffers()] == [n for n, _ in gm.named_buffers()]
    assert all(a is b for a, b in zip(view.parameters(), gm.parameters(), strict=True))
    twin = copy.deepcopy(gm)
    assert torch.equal(view(x), twin(x))  # (train mode, as exported: both count the batch)
    assert int(gm.get_buffer("1.num_batches_tracked")) == int(
        twin.get_buffer("1.num_batches_tracked")
    )
    assert _entries(it.plan(gm)) == _entries(it.plan(eager))
    it.init_model(eager, seed=1)
    it.init_model(gm, seed=1)
    assert _same(eager, gm)
    assert torch.equal(gm.get_buffer("1.running_var"), torch.ones(16))
    assert int(gm.get_buffer("1.num_batches_tracked")) == 0


def test_exported_module_is_diagnosed_and_lsuv_runs():
    """An exported module's ``train()``/``eval()`` raise; diagnose and LSUV set modes on the
    view, which shares its tensors."""
    torch.manual_seed(0)
    x = torch.randn(128, 16)
    gm = _export(_GeluMLP(), x)
    it.init_model(gm, seed=0)
    r = diagnose(gm, x)
    assert r.verdict == "healthy" and len(r.layers) == 3
    before = [p.detach().clone() for p in gm.parameters()]
    out = it.lsuv(gm, x, seed=0)
    assert len(out.layers) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, gm.parameters(), strict=True))


def test_a_plan_that_changes_forward_is_refused_on_an_exported_module():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
    gm = _export(mlp, torch.randn(16, 8))
    before = [p.detach().clone() for p in gm.parameters()]
    with pytest.raises(ValueError, match="torch.export'ed module's forward is fixed"):
        it.init_model(gm, "tat", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, gm.parameters(), strict=True))


def test_exported_program_itself_is_refused_with_the_way_to_its_module():
    ep = torch.export.export(nn.Linear(4, 4), (torch.randn(2, 4),))
    with pytest.raises(TypeError, match=r"ExportedProgram; pass program.module\(\)"):
        it.plan(ep)


class _Attn(nn.Module):
    def __init__(self, cross: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.cross = cross

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kv = y if self.cross else x
        return self.attn(x, kv, kv)[0]


def test_multihead_attention_as_export_decomposes_it():
    """Self-attention (query, key and value one tensor): torch.export computes
    nn.MultiheadAttention's packed q/k/v projection as one product, planned at the eager
    plan's std. Cross-attention: it splits the packed weight into three products through
    ``chunk``; that weight is left as it is, with a warning naming it — not guessed;
    ``out_proj`` is a Linear either way."""
    x, y = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    eager = {e.name: e for e in it.plan(_Attn(False)).entries}
    p = it.plan(_export(_Attn(False), x, y))
    for e in p.entries:
        assert e.std == pytest.approx(eager[e.name].std)
    with pytest.warns(AssumptionWarning, match="in_proj_weight"):
        p = it.plan(_export(_Attn(True), x, y))
    kinds = {e.name: e.scheme for e in p.entries}
    assert kinds["attn.in_proj_weight"] is None and kinds["attn.out_proj.weight"] is not None


def test_exported_hf_gpt2_matches_the_eager_plan():
    """An exported GPT-2: HF's Conv1D computed as ``addmm`` on raw parameters, the tanh-GELU
    written out after a reshape, a tied head — the plan equals the eager model's, entry for
    entry (the MLP's c_proj was solved for the written-out formula's tanh alone, std ×1.14)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64, use_cache=False,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    eager = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 500, (2, 16))
    gm = _export(eager, ids)
    pe, pg = it.plan(eager), it.plan(gm)
    assert [e.name for e in pg.entries] == [e.name for e in pe.entries]
    for a, b in zip(pe.entries, pg.entries, strict=True):
        assert (b.std or 0.0) == pytest.approx(a.std or 0.0, rel=1e-6), a.name
        assert (b.chunks, b.chunk_dim) == (a.chunks, a.chunk_dim), a.name  # (c_attn: q/k/v)
    it.init_model(eager, seed=0)
    it.init_model(gm, seed=0)
    drawn = dict(gm.named_parameters())
    assert all(torch.equal(p, drawn[k]) for k, p in eager.named_parameters())
    # diagnose sees the same layers (Conv1D's addmm on raw parameters: called in the view as
    # the torch function, which its function mode sees; ATen calls it did not)
    loss = lambda o: (o[0] if isinstance(o, tuple) else o.logits).pow(2).mean()  # noqa: E731
    de, dg = diagnose(eager, ids, loss), diagnose(gm, ids, loss)
    # (a product on a raw parameter is named by it: `…c_attn.weight` for the module's `…c_attn`;
    # the tied head by the table's first name)
    names = [s.name.removesuffix(".weight") for s in dg.layers]
    assert names[:-1] == [s.name for s in de.layers][:-1] and len(de.layers) == 9
    assert (names[-1], de.layers[-1].name) == ("transformer.wte", "lm_head")
    for a, b in zip(de.layers, dg.layers, strict=True):
        assert b.out_std == pytest.approx(a.out_std, rel=1e-4), a.name


def test_exported_hf_llama_matches_the_eager_plan():
    """Llama's RMSNorm is written out (``x * rsqrt(mean(x²) + eps)``, then ``weight * x``); export
    adds a dtype assert that reads the normalized value, which made it "used twice", and the
    norm weights were "left as is". Now the plan equals the eager model's."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=500, use_cache=False,
    )  # fmt: skip
    torch.manual_seed(0)
    eager = transformers.LlamaForCausalLM(cfg).eval()
    gm = _export(eager, torch.randint(0, 500, (2, 16)))
    pe, pg = it.plan(eager), it.plan(gm)
    assert [(e.name, repr(e.scheme)) for e in pg.entries] == [
        (e.name, repr(e.scheme)) for e in pe.entries
    ]


class _Recurrent(nn.Module):
    def __init__(self, cls: type, **kw) -> None:
        super().__init__()
        self.rnn = cls(8, 16, num_layers=2, batch_first=True, **kw)
        self.fc = nn.Linear(kw.get("proj_size", 16) * (2 if kw.get("bidirectional") else 1), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


@pytest.mark.parametrize(
    "cls, kw",
    [
        (nn.LSTM, {}),
        (nn.GRU, {}),
        (nn.RNN, {"nonlinearity": "relu"}),
        (nn.LSTM, {"bidirectional": True}),
        (nn.LSTM, {"proj_size": 8}),
        (nn.GRU, {"bias": False}),
    ],
)
def test_exported_recurrent_layers_are_their_modules(cls, kw):
    """One ``aten.lstm``/``gru``/``rnn_*`` call on a list of weights, returning a flat tuple:
    read as the module (which returns ``(output, (h, c))``), the same outputs bit for bit, the
    eager plan and bits, and ``diagnose`` sees both layers (before: every weight "left as
    is")."""
    torch.manual_seed(0)
    eager = _Recurrent(cls, **kw)
    x = torch.randn(3, 5, 8)
    gm = _export(eager, x)
    assert torch.equal(eager_view(gm)(x), copy.deepcopy(gm)(x))
    assert _entries(it.plan(gm)) == _entries(it.plan(eager))
    it.init_model(eager, seed=0)
    it.init_model(gm, seed=0)
    assert _same(eager, gm)
    assert len(diagnose(gm, x).layers) == len(diagnose(eager, x).layers) == 2


def test_an_exported_block_inside_a_model_is_read_as_its_layers():
    """An exported backbone under a new head: its norms were "left as is" (the holders are
    plain modules) and its BatchNorm statistics were not reset. Now the plan and bits are the
    eager model's, the statistics are reset, and the model's structure is given back."""
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Linear(16, 32), nn.BatchNorm1d(32), nn.LayerNorm(32), nn.GELU(),
        nn.Linear(32, 32), nn.GELU(),
    )  # fmt: skip
    x = torch.randn(8, 16)
    gm = _export(backbone, x)
    model, eager = nn.Sequential(gm, nn.Linear(32, 4)), nn.Sequential(backbone, nn.Linear(32, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        assert _entries(it.plan(model)) == _entries(it.plan(eager))
    model(x)  # (a batch counted)
    it.init_model(eager, seed=0)
    it.init_model(model, seed=0)
    assert _same(eager, model)
    assert int(gm.get_buffer("1.num_batches_tracked")) == 0 and model[0] is gm
