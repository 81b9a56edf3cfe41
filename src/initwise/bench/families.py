"""Hugging Face model families under plain ``auto`` (``initwise bench families``): each built
offline from a small config (4 layers, width 64), planned with ``auto`` and no example input,
applied with seed 0, and run on seeded random token ids.

Per family: residual branches found, the residual stream's growth (largest E[x²] of the hidden
states before the final norm / the first), the logits' std, and what the planner assumed
(``none``, or the start of its warning). Families whose class this transformers lacks are
listed as skipped. docs/policies.md keeps the table measured before and after the fixes it
drove.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from . import print_table


def builders(T: Any) -> dict[str, Callable[[], Any]]:
    """``{family: build}``: each family's small model from its config (``T`` is the
    transformers module); the tests build the same models."""
    c = dict(vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4)
    ffn = dict(c, intermediate_size=128)
    moe = dict(num_experts_per_tok=2)
    return {
        "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(**ffn, num_key_value_heads=2)),
        "qwen3": lambda: T.Qwen3ForCausalLM(
            T.Qwen3Config(**ffn, num_key_value_heads=2, head_dim=16)
        ),
        "gemma": lambda: T.GemmaForCausalLM(
            T.GemmaConfig(**ffn, num_key_value_heads=2, head_dim=16)
        ),
        "gemma2": lambda: T.Gemma2ForCausalLM(
            T.Gemma2Config(**ffn, num_key_value_heads=2, head_dim=16)
        ),
        "gemma3": lambda: T.Gemma3ForCausalLM(
            T.Gemma3TextConfig(**ffn, num_key_value_heads=2, head_dim=16)
        ),
        "phi": lambda: T.PhiForCausalLM(T.PhiConfig(**ffn)),
        "stablelm": lambda: T.StableLmForCausalLM(T.StableLmConfig(**ffn, num_key_value_heads=2)),
        "starcoder2": lambda: T.Starcoder2ForCausalLM(
            T.Starcoder2Config(**ffn, num_key_value_heads=2)
        ),
        "granite": lambda: T.GraniteForCausalLM(  # μP-style multipliers in the config
            T.GraniteConfig(
                **ffn,
                num_key_value_heads=2,
                embedding_multiplier=12.0,
                residual_multiplier=0.22,
                logits_scaling=8.0,
                attention_multiplier=0.0078125,
                tie_word_embeddings=True,
            )
        ),
        "phi3": lambda: T.Phi3ForCausalLM(
            T.Phi3Config(**ffn, num_key_value_heads=4, pad_token_id=0)
        ),
        "olmo2": lambda: T.Olmo2ForCausalLM(T.Olmo2Config(**ffn)),
        "exaone4": lambda: T.Exaone4ForCausalLM(T.Exaone4Config(**ffn, num_key_value_heads=2)),
        "apertus": lambda: T.ApertusForCausalLM(  # (xIELU: a learned activation)
            T.ApertusConfig(**ffn, num_key_value_heads=2)
        ),
        "nemotron": lambda: T.NemotronForCausalLM(  # (LayerNorm1P: weight + 1)
            T.NemotronConfig(**ffn, num_key_value_heads=2, head_dim=16)
        ),
        "gpt-neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**ffn)),
        "gpt-j": lambda: T.GPTJForCausalLM(
            T.GPTJConfig(vocab_size=128, n_embd=64, n_layer=4, n_head=4, rotary_dim=8)
        ),
        "falcon": lambda: T.FalconForCausalLM(
            T.FalconConfig(
                vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4
            )
        ),
        "cohere": lambda: T.CohereForCausalLM(T.CohereConfig(**ffn, num_key_value_heads=2)),
        "bloom": lambda: T.BloomForCausalLM(
            T.BloomConfig(vocab_size=128, hidden_size=64, n_layer=4, n_head=4)
        ),
        "mpt": lambda: T.MptForCausalLM(
            T.MptConfig(vocab_size=128, d_model=64, n_layers=4, n_heads=4)
        ),
        "opt": lambda: T.OPTForCausalLM(
            T.OPTConfig(
                vocab_size=128,
                hidden_size=64,
                num_hidden_layers=4,
                num_attention_heads=4,
                ffn_dim=128,
                word_embed_proj_dim=64,
                max_position_embeddings=64,
            )
        ),
        "mixtral": lambda: T.MixtralForCausalLM(
            T.MixtralConfig(**ffn, num_key_value_heads=2, num_local_experts=4, **moe)
        ),
        "qwen2-moe": lambda: T.Qwen2MoeForCausalLM(
            T.Qwen2MoeConfig(
                **ffn,
                moe_intermediate_size=32,
                shared_expert_intermediate_size=64,
                num_key_value_heads=2,
                num_experts=4,
                **moe,
            )
        ),
        "granite-moe": lambda: T.GraniteMoeForCausalLM(
            T.GraniteMoeConfig(**ffn, num_key_value_heads=2, num_local_experts=4, **moe)
        ),
        "olmoe": lambda: T.OlmoeForCausalLM(
            T.OlmoeConfig(**dict(c, intermediate_size=32), num_experts=4, **moe)
        ),
        "deepseek-v3": lambda: T.DeepseekV3ForCausalLM(
            T.DeepseekV3Config(
                **ffn,
                moe_intermediate_size=32,
                num_key_value_heads=4,
                n_routed_experts=4,
                n_group=1,
                topk_group=1,
                first_k_dense_replace=1,
                q_lora_rank=None,
                kv_lora_rank=16,
                qk_rope_head_dim=8,
                qk_nope_head_dim=8,
                v_head_dim=16,
                **moe,
            )
        ),
        "gpt-oss": lambda: T.GptOssForCausalLM(
            T.GptOssConfig(
                **dict(c, intermediate_size=64),
                num_key_value_heads=2,
                num_local_experts=4,
                head_dim=16,
                layer_types=["full_attention"] * 4,
                **moe,
            )
        ),
        "mamba": lambda: T.MambaForCausalLM(
            T.MambaConfig(vocab_size=128, hidden_size=64, state_size=8, num_hidden_layers=4)
        ),
        "mamba2": lambda: T.Mamba2ForCausalLM(
            T.Mamba2Config(
                vocab_size=128,
                hidden_size=64,
                num_hidden_layers=4,
                num_heads=8,
                head_dim=16,
                state_size=8,
                expand=2,
                n_groups=1,
            )
        ),
        "jamba": lambda: T.JambaForCausalLM(
            T.JambaConfig(
                **ffn,
                num_key_value_heads=2,
                num_experts=4,
                expert_layer_period=2,
                expert_layer_offset=1,
                attn_layer_period=2,
                attn_layer_offset=1,
                mamba_d_state=8,
                mamba_expand=2,
                mamba_dt_rank=8,
                use_mamba_kernels=False,
                **moe,
            )
        ),
    }


def measure(name: str, build: Callable[[], Any]) -> dict[str, Any]:
    """One family's row (see the module docstring)."""
    import initwise.torch as it

    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        model = build()
        plan = it.plan(model, "auto")
    assumed = [str(w.message) for w in said if isinstance(w.message, it.AssumptionWarning)]
    plan.apply(model, seed=0)
    ids = torch.randint(3, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    stream = [float(h.double().pow(2).mean()) for h in out.hidden_states[:-1]]
    note = plan.notes[0]
    branches = int(note.split("; ")[1].split()[0]) if "residual branches" in note else 0
    return {
        "family": name,
        "branches": branches,
        "growth": max(stream) / stream[0],
        "logits_std": float(out.logits.double().std()),
        "assumed": assumed[0].split(" assumed: ", 1)[-1] if assumed else "none",
    }


def run(names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    try:
        import transformers as T
    except ImportError:
        print("bench families: transformers is not installed (pip install 'initwise[hf]')")
        return []
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    rows, skipped = [], []
    for name, build in builders(T).items():
        if names is not None and name not in names:
            continue
        try:
            rows.append(measure(name, build))
        except AttributeError:  # a family this transformers does not have
            skipped.append(name)
    print_table(
        f"Hugging Face families under plain auto (4 layers, width 64; transformers "
        f"{T.__version__})",
        ["family", "residual branches", "stream growth", "logits std", "assumed"],
        [
            [
                r["family"],
                str(r["branches"]),
                f"{r['growth']:.2f}×",
                f"{r['logits_std']:.3g}",
                r["assumed"][:70],
            ]
            for r in rows
        ],
    )
    if skipped:
        print(f"skipped (not in this transformers): {', '.join(skipped)}")
    return rows
