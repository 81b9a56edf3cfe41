"""The built-in policy names, importable without torch (the CLI's ``--help`` lists them without
loading PyTorch). The policies themselves live in :mod:`initwise.torch.policies`; a test checks
that every name here is registered there."""

BUILTIN: tuple[str, ...] = (
    "auto",
    "he",
    "xavier",
    "lecun",
    "orthogonal",
    "torch-default",
    "gpt2",
    "zero-init-residual",
    "fixup",
    "lsuv",
    "tat",
    "dks",
    "u-mup",
)

DESCRIPTIONS: dict[str, str] = {
    "auto": "solved from the moments that reach each layer (default)",
    "he": "He normal N(0, 2/fan_in)",
    "xavier": "Xavier uniform",
    "lecun": "LeCun normal N(0, 1/fan_in)",
    "orthogonal": "orthogonal x the activation's gain",
    "torch-default": "what each module's reset_parameters does",
    "gpt2": "N(0, 0.02^2), residual projections / sqrt(L)",
    "zero-init-residual": "auto, last layer or norm of each residual branch zero",
    "fixup": "Fixup (Zhang et al. 2019)",
    "lsuv": "orthonormal, each layer scaled to unit output std on a batch (needs --input-shape)",
    "tat": "kernel shaping (TAT): orthogonal weights and rewritten activations",
    "dks": "kernel shaping (DKS): orthogonal weights and rewritten activations",
    "u-mup": "u-μP: unit-scale weights, forward multipliers and per-parameter learning rates",
}
"""One line per built-in policy, for ``--help`` (docs/policies.md has the full rules)."""


def policy_help() -> str:
    """``--policy``'s help text: every built-in with its one-line description."""
    return "; ".join(f"{n}: {DESCRIPTIONS.get(n, '')}" for n in BUILTIN)
