"""Time to plan a Hugging Face model that fx cannot trace (``initwise bench plan [ci]``): traced by
running its example input, each way measured side by side in one process.

- A model on the meta device (the way to build a large one: no memory, no init): every operation
  run by torch's meta kernels, many of which are Python reference implementations, against
  :func:`~initwise.torch.meta_ops.fast_meta`'s shapes (``graph.META_SHORTCUTS``).
- A CPU model of at least ``graph.STAND_INS_FROM`` elements: its own forward on the example input
  (and the copy of the parameters a forward might write) against the same run on meta stand-ins
  of its tensors (``graph.META_STAND_INS``).

Each row also checks that both ways give the same plan (its JSON).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import torch

from . import print_table, timeit_side_by_side

SIZES = {"ci": (2, 256, 4), "small": (12, 768, 12), "xl": (48, 1600, 25)}
"""GPT-2 (layers, width, heads)."""


def _gpt2(size: str, meta: bool) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    n_layer, n_embd, n_head = SIZES[size]
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    if meta:
        with torch.device("meta"):
            return GPT2LMHeadModel(cfg)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def _plan_json(model: Any) -> str:
    import initwise.torch as it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return json.dumps(it.plan(model, "auto").to_dict(), sort_keys=True, default=str)


def run(size: str = "small", repeat: int = 5) -> list[dict[str, Any]]:
    """``size``: ``small`` (GPT-2-small on the CPU and on meta, GPT-2-XL on meta) or ``ci``
    (a 2-layer GPT-2 of width 256 each way, the stand-ins' size threshold lowered to reach it)."""
    from ..torch import graph as G

    cases: list[tuple[str, Callable[[], Any], str]] = (
        [
            ("GPT-2-ci, meta", lambda: _gpt2("ci", True), "META_SHORTCUTS"),
            ("GPT-2-ci, CPU", lambda: _gpt2("ci", False), "META_STAND_INS"),
        ]
        if size == "ci"
        else [
            ("GPT-2-small, meta", lambda: _gpt2("small", True), "META_SHORTCUTS"),
            ("GPT-2-XL, meta", lambda: _gpt2("xl", True), "META_SHORTCUTS"),
            ("GPT-2-small, CPU", lambda: _gpt2("small", False), "META_STAND_INS"),
        ]
    )
    before = {k: getattr(G, k) for k in ("META_SHORTCUTS", "META_STAND_INS", "STAND_INS_FROM")}
    rows = []
    try:
        if size == "ci":
            G.STAND_INS_FROM = 0
        for label, build, flag in cases:
            model = build()

            def way(on: bool, model: Any = model, flag: str = flag) -> Callable[[], str]:
                def call() -> str:
                    setattr(G, flag, on)
                    return _plan_json(model)

                return call

            slow, fast = way(False), way(True)
            same = slow() == fast()
            t_slow, t_fast = timeit_side_by_side([slow, fast], repeat, settle=0.0)
            rows.append(
                {
                    "model": label,
                    "way": "shapes without torch's meta kernels"
                    if flag == "META_SHORTCUTS"
                    else "on meta stand-ins",
                    "before_s": t_slow,
                    "now_s": t_fast,
                    "ratio": t_slow / t_fast,
                    "same_plan": same,
                }
            )
            del model
    finally:
        for k, v in before.items():
            setattr(G, k, v)
    print_table(
        f"plan() of a model traced by running (medians of {repeat} runs in turns, "
        f"{torch.get_num_threads()} threads)",
        ["model", "traced now", "before", "now", "before / now", "same plan"],
        [
            [
                r["model"],
                r["way"],
                f"{r['before_s'] * 1e3:.0f} ms",
                f"{r['now_s'] * 1e3:.0f} ms",
                f"{r['ratio']:.2f}×",
                "yes" if r["same_plan"] else "NO",
            ]
            for r in rows
        ],
    )
    return rows
