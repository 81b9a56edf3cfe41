"""Hugging Face transformers models built offline from small configs (optional extra)."""

import math
import re
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import initwise.torch as it  # noqa: E402
from initwise.math.operating import operating_point  # noqa: E402
from initwise.torch.modules import LAYER_SCALES, is_weight_layer  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")


def gpt2(n_layer=4):
    cfg = transformers.GPT2Config(
        n_layer=n_layer,
        n_embd=64,
        n_head=4,
        vocab_size=1000,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg)


def test_gpt2_policy_matches_hf_init_weights():
    hf = gpt2()  # constructed with HF's own _init_weights
    p = it.plan(hf, "gpt2")
    assert "8 residual branches" in p.notes[0]
    checked = 0
    for e in p:
        if e.std and e.std > 0 and e.scheme.type == "normal":
            measured = dict(hf.named_parameters())[e.name].std().item()
            assert measured == pytest.approx(e.std, rel=0.1), e.name
            checked += 1
    assert checked == 2 + 4 * 4  # wte, wpe, and 4 matrices per block
    c_proj = p["transformer.h.0.attn.c_proj.weight"]
    assert c_proj.std == pytest.approx(0.02 / math.sqrt(2 * 4))
    assert "tied with lm_head.weight" in p["transformer.wte.weight"].reason
    ours = gpt2()
    p.apply(ours, seed=0)
    ids = torch.randint(0, 1000, (2, 16))
    assert torch.isfinite(ours(ids).logits).all()


def test_gpt2_auto_policy_true_fans_for_conv1d_and_packed_qkv():
    p = it.plan(gpt2(2))
    c_attn = p["transformer.h.0.attn.c_attn.weight"]  # Conv1D weight (in=64, out=192)
    assert (c_attn.chunks, c_attn.chunk_dim, c_attn.fan_in, c_attn.fan_out) == (3, 1, 64, 64)
    c_fc = p["transformer.h.0.mlp.c_fc.weight"]
    assert (c_fc.fan_in, c_fc.fan_out) == (64, 256)
    # reads ln_2's output (E[x²] = 1), feeds GELU at its classic operating point q* = 1
    assert c_fc.gain == pytest.approx(1.0) and "gelu_tanh at q* 1 (" in c_fc.reason
    # the branch ends add 1/R of the residual stream's second moment each (R = 4 branches)
    proj = p["transformer.h.0.mlp.c_proj.weight"]
    assert "last layer of one of 4 residual branches" in proj.reason


def test_bert_and_llama_plan_apply_forward():
    bert = transformers.BertModel(
        transformers.BertConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=100,
        )
    )
    pb = it.init_model(bert, seed=0)
    dense = pb["encoder.layer.0.intermediate.dense.weight"]
    assert dense.gain == pytest.approx(1.0) and "gelu at q* 1 (" in dense.reason
    assert "tanh at q*" in pb["pooler.dense.weight"].reason  # tanh pooler
    assert "4 residual branches" in pb.notes[0]
    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=100,
        )
    )
    pl = it.plan(llama, "gpt2")
    assert pl["model.layers.0.mlp.down_proj.weight"].std == pytest.approx(0.02 / 2)
    assert pl["model.layers.0.self_attn.o_proj.weight"].std == pytest.approx(0.02 / 2)
    assert pl["model.norm.weight"].scheme.label == "ones"
    pa = it.plan(llama)
    gate = pa["model.layers.0.mlp.gate_proj.weight"]  # reads RMSNorm's output, feeds SiLU
    op = operating_point("silu", depth=1)
    assert gate.gain == pytest.approx(math.sqrt(op.q), rel=1e-6) and "silu at q*" in gate.reason
    up = pa["model.layers.0.mlp.up_proj.weight"]  # multiplies the gate: unit output
    assert up.gain == pytest.approx(1.0) and "unit output" in up.reason
    # silu(gate)·up has E[x²] = E[silu(z)²]·1: the branch end is solved from that
    down = pa["model.layers.0.mlp.down_proj.weight"]
    assert f"input E[x²] {op.second_moment:.3g}" in down.reason
    assert "last layer of one of 4 residual branches" in down.reason
    pa.apply(llama, seed=0)
    out = llama(torch.randint(0, 100, (1, 8)))
    assert torch.isfinite(out.logits).all()


def test_bert_mlm_tie_is_planned_by_the_module_with_a_rule_and_materializes_from_meta():
    cfg = transformers.BertConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
    )
    p = it.plan(transformers.BertForMaskedLM(cfg))
    assert not [e.name for e in p if e.scheme is None]
    assert "planned by that module" in p["cls.predictions.bias"].reason
    with torch.device("meta"):
        meta = transformers.BertForMaskedLM(cfg)
    it.materialize(meta, seed=0)  # position_ids / token_type_ids are filled by convention
    ref = transformers.BertForMaskedLM(cfg)
    for name, b in ref.named_buffers():
        assert torch.equal(b, dict(meta.named_buffers())[name]), name
    assert torch.isfinite(meta(torch.randint(0, 100, (2, 8))).logits).all()


def test_vit_gets_an_example_input_from_its_config_and_rules_for_its_tokens():
    cfg = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.AssumptionWarning)
        p = it.plan(transformers.ViTForImageClassification(cfg))  # nothing assumed
    assert not [e.name for e in p if e.scheme is None]
    assert any("gelu" in e.reason for e in p)  # traced by running pixel_values
    tok = p["vit.embeddings.cls_token"]
    assert tok.scheme.label == "trunc_normal" and "initializer_range" in tok.reason
    with torch.device("meta"):
        meta = transformers.ViTForImageClassification(cfg)
    it.materialize(meta, seed=0)
    assert torch.isfinite(meta(torch.randn(2, 3, 16, 16)).logits).all()


def test_t5_query_carries_the_logit_scale_it_does_not_apply():
    cfg = transformers.T5Config(
        d_model=64,
        d_kv=16,
        num_heads=4,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        vocab_size=100,
    )
    m = transformers.T5ForConditionalGeneration(cfg)
    p = it.init_model(m, seed=0)
    q = p["encoder.block.0.layer.0.SelfAttention.q.weight"]
    k = p["encoder.block.0.layer.0.SelfAttention.k.weight"]
    assert q.std == pytest.approx(k.std / 4) and "does not divide its logits" in q.reason
    rel = p["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    assert rel.std == pytest.approx(64**-0.5)  # HF: factor · d_model^-0.5
    att = m.encoder.block[0].layer[0].SelfAttention
    x = torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(0))
    qs, ks = att.q(x).view(8, 16, 4, 16), att.k(x).view(8, 16, 4, 16)
    logits = torch.einsum("bihd,bjhd->bhij", qs, ks)
    assert 0.7 < float(logits.std()) < 1.4  # was 5.75 (issue 17)


def test_wav2vec2_weight_norm_positional_conv_is_planned_and_written_through():
    # HF's Wav2Vec2 puts torch's parametrized weight_norm on its positional convolution
    cfg = transformers.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(0)
    m = transformers.Wav2Vec2Model(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(m, example_input=torch.randn(2, 800))
    name = "encoder.pos_conv_embed.conv.weight"
    e = p[name]
    assert e.scheme is not None and "weight_norm: written through it" in e.reason
    assert not any(".parametrizations." in x.name for x in p)
    p.apply(m, seed=0)
    conv = m.encoder.pos_conv_embed.conv
    g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
    with torch.no_grad():
        torch.testing.assert_close(conv.weight, v, rtol=1e-5, atol=1e-6)  # computes with the draw
        assert float(v.std()) == pytest.approx(e.scheme.std(e.shape, e.fans), rel=0.1)
    assert g.shape == (1, 1, v.shape[-1])  # HF's weight_norm over dim 2


def test_encodec_every_weight_norm_conv_is_planned_and_written():
    cfg = transformers.EncodecConfig(
        num_filters=4,
        hidden_size=16,
        codebook_size=32,
        codebook_dim=16,
        num_residual_layers=1,
        upsampling_ratios=[2, 2],
        num_lstm_layers=1,
        # (at this tiny hop the default bandwidths give zero quantizers and forward raises:
        # the example input is run now, so it must fit — 30 kbps gives one)
        target_bandwidths=[30.0],
    )
    torch.manual_seed(0)
    m = transformers.EncodecModel(cfg)
    from initwise.torch import parametrized as PZ

    sites = PZ.sites(m)
    assert len(sites) > 10  # every conv of Encodec is weight_norm'd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = it.plan(m, example_input=torch.randn(1, 1, 400))
    names = {e.name for e in p}
    assert set(sites) <= names and not [e.name for e in p if e.scheme is None]
    p.apply(m, seed=0)
    for site in sites.values():
        v = site.module.parametrizations.weight.original1
        torch.testing.assert_close(site.effective(), v, rtol=1e-5, atol=1e-6)


_FAMILY = {
    "qwen2moe": "qwen2-moe",
    "gptoss": "gpt-oss",
    "deepseekv3": "deepseek-v3",
    "gptj": "gpt-j",
}


def _family(name):
    """The 4-layer, width-64 model `initwise bench families` measures."""
    from initwise.bench.families import builders

    torch.manual_seed(0)
    return builders(transformers)[_FAMILY.get(name, name)]()


_moe = _family


@pytest.mark.parametrize("name", ["mixtral", "qwen2moe", "gptoss", "deepseekv3"])
def test_moe_experts_and_routers_are_planned_and_hold_the_stream(name):
    """Mixture-of-experts blocks (experts as (E, ·, ·) stacks run through grouped GEMMs, a router
    weight in its own module) were "left as is", and the grouped GEMM let the activation search
    walk from the attention's o_proj through the norm into the experts' SiLU: o_proj was solved
    "after silu". Now every expert matrix has its per-expert fans and `auto` solves the block:
    the residual stream grows by a bounded factor and the logits are unit."""
    m = _moe(name)
    p = it.plan(m, "auto", strict=True)  # nothing assumed, nothing left as is
    lay = "model.layers.1"
    o = p[f"{lay}.self_attn.o_proj.weight"]
    assert "silu" not in o.reason and "residual branches" in o.reason
    experts = {e.name: e for e in p if ".experts." in e.name and e.name.startswith(lay)}
    up = next(e for n, e in experts.items() if n.endswith("gate_up_proj"))
    down = next(e for n, e in experts.items() if n.endswith("down_proj"))
    stack = dict(m.named_parameters())[up.name]
    wide, narrow = (2, 1) if name == "gptoss" else (1, 2)  # gpt-oss stores (E, in, out)
    assert up.fan_in == stack.shape[narrow] == 64 and up.chunks == 2
    assert up.fan_out == stack.shape[wide] / 2
    assert "per-expert fans" in up.reason
    if name == "gptoss":  # its gate is code (clamped halves, (u + 1)·g·σ(1.702 g)): measured
        assert "_apply_gate gives E[h²] 0.84" in up.reason
        assert "input E[x²] 0.842 →" in down.reason  # the down side solved for what arrives
        # attention sinks: gpt-oss's own rule; its eager attention (softmax over the logits and
        # the sink, the sink column dropped, then @ v) reaches o_proj
        assert p[f"{lay}.self_attn.sinks"].std == pytest.approx(0.02)
    else:
        assert "silu at q*" in up.reason
    assert "residual branches" in down.reason and "per expert" in down.reason
    router = next(
        e for e in p if e.name.startswith(lay) and e.name.endswith(("gate.weight", "router.weight"))
    )
    assert router.std == pytest.approx(64**-0.5)  # unit router logits
    p.apply(m, seed=0)
    x = torch.randint(0, 100, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m(x, output_hidden_states=True)
    streams = [float(h.pow(2).mean()) for h in out.hidden_states[:-1]]  # (the last is normed)
    assert max(streams) / streams[0] < math.e  # (1 + 1/R)^R < e
    assert 0.5 < float(out.logits.std()) < 2


def test_apertus_s_learned_activation_is_probed():
    """Apertus's xIELU holds its constants β and ε as one-number buffers, which kept it from
    being probed as an activation: every MLP's down_proj said "input moments unknown". Now it
    is the MLP's activation, and down_proj is solved for what it gives."""
    m = _family("apertus")
    p = it.plan(m, "auto", strict=True)  # nothing assumed
    assert (
        "XIELUActivation (learned parameters as built)"
        in p["model.layers.0.mlp.up_proj.weight"].reason
    )
    assert "input E[x²] 1.74" in p["model.layers.0.mlp.down_proj.weight"].reason
    p.apply(m, seed=0)
    x = torch.randint(0, 100, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m(x, output_hidden_states=True)
    streams = [float(h.pow(2).mean()) for h in out.hidden_states[:-1]]
    assert max(streams) / streams[0] < math.e
    assert 0.5 < float(out.logits.std()) < 2


def test_moe_zero_init_residual_zeroes_every_summed_output():
    """DeepSeek's MoE block sums its routed experts and a shared expert: both end the residual
    branch (the routed experts' down stacks and the shared expert's down_proj are its exits)."""
    m = _moe("deepseekv3")
    p = it.plan(m, "zero-init-residual")
    lay = "model.layers.1.mlp"
    assert p[f"{lay}.experts.down_proj"].std == 0
    assert p[f"{lay}.shared_experts.down_proj.weight"].std == 0
    assert p[f"{lay}.shared_experts.up_proj.weight"].std > 0
    p.apply(m, seed=0)
    block = m.model.layers[1].mlp
    h = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(block(h).abs().max()) == 0.0


def test_moe_expert_stack_layout_needs_a_flag_or_the_width():
    """A user's experts module: the layout comes from `is_transposed`, else from the width;
    a square stack has the same fans either way; with neither, it is left as is with a reason
    that says so (never a guess)."""
    from torch import nn

    class Experts(nn.Module):
        def __init__(self, hidden=None, n=4, d=16, inner=32):
            super().__init__()
            self.num_experts = n
            if hidden is not None:
                self.hidden_dim = hidden
            self.up_proj = nn.Parameter(torch.empty(n, d, inner))  # (E, in, out)
            self.down_proj = nn.Parameter(torch.empty(n, inner, d))
            self.act_fn = nn.GELU()

        def forward(self, x):
            h = self.act_fn(torch.einsum("td,edi->eti", x, self.up_proj))
            return torch.einsum("eti,eid->td", h, self.down_proj) / self.num_experts

    p = it.plan(nn.Sequential(nn.Linear(16, 16), Experts(hidden=16)), "auto")
    up, down = p["1.up_proj"], p["1.down_proj"]
    assert (up.fan_in, up.fan_out, up.chunks) == (16, 32, 1) and "gelu" in up.reason
    assert (down.fan_in, down.fan_out) == (32, 16)
    blind = nn.Sequential(nn.Linear(16, 16), Experts())
    with pytest.warns(it.AssumptionWarning, match="left as is"):
        q = it.plan(blind, "auto")
    assert q["1.up_proj"].scheme is None and "is_transposed" in q["1.up_proj"].reason
    with pytest.warns(it.AssumptionWarning, match="no rule for 1.up_proj, 1.down_proj"):
        orth = it.plan(nn.Sequential(nn.Linear(16, 16), Experts(hidden=16)), "orthogonal")
    assert orth["1.up_proj"].scheme is None and "mix the 4 experts" in orth["1.up_proj"].reason


class _ParallelExperts(torch.nn.Module):
    """One stack per module, as JetMoE's and ScatterMoE's ``ParallelExperts``: the sizes stated,
    the layout (E, output_size, input_size) or, ``transposed``, (E, input_size, output_size)."""

    def __init__(self, n, input_size, output_size, transposed=False):
        super().__init__()
        self.num_experts, self.input_size, self.output_size = n, input_size, output_size
        self.transposed = transposed
        shape = (n, input_size, output_size) if transposed else (n, output_size, input_size)
        self.weight = torch.nn.Parameter(torch.randn(shape))

    def forward(self, x):  # (the tokens routed to expert e: here the e-th of E equal parts)
        w = self.weight.transpose(1, 2) if self.transposed else self.weight
        parts = x.chunk(self.num_experts)
        return torch.cat([torch.nn.functional.linear(h, w[e]) for e, h in enumerate(parts)])


@pytest.mark.parametrize("transposed", [False, True])
def test_a_module_holding_one_expert_stack_is_solved_as_a_layer(transposed):
    """A module with one (E, a, b) stack and its stated input/output sizes is one linear map per
    expert: its layout is read from the sizes, and what follows it (the activation, the branch it
    ends) is the graph's, as for a Linear. JetMoE's experts had no rule (neither an
    `is_transposed` flag nor a `hidden_dim`): drawn at the family's N(0, 0.01²), not solved."""
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(
        _ParallelExperts(4, 16, 48, transposed),
        nn.Tanh(),
        _ParallelExperts(4, 48, 16, not transposed),
    )
    p = it.plan(m, "auto")
    first, last = p["0.weight"], p["2.weight"]
    assert (first.fan_in, first.fan_out) == (16, 48) and "tanh" in first.reason
    assert (last.fan_in, last.fan_out) == (48, 16) and "4 experts: per-expert fans" in last.reason
    assert "_ParallelExperts '0'" in first.reason
    p.apply(m, seed=0)
    x = torch.randn(4096, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, out = m[0](x), m(x)
    q = float(first.reason.split("tanh at q* ")[1].split()[0])  # (tanh's operating point)
    assert float(y.pow(2).mean()) == pytest.approx(q, rel=0.15)
    assert float(out.pow(2).mean()) == pytest.approx(1.0, rel=0.15)  # (a linear consumer)
    # without the stated sizes the layout stays unread: left as is, said
    blind = nn.Sequential(_ParallelExperts(4, 16, 48, transposed), nn.Tanh())
    del blind[0].input_size
    with pytest.warns(it.AssumptionWarning, match="left as is"):
        assert it.plan(blind, "auto")["0.weight"].scheme is None


def _jetmoe(layers=4, **kw):
    """A small JetMoE (width 64, 4 experts, top 2: mixture-of-attention and MoE blocks)."""
    cfg = transformers.JetMoeConfig(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=layers,
        num_key_value_heads=2,
        kv_channels=16,
        intermediate_size=128,
        num_local_experts=4,
        num_experts_per_tok=2,
        **kw,
    )
    return transformers.JetMoeForCausalLM(cfg)


def test_jetmoe_experts_are_solved_not_borrowed():
    if not hasattr(transformers, "JetMoeConfig"):
        pytest.skip("this transformers lacks JetMoE")
    torch.manual_seed(0)
    m = _jetmoe()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        p = it.plan(m, "auto")
    said = " ".join(str(w.message) for w in said)
    assert "input_linear" not in said and "output_linear" not in said  # (no rule borrowed)
    up = p["model.layers.0.mlp.input_linear.weight"]
    down = p["model.layers.0.mlp.output_linear.weight"]
    assert (up.fan_in, up.fan_out) == (64, 256) and "silu" in up.reason
    assert (down.fan_in, down.fan_out) == (128, 64) and "residual" in down.reason
    p.apply(m, seed=0)
    stream, logits = _stream(m)
    # 8 branches solved for their shares, routing (Σ w² < 1) only lowering them: measured
    # 1.23× (the family's N(0, 0.01²) gave 1.03×: every block near the identity)
    assert 1.1 < max(stream) / stream[0] < 2.0
    assert 0.5 < logits < 2.0


_small = _family


def _stream(m):
    x = torch.randint(3, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m(x, output_hidden_states=True)
    return [float(h.pow(2).mean()) for h in out.hidden_states[:-1]], float(out.logits.std())


@pytest.mark.parametrize("name", ["gemma", "gemma2"])
def test_gemma_norms_scale_by_one_plus_weight(name):
    """Gemma's RMSNorm multiplies by (1 + weight): "scale: ones" made every norm scale by 2 —
    Gemma's logits came out at std 2.35 and Gemma 2's residual stream (its branches end in such a
    norm) grew 25× over 4 layers, without a warning. The offset is measured on a copy of the
    norm; its identity scale is weight zeros, and zero-init-residual's zero scale is −1."""
    m = _small(name)
    p = it.plan(m, "auto")
    e = p["model.layers.0.input_layernorm.weight"]
    assert e.std == 0 and e.scheme.label == "zeros" and "(1 + weight)" in e.reason
    p.apply(m, seed=0)
    assert float(m.model.norm.weight.detach().abs().max()) == 0.0
    streams, logits = _stream(m)
    assert 0.5 < logits < 2
    if name == "gemma":
        assert max(streams) / streams[0] < math.e
        # its embedding multiplies by embed_scale = √64: the stream starts at E[x²] ≈ 1, not at
        # std² = 1/64, and each branch end adds s_skip/8 of that (before: 1/512 of it, every
        # block near the identity: growth ×1.01)
        o = p["model.layers.0.self_attn.o_proj.weight"].reason
        assert "s_skip/8 = 0.1" in o, o
        assert max(streams) / streams[0] > 1.3
    zero = it.plan(m, "zero-init-residual")
    if name == "gemma2":  # its MLP branch ends in post_feedforward_layernorm
        z = zero["model.layers.1.post_feedforward_layernorm.weight"]
        assert "weight −1" in z.reason
        zero.apply(m, seed=0)
        norm = m.model.layers[1].post_feedforward_layernorm
        with torch.no_grad():
            assert float(norm(torch.randn(2, 5, 64)).abs().max()) == 0.0


def test_norm_offset_is_measured_not_named():
    """The offset comes from what the norm computes, not from its class name."""
    from torch import nn

    class OffsetNorm(nn.Module):  # (1 + w)·x̂, like Gemma, under another name
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)

    class PlainNorm(OffsetNorm):  # w·x̂
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

    m = nn.Sequential(nn.Linear(8, 8), OffsetNorm(8), nn.Linear(8, 8), PlainNorm(8))
    p = it.plan(m, "auto", strict=True)
    assert p["1.weight"].scheme.label == "zeros" and p["3.weight"].scheme.label == "ones"


def test_a_subclass_of_torch_s_layernorm_that_adds_one_is_measured():
    """Nemotron's LayerNorm1P subclasses nn.LayerNorm and passes ``weight + 1``: taken for
    torch's own norm, its weight was set to ones (every norm scaled by 2: the stream grew 11.3×
    over 4 layers, logits std 2). A subclass is measured; torch's own norms are not."""
    from torch import nn

    class LayerNorm1P(nn.LayerNorm):
        def forward(self, x):
            w = self.weight + 1
            return nn.functional.layer_norm(x, self.normalized_shape, w, self.bias, self.eps)

    class Renamed(nn.LayerNorm):  # (torch's computation under another name: ones)
        pass

    m = nn.Sequential(nn.Linear(8, 8), LayerNorm1P(8), nn.Linear(8, 8), Renamed(8))
    p = it.plan(m, "auto", strict=True)
    assert p["1.weight"].scheme.label == "zeros" and p["3.weight"].scheme.label == "ones"
    n = _family("nemotron")
    p = it.plan(n, "auto", strict=True)
    assert p["model.norm.weight"].scheme.label == "zeros"
    p.apply(n, seed=0)
    streams, logits = _stream(n)
    assert max(streams) / streams[0] < math.e and 0.5 < logits < 2


def test_a_norm_whose_offset_cannot_be_measured_is_an_assumption():
    """A norm that needs more than a ``(4, d)`` input (adaptive LayerNorm with a conditioning
    input) or scales by neither ``w`` nor ``1 + w`` got ``ones`` without a word: if it computes
    ``(1 + w)·x̂``, ones is a scale of 2 (Gemma's silent error). Now the plan says so."""
    from torch import nn

    class CondNorm(nn.Module):  # called as norm(x, c): the probe's norm(x) fails
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x, c=None):
            if c is None:
                raise TypeError("CondNorm needs the conditioning input")
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
            return x * (1 + self.weight) + c

    class HalfNorm(nn.Module):  # (0.5 + w)·x̂: neither rule
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (0.5 + self.weight)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.n, self.b, self.h = (
                nn.Linear(8, 8),
                CondNorm(8),
                nn.Linear(8, 8),
                HalfNorm(8),
            )

        def forward(self, x):
            return self.h(self.b(self.n(self.a(x), x)))

    x = torch.randn(4, 8)
    with pytest.raises(it.AssumptionError, match="'n', 'h': the norm's scale assumed"):
        it.plan(Net(), "auto", example_input=x, strict=True)
    with pytest.warns(it.AssumptionWarning, match="norm's scale assumed weight·x̂"):
        p = it.plan(Net(), "auto", example_input=x)
    assert p["n.weight"].scheme.label == "ones" and p["h.weight"].scheme.label == "ones"


@pytest.mark.parametrize("name", ["gptj", "bloom", "cohere"])
def test_attention_masks_parallel_blocks_and_eager_attention(name):
    """GPT-J: `scores + mask` looked like a residual `x + f(x)` from layer 1 on (the scores
    descend from the mask through layer 0), so q/k were solved as branch ends; its parallel
    block's `attn + mlp` counted as another residual (11 branches for 4 layers, now 4). Cohere
    writes `x + attn + mlp`: the MLP was taken for the skip and the stream grew 196×. GPT-J and
    Bloom's eager attention (softmax, then a Dropout *module*, then @ v) left o_proj's input
    "unknown". Now the planner assumes nothing and the stream grows by less than e."""
    m = _small(name)
    p = it.plan(m, "auto", strict=True)
    n_res = int(p.notes[0].split("; ")[1].split()[0])
    assert n_res == {"gptj": 4, "bloom": 8, "cohere": 8}[name]  # a parallel block is one
    q = next(e for e in p if e.name.endswith(("q_proj.weight", "query_key_value.weight")))
    assert "residual branches" not in q.reason
    p.apply(m, seed=0)
    streams, logits = _stream(m)
    assert max(streams) / streams[0] < math.e
    assert 0.5 < logits < 2  # Cohere's head output is scaled by logit_scale: was 0.063
    if name == "cohere":
        assert "then scaled by 0.0625" in p["model.embed_tokens.weight"].reason


def test_mamba_keeps_its_state_space_parameters():
    """Mamba's Δ bias (softplus⁻¹ of Δ in [0.001, 0.1]) got the Linear bias rule, zeros — Δ ≈ 0.7,
    a state that forgets at once — without a warning; A_log and D were "no rule". Now the mixer's
    structured parameters are kept as built, said in the reason, and are no assumption. Mamba 2's
    gated RMSNorm is a norm."""
    torch.manual_seed(0)
    m = transformers.MambaForCausalLM(
        transformers.MambaConfig(
            vocab_size=100, hidden_size=64, state_size=8, num_hidden_layers=2, expand=2
        )
    )
    mixer = m.backbone.layers[0].mixer
    before = {n: t.detach().clone() for n, t in mixer.named_parameters()}
    p = it.plan(m, "auto", strict=True)
    for n in ("A_log", "D", "dt_proj.weight", "dt_proj.bias"):
        e = p[f"backbone.layers.0.mixer.{n}"]
        assert e.scheme is None and e.reason.startswith("kept: ") and "Gu & Dao" in e.reason
    p.apply(m, seed=0)
    after = dict(mixer.named_parameters())
    for n in ("A_log", "D", "dt_proj.weight", "dt_proj.bias"):
        assert torch.equal(after[n], before[n])
    assert not torch.equal(after["in_proj.weight"], before["in_proj.weight"])
    dt = torch.nn.functional.softplus(after["dt_proj.bias"].detach())
    assert float(dt.max()) <= 0.1 + 1e-6 and float(dt.min()) >= 1e-4
    m2 = transformers.Mamba2ForCausalLM(
        transformers.Mamba2Config(
            vocab_size=128,
            hidden_size=64,
            num_hidden_layers=2,
            num_heads=8,
            head_dim=16,
            state_size=8,
            expand=2,
            n_groups=1,
        )
    )
    p2 = it.plan(m2, "auto", strict=True)
    assert p2["backbone.layers.0.mixer.dt_bias"].reason.startswith("kept: ")
    assert "scale: ones" in p2["backbone.layers.0.mixer.norm.weight"].reason


_VISION_TOWER = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)
"""A small ViT tower's config (CLIP, SigLIP, LLaVA, PaliGemma, BLIP-2 tests)."""


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_text_image_models_plan_with_nothing_assumed(family):
    """CLIPModel could not run its example input (its forward needs input_ids and pixel_values:
    "activations were not detected"), its class_embedding and logit_scale had no rule, and its
    projections were solved for a "probed pow" — the x² of the L2 normalization after them.
    SigLIP's pooling probe had no rule either. The one thing SigLIP's plan assumes without an
    example input is its pooling head's attention average (said as SDPA's is; its pooled output
    is returned unnormalized), which strict refuses."""
    text = dict(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
    )
    vision = dict(_VISION_TOWER)
    torch.manual_seed(0)
    if family == "clip":
        cfg = transformers.CLIPConfig(
            text_config=dict(text, bos_token_id=0, eos_token_id=2),
            vision_config=vision,
            projection_dim=16,
        )
        m = transformers.CLIPModel(cfg)
    else:
        m = transformers.SiglipModel(
            transformers.SiglipConfig(text_config=text, vision_config=vision)
        )
    if family == "siglip":
        with pytest.raises(it.AssumptionError) as said:
            it.plan(m, "auto", strict=True)
        assert str(said.value).count(": its input passed") == 1
        assert "vision_model.head.attention.out_proj: its input passed attention" in str(said.value)
        with pytest.warns(it.AssumptionWarning):
            p = it.plan(m, "auto")
    else:
        p = it.plan(m, "auto", strict=True)
    assert p.notes[0].startswith("traced with run")
    assert p["logit_scale"].reason.startswith("kept: ")
    if family == "clip":
        assert p["vision_model.embeddings.class_embedding"].std == pytest.approx(32**-0.5)
        proj = p["visual_projection.weight"]
        assert "pow" not in proj.reason and "linear consumer" in proj.reason
    else:
        assert p["vision_model.head.probe"].std == pytest.approx(32**-0.5)
    scale = m.logit_scale.detach().clone()
    p.apply(m, seed=0)
    assert torch.equal(m.logit_scale.detach(), scale)


def test_an_elementwise_op_feeding_a_reduction_is_no_activation():
    from torch import nn

    class Normalized(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 8)

        def forward(self, x):
            y = self.lin(x)
            return y / y.pow(2).sum(-1, keepdim=True).sqrt()

    p = it.plan(Normalized(), "auto", example_input=torch.randn(4, 16), strict=True)
    assert "linear consumer" in p["lin.weight"].reason


def _vision(name):
    torch.manual_seed(0)
    if name == "convnext":
        return transformers.ConvNextForImageClassification(
            transformers.ConvNextConfig(
                hidden_sizes=[16, 32, 48, 64],
                depths=[1, 1, 1, 1],
                num_labels=10,
                image_size=32,
                layer_scale_init_value=1e-6,
            )
        )
    if name == "convnextv2":
        return transformers.ConvNextV2ForImageClassification(
            transformers.ConvNextV2Config(
                hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_labels=10, image_size=32
            )
        )
    if name == "dinov2":
        return transformers.Dinov2Model(
            transformers.Dinov2Config(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                image_size=32,
                patch_size=8,
            )
        )
    if name in ("swin", "swinv2"):
        cls = "Swinv2" if name == "swinv2" else "Swin"
        return getattr(transformers, f"{cls}ForImageClassification")(
            getattr(transformers, f"{cls}Config")(
                image_size=32,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1],
                num_heads=[2, 2],
                window_size=4,
                num_labels=10,
            )
        )
    if name == "resnet":
        return transformers.ResNetForImageClassification(
            transformers.ResNetConfig(
                embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10
            )
        )
    if name == "levit":
        return transformers.LevitForImageClassification(
            transformers.LevitConfig(
                image_size=32,
                hidden_sizes=[32, 48, 64],
                num_attention_heads=[2, 3, 4],
                depths=[1, 1, 1],
                key_dim=[8, 8, 8],
                num_labels=10,
            )
        )
    return transformers.MobileNetV2ForImageClassification(
        transformers.MobileNetV2Config(image_size=32, num_labels=10, depth_multiplier=0.35)
    )


@pytest.mark.parametrize(
    "name",
    ["convnext", "convnextv2", "dinov2", "swin", "swinv2", "resnet", "mobilenetv2", "levit"],
)
def test_vision_families_plan_with_nothing_assumed(name):
    """Layer scales (ConvNeXt, DINOv2), Swin's relative position bias table and ConvNeXt-V2's
    GRN had no rule (and the GRN hid the moments from the next layer); HF ResNet/MobileNet were
    not traced at all — their configs state no image size and their example input failed (and a
    batch of one cannot pass BatchNorm in train mode). LeViT: its BatchNorm1d over flattened
    tokens, ``bn(x.flatten(0, 1)).reshape_as(x)``, lost the moments at ``reshape_as`` (every
    layer after one assumed unit input), and its ``attention_biases`` had no rule. Swin v2: its
    position-bias MLP reads a coordinate table the model holds as a buffer (not recorded: input
    assumed unit, E[x²] is 0.66), and its per-head ``logit_scale`` had no rule."""
    m = _vision(name)
    if name in ("swin", "swinv2"):  # their pooler averages the normalized tokens: measured
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        with pytest.warns(it.AssumptionWarning, match=r"classifier: .*average pooling 'swin"):
            it.plan(m, "auto")  # (without an example input, said: test_mean_pooled_swin)
        p = it.plan(m, "auto", strict=True, example_input=x)
    else:
        p = it.plan(m, "auto", strict=True)
    assert p.notes[0].startswith("traced with run")
    if name == "convnext":
        e = p["convnext.encoder.stages.0.layers.0.layer_scale_parameter"]
        assert e.std == 0 and "1e-06" in e.reason  # constant 1e-6: std 0
        assert e.scheme.label.startswith("constant")
    if name == "dinov2":
        assert "layer scale" in p["encoder.layer.0.layer_scale1.lambda1"].reason
    if name == "swin":
        table = [e for e in p if e.name.endswith("relative_position_bias_table")]
        assert table and all(e.scheme.label == "zeros" for e in table)
    if name == "swinv2":
        table = m.swinv2.encoder.layers[0].blocks[0].attention.self.relative_coords_table
        cpb = p[
            "swinv2.encoder.layers.0.blocks.0.attention.self.continuous_position_bias_mlp.0.weight"
        ]
        assert f"input E[x²] {float(table.pow(2).mean()):.3g} →" in cpb.reason
        assert p["swinv2.encoder.layers.0.blocks.0.attention.self.logit_scale"].reason.startswith(
            "kept: "
        )
        out = [e for e in p if e.name.endswith("continuous_position_bias_mlp.2.weight")]
        assert len(out) == 2 and all(e.scheme.label == "zeros" for e in out)
    if name == "levit":
        biases = [e for e in p if e.name.endswith("attention_biases")]
        assert biases and all(e.scheme.label == "zeros" for e in biases)
    if name == "convnextv2":
        grn = [e for e in p if ".grn." in e.name]
        assert len(grn) == 8 and all(e.scheme.label == "zeros" for e in grn)
    p.apply(m, seed=0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m(pixel_values=x)
    assert torch.isfinite(out[0]).all()
    if name == "swinv2":  # a flat relative position bias (16·σ(0) = 8); drawn for the sigmoid it
        a = m.swinv2.encoder.layers[0].blocks[0].attention.self  # was std 4.2 across positions
        with torch.no_grad():
            bias = 16 * torch.sigmoid(a.continuous_position_bias_mlp(a.relative_coords_table))
        assert float(bias.std()) < 1e-6 and abs(float(bias.mean()) - 8) < 1e-5


def _layer_scale_model(name):
    torch.manual_seed(0)
    vit = dict(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=32,
        patch_size=8,
        num_labels=10,
    )
    if name == "dinov2":  # λ = 1 in a module of its own (Dinov2LayerScale)
        return transformers.Dinov2ForImageClassification(
            transformers.Dinov2Config(**{**vit, "mlp_ratio": 2})
        )
    if name == "beit":  # λ = 0.1, `lambda_1 * x` in the layer's code
        return transformers.BeitForImageClassification(
            transformers.BeitConfig(**vit, use_mean_pooling=True)
        )
    return transformers.PoolFormerForImageClassification(  # λ = 1e-5, unsqueezed twice
        transformers.PoolFormerConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1])
    )


@pytest.mark.parametrize("name", ["dinov2", "beit", "poolformer"])
def test_layer_scales_are_part_of_the_branch(name):
    """DINOv2's layer scale is a module of its own, which counted as the branch's last weight
    layer: the attention's and MLP's output layers were solved for unit output, and with λ = 1
    the stream grew by one unit per branch (×5.2 over 4 layers, 1.03 with HF's init). PoolFormer's
    `layer_scale_1/2` had no rule (an assumption). A layer scale's λ² now counts between the
    branch's last layer and the sum: λ = 1 → that layer gets the branch's share s_skip/R; a small
    λ (BEiT's 0.1, PoolFormer's 1e-5) keeps it at unit output, the model's own smaller start."""
    m = _layer_scale_model(name)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # (DINOv2's and PoolFormer's heads average mean-free tokens: measured on the input)
    p = it.plan(m, "auto", strict=True, example_input=x if name != "beit" else None)
    scales = [e for e in p if e.name.rsplit(".", 1)[-1] in LAYER_SCALES]
    assert scales and all("layer scale's config value" in e.reason for e in scales)
    ends = [e for e in p if e.name.endswith(("o_proj.weight", "fc2.weight", "conv2.weight"))]
    ends = [e for e in ends if "residual branches" in e.reason]
    assert len(ends) == {"dinov2": 8, "beit": 8, "poolformer": 5}[name]
    if name == "dinov2":
        assert all("s_skip/8 =" in e.reason and "layer scale" not in e.reason for e in ends)
        assert not any(
            isinstance(mod, type(m.dinov2.encoder.layer[0].layer_scale1)) and is_weight_layer(mod)
            for mod in m.modules()
        )
    else:
        assert all(
            "kept at 1 (the layer scale keeps the branch below its share)" in e.reason for e in ends
        )
    p.apply(m, seed=0)
    with torch.no_grad():
        out = m(pixel_values=x, output_hidden_states=True)
    stream = [float(h.double().pow(2).mean()) for h in out.hidden_states]
    assert max(stream) / stream[0] < {"dinov2": 2.6, "beit": 1.1, "poolformer": 1.1}[name]
    assert 0.3 < float(out.logits.double().std()) < 2.0


def test_mean_pooled_swin():
    """HF Swin's pooler averages the final LayerNorm's tokens, whose mean over all entries is 0:
    taken as unchanged without an example input, the classifier was solved for an input ~6×
    too large (the pool keeps 0.14 of E[x²] on noise images, 0.18 on smooth ones) and the
    logits came out at rms 0.40, silently. It is said now; with an example input it is
    measured and the logits are at the unit scale."""
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    m = _vision("swin")
    with pytest.warns(it.AssumptionWarning, match=r"classifier: its input passed average pooling"):
        it.init_model(m, seed=0)
    with torch.no_grad():
        assert float(m(x).logits.pow(2).mean().sqrt()) < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", it.AssumptionWarning)
        it.init_model(m, seed=0, example_input=x)
    with torch.no_grad():
        assert 0.7 <= float(m(x).logits.pow(2).mean().sqrt()) <= 1.4


def test_patchtst_denormalization_is_no_residual():
    """PatchTST scales its input by the context's mean and std and its forecast back,
    `head(x)·scale + loc`: with both statistics out of one module call, the sum read as a
    residual branch, the head solved for a branch's share. A term broadcast into a sum (loc,
    one value per channel) is no stream. It was not traced at all before (its input is
    `past_values`), and its fixed sinusoidal position table had no rule."""
    torch.manual_seed(0)
    m = transformers.PatchTSTForPrediction(
        transformers.PatchTSTConfig(
            num_input_channels=3,
            context_length=32,
            patch_length=8,
            patch_stride=8,
            d_model=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            prediction_length=8,
        )
    )
    with pytest.warns(it.AssumptionWarning, match="average pooling 'mean' of a mean-free"):
        p = it.plan(m, "auto")  # (its head averages the patches' mean-free encodings)
    assert p.notes[0] == "traced with run; 4 residual branches"
    assert "residual" not in p["head.projection.weight"].reason
    assert p["model.encoder.positional_encoder.position_enc"].reason.startswith("kept: ")


def test_musicgen_codebooks_are_no_residual_and_it_is_traced():
    """MusicGen's decoder wants one row of ids per codebook (not traced before), and the sum of
    its codebook embeddings was read as residual branches (6 for 2 layers)."""
    torch.manual_seed(0)
    m = transformers.MusicgenForCausalLM(
        transformers.MusicgenDecoderConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            num_codebooks=4,
        )
    )
    with pytest.warns(it.AssumptionWarning, match=r"encoder_attn.* not called in forward"):
        p = it.plan(m, "auto")  # its cross-attention has no encoder here: an assumption
    assert p.notes[0] == "traced with run; 4 residual branches"
    ids = torch.randint(0, 64, (4 * 2, 6), generator=torch.Generator().manual_seed(0))
    enc = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(1))
    p = it.plan(
        m, "auto", example_input={"input_ids": ids, "encoder_hidden_states": enc}, strict=True
    )
    assert p.notes == ("traced with run; 6 residual branches",)


@pytest.mark.parametrize("name", ["whisper", "hubert", "wavlm", "ast"])
def test_speech_models_get_an_example_input(name):
    """Whisper (input_features + decoder_input_ids) and HuBERT (raw input_values) were not traced:
    their dummy_inputs are token ids; every activation went undetected. HuBERT's
    masked_spec_embed had no rule; nor had WavLM's gru_rel_pos_const. AST (a spectrogram of
    max_length × num_mel_bins as its input_values) was not traced either."""
    torch.manual_seed(0)
    if name == "whisper":
        m = transformers.WhisperForConditionalGeneration(
            transformers.WhisperConfig(
                vocab_size=100,
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=4,
                decoder_attention_heads=4,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                num_mel_bins=16,
                max_source_positions=32,
                max_target_positions=32,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
                decoder_start_token_id=1,
            )
        )
    elif name == "ast":
        m = transformers.ASTForAudioClassification(
            transformers.ASTConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                max_length=64,
                num_mel_bins=32,
            )
        )
    else:
        cls = "WavLM" if name == "wavlm" else "Hubert"
        m = getattr(transformers, f"{cls}Model")(
            getattr(transformers, f"{cls}Config")(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                conv_dim=(16, 16),
                conv_stride=(5, 2),
                conv_kernel=(10, 3),
                num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=4,
            )
        )
    if name == "wavlm":  # its attention runs F.multi_head_attention_forward with the
        # projections' weights: no module calls, planned as linear for unit input — said
        match = "attention.k_proj'.*the weight is used in code"
        with pytest.raises(it.AssumptionError, match=match):
            it.plan(m, "auto", strict=True)
        with pytest.warns(it.AssumptionWarning, match="the weight is used in code"):
            p = it.plan(m, "auto")
    else:
        p = it.plan(m, "auto", strict=True)
    assert p.notes[0].startswith("traced with run")
    if name in ("hubert", "wavlm"):
        assert p["masked_spec_embed"].scheme.label.startswith("uniform")
    if name == "wavlm":
        assert p["encoder.layers.0.attention.gru_rel_pos_const"].reason.startswith("kept: ")
    p.apply(m, seed=0)


def test_jamba_mamba_mixers_output_projection_is_solved_for_what_the_scan_gives():
    """The selective scan is not traced into: the propagated moment at a Mamba mixer's out_proj
    was ~0.14 where the scan gives ~1.1, so Jamba's Mamba branches added 6× their share and the
    stream grew 2.9× over 4 layers. out_proj is now solved for the moment measured on a seeded
    copy of the mixer drawn from the plan."""
    m = _family("jamba")
    p = it.plan(m, "auto", strict=True)
    e = p["model.layers.0.mamba.out_proj.weight"]
    assert "measured on a seeded copy of the mixer" in e.reason
    again = it.plan(_family("jamba"), "auto")  # deterministic: the same probe, the same std
    assert again["model.layers.0.mamba.out_proj.weight"].std == e.std
    p.apply(m, seed=0)
    streams, logits = _stream(m)
    assert max(streams) / streams[0] < math.e and 0.5 < logits < 2


def test_a_mixer_that_cannot_be_measured_is_an_assumption():
    """On the meta device there is no copy to run: out_proj keeps the propagated moment, and
    the plan says so instead of keeping quiet."""
    with torch.device("meta"):
        m = transformers.MambaForCausalLM(
            transformers.MambaConfig(
                vocab_size=100, hidden_size=64, state_size=8, num_hidden_layers=2, expand=2
            )
        )
    with pytest.warns(it.AssumptionWarning, match="the mixer's copy could not run"):
        it.plan(m, "auto")
    with pytest.raises(it.AssumptionError, match="could not run"):
        it.plan(m, "auto", strict=True)


def _vision_language(name):
    torch.manual_seed(0)
    text = dict(
        vocab_size=256,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
    )
    vision = dict(_VISION_TOWER)
    if name == "llava":
        return transformers.LlavaForConditionalGeneration(
            transformers.LlavaConfig(
                vision_config=transformers.CLIPVisionConfig(**vision),
                text_config=transformers.LlamaConfig(**text),
                image_token_index=255,
                vision_feature_layer=-1,
            )
        )
    if name == "idefics3":  # (SmolVLM's architecture: images per sample, pixel shuffle ×2)
        return transformers.Idefics3ForConditionalGeneration(
            transformers.Idefics3Config(
                vision_config=vision,
                text_config=transformers.LlamaConfig(**text).to_dict(),
                image_token_id=255,
                scale_factor=2,
            )
        )
    if name == "blip2":  # (image_token_index as its hub configs set it: 4 query tokens)
        return transformers.Blip2ForConditionalGeneration(
            transformers.Blip2Config(
                vision_config=vision,
                qformer_config=dict(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=64,
                    encoder_hidden_size=32,
                    vocab_size=256,
                ),
                text_config=transformers.OPTConfig(
                    vocab_size=256,
                    hidden_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    ffn_dim=128,
                ).to_dict(),
                num_query_tokens=4,
                image_token_index=250,
            )
        )
    return transformers.PaliGemmaForConditionalGeneration(
        transformers.PaliGemmaConfig(
            vision_config=transformers.SiglipVisionConfig(**vision),
            text_config=transformers.GemmaConfig(**text, head_dim=16),
            image_token_index=255,
            projection_dim=64,
        )
    )


@pytest.mark.parametrize("name", ["llava", "paligemma", "blip2", "idefics3"])
def test_vision_language_models_are_traced(name):
    """LLaVA, PaliGemma, BLIP-2 and Idefics 3 (SmolVLM) refuse input_ids without as many image
    tokens as the vision tower gives ("image features and image tokens do not match"): nothing
    was traced and every layer was assumed. The example input now holds the model's own count
    (get_image_features); BLIP-2's query tokens (zeros) and vision position/class embeddings
    have HF's rules."""
    m = _vision_language(name)
    p = it.plan(m, "auto", strict=True)
    # (SigLIP's pooling head has one more; BLIP-2's Q-Former: 2 layers × self, cross, MLP)
    branches = {"llava": 8, "paligemma": 9, "blip2": 13, "idefics3": 8}[name]
    assert p.notes[0] == f"traced with run; {branches} residual branches"
    if name == "blip2":
        assert p["query_tokens"].scheme.label == "zeros"
    p.apply(m, seed=0)
    token, k = (250, 4) if name == "blip2" else (255, 4 if name == "idefics3" else 16)
    ids = torch.tensor([[token] * k + list(range(1, 17))] * 2)
    shape = (2, 1, 3, 32, 32) if name == "idefics3" else (2, 3, 32, 32)  # (images per sample)
    px = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(input_ids=ids, pixel_values=px)
        image = m.get_image_features(pixel_values=px).pooler_output
        image = torch.cat(list(image)) if isinstance(image, (list, tuple)) else image
        text = m.get_input_embeddings()(ids[:, k:])
    assert 0.5 < float(out.logits.double().std()) < 2.0
    # image tokens enter the stream beside the text embeddings at a like scale: LLaVA's
    # projector was solved "for the norm that follows" (the first block's) and gave 0.34 vs 1
    ratio = float(image.double().pow(2).mean() / text.double().pow(2).mean())
    assert 0.6 < ratio < 1.6, ratio


def _lm(cls, cfg_cls, **kw):
    c = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    return getattr(transformers, cls)(getattr(transformers, cfg_cls)(**c, **kw))


def test_a_parameter_without_a_rule_takes_its_family_s_own():
    """DiffLlama's λ vectors, Doge's ``A``, JetMoE's MoE biases (and its expert stacks, solved
    since: test_jetmoe_experts_are_solved_not_borrowed) had no rule: left
    as the constructor's global-RNG draw, said as "no rule". Now the family's ``_init_weights``
    is read on a meta copy (its init calls recorded, none run) and its rule drawn from the seed's
    stream: the same values for the same seed, the model and torch's RNG untouched by planning.
    Borrowed, not derived, it is still said (and ``strict=True`` refuses it)."""
    cases = {
        "diffllama": lambda: _lm(
            "DiffLlamaForCausalLM", "DiffLlamaConfig", intermediate_size=128, lambda_std_dev=0.3
        ),
        "doge": lambda: _lm("DogeForCausalLM", "DogeConfig", intermediate_size=128),
        "jetmoe": lambda: _jetmoe(2, initializer_range=0.03),
    }
    if not all(hasattr(transformers, c) for c in ("DiffLlamaConfig", "DogeConfig", "JetMoeConfig")):
        pytest.skip("this transformers lacks DiffLlama, Doge or JetMoE")
    expect = {
        "diffllama": ("model.layers.0.self_attn.lambda_q1", "normal", 0.3),
        "doge": ("model.layers.0.self_attn.A", "constant", 0.0),
        "jetmoe": ("model.layers.0.mlp.bias", "constant", 0.0),
    }
    for fam, build in cases.items():
        torch.manual_seed(0)
        model = build()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            p = it.plan(model, "auto")
        said = [str(w.message) for w in said if isinstance(w.message, it.AssumptionWarning)]
        assert len(said) == 1 and "no rule for" not in said[0], (fam, said)  # (none left)
        assert "the family's own rule, as its _init_weights writes it" in said[0], fam
        with pytest.raises(it.AssumptionError, match="not solved for the signal"):
            it.plan(model, "auto", strict=True)  # (borrowed, not derived: strict refuses)
        assert torch.equal(torch.get_rng_state(), rng), fam
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), fam
        name, kind, value = expect[fam]
        e = p[name]
        assert e.scheme.type == kind and "_init_weights" in e.reason, (fam, e.reason)
        assert (e.std if kind == "normal" else e.scheme.value) == pytest.approx(value), fam
        p.apply(model, seed=3)
        first = dict(model.named_parameters())[name].detach().clone()
        p.apply(model, seed=3)
        assert torch.equal(first, dict(model.named_parameters())[name]), fam
        if kind == "normal":
            assert not torch.equal(first, before[name]), fam  # (drawn, not the constructor's)
            assert float(first.std()) == pytest.approx(value, rel=0.35), fam
    with torch.device("meta"):  # (read from the family's code, not from the values)
        meta = cases["diffllama"]()
    assert it.plan(meta, "auto").to_json() == it.plan(cases["diffllama"](), "auto").to_json()
    assert p["model.layers.0.mlp.bias"].scheme.value == 0.0


def test_family_rules_keep_only_whole_parameter_calls_and_restore_torch_init():
    """A call on part of a parameter (a padding row) is no rule for it; an unmapped function
    (xavier) neither, nor a recorded call that another in-place write follows (kimi-linear's
    ``copy_(A_log, uniform_(A_log, 1, 16).log())``: taken for ``U(1, 16)``, ``A = −exp(A_log)``
    would reach −8.9·10⁶; a clamp through ``.data``); ``torch.nn.init``'s functions are back
    afterwards, the module untouched."""
    from torch import nn

    from initwise.torch.family import family_rules

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4, 3))
            self.v = nn.Parameter(torch.ones(5, 3))
            self.x = nn.Parameter(torch.ones(3, 3))
            self.u = nn.Parameter(torch.ones(3))
            self.a = nn.Parameter(torch.ones(3))
            self.d = nn.Parameter(torch.ones(3))

    class Owner(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def _init_weights(self, m):
            nn.init.normal_(m.w, 0.0, 0.3)
            nn.init.normal_(m.v, std=0.2)
            nn.init.zeros_(m.v[0])
            nn.init.xavier_uniform_(m.x)
            nn.init.uniform_(m.u, -0.1, 0.1)
            m.a.data.copy_(nn.init.uniform_(m.a, 1.0, 16.0).log())  # (kimi-linear's A_log)
            nn.init.normal_(m.d, std=0.5)
            m.d.data.clamp_(-1.0, 1.0)

    owner = Owner()
    saved = {f: getattr(nn.init, f) for f in ("normal_", "zeros_", "xavier_uniform_")}
    rules = family_rules(owner, owner.block)
    assert set(rules) == {"w", "u"}
    assert rules["w"][0].std_ == 0.3 and rules["w"][1] == "init.normal_(mean=0, std=0.3)"
    assert (rules["u"][0].low, rules["u"][0].high) == (-0.1, 0.1)
    assert all(getattr(nn.init, f) is g for f, g in saved.items())
    assert all(bool((q == 1).all()) for q in owner.parameters())


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_gradient_checkpointing_does_not_change_the_plan(family):
    """With ``gradient_checkpointing_enable()`` fx cannot trace the model and it is traced by
    running, where HF's ``inputs_embeds.requires_grad_(True)`` was recorded as a node: a second
    use of the token table's output, so the position (and BERT's token-type) table was planned
    N(0, 1) instead of the token table's std and GPT-2's residual branch ends ×5.7. A method
    that changes no value is not a node now; the plan equals the plain model's."""
    import copy

    if family == "gpt2":
        model = gpt2(2)
    else:
        cfg = transformers.BertConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
            vocab_size=128,
        )  # fmt: skip
        torch.manual_seed(0)
        model = transformers.BertForMaskedLM(cfg)
    plain = copy.deepcopy(model).train()
    model.gradient_checkpointing_enable()
    model.train()
    pa, pb = it.plan(plain), it.plan(model)
    assert "traced with run" in pb.notes[0]
    assert [(e.name, e.std) for e in pb] == [(e.name, e.std) for e in pa]


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_an_overridden_hf_rms_norm_is_walked_as_it_will_be(family):
    """Hugging Face's RMSNorms (not torch norm classes) given an override were not held: the
    walk took γ = 1 and Mixtral's input norms overridden to 3 grew the residual stream ×5.1 over
    4 layers where the plan holds it at ×1.5. Gemma's norm multiplies by ``1 + w``."""
    cfg = dict(
        num_hidden_layers=4, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=128,
    )  # fmt: skip
    make = {
        "llama": lambda: transformers.LlamaModel(transformers.LlamaConfig(**cfg)),
        "gemma": lambda: transformers.GemmaModel(transformers.GemmaConfig(**cfg, head_dim=16)),
    }[family]
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    streams = []
    for overrides in (None, {"*.input_layernorm.weight": {"scheme": "constant", "value": 3.0}}):
        torch.manual_seed(0)
        model = make()
        it.init_model(model, seed=0, overrides=overrides)
        with torch.no_grad():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
        streams.append(float(hs[-2].pow(2).mean()) / float(hs[0].pow(2).mean()))
    assert streams[1] < 1.3 * streams[0], streams


def test_timesformer_plans_with_its_example_input():
    """TimeSformer (traced by running: fx cannot) joins its class token with ``torch.cat((cls,
    x), 1)``; a run trace kept the tensors of that list argument in the node's arguments, and
    comparing two such nodes raised "Boolean value of Tensor with more than one value is
    ambiguous" out of ``plan``. They stand for their tensors' nodes now (``graph.TensorArg``)."""
    from initwise.torch.graph import TensorArg
    from initwise.torch.inspection import inspect_model

    cfg = transformers.TimesformerConfig(
        image_size=32, patch_size=8, num_frames=4, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.TimesformerModel(cfg).eval()
    video = {
        "pixel_values": torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    }
    p = it.plan(model, example_input=video)
    assert p["encoder.layer.0.intermediate.dense.weight"].scheme is not None
    g = inspect_model(model, video).graph
    cats = [n for n in g.nodes if n.target == "cat"]
    assert cats and all(
        not isinstance(t, torch.Tensor)
        for n in cats
        for a in n.args
        if isinstance(a, (list, tuple))
        for t in a
    )
    assert any(
        isinstance(t, TensorArg)
        for n in cats
        for a in n.args
        if isinstance(a, (list, tuple))
        for t in a
    )


def test_rwkv_attention_output_is_solved_for_what_its_state_writes_give():
    """RWKV writes its recurrent state by index (``state[...] = ...``, ``shifted[:, 0] = ...``);
    a run trace did not record such writes, and its attention output projections were solved
    for E[x²] 1 where 0.006 came (×170), with the example input too. Writes are nodes now: with
    the example input every layer's input is predicted as measured."""
    cfg = transformers.RwkvConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=4, attention_hidden_size=64,
        intermediate_size=128, context_length=32,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.RwkvModel(cfg).eval()
    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    p = it.init_model(model, seed=0, example_input={"input_ids": ids})
    came: dict[str, float] = {}
    hooks = [
        model.get_submodule(f"blocks.{i}.attention.output").register_forward_pre_hook(
            lambda mod, a, i=i: came.setdefault(str(i), float(a[0].pow(2).mean())) and None
        )
        for i in range(4)
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    for i in range(4):
        reason = p[f"blocks.{i}.attention.output.weight"].reason
        said = float(re.search(r"input E\[x²\] ([0-9.e+-]+)", reason).group(1))
        assert 0.5 < said / came[str(i)] < 2, (reason, came)
