"""Learning-rate transfer across width (Yang et al. 2022, Tensor Programs V, Fig. 1): the best
Adam learning rate at several widths, under the standard parametrization (``auto`` init, one
learning rate) and under μP (``MuP(base_width)`` init and the plan's per-parameter learning
rates through ``plan.param_groups``), for two networks:

- ``mlp``: a 3-layer ReLU MLP on MNIST-1D (batch 128);
- ``transformer``: a 2-block pre-norm decoder (4 heads, so the head dimension grows with the
  width; GELU MLPs; learned token and position embeddings) predicting the next token of
  sequences drawn offline from a fixed random order-2 Markov chain over 16 symbols (batch 32 ×
  16 tokens). Under μP the attention logits are divided by ``d`` instead of ``√d``
  (:func:`initwise.torch.mup_attention`, the explicit forward change the plan's notes ask for).

Per network, width and learning rate (octaves): the training loss averaged over the last 10 %
of the steps, mean over seeds; a diverged run counts as +inf (``null`` in results.json).
Reported: the best log2 LR per width, how far it moves from the smallest to the largest width,
and what using the smallest width's best LR costs at the largest width (loss there / best loss
there). Claim (pre-stated, from the issue): for each network, under μP the best LR moves at most
one octave and the transferred LR costs ≤ 10 %.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import (
    Journal,
    batches,
    default_workers,
    figure,
    mlp,
    mnist1d,
    publish,
    run_cells,
    save_figure,
)

PARAMS = ("standard", "mup", "u-mup")
TASKS = ("mlp", "transformer")

VOCAB, CONTEXT = 16, 16


def markov_sequences(
    n: int = 4096, length: int = CONTEXT + 1, vocab: int = VOCAB, seed: int = 0
) -> torch.Tensor:
    """``n`` sequences of ``length`` symbols from an order-2 Markov chain whose transition rows
    are Dirichlet(0.2) draws (entropy rate ≈ 1.62 nats against ln 16 = 2.77 for uniform
    symbols). Generated from ``seed`` with NumPy's own generator (no global state)."""
    rng = np.random.default_rng(seed)
    cdf = rng.dirichlet(np.full(vocab, 0.2), size=(vocab, vocab)).cumsum(-1)
    x = np.empty((n, length), np.int64)
    x[:, :2] = rng.integers(0, vocab, (n, 2))
    for t in range(2, length):
        u = rng.random(n)[:, None]
        x[:, t] = (u > cdf[x[:, t - 2], x[:, t - 1]]).sum(-1).clip(max=vocab - 1)
    return torch.from_numpy(x)


class Attention(nn.Module):
    """Causal multi-head self-attention through ``F.scaled_dot_product_attention`` with its
    logit scale in ``scaling`` (``1/√head_dim``; μP's ``1/head_dim`` after
    :func:`~initwise.torch.mup_attention`)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scaling = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scaling)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + fc2(gelu(fc1(ln(x))))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(width), Attention(width, heads)
        self.ln2, self.fc1 = nn.LayerNorm(width), nn.Linear(width, 4 * width)
        self.act, self.fc2 = nn.GELU(), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    """A small decoder-only language model: token + position embeddings, ``layers`` pre-norm
    blocks, a final LayerNorm and an untied readout."""

    def __init__(
        self, width: int, vocab: int = VOCAB, layers: int = 2, heads: int = 4, ctx: int = CONTEXT
    ) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(ctx, width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


def _train(
    model: nn.Module,
    param: str,
    base: int,
    lr: float,
    seed: int,
    loss_at: Any,
    n: int,
    batch: int,
    steps: int,
) -> float:
    import initwise.torch as it

    policy = {"mup": it.MuP(base_width=base), "u-mup": "u-mup"}.get(param, "auto")
    plan = it.init_model(model, policy, seed=seed)
    if param != "standard" and any(isinstance(m, Attention) for m in model.modules()):
        it.mup_attention(model)
    groups = plan.param_groups(model, lr=lr) if param != "standard" else model.parameters()
    opt = torch.optim.Adam(groups, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    tail: list[float] = []
    keep = max(1, steps // 10)
    for step, idx in enumerate(batches(n, batch, gen, steps)):
        loss = loss_at(idx)
        if not torch.isfinite(loss):
            return math.inf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= steps - keep:
            tail.append(float(loss.detach()))
    return sum(tail) / len(tail)


def _one(task: str, width: int, param: str, base: int, lr: float, steps: int, seed: int) -> float:
    """One run in a worker: the final training loss (one intra-op thread)."""
    from ..torch.threads import intra_op_threads

    with intra_op_threads(1):
        torch.manual_seed(seed)  # the module constructors; every weight is then drawn by the plan
        if task == "mlp":
            data = mnist1d()
            model: nn.Module = mlp(3, width, data.n_features, data.n_classes, "relu")
            return _train(
                model, param, base, lr, seed,
                lambda i: F.cross_entropy(model(data.x_train[i]), data.y_train[i]),
                len(data.y_train), 128, steps,
            )  # fmt: skip
        seqs = markov_sequences()
        model = TinyLM(width)

        def loss_at(i: torch.Tensor) -> torch.Tensor:
            s = seqs[i]
            return F.cross_entropy(model(s[:, :-1]).flatten(0, 1), s[:, 1:].flatten())

        return _train(model, param, base, lr, seed, loss_at, len(seqs), 32, steps)


def settings(task: str, quick: bool) -> dict[str, Any]:
    """Widths, learning-rate octaves per parametrization (u-μP's global LR sits about five
    octaves above the others: its weights are stored at unit scale) and steps of one grid."""
    if task == "mlp":
        widths = (32, 256) if quick else (64, 128, 256, 512, 1024)
        lrs = list(range(-12, -3)) if quick else list(range(-14, -3))
        u_lrs = list(range(-4, 1)) if quick else list(range(-8, 2))
        steps = 80 if quick else 300
    elif task == "transformer":
        widths = (32, 64) if quick else (32, 64, 128, 256)
        lrs = list(range(-9, -4)) if quick else list(range(-12, -3))
        u_lrs = list(range(-5, 0)) if quick else list(range(-7, 2))
        steps = 30 if quick else 200
    else:
        raise ValueError(f"lr-transfer: unknown task {task!r}; tasks are {', '.join(TASKS)}")
    return {
        "widths": list(widths),
        "log2_lrs": {"standard": lrs, "mup": lrs, "u-mup": u_lrs},
        "steps": steps,
        "base_width": widths[0],
    }


def summarize(
    loss: dict[str, dict[str, float]],
    per_seed: dict[str, dict[str, list[float]]],
    widths: list[int],
    log2_lrs: list[int],
) -> dict[str, Any]:
    """Best log2 LR per width (mean loss and per seed), octaves moved, and the transfer cost:
    the loss at the widest width with the narrowest width's best LR over the best loss there
    (mean, per seed, sd)."""
    best = {w: int(min(log2_lrs, key=lambda k, w=w: loss[w][str(k)])) for w in loss}
    lo, hi = str(widths[0]), str(widths[-1])
    n_seeds = len(next(iter(per_seed[lo].values())))
    seed_best = {
        w: [
            int(min(log2_lrs, key=lambda k, i=i, w=w: per_seed[w][str(k)][i]))
            for i in range(n_seeds)
        ]
        for w in loss
    }
    seed_cost = [
        per_seed[hi][str(seed_best[lo][i])][i] / per_seed[hi][str(seed_best[hi][i])][i]
        for i in range(n_seeds)
    ]
    return {
        "best_log2_lr": best,
        "best_log2_lr_per_seed": seed_best,
        "octaves_moved": abs(best[hi] - best[lo]),
        "transfer_cost": loss[hi][str(best[lo])] / loss[hi][str(best[hi])],
        "transfer_cost_per_seed": seed_cost,
        "transfer_cost_sd": statistics.stdev(seed_cost) if n_seeds > 1 else 0.0,
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run(
    quick: bool = False,
    seed: int = 0,
    out: str = "initwise-report",
    progress: Any = None,
    workers: int | None = None,
    tasks: tuple[str, ...] = TASKS,
    resume: bool = False,
) -> dict[str, Any]:
    """Every (network, parametrization, width, LR, seed) run; runs are independent and seeded,
    so ``workers`` processes (default: 1 for ``quick``, else the CPU count, at most 4) give the
    same numbers as one. Finished runs go to a :class:`~initwise.experiments.common.Journal`;
    ``resume`` skips those it holds."""
    seeds = (seed,) if quick else (seed, seed + 1, seed + 2)
    grids = {t: settings(t, quick) for t in tasks}
    jobs = [
        (t, w, param, g["base_width"], 2.0**k, g["steps"], s)
        for t, g in grids.items()
        for param in PARAMS
        for w in g["widths"]
        for k in g["log2_lrs"][param]
        for s in seeds
    ]
    task_bar = progress.add_task("lr-transfer", total=len(jobs)) if progress else None
    cost = {"mlp": 1.0, "transformer": 40.0}  # rough time per width unit: longest first
    ordered = sorted(jobs, key=lambda j: -cost[j[0]] * j[1] * (1 + j[1] / 256) * j[5])
    journal = Journal(out, "lr-transfer", {"quick": quick, "seed": seed, "grids": grids}, resume)
    done = run_cells(_one, ordered, workers or default_workers(quick), progress, task_bar, journal)
    out_tasks: dict[str, Any] = {}
    for t, g in grids.items():
        loss: dict[str, dict[str, dict[str, float]]] = {}
        per_seed: dict[str, dict[str, dict[str, list[float]]]] = {}
        for param in PARAMS:
            loss[param], per_seed[param] = {}, {}
            for w in g["widths"]:
                rows = {
                    str(k): [
                        done[(t, w, param, g["base_width"], 2.0**k, g["steps"], s)] for s in seeds
                    ]
                    for k in g["log2_lrs"][param]
                }
                per_seed[param][str(w)] = rows
                loss[param][str(w)] = {k: sum(v) / len(v) for k, v in rows.items()}
        summary = {
            p: summarize(loss[p], per_seed[p], g["widths"], g["log2_lrs"][p]) for p in PARAMS
        }
        m = summary["mup"]
        out_tasks[t] = {
            **g,
            "loss": {
                p: {w: {k: _finite(v) for k, v in r.items()} for w, r in loss[p].items()}
                for p in PARAMS
            },
            "loss_per_seed": {
                p: {
                    w: {k: [_finite(x) for x in v] for k, v in r.items()}
                    for w, r in per_seed[p].items()
                }
                for p in PARAMS
            },
            "summary": summary,
            "claim_holds": bool(m["octaves_moved"] <= 1 and m["transfer_cost"] <= 1.10),
        }
    results = {
        "experiment": "lr-transfer",
        "quick": quick,
        "seed": seed,
        "seeds": list(seeds),
        "tasks": out_tasks,
        "claim_holds": all(v["claim_holds"] for v in out_tasks.values()),
        "claim": "for each network, under μP the best log2 LR moves at most one octave from the "
        "smallest to the largest width, and the smallest width's best LR costs ≤ 10 % at the "
        "largest",
    }
    return publish(out, "lr-transfer", results, _report, _plot, "lr_transfer.png")


TITLES = {
    "mlp": "3-layer ReLU MLP, MNIST-1D",
    "transformer": "2-block transformer, order-2 Markov sequences",
}
SHORT = {"mlp": "MLP", "transformer": "transformer"}


def _plot(r: dict[str, Any], path: str) -> None:
    plt = figure(path)
    tasks = list(r["tasks"])
    fig, axes = plt.subplots(len(tasks), len(PARAMS), figsize=(14, 3.8 * len(tasks)), squeeze=False)
    for row, t in zip(axes, tasks, strict=True):
        res = r["tasks"][t]
        for ax, param in zip(row, PARAMS, strict=True):
            # numeric order (results.json, read back, has its keys sorted as strings)
            for i, w in enumerate(sorted(res["loss"][param], key=int)):
                ks = sorted(int(k) for k in res["loss"][param][w])
                vs = [res["loss"][param][w][str(k)] for k in ks]
                vs = [float("nan") if v is None else v for v in vs]
                ax.plot(ks, vs, "-o", ms=3, color=f"C{i}", label=f"width {w}")
            par = {"mup": f"μP (base {res['base_width']})", "u-mup": "u-μP"}.get(param, param)
            ax.set(title=f"{SHORT[t]}: {par}", xlabel="log2 learning rate (Adam)", yscale="log")
            ax.grid(alpha=0.3, which="both")
        row[0].set_ylabel(f"training loss, last 10 % of {res['steps']} steps")
        row[0].legend(fontsize=8)
    save_figure(fig, path)


def _report(r: dict[str, Any]) -> str:
    parts = ["# Learning-rate transfer across width\n\n![lr transfer](lr_transfer.png)\n"]
    many = len(r["seeds"]) > 1
    for t, res in r["tasks"].items():
        rows = []
        for param in PARAMS:
            s = res["summary"][param]
            order = sorted(s["best_log2_lr"], key=int)
            best = ", ".join(f"{w}: {s['best_log2_lr'][w]}" for w in order)
            per = "; ".join(f"{w}: {s['best_log2_lr_per_seed'][w]}" for w in order) if many else "—"
            sd = f" ± {s['transfer_cost_sd']:.3f}" if many else ""
            rows.append(
                f"| {param} | {best} | {per} | {s['octaves_moved']} | "
                f"{s['transfer_cost']:.3f}{sd} |"
            )
        parts.append(
            f"## {TITLES[t]}\n\nAdam, {res['steps']} steps, widths {res['widths']}, learning rates "
            f"2^{res['log2_lrs']['mup'][0]} … 2^{res['log2_lrs']['mup'][-1]} (u-μP: "
            f"2^{res['log2_lrs']['u-mup'][0]} … 2^{res['log2_lrs']['u-mup'][-1]}), seeds "
            f"{r['seeds']} (mean); μP against base width {res['base_width']}. The claim is "
            "about μP; u-μP (`u-mup`: unit-scale weights, forward multipliers, its learning-rate "
            "rules) is shown beside it.\n\n"
            "| parametrization | best log2 LR per width (mean loss) | each seed's best | octaves "
            "moved | loss at the widest width with the narrowest's best LR / best there (± sd "
            "over seeds) |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Claim for this network — **{'holds' if res['claim_holds'] else 'fails'}**.\n"
        )
    parts.append(f"Claim: {r['claim']} — **{'holds' if r['claim_holds'] else 'fails'}**.\n")
    return "\n".join(parts)
