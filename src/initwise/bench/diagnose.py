"""Cost of ``diagnose`` relative to one plain forward + backward pass of the same model."""

from __future__ import annotations

import torch

from . import print_table, timeit_side_by_side


def run(repeat: int = 15) -> list[dict[str, float]]:
    from ..diagnostics import diagnose
    from .lsuv import cnn, mlp

    torch.manual_seed(0)
    rows = []
    for kind, model, batch in (
        ("MLP 20×256", mlp(20), torch.randn(256, 256)),
        ("CNN 10×16 32×32", cnn(10), torch.randn(32, 3, 32, 32)),
    ):

        def plain(model=model, batch=batch) -> None:
            model.zero_grad(set_to_none=True)
            out = model(batch)
            (out * torch.randn_like(out)).sum().backward()

        base, diag = timeit_side_by_side(
            [plain, lambda model=model, batch=batch: diagnose(model, batch)], repeat, settle=0.0
        )
        rows.append({"model": kind, "fwd_bwd_s": base, "diagnose_s": diag, "ratio": diag / base})
    print_table(
        f"diagnose / one forward+backward (medians of {repeat} runs in turns, "
        f"{torch.get_num_threads()} threads)",
        ["model", "fwd+bwd s", "diagnose s", "ratio"],
        [
            [r["model"], f"{r['fwd_bwd_s']:.4f}", f"{r['diagnose_s']:.4f}", f"{r['ratio']:.2f}×"]
            for r in rows
        ],
    )
    return rows
