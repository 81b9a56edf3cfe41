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
)
